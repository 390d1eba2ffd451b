/* mcc_inplace.c: in-place int8 kernels; see mcc_inplace.h for the memory
 * order that makes writing over the input safe. The per-value arithmetic is
 * the same as in mcc_conv.c and mcc_pool.c, so results are bit-exact with them.
 */
#include "mcc_inplace.h"
#include "mcc_simd.h"

/* ------------------------------------------------------ window geometry */

typedef struct {
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t filter_h, filter_w;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_h, pad_w;
    int32_t ring_rows;
} window;

/* The input rows of the channel being computed: read where they lie in the
 * buffer (ring_rows == 0) or from copies in the ring. */
typedef struct {
    const window *g;
    const int8_t *buf;      /* the shared input/output buffer */
    int8_t *ring;
    int32_t c;
    int32_t step;           /* bytes between horizontally neighbouring pixels */
    int32_t next_row;       /* ring: the first input row not copied yet */
} channel_rows;

static void rows_begin(channel_rows *r, const window *g, const int8_t *buf, void *scratch,
                       int32_t c)
{
    r->g = g;
    r->buf = buf;
    r->ring = (int8_t *)scratch;
    r->c = c;
    r->step = g->ring_rows ? 1 : g->channels;
    r->next_row = 0;
}

/* Before output row oy is computed and written: copy every input row it reads
 * or overwrites (channel c only) into the ring. Rows leave the ring in order,
 * once no later output row reads them; the compiler sized the ring for that. */
static void rows_prepare(channel_rows *r, int32_t oy)
{
    const window *g = r->g;
    if (g->ring_rows == 0) {
        return;
    }
    const int32_t last_read = oy * g->stride_h - g->pad_h + (g->filter_h - 1) * g->dilation_h;
    /* Output row oy covers pixels [oy * out_w, (oy + 1) * out_w), the same
     * pixel slots as input pixels with those indices. */
    const int32_t last_overwritten = ((oy + 1) * g->out_w - 1) / g->in_w;
    const int32_t last = MCC_MIN(MCC_MAX(last_read, last_overwritten), g->in_h - 1);
    /* Locals: the int8 stores could alias *g as far as the compiler knows. */
    const int32_t in_w = g->in_w, channels = g->channels;
    for (; r->next_row <= last; ++r->next_row) {
        const int8_t *src = r->buf + r->next_row * in_w * channels + r->c;
        int8_t *dst = r->ring + (r->next_row % g->ring_rows) * in_w;
        for (int32_t x = 0; x < in_w; ++x, src += channels) {
            dst[x] = *src;
        }
    }
}

/* Input row y (0 <= y < in_h) of the channel, pixel x at [x * step]. */
static inline const int8_t *row_at(const channel_rows *r, int32_t y)
{
    const window *g = r->g;
    if (g->ring_rows == 0) {
        return r->buf + y * g->in_w * g->channels + r->c;
    }
    return r->ring + (y % g->ring_rows) * g->in_w;
}

/* ------------------------------------------------------- requantization */

/* One output value from its accumulator and its channel's table row t (see
 * mcc_inplace.h): the fast form, or TFLite's (multiplier, shift) form. */
static inline int8_t out_fast(int32_t acc, const int32_t *t, int32_t act_min, int32_t act_max)
{
    /* The activation range lies within int8's, so it subsumes the saturation. */
    int32_t v = fast_requant_unsaturated(acc, t[1], t[2], t[3]);
    v = v < act_min ? act_min : v;
    return (int8_t)(v > act_max ? act_max : v);
}

static inline int8_t out_exact(int32_t acc, const int32_t *t, int32_t output_offset,
                               int32_t act_min, int32_t act_max)
{
    const int32_t v = mcc_requantize(acc, t[1], t[2]) + output_offset;
    return (int8_t)MCC_CLAMP(v, act_min, act_max);
}

/* ------------------------------------------------------- DEPTHWISE_CONV_2D */

/* Filters up to this tall get their row pointers computed once per output row;
 * taller ones take the border path everywhere (correct, slower). */
#define MCC_INPLACE_MAX_FILTER_H 16

size_t mcc_depthwise_conv2d_inplace_s8_scratch_bytes(const mcc_depthwise_conv2d_inplace_params *p)
{
    return (size_t)p->ring_rows * (size_t)p->in_w;
}

/* The taps [*lo, *hi) of a window starting at `origin` that land inside [0, size). */
static void tap_range(int32_t origin, int32_t filter, int32_t dilation, int32_t size,
                      int32_t *lo, int32_t *hi)
{
    *lo = origin >= 0 ? 0 : (dilation - 1 - origin) / dilation;
    *hi = size - 1 - origin < 0 ? 0 : MCC_MIN(filter, (size - 1 - origin) / dilation + 1);
}

/* The sum of filter row ky's weights. */
static int32_t row_sum(const int8_t *w, int32_t filter_w)
{
    int32_t sum = 0;
    for (int32_t kx = 0; kx < filter_w; ++kx) {
        sum += w[kx];
    }
    return sum;
}

/* The accumulator of one output whose window crosses the left or right border,
 * from TFLite's own bias, bias + sum of w * (x + input_offset) over the taps
 * inside: the folded bias plus pad_value times the weights of every tap
 * (exact in int32: that is the model's bias). Filter rows [ky_lo, ky_hi)
 * are inside the image. */
static int32_t border_acc(const mcc_depthwise_conv2d_inplace_params *p, const channel_rows *rows,
                          const int8_t *w, int32_t y0, int32_t ky_lo, int32_t ky_hi, int32_t x0,
                          int32_t acc)
{
    int32_t kx_lo, kx_hi;
    tap_range(x0, p->filter_w, p->dilation_w, p->in_w, &kx_lo, &kx_hi);
    const int32_t step = rows->step;
    const int32_t tap = p->dilation_w * step;
    const int32_t pad = p->pad_value;
    for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
        const int8_t *wr = w + ky * p->row_bytes;
        const int8_t *r = row_at(rows, y0 + ky * p->dilation_h) + x0 * step;
        for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
            acc += (int32_t)wr[kx] * (r[kx * tap] - pad);
        }
    }
    return acc;
}

/* Two int16 lanes (lo, hi) in a word. */
static inline int32_t pair16(int32_t lo, int32_t hi)
{
    return (int32_t)((uint32_t)(uint16_t)lo | (uint32_t)hi << 16);
}

/* A 3x3 filter's constants for one output row (dilation_w 1, fast table), in
 * the layout the pair loop reads; offsets are fixed by the assembly. Filter
 * rows outside the image have zero weights and their pad_value * weights in
 * the bias. */
typedef struct {
    int32_t bias2[2];               /*  0: 2 * bias, for both outputs */
    int32_t mult, hib, post;        /*  8: the channel's table row */
    int32_t out_step;               /* 20: bytes between outputs */
    const int8_t *end;              /* 24: where r0 stops (the row's last pair) */
    int32_t d1;                     /* 28: filter row 1's tap minus row 0's */
    int32_t e0, e1, e2, m01, m2;    /* 32: doubled weights as int16 pairs */
    int32_t d2;                     /* 52: filter row 2's tap minus row 0's */
    int32_t act_min, act_max;       /* 56 */
    int32_t bias;                   /* 64: the bias itself (C loops) */
    int8_t w[12];                   /* 68: the weights (C loops) */
    const int32_t *t;               /* 80: the table row (C loops) */
} dw3_row;

/* The constants of a 3x3 row from filter w (row_bytes 4), its bias and its
 * table row t, every filter row inside the image. */
static void dw3_row_init(dw3_row *k, const int8_t *w, int32_t bias, const int32_t *t,
                         int32_t out_step, int32_t act_min, int32_t act_max)
{
    memcpy(k->w, w, sizeof k->w);
    /* Bytes 0 and 2 of each row word as doubled int16 pairs; the middle taps. */
    k->e0 = pair16(2 * w[0], 2 * w[2]);
    k->e1 = pair16(2 * w[4], 2 * w[6]);
    k->e2 = pair16(2 * w[8], 2 * w[10]);
    k->m01 = pair16(2 * w[1], 2 * w[5]);
    k->m2 = pair16(2 * w[9], 0);
    k->bias = bias;
    k->bias2[0] = k->bias2[1] = (int32_t)((uint32_t)bias << 1);
    k->mult = t[1];
    k->hib = t[2];
    k->post = t[3];
    k->t = t;
    k->out_step = out_step;
    k->act_min = act_min;
    k->act_max = act_max;
}

/* k for a row whose filter rows outside [ky_lo, ky_hi) lie in the padding:
 * zero weights there, bias the bias with their pad_value terms. */
static void dw3_row_clip(dw3_row *k, int32_t ky_lo, int32_t ky_hi, int32_t bias)
{
    for (int32_t ky = 0; ky < 3; ++ky) {
        if (ky >= ky_lo && ky < ky_hi) {
            continue;
        }
        memset(k->w + 4 * ky, 0, 4);
        if (ky == 0) {
            k->e0 = 0;
            k->m01 &= (int32_t)0xffff0000u;
        } else if (ky == 1) {
            k->e1 = 0;
            k->m01 &= 0xffff;
        } else {
            k->e2 = 0;
            k->m2 = 0;
        }
    }
    k->bias = bias;
    k->bias2[0] = k->bias2[1] = (int32_t)((uint32_t)bias << 1);
}

#if MCC_CONV_DSP
/* Pairs of outputs of a 3x3 row, o the output; until r0 reaches k->end.
 * Stride 1, one channel's rows contiguous (step 1): r0 the first tap of
 * filter row 0, r0 + k->d1 and r0 + k->d2 those of rows 1 and 2.
 * Stride 2 with direct reads: the same, pixels k->out_step (the channel
 * count) bytes apart in the buffer itself; both outputs of a pair are
 * computed before either is stored. */
void mcc_dw3x3_inplace_pairs_dsp(const int8_t *r0, int8_t *o, const dw3_row *k);
void mcc_dw3x3_inplace_direct_s2_dsp(const int8_t *r0, int8_t *o, const dw3_row *k);

/* Both: r0 r, r1 o, r2 k, r3 d1 (stride 1) or the step (stride 2), r4-r8 the
 * weights (e0 e1 e2 m01 m2), r9 a0, r10 a1, r11 r12 lr the taps. */
#define MCC_DW3_BEGIN(NAME, R3)                                                \
    MCC_ASM_FUNCTION(NAME)                                                     \
    "push   {r4-r11, lr}\n\t"                                                  \
    "ldr    r3, [r2, #" R3 "]\n\t"                                             \
    "add    r4, r2, #32\n\t"                                                   \
    "ldm    r4, {r4-r8}\n"                                                     \
    "1:\n\t"                                                                   \
    "ldrd   r9, r10, [r2]\n\t"
/* fast_requant_doubled of both, clamped to [act_min, act_max] (within int8,
 * so it subsumes the saturation); the stores, NEXT (r0 to the next pair),
 * the loop. */
#define MCC_DW3_END(NAME, NEXT)                                                \
    "ldrd   r11, r12, [r2, #8]\n\t"                                            \
    "add    lr, r12, r9, asr #31\n\t"                                          \
    "smmlar r9, r9, r11, lr\n\t"                                               \
    "add    lr, r12, r10, asr #31\n\t"                                         \
    "smmlar r10, r10, r11, lr\n\t"                                             \
    "ldr    r11, [r2, #16]\n\t"                                                \
    "asr    r9, r9, r11\n\t"                                                   \
    "asr    r10, r10, r11\n\t"                                                 \
    "ldrd   r11, r12, [r2, #56]\n\t"                                           \
    "cmp    r9, r11\n\t"                                                       \
    "it     lt\n\t"                                                            \
    "movlt  r9, r11\n\t"                                                       \
    "cmp    r9, r12\n\t"                                                       \
    "it     gt\n\t"                                                            \
    "movgt  r9, r12\n\t"                                                       \
    "cmp    r10, r11\n\t"                                                      \
    "it     lt\n\t"                                                            \
    "movlt  r10, r11\n\t"                                                      \
    "cmp    r10, r12\n\t"                                                      \
    "it     gt\n\t"                                                            \
    "movgt  r10, r12\n\t"                                                      \
    "ldr    r11, [r2, #20]\n\t"                                                \
    "strb   r10, [r1, r11]\n\t"                                                \
    "strb   r9, [r1]\n\t"                                                      \
    "add    r1, r1, r11, lsl #1\n\t"                                           \
    NEXT "\n\t"                                                                \
    "ldr    r11, [r2, #24]\n\t"                                                \
    "cmp    r0, r11\n\t"                                                       \
    "bne    1b\n\t"                                                            \
    "pop    {r4-r11, pc}\n\t"                                                  \
    MCC_ASM_END(NAME)

/* Stride 1: E = (t0, t2), O = (t1, t3) of each row's word. */
__asm__(MCC_DW3_BEGIN("mcc_dw3x3_inplace_pairs_dsp", "28")
        "ldr    r11, [r0]\n\t"              /* row 0 */
        "sxtb16 r12, r11\n\t"
        "sxtb16 lr, r11, ror #8\n\t"
        "smlad  r9, r12, r4, r9\n\t"
        "smlabb r9, lr, r7, r9\n\t"
        "smlad  r10, lr, r4, r10\n\t"
        "smlatb r10, r12, r7, r10\n\t"
        "ldr    r11, [r0, r3]\n\t"          /* row 1 */
        "sxtb16 r12, r11\n\t"
        "sxtb16 lr, r11, ror #8\n\t"
        "smlad  r9, r12, r5, r9\n\t"
        "smlabt r9, lr, r7, r9\n\t"
        "smlad  r10, lr, r5, r10\n\t"
        "smlatt r10, r12, r7, r10\n\t"
        "ldr    r11, [r2, #52]\n\t"         /* row 2 */
        "ldr    r11, [r0, r11]\n\t"
        "sxtb16 r12, r11\n\t"
        "sxtb16 lr, r11, ror #8\n\t"
        "smlad  r9, r12, r6, r9\n\t"
        "smlabb r9, lr, r8, r9\n\t"
        "smlad  r10, lr, r6, r10\n\t"
        "smlatb r10, r12, r8, r10\n\t"
        MCC_DW3_END("mcc_dw3x3_inplace_pairs_dsp", "adds   r0, r0, #2"));

/* One filter row at stride 2 from its first tap P (r3 = s bytes between
 * pixels): taps t0..t4 at P + 0, s, .., 4s; out0 += (t0, t2) . (w0, w2) +
 * t1 w1, out1 += (t2, t4) . (w0, w2) + t3 w1 (W: e_i, MID: the SMLAxy
 * selecting w1 from M). Uses r11 (P, then P + s), r12, lr. */
#define MCC_DW3_DIRECT_S2_ROW(W, MID, M)                                       \
    "ldrsb  r12, [r11]\n\t"                                                    \
    "ldrsb  lr, [r11, r3, lsl #1]\n\t"                                         \
    "pkhbt  r12, r12, lr, lsl #16\n\t"                                         \
    "smlad  r9, r12, " W ", r9\n\t"                                            \
    "ldrsb  r12, [r11, r3, lsl #2]\n\t"                                        \
    "pkhbt  r12, lr, r12, lsl #16\n\t"                                         \
    "smlad  r10, r12, " W ", r10\n\t"                                          \
    "ldrsb  r12, [r11, r3]\n\t"                                                \
    MID "  r9, r12, " M ", r9\n\t"                                             \
    "add    r11, r11, r3\n\t"                                                  \
    "ldrsb  r12, [r11, r3, lsl #1]\n\t"                                        \
    MID "  r10, r12, " M ", r10\n\t"

__asm__(MCC_DW3_BEGIN("mcc_dw3x3_inplace_direct_s2_dsp", "20")
        "mov    r11, r0\n\t"                /* row 0 */
        MCC_DW3_DIRECT_S2_ROW("r4", "smlabb", "r7")
        "ldr    r11, [r2, #28]\n\t"         /* row 1 */
        "add    r11, r0, r11\n\t"
        MCC_DW3_DIRECT_S2_ROW("r5", "smlabt", "r7")
        "ldr    r11, [r2, #52]\n\t"         /* row 2 */
        "add    r11, r0, r11\n\t"
        MCC_DW3_DIRECT_S2_ROW("r6", "smlabb", "r8")
        MCC_DW3_END("mcc_dw3x3_inplace_direct_s2_dsp", "add    r0, r0, r3, lsl #2"));
#undef MCC_DW3_DIRECT_S2_ROW
#undef MCC_DW3_BEGIN
#undef MCC_DW3_END
#endif

/* n outputs of one output row of a 3x3 filter (dilation_w 1) whose taps are
 * inside the image horizontally (or in a padded copy): r0..r2 point at the
 * first tap of each filter row for the first output, `step` bytes between
 * pixels; k the row's constants. Returns the next output. */
static int8_t *row_3x3(const int8_t *r0, const int8_t *r1, const int8_t *r2, int32_t step,
                       int32_t stride_w, dw3_row *k, int32_t n, int8_t *o, int reread)
{
    const int32_t out_step = k->out_step;
    int32_t i = 0;
#if MCC_CONV_DSP
    if (step == 1 && stride_w == 1 && n >= 2) {
        const int32_t pairs = n >> 1;
        k->d1 = (int32_t)((uintptr_t)r1 - (uintptr_t)r0);
        k->d2 = (int32_t)((uintptr_t)r2 - (uintptr_t)r0);
        k->end = r0 + 2 * pairs;
        mcc_dw3x3_inplace_pairs_dsp(r0, o, k);
        i = 2 * pairs;
        if (i < n && reread) {
            /* A lone last output: the pair of the last two outputs again (the
             * rows are copies, so the one before is recomputed unchanged). */
            k->end = r0 + n;
            mcc_dw3x3_inplace_pairs_dsp(r0 + n - 2, o + (n - 2) * out_step, k);
            return o + n * out_step;
        }
        r0 += i;
        r1 += i;
        r2 += i;
        o += i * out_step;
    } else if (step == out_step && stride_w == 2 && n >= 2) {
        /* Direct reads (step: the channel count) at stride 2. */
        const int32_t pairs = n >> 1;
        k->d1 = (int32_t)((uintptr_t)r1 - (uintptr_t)r0);
        k->d2 = (int32_t)((uintptr_t)r2 - (uintptr_t)r0);
        k->end = r0 + 4 * pairs * step;
        mcc_dw3x3_inplace_direct_s2_dsp(r0, o, k);
        i = 2 * pairs;
        r0 += 2 * i * step;
        r1 += 2 * i * step;
        r2 += 2 * i * step;
        o += i * out_step;
    }
#else
    (void)reread;
#endif
    /* The weights are read where they lie and every product goes straight
     * into its accumulator: with the nine taps in locals and the sums formed
     * per filter row, GCC spilled them (7.1 instructions per MAC on the M3). */
    const int8_t *w = k->w;
    const int32_t bias = k->bias;
    const int32_t *t = k->t;
    const int32_t act_min = k->act_min, act_max = k->act_max;
    const int32_t s2 = 2 * step;
    if (stride_w == 1) {
        /* Two outputs per step share the middle columns' loads. */
        const int32_t s3 = 3 * step;
        for (; i + 2 <= n; i += 2, r0 += s2, r1 += s2, r2 += s2, o += 2 * out_step) {
            int32_t a0 = bias, a1 = bias;
            /* Filter row I (4 weight bytes a row) over the input row at R. */
#define MCC_DW3_ROW(R, I) do {                                                 \
                const int32_t t1_ = (R)[step], t2_ = (R)[s2];                  \
                int32_t w_ = w[4 * (I)];                                       \
                a0 += (R)[0] * w_;                                             \
                a1 += t1_ * w_;                                                \
                w_ = w[4 * (I) + 1];                                           \
                a0 += t1_ * w_;                                                \
                a1 += t2_ * w_;                                                \
                w_ = w[4 * (I) + 2];                                           \
                a0 += t2_ * w_;                                                \
                a1 += (R)[s3] * w_;                                            \
            } while (0)
            MCC_DW3_ROW(r0, 0);
            MCC_DW3_ROW(r1, 1);
            MCC_DW3_ROW(r2, 2);
#undef MCC_DW3_ROW
            o[0] = out_fast(a0, t, act_min, act_max);
            o[out_step] = out_fast(a1, t, act_min, act_max);
        }
    }
    const int32_t adv = stride_w * step;
    for (; i < n; ++i, r0 += adv, r1 += adv, r2 += adv, o += out_step) {
        const int32_t a = bias + w[0] * r0[0] + w[1] * r0[step] + w[2] * r0[s2]
                        + w[4] * r1[0] + w[5] * r1[step] + w[6] * r1[s2]
                        + w[8] * r2[0] + w[9] * r2[step] + w[10] * r2[s2];
        o[0] = out_fast(a, t, act_min, act_max);
    }
    return o;
}

/* Bytes per filter row of the copies of row_3x3_copy. */
#define MCC_DW3_COPY_W 40
/* Ring rows with border columns at most this many outputs wide go through
 * one copy of the whole row rather than a copy per border (on the M7 the
 * copy costs more than the two border copies from about 20 outputs on). */
#define MCC_DW3_RING_WHOLE 16

/* n columns of row_3x3_copy's three rows set to pad. SAME padding pads at
 * most one column a side: that one as plain stores, since GCC makes the loop
 * three memset calls (about 20 instructions each for a byte). */
static inline void pad_columns(int8_t *c, int32_t n, int8_t pad)
{
    if (n == 1) {
        c[0] = c[MCC_DW3_COPY_W] = c[2 * MCC_DW3_COPY_W] = pad;
        return;
    }
    for (int32_t x = 0; x < n; ++x) {
        c[x] = c[x + MCC_DW3_COPY_W] = c[x + 2 * MCC_DW3_COPY_W] = pad;
    }
}

/* n outputs of a 3x3 row, the first window starting at input column x0, over
 * a copy on the stack: the three rows' columns [x0, x0 + width) one byte
 * apart, pad_value outside the image, which row_3x3 reads as if the image
 * went on. width = (n - 1) * stride_w + 3 <= MCC_DW3_COPY_W. */
static int8_t *row_3x3_copy(const mcc_depthwise_conv2d_inplace_params *p,
                            const int8_t *const rows[3], int32_t step, int32_t x0, int32_t n,
                            dw3_row *k, int8_t *o)
{
    const int32_t sw = p->stride_w;
    const int32_t width = (n - 1) * sw + 3;
    uint32_t buf[3 * MCC_DW3_COPY_W / 4];
    int8_t *b = (int8_t *)buf;
    const int32_t x_lo = MCC_MAX(x0, 0), x_hi = MCC_MIN(x0 + width, p->in_w);
    /* pad_value left and right of the image. */
    const int8_t pad = (int8_t)p->pad_value;
    pad_columns(b, x_lo - x0, pad);
    const int32_t right = MCC_MAX(x_hi, x_lo) - x0;
    pad_columns(b + right, width - right, pad);
    const int8_t *s0 = rows[0] + x_lo * step, *s1 = rows[1] + x_lo * step;
    const int8_t *s2 = rows[2] + x_lo * step;
    int8_t *d = b + x_lo - x0;
    for (int32_t x = x_lo; x < x_hi; ++x, s0 += step, s1 += step, s2 += step, ++d) {
        d[0] = *s0;
        d[MCC_DW3_COPY_W] = *s1;
        d[2 * MCC_DW3_COPY_W] = *s2;
    }
    return row_3x3(b, b + MCC_DW3_COPY_W, b + 2 * MCC_DW3_COPY_W, 1, sw, k, n, o, 1);
}

/* n outputs of one output row, any filter, taps inside the image horizontally;
 * only filter rows [ky_lo, ky_hi) are read (rows[ky] + x0 * step: the first tap). */
static int8_t *row_any(const mcc_depthwise_conv2d_inplace_params *p, const int8_t *const rows[],
                       int32_t ky_lo, int32_t ky_hi, int32_t x0, int32_t step, const int8_t *w,
                       int32_t bias, const int32_t *t, int32_t n, int8_t *o)
{
    const int32_t fw = p->filter_w, rb = p->row_bytes;
    const int32_t tap = p->dilation_w * step;
    const int32_t out_step = p->channels;
    for (int32_t i = 0; i < n; ++i, o += out_step) {
        int32_t a = bias;
        for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
            const int8_t *wr = w + ky * rb;
            const int8_t *r = rows[ky] + (x0 + i * p->stride_w) * step;
            for (int32_t kx = 0; kx < fw; ++kx) {
                a += (int32_t)wr[kx] * r[kx * tap];
            }
        }
        o[0] = out_fast(a, t, p->act_min, p->act_max);
    }
    return o;
}

#if MCC_CONV_DSP
/* row_wide's outputs per pass: their accumulators, and each filter row's
 * span of taps copied contiguous (plus a word of zeros to read past). */
#define MCC_WIDE_PASS 24

/* row_any for filter rows of at most two words (up to 8 taps), undilated
 * along x, on DSP cores, border columns too (x0 may be negative): filter row
 * by filter row, the span of taps under a pass of outputs is copied once into
 * a contiguous stack buffer (the taps of direct reads are `step` bytes apart;
 * pad_value outside the image), and each output takes its taps as two
 * words split into (t0, t2), (t1, t3), (t4, t6), (t5, t7) against the row's
 * weights as int16 pairs: four SMLADs a filter row instead of a multiply per
 * tap (a 7x7 layer at stride 2 took 433 instructions per output). Each pass
 * copies its spans before it writes an output: what row_any reads, it reads
 * first. */
static int8_t *row_wide(const mcc_depthwise_conv2d_inplace_params *p, const int8_t *const rows[],
                        int32_t ky_lo, int32_t ky_hi, int32_t x0, int32_t step, const int8_t *w,
                        int32_t bias, const int32_t *t, int32_t n, int8_t *o)
{
    const int32_t sw = p->stride_w, fw = p->filter_w, rb = p->row_bytes;
    const int32_t out_step = p->channels;
    int32_t acc[MCC_WIDE_PASS];
    int8_t span[(MCC_WIDE_PASS - 1) * 2 + 8 + 8];   /* stride_w <= 2 here */
    for (int32_t done = 0; done < n; done += MCC_WIDE_PASS) {
        const int32_t m = MCC_MIN(MCC_WIDE_PASS, n - done);
        const int32_t len = (m - 1) * sw + fw;
        for (int32_t i = 0; i < m; ++i) {
            acc[i] = bias;
        }
        for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
            /* Taps [a, b) of the span lie inside the image, the rest read pad_value. */
            const int32_t xs = x0 + done * sw;
            const int32_t a = MCC_CLAMP(-xs, 0, len), b = MCC_CLAMP(p->in_w - xs, a, len);
            const int8_t *src = rows[ky] + (xs + a) * step;
            memset(span, (int8_t)p->pad_value, (size_t)a);
            if (step == 1) {
                memcpy(span + a, src, (size_t)(b - a));
            } else {
                gather_s8(span + a, src, b - a, step);
            }
            memset(span + b, (int8_t)p->pad_value, (size_t)(len - b));
            memset(span + len, 0, 8);
            const int32_t v0 = load32(w + ky * rb), v1 = rb > 4 ? load32(w + ky * rb + 4) : 0;
            const int32_t w0 = __sxtb16(v0), w1 = sxtb16_ror8(v0);
            const int32_t w2 = __sxtb16(v1), w3 = sxtb16_ror8(v1);
            const int8_t *r = span;
            if (rb > 4) {
                for (int32_t i = 0; i < m; ++i, r += sw) {
                    const int32_t u = load32(r), v = load32(r + 4);
                    int32_t x = __smlad(__sxtb16(u), w0, acc[i]);
                    x = __smlad(sxtb16_ror8(u), w1, x);
                    x = __smlad(__sxtb16(v), w2, x);
                    acc[i] = __smlad(sxtb16_ror8(v), w3, x);
                }
            } else {
                for (int32_t i = 0; i < m; ++i, r += sw) {
                    const int32_t u = load32(r);
                    acc[i] = __smlad(sxtb16_ror8(u), w1, __smlad(__sxtb16(u), w0, acc[i]));
                }
            }
        }
        for (int32_t i = 0; i < m; ++i, o += out_step) {
            o[0] = out_fast(acc[i], t, p->act_min, p->act_max);
        }
    }
    return o;
}
#endif

/* One output row of channel c with the fast table, any filter: border
 * columns from the unfolded bias, the others through row_any from the folded
 * bias, where filter rows outside the image count as pad_value (their weights
 * times pad_value move into the bias). On DSP cores filter rows of up to 8
 * taps run every column through row_wide, which reads pad_value outside the
 * image itself. */
static int8_t *dw_row_fast(const mcc_depthwise_conv2d_inplace_params *p, const channel_rows *cr,
                           int32_t y0, int32_t ky_lo, int32_t ky_hi, int32_t lo, int32_t hi,
                           const int8_t *w, const int32_t *t, int32_t bias0, int8_t *o)
{
    const int32_t out_step = p->channels, sw = p->stride_w, fh = p->filter_h;
    const int32_t step = cr->step;
#if MCC_CONV_DSP
    const int wide = p->dilation_w == 1 && p->row_bytes <= 8 && sw <= 2;
#else
    const int wide = 0;
#endif
    if (wide) {
        lo = 0;
        hi = p->out_w;
    }
    int32_t ox = 0;
    for (; ox < lo; ++ox, o += out_step) {
        o[0] = out_fast(border_acc(p, cr, w, y0, ky_lo, ky_hi, ox * sw - p->pad_w, bias0), t,
                        p->act_min, p->act_max);
    }
    if (lo < hi) {
        const int8_t *rows[MCC_INPLACE_MAX_FILTER_H];
        for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
            rows[ky] = row_at(cr, y0 + ky * p->dilation_h);
        }
        int32_t bias = t[0];
        for (int32_t ky = 0; ky < fh; ++ky) {
            if (ky < ky_lo || ky >= ky_hi) {
                bias += p->pad_value * row_sum(w + ky * p->row_bytes, p->filter_w);
            }
        }
        const int32_t x0 = lo * sw - p->pad_w;
#if MCC_CONV_DSP
        if (wide) {
            o = row_wide(p, rows, ky_lo, ky_hi, x0, step, w, bias, t, hi - lo, o);
        } else
#endif
        {
            o = row_any(p, rows, ky_lo, ky_hi, x0, step, w, bias, t, hi - lo, o);
        }
        ox = hi;
    }
    for (; ox < p->out_w; ++ox, o += out_step) {
        o[0] = out_fast(border_acc(p, cr, w, y0, ky_lo, ky_hi, ox * sw - p->pad_w, bias0), t,
                        p->act_min, p->act_max);
    }
    return o;
}

/* One output row of channel c of a 3x3 filter (dilation_w 1, fast table):
 * every column through row_3x3, the border columns over a padded copy of
 * their windows, or (whole) the whole row over one copy. kfull: the
 * channel's constants with every filter row inside;
 * filter rows outside [ky_lo, ky_hi) read as pad_value (zero weights, their
 * weights times pad_value in the bias). */
static int8_t *dw_row_3x3(const mcc_depthwise_conv2d_inplace_params *p, const channel_rows *cr,
                          int32_t y0, int32_t ky_lo, int32_t ky_hi, int32_t lo, int32_t hi,
                          int whole, const int8_t *w, const int32_t *t, dw3_row *kfull,
                          int8_t *o)
{
    const int32_t sw = p->stride_w, step = cr->step;
    dw3_row kpart;
    dw3_row *k = kfull;
    if (ky_lo > 0 || ky_hi < 3) {
        int32_t bias = t[0];
        for (int32_t ky = 0; ky < 3; ++ky) {
            if (ky < ky_lo || ky >= ky_hi) {
                bias += p->pad_value * row_sum(w + 4 * ky, 3);
            }
        }
        kpart = *kfull;
        dw3_row_clip(&kpart, ky_lo, ky_hi, bias);
        k = &kpart;
    }
    /* Rows outside: any row inside to read (their weights are zero). */
    const int8_t *rows[3];
    for (int32_t ky = 0; ky < 3; ++ky) {
        const int inside = ky >= ky_lo && ky < ky_hi;
        rows[ky] = row_at(cr, y0 + (inside ? ky : ky_lo) * p->dilation_h);
    }
    const int32_t right = p->out_w - hi;
    if (whole) {
        return row_3x3_copy(p, rows, step, -p->pad_w, p->out_w, k, o);
    }
    if (lo > 0) {
        o = row_3x3_copy(p, rows, step, -p->pad_w, lo, k, o);
    }
#if MCC_CONV_DSP
    if (step != 1 && sw == 1) {
        /* Direct reads: the inner columns too over copies, for the SMLAD
         * pairs, in chunks (each copied just before its outputs are written;
         * they read only pixels from their own on). */
        const int32_t chunk = MCC_DW3_COPY_W - 2;
        for (int32_t ox = lo; ox < hi; ox += chunk) {
            o = row_3x3_copy(p, rows, step, ox - p->pad_w, MCC_MIN(chunk, hi - ox), k, o);
        }
        lo = hi;
    }
#endif
    if (lo < hi) {
        const int32_t x0 = (lo * sw - p->pad_w) * step;
        /* Ring rows may be read again after the output is written. */
        o = row_3x3(rows[0] + x0, rows[1] + x0, rows[2] + x0, step, sw, k, hi - lo, o,
                    p->ring_rows > 0);
    }
    if (right > 0) {
        o = row_3x3_copy(p, rows, step, hi * sw - p->pad_w, right, k, o);
    }
    return o;
}

int mcc_depthwise_conv2d_inplace_s8(const mcc_depthwise_conv2d_inplace_params *p,
                                    const int8_t *input, int8_t *output, void *scratch)
{
    if ((const int8_t *)output != input) {
        return MCC_ERROR;
    }
    const window g = {p->in_h, p->in_w, p->channels, p->out_h, p->out_w,
                      p->filter_h, p->filter_w, p->stride_h, p->stride_w,
                      p->dilation_h, p->dilation_w, p->pad_h, p->pad_w, p->ring_rows};
    const int32_t channels = p->channels;
    const int32_t fh = p->filter_h;
    const int32_t sw = p->stride_w;
    /* Output columns [lo, hi) have every tap inside the image horizontally. */
    const int32_t last_x0 = p->in_w - 1 - (p->filter_w - 1) * p->dilation_w + p->pad_w;
    const int32_t hi = last_x0 < 0 ? 0 : MCC_MIN(p->out_w, last_x0 / sw + 1);
    const int32_t lo = MCC_MIN((p->pad_w + sw - 1) / sw, hi);
    /* The fast paths hold a row pointer per filter row; the TFLite-form table
     * and taller filters take the border path everywhere (correct, slower). */
    const int fast = p->fast_table && fh <= MCC_INPLACE_MAX_FILTER_H;
    /* 3x3: every column through row_3x3, the border ones over a padded copy
     * of at most MCC_DW3_COPY_W columns. */
    const int32_t border_w = MCC_MAX(lo, p->out_w - hi) * sw + 3;
    const int is3x3 = fast && fh == 3 && p->filter_w == 3 && p->dilation_w == 1
                      && border_w <= MCC_DW3_COPY_W;
    /* With the SMLAD pairs at stride 1: a row with border columns or direct
     * reads that fits one stack copy goes through one copy of the whole row
     * and one run of pairs (taken before any output of the row is written,
     * as the chunks of dw_row_3x3), not a copy per border. */
    const int direct = p->ring_rows == 0 && channels > 1;
    const int whole = MCC_CONV_DSP && sw == 1 && (lo > 0 || hi < p->out_w || direct)
                      && p->out_w <= (direct ? MCC_DW3_COPY_W - 2 : MCC_DW3_RING_WHOLE);

    for (int32_t c = 0; c < channels; ++c) {
        channel_rows rows;
        rows_begin(&rows, &g, input, scratch, c);
        const int8_t *w = p->weights + c * fh * p->row_bytes;
        const int32_t *t = p->channel_table + 4 * c;
        int32_t bias0 = t[0];
        for (int32_t ky = 0; ky < fh; ++ky) {
            bias0 += p->pad_value * row_sum(w + ky * p->row_bytes, p->filter_w);
        }
        dw3_row kfull;
        if (is3x3) {
            dw3_row_init(&kfull, w, t[0], t, channels, p->act_min, p->act_max);
        }
        int8_t *o = output + c;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            rows_prepare(&rows, oy);
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            int32_t ky_lo, ky_hi;
            tap_range(y0, fh, p->dilation_h, p->in_h, &ky_lo, &ky_hi);
            /* Outputs go in raster order: with direct reads, output x may
             * overwrite input pixels that only outputs before it read (the
             * border copies are taken just before their outputs). */
            if (is3x3 && ky_lo < ky_hi) {
                o = dw_row_3x3(p, &rows, y0, ky_lo, ky_hi, lo, hi, whole, w, t, &kfull, o);
                continue;
            }
            if (fast) {
                o = dw_row_fast(p, &rows, y0, ky_lo, ky_hi, lo, hi, w, t, bias0, o);
                continue;
            }
            for (int32_t ox = 0; ox < p->out_w; ++ox, o += channels) {
                const int32_t a = border_acc(p, &rows, w, y0, ky_lo, ky_hi, ox * sw - p->pad_w, bias0);
                o[0] = p->fast_table ? out_fast(a, t, p->act_min, p->act_max)
                                     : out_exact(a, t, p->output_offset, p->act_min, p->act_max);
            }
        }
    }
    return MCC_OK;
}

/* ---------------------------------------------------------------- pooling */

static window pool_window(const mcc_pool_inplace_params *p)
{
    const window g = {p->in_h, p->in_w, p->channels, p->out_h, p->out_w,
                      p->filter_h, p->filter_w, p->stride_h, p->stride_w,
                      1, 1, p->pad_h, p->pad_w, p->ring_rows};
    return g;
}

size_t mcc_pool_inplace_s8_scratch_bytes(const mcc_pool_inplace_params *p)
{
    return (size_t)p->ring_rows * (size_t)p->in_w;
}

/* One pooling kernel for both reductions, so the traversal exists once. */
static int pool_inplace(const mcc_pool_inplace_params *p, const int8_t *input, int8_t *output,
                        void *scratch, int average)
{
    if ((const int8_t *)output != input) {
        return MCC_ERROR;
    }
    const window g = pool_window(p);
    for (int32_t c = 0; c < p->channels; ++c) {
        channel_rows rows;
        rows_begin(&rows, &g, input, scratch, c);
        int8_t *out = output + c;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            rows_prepare(&rows, oy);
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            int32_t fy_start, fy_end;
            window_range(y0, p->filter_h, p->in_h, &fy_start, &fy_end);
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                int32_t fx_start, fx_end;
                window_range(x0, p->filter_w, p->in_w, &fx_start, &fx_end);
                if (fy_end <= fy_start || fx_end <= fx_start) {
                    return MCC_ERROR; /* TFLM fails too: a window with no tap */
                }
                int32_t v;
                if (average) {
                    const int32_t count = (fy_end - fy_start) * (fx_end - fx_start);
                    int32_t s = 0;
                    for (int32_t fy = fy_start; fy < fy_end; ++fy) {
                        const int8_t *row = row_at(&rows, y0 + fy);
                        for (int32_t fx = fx_start; fx < fx_end; ++fx) {
                            s += row[(x0 + fx) * rows.step];
                        }
                    }
                    v = pool_average(s, count);
                } else {
                    v = p->act_min;   /* max(act_min, taps) == TFLM's clamp of the max */
                    for (int32_t fy = fy_start; fy < fy_end; ++fy) {
                        const int8_t *row = row_at(&rows, y0 + fy);
                        for (int32_t fx = fx_start; fx < fx_end; ++fx) {
                            v = MCC_MAX(v, (int32_t)row[(x0 + fx) * rows.step]);
                        }
                    }
                }
                out[(oy * p->out_w + ox) * p->channels] = (int8_t)MCC_CLAMP(v, p->act_min, p->act_max);
            }
        }
    }
    return MCC_OK;
}

int mcc_avgpool_inplace_s8(const mcc_pool_inplace_params *p, const int8_t *input,
                           int8_t *output, void *scratch)
{
    return pool_inplace(p, input, output, scratch, 1);
}

int mcc_maxpool_inplace_s8(const mcc_pool_inplace_params *p, const int8_t *input,
                           int8_t *output, void *scratch)
{
    return pool_inplace(p, input, output, scratch, 0);
}

/* -------------------------------------------------------------- pointwise */

/* One depth group of channels c..c+3: the pair (c, c+1) at wp, (c+2, c+3) at
 * wq, in mcc_gemm_s8's layout (mcc_conv.h). */
#if MCC_CONV_DSP
/* v: the group's four input bytes. */
static inline void group_four(int32_t v, const int8_t *wp, const int8_t *wq,
                              int32_t *a0, int32_t *a1, int32_t *a2, int32_t *a3)
{
    const int32_t xe = __sxtb16(v), xo = sxtb16_ror8(v);     /* (k, k+2), (k+1, k+3) */
    int32_t u = load32(wp);
    *a0 = __smlad(xe, __sxtb16(u), *a0);
    *a1 = __smlad(xe, sxtb16_ror8(u), *a1);
    u = load32(wp + 4);
    *a0 = __smlad(xo, __sxtb16(u), *a0);
    *a1 = __smlad(xo, sxtb16_ror8(u), *a1);
    u = load32(wq);
    *a2 = __smlad(xe, __sxtb16(u), *a2);
    *a3 = __smlad(xe, sxtb16_ror8(u), *a3);
    u = load32(wq + 4);
    *a2 = __smlad(xo, __sxtb16(u), *a2);
    *a3 = __smlad(xo, sxtb16_ror8(u), *a3);
}
#else
/* x0..x3: the group's input values. Byte 2h + j of word v of a pair's group
 * holds depth k + 2h + v of the pair's channel j. Each input value goes into
 * the four accumulators in turn: summed per accumulator first, GCC kept the
 * partial sums and the eight weights in more registers than the M3 has (the
 * kernel took 3.7 instructions per MAC there, 3.5 so; the loop is 2.6). */
static inline void group_four(int32_t x0, int32_t x1, int32_t x2, int32_t x3, const int8_t *wp,
                              const int8_t *wq, int32_t *a0, int32_t *a1, int32_t *a2, int32_t *a3)
{
    int32_t s0 = *a0, s1 = *a1, s2 = *a2, s3 = *a3;
#define MCC_PW_SLOT(X, B) do {                                                 \
        s0 += (X) * wp[(B)];                                                   \
        s1 += (X) * wp[(B) + 1];                                               \
        s2 += (X) * wq[(B)];                                                   \
        s3 += (X) * wq[(B) + 1];                                               \
    } while (0)
    MCC_PW_SLOT(x0, 0);
    MCC_PW_SLOT(x2, 2);
    MCC_PW_SLOT(x1, 4);
    MCC_PW_SLOT(x3, 6);
#undef MCC_PW_SLOT
    *a0 = s0;
    *a1 = s1;
    *a2 = s2;
    *a3 = s3;
}
#endif

/* Channels c..c+3 (table rows t) of one pixel's in_c input values x, into
 * out[0..n-1]. A partial last depth group reads only in_c & 3 bytes; its
 * weights are zero. */
static void pixel_four(const mcc_pointwise_inplace_params *p, const int8_t *x, const int8_t *wp,
                       const int8_t *wq, const int32_t *t, int32_t n, int8_t *out)
{
    const int32_t in_c = p->in_c;
    const int32_t full = in_c >> 2, rest = in_c & 3;
    int32_t a0 = t[0], a1 = t[4], a2 = t[8], a3 = t[12];
    for (int32_t g = 0; g < full; ++g, x += 4, wp += 8, wq += 8) {
#if MCC_CONV_DSP
        group_four(load32(x), wp, wq, &a0, &a1, &a2, &a3);
#else
        group_four(x[0], x[1], x[2], x[3], wp, wq, &a0, &a1, &a2, &a3);
#endif
    }
    if (rest) {
#if MCC_CONV_DSP
        group_four(load_partial(x, rest), wp, wq, &a0, &a1, &a2, &a3);
#else
        group_four(x[0], rest > 1 ? x[1] : 0, rest > 2 ? x[2] : 0, 0, wp, wq, &a0, &a1, &a2, &a3);
#endif
    }
    const int32_t acc[4] = {a0, a1, a2, a3};
    if (p->fast_table) {
        for (int32_t j = 0; j < n; ++j, t += 4) {
            out[j] = out_fast(acc[j], t, p->act_min, p->act_max);
        }
    } else {
        for (int32_t j = 0; j < n; ++j, t += 4) {
            out[j] = out_exact(acc[j], t, p->output_offset, p->act_min, p->act_max);
        }
    }
}

#if MCC_CONV_DSP
/* Every whole four-channel pass of one pixel: `quads` passes of channels
 * 4q..4q+3, each the pair at w and the pair 8 * groups bytes after it
 * (mcc_gemm_s8's layout, `groups` >= 1 whole depth groups, the passes one
 * after another), over the pixel's input x (4 * groups bytes, read again
 * for every pass); table rows from chan, fast form; output o[0..4 * quads),
 * saturated to int8 (the caller narrows it to the activation range). The
 * weights are read with LDRD: the int8 array is word aligned, as GCC places
 * arrays at -O2 (mcc_conv.c's GEMM tiles read the same layout that way). */
void mcc_pw_inplace_1x4_dsp(const int8_t *x, const int8_t *w, const int32_t *chan, int8_t *o,
                            int32_t groups, int32_t quads);

/* fast_requant of accumulator A with channel K's table row (MULT, POST: byte
 * offsets of its multiplier and post from r12): r8 multiplier, r9 hi_base,
 * r10 post, r11 scratch; stored to o[K] (lr). */
#define MCC_PW_REQUANT(A, K, MULT, POST)                                       \
    "ldrd   r8, r9, [r12, #" MULT "]\n\t"                                      \
    "ldr    r10, [r12, #" POST "]\n\t"                                         \
    "add    r11, r9, " A ", asr #31\n\t"                                       \
    "lsl    " A ", " A ", #1\n\t"                                              \
    "smmlar " A ", " A ", r8, r11\n\t"                                         \
    "asr    " A ", " A ", r10\n\t"                                             \
    "ssat   " A ", #8, " A "\n\t"                                              \
    "strb   " A ", [lr, #" K "]\n\t"

/* The loop of mcc_conv.c's mcc_gemm_s8_1x4_dsp (private to that file), here
 * over every pass of the pixel. r0 x, r1 r2 the pass's two pairs' weights,
 * r3 the first pair's end; r4..r7 the accumulators of channels 0..3; r8 r9
 * the input's (k, k+2) and (k+1, k+3) pairs, r10..r12 lr a weight pair's
 * operands. Stack: [sp] chan, [sp, #4] o, [sp, #44] groups, [sp, #48]
 * passes left. */
__asm__(MCC_ASM_FUNCTION("mcc_pw_inplace_1x4_dsp")
        "push   {r4-r11, lr}\n\t"
        "push   {r2, r3}\n"
        "0:\n\t"                            /* one pass of four channels */
        "ldr    r12, [sp]\n\t"
        "ldr    r4, [r12]\n\t"              /* the four folded biases */
        "ldr    r5, [r12, #16]\n\t"
        "ldr    r6, [r12, #32]\n\t"
        "ldr    r7, [r12, #48]\n\t"
        "ldr    r3, [sp, #44]\n\t"          /* groups */
        "add    r2, r1, r3, lsl #3\n\t"     /* the second pair's weights */
        "mov    r3, r2\n"
        "1:\n\t"
        "ldr    r8, [r0], #4\n\t"
        "sxtb16 r9, r8, ror #8\n\t"
        "sxtb16 r8, r8\n\t"
        "ldrd   r10, r11, [r1], #8\n\t"     /* pair 0: words A and B */
        "sxtb16 r12, r10\n\t"
        "sxtb16 r10, r10, ror #8\n\t"
        "sxtb16 lr, r11\n\t"
        "sxtb16 r11, r11, ror #8\n\t"
        "smlad  r4, r8, r12, r4\n\t"
        "smlad  r5, r8, r10, r5\n\t"
        "smlad  r4, r9, lr, r4\n\t"
        "smlad  r5, r9, r11, r5\n\t"
        "ldrd   r10, r11, [r2], #8\n\t"     /* pair 1 */
        "sxtb16 r12, r10\n\t"
        "sxtb16 r10, r10, ror #8\n\t"
        "sxtb16 lr, r11\n\t"
        "sxtb16 r11, r11, ror #8\n\t"
        "smlad  r6, r8, r12, r6\n\t"
        "smlad  r7, r8, r10, r7\n\t"
        "smlad  r6, r9, lr, r6\n\t"
        "smlad  r7, r9, r11, r7\n\t"
        "cmp    r1, r3\n\t"
        "bne    1b\n\t"
        "ldrd   r12, lr, [sp]\n\t"          /* chan, o */
        MCC_PW_REQUANT("r4", "0", "4", "12")
        MCC_PW_REQUANT("r5", "1", "20", "28")
        MCC_PW_REQUANT("r6", "2", "36", "44")
        MCC_PW_REQUANT("r7", "3", "52", "60")
        "add    r12, r12, #64\n\t"          /* the next pass: chan + 16, o + 4 */
        "add    lr, lr, #4\n\t"
        "strd   r12, lr, [sp]\n\t"
        "mov    r1, r2\n\t"                 /* its weights follow */
        "ldr    r3, [sp, #44]\n\t"
        "sub    r0, r0, r3, lsl #2\n\t"     /* the same input again */
        "ldr    r3, [sp, #48]\n\t"
        "subs   r3, r3, #1\n\t"
        "str    r3, [sp, #48]\n\t"
        "bne    0b\n\t"
        "add    sp, sp, #8\n\t"
        "pop    {r4-r11, pc}\n\t"
        MCC_ASM_END("mcc_pw_inplace_1x4_dsp"));
#undef MCC_PW_REQUANT
#endif

size_t mcc_pointwise_inplace_s8_scratch_bytes(const mcc_pointwise_inplace_params *p)
{
    return (size_t)p->out_c;
}

static int pointwise_inplace(const mcc_pointwise_inplace_params *p, const int8_t *input,
                             int8_t *output, void *scratch)
{
    if ((const int8_t *)output != input) {
        return MCC_ERROR;
    }
    int8_t *tmp = (int8_t *)scratch;
    const int32_t in_c = p->in_c, out_c = p->out_c;
    const int32_t pair_bytes = 8 * ((in_c + 3) >> 2);
    const int32_t pixels = p->out_h * p->out_w;
    const int32_t dir = p->reverse ? -1 : 1;
    int32_t oy = p->reverse ? p->out_h - 1 : 0;
    int32_t ox = p->reverse ? p->out_w - 1 : 0;
#if MCC_CONV_DSP
    /* Whole depth groups and the fast table: a pixel's whole four-channel
     * passes in one assembly call, then narrowed to the activation range. */
    const int32_t quads = p->fast_table && (in_c & 3) == 0 ? out_c >> 2 : 0;
    const int narrow = p->act_min > -128 || p->act_max < 127;
#endif
    for (int32_t k = 0; k < pixels; ++k) {
        const int8_t *x = input + ((oy * p->stride_h) * p->in_w + ox * p->stride_w) * in_c;
        int8_t *dst = output + (oy * p->out_w + ox) * out_c;
        /* A pixel whose output bytes overlap its own input, which every output
         * channel reads, goes through the scratch; the others straight to the
         * output (the pixel order keeps every other pixel's input intact). The
         * weights and table cover out_c rounded up to 4; the output only out_c. */
        const int direct = dst + out_c <= x || dst >= x + in_c;
        int8_t *out = direct ? dst : tmp;
        const int8_t *w = p->weights;
        int32_t c = 0;
#if MCC_CONV_DSP
        if (quads > 0) {
            mcc_pw_inplace_1x4_dsp(x, w, p->channel_table, out, in_c >> 2, quads);
            if (narrow) {
                clamp_activation(out, 4 * quads, p->act_min, p->act_max);
            }
            c = 4 * quads;
            w += 2 * pair_bytes * quads;
        }
#endif
        for (; c < out_c; c += 4, w += 2 * pair_bytes) {
            pixel_four(p, x, w, w + pair_bytes, p->channel_table + 4 * c, MCC_MIN(4, out_c - c),
                       out + c);
        }
        if (!direct) {
            memcpy(dst, tmp, (size_t)out_c);
        }
        ox += dir;
        if (ox < 0 || ox == p->out_w) {
            ox = p->reverse ? p->out_w - 1 : 0;
            oy += dir;
        }
    }
    return MCC_OK;
}

int mcc_conv2d_1x1_inplace_s8(const mcc_pointwise_inplace_params *p, const int8_t *input,
                              int8_t *output, void *scratch)
{
    return pointwise_inplace(p, input, output, scratch);
}

int mcc_fully_connected_inplace_s8(const mcc_pointwise_inplace_params *p, const int8_t *input,
                                   int8_t *output, void *scratch)
{
    return pointwise_inplace(p, input, output, scratch);
}
