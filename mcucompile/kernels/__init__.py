"""Kernel descriptions: how each IR op becomes one call into the C kernel library.

A lowering (one module per kernel family, registered below) turns an `ir.Op`
into a `KernelCall`: the C function, a params struct as typed fields, the
constant arrays it reads from flash, its tensor arguments and its scratch
size. Codegen only lays these out; all arithmetic happens here, at compile
time.

C calling convention (see templates/kernels/mcc_common.h):
    int <function>(const <params_type> *p, <args...>);
where each arg is a tensor pointer into the arena (inputs first, then
outputs) or the scratch pointer, in the order of `KernelCall.args`.
It returns 0 (MCC_OK) on success.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union

import numpy as np

from ..errors import UnsupportedModelError
from ..ir import ALIAS_KINDS, Graph, Op, OpKind


@dataclass(frozen=True)
class KernelTarget:
    """What the kernel selection may assume about the CPU."""
    dsp: bool = False          # ARMv7E-M SIMD (SMLAD, SXTB16): Cortex-M4/M7/M33
    fpu: bool = False


@dataclass(frozen=True, eq=False)
class ConstArray:
    """A constant the layer reads from flash: emitted as `static const <ctype> <layer>_<suffix>[]`."""
    suffix: str
    ctype: str                 # "int8_t", "int16_t", "int32_t", "uint8_t", "float"
    values: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class ArrayRef:
    """A params field that points at one of this layer's ConstArrays."""
    suffix: str


@dataclass(frozen=True)
class TensorPtrs:
    """A params field that is an array of pointers to arena tensors (e.g. concat inputs)."""
    tensors: tuple[int, ...]


@dataclass(frozen=True)
class FloatValue:
    """A float field (only for QUANTIZE/DEQUANTIZE at float model boundaries)."""
    value: float


FieldValue = Union[int, bool, ArrayRef, TensorPtrs, FloatValue]


@dataclass(frozen=True)
class Field:
    name: str
    value: FieldValue


@dataclass(frozen=True)
class TensorArg:
    tensor: int


@dataclass(frozen=True)
class ScratchArg:
    pass


SCRATCH = ScratchArg()


@dataclass(frozen=True, eq=False)
class KernelCall:
    function: str              # C function, e.g. "mcc_conv2d_s8"
    library: str               # kernel source pair templates/kernels/<library>.{c,h}
    params_type: str           # C struct type of the first argument
    fields: tuple[Field, ...]
    args: tuple[Union[TensorArg, ScratchArg], ...]
    arrays: tuple[ConstArray, ...] = ()
    scratch_bytes: int = 0
    # Multiply-accumulates of convolutions and dense layers, the figure MCUNet and
    # MLPerf Tiny quote; pooling and element-wise work is not counted.
    macs: int = 0
    # Set by in-place lowerings: the input tensor whose buffer the output overwrites.
    inplace_input: int | None = None
    # A path inside the function whose speed differs from its others (e.g. the
    # one-channel depthwise kernel's three-row loop): the static estimate keeps
    # separate costs for it (energy.KERNEL_COSTS).
    cost_variant: str = ""
    # The optional paths of its library (OPTIONAL_PATHS) this call takes.
    paths: frozenset[str] = frozenset()

    @property
    def cost_name(self) -> str:
        """The key of this call's cost in energy.KERNEL_COSTS."""
        return f"{self.function}:{self.cost_variant}" if self.cost_variant else self.function


# Paths of a kernel library that a model's layers may not need. The generated
# mcc_config.h defines MCC_OMIT_<path> for each one no call takes, and the
# library compiles it out; a call that reaches an omitted path returns
# MCC_ERROR instead (IM2COL_RGB, a faster form within IM2COL_PATCHES, falls
# back to that way's general gather). No config (a kernel built on its own)
# or MCC_ALL_PATHS keeps them all. The model reads mcc_has_path_<path> for each path it takes,
# so kernels built without one of them do not link with it.
OPTIONAL_PATHS: dict[str, tuple[str, ...]] = {
    "mcc_conv": (
        # mcc_depthwise_conv2d_1ch_s8 for filters other than three rows of one
        # word, and for out_c % 4 channels: dw1ch_pixel (900 B of code on the M7).
        "DW1CH_GENERAL",
        # mcc_conv2d_im2col_s8's three ways (conv.im2col_paths): patches widened
        # straight into int16 blocks (in_c % 4 == 0), gathered as int8 first, or
        # two at a time on the stack. A model takes one or two (1.4 KB saved).
        "IM2COL_WIDENED", "IM2COL_PATCHES", "IM2COL_STACK_PAIRS",
        # Within the int8 way, blocks of an RGB first layer (3 channels, 3x3)
        # widened straight from the input on DSP cores (+350 B on the M4). Kept
        # for every such layer with blocks, also one whose blocks all touch
        # the border and so never take it (output under 4 wide, say).
        "IM2COL_RGB",
        # The fused residual ADD's epilogue of the GEMM, im2col and band kernels
        # (mcc_residual; ~1.1 KB on the M7): only models with a CONV_2D+ADD.
        "RESIDUAL",
        # mcc_depthwise_conv2d_pixel_s8's C loop, for filters other than 3x3
        # (DSP cores run 3x3 in assembly; portable builds always keep it).
        "DW_PIXEL_GENERAL",
        # mcc_depthwise_conv2d_planar_3x3_s8 at stride_w 2 (350 B on the M7):
        # the pixel kernel takes most such layers, in place too.
        "PLANAR_S2",
        # mcc_depthwise_conv2d_planar_s8 (filters 5 and 7 wide) at stride_w 2
        # (its two assembly loops, ~330 B on the M7).
        "PLANAR_WIDE_S2",
        # mcc_depthwise_conv2d_planar_s8's loops for filters 6 or 7 wide (~460 B
        # on the M7): a model whose other filters are at most 5 wide goes without.
        "PLANAR_WIDE7",
        # The GEMM's and band's 4x2 tiles over int16 weights: only models with
        # layers given flash for speed (--flash-slack, conv.widen). On the M7
        # person_detect's code grows by 349 B with them, ResNet-8's by 2,257 B.
        "WIDE_WEIGHTS",
        # The GEMM over a depth that is not whole groups of four (a dense or
        # 1x1 layer on 3 or 10 channels, say): the leftover rows' C loop beside
        # the assembly tiles (~420 B on the M7). im2col pads its patches.
        "GEMM_PARTIAL",
    ),
    "mcc_pool": (
        # AVERAGE_POOL_2D's and MEAN's sums over more than 256 taps, added out
        # of their int16 lanes in chunks (pool.py pool_paths; ~300 B on the M7).
        "POOL_CHUNKS",
    ),
}


def taken_paths(calls) -> tuple[str, ...]:
    """The optional paths the calls take, sorted."""
    return tuple(sorted(set().union(*(c.paths for c in calls if c is not None))))


def omitted_paths(calls) -> tuple[str, ...]:
    """The optional paths of the calls' libraries that none of the calls takes."""
    calls = [c for c in calls if c is not None]
    taken = taken_paths(calls)
    libraries = sorted({c.library for c in calls})
    return tuple(p for lib in libraries for p in OPTIONAL_PATHS.get(lib, ()) if p not in taken)


Lowering = Callable[[Op, Graph, KernelTarget], KernelCall]
LOWERINGS: dict[OpKind, Lowering] = {}


def lowering(*kinds: OpKind) -> Callable[[Lowering], Lowering]:
    """Register a function as the lowering of the given op kinds."""
    def register(fn: Lowering) -> Lowering:
        for k in kinds:
            assert k not in LOWERINGS, f"two lowerings for {k}"
            LOWERINGS[k] = fn
        return fn
    return register


# In-place variants: a function that returns a call writing the op's output over
# its input (setting KernelCall.inplace_input), or None when this op cannot.
# The pipeline asks only for ops whose input is dead after them.
INPLACE_LOWERINGS: dict[OpKind, Lowering] = {}


def inplace_lowering(*kinds: OpKind) -> Callable[[Lowering], Lowering]:
    def register(fn: Lowering) -> Lowering:
        for k in kinds:
            assert k not in INPLACE_LOWERINGS, f"two in-place lowerings for {k}"
            INPLACE_LOWERINGS[k] = fn
        return fn
    return register


def lower_inplace(op: Op, graph: Graph, target: KernelTarget = KernelTarget()) -> KernelCall | None:
    fn = INPLACE_LOWERINGS.get(op.kind)
    call = fn(op, graph, target) if fn else None
    assert call is None or call.inplace_input in op.inputs
    return call


# Fast in-place variants: the op still overwrites its input, but with more
# scratch than the lean in-place kernel, for speed. The pipeline takes one
# where its scratch does not raise the arena.
FAST_INPLACE_LOWERINGS: dict[OpKind, Lowering] = {}


def fast_inplace_lowering(*kinds: OpKind) -> Callable[[Lowering], Lowering]:
    def register(fn: Lowering) -> Lowering:
        for k in kinds:
            assert k not in FAST_INPLACE_LOWERINGS, f"two fast in-place lowerings for {k}"
            FAST_INPLACE_LOWERINGS[k] = fn
        return fn
    return register


def lower_inplace_fast(op: Op, graph: Graph, target: KernelTarget = KernelTarget()) -> KernelCall | None:
    fn = FAST_INPLACE_LOWERINGS.get(op.kind)
    call = fn(op, graph, target) if fn else None
    assert call is None or call.inplace_input in op.inputs
    return call


# Compact variants: the same op with no scratch buffer (slower), for layers at the
# memory peak, where a fast kernel's scratch would raise the arena.
COMPACT_LOWERINGS: dict[OpKind, Lowering] = {}


def compact_lowering(*kinds: OpKind) -> Callable[[Lowering], Lowering]:
    def register(fn: Lowering) -> Lowering:
        for k in kinds:
            COMPACT_LOWERINGS[k] = fn
        return fn
    return register


def lower_compact(op: Op, graph: Graph, target: KernelTarget = KernelTarget()) -> KernelCall | None:
    fn = COMPACT_LOWERINGS.get(op.kind)
    call = fn(op, graph, target) if fn else None
    return call if call is not None and call.scratch_bytes == 0 else None


def lower(op: Op, graph: Graph, target: KernelTarget = KernelTarget()) -> KernelCall | None:
    """The kernel call for `op`, or None for ops that are pure aliases (RESHAPE, SQUEEZE)."""
    if op.kind in ALIAS_KINDS:
        return None
    fn = LOWERINGS.get(op.kind)
    if fn is None:
        raise UnsupportedModelError(f"op {op.index} ({op.kind.value}) has no kernel")
    return fn(op, graph, target)


def macs_of(op: Op, graph: Graph) -> int:
    if getattr(op.attrs, "residual", None) is not None:
        from .conv import layer_macs     # fused for a target's kernel: count without lowering
        return layer_macs(op, graph)
    call = lower(op, graph)
    return call.macs if call else 0


# Kernel families register themselves on import.
from . import _families  # noqa: E402,F401
