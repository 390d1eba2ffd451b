/* mcc_elementwise.c: ADD and MUL, int8; see mcc_elementwise.h. */
#include "mcc_elementwise.h"
#include "mcc_simd.h"

/* --- ADD ----------------------------------------------------------------- */

static inline int8_t add_one(const mcc_add_params *p, int32_t x1, int32_t x2)
{
    /* |x + offset| <= 255, so shifting by 20 stays far inside int32. */
    const int32_t shifted1 = (x1 + p->input1_offset) * (INT32_C(1) << p->left_shift);
    const int32_t shifted2 = (x2 + p->input2_offset) * (INT32_C(1) << p->left_shift);
    const int32_t scaled1 = mcc_requantize(shifted1, p->input1_multiplier, p->input1_shift);
    const int32_t scaled2 = mcc_requantize(shifted2, p->input2_multiplier, p->input2_shift);
    const int32_t out = mcc_requantize(scaled1 + scaled2, p->output_multiplier, p->output_shift)
                        + p->output_offset;
    return (int8_t)MCC_CLAMP(out, p->act_min, p->act_max);
}

/* Two functions, not one: with the broadcast loops in the same body the
 * compiler kept the flat loop's constants on the stack. */
__attribute__((noinline))
static void add_scaled_flat(const int32_t *t1, const int32_t *t2, const int8_t *x1,
                            const int8_t *x2, int8_t *out, int32_t n, const int32_t *k)
{
    const int32_t mult = k[0], hib = k[1], post = k[2], lo = k[3], hi = k[4];
    int32_t i = 0;
#if MCC_CONV_DSP
    /* Four elements a step: word loads, one word store, the clamp per lane. */
    const uint32_t lo4 = splat_s8(lo), hi4 = splat_s8(hi);
    for (; i + 4 <= n; i += 4) {
        const uint32_t w = add_scaled_word(t1, t2, load32(x1 + i), load32(x2 + i), mult, hib, post);
        const uint32_t c = clamp_lanes_s8(w, lo4, hi4);
        memcpy(out + i, &c, 4);
    }
#endif
    for (; i < n; ++i) {
        out[i] = add_scaled_one(t1[x1[i]], t2[x2[i]], mult, hib, post, lo, hi);
    }
}

/* One innermost run of n outputs: the inputs' elements a_step and b_step apart. */
typedef void (*add_run)(const mcc_add_params *p, const int8_t *a, int32_t a_step,
                        const int8_t *b, int32_t b_step, int32_t n, int8_t *out);

static void add_run_exact(const mcc_add_params *p, const int8_t *a, int32_t a_step,
                          const int8_t *b, int32_t b_step, int32_t n, int8_t *out)
{
    for (int32_t i = 0; i < n; ++i) {
        out[i] = add_one(p, a[i * a_step], b[i * b_step]);
    }
}

static void add_run_scaled(const mcc_add_params *p, const int8_t *a, int32_t a_step,
                           const int8_t *b, int32_t b_step, int32_t n, int8_t *out)
{
    const int32_t *t1 = p->input1_scaled + 128, *t2 = p->input2_scaled + 128;
    const int32_t k[5] = {p->output_multiplier, p->output_hib, p->output_post, p->act_min,
                          p->act_max};
    if (a_step == 1 && b_step == 1) {
        add_scaled_flat(t1, t2, a, b, out, n, k);
        return;
    }
    for (int32_t i = 0; i < n; ++i) {
        out[i] = add_scaled_one(t1[a[i * a_step]], t2[b[i * b_step]], k[0], k[1], k[2], k[3],
                                k[4]);
    }
}

/* The values of the tables, computed per element (mcc_add_params input1_hib). */
static void add_run_fast(const mcc_add_params *p, const int8_t *a, int32_t a_step,
                         const int8_t *b, int32_t b_step, int32_t n, int8_t *out)
{
    /* Locals: the int8 stores may alias *p. */
    const int32_t off1 = p->input1_offset, mult1 = p->input1_multiplier, hib1 = p->input1_hib;
    const int32_t post1 = p->input1_post, scale1 = INT32_C(1) << p->input1_left;
    const int32_t off2 = p->input2_offset, mult2 = p->input2_multiplier, hib2 = p->input2_hib;
    const int32_t post2 = p->input2_post, scale2 = INT32_C(1) << p->input2_left;
    const int32_t mult = p->output_multiplier, hib = p->output_hib, post = p->output_post;
    const int32_t lo = p->act_min, hi = p->act_max;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t x1 = fast_requant_unsaturated((a[i * a_step] + off1) * scale1, mult1, hib1, post1);
        const int32_t x2 = fast_requant_unsaturated((b[i * b_step] + off2) * scale2, mult2, hib2, post2);
        out[i] = add_scaled_one(2 * x1, 2 * x2, mult, hib, post, lo, hi);
    }
}

/* The broadcast loops (mcc_elementwise.h, "Layout"), one run per innermost loop. */
static void add_walk(const mcc_add_params *p, const int8_t *input1, const int8_t *input2,
                     int8_t *output, add_run run)
{
    if (p->shape == NULL) {
        run(p, input1, 1, input2, 1, p->size, output);
        return;
    }
    const int32_t *n = p->shape;
    const int32_t *s1 = p->input1_strides;
    const int32_t *s2 = p->input2_strides;
    for (int32_t i0 = 0; i0 < n[0]; ++i0) {
        for (int32_t i1 = 0; i1 < n[1]; ++i1) {
            for (int32_t i2 = 0; i2 < n[2]; ++i2, output += n[3]) {
                run(p, input1 + i0 * s1[0] + i1 * s1[1] + i2 * s1[2], s1[3],
                    input2 + i0 * s2[0] + i1 * s2[1] + i2 * s2[2], s2[3], n[3], output);
            }
        }
    }
}

int mcc_add_s8(const mcc_add_params *p, const int8_t *input1, const int8_t *input2,
               int8_t *output)
{
    add_walk(p, input1, input2, output,
             p->input1_scaled != NULL ? add_run_scaled : p->input1_hib ? add_run_fast : add_run_exact);
    return MCC_OK;
}

int mcc_add_const_s8(const mcc_add_params *p, const int8_t *input1, int8_t *output)
{
    return mcc_add_s8(p, input1, p->constant, output);
}

/* --- MUL ----------------------------------------------------------------- */

static inline int8_t mul_one(const mcc_mul_params *p, int32_t x1, int32_t x2)
{
    /* |product| <= 255 * 255: no overflow. */
    const int32_t product = (x1 + p->input1_offset) * (x2 + p->input2_offset);
    const int32_t out = mcc_requantize(product, p->output_multiplier, p->output_shift)
                        + p->output_offset;
    return (int8_t)MCC_CLAMP(out, p->act_min, p->act_max);
}

int mcc_mul_s8(const mcc_mul_params *p, const int8_t *input1, const int8_t *input2,
               int8_t *output)
{
    if (p->shape == NULL) {
        for (int32_t i = 0; i < p->size; ++i) {
            output[i] = mul_one(p, input1[i], input2[i]);
        }
        return MCC_OK;
    }
    const int32_t *n = p->shape;
    const int32_t *s1 = p->input1_strides;
    const int32_t *s2 = p->input2_strides;
    for (int32_t i0 = 0; i0 < n[0]; ++i0) {
        for (int32_t i1 = 0; i1 < n[1]; ++i1) {
            for (int32_t i2 = 0; i2 < n[2]; ++i2) {
                const int8_t *a = input1 + i0 * s1[0] + i1 * s1[1] + i2 * s1[2];
                const int8_t *b = input2 + i0 * s2[0] + i1 * s2[1] + i2 * s2[2];
                for (int32_t i3 = 0; i3 < n[3]; ++i3) {
                    *output++ = mul_one(p, a[i3 * s1[3]], b[i3 * s2[3]]);
                }
            }
        }
    }
    return MCC_OK;
}

int mcc_mul_const_s8(const mcc_mul_params *p, const int8_t *input1, int8_t *output)
{
    return mcc_mul_s8(p, input1, p->constant, output);
}
