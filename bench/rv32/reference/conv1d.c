#include "rill_kernels.h"

/* Reference for `make bench` (not shipped): the 1-D convolution as a first version or onnx2c
 * writes it -- for every output frame and channel, every tap and input channel, the padding
 * tested per tap, the indices recomputed in the innermost loop, the requantization of each
 * output by the common helpers. Same signature and results as runtime/c/conv1d.c. */
void rill_conv1d_VARIANT(const rill_conv1d_params_t *p, const rill_x_t *x, const rill_w_t *w,
                         const rill_acc_t *bias, const int8_t *shift, rill_y_t *y)
{
    const int32_t cg = p->c_in / p->groups;
    const int32_t og = p->c_out / p->groups;
    const int32_t span = p->t_in + p->pad_l + p->pad_r - p->dilation * (p->kernel - 1) - 1;
    const int32_t t_out = span < 0 ? 0 : span / p->stride + 1;
    int32_t t, co, k, i;

    for (t = 0; t < t_out; ++t) {
        for (co = 0; co < p->c_out; ++co) {
            rill_acc_t acc = bias[co];
            for (k = 0; k < p->kernel; ++k) {
                const int32_t ti = t * p->stride + k * p->dilation - p->pad_l;
                if (ti < 0 || ti >= p->t_in) {
                    continue;
                }
                for (i = 0; i < cg; ++i) {
                    acc += (rill_acc_t)x[ti * p->c_in + (co / og) * cg + i] *
                           (rill_acc_t)w[(co * p->kernel + k) * cg + i];
                }
            }
            y[t * p->c_out + co] = (rill_y_t)rill_clamp(
                rill_sat(rill_round_shift(acc, shift[co]), RILL_Y_MIN, RILL_Y_MAX), p->act_min,
                p->act_max);
        }
    }
}
