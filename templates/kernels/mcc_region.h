/* mcc_region.h: copies between a full NHWC tensor and a spatial patch of it.
 *
 * Patch-based inference runs the first layers of a network one patch at a
 * time: CROP reads a patch (with its halo) out of a full tensor, PASTE writes
 * a finished patch back into the full tensor. Rows of a patch are contiguous
 * runs of w * c bytes, so each row is one memcpy.
 */
#ifndef MCC_REGION_H
#define MCC_REGION_H

#include "mcc_common.h"

/* Geometry of one copy, int8 NHWC, batch 1.
 *   full_h, full_w: the full tensor's height and width
 *   patch_h, patch_w: the patch's
 *   channels: shared by both
 *   y, x: where the patch's top-left pixel sits in the full tensor
 *         (0 <= y, y + patch_h <= full_h; likewise x) */
typedef struct {
    int32_t full_h;
    int32_t full_w;
    int32_t patch_h;
    int32_t patch_w;
    int32_t channels;
    int32_t y;
    int32_t x;
} mcc_region_params;

/* patch = full[y : y + patch_h, x : x + patch_w, :] */
int mcc_crop_2d_s8(const mcc_region_params *p, const int8_t *full, int8_t *patch);

/* full[y : y + patch_h, x : x + patch_w, :] = patch; the rest of full is left as it is. */
int mcc_paste_2d_s8(const mcc_region_params *p, const int8_t *patch, int8_t *full);

#endif /* MCC_REGION_H */
