#include "rill_kernels_f32.h"

/* rill_maxpool1d_VARIANT: x [t_in][channels] -> y [t_out][channels], t_out as for conv1d. A tap
 * in the padding reads pad_value; m = tap 0, then m = v for every later tap v > m. */
void rill_maxpool1d_VARIANT(const rill_maxpool1d_f32_params_t *p, const float *x, float *y)
{
    const int32_t t_in = p->t_in;
    const int32_t channels = p->channels;
    const int32_t kernel = p->kernel;
    const int32_t dilation = p->dilation;
    const int32_t span = t_in + p->pad_l + p->pad_r - dilation * (kernel - 1) - 1;
    const int32_t t_out = span < 0 ? 0 : span / p->stride + 1;
    int32_t t, c, k;

    for (t = 0; t < t_out; ++t) {
        const int32_t t0 = t * p->stride - p->pad_l;
        float *yt = y + t * channels;
        for (c = 0; c < channels; ++c) {
            float m = 0.0f;
            for (k = 0; k < kernel; ++k) {
                const int32_t ti = t0 + k * dilation;
                const float v = ti >= 0 && ti < t_in ? x[ti * channels + c] : p->pad_value;
                if (k == 0 || v > m) {
                    m = v;
                }
            }
            yt[c] = m;
        }
    }
}
