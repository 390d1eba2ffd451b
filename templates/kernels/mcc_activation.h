/* mcc_activation.h: activation and (de)quantization kernels.
 *
 * SOFTMAX, LOGISTIC, HARD_SWISH, RELU, RELU6 on int8 data, QUANTIZE
 * (float32 -> int8, int8 -> int8) and DEQUANTIZE (int8 -> float32), bit-exact
 * with TFLM's reference kernels.
 *
 * Most int8 -> int8 activations are a 256-entry lookup table that the
 * compiler fills by running TFLM's integer arithmetic on every input value
 * (mcc_lut_s8), or a plain clamp (mcc_clamp_s8). SOFTMAX normalises each row
 * on the device with gemmlowp's fixed-point reciprocal; its exp() values come
 * from a table. Only QUANTIZE/DEQUANTIZE at float model boundaries use floats.
 *
 * The int8 -> int8 kernels work in place (input == output is allowed).
 */
#ifndef MCC_ACTIVATION_H
#define MCC_ACTIVATION_H

#include "mcc_common.h"

/* y[i] = table[x[i] + 128] for i < size.
 *
 * table: 256 int8 outputs, for the inputs -128, -127, ..., 127 in that order.
 * Used for LOGISTIC, HARD_SWISH, rescaling RELU and int8 -> int8 QUANTIZE. */
typedef struct {
    int32_t size;
    const int8_t *table;
} mcc_lut_params;

int mcc_lut_s8(const mcc_lut_params *p, const int8_t *input, int8_t *output);

/* y[i] = min(max(x[i], lo), hi) for i < size, with -128 <= lo <= hi <= 127.
 * RELU6 (TFLM clamps in the input's scale) and RELU between equal scales. */
typedef struct {
    int32_t size;
    int32_t lo;
    int32_t hi;
} mcc_clamp_params;

int mcc_clamp_s8(const mcc_clamp_params *p, const int8_t *input, int8_t *output);

/* SOFTMAX over the last axis: `rows` rows of `depth` int8 values each; the
 * output has scale 1/256 and zero point -128.
 *
 * For d = (row max - x) the compiler tabulates gemmlowp's exp(-beta*scale*d)
 * in Q0.31 as exp_table[d] for d < exp_table_size; larger differences have
 * exp 0 (TFLM's diff_min cut-off, or an exp too small to matter) and give -128.
 * Per row: sum the exps in Q12.19, take gemmlowp's fixed-point reciprocal,
 * scale each exp by it.
 *
 * Returns MCC_ERROR where TFLM aborts: a row whose exp sum reaches 2^28
 * (for instance 512 values equal to the row maximum). */
typedef struct {
    int32_t rows;
    int32_t depth;
    const int32_t *exp_table;
    int32_t exp_table_size;   /* 1..256 */
} mcc_softmax_params;

int mcc_softmax_s8(const mcc_softmax_params *p, const int8_t *input, int8_t *output);

/* Affine (de)quantization with one float32 scale and an int8 zero point.
 *
 * mcc_quantize_f32_s8:   y = clamp(round(x / scale) + zero_point, -128, 127),
 *                        halves rounded away from zero, as TFLM's AffineQuantize.
 * mcc_dequantize_s8_f32: y = scale * (float)(x - zero_point). */
typedef struct {
    int32_t size;
    float scale;
    int32_t zero_point;
} mcc_quantize_params;

int mcc_quantize_f32_s8(const mcc_quantize_params *p, const float *input, int8_t *output);

int mcc_dequantize_s8_f32(const mcc_quantize_params *p, const int8_t *input, float *output);

#endif /* MCC_ACTIVATION_H */
