"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (int8) onto templates/kernels/mcc_conv.{c,h}.

Everything that does not depend on the input is computed here, following TFLM
(tflite-micro conv_common.cc, depthwise_conv_common.cc,
fully_connected_common.cc, kernels/kernel_util.cc, kernels/padding.h):

* Padding: ComputePaddingHeightWidth. The output size follows from the
  padding type; top/left padding is floor(total / 2), the odd pixel goes
  bottom/right.
* Requantization multipliers:
    - CONV_2D, DEPTHWISE_CONV_2D, per-channel FULLY_CONNECTED:
      double(input_scale) * double(filter_scale[c]) / double(output_scale),
      per output channel (a per-tensor filter scale is broadcast).
    - per-tensor FULLY_CONNECTED (GetQuantizedConvolutionMultipler): the
      product input_scale * filter_scale is taken in float32 first, then
      divided by output_scale in double. This can differ from the per-channel
      formula in the last bit, so the two are kept apart.
* Zero points: TFLM's per-channel kernels ignore the filter zero point; the
  per-tensor FULLY_CONNECTED kernel applies it (and we refuse a nonzero one,
  which the int8 quantization spec forbids anyway).
* Bias is optional (input -1). It is folded with the input offset:
  folded_bias[c] = bias[c] + input_offset * sum(weights[c]); see mcc_conv.h for
  why this stays exact with padding.

Kernels. `choose()` is the one place that picks a kernel (the lowering and
`scratch_bytes()` both call it):

* mcc_gemm_s8: FULLY_CONNECTED and pointwise CONV_2D (1x1, stride 1, no
  padding) as int8 GEMM, four rows x two output channels per pass.
* mcc_conv2d_band_s8 (DSP targets): 3x3 CONV_2D at stride 1 or 2 on both axes,
  out_h >= 4, in_c a multiple of 4 (or padded to one at stride 1 with 16 or
  more filters, but for an RGB first layer's 3): bands of four output rows,
  each input column widened once and multiplied in place by the GEMM's tile.
* mcc_conv2d_im2col_s8: every other ungrouped CONV_2D, and a DEPTHWISE_CONV_2D
  over one input channel that the planar kernel does not take (patches of
  four pixels gathered into scratch, then the same GEMM).
* mcc_depthwise_conv2d_planar_3x3_s8 (3x3 filters) and
  mcc_depthwise_conv2d_planar_s8 (the others): DEPTHWISE_CONV_2D with filter
  width 3, 5 or 7, stride_w 1 or 2, no dilation (padded channel planes in
  scratch).
* mcc_depthwise_conv2d_pixel_s8: DEPTHWISE_CONV_2D with depth multiplier 1 and
  channels in fours, any filter up to 7x7, stride, dilation and padding, no
  scratch: output pixel by output pixel, four channels to a word. Chosen
  where the planar kernel's per-channel work does not pay (`pixel_pays`:
  small planes over many channels, most 3x3 layers at stride 2 on DSP cores),
  where the planar kernel does not apply (dilation, other filters, stride 3),
  and in place where every pixel reads ahead (kernels/inplace.py).
* mcc_depthwise_conv2d_1ch_s8: DEPTHWISE_CONV_2D over one input channel
  (filter_w <= 8, no dilation) with no scratch, taps read where they lie;
  chosen at the memory peak (`compact`), where the planar and im2col kernels'
  scratch would raise the arena, and on DSP cores for fours of 3x3 filters,
  whose assembly loop beats the planar kernel. Elsewhere those stay: their
  portable loops are faster than its own.
* the general kernels (`reference_call`) for the rest: grouped convolutions,
  depthwise layers no fast kernel takes (channels not in fours with a filter
  or stride the planar kernel does not take), and layers whose requantization
  the fast kernels' shorter form cannot reproduce exactly (a real multiplier
  >= 0.5, or accumulators that could reach 2^30; see `fast_channel_table`).

Weights are re-arranged here into the order the inner loops read them
(`gemm_weights`, `band_weights`, `planar_weights`, `one_channel_weights`,
`pixel_weights`). The DSP/portable split is the C compiler's: each fast kernel
has SMLAD inner loops under __ARM_FEATURE_DSP and portable ones over the same
layouts, so a model built for one target runs bit for bit on any (the host's
`verify` included). The band, one-channel and pixel kernels are chosen by
target (`choose`): without SMLAD im2col and the planar kernel are faster.

Flash for speed (`widen`, after the plan is chosen): the GEMM's and band's
4x2 tiles also read int16 weights (`wide_weights`, twice the bytes), which
spares them two SXTB16 per weight word: 0.125 instructions per MAC on DSP
cores. The pipeline gives them to the layers with the most MACs per weight
byte within `--flash-slack` (pipeline._flash_for_speed); none by default.
"""
from __future__ import annotations

import enum
import functools
import math
import weakref
from dataclasses import dataclass, replace

import numpy as np

from ..errors import UnsupportedModelError
from ..ir import (Activation, Conv2DAttrs, DepthwiseConv2DAttrs, DType, ExplicitPadding, Graph, Op,
                  OpKind, Padding, Tensor)
from ..quant import activation_range, f32, quantize_multiplier
from . import (SCRATCH, ArrayRef, ConstArray, Field, KernelCall, KernelTarget, TensorArg,
               compact_lowering, lowering)
from .elementwise import ADD_TABLE_MIN_ELEMENTS, residual_tables

LIBRARY = "mcc_conv"
INT32_MIN, INT32_MAX = -2**31, 2**31 - 1


# --- padding ----------------------------------------------------------------

def _c_div(a: int, b: int) -> int:
    """C's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def out_size(padding: Padding, in_size: int, filter_size: int, stride: int, dilation: int) -> int:
    """TFLite's ComputeOutSize (TensorFlow's GetWindowedOutputSize)."""
    effective = (filter_size - 1) * dilation + 1
    if padding == Padding.SAME:
        return _c_div(in_size + stride - 1, stride)
    return _c_div(in_size + stride - effective, stride)


def pad_before(in_size: int, filter_size: int, stride: int, dilation: int, out: int) -> int:
    """Top (or left) padding: TFLite's ComputePaddingWithOffset without the odd pixel."""
    effective = (filter_size - 1) * dilation + 1
    total = max(0, (out - 1) * stride + effective - in_size)
    return total // 2


def axis_window(padding: Padding | ExplicitPadding, axis: str, in_size: int, filter_size: int,
                stride: int, dilation: int, out_tensor: int) -> tuple[int, int]:
    """(output size, padding before) along one axis ("h" or "w").

    For TFLite's SAME and VALID the output size follows from the padding. A
    patch (patch-based inference) carries explicit top/left padding and takes
    its output size from its tensor; every window must still touch the input."""
    if isinstance(padding, ExplicitPadding):
        pad = padding.top if axis == "h" else padding.left
        effective = (filter_size - 1) * dilation + 1
        if pad < 0 or effective - pad <= 0 or (out_tensor - 1) * stride - pad >= in_size:
            return -1, pad  # reported by the caller as a shape mismatch
        return out_tensor, pad
    out = out_size(padding, in_size, filter_size, stride, dilation)
    return out, pad_before(in_size, filter_size, stride, dilation, out)


def padding_name(padding: Padding | ExplicitPadding) -> str:
    if isinstance(padding, ExplicitPadding):
        return f"explicit (top {padding.top}, left {padding.left})"
    return padding.value


@dataclass(frozen=True)
class Window:
    """Geometry of a 2-D sliding window over an NHWC input."""
    batches: int
    in_h: int
    in_w: int
    in_c: int
    out_h: int
    out_w: int
    out_c: int
    filter_h: int
    filter_w: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    pad_h: int
    pad_w: int


def window(op: Op, attrs: Conv2DAttrs | DepthwiseConv2DAttrs, inp: Tensor, filt: Tensor,
           out: Tensor) -> Window:
    """The window of a (depthwise) convolution, checked against the output tensor's shape."""
    where = f"op {op.index} ({op.kind.value})"
    if len(inp.shape) != 4 or len(filt.shape) != 4 or len(out.shape) != 4:
        raise UnsupportedModelError(f"{where}: expected 4-D input, filter and output, got "
                                    f"{inp.shape}, {filt.shape}, {out.shape}")
    n, in_h, in_w, in_c = inp.shape
    filter_h, filter_w = filt.shape[1], filt.shape[2]
    if min(attrs.stride_h, attrs.stride_w, attrs.dilation_h, attrs.dilation_w) < 1:
        raise UnsupportedModelError(f"{where}: strides and dilations must be >= 1")
    out_h, pad_h = axis_window(attrs.padding, "h", in_h, filter_h, attrs.stride_h, attrs.dilation_h,
                               out.shape[1])
    out_w, pad_w = axis_window(attrs.padding, "w", in_w, filter_w, attrs.stride_w, attrs.dilation_w,
                               out.shape[2])
    if (n, out_h, out_w) != out.shape[:3] or out_h < 1 or out_w < 1:
        raise UnsupportedModelError(
            f"{where}: output shape {out.shape} does not match the {padding_name(attrs.padding)} window "
            f"over input {inp.shape} (expected {n}x{out_h}x{out_w})")
    return Window(
        batches=n, in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out.shape[3],
        filter_h=filter_h, filter_w=filter_w, stride_h=attrs.stride_h, stride_w=attrs.stride_w,
        dilation_h=attrs.dilation_h, dilation_w=attrs.dilation_w, pad_h=pad_h, pad_w=pad_w)


# --- quantization -----------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def per_channel_multipliers(input_scale: float, filter_scales: tuple[float, ...],
                            output_scale: float, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(multiplier, shift) int32 arrays, TFLite's PopulateConvolutionQuantizationParams.

    Scales are float32 in the model; the products are taken in double.
    A single (per-tensor) filter scale is broadcast to every channel.
    Cached, read-only: a patch plan lowers the same layer once per patch and
    per trial plan.
    """
    if len(filter_scales) not in (1, channels):
        raise ValueError(f"{len(filter_scales)} filter scales for {channels} channels")
    mult = np.empty(channels, dtype=np.int32)
    shift = np.empty(channels, dtype=np.int32)
    for c in range(channels):
        fs = filter_scales[c if len(filter_scales) > 1 else 0]
        real = f32(input_scale) * f32(fs) / f32(output_scale)
        mult[c], shift[c] = quantize_multiplier(real)
    mult.setflags(write=False)
    shift.setflags(write=False)
    return mult, shift


def per_tensor_multiplier(input_scale: float, filter_scale: float,
                          output_scale: float) -> tuple[int, int]:
    """TFLite's GetQuantizedConvolutionMultipler: float32 product, double quotient."""
    product = f32(np.float32(input_scale) * np.float32(filter_scale))
    return quantize_multiplier(product / f32(output_scale))


def folded_bias(bias: np.ndarray | None, weights: np.ndarray, input_offset: int,
                where: str) -> np.ndarray:
    """bias[c] + input_offset * sum(weights[c]) as int32 (weights: [out_c, ...])."""
    w = weights.reshape(weights.shape[0], -1).astype(np.int64)
    acc = input_offset * w.sum(axis=1)
    if bias is not None:
        acc = acc + bias.astype(np.int64).reshape(-1)
    if acc.min(initial=0) < INT32_MIN or acc.max(initial=0) > INT32_MAX:
        raise UnsupportedModelError(f"{where}: bias plus input offset overflows int32")
    return acc.astype(np.int32)


# --- checks shared by the three ops -----------------------------------------

@dataclass(frozen=True)
class _Operands:
    input: Tensor
    weights: Tensor
    bias: np.ndarray | None
    output: Tensor
    where: str


def _operands(op: Op, graph: Graph) -> _Operands:
    where = f"op {op.index} ({op.kind.value})"
    if len(op.inputs) < 2 or len(op.outputs) != 1:
        raise UnsupportedModelError(f"{where}: expected input, weights, optional bias and one output")
    inp, wts, out = graph.tensor(op.inputs[0]), graph.tensor(op.inputs[1]), graph.tensor(op.outputs[0])
    residual = getattr(op.attrs, "residual", None)
    if residual is not None:    # the convolution's own result: the output's shape, its quantization
        out = replace(out, quant=residual.conv_output)
    bias_id = op.inputs[2] if len(op.inputs) > 2 else -1
    for t, role in ((inp, "input"), (wts, "weights"), (out, "output")):
        if t.dtype != DType.INT8:
            raise UnsupportedModelError(
                f"{where}: {role} {t.name!r} is {t.dtype.value}; only int8 is supported")
        if t.quant is None:
            raise UnsupportedModelError(f"{where}: {role} {t.name!r} is not quantized")
    if not wts.is_const:
        raise UnsupportedModelError(f"{where}: weights {wts.name!r} are not a constant tensor")
    bias = None
    if bias_id >= 0:
        b = graph.tensor(bias_id)
        if b.dtype != DType.INT32 or not b.is_const:
            raise UnsupportedModelError(
                f"{where}: bias {b.name!r} must be a constant int32 tensor, is "
                f"{'a constant ' if b.is_const else 'a non-constant '}{b.dtype.value}")
        bias = np.asarray(b.data, dtype=np.int64).reshape(-1)
    return _Operands(inp, wts, bias, out, where)


def _act_range(op: Op, out: Tensor, where: str) -> tuple[int, int]:
    try:
        return activation_range(op.attrs.activation, out)
    except ValueError as e:
        raise UnsupportedModelError(f"{where}: {e}") from None


def _requant_fields(mult_arr: np.ndarray, shift_arr: np.ndarray, fold: np.ndarray,
                    weights: np.ndarray) -> tuple[tuple[Field, ...], tuple[ConstArray, ...]]:
    fields = (Field("weights", ArrayRef("weights")),
              Field("folded_bias", ArrayRef("bias")),
              Field("multiplier", ArrayRef("mult")),
              Field("shift", ArrayRef("shift")))
    arrays = (ConstArray("weights", "int8_t", np.ascontiguousarray(weights, dtype=np.int8).reshape(-1)),
              ConstArray("bias", "int32_t", fold.astype(np.int32)),
              ConstArray("mult", "int32_t", mult_arr.astype(np.int32)),
              ConstArray("shift", "int32_t", shift_arr.astype(np.int32)))
    return fields, arrays


def _ints(**values: int) -> tuple[Field, ...]:
    return tuple(Field(k, int(v)) for k, v in values.items())


def _args(op: Op, scratch: int) -> tuple:
    args = (TensorArg(op.inputs[0]), TensorArg(op.outputs[0]))
    return args + (SCRATCH,) if scratch else args


# --- everything a lowering needs, computed once ------------------------------

@dataclass(frozen=True, eq=False)
class _Layer:
    """One validated op with its compile-time arithmetic, before any kernel is chosen."""
    kind: OpKind
    where: str
    win: Window | None          # None for FULLY_CONNECTED
    weights: np.ndarray         # CONV [O,H,W,I]; DEPTHWISE [C*M,H,W]; FC [O,depth]
    bias: np.ndarray | None     # the model's int32 bias, int64 here
    fold: np.ndarray            # int32 [out_c]: bias + input_offset * sum(weights)
    mult: np.ndarray            # int32 [out_c], or [1] for a per-tensor FULLY_CONNECTED
    shift: np.ndarray
    input_offset: int
    output_offset: int
    act_min: int
    act_max: int
    macs: int
    groups: int = 1             # CONV_2D
    depth_multiplier: int = 1   # DEPTHWISE_CONV_2D
    rows: int = 0               # FULLY_CONNECTED
    per_channel: bool = True    # FULLY_CONNECTED

    @property
    def out_c(self) -> int:
        return int(self.weights.shape[0])

    def rows_by_depth(self) -> np.ndarray:
        """The weights as [out_c, depth]: each output channel's dot-product operand."""
        return self.weights.reshape(self.out_c, -1)


def _prepare_conv2d(op: Op, graph: Graph) -> _Layer:
    o = _operands(op, graph)
    attrs: Conv2DAttrs = op.attrs
    win = window(op, attrs, o.input, o.weights, o.output)
    out_c, _, _, filter_c = o.weights.shape
    if win.out_c != out_c or filter_c < 1 or win.in_c % filter_c:
        raise UnsupportedModelError(
            f"{o.where}: filter {o.weights.shape} does not fit input {o.input.shape} "
            f"and output {o.output.shape}")
    groups = win.in_c // filter_c
    if out_c % groups:
        raise UnsupportedModelError(f"{o.where}: {out_c} output channels do not split "
                                    f"into {groups} groups")
    if o.bias is not None and o.bias.size != out_c:
        raise UnsupportedModelError(f"{o.where}: bias has {o.bias.size} values for {out_c} channels")
    input_offset = -o.input.zero_point
    mult, shift = per_channel_multipliers(o.input.scale, o.weights.quant.scale,
                                          o.output.scale, out_c)
    act_min, act_max = _act_range(op, o.output, o.where)
    macs = (win.batches * win.out_h * win.out_w * out_c
            * win.filter_h * win.filter_w * filter_c)
    return _Layer(op.kind, o.where, win, o.weights.data, o.bias,
                  folded_bias(o.bias, o.weights.data, input_offset, o.where), mult, shift,
                  input_offset, o.output.zero_point, act_min, act_max, macs, groups=groups)


def _prepare_depthwise(op: Op, graph: Graph) -> _Layer:
    o = _operands(op, graph)
    attrs: DepthwiseConv2DAttrs = op.attrs
    win = window(op, attrs, o.input, o.weights, o.output)
    out_c = o.weights.shape[3]
    if o.weights.shape[0] != 1 or win.out_c != out_c or out_c % win.in_c:
        raise UnsupportedModelError(
            f"{o.where}: filter {o.weights.shape} does not fit input {o.input.shape} "
            f"and output {o.output.shape}")
    # TFLM's kernel trusts the option; a model where it disagrees with the
    # shapes would make TFLM read out of bounds, so we refuse it.
    depth_multiplier = out_c // win.in_c
    if attrs.depth_multiplier != depth_multiplier:
        raise UnsupportedModelError(
            f"{o.where}: depth_multiplier option {attrs.depth_multiplier} disagrees with the "
            f"shapes ({win.in_c} -> {out_c} channels)")
    if o.bias is not None and o.bias.size != out_c:
        raise UnsupportedModelError(f"{o.where}: bias has {o.bias.size} values for {out_c} channels")
    input_offset = -o.input.zero_point
    mult, shift = per_channel_multipliers(o.input.scale, o.weights.quant.scale,
                                          o.output.scale, out_c)
    # [1, H, W, C] -> [C, H, W]: each channel's taps contiguous.
    weights = np.transpose(o.weights.data[0], (2, 0, 1))
    act_min, act_max = _act_range(op, o.output, o.where)
    macs = win.batches * win.out_h * win.out_w * out_c * win.filter_h * win.filter_w
    return _Layer(op.kind, o.where, win, weights, o.bias,
                  folded_bias(o.bias, weights, input_offset, o.where), mult, shift,
                  input_offset, o.output.zero_point, act_min, act_max, macs,
                  depth_multiplier=depth_multiplier)


def _prepare_fully_connected(op: Op, graph: Graph) -> _Layer:
    o = _operands(op, graph)
    # keep_num_dims only changes the output's shape, which the tensor already has.
    if len(o.weights.shape) != 2:
        raise UnsupportedModelError(f"{o.where}: weights must be 2-D, got {o.weights.shape}")
    out_c, depth = o.weights.shape
    # TFLM: the output's last dimension is the channel count, everything
    # before it is batch; the input is read as [batches, depth].
    out_depth = o.output.shape[-1] if o.output.shape else 1
    rows = o.output.num_elements // out_depth if out_depth else 0
    if out_depth != out_c or o.input.num_elements != rows * depth:
        raise UnsupportedModelError(
            f"{o.where}: input {o.input.shape}, weights {o.weights.shape} and output "
            f"{o.output.shape} do not form a [batches, {depth}] x [{depth}, {out_c}] product")
    if o.bias is not None and o.bias.size != out_c:
        raise UnsupportedModelError(f"{o.where}: bias has {o.bias.size} values for {out_c} channels")
    wq = o.weights.quant
    if wq.per_channel:
        if len(wq.scale) != out_c or wq.axis != 0:
            raise UnsupportedModelError(f"{o.where}: per-channel weights must have one scale "
                                        f"per output channel (axis 0)")
        mult, shift = per_channel_multipliers(o.input.scale, wq.scale, o.output.scale, out_c)
    else:
        if any(z != 0 for z in wq.zero_point):
            raise UnsupportedModelError(
                f"{o.where}: weights have zero point {wq.zero_point[0]}; int8 weights must be "
                "symmetric (zero point 0)")
        m, s = per_tensor_multiplier(o.input.scale, wq.scale[0], o.output.scale)
        mult, shift = np.array([m], dtype=np.int32), np.array([s], dtype=np.int32)
    act_min, act_max = _act_range(op, o.output, o.where)
    return _Layer(op.kind, o.where, None, o.weights.data, o.bias,
                  folded_bias(o.bias, o.weights.data, -o.input.zero_point, o.where), mult, shift,
                  -o.input.zero_point, o.output.zero_point, act_min, act_max, rows * out_c * depth,
                  rows=rows, per_channel=bool(wq.per_channel))


_PREPARE = {OpKind.CONV_2D: _prepare_conv2d, OpKind.DEPTHWISE_CONV_2D: _prepare_depthwise,
            OpKind.FULLY_CONNECTED: _prepare_fully_connected}


# Per graph (frozen, so a layer cannot go stale): the patch search and the
# trial plans lower each op of a graph many times.
_PREPARED: weakref.WeakKeyDictionary[Graph, dict[Op, _Layer]] = weakref.WeakKeyDictionary()


def _prepare(op: Op, graph: Graph) -> _Layer:
    layers = _PREPARED.setdefault(graph, {})
    layer = layers.get(op)
    if layer is None:
        layer = layers[op] = _PREPARE[op.kind](op, graph)
        layer.fold.setflags(write=False)    # shared by every lowering of the op
    return layer


# --- the general kernels -------------------------------------------------------

def _reference(layer: _Layer, op: Op) -> KernelCall:
    """The general kernel (mcc_conv2d_s8, mcc_depthwise_conv2d_s8,
    mcc_fully_connected_s8, mcc_conv2d_1x1_s8): any shape, TFLite's layouts, no scratch."""
    array_fields, arrays = _requant_fields(layer.mult, layer.shift, layer.fold, layer.weights)
    common = _ints(output_offset=layer.output_offset, act_min=layer.act_min, act_max=layer.act_max)
    args = _args(op, 0)
    if layer.kind == OpKind.FULLY_CONNECTED:
        depth = layer.weights.shape[1]
        fields = _ints(rows=layer.rows, depth=depth, out_c=layer.out_c,
                       per_channel=int(layer.per_channel)) + common + array_fields
        return KernelCall("mcc_fully_connected_s8", LIBRARY, "mcc_fully_connected_params", fields,
                          args, arrays, 0, layer.macs)
    win = layer.win
    if layer.kind == OpKind.DEPTHWISE_CONV_2D:
        fields = _ints(batches=win.batches, in_h=win.in_h, in_w=win.in_w, in_c=win.in_c,
                       out_h=win.out_h, out_w=win.out_w, out_c=layer.out_c,
                       filter_h=win.filter_h, filter_w=win.filter_w,
                       depth_multiplier=layer.depth_multiplier,
                       stride_h=win.stride_h, stride_w=win.stride_w,
                       dilation_h=win.dilation_h, dilation_w=win.dilation_w,
                       pad_h=win.pad_h, pad_w=win.pad_w,
                       input_offset=layer.input_offset) + common + array_fields
        return KernelCall("mcc_depthwise_conv2d_s8", LIBRARY, "mcc_depthwise_conv2d_params", fields,
                          args, arrays, 0, layer.macs)
    if _is_pointwise(layer):
        fields = _ints(rows=win.batches * win.in_h * win.in_w, depth=win.in_c, out_c=layer.out_c,
                       per_channel=1) + common + array_fields
        return KernelCall("mcc_conv2d_1x1_s8", LIBRARY, "mcc_fully_connected_params", fields,
                          args, arrays, 0, layer.macs)
    fields = _ints(batches=win.batches, in_h=win.in_h, in_w=win.in_w, in_c=win.in_c,
                   out_h=win.out_h, out_w=win.out_w, out_c=layer.out_c,
                   filter_h=win.filter_h, filter_w=win.filter_w,
                   filter_c=layer.weights.shape[3],
                   stride_h=win.stride_h, stride_w=win.stride_w,
                   dilation_h=win.dilation_h, dilation_w=win.dilation_w,
                   pad_h=win.pad_h, pad_w=win.pad_w,
                   input_offset=layer.input_offset) + common + array_fields
    return KernelCall("mcc_conv2d_s8", LIBRARY, "mcc_conv2d_params", fields, args, arrays, 0,
                      layer.macs)


def _is_pointwise(layer: _Layer) -> bool:
    """A CONV_2D that reads each pixel once: 1x1 filter, stride 1, no padding, no groups,
    i.e. a fully connected layer over N*H*W rows."""
    w = layer.win
    return (layer.kind == OpKind.CONV_2D and layer.groups == 1
            and w.filter_h == w.filter_w == 1 and w.stride_h == w.stride_w == 1
            and w.pad_h == w.pad_w == 0)


def reference_call(op: Op, graph: Graph, target: KernelTarget = KernelTarget()) -> KernelCall:
    """The general kernel's call for a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED
    op, with TFLite's weight layouts and the (multiplier, shift) arrays documented
    in mcc_conv.h, whatever `choose` picks. For code that builds on those
    constants (the in-place kernels)."""
    del target
    return _reference(_prepare(op, graph), op)


# --- the fast kernels: which one, and its scratch -------------------------------

class Variant(enum.Enum):
    GEMM = "mcc_gemm_s8"                              # FULLY_CONNECTED, pointwise CONV_2D
    BAND = "mcc_conv2d_band_s8"                       # CONV_2D 3x3, stride 1 or 2 (DSP targets)
    IM2COL = "mcc_conv2d_im2col_s8"                   # other CONV_2D; DEPTHWISE with in_c 1
    PLANAR = "mcc_depthwise_conv2d_planar_s8"         # DEPTHWISE 5/7 wide (or 3 wide, not 3 high)
    PLANAR_3X3 = "mcc_depthwise_conv2d_planar_3x3_s8"  # DEPTHWISE 3x3; both: stride_w 1 or 2
    ONE_CHANNEL = "mcc_depthwise_conv2d_1ch_s8"       # DEPTHWISE with in_c 1, no scratch
    PIXEL = "mcc_depthwise_conv2d_pixel_s8"           # DEPTHWISE, multiplier 1, channels in fours
    GENERAL = "general"                               # the general kernels (reference_call)


# The int16 block of four rows is at most this big (a depth of 1024); deeper
# layers read rows one by one instead, with no scratch.
BLOCK_SCRATCH_MAX = 32 * 1024
# The int8 patch of an im2col row is at most this long; longer patches (a 3x3
# filter over more than ~450 channels) would need too much scratch.
IM2COL_MAX_PATCH = 4096
# MCC_IM2COL_STACK_PATCH (mcc_conv.h): the scratch-free im2col keeps two
# patches of at most this many bytes on the stack.
IM2COL_STACK_PATCH = 576
# MCC_IM2COL_STACK_BLOCK: its blocks of four patches on the stack, when they fit.
IM2COL_STACK_BLOCK = 2 * IM2COL_STACK_PATCH
# MCC_GEMM_STACK_BLOCK (mcc_conv.h): the scratch-free GEMM keeps its int16
# block of four rows on the stack when it is at most this big (depth <= 64).
GEMM_STACK_BLOCK = 512
# MCC_GEMM_INPLACE_STACK_BLOCK: the in-place GEMM's block and leftover outputs.
GEMM_INPLACE_STACK_BLOCK = 1152
# MCC_GEMM_RESIDUAL_STACK_BLOCK: the block of a GEMM with a fused residual ADD,
# which runs where the in-place GEMM would (MobileNetV2's projections at the peak).
GEMM_RESIDUAL_STACK_BLOCK = GEMM_INPLACE_STACK_BLOCK
# mcc_conv2d_band_s8: as many widened input columns in scratch as fit in this
# many bytes, at least 3; MCC_BAND_STACK_BYTES (mcc_conv.h): at the memory peak,
# at least 3 on the stack in this many.
BAND_BUDGET = 4096
BAND_STACK = 1152
# Channel planes in scratch per depthwise pass: as many as fit in this many
# bytes, at least one. One plane may not exceed PLANAR_MAX_PLANE.
PLANAR_BUDGET = 2048
PLANAR_MAX_PLANE = 32 * 1024
# MCC_PLANAR_STACK_PLANE (mcc_conv.h): the scratch-free planar kernel (group 0)
# keeps planes of at most this many bytes in all on the stack (planar_group).
PLANAR_STACK_PLANE = 1152
# MCC_PLANAR_MAX_FILTER_H (mcc_conv.h): mcc_depthwise_conv2d_planar_s8's filter
# rows, split into int16 pairs on the stack (a 3x3 filter takes any height).
PLANAR_MAX_FILTER_H = 8
# mcc_depthwise_conv2d_1ch_s8: filter rows of at most two words, and a border
# pixel's window (filter_h rows of 4 or 8 bytes) in a stack buffer of
# MCC_DW1CH_MAX_WINDOW bytes (mcc_conv.h).
ONE_CHANNEL_MAX_FILTER_W = 8
ONE_CHANNEL_MAX_WINDOW = 128
# mcc_depthwise_conv2d_pixel_s8's tap offsets (MCC_DW_PIXEL_MAX_TAPS): up to 7x7.
PIXEL_MAX_TAPS = 49


@dataclass(frozen=True)
class Choice:
    """The kernel for one layer and everything its scratch size depends on."""
    variant: Variant
    scratch_bytes: int
    why: str                    # for GENERAL: what rules the fast kernels out
    row_block: int = 1          # GEMM, IM2COL: 4 (int16 blocks in scratch), 2 (on the stack) or 1
    group: int = 0              # PLANAR: channel planes per pass
    plane_h: int = 0
    plane_w: int = 0
    columns: int = 0            # BAND: widened input columns in the buffer
    on_stack: bool = False      # BAND: that buffer on the stack, no scratch


def _groups(depth: int) -> int:
    return (depth + 3) // 4


def gemm_scratch_bytes(rows: int, depth: int, row_block: int) -> int:
    """Mirror of mcc_gemm_s8_scratch_bytes (row_block 2: the block on the stack)."""
    return 32 * _groups(depth) if row_block == 4 and rows >= 4 else 0


def _compact_row_block(rows: int, depth: int) -> int:
    """At the memory peak: the int16 block on the stack where it is small enough
    (MCC_GEMM_STACK_BLOCK), else rows read where they lie."""
    return 2 if rows >= 4 and 32 * _groups(depth) <= GEMM_STACK_BLOCK else 1


def im2col_scratch_bytes(pixels: int, patch: int, row_block: int, in_c: int) -> int:
    """Mirror of mcc_conv2d_im2col_s8_scratch_bytes: with in_c a multiple of 4,
    patches are widened straight into the block, with no int8 copy."""
    if row_block == 2:
        return 0
    if row_block != 4 or pixels < 4:
        return 4 * _groups(patch)
    return (32 if in_c % 4 == 0 else 48) * _groups(patch)


def im2col_paths(pixels: int, patch: int, row_block: int, in_c: int,
                 rgb: bool = False) -> frozenset[str]:
    """Mirror of mcc_conv2d_im2col_s8's dispatch: the optional paths (kernels.OPTIONAL_PATHS)
    it takes. Patches are widened straight into int16 blocks when in_c is a multiple of 4,
    else gathered as int8 first; at row_block 2 blocks too big for the stack take pairs.
    `rgb` (is_rgb3x3): the int8 way's blocks of four pixels take IM2COL_RGB too."""
    direct = in_c % 4 == 0
    if row_block == 2:
        if (32 if direct else 48) * _groups(patch) > IM2COL_STACK_BLOCK:
            return frozenset({"IM2COL_STACK_PAIRS"})
        way = "IM2COL_WIDENED" if direct else "IM2COL_PATCHES"
    else:
        way = "IM2COL_WIDENED" if row_block == 4 and pixels >= 4 and direct else "IM2COL_PATCHES"
    blocks = row_block in (2, 4) and pixels >= 4
    return frozenset({way, "IM2COL_RGB"} if way == "IM2COL_PATCHES" and blocks and rgb else {way})


def is_rgb3x3(in_c: int, filter_h: int, filter_w: int, dilation_w: int) -> bool:
    """An RGB first layer, in mcc_conv.c's rgb3x3 sense: 3 channels under a 3x3 filter,
    undilated along x."""
    return (in_c, filter_h, filter_w, dilation_w) == (3, 3, 3, 1)


def band_column_bytes(in_c: int, stride: int) -> int:
    """One widened column of mcc_conv2d_band_s8: in_c int16 values, up to whole
    groups of four, for each of its 6 (stride 1) or 9 (stride 2) rows."""
    return 8 * _groups(in_c) * (6 if stride == 1 else 9)


def band_scratch_bytes(columns: int, in_c: int, stride: int, on_stack: bool) -> int:
    """Mirror of mcc_conv2d_band_s8_scratch_bytes."""
    return 0 if on_stack else columns * band_column_bytes(in_c, stride)


def planar_group(in_c: int, plane: int, budget: int) -> int:
    """Channel planes per pass: as many as fit in `budget` bytes, at least one,
    and whole fours when there are four (fill_planes transposes four channels
    at a time and copies any others byte by byte). Mirror of planar_on_stack's
    in C for the stack form."""
    group = max(1, min(in_c, budget // plane))
    return group - group % 4 if group >= 4 else group


def planar_stack_fits(plane_h: int, plane_w: int, filter_h: int) -> bool:
    """Whether planar_on_stack takes the layer: its planes fit the stack
    buffer, or strips of output rows do (filter_h rows of one plane at least)."""
    return plane_h * plane_w <= PLANAR_STACK_PLANE or filter_h * plane_w <= PLANAR_STACK_PLANE


def planar_scratch_bytes(group: int, plane_h: int, plane_w: int) -> int:
    """Mirror of mcc_depthwise_conv2d_planar_s8_scratch_bytes."""
    return group * plane_h * plane_w


def one_channel_scratch_bytes() -> int:
    """Mirror of mcc_depthwise_conv2d_1ch_s8_scratch_bytes: taps are read in place."""
    return 0


def _row_block(rows: int, depth: int) -> int:
    return 4 if rows >= 4 and 32 * _groups(depth) <= BLOCK_SCRATCH_MAX else 1


def _planar_row_bytes(win: Window) -> int:
    return 4 if win.filter_h == win.filter_w == 3 else 8


def fast_channel_table(layer: _Layer) -> tuple[np.ndarray | None, str]:
    """The fast kernels' [out_c, 4] int32 table (folded bias, multiplier, hi_base,
    post; see "Fast requantization" in mcc_conv.h), or None and why not.

    It needs every channel's TFLite shift to be negative (post >= 1) and no
    int32 overflow for any int8 input: |acc| < 2^30 (acc is doubled), the
    running sums below 2^30 (some kernels accumulate 2 * acc directly, with
    doubled weights), and |hi_base| < 2^30.

    Cached per layer, read-only.
    """
    cached = _FAST_TABLES.get(layer)
    if cached is None:
        cached = _FAST_TABLES[layer] = _fast_channel_table(layer)
        if cached[0] is not None:
            cached[0].setflags(write=False)
    return cached


_FAST_TABLES: weakref.WeakKeyDictionary[_Layer, tuple[np.ndarray | None, str]] = \
    weakref.WeakKeyDictionary()


def _fast_channel_table(layer: _Layer) -> tuple[np.ndarray | None, str]:
    """fast_channel_table, computed."""
    out_c = layer.out_c
    mult = np.broadcast_to(layer.mult.astype(np.int64), (out_c,))
    shift = np.broadcast_to(layer.shift.astype(np.int64), (out_c,))
    post = np.where(mult == 0, 1, -shift)   # a zero multiplier gives 0 for any post >= 1
    if post.min() < 1:
        return None, "a channel's requantization shift is not negative (multiplier >= 0.5)"
    if post.max() > 31:
        return None, "a channel's requantization shift is below -31"
    abs_w = np.abs(layer.rows_by_depth().astype(np.int64)).sum(axis=1)
    bias = np.zeros(out_c, np.int64) if layer.bias is None else layer.bias.astype(np.int64)
    widest = max(abs(-128 + layer.input_offset), abs(127 + layer.input_offset))
    acc_bound = np.abs(bias) + abs_w * widest
    running = np.abs(layer.fold.astype(np.int64)) + abs_w * 128
    if acc_bound.max() >= 2**30 or running.max() >= 2**30:
        return None, "the accumulator may reach 2^30"
    hib = (1 << (post - 1)) + layer.output_offset * (1 << post)
    if np.abs(hib).max() + 1 >= 2**30:
        return None, "the output offset shifted by the requantization shift reaches 2^30"
    table = np.stack([layer.fold.astype(np.int64), mult, hib, post], axis=1)
    return table.astype(np.int32), ""


def _choose(layer: _Layer, compact: bool = False, dsp: bool = False) -> Choice:
    """`compact` asks for no scratch at all (a layer at the memory peak): the GEMM
    then reads rows one by one, a depthwise layer over one channel takes
    ONE_CHANNEL, and the other kernels that need scratch give way to GENERAL.
    `dsp`: the target has SMLAD (BAND pays off only with it)."""
    table, why = fast_channel_table(layer)
    if table is None:
        return Choice(Variant.GENERAL, 0, why)
    if layer.kind == OpKind.FULLY_CONNECTED:
        depth = layer.weights.shape[1]
        rb = _compact_row_block(layer.rows, depth) if compact else _row_block(layer.rows, depth)
        return Choice(Variant.GEMM, gemm_scratch_bytes(layer.rows, depth, rb), "", row_block=rb)
    win = layer.win
    pixels = win.batches * win.out_h * win.out_w
    if _is_pointwise(layer):
        rb = _compact_row_block(pixels, win.in_c) if compact else _row_block(pixels, win.in_c)
        return Choice(Variant.GEMM, gemm_scratch_bytes(pixels, win.in_c, rb), "", row_block=rb)
    one_channel = _one_channel(layer)
    if compact:
        if one_channel.variant == Variant.ONE_CHANNEL:
            return one_channel
        stack = (_band(layer, on_stack=True) if dsp else None) or _stack_im2col(layer)
        if stack is not None:
            return stack
        if layer.kind == OpKind.DEPTHWISE_CONV_2D:
            planar = _planar(layer)
            pixel = _pixel(layer)
            if pixel is not None and pixel_pays(win, planar, dsp):
                return pixel
            if planar.variant != Variant.GENERAL and planar_stack_fits(planar.plane_h, planar.plane_w,
                                                                       win.filter_h):
                return _on_stack(planar)
            if pixel is not None:
                return pixel
        return Choice(Variant.GENERAL, 0, "no scratch allowed at the memory peak")
    planar = _planar(layer) if layer.kind == OpKind.DEPTHWISE_CONV_2D else None
    pixel = _pixel(layer)
    if pixel is not None and pixel_pays(win, planar, dsp):
        return pixel
    # One input channel, 3x3 filters in fours on DSP cores: the one-channel
    # kernel's assembly beats the planar kernel even with its scratch
    # (person_detect's first layer in patches: 22.2 instructions per output
    # against 29.4). Its portable loop does not (46.3 against 34.1 on the M3,
    # layer by layer).
    if dsp and one_channel.variant == Variant.ONE_CHANNEL and _one_channel_unrolled(layer):
        return one_channel
    if planar is not None and planar.variant in (Variant.PLANAR, Variant.PLANAR_3X3):
        return planar
    # A depthwise layer over one input channel is a convolution with
    # out_c = depth_multiplier filters of one channel each: im2col when the
    # planar kernel does not take it (micro_speech's 10x8 filter).
    if layer.kind == OpKind.CONV_2D or win.in_c == 1:
        if layer.kind == OpKind.CONV_2D and layer.groups != 1:
            return Choice(Variant.GENERAL, 0, "grouped convolution")
        band = _band(layer, on_stack=False) if dsp else None
        if band is not None:
            return band
        patch = win.filter_h * win.filter_w * (win.in_c if layer.kind == OpKind.CONV_2D else 1)
        if patch > IM2COL_MAX_PATCH:
            return Choice(Variant.GENERAL, 0, f"im2col patch of {patch} values is too long")
        rb = _row_block(pixels, patch)
        return Choice(Variant.IM2COL, im2col_scratch_bytes(pixels, patch, rb, win.in_c), "",
                      row_block=rb)
    return planar


def _band(layer: _Layer, on_stack: bool) -> Choice | None:
    """mcc_conv2d_band_s8 where it applies: its column buffer in scratch, or on the
    stack when at least three columns fit BAND_STACK bytes."""
    win = layer.win
    if layer.kind != OpKind.CONV_2D or layer.groups != 1 or win.out_h < 4:
        return None
    # Input channels are padded to groups of four: at most a third more MACs.
    # That beats im2col's int8 patches at stride 1 with 16 or more filters, not
    # at stride 2 (the band widens 9 rows per column there). An RGB first layer
    # (3 channels, 3x3) takes im2col, which widens its patches straight from
    # the input (IM2COL_RGB): ResNet-8's first layer whole costs 745 K
    # instructions there against the band's 734 K, but in the 12-column
    # patches of its default plan 130 K against 150 K.
    rgb = is_rgb3x3(win.in_c, win.filter_h, win.filter_w, win.dilation_w)
    if win.in_c % 4 and (rgb or 3 * 4 * _groups(win.in_c) > 4 * win.in_c
                         or win.stride_h != 1 or layer.out_c < 16):
        return None
    if (win.filter_h, win.filter_w, win.dilation_h, win.dilation_w) != (3, 3, 1, 1):
        return None
    if win.stride_h != win.stride_w or win.stride_h not in (1, 2):
        return None
    column = band_column_bytes(win.in_c, win.stride_h)
    if 3 * column > BLOCK_SCRATCH_MAX:               # in_c above ~600 (stride 2), ~900 (1)
        return None
    span = (win.out_w - 1) * win.stride_w + 3        # the columns one band reads
    columns = min(span, (BAND_STACK if on_stack else BAND_BUDGET) // column)
    if on_stack and columns < 3:
        return None
    columns = max(columns, 3)
    return Choice(Variant.BAND, band_scratch_bytes(columns, win.in_c, win.stride_h, on_stack), "",
                  columns=columns, on_stack=on_stack)


def _stack_im2col(layer: _Layer) -> Choice | None:
    """im2col without scratch: two patches on the stack (row_block 2), when a
    patch padded to whole depth groups fits IM2COL_STACK_PATCH bytes."""
    win = layer.win
    if layer.kind == OpKind.CONV_2D and layer.groups == 1:
        patch = win.filter_h * win.filter_w * win.in_c
    elif layer.kind == OpKind.DEPTHWISE_CONV_2D and win.in_c == 1:
        patch = win.filter_h * win.filter_w
    else:
        return None
    if 4 * _groups(patch) > IM2COL_STACK_PATCH:
        return None
    return Choice(Variant.IM2COL, 0, "", row_block=2)


def _on_stack(planar: Choice) -> Choice:
    """The planar kernel with its planes on the stack (group 0), no scratch."""
    return replace(planar, group=0, scratch_bytes=0)


def _one_channel(layer: _Layer) -> Choice:
    """mcc_depthwise_conv2d_1ch_s8, or GENERAL and why it does not apply."""
    win = layer.win
    if layer.kind != OpKind.DEPTHWISE_CONV_2D or win.in_c != 1:
        return Choice(Variant.GENERAL, 0, "not a depthwise convolution over one channel")
    if win.dilation_h != 1 or win.dilation_w != 1:
        return Choice(Variant.GENERAL, 0, "dilated depthwise convolution")
    if win.filter_w > ONE_CHANNEL_MAX_FILTER_W:
        return Choice(Variant.GENERAL, 0, f"depthwise filter width {win.filter_w} "
                                          f"(above {ONE_CHANNEL_MAX_FILTER_W})")
    if win.filter_h * _one_channel_row_bytes(win) > ONE_CHANNEL_MAX_WINDOW:
        return Choice(Variant.GENERAL, 0, f"a {win.filter_h}x{win.filter_w} window is above "
                                          f"{ONE_CHANNEL_MAX_WINDOW} bytes")
    return Choice(Variant.ONE_CHANNEL, one_channel_scratch_bytes(), "")


def _pixel(layer: _Layer) -> Choice | None:
    """mcc_depthwise_conv2d_pixel_s8 where it applies: depth multiplier 1, channels
    in fours, at most PIXEL_MAX_TAPS taps."""
    win = layer.win
    if layer.kind != OpKind.DEPTHWISE_CONV_2D or layer.depth_multiplier != 1 or win.in_c % 4:
        return None
    if win.filter_h * win.filter_w > PIXEL_MAX_TAPS:
        return None
    return Choice(Variant.PIXEL, 0, "")


# Where the pixel kernel beats the planar one: (largest output plane in
# pixels, fewest channels) pairs, per target and stride (1, or more). The
# planar kernel pays per channel (plane copy, border, set-up), the pixel kernel
# per pixel (tap offsets, and border pixels one by one), so small planes with
# many channels go pixel by pixel. Measured on single 3x3 layers (SAME, square
# planes of 2 to 6 pixels a side, 8 to 128 channels), whole-layer instructions,
# pixel / planar: M7 stride 1 2x2 plane 0.77 at 16 channels, 3x3 0.90 at 32,
# 4x4 1.13 at 128; stride 2 2x2 0.86 at 8, 4x4 0.94 at 16, 6x6 0.97 at 32 and
# 1.04 at 16. M3 stride 1 3x3 0.93 at 32, 4x4 0.97 at 128; stride 2 3x3 0.85
# at 16, 6x6 0.97 at 32.
PIXEL_PAYS: dict[tuple[bool, bool], tuple[tuple[float, int], ...]] = {
    # (DSP core, stride above 1): ((max plane, min channels), ...)
    (True, False): ((4, 16), (9, 32)),
    (True, True): ((4, 8), (16, 16), (math.inf, 32)),
    (False, False): ((4, 16), (9, 32), (16, 128)),
    (False, True): ((4, 8), (16, 16), (36, 32)),
}


def pixel_call(op: Op, graph: Graph) -> KernelCall | None:
    """The pixel kernel's call for a depthwise layer it applies to, whatever
    `choose` prefers (kernels/inplace.py runs it in place), else None."""
    layer = _prepare(op, graph)
    if layer.kind != OpKind.DEPTHWISE_CONV_2D or fast_channel_table(layer)[0] is None:
        return None
    pixel = _pixel(layer)
    return None if pixel is None else _fast_call(layer, pixel, op)


def pixel_pays(win: Window, planar: Choice | None, dsp: bool) -> bool:
    """Whether the pixel kernel beats the planar one (or the general kernel,
    where the planar one does not apply) on this layer. Its 3x3 loop is the
    only one in assembly, so other filters stay planar where they can."""
    if planar is None or planar.variant == Variant.GENERAL:
        return True
    if (win.filter_h, win.filter_w) != (3, 3):
        return False
    plane = win.batches * win.out_h * win.out_w
    strided = win.stride_h > 1 or win.stride_w > 1
    return any(plane <= most and win.in_c >= fewest
               for most, fewest in PIXEL_PAYS[(dsp, strided)])


def _one_channel_unrolled(layer: _Layer) -> bool:
    """Whether mcc_depthwise_conv2d_1ch_s8 takes its unrolled three-row loop
    (assembly on DSP cores) for every channel: filters of three one-word rows,
    channels in fours."""
    win = layer.win
    return win.filter_h == 3 and win.filter_w <= 4 and layer.out_c % 4 == 0


def _one_channel_row_bytes(win: Window) -> int:
    return 4 * _groups(win.filter_w)


def _planar(layer: _Layer) -> Choice:
    """The planar depthwise kernel, or GENERAL and why it does not apply."""
    win = layer.win
    if win.dilation_h != 1 or win.dilation_w != 1:
        return Choice(Variant.GENERAL, 0, "dilated depthwise convolution")
    if win.filter_w not in (3, 5, 7):
        return Choice(Variant.GENERAL, 0, f"depthwise filter width {win.filter_w} (not 3, 5 or 7)")
    if win.stride_w not in (1, 2):
        return Choice(Variant.GENERAL, 0, f"depthwise stride_w {win.stride_w} (not 1 or 2)")
    if _planar_row_bytes(win) == 8 and win.filter_h > PLANAR_MAX_FILTER_H:
        return Choice(Variant.GENERAL, 0,
                      f"depthwise filter height {win.filter_h} (above {PLANAR_MAX_FILTER_H})")
    plane_h = max(win.pad_h + win.in_h, (win.out_h - 1) * win.stride_h + win.filter_h)
    plane_w = max(win.pad_w + win.in_w, (win.out_w - 1) * win.stride_w + _planar_row_bytes(win))
    plane_w = (plane_w + 3) // 4 * 4
    plane = plane_h * plane_w
    if plane > PLANAR_MAX_PLANE:
        return Choice(Variant.GENERAL, 0, f"a padded channel plane of {plane} bytes is too big")
    group = planar_group(win.in_c, plane, PLANAR_BUDGET)
    variant = Variant.PLANAR_3X3 if _planar_row_bytes(win) == 4 else Variant.PLANAR
    return Choice(variant, planar_scratch_bytes(group, plane_h, plane_w), "",
                  group=group, plane_h=plane_h, plane_w=plane_w)


def choose(op: Op, graph: Graph, target: KernelTarget = KernelTarget()) -> Choice:
    """THE kernel choice for a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED op.

    The lowering and `scratch_bytes` both call this, nothing else decides.
    Which way round DSP and portable code are chosen: this function picks the
    algorithm and the data layout, from the shapes; the C compiler picks the
    instructions. Every fast kernel holds a DSP inner loop (under
    __ARM_FEATURE_DSP) and a portable one over the same layout and scratch,
    so a model built for one target runs, bit for bit, on any (the host's
    `verify` included). Three choices depend on the target (KernelTarget.dsp),
    each where one kernel's SMLAD loop or assembly changes which is faster:
    BAND, whose int16 column layout only pays off with SMLAD (with its
    portable loop ResNet-8 took 49.6 M instructions on a Cortex-M3, 37.1 M
    with im2col), is chosen for DSP targets only; ONE_CHANNEL for fours of 3x3
    filters over one input channel likewise; and PIXEL against PLANAR by
    `PIXEL_PAYS`, per target.
    """
    return _choose(_prepare(op, graph), dsp=target.dsp)


def layer_macs(op: Op, graph: Graph) -> int:
    """The op's multiply-accumulates, whatever kernel runs it."""
    return _prepare(op, graph).macs


def scratch_bytes(op: Op, graph: Graph, target: KernelTarget = KernelTarget()) -> int:
    """Scratch bytes of the kernel `choose` picks (0 for the general kernels)."""
    return choose(op, graph, target).scratch_bytes


# --- data layouts of the fast kernels ----------------------------------------------

def gemm_weights(w: np.ndarray) -> np.ndarray:
    """[out_c, depth] int8 -> mcc_gemm_s8's layout: channel pairs (2p, 2p+1), depth
    groups of four; word 0 of a group holds (w[2p][k], w[2p+1][k], w[2p][k+2],
    w[2p+1][k+2]), word 1 the same for k+1 and k+3. Zero padded."""
    out_c, depth = w.shape
    pairs, groups = (out_c + 1) // 2, _groups(depth)
    padded = np.zeros((2 * pairs, 4 * groups), dtype=np.int8)
    padded[:out_c, :depth] = w
    # Index [pair, column, group, half, word] with channel 2*pair + column and
    # depth 4*group + 2*half + word; laid out as [pair, group, word, half, column].
    return padded.reshape(pairs, 2, groups, 2, 2).transpose(0, 2, 4, 3, 1).reshape(-1)


def band_weights(w: np.ndarray) -> np.ndarray:
    """[out_c, 3, 3, in_c] int8 -> mcc_conv2d_band_s8's layout: channel pairs
    (2p, 2p+1), then [dx][input pair q][dy = 1, 2, 0] words of (w[2p][a],
    w[2p+1][a], w[2p][b], w[2p+1][b]) for q's channels (a, b) = (4g, 4g+2) when
    q = 2g and (4g+1, 4g+3) when q = 2g+1. Missing channels (a last output
    channel, input channels past in_c up to groups of four) are zero."""
    out_c, fh, fw, in_c = w.shape
    pairs, groups = (out_c + 1) // 2, _groups(in_c)
    padded = np.zeros((2 * pairs, fh, fw, 4 * groups), dtype=np.int8)
    padded[:out_c, :, :, :in_c] = w
    # Input channel 4g + 2 * lane + odd is pair 2g + odd's lane `lane`.
    by_pair = padded.reshape(pairs, 2, fh, fw, groups, 2, 2)      # [p, col, dy, dx, g, lane, odd]
    words = by_pair[:, :, [1, 2, 0]].transpose(0, 3, 4, 6, 2, 5, 1)  # [p, dx, g, odd, dy, lane, col]
    return np.ascontiguousarray(words).reshape(-1)


def wide_weights(weights: np.ndarray) -> np.ndarray:
    """mcc_gemm_s8's or mcc_conv2d_band_s8's int8 layout -> their int16 one
    (mcc_conv.h, wide_weights): each word (c0 a, c1 a, c0 b, c1 b) becomes the
    two words of int16 lanes (c0 a, c0 b), (c1 a, c1 b), low lane first: what
    SXTB16 would make of it. int32 words, so C keeps them word aligned (LDRD)."""
    lanes = weights.reshape(-1, 2, 2).transpose(0, 2, 1).astype(np.int64)   # [word][column][lane]
    return ((lanes[..., 0] & 0xFFFF) | ((lanes[..., 1] & 0xFFFF) << 16)).reshape(-1).astype(
        np.uint32).view(np.int32)


def planar_weights(w: np.ndarray, row_bytes: int) -> np.ndarray:
    """[out_c, filter_h, filter_w] int8 -> [out_c, filter_h, row_bytes], rows zero-padded."""
    out_c, fh, fw = w.shape
    padded = np.zeros((out_c, fh, row_bytes), dtype=np.int8)
    padded[:, :, :fw] = w
    return padded.reshape(-1)


def one_channel_weights(w: np.ndarray) -> np.ndarray:
    """[out_c, filter_h, filter_w] int8 -> mcc_depthwise_conv2d_1ch_s8's int32 words:
    taps doubled, as int16 lanes; channel blocks of four, each
    [filter_h][groups][channel][2] with word 0 = (w[4g], w[4g+2]) and
    word 1 = (w[4g+1], w[4g+3]), low lane first; then the last out_c % 4
    channels one after another, each [filter_h][groups][2]."""
    out_c, fh, fw = w.shape
    groups = _groups(fw)
    taps = np.zeros((out_c, fh, groups, 2, 2), dtype=np.int64)   # [c, ky, g, word, lane]
    padded = np.zeros((out_c, fh, 4 * groups), dtype=np.int64)
    padded[:, :, :fw] = 2 * w.astype(np.int64)
    # Tap 4g + 2 * lane + word sits in word `word`, lane `lane`.
    taps[:] = padded.reshape(out_c, fh, groups, 2, 2).transpose(0, 1, 2, 4, 3)
    words = (taps[..., 0] & 0xFFFF) | ((taps[..., 1] & 0xFFFF) << 16)      # [c, ky, g, word]
    full = out_c // 4 * 4
    blocks = [words[c:c + 4].transpose(1, 2, 0, 3).reshape(-1) for c in range(0, full, 4)]
    blocks.append(words[full:].reshape(-1))     # the last out_c % 4 channels, one after another
    return np.concatenate(blocks).astype(np.uint32).view(np.int32)


def pixel_weights(w: np.ndarray) -> np.ndarray:
    """[C, filter_h, filter_w] int8 -> mcc_depthwise_conv2d_pixel_s8's int8 layout:
    for channels 4q..4q+3 and tap k (row-major), the four bytes w[4q..4q+3]:
    [C/4][taps][4]."""
    c, fh, fw = w.shape
    return np.ascontiguousarray(w.reshape(c // 4, 4, fh * fw).transpose(0, 2, 1)).reshape(-1)


def _fast_arrays(weights: np.ndarray, table: np.ndarray) -> tuple[tuple[Field, ...], tuple[ConstArray, ...]]:
    wtype = "int32_t" if weights.dtype == np.int32 else "int8_t"
    return ((Field("weights", ArrayRef("weights")), Field("channels", ArrayRef("channels"))),
            (ConstArray("weights", wtype, weights), ConstArray("channels", "int32_t", table.reshape(-1))))


def _fast_call(layer: _Layer, choice: Choice, op: Op) -> KernelCall:
    table, _ = fast_channel_table(layer)
    act = _ints(act_min=layer.act_min, act_max=layer.act_max)
    # The fast kernels always take the scratch pointer; with 0 bytes they do not touch it.
    args = (TensorArg(op.inputs[0]), TensorArg(op.outputs[0]), SCRATCH)
    win = layer.win
    if choice.variant == Variant.GEMM:
        w2d = layer.rows_by_depth()
        rows = layer.rows if win is None else win.batches * win.in_h * win.in_w
        fields = _ints(rows=rows, depth=w2d.shape[1], out_c=layer.out_c,
                       row_block=choice.row_block) + act
        arrays = _fast_arrays(gemm_weights(w2d), table)
        partial = frozenset({"GEMM_PARTIAL"}) if w2d.shape[1] % 4 else frozenset()
        return KernelCall(choice.variant.value, LIBRARY, "mcc_gemm_params", fields + arrays[0],
                          args, arrays[1], choice.scratch_bytes, layer.macs, paths=partial)
    if choice.variant == Variant.IM2COL:
        # A depthwise layer over one channel: its [M, H, W] filters are conv filters [M, H, W, 1].
        fields = _ints(batches=win.batches, in_h=win.in_h, in_w=win.in_w, in_c=win.in_c,
                       out_h=win.out_h, out_w=win.out_w, out_c=layer.out_c,
                       filter_h=win.filter_h, filter_w=win.filter_w,
                       stride_h=win.stride_h, stride_w=win.stride_w,
                       dilation_h=win.dilation_h, dilation_w=win.dilation_w,
                       pad_h=win.pad_h, pad_w=win.pad_w, pad_value=-layer.input_offset,
                       row_block=choice.row_block) + act
        arrays = _fast_arrays(gemm_weights(layer.rows_by_depth()), table)
        rgb = (layer.kind == OpKind.CONV_2D
               and is_rgb3x3(win.in_c, win.filter_h, win.filter_w, win.dilation_w))
        paths = im2col_paths(win.batches * win.out_h * win.out_w,
                             win.filter_h * win.filter_w * win.in_c, choice.row_block, win.in_c, rgb)
        # Each way runs at its own speed, the RGB blocks too (on DSP cores; the
        # portable build's figures are fitted apart all the same).
        variant = ("rgb3x3" if "IM2COL_RGB" in paths else "int8" if "IM2COL_PATCHES" in paths
                   else "pairs" if "IM2COL_STACK_PAIRS" in paths else "")
        return KernelCall(choice.variant.value, LIBRARY, "mcc_conv2d_im2col_params",
                          fields + arrays[0], args, arrays[1], choice.scratch_bytes, layer.macs,
                          cost_variant=variant, paths=paths)
    if choice.variant == Variant.BAND:
        fields = _ints(batches=win.batches, in_h=win.in_h, in_w=win.in_w, in_c=win.in_c,
                       out_h=win.out_h, out_w=win.out_w, out_c=layer.out_c,
                       stride=win.stride_h, pad_h=win.pad_h, pad_w=win.pad_w,
                       pad_value=-layer.input_offset, columns=choice.columns,
                       on_stack=int(choice.on_stack)) + act
        arrays = _fast_arrays(band_weights(layer.weights), table)
        return KernelCall(choice.variant.value, LIBRARY, "mcc_conv2d_band_params",
                          fields + arrays[0], args, arrays[1], choice.scratch_bytes, layer.macs)
    if choice.variant == Variant.ONE_CHANNEL:
        fields = _ints(batches=win.batches, in_h=win.in_h, in_w=win.in_w,
                       out_h=win.out_h, out_w=win.out_w, out_c=layer.out_c,
                       filter_h=win.filter_h, filter_w=win.filter_w,
                       stride_h=win.stride_h, stride_w=win.stride_w,
                       pad_h=win.pad_h, pad_w=win.pad_w, pad_value=-layer.input_offset) + act
        # Its accumulators start from the doubled bias (they hold 2 * acc, the
        # taps being doubled): the table carries it so, one shift fewer an output.
        doubled = table.copy()
        doubled[:, 0] *= 2
        arrays = _fast_arrays(one_channel_weights(layer.weights), doubled)
        # Filters of three one-word rows take the kernel's unrolled loop (assembly on DSP cores);
        # other filters, and the last out_c % 4 channels, its general path.
        three_rows = win.filter_h == 3 and win.filter_w <= 4
        general = not _one_channel_unrolled(layer)
        return KernelCall(choice.variant.value, LIBRARY, "mcc_depthwise_conv2d_1ch_params",
                          fields + arrays[0], args, arrays[1], choice.scratch_bytes, layer.macs,
                          cost_variant="3rows" if three_rows else "",
                          paths=frozenset({"DW1CH_GENERAL"}) if general else frozenset())
    if choice.variant == Variant.PIXEL:
        fields = _ints(batches=win.batches, in_h=win.in_h, in_w=win.in_w, in_c=win.in_c,
                       out_h=win.out_h, out_w=win.out_w,
                       filter_h=win.filter_h, filter_w=win.filter_w,
                       stride_h=win.stride_h, stride_w=win.stride_w,
                       dilation_h=win.dilation_h, dilation_w=win.dilation_w,
                       pad_h=win.pad_h, pad_w=win.pad_w, pad_value=-layer.input_offset) + act
        arrays = _fast_arrays(pixel_weights(layer.weights), table)
        three = (win.filter_h, win.filter_w) == (3, 3)
        return KernelCall(choice.variant.value, LIBRARY, "mcc_depthwise_conv2d_pixel_params",
                          fields + arrays[0], args, arrays[1], choice.scratch_bytes, layer.macs,
                          paths=frozenset() if three else frozenset({"DW_PIXEL_GENERAL"}))
    fields = _ints(batches=win.batches, in_h=win.in_h, in_w=win.in_w, in_c=win.in_c,
                   out_h=win.out_h, out_w=win.out_w, out_c=layer.out_c,
                   filter_h=win.filter_h, filter_w=win.filter_w,
                   depth_multiplier=layer.depth_multiplier,
                   stride_h=win.stride_h, stride_w=win.stride_w,
                   pad_h=win.pad_h, pad_w=win.pad_w, pad_value=-layer.input_offset,
                   plane_h=choice.plane_h, plane_w=choice.plane_w, group=choice.group) + act
    arrays = _fast_arrays(planar_weights(layer.weights, _planar_row_bytes(win)), table)
    # 3x3 at stride 1 takes output rows two at a time (2x2 blocks on DSP cores).
    two_rows = choice.variant == Variant.PLANAR_3X3 and win.stride_h == win.stride_w == 1
    three = choice.variant == Variant.PLANAR_3X3
    paths = {("PLANAR_S2" if three else "PLANAR_WIDE_S2")} if win.stride_w != 1 else set()
    if not three and win.filter_w > 5:
        paths.add("PLANAR_WIDE7")
    return KernelCall(choice.variant.value, LIBRARY, "mcc_depthwise_conv2d_planar_params",
                      fields + arrays[0], args, arrays[1], choice.scratch_bytes, layer.macs,
                      cost_variant="2rows" if two_rows else "", paths=frozenset(paths))


# --- the lowerings ------------------------------------------------------------

@lowering(OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.FULLY_CONNECTED)
def lower_conv(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    return _lower(op, graph, target, compact=False)


@compact_lowering(OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.FULLY_CONNECTED)
def lower_conv_compact(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    return _lower(op, graph, target, compact=True)


def _lower(op: Op, graph: Graph, target: KernelTarget, compact: bool) -> KernelCall:
    layer = _prepare(op, graph)
    choice = _choose(layer, compact, target.dsp)
    residual = getattr(op.attrs, "residual", None)
    if residual is not None:
        return _residual_call(layer, choice, op, graph)
    if choice.variant == Variant.GENERAL:
        return _reference(layer, op)
    return _fast_call(layer, choice, op)


# --- a residual ADD fused into the convolution (mcc_conv.h, mcc_residual) ------

RESIDUAL_VARIANTS = (Variant.GEMM, Variant.IM2COL, Variant.BAND)
# The C kernels' bound (MCC_RESIDUAL_MAX_C): four pixels' outputs in a stack tile.
RESIDUAL_MAX_C = 256


def residual_fusable(conv: Op, graph: Graph, target: KernelTarget, x: int, out: int,
                     shared: int | None = None) -> bool:
    """Whether ADD(x, conv's result) -> out can run inside this CONV_2D: a kernel
    with the residual epilogue in both its forms (normal and at the memory peak),
    at most RESIDUAL_MAX_C channels, ADD's table form exact for these scales, and
    tables worth their 2 KB of flash: `shared` (default: out's size) outputs of
    ADDs with this arithmetic, which share one copy of them, at least as many
    as make a separate ADD take its tables (ADD_TABLE_MIN_ELEMENTS)."""
    if conv.kind != OpKind.CONV_2D or getattr(conv.attrs, "residual", None) is not None:
        return False
    layer = _prepare(conv, graph)
    if layer.out_c > RESIDUAL_MAX_C:
        return False
    if any(_choose(layer, compact, target.dsp).variant not in RESIDUAL_VARIANTS
           for compact in (False, True)):
        return False
    z = graph.tensor(conv.outputs[0])
    xt, ot = graph.tensor(x), graph.tensor(out)
    if not (xt.shape == z.shape == ot.shape) or xt.quant is None or xt.quant.per_channel:
        return False
    if (ot.num_elements if shared is None else shared) < ADD_TABLE_MIN_ELEMENTS:
        return False    # 2 KB of tables where the separate ADD would take none
    try:
        return residual_tables(xt, float(z.scale), z.zero_point, (layer.act_min, layer.act_max),
                               ot, Activation.NONE, layer.where) is not None
    except UnsupportedModelError:
        return False


def _residual_call(layer: _Layer, choice: Choice, op: Op, graph: Graph) -> KernelCall:
    """The fast kernel with the ADD in its epilogue, writing over the residual input."""
    if choice.variant not in RESIDUAL_VARIANTS or layer.out_c > RESIDUAL_MAX_C:
        raise UnsupportedModelError(f"{layer.where}: the fused residual ADD needs the GEMM, im2col "
                                    f"or band kernel with at most {RESIDUAL_MAX_C} channels")
    q = op.attrs.residual.conv_output
    r = residual_tables(graph.tensor(op.inputs[3]), q.scale[0], q.zero_point[0],
                        (layer.act_min, layer.act_max), graph.tensor(op.outputs[0]),
                        op.attrs.residual.activation, layer.where)
    if r is None:
        raise UnsupportedModelError(f"{layer.where}: the fused residual ADD has no exact table form")
    if (choice.variant == Variant.GEMM and choice.row_block == 1
            and 32 * _groups(layer.win.in_c) <= GEMM_RESIDUAL_STACK_BLOCK):
        choice = replace(choice, row_block=2)   # its block on the stack (mcc_gemm_s8, residual)
    # The activation is in r.z_scaled: the kernel's own clamp does nothing.
    call = _fast_call(replace(layer, act_min=-128, act_max=127), choice, op)
    fields = (Field("residual.x_scaled", ArrayRef("residual_x")),
              Field("residual.z_scaled", ArrayRef("residual_z")),
              *_ints(**{"residual.mult": r.mult, "residual.hib": r.hib, "residual.post": r.post,
                        "residual.act_min": r.act_min, "residual.act_max": r.act_max}))
    arrays = (ConstArray("residual_x", "int32_t", r.x_scaled.astype(np.int32)),
              ConstArray("residual_z", "int32_t", r.z_scaled.astype(np.int32)))
    variant = "+".join(v for v in (call.cost_variant, "residual") if v)
    return replace(call, fields=call.fields + fields, arrays=call.arrays + arrays,
                   inplace_input=op.inputs[3], cost_variant=variant,
                   paths=call.paths | {"RESIDUAL"})


def planar_one_plane(op: Op, graph: Graph) -> KernelCall | None:
    """The planar depthwise kernel with the least scratch it takes: its planes
    on the stack where one fits PLANAR_STACK_PLANE (as many as fit there),
    else one plane at a time in scratch; None when the layer does not take
    the planar kernel. For the in-place form (kernels/inplace.py)."""
    layer = _prepare(op, graph)
    if layer.kind != OpKind.DEPTHWISE_CONV_2D or fast_channel_table(layer)[0] is None:
        return None
    # The planar kernel itself, also where `choose` prefers the pixel kernel:
    # the in-place pipeline weighs the two forms (kernels/inplace.py).
    choice = _planar(layer)
    if choice.variant not in (Variant.PLANAR, Variant.PLANAR_3X3):
        return None
    if choice.plane_h * choice.plane_w <= PLANAR_STACK_PLANE:
        return _fast_call(layer, _on_stack(choice), op)
    one = replace(choice, group=1,
                  scratch_bytes=planar_scratch_bytes(1, choice.plane_h, choice.plane_w))
    return _fast_call(layer, one, op)


# --- flash for speed: int16 weights (mcc_conv.h, wide_weights) ----------------------

# The kernels whose 4x2 tiles read int16 weights as well as int8 ones.
WIDE_FUNCTIONS = (Variant.GEMM.value, "mcc_gemm_inplace_s8", Variant.BAND.value)
# Instructions per MAC they save on DSP cores: two SXTB16 per weight word, which
# serves 16 MACs (two channels, two depths, four rows).
WIDE_SAVING_PER_MAC = 0.125
# Code the int16 tiles add once a model takes them (arm-none-eabi-gcc 12 -O2,
# Thumb-2, the same on the M4 and M7): mcc_gemm_s8w_4x2_dsp and the band's
# mcc_band_s8w_4x2_s1/s2_dsp.
WIDE_TILE_CODE_BYTES = {"gemm": 680, "band_s1": 860, "band_s2": 860}


def _field(call: KernelCall, name: str):
    return next((f.value for f in call.fields if f.name == name), None)


def weights_array(call: KernelCall) -> ConstArray:
    """The call's weights (int8, in its kernel's layout)."""
    return next(a for a in call.arrays if a.suffix == "weights")


def wide_tile(call: KernelCall) -> str:
    """The int16 tile function `call` would link (a key of WIDE_TILE_CODE_BYTES)."""
    return "gemm" if call.function != Variant.BAND.value else f"band_s{_field(call, 'stride')}"


def widens(call: KernelCall | None) -> bool:
    """Whether `call` gains from int16 weights: a band, or a GEMM whose rows all go
    in blocks of four (at least four rows, with a block). Without a row-pair
    kernel for int16 weights, a GEMM's rows % 4 leftover rows take a block of
    their own (moved up over rows done before, or repeated): one leftover row
    costs a block (4 x 0.69 instructions per MAC of a row) where the int8 row
    pairs took 1.25, which 0.125 per MAC saved on 12 more rows pays back."""
    if call is None or call.function not in WIDE_FUNCTIONS:
        return False
    if call.function == Variant.BAND.value:
        return True
    rows = _field(call, "rows")
    if _field(call, "row_block") not in (2, 4) or (call.function == Variant.GEMM.value and rows < 4):
        return False
    return call.function == "mcc_gemm_inplace_s8" or rows % 4 != 1 or rows >= 13


def widen(call: KernelCall) -> KernelCall:
    """The same call reading its weights as int16 (twice the bytes, faster on DSP cores)."""
    assert widens(call)
    weights = weights_array(call)
    wide = ConstArray("weights", "int32_t", wide_weights(weights.values))
    fields = tuple(Field("wide_weights", f.value) if f.name == "weights" else f for f in call.fields)
    arrays = tuple(wide if a is weights else a for a in call.arrays)
    variant = "+".join(v for v in (call.cost_variant, "wide") if v)
    return replace(call, fields=fields, arrays=arrays, cost_variant=variant,
                   paths=call.paths | {"WIDE_WEIGHTS"})


def wide_extra_bytes(call: KernelCall) -> int:
    """The flash that widening `call` adds: its int8 weights' bytes once more."""
    return int(weights_array(call).values.nbytes)
