/* mcc_region.c: see mcc_region.h. */
#include "mcc_region.h"

#include <string.h>

int mcc_crop_2d_s8(const mcc_region_params *p, const int8_t *full, int8_t *patch)
{
    const size_t row = (size_t)p->patch_w * (size_t)p->channels;
    for (int32_t r = 0; r < p->patch_h; r++) {
        const int8_t *src = full + (((size_t)(p->y + r) * (size_t)p->full_w + (size_t)p->x) * (size_t)p->channels);
        /* memmove: a crop out of a larger patch of the same buffer may overlap */
        memmove(patch + (size_t)r * row, src, row);
    }
    return MCC_OK;
}

int mcc_paste_2d_s8(const mcc_region_params *p, const int8_t *patch, int8_t *full)
{
    const size_t row = (size_t)p->patch_w * (size_t)p->channels;
    for (int32_t r = 0; r < p->patch_h; r++) {
        int8_t *dst = full + (((size_t)(p->y + r) * (size_t)p->full_w + (size_t)p->x) * (size_t)p->channels);
        memcpy(dst, patch + (size_t)r * row, row);
    }
    return MCC_OK;
}
