/* mcc_region.c: see mcc_region.h. */
#include "mcc_region.h"

#include <string.h>

/* Patch rows are short (a few dozen bytes): word moves inline beat a library
 * call that copies them a byte at a time when unaligned. A memmove: each
 * word is read before the one it may overlap is written, forward when dst
 * is below src and backward when above. */
static void copy_row(int8_t *dst, const int8_t *src, size_t n)
{
    uint32_t v;
    if (dst <= src) {
        for (; n >= 4; n -= 4, dst += 4, src += 4) {
            memcpy(&v, src, 4);
            memcpy(dst, &v, 4);
        }
        for (; n > 0; --n) {
            *dst++ = *src++;
        }
        return;
    }
    for (; n >= 4; n -= 4) {
        memcpy(&v, src + n - 4, 4);
        memcpy(dst + n - 4, &v, 4);
    }
    for (; n > 0; --n) {
        dst[n - 1] = src[n - 1];
    }
}

int mcc_crop_2d_s8(const mcc_region_params *p, const int8_t *full, int8_t *patch)
{
    const size_t row = (size_t)p->patch_w * (size_t)p->channels;
    for (int32_t r = 0; r < p->patch_h; r++) {
        const int8_t *src = full + (((size_t)(p->y + r) * (size_t)p->full_w + (size_t)p->x) * (size_t)p->channels);
        /* A crop out of a larger patch of the same buffer may overlap it. */
        copy_row(patch + (size_t)r * row, src, row);
    }
    return MCC_OK;
}

int mcc_paste_2d_s8(const mcc_region_params *p, const int8_t *patch, int8_t *full)
{
    const size_t row = (size_t)p->patch_w * (size_t)p->channels;
    for (int32_t r = 0; r < p->patch_h; r++) {
        int8_t *dst = full + (((size_t)(p->y + r) * (size_t)p->full_w + (size_t)p->x) * (size_t)p->channels);
        copy_row(dst, patch + (size_t)r * row, row);
    }
    return MCC_OK;
}
