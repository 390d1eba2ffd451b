/* mcc_elementwise.h: ADD and MUL of two int8 tensors, with broadcasting.
 *
 * Bit-exact with TFLM's reference kernels (reference_integer_ops::AddFunc and
 * MulElementwise). The compiler computes the multipliers, shifts and clamp
 * bounds; the kernels only do integer arithmetic.
 *
 * Layout. With shape == NULL both inputs and the output hold `size` elements
 * in the same order (one flat loop). Otherwise the output is walked as
 * MCC_BCAST_DIMS nested loops of extents shape[0..3] (outermost first, the
 * output contiguous in that order), and input k's element for loop indices
 * (i0..i3) is at sum(i_j * inputk_strides[j]); a stride is 0 along the loops
 * where that input is broadcast.
 *
 * Constant operand. mcc_<op>_const_s8 takes input 2 from p->constant (flash)
 * instead of an argument; otherwise identical.
 *
 * In place: output may alias an input that has the output's shape.
 */
#ifndef MCC_ELEMENTWISE_H
#define MCC_ELEMENTWISE_H

#include "mcc_common.h"

#define MCC_BCAST_DIMS 4

/* ADD:
 *   a = requantize((x1 + input1_offset) << left_shift, input1_multiplier, input1_shift)
 *   b = requantize((x2 + input2_offset) << left_shift, input2_multiplier, input2_shift)
 *   y = clamp(requantize(a + b, output_multiplier, output_shift) + output_offset,
 *             act_min, act_max)
 * input offsets are minus the input zero points; all shifts are <= 0 (right
 * shifts) except left_shift (20). */
typedef struct {
    int32_t size;                   /* output elements */
    const int32_t *shape;           /* [MCC_BCAST_DIMS] or NULL (no broadcast) */
    const int32_t *input1_strides;  /* [MCC_BCAST_DIMS], with shape */
    const int32_t *input2_strides;  /* [MCC_BCAST_DIMS], with shape */
    const int8_t *constant;         /* input 2 for mcc_add_const_s8 */
    int32_t input1_offset;
    int32_t input1_multiplier;
    int32_t input1_shift;
    int32_t input2_offset;
    int32_t input2_multiplier;
    int32_t input2_shift;
    int32_t left_shift;
    int32_t output_offset;
    int32_t output_multiplier;
    int32_t output_shift;
    int32_t act_min;
    int32_t act_max;
    /* Optional (NULL: computed per element as above). The compiler's tables of
     * 2a and 2b for every int8 value (index x + 128; doubled, which saves the
     * shift per element), and the output stage in the fast form of mcc_conv.h
     * ("Fast requantization"): y = clamp(fast_requant(a + b; output_multiplier,
     * output_hib, output_post)). Set only where the compiler proved that form
     * exact for every a + b. */
    const int32_t *input1_scaled;
    const int32_t *input2_scaled;
    int32_t output_hib;
    int32_t output_post;
    /* Optional (input1_hib 0: not set). Without the tables: a and b per
     * element in the same fast form, a = fast_requant((x1 + input1_offset)
     * << input1_left; input1_multiplier, input1_hib, input1_post), likewise
     * b, then the output stage as above. Set only where the compiler found
     * each input's form equal to TFLite's for every int8 value. */
    int32_t input1_hib, input1_post, input1_left;
    int32_t input2_hib, input2_post, input2_left;
} mcc_add_params;

int mcc_add_s8(const mcc_add_params *p, const int8_t *input1, const int8_t *input2,
               int8_t *output);

int mcc_add_const_s8(const mcc_add_params *p, const int8_t *input1, int8_t *output);

/* MUL:
 *   y = clamp(requantize((x1 + input1_offset) * (x2 + input2_offset),
 *                        output_multiplier, output_shift) + output_offset,
 *             act_min, act_max) */
typedef struct {
    int32_t size;                   /* output elements */
    const int32_t *shape;           /* [MCC_BCAST_DIMS] or NULL (no broadcast) */
    const int32_t *input1_strides;  /* [MCC_BCAST_DIMS], with shape */
    const int32_t *input2_strides;  /* [MCC_BCAST_DIMS], with shape */
    const int8_t *constant;         /* input 2 for mcc_mul_const_s8 */
    int32_t input1_offset;
    int32_t input2_offset;
    int32_t output_offset;
    int32_t output_multiplier;
    int32_t output_shift;
    int32_t act_min;
    int32_t act_max;
} mcc_mul_params;

int mcc_mul_s8(const mcc_mul_params *p, const int8_t *input1, const int8_t *input2,
               int8_t *output);

int mcc_mul_const_s8(const mcc_mul_params *p, const int8_t *input1, int8_t *output);

#endif /* MCC_ELEMENTWISE_H */
