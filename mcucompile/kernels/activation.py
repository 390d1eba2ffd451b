"""Activation kernels: SOFTMAX, LOGISTIC, HARD_SWISH, RELU, RELU6, QUANTIZE, DEQUANTIZE.

An int8 -> int8 activation maps each of the 256 possible input values to one
output value. So LOGISTIC, HARD_SWISH, a rescaling RELU and an int8 QUANTIZE
all compile to one 256-entry lookup table: at compile time Python runs TFLM's
own integer arithmetic (reproduced below step by step, with int32/int16
wrap-around where C++ would wrap) on every input value, and the device only
indexes the table. That is bit-exact by construction, and faster on the
device than the fixed-point math it replaces.

SOFTMAX depends on a whole row, so its normalisation runs on the device; only
its exp() values, which depend on one of 256 possible differences to the row
maximum, are tabulated here.

The TFLM code paths mirrored (tflite-micro, reference kernels):
  LOGISTIC   logistic_common.cc + reference/integer_ops/logistic.h (gemmlowp logistic on Q4.27)
  HARD_SWISH hard_swish_common.cc + reference/hard_swish.h (int16 "reluish" fixed point)
  RELU       activations_common.cc ReluQuantized (requantizes when scales differ)
  RELU6      activations.cc Relu6Quantized (a clamp in the *input* scale, no rescaling)
  SOFTMAX    softmax_common.cc + reference/softmax.h (gemmlowp exp on Q5.26, sums in Q12.19)
  QUANTIZE   quantize_common.cc (AffineQuantize for float, Requantize for int8)
  DEQUANTIZE dequantize_common.cc (float scale * (q - zero_point))
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedModelError
from ..ir import DType, Graph, Op, OpKind, SoftmaxAttrs, Tensor
from ..quant import quantize_multiplier, round_half_away
from . import (ArrayRef, ConstArray, Field, FloatValue, KernelCall, KernelTarget, TensorArg,
               lowering)

LIBRARY = "mcc_activation"
INT8_VALUES = range(-128, 128)

# ----------------------------------------------------------------------------
# TFLM's integer arithmetic, on Python ints
# ----------------------------------------------------------------------------

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1


def wrap32(x: int) -> int:
    """Two's-complement int32 wrap-around, as the C++ code gets in practice."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def wrap16(x: int) -> int:
    """static_cast<int16_t>: keep the low 16 bits."""
    return ((x + (1 << 15)) & 0xFFFF) - (1 << 15)


def _trunc_div(a: int, b: int) -> int:
    """C integer division (rounds toward zero), b > 0."""
    q = abs(a) // b
    return q if a >= 0 else -q


def srdhm32(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return wrap32(_trunc_div(ab + nudge, 1 << 31))


def rdbp32(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT on int32: x / 2^exponent, ties away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier (double rounding, int32)."""
    left = shift if shift > 0 else 0
    right = 0 if shift > 0 else -shift
    return rdbp32(srdhm32(wrap32(x * (1 << left)), multiplier), right)


def saturating_shift_left32(x: int, exponent: int) -> int:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for exponent > 0."""
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return x << exponent


def rescale32(x: int, src_integer_bits: int, dst_integer_bits: int) -> int:
    """gemmlowp Rescale<dst>(FixedPoint<int32, src>): saturating or rounding shift."""
    exponent = src_integer_bits - dst_integer_bits
    if exponent > 0:
        return saturating_shift_left32(x, exponent)
    if exponent < 0:
        return rdbp32(x, -exponent)
    return x


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: int) -> int:
    """exp(a) for a Q0.31 value a in [-1/4, 0): Taylor series around -1/8."""
    constant_term = 1895147668        # exp(-1/8)
    constant_1_over_3 = 715827883
    x = wrap32(a + (1 << 28))         # a + 1/8
    x2 = srdhm32(x, x)
    x3 = srdhm32(x2, x)
    x4 = srdhm32(x2, x2)
    x4_over_4 = rdbp32(x4, 2)
    poly = rdbp32(wrap32(srdhm32(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return wrap32(constant_term + srdhm32(constant_term, wrap32(x + poly)))


# exp(-2^k) in Q0.31, for the barrel shifter over the integer part of -a.
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a: int, integer_bits: int) -> int:
    """gemmlowp exp_on_negative_values: exp(a) in Q0.31 for a <= 0 in Q<integer_bits>."""
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_one_quarter = wrap32((a & (one_quarter - 1)) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale32(a_mod_quarter_minus_one_quarter, integer_bits, 0))
    remainder = wrap32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent and remainder & (1 << (fractional_bits + exponent)):
            result = srdhm32(result, multiplier)
    if integer_bits > 5 and a < -(1 << (36 - integer_bits)):  # below -32: exp is 0
        result = 0
    return INT32_MAX if a == 0 else result


def _rounding_half_sum(a: int, b: int) -> int:
    s = a + b
    return _trunc_div(s + (1 if s >= 0 else -1), 2)


def one_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    """gemmlowp: 1 / (1 + a) for a Q0.31 value a in [0, 1), by Newton-Raphson (Q2.29)."""
    half_denominator = _rounding_half_sum(a, INT32_MAX)
    constant_48_over_17 = 1515870810
    constant_neg_32_over_17 = -1010580540
    x = wrap32(constant_48_over_17 + srdhm32(half_denominator, constant_neg_32_over_17))
    for _ in range(3):
        half_denominator_times_x = srdhm32(half_denominator, x)
        one_minus = wrap32((1 << 29) - half_denominator_times_x)
        x = wrap32(x + rescale32(srdhm32(x, one_minus), 4, 2))
    return rescale32(x, 1, 0)  # ExactMulByPot<-1> makes it Q1.30; Rescale<0>


def gemmlowp_logistic(a: int, integer_bits: int) -> int:
    """gemmlowp logistic(a) in Q0.31 for an int32 a in Q<integer_bits>."""
    if a == 0:
        return 1 << 30
    abs_a = a if a > 0 else wrap32(-a)
    positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap32(-abs_a), integer_bits))
    return positive if a > 0 else wrap32(INT32_MAX - positive)


def calculate_input_radius(integer_bits: int, left_shift: int, total_signed_bits: int = 31) -> int:
    """TFLite's CalculateInputRadius (double arithmetic, floored)."""
    max_input_rescaled = (1.0 * ((1 << integer_bits) - 1)
                          * float(1 << (total_signed_bits - integer_bits)) / float(1 << left_shift))
    return int(math.floor(max_input_rescaled))


# --- int16 fixed point (HARD_SWISH) ---

def srdhm16(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul on int16."""
    if a == b == INT16_MIN:
        return INT16_MAX
    ab = a * b
    nudge = (1 << 14) if ab >= 0 else 1 - (1 << 14)
    return wrap16(_trunc_div(ab + nudge, 1 << 15))


def sdhm16(a: int, b: int) -> int:
    """TFLite's SaturatingDoublingHighMul on int16: like srdhm16 but truncating."""
    if a == b == INT16_MIN:
        return INT16_MAX
    return wrap16(_trunc_div(a * b, 1 << 15))


def rdbp16(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT on int16 (the mask is an int16 too)."""
    mask = wrap16((1 << exponent) - 1)
    remainder = wrap16(x & mask)
    threshold = wrap16((mask >> 1) + (1 if x < 0 else 0))
    return wrap16((x >> exponent) + (1 if remainder > threshold else 0))


def saturating_left_shift16(value: int, amount: int) -> int:
    return max(INT16_MIN, min(INT16_MAX, value * (1 << amount)))


def downscale_multiplier_to_int16(multiplier: int) -> int:
    """TFLite's DownScaleInt32ToInt16Multiplier: round a Q0.31 multiplier to Q0.15."""
    if multiplier >= INT32_MAX - (1 << 15):
        return INT16_MAX
    return (multiplier + (1 << 15)) >> 16


# ----------------------------------------------------------------------------
# Per-op integer functions, as TFLM computes them (prepare + eval)
# ----------------------------------------------------------------------------

def _f32(x) -> np.float32:
    return np.float32(x)


def _requantize(x: int, in_zp: int, out_zp: int, multiplier: int, shift: int) -> int:
    """Requantize / ReluQuantized body before the clamp."""
    return out_zp + multiply_by_quantized_multiplier(x - in_zp, multiplier, shift)


def requantize_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """QUANTIZE int8 -> int8 (reference_ops::Requantize), for inputs -128..127."""
    multiplier, shift = quantize_multiplier(float(in_scale) / float(out_scale))
    return np.array([max(-128, min(127, _requantize(x, in_zp, out_zp, multiplier, shift)))
                     for x in INT8_VALUES], dtype=np.int8)


def relu_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """RELU int8 (ReluQuantized): requantize, then clamp to [max(-128, out_zp), 127]."""
    multiplier, shift = quantize_multiplier(float(in_scale) / float(out_scale))
    lo = max(-128, out_zp)  # out_zp + roundf(0.0f / scale)
    return np.array([max(lo, min(127, _requantize(x, in_zp, out_zp, multiplier, shift)))
                     for x in INT8_VALUES], dtype=np.int8)


def relu6_bounds(in_scale: float, in_zp: int) -> tuple[int, int]:
    """RELU6 int8 clamps in the input's scale: [zero_point, quantized 6.0]
    (FloatToQuantizedType: round(6.0f / scale) + zero_point, clamped to int8)."""
    six = round_half_away(float(_f32(6.0) / _f32(in_scale))) + in_zp
    return in_zp, max(-128, min(127, six))


@dataclass(frozen=True)
class LogisticParams:
    """LOGISTIC int8 prepare-time values (logistic_common.cc)."""
    input_zero_point: int
    input_multiplier: int
    input_left_shift: int
    input_range_radius: int

    @staticmethod
    def of(in_scale: float, in_zp: int) -> LogisticParams:
        input_integer_bits = 4
        real = float(in_scale) * float(1 << (31 - input_integer_bits))
        q, left_shift = math.frexp(real)
        multiplier = round_half_away(q * (1 << 31))
        # A float32 scale has 24 significant bits, so q*2^31 never rounds up to 2^31.
        assert multiplier < (1 << 31)
        return LogisticParams(in_zp, multiplier, left_shift,
                              calculate_input_radius(input_integer_bits, left_shift))

    def apply(self, x: int) -> int:
        """reference_integer_ops::Logistic for one int8 value (output zero point -128)."""
        v = x - self.input_zero_point
        if v <= -self.input_range_radius:
            return -128
        if v >= self.input_range_radius:
            return 127
        q4 = multiply_by_quantized_multiplier(v, self.input_multiplier, self.input_left_shift)
        out = rdbp32(gemmlowp_logistic(q4, 4), 31 - 8)
        return max(-128, min(127, out - 128))


def logistic_table(in_scale: float, in_zp: int) -> np.ndarray:
    params = LogisticParams.of(in_scale, in_zp)
    return np.array([params.apply(x) for x in INT8_VALUES], dtype=np.int8)


@dataclass(frozen=True)
class HardSwishParams:
    """HARD_SWISH int8 prepare-time values (hard_swish_common.cc), float32 math."""
    input_zero_point: int
    output_zero_point: int
    output_multiplier: int       # Q0.15
    output_exponent: int         # <= 0
    reluish_multiplier: int      # Q0.15
    reluish_exponent: int

    @staticmethod
    def of(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> HardSwishParams:
        hires_input_scale = _f32(1.0 / 128.0) * _f32(in_scale)
        reluish_scale = _f32(3.0) / _f32(32768.0)
        out_mult32, out_exp = quantize_multiplier(float(hires_input_scale / _f32(out_scale)))
        if out_exp > 0:
            raise UnsupportedModelError(
                f"output scale {out_scale:g} is too small for input scale {in_scale:g} "
                "(TFLM's HARD_SWISH requires an output multiplier below 1)")
        rel_mult32, rel_exp = quantize_multiplier(float(hires_input_scale / reluish_scale))
        return HardSwishParams(in_zp, out_zp, downscale_multiplier_to_int16(out_mult32), out_exp,
                               downscale_multiplier_to_int16(rel_mult32), rel_exp)

    def apply(self, x: int) -> int:
        """reference_ops::HardSwish for one int8 value."""
        input_value = wrap16(x - self.input_zero_point)
        hires = wrap16(input_value * 128)
        preshift_output = srdhm16(hires, self.output_multiplier)
        reluish = hires
        if self.reluish_exponent > 0:
            reluish = saturating_left_shift16(reluish, self.reluish_exponent - 1)
        reluish = srdhm16(reluish, self.reluish_multiplier)
        if self.reluish_exponent > 0:
            reluish = saturating_left_shift16(reluish, 1)
        if self.reluish_exponent < 0:
            reluish = rdbp16(reluish, -self.reluish_exponent)
        reluish = wrap16((reluish + (1 << 15)) >> 1)
        preshift = sdhm16(reluish, preshift_output)
        out = rdbp16(preshift, -self.output_exponent)
        out = wrap16(out + self.output_zero_point)
        return max(-128, min(127, out))


def hard_swish_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    params = HardSwishParams.of(in_scale, in_zp, out_scale, out_zp)
    return np.array([params.apply(x) for x in INT8_VALUES], dtype=np.int8)


SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5
SOFTMAX_ACCUMULATION_INTEGER_BITS = 12


@dataclass(frozen=True)
class SoftmaxParams:
    """SOFTMAX int8 prepare-time values (softmax_common.cc, PreprocessSoftmaxScaling)."""
    input_multiplier: int
    input_left_shift: int
    diff_min: int

    @staticmethod
    def of(beta: float, in_scale: float) -> SoftmaxParams:
        integer_bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS
        real = min(float(beta) * float(in_scale) * float(1 << (31 - integer_bits)),
                   float((1 << 31) - 1))
        multiplier, left_shift = quantize_multiplier(real)
        if not real > 1.0 or left_shift < 0:
            raise UnsupportedModelError(
                f"beta * input scale = {float(beta) * float(in_scale):g} is too small "
                "(TFLM's SOFTMAX needs beta * scale * 2^26 > 1)")
        return SoftmaxParams(multiplier, left_shift,
                             -calculate_input_radius(integer_bits, left_shift))

    def exp_of_diff(self, diff: int) -> int:
        """exp(beta * scale * diff) in Q0.31 for diff = x - row max <= 0; 0 where TFLM skips."""
        if diff < self.diff_min:
            return 0
        rescaled = srdhm32(wrap32(diff * (1 << self.input_left_shift)), self.input_multiplier)
        return exp_on_negative_values(rescaled, SOFTMAX_SCALED_DIFF_INTEGER_BITS)

    def exp_table(self) -> np.ndarray:
        """exp_of_diff(-d) for d = 0, 1, ...; trailing zeros dropped (the kernel
        treats a d past the end as exp 0, which TFLM also turns into -128)."""
        values = [self.exp_of_diff(-d) for d in range(256)]
        while values and values[-1] == 0:
            values.pop()
        return np.array(values, dtype=np.int32)


# ----------------------------------------------------------------------------
# Lowerings
# ----------------------------------------------------------------------------

def _unary_tensors(op: Op, graph: Graph) -> tuple[Tensor, Tensor]:
    if len(op.inputs) < 1 or len(op.outputs) != 1 or op.inputs[0] < 0:
        raise UnsupportedModelError(f"op {op.index} ({op.kind.value}) needs one input and one output")
    return graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])


def _require(op: Op, tensor: Tensor, dtype: DType, role: str) -> None:
    if tensor.dtype != dtype:
        raise UnsupportedModelError(
            f"op {op.index} ({op.kind.value}): {role} {tensor.name!r} is {tensor.dtype.value}; "
            f"only {dtype.value} is supported")
    if dtype != DType.FLOAT32:
        if tensor.quant is None:
            raise UnsupportedModelError(
                f"op {op.index} ({op.kind.value}): {role} {tensor.name!r} has no quantization parameters")
        if tensor.quant.per_channel:
            raise UnsupportedModelError(
                f"op {op.index} ({op.kind.value}): {role} {tensor.name!r} is quantized per channel; "
                "only per-tensor activations are supported")


def _int8_unary(op: Op, graph: Graph) -> tuple[Tensor, Tensor]:
    x, y = _unary_tensors(op, graph)
    _require(op, x, DType.INT8, "input")
    _require(op, y, DType.INT8, "output")
    return x, y


def _lut_call(x: Tensor, y: Tensor, table: np.ndarray) -> KernelCall:
    """y[i] = table[x[i] + 128]."""
    assert table.shape == (256,) and table.dtype == np.int8
    return KernelCall(
        function="mcc_lut_s8", library=LIBRARY, params_type="mcc_lut_params",
        fields=(Field("size", x.num_elements), Field("table", ArrayRef("lut"))),
        args=(TensorArg(x.id), TensorArg(y.id)),
        arrays=(ConstArray("lut", "int8_t", table),))


def _clamp_call(x: Tensor, y: Tensor, lo: int, hi: int) -> KernelCall:
    """y[i] = clamp(x[i], lo, hi)."""
    return KernelCall(
        function="mcc_clamp_s8", library=LIBRARY, params_type="mcc_clamp_params",
        fields=(Field("size", x.num_elements), Field("lo", lo), Field("hi", hi)),
        args=(TensorArg(x.id), TensorArg(y.id)))


@lowering(OpKind.LOGISTIC)
def lower_logistic(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    x, y = _int8_unary(op, graph)
    # TFLM checks only the zero point; its kernel assumes (and we tabulate) scale 1/256.
    if y.zero_point != -128:
        raise UnsupportedModelError(
            f"op {op.index} (LOGISTIC): output {y.name!r} must have zero point -128 as TFLM "
            f"requires (got {y.zero_point})")
    return _lut_call(x, y, logistic_table(x.scale, x.zero_point))


@lowering(OpKind.HARD_SWISH)
def lower_hard_swish(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    x, y = _int8_unary(op, graph)
    try:
        table = hard_swish_table(x.scale, x.zero_point, y.scale, y.zero_point)
    except UnsupportedModelError as e:
        raise UnsupportedModelError(f"op {op.index} (HARD_SWISH): {e}") from None
    return _lut_call(x, y, table)


@lowering(OpKind.RELU)
def lower_relu(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    x, y = _int8_unary(op, graph)
    if np.float32(x.scale) == np.float32(y.scale) and x.zero_point == y.zero_point:
        # Multiplier 1.0 (2^30, shift 1) is an exact identity: only the clamp remains.
        return _clamp_call(x, y, max(-128, y.zero_point), 127)
    return _lut_call(x, y, relu_table(x.scale, x.zero_point, y.scale, y.zero_point))


@lowering(OpKind.RELU6)
def lower_relu6(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    # TFLM's int8 RELU6 ignores the output quantization: it clamps the input
    # bytes to [input zero point, quantized 6.0] and copies them.
    x, y = _int8_unary(op, graph)
    lo, hi = relu6_bounds(x.scale, x.zero_point)
    return _clamp_call(x, y, lo, hi)


@lowering(OpKind.SOFTMAX)
def lower_softmax(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    x, y = _int8_unary(op, graph)
    assert isinstance(op.attrs, SoftmaxAttrs)
    if y.zero_point != -128 or np.float32(y.scale) != np.float32(1.0 / 256):
        raise UnsupportedModelError(
            f"op {op.index} (SOFTMAX): int8 output {y.name!r} must have scale 1/256 and zero "
            f"point -128 as TFLM requires (got {y.scale:g}, {y.zero_point})")
    if not x.shape:
        raise UnsupportedModelError(f"op {op.index} (SOFTMAX): input {x.name!r} is a scalar")
    depth = x.shape[-1]
    rows = x.num_elements // depth if depth else 0
    try:
        table = SoftmaxParams.of(op.attrs.beta, x.scale).exp_table()
    except UnsupportedModelError as e:
        raise UnsupportedModelError(f"op {op.index} (SOFTMAX): {e}") from None
    return KernelCall(
        function="mcc_softmax_s8", library=LIBRARY, params_type="mcc_softmax_params",
        fields=(Field("rows", rows), Field("depth", depth),
                Field("exp_table", ArrayRef("exp")), Field("exp_table_size", len(table))),
        args=(TensorArg(x.id), TensorArg(y.id)),
        arrays=(ConstArray("exp", "int32_t", table),))


@lowering(OpKind.QUANTIZE)
def lower_quantize(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    x, y = _unary_tensors(op, graph)
    _require(op, y, DType.INT8, "output")
    if x.dtype == DType.FLOAT32:
        # AffineQuantize: round(x / scale) + zero_point in float32, clamped.
        return KernelCall(
            function="mcc_quantize_f32_s8", library=LIBRARY, params_type="mcc_quantize_params",
            fields=(Field("size", x.num_elements), Field("scale", FloatValue(float(np.float32(y.scale)))),
                    Field("zero_point", y.zero_point)),
            args=(TensorArg(x.id), TensorArg(y.id)))
    _require(op, x, DType.INT8, "input")
    return _lut_call(x, y, requantize_table(x.scale, x.zero_point, y.scale, y.zero_point))


@lowering(OpKind.DEQUANTIZE)
def lower_dequantize(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    x, y = _unary_tensors(op, graph)
    _require(op, x, DType.INT8, "input")
    _require(op, y, DType.FLOAT32, "output")
    return KernelCall(
        function="mcc_dequantize_s8_f32", library=LIBRARY, params_type="mcc_quantize_params",
        fields=(Field("size", x.num_elements), Field("scale", FloatValue(float(np.float32(x.scale)))),
                Field("zero_point", x.zero_point)),
        args=(TensorArg(x.id), TensorArg(y.id)))
