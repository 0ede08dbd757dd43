#include "rill_kernels.h"

/* rill_conv_transpose1d_s8: grouped/dilated/strided transposed 1-D convolution over time.
 * x [t_in][c_in], w [c_out][kernel][c_in/groups], y [t_out][c_out] with
 * t_out = (t_in-1)*stride - pad_l - pad_r + dilation*(kernel-1) + output_padding + 1.
 * acc = bias[co] + sum over (ti, k) with ti*stride + k*dilation - pad_l == t of
 * w[co][k][i] * x[ti][g*cg + i]; y = clamp(sat8(round_shift(acc, shift[co]))).
 * Computed as a gather (each output sums its own taps): no scratch, each y written once. */
void rill_conv_transpose1d_s8(const rill_conv_transpose1d_params_t *p, const int8_t *x,
                              const int8_t *w, const int32_t *bias, const int8_t *shift,
                              int8_t *y)
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
        int8_t *yt = y + t * c_out;
        for (co = 0; co < c_out; ++co) {
            const int8_t *xg = x + (co / og) * cg;
            const int8_t *wc = w + co * wrow;
            int32_t acc = bias[co];
            for (k = 0; k < kernel; ++k) {
                const int32_t num = t + p->pad_l - k * dilation; /* = ti * stride */
                const int8_t *xr;
                const int8_t *wr;
                if (num < 0) {
                    break; /* num only decreases with k */
                }
                if (num % stride != 0 || num / stride >= t_in) {
                    continue;
                }
                xr = xg + (num / stride) * c_in;
                wr = wc + k * cg;
                for (i = 0; i < cg; ++i) {
                    acc += (int32_t)wr[i] * (int32_t)xr[i];
                }
            }
            yt[co] = (int8_t)rill_clamp(rill_sat8(rill_round_shift(acc, shift[co])),
                                        p->act_min, p->act_max);
        }
    }
}
