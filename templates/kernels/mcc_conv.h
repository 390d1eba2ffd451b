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
 * Portable C only; none of these kernels needs scratch memory. An Arm DSP
 * variant (`_dsp`, __ARM_FEATURE_DSP) can replace the dot-product helpers in
 * mcc_conv.c without changing these interfaces.
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

#endif /* MCC_CONV_H */
