#include "rill_kernels.h"

/* Taps k in [*lo, *hi) of a dilated window starting at input position p0 stay inside [0, n):
 * the loops then skip the zero padding instead of testing every tap. */
static void rill_conv2d_taps(int32_t p0, int32_t n, int32_t dilation, int32_t kernel,
                             int32_t *lo, int32_t *hi)
{
    int32_t k_lo = p0 < 0 ? (-p0 + dilation - 1) / dilation : 0;
    int32_t k_hi = p0 < n ? (n - p0 + dilation - 1) / dilation : 0;
    if (k_hi > kernel) {
        k_hi = kernel;
    }
    if (k_lo > k_hi) {
        k_lo = k_hi;
    }
    *lo = k_lo;
    *hi = k_hi;
}

/* rill_conv2d_s8: grouped/dilated/strided 2-D convolution over (time, frequency).
 * x [t_in][c_in][f_in] (time-major), w [c_out][kernel_t][kernel_f][c_in/groups],
 * y [t_out][c_out][f_out]; out-of-range positions read 0;
 * y = clamp(sat8(round_shift(bias[co] + sum w*x, shift[co])), act_min, act_max). */
void rill_conv2d_s8(const rill_conv2d_params_t *p, const int8_t *x, const int8_t *w,
                    const int32_t *bias, const int8_t *shift, int8_t *y)
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
    const int32_t x_frame = c_in * f_in;      /* int8 values per input frame */
    const int32_t w_tap = cg;                 /* weights per (kt, kf) tap */
    const int32_t w_row = kernel_f * cg;      /* weights per kt */
    const int32_t w_out = kernel_t * w_row;   /* weights per output channel */
    int32_t t, co, f, a, b, i;

    for (t = 0; t < t_out; ++t) {
        const int32_t t0 = t * p->stride_t - p->pad_t_l;
        int32_t a_lo, a_hi;
        rill_conv2d_taps(t0, t_in, p->dilation_t, kernel_t, &a_lo, &a_hi);
        for (co = 0; co < c_out; ++co) {
            const int8_t *xg = x + (co / og) * cg * f_in; /* first channel of the group */
            const int8_t *wc = w + co * w_out;
            int8_t *yr = y + (t * c_out + co) * f_out;
            for (f = 0; f < f_out; ++f) {
                const int32_t f0 = f * p->stride_f - p->pad_f_l;
                int32_t b_lo, b_hi;
                int32_t acc = bias[co];
                rill_conv2d_taps(f0, f_in, p->dilation_f, kernel_f, &b_lo, &b_hi);
                for (a = a_lo; a < a_hi; ++a) {
                    const int8_t *xt = xg + (t0 + a * p->dilation_t) * x_frame;
                    for (b = b_lo; b < b_hi; ++b) {
                        const int8_t *xf = xt + f0 + b * p->dilation_f;
                        const int8_t *wr = wc + a * w_row + b * w_tap;
                        for (i = 0; i < cg; ++i) {
                            acc += (int32_t)wr[i] * (int32_t)xf[i * f_in];
                        }
                    }
                }
                yr[f] = (int8_t)rill_clamp(rill_sat8(rill_round_shift(acc, shift[co])),
                                           p->act_min, p->act_max);
            }
        }
    }
}
