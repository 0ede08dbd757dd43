#include "rill_kernels_f32.h"

/* rill_conv1d_VARIANT: grouped/dilated/strided 1-D convolution over time-major frames, float32.
 * x [t_in][c_in], w [c_out][kernel][c_in/groups], bias [c_out], y [t_out][c_out]. With
 * cg = c_in/groups, og = c_out/groups, g = co/og:
 *   acc = bias[co]; acc += w[co][k][i] * x[t*stride + k*dilation - pad_l][g*cg + i]
 * for k ascending (taps in the padding skipped) and i ascending; y = clamp(acc, act_min,
 * act_max). */
void rill_conv1d_VARIANT(const rill_conv1d_f32_params_t *p, const float *x, const float *w,
                     const float *bias, float *y)
{
    const int32_t t_in = p->t_in;
    const int32_t c_in = p->c_in;
    const int32_t c_out = p->c_out;
    const int32_t kernel = p->kernel;
    const int32_t stride = p->stride;
    const int32_t dilation = p->dilation;
    const int32_t cg = c_in / p->groups;
    const int32_t og = c_out / p->groups;
    const int32_t wrow = kernel * cg; /* weights per output channel */
    const int32_t span = t_in + p->pad_l + p->pad_r - dilation * (kernel - 1) - 1;
    const int32_t t_out = span < 0 ? 0 : span / stride + 1; /* no frame if input too short */
    int32_t t, co, k, i;

    for (t = 0; t < t_out; ++t) {
        const int32_t t0 = t * stride - p->pad_l; /* input frame of tap 0 */
        int32_t k_lo, k_hi; /* the taps that read frames inside [0, t_in) */
        float *yt = y + t * c_out;
        rill_tap_range(t0, t_in, dilation, kernel, &k_lo, &k_hi);
        for (co = 0; co < c_out; ++co) {
            const float *xg = x + (co / og) * cg;
            const float *wc = w + co * wrow;
            float acc = bias[co];
            for (k = k_lo; k < k_hi; ++k) {
                const float *xr = xg + (t0 + k * dilation) * c_in;
                const float *wr = wc + k * cg;
                for (i = 0; i < cg; ++i) {
                    acc += wr[i] * xr[i];
                }
            }
            yt[co] = rill_clamp_f32(acc, p->act_min, p->act_max);
        }
    }
}
