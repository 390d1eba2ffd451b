/* mcc_activation.c: activation and (de)quantization kernels; see mcc_activation.h. */
#include "mcc_activation.h"

int mcc_lut_s8(const mcc_lut_params *p, const int8_t *input, int8_t *output)
{
    const int8_t *table = p->table;
    for (int32_t i = 0; i < p->size; ++i) {
        output[i] = table[(int32_t)input[i] + 128];
    }
    return MCC_OK;
}

int mcc_clamp_s8(const mcc_clamp_params *p, const int8_t *input, int8_t *output)
{
    const int32_t lo = p->lo;
    const int32_t hi = p->hi;
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t x = input[i];
        output[i] = (int8_t)MCC_CLAMP(x, lo, hi);
    }
    return MCC_OK;
}

/* --- SOFTMAX ------------------------------------------------------------ */

/* gemmlowp's fixed-point sums are plain int32 additions; do them in unsigned
 * arithmetic so that a wrap (which TFLM never hits on valid data) is defined. */
static inline int32_t wrapping_add(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static inline int32_t count_leading_zeros(uint32_t x)
{
    if (x == 0u) {
        return 32;
    }
#if defined(__GNUC__)
    return (int32_t)__builtin_clz(x);
#else
    int32_t n = 0;
    while ((x & 0x80000000u) == 0u) {
        x <<= 1;
        ++n;
    }
    return n;
#endif
}

/* x * 2^exponent for 0 < exponent < 31, saturating (gemmlowp's Rescale up). */
static inline int32_t saturating_shift_left(int32_t x, int32_t exponent)
{
    const int32_t threshold = (int32_t)((UINT32_C(1) << (31 - exponent)) - 1u);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* gemmlowp's one_over_one_plus_x_for_x_in_0_1: 1 / (1 + a) for a in [0, 1)
 * (Q0.31 in and out), three Newton-Raphson steps in Q2.29. */
static int32_t one_over_one_plus_x(int32_t a)
{
    /* RoundingHalfSum(a, 1.0): (a + INT32_MAX + sign) / 2, truncating. */
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t constant_48_over_17 = 1515870810;
    const int32_t constant_neg_32_over_17 = -1010580540;
    const int32_t one_q2_29 = INT32_C(1) << 29;

    int32_t x = wrapping_add(constant_48_over_17,
                             mcc_sat_rounding_doubling_high_mul(half_denominator,
                                                                constant_neg_32_over_17));
    for (int i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x =
            mcc_sat_rounding_doubling_high_mul(half_denominator, x);
        const int32_t one_minus = wrapping_add(one_q2_29, -half_denominator_times_x);
        /* x * one_minus is Q4.27; back to Q2.29. */
        x = wrapping_add(x, saturating_shift_left(mcc_sat_rounding_doubling_high_mul(x, one_minus), 2));
    }
    /* x / 2 in Q1.30 is the result; Q1.30 -> Q0.31. */
    return saturating_shift_left(x, 1);
}

int mcc_softmax_s8(const mcc_softmax_params *p, const int8_t *input, int8_t *output)
{
    const int32_t depth = p->depth;
    const int32_t *exp_table = p->exp_table;
    const int32_t table_size = p->exp_table_size;

    for (int32_t r = 0; r < p->rows; ++r) {
        const int8_t *x = input + (size_t)r * (size_t)depth;
        int8_t *y = output + (size_t)r * (size_t)depth;

        int32_t max = -128;
        for (int32_t c = 0; c < depth; ++c) {
            max = MCC_MAX(max, (int32_t)x[c]);
        }

        /* Sum of exps in Q12.19 (each exp is Q0.31 rounded down 12 bits). */
        uint32_t sum = 0u;
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t d = max - (int32_t)x[c];
            if (d < table_size) {
                sum += (uint32_t)mcc_rounding_divide_by_pot(exp_table[d], 12);
            }
        }

        /* TFLM's GetReciprocal: normalise the sum to 1.x, invert the fraction. */
        const int32_t headroom_plus_one = count_leading_zeros(sum);
        const int32_t num_bits_over_unit = 12 - headroom_plus_one;
        const int32_t exponent = num_bits_over_unit + 31 - 8;
        if (sum == 0u || exponent > 31) {
            return MCC_ERROR;
        }
        const int32_t shifted_sum_minus_one =
            (int32_t)((sum << headroom_plus_one) - UINT32_C(0x80000000));
        const int32_t scale = one_over_one_plus_x(shifted_sum_minus_one);

        for (int32_t c = 0; c < depth; ++c) {
            const int32_t d = max - (int32_t)x[c];
            int32_t out = -128;
            if (d < table_size) {
                out = mcc_rounding_divide_by_pot(
                          mcc_sat_rounding_doubling_high_mul(scale, exp_table[d]), exponent) - 128;
                out = MCC_CLAMP(out, -128, 127);
            }
            y[c] = (int8_t)out;
        }
    }
    return MCC_OK;
}

/* --- QUANTIZE / DEQUANTIZE -------------------------------------------------- */

int mcc_quantize_f32_s8(const mcc_quantize_params *p, const float *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        /* float division, as TFLM's AffineQuantize. Anything beyond +-256 ends
         * up clamped to int8 anyway; clamping first keeps the conversion below
         * in range (and sends NaN to -128). */
        float q = input[i] / p->scale;
        q = MCC_CLAMP(q, -256.0f, 256.0f);
        /* round half away from zero without libm: q - trunc(q) is exact here. */
        int32_t r = (int32_t)q;
        const float frac = q - (float)r;
        if (frac >= 0.5f) {
            r += 1;
        } else if (frac <= -0.5f) {
            r -= 1;
        }
        r += p->zero_point;
        output[i] = (int8_t)MCC_CLAMP(r, -128, 127);
    }
    return MCC_OK;
}

int mcc_dequantize_s8_f32(const mcc_quantize_params *p, const int8_t *input, float *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        output[i] = p->scale * (float)((int32_t)input[i] - p->zero_point);
    }
    return MCC_OK;
}
