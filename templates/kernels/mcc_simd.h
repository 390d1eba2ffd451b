/* mcc_simd.h: what the fast int8 kernels share: the ARMv7E-M DSP helpers
 * (MCC_CONV_DSP is 1 where the compiler defines __ARM_FEATURE_DSP), the
 * per-channel requantization table row and the fast requantization of
 * mcc_conv.h ("Fast requantization"), each with its portable C twin.
 * Internal to the kernel sources; not part of the model API.
 */
#ifndef MCC_SIMD_H
#define MCC_SIMD_H

#include "mcc_common.h"
#include <string.h>

/* Four bytes from any address: one word load on ARMv7-M and ARMv7E-M, which
 * allow unaligned ones (the compiler splits it where the core does not). */
static inline int32_t load32(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Four bytes to any address: the store twin of load32. */
static inline void store32(int8_t *p, int32_t v)
{
    memcpy(p, &v, 4);
}

/* Halfword k of int16 pairs packed in words (little-endian: 2i is word i's
 * low lane), as one load (LDRSH) where splitting the loaded word would take
 * SXTH or ASR. */
static inline int32_t lane16(const int32_t *w, int32_t k)
{
    int16_t v;
    memcpy(&v, (const int8_t *)w + 2 * k, 2);
    return v;
}

/* The first and last lines of an assembly function NAME (a string) in a
 * section of its own, so that a model that does not call it does not link it. */
#define MCC_ASM_FUNCTION(NAME)                                                 \
    ".pushsection .text." NAME ",\"ax\",%progbits\n\t"                         \
    ".syntax unified\n\t"                                                      \
    ".thumb\n\t"                                                               \
    ".p2align 2\n\t"                                                           \
    ".global " NAME "\n\t"                                                     \
    ".hidden " NAME "\n\t"                                                     \
    ".type " NAME ", %function\n\t"                                            \
    ".thumb_func\n"                                                            \
    NAME ":\n\t"
#define MCC_ASM_END(NAME) ".size " NAME ", .-" NAME "\n\t.popsection"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define MCC_CONV_DSP 1

/* Sign-extended bytes 1 and 3 of x as two int16 lanes (bytes 0 and 2: __sxtb16). */
static inline int32_t sxtb16_ror8(int32_t x)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* acc plus the sign-extended bytes 1 and 3 of x, lane by lane (bytes 0 and 2:
 * __sxtab16). */
static inline int32_t sxtab16_ror8(int32_t acc, int32_t x)
{
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(x));
    return r;
}

/* The low half of lo with the high half of hi. */
static inline int32_t pkhbt(int32_t lo, int32_t hi)
{
    int32_t r;
    __asm__("pkhbt %0, %1, %2" : "=r"(r) : "r"(lo), "r"(hi));
    return r;
}

/* The low halves of lo and hi: (lo, hi) as two int16 lanes. */
static inline int32_t pack_low_halves(int32_t lo, int32_t hi)
{
    int32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(lo), "r"(hi));
    return r;
}

/* The top word of (top << 32) + a * b + 2^31. */
static inline int32_t smmlar(int32_t a, int32_t b, int32_t top)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(top));
    return r;
}

/* n < 4 bytes, zero-filled to a word: the last depth group of a row. */
static inline int32_t load_partial(const int8_t *p, int32_t n)
{
    /* Byte by byte, not memcpy: a variable-length memcpy is a library call. */
    uint32_t v = (uint8_t)p[0];
    if (n > 1) {
        v |= (uint32_t)(uint8_t)p[1] << 8;
    }
    if (n > 2) {
        v |= (uint32_t)(uint8_t)p[2] << 16;
    }
    return (int32_t)v;
}

/* One filter row of a 3-wide filter for two neighbouring outputs at stride 1:
 * t holds the input bytes t0..t3, e = (w0, w2) and o = (w1, 0) the weights as
 * int16 pairs; a0 += t0 w0 + t1 w1 + t2 w2 and a1 += t1 w0 + t2 w1 + t3 w2. */
static inline void smlad_3tap_pair(int32_t t, int32_t e, int32_t o, int32_t *a0, int32_t *a1)
{
    const int32_t te = __sxtb16(t), to = sxtb16_ror8(t);   /* (t0, t2), (t1, t3) */
    *a0 = __smlabb(to, o, __smlad(te, e, *a0));
    *a1 = __smlatb(te, o, __smlad(to, e, *a1));
}
#else
#define MCC_CONV_DSP 0
#endif

/* v saturated to int8. ARMv7-M has SSAT without the DSP extension (the M3):
 * one instruction where the compare-and-branch clamp takes five. */
#if !MCC_CONV_DSP && defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
#include <arm_acle.h>
#define MCC_SAT8(v) ((int8_t)__ssat((v), 8))
#else
#define MCC_SAT8(v) ((int8_t)MCC_CLAMP((v), -128, 127))
#endif

#if !MCC_CONV_DSP
/* SMMLAR's result without it: the top word of (top << 32) + a * mult + 2^31.
 * The addend is built as one 64-bit word so that the M3 adds it in its SMLAL
 * (two instructions fewer than adding 2^31 after). Bounded by the compiler's
 * check, |top| < 2^30 and |a * mult| < 2^62, the sum does not overflow: the
 * unsigned arithmetic gives the exact value. */
static inline int32_t requant_top(int32_t a, int32_t mult, int32_t top)
{
    const uint64_t base = ((uint64_t)(uint32_t)top << 32) | UINT32_C(0x80000000);
    return (int32_t)((base + (uint64_t)((int64_t)a * mult)) >> 32);
}
#endif

/* One output value from a doubled accumulator a = 2 * acc and its channel's
 * table row (multiplier, hi_base, post): see "Fast requantization" in
 * mcc_conv.h. Kernels that double an operand when they widen it (once per
 * channel or per row block) call this directly and skip the shift per output.
 * The caller keeps the row in locals: int8 stores may alias the table, so the
 * compiler would reload it after every store. */
static inline int8_t fast_requant_doubled(int32_t a, int32_t mult, int32_t hib, int32_t post)
{
    const int32_t top = hib + (a >> 31);
#if MCC_CONV_DSP
    return (int8_t)__ssat(smmlar(a, mult, top) >> post, 8);
#else
    return MCC_SAT8(requant_top(a, mult, top) >> post);
#endif
}

/* The same from the accumulator itself (|acc| < 2^30). */
static inline int8_t fast_requant(int32_t acc, int32_t mult, int32_t hib, int32_t post)
{
    return fast_requant_doubled((int32_t)((uint32_t)acc << 1), mult, hib, post);
}

/* fast_requant_doubled before its saturation to int8, for a caller that
 * clamps to a narrower range anyway (the same bounds hold). */
static inline int32_t fast_requant_doubled_unsaturated(int32_t a, int32_t mult, int32_t hib,
                                                       int32_t post)
{
    const int32_t top = hib + (a >> 31);
#if MCC_CONV_DSP
    return smmlar(a, mult, top) >> post;
#else
    return requant_top(a, mult, top) >> post;
#endif
}

/* The same from the accumulator itself. */
static inline int32_t fast_requant_unsaturated(int32_t acc, int32_t mult, int32_t hib, int32_t post)
{
    return fast_requant_doubled_unsaturated((int32_t)((uint32_t)acc << 1), mult, hib, post);
}

/* v's low byte in all four bytes of a word (a clamp bound, a pad value). */
static inline uint32_t splat_s8(int32_t v)
{
    return (uint8_t)v * UINT32_C(0x01010101);
}

/* A pooling window's clipped filter range [start, end) along one axis, for
 * a window whose first tap sits at input coordinate `origin`. */
static inline void window_range(int32_t origin, int32_t filter, int32_t size, int32_t *start,
                                int32_t *end)
{
    *start = MCC_MAX(0, -origin);
    *end = MCC_MIN(filter, size - origin);
}

/* TFLM's average pool: s / count rounded half away from zero (C division
 * truncates toward zero). */
static inline int32_t pool_average(int32_t s, int32_t count)
{
    return s > 0 ? (s + count / 2) / count : (s - count / 2) / count;
}

/* n bytes `stride` apart from src into dst, contiguous: one channel of NHWC
 * pixels. Four a step (GCC keeps the strides in registers). */
static inline void gather_s8(int8_t *dst, const int8_t *src, int32_t n, int32_t stride)
{
    int32_t j = 0;
    for (; j + 4 <= n; j += 4, src += 4 * stride) {
        dst[j] = src[0];
        dst[j + 1] = src[stride];
        dst[j + 2] = src[2 * stride];
        dst[j + 3] = src[3 * stride];
    }
    for (; j < n; ++j, src += stride) {
        dst[j] = src[0];
    }
}

/* The fused activation, when it is narrower than int8's range. */
static inline void clamp_activation(int8_t *out, int32_t n, int32_t act_min, int32_t act_max)
{
    if (act_min <= -128 && act_max >= 127) {
        return;
    }
    for (int32_t i = 0; i < n; ++i) {
        out[i] = (int8_t)MCC_CLAMP(out[i], act_min, act_max);
    }
}

/* One channel's row of the requantization table, in locals. */
typedef struct {
    int32_t bias, mult, hib, post;
} chan_row;

static inline chan_row chan_at(const int32_t *channels, int32_t c)
{
    const int32_t *t = channels + 4 * c;
    chan_row r = {t[0], t[1], t[2], t[3]};
    return r;
}

/* ADD's table form (mcc_elementwise.h, mcc_add_params input1_scaled): the
 * doubled values a and b from the tables, the fast output stage, the clamp. */
static inline int8_t add_scaled_one(int32_t a, int32_t b, int32_t mult, int32_t hib, int32_t post,
                                    int32_t lo, int32_t hi)
{
    int32_t v = fast_requant_doubled_unsaturated(a + b, mult, hib, post);
    v = v < lo ? lo : v;
    return (int8_t)(v > hi ? hi : v);
}

#if MCC_CONV_DSP
/* Each lane of w clamped to [lo, hi] (lanes of lo4 and hi4): SSUB8 sets a
 * lane's GE flag where w >= the bound, SEL picks by it. One asm statement,
 * since nothing may come between the flags and their reader. */
static inline uint32_t clamp_lanes_s8(uint32_t w, uint32_t lo4, uint32_t hi4)
{
    uint32_t t;
    __asm__("ssub8 %0, %1, %2\n\t"
            "sel   %1, %1, %2\n\t"
            "ssub8 %0, %1, %3\n\t"
            "sel   %1, %3, %1"
            : "=&r"(t), "+r"(w) : "r"(lo4), "r"(hi4) : "cc");
    return w;
}

/* Each signed byte lane the larger of a's and b's (SSUB8's GE flags, then SEL). */
static inline uint32_t max_lanes_s8(uint32_t a, uint32_t b)
{
    uint32_t t;
    __asm__("ssub8 %0, %1, %2\n\t"
            "sel   %1, %1, %2"
            : "=&r"(t), "+r"(a) : "r"(b) : "cc");
    return a;
}

/* The four values of one input word through the tables and the output
 * stage, saturated to int8 and packed back into a word. */
static inline uint32_t add_scaled_word(const int32_t *t1, const int32_t *t2, int32_t u, int32_t v,
                                       int32_t mult, int32_t hib, int32_t post)
{
#define MCC_ADD_LANE(x1, x2)                                                   \
    __ssat(fast_requant_doubled_unsaturated(t1[x1] + t2[x2], mult, hib, post), 8)
    const int32_t s0 = MCC_ADD_LANE((int8_t)u, (int8_t)v);
    const int32_t s1 = MCC_ADD_LANE((int8_t)(u >> 8), (int8_t)(v >> 8));
    const int32_t s2 = MCC_ADD_LANE((int8_t)(u >> 16), (int8_t)(v >> 16));
    const int32_t s3 = MCC_ADD_LANE(u >> 24, v >> 24);
#undef MCC_ADD_LANE
    /* Lanes (s0, s2) and (s1, s3) as halfwords, their low bytes interleaved. */
    return __uxtb16((uint32_t)pack_low_halves(s0, s2))
           | __uxtb16((uint32_t)pack_low_halves(s1, s3)) << 8;
}
#endif

#endif /* MCC_SIMD_H */
