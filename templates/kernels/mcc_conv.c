/* mcc_conv.c: portable int8 convolution kernels. See mcc_conv.h for the
 * arithmetic and why the folded bias is exact.
 *
 * All three kernels reduce to dot products of contiguous int8 vectors
 * (conv, fully connected) or short strided tap loops (depthwise). The
 * dot-product helpers below are the one place a SIMD variant would change.
 */
#include "mcc_conv.h"

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
