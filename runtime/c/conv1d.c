#include "rill_kernels.h"

/* rill_conv1d_s8: grouped/dilated/strided 1-D convolution over time-major int8 frames.
 * acc = bias[co] + sum_{k, i} w[co][k][i] * x[t*stride + k*dilation - pad_l][g*cg + i]
 * (frames outside [0, t_in) are zero), y[t][co] = clamp(sat8(round_shift(acc, shift[co]))). */
void rill_conv1d_s8(const rill_conv1d_params_t *p, const int8_t *x, const int8_t *w,
                    const int32_t *bias, const int8_t *shift, int8_t *y)
{
    const int32_t t_in = p->t_in;
    const int32_t c_in = p->c_in;
    const int32_t c_out = p->c_out;
    const int32_t kernel = p->kernel;
    const int32_t stride = p->stride;
    const int32_t dilation = p->dilation;
    const int32_t act_min = p->act_min;
    const int32_t act_max = p->act_max;
    const int32_t cg = c_in / p->groups;
    const int32_t og = c_out / p->groups;
    const int32_t wrow = kernel * cg; /* weights per output channel */
    const int32_t span = t_in + p->pad_l + p->pad_r - dilation * (kernel - 1) - 1;
    const int32_t t_out = span < 0 ? 0 : span / stride + 1; /* no frame if input too short */
    int32_t t, co, k, i;

    for (t = 0; t < t_out; ++t) {
        const int32_t t0 = t * stride - p->pad_l; /* input frame of tap 0 */
        /* taps k in [k_lo, k_hi) read frames inside [0, t_in) */
        int32_t k_lo = t0 < 0 ? (-t0 + dilation - 1) / dilation : 0;
        int32_t k_hi = t0 < t_in ? (t_in - t0 + dilation - 1) / dilation : 0;
        int8_t *yt = y + t * c_out;
        if (k_hi > kernel) {
            k_hi = kernel;
        }
        if (k_lo > k_hi) {
            k_lo = k_hi;
        }
        for (co = 0; co < c_out; ++co) {
            const int8_t *xg = x + (co / og) * cg;
            const int8_t *wc = w + co * wrow;
            int32_t acc = bias[co];
            for (k = k_lo; k < k_hi; ++k) {
                const int8_t *xr = xg + (t0 + k * dilation) * c_in;
                const int8_t *wr = wc + k * cg;
                for (i = 0; i < cg; ++i) {
                    acc += (int32_t)wr[i] * (int32_t)xr[i];
                }
            }
            yt[co] = (int8_t)rill_clamp(rill_sat8(rill_round_shift(acc, shift[co])),
                                        act_min, act_max);
        }
    }
}
