#include "rill_kernels.h"

/* rill_conv_transpose1d_VARIANT: grouped/dilated/strided transposed 1-D convolution over time.
 * x rill_x_t [t_in][c_in], w rill_w_t [c_out][kernel][c_in/groups], bias rill_acc_t [c_out],
 * shift int8 [c_out], y rill_y_t [t_out][c_out] with
 * t_out = (t_in-1)*stride - pad_l - pad_r + dilation*(kernel-1) + output_padding + 1:
 *   acc = bias[co] + sum over (ti, k) with ti*stride + k*dilation - pad_l == t of
 *         sum_i w[co][k][i] * x[ti][g*cg + i]          (summed in rill_acc_t)
 *   y[t][co] = clamp(sat_Y(round_shift(acc, shift[co])), act_min, act_max).
 * Computed as a gather (each output sums its own taps): no scratch, each y written once. */
void rill_conv_transpose1d_VARIANT(const rill_conv_transpose1d_params_t *p, const rill_x_t *x,
                                   const rill_w_t *w, const rill_acc_t *bias,
                                   const int8_t *shift, rill_y_t *y)
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
    const int32_t len = (t_in - 1) * stride - p->pad_l - p->pad_r + dilation * (kernel - 1)
                        + p->output_padding + 1;
    const int32_t t_out = len < 0 ? 0 : len;
    int32_t t, co, k, i;

    for (t = 0; t < t_out; ++t) {
        rill_y_t *yt = y + t * c_out;
        for (co = 0; co < c_out; ++co) {
            const rill_x_t *xg = x + (co / og) * cg;
            const rill_w_t *wc = w + co * wrow;
            rill_acc_t acc = bias[co];
            for (k = 0; k < kernel; ++k) {
                const int32_t num = t + p->pad_l - k * dilation; /* = ti * stride */
                const rill_x_t *xr;
                const rill_w_t *wr;
                if (num < 0) {
                    break; /* num only decreases with k */
                }
                if (num % stride != 0 || num / stride >= t_in) {
                    continue;
                }
                xr = xg + (num / stride) * c_in;
                wr = wc + k * cg;
                for (i = 0; i < cg; ++i) {
                    acc += (rill_acc_t)wr[i] * (rill_acc_t)xr[i];
                }
            }
            yt[co] = (rill_y_t)rill_clamp(
                rill_sat(rill_round_shift(acc, shift[co]), RILL_Y_MIN, RILL_Y_MAX), p->act_min,
                p->act_max);
        }
    }
}
