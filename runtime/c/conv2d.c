#include "rill_kernels.h"

/* rill_conv2d_VARIANT: grouped/dilated/strided 2-D convolution over (time, frequency).
 * x rill_x_t [t_in][c_in][f_in] (time-major), w rill_w_t [c_out][kernel_t][kernel_f][c_in/groups],
 * bias rill_acc_t [c_out], shift int8 [c_out], y rill_y_t [t_out][c_out][f_out]. With
 * ti = t*stride_t + kt*dilation_t - pad_t_l, fi = f*stride_f + kf*dilation_f - pad_f_l:
 *   acc = bias[co] + sum_{kt, kf, i} w[co][kt][kf][i] * x[ti][g*cg + i][fi]
 * (positions outside [0, t_in) x [0, f_in) read 0; summed in rill_acc_t), then
 *   y[t][co][f] = clamp(sat_Y(round_shift(acc, shift[co])), act_min, act_max). */
void rill_conv2d_VARIANT(const rill_conv2d_params_t *p, const rill_x_t *x, const rill_w_t *w,
                         const rill_acc_t *bias, const int8_t *shift, rill_y_t *y)
{
    const int32_t t_in = p->t_in;
    const int32_t f_in = p->f_in;
    const int32_t c_in = p->c_in;
    const int32_t c_out = p->c_out;
    const int32_t kernel_t = p->kernel_t;
    const int32_t kernel_f = p->kernel_f;
    const int32_t cg = c_in / p->groups;
    const int32_t og = c_out / p->groups;
    const int32_t span_t = t_in + p->pad_t_l + p->pad_t_r - p->dilation_t * (kernel_t - 1) - 1;
    const int32_t span_f = f_in + p->pad_f_l + p->pad_f_r - p->dilation_f * (kernel_f - 1) - 1;
    const int32_t t_out = span_t < 0 ? 0 : span_t / p->stride_t + 1;
    const int32_t f_out = span_f < 0 ? 0 : span_f / p->stride_f + 1;
    const int32_t x_frame = c_in * f_in;    /* values per input frame */
    const int32_t w_tap = cg;               /* weights per (kt, kf) tap */
    const int32_t w_row = kernel_f * cg;    /* weights per kt */
    const int32_t w_out = kernel_t * w_row; /* weights per output channel */
    int32_t t, co, f, a, b, i;

    for (t = 0; t < t_out; ++t) {
        const int32_t t0 = t * p->stride_t - p->pad_t_l;
        int32_t a_lo, a_hi;
        rill_tap_range(t0, t_in, p->dilation_t, kernel_t, &a_lo, &a_hi);
        for (co = 0; co < c_out; ++co) {
            const rill_x_t *xg = x + (co / og) * cg * f_in; /* first channel of the group */
            const rill_w_t *wc = w + co * w_out;
            rill_y_t *yr = y + (t * c_out + co) * f_out;
            for (f = 0; f < f_out; ++f) {
                const int32_t f0 = f * p->stride_f - p->pad_f_l;
                int32_t b_lo, b_hi;
                rill_acc_t acc = bias[co];
                rill_tap_range(f0, f_in, p->dilation_f, kernel_f, &b_lo, &b_hi);
                for (a = a_lo; a < a_hi; ++a) {
                    const rill_x_t *xt = xg + (t0 + a * p->dilation_t) * x_frame;
                    for (b = b_lo; b < b_hi; ++b) {
                        const rill_x_t *xf = xt + f0 + b * p->dilation_f;
                        const rill_w_t *wr = wc + a * w_row + b * w_tap;
                        for (i = 0; i < cg; ++i) {
                            acc += (rill_acc_t)wr[i] * (rill_acc_t)xf[i * f_in];
                        }
                    }
                }
                yr[f] = (rill_y_t)rill_clamp(
                    rill_sat(rill_round_shift(acc, shift[co]), RILL_Y_MIN, RILL_Y_MAX),
                    p->act_min, p->act_max);
            }
        }
    }
}
