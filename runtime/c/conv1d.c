#include "rill_kernels.h"

/* rill_conv1d_VARIANT: grouped/dilated/strided 1-D convolution over time-major frames.
 * x rill_x_t [t_in][c_in], w rill_w_t [c_out][kernel][c_in/groups], bias rill_acc_t [c_out],
 * shift int8 [c_out], y rill_y_t [t_out][c_out]. With cg = c_in/groups, og = c_out/groups,
 * g = co/og:
 *   acc = bias[co] + sum_{k, i} w[co][k][i] * x[t*stride + k*dilation - pad_l][g*cg + i]
 * (frames outside [0, t_in) read 0; summed in rill_acc_t, the bias type), then
 *   y[t][co] = clamp(sat_Y(round_shift(acc, shift[co])), act_min, act_max). */
void rill_conv1d_VARIANT(const rill_conv1d_params_t *p, const rill_x_t *x, const rill_w_t *w,
                         const rill_acc_t *bias, const int8_t *shift, rill_y_t *y)
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
        int32_t k_lo, k_hi; /* the taps that read frames inside [0, t_in) */
        rill_y_t *yt = y + t * c_out;
        rill_tap_range(t0, t_in, dilation, kernel, &k_lo, &k_hi);
        for (co = 0; co < c_out; ++co) {
            const rill_x_t *xg = x + (co / og) * cg;
            const rill_w_t *wc = w + co * wrow;
            rill_acc_t acc = bias[co];
            for (k = k_lo; k < k_hi; ++k) {
                const rill_x_t *xr = xg + (t0 + k * dilation) * c_in;
                const rill_w_t *wr = wc + k * cg;
                for (i = 0; i < cg; ++i) {
                    acc += (rill_acc_t)wr[i] * (rill_acc_t)xr[i];
                }
            }
            yt[co] = (rill_y_t)rill_clamp(
                rill_sat(rill_round_shift(acc, shift[co]), RILL_Y_MIN, RILL_Y_MAX), act_min,
                act_max);
        }
    }
}
