#include "rill_kernels_f32.h"

/* rill_mask_frames_VARIANT: x, y [frames][inner], mask [frames]:
 *   y[t][i] = mask[t] != 0 ? x[t][i] : pad.
 * x and y may be the same pointer (in place; no other overlap). */
void rill_mask_frames_VARIANT(int32_t frames, int32_t inner, float pad, const float *mask,
                          const float *x, float *y)
{
    int32_t t, i;

    for (t = 0; t < frames; ++t) {
        const float *xt = x + t * inner;
        float *yt = y + t * inner;
        if (mask[t] == 0.0f) {
            for (i = 0; i < inner; ++i) {
                yt[i] = pad;
            }
        } else if (xt != yt) {
            for (i = 0; i < inner; ++i) {
                yt[i] = xt[i];
            }
        }
    }
}
