/* mcc_conv.c: portable int8 convolution kernels. See mcc_conv.h for the
 * arithmetic and why the folded bias is exact.
 *
 * All three kernels reduce to dot products of contiguous int8 vectors
 * (conv, fully connected) or short strided tap loops (depthwise). The
 * dot-product helpers below are the one place a SIMD variant would change.
 */
#include "mcc_conv.h"

/* Optional paths (kernels.OPTIONAL_PATHS): the model's mcc_config.h omits
 * those no layer takes, and they compile out; a call that would take one
 * returns MCC_ERROR. 1ch: filters other than three rows of one word, and
 * out_c % 4 channels. im2col: its three ways (mcc_conv2d_im2col_s8), and
 * the RGB first layers' direct widening within the int8 way (without it
 * they take that way's general gather: slower, the same bytes). */
#if defined(MCC_OMIT_DW1CH_GENERAL)
#define DW1CH_GENERAL 0
#else
#define DW1CH_GENERAL 1
#endif
#if defined(MCC_OMIT_IM2COL_WIDENED)
#define IM2COL_WIDENED 0
#else
#define IM2COL_WIDENED 1
#endif
#if defined(MCC_OMIT_IM2COL_PATCHES)
#define IM2COL_PATCHES 0
#else
#define IM2COL_PATCHES 1
#endif
#if defined(MCC_OMIT_IM2COL_STACK_PAIRS)
#define IM2COL_STACK_PAIRS 0
#else
#define IM2COL_STACK_PAIRS 1
#endif
#if defined(MCC_OMIT_IM2COL_RGB)
#define IM2COL_RGB 0
#else
#define IM2COL_RGB 1
#endif
/* The planar 3x3 depthwise kernel at stride_w 2 (mcc_dw3x3_s8_pairs_s2_dsp):
 * the pixel kernel takes most such layers. */
#if defined(MCC_OMIT_PLANAR_S2)
#define PLANAR_S2 0
#else
#define PLANAR_S2 1
#endif
/* mcc_depthwise_conv2d_planar_s8 at stride_w 2 (filters 5 and 7 wide). */
#if defined(MCC_OMIT_PLANAR_WIDE_S2)
#define PLANAR_WIDE_S2 0
#else
#define PLANAR_WIDE_S2 1
#endif
/* mcc_depthwise_conv2d_planar_s8's loops for filters 6 or 7 wide (those up
 * to 5 wide have shorter ones of their own). */
#if defined(MCC_OMIT_PLANAR_WIDE7)
#define PLANAR_WIDE7 0
#else
#define PLANAR_WIDE7 1
#endif
/* mcc_depthwise_conv2d_pixel_s8's C loop over any filter: on DSP cores the
 * 3x3 filters run in assembly without it. */
#if defined(MCC_OMIT_DW_PIXEL_GENERAL)
#define DW_PIXEL_GENERAL 0
#else
#define DW_PIXEL_GENERAL 1
#endif
/* The fused residual ADD (mcc_residual) of the GEMM, im2col and band kernels. */
#if defined(MCC_OMIT_RESIDUAL)
#define RESIDUAL 0
#else
#define RESIDUAL 1
#endif
/* The int16 ("wide") weights of the GEMM and band kernels' 4x2 tiles, for
 * layers given flash for speed (conv.py, widen). */
#if defined(MCC_OMIT_WIDE_WEIGHTS)
#define WIDE_WEIGHTS 0
#else
#define WIDE_WEIGHTS 1
#endif
#if defined(MCC_OMIT_GEMM_PARTIAL)
#define GEMM_PARTIAL 0
#else
#define GEMM_PARTIAL 1
#endif
/* Each path compiled in defines its symbol; a model that takes a path reads
 * it, so kernels built without the path do not link with that model. */
#if DW1CH_GENERAL
const uint8_t mcc_has_path_DW1CH_GENERAL = 1;
#endif
#if IM2COL_WIDENED
const uint8_t mcc_has_path_IM2COL_WIDENED = 1;
#endif
#if IM2COL_PATCHES
const uint8_t mcc_has_path_IM2COL_PATCHES = 1;
#endif
#if IM2COL_STACK_PAIRS
const uint8_t mcc_has_path_IM2COL_STACK_PAIRS = 1;
#endif
#if IM2COL_RGB
const uint8_t mcc_has_path_IM2COL_RGB = 1;
#endif
#if RESIDUAL
const uint8_t mcc_has_path_RESIDUAL = 1;
#endif
#if DW_PIXEL_GENERAL
const uint8_t mcc_has_path_DW_PIXEL_GENERAL = 1;
#endif
#if PLANAR_S2
const uint8_t mcc_has_path_PLANAR_S2 = 1;
#endif
#if PLANAR_WIDE_S2
const uint8_t mcc_has_path_PLANAR_WIDE_S2 = 1;
#endif
#if PLANAR_WIDE7
const uint8_t mcc_has_path_PLANAR_WIDE7 = 1;
#endif
#if WIDE_WEIGHTS
const uint8_t mcc_has_path_WIDE_WEIGHTS = 1;
#endif
#if GEMM_PARTIAL
const uint8_t mcc_has_path_GEMM_PARTIAL = 1;
#endif

/* sum(a[i] * b[i]) for i < n. Each product fits in 16 bits; the int32 sum
 * cannot overflow for any depth a TFLite model uses (< 2^16 terms). */
static inline int32_t dot_s8(const int8_t *a, const int8_t *b, int32_t n)
{
    int32_t acc = 0;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        acc += (int32_t)a[i] * b[i] + (int32_t)a[i + 1] * b[i + 1]
             + (int32_t)a[i + 2] * b[i + 2] + (int32_t)a[i + 3] * b[i + 3];
    }
    for (; i < n; ++i) {
        acc += (int32_t)a[i] * b[i];
    }
    return acc;
}

static inline int32_t sum_s8(const int8_t *a, int32_t n)
{
    int32_t acc = 0;
    for (int32_t i = 0; i < n; ++i) {
        acc += a[i];
    }
    return acc;
}

/* The common epilogue: requantize, add the output zero point, clamp. */
static inline int8_t to_s8(int32_t acc, int32_t multiplier, int32_t shift,
                           int32_t output_offset, int32_t act_min, int32_t act_max)
{
    int32_t v = mcc_requantize(acc, multiplier, shift) + output_offset;
    return (int8_t)MCC_CLAMP(v, act_min, act_max);
}

/* ------------------------------------------------------------------ CONV_2D */

int mcc_conv2d_s8(const mcc_conv2d_params *p, const int8_t *input, int8_t *output)
{
    const int32_t pad_value = -p->input_offset;   /* the input zero point */
    const int32_t fc = p->filter_c;
    const int32_t filters_per_group = p->out_c / (p->in_c / fc);
    /* Distance from the first to the last tap of the window, minus one pixel. */
    const int32_t span_h = (p->filter_h - 1) * p->dilation_h;
    const int32_t span_w = (p->filter_w - 1) * p->dilation_w;
    /* Without groups or horizontal dilation a filter row reads one contiguous
     * run of the input: one dot product per row instead of one per tap. */
    const int contiguous_rows = fc == p->in_c && p->dilation_w == 1;
    const int32_t row_len = p->filter_w * fc;
    const int32_t in_row_stride = p->in_w * p->in_c;

    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + b * p->in_h * in_row_stride;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_h;
            const int rows_inside = in_y0 >= 0 && in_y0 + span_h < p->in_h;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_w;
                const int inside = rows_inside && in_x0 >= 0 && in_x0 + span_w < p->in_w;
                const int8_t *w = p->weights;
                for (int32_t oc = 0; oc < p->out_c; ++oc) {
                    const int32_t c0 = (oc / filters_per_group) * fc;
                    int32_t acc = p->folded_bias[oc];
                    for (int32_t ky = 0; ky < p->filter_h; ++ky) {
                        const int32_t in_y = in_y0 + ky * p->dilation_h;
                        const int y_ok = in_y >= 0 && in_y < p->in_h;
                        if (inside && contiguous_rows) {
                            acc += dot_s8(w, in_b + in_y * in_row_stride + in_x0 * p->in_c,
                                          row_len);
                            w += row_len;
                            continue;
                        }
                        for (int32_t kx = 0; kx < p->filter_w; ++kx) {
                            const int32_t in_x = in_x0 + kx * p->dilation_w;
                            if (y_ok && in_x >= 0 && in_x < p->in_w) {
                                acc += dot_s8(w, in_b + in_y * in_row_stride
                                                  + in_x * p->in_c + c0, fc);
                            } else {
                                acc += pad_value * sum_s8(w, fc);
                            }
                            w += fc;
                        }
                    }
                    *output++ = to_s8(acc, p->multiplier[oc], p->shift[oc],
                                      p->output_offset, p->act_min, p->act_max);
                }
            }
        }
    }
    return MCC_OK;
}

/* ------------------------------------------------------- DEPTHWISE_CONV_2D */

int mcc_depthwise_conv2d_s8(const mcc_depthwise_conv2d_params *p,
                            const int8_t *input, int8_t *output)
{
    const int32_t pad_value = -p->input_offset;
    const int32_t taps = p->filter_h * p->filter_w;
    const int32_t span_h = (p->filter_h - 1) * p->dilation_h;
    const int32_t span_w = (p->filter_w - 1) * p->dilation_w;
    const int32_t in_row_stride = p->in_w * p->in_c;
    const int32_t tap_step_x = p->dilation_w * p->in_c;

    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + b * p->in_h * in_row_stride;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_h;
            const int rows_inside = in_y0 >= 0 && in_y0 + span_h < p->in_h;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_w;
                const int inside = rows_inside && in_x0 >= 0 && in_x0 + span_w < p->in_w;
                for (int32_t oc = 0; oc < p->out_c; ++oc) {
                    const int32_t ic = oc / p->depth_multiplier;
                    const int8_t *w = p->weights + oc * taps;
                    int32_t acc = p->folded_bias[oc];
                    if (inside) {
                        for (int32_t ky = 0; ky < p->filter_h; ++ky) {
                            const int8_t *row = in_b + (in_y0 + ky * p->dilation_h) * in_row_stride
                                              + in_x0 * p->in_c + ic;
                            for (int32_t kx = 0; kx < p->filter_w; ++kx) {
                                acc += (int32_t)w[kx] * row[kx * tap_step_x];
                            }
                            w += p->filter_w;
                        }
                    } else {
                        for (int32_t ky = 0; ky < p->filter_h; ++ky) {
                            const int32_t in_y = in_y0 + ky * p->dilation_h;
                            const int y_ok = in_y >= 0 && in_y < p->in_h;
                            for (int32_t kx = 0; kx < p->filter_w; ++kx) {
                                const int32_t in_x = in_x0 + kx * p->dilation_w;
                                const int32_t v = y_ok && in_x >= 0 && in_x < p->in_w
                                    ? in_b[in_y * in_row_stride + in_x * p->in_c + ic]
                                    : pad_value;
                                acc += (int32_t)w[kx] * v;
                            }
                            w += p->filter_w;
                        }
                    }
                    *output++ = to_s8(acc, p->multiplier[oc], p->shift[oc],
                                      p->output_offset, p->act_min, p->act_max);
                }
            }
        }
    }
    return MCC_OK;
}

/* --------------------------------------------------------- FULLY_CONNECTED */

static void matmul_s8(const mcc_fully_connected_params *p, const int8_t *input,
                      int8_t *output)
{
    const int32_t q_step = p->per_channel ? 1 : 0;
    for (int32_t r = 0; r < p->rows; ++r) {
        const int8_t *x = input + r * p->depth;
        const int8_t *w = p->weights;
        const int32_t *mult = p->multiplier;
        const int32_t *shift = p->shift;
        for (int32_t oc = 0; oc < p->out_c; ++oc) {
            int32_t acc = p->folded_bias[oc] + dot_s8(x, w, p->depth);
            *output++ = to_s8(acc, *mult, *shift, p->output_offset, p->act_min, p->act_max);
            w += p->depth;
            mult += q_step;
            shift += q_step;
        }
    }
}

int mcc_fully_connected_s8(const mcc_fully_connected_params *p,
                           const int8_t *input, int8_t *output)
{
    matmul_s8(p, input, output);
    return MCC_OK;
}

int mcc_conv2d_1x1_s8(const mcc_fully_connected_params *p,
                      const int8_t *input, int8_t *output)
{
    matmul_s8(p, input, output);
    return MCC_OK;
}

/* ============================================================ fast kernels
 *
 * See "Fast requantization" and the layouts in mcc_conv.h. Each kernel has a
 * DSP inner loop (MCC_CONV_DSP) and a portable one over the same scratch
 * layout; the scratch is written and read through one pointer type per path
 * (int32_t words of two int16 lanes with DSP, int16_t otherwise).
 */
#include "mcc_simd.h"

/* The hottest loops (the 4x2 tiles of the GEMM and the 3x3 bands, and the
 * 3x3 depthwise pairs and blocks) need all 14 allocatable registers; in C the
 * compiler keeps some of their values on the stack. They are written here as
 * assembly functions (ARMv7E-M Thumb-2, AAPCS), so no compiler's register
 * allocation can make them fail or spill. -DMCC_NO_ASM takes the C loops. */
#if MCC_CONV_DSP && defined(__GNUC__) && defined(__thumb2__) && !defined(MCC_NO_ASM)
#define MCC_CONV_ASM 1
#else
#define MCC_CONV_ASM 0
#endif
/* The pixel depthwise kernel's C loop: every filter without the assembly. */
#define DW_PIXEL_C (DW_PIXEL_GENERAL || !MCC_CONV_ASM)

#if MCC_CONV_ASM
/* A 4x2 tile function: `pairs` channel pairs of four output rows (row r at
 * o + r * row_stride), each pair's weights after the last's from w, its table
 * rows at chan (8 a pair), over `steps` steps of the block. Bias, dot
 * products and requantization in one pass per pair. */
typedef void tile_4x2_fn(const int32_t *block, const int8_t *w, const int32_t *chan, int8_t *o,
                         int32_t steps, int32_t row_stride, int32_t pairs);
/* gemm_block4's: the block's four rows (int16 pairs, see widen_rows4), a step
 * per depth group, row_stride = out_c. */
tile_4x2_fn mcc_gemm_s8_4x2_dsp;
/* mcc_conv2d_band_s8's (band_tiles): four output rows of one column, the
 * block being the three input columns it reads (`steps` = 6 * ceil(in_c / 4)
 * steps of three filter taps, see band_column); one function per stride. */
tile_4x2_fn mcc_band_s8_4x2_s1_dsp, mcc_band_s8_4x2_s2_dsp;
/* The three with int16 weights (conv.py wide_weights): each weight word
 * already one channel's pair, read two at a time, no SXTB16. */
tile_4x2_fn mcc_gemm_s8w_4x2_dsp, mcc_band_s8w_4x2_s1_dsp, mcc_band_s8w_4x2_s2_dsp;

/* One weight word (two channels' int8 pairs): channel 0 in lr, 1 in r12. */
#define MCC_TILE_WEIGHTS                                                       \
    "ldr    r12, [r2], #4\n\t"                                                 \
    "sxtb16 lr, r12\n\t"                                                       \
    "sxtb16 r12, r12, ror #8\n\t"
/* The same from int16 weights: channel 0's pair in lr, 1's in r12. */
#define MCC_TILE_WIDE "ldrd   lr, r12, [r2], #8\n\t"
/* Two rows' int16 pairs (the two words at ADDR) against it. */
#define MCC_TILE_ROWS(ADDR, A0, A1, B0, B1)                                    \
    "ldrd   r0, r3, " ADDR "\n\t"                                              \
    "smlad  " A0 ", r0, lr, " A0 "\n\t"                                        \
    "smlad  " A1 ", r0, r12, " A1 "\n\t"                                       \
    "smlad  " B0 ", r3, lr, " B0 "\n\t"                                        \
    "smlad  " B1 ", r3, r12, " B1 "\n\t"
#define MCC_TILE_ROWS01(ADDR) MCC_TILE_ROWS(ADDR, "r4", "r5", "r6", "r7")
#define MCC_TILE_ROWS23(ADDR) MCC_TILE_ROWS(ADDR, "r8", "r9", "r10", "r11")
/* fast_requant of accumulator A with r1 multiplier, r2 hi_base, r3 post;
 * r0 scratch. */
#define MCC_TILE_REQUANT(A)                                                    \
    "add    r0, r2, " A ", asr #31\n\t"                                        \
    "lsl    " A ", " A ", #1\n\t"                                              \
    "smmlar " A ", " A ", r1, r0\n\t"                                          \
    "asr    " A ", " A ", r3\n\t"                                              \
    "ssat   " A ", #8, " A "\n\t"

/* The first step of a pair: its first weight word's SMLADs start from the
 * two folded biases (r10 channel 0, r11 channel 1), so the accumulators need
 * no copies of them; rows 2 and 3 come last, since they overwrite r10 r11. */
#define MCC_TILE_FIRST01(ADDR)                                                 \
    "ldrd   r0, r3, " ADDR "\n\t"                                              \
    "smlad  r4, r0, lr, r10\n\t"                                               \
    "smlad  r5, r0, r12, r11\n\t"                                              \
    "smlad  r6, r3, lr, r10\n\t"                                               \
    "smlad  r7, r3, r12, r11\n\t"
#define MCC_TILE_FIRST23(ADDR)                                                 \
    "ldrd   r0, r3, " ADDR "\n\t"                                              \
    "smlad  r8, r0, lr, r10\n\t"                                               \
    "smlad  r9, r0, r12, r11\n\t"                                              \
    "smlad  r10, r3, lr, r10\n\t"                                              \
    "smlad  r11, r3, r12, r11\n\t"

/* A 4x2 tile function NAME: the loop over channel pairs, each running FIRST
 * and then STEP (r1 the block, r2 the weights) `steps` - 1 times, four a
 * loop with the first entered at (steps - 1) % 4 from its end (or none).
 * BYTES sets r0 to a pair's weight bytes from r3 = steps. r4..r11: (row,
 * channel) accumulators 00 01 10 11 20 21 30 31; r0 r3 r12 lr the operands.
 * Stack: [sp] the pair's weights' end, [sp, #4] chan, [sp, #8] o, [sp, #12]
 * the block, [sp, #16] a pair's weight bytes, [sp, #20] the loop's entry,
 * [sp, #24] chan's end; [sp, #64] steps, [sp, #68] the output row stride,
 * [sp, #72] pairs. Per pair: 9 instructions before the steps, 17 after them
 * besides the requantization and stores. */
#define MCC_TILE_4X2(NAME, BYTES, FIRST, STEP)                                 \
__asm__(MCC_ASM_FUNCTION(#NAME)                                                \
        "push   {r4-r11, lr}\n\t"                                              \
        "sub    sp, sp, #28\n\t"                                               \
        "str    r0, [sp, #12]\n\t"                                             \
        "strd   r2, r3, [sp, #4]\n\t"                                          \
        "ldr    r0, [sp, #72]\n\t"                                             \
        "add    r0, r2, r0, lsl #5\n\t"   /* 32 table bytes a pair */          \
        "str    r0, [sp, #24]\n\t"                                             \
        "mov    r2, r1\n\t"                                                    \
        "ldr    r3, [sp, #64]\n\t"                                             \
        BYTES                                                                  \
        "str    r0, [sp, #16]\n\t"                                             \
        "subs   r3, r3, #1\n\t"                                                \
        "and    r0, r3, #3\n\t"                                                \
        "it     eq\n\t"                                                        \
        "moveq  r0, #4\n\t"               /* one step: straight to 3 */        \
        "str    r0, [sp, #20]\n"                                               \
        "0:\n\t"                           /* one channel pair */              \
        "ldr    r12, [sp, #4]\n\t"                                             \
        "ldr    r10, [r12]\n\t"           /* the two folded biases */          \
        "ldr    r11, [r12, #16]\n\t"                                           \
        "ldr    r1, [sp, #12]\n\t"                                             \
        "ldr    r0, [sp, #16]\n\t"                                             \
        "add    r0, r2, r0\n\t"                                                \
        "str    r0, [sp]\n\t"                                                  \
        FIRST                                                                  \
        "ldr    r3, [sp, #20]\n\t"                                             \
        "tbh    [pc, r3, lsl #1]\n"                                            \
        "9:\n\t"                                                               \
        ".hword (2f - 9b) / 2, (8f - 9b) / 2, (7f - 9b) / 2, (6f - 9b) / 2\n\t" \
        ".hword (3f - 9b) / 2\n"                                               \
        "2:\n\t"                                                               \
        STEP                                                                   \
        "6:\n\t"                                                               \
        STEP                                                                   \
        "7:\n\t"                                                               \
        STEP                                                                   \
        "8:\n\t"                                                               \
        STEP                                                                   \
        "ldr    r0, [sp]\n\t"                                                  \
        "cmp    r2, r0\n\t"                                                    \
        "bne    2b\n"                                                          \
        "3:\n\t"                                                               \
        "ldrd   r0, r12, [sp, #4]\n\t"    /* chan, o */                        \
        "ldr    lr, [sp, #68]\n\t"        /* the row stride */                 \
        "ldrd   r1, r2, [r0, #4]\n\t"     /* channel 0: rows 0..3 */           \
        "ldr    r3, [r0, #12]\n\t"                                             \
        MCC_TILE_REQUANT("r4")                                                 \
        "strb   r4, [r12]\n\t"                                                 \
        MCC_TILE_REQUANT("r6")                                                 \
        "strb   r6, [r12, lr]\n\t"                                             \
        MCC_TILE_REQUANT("r8")                                                 \
        "strb   r8, [r12, lr, lsl #1]\n\t"                                     \
        "add    r6, r12, lr, lsl #1\n\t"  /* row 2 */                          \
        MCC_TILE_REQUANT("r10")                                                \
        "strb   r10, [r6, lr]\n\t"                                             \
        "ldr    r4, [sp, #4]\n\t"         /* channel 1, from o + 1 */          \
        "ldrd   r1, r2, [r4, #20]\n\t"                                         \
        "ldr    r3, [r4, #28]\n\t"                                             \
        "add    r12, r12, #1\n\t"                                              \
        MCC_TILE_REQUANT("r5")                                                 \
        "strb   r5, [r12]\n\t"                                                 \
        MCC_TILE_REQUANT("r7")                                                 \
        "strb   r7, [r12, lr]\n\t"                                             \
        MCC_TILE_REQUANT("r9")                                                 \
        "strb   r9, [r12, lr, lsl #1]\n\t"                                     \
        "add    r6, r6, #1\n\t"                                                \
        MCC_TILE_REQUANT("r11")                                                \
        "strb   r11, [r6, lr]\n\t"                                             \
        "add    r4, r4, #32\n\t"          /* the next pair: chan + 8, o + 2 */ \
        "add    r12, r12, #1\n\t"                                              \
        "strd   r4, r12, [sp, #4]\n\t"                                         \
        "ldr    r2, [sp]\n\t"             /* its weights follow */             \
        "ldr    r0, [sp, #24]\n\t"                                             \
        "cmp    r4, r0\n\t"                                                    \
        "bne    0b\n\t"                                                        \
        "add    sp, sp, #28\n\t"                                               \
        "pop    {r4-r11, pc}\n\t"                                              \
        MCC_ASM_END(#NAME))

/* The GEMM's step is one depth group: weight word A against the four rows'
 * (k, k+2) pairs, word B against their (k+1, k+3) pairs; W loads a word
 * (8 weight bytes a step in int8, 16 in int16). R01 and R23 take word A's
 * rows (MCC_TILE_ROWS.. or, in a pair's first step, MCC_TILE_FIRST..). */
#define MCC_GEMM_STEP(W, R01, R23)                                             \
    W R01("[r1], #8") R23("[r1], #8")                                          \
    W MCC_TILE_ROWS01("[r1], #8") MCC_TILE_ROWS23("[r1], #8")
/* The band's step is one input channel pair of one column: the filter rows
 * in the order dy = 1, 2, 0, each one weight word against the four output
 * rows' taps, consecutive words from the column's first slot for that dy
 * (band_slot); the last load moves to the next pair. 12 weight bytes a step
 * in int8, 24 in int16. */
#define MCC_BAND_S1_STEP(W, R01, R23)                                          \
    W R01("[r1, #4]") R23("[r1, #12]")                                         \
    W MCC_TILE_ROWS01("[r1, #8]") MCC_TILE_ROWS23("[r1, #16]")                 \
    W MCC_TILE_ROWS23("[r1, #8]") MCC_TILE_ROWS01("[r1], #24")
#define MCC_BAND_S2_STEP(W, R01, R23)                                          \
    W R01("[r1, #20]") R23("[r1, #28]")                                        \
    W MCC_TILE_ROWS01("[r1, #4]") MCC_TILE_ROWS23("[r1, #12]")                 \
    W MCC_TILE_ROWS23("[r1, #8]") MCC_TILE_ROWS01("[r1], #36")
#define MCC_BAND_BYTES(SHIFT) "add    r0, r3, r3, lsl #1\n\tlsl    r0, r0, #" #SHIFT "\n\t"
#define MCC_TILE(NAME, BYTES, STEP, W)                                         \
    MCC_TILE_4X2(NAME, BYTES, STEP(W, MCC_TILE_FIRST01, MCC_TILE_FIRST23),     \
                 STEP(W, MCC_TILE_ROWS01, MCC_TILE_ROWS23))
MCC_TILE(mcc_gemm_s8_4x2_dsp, "lsl    r0, r3, #3\n\t", MCC_GEMM_STEP, MCC_TILE_WEIGHTS);
MCC_TILE(mcc_band_s8_4x2_s1_dsp, MCC_BAND_BYTES(2), MCC_BAND_S1_STEP, MCC_TILE_WEIGHTS);
MCC_TILE(mcc_band_s8_4x2_s2_dsp, MCC_BAND_BYTES(2), MCC_BAND_S2_STEP, MCC_TILE_WEIGHTS);
#if WIDE_WEIGHTS
MCC_TILE(mcc_gemm_s8w_4x2_dsp, "lsl    r0, r3, #4\n\t", MCC_GEMM_STEP, MCC_TILE_WIDE);
MCC_TILE(mcc_band_s8w_4x2_s1_dsp, MCC_BAND_BYTES(3), MCC_BAND_S1_STEP, MCC_TILE_WIDE);
MCC_TILE(mcc_band_s8w_4x2_s2_dsp, MCC_BAND_BYTES(3), MCC_BAND_S2_STEP, MCC_TILE_WIDE);
#endif
#undef MCC_TILE
#undef MCC_BAND_BYTES
#undef MCC_TILE_FIRST01
#undef MCC_TILE_FIRST23
#undef MCC_BAND_S2_STEP
#undef MCC_BAND_S1_STEP
#undef MCC_GEMM_STEP
#undef MCC_TILE_WIDE
#undef MCC_TILE_4X2
#undef MCC_TILE_REQUANT
#undef MCC_TILE_ROWS23
#undef MCC_TILE_ROWS01
#undef MCC_TILE_ROWS
#undef MCC_TILE_WEIGHTS

/* One tile of gemm_rows2: rows x0 and x1 (int8, read where they lie) by one
 * full channel pair (weights w, `groups` >= 1 full depth groups, table rows
 * chan[0..7]) into o0[0..1] and o1[0..1]. */
void mcc_gemm_s8_2x2_dsp(const int8_t *x0, const int8_t *x1, const int8_t *w, int8_t *o0,
                         int8_t *o1, const int32_t *chan, int32_t groups);

/* fast_requant of accumulator A with r8 multiplier, r9 hi_base, r10 post;
 * r11 scratch. */
#define MCC_ROWS2_REQUANT(A)                                                   \
    "add    r11, r9, " A ", asr #31\n\t"                                       \
    "lsl    " A ", " A ", #1\n\t"                                              \
    "smmlar " A ", " A ", r8, r11\n\t"                                         \
    "asr    " A ", " A ", r10\n\t"                                             \
    "ssat   " A ", #8, " A "\n\t"

/* r0 x0, r1 x1, r2 w, r3 the weights' end; r4..r7 the accumulators 00 01 10 11
 * (row, channel); r8..r11 the group's four weight pairs; r12, lr a row's
 * (k, k+2) and (k+1, k+3) pairs. Stack: [sp] o0, [sp, #40] o1, [sp, #44]
 * chan, [sp, #48] groups. */
__asm__(MCC_ASM_FUNCTION("mcc_gemm_s8_2x2_dsp")
        "push   {r4-r11, lr}\n\t"
        "push   {r3}\n\t"
        "ldr    r12, [sp, #44]\n\t"
        "ldr    r4, [r12]\n\t"            /* the two folded biases */
        "ldr    r5, [r12, #16]\n\t"
        "mov    r6, r4\n\t"
        "mov    r7, r5\n\t"
        "ldr    r3, [sp, #48]\n\t"
        "add    r3, r2, r3, lsl #3\n"
        "1:\n\t"
        "ldrd   r8, r10, [r2], #8\n\t"    /* words A (k, k+2) and B (k+1, k+3) */
        "sxtb16 r9, r8, ror #8\n\t"
        "sxtb16 r8, r8\n\t"
        "sxtb16 r11, r10, ror #8\n\t"
        "sxtb16 r10, r10\n\t"
        "ldr    lr, [r0], #4\n\t"         /* row 0 */
        "sxtb16 r12, lr\n\t"
        "sxtb16 lr, lr, ror #8\n\t"
        "smlad  r4, r12, r8, r4\n\t"
        "smlad  r5, r12, r9, r5\n\t"
        "smlad  r4, lr, r10, r4\n\t"
        "smlad  r5, lr, r11, r5\n\t"
        "ldr    lr, [r1], #4\n\t"         /* row 1 */
        "sxtb16 r12, lr\n\t"
        "sxtb16 lr, lr, ror #8\n\t"
        "smlad  r6, r12, r8, r6\n\t"
        "smlad  r7, r12, r9, r7\n\t"
        "smlad  r6, lr, r10, r6\n\t"
        "smlad  r7, lr, r11, r7\n\t"
        "cmp    r2, r3\n\t"
        "bne    1b\n\t"
        "ldr    r12, [sp, #44]\n\t"
        "ldr    r0, [sp]\n\t"
        "ldr    r1, [sp, #40]\n\t"
        "ldrd   r8, r9, [r12, #4]\n\t"    /* channel 0 */
        "ldr    r10, [r12, #12]\n\t"
        MCC_ROWS2_REQUANT("r4")
        "strb   r4, [r0]\n\t"
        MCC_ROWS2_REQUANT("r6")
        "strb   r6, [r1]\n\t"
        "ldrd   r8, r9, [r12, #20]\n\t"   /* channel 1 */
        "ldr    r10, [r12, #28]\n\t"
        MCC_ROWS2_REQUANT("r5")
        "strb   r5, [r0, #1]\n\t"
        MCC_ROWS2_REQUANT("r7")
        "strb   r7, [r1, #1]\n\t"
        "add    sp, sp, #4\n\t"
        "pop    {r4-r11, pc}\n\t"
        MCC_ASM_END("mcc_gemm_s8_2x2_dsp"));
#undef MCC_ROWS2_REQUANT

/* One row x (int8, read where it lies) by two full channel pairs: weights w
 * (pair 0) and w + 8 * groups (pair 1), table rows chan[0..15], output
 * o[0..3]. For a lone row, where gemm_s8_2x2 would compute it twice. */
void mcc_gemm_s8_1x4_dsp(const int8_t *x, const int8_t *w, const int32_t *chan, int8_t *o,
                         int32_t groups);

/* fast_requant of accumulator A with channel K's table row (MULT, POST: the
 * byte offsets of its multiplier and post from r12): r0 multiplier, r1
 * hi_base, r2 post, r3 scratch; stored to o[K] (lr). */
#define MCC_1X4_REQUANT(A, K, MULT, POST)                                      \
    "ldrd   r0, r1, [r12, #" MULT "]\n\t"                                      \
    "ldr    r2, [r12, #" POST "]\n\t"                                          \
    "add    r3, r1, " A ", asr #31\n\t"                                        \
    "lsl    " A ", " A ", #1\n\t"                                              \
    "smmlar " A ", " A ", r0, r3\n\t"                                          \
    "asr    " A ", " A ", r2\n\t"                                              \
    "ssat   " A ", #8, " A "\n\t"                                              \
    "strb   " A ", [lr, #" K "]\n\t"

/* r0 x, r1 r2 the two pairs' weights, r3 the first pair's end; r4..r7 the
 * accumulators of channels 0..3; r8 r9 the row's (k, k+2) and (k+1, k+3)
 * pairs, r10..r12 lr a weight pair's operands. Stack: [sp] chan, [sp, #4] o,
 * [sp, #44] groups. */
__asm__(MCC_ASM_FUNCTION("mcc_gemm_s8_1x4_dsp")
        "push   {r4-r11, lr}\n\t"
        "push   {r2, r3}\n\t"
        "ldr    r4, [r2]\n\t"             /* the four folded biases */
        "ldr    r5, [r2, #16]\n\t"
        "ldr    r6, [r2, #32]\n\t"
        "ldr    r7, [r2, #48]\n\t"
        "ldr    r3, [sp, #44]\n\t"        /* groups */
        "add    r2, r1, r3, lsl #3\n\t"   /* the second pair's weights */
        "mov    r3, r2\n"
        "1:\n\t"
        "ldr    r8, [r0], #4\n\t"
        "sxtb16 r9, r8, ror #8\n\t"
        "sxtb16 r8, r8\n\t"
        "ldrd   r10, r11, [r1], #8\n\t"   /* pair 0: words A and B */
        "sxtb16 r12, r10\n\t"
        "sxtb16 r10, r10, ror #8\n\t"
        "sxtb16 lr, r11\n\t"
        "sxtb16 r11, r11, ror #8\n\t"
        "smlad  r4, r8, r12, r4\n\t"
        "smlad  r5, r8, r10, r5\n\t"
        "smlad  r4, r9, lr, r4\n\t"
        "smlad  r5, r9, r11, r5\n\t"
        "ldrd   r10, r11, [r2], #8\n\t"   /* pair 1 */
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
        "ldrd   r12, lr, [sp]\n\t"        /* chan, o */
        MCC_1X4_REQUANT("r4", "0", "4", "12")
        MCC_1X4_REQUANT("r5", "1", "20", "28")
        MCC_1X4_REQUANT("r6", "2", "36", "44")
        MCC_1X4_REQUANT("r7", "3", "52", "60")
        "add    sp, sp, #8\n\t"
        "pop    {r4-r11, pc}\n\t"
        MCC_ASM_END("mcc_gemm_s8_1x4_dsp"));
#undef MCC_1X4_REQUANT

/* What the 3x3 channel loops read; offsets are fixed by the assembly. */
typedef struct {
    int32_t bias2[2];               /*  0: 2 * folded bias, for both outputs */
    int32_t mult, hib, post;        /*  8: the channel's table row */
    int32_t out_c;                  /* 20 */
    const int8_t *end;              /* 24: where r stops in this row (its last pair) */
    int32_t pw;                     /* 28: plane_w */
    int32_t e0, e1, e2, m01, m2;    /* 32: doubled weights, see dw3x3_channel */
    int32_t row_adv;                /* 52: from `end` to the next row's first tap */
    int32_t row_step;               /* 56: stride_h * plane_w, how far `end` moves */
    const int8_t *o_end;            /* 60: the output past the last row */
    int32_t odd;                    /* 64: out_w is odd: one more output per row */
} dw_pair_consts;

/* Every output of one channel, r the plane's first tap and o the output:
 * per row, pairs of outputs until r reaches k->end, then the odd last
 * column if there is one; rows until o reaches k->o_end (out_h, out_w >= 1).
 * The loops of dw3x3_channel at stride 1 and 2. */
void mcc_dw3x3_s8_pairs_dsp(const int8_t *r, int8_t *o, dw_pair_consts *k);
void mcc_dw3x3_s8_pairs_s2_dsp(const int8_t *r, int8_t *o, dw_pair_consts *k);

/* Both: r0 r, r1 o, r2 k, r3 pw, r4-r8 the weights (e0 e1 e2 m01 m2); r9 a0,
 * r10 a1, r11 r12 lr the taps. A row with no pair (out_w 1) skips to 2. */
#define MCC_DW_BEGIN(NAME)                                                     \
    MCC_ASM_FUNCTION(NAME)                                                     \
    "push   {r4-r11, lr}\n\t"                                                  \
    "ldr    r3, [r2, #28]\n\t"                                                 \
    "add    r4, r2, #32\n\t"                                                   \
    "ldm    r4, {r4-r8}\n"                                                     \
    "0:\n\t"                                                                   \
    "ldr    r11, [r2, #24]\n\t"                                                \
    "cmp    r0, r11\n\t"                                                       \
    "beq    2f\n"                                                              \
    "1:\n\t"                                                                   \
    "ldrd   r9, r10, [r2]\n\t"
/* fast_requant_doubled of both, the stores, r += STEP, the pair loop; then
 * the odd column (the first pair's a0 alone) and the next row. */
#define MCC_DW_END(NAME, STEP)                                                 \
    "ldrd   r11, r12, [r2, #8]\n\t"                                            \
    "add    lr, r12, r9, asr #31\n\t"                                          \
    "smmlar r9, r9, r11, lr\n\t"                                               \
    "add    lr, r12, r10, asr #31\n\t"                                         \
    "smmlar r10, r10, r11, lr\n\t"                                             \
    "ldr    r11, [r2, #16]\n\t"                                                \
    "asr    r9, r9, r11\n\t"                                                   \
    "asr    r10, r10, r11\n\t"                                                 \
    "ssat   r9, #8, r9\n\t"                                                    \
    "ssat   r10, #8, r10\n\t"                                                  \
    "ldr    r11, [r2, #20]\n\t"                                                \
    "strb   r10, [r1, r11]\n\t"                                                \
    "strb   r9, [r1]\n\t"                                                      \
    "add    r1, r1, r11, lsl #1\n\t"                                           \
    "add    r0, r0, #" STEP "\n\t"                                             \
    "ldr    r11, [r2, #24]\n\t"                                                \
    "cmp    r0, r11\n\t"                                                       \
    "bne    1b\n"                                                              \
    "2:\n\t"                                                                   \
    "ldr    r11, [r2, #64]\n\t"                                                \
    "cmp    r11, #0\n\t"                                                       \
    "beq    3f\n\t"                                                            \
    "ldr    r9, [r2]\n\t"                                                      \
    "ldr    r11, [r0]\n\t"                                                     \
    "sxtb16 r12, r11\n\t"                                                      \
    "sxtb16 lr, r11, ror #8\n\t"                                               \
    "smlad  r9, r12, r4, r9\n\t"                                               \
    "smlabb r9, lr, r7, r9\n\t"                                                \
    "ldr    r11, [r0, r3]\n\t"                                                 \
    "sxtb16 r12, r11\n\t"                                                      \
    "sxtb16 lr, r11, ror #8\n\t"                                               \
    "smlad  r9, r12, r5, r9\n\t"                                               \
    "smlabt r9, lr, r7, r9\n\t"                                                \
    "add    r11, r0, r3, lsl #1\n\t"                                           \
    "ldr    r11, [r11]\n\t"                                                    \
    "sxtb16 r12, r11\n\t"                                                      \
    "sxtb16 lr, r11, ror #8\n\t"                                               \
    "smlad  r9, r12, r6, r9\n\t"                                               \
    "smlabb r9, lr, r8, r9\n\t"                                                \
    "ldrd   r11, r12, [r2, #8]\n\t"                                            \
    "add    lr, r12, r9, asr #31\n\t"                                          \
    "smmlar r9, r9, r11, lr\n\t"                                               \
    "ldr    r11, [r2, #16]\n\t"                                                \
    "asr    r9, r9, r11\n\t"                                                   \
    "ssat   r9, #8, r9\n\t"                                                    \
    "strb   r9, [r1]\n\t"                                                      \
    "ldr    r11, [r2, #20]\n\t"                                                \
    "add    r1, r1, r11\n"                                                     \
    "3:\n\t"                                                                   \
    "ldrd   r11, r12, [r2, #52]\n\t"      /* row_adv, row_step */             \
    "add    r0, r0, r11\n\t"                                                   \
    "ldr    r11, [r2, #24]\n\t"                                                \
    "add    r11, r11, r12\n\t"                                                 \
    "str    r11, [r2, #24]\n\t"                                                \
    "ldr    r11, [r2, #60]\n\t"                                                \
    "cmp    r1, r11\n\t"                                                       \
    "bne    0b\n\t"                                                            \
    "pop    {r4-r11, pc}\n\t"                                                  \
    MCC_ASM_END(NAME)

/* Stride 1: E = (t0, t2), O = (t1, t3) of each row's word. */
__asm__(MCC_DW_BEGIN("mcc_dw3x3_s8_pairs_dsp")
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
        "add    r11, r0, r3, lsl #1\n\t"    /* row 2 */
        "ldr    r11, [r11]\n\t"
        "sxtb16 r12, r11\n\t"
        "sxtb16 lr, r11, ror #8\n\t"
        "smlad  r9, r12, r6, r9\n\t"
        "smlabb r9, lr, r8, r9\n\t"
        "smlad  r10, lr, r6, r10\n\t"
        "smlatb r10, r12, r8, r10\n\t"
        MCC_DW_END("mcc_dw3x3_s8_pairs_dsp", "2"));

/* Stride 2: r12 = (t0, t2), lr = (t1, t3), r11 = (t4, t2) for SMLADX. */
__asm__(MCC_DW_BEGIN("mcc_dw3x3_s8_pairs_s2_dsp")
        "ldr    lr, [r0]\n\t"               /* row 0 */
        "ldrsb  r11, [r0, #4]\n\t"
        "sxtb16 r12, lr\n\t"
        "sxtb16 lr, lr, ror #8\n\t"
        "pkhbt  r11, r11, r12\n\t"
        "smlad  r9, r12, r4, r9\n\t"
        "smlabb r9, lr, r7, r9\n\t"
        "smladx r10, r11, r4, r10\n\t"
        "smlatb r10, lr, r7, r10\n\t"
        "add    r11, r0, r3\n\t"            /* row 1 */
        "ldr    lr, [r11]\n\t"
        "ldrsb  r11, [r11, #4]\n\t"
        "sxtb16 r12, lr\n\t"
        "sxtb16 lr, lr, ror #8\n\t"
        "pkhbt  r11, r11, r12\n\t"
        "smlad  r9, r12, r5, r9\n\t"
        "smlabt r9, lr, r7, r9\n\t"
        "smladx r10, r11, r5, r10\n\t"
        "smlatt r10, lr, r7, r10\n\t"
        "add    r11, r0, r3, lsl #1\n\t"    /* row 2 */
        "ldr    lr, [r11]\n\t"
        "ldrsb  r11, [r11, #4]\n\t"
        "sxtb16 r12, lr\n\t"
        "sxtb16 lr, lr, ror #8\n\t"
        "pkhbt  r11, r11, r12\n\t"
        "smlad  r9, r12, r6, r9\n\t"
        "smlabb r9, lr, r8, r9\n\t"
        "smladx r10, r11, r6, r10\n\t"
        "smlatb r10, lr, r8, r10\n\t"
        MCC_DW_END("mcc_dw3x3_s8_pairs_s2_dsp", "4"));
#undef MCC_DW_BEGIN
#undef MCC_DW_END

/* What the loops of filters up to 7 taps wide read (dw_wide_channel). */
typedef struct {
    int32_t bias2;                  /*  0: 2 * folded bias */
    int32_t mult, hib, post;        /*  4: the channel's table row */
    int32_t out_c;                  /* 16 */
    const int8_t *end;              /* 20: where r stops in this row (past its last pair) */
    int32_t pw;                     /* 24: plane_w */
    const int32_t *w, *w_end;       /* 28: the filter rows' doubled pairs (dw_row_pairs) */
} dw_wide_consts;

/* The output pairs of one row: r the first pair's first tap in the plane, o
 * its output; pairs until r reaches k->end (one at least). Each filter row's
 * two words split once into E0 = (t0, t2), O0 = (t1, t3), E1 = (t4, t6),
 * O1 = (t5, t7) serve both outputs; the row's pairs a b c d come by LDRD. */
void mcc_dw_wide_s8_pairs_dsp(const int8_t *r, int8_t *o, const dw_wide_consts *k);
void mcc_dw_wide_s8_pairs_s2_dsp(const int8_t *r, int8_t *o, const dw_wide_consts *k);
/* The same at stride 2 for filters up to 5 wide (w5 = w6 = 0: no d, no t8). */
void mcc_dw_wide5_s8_pairs_s2_dsp(const int8_t *r, int8_t *o, const dw_wide_consts *k);

/* All three: r0 the row pointer, r1 the weights, r2 k, r3 pw, r4 a0, r5 a1,
 * r6-r9 the taps, r10 r11 two weight pairs, r12 the weights' end, lr t8 (7
 * wide at stride 2); r and o wait at [sp] during a pair (a 48-byte frame,
 * 8-byte aligned). */
#define MCC_WIDE_BEGIN(NAME)                                                   \
    MCC_ASM_FUNCTION(NAME)                                                     \
    "push   {r4-r11, lr}\n\t"                                                  \
    "sub    sp, sp, #12\n\t"                                                   \
    "ldr    r3, [r2, #24]\n\t"                                                 \
    "ldr    r12, [r2, #32]\n"                                                  \
    "1:\n\t"                                                                   \
    "strd   r0, r1, [sp]\n\t"                                                  \
    "ldr    r1, [r2, #28]\n\t"                                                 \
    "ldr    r4, [r2]\n\t"                                                      \
    "mov    r5, r4\n"                                                          \
    "2:\n\t"                                                                   \
    "ldr    r7, [r0]\n\t"                                                      \
    "ldr    r9, [r0, #4]\n\t"
/* The row loop's end, fast_requant_doubled of both, the stores, r += STEP. */
#define MCC_WIDE_END(NAME, STEP)                                               \
    "cmp    r1, r12\n\t"                                                       \
    "bne    2b\n\t"                                                            \
    "ldrd   r10, r11, [r2, #4]\n\t"                                            \
    "add    r6, r11, r4, asr #31\n\t"                                          \
    "smmlar r4, r4, r10, r6\n\t"                                               \
    "add    r6, r11, r5, asr #31\n\t"                                          \
    "smmlar r5, r5, r10, r6\n\t"                                               \
    "ldrd   r10, r11, [r2, #12]\n\t"     /* post, out_c */                    \
    "asr    r4, r4, r10\n\t"                                                   \
    "asr    r5, r5, r10\n\t"                                                   \
    "ssat   r4, #8, r4\n\t"                                                    \
    "ssat   r5, #8, r5\n\t"                                                    \
    "ldrd   r0, r1, [sp]\n\t"                                                  \
    "strb   r4, [r1]\n\t"                                                      \
    "strb   r5, [r1, r11]\n\t"                                                 \
    "add    r1, r1, r11, lsl #1\n\t"                                           \
    "add    r0, r0, #" STEP "\n\t"                                             \
    "ldr    r10, [r2, #20]\n\t"                                                \
    "cmp    r0, r10\n\t"                                                       \
    "bne    1b\n\t"                                                            \
    "add    sp, sp, #12\n\t"                                                   \
    "pop    {r4-r11, pc}\n\t"                                                  \
    MCC_ASM_END(NAME)

/* Stride 1: out1's taps are out0's moved by one: (t2, t4) meets (w1, w3)
 * through SMLADX of (t4, t2), t6 w5 alone. */
__asm__(MCC_WIDE_BEGIN("mcc_dw_wide_s8_pairs_dsp")
        "add    r0, r0, r3\n\t"
        "ldrd   r10, r11, [r1], #16\n\t"    /* a = (w0, w2), b = (w1, w3) */
        "sxtb16 r6, r7\n\t"
        "sxtb16 r7, r7, ror #8\n\t"
        "sxtb16 r8, r9\n\t"
        "sxtb16 r9, r9, ror #8\n\t"
        "smlad  r4, r6, r10, r4\n\t"
        "smlad  r4, r7, r11, r4\n\t"
        "smlad  r5, r7, r10, r5\n\t"
        "pkhbt  r6, r8, r6\n\t"             /* (t4, t2) */
        "smladx r5, r6, r11, r5\n\t"
        "ldrd   r10, r11, [r1, #-8]\n\t"    /* c = (w4, w6), d = (w5, 0) */
        "smlad  r4, r8, r10, r4\n\t"
        "smlad  r4, r9, r11, r4\n\t"
        "smlad  r5, r9, r10, r5\n\t"
        "smlatb r5, r8, r11, r5\n\t"
        MCC_WIDE_END("mcc_dw_wide_s8_pairs_dsp", "2"));

#if PLANAR_WIDE_S2
/* Stride 2, the row's a and b pairs: a0 += (t0, t2).a + (t1, t3).b, a1 +=
 * (t2, t4).a + (t3, t5).b through SMLADX of (t4, t2) and (t5, t3); leaves
 * E1 = (t4, t6) in r8, O1 = (t5, t7) in r9. */
#define MCC_WIDE_S2_AB                                                         \
    "ldrd   r10, r11, [r1], #16\n\t"                                           \
    "sxtb16 r6, r7\n\t"                                                        \
    "sxtb16 r7, r7, ror #8\n\t"                                                \
    "sxtb16 r8, r9\n\t"                                                        \
    "sxtb16 r9, r9, ror #8\n\t"                                                \
    "smlad  r4, r6, r10, r4\n\t"                                               \
    "smlad  r4, r7, r11, r4\n\t"                                               \
    "pkhbt  r6, r8, r6\n\t"                                                    \
    "pkhbt  r7, r9, r7\n\t"                                                    \
    "smladx r5, r6, r10, r5\n\t"                                               \
    "smladx r5, r7, r11, r5\n\t"

#if PLANAR_WIDE7
/* Stride 2: out1's taps are out0's moved by two: (t2, t4), (t3, t5) and
 * (t6, t8) through SMLADX of (t4, t2), (t5, t3) and (t8, t6), t7 w5 alone.
 * t8 is read as a byte: the plane holds out1's taps, not a word past them. */
__asm__(MCC_WIDE_BEGIN("mcc_dw_wide_s8_pairs_s2_dsp")
        "ldrsb  lr, [r0, #8]\n\t"
        "add    r0, r0, r3\n\t"
        MCC_WIDE_S2_AB
        "ldrd   r10, r11, [r1, #-8]\n\t"
        "smlad  r4, r8, r10, r4\n\t"
        "smlad  r4, r9, r11, r4\n\t"
        "pkhbt  lr, lr, r8\n\t"             /* (t8, t6) */
        "smladx r5, lr, r10, r5\n\t"
        "smlatb r5, r9, r11, r5\n\t"
        MCC_WIDE_END("mcc_dw_wide_s8_pairs_s2_dsp", "4"));
#endif

/* Up to 5 wide at stride 2: a0 = t0..t4, a1 = t2..t6; c = (w4, 0). */
__asm__(MCC_WIDE_BEGIN("mcc_dw_wide5_s8_pairs_s2_dsp")
        "add    r0, r0, r3\n\t"
        MCC_WIDE_S2_AB
        "ldr    r10, [r1, #-8]\n\t"         /* c = (w4, 0) */
        "smlabb r4, r8, r10, r4\n\t"
        "smlatb r5, r8, r10, r5\n\t"
        MCC_WIDE_END("mcc_dw_wide5_s8_pairs_s2_dsp", "4"));
#undef MCC_WIDE_S2_AB
#endif
#undef MCC_WIDE_BEGIN
#undef MCC_WIDE_END

/* Stride 1, four outputs a step: one word pair of each filter row split
 * once for all four. r0 the row pointer, r1 the weights, r2 their end, r3
 * pw, r4-r7 the four accumulators, r8-r11 the taps, r12 lr two weight
 * pairs; r, o and k wait at [sp] during a step (a 48-byte frame). Steps
 * until r reaches k->end (one at least). Filters up to 5 wide read t0..t7
 * (about 6.3 instructions per output and filter row against the pairs' 10),
 * up to 7 wide t0..t9 (8.3). */
void mcc_dw_wide5_s8_quads_dsp(const int8_t *r, int8_t *o, const dw_wide_consts *k);
void mcc_dw_wide_s8_quads_dsp(const int8_t *r, int8_t *o, const dw_wide_consts *k);

/* The frame, the accumulators from the bias, the row loop's label. */
#define MCC_QUAD_ENTRY(NAME)                                                   \
    MCC_ASM_FUNCTION(NAME)                                                     \
    "push   {r4-r11, lr}\n\t"                                                  \
    "sub    sp, sp, #12\n\t"                                                   \
    "str    r2, [sp, #8]\n\t"                                                  \
    "ldr    r3, [r2, #24]\n"                                                   \
    "1:\n\t"                                                                   \
    "strd   r0, r1, [sp]\n\t"                                                  \
    "ldr    r12, [sp, #8]\n\t"                                                 \
    "ldrd   r1, r2, [r12, #28]\n\t"       /* the weights and their end */     \
    "ldr    r4, [r12]\n\t"                                                     \
    "mov    r5, r4\n\t"                                                        \
    "mov    r6, r4\n\t"                                                        \
    "mov    r7, r4\n"                                                          \
    "2:\n\t"
/* A row's first word pair split into even and odd taps, E0 O0 E1 O1 in
 * r8 r9 r10 r11, and its first two weight pairs a b in r12 lr. */
#define MCC_QUAD_ROW_SPLIT                                                     \
    "ldr    r8, [r0]\n\t"                                                      \
    "ldr    r10, [r0, #4]\n\t"                                                 \
    "ldrd   r12, lr, [r1], #16\n\t"       /* a = (w0, w2), b = (w1, w3) */    \
    "sxtb16 r9, r8, ror #8\n\t"           /* O0 = (t1, t3) */                 \
    "sxtb16 r8, r8\n\t"                   /* E0 = (t0, t2) */                 \
    "sxtb16 r11, r10, ror #8\n\t"         /* O1 = (t5, t7) */                 \
    "sxtb16 r10, r10\n\t"                 /* E1 = (t4, t6) */
#define MCC_QUAD_BEGIN(NAME)                                                   \
    MCC_QUAD_ENTRY(NAME)                                                       \
    MCC_QUAD_ROW_SPLIT                                                         \
    "smlad  r4, r8, r12, r4\n\t"                                               \
    "smlad  r4, r9, lr, r4\n\t"                                                \
    "smlad  r5, r9, r12, r5\n\t"                                               \
    "pkhbt  r8, r10, r8\n\t"              /* X = (t4, t2) */                  \
    "pkhbt  r9, r11, r9\n\t"              /* Y = (t5, t3) */                  \
    "smladx r5, r8, lr, r5\n\t"           /* out1: t2 w1 + t4 w3 */           \
    "smladx r6, r8, r12, r6\n\t"          /* out2: t2 w0 + t4 w2 */           \
    "smladx r6, r9, lr, r6\n\t"           /* out2: t3 w1 + t5 w3 */           \
    "smladx r7, r9, r12, r7\n\t"          /* out3: t3 w0 + t5 w2 */           \
    "smlad  r7, r10, lr, r7\n\t"          /* out3: t4 w1 + t6 w3 */
/* fast_requant_doubled of A with mult in r12, hib in lr; r8 scratch. */
#define MCC_WIDE_MUL(A)                                                        \
    "add    r8, lr, " A ", asr #31\n\t"                                        \
    "smmlar " A ", " A ", r12, r8\n\t"
/* ... then its shift by post (r12) and saturation. */
#define MCC_WIDE_SAT(A)                                                        \
    "asr    " A ", " A ", r12\n\t"                                             \
    "ssat   " A ", #8, " A "\n\t"
/* The row loop's end (r0 already moved to the next row), the four outputs. */
#define MCC_QUAD_END(NAME, STEP)                                               \
    "cmp    r1, r2\n\t"                                                        \
    "bne    2b\n\t"                                                            \
    "ldr    r2, [sp, #8]\n\t"                                                  \
    "ldrd   r12, lr, [r2, #4]\n\t"        /* mult, hib */                     \
    MCC_WIDE_MUL("r4") MCC_WIDE_MUL("r5") MCC_WIDE_MUL("r6") MCC_WIDE_MUL("r7") \
    "ldrd   r12, lr, [r2, #12]\n\t"       /* post, out_c */                   \
    MCC_WIDE_SAT("r4") MCC_WIDE_SAT("r5") MCC_WIDE_SAT("r6") MCC_WIDE_SAT("r7") \
    "ldrd   r0, r1, [sp]\n\t"                                                  \
    "strb   r4, [r1]\n\t"                                                      \
    "strb   r5, [r1, lr]\n\t"                                                  \
    "add    r1, r1, lr, lsl #1\n\t"                                            \
    "strb   r6, [r1]\n\t"                                                      \
    "strb   r7, [r1, lr]\n\t"                                                  \
    "add    r1, r1, lr, lsl #1\n\t"                                            \
    "add    r0, r0, #" STEP "\n\t"                                             \
    "ldr    r12, [r2, #20]\n\t"                                                \
    "cmp    r0, r12\n\t"                                                       \
    "bne    1b\n\t"                                                            \
    "add    sp, sp, #12\n\t"                                                   \
    "pop    {r4-r11, pc}\n\t"                                                  \
    MCC_ASM_END(NAME)

/* Up to 5 wide: out0 = t0..t4 ... out3 = t3..t7; c = (w4, 0). */
__asm__(MCC_QUAD_BEGIN("mcc_dw_wide5_s8_quads_dsp")
        "add    r0, r0, r3\n\t"
        "ldr    r12, [r1, #-8]\n\t"         /* c */
        "smlabb r4, r10, r12, r4\n\t"
        "smlabb r5, r11, r12, r5\n\t"
        "smlatb r6, r10, r12, r6\n\t"
        "smlatb r7, r11, r12, r7\n\t"
        MCC_QUAD_END("mcc_dw_wide5_s8_quads_dsp", "4"));

#if PLANAR_WIDE7
/* Up to 7 wide: out0 = t0..t6 ... out3 = t3..t9; c = (w4, w6), d = (w5, 0).
 * t8 and t9 are read as bytes once X and Y are spent: (t8, t6) and (t9, t7)
 * meet c through SMLADX, and (t8, t6)'s low half gives t8 w5. */
__asm__(MCC_QUAD_BEGIN("mcc_dw_wide_s8_quads_dsp")
        "ldrd   r12, lr, [r1, #-8]\n\t"     /* c, d */
        "smlad  r4, r10, r12, r4\n\t"       /* out0: t4 w4 + t6 w6 */
        "smlad  r4, r11, lr, r4\n\t"        /* out0: t5 w5 */
        "smlad  r5, r11, r12, r5\n\t"       /* out1: t5 w4 + t7 w6 */
        "smlatb r5, r10, lr, r5\n\t"        /* out1: t6 w5 */
        "smlatb r6, r11, lr, r6\n\t"        /* out2: t7 w5 */
        "ldrsb  r8, [r0, #8]\n\t"
        "ldrsb  r9, [r0, #9]\n\t"
        "add    r0, r0, r3\n\t"
        "pkhbt  r8, r8, r10\n\t"            /* (t8, t6) */
        "pkhbt  r9, r9, r11\n\t"            /* (t9, t7) */
        "smladx r6, r8, r12, r6\n\t"        /* out2: t6 w4 + t8 w6 */
        "smlabb r7, r8, lr, r7\n\t"         /* out3: t8 w5 */
        "smladx r7, r9, r12, r7\n\t"        /* out3: t7 w4 + t9 w6 */
        MCC_QUAD_END("mcc_dw_wide_s8_quads_dsp", "4"));
#endif

#if PLANAR_WIDE_S2
/* Stride 2, four outputs a step (out_k's taps are t_2k..): each filter row's
 * words W0 = t0..t3, W1 = t4..t7 and W2 = t8..t11 split once, E_i the even
 * taps and O_i the odd. out0 and out2 take E/O pairs as they lie, out1 the
 * pairs (t4, t2) and (t5, t3) through SMLADX; a pair that would straddle W1
 * and W2 goes as two halfword MACs (SMLATB/SMLABT) instead, since all six
 * registers hold taps or weights. About 9.3 instructions per output and
 * filter row up to 7 wide (the pairs: 11), 7.75 up to 5 wide (9.5). */
void mcc_dw_wide5_s8_quads_s2_dsp(const int8_t *r, int8_t *o, const dw_wide_consts *k);
void mcc_dw_wide_s8_quads_s2_dsp(const int8_t *r, int8_t *o, const dw_wide_consts *k);

/* The row's a = (w0, w2) and b = (w1, w3) terms of all four outputs; leaves
 * E1 O1 in r10 r11, E2 O2 in r8 r9. */
#define MCC_QUAD_S2_AB                                                         \
    MCC_QUAD_ROW_SPLIT                                                         \
    "smlad  r4, r8, r12, r4\n\t"                                               \
    "smlad  r4, r9, lr, r4\n\t"                                                \
    "smlad  r6, r10, r12, r6\n\t"         /* out2: t4 w0 + t6 w2 */           \
    "smlad  r6, r11, lr, r6\n\t"          /* out2: t5 w1 + t7 w3 */           \
    "pkhbt  r8, r10, r8\n\t"              /* (t4, t2) */                      \
    "pkhbt  r9, r11, r9\n\t"              /* (t5, t3) */                      \
    "smladx r5, r8, r12, r5\n\t"          /* out1: t2 w0 + t4 w2 */           \
    "smladx r5, r9, lr, r5\n\t"           /* out1: t3 w1 + t5 w3 */           \
    "ldr    r8, [r0, #8]\n\t"                                                  \
    "smlatb r7, r10, r12, r7\n\t"         /* out3: t6 w0 */                   \
    "smlatb r7, r11, lr, r7\n\t"          /* out3: t7 w1 */                   \
    "sxtb16 r9, r8, ror #8\n\t"           /* O2 = (t9, t11) */                \
    "sxtb16 r8, r8\n\t"                   /* E2 = (t8, t10) */                \
    "smlabt r7, r8, r12, r7\n\t"          /* out3: t8 w2 */                   \
    "smlabt r7, r9, lr, r7\n\t"           /* out3: t9 w3 */

/* Up to 5 wide: c = (w4, 0); out_k's last tap is t_(2k+4). */
__asm__(MCC_QUAD_ENTRY("mcc_dw_wide5_s8_quads_s2_dsp")
        MCC_QUAD_S2_AB
        "ldr    r12, [r1, #-8]\n\t"        /* c */
        "add    r0, r0, r3\n\t"
        "smlabb r4, r10, r12, r4\n\t"      /* out0: t4 w4 */
        "smlatb r5, r10, r12, r5\n\t"      /* out1: t6 w4 */
        "smlabb r6, r8, r12, r6\n\t"       /* out2: t8 w4 */
        "smlatb r7, r8, r12, r7\n\t"       /* out3: t10 w4 */
        MCC_QUAD_END("mcc_dw_wide5_s8_quads_s2_dsp", "8"));

#if PLANAR_WIDE7
/* Up to 7 wide: c = (w4, w6), d = (w5, 0); t12 read as a byte. */
__asm__(MCC_QUAD_ENTRY("mcc_dw_wide_s8_quads_s2_dsp")
        MCC_QUAD_S2_AB
        "ldrd   r12, lr, [r1, #-8]\n\t"    /* c, d */
        "smlad  r4, r10, r12, r4\n\t"      /* out0: t4 w4 + t6 w6 */
        "smlabb r4, r11, lr, r4\n\t"       /* out0: t5 w5 */
        "smlatb r5, r10, r12, r5\n\t"      /* out1: t6 w4 */
        "smlabt r5, r8, r12, r5\n\t"       /* out1: t8 w6 */
        "smlatb r5, r11, lr, r5\n\t"       /* out1: t7 w5 */
        "ldrsb  r10, [r0, #12]\n\t"
        "add    r0, r0, r3\n\t"
        "smlad  r6, r8, r12, r6\n\t"       /* out2: t8 w4 + t10 w6 */
        "smlabb r6, r9, lr, r6\n\t"        /* out2: t9 w5 */
        "smlatb r7, r8, r12, r7\n\t"       /* out3: t10 w4 */
        "smlabt r7, r10, r12, r7\n\t"      /* out3: t12 w6 */
        "smlatb r7, r9, lr, r7\n\t"        /* out3: t11 w5 */
        MCC_QUAD_END("mcc_dw_wide_s8_quads_s2_dsp", "8"));
#endif
#undef MCC_QUAD_S2_AB
#endif
#undef MCC_QUAD_ENTRY
#undef MCC_QUAD_ROW_SPLIT
#undef MCC_QUAD_BEGIN
#undef MCC_QUAD_END
#undef MCC_WIDE_MUL
#undef MCC_WIDE_SAT

/* What the stride-1 block loop reads. The first 11 words are copied to its
 * stack frame in this order (it has no register left for a pointer to them). */
typedef struct {
    int32_t bias2[2];               /*  0: 2 * folded bias, twice */
    int32_t mult, hib;              /*  8: the channel's table row */
    int32_t out_c;                  /* 16 */
    int32_t out_row;                /* 20: out_w * out_c, one output to the one below */
    const int8_t *end;              /* 24: where r stops in this row pair (its last pair) */
    int32_t pw;                     /* 28: plane_w */
    int32_t row_adv;                /* 32: from `end` to the next row pair's first tap */
    const int8_t *o_end;            /* 36: the output past the last row pair */
    int32_t odd;                    /* 40: out_w is odd: one more column per row pair */
    int32_t e0, e1, e2, m01;        /* 44: doubled weights, as dw_pair_consts */
    int32_t m2p;                    /* 60: (post, 2 * w21): ASR reads the shift from the low byte */
} dw_quad_consts;

/* Stride 1, pairs of output rows (out_h >= 2 rows of them): 2x2 blocks of
 * outputs per step, each plane row's word split once and used for both
 * output rows, then the odd last column of both rows. Against the pair loop
 * a block loads 4 rows instead of 6 and reads the requantization constants
 * once for four outputs: about 17 instructions per output instead of 23.
 * r0 r, r1 o, r3 pw, r4-r8 e0 e1 e2 m01 m2p; r9 r10 row y's two outputs,
 * r11 r12 row y+1's; lr and r2 the taps, then the requantization. */
void mcc_dw3x3_s8_quads_dsp(const int8_t *r, int8_t *o, const dw_quad_consts *k);

/* One plane row's word into lr = (t0, t2) and r2 = (t1, t3). */
#define MCC_DW_SPLIT(LOAD)                                                     \
    LOAD                                                                       \
    "sxtb16 r2, lr, ror #8\n\t"                                                \
    "sxtb16 lr, lr\n\t"
/* Output A (taps t0..t2) += the row against filter row (E, M): E the
 * filter row's (w0, w2) pair, M's HALF half ("b" or "t") its middle tap. */
#define MCC_DW_COL(A, E, M, HALF)                                              \
    "smlad  " A ", lr, " E ", " A "\n\t"                                       \
    "smlab" HALF " " A ", r2, " M ", " A "\n\t"
/* The same for the output pair (A0, A1), A1 one column right (taps t1..t3). */
#define MCC_DW_ROW(A0, A1, E, M, HALF)                                         \
    MCC_DW_COL(A0, E, M, HALF)                                                 \
    "smlad  " A1 ", r2, " E ", " A1 "\n\t"                                     \
    "smlat" HALF " " A1 ", lr, " M ", " A1 "\n\t"
/* fast_requant_doubled of A with mult in lr, hib in r2 and post in r8; r3 is
 * free (pw is reloaded after the block). */
#define MCC_DW_REQUANT(A)                                                      \
    "add    r3, r2, " A ", asr #31\n\t"                                        \
    "smmlar " A ", " A ", lr, r3\n\t"                                          \
    "asr    " A ", " A ", r8\n\t"                                              \
    "ssat   " A ", #8, " A "\n\t"

__asm__(MCC_ASM_FUNCTION("mcc_dw3x3_s8_quads_dsp")
        "push   {r4-r11, lr}\n\t"
        "sub    sp, sp, #44\n\t"
        "ldm    r2!, {r3-r12, lr}\n\t"
        "stm    sp, {r3-r12, lr}\n\t"
        "ldm    r2, {r4-r8}\n\t"
        "ldr    r3, [sp, #28]\n"
        "0:\n\t"
        "ldr    r2, [sp, #24]\n\t"
        "cmp    r0, r2\n\t"
        "beq    2f\n"
        "1:\n\t"
        "ldrd   r9, r10, [sp]\n\t"
        "ldrd   r11, r12, [sp]\n\t"
        MCC_DW_SPLIT("ldr    lr, [r0]\n\t")                  /* plane row y */
        MCC_DW_ROW("r9", "r10", "r4", "r7", "b")
        MCC_DW_SPLIT("ldr    lr, [r0, r3]\n\t")              /* y + 1 */
        MCC_DW_ROW("r9", "r10", "r5", "r7", "t")
        MCC_DW_ROW("r11", "r12", "r4", "r7", "b")
        MCC_DW_SPLIT("ldr    lr, [r0, r3, lsl #1]\n\t")      /* y + 2 */
        MCC_DW_ROW("r9", "r10", "r6", "r8", "t")
        MCC_DW_ROW("r11", "r12", "r5", "r7", "t")
        MCC_DW_SPLIT("add    lr, r3, r3, lsl #1\n\t"         /* y + 3 */
                     "ldr    lr, [r0, lr]\n\t")
        MCC_DW_ROW("r11", "r12", "r6", "r8", "t")
        "ldrd   lr, r2, [sp, #8]\n\t"
        MCC_DW_REQUANT("r9")
        "strb   r9, [r1]\n\t"
        MCC_DW_REQUANT("r10")
        "ldr    r9, [sp, #16]\n\t"                          /* out_c */
        "strb   r10, [r1, r9]\n\t"
        MCC_DW_REQUANT("r11")
        "ldr    r10, [sp, #20]\n\t"                         /* out_row */
        "strb   r11, [r1, r10]\n\t"
        MCC_DW_REQUANT("r12")
        "add    r10, r10, r9\n\t"
        "strb   r12, [r1, r10]\n\t"
        "add    r1, r1, r9, lsl #1\n\t"
        "add    r0, r0, #2\n\t"
        "ldr    r3, [sp, #28]\n\t"
        "ldr    r2, [sp, #24]\n\t"
        "cmp    r0, r2\n\t"
        "bne    1b\n"
        "2:\n\t"                                            /* the odd column */
        "ldr    r2, [sp, #40]\n\t"
        "cmp    r2, #0\n\t"
        "beq    3f\n\t"
        "ldrd   r9, r11, [sp]\n\t"
        MCC_DW_SPLIT("ldr    lr, [r0]\n\t")
        MCC_DW_COL("r9", "r4", "r7", "b")
        MCC_DW_SPLIT("ldr    lr, [r0, r3]\n\t")
        MCC_DW_COL("r9", "r5", "r7", "t")
        MCC_DW_COL("r11", "r4", "r7", "b")
        MCC_DW_SPLIT("ldr    lr, [r0, r3, lsl #1]\n\t")
        MCC_DW_COL("r9", "r6", "r8", "t")
        MCC_DW_COL("r11", "r5", "r7", "t")
        MCC_DW_SPLIT("add    lr, r3, r3, lsl #1\n\t"
                     "ldr    lr, [r0, lr]\n\t")
        MCC_DW_COL("r11", "r6", "r8", "t")
        "ldrd   lr, r2, [sp, #8]\n\t"
        MCC_DW_REQUANT("r9")
        "strb   r9, [r1]\n\t"
        MCC_DW_REQUANT("r11")
        "ldr    r10, [sp, #20]\n\t"
        "strb   r11, [r1, r10]\n\t"
        "ldr    r9, [sp, #16]\n\t"
        "add    r1, r1, r9\n\t"
        "ldr    r3, [sp, #28]\n"
        "3:\n\t"                                            /* the next row pair */
        "ldr    r2, [sp, #32]\n\t"
        "add    r0, r0, r2\n\t"
        "ldr    r2, [sp, #24]\n\t"
        "add    r2, r2, r3, lsl #1\n\t"
        "str    r2, [sp, #24]\n\t"
        "ldr    r2, [sp, #20]\n\t"
        "add    r1, r1, r2\n\t"
        "ldr    r2, [sp, #36]\n\t"
        "cmp    r1, r2\n\t"
        "bne    0b\n\t"
        "add    sp, sp, #44\n\t"
        "pop    {r4-r11, pc}\n\t"
        MCC_ASM_END("mcc_dw3x3_s8_quads_dsp"));
#undef MCC_DW_SPLIT
#undef MCC_DW_COL
#undef MCC_DW_ROW
#undef MCC_DW_REQUANT

/* dw1ch_pixel_3rows' channels in fours (`quads` >= 1 of them, out_c = 4 *
 * quads) for `pixels` >= 1 output pixels, each window `step` bytes to the
 * right of the one before and each pixel's outputs right after the last
 * one's: per pixel the window's three row words at r, r + stride and
 * r + 2 * stride split once into (t0, t2) and (t1, t3) pairs (r3..r8), then
 * per channel its doubled bias from its table row, six SMLADs with its doubled
 * weight pairs (one LDRD per filter row, at fixed offsets in the quad's 96
 * bytes), the rest of its row in one LDM and fast_requant_doubled.
 * r0 the weights, r1 the table rows, r2 o. Stack: [sp] r, [sp, #4] stride,
 * [sp, #8] w, [sp, #12] channels, [sp, #52] the table's end (was quads),
 * [sp, #60] pixels left, [sp, #64] step. */
void mcc_dw1ch_s8_3rows_dsp(const int8_t *r, int32_t stride, const int32_t *w,
                            const int32_t *channels, int32_t quads, int8_t *o, int32_t pixels,
                            int32_t step);

#define MCC_DW1CH_CHANNEL(W0, W1, W2)                                          \
    "ldr    r9, [r1]\n\t"                     /* the doubled bias */          \
    "ldrd   r10, r11, [r0, #" W0 "]\n\t"                                       \
    "smlad  r9, r3, r10, r9\n\t"                                               \
    "smlad  r9, r4, r11, r9\n\t"                                               \
    "ldrd   r10, r11, [r0, #" W1 "]\n\t"                                       \
    "smlad  r9, r5, r10, r9\n\t"                                               \
    "smlad  r9, r6, r11, r9\n\t"                                               \
    "ldrd   r10, r11, [r0, #" W2 "]\n\t"                                       \
    "smlad  r9, r7, r10, r9\n\t"                                               \
    "smlad  r9, r8, r11, r9\n\t"                                               \
    "ldm    r1!, {r10, r11, r12, lr}\n\t"   /* bias again, mult, hib, post */   \
    "add    r12, r12, r9, asr #31\n\t"                                         \
    "smmlar r9, r9, r11, r12\n\t"                                              \
    "asr    r9, r9, lr\n\t"                                                    \
    "ssat   r9, #8, r9\n\t"                                                    \
    "strb   r9, [r2], #1\n\t"

__asm__(MCC_ASM_FUNCTION("mcc_dw1ch_s8_3rows_dsp")
        "push   {r4-r11, lr}\n\t"
        "sub    sp, sp, #16\n\t"
        "strd   r0, r1, [sp]\n\t"
        "strd   r2, r3, [sp, #8]\n\t"
        "ldr    r9, [sp, #52]\n\t"          /* quads */
        "add    r9, r3, r9, lsl #6\n\t"     /* 64 table bytes a quad */
        "str    r9, [sp, #52]\n\t"
        "ldr    r2, [sp, #56]\n"             /* o */
        "0:\n\t"                            /* one pixel */
        "ldrd   r0, r1, [sp]\n\t"
        "ldr    r4, [r0]\n\t"
        "ldr    r6, [r0, r1]\n\t"
        "ldr    r8, [r0, r1, lsl #1]\n\t"
        "ldr    r9, [sp, #64]\n\t"          /* the next window */
        "add    r0, r0, r9\n\t"
        "str    r0, [sp]\n\t"
        "sxtb16 r3, r4\n\t"
        "sxtb16 r4, r4, ror #8\n\t"
        "sxtb16 r5, r6\n\t"
        "sxtb16 r6, r6, ror #8\n\t"
        "sxtb16 r7, r8\n\t"
        "sxtb16 r8, r8, ror #8\n\t"
        "ldrd   r0, r1, [sp, #8]\n"          /* the weights, the table */
        "1:\n\t"
        MCC_DW1CH_CHANNEL("0", "32", "64")
        MCC_DW1CH_CHANNEL("8", "40", "72")
        MCC_DW1CH_CHANNEL("16", "48", "80")
        MCC_DW1CH_CHANNEL("24", "56", "88")
        "add    r0, r0, #96\n\t"
        "ldr    r10, [sp, #52]\n\t"
        "cmp    r1, r10\n\t"
        "bne    1b\n\t"
        "ldr    r10, [sp, #60]\n\t"
        "subs   r10, r10, #1\n\t"
        "str    r10, [sp, #60]\n\t"
        "bne    0b\n\t"
        "add    sp, sp, #16\n\t"
        "pop    {r4-r11, pc}\n\t"
        MCC_ASM_END("mcc_dw1ch_s8_3rows_dsp"));
#undef MCC_DW1CH_CHANNEL

/* dw1ch_pixel's channels in fours (`quads` >= 1 of them) for `pixels` >= 1
 * output pixels, each window `step` bytes right of the one before and each
 * pixel's 4 * quads outputs right after the last one's; a window of fh rows,
 * `stride` bytes apart, of one or two words (row_bytes 4 or 8: filters up
 * to 8 wide). Per quad the doubled biases, then per window word one load
 * split into (t0, t2) and (t1, t3) and four LDRD/SMLAD pairs, then
 * fast_requant_doubled. GCC's loop spilled its row and word counters and
 * loaded the weights singly: about 180 instructions per output of a 10x8
 * window (micro_speech), 97 here. r0 the window row, r1 stride, r2 the
 * weights, r3 the table rows, r4-r7 the accumulators, lr the window's end.
 * Stack: [sp] r, [sp, #4] fh * stride, [sp, #8] row_bytes, [sp, #12] the
 * table's end, [sp, #16] w, [sp, #20] channels, [sp, #64] o, [sp, #76]
 * pixels left, [sp, #80] step. */
void mcc_dw1ch_s8_rows_dsp(const int8_t *r, int32_t stride, const int32_t *w,
                           const int32_t *channels, int32_t quads, int8_t *o, int32_t fh,
                           int32_t row_bytes, int32_t pixels, int32_t step);

#define MCC_DW1CH_MAC(A)                                                       \
    "ldrd   r10, r11, [r2], #8\n\t"                                            \
    "smlad  " A ", r8, r10, " A "\n\t"                                         \
    "smlad  " A ", r9, r11, " A "\n\t"
/* One window word (in r8) against the quad's next four weight pairs. */
#define MCC_DW1CH_WORD                                                         \
    "sxtb16 r9, r8, ror #8\n\t"                                                \
    "sxtb16 r8, r8\n\t"                                                        \
    MCC_DW1CH_MAC("r4") MCC_DW1CH_MAC("r5") MCC_DW1CH_MAC("r6") MCC_DW1CH_MAC("r7")
#define MCC_DW1CH_OUT(A)                                                       \
    "ldm    r3!, {r8, r9, r10, r11}\n\t"  /* bias again, mult, hib, post */   \
    "add    r10, r10, " A ", asr #31\n\t"                                      \
    "smmlar " A ", " A ", r9, r10\n\t"                                          \
    "asr    " A ", " A ", r11\n\t"                                              \
    "ssat   " A ", #8, " A "\n\t"                                               \
    "strb   " A ", [r12], #1\n\t"

__asm__(MCC_ASM_FUNCTION("mcc_dw1ch_s8_rows_dsp")
        "push   {r4-r11, lr}\n\t"
        "sub    sp, sp, #24\n\t"
        "ldr    r8, [sp, #68]\n\t"         /* fh */
        "mul    r8, r8, r1\n\t"
        "strd   r0, r8, [sp]\n\t"
        "ldr    r9, [sp, #72]\n\t"         /* row_bytes */
        "ldr    r10, [sp, #60]\n\t"        /* quads */
        "add    r10, r3, r10, lsl #6\n\t"  /* 64 table bytes a quad */
        "strd   r9, r10, [sp, #8]\n\t"
        "strd   r2, r3, [sp, #16]\n"
        "0:\n\t"                            /* four channels */
        "ldr    r4, [r3]\n\t"                 /* the doubled biases */
        "ldr    r5, [r3, #16]\n\t"
        "ldr    r6, [r3, #32]\n\t"
        "ldr    r7, [r3, #48]\n\t"
        "ldrd   r0, lr, [sp]\n\t"
        "add    lr, r0, lr\n\t"
        "ldr    r12, [sp, #8]\n\t"
        "cmp    r12, #8\n\t"
        "beq    2f\n"
        "1:\n\t"                            /* rows of one word */
        "ldr    r8, [r0]\n\t"
        MCC_DW1CH_WORD
        "add    r0, r0, r1\n\t"
        "cmp    r0, lr\n\t"
        "bne    1b\n\t"
        "b      3f\n"
        "2:\n\t"                            /* rows of two words */
        "ldr    r8, [r0]\n\t"
        MCC_DW1CH_WORD
        "ldr    r8, [r0, #4]\n\t"
        MCC_DW1CH_WORD
        "add    r0, r0, r1\n\t"
        "cmp    r0, lr\n\t"
        "bne    2b\n"
        "3:\n\t"
        "ldr    r12, [sp, #64]\n\t"        /* o */
        MCC_DW1CH_OUT("r4")
        MCC_DW1CH_OUT("r5")
        MCC_DW1CH_OUT("r6")
        MCC_DW1CH_OUT("r7")
        "str    r12, [sp, #64]\n\t"
        "ldr    r8, [sp, #12]\n\t"
        "cmp    r3, r8\n\t"
        "bne    0b\n\t"
        "ldr    r8, [sp, #76]\n\t"         /* the next pixel */
        "subs   r8, r8, #1\n\t"
        "beq    4f\n\t"
        "str    r8, [sp, #76]\n\t"
        "ldr    r0, [sp]\n\t"
        "ldr    r9, [sp, #80]\n\t"
        "add    r0, r0, r9\n\t"
        "str    r0, [sp]\n\t"
        "ldrd   r2, r3, [sp, #16]\n\t"
        "b      0b\n"
        "4:\n\t"
        "add    sp, sp, #24\n\t"
        "pop    {r4-r11, pc}\n\t"
        MCC_ASM_END("mcc_dw1ch_s8_rows_dsp"));
#undef MCC_DW1CH_MAC
#undef MCC_DW1CH_WORD
#undef MCC_DW1CH_OUT
#endif

/* ---------------------------------------------------------------- GEMM core */

/* Widen four int8 rows of `depth` values into the block layout: for depth
 * group g and row r, int16 pair 8g + r is (x[4g], x[4g+2]) and pair 8g + 4 + r
 * is (x[4g+1], x[4g+3]); values past depth are 0. */
static void widen_rows4(const int8_t *const rows[4], int32_t depth, void *block)
{
    const int32_t full = depth >> 2;
    const int32_t rest = depth & 3;
#if MCC_CONV_DSP
    /* The four rows together: a group's eight words are stored side by side
     * (two instructions per input byte row by row, about 1.2 so). */
    const int8_t *const x0 = rows[0], *const x1 = rows[1], *const x2 = rows[2], *const x3 = rows[3];
    int32_t *dst = (int32_t *)block;
    for (int32_t i = 0; i < 4 * full; i += 4, dst += 8) {
        const int32_t v0 = load32(x0 + i), v1 = load32(x1 + i);
        const int32_t v2 = load32(x2 + i), v3 = load32(x3 + i);
        dst[0] = __sxtb16(v0);
        dst[1] = __sxtb16(v1);
        dst[2] = __sxtb16(v2);
        dst[3] = __sxtb16(v3);
        dst[4] = sxtb16_ror8(v0);
        dst[5] = sxtb16_ror8(v1);
        dst[6] = sxtb16_ror8(v2);
        dst[7] = sxtb16_ror8(v3);
    }
    for (int32_t r = 0; rest && r < 4; ++r) {
        const int32_t v = load_partial(rows[r] + 4 * full, rest);
        dst[r] = __sxtb16(v);
        dst[r + 4] = sxtb16_ror8(v);
    }
#else
    for (int32_t r = 0; r < 4; ++r) {
        const int8_t *x = rows[r];
        int16_t *dst = (int16_t *)block + 2 * r;
        for (int32_t g = 0; g < full; ++g, dst += 16, x += 4) {
            dst[0] = x[0];
            dst[1] = x[2];
            dst[8] = x[1];
            dst[9] = x[3];
        }
        if (rest) {
            dst[0] = x[0];
            dst[1] = rest > 2 ? x[2] : 0;
            dst[8] = rest > 1 ? x[1] : 0;
            dst[9] = 0;
        }
    }
#endif
}

/* Depth groups of four (the last one zero-padded). */
static int32_t groups_of(int32_t depth)
{
    return (depth + 3) >> 2;
}

/* The fused residual ADD's constants, as the assembly loop reads them. */
typedef struct {
    const int32_t *tx, *tz;         /* the tables at index 0 (x_scaled + 128, z_scaled + 128) */
    int32_t mult, hib, post;
    uint32_t lo4, hi4;              /* act_min and act_max in every byte */
} residual_consts;

#if MCC_CONV_ASM
/* out[0..4 * words) = ADD(out, z) a word (four values) at a time: per value
 * two byte loads, two table loads and the fast output stage (nine
 * instructions), then the four packed into a word, clamped lane by lane
 * (SSUB8/SEL) and stored over the x word they were read from. GCC's version
 * of the same C spilled six registers a word. Lanes in the order 1, 3, 2, 0,
 * so that the last z load steps the pointer. */
void mcc_residual_words_dsp(int8_t *out, const int8_t *z, int32_t words,
                            const residual_consts *k);

/* Lane L into D: r3 and r12 scratch; r4 tx, r5 tz, r6 mult, r7 hib, r8 post. */
#define MCC_RES_LANE(D, XLOAD, ZLOAD)                                          \
    "ldrsb  r3, " XLOAD "\n\t"                                                 \
    "ldrsb  r12, " ZLOAD "\n\t"                                                \
    "ldr    r3, [r4, r3, lsl #2]\n\t"                                         \
    "ldr    r12, [r5, r12, lsl #2]\n\t"                                       \
    "add    " D ", r3, r12\n\t"                                               \
    "add    r12, r7, " D ", asr #31\n\t"                                      \
    "smmlar " D ", " D ", r6, r12\n\t"                                        \
    "asr    " D ", " D ", r8\n\t"                                             \
    "ssat   " D ", #8, " D "\n\t"
__asm__(MCC_ASM_FUNCTION("mcc_residual_words_dsp")
        "push   {r4-r11, lr}\n\t"
        "ldm    r3, {r4-r10}\n\t"
        "add    r2, r0, r2, lsl #2\n"     /* the end of out */
        "1:\n\t"
        MCC_RES_LANE("lr", "[r0, #1]", "[r1, #1]")
        MCC_RES_LANE("r11", "[r0, #3]", "[r1, #3]")
        "pkhbt  lr, lr, r11, lsl #16\n\t"  /* lanes 1 and 3 */
        MCC_RES_LANE("r11", "[r0, #2]", "[r1, #2]")
        MCC_RES_LANE("r3", "[r0]", "[r1], #4")
        "pkhbt  r11, r3, r11, lsl #16\n\t" /* lanes 0 and 2 */
        "uxtb16 r11, r11\n\t"
        "uxtb16 lr, lr\n\t"
        "orr    r11, r11, lr, lsl #8\n\t"
        "ssub8  r3, r11, r9\n\t"
        "sel    r11, r11, r9\n\t"
        "ssub8  r3, r11, r10\n\t"
        "sel    r11, r10, r11\n\t"
        "str    r11, [r0], #4\n\t"
        "cmp    r0, r2\n\t"
        "bne    1b\n\t"
        "pop    {r4-r11, pc}\n\t"
        MCC_ASM_END("mcc_residual_words_dsp"));
#undef MCC_RES_LANE
#endif

/* The fused residual ADD (mcc_residual): `rows` runs of n values, z's
 * z_stride and out's out_stride bytes apart, each out[i] becoming
 * ADD(out[i], z[i]). One call per tile: the band kernel's tile is four runs
 * (rows of output pixels), the others' one. */
static MCC_NOINLINE void residual_add(const mcc_residual *r, const int8_t *z, int32_t z_stride,
                                      int32_t n, int8_t *out, int32_t out_stride, int32_t rows)
{
    const residual_consts k = {r->x_scaled + 128, r->z_scaled + 128, r->mult, r->hib, r->post,
                               splat_s8(r->act_min),
                               splat_s8(r->act_max)};
    for (; rows > 0; --rows, out += out_stride, z += z_stride) {
        int32_t i = 0;
#if MCC_CONV_ASM
        if (n >= 4) {
            mcc_residual_words_dsp(out, z, n >> 2, &k);
            i = n & ~3;
        }
#elif MCC_CONV_DSP
        for (; i + 4 <= n; i += 4) {
            const uint32_t w = add_scaled_word(k.tx, k.tz, load32(out + i), load32(z + i), k.mult,
                                               k.hib, k.post);
            const uint32_t c = clamp_lanes_s8(w, k.lo4, k.hi4);
            memcpy(out + i, &c, 4);
        }
#endif
        for (; i < n; ++i) {
            out[i] = add_scaled_one(k.tx[out[i]], k.tz[z[i]], k.mult, k.hib, k.post, r->act_min,
                                    r->act_max);
        }
    }
}

/* Requantize one channel's accumulators with its table row t, read only now
 * (into locals before the stores, which may alias it as far as the compiler
 * knows) so that the row does not occupy registers during the dot products. */
/* Pixels whose outputs the tile holds: a multiple of four, at least four. */
static inline int32_t residual_pixels(int32_t out_c)
{
    return (MCC_RESIDUAL_TILE / out_c) & ~3;
}

static inline void requant_pair(int8_t *o0, int8_t *o1, int32_t a0, int32_t a1, const int32_t *t)
{
    const int32_t mult = t[1], hib = t[2], post = t[3];
    *o0 = fast_requant(a0, mult, hib, post);
    *o1 = fast_requant(a1, mult, hib, post);
}

/* The same for four rows, `stride` bytes apart. */
static inline void requant_column(int8_t *o, int32_t stride, int32_t a0, int32_t a1, int32_t a2,
                                  int32_t a3, const int32_t *t)
{
    const int32_t mult = t[1], hib = t[2], post = t[3];
    o[0] = fast_requant(a0, mult, hib, post);
    o[stride] = fast_requant(a1, mult, hib, post);
    o[2 * stride] = fast_requant(a2, mult, hib, post);
    o[3 * stride] = fast_requant(a3, mult, hib, post);
}

#if MCC_CONV_ASM
typedef tile_4x2_fn *tile_4x2;

/* Every output channel of a 4x2 tile function's four rows (row_stride bytes
 * apart): the full channel pairs in one call, then an odd last channel
 * against its zero-padded twin (the weights' layout) with its table row
 * twice, into a local tile. pair_bytes: one channel pair's weights. */
static inline void tiles_4x2(tile_4x2 tile, const int32_t *block, const int8_t *w,
                             const int32_t *channels, int8_t *o, int32_t steps, int32_t pair_bytes,
                             int32_t row_stride, int32_t out_c)
{
    const int32_t pairs = out_c >> 1, c = 2 * pairs;
    if (pairs) {
        tile(block, w, channels, o, steps, row_stride, pairs);
    }
    if (c < out_c) {
        int32_t chan[8];
        int8_t local[8];
        memcpy(chan, channels + 4 * c, 16);
        memcpy(chan + 4, channels + 4 * c, 16);
        tile(block, w + pair_bytes * pairs, chan, local, steps, 2, 1);
        for (int32_t r = 0; r < 4; ++r) {
            o[r * row_stride + c] = local[2 * r];
        }
    }
}
#endif

/* Lane 0 (bits 0..15) or 1 of an int16 pair word. */
#define MCC_LANE(w, l) ((int32_t)(int16_t)(uint16_t)((uint32_t)(w) >> (16 * (l))))

#if WIDE_WEIGHTS && !MCC_CONV_ASM
/* gemm_block4 from int16 weights (mcc_conv.h, wide_weights) in C: for the
 * host and -DMCC_NO_ASM, which run the layouts a DSP build chose. */
static void gemm_block4_wide_c(const int16_t *x0, int32_t groups, const int32_t *weights,
                               const int32_t *channels, int32_t out_c, int8_t *out)
{
    const int32_t *w = weights;
    for (int32_t c = 0; c < out_c; c += 2, w += 4 * groups) {
        const int two = c + 1 < out_c;
        const int32_t *t0 = channels + 4 * c;
        const int32_t *t1 = t0 + 4 * two;
        int32_t a[4][2];
        for (int32_t r = 0; r < 4; ++r) {
            a[r][0] = t0[0];
            a[r][1] = t1[0];
        }
        const int16_t *x = x0;
        const int32_t *wp = w;
        for (int32_t g = 0; g < groups; ++g, x += 16, wp += 4) {
            /* wp: channel 0's (k, k+2), channel 1's; then the same for k+1, k+3. */
            for (int32_t r = 0; r < 4; ++r) {
                const int32_t k0 = x[2 * r], k2 = x[2 * r + 1], k1 = x[8 + 2 * r], k3 = x[9 + 2 * r];
                a[r][0] += k0 * MCC_LANE(wp[0], 0) + k2 * MCC_LANE(wp[0], 1)
                         + k1 * MCC_LANE(wp[2], 0) + k3 * MCC_LANE(wp[2], 1);
                a[r][1] += k0 * MCC_LANE(wp[1], 0) + k2 * MCC_LANE(wp[1], 1)
                         + k1 * MCC_LANE(wp[3], 0) + k3 * MCC_LANE(wp[3], 1);
            }
        }
        requant_column(out + c, out_c, a[0][0], a[1][0], a[2][0], a[3][0], t0);
        if (two) {
            requant_column(out + c + 1, out_c, a[0][1], a[1][1], a[2][1], a[3][1], t1);
        }
    }
}
#endif

/* out[r][c..c+1] for the four widened rows of `block`, every channel pair;
 * from `wide` instead of `weights` where it is not NULL. */
static void gemm_block4(const void *block, int32_t groups, const int8_t *weights,
                        const int32_t *wide, const int32_t *channels, int32_t out_c, int8_t *out)
{
    const int8_t *w = weights;
    if (WIDE_WEIGHTS && wide != NULL) {
#if WIDE_WEIGHTS && MCC_CONV_ASM
        tiles_4x2(mcc_gemm_s8w_4x2_dsp, (const int32_t *)block, (const int8_t *)wide, channels,
                  out, groups, 16 * groups, out_c, out_c);
#elif WIDE_WEIGHTS
        gemm_block4_wide_c((const int16_t *)block, groups, wide, channels, out_c, out);
#endif
        return;
    }
#if MCC_CONV_ASM
    tiles_4x2(mcc_gemm_s8_4x2_dsp, (const int32_t *)block, w, channels, out, groups, 8 * groups,
              out_c, out_c);
#else
    for (int32_t c = 0; c < out_c; c += 2, w += 8 * groups) {
        const int two = c + 1 < out_c;
        const int32_t *t0 = channels + 4 * c;
        const int32_t *t1 = t0 + 4 * two;   /* an odd last channel reads its own row */
        int32_t a00 = t0[0], a01 = t1[0], a10 = t0[0], a11 = t1[0];
        int32_t a20 = t0[0], a21 = t1[0], a30 = t0[0], a31 = t1[0];
#if MCC_CONV_DSP
        const int32_t *x = (const int32_t *)block;
        const int8_t *wp = w;
        /* One depth group: weight word A (k, k+2 of both channels) against
         * the rows' (k, k+2) pairs, then word B against (k+1, k+3). */
#define MCC_GEMM_GROUP(X, WP) do {                                            \
            const int32_t wa_ = load32(WP);                                   \
            int32_t w0_ = __sxtb16(wa_), w1_ = sxtb16_ror8(wa_);              \
            a00 = __smlad((X)[0], w0_, a00); a01 = __smlad((X)[0], w1_, a01); \
            a10 = __smlad((X)[1], w0_, a10); a11 = __smlad((X)[1], w1_, a11); \
            a20 = __smlad((X)[2], w0_, a20); a21 = __smlad((X)[2], w1_, a21); \
            a30 = __smlad((X)[3], w0_, a30); a31 = __smlad((X)[3], w1_, a31); \
            const int32_t wb_ = load32((WP) + 4);                             \
            w0_ = __sxtb16(wb_);                                              \
            w1_ = sxtb16_ror8(wb_);                                           \
            a00 = __smlad((X)[4], w0_, a00); a01 = __smlad((X)[4], w1_, a01); \
            a10 = __smlad((X)[5], w0_, a10); a11 = __smlad((X)[5], w1_, a11); \
            a20 = __smlad((X)[6], w0_, a20); a21 = __smlad((X)[6], w1_, a21); \
            a30 = __smlad((X)[7], w0_, a30); a31 = __smlad((X)[7], w1_, a31); \
        } while (0)
        if (groups & 1) {
            MCC_GEMM_GROUP(x, wp);
            x += 8;
            wp += 8;
        }
        for (; wp != w + 8 * groups; x += 16, wp += 16) {
            MCC_GEMM_GROUP(x, wp);
            MCC_GEMM_GROUP(x + 8, wp + 8);
        }
#undef MCC_GEMM_GROUP
#else
        const int16_t *x = (const int16_t *)block;
        const int8_t *wp = w;
        /* One depth slot: the weight pair at wp[2J] against the four rows'
         * values at x[XO + 2r]. Every product goes straight into its
         * accumulator: written as one sum per accumulator instead, GCC keeps
         * the eight accumulators on the stack on the M3 (3.1 instructions per
         * MAC in this loop, 1.9 so). */
#define MCC_GEMM_SLOT(J, XO) do {                                             \
            const int32_t w0_ = wp[2 * (J)], w1_ = wp[2 * (J) + 1];           \
            int32_t v_ = x[(XO)];                                             \
            a00 += v_ * w0_; a01 += v_ * w1_;                                 \
            v_ = x[(XO) + 2]; a10 += v_ * w0_; a11 += v_ * w1_;               \
            v_ = x[(XO) + 4]; a20 += v_ * w0_; a21 += v_ * w1_;               \
            v_ = x[(XO) + 6]; a30 += v_ * w0_; a31 += v_ * w1_;               \
        } while (0)
        for (int32_t g = 0; g < groups; ++g, x += 16, wp += 8) {
            /* x[2r], x[2r+1]: row r's k, k+2; x[8+2r], x[9+2r]: its k+1, k+3. */
            MCC_GEMM_SLOT(0, 0);
            MCC_GEMM_SLOT(1, 1);
            MCC_GEMM_SLOT(2, 8);
            MCC_GEMM_SLOT(3, 9);
        }
#undef MCC_GEMM_SLOT
#endif
        int8_t *o = out + c;
        requant_column(o, out_c, a00, a10, a20, a30, t0);
        if (two) {
            requant_column(o + 1, out_c, a01, a11, a21, a31, t1);
        }
    }
#endif
}

/* All `rows` int8 rows read where they lie (no scratch), two rows by two
 * channels at a time: each weight word is widened once for both rows. Channel
 * pairs are the outer loop, so the per-pair set-up is paid once per layer,
 * not once per row pair. An odd last row, or a lone one (a fully connected
 * layer), is paired with itself: the same bytes are written twice, which
 * costs its dot products twice but keeps one row kernel in the library. */
static void gemm_rows2(const int8_t *input, int32_t rows, int32_t depth, const int8_t *weights,
                       const int32_t *channels, int32_t out_c, int8_t *output)
{
    const int32_t groups = groups_of(depth);
#if MCC_CONV_ASM
    const int32_t rest = depth & 3;
#elif MCC_CONV_DSP
    const int32_t full = depth >> 2, rest = depth & 3;
#endif
    const int8_t *w = weights;
#if MCC_CONV_ASM
    if (rest == 0) {
        /* Whole depth groups: every tile in assembly. A lone last row takes
         * four channels at a time (1x4), what is left of it pairs with
         * itself below. An odd last channel runs as a pair with its
         * zero-padded twin into a local 2x2. */
        const int32_t quads = rows & 1 ? out_c >> 2 : 0;
        for (int32_t q = 0; q < quads; ++q) {
            mcc_gemm_s8_1x4_dsp(input + (rows - 1) * depth, w + 16 * groups * q,
                                channels + 16 * q, output + (rows - 1) * out_c + 4 * q, groups);
        }
        int32_t twin[8];
        int8_t tile[4];
        for (int32_t c = 0; c < out_c; c += 2, w += 8 * groups) {
            const int two = c + 1 < out_c;
            const int32_t *chan = channels + 4 * c;
            if (!two) {
                memcpy(twin, chan, 16);
                memcpy(twin + 4, chan, 16);
                chan = twin;
            }
            const int8_t *x0 = input;
            int8_t *o0 = output + c;
            for (int32_t left = c < 4 * quads ? rows - 1 : rows; left > 0;
                 left -= 2, x0 += 2 * depth, o0 += 2 * out_c) {
                const int8_t *x1 = left > 1 ? x0 + depth : x0;
                int8_t *o1 = left > 1 ? o0 + out_c : o0;
                if (two) {
                    mcc_gemm_s8_2x2_dsp(x0, x1, w, o0, o1, chan, groups);
                } else {
                    mcc_gemm_s8_2x2_dsp(x0, x1, w, tile, tile + 2, chan, groups);
                    *o1 = tile[2];
                    *o0 = tile[0];
                }
            }
        }
        return;
    }
#if !GEMM_PARTIAL
    return;     /* compiled out: mcc_gemm_s8 refuses a partial last group */
#endif
#endif
    for (int32_t c = 0; c < out_c; c += 2, w += 8 * groups) {
        const int two = c + 1 < out_c;
        const int32_t *t0 = channels + 4 * c;
        const int32_t *t1 = t0 + 4 * two;   /* an odd last channel reads its own row */
        const int32_t b0 = t0[0], b1 = t1[0];
        const int8_t *x0 = input;
        int8_t *o0 = output + c;
        for (int32_t left = rows; left > 0; left -= 2, x0 += 2 * depth, o0 += 2 * out_c) {
            const int8_t *x1 = left > 1 ? x0 + depth : x0;
            int8_t *o1 = left > 1 ? o0 + out_c : o0;
            int32_t a00 = b0, a01 = b1, a10 = b0, a11 = b1;
            const int8_t *wp = w;
#if MCC_CONV_DSP && !MCC_CONV_ASM
            /* Word A of a group holds (k, k+2) of both channels, word B (k+1, k+3).
             * (With the assembly tiles only a partial last group comes here,
             * and the portable loop below does, in less code.) */
#define MCC_ROWS2_GROUP(V0, V1) do {                                           \
                const int32_t wa_ = load32(wp), wb_ = load32(wp + 4);          \
                const int32_t wa0_ = __sxtb16(wa_), wa1_ = sxtb16_ror8(wa_);   \
                const int32_t wb0_ = __sxtb16(wb_), wb1_ = sxtb16_ror8(wb_);   \
                int32_t e_ = __sxtb16(V0), o_ = sxtb16_ror8(V0);               \
                a00 = __smlad(e_, wa0_, a00); a01 = __smlad(e_, wa1_, a01);    \
                a00 = __smlad(o_, wb0_, a00); a01 = __smlad(o_, wb1_, a01);    \
                e_ = __sxtb16(V1); o_ = sxtb16_ror8(V1);                       \
                a10 = __smlad(e_, wa0_, a10); a11 = __smlad(e_, wa1_, a11);    \
                a10 = __smlad(o_, wb0_, a10); a11 = __smlad(o_, wb1_, a11);    \
            } while (0)
            for (int32_t g = 0; g < full; ++g, wp += 8) {
                MCC_ROWS2_GROUP(load32(x0 + 4 * g), load32(x1 + 4 * g));
            }
            if (rest) {
                MCC_ROWS2_GROUP(load_partial(x0 + 4 * full, rest),
                                load_partial(x1 + 4 * full, rest));
            }
#undef MCC_ROWS2_GROUP
#else
            /* Without DSP, whole groups unrolled, each product straight
             * into its accumulator (see gemm_block4); the rest k by k. (With
             * the assembly, only depths of a partial last group come here,
             * and the one loop is shorter.) */
            const int32_t whole = MCC_CONV_DSP ? 0 : depth & ~3;
#define MCC_ROWS2_SLOT(K, W) do {                                              \
                const int32_t w0_ = wp[(W)], w1_ = wp[(W) + 1];                \
                const int32_t u_ = x0[(K)], v_ = x1[(K)];                      \
                a00 += u_ * w0_; a01 += u_ * w1_;                              \
                a10 += v_ * w0_; a11 += v_ * w1_;                              \
            } while (0)
            for (int32_t k = 0; k < whole; k += 4, wp += 8) {
                MCC_ROWS2_SLOT(k, 0);
                MCC_ROWS2_SLOT(k + 1, 4);
                MCC_ROWS2_SLOT(k + 2, 2);
                MCC_ROWS2_SLOT(k + 3, 6);
            }
#undef MCC_ROWS2_SLOT
            wp = w;
            for (int32_t k = whole; k < depth; ++k) {
                /* Depth k sits in word k & 1 of its group, lane k >> 1 & 1. */
                const int8_t *wk = wp + 8 * (k >> 2) + 4 * (k & 1) + 2 * ((k >> 1) & 1);
                a00 += x0[k] * wk[0];
                a01 += x0[k] * wk[1];
                a10 += x1[k] * wk[0];
                a11 += x1[k] * wk[1];
            }
#endif
            requant_pair(o0, o1, a00, a10, t0);
            if (two) {
                requant_pair(o0 + 1, o1 + 1, a01, a11, t1);
            }
        }
    }
}

size_t mcc_gemm_s8_scratch_bytes(const mcc_gemm_params *p)
{
    /* Four rows of ceil(depth / 4) groups of four int16 values; in place, then
     * the outputs of a block of leftover rows (on the stack at row_block 2). */
    if (p->inplace) {
        return p->row_block == 2 ? 0u : (size_t)32 * (size_t)groups_of(p->depth)
                                            + (size_t)4 * (size_t)p->out_c;
    }
    return p->row_block == 4 && p->rows >= 4 ? (size_t)32 * (size_t)groups_of(p->depth) : 0u;
}

/* The n <= 4 rows from `first` (depth bytes apart) into the block, the last
 * one repeated to make four, then the block's four rows of outputs at out. */
static void gemm_repeat_rows(const mcc_gemm_params *p, const int8_t *first, int32_t n,
                             void *block, int8_t *out)
{
    const int32_t depth = p->depth;
    const int8_t *rows[4];
    for (int32_t i = 0; i < 4; ++i) {
        rows[i] = first + MCC_MIN(i, n - 1) * depth;
    }
    widen_rows4(rows, depth, block);
    gemm_block4(block, groups_of(depth), p->weights, p->wide_weights, p->channels, p->out_c, out);
}

/* The n < 4 rows from row r through the block, their outputs via scratch
 * after the block. */
static void gemm_tail_rows(const mcc_gemm_params *p, const int8_t *input, int8_t *output,
                           void *scratch, int32_t r, int32_t n)
{
    int8_t *tile = (int8_t *)scratch + 32 * groups_of(p->depth);
    gemm_repeat_rows(p, input + r * p->depth, n, scratch, tile);
    memcpy(output + r * p->out_c, tile, (size_t)(n * p->out_c));
}

/* In place (mcc_conv.h, `inplace`): whole blocks and the leftover rows, in
 * the order that never overwrites a row before it is widened. */
static void gemm_inplace(const mcc_gemm_params *p, const int8_t *input, int8_t *output,
                         void *scratch)
{
    const int32_t depth = p->depth, out_c = p->out_c;
    const int32_t whole = p->rows & ~3, left = p->rows - whole;
    const int backward = p->inplace == 2;
    if (backward && left) {
        gemm_tail_rows(p, input, output, scratch, whole, left);
    }
    for (int32_t i = 0; i < whole; i += 4) {
        const int32_t r = backward ? whole - 4 - i : i;
        const int8_t *x = input + r * depth;
        const int8_t *const rows[4] = {x, x + depth, x + 2 * depth, x + 3 * depth};
        widen_rows4(rows, depth, scratch);
        gemm_block4(scratch, groups_of(depth), p->weights, p->wide_weights, p->channels, out_c,
                    output + r * out_c);
    }
    if (!backward && left) {
        gemm_tail_rows(p, input, output, scratch, whole, left);
    }
}

/* With a residual: as many rows as the tile holds at a time (a multiple of
 * four), computed as mcc_gemm_s8 computes them into the tile, then added in. */
static void gemm_residual_rows(const mcc_gemm_params *p, const int8_t *input, int8_t *output,
                               void *block, int8_t *tile)
{
    const int32_t depth = p->depth, out_c = p->out_c;
    const int32_t chunk = residual_pixels(out_c);
    for (int32_t r = 0; r < p->rows; r += chunk) {
        const int32_t n = MCC_MIN(chunk, p->rows - r);
        int32_t i = 0;
        for (; p->row_block != 1 && i + 4 <= n; i += 4) {
            const int8_t *x = input + (r + i) * depth;
            const int8_t *const rows[4] = {x, x + depth, x + 2 * depth, x + 3 * depth};
            widen_rows4(rows, depth, block);
            gemm_block4(block, groups_of(depth), p->weights, p->wide_weights, p->channels, out_c,
                        tile + i * out_c);
        }
        if (WIDE_WEIGHTS && i < n && p->wide_weights != NULL) {
            /* int16 weights have no row-pair kernel: the last rows repeated
             * to a block, whose four rows the tile has room for. */
            gemm_repeat_rows(p, input + (r + i) * depth, n - i, block, tile + i * out_c);
        } else if (i < n) {
            gemm_rows2(input + (r + i) * depth, n - i, depth, p->weights, p->channels, out_c,
                       tile + i * out_c);
        }
        residual_add(&p->residual, tile, 0, n * out_c, output + r * out_c, 0, 1);
    }
}

/* row_block 2: the block on the stack, up to MCC_GEMM_RESIDUAL_STACK_BLOCK,
 * in a frame of its own. */
static MCC_NOINLINE void gemm_residual_on_stack(const mcc_gemm_params *p, const int8_t *input,
                                                int8_t *output, int8_t *tile)
{
    uint32_t stack_block[MCC_GEMM_RESIDUAL_STACK_BLOCK / 4];
    gemm_residual_rows(p, input, output, stack_block, tile);
}

/* The tile in a frame of its own. */
static MCC_NOINLINE int gemm_residual(const mcc_gemm_params *p, const int8_t *input,
                                      int8_t *output, void *scratch)
{
    uint32_t tile_words[MCC_RESIDUAL_TILE / 4];
    if (p->row_block != 2) {
        gemm_residual_rows(p, input, output, scratch, (int8_t *)tile_words);
    } else if (32 * groups_of(p->depth) <= MCC_GEMM_RESIDUAL_STACK_BLOCK) {
        gemm_residual_on_stack(p, input, output, (int8_t *)tile_words);
    } else {
        return MCC_ERROR;
    }
    return MCC_OK;
}

/* Blocks of four rows widened into `block` (row_block 4 or 2), then the
 * leftovers, or every row without a block (row_block 1), two at a time. */
static void gemm_rows(const mcc_gemm_params *p, const int8_t *input, int8_t *output, void *block)
{
    const int32_t depth = p->depth;
    const int32_t out_c = p->out_c;
    int32_t r = 0;
    if (p->row_block == 4 || p->row_block == 2) {
        for (; r + 4 <= p->rows; r += 4) {
            const int8_t *x = input + r * depth;
            const int8_t *const rows[4] = {x, x + depth, x + 2 * depth, x + 3 * depth};
            widen_rows4(rows, depth, block);
            gemm_block4(block, groups_of(depth), p->weights, p->wide_weights, p->channels, out_c,
                        output + r * out_c);
        }
    }
    if (WIDE_WEIGHTS && r < p->rows && p->wide_weights != NULL) {
        /* int16 weights have no row-pair kernel: a last block moved up over
         * rows done before (rows >= 4; input and output never overlap here),
         * which it writes again with the same values. */
        r = p->rows - 4;
        gemm_repeat_rows(p, input + r * depth, 4, block, output + r * out_c);
        r = p->rows;
    }
    if (r < p->rows) {
        gemm_rows2(input + r * depth, p->rows - r, depth, p->weights, p->channels, out_c,
                   output + r * out_c);
    }
}

/* row_block 2: the block on the stack (mcc_conv.h), in a frame of its own
 * (the residual form's frame holds its own). */
static MCC_NOINLINE void gemm_on_stack(const mcc_gemm_params *p, const int8_t *input,
                                       int8_t *output)
{
    uint32_t stack_block[MCC_GEMM_STACK_BLOCK / 4];
    gemm_rows(p, input, output, stack_block);
}

/* A depth that is not whole groups of four, whose leftover rows need
 * gemm_rows2's C loop, in a library built without it (GEMM_PARTIAL). */
static int partial_omitted(const mcc_gemm_params *p)
{
    return MCC_CONV_ASM && !GEMM_PARTIAL && (p->depth & 3) != 0;
}

int mcc_gemm_s8(const mcc_gemm_params *p, const int8_t *input, int8_t *output, void *scratch)
{
    if (partial_omitted(p)) {
        return MCC_ERROR;
    }
    if (p->wide_weights != NULL && (!WIDE_WEIGHTS || p->rows < 4 || p->row_block == 1)) {
        return MCC_ERROR;
    }
    if (p->residual.x_scaled != NULL) {
        return !RESIDUAL || p->out_c > MCC_RESIDUAL_MAX_C ? MCC_ERROR
                                                          : gemm_residual(p, input, output, scratch);
    }
    if (p->row_block == 2) {
        if (32 * groups_of(p->depth) > MCC_GEMM_STACK_BLOCK) {
            return MCC_ERROR;
        }
        gemm_on_stack(p, input, output);
    } else {
        gemm_rows(p, input, output, scratch);
    }
    clamp_activation(output, p->rows * p->out_c, p->act_min, p->act_max);
    return MCC_OK;
}

/* row_block 2: the block in a frame of its own, only for as long as it is used. */
static MCC_NOINLINE void gemm_inplace_on_stack(const mcc_gemm_params *p, const int8_t *input,
                                               int8_t *output)
{
    uint32_t stack_block[MCC_GEMM_INPLACE_STACK_BLOCK / 4];
    gemm_inplace(p, input, output, stack_block);
}

/* Its own entry point, so that models without it do not link it. */
int mcc_gemm_inplace_s8(const mcc_gemm_params *p, const int8_t *input, int8_t *output,
                        void *scratch)
{
    if (!p->inplace || (const int8_t *)output != input || (p->wide_weights != NULL && !WIDE_WEIGHTS)
        || partial_omitted(p)) {
        return MCC_ERROR;
    }
    if (p->row_block == 2) {
        if (32 * groups_of(p->depth) + 4 * p->out_c > MCC_GEMM_INPLACE_STACK_BLOCK) {
            return MCC_ERROR;
        }
        gemm_inplace_on_stack(p, input, output);
    } else if (p->row_block == 4) {
        gemm_inplace(p, input, output, scratch);
    } else {
        return MCC_ERROR;
    }
    clamp_activation(output, p->rows * p->out_c, p->act_min, p->act_max);
    return MCC_OK;
}

/* ------------------------------------------------------------------ im2col */

/* in_c a multiple of 4: every filter tap is whole depth groups, so patches
 * are widened straight from the input into the block, with no int8 copy. */
static int widens_directly(const mcc_conv2d_im2col_params *p)
{
    return (p->in_c & 3) == 0;
}

/* Scratch: the int16 block (32 bytes per depth group, row_block 4) and then,
 * unless patches are widened directly, the int8 patch rows it is widened
 * from (4 or 1, 4 bytes per group). */
static int32_t blocks_bytes(const mcc_conv2d_im2col_params *p)
{
    const int32_t groups = groups_of(p->filter_h * p->filter_w * p->in_c);
    return widens_directly(p) ? 32 * groups : 48 * groups;
}

size_t mcc_conv2d_im2col_s8_scratch_bytes(const mcc_conv2d_im2col_params *p)
{
    if (p->row_block == 2) {
        return 0u;
    }
    const int blocks = p->row_block == 4 && p->batches * p->out_h * p->out_w >= 4;
    if (!blocks) {
        return 4u * (size_t)groups_of(p->filter_h * p->filter_w * p->in_c);
    }
    return (size_t)blocks_bytes(p);
}

/* A patch's row segments land in their destination one of two ways: copied
 * as int8 (scale 1), or widened into one row of the int16 block (scale 8:
 * 32 block bytes per group of 4; widens_directly only, so every segment is
 * whole groups). n counts input bytes. */
typedef void (*segment_copy)(int8_t *dst, const int8_t *src, int32_t n);
typedef void (*segment_fill)(int8_t *dst, int8_t value, int32_t n);

static void fill_s8(int8_t *dst, int8_t value, int32_t n)
{
    memset(dst, value, (size_t)n);
}

static void copy_s8(int8_t *dst, const int8_t *src, int32_t n)
{
#if MCC_CONV_DSP
    /* The segments copied here are short (in_c % 4 != 0: a few channels per
     * tap): inline word moves (unaligned is fine) beat a library call. */
    for (; n >= 4; n -= 4, dst += 4, src += 4) {
        memcpy(dst, src, 4);
    }
    for (; n > 0; --n) {
        *dst++ = *src++;
    }
#else
    memcpy(dst, src, (size_t)n);
#endif
}

/* Into the block layout of widen_rows4; dst is the row's first int16 of
 * the segment's first group. */
static void widen_s8(int8_t *dst, const int8_t *src, int32_t n)
{
#if MCC_CONV_DSP
    int32_t *d = (int32_t *)(void *)dst;
    const int8_t *const end = src + n;
    /* Four groups a step, then two: this is most of the gather's time. */
    for (; src + 16 <= end; d += 32, src += 16) {
        const int32_t v0 = load32(src), v1 = load32(src + 4);
        const int32_t v2 = load32(src + 8), v3 = load32(src + 12);
        d[0] = __sxtb16(v0);
        d[4] = sxtb16_ror8(v0);
        d[8] = __sxtb16(v1);
        d[12] = sxtb16_ror8(v1);
        d[16] = __sxtb16(v2);
        d[20] = sxtb16_ror8(v2);
        d[24] = __sxtb16(v3);
        d[28] = sxtb16_ror8(v3);
    }
    for (; src + 8 <= end; d += 16, src += 8) {
        const int32_t v0 = load32(src), v1 = load32(src + 4);
        d[0] = __sxtb16(v0);
        d[4] = sxtb16_ror8(v0);
        d[8] = __sxtb16(v1);
        d[12] = sxtb16_ror8(v1);
    }
    if (src != end) {
        const int32_t v = load32(src);
        d[0] = __sxtb16(v);
        d[4] = sxtb16_ror8(v);
    }
#else
    int16_t *d = (int16_t *)(void *)dst;
    for (int32_t g = 0; g < n; g += 4, d += 16, src += 4) {
        d[0] = src[0];
        d[1] = src[2];
        d[8] = src[1];
        d[9] = src[3];
    }
#endif
}

static void fill_widened(int8_t *dst, int8_t value, int32_t n)
{
    int16_t *d = (int16_t *)(void *)dst;
    for (int32_t g = 0; g < n; g += 4, d += 16) {
        d[0] = d[1] = d[8] = d[9] = value;
    }
}

/* The patch of output pixel (b, oy, ox) in TFLite's filter order, taps
 * outside the image as pad_value. */
static void walk_patch(const mcc_conv2d_im2col_params *p, const int8_t *input, int32_t b,
                       int32_t oy, int32_t ox, int8_t *dst, int32_t scale, segment_copy copy,
                       segment_fill fill)
{
    const int32_t in_c = p->in_c;
    const int32_t y0 = oy * p->stride_h - p->pad_h;
    const int32_t x0 = ox * p->stride_w - p->pad_w;
    const int32_t row_len = p->filter_w * in_c;
    const int8_t pad = (int8_t)p->pad_value;
    const int x_inside = x0 >= 0 && x0 + (p->filter_w - 1) * p->dilation_w < p->in_w;
    for (int32_t ky = 0; ky < p->filter_h; ++ky, dst += scale * row_len) {
        const int32_t y = y0 + ky * p->dilation_h;
        if (y < 0 || y >= p->in_h) {
            fill(dst, pad, row_len);
            continue;
        }
        const int8_t *src = input + ((b * p->in_h + y) * p->in_w) * in_c;
        if (x_inside && p->dilation_w == 1) {
            copy(dst, src + x0 * in_c, row_len);
            continue;
        }
        if (p->dilation_w == 1) {
            /* A row across the image's edge: the pad taps on either side of
             * one run inside (none where the row misses the image). */
            const int32_t lo = MCC_MIN(MCC_MAX(0, -x0), p->filter_w);
            const int32_t hi = MCC_MAX(lo, MCC_MIN(p->filter_w, p->in_w - x0));
            if (lo > 0) {
                fill(dst, pad, lo * in_c);
            }
            if (hi > lo) {
                copy(dst + scale * lo * in_c, src + (x0 + lo) * in_c, (hi - lo) * in_c);
            }
            if (hi < p->filter_w) {
                fill(dst + scale * hi * in_c, pad, (p->filter_w - hi) * in_c);
            }
            continue;
        }
        for (int32_t kx = 0; kx < p->filter_w; ++kx) {
            const int32_t x = x0 + kx * p->dilation_w;
            if (x >= 0 && x < p->in_w) {
                copy(dst + scale * kx * in_c, src + x * in_c, in_c);
            } else {
                fill(dst + scale * kx * in_c, pad, in_c);
            }
        }
    }
}

static void gather_patch(const mcc_conv2d_im2col_params *p, const int8_t *input,
                         int32_t b, int32_t oy, int32_t ox, int8_t *dst)
{
    walk_patch(p, input, b, oy, ox, dst, 1, copy_s8, fill_s8);
}

/* gather_patch and widen_rows4 in one pass (widens_directly): into block
 * row r. */
static void gather_widened(const mcc_conv2d_im2col_params *p, const int8_t *input,
                           int32_t b, int32_t oy, int32_t ox, void *block, int32_t r)
{
    walk_patch(p, input, b, oy, ox, (int8_t *)block + 4 * r, 8, widen_s8, fill_widened);
}

/* Steps b, oy, ox to the next output pixel in raster order. */
static inline void next_pixel(const mcc_conv2d_im2col_params *p, int32_t *b, int32_t *oy,
                              int32_t *ox)
{
    if (++*ox == p->out_w) {
        *ox = 0;
        if (++*oy == p->out_h) {
            *oy = 0;
            ++*b;
        }
    }
}

/* Whether pixel (oy, ox)'s patch lies wholly inside the image (undilated
 * along x): then each of its kernel rows is one contiguous run of the input. */
static inline int patch_inside(const mcc_conv2d_im2col_params *p, int32_t oy, int32_t ox)
{
    const int32_t y0 = oy * p->stride_h - p->pad_h;
    const int32_t x0 = ox * p->stride_w - p->pad_w;
    return y0 >= 0 && y0 + (p->filter_h - 1) * p->dilation_h < p->in_h && x0 >= 0
           && x0 + p->filter_w <= p->in_w;
}

/* Pixel (b, oy, ox)'s first tap. */
static inline const int8_t *patch_first(const mcc_conv2d_im2col_params *p, const int8_t *input,
                                        int32_t b, int32_t oy, int32_t ox)
{
    const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
    return input + ((b * p->in_h + y0) * p->in_w + x0) * p->in_c;
}

/* Whether the four pixels from (b, oy, ox) on, in raster order, all have
 * their patches inside the image, and if so each one's first tap. Then
 * gather_block_inside takes them (most pixels of a layer), and walk_patch
 * keeps the borders. A block may span two output rows: a patch's output
 * rows are short (MobileNetV2-96's first layer: 12 or 13 pixels), and
 * blocks across a row's end took walk_patch, at about 250 instructions a
 * pixel against 46. */
static int block_inside(const mcc_conv2d_im2col_params *p, const int8_t *input, int32_t b,
                        int32_t oy, int32_t ox, const int8_t *first[4])
{
    if (p->dilation_w != 1) {
        return 0;
    }
    if (ox + 4 <= p->out_w) {       /* one output row: its ends decide */
        if (!patch_inside(p, oy, ox) || !patch_inside(p, oy, ox + 3)) {
            return 0;
        }
        first[0] = patch_first(p, input, b, oy, ox);
        for (int32_t r = 1; r < 4; ++r) {
            first[r] = first[r - 1] + p->stride_w * p->in_c;
        }
        return 1;
    }
    for (int32_t r = 0; r < 4; ++r) {
        if (!patch_inside(p, oy, ox)) {
            return 0;
        }
        first[r] = patch_first(p, input, b, oy, ox);
        next_pixel(p, &b, &oy, &ox);
    }
    return 1;
}

/* The patches of the block_inside pixels, as walk_patch would write them:
 * patch r, from first[r], at dst + r * row_step. */
static void gather_block_inside(const mcc_conv2d_im2col_params *p, const int8_t *const first[4],
                                int8_t *dst, int32_t row_step, int32_t scale, segment_copy copy)
{
    const int32_t row_len = p->filter_w * p->in_c;
    const int32_t pitch = p->dilation_h * p->in_w * p->in_c;
    for (int32_t r = 0; r < 4; ++r) {
        int8_t *d = dst + r * row_step;
        const int8_t *s = first[r];
        for (int32_t ky = 0; ky < p->filter_h; ++ky, d += scale * row_len, s += pitch) {
            copy(d, s, row_len);
        }
    }
}

#if MCC_CONV_DSP && IM2COL_RGB
/* A 3x3 filter over three input channels: an RGB first layer. */
static int rgb3x3(const mcc_conv2d_im2col_params *p)
{
    return p->in_c == 3 && p->filter_h == 3 && p->filter_w == 3 && p->dilation_w == 1;
}

static inline uint32_t load16u(const int8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* gather_block_inside and widen_rows4 in one pass for rgb3x3 layers. Each
 * patch row is 9 contiguous input bytes, so a patch's 27 values and the
 * zero after them are seven words read straight from the input; the words
 * of groups 2, 4 and 6 straddle two rows (or the patch's end) and are put
 * together from a byte or half-word of one and the start of the next. No
 * load reaches past a row's 9 bytes. About a fifth of the instructions of
 * the int8 copy and widening it replaces (MobileNetV2's first layer). */
static void widen_rgb3x3_block(const mcc_conv2d_im2col_params *p, const int8_t *const first[4],
                               int32_t *block)
{
    const int32_t pitch = p->dilation_h * p->in_w * 3;
    for (int32_t r = 0; r < 4; ++r) {
        const int8_t *r0 = first[r], *r1 = r0 + pitch, *r2 = r1 + pitch;
        int32_t *d = block + r;
        /* Written out: with an array of the seven words GCC spilled it. */
#define MCC_RGB_GROUP(G, WORD) do {                                            \
            const int32_t v_ = (int32_t)(WORD);                                \
            d[8 * (G)] = __sxtb16(v_);                                         \
            d[8 * (G) + 4] = sxtb16_ror8(v_);                                  \
        } while (0)
        MCC_RGB_GROUP(0, load32(r0));
        MCC_RGB_GROUP(1, load32(r0 + 4));
        MCC_RGB_GROUP(2, (uint8_t)r0[8] | (uint32_t)load32(r1) << 8);
        MCC_RGB_GROUP(3, load32(r1 + 3));
        MCC_RGB_GROUP(4, load16u(r1 + 7) | (uint32_t)load32(r2) << 16);
        MCC_RGB_GROUP(5, load32(r2 + 2));
        MCC_RGB_GROUP(6, load16u(r2 + 6) | (uint32_t)(uint8_t)r2[8] << 16);
#undef MCC_RGB_GROUP
    }
}
#endif

/* Where the outputs of pixel q go: the output, or with a residual the tile
 * (mcc_residual), residual_pixels of them; im2col_emitted adds the tile in
 * when it is full and after the last pixel. Pixels come in blocks of four
 * and pairs, then single ones at the end only, so a block never straddles
 * two fillings. */
static inline int8_t *im2col_out(const mcc_conv2d_im2col_params *p, int8_t *tile,
                                 int8_t *output, int32_t q)
{
    return tile != NULL ? tile + q % residual_pixels(p->out_c) * p->out_c : output + q * p->out_c;
}

static inline void im2col_emitted(const mcc_conv2d_im2col_params *p, const int8_t *tile,
                                  int8_t *output, int32_t q, int32_t n)
{
    const int32_t cap = residual_pixels(p->out_c), end = q + n;
    if (tile != NULL && (end % cap == 0 || end == p->batches * p->out_h * p->out_w)) {
        const int32_t held = (end - 1) % cap + 1;
        residual_add(&p->residual, tile, 0, held * p->out_c, output + (end - held) * p->out_c, 0,
                     1);
    }
}

/* row_block 2: two patches at a time on the stack, zero-padded to whole
 * depth groups (against the weights' zero padding), through gemm_rows2. */
static MCC_NOINLINE int im2col_stack_pairs(const mcc_conv2d_im2col_params *p,
                                           const int8_t *input, int8_t *output, int8_t *tile)
{
    const int32_t depth = p->filter_h * p->filter_w * p->in_c;
    const int32_t stride = 4 * groups_of(depth);
    const int32_t total = p->batches * p->out_h * p->out_w;
    if (stride > MCC_IM2COL_STACK_PATCH) {
        return MCC_ERROR;
    }
    uint32_t words[2 * MCC_IM2COL_STACK_PATCH / 4];
    int8_t *patches = (int8_t *)words;
    fill_s8(patches + depth, 0, stride - depth);
    fill_s8(patches + stride + depth, 0, stride - depth);
    int32_t b = 0, oy = 0, ox = 0;
    for (int32_t q = 0; q < total; q += 2) {
        const int32_t n = MCC_MIN(2, total - q);
        for (int32_t r = 0; r < n; ++r) {
            gather_patch(p, input, b, oy, ox, patches + r * stride);
            next_pixel(p, &b, &oy, &ox);
        }
        gemm_rows2(patches, n, stride, p->weights, p->channels, p->out_c,
                   im2col_out(p, tile, output, q));
        im2col_emitted(p, tile, output, q, n);
    }
    clamp_activation(output, total * p->out_c, p->act_min, p->act_max);
    return MCC_OK;
}

/* Blocks of four pixels widened directly into `block` (widens_directly),
 * then the last total % 4 pixels one by one, their int8 patch in the
 * block's bytes (depth is whole groups here). */
static void im2col_widened(const mcc_conv2d_im2col_params *p, const int8_t *input,
                           int8_t *output, void *block, int8_t *tile)
{
    const int32_t depth = p->filter_h * p->filter_w * p->in_c;
    const int32_t total = p->batches * p->out_h * p->out_w;
    int32_t b = 0, oy = 0, ox = 0;
    int32_t q = 0;
    for (; q + 4 <= total; q += 4) {
        const int8_t *first[4];
        const int inside = block_inside(p, input, b, oy, ox, first);
        if (inside) {
            gather_block_inside(p, first, (int8_t *)block, 4, 8, widen_s8);
        }
        for (int32_t r = 0; r < 4; ++r) {
            if (!inside) {
                gather_widened(p, input, b, oy, ox, block, r);
            }
            next_pixel(p, &b, &oy, &ox);
        }
        gemm_block4(block, groups_of(depth), p->weights, NULL, p->channels, p->out_c,
                    im2col_out(p, tile, output, q));
        im2col_emitted(p, tile, output, q, 4);
    }
    for (; q < total; ++q) {
        gather_patch(p, input, b, oy, ox, (int8_t *)block);
        next_pixel(p, &b, &oy, &ox);
        gemm_rows2((const int8_t *)block, 1, depth, p->weights, p->channels, p->out_c,
                   im2col_out(p, tile, output, q));
        im2col_emitted(p, tile, output, q, 1);
    }
}

/* Patches gathered as int8 (in_c % 4 != 0), then widened: with `blocks`,
 * four at a time into the block (scratch: the block, then the four int8
 * patches), the last total % 4 one by one; else one by one (scratch: one). */
static void im2col_patches(const mcc_conv2d_im2col_params *p, const int8_t *input,
                           int8_t *output, void *scratch, int blocks, int8_t *tile)
{
    const int32_t depth = p->filter_h * p->filter_w * p->in_c;
    const int32_t groups = groups_of(depth);
    const int32_t stride = 4 * groups;                 /* bytes per patch row */
    const int32_t total = p->batches * p->out_h * p->out_w;
    blocks = blocks && total >= 4;
#if MCC_CONV_DSP && IM2COL_RGB
    const int rgb = rgb3x3(p);
#else
    const int rgb = 0;      /* compiled out, or the portable block's other layout */
#endif
    int8_t *patches = (int8_t *)scratch + (blocks ? 32 * groups : 0);
    const int32_t n_rows = blocks ? 4 : 1;
    /* Bytes past the patch are never written by gather_patch: zero them once. */
    for (int32_t r = 0; r < n_rows; ++r) {
        fill_s8(patches + r * stride + depth, 0, stride - depth);
    }
    int32_t b = 0, oy = 0, ox = 0;
    int32_t q = 0;
    for (; q < total; ) {
        const int block = blocks && q + 4 <= total;
        const int32_t n = block ? 4 : 1;
        const int8_t *first[4];
        const int inside = block && block_inside(p, input, b, oy, ox, first);
        /* RGB first layers widen straight into the block (DSP targets). */
        const int widened = inside && rgb;
#if MCC_CONV_DSP && IM2COL_RGB
        if (widened) {
            widen_rgb3x3_block(p, first, (int32_t *)scratch);
        }
#endif
        if (inside && !widened) {
            gather_block_inside(p, first, patches, stride, 1, copy_s8);
        }
        for (int32_t r = 0; r < n; ++r) {
            if (!inside) {
                gather_patch(p, input, b, oy, ox, patches + r * stride);
            }
            next_pixel(p, &b, &oy, &ox);
        }
        int8_t *out = im2col_out(p, tile, output, q);
        if (block) {
            const int8_t *const rows[4] = {patches, patches + stride, patches + 2 * stride,
                                           patches + 3 * stride};
            if (!widened) {
                widen_rows4(rows, depth, scratch);
            }
            gemm_block4(scratch, groups, p->weights, NULL, p->channels, p->out_c, out);
        } else {
            /* The patch's bytes past depth are zero: whole groups. */
            gemm_rows2(patches, 1, stride, p->weights, p->channels, p->out_c, out);
        }
        im2col_emitted(p, tile, output, q, n);
        q += n;
    }
}

/* row_block 2 where blocks_bytes fits MCC_IM2COL_STACK_BLOCK: the blocks'
 * scratch on the stack. Not inlined, so that its frame and
 * im2col_stack_pairs' never add up. */
static MCC_NOINLINE void im2col_stack_blocks(const mcc_conv2d_im2col_params *p,
                                             const int8_t *input, int8_t *output, int widened,
                                             int8_t *tile)
{
    uint32_t words[MCC_IM2COL_STACK_BLOCK / 4];
    if (IM2COL_WIDENED && widened) {
        im2col_widened(p, input, output, words, tile);
    } else if (IM2COL_PATCHES) {
        im2col_patches(p, input, output, words, 1, tile);
    }
}

static int im2col_run(const mcc_conv2d_im2col_params *p, const int8_t *input, int8_t *output,
                      void *scratch, int8_t *tile);

/* With a residual: the tile in a frame of its own. */
static MCC_NOINLINE int im2col_residual(const mcc_conv2d_im2col_params *p, const int8_t *input,
                                        int8_t *output, void *scratch)
{
    uint32_t tile_words[MCC_RESIDUAL_TILE / 4];
    return im2col_run(p, input, output, scratch, (int8_t *)tile_words);
}

int mcc_conv2d_im2col_s8(const mcc_conv2d_im2col_params *p, const int8_t *input,
                         int8_t *output, void *scratch)
{
    if (p->residual.x_scaled == NULL) {
        return im2col_run(p, input, output, scratch, NULL);
    }
    return !RESIDUAL || p->out_c > MCC_RESIDUAL_MAX_C ? MCC_ERROR
                                                      : im2col_residual(p, input, output, scratch);
}

static int im2col_run(const mcc_conv2d_im2col_params *p, const int8_t *input, int8_t *output,
                      void *scratch, int8_t *tile)
{
    const int32_t total_px = p->batches * p->out_h * p->out_w;
    /* No scratch (row_block 2): blocks of four on the stack where they fit its
     * bound, else two patches at a time. */
    const int stack = p->row_block == 2;
    const int pairs = stack && blocks_bytes(p) > MCC_IM2COL_STACK_BLOCK;
    const int widened = !pairs && widens_directly(p) && (stack || (p->row_block == 4 && total_px >= 4));
    int omitted;
    if (pairs) {
        omitted = !IM2COL_STACK_PAIRS;
    } else if (widened) {
        omitted = !IM2COL_WIDENED;
    } else {
        omitted = !IM2COL_PATCHES;
    }
    if (omitted) {
        return MCC_ERROR;   /* compiled out: the generator saw no such layer */
    }
    if (IM2COL_STACK_PAIRS && pairs) {
        return im2col_stack_pairs(p, input, output, tile);
    }
    if (stack) {
        im2col_stack_blocks(p, input, output, widened, tile);
    } else if (IM2COL_WIDENED && widened) {
        im2col_widened(p, input, output, scratch, tile);
    } else if (IM2COL_PATCHES) {
        im2col_patches(p, input, output, scratch, p->row_block == 4, tile);
    }
    clamp_activation(output, total_px * p->out_c, p->act_min, p->act_max);
    return MCC_OK;
}

/* ------------------------------------------------------------ 3x3 bands */

/* A band column's rows: four output rows and the filter's two more, at
 * stride 1 (6) or 2 (9). */
static int32_t band_rows(const mcc_conv2d_band_params *p)
{
    return p->stride == 1 ? 6 : 9;
}

/* A column holds, for each input channel pair q, `rows` int16 pairs: the
 * band's input rows in order at stride 1, even rows then odd ones at stride
 * 2. Either way the taps of filter row dy for the four output rows are four
 * consecutive words, from slot dy (stride 1) or 0, 5, 1 for dy = 0, 1, 2. */
static int32_t band_slot(int32_t stride, int32_t j)
{
    return stride == 1 ? j : (j & 1 ? 5 + (j >> 1) : j >> 1);
}

/* A column: two int16 pairs per group of four input channels per row. */
static int32_t band_column_words(const mcc_conv2d_band_params *p)
{
    return 2 * groups_of(p->in_c) * band_rows(p);
}

/* n rows of one column, `step` bytes apart from x, into consecutive slots
 * from d (pair 0's word; pair q's are q * rows words on). Each group of four
 * input channels gives pairs 2g (channels 4g, 4g+2) and 2g+1 (4g+1, 4g+3);
 * channels past in_c, up to whole groups, are 0 (they meet zero weights). */
static void band_rows_widen(const mcc_conv2d_band_params *p, const int8_t *x, int32_t step,
                            int32_t n, int32_t *d)
{
    const int32_t rows = band_rows(p), groups = groups_of(p->in_c), rest = p->in_c & 3;
    for (int32_t g = 0; g < groups; ++g, x += 4, d += 2 * rows) {
        const int32_t have = rest && g == groups - 1 ? rest : 4;
        const int8_t *xr = x;
#if MCC_CONV_DSP
        int32_t *dr = d;
        if (have == 4) {
            for (int32_t k = 0; k < n; ++k, xr += step, ++dr) {
                const int32_t v = load32(xr);
                dr[0] = __sxtb16(v);
                dr[rows] = sxtb16_ror8(v);
            }
        } else {
            for (int32_t k = 0; k < n; ++k, xr += step, ++dr) {
                const int32_t v = load_partial(xr, have);
                dr[0] = __sxtb16(v);
                dr[rows] = sxtb16_ror8(v);
            }
        }
#else
        int16_t *dr = (int16_t *)(void *)d;
        for (int32_t k = 0; k < n; ++k, xr += step, dr += 2) {
            dr[0] = xr[0];
            dr[1] = have > 2 ? xr[2] : 0;
            dr[2 * rows] = have > 1 ? xr[1] : 0;
            dr[2 * rows + 1] = have > 3 ? xr[3] : 0;
        }
#endif
    }
}

/* Input column ix of the band whose rows j are input rows iy0 + j (inside
 * the image for lo <= j < hi), widened into col; pad_value elsewhere. */
static void band_column(const mcc_conv2d_band_params *p, const int8_t *image, int32_t iy0,
                        int32_t lo, int32_t hi, int32_t ix, int32_t *col)
{
    const int32_t rows = band_rows(p);
    const int outside = ix < 0 || ix >= p->in_w;
    if (outside || lo > 0 || hi < rows) {
        const int32_t words = band_column_words(p);
#if MCC_CONV_DSP
        const int32_t pad = (int32_t)((uint32_t)(uint16_t)p->pad_value * UINT32_C(0x10001));
        for (int32_t i = 0; i < words; ++i) {
            col[i] = pad;
        }
#else
        int16_t *h = (int16_t *)(void *)col;
        for (int32_t i = 0; i < 2 * words; ++i) {
            h[i] = (int16_t)p->pad_value;
        }
#endif
        if (outside) {
            return;
        }
    }
    const int32_t row_bytes = p->in_w * p->in_c;
    const int8_t *x = image + ix * p->in_c;
    if (p->stride == 1) {
        band_rows_widen(p, x + (iy0 + lo) * row_bytes, row_bytes, hi - lo, col + lo);
        return;
    }
    /* Even rows to slots 0..4, odd ones to 5..8 (band_slot). */
    for (int32_t odd = 0; odd < 2; ++odd) {
        const int32_t j = lo + ((lo & 1) != odd);
        if (j < hi) {
            band_rows_widen(p, x + (iy0 + j) * row_bytes, 2 * row_bytes, (hi - j + 1) / 2,
                            col + band_slot(2, j));
        }
    }
}

#if !MCC_CONV_ASM
/* One filter tap's weights (c0 a, c1 a, c0 b, c1 b) for channels (c0, c1)
 * and input channels (a, b): an int8 word, or the int16 pairs (c0 a, c0 b),
 * (c1 a, c1 b) where v is set (mcc_conv.h, wide_weights). The band runs in
 * C only on the host and with -DMCC_NO_ASM, so one test a tap is no cost. */
static inline void band_tap_weights(const int8_t **w, const int32_t **v, int32_t k[4])
{
    if (WIDE_WEIGHTS && *v != NULL) {
        const int32_t c0 = (*v)[0], c1 = (*v)[1];
        k[0] = MCC_LANE(c0, 0);
        k[1] = MCC_LANE(c1, 0);
        k[2] = MCC_LANE(c0, 1);
        k[3] = MCC_LANE(c1, 1);
        *v += 2;
    } else {
        for (int32_t i = 0; i < 4; ++i) {
            k[i] = (*w)[i];
        }
        *w += 4;
    }
}

/* band_tiles in C: each channel pair's four rows over the three columns. */
static void band_tiles_c(const mcc_conv2d_band_params *p, const int32_t *block, int8_t *o,
                         int32_t row_stride)
{
    const int32_t steps = 6 * groups_of(p->in_c), out_c = p->out_c;
    const int8_t *w = p->weights;
    const int32_t *v = p->wide_weights;
    for (int32_t c = 0; c < out_c; c += 2) {
        const int two = c + 1 < out_c;
        const int32_t *t0 = p->channels + 4 * c;
        const int32_t *t1 = t0 + 4 * two;   /* an odd last channel reads its own row */
        int32_t a00 = t0[0], a01 = t1[0], a10 = t0[0], a11 = t1[0];
        int32_t a20 = t0[0], a21 = t1[0], a30 = t0[0], a31 = t1[0];
        /* Lane L of slot S, read as band_column wrote it. */
#if MCC_CONV_DSP
        const int32_t *x = block;
#define MCC_BAND_LANE(S, L) ((int16_t)(x[S] >> (16 * (L))))
#define MCC_BAND_NEXT(ROWS) (x += (ROWS))
#else
        const int16_t *x = (const int16_t *)(const void *)block;
#define MCC_BAND_LANE(S, L) (x[2 * (S) + (L)])
#define MCC_BAND_NEXT(ROWS) (x += 2 * (ROWS))
#endif
        /* One filter row: its weight word against the four rows' pairs from
         * slot S (band_slot). */
#define MCC_BAND_TAP(S) do {                                                    \
            int32_t k_[4];                                                     \
            band_tap_weights(&w, &v, k_);                                      \
            const int32_t w0_ = k_[0], w1_ = k_[1], w2_ = k_[2], w3_ = k_[3];  \
            const int32_t x0_ = MCC_BAND_LANE((S), 0), y0_ = MCC_BAND_LANE((S), 1); \
            const int32_t x1_ = MCC_BAND_LANE((S) + 1, 0), y1_ = MCC_BAND_LANE((S) + 1, 1); \
            const int32_t x2_ = MCC_BAND_LANE((S) + 2, 0), y2_ = MCC_BAND_LANE((S) + 2, 1); \
            const int32_t x3_ = MCC_BAND_LANE((S) + 3, 0), y3_ = MCC_BAND_LANE((S) + 3, 1); \
            a00 += x0_ * w0_ + y0_ * w2_;                                      \
            a01 += x0_ * w1_ + y0_ * w3_;                                      \
            a10 += x1_ * w0_ + y1_ * w2_;                                      \
            a11 += x1_ * w1_ + y1_ * w3_;                                      \
            a20 += x2_ * w0_ + y2_ * w2_;                                      \
            a21 += x2_ * w1_ + y2_ * w3_;                                      \
            a30 += x3_ * w0_ + y3_ * w2_;                                      \
            a31 += x3_ * w1_ + y3_ * w3_;                                      \
        } while (0)
        /* The filter rows in weight order: dy = 1, 2, 0. */
        if (p->stride == 1) {
            for (int32_t i = 0; i < steps; ++i, MCC_BAND_NEXT(6)) {
                MCC_BAND_TAP(1);
                MCC_BAND_TAP(2);
                MCC_BAND_TAP(0);
            }
        } else {
            for (int32_t i = 0; i < steps; ++i, MCC_BAND_NEXT(9)) {
                MCC_BAND_TAP(5);
                MCC_BAND_TAP(1);
                MCC_BAND_TAP(0);
            }
        }
#undef MCC_BAND_TAP
#undef MCC_BAND_NEXT
#undef MCC_BAND_LANE
        requant_column(o + c, row_stride, a00, a10, a20, a30, t0);
        if (two) {
            requant_column(o + c + 1, row_stride, a01, a11, a21, a31, t1);
        }
    }
}
#endif

/* Every output channel of the four pixels at o (rows row_stride apart),
 * from the three input columns starting at block. */
static void band_tiles(const mcc_conv2d_band_params *p, const int32_t *block, int8_t *o,
                       int32_t row_stride)
{
#if MCC_CONV_ASM
    const int32_t steps = 6 * groups_of(p->in_c);
#if WIDE_WEIGHTS
    if (p->wide_weights != NULL) {
        tiles_4x2(p->stride == 1 ? mcc_band_s8w_4x2_s1_dsp : mcc_band_s8w_4x2_s2_dsp, block,
                  (const int8_t *)p->wide_weights, p->channels, o, steps, 24 * steps, row_stride,
                  p->out_c);
        return;
    }
#endif
    tiles_4x2(p->stride == 1 ? mcc_band_s8_4x2_s1_dsp : mcc_band_s8_4x2_s2_dsp, block, p->weights,
              p->channels, o, steps, 12 * steps, row_stride, p->out_c);
#else
    band_tiles_c(p, block, o, row_stride);
#endif
}

size_t mcc_conv2d_band_s8_scratch_bytes(const mcc_conv2d_band_params *p)
{
    return p->on_stack ? 0u : (size_t)p->columns * (size_t)band_column_words(p) * 4u;
}

/* With a residual (tile not NULL) the band's outputs go through the tile,
 * `group` columns at a time (a row of the tile is then one run of the
 * output row), and are added in; rows the moved-up last band computes again
 * are not added twice. */
static int band_run(const mcc_conv2d_band_params *p, const int8_t *input, int8_t *output,
                    int32_t *buffer, int8_t *tile)
{
    const int32_t s = p->stride, seg = band_column_words(p);
    const int32_t row_stride = p->out_w * p->out_c;
    const int32_t group = tile != NULL ? MCC_RESIDUAL_TILE / (4 * p->out_c) : 0;
    const int32_t tile_row = group * p->out_c;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *image = input + b * p->in_h * p->in_w * p->in_c;
        for (int32_t y = 0; y < p->out_h; y += 4) {
            const int32_t y0 = MCC_MIN(y, p->out_h - 4);
            const int32_t iy0 = y0 * s - p->pad_h;
            /* The band's rows inside the image. */
            const int32_t lo = MCC_MAX(0, -iy0), hi = MCC_MIN(band_rows(p), p->in_h - iy0);
            int8_t *o = output + (b * p->out_h + y0) * row_stride;
            /* The buffer holds band columns first .. first + filled - 1
             * (column c is input column c - pad_w). */
            int32_t first = 0, filled = 0, held = 0;
            for (int32_t x = 0; x < p->out_w; ++x, o += p->out_c) {
                const int32_t c0 = x * s;
                while (first + filled < c0 + 3) {
                    if (filled == p->columns) {
                        filled = first + filled - c0;
                        memmove(buffer, buffer + (c0 - first) * seg, (size_t)(filled * seg) * 4u);
                        first = c0;
                    }
                    band_column(p, image, iy0, lo, hi, first + filled - p->pad_w,
                                buffer + filled * seg);
                    ++filled;
                }
                if (tile == NULL) {
                    band_tiles(p, buffer + (c0 - first) * seg, o, row_stride);
                    continue;
                }
                band_tiles(p, buffer + (c0 - first) * seg, tile + held * p->out_c, tile_row);
                if (++held == group || x == p->out_w - 1) {
                    const int32_t done = y - y0;     /* rows added in by the band before */
                    residual_add(&p->residual, tile + done * tile_row, tile_row,
                                 held * p->out_c, o - (held - 1) * p->out_c + done * row_stride,
                                 row_stride, 4 - done);
                    held = 0;
                }
            }
        }
    }
    return MCC_OK;
}

/* on_stack: the buffer on the stack, in its own frame. */
static MCC_NOINLINE int band_on_stack(const mcc_conv2d_band_params *p, const int8_t *input,
                                      int8_t *output, int8_t *tile)
{
    int32_t words[MCC_BAND_STACK_BYTES / 4];
    return band_run(p, input, output, words, tile);
}

/* With a residual: the tile in a frame of its own. */
static MCC_NOINLINE int band_residual(const mcc_conv2d_band_params *p, const int8_t *input,
                                      int8_t *output, void *scratch)
{
    uint32_t tile_words[MCC_RESIDUAL_TILE / 4];
    int8_t *tile = (int8_t *)tile_words;
    return p->on_stack ? band_on_stack(p, input, output, tile)
                       : band_run(p, input, output, (int32_t *)scratch, tile);
}

int mcc_conv2d_band_s8(const mcc_conv2d_band_params *p, const int8_t *input, int8_t *output,
                       void *scratch)
{
    if ((p->stride != 1 && p->stride != 2) || p->out_h < 4 || p->columns < 3
        || (p->wide_weights != NULL && !WIDE_WEIGHTS)) {
        return MCC_ERROR;
    }
    if (p->on_stack && p->columns * band_column_words(p) * 4 > MCC_BAND_STACK_BYTES) {
        return MCC_ERROR;
    }
    int status;
    if (p->residual.x_scaled != NULL) {
        if (!RESIDUAL || p->out_c > MCC_RESIDUAL_MAX_C) {
            return MCC_ERROR;
        }
        status = band_residual(p, input, output, scratch);
    } else if (p->on_stack) {
        status = band_on_stack(p, input, output, NULL);
    } else {
        status = band_run(p, input, output, (int32_t *)scratch, NULL);
    }
    clamp_activation(output, p->batches * p->out_h * p->out_w * p->out_c, p->act_min,
                     p->act_max);
    return status;
}

/* --------------------------------------------------------- planar depthwise */

size_t mcc_depthwise_conv2d_planar_s8_scratch_bytes(const mcc_depthwise_conv2d_planar_params *p)
{
    return (size_t)p->group * (size_t)p->plane_h * (size_t)p->plane_w;
}

/* a, b, c, d: bytes 0..3 of four pixels (four channels each); t[k]: channel
 * k of the four pixels. Halves paired first (PKHBT/PKHTB), then bytes
 * (UXTB16); the portable form with shifts and masks. */
static inline void transpose4x4(uint32_t a, uint32_t b, uint32_t c, uint32_t d, uint32_t t[4])
{
#if MCC_CONV_DSP
    uint32_t ac01, bd01, ac23, bd23, u, v;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(ac01) : "r"(a), "r"(c));
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(bd01) : "r"(b), "r"(d));
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(ac23) : "r"(c), "r"(a));
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(bd23) : "r"(d), "r"(b));
    t[0] = __uxtb16(ac01) | (__uxtb16(bd01) << 8);
    __asm__("uxtb16 %0, %1, ror #8" : "=r"(u) : "r"(ac01));
    t[1] = u | (bd01 & UINT32_C(0xFF00FF00));
    t[2] = __uxtb16(ac23) | (__uxtb16(bd23) << 8);
    __asm__("uxtb16 %0, %1, ror #8" : "=r"(v) : "r"(ac23));
    t[3] = v | (bd23 & UINT32_C(0xFF00FF00));
#else
    const uint32_t m = UINT32_C(0x00FF00FF);
    const uint32_t ac01 = (a & 0xFFFFu) | (c << 16);            /* a0 a1 c0 c1 */
    const uint32_t bd01 = (b & 0xFFFFu) | (d << 16);            /* b0 b1 d0 d1 */
    const uint32_t ac23 = (a >> 16) | (c & 0xFFFF0000u);        /* a2 a3 c2 c3 */
    const uint32_t bd23 = (b >> 16) | (d & 0xFFFF0000u);        /* b2 b3 d2 d3 */
    t[0] = (ac01 & m) | ((bd01 & m) << 8);
    t[1] = ((ac01 >> 8) & m) | (bd01 & ~m);
    t[2] = (ac23 & m) | ((bd23 & m) << 8);
    t[3] = ((ac23 >> 8) & m) | (bd23 & ~m);
#endif
}

/* Copy channels c0..c0+n-1 of batch b into the interiors of their planes,
 * row by row, four channels at a time where there are four. The borders
 * hold the pad value from planar_run and are never written here. */
static void fill_planes(const mcc_depthwise_conv2d_planar_params *p, const int8_t *input,
                        int32_t b, int32_t c0, int32_t n, int8_t *planes)
{
    const int32_t pw = p->plane_w;
    const int32_t plane = p->plane_h * pw;
    const int32_t in_c = p->in_c;
    /* Locals: the int8 stores may alias *p, which would be reloaded after each. */
    const int32_t in_h = p->in_h, in_w = p->in_w;
    const int8_t *base = input + (size_t)b * in_h * in_w * in_c + c0;
    int32_t j = 0;
    /* Four channels by four pixels at a time: four word loads, a 4x4 byte
     * transpose, four word stores (one per plane). */
    for (; j + 4 <= n; j += 4) {
        int8_t *dst = planes + j * plane + p->pad_h * pw + p->pad_w;
        const int8_t *src = base + j;
        for (int32_t y = 0; y < in_h; ++y, dst += pw) {
            int32_t x = 0;
            for (; x + 4 <= in_w; x += 4, src += 4 * in_c) {
                uint32_t t[4];
                transpose4x4((uint32_t)load32(src), (uint32_t)load32(src + in_c),
                             (uint32_t)load32(src + 2 * in_c), (uint32_t)load32(src + 3 * in_c), t);
                memcpy(dst + x, &t[0], 4);
                memcpy(dst + plane + x, &t[1], 4);
                memcpy(dst + 2 * plane + x, &t[2], 4);
                memcpy(dst + 3 * plane + x, &t[3], 4);
            }
            for (; x < in_w; ++x, src += in_c) {
                dst[x] = src[0];
                dst[plane + x] = src[1];
                dst[2 * plane + x] = src[2];
                dst[3 * plane + x] = src[3];
            }
        }
    }
    if (in_c == 1 && j < n) {
        /* One channel (a first layer): the input rows are the plane's rows. */
        int8_t *dst = planes + p->pad_h * pw + p->pad_w;
        for (int32_t y = 0; y < in_h; ++y, dst += pw) {
            memcpy(dst, base + y * in_w, (size_t)in_w);
        }
        return;
    }
    for (; j < n; ++j) {
        int8_t *dst = planes + j * plane + p->pad_h * pw + p->pad_w;
        const int8_t *src = base + j;
        for (int32_t y = 0; y < in_h; ++y, dst += pw, src += in_w * in_c) {
            gather_s8(dst, src, in_w, in_c);
        }
    }
}

#if !MCC_CONV_DSP
/* Two outputs of the portable 3x3 loop, `step` plane bytes apart (the
 * stride): the taps both windows read are loaded once (GCC merges the
 * loads), 12 loads of the plane at stride 1 instead of 18, 15 at stride 2. */
static MCC_ALWAYS_INLINE void dw3x3_two_c(const int8_t *r, const int8_t *w, int32_t pw,
                                          int32_t step, chan_row k, int8_t *o, int32_t out_c)
{
    int32_t a0 = k.bias, a1 = k.bias;
    /* Tap J of filter row I (4 weight bytes a row), over the plane row at S;
     * unrolled, as a loop its counter would cost what the merged loads save. */
#define MCC_DW3_TAP(S, I, J) do {                                              \
        const int32_t w_ = w[4 * (I) + (J)];                                   \
        a0 += (S)[(J)] * w_;                                                   \
        a1 += (S)[(J) + step] * w_;                                            \
    } while (0)
#define MCC_DW3_ROW(S, I) MCC_DW3_TAP(S, I, 0); MCC_DW3_TAP(S, I, 1); MCC_DW3_TAP(S, I, 2)
    MCC_DW3_ROW(r, 0);
    MCC_DW3_ROW(r + pw, 1);
    MCC_DW3_ROW(r + 2 * pw, 2);
#undef MCC_DW3_ROW
#undef MCC_DW3_TAP
    o[0] = fast_requant(a0, k.mult, k.hib, k.post);
    o[out_c] = fast_requant(a1, k.mult, k.hib, k.post);
}
#endif

#if !MCC_CONV_DSP
/* A 2x2 block of the portable 3x3 loop at stride 1: outputs (y, x), (y, x+1)
 * at o, (y+1, x), (y+1, x+1) out_row bytes after. The four windows' 16 plane
 * bytes are loaded once (GCC merges the loads) for 36 products: 24.5
 * instructions per output on the M3, 30 in pairs. */
static MCC_ALWAYS_INLINE void dw3x3_quad_c(const int8_t *r, const int8_t *w, int32_t pw,
                                           chan_row k, int8_t *o, int32_t out_c,
                                           int32_t out_row)
{
    int32_t a00 = k.bias, a01 = k.bias, a10 = k.bias, a11 = k.bias;
#define MCC_DW3_TAP(I, J) do {                                                 \
        const int32_t w_ = w[4 * (I) + (J)];                                   \
        const int8_t *s_ = r + (I) * pw + (J);                                 \
        a00 += s_[0] * w_;                                                     \
        a01 += s_[1] * w_;                                                     \
        a10 += s_[pw] * w_;                                                    \
        a11 += s_[pw + 1] * w_;                                                \
    } while (0)
#define MCC_DW3_ROW(I) MCC_DW3_TAP(I, 0); MCC_DW3_TAP(I, 1); MCC_DW3_TAP(I, 2)
    MCC_DW3_ROW(0);
    MCC_DW3_ROW(1);
    MCC_DW3_ROW(2);
#undef MCC_DW3_ROW
#undef MCC_DW3_TAP
    o[0] = fast_requant(a00, k.mult, k.hib, k.post);
    o[out_c] = fast_requant(a01, k.mult, k.hib, k.post);
    o[out_row] = fast_requant(a10, k.mult, k.hib, k.post);
    o[out_row + out_c] = fast_requant(a11, k.mult, k.hib, k.post);
}
#endif

/* One output channel of a 3x3 filter: every output pixel of the plane. */
static void dw3x3_channel(const mcc_depthwise_conv2d_planar_params *p, const int8_t *plane,
                          const int8_t *w, chan_row k, int8_t *out)
{
    /* Locals, not p->...: the int8 output stores may alias *p as far as the
     * compiler knows, and it would reload every field after each store. */
    const int32_t pw = p->plane_w;
    const int32_t out_c = p->out_c;
    const int32_t ow = p->out_w;
    const int32_t oh = p->out_h;
    const int32_t sw = p->stride_w;
    const int32_t row_step = p->stride_h * pw;
#if MCC_CONV_DSP
    /* Filter row i as the int16 pair e_i = (w_i0, w_i2); the middle taps
     * packed two to a register, (w_01, w_11) and (w_21, -), to keep the
     * loops below out of the stack. The weights are doubled here, once per
     * channel, so the accumulators hold 2 * acc (fast_requant_doubled). */
    const int32_t v0 = load32(w), v1 = load32(w + 4), v2 = load32(w + 8);
    int32_t e0 = __sxtb16(v0), e1 = __sxtb16(v1), e2 = __sxtb16(v2);
    int32_t m01 = pkhbt(sxtb16_ror8(v0), sxtb16_ror8(v1) << 16);
    int32_t m2 = sxtb16_ror8(v2);
    e0 = __sadd16(e0, e0);
    e1 = __sadd16(e1, e1);
    e2 = __sadd16(e2, e2);
    m01 = __sadd16(m01, m01);
    m2 = __sadd16(m2, m2);
    const int32_t bias2 = 2 * k.bias;
#if MCC_CONV_ASM
    /* The whole channel in assembly: rows, the odd column, at stride 1 the
     * rows two at a time. */
    const int32_t x_pairs = (ow & ~1) * sw;
    dw_pair_consts kc = {{bias2, bias2}, k.mult, k.hib, k.post, out_c, plane + x_pairs, pw,
                         e0, e1, e2, m01, m2, row_step - x_pairs, row_step,
                         out + oh * ow * out_c, ow & 1};
    if (sw != 1) {
#if PLANAR_S2
        mcc_dw3x3_s8_pairs_s2_dsp(plane, out, &kc);
#endif
        return;
    }
    if (row_step != pw) {           /* stride_h 2 or more: row by row */
        mcc_dw3x3_s8_pairs_dsp(plane, out, &kc);
        return;
    }
    /* Stride 1: pairs of rows in 2x2 blocks, an odd last row in pairs. */
    const int32_t out_row = ow * out_c;
    const int32_t row_pairs = oh >> 1;
    if (row_pairs) {
        const dw_quad_consts qc = {{bias2, bias2}, k.mult, k.hib, out_c, out_row,
                                   plane + x_pairs, pw, 2 * pw - x_pairs,
                                   out + 2 * row_pairs * out_row, ow & 1,
                                   e0, e1, e2, m01,
                                   pkhbt(k.post, (int32_t)((uint32_t)m2 << 16))};
        mcc_dw3x3_s8_quads_dsp(plane, out, &qc);
    }
    if (oh & 1) {
        const int8_t *last = plane + (oh - 1) * pw;
        kc.end = last + x_pairs;
        mcc_dw3x3_s8_pairs_dsp(last, out + (oh - 1) * out_row, &kc);
    }
    return;
#endif
#endif
    const int8_t *r0 = plane;
    int8_t *o = out;
    int32_t oy = 0;
#if !MCC_CONV_DSP
    if (sw == 1 && row_step == pw) {
        /* Stride 1: two output rows at a time in 2x2 blocks, an odd last
         * column as a pair of rows; an odd last row below. */
        const int32_t out_row = ow * out_c;
        for (; oy + 2 <= oh; oy += 2, r0 += 2 * pw, o += out_row) {
            const int8_t *r = r0;
            int32_t x = 0;
            for (; x + 2 <= ow; x += 2, r += 2, o += 2 * out_c) {
                dw3x3_quad_c(r, w, pw, k, o, out_c, out_row);
            }
            if (x < ow) {
                dw3x3_two_c(r, w, pw, pw, k, o, out_row);
                o += out_c;
            }
        }
    }
#endif
    for (; oy < oh; ++oy, r0 += row_step) {
        int32_t x = 0;
#if MCC_CONV_DSP
        const int8_t *r = r0;
        if (sw == 1) {
            /* Two outputs per step: taps t0..t3 of each row as E = (t0, t2),
             * O = (t1, t3); out0 = t0 w0 + t1 w1 + t2 w2, out1 = t1 w0 + t2 w1 + t3 w2. */
            for (; x + 2 <= ow; x += 2, o += 2 * out_c, r += 2) {
                int32_t a0 = bias2, a1 = bias2;
                int32_t t = load32(r);
                int32_t E = __sxtb16(t), O = sxtb16_ror8(t);
                a0 = __smlad(E, e0, a0); a0 = __smlabb(O, m01, a0);
                a1 = __smlad(O, e0, a1); a1 = __smlatb(E, m01, a1);
                t = load32(r + pw);
                E = __sxtb16(t); O = sxtb16_ror8(t);
                a0 = __smlad(E, e1, a0); a0 = __smlabt(O, m01, a0);
                a1 = __smlad(O, e1, a1); a1 = __smlatt(E, m01, a1);
                t = load32(r + 2 * pw);
                E = __sxtb16(t); O = sxtb16_ror8(t);
                a0 = __smlad(E, e2, a0); a0 = __smlabb(O, m2, a0);
                a1 = __smlad(O, e2, a1); a1 = __smlatb(E, m2, a1);
                o[0] = fast_requant_doubled(a0, k.mult, k.hib, k.post);
                o[out_c] = fast_requant_doubled(a1, k.mult, k.hib, k.post);
            }
        } else if (PLANAR_S2) {
            /* Stride 2, two outputs per step: taps t0..t4 of each row;
             * out0 = (t0, t2).e + t1 w1, out1 = (t4, t2) x e + t3 w1 (SMLADX). */
            for (; x + 2 <= ow; x += 2, o += 2 * out_c, r += 4) {
                int32_t a0 = bias2, a1 = bias2;
                int32_t t = load32(r);
                int32_t E = __sxtb16(t), O = sxtb16_ror8(t);
                a0 = __smlad(E, e0, a0); a0 = __smlabb(O, m01, a0);
                a1 = __smladx(pkhbt(r[4], E), e0, a1); a1 = __smlatb(O, m01, a1);
                t = load32(r + pw);
                E = __sxtb16(t); O = sxtb16_ror8(t);
                a0 = __smlad(E, e1, a0); a0 = __smlabt(O, m01, a0);
                a1 = __smladx(pkhbt(r[pw + 4], E), e1, a1); a1 = __smlatt(O, m01, a1);
                t = load32(r + 2 * pw);
                E = __sxtb16(t); O = sxtb16_ror8(t);
                a0 = __smlad(E, e2, a0); a0 = __smlabb(O, m2, a0);
                a1 = __smladx(pkhbt(r[2 * pw + 4], E), e2, a1); a1 = __smlatb(O, m2, a1);
                o[0] = fast_requant_doubled(a0, k.mult, k.hib, k.post);
                o[out_c] = fast_requant_doubled(a1, k.mult, k.hib, k.post);
            }
        }
        if (x < ow) {
            /* The odd last column. */
            int32_t a = bias2;
            int32_t t = load32(r);
            a = __smlad(__sxtb16(t), e0, a); a = __smlabb(sxtb16_ror8(t), m01, a);
            t = load32(r + pw);
            a = __smlad(__sxtb16(t), e1, a); a = __smlabt(sxtb16_ror8(t), m01, a);
            t = load32(r + 2 * pw);
            a = __smlad(__sxtb16(t), e2, a); a = __smlabb(sxtb16_ror8(t), m2, a);
            o[0] = fast_requant_doubled(a, k.mult, k.hib, k.post);
            o += out_c;
        }
#else
        const int8_t *r = r0;
        if (sw == 1) {      /* constant steps, so the shared loads merge */
            for (; x + 2 <= ow; x += 2, o += 2 * out_c, r += 2) {
                dw3x3_two_c(r, w, pw, 1, k, o, out_c);
            }
        } else if (sw == 2) {
            for (; x + 2 <= ow; x += 2, o += 2 * out_c, r += 4) {
                dw3x3_two_c(r, w, pw, 2, k, o, out_c);
            }
        }
        for (; x < ow; ++x, o += out_c, r += sw) {
            const int8_t *s = r + pw, *u = r + 2 * pw;
            const int32_t a = k.bias + r[0] * w[0] + r[1] * w[1] + r[2] * w[2]
                            + s[0] * w[4] + s[1] * w[5] + s[2] * w[6]
                            + u[0] * w[8] + u[1] * w[9] + u[2] * w[10];
            o[0] = fast_requant(a, k.mult, k.hib, k.post);
        }
#endif
    }
}

#if MCC_CONV_DSP
/* One filter row of up to 7 taps as four doubled int16 pairs, from its 8
 * weight bytes (w7 = 0): a = (w0, w2), b = (w1, w3), c = (w4, w6), d = (w5, 0). */
typedef struct {
    int32_t a, b, c, d;
} dw_row_pairs;

/* One output's row: taps t0..t7 of one word pair, E = (t0, t2) (t4, t6) and
 * O = (t1, t3) (t5, t7) as SXTB16 splits them. */
static inline int32_t dw_row_one(const int8_t *r, const dw_row_pairs *k, int32_t acc)
{
    const int32_t t0 = load32(r), t1 = load32(r + 4);
    acc = __smlad(__sxtb16(t0), k->a, acc);
    acc = __smlad(sxtb16_ror8(t0), k->b, acc);
    acc = __smlad(__sxtb16(t1), k->c, acc);
    return __smlad(sxtb16_ror8(t1), k->d, acc);
}
#endif

#if MCC_CONV_ASM
typedef void dw_wide_fn(const int8_t *r, int8_t *o, const dw_wide_consts *k);

#if PLANAR_WIDE_S2
#define WIDE_S2_OR_NULL(fn) fn
#else
#define WIDE_S2_OR_NULL(fn) NULL
#endif

/* The loops of four and of two outputs for a stride and width, NULL where
 * the library was built without them (the generator saw no such layer). */
static dw_wide_fn *wide_quads(int32_t sw, int narrow)
{
    if (narrow) {
        return sw == 1 ? mcc_dw_wide5_s8_quads_dsp : WIDE_S2_OR_NULL(mcc_dw_wide5_s8_quads_s2_dsp);
    }
#if PLANAR_WIDE7
    return sw == 1 ? mcc_dw_wide_s8_quads_dsp : WIDE_S2_OR_NULL(mcc_dw_wide_s8_quads_s2_dsp);
#else
    return NULL;
#endif
}

static dw_wide_fn *wide_pairs(int32_t sw, int narrow)
{
    if (sw == 1) {
        return mcc_dw_wide_s8_pairs_dsp;
    }
    if (narrow) {
        return WIDE_S2_OR_NULL(mcc_dw_wide5_s8_pairs_s2_dsp);
    }
#if PLANAR_WIDE7
    return WIDE_S2_OR_NULL(mcc_dw_wide_s8_pairs_s2_dsp);
#else
    return NULL;
#endif
}
#undef WIDE_S2_OR_NULL
#endif

#if !MCC_CONV_DSP
/* Two outputs of the portable wide loop, `step` plane bytes apart (the
 * stride), each row's taps unrolled: a byte both windows read is loaded once
 * (GCC merges the loads). Filters up to 5 wide take five taps, the rest seven
 * (the weights past filter_w are 0, and the plane holds 8 bytes past each
 * window's start). About 2.5 instructions per MAC on the M3, 6 tap by tap. */
static MCC_ALWAYS_INLINE void dw_wide_two_c(const int8_t *r, const int8_t *w, int32_t fh,
                                            int32_t pw, int32_t step, int32_t fw, chan_row k,
                                            int8_t *o, int32_t out_c)
{
    int32_t a0 = k.bias, a1 = k.bias;
#define MCC_WIDE_TAP(J) do {                                                   \
        const int32_t w_ = w[(J)];                                             \
        a0 += r[(J)] * w_;                                                     \
        a1 += r[(J) + step] * w_;                                              \
    } while (0)
    for (int32_t ky = 0; ky < fh; ++ky, r += pw, w += 8) {
        MCC_WIDE_TAP(0);
        MCC_WIDE_TAP(1);
        MCC_WIDE_TAP(2);
        MCC_WIDE_TAP(3);
        MCC_WIDE_TAP(4);
        if (fw > 5) {
            MCC_WIDE_TAP(5);
            MCC_WIDE_TAP(6);
        }
    }
#undef MCC_WIDE_TAP
    o[0] = fast_requant(a0, k.mult, k.hib, k.post);
    o[out_c] = fast_requant(a1, k.mult, k.hib, k.post);
}
#endif

/* One output channel of any other filter (rows of 8 weight bytes, at most 7 taps). */
static void dw_wide_channel(const mcc_depthwise_conv2d_planar_params *p, const int8_t *plane,
                            const int8_t *w, chan_row k, int8_t *out)
{
    const int32_t pw = p->plane_w;
    const int32_t out_c = p->out_c;
    const int32_t ow = p->out_w;
    const int32_t oh = p->out_h;
    const int32_t fh = p->filter_h;
    const int32_t sw = p->stride_w;
    const int32_t row_step = p->stride_h * pw;
    const int8_t *r0 = plane;
    int8_t *o = out;
#if MCC_CONV_DSP
    /* The channel's weights split into int16 pairs once, doubled so the
     * accumulators hold 2 * acc (fast_requant_doubled); a pass over the plane
     * then reads each row's pairs with two LDRDs. */
    dw_row_pairs wk[MCC_PLANAR_MAX_FILTER_H];
    for (int32_t ky = 0; ky < fh; ++ky) {
        const int32_t v0 = load32(w + 8 * ky), v1 = load32(w + 8 * ky + 4);
        wk[ky].a = __sadd16(__sxtb16(v0), __sxtb16(v0));
        wk[ky].b = __sadd16(sxtb16_ror8(v0), sxtb16_ror8(v0));
        wk[ky].c = __sadd16(__sxtb16(v1), __sxtb16(v1));
        wk[ky].d = __sadd16(sxtb16_ror8(v1), sxtb16_ror8(v1));
    }
    const dw_row_pairs *const wend = wk + fh;
    const int32_t bias2 = 2 * k.bias;
#if MCC_CONV_ASM
    /* Four outputs a step, then a pair. Filters up to 5 wide (w5 = w6 = 0)
     * take shorter loops. */
    const int narrow = p->filter_w <= 5;
    dw_wide_fn *const quads_fn = wide_quads(sw, narrow), *const pairs_fn = wide_pairs(sw, narrow);
    const int32_t quads = quads_fn != NULL ? ow >> 2 : 0;
    const int32_t rest = (ow - 4 * quads) >> 1;
    dw_wide_consts kc = {bias2, k.mult, k.hib, k.post, out_c, NULL, pw,
                         (const int32_t *)wk, (const int32_t *)wend};
#endif
    for (int32_t oy = 0; oy < oh; ++oy, r0 += row_step) {
        int32_t x = 0;
#if MCC_CONV_ASM
        if (quads) {
            kc.end = r0 + 4 * sw * quads;
            quads_fn(r0, o, &kc);
            x = 4 * quads;
            o += 4 * quads * out_c;
        }
        if (rest && pairs_fn != NULL) {
            const int8_t *r = r0 + x * sw;
            kc.end = r + 2 * sw * rest;
            pairs_fn(r, o, &kc);
            x += 2 * rest;
            o += 2 * rest * out_c;
        }
#else
        const int32_t pairs = ow >> 1;
        if (sw == 1) {
            /* Two outputs a step from one word pair per row: out1's taps are
             * out0's moved by one, (t2, t4) pairs with (w1, w3) through SMLADX
             * of (t4, t2), t6 w5 alone (as mcc_dw_wide_s8_pairs_dsp). */
            for (; x < 2 * pairs; x += 2, o += 2 * out_c) {
                const int8_t *r = r0 + x;
                int32_t a0 = bias2, a1 = bias2;
                for (const dw_row_pairs *kr = wk; kr < wend; ++kr, r += pw) {
                    const int32_t t0 = load32(r), t1 = load32(r + 4);
                    const int32_t E0 = __sxtb16(t0), O0 = sxtb16_ror8(t0);
                    const int32_t E1 = __sxtb16(t1), O1 = sxtb16_ror8(t1);
                    a0 = __smlad(E0, kr->a, a0); a0 = __smlad(O0, kr->b, a0);
                    a0 = __smlad(E1, kr->c, a0); a0 = __smlad(O1, kr->d, a0);
                    a1 = __smlad(O0, kr->a, a1); a1 = __smladx(pkhbt(E1, E0), kr->b, a1);
                    a1 = __smlad(O1, kr->c, a1); a1 = __smlatb(E1, kr->d, a1);
                }
                o[0] = fast_requant_doubled(a0, k.mult, k.hib, k.post);
                o[out_c] = fast_requant_doubled(a1, k.mult, k.hib, k.post);
            }
        } else if (PLANAR_WIDE_S2 && sw == 2) {
            /* Two outputs a step, out1's taps out0's moved by two (as
             * mcc_dw_wide_s8_pairs_s2_dsp); t8 read as a byte. */
            for (; x < 2 * pairs; x += 2, o += 2 * out_c) {
                const int8_t *r = r0 + 2 * x;
                int32_t a0 = bias2, a1 = bias2;
                for (const dw_row_pairs *kr = wk; kr < wend; ++kr, r += pw) {
                    const int32_t t0 = load32(r), t1 = load32(r + 4);
                    const int32_t E0 = __sxtb16(t0), O0 = sxtb16_ror8(t0);
                    const int32_t E1 = __sxtb16(t1), O1 = sxtb16_ror8(t1);
                    a0 = __smlad(E0, kr->a, a0); a0 = __smlad(O0, kr->b, a0);
                    a0 = __smlad(E1, kr->c, a0); a0 = __smlad(O1, kr->d, a0);
                    a1 = __smladx(pkhbt(E1, E0), kr->a, a1);
                    a1 = __smladx(pkhbt(O1, O0), kr->b, a1);
                    a1 = __smladx(pkhbt(r[8], E1), kr->c, a1);
                    a1 = __smlatb(O1, kr->d, a1);
                }
                o[0] = fast_requant_doubled(a0, k.mult, k.hib, k.post);
                o[out_c] = fast_requant_doubled(a1, k.mult, k.hib, k.post);
            }
        }
#endif
        for (; x < ow; ++x, o += out_c) {
            const int8_t *r = r0 + x * sw;
            int32_t a = bias2;
            for (const dw_row_pairs *kr = wk; kr < wend; ++kr, r += pw) {
                a = dw_row_one(r, kr, a);
            }
            o[0] = fast_requant_doubled(a, k.mult, k.hib, k.post);
        }
    }
#else
    const int32_t fw = p->filter_w;
    for (int32_t oy = 0; oy < oh; ++oy, r0 += row_step) {
        int32_t x = 0;
        if (sw == 1) {
            for (; x + 2 <= ow; x += 2, o += 2 * out_c) {
                dw_wide_two_c(r0 + x, w, fh, pw, 1, fw, k, o, out_c);
            }
        } else if (sw == 2) {
            for (; x + 2 <= ow; x += 2, o += 2 * out_c) {
                dw_wide_two_c(r0 + 2 * x, w, fh, pw, 2, fw, k, o, out_c);
            }
        }
        for (; x < ow; ++x, o += out_c) {
            const int8_t *r = r0 + x * sw;
            int32_t a = k.bias;
            for (int32_t ky = 0; ky < fh; ++ky, r += pw) {
                for (int32_t kx = 0; kx < fw; ++kx) {
                    a += r[kx] * w[8 * ky + kx];
                }
            }
            o[0] = fast_requant(a, k.mult, k.hib, k.post);
        }
    }
#endif
}

/* One output channel over its padded plane (dw3x3_channel or dw_wide_channel). */
typedef void (*planar_channel)(const mcc_depthwise_conv2d_planar_params *p, const int8_t *plane,
                               const int8_t *w, chan_row k, int8_t *out);

/* The driver both entry points share. The channel loop is passed in, not
 * chosen from the filter here, so a model links only the loops it uses. */
static int planar_run(const mcc_depthwise_conv2d_planar_params *p, const int8_t *input,
                      int8_t *output, void *scratch, planar_channel channel, int32_t row_bytes)
{
    int8_t *planes = (int8_t *)scratch;
    const int32_t plane = p->plane_h * p->plane_w;
    const int32_t m = p->depth_multiplier;
    const int32_t filter_bytes = p->filter_h * row_bytes;
    const int32_t out_plane = p->out_h * p->out_w * p->out_c;
    /* Every plane's border is the pad value, once: each pass rewrites only
     * the interiors (word stores: plane_w is a multiple of 4, scratch word
     * aligned). */
    const uint32_t pad = splat_s8(p->pad_value);
    uint32_t *words = (uint32_t *)scratch;
    const int32_t nw = MCC_MIN(p->group, p->in_c) * plane / 4;
    int32_t i = 0;
    for (; i + 4 <= nw; i += 4) {   /* four words a step: small planes fill often */
        words[i] = words[i + 1] = words[i + 2] = words[i + 3] = pad;
    }
    for (; i < nw; ++i) {
        words[i] = pad;
    }
    for (int32_t b = 0; b < p->batches; ++b) {
        int8_t *out_b = output + b * out_plane;
        for (int32_t c0 = 0; c0 < p->in_c; c0 += p->group) {
            const int32_t n = MCC_MIN(p->group, p->in_c - c0);
            fill_planes(p, input, b, c0, n, planes);
            for (int32_t j = 0; j < n; ++j) {
                for (int32_t k = 0; k < m; ++k) {
                    const int32_t oc = (c0 + j) * m + k;
                    channel(p, planes + j * plane, p->weights + oc * filter_bytes,
                            chan_at(p->channels, oc), out_b + oc);
                }
            }
        }
    }
    clamp_activation(output, p->batches * out_plane, p->act_min, p->act_max);
    return MCC_OK;
}

/* group 0: as many planes as fit in a stack buffer instead of scratch, whole
 * fours when there are four (fill_planes transposes four channels at a time).
 * A plane bigger than the buffer runs in strips of output rows, each a
 * depthwise convolution of its own over the input rows it reads: four
 * channels at a time where a strip of two rows fits, else one. Without the
 * strips a big layer at the memory peak took the general kernel, at about
 * 22 instructions per MAC (MobileNetV2-96's 48x48x48 stride-2 layer). */
static MCC_NOINLINE int planar_on_stack(const mcc_depthwise_conv2d_planar_params *p,
                                        const int8_t *input, int8_t *output,
                                        planar_channel channel, int32_t row_bytes)
{
    uint32_t planes[MCC_PLANAR_STACK_PLANE / 4];
    mcc_depthwise_conv2d_planar_params fit = *p;
    const int32_t pw = p->plane_w, fh = p->filter_h, sh = p->stride_h;
    if (p->plane_h * pw <= MCC_PLANAR_STACK_PLANE) {
        fit.group = MCC_MIN(p->in_c, MCC_PLANAR_STACK_PLANE / (p->plane_h * pw));
        if (fit.group >= 4) {
            fit.group &= ~3;    /* whole fours, as planar_group in conv.py */
        }
        return planar_run(&fit, input, output, planes, channel, row_bytes);
    }
    fit.group = p->in_c >= 4 && 4 * (fh + sh) * pw <= MCC_PLANAR_STACK_PLANE ? 4 : 1;
    const int32_t strip = (MCC_PLANAR_STACK_PLANE / (fit.group * pw) - fh) / sh + 1;
    if (strip < 1) {
        return MCC_ERROR;       /* conv.py planar_stack_fits: never chosen */
    }
    const int32_t in_row = p->in_w * p->in_c, out_row = p->out_w * p->out_c;
    fit.batches = 1;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + (size_t)b * p->in_h * in_row;
        int8_t *out_b = output + (size_t)b * p->out_h * out_row;
        for (int32_t oy = 0; oy < p->out_h; oy += strip) {
            const int32_t rows = MCC_MIN(strip, p->out_h - oy);
            const int32_t top = oy * sh - p->pad_h;     /* first input row read, maybe padding */
            const int32_t r0 = MCC_MAX(top, 0);
            const int32_t r1 = MCC_MIN(p->in_h, top + (rows - 1) * sh + fh);
            fit.pad_h = r0 - top;
            fit.in_h = MCC_MAX(r1 - r0, 0);
            fit.out_h = rows;
            fit.plane_h = (rows - 1) * sh + fh;
            const int status = planar_run(&fit, in_b + (size_t)r0 * in_row, out_b + (size_t)oy * out_row,
                                          planes, channel, row_bytes);
            if (status != MCC_OK) {
                return status;
            }
        }
    }
    return MCC_OK;
}

int mcc_depthwise_conv2d_planar_3x3_s8(const mcc_depthwise_conv2d_planar_params *p,
                                       const int8_t *input, int8_t *output, void *scratch)
{
    if (!PLANAR_S2 && p->stride_w != 1) {
        return MCC_ERROR;   /* compiled out: the generator saw no such layer */
    }
    if (p->group == 0) {
        return planar_on_stack(p, input, output, dw3x3_channel, 4);
    }
    return planar_run(p, input, output, scratch, dw3x3_channel, 4);
}

int mcc_depthwise_conv2d_planar_s8(const mcc_depthwise_conv2d_planar_params *p,
                                   const int8_t *input, int8_t *output, void *scratch)
{
    if (p->filter_h > MCC_PLANAR_MAX_FILTER_H) {
        return MCC_ERROR;   /* conv.py _planar: never chosen */
    }
    if ((!PLANAR_WIDE_S2 && p->stride_w != 1) || (!PLANAR_WIDE7 && p->filter_w > 5)) {
        return MCC_ERROR;   /* compiled out: the generator saw no such layer */
    }
    if (p->group == 0) {
        return planar_on_stack(p, input, output, dw_wide_channel, 8);
    }
    return planar_run(p, input, output, scratch, dw_wide_channel, 8);
}

/* ---------------------------------------------- depthwise over one channel */

size_t mcc_depthwise_conv2d_1ch_s8_scratch_bytes(const mcc_depthwise_conv2d_1ch_params *p)
{
    (void)p;
    return 0u;
}

#if !MCC_CONV_DSP
/* The portable loops go tap by tap: one input byte into the four channels'
 * accumulators, each weight an int16 lane loaded as one (lane16). Tap
 * 4g + 2 * lane + word of a group sits at halfword 2 * word + lane of its
 * channel's two words, so taps 0..3 at halfwords 0, 2, 1, 3; channel j's
 * words at v + 2j. Splitting loaded words (SXTH, ASR) with all four taps'
 * bytes live made GCC spill on the M3: 3.75 instructions per MAC in the
 * four-channel loop, 2.44 so. */
#define MCC_DW1CH_TAP4(x, v, h) do {                                           \
        const int32_t x_ = (x);                                                \
        a0 += x_ * lane16((v), (h));                                           \
        a1 += x_ * lane16((v), 4 + (h));                                       \
        a2 += x_ * lane16((v), 8 + (h));                                       \
        a3 += x_ * lane16((v), 12 + (h));                                      \
    } while (0)
/* The four taps of one word group: input bytes x[0..3], weight words at v. */
#define MCC_DW1CH_WORD(x, v) do {                                              \
        MCC_DW1CH_TAP4((x)[0], (v), 0);                                        \
        MCC_DW1CH_TAP4((x)[1], (v), 2);                                        \
        MCC_DW1CH_TAP4((x)[2], (v), 1);                                        \
        MCC_DW1CH_TAP4((x)[3], (v), 3);                                        \
    } while (0)
#endif

/* The out_c outputs of one pixel: its filter rows start at r, `stride` bytes
 * apart, `groups` words each (weights and table: mcc_conv.h). */
static void dw1ch_pixel(const int8_t *r, int32_t stride, int32_t fh, int32_t groups,
                        const int32_t *w, const int32_t *channels, int32_t out_c, int8_t *o)
{
    int32_t c = 0;
#if MCC_CONV_ASM
    if (out_c >= 4) {
        c = out_c & ~3;
        mcc_dw1ch_s8_rows_dsp(r, stride, w, channels, c >> 2, o, fh, 4 * groups, 1, 0);
        w += 2 * fh * groups * c;
        o += c;
    }
#endif
    /* Four channels per pass over the window; then the last out_c % 4 one by one. */
    for (; c + 4 <= out_c; c += 4, o += 4) {
        const int32_t *t = channels + 4 * c;
        int32_t a0 = t[0], a1 = t[4], a2 = t[8], a3 = t[12];
#if MCC_CONV_DSP
        const int8_t *row = r;
        for (int32_t ky = 0; ky < fh; ++ky, row += stride) {
            for (int32_t g = 0; g < groups; ++g, w += 8) {
                const int32_t x = load32(row + 4 * g);
                const int32_t e = __sxtb16(x), d = sxtb16_ror8(x);   /* (t0, t2), (t1, t3) */
                a0 = __smlad(d, w[1], __smlad(e, w[0], a0));
                a1 = __smlad(d, w[3], __smlad(e, w[2], a1));
                a2 = __smlad(d, w[5], __smlad(e, w[4], a2));
                a3 = __smlad(d, w[7], __smlad(e, w[6], a3));
            }
        }
#else
        /* One pointer through the window, `skip` bytes from a row's end to the
         * next row: a counter and a row pointer fewer (GCC spilled them).
         * Rows of two words (filters 5 to 8 wide, micro_speech's 10x8) are
         * unrolled: the group loop's test cost a quarter instruction a MAC. */
        const int8_t *x = r, *const last = r + fh * stride;
        if (groups == 2) {
            do {
                MCC_DW1CH_WORD(x, w);
                MCC_DW1CH_WORD(x + 4, w + 8);
                x += stride;
                w += 16;
            } while (x != last);
        } else {
            const int32_t skip = stride - 4 * groups;
            do {
                const int8_t *const end = x + 4 * groups;
                do {
                    MCC_DW1CH_WORD(x, w);
                    x += 4;
                    w += 8;
                } while (x != end);
                x += skip;
            } while (x != last);
        }
#endif
        o[0] = fast_requant_doubled(a0, t[1], t[2], t[3]);
        o[1] = fast_requant_doubled(a1, t[5], t[6], t[7]);
        o[2] = fast_requant_doubled(a2, t[9], t[10], t[11]);
        o[3] = fast_requant_doubled(a3, t[13], t[14], t[15]);
    }
    for (; c < out_c; ++c, ++o) {
        const int32_t *t = channels + 4 * c;
        int32_t a = t[0];
        const int8_t *row = r;
        for (int32_t ky = 0; ky < fh; ++ky, row += stride) {
            for (int32_t g = 0; g < groups; ++g, w += 2) {
#if MCC_CONV_DSP
                const int32_t x = load32(row + 4 * g);
                a = __smlad(sxtb16_ror8(x), w[1], __smlad(__sxtb16(x), w[0], a));
#else
                const int8_t *x = row + 4 * g;
                a += x[0] * lane16(w, 0);
                a += x[1] * lane16(w, 2);
                a += x[2] * lane16(w, 1);
                a += x[3] * lane16(w, 3);
#endif
            }
        }
        *o = fast_requant_doubled(a, t[1], t[2], t[3]);
    }
}

/* dw1ch_pixel for the common first layer, three rows of one word (filters
 * up to 3x4): the window is read and split once per pixel, not once per
 * four channels, and the row loops are unrolled. */
static void dw1ch_pixel_3rows(const int8_t *r, int32_t stride, const int32_t *w,
                              const int32_t *channels, int32_t out_c, int32_t fw, int8_t *o)
{
    (void)fw;   /* the DSP loops take the fourth column's zero weights too */
#if MCC_CONV_ASM
    if (out_c >= 4) {
        /* The channels in fours in assembly (GCC kept the C loop's weights and
         * table rows in single loads and spilled), the last out_c % 4 below. */
        const int32_t c = out_c & ~3;
        mcc_dw1ch_s8_3rows_dsp(r, stride, w, channels, c >> 2, o, 1, 0);
        if (DW1CH_GENERAL && c < out_c) {
            dw1ch_pixel(r, stride, 3, 1, w + 6 * c, channels + 4 * c, out_c - c, o + c);
        }
        return;
    }
#endif
    int32_t c = 0;
#if MCC_CONV_DSP
    const int32_t x0 = load32(r), x1 = load32(r + stride), x2 = load32(r + 2 * stride);
    const int32_t e0 = __sxtb16(x0), d0 = sxtb16_ror8(x0);
    const int32_t e1 = __sxtb16(x1), d1 = sxtb16_ror8(x1);
    const int32_t e2 = __sxtb16(x2), d2 = sxtb16_ror8(x2);
#define MCC_DW1CH_DOT(a, j)                                                    \
    a = __smlad(e0, w[j], a);                                                  \
    a = __smlad(d0, w[(j) + 1], a);                                            \
    a = __smlad(e1, w[(j) + 8], a);                                            \
    a = __smlad(d1, w[(j) + 9], a);                                            \
    a = __smlad(e2, w[(j) + 16], a);                                           \
    a = __smlad(d2, w[(j) + 17], a)
    for (; c + 4 <= out_c; c += 4, o += 4, w += 24) {
        const int32_t *t = channels + 4 * c;
        int32_t a0 = t[0], a1 = t[4], a2 = t[8], a3 = t[12];
        MCC_DW1CH_DOT(a0, 0);
        MCC_DW1CH_DOT(a1, 2);
        MCC_DW1CH_DOT(a2, 4);
        MCC_DW1CH_DOT(a3, 6);
        o[0] = fast_requant_doubled(a0, t[1], t[2], t[3]);
        o[1] = fast_requant_doubled(a1, t[5], t[6], t[7]);
        o[2] = fast_requant_doubled(a2, t[9], t[10], t[11]);
        o[3] = fast_requant_doubled(a3, t[13], t[14], t[15]);
    }
#undef MCC_DW1CH_DOT
#else
    const int8_t *const y0 = r, *const y1 = r + stride, *const y2 = r + 2 * stride;
    for (; c + 4 <= out_c; c += 4, o += 4, w += 24) {
        const int32_t *t = channels + 4 * c;
        int32_t a0 = t[0], a1 = t[4], a2 = t[8], a3 = t[12];
        MCC_DW1CH_TAP4(y0[0], w, 0);
        MCC_DW1CH_TAP4(y0[1], w, 2);
        MCC_DW1CH_TAP4(y0[2], w, 1);
        MCC_DW1CH_TAP4(y1[0], w + 8, 0);
        MCC_DW1CH_TAP4(y1[1], w + 8, 2);
        MCC_DW1CH_TAP4(y1[2], w + 8, 1);
        MCC_DW1CH_TAP4(y2[0], w + 16, 0);
        MCC_DW1CH_TAP4(y2[1], w + 16, 2);
        MCC_DW1CH_TAP4(y2[2], w + 16, 1);
        if (fw == 4) {
            /* A 3x3 filter's fourth column is zero weights: 9 taps, not 12. */
            MCC_DW1CH_TAP4(y0[3], w, 3);
            MCC_DW1CH_TAP4(y1[3], w + 8, 3);
            MCC_DW1CH_TAP4(y2[3], w + 16, 3);
        }
        o[0] = fast_requant_doubled(a0, t[1], t[2], t[3]);
        o[1] = fast_requant_doubled(a1, t[5], t[6], t[7]);
        o[2] = fast_requant_doubled(a2, t[9], t[10], t[11]);
        o[3] = fast_requant_doubled(a3, t[13], t[14], t[15]);
    }
#endif
    if (DW1CH_GENERAL && c < out_c) {
        /* The last out_c % 4 channels: their weights are two words a row. */
        dw1ch_pixel(r, stride, 3, 1, w, channels + 4 * c, out_c - c, o);
    }
}
#if !MCC_CONV_DSP
#undef MCC_DW1CH_WORD
#undef MCC_DW1CH_TAP4
#endif

/* One row of a border pixel's window (4 * groups bytes, groups <= 2):
 * pad4's bytes, then n <= 8 image bytes from s at d + lo. Word stores and an
 * unrolled copy: memset and memcpy calls took about 25 instructions each for
 * these few bytes (micro_speech: 12% of the inference on the M7). */
static inline void window_row(int8_t *d, int32_t groups, uint32_t pad4, int32_t lo,
                              const int8_t *s, int32_t n)
{
    store32(d, (int32_t)pad4);
    if (groups == 2) {
        store32(d + 4, (int32_t)pad4);
    }
    d += lo;
    if (n >= 4) {
        store32(d, load32(s));
        d += 4;
        s += 4;
        n -= 4;
        if (n >= 4) {
            store32(d, load32(s));
            d += 4;
            s += 4;
            n -= 4;
        }
    }
    if (n >= 2) {
        d[0] = s[0];
        d[1] = s[1];
        d += 2;
        s += 2;
        n -= 2;
    }
    if (n > 0) {
        d[0] = s[0];
    }
}

int mcc_depthwise_conv2d_1ch_s8(const mcc_depthwise_conv2d_1ch_params *p,
                                const int8_t *input, int8_t *output, void *scratch)
{
    (void)scratch;
    /* Locals: the int8 output stores may alias *p as far as the compiler knows. */
    const int32_t in_h = p->in_h, in_w = p->in_w, out_c = p->out_c;
    const int32_t fh = p->filter_h, fw = p->filter_w;
    const int32_t groups = (fw + 3) >> 2, row_bytes = 4 * groups;
    const int32_t plane = in_h * in_w;
    const uint32_t pad4 = splat_s8(p->pad_value);
    const int32_t *weights = p->weights, *channels = p->channels;
    const int three_rows = fh == 3 && groups == 1;
    if (!DW1CH_GENERAL && !(three_rows && (out_c & 3) == 0)) {
        return MCC_ERROR;   /* compiled out: the generator saw no such layer */
    }
#if MCC_CONV_ASM
    /* Whole fours of channels: the pixels inside the image run in assembly a
     * row segment at a time (no per-pixel calls), any window. */
    const int runs = (three_rows || DW1CH_GENERAL) && (out_c & 3) == 0;
#endif
    int8_t window[MCC_DW1CH_MAX_WINDOW];
    int8_t *o = output;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + b * plane;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            /* Read in place: the window inside the image, and its last word
             * (which may run into the next image row, under zero weights)
             * inside the input. */
            const int rows_inside = y0 >= 0 && y0 + fh <= in_h;
            const int32_t x_max = MCC_MIN(in_w - fw, plane - row_bytes - (y0 + fh - 1) * in_w);
            for (int32_t ox = 0; ox < p->out_w; ++ox, o += out_c) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                if (rows_inside && x0 >= 0 && x0 <= x_max) {
#if MCC_CONV_ASM
                    if (runs) {
                        /* This pixel and the next ones up to x_max. */
                        const int32_t n = MCC_MIN((x_max - x0) / p->stride_w + 1, p->out_w - ox);
                        if (three_rows) {
                            mcc_dw1ch_s8_3rows_dsp(in_b + y0 * in_w + x0, in_w, weights, channels,
                                                   out_c >> 2, o, n, p->stride_w);
                        } else if (DW1CH_GENERAL) {
                            mcc_dw1ch_s8_rows_dsp(in_b + y0 * in_w + x0, in_w, weights, channels,
                                                  out_c >> 2, o, fh, row_bytes, n, p->stride_w);
                        }
                        ox += n - 1;
                        o += (n - 1) * out_c;
                        continue;
                    }
#endif
                    if (three_rows || !DW1CH_GENERAL) {
                        dw1ch_pixel_3rows(in_b + y0 * in_w + x0, in_w, weights, channels, out_c,
                                          fw, o);
                    } else {
                        dw1ch_pixel(in_b + y0 * in_w + x0, in_w, fh, groups, weights, channels,
                                    out_c, o);
                    }
                    continue;
                }
                /* A border pixel: its window on the stack, pad_value outside
                 * the image (and past fw, under zero weights). */
                const int32_t lo = MCC_MAX(0, -x0), hi = MCC_MIN(fw, in_w - x0);
                int8_t *d = window;
                for (int32_t ky = 0; ky < fh; ++ky, d += row_bytes) {
                    const int32_t y = y0 + ky;
                    const int inside = y >= 0 && y < in_h && hi > lo;
                    window_row(d, groups, pad4, lo, inside ? in_b + (y * in_w + x0 + lo) : in_b,
                               inside ? hi - lo : 0);
                }
                if (three_rows || !DW1CH_GENERAL) {
                    dw1ch_pixel_3rows(window, row_bytes, weights, channels, out_c, fw, o);
                } else {
                    dw1ch_pixel(window, row_bytes, fh, groups, weights, channels, out_c, o);
                }
            }
        }
    }
    clamp_activation(output, p->batches * p->out_h * p->out_w * out_c, p->act_min, p->act_max);
    return MCC_OK;
}

/* ------------------------------------------------ depthwise pixel by pixel */

size_t mcc_depthwise_conv2d_pixel_s8_scratch_bytes(const mcc_depthwise_conv2d_pixel_params *p)
{
    (void)p;
    return 0u;
}

#if MCC_CONV_ASM
/* What mcc_dw_pixel_3x3_s8_dsp keeps for a run of pixels: the weights and table rows of
 * its first channel, the table's end, and the bytes from one window to the
 * next. Offsets fixed by the assembly. */
typedef struct {
    const int8_t *w;
    const int32_t *t;
    const int32_t *t_end;
    int32_t step;
} dw_pixel_consts;

/* `pixels` >= 1 output pixels of a 3x3 filter, channels in fours up to
 * k->t_end: tap j of channel c at first + off[j] + c (32-bit address
 * arithmetic, so an offset may lead to the stack's pad row), each window
 * k->step bytes after the one before, the outputs one after another from o.
 * Per four channels: the biases, per tap one input word and one weight word
 * each split into channels (0, 2) and (1, 3) (r9, r8; r10, r11) and
 * multiplied lane by lane (SMLABB/SMLATT), then fast_requant, a table row in
 * one LDM. r0 off, lr first + c, r1 the weights, r2 the table row, r3 o,
 * r4..r7 the accumulators.
 * Stack: [sp] first, [sp, #4] k, [sp, #44] pixels left. */
void mcc_dw_pixel_3x3_s8_dsp(const int32_t *off, const int8_t *first, int8_t *o,
                             const dw_pixel_consts *k, int32_t pixels);

#define MCC_DW_PIXEL_TAP(J)                                                    \
    "ldr    r12, [r0, #4 * " #J "]\n\t"                                        \
    "ldr    r8, [lr, r12]\n\t"                                                 \
    "ldr    r10, [r1], #4\n\t"                                                 \
    "sxtb16 r9, r8\n\t"                                                        \
    "sxtb16 r8, r8, ror #8\n\t"                                                \
    "sxtb16 r11, r10, ror #8\n\t"                                              \
    "sxtb16 r10, r10\n\t"                                                      \
    "smlabb r4, r9, r10, r4\n\t"                                               \
    "smlatt r6, r9, r10, r6\n\t"                                               \
    "smlabb r5, r8, r11, r5\n\t"                                               \
    "smlatt r7, r8, r11, r7\n\t"
#define MCC_DW_PIXEL_OUT(A)                                                    \
    "ldm    r2!, {r8, r10, r11, r12}\n\t"  /* bias again, mult, hib, post */  \
    "lsl    " A ", " A ", #1\n\t"                                              \
    "add    r11, r11, " A ", asr #31\n\t"                                      \
    "smmlar " A ", " A ", r10, r11\n\t"                                         \
    "asr    " A ", " A ", r12\n\t"                                              \
    "ssat   " A ", #8, " A "\n\t"                                               \
    "strb   " A ", [r3], #1\n\t"

__asm__(MCC_ASM_FUNCTION("mcc_dw_pixel_3x3_s8_dsp")
        "push   {r4-r11, lr}\n\t"
        "sub    sp, sp, #8\n\t"
        "strd   r1, r3, [sp]\n\t"
        "mov    r3, r2\n"
        "0:\n\t"                            /* one pixel */
        "ldrd   lr, r12, [sp]\n\t"
        "ldrd   r1, r2, [r12]\n"             /* the weights, the table */
        "1:\n\t"                            /* four channels */
        "ldr    r4, [r2]\n\t"
        "ldr    r5, [r2, #16]\n\t"
        "ldr    r6, [r2, #32]\n\t"
        "ldr    r7, [r2, #48]\n\t"
        MCC_DW_PIXEL_TAP(0)
        MCC_DW_PIXEL_TAP(1)
        MCC_DW_PIXEL_TAP(2)
        MCC_DW_PIXEL_TAP(3)
        MCC_DW_PIXEL_TAP(4)
        MCC_DW_PIXEL_TAP(5)
        MCC_DW_PIXEL_TAP(6)
        MCC_DW_PIXEL_TAP(7)
        MCC_DW_PIXEL_TAP(8)
        MCC_DW_PIXEL_OUT("r4")
        MCC_DW_PIXEL_OUT("r5")
        MCC_DW_PIXEL_OUT("r6")
        MCC_DW_PIXEL_OUT("r7")
        "add    lr, lr, #4\n\t"
        "ldr    r12, [sp, #4]\n\t"
        "ldr    r12, [r12, #8]\n\t"         /* the table's end */
        "cmp    r2, r12\n\t"
        "bne    1b\n\t"
        "ldrd   r1, r12, [sp]\n\t"
        "ldr    r12, [r12, #12]\n\t"        /* the next window */
        "add    r1, r1, r12\n\t"
        "str    r1, [sp]\n\t"
        "ldr    r12, [sp, #44]\n\t"
        "subs   r12, r12, #1\n\t"
        "str    r12, [sp, #44]\n\t"
        "bne    0b\n\t"
        "add    sp, sp, #8\n\t"
        "pop    {r4-r11, pc}\n\t"
        MCC_ASM_END("mcc_dw_pixel_3x3_s8_dsp"));
#undef MCC_DW_PIXEL_TAP
#undef MCC_DW_PIXEL_OUT
#endif

#if DW_PIXEL_C
/* Channels [0, n) of one output pixel, n a multiple of 4: tap j of channel c
 * at tap[j][c]; w and t at the first channel's weights and table row. */
static void dw_pixel(const int8_t *const *tap, int32_t taps, const int8_t *w, const int32_t *t,
                     int32_t n, int8_t *o)
{
    for (int32_t c = 0; c < n; c += 4, t += 16, o += 4) {
        int32_t a0 = t[0], a1 = t[4], a2 = t[8], a3 = t[12];
#if MCC_CONV_DSP
        for (int32_t j = 0; j < taps; ++j, w += 4) {
            const int32_t x = load32(tap[j] + c), v = load32(w);
            const int32_t e = __sxtb16(x), d = sxtb16_ror8(x);  /* channels (0, 2), (1, 3) */
            const int32_t we = __sxtb16(v), wd = sxtb16_ror8(v);
            a0 = __smlabb(e, we, a0);
            a2 = __smlatt(e, we, a2);
            a1 = __smlabb(d, wd, a1);
            a3 = __smlatt(d, wd, a3);
        }
#else
#define MCC_PIXEL_TAP(J) do {                                                  \
            const int8_t *x_ = tap[(J)] + c;                                   \
            a0 += x_[0] * w[4 * (J)];                                          \
            a1 += x_[1] * w[4 * (J) + 1];                                      \
            a2 += x_[2] * w[4 * (J) + 2];                                      \
            a3 += x_[3] * w[4 * (J) + 3];                                      \
        } while (0)
        int32_t j = 0;
        if (taps == 9) {
            /* A 3x3 filter unrolled: the loop's counter and weight step
             * cost a quarter of its body. */
            MCC_PIXEL_TAP(0); MCC_PIXEL_TAP(1); MCC_PIXEL_TAP(2);
            MCC_PIXEL_TAP(3); MCC_PIXEL_TAP(4); MCC_PIXEL_TAP(5);
            MCC_PIXEL_TAP(6); MCC_PIXEL_TAP(7); MCC_PIXEL_TAP(8);
            j = 9;
        }
        for (; j < taps; ++j) {
            MCC_PIXEL_TAP(j);
        }
#undef MCC_PIXEL_TAP
        w += 4 * taps;
#endif
        o[0] = fast_requant(a0, t[1], t[2], t[3]);
        o[1] = fast_requant(a1, t[5], t[6], t[7]);
        o[2] = fast_requant(a2, t[9], t[10], t[11]);
        o[3] = fast_requant(a3, t[13], t[14], t[15]);
    }
}

/* Every output pixel through dw_pixel: its taps as pointers, pad for those
 * outside the image. */
static void pixel_taps(const mcc_depthwise_conv2d_pixel_params *p, const int8_t *input,
                       int8_t *output, const int8_t *pad, const int32_t *inside)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
    const int32_t fh = p->filter_h, fw = p->filter_w, taps = fh * fw;
    const int32_t dh = p->dilation_h, dw = p->dilation_w;
    const int32_t span_h = (fh - 1) * dh, span_w = (fw - 1) * dw;
    const int8_t *weights = p->weights;
    const int32_t *channels = p->channels;
    const int8_t *tap[MCC_DW_PIXEL_MAX_TAPS];
    int8_t *o = output;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_w * in_c;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            const int rows_inside = y0 >= 0 && y0 + span_h < in_h;
            for (int32_t ox = 0; ox < p->out_w; ++ox, o += in_c) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                if (rows_inside && x0 >= 0 && x0 + span_w < in_w) {
                    const int8_t *first = in_b + (y0 * in_w + x0) * in_c;
                    for (int32_t j = 0; j < taps; ++j) {
                        tap[j] = first + inside[j];
                    }
                } else {
                    for (int32_t ky = 0, j = 0; ky < fh; ++ky) {
                        const int32_t y = y0 + ky * dh;
                        for (int32_t kx = 0; kx < fw; ++kx, ++j) {
                            const int32_t x = x0 + kx * dw;
                            tap[j] = y >= 0 && y < in_h && x >= 0 && x < in_w
                                   ? in_b + (y * in_w + x) * in_c : pad;
                        }
                    }
                }
                /* The channels a pad row's length at a time. */
                for (int32_t c = 0; c < in_c; c += MCC_DW_PIXEL_CHANNELS) {
                    if (c > 0) {
                        for (int32_t j = 0; j < taps; ++j) {
                            tap[j] = tap[j] == pad ? pad : tap[j] + MCC_DW_PIXEL_CHANNELS;
                        }
                    }
                    dw_pixel(tap, taps, weights + taps * c, channels + 4 * c,
                             MCC_MIN(MCC_DW_PIXEL_CHANNELS, in_c - c), o + c);
                }
            }
        }
    }
}
#endif

#if MCC_CONV_ASM
/* Every output pixel of a 3x3 filter through mcc_dw_pixel_3x3_s8_dsp: a row's
 * pixels inside the image in one call, each other pixel alone, its taps as
 * offsets from the pad row (0 for a tap outside the image). */
static void pixel_3x3_runs(const mcc_depthwise_conv2d_pixel_params *p, const int8_t *input,
                           int8_t *output, const int8_t *pad, const int32_t *inside)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
    const int32_t dh = p->dilation_h, dw = p->dilation_w, sw = p->stride_w;
    const int8_t *weights = p->weights;
    const int32_t *channels = p->channels;
    /* The last output column whose window ends inside the image. */
    const int32_t right = in_w - 1 - 2 * dw + p->pad_w;
    const int32_t ox_last = right >= 0 ? right / sw : -1;
    const dw_pixel_consts run = {weights, channels, channels + 4 * in_c, sw * in_c};
    int32_t off[9];
    int8_t *o = output;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + (size_t)b * in_h * in_w * in_c;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            const int rows_inside = y0 >= 0 && y0 + 2 * dh < in_h;
            for (int32_t ox = 0; ox < p->out_w; ++ox, o += in_c) {
                const int32_t x0 = ox * sw - p->pad_w;
                if (rows_inside && x0 >= 0 && ox <= ox_last) {
                    /* This pixel and the next ones inside, in one call. */
                    const int32_t n = MCC_MIN(ox_last, p->out_w - 1) - ox + 1;
                    mcc_dw_pixel_3x3_s8_dsp(inside, in_b + (y0 * in_w + x0) * in_c, o, &run, n);
                    ox += n - 1;
                    o += (n - 1) * in_c;
                    continue;
                }
                /* The channels a pad row's length at a time. */
                for (int32_t c = 0; c < in_c; c += MCC_DW_PIXEL_CHANNELS) {
                    for (int32_t j = 0; j < 9; ++j) {
                        const int32_t y = y0 + j / 3 * dh, x = x0 + j % 3 * dw;
                        off[j] = y >= 0 && y < in_h && x >= 0 && x < in_w
                               ? (int32_t)((uintptr_t)(in_b + (y * in_w + x) * in_c + c)
                                           - (uintptr_t)pad)
                               : 0;
                    }
                    const int32_t n = MCC_MIN(MCC_DW_PIXEL_CHANNELS, in_c - c);
                    const dw_pixel_consts one = {weights + 9 * c, channels + 4 * c,
                                                 channels + 4 * (c + n), 0};
                    mcc_dw_pixel_3x3_s8_dsp(off, pad, o + c, &one, 1);
                }
            }
        }
    }
}
#endif

int mcc_depthwise_conv2d_pixel_s8(const mcc_depthwise_conv2d_pixel_params *p,
                                  const int8_t *input, int8_t *output, void *scratch)
{
    (void)scratch;
    const int32_t in_w = p->in_w, in_c = p->in_c;
    const int32_t fh = p->filter_h, fw = p->filter_w;
    const int three = fh == 3 && fw == 3;
    if (fh * fw > MCC_DW_PIXEL_MAX_TAPS || (in_c & 3) != 0 || !(three || DW_PIXEL_GENERAL)) {
        return MCC_ERROR;   /* conv.py _pixel: never chosen; or compiled out */
    }
    /* Word-aligned, so the border pixels' tap loads from it are aligned too. */
    uint32_t pad_words[MCC_DW_PIXEL_CHANNELS / 4];
    int8_t *const pad = (int8_t *)pad_words;
    memset(pad, (int8_t)p->pad_value, sizeof pad_words);
    /* Tap j of a window inside the image lies inside[j] bytes past its first. */
    int32_t inside[MCC_DW_PIXEL_MAX_TAPS];
    for (int32_t ky = 0, j = 0; ky < fh; ++ky) {
        for (int32_t kx = 0; kx < fw; ++kx, ++j) {
            inside[j] = (ky * p->dilation_h * in_w + kx * p->dilation_w) * in_c;
        }
    }
#if MCC_CONV_ASM
    if (three) {
        pixel_3x3_runs(p, input, output, pad, inside);
    }
#endif
#if DW_PIXEL_C
    if (!MCC_CONV_ASM || !three) {
        pixel_taps(p, input, output, pad, inside);
    }
#endif
    clamp_activation(output, p->batches * p->out_h * p->out_w * in_c, p->act_min, p->act_max);
    return MCC_OK;
}
