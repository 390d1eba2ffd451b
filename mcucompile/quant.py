"""Compile-time quantization arithmetic, mirroring TFLite's integer kernels.

Everything here runs in Python at compile time; the device only ever sees the
integer multipliers and shifts. The rounding rules follow TFLite exactly
(`TfLiteRound` is round-half-away-from-zero, scales are float32), because a
single differing multiplier makes the output differ from TFLM.
"""
from __future__ import annotations

import math

import numpy as np

from .ir import Activation, DType, Tensor

INT_RANGE = {DType.INT8: (-128, 127), DType.UINT8: (0, 255),
             DType.INT16: (-32768, 32767), DType.INT32: (-2**31, 2**31 - 1)}


def round_half_away(x: float) -> int:
    """C's round(): halves go away from zero (Python's round() goes to even)."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """Split a positive real multiplier into (q31 multiplier, power-of-two shift).

    real ~= multiplier * 2**(shift - 31), multiplier in [2**30, 2**31).
    Same steps as TFLite's QuantizeMultiplier, on doubles.
    """
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q_fixed), int(shift)


def f32(x: float) -> float:
    """Round through float32, as C code holding the value in a float would."""
    return float(np.float32(x))


def activation_range(act: Activation, out: Tensor) -> tuple[int, int]:
    """Clamp bounds for a fused activation on a quantized output (TFLite's
    CalculateActivationRangeQuantized: f / scale in float32, then round)."""
    qmin, qmax = INT_RANGE[out.dtype]
    scale, zp = out.scale, out.zero_point

    def q(f: float) -> int:
        return zp + round_half_away(f32(np.float32(f) / np.float32(scale)))

    if act == Activation.NONE:
        return qmin, qmax
    if act == Activation.RELU:
        return max(qmin, q(0.0)), qmax
    if act == Activation.RELU6:
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    if act == Activation.RELU_N1_TO_1:
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    raise ValueError(f"fused activation {act.value} has no quantized form")


def fast_requant(acc: int, mult: int, hib: int, post: int) -> int:
    """mcc_simd.h's fast_requant_unsaturated ("Fast requantization" in mcc_conv.h)
    in Python integers, for |acc| < 2^30: the kernels' SMMLAR form of TFLite's
    requantization, with hi_base hib and right shift post."""
    a = acc << 1
    top = hib + (-1 if a < 0 else 0)
    return ((a * mult + (top << 32) + (1 << 31)) >> 32) >> post
