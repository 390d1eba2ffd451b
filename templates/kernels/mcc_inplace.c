/* mcc_inplace.c: in-place int8 kernels; see mcc_inplace.h for the memory
 * order that makes writing over the input safe. The per-value arithmetic is
 * the same as in mcc_conv.c and mcc_pool.c, so results are bit-exact with them.
 */
#include "mcc_inplace.h"

/* ------------------------------------------------------ window geometry */

typedef struct {
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t filter_h, filter_w;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_h, pad_w;
    int32_t ring_rows;
} window;

/* The input rows of the channel being computed: read where they lie in the
 * buffer (ring_rows == 0) or from copies in the ring. */
typedef struct {
    const window *g;
    const int8_t *buf;      /* the shared input/output buffer */
    int8_t *ring;
    int32_t c;
    int32_t step;           /* bytes between horizontally neighbouring pixels */
    int32_t next_row;       /* ring: the first input row not copied yet */
} channel_rows;

static void rows_begin(channel_rows *r, const window *g, const int8_t *buf, void *scratch,
                       int32_t c)
{
    r->g = g;
    r->buf = buf;
    r->ring = (int8_t *)scratch;
    r->c = c;
    r->step = g->ring_rows ? 1 : g->channels;
    r->next_row = 0;
}

/* Before output row oy is computed and written: copy every input row it reads
 * or overwrites (channel c only) into the ring. Rows leave the ring in order,
 * once no later output row reads them; the compiler sized the ring for that. */
static void rows_prepare(channel_rows *r, int32_t oy)
{
    const window *g = r->g;
    if (g->ring_rows == 0) {
        return;
    }
    const int32_t last_read = oy * g->stride_h - g->pad_h + (g->filter_h - 1) * g->dilation_h;
    /* Output row oy covers pixels [oy * out_w, (oy + 1) * out_w), the same
     * pixel slots as input pixels with those indices. */
    const int32_t last_overwritten = ((oy + 1) * g->out_w - 1) / g->in_w;
    const int32_t last = MCC_MIN(MCC_MAX(last_read, last_overwritten), g->in_h - 1);
    for (; r->next_row <= last; ++r->next_row) {
        const int8_t *src = r->buf + r->next_row * g->in_w * g->channels + r->c;
        int8_t *dst = r->ring + (r->next_row % g->ring_rows) * g->in_w;
        for (int32_t x = 0; x < g->in_w; ++x) {
            dst[x] = src[x * g->channels];
        }
    }
}

/* Input row y (0 <= y < in_h) of the channel, pixel x at [x * step]. */
static inline const int8_t *row_at(const channel_rows *r, int32_t y)
{
    const window *g = r->g;
    if (g->ring_rows == 0) {
        return r->buf + y * g->in_w * g->channels + r->c;
    }
    return r->ring + (y % g->ring_rows) * g->in_w;
}

/* ------------------------------------------------------- DEPTHWISE_CONV_2D */

int mcc_depthwise_conv2d_inplace_s8(const mcc_depthwise_conv2d_inplace_params *p,
                                    const int8_t *input, int8_t *output, void *scratch)
{
    if ((const int8_t *)output != input) {
        return MCC_ERROR;
    }
    const window g = {p->in_h, p->in_w, p->channels, p->out_h, p->out_w,
                      p->filter_h, p->filter_w, p->stride_h, p->stride_w,
                      p->dilation_h, p->dilation_w, p->pad_h, p->pad_w, p->ring_rows};
    const int32_t pad_value = -p->input_offset;   /* the input zero point */
    const int32_t taps = p->filter_h * p->filter_w;
    const int32_t span_h = (p->filter_h - 1) * p->dilation_h;
    const int32_t span_w = (p->filter_w - 1) * p->dilation_w;

    for (int32_t c = 0; c < p->channels; ++c) {
        channel_rows rows;
        rows_begin(&rows, &g, input, scratch, c);
        const int32_t tap_step_x = p->dilation_w * rows.step;
        const int8_t *w_c = p->weights + c * taps;
        int8_t *out = output + c;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            rows_prepare(&rows, oy);
            const int32_t in_y0 = oy * p->stride_h - p->pad_h;
            const int rows_inside = in_y0 >= 0 && in_y0 + span_h < p->in_h;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_w;
                const int inside = rows_inside && in_x0 >= 0 && in_x0 + span_w < p->in_w;
                const int8_t *w = w_c;
                int32_t acc = p->folded_bias[c];
                if (inside) {
                    for (int32_t ky = 0; ky < p->filter_h; ++ky) {
                        const int8_t *row = row_at(&rows, in_y0 + ky * p->dilation_h)
                                          + in_x0 * rows.step;
                        for (int32_t kx = 0; kx < p->filter_w; ++kx) {
                            acc += (int32_t)w[kx] * row[kx * tap_step_x];
                        }
                        w += p->filter_w;
                    }
                } else {
                    /* Taps in the padding read the zero point, whose product the
                     * folded bias cancels (see mcc_conv.h). */
                    for (int32_t ky = 0; ky < p->filter_h; ++ky) {
                        const int32_t in_y = in_y0 + ky * p->dilation_h;
                        const int8_t *row = in_y >= 0 && in_y < p->in_h ? row_at(&rows, in_y) : NULL;
                        for (int32_t kx = 0; kx < p->filter_w; ++kx) {
                            const int32_t in_x = in_x0 + kx * p->dilation_w;
                            const int32_t v = row != NULL && in_x >= 0 && in_x < p->in_w
                                ? row[in_x * rows.step] : pad_value;
                            acc += (int32_t)w[kx] * v;
                        }
                        w += p->filter_w;
                    }
                }
                const int32_t v = mcc_requantize(acc, p->multiplier[c], p->shift[c])
                                  + p->output_offset;
                out[(oy * p->out_w + ox) * p->channels] = (int8_t)MCC_CLAMP(v, p->act_min, p->act_max);
            }
        }
    }
    return MCC_OK;
}

/* ---------------------------------------------------------------- pooling */

/* The clipped filter range [start, end) along one axis for a window whose
 * first tap sits at input coordinate `origin` (as mcc_pool.c). */
static void window_range(int32_t origin, int32_t filter, int32_t size,
                         int32_t *start, int32_t *end)
{
    *start = MCC_MAX(0, -origin);
    *end = MCC_MIN(filter, size - origin);
}

static window pool_window(const mcc_pool_inplace_params *p)
{
    const window g = {p->in_h, p->in_w, p->channels, p->out_h, p->out_w,
                      p->filter_h, p->filter_w, p->stride_h, p->stride_w,
                      1, 1, p->pad_h, p->pad_w, p->ring_rows};
    return g;
}

/* One pooling kernel for both reductions, so the traversal exists once. */
static int pool_inplace(const mcc_pool_inplace_params *p, const int8_t *input, int8_t *output,
                        void *scratch, int average)
{
    if ((const int8_t *)output != input) {
        return MCC_ERROR;
    }
    const window g = pool_window(p);
    for (int32_t c = 0; c < p->channels; ++c) {
        channel_rows rows;
        rows_begin(&rows, &g, input, scratch, c);
        int8_t *out = output + c;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            rows_prepare(&rows, oy);
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            int32_t fy_start, fy_end;
            window_range(y0, p->filter_h, p->in_h, &fy_start, &fy_end);
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                int32_t fx_start, fx_end;
                window_range(x0, p->filter_w, p->in_w, &fx_start, &fx_end);
                if (fy_end <= fy_start || fx_end <= fx_start) {
                    return MCC_ERROR; /* TFLM fails too: a window with no tap */
                }
                int32_t v;
                if (average) {
                    const int32_t count = (fy_end - fy_start) * (fx_end - fx_start);
                    int32_t s = 0;
                    for (int32_t fy = fy_start; fy < fy_end; ++fy) {
                        const int8_t *row = row_at(&rows, y0 + fy);
                        for (int32_t fx = fx_start; fx < fx_end; ++fx) {
                            s += row[(x0 + fx) * rows.step];
                        }
                    }
                    /* Round half away from zero; C division truncates toward zero. */
                    v = s > 0 ? (s + count / 2) / count : (s - count / 2) / count;
                } else {
                    v = p->act_min;   /* max(act_min, taps) == TFLM's clamp of the max */
                    for (int32_t fy = fy_start; fy < fy_end; ++fy) {
                        const int8_t *row = row_at(&rows, y0 + fy);
                        for (int32_t fx = fx_start; fx < fx_end; ++fx) {
                            v = MCC_MAX(v, (int32_t)row[(x0 + fx) * rows.step]);
                        }
                    }
                }
                out[(oy * p->out_w + ox) * p->channels] = (int8_t)MCC_CLAMP(v, p->act_min, p->act_max);
            }
        }
    }
    return MCC_OK;
}

int mcc_avgpool_inplace_s8(const mcc_pool_inplace_params *p, const int8_t *input,
                           int8_t *output, void *scratch)
{
    return pool_inplace(p, input, output, scratch, 1);
}

int mcc_maxpool_inplace_s8(const mcc_pool_inplace_params *p, const int8_t *input,
                           int8_t *output, void *scratch)
{
    return pool_inplace(p, input, output, scratch, 0);
}

/* -------------------------------------------------------------- pointwise */

static int pointwise_inplace(const mcc_pointwise_inplace_params *p, const int8_t *input,
                             int8_t *output, void *scratch)
{
    if ((const int8_t *)output != input) {
        return MCC_ERROR;
    }
    int8_t *tmp = (int8_t *)scratch;
    const int32_t pixels = p->out_h * p->out_w;
    const int32_t q_step = p->per_channel ? 1 : 0;
    for (int32_t k = 0; k < pixels; ++k) {
        const int32_t o = p->reverse ? pixels - 1 - k : k;
        const int32_t oy = o / p->out_w;
        const int32_t ox = o - oy * p->out_w;
        const int8_t *x = input + ((oy * p->stride_h) * p->in_w + ox * p->stride_w) * p->in_c;
        const int8_t *w = p->weights;
        const int32_t *mult = p->multiplier;
        const int32_t *shift = p->shift;
        /* The whole pixel goes to the scratch first: its output bytes may
         * overlap its own input, which every output channel reads. */
        for (int32_t oc = 0; oc < p->out_c; ++oc) {
            int32_t acc = p->folded_bias[oc];
            for (int32_t i = 0; i < p->in_c; ++i) {
                acc += (int32_t)x[i] * w[i];
            }
            const int32_t v = mcc_requantize(acc, *mult, *shift) + p->output_offset;
            tmp[oc] = (int8_t)MCC_CLAMP(v, p->act_min, p->act_max);
            w += p->in_c;
            mult += q_step;
            shift += q_step;
        }
        int8_t *dst = output + o * p->out_c;
        for (int32_t oc = 0; oc < p->out_c; ++oc) {
            dst[oc] = tmp[oc];
        }
    }
    return MCC_OK;
}

int mcc_conv2d_1x1_inplace_s8(const mcc_pointwise_inplace_params *p, const int8_t *input,
                              int8_t *output, void *scratch)
{
    return pointwise_inplace(p, input, output, scratch);
}

int mcc_fully_connected_inplace_s8(const mcc_pointwise_inplace_params *p, const int8_t *input,
                                   int8_t *output, void *scratch)
{
    return pointwise_inplace(p, input, output, scratch);
}
