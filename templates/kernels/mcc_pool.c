/* mcc_pool.c: pooling and reduction kernels; see mcc_pool.h for the contracts. */
#include "mcc_pool.h"

/* The clipped filter range [start, end) along one axis for a window whose
 * first tap sits at input coordinate `origin`. */
static void window_range(int32_t origin, int32_t filter, int32_t size,
                         int32_t *start, int32_t *end)
{
    *start = MCC_MAX(0, -origin);
    *end = MCC_MIN(filter, size - origin);
}

int mcc_avgpool_s8(const mcc_pool_params *p, const int8_t *input, int8_t *output,
                   void *scratch)
{
    int32_t *acc = (int32_t *)scratch;
    const int32_t channels = p->channels;
    const size_t row_len = (size_t)p->in_w * (size_t)channels;
    int8_t *out = output;

    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *image = input + (size_t)b * (size_t)p->in_h * row_len;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            int32_t fy_start, fy_end;
            window_range(y0, p->filter_h, p->in_h, &fy_start, &fy_end);
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                int32_t fx_start, fx_end;
                window_range(x0, p->filter_w, p->in_w, &fx_start, &fx_end);
                if (fy_end <= fy_start || fx_end <= fx_start) {
                    return MCC_ERROR; /* TFLM fails too: no tap to average */
                }
                const int32_t count = (fy_end - fy_start) * (fx_end - fx_start);

                for (int32_t c = 0; c < channels; ++c) {
                    acc[c] = 0;
                }
                for (int32_t fy = fy_start; fy < fy_end; ++fy) {
                    const int8_t *tap = image + (size_t)(y0 + fy) * row_len
                                        + (size_t)(x0 + fx_start) * (size_t)channels;
                    for (int32_t fx = fx_start; fx < fx_end; ++fx, tap += channels) {
                        for (int32_t c = 0; c < channels; ++c) {
                            acc[c] += tap[c];
                        }
                    }
                }
                /* Round half away from zero; C division truncates toward zero. */
                for (int32_t c = 0; c < channels; ++c) {
                    const int32_t s = acc[c];
                    int32_t v = s > 0 ? (s + count / 2) / count : (s - count / 2) / count;
                    v = MCC_CLAMP(v, p->act_min, p->act_max);
                    out[c] = (int8_t)v;
                }
                out += channels;
            }
        }
    }
    return MCC_OK;
}

int mcc_maxpool_s8(const mcc_pool_params *p, const int8_t *input, int8_t *output)
{
    const int32_t channels = p->channels;
    const size_t row_len = (size_t)p->in_w * (size_t)channels;
    /* max(act_min, taps...) then min(act_max) equals TFLM's clamp of the max. */
    const int8_t lo = (int8_t)p->act_min;
    const int8_t hi = (int8_t)p->act_max;
    int8_t *out = output;

    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *image = input + (size_t)b * (size_t)p->in_h * row_len;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            int32_t fy_start, fy_end;
            window_range(y0, p->filter_h, p->in_h, &fy_start, &fy_end);
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                int32_t fx_start, fx_end;
                window_range(x0, p->filter_w, p->in_w, &fx_start, &fx_end);

                for (int32_t c = 0; c < channels; ++c) {
                    out[c] = lo;
                }
                for (int32_t fy = fy_start; fy < fy_end; ++fy) {
                    const int8_t *tap = image + (size_t)(y0 + fy) * row_len
                                        + (size_t)(x0 + fx_start) * (size_t)channels;
                    for (int32_t fx = fx_start; fx < fx_end; ++fx, tap += channels) {
                        for (int32_t c = 0; c < channels; ++c) {
                            out[c] = MCC_MAX(out[c], tap[c]);
                        }
                    }
                }
                for (int32_t c = 0; c < channels; ++c) {
                    out[c] = MCC_MIN(out[c], hi);
                }
                out += channels;
            }
        }
    }
    return MCC_OK;
}

int mcc_mean_s8(const mcc_mean_params *p, const int8_t *input, int8_t *output, void *scratch)
{
    int32_t *acc = (int32_t *)scratch;
    const int32_t *d = p->shape;
    const int32_t *s = p->out_stride;
    const int8_t *in = input;

    for (int32_t k = 0; k < p->outputs; ++k) {
        acc[k] = 0;
    }
    /* Walk the input in memory order; the innermost dim is either reduced
     * (one running sum) or kept (stride 1 after the compiler's merging). */
    for (int32_t i0 = 0; i0 < d[0]; ++i0) {
        const int32_t o0 = i0 * s[0];
        for (int32_t i1 = 0; i1 < d[1]; ++i1) {
            const int32_t o1 = o0 + i1 * s[1];
            for (int32_t i2 = 0; i2 < d[2]; ++i2) {
                const int32_t o2 = o1 + i2 * s[2];
                for (int32_t i3 = 0; i3 < d[3]; ++i3) {
                    int32_t *a = acc + o2 + i3 * s[3];
                    if (s[4] == 0) {
                        int32_t sum = 0;
                        for (int32_t i4 = 0; i4 < d[4]; ++i4) {
                            sum += in[i4];
                        }
                        *a += sum;
                    } else {
                        for (int32_t i4 = 0; i4 < d[4]; ++i4) {
                            a[i4 * s[4]] += in[i4];
                        }
                    }
                    in += d[4];
                }
            }
        }
    }
    for (int32_t k = 0; k < p->outputs; ++k) {
        int32_t v = mcc_requantize(acc[k] + p->input_offset_n, p->multiplier, p->shift);
        v += p->output_offset;
        output[k] = (int8_t)MCC_CLAMP(v, -128, 127);
    }
    return MCC_OK;
}
