/* mcc_inplace.h: kernels that write their output over their own input, int8.
 *
 * When an op's input is not read by any later op, its output can take the
 * input's place in the arena: the two share one buffer of max(input, output)
 * bytes instead of input + output. The compiler passes the same pointer as
 * `input` and `output` (the kernels return MCC_ERROR otherwise) and proves,
 * for each layer, that the order below never overwrites an input byte that is
 * still to be read. Results are bit-exact with the out-of-place kernels of
 * mcc_conv.h and mcc_pool.h (the same integer arithmetic, per output value).
 *
 * Window ops (DEPTHWISE_CONV_2D with depth multiplier 1, AVERAGE_POOL_2D,
 * MAX_POOL_2D), batch 1, NHWC: channel by channel (MCUNet's TinyEngine
 * technique). Output value (p, c) lands on byte p * channels + c, where only
 * input channel c ever lived, so computing channel c can only destroy
 * channel c. Within a channel, outputs go in raster order and each input row
 * still needed after being overwritten is first copied into a ring of
 * `ring_rows` rows of in_w bytes (the scratch). The compiler sizes the ring
 * (about filter_h rows for stride 1); ring_rows = 0 means no input row is
 * overwritten before its last use (e.g. stride 2 without top/left padding),
 * and the kernel reads the buffer directly with no scratch at all. Before
 * computing output row oy, rows up to
 *
 *     min(in_h - 1, max(last row the window reads, last row output row oy overwrites))
 *
 * are in the ring; row y lives in slot y % ring_rows.
 *
 * Pointwise ops (CONV_2D 1x1 without padding, FULLY_CONNECTED): pixel by
 * pixel, each pixel's out_c values computed into the scratch (out_c bytes)
 * and then copied to bytes [o * out_c, (o + 1) * out_c). `reverse` picks the
 * pixel order (first to last when out_c <= in_c, last to first when out_c >
 * in_c); see mcucompile/kernels/inplace.py for the proof.
 */
#ifndef MCC_INPLACE_H
#define MCC_INPLACE_H

#include "mcc_common.h"

/* DEPTHWISE_CONV_2D, depth multiplier 1, in place. The per-value arithmetic
 * of mcc_depthwise_conv2d_s8 (mcc_conv.h), with the layouts of the fast
 * kernels:
 *
 * weights:   [channels][filter_h][row_bytes] int8, row_bytes = filter_w rounded
 *            up to a multiple of 4, each filter row zero-padded (so a 3-wide row
 *            is one word: SXTB16 gives the int16 pairs (w0, w2) and (w1, 0)).
 * channel_table: [channels][4] int32. fast_table 1: { folded_bias, multiplier,
 *            hi_base, post }, "Fast requantization" in mcc_conv.h, chosen where
 *            the compiler proves it exact; fast_table 0: { folded_bias,
 *            multiplier, shift, 0 } with TFLite's (multiplier, shift), the
 *            general kernels' arithmetic, and output_offset added after it.
 * pad_value: the input zero point, read for taps in the padding.
 * scratch:   ring_rows * in_w bytes (mcc_depthwise_conv2d_inplace_s8_scratch_bytes).
 *
 * Inner loops: a 3x3 filter (any dilation_h) keeps its taps in registers;
 * under __ARM_FEATURE_DSP, rows at stride 1 give two outputs per step with
 * SMLAD (a short assembly loop), read from the ring (one channel,
 * contiguous) or, with direct reads, from stack copies of up to 40 columns;
 * direct-read rows at stride 2 give SMLAD pairs straight from the buffer.
 * Output pixels whose window crosses the left or right border run the same
 * loops over a stack copy of their windows with pad_value outside the image.
 * Other filters: border pixels take a slower path that reads pad_value there.
 */
typedef struct {
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t filter_h, filter_w;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_h, pad_w;
    int32_t ring_rows;
    int32_t row_bytes;
    int32_t fast_table;
    int32_t pad_value;
    int32_t output_offset;
    int32_t act_min, act_max;
    const int8_t *weights;
    const int32_t *channel_table;
} mcc_depthwise_conv2d_inplace_params;

int mcc_depthwise_conv2d_inplace_s8(const mcc_depthwise_conv2d_inplace_params *p,
                                    const int8_t *input, int8_t *output, void *scratch);
size_t mcc_depthwise_conv2d_inplace_s8_scratch_bytes(const mcc_depthwise_conv2d_inplace_params *p);

/* AVERAGE_POOL_2D and MAX_POOL_2D in place, as mcc_avgpool_s8 /
 * mcc_maxpool_s8 (mcc_pool.h): windows clipped to the image, average rounded
 * half away from zero, clamped to [act_min, act_max].
 * scratch: ring_rows * in_w bytes.
 */
typedef struct {
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t filter_h, filter_w;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;
    int32_t ring_rows;
    int32_t act_min, act_max;
} mcc_pool_inplace_params;

int mcc_avgpool_inplace_s8(const mcc_pool_inplace_params *p, const int8_t *input,
                           int8_t *output, void *scratch);

int mcc_maxpool_inplace_s8(const mcc_pool_inplace_params *p, const int8_t *input,
                           int8_t *output, void *scratch);
size_t mcc_pool_inplace_s8_scratch_bytes(const mcc_pool_inplace_params *p);

/* CONV_2D with a 1x1 filter and no padding (any stride), and FULLY_CONNECTED
 * (in_h = rows, in_w = 1, in_c = depth), in place. The per-value arithmetic
 * of mcc_fully_connected_s8 / mcc_conv2d_1x1_s8, four output channels per
 * pass over a pixel's input. Under __ARM_FEATURE_DSP, with whole depth groups
 * (in_c a multiple of 4) and the fast table, a pixel's whole passes run in
 * one short assembly loop (SMLAD, requantization included); a partial last
 * pass, a partial depth group and the TFLite-form table take the C loop.
 *
 * weights:  mcc_gemm_s8's layout (mcc_conv.h) for out_c rounded up to a
 *           multiple of 4 (the extra channels are zero and never stored):
 *           [ceil(out_c/2)][ceil(in_c/4)][2][4] int8.
 * channel_table: [ceil(out_c/4)*4][4] int32, the two table forms of
 *           mcc_depthwise_conv2d_inplace_params (a per-tensor multiplier is
 *           repeated per channel).
 * reverse:  1: last pixel first
 * scratch:  out_c bytes (mcc_pointwise_inplace_s8_scratch_bytes)
 */
typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t stride_h, stride_w;
    int32_t reverse;
    int32_t fast_table;
    int32_t output_offset;
    int32_t act_min, act_max;
    const int8_t *weights;
    const int32_t *channel_table;
} mcc_pointwise_inplace_params;

int mcc_conv2d_1x1_inplace_s8(const mcc_pointwise_inplace_params *p, const int8_t *input,
                              int8_t *output, void *scratch);

int mcc_fully_connected_inplace_s8(const mcc_pointwise_inplace_params *p, const int8_t *input,
                                   int8_t *output, void *scratch);
size_t mcc_pointwise_inplace_s8_scratch_bytes(const mcc_pointwise_inplace_params *p);

#endif /* MCC_INPLACE_H */
