/* mcc_conv.h: the convolution family (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED), int8.
 *
 * Every kernel is bit-exact with TFLM's reference integer kernels
 * (reference_integer_ops::ConvPerChannel, DepthwiseConvPerChannel,
 * FullyConnected[PerChannel]). The compiler precomputes everything that does
 * not depend on the input: padding, per-channel requantization multipliers
 * and shifts, clamp bounds, and a folded bias
 *
 *     folded_bias[c] = bias[c] + input_offset * sum(weights of channel c)
 *
 * so the inner loops are plain int8 x int8 dot products. Integer addition is
 * associative, so the result equals TFLM's `sum(w * (x + input_offset)) + bias`
 * exactly. Where a filter tap falls outside the image (SAME padding), TFLM
 * skips it; the kernels instead read the tap as the input zero point
 * (`pad_value` = -input_offset), whose contribution w * (pad_value +
 * input_offset) is zero, so the folded bias stays exact at the borders too.
 *
 * Shapes are NHWC. Requantization: out = clamp(requantize(acc, multiplier[c],
 * shift[c]) + output_offset, act_min, act_max), with TFLite's (multiplier,
 * shift) convention (see mcc_requantize in mcc_common.h).
 *
 * Two families of kernels share these conventions:
 *
 * - The general kernels (mcc_conv2d_s8, mcc_depthwise_conv2d_s8,
 *   mcc_fully_connected_s8, mcc_conv2d_1x1_s8): any shape TFLite allows,
 *   TFLite's weight layouts, no scratch, plain C. The compiler uses them for
 *   what the fast kernels do not cover.
 * - The fast kernels (mcc_gemm_s8, mcc_conv2d_im2col_s8, mcc_conv2d_band_s8,
 *   mcc_depthwise_conv2d_planar_s8, mcc_depthwise_conv2d_1ch_s8,
 *   mcc_depthwise_conv2d_pixel_s8): weights
 *   re-ordered at compile time into the order their inner loops read, a
 *   per-channel table for a shorter requantization (below), scratch for int16
 *   operand blocks or padded channel planes (none for the last two). Each contains two inner loops for the same data: ARMv7E-M
 *   DSP instructions (SMLAD and friends through arm_acle.h) when the compiler
 *   defines __ARM_FEATURE_DSP (Cortex-M4/M7/M33), and portable C otherwise
 *   (Cortex-M0+/M3, the host). The layouts, scratch sizes and results are the
 *   same either way, so one generated source serves every target and the
 *   host tests exercise every layout and border path.
 *
 * Fast requantization. Each output channel c has a table row
 *     channels[4c..4c+3] = { folded_bias, multiplier, hi_base, post }
 * with post = -shift >= 1 (the compiler uses these kernels only when every
 * channel's TFLite shift is negative) and
 *     hi_base = 2^(post-1) + output_offset * 2^post.
 * For an accumulator acc (|acc| < 2^30, checked at compile time),
 *     a = 2 * acc,  s = (a < 0 ? -1 : 0)
 *     hi = floor((a * multiplier + 2^31) / 2^32) + hi_base + s   (SMMLAR)
 *     out = saturate_int8(hi >> post)
 * equals clamp(MultiplyByQuantizedMultiplier(acc, multiplier, shift)
 * + output_offset, -128, 127) exactly: floor((a*m + 2^31)/2^32) is TFLite's
 * rounding doubling high multiply (whose negative nudge and truncation give
 * the same value as this single floor), adding 2^(post-1) + s before the
 * floor shift is its round-half-away-from-zero divide by 2^post (s is -1
 * exactly when that product is negative, or it is 0 and s does not matter),
 * and the output offset shifted up by post passes through the shift intact.
 * The compiler proves that nothing overflows int32 for any int8 input, even
 * when a kernel accumulates 2 * acc directly (doubled weights, then no shift
 * per output); a layer where it cannot goes to the general kernels. A fused activation
 * narrower than [-128, 127] is applied by a final pass over the output.
 */
#ifndef MCC_CONV_H
#define MCC_CONV_H

#include "mcc_common.h"

/* CONV_2D, general case: any filter size, stride, dilation, SAME/VALID
 * padding, and grouped convolution (in_c = groups * filter_c).
 *
 * weights:      [out_c][filter_h][filter_w][filter_c] int8 (TFLite's layout)
 * folded_bias:  [out_c] int32, bias + input_offset * sum(weights[c])
 * multiplier, shift: [out_c] int32
 * pad_h, pad_w: top/left padding (TFLM's ComputePaddingHeightWidth)
 * input_offset: -input zero point, in [-127, 128]
 */
typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t filter_h, filter_w, filter_c;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_h, pad_w;
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min, act_max;
    const int8_t *weights;
    const int32_t *folded_bias;
    const int32_t *multiplier;
    const int32_t *shift;
} mcc_conv2d_params;

int mcc_conv2d_s8(const mcc_conv2d_params *p, const int8_t *input, int8_t *output);

/* DEPTHWISE_CONV_2D: output channel c = i * depth_multiplier + m reads input
 * channel i.
 *
 * weights:      [out_c][filter_h][filter_w] int8 (transposed from TFLite's
 *               [1][filter_h][filter_w][out_c] so each channel's taps are contiguous)
 * folded_bias, multiplier, shift: [out_c] int32
 */
typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t filter_h, filter_w;
    int32_t depth_multiplier;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_h, pad_w;
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min, act_max;
    const int8_t *weights;
    const int32_t *folded_bias;
    const int32_t *multiplier;
    const int32_t *shift;
} mcc_depthwise_conv2d_params;

int mcc_depthwise_conv2d_s8(const mcc_depthwise_conv2d_params *p,
                            const int8_t *input, int8_t *output);

/* FULLY_CONNECTED, and CONV_2D with a 1x1 filter, stride 1 and no padding
 * (a fully connected layer applied to every pixel: rows = N*H*W).
 *
 * input:        [rows][depth] int8
 * weights:      [out_c][depth] int8
 * folded_bias:  [out_c] int32
 * multiplier, shift: [out_c] int32 when per_channel, else [1] (one per-tensor
 *               multiplier, as TFLM's per-tensor FullyConnected)
 * output:       [rows][out_c] int8
 */
typedef struct {
    int32_t rows;
    int32_t depth;
    int32_t out_c;
    int32_t per_channel;     /* 1: multiplier/shift indexed by channel; 0: entry 0 for all */
    int32_t output_offset;
    int32_t act_min, act_max;
    const int8_t *weights;
    const int32_t *folded_bias;
    const int32_t *multiplier;
    const int32_t *shift;
} mcc_fully_connected_params;

int mcc_fully_connected_s8(const mcc_fully_connected_params *p,
                           const int8_t *input, int8_t *output);

int mcc_conv2d_1x1_s8(const mcc_fully_connected_params *p,
                      const int8_t *input, int8_t *output);

/* ------------------------------------------------------------ fast kernels */

/* A residual ADD fused into a convolution (passes.fuse_residual_adds):
 * mcc_gemm_s8, mcc_conv2d_im2col_s8 and mcc_conv2d_band_s8 take one in
 * `residual`. The output holds the ADD's other operand x on entry and each
 * of its values becomes ADD(x, z) with z the convolution's int8 value, so
 * the convolution's own output tensor never exists. The ADD runs in its
 * table form (mcc_add_params, input1_scaled): x_scaled and z_scaled are the
 * doubled rescaled values (index v + 128; the convolution's activation is
 * folded into z_scaled), then the fast output stage with mult, hib, post,
 * clamped to [act_min, act_max]. The convolution's outputs go through a
 * tile on the stack (MCC_RESIDUAL_TILE bytes, at least four pixels: out_c
 * <= MCC_RESIDUAL_MAX_C) and are added in a tile at a time; the kernel's own
 * act_min and act_max are then the whole int8 range. x_scaled NULL: no
 * residual. */
typedef struct {
    const int32_t *x_scaled;
    const int32_t *z_scaled;
    int32_t mult, hib, post;
    int32_t act_min, act_max;
} mcc_residual;

#define MCC_RESIDUAL_MAX_C 256
#define MCC_RESIDUAL_TILE (4 * MCC_RESIDUAL_MAX_C)

/* FULLY_CONNECTED, and CONV_2D with a 1x1 filter, stride 1 and no padding, as
 * output[rows][out_c] = input[rows][depth] x weights^T, four rows by two
 * output channels at a time.
 *
 * weights:   [ceil(out_c/2)][ceil(depth/4)][2][4] int8: for channels (2p, 2p+1)
 *            and depth group g (k = 4g..4g+3), word 0 holds
 *            { w[2p][k], w[2p+1][k], w[2p][k+2], w[2p+1][k+2] } and word 1 the
 *            same for k+1 and k+3, so that SXTB16 of a word (and of the word
 *            rotated by 8) yields one channel's int16 pair (k, k+2) or
 *            (k+1, k+3). Missing channels and depth are zero.
 * channels:  [out_c][4] int32, see "Fast requantization".
 * row_block: 4: blocks of four rows are widened to int16 pairs in scratch
 *            first (mcc_gemm_s8_scratch_bytes); 2: the same with the block on
 *            the stack (at most MCC_GEMM_STACK_BLOCK bytes: depth <= 64), no
 *            scratch, for a layer at the memory peak; 1: rows are read where
 *            they lie, no scratch. Leftover rows (rows % 4) go two by two.
 * inplace:   mcc_gemm_inplace_s8 only (0 for mcc_gemm_s8): 1 (first to last)
 *            or 2 (last to first), output == input. A block's four rows are
 *            widened into scratch before any of its outputs is written, and
 *            the leftover rows go through the same block (their outputs via
 *            scratch), so order 1 is safe when out_c <= depth and order 2 when
 *            out_c >= depth (kernels/inplace.py checks which). row_block 4:
 *            that scratch in the arena; 2: on the stack, no arena scratch
 *            (block and leftover outputs within MCC_GEMM_INPLACE_STACK_BLOCK
 *            bytes: 64 channels in and out fit).
 * wide_weights: NULL, or (weights NULL) the same weights as int16 pairs in
 *            int32 words (low lane first; words, so they are word aligned for
 *            LDRD): { w[2p][k], w[2p][k+2] } then { w[2p+1][k], w[2p+1][k+2] },
 *            and likewise for k+1, k+3. Twice the flash, no SXTB16 in the
 *            inner loop: 0.125 instructions per MAC fewer. Rows go in blocks
 *            of four only: rows >= 4 and row_block 4 or 2. Not in place, the
 *            last block moves up over rows done before (so the output may not
 *            overlap the input); in place, leftover rows repeat as before.
 */
typedef struct {
    int32_t rows;
    int32_t depth;
    int32_t out_c;
    int32_t row_block;
    int32_t act_min, act_max;
    const int8_t *weights;
    const int32_t *channels;
    int32_t inplace;
    mcc_residual residual;   /* mcc_gemm_s8 only */
    const int32_t *wide_weights;
} mcc_gemm_params;

#define MCC_GEMM_STACK_BLOCK 512
/* As much as the band and planar kernels keep on the stack: the in-place form
 * runs where its scratch would raise the peak, and the pixel-by-pixel kernel
 * it replaces there takes 1.6x the instructions (DS-CNN's 64-channel layers). */
#define MCC_GEMM_INPLACE_STACK_BLOCK 1152
/* With a residual (mcc_residual) row_block 2's block may be as big: such a
 * GEMM runs where the in-place one would, at the peak of a residual block. */
#define MCC_GEMM_RESIDUAL_STACK_BLOCK MCC_GEMM_INPLACE_STACK_BLOCK

int mcc_gemm_s8(const mcc_gemm_params *p, const int8_t *input, int8_t *output, void *scratch);
/* The same with output == input: `inplace` 1 or 2, row_block 4 or 2. */
int mcc_gemm_inplace_s8(const mcc_gemm_params *p, const int8_t *input, int8_t *output,
                        void *scratch);
size_t mcc_gemm_s8_scratch_bytes(const mcc_gemm_params *p);

/* CONV_2D without groups through im2col: the patches of four output pixels
 * (filter_h * filter_w * in_c values each, in TFLite's filter order, taps
 * outside the image reading pad_value = the input zero point) are gathered
 * into scratch and multiplied with the same kernel as mcc_gemm_s8. Also
 * DEPTHWISE_CONV_2D with one input channel, which is this convolution with
 * out_c = depth_multiplier.
 *
 * weights, channels: as mcc_gemm_s8 with depth = filter_h * filter_w * in_c.
 */
typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t filter_h, filter_w;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_h, pad_w;
    int32_t pad_value;
    int32_t row_block;       /* 4 or 1, as mcc_gemm_params; 2: no scratch, two patches
                                of at most MCC_IM2COL_STACK_PATCH bytes on the stack */
    int32_t act_min, act_max;
    const int8_t *weights;
    const int32_t *channels;
    mcc_residual residual;
} mcc_conv2d_im2col_params;

/* row_block 2 is the form for a layer at the memory peak: its two patches
 * live on the stack (bounded here, covered by the board's stack reserve and
 * measured by the stack high-water mark), not in the arena. When in_c is a
 * multiple of 4 and the int16 block of four patches fits the same bytes
 * (depth <= 144), it is the block instead, as row_block 4 uses in scratch. */
#define MCC_IM2COL_STACK_PATCH 576
#define MCC_IM2COL_STACK_BLOCK (2 * MCC_IM2COL_STACK_PATCH)

int mcc_conv2d_im2col_s8(const mcc_conv2d_im2col_params *p, const int8_t *input,
                         int8_t *output, void *scratch);
size_t mcc_conv2d_im2col_s8_scratch_bytes(const mcc_conv2d_im2col_params *p);

/* CONV_2D with a 3x3 filter, stride 1 or 2 on both axes, no dilation, no
 * groups and out_h >= 4: no patches. Bands of four
 * output rows (the last band moved up to end at out_h, recomputing a few
 * rows) are swept column by column: each input column the band reads (6
 * rows at stride 1, 9 at stride 2, pad_value outside the image) is widened
 * once into int16 pairs, and the four output pixels of one output column
 * multiply the three input columns under them in place with the 4x2 tile of
 * mcc_gemm_s8. im2col instead widens each input value once per filter tap.
 *
 * weights:  [ceil(out_c/2)][3 (dx)][2 * ceil(in_c/4) (pair q)][3 (dy = 1, 2, 0)]
 *           [4] int8: for channels (2p, 2p+1) and input channel pair q
 *           (channels 4g, 4g+2 for q = 2g; 4g+1, 4g+3 for q = 2g+1), the
 *           word { w[2p][dy][dx][a], w[2p+1][..][a], w[2p][..][b],
 *           w[2p+1][..][b] } for the pair's channels (a, b). Missing
 *           channels (a last output channel, input channels past in_c) are
 *           zero.
 * channels: [out_c][4] int32, see "Fast requantization".
 * columns:  column slots in the buffer, >= 3, each 8 * ceil(in_c/4) * rows
 *           bytes (rows 6 or 9); when it fills up, the columns still needed move
 *           to its start. on_stack 1: the buffer is on the stack (at most
 *           MCC_BAND_STACK_BYTES), no scratch, for a layer at the memory peak.
 * wide_weights: NULL, or (weights NULL) the same weights as int16 pairs in
 *           int32 words, { w[2p][..][a], w[2p][..][b] } then { w[2p+1][..][a],
 *           w[2p+1][..][b] }: as mcc_gemm_params.wide_weights.
 */
typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t stride;
    int32_t pad_h, pad_w;
    int32_t pad_value;
    int32_t columns;
    int32_t on_stack;
    int32_t act_min, act_max;
    const int8_t *weights;
    const int32_t *channels;
    mcc_residual residual;
    const int32_t *wide_weights;
} mcc_conv2d_band_params;

#define MCC_BAND_STACK_BYTES MCC_IM2COL_STACK_BLOCK

int mcc_conv2d_band_s8(const mcc_conv2d_band_params *p, const int8_t *input, int8_t *output,
                       void *scratch);
size_t mcc_conv2d_band_s8_scratch_bytes(const mcc_conv2d_band_params *p);

/* DEPTHWISE_CONV_2D with filter_w 3, 5 or 7, filter_h up to
 * MCC_PLANAR_MAX_FILTER_H (any for 3x3), stride_w 1 or 2, no dilation:
 * mcc_depthwise_conv2d_planar_3x3_s8 for a 3x3 filter,
 * mcc_depthwise_conv2d_planar_s8 for the others (two entry points, so a
 * model links only the inner loops it uses).
 * `group` input channels at a time are copied into scratch as channel planes
 * of plane_h x plane_w bytes, padding included (pad_value, the input zero
 * point), so the inner loops read each filter row as one or two words with
 * no border tests.
 *
 * weights:  [out_c][filter_h][row_bytes] int8, row_bytes = 4 for a 3x3
 *           filter and 8 otherwise; each filter row zero-padded.
 * channels: [out_c][4] int32, see "Fast requantization".
 * plane_h >= (out_h - 1) * stride_h + filter_h and >= pad_h + in_h;
 * plane_w >= (out_w - 1) * stride_w + row_bytes and >= pad_w + in_w,
 * a multiple of 4.
 * group 0: as many planes as fit on the stack (MCC_PLANAR_STACK_PLANE
 * bytes), no scratch: for a layer at the memory peak. A bigger plane runs in
 * strips of output rows; filter_h * plane_w must fit.
 */
typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t filter_h, filter_w;
    int32_t depth_multiplier;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;
    int32_t pad_value;
    int32_t plane_h, plane_w;
    int32_t group;
    int32_t act_min, act_max;
    const int8_t *weights;
    const int32_t *channels;
} mcc_depthwise_conv2d_planar_params;

/* As big as im2col's stack block: no kernel's stack frame grows beyond it. */
#define MCC_PLANAR_STACK_PLANE 1152
/* mcc_depthwise_conv2d_planar_s8 splits a channel's filter rows into int16
 * pairs once, 16 bytes a row on the stack. */
#define MCC_PLANAR_MAX_FILTER_H 8

int mcc_depthwise_conv2d_planar_3x3_s8(const mcc_depthwise_conv2d_planar_params *p,
                                       const int8_t *input, int8_t *output, void *scratch);
int mcc_depthwise_conv2d_planar_s8(const mcc_depthwise_conv2d_planar_params *p,
                                   const int8_t *input, int8_t *output, void *scratch);
size_t mcc_depthwise_conv2d_planar_s8_scratch_bytes(const mcc_depthwise_conv2d_planar_params *p);

/* DEPTHWISE_CONV_2D over one input channel (in_c 1: out_c = depth_multiplier),
 * filter_w <= 8, no dilation, any stride, SAME, VALID or explicit padding:
 * no scratch. With one channel the NHWC input is already a plane, so each
 * output pixel reads its filter rows where they lie, one or two words per
 * row, and every tap word loaded serves all out_c channels (four at a time).
 * A pixel whose window leaves the image (padding), or whose last word would
 * read past the input, first copies its window (pad_value outside the image)
 * into a buffer of at most MCC_DW1CH_MAX_WINDOW bytes on the stack.
 *
 * weights:  int32 words of two int16 lanes (low lane first), the taps doubled
 *           (the accumulators hold 2 * acc: fast_requant_doubled). A filter
 *           row's taps 4g..4g+3 (zero past filter_w) give the words
 *           (w[4g], w[4g+2]) and (w[4g+1], w[4g+3]); groups = ceil(filter_w / 4).
 *           Channels in blocks of four, [filter_h][groups][4][2] words each,
 *           then the last out_c % 4 channels one by one, [filter_h][groups][2].
 * channels: [out_c][4] int32, see "Fast requantization", with the folded bias
 *           doubled too (the accumulators start from it).
 * filter_h * 4 * groups <= MCC_DW1CH_MAX_WINDOW.
 */
#define MCC_DW1CH_MAX_WINDOW 128

typedef struct {
    int32_t batches;
    int32_t in_h, in_w;
    int32_t out_h, out_w, out_c;
    int32_t filter_h, filter_w;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;
    int32_t pad_value;
    int32_t act_min, act_max;
    const int32_t *weights;
    const int32_t *channels;
} mcc_depthwise_conv2d_1ch_params;

int mcc_depthwise_conv2d_1ch_s8(const mcc_depthwise_conv2d_1ch_params *p,
                                const int8_t *input, int8_t *output, void *scratch);
size_t mcc_depthwise_conv2d_1ch_s8_scratch_bytes(const mcc_depthwise_conv2d_1ch_params *p);

/* DEPTHWISE_CONV_2D with depth multiplier 1 and channels in fours, any
 * filter up to MCC_DW_PIXEL_MAX_TAPS taps, any stride, dilation and padding:
 * no scratch. Each output pixel reads its taps where they lie in the NHWC
 * input, four channels to a word, so a layer pays nothing per channel beyond
 * its arithmetic; the planar kernel's plane copies and per-channel set-up
 * cost more on small planes and at stride 2. Taps outside the image read a
 * row of pad_value on the stack.
 *
 * weights:  int8, for channels 4q..4q+3 and tap k (row-major over the
 *           filter) the four bytes w[4q..4q+3]: [in_c/4][taps][4], one word
 *           per tap and four channels.
 * channels: [in_c][4] int32, see "Fast requantization".
 * in_c % 4 == 0; filter_h * filter_w <= MCC_DW_PIXEL_MAX_TAPS.
 */
#define MCC_DW_PIXEL_MAX_TAPS 49
/* Channels per pass over a pixel's taps: the stack row of pad_value is this long. */
#define MCC_DW_PIXEL_CHANNELS 256

typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w;
    int32_t filter_h, filter_w;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_h, pad_w;
    int32_t pad_value;
    int32_t act_min, act_max;
    const int8_t *weights;
    const int32_t *channels;
} mcc_depthwise_conv2d_pixel_params;

int mcc_depthwise_conv2d_pixel_s8(const mcc_depthwise_conv2d_pixel_params *p,
                                  const int8_t *input, int8_t *output, void *scratch);
size_t mcc_depthwise_conv2d_pixel_s8_scratch_bytes(const mcc_depthwise_conv2d_pixel_params *p);

/* The optional paths compiled in (mcc_config.h, kernels.OPTIONAL_PATHS): each
 * is defined only when its path is, and a model that takes it reads it, so a
 * library built without a path the model needs does not link. */
extern const uint8_t mcc_has_path_DW1CH_GENERAL;
extern const uint8_t mcc_has_path_IM2COL_WIDENED;
extern const uint8_t mcc_has_path_IM2COL_PATCHES;
extern const uint8_t mcc_has_path_IM2COL_STACK_PAIRS;
extern const uint8_t mcc_has_path_IM2COL_RGB;
extern const uint8_t mcc_has_path_RESIDUAL;
extern const uint8_t mcc_has_path_DW_PIXEL_GENERAL;
extern const uint8_t mcc_has_path_PLANAR_S2;
extern const uint8_t mcc_has_path_PLANAR_WIDE_S2;
extern const uint8_t mcc_has_path_PLANAR_WIDE7;
extern const uint8_t mcc_has_path_WIDE_WEIGHTS;
extern const uint8_t mcc_has_path_GEMM_PARTIAL;

#endif /* MCC_CONV_H */
