/* mcc_shape.c: data movement kernels; see mcc_shape.h for the contracts. */
#include "mcc_shape.h"

#include <string.h>

/* Is output index i along a padded dim inside the copied input range? */
static int pad_inside(int32_t i, int32_t before, int32_t size)
{
    return i >= before && i - before < size;
}

int mcc_pad_s8(const mcc_pad_params *p, const int8_t *input, int8_t *output)
{
    const int32_t *in = p->in_shape;
    const int32_t *out = p->out_shape;
    const int32_t *lo = p->before;
    const int value = (int8_t)p->pad_value;   /* memset stores (unsigned char)value */
    const size_t row = (size_t)out[4];
    const size_t left = (size_t)lo[4];
    const size_t mid = (size_t)in[4];
    const size_t right = row - left - mid;
    const size_t plane = (size_t)out[3] * row;  /* one i2 step of output */
    const int8_t *src = input;
    int8_t *dst = output;

    /* The output is written once, in order; interior rows consume the input
     * in order too, so `src` only ever advances. */
    for (int32_t i0 = 0; i0 < out[0]; ++i0) {
        const int in0 = pad_inside(i0, lo[0], in[0]);
        for (int32_t i1 = 0; i1 < out[1]; ++i1) {
            const int in1 = in0 && pad_inside(i1, lo[1], in[1]);
            for (int32_t i2 = 0; i2 < out[2]; ++i2) {
                if (!(in1 && pad_inside(i2, lo[2], in[2]))) {
                    memset(dst, value, plane);
                    dst += plane;
                    continue;
                }
                for (int32_t i3 = 0; i3 < out[3]; ++i3) {
                    if (pad_inside(i3, lo[3], in[3])) {
                        memset(dst, value, left);
                        memcpy(dst + left, src, mid);
                        memset(dst + left + mid, value, right);
                        src += mid;
                    } else {
                        memset(dst, value, row);
                    }
                    dst += row;
                }
            }
        }
    }
    return MCC_OK;
}

int mcc_concat_s8(const mcc_concat_params *p, int8_t *output)
{
    int8_t *dst = output;
    for (int32_t o = 0; o < p->outer; ++o) {
        for (int32_t i = 0; i < p->num_inputs; ++i) {
            const size_t len = (size_t)p->chunk[i];
            memcpy(dst, p->inputs[i] + (size_t)o * len, len);
            dst += len;
        }
    }
    return MCC_OK;
}

int mcc_transpose_s8(const mcc_transpose_params *p, const int8_t *input, int8_t *output)
{
    const int32_t *d = p->out_shape;
    const int32_t *s = p->in_stride;
    int8_t *dst = output;

    for (int32_t i0 = 0; i0 < d[0]; ++i0) {
        const int8_t *p0 = input + (ptrdiff_t)i0 * s[0];
        for (int32_t i1 = 0; i1 < d[1]; ++i1) {
            const int8_t *p1 = p0 + (ptrdiff_t)i1 * s[1];
            for (int32_t i2 = 0; i2 < d[2]; ++i2) {
                const int8_t *p2 = p1 + (ptrdiff_t)i2 * s[2];
                for (int32_t i3 = 0; i3 < d[3]; ++i3) {
                    const int8_t *p3 = p2 + (ptrdiff_t)i3 * s[3];
                    if (s[4] == 1) {
                        memcpy(dst, p3, (size_t)d[4]);
                    } else {
                        for (int32_t i4 = 0; i4 < d[4]; ++i4) {
                            dst[i4] = p3[(ptrdiff_t)i4 * s[4]];
                        }
                    }
                    dst += d[4];
                }
            }
        }
    }
    return MCC_OK;
}

int mcc_resize_nearest_s8(const mcc_resize_nearest_params *p, const int8_t *input,
                          int8_t *output)
{
    const size_t channels = (size_t)p->channels;
    int8_t *dst = output;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *image = input + (size_t)b * (size_t)p->in_image;
        for (int32_t y = 0; y < p->out_h; ++y) {
            const int8_t *row = image + p->row_offset[y];
            for (int32_t x = 0; x < p->out_w; ++x) {
                memcpy(dst, row + p->col_offset[x], channels);
                dst += channels;
            }
        }
    }
    return MCC_OK;
}
