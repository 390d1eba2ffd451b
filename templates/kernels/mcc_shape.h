/* mcc_shape.h: data movement kernels (PAD/PADV2, CONCATENATION, TRANSPOSE,
 * RESIZE_NEAREST_NEIGHBOR), int8.
 *
 * These ops copy bytes without arithmetic, exactly as TFLM does (it never
 * requantizes in them). The compiler reduces every op to a few loops over
 * contiguous runs: shapes arrive with size-1 dims dropped, adjacent
 * contiguous dims merged and leading 1s added up to a fixed rank, and
 * RESIZE_NEAREST_NEIGHBOR's float index math is already turned into tables.
 * Inputs and outputs must not overlap.
 */
#ifndef MCC_SHAPE_H
#define MCC_SHAPE_H

#include "mcc_common.h"

/* PAD / PADV2: output = input surrounded by pad_value.
 *
 * Shapes are MCC_PAD_DIMS long, outer first; along dim k the output has
 * before[k] pad elements, then in_shape[k] input elements, then pad up to
 * out_shape[k].
 */
#define MCC_PAD_DIMS 5

typedef struct {
    int32_t pad_value;           /* int8 value written into the padding */
    const int32_t *in_shape;     /* [MCC_PAD_DIMS] */
    const int32_t *out_shape;    /* [MCC_PAD_DIMS] */
    const int32_t *before;       /* [MCC_PAD_DIMS] */
} mcc_pad_params;

int mcc_pad_s8(const mcc_pad_params *p, const int8_t *input, int8_t *output);

/* CONCATENATION: for each of `outer` steps, copy chunk[i] bytes from each
 * input i in turn (chunk[i] = input i's size along the axis times the
 * product of the dims after it).
 */
typedef struct {
    int32_t num_inputs;
    int32_t outer;                 /* product of the dims before the axis */
    const int32_t *chunk;          /* [num_inputs] */
    const int8_t *const *inputs;   /* [num_inputs] */
} mcc_concat_params;

int mcc_concat_s8(const mcc_concat_params *p, int8_t *output);

/* TRANSPOSE: the output is written in order as an MCC_TRANSPOSE_DIMS-D array
 * out_shape (outer first); stepping output dim k moves in_stride[k] elements
 * through the input.
 */
#define MCC_TRANSPOSE_DIMS 5

typedef struct {
    const int32_t *out_shape;    /* [MCC_TRANSPOSE_DIMS] */
    const int32_t *in_stride;    /* [MCC_TRANSPOSE_DIMS] */
} mcc_transpose_params;

int mcc_transpose_s8(const mcc_transpose_params *p, const int8_t *input, int8_t *output);

/* RESIZE_NEAREST_NEIGHBOR over NHWC: output pixel (b, y, x) is the input
 * pixel at byte offset b * in_image + row_offset[y] + col_offset[x]
 * (channels bytes). The tables hold TFLM's float32 nearest-neighbour choice,
 * computed by the compiler (align_corners / half_pixel_centers included).
 */
typedef struct {
    int32_t batches;
    int32_t out_h, out_w;
    int32_t channels;
    int32_t in_image;            /* in_h * in_w * channels */
    const int32_t *row_offset;   /* [out_h] source row * in_w * channels */
    const int32_t *col_offset;   /* [out_w] source column * channels */
} mcc_resize_nearest_params;

int mcc_resize_nearest_s8(const mcc_resize_nearest_params *p, const int8_t *input,
                          int8_t *output);

#endif /* MCC_SHAPE_H */
