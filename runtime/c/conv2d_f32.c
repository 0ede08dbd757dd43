#include "rill_kernels_f32.h"

/* rill_conv2d_VARIANT: conv1d_f32 with a second (frequency) axis. x [t_in][c_in][f_in] (an ONNX
 * [1, C, F, T] tensor stored time-major), w [c_out][kernel_t][kernel_f][c_in/groups],
 * bias [c_out], y [t_out][c_out][f_out]. With cg, og, g as in conv1d,
 * ti = t*stride_t + kt*dilation_t - pad_t_l, fi = f*stride_f + kf*dilation_f - pad_f_l:
 *   acc = bias[co]; acc += w[co][kt][kf][i] * x[ti][g*cg + i][fi]
 * for kt, kf, i ascending (positions in the padding skipped); y = clamp(acc, act_min,
 * act_max). */
void rill_conv2d_VARIANT(const rill_conv2d_f32_params_t *p, const float *x, const float *w,
                     const float *bias, float *y)
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
    const int32_t frame_in = c_in * f_in; /* values per input frame */
    int32_t t, co, f, a, b, i;

    for (t = 0; t < t_out; ++t) {
        const int32_t t0 = t * p->stride_t - p->pad_t_l;
        int32_t a_lo, a_hi;
        rill_tap_range(t0, t_in, p->dilation_t, kernel_t, &a_lo, &a_hi);
        for (co = 0; co < c_out; ++co) {
            const float *xg = x + (co / og) * cg * f_in;
            const float *wc = w + co * kernel_t * kernel_f * cg;
            for (f = 0; f < f_out; ++f) {
                const int32_t f0 = f * p->stride_f - p->pad_f_l;
                int32_t b_lo, b_hi;
                float acc = bias[co];
                rill_tap_range(f0, f_in, p->dilation_f, kernel_f, &b_lo, &b_hi);
                for (a = a_lo; a < a_hi; ++a) {
                    const float *xt = xg + (t0 + a * p->dilation_t) * frame_in;
                    for (b = b_lo; b < b_hi; ++b) {
                        const float *xf = xt + f0 + b * p->dilation_f;
                        const float *wr = wc + (a * kernel_f + b) * cg;
                        for (i = 0; i < cg; ++i) {
                            acc += wr[i] * xf[i * f_in];
                        }
                    }
                }
                y[(t * c_out + co) * f_out + f] = rill_clamp_f32(acc, p->act_min, p->act_max);
            }
        }
    }
}
