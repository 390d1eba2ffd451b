/* mcc_pool.h: pooling and reduction kernels (AVERAGE_POOL_2D, MAX_POOL_2D, MEAN), int8.
 *
 * Bit-exact with TFLM's reference kernels (reference_integer_ops::AveragePool
 * and MaxPool; reference_ops::QuantizedMeanOrSum, which current TFLM uses for
 * every int8 MEAN). The compiler computes padding, clamp bounds, loop shapes
 * and the MEAN rescaling multiplier; the kernels only add, compare and
 * requantize integers.
 */
#ifndef MCC_POOL_H
#define MCC_POOL_H

#include "mcc_common.h"

/* AVERAGE_POOL_2D and MAX_POOL_2D over NHWC int8; input and output share one
 * quantization (TFLM requires it), so no rescaling happens.
 *
 * The window of output (y, x) starts at input (y * stride_h - pad_h,
 * x * stride_w - pad_w) and is clipped to the image: taps in the padding are
 * skipped, not read as zero. Average: sum of the in-bounds taps divided by
 * their count, rounded half away from zero. Max: the largest in-bounds tap.
 * Both are then clamped to [act_min, act_max] (the fused activation).
 *
 * pad_h, pad_w: top/left padding (TFLM's ComputePaddingHeightWidth); the
 *   compiler guarantees every window holds at least one in-bounds tap.
 */
typedef struct {
    int32_t batches;
    int32_t in_h, in_w;
    int32_t channels;
    int32_t out_h, out_w;
    int32_t stride_h, stride_w;
    int32_t filter_h, filter_w;
    int32_t pad_h, pad_w;
    int32_t act_min, act_max;
} mcc_pool_params;

/* No scratch: each output's channels are summed four at a time in registers. */
int mcc_avgpool_s8(const mcc_pool_params *p, const int8_t *input, int8_t *output);

int mcc_maxpool_s8(const mcc_pool_params *p, const int8_t *input, int8_t *output);

/* MEAN over any set of axes of an up-to-5-D int8 tensor.
 *
 * The input is walked in memory order as a 5-D array `shape` (outer first;
 * adjacent kept or reduced dims merged, padded at the front with 1s). Input
 * element (i0..i4) is added to output element sum(ik * out_stride[k]);
 * out_stride is 0 along reduced dims. Each output sums n input values, then
 *
 *   out = clamp(requantize(sum + input_offset_n, multiplier, shift) + output_offset,
 *               -128, 127)
 *
 * input_offset_n: -input_zero_point * n
 * multiplier, shift: TFLM's rescaling by input_scale / (output_scale * n)
 * outputs: number of output elements.
 */
#define MCC_MEAN_DIMS 5

typedef struct {
    int32_t outputs;
    int32_t input_offset_n;
    int32_t multiplier;
    int32_t shift;
    int32_t output_offset;
    const int32_t *shape;       /* [MCC_MEAN_DIMS] */
    const int32_t *out_stride;  /* [MCC_MEAN_DIMS] */
} mcc_mean_params;

/* scratch: outputs int32 sums (4 * outputs bytes, 4-byte aligned). */
int mcc_mean_s8(const mcc_mean_params *p, const int8_t *input, int8_t *output, void *scratch);

/* Defined by a library built with the optional path (see mcc_pool.c). */
extern const uint8_t mcc_has_path_POOL_CHUNKS;

#endif /* MCC_POOL_H */
