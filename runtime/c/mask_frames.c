#include "rill_kernels.h"

/* rill_mask_frames_VARIANT: y[t][i] = mask[t] != 0 ? x[t][i] : pad, for x rill_x_t and
 * y rill_y_t (the same type) [frames][inner], mask int8 [frames] and pad a value of that type.
 * Blanks the frames of a delayed stream that carry no real data yet. x == y (in place) is
 * allowed: kept frames are then left untouched (no memcpy: overlapping copies are UB). */
void rill_mask_frames_VARIANT(int32_t frames, int32_t inner, int32_t pad, const int8_t *mask,
                              const rill_x_t *x, rill_y_t *y)
{
    int32_t t, i;

    for (t = 0; t < frames; ++t) {
        const rill_x_t *xt = x + t * inner;
        rill_y_t *yt = y + t * inner;
        if (mask[t] == 0) {
            for (i = 0; i < inner; ++i) {
                yt[i] = (rill_y_t)pad;
            }
        } else if ((const void *)xt != (const void *)yt) {
            for (i = 0; i < inner; ++i) {
                yt[i] = (rill_y_t)xt[i];
            }
        }
    }
}
