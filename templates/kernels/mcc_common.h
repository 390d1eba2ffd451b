/* mcc_common.h: types and integer arithmetic shared by every mcucompile kernel.
 *
 * The fixed-point helpers reproduce TFLite's reference integer arithmetic
 * (gemmlowp's rounding doubling high multiply and rounding right shift), so
 * that kernels built on them are bit-exact with TFLM. Signed overflow is
 * avoided by doing the wrapping steps in unsigned arithmetic.
 */
#ifndef MCC_COMMON_H
#define MCC_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* The model's kernel configuration (which optional paths it omits), written
 * beside the kernels by mcucompile. A kernel compiled on its own has none, and
 * MCC_ALL_PATHS ignores it: both keep every path (one copy of the kernels
 * shared by several models: compile it with -DMCC_ALL_PATHS). */
#if defined(__has_include) && !defined(MCC_ALL_PATHS)
#if __has_include("mcc_config.h")
#include "mcc_config.h"
#endif
#endif

#define MCC_OK 0
#define MCC_ERROR 1

/* Element types of model inputs and outputs, as model_input_dtype() reports them. */
#define MCC_DTYPE_INT8 1
#define MCC_DTYPE_UINT8 2
#define MCC_DTYPE_INT16 3
#define MCC_DTYPE_INT32 4
#define MCC_DTYPE_FLOAT32 5

#define MCC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MCC_MAX(a, b) ((a) > (b) ? (a) : (b))
#define MCC_CLAMP(x, lo, hi) MCC_MIN(MCC_MAX((x), (lo)), (hi))

/* Keeps a function's stack frame its own (two stack buffers never share one),
 * or a cold path out of the loops its caller is inlined into. */
#if defined(__GNUC__)
#define MCC_NOINLINE __attribute__((noinline))
#else
#define MCC_NOINLINE
#endif

/* A kernel's driver inlined into each entry point, so that the per-pixel
 * function it is given becomes a direct call (or is inlined) there. */
#if defined(__GNUC__)
#define MCC_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define MCC_ALWAYS_INLINE inline
#endif

/* An NHWC shape. */
typedef struct {
    int32_t n;
    int32_t h;
    int32_t w;
    int32_t c;
} mcc_dims;

/* (a * b * 2) >> 32, rounded to nearest, saturating the one overflow case. */
static inline int32_t mcc_sat_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (INT64_C(1) << 30) : (1 - (INT64_C(1) << 30));
    /* Division, not a shift: gemmlowp truncates toward zero here. */
    return (int32_t)((ab + nudge) / (INT64_C(1) << 31));
}

/* x / 2^exponent, rounded to nearest with ties away from zero. */
static inline int32_t mcc_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    int32_t mask = (int32_t)((UINT32_C(1) << exponent) - 1u);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * multiplier * 2^(shift - 31): TFLite's MultiplyByQuantizedMultiplier. */
static inline int32_t mcc_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    int32_t left_shift = shift > 0 ? shift : 0;
    int32_t right_shift = shift > 0 ? 0 : -shift;
    int32_t shifted = (int32_t)((uint32_t)x << left_shift);
    return mcc_rounding_divide_by_pot(
        mcc_sat_rounding_doubling_high_mul(shifted, multiplier), right_shift);
}

#endif /* MCC_COMMON_H */
