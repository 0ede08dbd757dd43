#include "rill_kernels_f32.h"

/* rill_conv_transpose1d_VARIANT: ONNX ConvTranspose along time, float32. x [t_in][c_in],
 * w [c_out][kernel][c_in/groups] (ONNX W[g*cg + i][co - g*og][k] rearranged), bias [c_out],
 * y [t_out][c_out], t_out = (t_in-1)*stride - pad_l - pad_r + dilation*(kernel-1) +
 * output_padding + 1 (0 if negative). With cg, og, g as in conv1d:
 *   acc = bias[co]; for k ascending with num = t + pad_l - k*dilation >= 0, num % stride == 0
 *   and ti = num / stride < t_in: acc += w[co][k][i] * x[ti][g*cg + i] for i ascending;
 * y = clamp(acc, act_min, act_max). */
void rill_conv_transpose1d_VARIANT(const rill_conv_transpose1d_f32_params_t *p, const float *x,
                               const float *w, const float *bias, float *y)
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
        float *yt = y + t * c_out;
        for (co = 0; co < c_out; ++co) {
            const float *xg = x + (co / og) * cg;
            const float *wc = w + co * wrow;
            float acc = bias[co];
            for (k = 0; k < kernel; ++k) {
                const int32_t num = t + p->pad_l - k * dilation; /* = ti * stride */
                const float *xr;
                const float *wr;
                if (num < 0) {
                    break; /* num only decreases with k */
                }
                if (num % stride != 0 || num / stride >= t_in) {
                    continue;
                }
                xr = xg + (num / stride) * c_in;
                wr = wc + k * cg;
                for (i = 0; i < cg; ++i) {
                    acc += wr[i] * xr[i];
                }
            }
            yt[co] = rill_clamp_f32(acc, p->act_min, p->act_max);
        }
    }
}
