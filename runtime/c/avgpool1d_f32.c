#include "rill_kernels_f32.h"

/* rill_avgpool1d_VARIANT: x [t_in][channels] -> y [t_out][channels], t_out as for conv1d with
 * dilation 1. sum = the in-range frames of the window added in order (from 0); count = kernel
 * when count_include_pad, else the in-range frames; y = sum / count (0 when count is 0). */
void rill_avgpool1d_VARIANT(const rill_avgpool1d_f32_params_t *p, const float *x, float *y)
{
    const int32_t t_in = p->t_in;
    const int32_t channels = p->channels;
    const int32_t kernel = p->kernel;
    const int32_t span = t_in + p->pad_l + p->pad_r - kernel;
    const int32_t t_out = span < 0 ? 0 : span / p->stride + 1;
    int32_t t, c, f;

    for (t = 0; t < t_out; ++t) {
        const int32_t t0 = t * p->stride - p->pad_l;
        const int32_t lo = t0 < 0 ? 0 : t0;
        const int32_t hi = t0 + kernel < t_in ? t0 + kernel : t_in;
        const int32_t frames = hi > lo ? hi - lo : 0;
        const int32_t count = p->count_include_pad ? kernel : frames;
        float *yt = y + t * channels;
        for (c = 0; c < channels; ++c) {
            float sum = 0.0f;
            if (count == 0) {
                yt[c] = 0.0f;
                continue;
            }
            for (f = lo; f < hi; ++f) {
                sum += x[f * channels + c];
            }
            yt[c] = sum / (float)count;
        }
    }
}
