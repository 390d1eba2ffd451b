"""AVERAGE_POOL_2D, MAX_POOL_2D and MEAN (int8) onto templates/kernels/mcc_pool.{c,h}.

Bit-exact with TFLM's reference kernels (tflite-micro pooling_common.cc with
reference_integer_ops::AveragePool/MaxPool; reduce_common.cc with
reference_ops::QuantizedMeanOrSum):

* Pooling: the window is clipped to the image; AVERAGE_POOL divides the sum of
  the in-bounds taps by their count, rounding half away from zero. TFLM
  requires identical input and output quantization (it never rescales), so we
  refuse a model where they differ, as TFLM's Prepare does.
* MEAN: current TFLM sends every int8 MEAN through QuantizedMeanOrSum,
  whatever the axes, keep_dims or quantization (older releases had special
  cases for same-quantization and for 4-D axes {1, 2}; we verified against the
  installed interpreter that they are gone). It sums the raw int8 values in
  int32, subtracts input_zero_point * n and rescales with a multiplier that
  folds in 1/n. We compute that multiplier here exactly as TFLM does in Eval.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedModelError
from ..ir import DType, Graph, Op, OpKind, Pool2DAttrs, ReducerAttrs, Tensor
from ..quant import activation_range, f32, quantize_multiplier
from . import (SCRATCH, ArrayRef, ConstArray, Field, KernelCall, KernelTarget, TensorArg,
               lowering)
from .conv import axis_window, padding_name

LIBRARY = "mcc_pool"

# Canonical rank of the MEAN kernel's loops (TFLM's int8 MEAN takes up to 5-D input).
MEAN_DIMS = 5

# The most taps the kernels sum in one pass of their int16 lanes (mcc_pool.c
# LANE_TAPS); more take the optional path POOL_CHUNKS.
LANE_TAPS = 256


def pool_paths(taps: int) -> frozenset[str]:
    """The optional paths of a sum over windows of up to `taps` taps."""
    return frozenset({"POOL_CHUNKS"}) if taps > LANE_TAPS else frozenset()


def _where(op: Op) -> str:
    return f"op {op.index} ({op.kind.value})"


def _int8(op: Op, t: Tensor, role: str) -> Tensor:
    if t.dtype != DType.INT8:
        raise UnsupportedModelError(
            f"{_where(op)}: {role} {t.name!r} is {t.dtype.value}; only int8 is supported")
    if t.quant is None:
        raise UnsupportedModelError(f"{_where(op)}: {role} {t.name!r} is not quantized")
    return t


def _ints(**values: int) -> tuple[Field, ...]:
    return tuple(Field(k, int(v)) for k, v in values.items())


# --- AVERAGE_POOL_2D, MAX_POOL_2D -------------------------------------------

@dataclass(frozen=True)
class PoolGeometry:
    batches: int
    in_h: int
    in_w: int
    channels: int
    out_h: int
    out_w: int
    pad_h: int
    pad_w: int


def pool_geometry(op: Op, attrs: Pool2DAttrs, inp: Tensor, out: Tensor) -> PoolGeometry:
    """TFLM's CalculateOpDataPooling, checked against the output tensor's shape."""
    where = _where(op)
    if len(inp.shape) != 4 or len(out.shape) != 4:
        raise UnsupportedModelError(
            f"{where}: expected 4-D NHWC input and output, got {inp.shape} and {out.shape}")
    if min(attrs.stride_h, attrs.stride_w, attrs.filter_h, attrs.filter_w) < 1:
        raise UnsupportedModelError(f"{where}: strides and filter sizes must be >= 1")
    n, in_h, in_w, c = inp.shape
    out_h, pad_h = axis_window(attrs.padding, "h", in_h, attrs.filter_h, attrs.stride_h, 1, out.shape[1])
    out_w, pad_w = axis_window(attrs.padding, "w", in_w, attrs.filter_w, attrs.stride_w, 1, out.shape[2])
    if out.shape != (n, out_h, out_w, c) or out_h < 1 or out_w < 1:
        raise UnsupportedModelError(
            f"{where}: output shape {out.shape} does not match a {attrs.filter_h}x{attrs.filter_w} "
            f"{padding_name(attrs.padding)} window over input {inp.shape} "
            f"(expected {(n, out_h, out_w, c)})")
    # TFLM fails at run time when a window lies wholly in the padding; refuse it here.
    for o, stride, pad, size, flt, axis in ((out_h, attrs.stride_h, pad_h, in_h, attrs.filter_h, "height"),
                                            (out_w, attrs.stride_w, pad_w, in_w, attrs.filter_w, "width")):
        for i in range(o):
            origin = i * stride - pad
            if min(flt, size - origin) <= max(0, -origin):
                raise UnsupportedModelError(
                    f"{where}: pooling window {i} along the {axis} lies entirely in the padding")
    return PoolGeometry(n, in_h, in_w, c, out_h, out_w, pad_h, pad_w)


def _pool_call(op: Op, graph: Graph, function: str) -> KernelCall:
    attrs: Pool2DAttrs = op.attrs
    where = _where(op)
    if len(op.inputs) != 1 or len(op.outputs) != 1:
        raise UnsupportedModelError(f"{where}: expected one input and one output")
    inp = _int8(op, graph.tensor(op.inputs[0]), "input")
    out = _int8(op, graph.tensor(op.outputs[0]), "output")
    # TFLM's PoolingPrepare: |scale_in - scale_out| <= 1e-6 (in double) and equal zero points.
    if abs(f32(inp.scale) - f32(out.scale)) > 1.0e-6 or inp.zero_point != out.zero_point:
        raise UnsupportedModelError(
            f"{where}: input and output quantization differ (scale {inp.scale} vs {out.scale}, "
            f"zero point {inp.zero_point} vs {out.zero_point}); TFLM requires them equal")
    g = pool_geometry(op, attrs, inp, out)
    try:
        act_min, act_max = activation_range(attrs.activation, out)
    except ValueError as e:
        raise UnsupportedModelError(f"{where}: {e}") from None

    fields = _ints(batches=g.batches, in_h=g.in_h, in_w=g.in_w, channels=g.channels,
                   out_h=g.out_h, out_w=g.out_w, stride_h=attrs.stride_h, stride_w=attrs.stride_w,
                   filter_h=attrs.filter_h, filter_w=attrs.filter_w, pad_h=g.pad_h, pad_w=g.pad_w,
                   act_min=act_min, act_max=act_max)
    # No scratch for either: the kernels sum or compare four channels at a time in registers.
    average = op.kind == OpKind.AVERAGE_POOL_2D
    return KernelCall(function, LIBRARY, "mcc_pool_params", fields,
                      (TensorArg(inp.id), TensorArg(out.id)),
                      paths=pool_paths(attrs.filter_h * attrs.filter_w) if average else frozenset())


@lowering(OpKind.AVERAGE_POOL_2D)
def lower_average_pool(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    return _pool_call(op, graph, "mcc_avgpool_s8")


@lowering(OpKind.MAX_POOL_2D)
def lower_max_pool(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    return _pool_call(op, graph, "mcc_maxpool_s8")


# --- MEAN -------------------------------------------------------------------

def resolve_axes(axes: np.ndarray, rank: int, where: str) -> tuple[int, ...]:
    """TFLite's ResolveAxis: negative axes count from the end, duplicates are dropped."""
    out: list[int] = []
    for a in np.asarray(axes).reshape(-1).tolist():
        a = int(a)
        r = a + rank if a < 0 else a
        if not 0 <= r < rank:
            raise UnsupportedModelError(f"{where}: axis {a} is out of range for a {rank}-D input")
        if r not in out:
            out.append(r)
    return tuple(out)


@dataclass(frozen=True)
class ReduceLoops:
    """The MEAN iteration: input dims (outer first) and, per dim, the stride of
    the output element it feeds (0 for a reduced dim). Adjacent dims of the
    same kind are merged and size-1 dims dropped, then the list is padded at
    the front with size-1 dims to exactly MEAN_DIMS."""
    shape: tuple[int, ...]
    out_stride: tuple[int, ...]
    count: int            # input elements summed into each output (n)
    outputs: int


def reduce_loops(in_shape: tuple[int, ...], axes: tuple[int, ...]) -> ReduceLoops:
    groups: list[list] = []   # [size, reduced]
    for d, size in enumerate(in_shape):
        if size == 1:
            continue
        reduced = d in axes
        if groups and groups[-1][1] == reduced:
            groups[-1][0] *= size
        else:
            groups.append([size, reduced])
    assert len(groups) <= MEAN_DIMS, "alternating groups never outnumber the dims"
    shape, stride = [], []
    step = 1
    for size, reduced in reversed(groups):
        shape.append(size)
        stride.append(0 if reduced else step)
        if not reduced:
            step *= size
    pad = MEAN_DIMS - len(shape)
    count = 1
    for size, reduced in groups:
        if reduced:
            count *= size
    return ReduceLoops(shape=(1,) * pad + tuple(reversed(shape)),
                       out_stride=(0,) * pad + tuple(reversed(stride)),
                       count=count, outputs=step)


def mean_multiplier(in_scale: float, out_scale: float, count: int) -> tuple[int, int]:
    """TFLM's (multiplier, shift) for a mean over `count` elements.

    QuantizeMultiplier(double(in_scale) / double(out_scale)), then, as in
    QuantizedMeanOrSum: shift = floor(log2(count)) clamped to 32 and to
    31 + shift, multiplier = (multiplier << shift) / count (truncating).
    """
    mult, shift = quantize_multiplier(f32(in_scale) / f32(out_scale))
    s = count.bit_length() - 1
    s = min(s, 32, 31 + shift)   # >= 0: quantize_multiplier keeps shift >= -31
    return (mult << s) // count, shift - s


@lowering(OpKind.MEAN)
def lower_mean(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    attrs: ReducerAttrs = op.attrs
    where = _where(op)
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        raise UnsupportedModelError(f"{where}: expected an input, an axes tensor and one output")
    inp = _int8(op, graph.tensor(op.inputs[0]), "input")
    out = _int8(op, graph.tensor(op.outputs[0]), "output")
    axes_t = graph.tensor(op.inputs[1])
    if not axes_t.is_const:
        raise UnsupportedModelError(f"{where}: the axes tensor {axes_t.name!r} must be constant")
    rank = len(inp.shape)
    if rank > MEAN_DIMS:
        raise UnsupportedModelError(f"{where}: {rank}-D input; MEAN supports up to {MEAN_DIMS}-D")
    axes = resolve_axes(axes_t.data, rank, where)

    kept = [s for d, s in enumerate(inp.shape) if d not in axes]
    expected = [1 if d in axes else s for d, s in enumerate(inp.shape)] if attrs.keep_dims else kept
    if int(np.prod(out.shape, dtype=np.int64)) != int(np.prod(expected, dtype=np.int64)):
        raise UnsupportedModelError(
            f"{where}: output shape {out.shape} does not match input {inp.shape} reduced over {axes}")
    loops = reduce_loops(inp.shape, axes)
    if loops.count == 0 or inp.num_elements == 0:
        raise UnsupportedModelError(f"{where}: empty input {inp.shape}")
    # The int32 sums (and TFLM's) cannot overflow below 2**23 summed values.
    if loops.count >= 2**23:
        raise UnsupportedModelError(f"{where}: averages {loops.count} values; at most 2**23 - 1 fit int32 sums")
    mult, shift = mean_multiplier(inp.scale, out.scale, loops.count)

    fields = _ints(outputs=loops.outputs, input_offset_n=-inp.zero_point * loops.count,
                   multiplier=mult, shift=shift, output_offset=out.zero_point)
    fields += (Field("shape", ArrayRef("shape")), Field("out_stride", ArrayRef("out_stride")))
    arrays = (ConstArray("shape", "int32_t", np.array(loops.shape, dtype=np.int32)),
              ConstArray("out_stride", "int32_t", np.array(loops.out_stride, dtype=np.int32)))
    # The kernel's longest sums: d[3] taps of kept channels, or a run of d[4]
    # bytes as four channels of d[4] / 4 taps (mcc_mean_s8's own check).
    d3, d4 = loops.shape[3], loops.shape[4]
    return KernelCall("mcc_mean_s8", LIBRARY, "mcc_mean_params", fields,
                      (TensorArg(inp.id), TensorArg(out.id), SCRATCH), arrays,
                      scratch_bytes=4 * loops.outputs, paths=pool_paths(max(d3, -(-d4 // 4))))
