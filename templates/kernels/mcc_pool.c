/* mcc_pool.c: pooling and reduction kernels; see mcc_pool.h for the contracts.
 *
 * Sums go four channels at a time, one word per tap: a window's taps are
 * walked once per four channels, so no accumulator array is needed. On DSP
 * cores SXTAB16 adds a word's bytes into two pairs of int16 lanes; the portable
 * loop adds them as unsigned lanes (x + 128) through masks. Maxima go four at
 * a time on DSP cores (SSUB8/SEL); the portable MAX_POOL walks the channels
 * innermost, so its loop set-up is paid once per tap, not once per channel.
 */
#include "mcc_pool.h"
#include "mcc_simd.h"

/* Sums over more than LANE_TAPS taps (sum4_chunked, ~300 B on the M7): only
 * models with such a window or MEAN keep it (pool.py pool_paths). */
#if defined(MCC_OMIT_POOL_CHUNKS)
#define POOL_CHUNKS 0
#else
#define POOL_CHUNKS 1
#endif
#if POOL_CHUNKS
const uint8_t mcc_has_path_POOL_CHUNKS = 1;
#endif

/* A window of taps over one image: `rows` rows of `width` taps; channel c of
 * tap (r, x) at first[c + r * row_step + x * tap_step]. (Indices, not end
 * pointers: a pointer a row past the tensor would be undefined.) */
typedef struct {
    const int8_t *first;
    int32_t rows, width;
    int32_t row_step, tap_step;
} tap_window;

/* The most taps a lane sums before it is added out: 256 * -128 = INT16_MIN and
 * 256 * 127 fit an int16 lane, 256 * 255 a uint16 one. */
#define LANE_TAPS 256

/* Four channels' running sums: channels (0, 2) in `even`'s lanes, (1, 3) in
 * `odd`'s. */
typedef struct {
    uint32_t even, odd;
} lanes4;

static inline void lanes_add(lanes4 *l, int32_t w)
{
#if MCC_CONV_DSP
    l->even = (uint32_t)__sxtab16((int32_t)l->even, w);
    l->odd = (uint32_t)sxtab16_ror8((int32_t)l->odd, w);
#else
    const uint32_t u = (uint32_t)w ^ UINT32_C(0x80808080);   /* x + 128, unsigned */
    l->even += u & UINT32_C(0x00FF00FF);
    l->odd += (u >> 8) & UINT32_C(0x00FF00FF);
#endif
}

/* n taps of one row. (Two a step saved a quarter of the loop but cost 66 B,
 * and person_detect's code stays under 20 KB with every byte.) */
static inline void lanes_add_row(lanes4 *l, const int8_t *row, int32_t n, int32_t step)
{
    for (int32_t x = 0; x < n; ++x) {
        lanes_add(l, load32(row + x * step));
    }
}

/* The lanes' sums of `taps` taps added into s[0..3]. */
static inline void lanes_out(lanes4 l, int32_t taps, int32_t s[4])
{
#if MCC_CONV_DSP
    (void)taps;
    s[0] += (int16_t)l.even;
    s[1] += (int16_t)l.odd;
    s[2] += (int32_t)l.even >> 16;
    s[3] += (int32_t)l.odd >> 16;
#else
    const int32_t bias = 128 * taps;
    s[0] += (int32_t)(l.even & 0xFFFFu) - bias;
    s[1] += (int32_t)(l.odd & 0xFFFFu) - bias;
    s[2] += (int32_t)(l.even >> 16) - bias;
    s[3] += (int32_t)(l.odd >> 16) - bias;
#endif
}

/* sum4 over more than LANE_TAPS taps: chunks of whole rows, or segments of a
 * row longer than that, each added out before the lanes could overflow. */
static MCC_NOINLINE void sum4_chunked(const tap_window *t, int32_t c, int32_t s[4])
{
#if POOL_CHUNKS
    const int32_t seg = MCC_MIN(t->width, LANE_TAPS);
    const int32_t chunk = LANE_TAPS / seg;
    for (int32_t x0 = 0; x0 < t->width; x0 += seg) {
        const int32_t n = MCC_MIN(seg, t->width - x0);
        for (int32_t r0 = 0; r0 < t->rows; r0 += chunk) {
            const int32_t r1 = MCC_MIN(t->rows, r0 + chunk);
            lanes4 l = {0, 0};
            for (int32_t r = r0; r < r1; ++r) {
                lanes_add_row(&l, t->first + c + r * t->row_step + x0 * t->tap_step, n, t->tap_step);
            }
            lanes_out(l, (r1 - r0) * n, s);
        }
    }
#else
    (void)t, (void)c, (void)s;   /* the kernels refuse such windows first */
#endif
}

/* Sums of channels c..c+3 over the window's taps. */
static inline void sum4(const tap_window *t, int32_t c, int32_t s[4])
{
    s[0] = s[1] = s[2] = s[3] = 0;
    if (t->rows * t->width > LANE_TAPS) {
        sum4_chunked(t, c, s);
        return;
    }
    lanes4 l = {0, 0};
    for (int32_t r = 0; r < t->rows; ++r) {
        lanes_add_row(&l, t->first + c + r * t->row_step, t->width, t->tap_step);
    }
    lanes_out(l, t->rows * t->width, s);
}

/* The sum of channel c over the window's taps. */
static int32_t sum1(const tap_window *t, int32_t c)
{
    int32_t s = 0;
    for (int32_t r = 0; r < t->rows; ++r) {
        for (int32_t x = 0; x < t->width; ++x) {
            s += t->first[c + r * t->row_step + x * t->tap_step];
        }
    }
    return s;
}

/* One output pixel's channels from its window's taps, clamped to [lo, hi]. */
typedef void pool_pixel(const tap_window *t, int32_t channels, int32_t lo, int32_t hi, int8_t *out);

/* Every output pixel of a pooling layer through `pixel`. */
static MCC_ALWAYS_INLINE int pool_run(const mcc_pool_params *p, const int8_t *input, int8_t *output,
                                      pool_pixel *pixel)
{
    /* Locals, not p->...: the int8 stores may alias *p as far as the compiler knows. */
    const int32_t channels = p->channels, out_h = p->out_h, out_w = p->out_w;
    const int32_t in_h = p->in_h, in_w = p->in_w, filter_h = p->filter_h, filter_w = p->filter_w;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w, pad_h = p->pad_h, pad_w = p->pad_w;
    const int32_t lo = p->act_min, hi = p->act_max;
    const int32_t row_step = in_w * channels;
    int8_t *out = output;

    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *image = input + (size_t)b * (size_t)in_h * (size_t)row_step;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t y0 = oy * stride_h - pad_h;
            int32_t fy_start, fy_end;
            window_range(y0, filter_h, in_h, &fy_start, &fy_end);
            for (int32_t ox = 0; ox < out_w; ++ox, out += channels) {
                const int32_t x0 = ox * stride_w - pad_w;
                int32_t fx_start, fx_end;
                window_range(x0, filter_w, in_w, &fx_start, &fx_end);
                if (fy_end <= fy_start || fx_end <= fx_start) {
                    return MCC_ERROR; /* TFLM fails too; the compiler refuses such windows */
                }
                tap_window t = {image + (y0 + fy_start) * row_step + (x0 + fx_start) * channels,
                                fy_end - fy_start, fx_end - fx_start, row_step, channels};
                if (t.rows > 1 && t.width == in_w) {   /* rows end to end: one long row */
                    t.width *= t.rows;
                    t.rows = 1;
                }
                pixel(&t, channels, lo, hi, out);
            }
        }
    }
    return MCC_OK;
}

/* Four channels a step, then one at a time, through one epilogue (its copies
 * for each cost more code than they saved time). */
static void average_pixel(const tap_window *t, int32_t channels, int32_t lo, int32_t hi, int8_t *out)
{
    const int32_t count = t->rows * t->width;
    for (int32_t c = 0, n; c < channels; c += n) {
        int32_t s[4];
        n = channels - c >= 4 ? 4 : 1;
        if (n == 4) {
            sum4(t, c, s);
        } else {
            s[0] = sum1(t, c);
        }
        for (int32_t j = 0; j < n; ++j) {
            out[c + j] = (int8_t)MCC_CLAMP(pool_average(s[j], count), lo, hi);
        }
    }
}

int mcc_avgpool_s8(const mcc_pool_params *p, const int8_t *input, int8_t *output)
{
    if (!POOL_CHUNKS && p->filter_h * p->filter_w > LANE_TAPS) {
        return MCC_ERROR;
    }
    return pool_run(p, input, output, average_pixel);
}

/* max(lo, taps...) then min(hi): TFLM's clamp of the maximum. */
static void max_pixel(const tap_window *t, int32_t channels, int32_t lo, int32_t hi, int8_t *out)
{
    /* Locals: the int8 stores may alias *t as far as the compiler knows. */
    const int8_t *first = t->first;
    const int32_t rows = t->rows, width = t->width, row_step = t->row_step, tap_step = t->tap_step;
    int32_t c = 0;
#if MCC_CONV_DSP
    const uint32_t lo4 = splat_s8(lo), hi4 = splat_s8(hi);
    for (; c + 4 <= channels; c += 4) {
        uint32_t m = lo4;
        for (int32_t r = 0; r < rows; ++r) {
            for (int32_t x = 0; x < width; ++x) {
                m = max_lanes_s8(m, (uint32_t)load32(first + c + r * row_step + x * tap_step));
            }
        }
        m = clamp_lanes_s8(m, lo4, hi4);
        memcpy(out + c, &m, 4);
    }
#endif
    /* The rest channels innermost, the running maxima in the output, seeded
     * from the first tap (every window has one; a max may see it twice). */
    for (int32_t j = c; j < channels; ++j) {
        out[j] = (int8_t)MCC_MAX(first[j], lo);
    }
    for (int32_t r = 0; r < rows; ++r) {
        for (int32_t x = 0; x < width; ++x) {
            const int8_t *tap = first + r * row_step + x * tap_step;
            for (int32_t j = c; j < channels; ++j) {
                out[j] = MCC_MAX(out[j], tap[j]);
            }
        }
    }
    for (int32_t j = c; j < channels; ++j) {
        out[j] = (int8_t)MCC_MIN(out[j], hi);
    }
}

int mcc_maxpool_s8(const mcc_pool_params *p, const int8_t *input, int8_t *output)
{
    return pool_run(p, input, output, max_pixel);
}

/* The sum of the n bytes at x: four to a word, as four channels of n / 4
 * taps, then the rest one by one. */
static int32_t sum_bytes(const int8_t *x, int32_t n)
{
    int32_t total = 0;
    if (n >= 8) {
        const tap_window words = {.first = x, .rows = 1, .width = n / 4, .row_step = 0, .tap_step = 4};
        int32_t s[4];
        sum4(&words, 0, s);
        total = s[0] + s[1] + s[2] + s[3];
    }
    for (int32_t i = n >= 8 ? n & ~3 : 0; i < n; ++i) {
        total += x[i];
    }
    return total;
}

int mcc_mean_s8(const mcc_mean_params *p, const int8_t *input, int8_t *output, void *scratch)
{
    int32_t *acc = (int32_t *)scratch;
    const int32_t *d = p->shape;
    const int32_t *s = p->out_stride;
    const int8_t *in = input;

    if (!POOL_CHUNKS && (d[3] > LANE_TAPS || d[4] > 4 * LANE_TAPS)) {
        return MCC_ERROR;
    }
    for (int32_t k = 0; k < p->outputs; ++k) {
        acc[k] = 0;
    }
    /* Walk the input in memory order, a block of d[3] x d[4] values at a time.
     * The innermost dim is either reduced (a run of d[4] bytes into one sum)
     * or kept (stride 1 after the compiler's merging): then a reduced d[3]
     * above it makes the block a window of d[3] taps over d[4] channels. */
    for (int32_t i0 = 0; i0 < d[0]; ++i0) {
        const int32_t o0 = i0 * s[0];
        for (int32_t i1 = 0; i1 < d[1]; ++i1) {
            const int32_t o1 = o0 + i1 * s[1];
            for (int32_t i2 = 0; i2 < d[2]; ++i2) {
                const int32_t o2 = o1 + i2 * s[2];
                if (s[4] == 1 && s[3] == 0) {
                    const tap_window t = {.first = in, .rows = 1, .width = d[3], .row_step = 0,
                                          .tap_step = d[4]};
                    int32_t c = 0;
                    for (; c + 4 <= d[4]; c += 4) {
                        int32_t sums[4];
                        sum4(&t, c, sums);
                        for (int32_t j = 0; j < 4; ++j) {
                            acc[o2 + c + j] += sums[j];
                        }
                    }
                    for (; c < d[4]; ++c) {
                        acc[o2 + c] += sum1(&t, c);
                    }
                    in += d[3] * d[4];
                    continue;
                }
                for (int32_t i3 = 0; i3 < d[3]; ++i3, in += d[4]) {
                    int32_t *a = acc + o2 + i3 * s[3];
                    if (s[4] == 0) {
                        *a += sum_bytes(in, d[4]);
                    } else {
                        for (int32_t i4 = 0; i4 < d[4]; ++i4) {
                            a[i4 * s[4]] += in[i4];
                        }
                    }
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
