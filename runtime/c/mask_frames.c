#include "rill_kernels.h"

/* rill_mask_frames_s8: y[t][i] = mask[t] != 0 ? x[t][i] : pad, for x/y [frames][inner].
 * Blanks the frames of a delayed stream that carry no real data yet. x == y (in place) is
 * allowed: kept frames are then left untouched (no memcpy: overlapping copies are UB). */
void rill_mask_frames_s8(int32_t frames, int32_t inner, int32_t pad, const int8_t *mask,
                         const int8_t *x, int8_t *y)
{
    int32_t t, i;

    for (t = 0; t < frames; ++t) {
        const int8_t *xt = x + t * inner;
        int8_t *yt = y + t * inner;
        if (mask[t] == 0) {
            for (i = 0; i < inner; ++i) {
                yt[i] = (int8_t)pad;
            }
        } else if (xt != yt) {
            for (i = 0; i < inner; ++i) {
                yt[i] = xt[i];
            }
        }
    }
}
