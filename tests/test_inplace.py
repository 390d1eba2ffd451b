"""In-place kernels (mcucompile/kernels/inplace.py, templates/kernels/mcc_inplace.{c,h}).

Three levels:
1. The safety arithmetic in Python: ring sizes, pixel orders, liveness.
2. Random geometries through the real codegen: graphs of chained in-place ops
   (depthwise, pooling, 1x1 conv, dense, element-wise; odd channels, strides
   1-3, dilation, kernels 1-7, SAME/VALID/explicit padding, outputs larger
   than inputs) are built twice, with the normal kernels and in place, and
   every layer's output must match byte for byte. The in-place build really
   shares the buffers (checked), under AddressSanitizer and UBSan.
3. TFLM: single-op models and whole networks with `memory="inplace"`, every
   output and intermediate tensor compared with the reference.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest

import mcucompile.kernels.inplace as inplace
from mcucompile import codegen, planner
from mcucompile.ir import (Activation, Conv2DAttrs, DepthwiseConv2DAttrs, DType, ElementwiseAttrs,
                           ExplicitPadding, FullyConnectedAttrs, Graph, NoAttrs, Op, OpKind,
                           Padding, Pool2DAttrs, Quant, Tensor)
from mcucompile.kernels import KernelCall, lower, lower_inplace, lower_inplace_fast
from mcucompile.kernels.conv import axis_window
from mcucompile.kernels.inplace import WindowGeometry, pointwise_order, ring_rows
from mcucompile.pipeline import CompileOptions, Compiled
from mcucompile.verify import build_host_runner, random_inputs, run_host


# ----------------------------------------------------------------------------
# 1. The safety arithmetic
# ----------------------------------------------------------------------------

def _geometry(size, k, s, padding, dilation=1, out=None):
    """A square single-channel window; padding is "SAME", "VALID" or an int (explicit top/left)."""
    pad_kind = ExplicitPadding(padding, padding) if isinstance(padding, int) else Padding[padding]
    o, p = axis_window(pad_kind, "h", size, k, s, dilation, out or 0)
    return WindowGeometry(size, size, o, o, k, k, s, s, dilation, dilation, p, p)


@pytest.mark.parametrize("size,k,s,padding,dilation,rows", [
    (112, 3, 1, "SAME", 1, 3),     # 336 B of ring instead of a 12,544 B plane
    (112, 5, 1, "SAME", 1, 5),
    (112, 3, 1, "SAME", 2, 5),     # dilation widens the window
    (112, 3, 1, "VALID", 1, 0),    # output rows are shorter: the reads stay ahead of the writes
    (112, 3, 2, "SAME", 1, 0),     # even input: no top padding, reads only ahead
    (111, 3, 2, "SAME", 1, 0),     # odd input: top padding, yet output row oy reads from row 2oy-1
    (48, 2, 2, "VALID", 1, 0),
    (7, 7, 1, "SAME", 1, 7),       # the middle row's window covers the whole image
    (9, 3, 1, "SAME", 1, 3),
])
def test_ring_rows(size, k, s, padding, dilation, rows):
    assert ring_rows(_geometry(size, k, s, padding, dilation)) == rows


def test_an_output_larger_than_its_input_needs_a_ring():
    # Explicit padding can make the output larger than the input: output row 0
    # then overwrites input row 1 too, before the window of row 1 reads it.
    g = _geometry(5, 3, 1, 2, out=7)
    assert (g.out_h, g.pad_h) == (7, 2)
    assert ring_rows(g) == 5


@pytest.mark.parametrize("in_c,out_c,stride,reverse", [
    (16, 8, 1, False),    # shrinking: first to last
    (8, 8, 1, False),
    (8, 48, 1, True),     # expanding: last to first
    (8, 16, 2, False),    # stride 2 reads 4 pixels ahead per output pixel
    (3, 5, 2, False),
    (1, 64, 2, True),
    (2, 5, 3, False),     # stride 3: 2 bytes read 3 pixels on per 5 bytes written
])
def test_pointwise_order(in_c, out_c, stride, reverse):
    out = (9 - 1) // stride + 1
    assert pointwise_order(9, 10, in_c, out, (10 - 1) // stride + 1, out_c, stride, stride) is reverse


def test_pointwise_order_refuses_when_neither_order_is_safe():
    # Stride 3 over 9x10 pixels, 1 -> 5 channels (3x4 outputs). Forwards,
    # output 1 writes bytes 5..9 over input pixel 6, which output 2 reads.
    # Backwards, outputs 5.. write bytes 25.. over input pixel 30, which
    # output 4 reads.
    assert pointwise_order(9, 10, 1, 3, 4, 5, 3, 3) is None


def _q(scale=0.05, zp=0):
    return Quant((scale,), (zp,))


def _tiny_graph(ops_spec):
    """Activations 0..3 of shape (1, 4, 4, 2); ops as (kind, inputs, output)."""
    tensors = tuple(Tensor(i, f"t{i}", (1, 4, 4, 2), DType.INT8, _q()) for i in range(4))
    ops = tuple(Op(i, kind, ins, (out,), ElementwiseAttrs(Activation.NONE) if kind == OpKind.ADD
                   else NoAttrs()) for i, (kind, ins, out) in enumerate(ops_spec))
    return Graph("g", tensors, ops, (0,), (3,))


def test_input_dies_only_at_its_last_reader():
    g = _tiny_graph([(OpKind.RELU, (0,), 1), (OpKind.RELU6, (1,), 2), (OpKind.ADD, (1, 2), 3)])
    assert not inplace.input_dies_at(g, g.ops[1], 1)      # the residual ADD reads t1 later
    assert inplace.input_dies_at(g, g.ops[0], 0)          # a graph input may be overwritten
    assert inplace.input_dies_at(g, g.ops[2], 1) and inplace.input_dies_at(g, g.ops[2], 2)
    assert lower_inplace(g.ops[1], g) is None
    assert lower_inplace(g.ops[2], g).inplace_input == 1  # the first dying full-size operand


def test_graph_outputs_and_aliases_keep_their_input_alive():
    tensors = (Tensor(0, "x", (1, 4, 4, 2), DType.INT8, _q()),
               Tensor(1, "y", (1, 4, 4, 2), DType.INT8, _q()),
               Tensor(2, "y_flat", (1, 32), DType.INT8, _q()),
               Tensor(3, "z", (1, 4, 4, 2), DType.INT8, _q()))
    ops = (Op(0, OpKind.RELU, (0,), (1,), NoAttrs()),
           Op(1, OpKind.RESHAPE, (1,), (2,), NoAttrs()),
           Op(2, OpKind.RELU6, (1,), (3,), NoAttrs()))
    g = Graph("g", tensors, ops, (0,), (2, 3))
    assert not inplace.input_dies_at(g, ops[2], 1)   # y's bytes are graph output y_flat
    assert inplace.input_dies_at(g, ops[0], 0)


def test_dequantize_and_broadcast_operands_are_not_overwritten():
    tensors = (Tensor(0, "x", (1, 4, 4, 2), DType.INT8, _q()),
               Tensor(1, "b", (1, 1, 1, 2), DType.INT8, _q()),
               Tensor(2, "s", (1, 4, 4, 2), DType.INT8, _q(0.1)),
               Tensor(3, "f", (1, 4, 4, 2), DType.FLOAT32))
    ops = (Op(0, OpKind.ADD, (1, 0), (2,), ElementwiseAttrs(Activation.NONE)),
           Op(1, OpKind.DEQUANTIZE, (2,), (3,), NoAttrs()))
    g = Graph("g", tensors, ops, (0, 1), (3,))
    assert lower_inplace(ops[0], g).inplace_input == 0   # the full-size operand, not b
    assert lower_inplace(ops[1], g) is None               # 4 bytes over 1, forwards: unsafe


# ----------------------------------------------------------------------------
# 2. Random geometries: in place == the normal kernels, through the codegen
# ----------------------------------------------------------------------------

class _Builder:
    """Chains of ops on random data, each op's input dying at it."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []

    def tensor(self, shape, dtype=DType.INT8, quant=None, data=None) -> int:
        tid = len(self.tensors)
        self.tensors.append(Tensor(tid, f"t{tid}", tuple(int(d) for d in shape), dtype, quant, data))
        return tid

    def op(self, kind, inputs, output, attrs) -> int:
        self.ops.append(Op(len(self.ops), kind, tuple(inputs), (output,), attrs))
        return output

    def graph(self) -> Graph:
        return Graph("random", tuple(self.tensors), tuple(self.ops), tuple(self.inputs),
                     tuple(self.outputs))

    def shape(self, tid):
        return self.tensors[tid].shape

    def scale(self, tid) -> float:
        return self.tensors[tid].quant.scale[0]

    # --- quantized constants -------------------------------------------------

    def _weights(self, shape, channels, axis=0):
        w = self.rng.integers(-127, 128, shape).astype(np.int8)
        scales = tuple(float(s) for s in self.rng.uniform(0.005, 0.02, channels))
        return self.tensor(shape, DType.INT8, Quant(scales, (0,) * channels, axis), w), scales

    def _bias(self, n):
        return self.tensor((n,), DType.INT32, _q(0.0001),
                           self.rng.integers(-3000, 3000, n).astype(np.int32))

    def _out_quant(self, x, w_scales, taps):
        # About 50 quantization steps of spread at the output, whatever the fan-in.
        s = self.scale(x) * float(np.mean(w_scales)) * 74 * 74 * math.sqrt(taps) / 50
        return _q(s, int(self.rng.integers(-20, 21)))

    def _activation(self):
        return [Activation.NONE, Activation.RELU6, Activation.RELU][int(self.rng.integers(3))]

    # --- window geometry ------------------------------------------------------

    def _window(self, x, max_k, dilate):
        """Random window over x: (padding, kernel, stride, dilation, output shape), or None."""
        _, h, w, c = self.shape(x)
        k = tuple(int(v) for v in self.rng.integers(1, max_k + 1, 2))
        s = tuple(int(self.rng.choice([1, 1, 2, 3])) for _ in range(2))
        d = tuple(int(self.rng.choice([1, 2])) if dilate else 1 for _ in range(2))
        eff = tuple((k[i] - 1) * d[i] + 1 for i in range(2))
        mode = int(self.rng.integers(3))
        if mode == 1 and h >= eff[0] and w >= eff[1]:
            padding = Padding.VALID
        elif mode == 2:
            # Explicit (patch-style) padding: any top/left amount and any output
            # size whose windows still touch the input, larger than it or not.
            padding = ExplicitPadding(*(int(self.rng.integers(0, e)) for e in eff))
        else:
            padding = Padding.SAME
        pads = (getattr(padding, "top", 0), getattr(padding, "left", 0))
        out = []
        for i, (axis, size) in enumerate((("h", h), ("w", w))):
            largest = (size - 1 + pads[i]) // s[i] + 1   # the last window still touches the input
            explicit = largest if self.rng.random() < 0.5 else int(self.rng.integers(1, largest + 1))
            out.append(axis_window(padding, axis, size, k[i], s[i], d[i], explicit)[0])
        if min(out) < 1:
            return None
        return padding, k, s, d, (1, out[0], out[1], c)

    # --- ops ----------------------------------------------------------------

    def depthwise(self, x):
        win = self._window(x, 7, dilate=True)
        if win is None:
            return x
        padding, (kh, kw), (sh, sw), (dh, dw), out_shape = win
        c = self.shape(x)[3]
        wts, scales = self._weights((1, kh, kw, c), c, axis=3)
        y = self.tensor(out_shape, quant=self._out_quant(x, scales, kh * kw))
        return self.op(OpKind.DEPTHWISE_CONV_2D, (x, wts, self._bias(c)), y,
                       DepthwiseConv2DAttrs(padding, sh, sw, dh, dw, 1, self._activation()))

    def pool(self, x, kind):
        win = self._window(x, 4, dilate=False)
        if win is None:
            return x
        padding, (kh, kw), (sh, sw), _, out_shape = win
        y = self.tensor(out_shape, quant=self.tensors[x].quant)
        return self.op(kind, (x,), y, Pool2DAttrs(padding, sh, sw, kh, kw, self._activation()))

    def pointwise(self, x):
        _, h, w, c = self.shape(x)
        out_c = int(self.rng.choice([1, 3, 5, 8, 13, 24]))
        s = int(self.rng.choice([1, 1, 2]))
        wts, scales = self._weights((out_c, 1, 1, c), out_c)
        oh, ow, padding = (h - 1) // s + 1, (w - 1) // s + 1, Padding.SAME
        # A patch-style crop (fewer output pixels than the stride gives). Only at
        # stride 2: conv.py's 1x1 stride-1 fast path assumes out == in.
        if s == 2 and self.rng.random() < 0.5:
            oh, ow, padding = int(self.rng.integers(1, oh + 1)), int(self.rng.integers(1, ow + 1)), \
                ExplicitPadding(0, 0)
        y = self.tensor((1, oh, ow, out_c), quant=self._out_quant(x, scales, c))
        return self.op(OpKind.CONV_2D, (x, wts, self._bias(out_c)), y,
                       Conv2DAttrs(padding, s, s, 1, 1, self._activation()))

    def dense(self, x):
        depth = int(np.prod(self.shape(x)))
        units = int(self.rng.choice([3, depth // 2 + 1, depth + 7]))
        wts, scales = self._weights((units, depth), units)
        y = self.tensor((1, units), quant=self._out_quant(x, scales, depth))
        return self.op(OpKind.FULLY_CONNECTED, (x, wts, self._bias(units)), y,
                       FullyConnectedAttrs(self._activation(), False))

    def elementwise(self, x):
        shape, q = self.shape(x), self.tensors[x].quant
        which = int(self.rng.integers(3))
        if which == 0:
            return self.op(OpKind.RELU6, (x,), self.tensor(shape, quant=q), NoAttrs())
        if which == 1:
            return self.op(OpKind.LOGISTIC, (x,), self.tensor(shape, quant=_q(1 / 256, -128)), NoAttrs())
        c = self.tensor((shape[-1],), DType.INT8, _q(0.03),
                        self.rng.integers(-128, 128, shape[-1]).astype(np.int8))
        y = self.tensor(shape, quant=_q(2 * max(self.scale(x), 0.03), 5))
        return self.op(OpKind.ADD, (c, x), y, ElementwiseAttrs(Activation.NONE))

    def chain(self, length):
        h, w = (int(v) for v in self.rng.integers(5, 17, 2))
        c = int(self.rng.choice([1, 3, 5, 7, 8]))
        x = self.tensor((1, h, w, c), quant=_q(0.05, int(self.rng.integers(-20, 21))))
        self.inputs.append(x)
        for _ in range(length):
            r = float(self.rng.random())
            if r < 0.45:
                x = self.depthwise(x)
            elif r < 0.6:
                x = self.pool(x, OpKind.AVERAGE_POOL_2D)
            elif r < 0.7:
                x = self.pool(x, OpKind.MAX_POOL_2D)
            elif r < 0.85:
                x = self.pointwise(x)
            else:
                x = self.elementwise(x)
        if self.rng.random() < 0.5:
            x = self.dense(x)
        self.outputs.append(x)


def _compile(graph: Graph, use_inplace: bool, fast_form: bool = False) -> Compiled:
    """Lower (in place wherever an input dies; `fast_form`: the fast in-place
    form where an op has one), plan and generate, as the pipeline does."""
    calls: dict[int, KernelCall | None] = {}
    pairs: dict[int, int] = {}
    for op in graph.ops:
        call = lower_inplace(op, graph) if use_inplace else None
        if call is not None and fast_form:
            call = lower_inplace_fast(op, graph) or call
        if call is not None:
            pairs[op.outputs[0]] = call.inplace_input
        calls[op.index] = call or lower(op, graph)
    scratch = {i: c.scratch_bytes for i, c in calls.items() if c and c.scratch_bytes}
    plan = planner.plan(graph, scratch, refine=False, inplace=pairs)
    files = codegen.generate(graph, plan, calls, "model", ("test_inplace",))
    return Compiled(graph, calls, plan, files, report=None)


def _run(compiled: Compiled, inputs):
    with tempfile.TemporaryDirectory(prefix="mcc-inplace-") as d:
        exe = build_host_runner(compiled, Path(d), sanitize=True)
        return run_host(exe, compiled, inputs)


# One seed catches a ring one row short, direct reads where a ring is needed
# and a reversed pixel order (checked by mutating inplace.py); each build of
# ~60 ops costs a few seconds of sanitized gcc.
SEEDS = (1,)


def _random_graph(seed: int) -> Graph:
    b = _Builder(seed)
    for _ in range(12):
        b.chain(length=int(b.rng.integers(2, 6)))
    return b.graph()


@pytest.mark.parametrize("seed", SEEDS)
def test_random_geometries_match_the_normal_kernels(seed):
    graph = _random_graph(seed)
    normal, ours = _compile(graph, False), _compile(graph, True)

    # The in-place build really overwrites its inputs.
    by_function: dict[str, list] = {}
    for op in graph.ops:
        call = ours.calls[op.index]
        if call.inplace_input is not None:
            assert ours.plan.tensor_offsets[op.outputs[0]] == ours.plan.tensor_offsets[call.inplace_input]
            by_function.setdefault(call.function, []).append(call)
    assert "mcc_depthwise_conv2d_inplace_s8" in by_function
    assert sum(len(v) for v in by_function.values()) >= len(graph.ops) // 2

    inputs = random_inputs(graph, runs=2, seed=seed)
    out_a, layers_a = _run(normal, inputs)
    out_b, layers_b = _run(ours, inputs)
    for key in layers_a:
        op = next(o for o in graph.ops if key[1] in o.outputs)
        assert np.array_equal(layers_a[key], layers_b[key]), (
            f"run {key[0]}: op {op.index} ({op.kind.value}, {ours.calls[op.index].function}) differs")
    for a, b_ in zip(out_a, out_b):
        assert all(np.array_equal(x, y) for x, y in zip(a, b_))


@pytest.mark.parametrize("seed", SEEDS)
def test_random_geometries_match_in_the_fast_in_place_form(seed):
    """The same graphs with the planar kernel run in place wherever it applies."""
    graph = _random_graph(seed)
    normal, ours = _compile(graph, False), _compile(graph, True, fast_form=True)
    planar = [op for op in graph.ops if ours.calls[op.index].inplace_input is not None
              and ours.calls[op.index].function.startswith("mcc_depthwise_conv2d_planar")]
    assert len(planar) >= 2
    for op in planar:
        assert ours.plan.tensor_offsets[op.outputs[0]] == ours.plan.tensor_offsets[op.inputs[0]]
    inputs = random_inputs(graph, runs=2, seed=seed)
    (out_a, layers_a), (out_b, layers_b) = _run(normal, inputs), _run(ours, inputs)
    for key in layers_a:
        assert np.array_equal(layers_a[key], layers_b[key]), key
    for a, b_ in zip(out_a, out_b):
        assert all(np.array_equal(x, y) for x, y in zip(a, b_))


def test_random_geometries_cover_every_order():
    """The seeds above exercise ring and direct reads, outputs larger than their
    inputs, and both pixel orders (else the comparison proves less than it says)."""
    seen = set()
    for seed in SEEDS:
        graph = _random_graph(seed)
        for op in graph.ops:
            call = lower_inplace(op, graph)
            if call is None:
                continue
            f = {x.name: x.value for x in call.fields}
            if "ring_rows" in f:
                seen.add(("ring", f["ring_rows"] > 0))
                if f["out_h"] * f["out_w"] > f["in_h"] * f["in_w"]:
                    seen.add("out > in")
            if "reverse" in f:
                seen.add(("reverse", f["reverse"]))
                if f["stride_h"] > 1:
                    seen.add("pointwise stride 2")
                if f["out_w"] * f["out_h"] < ((f["in_w"] - 1) // f["stride_w"] + 1) * (
                        (f["in_h"] - 1) // f["stride_h"] + 1):
                    seen.add("pointwise crop")
            if "fast_table" in f:
                seen.add(("fast table", f["fast_table"]))
    assert seen >= {("ring", True), ("ring", False), "out > in", ("reverse", 0), ("reverse", 1),
                    "pointwise stride 2", "pointwise crop", ("fast table", 1)}, seen


class _Builder3x3(_Builder):
    """Square 3x3 windows only: the depthwise kernel's register-blocked rows
    (stride 1 in pairs, stride 2 one by one, dilation_h any, dilation_w 1 or not)."""

    def _window(self, x, max_k, dilate):
        real = self.rng
        self.rng = _KernelSize3(real, max_k)
        try:
            return super()._window(x, max_k, dilate)
        finally:
            self.rng = real


class _KernelSize3:
    """A generator that draws every window size as 3x3 and the rest as `rng`."""

    def __init__(self, rng, max_k):
        self.rng, self.max_k = rng, max_k

    def integers(self, lo, hi=None, size=None):
        if (lo, hi, size) == (1, self.max_k + 1, 2):
            return np.full(2, 3)
        return self.rng.integers(lo, hi, size)

    def __getattr__(self, name):
        return getattr(self.rng, name)


def _chains_match_the_normal_kernels(builder: _Builder, chains: int, length: int, seed: int):
    """Random chains built twice (normal kernels, in place), run under ASan/UBSan,
    every layer compared; returns the in-place calls' fields by function."""
    for _ in range(chains):
        builder.chain(length=length)
    graph = builder.graph()
    normal, ours = _compile(graph, False), _compile(graph, True)
    inputs = random_inputs(graph, runs=2, seed=seed)
    _, layers_a = _run(normal, inputs)
    _, layers_b = _run(ours, inputs)
    for key in layers_a:
        op = next(o for o in graph.ops if key[1] in o.outputs)
        assert np.array_equal(layers_a[key], layers_b[key]), f"op {op.index} ({ours.calls[op.index].function})"
    fields: dict[str, list[dict]] = {}
    for c in ours.calls.values():
        if c.inplace_input is not None:
            fields.setdefault(c.function, []).append({x.name: x.value for x in c.fields})
    return fields


def test_3x3_geometries_match_the_normal_kernels():
    fields = _chains_match_the_normal_kernels(_Builder3x3(15), chains=10, length=3, seed=15)
    dw = fields["mcc_depthwise_conv2d_inplace_s8"]
    assert all((f["filter_h"], f["filter_w"]) == (3, 3) for f in dw)
    seen = {(f["stride_w"], f["ring_rows"] > 0, f["dilation_w"]) for f in dw}
    assert {(1, True, 1), (1, False, 1), (2, False, 1), (2, True, 1)} <= seen, seen


class _WideBuilder(_Builder):
    """Output scales small enough that the requantization multiplier is >= 0.5:
    the fast table cannot be exact, and the kernels take TFLite's form."""

    def _out_quant(self, x, w_scales, taps):
        return _q(self.scale(x) * float(np.mean(w_scales)) / 2, int(self.rng.integers(-20, 21)))


def test_tflite_form_table_matches_the_normal_kernels():
    fields = _chains_match_the_normal_kernels(_WideBuilder(5), chains=4, length=4, seed=5)
    assert any(f["fast_table"] == 0 for f in fields["mcc_depthwise_conv2d_inplace_s8"])


def test_scratch_sizes_in_c_mirror_python(tmp_path):
    """Every in-place kernel's *_scratch_bytes against its Python mirror, which the
    lowering reports to the planner."""
    import subprocess
    from mcucompile.resources import data_dir
    from mcucompile.verify import host_compiler
    kernels = data_dir("templates") / "kernels"
    exe = tmp_path / "sizes"
    subprocess.run([host_compiler(), "-std=c99", "-Wall", "-Wextra", "-Werror", f"-I{kernels}",
                    str(Path(__file__).parent / "data" / "inplace_scratch_sizes.c"),
                    str(kernels / "mcc_inplace.c"), "-o", str(exe)], check=True)
    rng = np.random.default_rng(7)
    cases = [tuple(int(v) for v in rng.integers(0, 200, 3)) for _ in range(20)]
    out = subprocess.run([str(exe), *(str(v) for c in cases for v in c)], capture_output=True,
                         text=True, check=True).stdout.split("\n")
    for (ring, in_w, out_c), line in zip(cases, out):
        window = inplace.window_scratch_bytes(ring, in_w)
        assert [int(v) for v in line.split()] == [window, window, inplace.pointwise_scratch_bytes(out_c)]


def test_lowered_scratch_is_the_mirror():
    graph = _random_graph(SEEDS[0])
    for op in graph.ops:
        call = lower_inplace(op, graph)
        if call is None or call.library != "mcc_inplace":
            continue
        f = {x.name: x.value for x in call.fields}
        want = (inplace.window_scratch_bytes(f["ring_rows"], f["in_w"]) if "ring_rows" in f
                else inplace.pointwise_scratch_bytes(f["out_c"]))
        assert call.scratch_bytes == want


# ----------------------------------------------------------------------------
# 3. Against TFLM, with memory="inplace"
# ----------------------------------------------------------------------------

# Every eligible op in place, so that each in-place kernel is exercised (the default keeps
# in-place kernels only where they lower the peak).
# The in-place kernels themselves: residual ADDs stay ADDs (not fused into convolutions).
INPLACE = CompileOptions(memory="inplace", inplace_everywhere=True, fuse_residuals=False)


def _assert_inplace_bit_exact(model: bytes, *functions: str):
    """The model compiles with the given in-place kernels and matches TFLM everywhere."""
    from harness import assert_bit_exact, host_board
    from mcucompile.pipeline import compile_model
    compiled = compile_model(model, host_board(), INPLACE)
    used = {c.function for c in compiled.calls.values() if c is not None and c.inplace_input is not None}
    for f in functions:
        assert f in used, f"{f} not used in place (in place: {sorted(used)})"
    assert_bit_exact(model, runs=2, options=INPLACE)
    return compiled


# The random geometries above cover the rest; these pin TFLM's own padding.
DEPTHWISE = {
    "k3_s1_same": dict(kernel=3, stride=1, padding="same"),          # ring
    "k3_s2_same": dict(kernel=3, stride=2, padding="same"),          # direct
    "k7_s1_valid": dict(kernel=7, stride=1, padding="valid"),
    "dilation2_same": dict(input_shape=(1, 10, 7, 5), dilation=2),
}


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("kw", list(DEPTHWISE.values()), ids=list(DEPTHWISE))
def test_depthwise_in_place_is_bit_exact(kw):
    import modelgen as mg
    _assert_inplace_bit_exact(mg.depthwise_conv2d(**{"input_shape": (1, 9, 11, 3), **kw}),
                              "mcc_depthwise_conv2d_inplace_s8")


# The fast in-place form: conv.py's planar kernel with output == input: its
# planes on the stack (group 0), as many as fit MCC_PLANAR_STACK_PLANE (eight
# and then four in the c12 case), else one plane at a time in scratch (the
# last case).
INPLACE_FAST = CompileOptions(memory="inplace", inplace_everywhere=True, inplace_fast_form=True)
PLANAR_INPLACE = {
    "k3_s1_same": dict(kernel=3, stride=1, padding="same", activation="relu6"),
    "k3_s2_same_odd": dict(input_shape=(1, 11, 9, 5), kernel=3, stride=2, padding="same"),
    "k3_s2_valid": dict(kernel=3, stride=2, padding="valid", activation="relu"),
    "k5_s1_same": dict(kernel=5, stride=1, padding="same"),
    "k7_s2_same": dict(input_shape=(1, 13, 11, 3), kernel=7, stride=2, padding="same",
                       activation="relu6"),
    "k3_s2_same_c12": dict(input_shape=(1, 10, 9, 12), kernel=3, stride=2, padding="same"),
    "k3_s1_same_plane_in_scratch": dict(input_shape=(1, 36, 34, 3), kernel=3, stride=1,
                                        padding="same"),
}


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("kw", list(PLANAR_INPLACE.values()), ids=list(PLANAR_INPLACE))
def test_planar_depthwise_in_place_is_bit_exact(kw):
    import modelgen as mg
    from harness import assert_bit_exact, host_board
    from mcucompile.pipeline import compile_model
    model = mg.depthwise_conv2d(**{"input_shape": (1, 9, 11, 4), **kw})
    compiled = compile_model(model, host_board(), INPLACE_FAST)
    (call,) = [c for c in compiled.calls.values() if c is not None]
    assert call.function.startswith("mcc_depthwise_conv2d_planar") and call.inplace_input is not None
    fields = {f.name: f.value for f in call.fields}
    plane = fields["plane_h"] * fields["plane_w"]
    if kw.get("input_shape") == (1, 36, 34, 3):
        assert plane > 1152 and fields["group"] == 1 and call.scratch_bytes == plane
    else:
        assert fields["group"] == 0 and call.scratch_bytes == 0
    offsets = compiled.plan.tensor_offsets
    assert offsets[call.inplace_input] == offsets[compiled.graph.outputs[0]]
    assert_bit_exact(model, runs=2, options=INPLACE_FAST)


# The fast in-place form of a 1x1 convolution: mcc_gemm_s8 in blocks of four
# pixels, first to last (out_c <= in_c) or last to first (out_c > in_c), the
# leftover pixels (rows % 4) through the block with their outputs via scratch:
# on the stack where block and outputs fit MCC_GEMM_INPLACE_STACK_BLOCK, else the arena.
GEMM_INPLACE = {
    "expand_leftover_3": (dict(input_shape=(1, 5, 7, 3), filters=11, activation="relu6"), 2),
    "project_leftover_1": (dict(input_shape=(1, 3, 7, 12), filters=5), 1),
    "equal_whole_blocks": (dict(input_shape=(1, 4, 6, 8), filters=8, activation="relu"), 1),
    "expand_batch2": (dict(input_shape=(2, 3, 3, 4), filters=9), 2),
    "equal_64_stack": (dict(input_shape=(1, 5, 3, 64), filters=64, activation="relu"), 1),
    "expand_96_stack": (dict(input_shape=(1, 3, 6, 20), filters=95), 2),
    "project_deep_arena": (dict(input_shape=(1, 3, 5, 200), filters=40), 1),
}


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("name", list(GEMM_INPLACE))
def test_gemm_1x1_in_place_is_bit_exact(name):
    import modelgen as mg
    from harness import assert_bit_exact, host_board
    from mcucompile.pipeline import compile_model
    kw, order = GEMM_INPLACE[name]
    model = mg.conv2d(**kw, kernel=1, stride=1, padding="valid")
    compiled = compile_model(model, host_board(), INPLACE_FAST)
    (call,) = [c for c in compiled.calls.values() if c is not None]
    fields = {f.name: f.value for f in call.fields}
    assert call.function == "mcc_gemm_inplace_s8" and call.inplace_input is not None
    on_stack = inplace.gemm_inplace_stack_bytes(fields["depth"], fields["out_c"]) <= 1152
    assert fields["inplace"] == order and fields["row_block"] == (2 if on_stack else 4)
    assert on_stack == (name != "project_deep_arena")
    assert call.scratch_bytes == (0 if on_stack else
                                  inplace.gemm_inplace_scratch_bytes(fields["depth"], fields["out_c"]))
    assert_bit_exact(model, runs=2, options=INPLACE_FAST)


@pytest.mark.tf
def test_fast_in_place_form_needs_what_the_lean_one_needs():
    """A depth multiplier > 1 writes over other channels' input: neither form runs it in place."""
    import modelgen as mg
    from mcucompile import passes
    from mcucompile.frontend import tflite
    from mcucompile.kernels import lower_inplace_fast
    graph = passes.run_passes(tflite.load(mg.depthwise_conv2d(input_shape=(1, 8, 8, 3),
                                                              depth_multiplier=2)))
    (op,) = [o for o in graph.ops if o.kind == OpKind.DEPTHWISE_CONV_2D]
    assert lower_inplace(op, graph) is None and lower_inplace_fast(op, graph) is None


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("make,function", [
    (lambda mg: mg.conv2d(input_shape=(1, 9, 11, 3), filters=5, kernel=1, stride=1, padding="same"),
     "mcc_conv2d_1x1_inplace_s8"),
    (lambda mg: mg.conv2d(input_shape=(1, 9, 11, 3), filters=5, kernel=1, stride=2, padding="valid"),
     "mcc_conv2d_1x1_inplace_s8"),
    (lambda mg: mg.conv2d(input_shape=(2, 6, 5, 7), filters=5, kernel=1), "mcc_conv2d_1x1_inplace_s8"),
    (lambda mg: mg.dense(input_shape=(1, 13), units=6, per_channel=False),
     "mcc_fully_connected_inplace_s8"),
], ids=["conv1x1_expand", "conv1x1_stride2", "conv1x1_batch2", "dense_per_tensor"])
def test_pointwise_in_place_is_bit_exact(make, function):
    import modelgen as mg
    _assert_inplace_bit_exact(make(mg), function)


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("kind,config,function", [
    # Every window reads only pixels at or after its own output pixel: the
    # plain kernels run over their own input.
    ("max", dict(input_shape=(1, 9, 10, 5), pool_size=3, stride=2, padding="same"), "mcc_maxpool_s8"),
    ("avg", dict(input_shape=(1, 9, 11, 13), pool_size=2, stride=2, padding="valid"), "mcc_avgpool_s8"),
    ("max", dict(input_shape=(1, 8, 9, 12), pool_size=(2, 3), stride=(2, 3), padding="valid",
                 activation="relu"), "mcc_maxpool_s8"),
    # Stride 1 SAME reads pixels before its own: the ring kernel.
    ("avg", dict(input_shape=(1, 6, 9, 7), pool_size=(5, 7), stride=1, padding="same",
                 activation="relu6"), "mcc_avgpool_inplace_s8"),
], ids=["max_k3_s2_same", "avg_k2_s2_valid_c13", "max_k2x3_relu_c12", "avg_k5x7_s1_same"])
def test_pool_in_place_is_bit_exact(kind, config, function):
    import modelgen as mg
    factory = mg.avg_pool2d if kind == "avg" else mg.max_pool2d
    compiled = _assert_inplace_bit_exact(factory(**config), function)
    if function in ("mcc_avgpool_s8", "mcc_maxpool_s8"):
        (call,) = [c for c in compiled.calls.values() if c is not None]
        assert call.scratch_bytes == 0


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("make,function", [
    (lambda mg: mg.add(shape_b=(1, 1, 1, 8), activation="relu6"), "mcc_add_s8"),
    (lambda mg: mg.mul(shape_b=(1, 1, 1, 8), constant_b=True), "mcc_mul_const_s8"),
    (lambda mg: mg.activation(kind="hard_swish", input_shape=(1, 5, 7, 9)), "mcc_lut_s8"),
    (lambda mg: mg.float_io(mg.softmax, input_shape=(2, 12)), "mcc_softmax_s8"),
], ids=["add_broadcast", "mul_const", "hard_swish", "softmax_float_io"])
def test_elementwise_in_place_is_bit_exact(make, function):
    import modelgen as mg
    compiled = _assert_inplace_bit_exact(make(mg), function)
    if function == "mcc_softmax_s8":   # the float input's QUANTIZE too
        assert any(c.function == "mcc_quantize_f32_s8" and c.inplace_input is not None
                   for c in compiled.calls.values() if c)


@pytest.mark.reference
@pytest.mark.parametrize("name,inplace_ops", [("person_detect", 28), ("micro_speech_quantized", 2)])
def test_reference_models_in_place(shared_models, name, inplace_ops):
    """Bit-exact in place. (The arena figures depend on the planner and on the
    other kernels' scratch; tests/test_memory.py owns those.)"""
    model = (shared_models / f"{name}.tflite").read_bytes()
    compiled = _assert_inplace_bit_exact(model)
    (report,) = compiled.report.strategies
    assert report.inplace_ops >= inplace_ops


@pytest.mark.tf
@pytest.mark.reference
def test_mobilenet_v2_in_place_is_bit_exact():
    import modelgen as mg
    model = mg.mobilenet_v2(resolution=32, num_classes=5, head_channels=32)
    compiled = _assert_inplace_bit_exact(model, "mcc_depthwise_conv2d_inplace_s8",
                                         "mcc_conv2d_1x1_inplace_s8", "mcc_add_s8")
    assert compiled.report.strategies[0].inplace_ops >= 20
