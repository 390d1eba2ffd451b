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
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedModelError
from ..ir import (Conv2DAttrs, DepthwiseConv2DAttrs, DType, ExplicitPadding, Graph, Op, OpKind,
                  Padding, Tensor)
from ..quant import activation_range, f32, quantize_multiplier
from . import (SCRATCH, ArrayRef, ConstArray, Field, KernelCall, KernelTarget, TensorArg,
               lowering)

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

def per_channel_multipliers(input_scale: float, filter_scales: tuple[float, ...],
                            output_scale: float, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(multiplier, shift) int32 arrays, TFLite's PopulateConvolutionQuantizationParams.

    Scales are float32 in the model; the products are taken in double.
    A single (per-tensor) filter scale is broadcast to every channel.
    """
    if len(filter_scales) not in (1, channels):
        raise ValueError(f"{len(filter_scales)} filter scales for {channels} channels")
    mult = np.empty(channels, dtype=np.int32)
    shift = np.empty(channels, dtype=np.int32)
    for c in range(channels):
        fs = filter_scales[c if len(filter_scales) > 1 else 0]
        real = f32(input_scale) * f32(fs) / f32(output_scale)
        mult[c], shift[c] = quantize_multiplier(real)
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


def scratch_bytes(kind: OpKind, target: KernelTarget) -> int:
    """Scratch memory of the kernel chosen for `kind` on `target`.

    The portable kernels read the input tensor where it lies and keep their
    accumulators in registers, so they need none on any target. A DSP variant
    that packs input patches (im2col) would size its buffer here.
    """
    del kind, target
    return 0


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


# --- the lowerings ----------------------------------------------------------

@lowering(OpKind.CONV_2D)
def lower_conv2d(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
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
    fold = folded_bias(o.bias, o.weights.data, input_offset, o.where)
    act_min, act_max = _act_range(op, o.output, o.where)
    array_fields, arrays = _requant_fields(mult, shift, fold, o.weights.data)
    macs = (win.batches * win.out_h * win.out_w * out_c
            * win.filter_h * win.filter_w * filter_c)
    scratch = scratch_bytes(op.kind, target)

    # A 1x1 filter at stride 1 without padding or groups reads each pixel once:
    # it is a fully connected layer over N*H*W rows.
    if (win.filter_h == win.filter_w == 1 and win.stride_h == win.stride_w == 1
            and win.pad_h == win.pad_w == 0 and groups == 1):
        fields = _ints(rows=win.batches * win.in_h * win.in_w, depth=win.in_c, out_c=out_c,
                       per_channel=1, output_offset=o.output.zero_point,
                       act_min=act_min, act_max=act_max) + array_fields
        return KernelCall("mcc_conv2d_1x1_s8", LIBRARY, "mcc_fully_connected_params", fields,
                          _args(op, scratch), arrays, scratch, macs)

    fields = _ints(batches=win.batches, in_h=win.in_h, in_w=win.in_w, in_c=win.in_c,
                   out_h=win.out_h, out_w=win.out_w, out_c=out_c,
                   filter_h=win.filter_h, filter_w=win.filter_w, filter_c=filter_c,
                   stride_h=win.stride_h, stride_w=win.stride_w,
                   dilation_h=win.dilation_h, dilation_w=win.dilation_w,
                   pad_h=win.pad_h, pad_w=win.pad_w,
                   input_offset=input_offset, output_offset=o.output.zero_point,
                   act_min=act_min, act_max=act_max) + array_fields
    return KernelCall("mcc_conv2d_s8", LIBRARY, "mcc_conv2d_params", fields,
                      _args(op, scratch), arrays, scratch, macs)


@lowering(OpKind.DEPTHWISE_CONV_2D)
def lower_depthwise_conv2d(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
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
    # [1, H, W, C] -> [C, H, W]: each channel's taps contiguous for the kernel's loop.
    weights = np.transpose(o.weights.data[0], (2, 0, 1))
    fold = folded_bias(o.bias, weights, input_offset, o.where)
    act_min, act_max = _act_range(op, o.output, o.where)
    array_fields, arrays = _requant_fields(mult, shift, fold, weights)
    scratch = scratch_bytes(op.kind, target)
    fields = _ints(batches=win.batches, in_h=win.in_h, in_w=win.in_w, in_c=win.in_c,
                   out_h=win.out_h, out_w=win.out_w, out_c=out_c,
                   filter_h=win.filter_h, filter_w=win.filter_w,
                   depth_multiplier=depth_multiplier,
                   stride_h=win.stride_h, stride_w=win.stride_w,
                   dilation_h=win.dilation_h, dilation_w=win.dilation_w,
                   pad_h=win.pad_h, pad_w=win.pad_w,
                   input_offset=input_offset, output_offset=o.output.zero_point,
                   act_min=act_min, act_max=act_max) + array_fields
    macs = win.batches * win.out_h * win.out_w * out_c * win.filter_h * win.filter_w
    return KernelCall("mcc_depthwise_conv2d_s8", LIBRARY, "mcc_depthwise_conv2d_params", fields,
                      _args(op, scratch), arrays, scratch, macs)


@lowering(OpKind.FULLY_CONNECTED)
def lower_fully_connected(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
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
    per_channel = wq.per_channel
    if per_channel:
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

    fold = folded_bias(o.bias, o.weights.data, -o.input.zero_point, o.where)
    act_min, act_max = _act_range(op, o.output, o.where)
    array_fields, arrays = _requant_fields(mult, shift, fold, o.weights.data)
    scratch = scratch_bytes(op.kind, target)
    fields = _ints(rows=rows, depth=depth, out_c=out_c, per_channel=int(per_channel),
                   output_offset=o.output.zero_point,
                   act_min=act_min, act_max=act_max) + array_fields
    return KernelCall("mcc_fully_connected_s8", LIBRARY, "mcc_fully_connected_params", fields,
                      _args(op, scratch), arrays, scratch, rows * out_c * depth)
