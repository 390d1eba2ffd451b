"""The efficiency predictor: what a subnet costs on the board, without TensorFlow.

For each candidate we build the int8 `ir.Graph` that TFLiteConverter would
produce for it (models.py lists the op mapping) straight from its `Arch`:
int8 activations with a dummy quantization, constant weights of the right
shapes filled with seeded pseudo-random values (so that no two layers' arrays
are spuriously identical: the compiler stores identical arrays once). Then the
compiler's own stages do the accounting:

* peak SRAM: the compiler's passes, memory strategies (layer by layer, in-place
  ops, and MCUNetV2 patch-based inference when `memory` allows it) and planner,
  choosing as `pipeline.compile_model` chooses: exactly the arena `mcucompile
  build --memory <memory>` allocates for the converted model;
* flash: the distinct constant arrays the chosen lowering emits (int8 weights,
  int32 folded biases, requantization multipliers and shifts), counted as the
  compiler counts them, plus CODE_FLASH_BYTES for the kernels and runtime. A real
  model's arrays can coincide where our stand-ins do not (a few shift arrays):
  within a fraction of a percent;
* MACs, latency and energy: the kernels' MAC counts, and the project's static
  speed/energy model (mcucompile.energy.estimate_static: per-kernel instruction
  costs, the core's cycles per instruction, the board's clock and active power).

Converting each candidate with TFLiteConverter would take ~30 s; this takes
~0.1 s with the default memory strategy (tests/test_nas.py checks it against
the compiler on converted models).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import BoardError
from ..ir import (Activation, Conv2DAttrs, DepthwiseConv2DAttrs, DType, ElementwiseAttrs,
                  FullyConnectedAttrs, Graph, Op, OpKind, Padding, Quant, ReducerAttrs,
                  SoftmaxAttrs, Tensor)
from .space import Arch

# Flash the generated code itself takes (kernel library, model glue, firmware runtime),
# counted on top of the weights. An allowance, not a measurement of each model: the
# QEMU firmware (M7, arm-none-eabi-gcc -O2) of the 50-layer model searched for
# tests/test_nas.py's 128 KB board takes 35,008 B besides its weight and table arrays:
# model code 19,184 B (ten kernels, in-place and planar forms among them), runtime
# 9,904 B, C library 2,088 B, layer parameters 3,819 B. 32 KiB let it overflow.
CODE_FLASH_BYTES = 36 * 1024

# SRAM that is not arena: the firmware's own buffers, .data and .bss besides the
# model (its stack is the board's stack_bytes, reserved separately). The same
# firmware uses ~1 KiB.
RUNTIME_SRAM_BYTES = 4 * 1024

# The memory strategy the search plans with. "inplace" costs ~0.1 s per candidate;
# "auto" and "patch" add MCUNetV2 patch-based inference: 1.5 to 15 s per candidate.
# `build`'s default, auto, picks the smallest arena of all, so a model that fits
# under "inplace" fits under `build` too.
DEFAULT_MEMORY = "inplace"

LATENCY_NOTE = ("latency and energy come from the project's static speed/energy model "
                "(mcucompile.energy.estimate_static: per-kernel instruction costs, cycles per "
                "instruction of the core at the board's clock, the board's active power); "
                "its assumptions are in `mcucompile build`'s energy report")

# Stand-in activation quantization: any valid scales give the same shapes, plan and
# array sizes (weights get varied per-channel scales, see _GraphBuilder.scales).
_ACT = Quant((0.05,), (-128,))
_IN = Quant((1.0 / 255.0,), (-128,))
_SOFTMAX_OUT = Quant((1.0 / 256.0,), (-128,))


@dataclass(frozen=True)
class Cost:
    peak_sram: int           # the arena our compiler allocates (with its chosen strategy)
    weights: int             # constant bytes the compiled model holds in flash
    flash: int               # weights + CODE_FLASH_BYTES
    macs: int
    latency_ms: float | None
    energy_uj: float | None
    memory_strategy: str     # the compiler's choice: layer, inplace or patch

    def to_json(self) -> dict:
        return {"peak_sram_bytes": self.peak_sram, "weights_bytes": self.weights,
                "flash_bytes": self.flash, "macs": self.macs, "latency_ms": self.latency_ms,
                "energy_uj": self.energy_uj, "memory_strategy": self.memory_strategy}


@dataclass(frozen=True)
class Constraints:
    """What a subnet must meet on the board."""
    sram_bytes: int               # for the arena: board SRAM - stack - runtime
    flash_bytes: int              # for weights + code
    latency_ms: float | None = None
    energy_uj: float | None = None

    def fits(self, c: Cost) -> bool:
        return not self.violations(c)

    def violations(self, c: Cost) -> list[str]:
        out = []
        if c.peak_sram > self.sram_bytes:
            out.append(f"peak SRAM {c.peak_sram:,} B > {self.sram_bytes:,} B")
        if c.flash > self.flash_bytes:
            out.append(f"flash {c.flash:,} B > {self.flash_bytes:,} B")
        if self.latency_ms is not None and (c.latency_ms is None or c.latency_ms > self.latency_ms):
            out.append(f"latency {c.latency_ms:.2f} ms > {self.latency_ms:g} ms")
        if self.energy_uj is not None and (c.energy_uj is None or c.energy_uj > self.energy_uj):
            out.append(f"energy {c.energy_uj:.1f} uJ > {self.energy_uj:g} uJ")
        return out

    def to_json(self) -> dict:
        return {"arena_sram_bytes": self.sram_bytes, "flash_bytes": self.flash_bytes,
                "latency_ms": self.latency_ms, "energy_uj": self.energy_uj,
                "runtime_sram_bytes": RUNTIME_SRAM_BYTES, "code_flash_bytes": CODE_FLASH_BYTES}


def constraints_for(board, latency_ms: float | None = None,
                    energy_uj: float | None = None) -> Constraints:
    if board.is_host or board.sram_bytes is None:
        raise BoardError(f"board {board.name!r} has no memory sizes to search against: "
                         "give a microcontroller board")
    if energy_uj is not None and board.power is None:
        raise BoardError(f"an energy budget needs the board's active power, and {board.source} "
                         "has no `power: {active_mw, source}` field")
    if (latency_ms is not None or energy_uj is not None) and not board.clock_hz:
        raise BoardError(f"a latency or energy budget needs the board's clock_hz ({board.source})")
    sram = board.sram_bytes - board.stack_bytes - RUNTIME_SRAM_BYTES
    flash = board.flash_bytes
    if sram <= 0:
        raise BoardError(f"board {board.name!r}: its {board.sram_bytes:,} B of SRAM do not even hold "
                         f"the {board.stack_bytes:,} B stack and {RUNTIME_SRAM_BYTES:,} B runtime")
    return Constraints(sram, flash, latency_ms, energy_uj)


class _GraphBuilder:
    def __init__(self, name: str):
        self.name = name
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []

    def tensor(self, name: str, shape: tuple[int, ...], dtype: DType = DType.INT8,
               quant: Quant | None = _ACT, data: np.ndarray | None = None) -> int:
        tid = len(self.tensors)
        self.tensors.append(Tensor(tid, name, tuple(shape), dtype, quant, data))
        return tid

    def const(self, name: str, shape: tuple[int, ...], dtype: DType, quant: Quant | None) -> int:
        rng = np.random.default_rng(len(self.tensors))
        lo, hi = (-127, 127) if dtype == DType.INT8 else (-1000, 1000)
        return self.tensor(name, shape, dtype, quant,
                           rng.integers(lo, hi, shape, endpoint=True).astype(dtype.numpy))

    def scales(self, n: int, base: float) -> tuple[float, ...]:
        """Per-channel scales that differ between channels and layers, as trained ones do."""
        k = len(self.tensors)
        return tuple(base * (1.0 + ((c * 7919 + k * 104729) % 997) / 997.0) for c in range(n))

    def op(self, kind: OpKind, inputs: tuple[int, ...], outputs: tuple[int, ...], attrs) -> None:
        self.ops.append(Op(len(self.ops), kind, inputs, outputs, attrs))

    def conv(self, x: int, name: str, out_c: int, k: int, stride: int, act: bool,
             depthwise: bool = False) -> int:
        n, h, w, c = self.tensors[x].shape
        oh, ow = -(-h // stride), -(-w // stride)          # SAME padding
        channels = c if depthwise else out_c
        wq = Quant(self.scales(channels, 0.01), (0,) * channels, axis=3 if depthwise else 0)
        shape = (1, k, k, c) if depthwise else (out_c, k, k, c)
        wt = self.const(f"{name}/weights", shape, DType.INT8, wq)
        bq = Quant((0.05 * 0.01,) * channels, (0,) * channels)
        bt = self.const(f"{name}/bias", (channels,), DType.INT32, bq)
        y = self.tensor(name, (n, oh, ow, channels))
        activation = Activation.RELU6 if act else Activation.NONE
        pad = Padding.SAME if (k > 1 or stride > 1) else Padding.VALID
        if depthwise:
            self.op(OpKind.DEPTHWISE_CONV_2D, (x, wt, bt), (y,),
                    DepthwiseConv2DAttrs(pad, stride, stride, 1, 1, 1, activation))
        else:
            self.op(OpKind.CONV_2D, (x, wt, bt), (y,), Conv2DAttrs(pad, stride, stride, 1, 1, activation))
        return y

    def graph(self, inputs: tuple[int, ...], outputs: tuple[int, ...]) -> Graph:
        return Graph(self.name, tuple(self.tensors), tuple(self.ops), inputs, outputs)


def graph_of(arch: Arch, name: str = "subnet") -> Graph:
    """The int8 graph TFLiteConverter makes of models.build_model(arch), with zero weights."""
    g = _GraphBuilder(name)
    x = g.tensor("input", (1, arch.resolution, arch.resolution, arch.in_channels), quant=_IN)
    inp = x
    x = g.conv(x, "stem", arch.stem_channels, 3, 2, act=True)
    for i, b in enumerate(arch.blocks):
        h = x
        if b.expand_conv:
            h = g.conv(h, f"b{i}_expand", b.hidden, 1, 1, act=True)
        h = g.conv(h, f"b{i}_dw", b.hidden, b.kernel, b.stride, act=True, depthwise=True)
        h = g.conv(h, f"b{i}_project", b.out_channels, 1, 1, act=False)
        if b.residual:
            # Each ADD its own output scale, as trained ones have: the compiler fuses an
            # ADD into the convolution where its tables pay (ADDs of equal arithmetic
            # would share them), and counts each distinct table once in flash.
            y = g.tensor(f"b{i}_add", g.tensors[h].shape,
                         quant=Quant((_ACT.scale[0] * (1.0 + (i + 1) / 97.0),), _ACT.zero_point))
            g.op(OpKind.ADD, (x, h), (y,), ElementwiseAttrs(Activation.NONE))
            h = y
        x = h
    c = arch.last_channels
    axes = g.tensor("pool/axes", (2,), DType.INT32, None, np.array([1, 2], dtype=np.int32))
    pooled = g.tensor("pool", (1, c))
    g.op(OpKind.MEAN, (x, axes), (pooled,), ReducerAttrs(keep_dims=False))
    fq = Quant(g.scales(arch.num_classes, 0.01), (0,) * arch.num_classes, axis=0)
    fw = g.const("fc/weights", (arch.num_classes, c), DType.INT8, fq)
    fb = g.const("fc/bias", (arch.num_classes,), DType.INT32,
                 Quant((0.05 * 0.01,) * arch.num_classes, (0,) * arch.num_classes))
    logits = g.tensor("fc", (1, arch.num_classes))
    g.op(OpKind.FULLY_CONNECTED, (pooled, fw, fb), (logits,),
         FullyConnectedAttrs(Activation.NONE, keep_num_dims=False))
    probs = g.tensor("softmax", (1, arch.num_classes), quant=_SOFTMAX_OUT)
    g.op(OpKind.SOFTMAX, (logits,), (probs,), SoftmaxAttrs(beta=1.0))
    return g.graph((inp,), (probs,))


@dataclass(frozen=True, eq=False)
class _CompiledView:
    """The parts of a pipeline.Compiled that energy.estimate_static reads."""
    graph: Graph
    calls: dict
    plan: object
    report: object


@dataclass(frozen=True)
class _ReportView:
    model: str
    macs: int


class EfficiencyModel:
    """Cost of an Arch on one board, memoized (the search asks about the same nets often)."""

    def __init__(self, board, memory: str = DEFAULT_MEMORY):
        from ..pipeline import CompileOptions
        self.board = board
        self.memory = memory
        self.options = CompileOptions(memory=memory)
        self._cache: dict[Arch, Cost] = {}

    def cost(self, arch: Arch) -> Cost:
        hit = self._cache.get(arch)
        if hit is None:
            hit = self._cache[arch] = self._measure(arch)
        return hit

    def _measure(self, arch: Arch) -> Cost:
        from .. import codegen, energy, pipeline
        chosen = pipeline.plan_graph(graph_of(arch), self.board, self.options)
        macs = sum(c.macs for c in chosen.calls.values() if c)
        weights = codegen.flash_constant_bytes(chosen.calls)
        latency = energy_uj = None
        if not self.board.is_host:
            est = energy.estimate_static(
                _CompiledView(chosen.graph, chosen.calls, chosen.plan, _ReportView("subnet", macs)),
                self.board)
            latency, energy_uj = est.latency_ms, est.energy_uj
        return Cost(chosen.plan.arena_bytes, weights, weights + CODE_FLASH_BYTES, macs, latency,
                    energy_uj, chosen.strategy)
