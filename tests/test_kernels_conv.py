"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: compile-time arithmetic, kernel
choice, and bit-exactness of mcc_conv.c with TFLM.

The first part needs neither TensorFlow nor TFLM: it checks the lowering's
numbers (padding, multipliers, folded bias) against values worked out from
TFLM's formulas (kernels/padding.h, kernel_util.cc, fully_connected_common.cc),
and the lowering's choices and errors on hand-built graphs.

The second part compiles models and compares every output byte with TFLM:
the shared reference models, then single-op models from tests/modelgen.py
over the configuration space, and modelgen models edited at the flatbuffer
level for what the converter never emits (a missing bias, grouped filters,
nonzero input zero points with padding).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from mcucompile.errors import UnsupportedModelError
from mcucompile.frontend import tflite
from mcucompile.ir import (Activation, Conv2DAttrs, DepthwiseConv2DAttrs, DType,
                           FullyConnectedAttrs, Graph, Op, OpKind, Padding, Quant, Tensor)
from mcucompile.kernels import SCRATCH, ArrayRef, KernelTarget, lower
from mcucompile.kernels.conv import (Variant, choose, folded_bias, out_size, pad_before,
                                     per_channel_multipliers, per_tensor_multiplier,
                                     reference_call, scratch_bytes)


# ----------------------------------------------------------------------------
# Compile-time arithmetic
# ----------------------------------------------------------------------------

# (padding, in, filter, stride, dilation) -> (out, top/left pad), from TFLite's
# ComputeOutSize and ComputePaddingWithOffset worked by hand:
# SAME out = ceil(in / stride); total = (out-1)*stride + (filter-1)*dilation + 1 - in;
# pad = max(total, 0) // 2.
PADDING_CASES = [
    (Padding.SAME, 96, 3, 2, 1, 48, 0),    # person_detect's first layer: total 1 -> 0 before
    (Padding.SAME, 48, 3, 1, 1, 48, 1),
    (Padding.SAME, 49, 10, 2, 1, 25, 4),   # micro_speech: total 9 -> 4 before, 5 after
    (Padding.SAME, 40, 8, 2, 1, 20, 3),    # micro_speech: total 6
    (Padding.SAME, 10, 3, 1, 2, 10, 2),    # dilation 2: effective filter 5
    (Padding.SAME, 9, 4, 2, 1, 5, 1),      # total 3 -> odd pixel after
    (Padding.SAME, 5, 7, 1, 1, 5, 3),      # filter larger than the input
    (Padding.VALID, 10, 3, 1, 2, 6, 0),
    (Padding.VALID, 11, 5, 2, 1, 4, 0),
    (Padding.VALID, 9, 1, 2, 1, 5, 0),
]


@pytest.mark.parametrize("padding,size,filt,stride,dilation,out,pad", PADDING_CASES)
def test_output_size_and_padding_follow_tflite(padding, size, filt, stride, dilation, out, pad):
    assert out_size(padding, size, filt, stride, dilation) == out
    assert pad_before(size, filt, stride, dilation, out) == pad


def test_per_tensor_fc_multiplier_takes_the_scale_product_in_float32():
    # Worked with TFLite's QuantizeMultiplier in C: (double)(in * filter) / out
    # gives (1765890609, -1), while the per-channel formula
    # (double)in * (double)filter / out gives (1765890612, -1).
    s_in, s_w, s_out = 0.06373247504234314, 0.027051692828536034, 0.004193255212157965
    assert per_tensor_multiplier(s_in, s_w, s_out) == (1765890609, -1)
    mult, shift = per_channel_multipliers(s_in, (s_w,), s_out, 1)
    assert (int(mult[0]), int(shift[0])) == (1765890612, -1)


def test_per_channel_multipliers_broadcast_a_single_filter_scale():
    # 0.5 * 0.25 / 0.125 = 1.0 = 0.5 * 2^1 -> (2^30, 1); 0.5 * 0.5 / 0.125 = 2 -> (2^30, 2).
    mult, shift = per_channel_multipliers(0.5, (0.25,), 0.125, 3)
    assert mult.tolist() == [2**30] * 3 and shift.tolist() == [1] * 3
    mult, shift = per_channel_multipliers(0.5, (0.25, 0.5), 0.125, 2)
    assert mult.tolist() == [2**30, 2**30] and shift.tolist() == [1, 2]
    assert mult.dtype == shift.dtype == np.int32


def test_folded_bias_adds_input_offset_times_weight_sum():
    w = np.array([[1, 2, -3], [127, 127, 127]], dtype=np.int8)
    assert folded_bias(np.array([10, -10]), w, 128, "op").tolist() == [10 + 0, -10 + 128 * 381]
    assert folded_bias(None, w, -5, "op").tolist() == [0, -5 * 381]
    with pytest.raises(UnsupportedModelError, match="overflows int32"):
        folded_bias(np.array([0, 2**31 - 100]), w, 128, "op 3 (CONV_2D)")


# ----------------------------------------------------------------------------
# Lowering of hand-built graphs
# ----------------------------------------------------------------------------

RNG = np.random.default_rng(1234)


def _single_op(kind: OpKind, attrs, in_shape, w_shape, out_shape, *, bias=True,
               dtype=DType.INT8, w_scales=(0.02,), w_zp=0, w_axis=0, in_zp=-7) -> Graph:
    out_c = w_shape[0] if kind != OpKind.DEPTHWISE_CONV_2D else w_shape[3]
    w = RNG.integers(-127, 128, w_shape).astype(np.int8)
    tensors = [
        Tensor(0, "in", in_shape, dtype, Quant((0.05,), (in_zp,))),
        Tensor(1, "w", w_shape, DType.INT8, Quant(tuple(w_scales), (w_zp,) * len(w_scales), w_axis),
               data=w),
        Tensor(2, "b", (out_c,), DType.INT32, Quant((0.001,), (0,)),
               data=RNG.integers(-1000, 1000, out_c).astype(np.int32)),
        Tensor(3, "out", out_shape, dtype, Quant((0.1,), (3,))),
    ]
    op = Op(7, kind, (0, 1, 2 if bias else -1), (3,), attrs)
    return Graph("t", tuple(tensors), (op,), (0,), (3,))


def _conv(padding=Padding.SAME, stride=1, dilation=1, act=Activation.NONE):
    return Conv2DAttrs(padding, stride, stride, dilation, dilation, act)


def _fields(call) -> dict:
    return {f.name: f.value for f in call.fields}


def _array(call, suffix: str) -> np.ndarray:
    return next(a.values for a in call.arrays if a.suffix == suffix)


def test_conv_lowering_computes_geometry_and_folds_the_input_offset():
    g = _single_op(OpKind.CONV_2D, _conv(stride=2), (1, 9, 8, 3), (5, 3, 3, 3), (1, 5, 4, 5))
    call = reference_call(g.ops[0], g)
    f = _fields(call)
    assert call.function == "mcc_conv2d_s8" and call.params_type == "mcc_conv2d_params"
    # SAME, stride 2: out 5x4; total padding (5-1)*2+3-9 = 2 -> 1 and (4-1)*2+3-8 = 1 -> 0.
    assert (f["out_h"], f["out_w"], f["pad_h"], f["pad_w"]) == (5, 4, 1, 0)
    assert (f["input_offset"], f["output_offset"]) == (7, 3)
    w, b = g.tensor(1).data, g.tensor(2).data
    expected = b.astype(np.int64) + 7 * w.reshape(5, -1).astype(np.int64).sum(axis=1)
    assert _array(call, "bias").tolist() == expected.tolist()
    assert _array(call, "weights").tolist() == w.reshape(-1).tolist()
    assert f["weights"] == ArrayRef("weights") and f["folded_bias"] == ArrayRef("bias")
    assert call.macs == 5 * 4 * 5 * 3 * 3 * 3
    assert call.scratch_bytes == 0


def test_pointwise_conv_becomes_a_matrix_multiply_over_pixels():
    g = _single_op(OpKind.CONV_2D, _conv(), (2, 3, 4, 6), (5, 1, 1, 6), (2, 3, 4, 5))
    call = reference_call(g.ops[0], g)
    f = _fields(call)
    assert call.function == "mcc_conv2d_1x1_s8"
    assert call.params_type == "mcc_fully_connected_params"
    assert (f["rows"], f["depth"], f["out_c"], f["per_channel"]) == (24, 6, 5, 1)
    fast = lower(g.ops[0], g)
    assert fast.function == "mcc_gemm_s8" and fast.params_type == "mcc_gemm_params"
    assert (_fields(fast)["rows"], _fields(fast)["depth"], _fields(fast)["row_block"]) == (24, 6, 4)
    # A 1x1 filter at stride 2 skips pixels: not a GEMM over the input rows, an im2col.
    g = _single_op(OpKind.CONV_2D, _conv(stride=2), (1, 4, 4, 6), (5, 1, 1, 6), (1, 2, 2, 5))
    assert reference_call(g.ops[0], g).function == "mcc_conv2d_s8"
    assert lower(g.ops[0], g).function == "mcc_conv2d_im2col_s8"


def test_grouped_conv_and_missing_bias():
    # 6 input channels, filters of depth 2: three groups of two output channels.
    g = _single_op(OpKind.CONV_2D, _conv(), (1, 5, 5, 6), (6, 3, 3, 2), (1, 5, 5, 6), bias=False)
    call = reference_call(g.ops[0], g)
    assert _fields(call)["filter_c"] == 2 and _fields(call)["in_c"] == 6
    w = g.tensor(1).data.reshape(6, -1).astype(np.int64)
    assert _array(call, "bias").tolist() == (7 * w.sum(axis=1)).tolist()


def test_depthwise_weights_are_laid_out_channel_major():
    attrs = DepthwiseConv2DAttrs(Padding.VALID, 1, 1, 1, 1, 2, Activation.RELU6)
    g = _single_op(OpKind.DEPTHWISE_CONV_2D, attrs, (1, 6, 5, 3), (1, 3, 2, 6), (1, 4, 4, 6),
                   w_scales=tuple(0.01 * (i + 1) for i in range(6)), w_axis=3)
    call = reference_call(g.ops[0], g)
    f = _fields(call)
    assert call.function == "mcc_depthwise_conv2d_s8"
    assert f["depth_multiplier"] == 2 and (f["pad_h"], f["pad_w"]) == (0, 0)
    w = g.tensor(1).data
    assert _array(call, "weights").tolist() == np.transpose(w[0], (2, 0, 1)).reshape(-1).tolist()
    # RELU6 on scale 0.1, zero point 3: [3, 3 + 60].
    assert (f["act_min"], f["act_max"]) == (3, 63)
    assert len(_array(call, "mult")) == 6
    assert call.macs == 4 * 4 * 6 * 3 * 2


def test_fully_connected_per_tensor_keeps_one_multiplier():
    attrs = FullyConnectedAttrs(Activation.RELU, keep_num_dims=True)
    g = _single_op(OpKind.FULLY_CONNECTED, attrs, (2, 3, 8), (4, 8), (2, 3, 4))
    call = reference_call(g.ops[0], g)
    f = _fields(call)
    assert call.function == "mcc_fully_connected_s8"
    assert (f["rows"], f["depth"], f["out_c"], f["per_channel"]) == (6, 8, 4, 0)
    assert _array(call, "mult").tolist() == [per_tensor_multiplier(0.05, 0.02, 0.1)[0]]
    assert call.macs == 6 * 4 * 8


@pytest.mark.parametrize("make,message", [
    (lambda: _single_op(OpKind.CONV_2D, _conv(), (1, 4, 4, 2), (3, 3, 3, 2), (1, 4, 4, 3),
                        dtype=DType.FLOAT32), "only int8"),
    (lambda: _single_op(OpKind.CONV_2D, _conv(act=Activation.TANH), (1, 4, 4, 2), (3, 3, 3, 2),
                        (1, 4, 4, 3)), "TANH"),
    (lambda: _single_op(OpKind.CONV_2D, _conv(), (1, 4, 4, 2), (3, 3, 3, 2), (1, 3, 3, 3)),
     "does not match"),
    (lambda: _single_op(OpKind.CONV_2D, _conv(), (1, 4, 4, 5), (3, 3, 3, 2), (1, 4, 4, 3)),
     "does not fit"),
    (lambda: _single_op(OpKind.CONV_2D, _conv(), (1, 4, 4, 6), (4, 3, 3, 2), (1, 4, 4, 4)),
     "3 groups"),
    (lambda: _single_op(OpKind.DEPTHWISE_CONV_2D,
                        DepthwiseConv2DAttrs(Padding.SAME, 1, 1, 1, 1, 1, Activation.NONE),
                        (1, 4, 4, 2), (1, 3, 3, 4), (1, 4, 4, 4)), "depth_multiplier"),
    (lambda: _single_op(OpKind.FULLY_CONNECTED, FullyConnectedAttrs(Activation.NONE, False),
                        (1, 8), (4, 8), (1, 4), w_zp=3), "zero point"),
    (lambda: _single_op(OpKind.FULLY_CONNECTED, FullyConnectedAttrs(Activation.NONE, False),
                        (1, 9), (4, 8), (1, 4)), "do not form"),
])
def test_unsupported_combinations_name_the_op(make, message):
    g = make()
    with pytest.raises(UnsupportedModelError, match=message) as e:
        lower(g.ops[0], g)
    assert str(e.value).startswith("op 7 (")


def test_macs_of_the_reference_models(shared_models):
    # The MAC counts in ../shared/models/README.md.
    for name, macs in (("person_detect", 7_157_888), ("micro_speech_quantized", 336_000),
                       ("hello_world_int8", 288)):
        g = tflite.load(shared_models / f"{name}.tflite")
        assert sum(c.macs for op in g.ops
                   if op.kind in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.FULLY_CONNECTED)
                   for c in [lower(op, g)]) == macs, name


# ----------------------------------------------------------------------------
# The fast kernels: choice, layouts, requantization, scratch
# ----------------------------------------------------------------------------

def _dw(padding=Padding.SAME, stride=1, dilation=1, mult=1, act=Activation.NONE):
    return DepthwiseConv2DAttrs(padding, stride, stride, dilation, dilation, mult, act)


@pytest.mark.parametrize("kind,attrs,shapes,variant", [
    (OpKind.FULLY_CONNECTED, FullyConnectedAttrs(Activation.NONE, False),
     ((1, 13), (5, 13), (1, 5)), Variant.GEMM),
    (OpKind.CONV_2D, _conv(), ((1, 5, 3, 7), (9, 1, 1, 7), (1, 5, 3, 9)), Variant.GEMM),
    (OpKind.CONV_2D, _conv(stride=2), ((1, 9, 8, 3), (5, 3, 3, 3), (1, 5, 4, 5)), Variant.IM2COL),
    (OpKind.CONV_2D, _conv(dilation=2), ((1, 9, 8, 3), (5, 3, 3, 3), (1, 9, 8, 5)), Variant.IM2COL),
    (OpKind.DEPTHWISE_CONV_2D, _dw(stride=2), ((1, 9, 8, 5), (1, 3, 3, 5), (1, 5, 4, 5)),
     Variant.PLANAR_3X3),
    (OpKind.DEPTHWISE_CONV_2D, _dw(mult=2), ((1, 9, 8, 3), (1, 7, 5, 6), (1, 9, 8, 6)),
     Variant.PLANAR),
    # Three wide but not three high: the wide kernel's 8-byte filter rows.
    (OpKind.DEPTHWISE_CONV_2D, _dw(), ((1, 9, 8, 3), (1, 5, 3, 3), (1, 9, 8, 3)),
     Variant.PLANAR),
    # One input channel (six filters: the one-channel kernel's unrolled loop
    # wants fours, so DSP cores take the planar kernel too).
    (OpKind.DEPTHWISE_CONV_2D, _dw(mult=6), ((1, 9, 8, 1), (1, 3, 3, 6), (1, 9, 8, 6)),
     Variant.PLANAR_3X3),
    # One input channel and a filter the planar kernel does not take: a convolution.
    (OpKind.DEPTHWISE_CONV_2D, _dw(stride=2, mult=8), ((1, 9, 8, 1), (1, 4, 2, 8), (1, 5, 4, 8)),
     Variant.IM2COL),
])
def test_fast_kernel_choice(kind, attrs, shapes, variant):
    in_shape, w_shape, out_shape = shapes
    w_scales = (0.02,) * (w_shape[3] if kind == OpKind.DEPTHWISE_CONV_2D else w_shape[0])
    g = _single_op(kind, attrs, in_shape, w_shape, out_shape, w_scales=w_scales,
                   w_axis=3 if kind == OpKind.DEPTHWISE_CONV_2D else 0)
    for target in (KernelTarget(), KernelTarget(dsp=True, fpu=True)):
        choice = choose(g.ops[0], g, target)
        call = lower(g.ops[0], g, target)
        assert choice.variant == variant and call.function == variant.value
        # The call's scratch and scratch_bytes() are the same number, from the same choice.
        assert call.scratch_bytes == choice.scratch_bytes == scratch_bytes(g.ops[0], g, target)
        assert call.args[-1] == SCRATCH and call.macs == reference_call(g.ops[0], g).macs


# A depthwise layer over one channel at the memory peak (compact: no scratch):
# mcc_depthwise_conv2d_1ch_s8, where the planar and im2col kernels need scratch.
# Over more channels: the planar kernel with one plane on the stack where it
# fits MCC_PLANAR_STACK_PLANE, in strips of output rows where filter_h rows of
# a plane fit it, else the general kernel.
@pytest.mark.parametrize("attrs,shapes,variant,why", [
    (_dw(stride=2, mult=8), ((1, 9, 8, 1), (1, 3, 3, 8), (1, 5, 4, 8)), Variant.ONE_CHANNEL, ""),
    (_dw(padding=Padding.VALID, mult=3), ((1, 19, 16, 1), (1, 10, 8, 3), (1, 10, 9, 3)),
     Variant.ONE_CHANNEL, ""),
    (_dw(stride=3), ((1, 9, 8, 1), (1, 5, 7, 1), (1, 3, 3, 1)), Variant.ONE_CHANNEL, ""),
    # The rest of one input channel: im2col with its two patches on the stack.
    (_dw(dilation=2, mult=2), ((1, 9, 8, 1), (1, 3, 3, 2), (1, 9, 8, 2)), Variant.IM2COL, ""),
    (_dw(mult=2), ((1, 9, 12, 1), (1, 3, 9, 2), (1, 9, 12, 2)), Variant.IM2COL, ""),
    (_dw(mult=2), ((1, 20, 8, 1), (1, 17, 5, 2), (1, 20, 8, 2)), Variant.IM2COL, ""),
    (_dw(mult=2), ((1, 9, 8, 2), (1, 3, 3, 4), (1, 9, 8, 4)), Variant.PLANAR_3X3, ""),
    (_dw(mult=2), ((1, 40, 36, 2), (1, 3, 3, 4), (1, 40, 36, 4)), Variant.PLANAR_3X3, "strips"),
    (_dw(mult=2), ((1, 6, 400, 2), (1, 3, 3, 4), (1, 6, 400, 4)), Variant.GENERAL, "no scratch"),
])
def test_compact_choice_for_one_input_channel(attrs, shapes, variant, why):
    from mcucompile.kernels import lower_compact
    from mcucompile.kernels.conv import _choose, _prepare
    in_shape, w_shape, out_shape = shapes
    g = _single_op(OpKind.DEPTHWISE_CONV_2D, attrs, in_shape, w_shape, out_shape,
                   w_scales=(0.02,) * w_shape[3], w_axis=3)
    choice = _choose(_prepare(g.ops[0], g), compact=True)
    assert choice.variant == variant and choice.scratch_bytes == 0
    assert why == "strips" or why in choice.why
    call = lower_compact(g.ops[0], g)
    assert call.scratch_bytes == 0
    if variant == Variant.ONE_CHANNEL:
        assert call.function == "mcc_depthwise_conv2d_1ch_s8"
        assert _array(call, "weights").dtype == np.int32
        assert call.macs == reference_call(g.ops[0], g).macs
    elif variant == Variant.IM2COL:
        assert call.function == "mcc_conv2d_im2col_s8" and _fields(call)["row_block"] == 2
    elif variant == Variant.PLANAR_3X3:
        fields = _fields(call)
        assert call.function == "mcc_depthwise_conv2d_planar_3x3_s8" and fields["group"] == 0
        plane = fields["plane_h"] * fields["plane_w"]
        assert (plane > 1152) == (why == "strips")
        assert 3 * fields["plane_w"] <= 1152
    else:
        assert call.function == "mcc_depthwise_conv2d_s8"


@pytest.mark.parametrize("kind,attrs,shapes,why", [
    (OpKind.CONV_2D, _conv(), ((1, 5, 5, 6), (6, 3, 3, 2), (1, 5, 5, 6)), "grouped"),
    (OpKind.DEPTHWISE_CONV_2D, _dw(dilation=2), ((1, 9, 8, 3), (1, 3, 3, 3), (1, 9, 8, 3)),
     "dilated"),
    (OpKind.DEPTHWISE_CONV_2D, _dw(), ((1, 9, 8, 3), (1, 3, 4, 3), (1, 9, 8, 3)), "width 4"),
    (OpKind.DEPTHWISE_CONV_2D, _dw(stride=3), ((1, 9, 8, 3), (1, 3, 3, 3), (1, 3, 3, 3)),
     "stride_w 3"),
    (OpKind.DEPTHWISE_CONV_2D, _dw(), ((1, 12, 8, 3), (1, 9, 5, 3), (1, 12, 8, 3)), "height 9"),
])
def test_shapes_the_fast_kernels_do_not_take_go_to_the_general_ones(kind, attrs, shapes, why):
    in_shape, w_shape, out_shape = shapes
    g = _single_op(kind, attrs, in_shape, w_shape, out_shape)
    choice = choose(g.ops[0], g)
    assert choice.variant == Variant.GENERAL and why in choice.why
    assert lower(g.ops[0], g).function == reference_call(g.ops[0], g).function
    assert scratch_bytes(g.ops[0], g) == 0


def test_requantization_the_fast_table_cannot_do_goes_to_the_general_kernels():
    attrs = FullyConnectedAttrs(Activation.NONE, False)
    # Multiplier 0.05 * 0.02 / 0.1 = 0.01: shift -6, fine.
    g = _single_op(OpKind.FULLY_CONNECTED, attrs, (1, 8), (4, 8), (1, 4))
    assert choose(g.ops[0], g).variant == Variant.GEMM
    # Multiplier 0.05 * 2 / 0.1 = 1: shift +1, which the fast table does not express.
    g = _single_op(OpKind.FULLY_CONNECTED, attrs, (1, 8), (4, 8), (1, 4), w_scales=(2.0,))
    assert "not negative" in choose(g.ops[0], g).why
    # A bias near 2^30: doubling the accumulator could overflow.
    g = _single_op(OpKind.FULLY_CONNECTED, attrs, (1, 8), (4, 8), (1, 4))
    g.tensor(2).data[:] = 2**30 - 5
    assert "2^30" in choose(g.ops[0], g).why
    assert lower(g.ops[0], g).function == "mcc_fully_connected_s8"


@pytest.mark.parametrize("in_c,plane,budget,group", [
    (13, 132, 1152, 8),     # nine fit: whole fours (fill_planes transposes four at a time)
    (3, 132, 1152, 3),      # fewer than four channels: all of them
    (64, 600, 2048, 3),     # three planes fit, fewer than four
    (64, 3000, 2048, 1),    # not even one fits: one at a time
    (6, 100, 2048, 4),
])
def test_planar_group_takes_whole_fours_of_the_planes_that_fit(in_c, plane, budget, group):
    from mcucompile.kernels.conv import planar_group
    assert planar_group(in_c, plane, budget) == group


def test_gemm_weights_pair_channels_and_interleave_depth():
    from mcucompile.kernels.conv import gemm_weights
    # 3 channels (one pair and a half), depth 6 (one group and a half).
    w = (np.arange(18, dtype=np.int8) + 1).reshape(3, 6)
    got = gemm_weights(w).reshape(2, 2, 2, 4)          # [pair][group][word][byte]
    # Pair 0, group 0, word 0: (w[0][0], w[1][0], w[0][2], w[1][2]); word 1 for k = 1, 3.
    assert got[0, 0, 0].tolist() == [1, 7, 3, 9] and got[0, 0, 1].tolist() == [2, 8, 4, 10]
    # Group 1 holds k = 4, 5 and zeros for 6, 7.
    assert got[0, 1, 0].tolist() == [5, 11, 0, 0] and got[0, 1, 1].tolist() == [6, 12, 0, 0]
    # Pair 1: channel 2 and a zero channel.
    assert got[1, 0, 0].tolist() == [13, 0, 15, 0] and got[1, 1, 1].tolist() == [18, 0, 0, 0]


def test_one_channel_weights_double_taps_into_int16_lanes_in_blocks_of_four():
    from mcucompile.kernels.conv import one_channel_weights
    # 5 channels (a block of four and one left over), a 2x5 filter (two groups).
    w = (np.arange(50) - 25).astype(np.int8).reshape(5, 2, 5)
    words = one_channel_weights(w).view(np.uint32).astype(np.int64)
    lanes = np.stack([words & 0xFFFF, words >> 16], axis=-1).astype(np.uint16).view(np.int16)
    # The block: [filter_h 2][groups 2][channel 4][word 2][lane 2]; the last channel: [2][2][2][2].
    block = lanes[:2 * 2 * 4 * 2].reshape(2, 2, 4, 2, 2)
    last = lanes[2 * 2 * 4 * 2:].reshape(2, 2, 2, 2)
    assert lanes.shape[0] == 5 * 2 * 2 * 2
    # Word 0 holds taps (4g, 4g + 2), word 1 taps (4g + 1, 4g + 3), doubled; zero past the row.
    assert block[1, 0, 2].tolist() == [[2 * w[2, 1, 0], 2 * w[2, 1, 2]], [2 * w[2, 1, 1], 2 * w[2, 1, 3]]]
    assert block[0, 1, 3].tolist() == [[2 * w[3, 0, 4], 0], [0, 0]]
    assert last[1, 1].tolist() == [[2 * w[4, 1, 4], 0], [0, 0]]
    assert last[0, 0].tolist() == [[2 * w[4, 0, 0], 2 * w[4, 0, 2]], [2 * w[4, 0, 1], 2 * w[4, 0, 3]]]


def _tflm_requantize(acc: int, mult: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier, step by step (reference_ops / gemmlowp)."""
    left, right = max(shift, 0), max(-shift, 0)
    a = ((acc << left) + 2**31) % 2**32 - 2**31
    if a == mult == -2**31:
        high = 2**31 - 1
    else:
        ab = a * mult
        nudge = 2**30 if ab >= 0 else 1 - 2**30
        num = ab + nudge
        high = abs(num) // 2**31 * (1 if num >= 0 else -1)      # truncates toward zero
    mask = (1 << right) - 1
    rem, threshold = high & mask, (mask >> 1) + (1 if high < 0 else 0)
    return (high >> right) + (1 if rem > threshold else 0)


def _fast_requantize(acc: int, mult: int, hib: int, post: int) -> int:
    """mcc_conv.h's "Fast requantization", saturated to int8 as fast_requant is."""
    from mcucompile.quant import fast_requant
    return min(max(fast_requant(acc, mult, hib, post), -128), 127)


def test_fast_requantization_equals_tflite_including_ties():
    from mcucompile.kernels.conv import fast_channel_table  # noqa: F401  (the table's formula)
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(400):
        post = int(rng.integers(1, 20))
        mult = int(rng.integers(2**30, 2**31))
        offset = int(rng.integers(-128, 128))
        hib = (1 << (post - 1)) + offset * (1 << post)
        # Accumulators near every rounding boundary of the final shift, both signs.
        target = rng.integers(-300, 300, 20) * 2**post + 2**(post - 1)
        accs = set((target * 2**31 // mult).tolist()) | set(rng.integers(-2**29, 2**29, 10).tolist())
        for base in list(accs):
            for acc in (base - 1, base, base + 1, -base):
                if abs(acc) >= 2**30:
                    continue
                expected = min(max(_tflm_requantize(acc, mult, -post) + offset, -128), 127)
                assert _fast_requantize(acc, mult, hib, post) == expected, (acc, mult, post, offset)
                checked += 1
    assert checked > 10_000


C_CHECK = r"""
#include <inttypes.h>
#include <stdio.h>
#include "mcc_conv.c"

/* fast_requant against mcc_requantize (TFLite's arithmetic in mcc_common.h). */
static uint64_t state = 0x9E3779B97F4A7C15u;
static uint32_t next(void) { state = state * 6364136223846793005u + 1442695040888963407u; return (uint32_t)(state >> 32); }

int main(void)
{
    long bad = 0, checked = 0;
    for (int i = 0; i < 200000; ++i) {
        const int32_t post = 1 + (int32_t)(next() % 20u);
        const int32_t mult = (int32_t)(0x40000000u | (next() >> 2));
        const int32_t off = (int32_t)(next() % 256u) - 128;
        const int32_t hib = (1 << (post - 1)) + off * (1 << post);
        int32_t acc = (int32_t)(next() >> 2) - 0x20000000;
        if (i & 1) {   /* near a rounding boundary of the last shift */
            const int64_t q = (int64_t)((int32_t)(next() % 600u) - 300) * (INT64_C(1) << post)
                            + (INT64_C(1) << (post - 1));
            acc = (int32_t)(q * INT64_C(2147483648) / mult) + (int32_t)(next() % 3u) - 1;
        }
        int32_t want = mcc_requantize(acc, mult, -post) + off;
        want = MCC_CLAMP(want, -128, 127);
        if (fast_requant(acc, mult, hib, post) != want) {
            if (bad++ < 5) printf("acc %" PRId32 " mult %" PRId32 " post %" PRId32 "\n", acc, mult, post);
        }
        ++checked;
    }
    printf("checked %ld bad %ld\n", checked, bad);
    SCRATCH_LINES
    return bad != 0;
}
"""


def _c_scratch_cases():
    """(C expression printing a scratch size, the Python mirror's value)."""
    from mcucompile.kernels.conv import (gemm_scratch_bytes, im2col_scratch_bytes,
                                         one_channel_scratch_bytes, planar_scratch_bytes,
                                         band_scratch_bytes)
    from mcucompile.kernels.inplace import gemm_inplace_scratch_bytes
    rng = np.random.default_rng(3)
    cases = []
    for _ in range(30):
        rows, depth, rb = int(rng.integers(1, 40)), int(rng.integers(1, 700)), int(rng.choice([1, 4]))
        cases.append((f"{{ mcc_gemm_params p = {{ .rows = {rows}, .depth = {depth}, .row_block = {rb} }};"
                       f" printf(\"%zu\\n\", mcc_gemm_s8_scratch_bytes(&p)); }}",
                       gemm_scratch_bytes(rows, depth, rb)))
        oc, order = int(rng.integers(1, 300)), int(rng.integers(1, 3))
        irb = int(rng.choice([2, 4]))
        cases.append((f"{{ mcc_gemm_params p = {{ .rows = {rows}, .depth = {depth}, .out_c = {oc},"
                       f" .row_block = {irb}, .inplace = {order} }};"
                       f" printf(\"%zu\\n\", mcc_gemm_s8_scratch_bytes(&p)); }}",
                       gemm_inplace_scratch_bytes(depth, oc, irb)))
        b, oh, ow = int(rng.integers(1, 3)), int(rng.integers(1, 5)), int(rng.integers(1, 5))
        fh, fw, ic = int(rng.integers(1, 8)), int(rng.integers(1, 8)), int(rng.integers(1, 9))
        cases.append((f"{{ mcc_conv2d_im2col_params p = {{ .batches = {b}, .out_h = {oh}, .out_w = {ow},"
                       f" .filter_h = {fh}, .filter_w = {fw}, .in_c = {ic}, .row_block = {rb} }};"
                       f" printf(\"%zu\\n\", mcc_conv2d_im2col_s8_scratch_bytes(&p)); }}",
                       im2col_scratch_bytes(b * oh * ow, fh * fw * ic, rb, ic)))
        g, ph, pw = int(rng.integers(1, 9)), int(rng.integers(3, 60)), 4 * int(rng.integers(1, 16))
        cases.append((f"{{ mcc_depthwise_conv2d_planar_params p = {{ .group = {g}, .plane_h = {ph},"
                       f" .plane_w = {pw} }}; printf(\"%zu\\n\","
                       f" mcc_depthwise_conv2d_planar_s8_scratch_bytes(&p)); }}",
                       planar_scratch_bytes(g, ph, pw)))
        fh, fw, oc = int(rng.integers(1, 17)), int(rng.integers(1, 9)), int(rng.integers(1, 9))
        cases.append((f"{{ mcc_depthwise_conv2d_1ch_params p = {{ .filter_h = {fh}, .filter_w = {fw},"
                       f" .out_c = {oc} }}; printf(\"%zu\\n\","
                       f" mcc_depthwise_conv2d_1ch_s8_scratch_bytes(&p)); }}",
                       one_channel_scratch_bytes()))
        cols, ic, st, stack = (int(rng.integers(3, 40)), int(rng.integers(1, 70)),
                               int(rng.integers(1, 3)), int(rng.integers(0, 2)))
        cases.append((f"{{ mcc_conv2d_band_params p = {{ .columns = {cols}, .in_c = {ic},"
                       f" .stride = {st}, .on_stack = {stack} }}; printf(\"%zu\\n\","
                       f" mcc_conv2d_band_s8_scratch_bytes(&p)); }}",
                       band_scratch_bytes(cols, ic, st, bool(stack))))
    # The stack bounds the Python side plans with are the C side's.
    from mcucompile.kernels import conv
    for macro, value in [("MCC_BAND_STACK_BYTES", conv.BAND_STACK),
                         ("MCC_IM2COL_STACK_PATCH", conv.IM2COL_STACK_PATCH),
                         ("MCC_IM2COL_STACK_BLOCK", conv.IM2COL_STACK_BLOCK),
                         ("MCC_GEMM_STACK_BLOCK", conv.GEMM_STACK_BLOCK),
                         ("MCC_GEMM_INPLACE_STACK_BLOCK", conv.GEMM_INPLACE_STACK_BLOCK),
                         ("MCC_PLANAR_STACK_PLANE", conv.PLANAR_STACK_PLANE),
                         ("MCC_PLANAR_MAX_FILTER_H", conv.PLANAR_MAX_FILTER_H)]:
        cases.append((f"printf(\"%d\\n\", (int)({macro}));", value))
    return cases


def test_fast_requantization_in_c_and_scratch_sizes_mirror_python(tmp_path):
    """The portable C of fast_requant against mcc_requantize on 200,000 values (half
    of them next to a rounding tie), and every *_scratch_bytes against its Python
    mirror, with the host compiler (-fsanitize=undefined: no signed overflow)."""
    from mcucompile.resources import data_dir
    from mcucompile.verify import host_compiler
    import subprocess
    cases = _c_scratch_cases()
    src = tmp_path / "check.c"
    src.write_text(C_CHECK.replace("SCRATCH_LINES", "\n    ".join(c for c, _ in cases)))
    exe = tmp_path / "check"
    subprocess.run([host_compiler(), "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror",
                    "-fsanitize=undefined", "-fno-sanitize-recover=undefined",
                    f"-I{data_dir('templates') / 'kernels'}", str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True)
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and lines[0] == "checked 200000 bad 0", out.stdout + out.stderr
    assert [int(v) for v in lines[1:]] == [v for _, v in cases]


# ----------------------------------------------------------------------------
# Bit-exact with TFLM
# ----------------------------------------------------------------------------

def _assert_every_layer_bit_exact(model: bytes, runs: int = 2, reference_model: bytes | None = None,
                                  ) -> None:
    """Compare every layer's output tensor, not just the model outputs: person_detect's
    output is two bytes after a softmax, which would hide most conv mistakes.
    `reference_model`, if given, is what TFLM runs instead of `model`."""
    from harness import host_board

    from mcucompile import reference
    from mcucompile.pipeline import CompileOptions, compile_model
    from mcucompile.verify import build_host_runner, dump_entries, random_inputs, run_host

    # Layer by layer: the graph keeps TFLite's tensors, and the fast kernels run.
    compiled = compile_model(model, host_board(), CompileOptions(memory="layer"))
    inputs = random_inputs(compiled.graph, runs, seed=5)
    with tempfile.TemporaryDirectory() as d:
        exe = build_host_runner(compiled, Path(d))
        _, layers = run_host(exe, compiled, inputs)
    compared = 0
    for r in range(runs):
        ref = reference.run_all_tensors(reference_model or model, inputs[r])
        for e in dump_entries(compiled):
            ours = layers[(r, e.tensor)].reshape(-1)
            theirs = np.asarray(ref[e.tensor]).reshape(-1)
            bad = np.flatnonzero(ours != theirs)
            assert bad.size == 0, (f"run {r}, op {e.op_index}: {bad.size} of {ours.size} bytes differ, "
                                   f"first at {bad[0]} (ours {ours[bad[0]]}, TFLM {theirs[bad[0]]})")
            compared += 1
    assert compared == runs * len(dump_entries(compiled))


@pytest.mark.reference
@pytest.mark.parametrize("name", ["person_detect", "micro_speech_quantized", "hello_world_int8"])
def test_reference_models_are_bit_exact_layer_by_layer(shared_models, name):
    _assert_every_layer_bit_exact((shared_models / f"{name}.tflite").read_bytes())


@pytest.mark.tf
@pytest.mark.reference
def test_small_mobilenet_v2_is_bit_exact_layer_by_layer():
    # Many conv layers in one build: 1x1 expand/project, 3x3 depthwise at stride
    # 1 and 2, inputs after RELU6 (zero point -128, so padded borders matter).
    import modelgen as mg
    _assert_every_layer_bit_exact(mg.mobilenet_v2(resolution=32, num_classes=5, head_channels=32))


# The sweep: each case is one single-op modelgen model (cached on disk after
# the first conversion). Odd channel counts and non-square inputs everywhere.
# Kernel sizes x strides x paddings as a Latin square: every pair of the three
# appears, in 8 models instead of 16 (each build costs ~2 s of sanitized gcc).
KERNEL_STRIDE_PADDING = [(1, 1, "same"), (1, 2, "valid"), (3, 1, "valid"), (3, 2, "same"),
                         (5, 1, "same"), (5, 2, "valid"), (7, 1, "valid"), (7, 2, "same")]
OTHER_PADDING = {"same": "valid", "valid": "same"}

CONV_CASES = {
    **{f"k{k}_s{s}_{p}": dict(kernel=k, stride=s, padding=p) for k, s, p in KERNEL_STRIDE_PADDING},
    "dilation2_same": dict(input_shape=(1, 10, 7, 5), filters=7, kernel=3, dilation=2),
    "dilation2_valid_relu6": dict(input_shape=(1, 10, 7, 5), filters=7, kernel=(3, 2), dilation=2,
                                  padding="valid", activation="relu6"),
    "rect_kernel_stride21_relu": dict(input_shape=(1, 8, 9, 4), filters=6, kernel=(3, 1),
                                      stride=(2, 1), activation="relu"),
    "relu_n1_to_1": dict(activation="relu_n1_to_1"),
    "batch2_no_bias": dict(input_shape=(2, 6, 5, 3), filters=4, use_bias=False),
    "pointwise_batch2": dict(input_shape=(2, 6, 5, 7), filters=5, kernel=1),
    "per_tensor": dict(per_channel=False, activation="relu"),
}
CONV_BASE = dict(input_shape=(1, 9, 11, 3), filters=5)

DEPTHWISE_CASES = {
    # The same square with the paddings swapped, so both families see all 16 combinations.
    **{f"k{k}_s{s}_{OTHER_PADDING[p]}": dict(kernel=k, stride=s, padding=OTHER_PADDING[p])
       for k, s, p in KERNEL_STRIDE_PADDING},
    "mult2_rect": dict(input_shape=(1, 8, 8, 7), kernel=(3, 5), stride=(1, 2), depth_multiplier=2,
                       activation="relu"),
    "mult3_dilation2": dict(input_shape=(1, 10, 7, 5), dilation=2, depth_multiplier=3,
                            activation="relu6"),
    "dilation2_valid": dict(input_shape=(1, 10, 7, 5), dilation=2, padding="valid"),
    "mult8_from_one_channel": dict(input_shape=(1, 9, 7, 1), depth_multiplier=8, stride=2),
    "batch2_no_bias": dict(input_shape=(2, 6, 5, 3), use_bias=False),
    "per_tensor": dict(per_channel=False, activation="relu_n1_to_1"),
}
DEPTHWISE_BASE = dict(input_shape=(1, 9, 11, 3))

DENSE_CASES = {
    "default": dict(),
    "no_bias": dict(input_shape=(1, 16), units=7, use_bias=False),
    "batch4_relu": dict(input_shape=(4, 9), units=5, activation="relu"),
    "keep_num_dims_relu6": dict(input_shape=(2, 3, 5), units=3, activation="relu6"),
    "per_tensor": dict(input_shape=(1, 13), units=6, per_channel=False),
    "per_tensor_batch3": dict(input_shape=(3, 7), units=5, per_channel=False, use_bias=False),
}

# A representative subset runs by default; the rest is marked slow.
FAST = {"conv": {"k1_s1_same", "k3_s2_same", "k7_s1_valid", "dilation2_same", "batch2_no_bias",
                 "per_tensor"},
        "depthwise": {"k3_s1_same", "k5_s2_valid", "mult2_rect", "mult3_dilation2",
                      "batch2_no_bias", "per_tensor"},
        "dense": {"no_bias", "batch4_relu", "keep_num_dims_relu6", "per_tensor"}}


def _cases(family: str, cases: dict, base: dict):
    for name, kw in cases.items():
        marks = [] if name in FAST[family] else [pytest.mark.slow]
        yield pytest.param({**base, **kw}, id=name, marks=marks)


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("kw", _cases("conv", CONV_CASES, CONV_BASE))
def test_conv2d_bit_exact(kw):
    import modelgen as mg
    from harness import assert_bit_exact
    assert_bit_exact(mg.conv2d(**kw))


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("kw", _cases("depthwise", DEPTHWISE_CASES, DEPTHWISE_BASE))
def test_depthwise_conv2d_bit_exact(kw):
    import modelgen as mg
    from harness import assert_bit_exact
    assert_bit_exact(mg.depthwise_conv2d(**kw))


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("kw", _cases("dense", DENSE_CASES, {}))
def test_fully_connected_bit_exact(kw):
    import modelgen as mg
    from harness import assert_bit_exact
    assert_bit_exact(mg.dense(**kw))


# --- models the converter does not emit -------------------------------------
# modelgen's calibration data is symmetric, so its input zero points are ~0 and
# a padded border reads the same as a zero tap. These edits exercise the
# folded-bias border handling, a missing bias (input -1) and grouped filters.

def _edited(model: bytes, edit) -> bytes:
    import modelgen as mg
    return mg._edit_flatbuffer(model, edit)


def _set_zero_points(input_zp: int, output_zp: int):
    def edit(m):
        sg = m.subgraphs[0]
        op = sg.operators[0]
        sg.tensors[op.inputs[0]].quantization.zeroPoint = np.array([input_zp], dtype=np.int64)
        sg.tensors[op.outputs[0]].quantization.zeroPoint = np.array([output_zp], dtype=np.int64)
    return edit


def _drop_bias(m):
    op = m.subgraphs[0].operators[0]
    op.inputs = np.array([op.inputs[0], op.inputs[1], -1], dtype=np.int32)


def _halve_filter_depth(m):
    """[O, H, W, I] -> [O, H, W, I/2]: a grouped convolution with two groups."""
    sg = m.subgraphs[0]
    f = sg.tensors[sg.operators[0].inputs[1]]
    buf = m.buffers[f.buffer]
    w = np.asarray(buf.data, dtype=np.uint8).reshape(tuple(f.shape))
    w = np.ascontiguousarray(w[..., : w.shape[-1] // 2])
    buf.data = w.reshape(-1)
    f.shape = np.array(w.shape, dtype=np.int32)


def _both(*edits):
    def edit(m):
        for e in edits:
            e(m)
    return edit


EDITED_CASES = {
    "conv_zero_points_same": ("conv2d", dict(input_shape=(1, 7, 6, 3), filters=5, kernel=5, stride=2),
                              _set_zero_points(97, -40)),
    "conv_dilated_zero_points": ("conv2d", dict(input_shape=(1, 9, 8, 3), filters=3, dilation=2),
                                 _set_zero_points(-128, 127)),
    "conv_no_bias_zero_points": ("conv2d", dict(input_shape=(1, 6, 7, 5), filters=3),
                                 _both(_drop_bias, _set_zero_points(-77, 5))),
    "conv_grouped": ("conv2d", dict(input_shape=(1, 7, 6, 6), filters=4),
                     _both(_halve_filter_depth, _set_zero_points(33, 0))),
    "depthwise_zero_points": ("depthwise_conv2d", dict(input_shape=(1, 7, 6, 5), kernel=5,
                                                       depth_multiplier=2),
                              _set_zero_points(120, -3)),
    "dense_zero_points_no_bias": ("dense", dict(input_shape=(2, 11), units=5),
                                  _both(_drop_bias, _set_zero_points(64, -100))),
}


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("case", list(EDITED_CASES))
def test_edited_models_bit_exact(case):
    import modelgen as mg
    from harness import assert_bit_exact
    factory, kw, edit = EDITED_CASES[case]
    assert_bit_exact(_edited(getattr(mg, factory)(**kw), edit))


def _zero_bias(m):
    sg = m.subgraphs[0]
    buf = m.buffers[sg.tensors[sg.operators[0].inputs[2]].buffer]
    buf.data = np.zeros_like(np.asarray(buf.data))


@pytest.mark.tf
@pytest.mark.reference
def test_depthwise_without_bias_adds_nothing():
    # TFLM crashes on a DEPTHWISE_CONV_2D whose bias input is -1 (its Prepare
    # releases the absent bias tensor), so compare with the same model carrying
    # an all-zero bias: TFLM's kernel skips a missing bias, i.e. adds zero.
    import modelgen as mg
    base = mg.depthwise_conv2d(input_shape=(1, 6, 5, 3), stride=2, depth_multiplier=2)
    zp = _set_zero_points(-50, 9)
    _assert_every_layer_bit_exact(_edited(base, _both(_drop_bias, zp)),
                                  reference_model=_edited(base, _both(_zero_bias, zp)))


# --- depthwise over one input channel at the memory peak ------------------------
# A one-layer model's layer is its memory peak, so with compact_at_peak the
# scratch-free mcc_depthwise_conv2d_1ch_s8 runs it: interior pixels read in
# place, border pixels (SAME padding, the input's last bytes) through the
# stack window. Odd, non-square images drawn from a seeded generator.

def _one_channel_cases() -> dict[str, dict]:
    rng = np.random.default_rng(11)
    cases = {}
    for k, s, p, m in [(3, 1, "same", 8), (3, 2, "valid", 3), (5, 2, "same", 1), (5, 1, "valid", 8),
                       (7, 1, "same", 3), (7, 2, "valid", 8), ((3, 5), 1, "same", 3),
                       ((10, 8), 2, "same", 8), ((2, 3), 2, "same", 1), ((3, 4), 1, "same", 8)]:
        h, w = (int(rng.integers(4, 9)) * 2 + 1 for _ in range(2))
        kh, kw = (k, k) if isinstance(k, int) else k
        name = f"k{kh}x{kw}_s{s}_{p}_m{m}"
        cases[name] = dict(input_shape=(1, h, w + 2, 1), kernel=k, stride=s, padding=p,
                           depth_multiplier=m, activation=str(rng.choice(["relu", "relu6", "none"])),
                           seed=int(rng.integers(100)))
    for kw in cases.values():
        if kw["activation"] == "none":
            kw["activation"] = None
    return cases


ONE_CHANNEL_CASES = _one_channel_cases()
ONE_CHANNEL_FAST = {"k3x3_s1_same_m8", "k3x3_s2_valid_m3", "k5x5_s2_same_m1", "k10x8_s2_same_m8",
                    "k3x5_s1_same_m3", "k3x4_s1_same_m8"}
COMPACT_LAYER = dict(memory="layer", compact_at_peak=True)


def _assert_one_channel_kernel(model: bytes, general: bool | None = None) -> None:
    """`general`: whether the layer needs the kernel's general path, which the
    model's mcc_config.h then keeps (else it compiles it out)."""
    from harness import host_board
    from mcucompile.pipeline import CompileOptions, compile_model
    compiled = compile_model(model, host_board(), CompileOptions(**COMPACT_LAYER))
    layers = [(layer.kernel, layer.scratch_bytes) for layer in compiled.report.layers]
    assert layers == [("mcc_depthwise_conv2d_1ch_s8", 0)], layers
    if general is not None:
        omitted = "#define MCC_OMIT_DW1CH_GENERAL 1" in compiled.files["mcc_config.h"]
        assert omitted == (not general), compiled.files["mcc_config.h"]


def _needs_general_path(case: dict) -> bool:
    kh, kw = (case["kernel"],) * 2 if isinstance(case["kernel"], int) else case["kernel"]
    return not (kh == 3 and kw <= 4 and case["depth_multiplier"] % 4 == 0)


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("name", [pytest.param(n, marks=[] if n in ONE_CHANNEL_FAST else
                                               [pytest.mark.slow]) for n in ONE_CHANNEL_CASES])
def test_one_channel_depthwise_at_the_peak_bit_exact(name):
    import modelgen as mg
    from harness import assert_bit_exact
    from mcucompile.pipeline import CompileOptions
    model = mg.depthwise_conv2d(**ONE_CHANNEL_CASES[name])
    _assert_one_channel_kernel(model, general=_needs_general_path(ONE_CHANNEL_CASES[name]))
    assert_bit_exact(model, options=CompileOptions(**COMPACT_LAYER))


@pytest.mark.tf
def test_an_omitted_kernel_path_fails_the_link_or_the_invoke_never_computes(tmp_path):
    # mcc_config.h is the generator's promise that no layer takes a path. Kernels
    # built without a path the model takes do not link with it; and were the
    # generator's mirror of the dispatch wrong (here: its guard removed), the
    # kernel would report an error, never wrong bytes.
    import modelgen as mg
    from harness import host_board
    from mcucompile.errors import MismatchError, ToolchainError
    from mcucompile.pipeline import CompileOptions, compile_model
    from mcucompile.verify import build_host_runner, random_inputs, run_host
    model = mg.depthwise_conv2d(**ONE_CHANNEL_CASES["k5x5_s2_same_m1"])
    compiled = compile_model(model, host_board(), CompileOptions(**COMPACT_LAYER))
    assert "MCC_OMIT_DW1CH_GENERAL" not in compiled.files["mcc_config.h"]
    assert "!mcc_has_path_DW1CH_GENERAL" in compiled.files["model.c"]
    compiled.files["mcc_config.h"] = compiled.files["mcc_config.h"].replace(
        "#endif /* MCC_CONFIG_H */", "#define MCC_OMIT_DW1CH_GENERAL 1\n#endif /* MCC_CONFIG_H */")
    with pytest.raises(ToolchainError, match="undefined reference to .mcc_has_path_DW1CH_GENERAL"):
        build_host_runner(compiled, tmp_path / "link")
    compiled.files["model.c"] = compiled.files["model.c"].replace("!mcc_has_path_DW1CH_GENERAL", "0").replace(
        "extern const uint8_t mcc_has_path_DW1CH_GENERAL;", "")
    exe = build_host_runner(compiled, tmp_path / "run")
    with pytest.raises(MismatchError, match="invoke failed with status 1"):
        run_host(exe, compiled, random_inputs(compiled.graph, 1))


IM2COL_DISPATCH = r"""
#include <stdio.h>
#include <stdlib.h>
#include "mcc_conv.c"

/* Each line: batches in_h in_w in_c out_h out_w out_c fh fw sh sw pad_h pad_w row_block.
 * Prints the kernel's status: 0, or MCC_ERROR where its path is compiled out. */
int main(void)
{
    static int8_t input[1 << 16], output[1 << 16], weights[1 << 16], scratch[1 << 16];
    static int32_t channels[4 * 64];
    for (int c = 0; c < 64; ++c) {
        channels[4 * c + 1] = 1 << 30;
        channels[4 * c + 2] = 1;
        channels[4 * c + 3] = 1;
    }
    mcc_conv2d_im2col_params p = { 0 };
    while (scanf("%d %d %d %d %d %d %d %d %d %d %d %d %d %d", &p.batches, &p.in_h, &p.in_w, &p.in_c,
                 &p.out_h, &p.out_w, &p.out_c, &p.filter_h, &p.filter_w, &p.stride_h, &p.stride_w,
                 &p.pad_h, &p.pad_w, &p.row_block) == 14) {
        p.dilation_h = p.dilation_w = 1;
        p.act_min = -128;
        p.act_max = 127;
        p.weights = weights;
        p.channels = channels;
        printf("%d\n", mcc_conv2d_im2col_s8(&p, input, output, scratch));
    }
    return 0;
}
"""


def test_im2col_paths_mirror_the_kernels_dispatch(tmp_path):
    # One host build per im2col path, the other two compiled out: on random
    # layers, exactly the build that keeps conv.im2col_paths' path runs them.
    import subprocess
    from mcucompile.kernels.conv import im2col_paths
    from mcucompile.resources import data_dir
    from mcucompile.verify import host_compiler
    rng = np.random.default_rng(3)
    cases = []
    while len(cases) < 300:
        b, ih, iw, ic, oc = (int(rng.integers(1, 3)), int(rng.integers(1, 13)), int(rng.integers(1, 13)),
                             int(rng.integers(1, 41)), int(rng.integers(1, 10)))
        fh, fw, sh, sw = (*(int(v) for v in rng.integers(1, 4, 2)), *(int(v) for v in rng.integers(1, 3, 2)))
        ph, pw = (int(v) for v in rng.integers(0, 2, 2))
        oh, ow = (ih + 2 * ph - fh) // sh + 1, (iw + 2 * pw - fw) // sw + 1
        if oh >= 1 and ow >= 1 and b * ih * iw * ic <= 1 << 16 and b * oh * ow * oc <= 1 << 16:
            cases.append((b, ih, iw, ic, oh, ow, oc, fh, fw, sh, sw, ph, pw, int(rng.choice([1, 2, 4]))))
    # RGB first layers (rare above): blocks in scratch, on the stack, and one by one.
    cases += [(1, 9, 12, 3, 7, 10, 5, 3, 3, 1, 1, 0, 0, 4), (2, 11, 11, 3, 6, 6, 4, 3, 3, 2, 2, 1, 1, 2),
              (1, 9, 12, 3, 7, 10, 5, 3, 3, 1, 1, 0, 0, 1)]
    stdin = "".join(" ".join(map(str, c)) + "\n" for c in cases)
    src = tmp_path / "dispatch.c"
    src.write_text(IM2COL_DISPATCH)
    paths = ("IM2COL_WIDENED", "IM2COL_PATCHES", "IM2COL_STACK_PAIRS")
    runs = {}
    for keep in paths:
        exe = tmp_path / keep.lower()
        subprocess.run([host_compiler(), "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror",
                        *(f"-DMCC_OMIT_{p}" for p in paths if p != keep),
                        f"-I{data_dir('templates') / 'kernels'}", str(src), "-o", str(exe)], check=True)
        out = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True)
        runs[keep] = [int(v) for v in out.stdout.split()]
    seen = set()
    for i, (b, ih, iw, ic, oh, ow, oc, fh, fw, sh, sw, ph, pw, rb) in enumerate(cases):
        rgb = (ic, fh, fw) == (3, 3, 3)
        taken = im2col_paths(b * oh * ow, fh * fw * ic, rb, ic, rgb)
        (want,) = taken - {"IM2COL_RGB"}
        seen.add(want)
        assert {k: runs[k][i] for k in paths} == {k: int(k != want) for k in paths}, cases[i]
        # The RGB widening (DSP builds only, so not in these) within the int8 way's blocks.
        blocks = want == "IM2COL_PATCHES" and rb in (2, 4) and b * oh * ow >= 4
        assert ("IM2COL_RGB" in taken) == (rgb and blocks), cases[i]
        seen.update(taken)
    assert seen == set(paths) | {"IM2COL_RGB"}


def test_every_optional_kernel_path_is_one_the_library_can_omit():
    from mcucompile.kernels import OPTIONAL_PATHS
    from mcucompile.resources import data_dir
    for library, paths in OPTIONAL_PATHS.items():
        source = (data_dir("templates") / "kernels" / f"{library}.c").read_text()
        header = (data_dir("templates") / "kernels" / f"{library}.h").read_text()
        for path in paths:
            assert f"#if defined(MCC_OMIT_{path})" in source, (library, path)
            assert f"const uint8_t mcc_has_path_{path} = 1;" in source, (library, path)
            assert f"extern const uint8_t mcc_has_path_{path};" in header, (library, path)


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("zero_points", [(97, -40), (-128, 127)])
def test_one_channel_depthwise_pads_with_the_input_zero_point(zero_points):
    # The converter's zero points are ~0, where a pad value and a zero tap agree.
    import modelgen as mg
    from harness import assert_bit_exact
    from mcucompile.pipeline import CompileOptions
    model = _edited(mg.depthwise_conv2d(input_shape=(1, 9, 11, 1), kernel=(5, 3), stride=2,
                                        depth_multiplier=5), _set_zero_points(*zero_points))
    _assert_one_channel_kernel(model)
    assert_bit_exact(model, options=CompileOptions(**COMPACT_LAYER))


# --- im2col at the memory peak: two patches on the stack, no scratch -------------

@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("factory,kw", [
    ("conv2d", dict(input_shape=(1, 9, 11, 16), filters=7, kernel=3, padding="same", activation="relu")),
    ("conv2d", dict(input_shape=(1, 10, 9, 3), filters=5, kernel=5, stride=1, padding="valid",
                    dilation=2)),
    ("conv2d", dict(input_shape=(1, 7, 7, 63), filters=4, kernel=3, stride=2, padding="same")),
    ("depthwise_conv2d", dict(input_shape=(1, 9, 8, 1), kernel=3, dilation=2, depth_multiplier=2)),
], ids=["k3_c16_same", "k5_c3_dilated", "k3_c63_largest_patch", "depthwise_1ch_dilated"])
def test_im2col_on_the_stack_at_the_peak_bit_exact(factory, kw):
    import modelgen as mg
    from harness import assert_bit_exact, host_board
    from mcucompile.pipeline import CompileOptions, compile_model
    model = getattr(mg, factory)(**kw)
    compiled = compile_model(model, host_board(), CompileOptions(**COMPACT_LAYER))
    layers = [(layer.kernel, layer.scratch_bytes) for layer in compiled.report.layers]
    assert layers == [("mcc_conv2d_im2col_s8", 0)], layers
    (call,) = [c for c in compiled.calls.values() if c is not None]
    assert _fields(call)["row_block"] == 2
    assert_bit_exact(model, options=CompileOptions(**COMPACT_LAYER))


def test_patches_too_big_for_the_stack_take_the_general_kernel():
    from mcucompile.kernels.conv import IM2COL_STACK_PATCH, _choose, _prepare
    # 3x3 over 65 channels: 588 bytes (147 depth groups) > 576.
    g = _single_op(OpKind.CONV_2D, Conv2DAttrs(Padding.SAME, 1, 1, 1, 1, Activation.NONE),
                   (1, 6, 6, 65), (4, 3, 3, 65), (1, 6, 6, 4), w_scales=(0.02,) * 4, w_axis=0)
    assert 4 * ((9 * 65 + 3) // 4) > IM2COL_STACK_PATCH
    assert _choose(_prepare(g.ops[0], g), compact=True).variant == Variant.GENERAL


# --- 3x3 convolutions in bands (mcc_conv2d_band_s8), its portable loops ----------
# Chosen for DSP targets only; built for the M7 and run on the host, the model
# takes the band kernel's portable C (the same layout and scratch as the
# assembly tiles the QEMU tests run).

@pytest.mark.reference
@pytest.mark.parametrize("kw,compact", [
    (dict(input_shape=(1, 11, 29, 16), filters=7, kernel=3, padding="same", activation="relu"), False),
    (dict(input_shape=(1, 13, 12, 12), filters=5, kernel=3, stride=2, padding="valid"), False),
    (dict(input_shape=(1, 9, 13, 8), filters=9, kernel=3, stride=2, padding="same"), True),
    (dict(input_shape=(1, 8, 11, 16), filters=4, kernel=3, padding="valid"), True),
    (dict(input_shape=(1, 10, 9, 6), filters=17, kernel=3, padding="same"), False),
], ids=["s1_same_c16_buffer_fills", "s2_valid_c12", "s2_same_c8_stack", "s1_valid_c16_stack",
        "s1_c6_padded_to_8"])
def test_band_conv_portable_loops_bit_exact(kw, compact):
    import modelgen as mg
    from harness import assert_bit_exact
    from mcucompile import boards
    from mcucompile.pipeline import CompileOptions, compile_model
    model = mg.conv2d(seed=3, **kw)
    board = boards.load("qemu-m7")
    options = CompileOptions(memory="layer", compact_at_peak=compact)
    (call,) = [c for c in compile_model(model, board, options).calls.values() if c]
    fields = {f.name: f.value for f in call.fields}
    assert call.function == "mcc_conv2d_band_s8" and fields["on_stack"] == int(compact), fields
    assert (call.scratch_bytes == 0) == compact
    # Built for a core without DSP, the same layer takes im2col.
    host = [c for c in compile_model(model, boards.load("qemu-m3"), options).calls.values() if c]
    assert host[0].function == "mcc_conv2d_im2col_s8"
    assert_bit_exact(model, options=options, board=board)


def test_band_weights_pair_channels_by_filter_row():
    from mcucompile.kernels.conv import band_weights
    rng = np.random.default_rng(5)
    w = rng.integers(-128, 128, size=(3, 3, 3, 6), dtype=np.int8)    # [out_c, dy, dx, in_c]
    words = band_weights(w).reshape(2, 3, 4, 3, 4)                   # [p, dx, q, dy order, bytes]
    for p_, dx, q, d, byte in np.ndindex(words.shape):
        dy = (1, 2, 0)[d]
        g, odd = divmod(q, 2)
        ci = 4 * g + odd + 2 * (byte // 2)
        co = 2 * p_ + byte % 2
        want = w[co, dy, dx, ci] if co < 3 and ci < 6 else 0
        assert words[p_, dx, q, d, byte] == want, (p_, dx, q, d, byte)
