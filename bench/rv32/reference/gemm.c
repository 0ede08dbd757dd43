#include "rill_kernels.h"

/* Reference for `make bench` (not shipped): the fully connected layer as a first version or
 * onnx2c writes it -- three nested loops with the indices computed in the innermost one, the
 * requantization of each output by the common helpers. Same signature and results as
 * runtime/c/gemm.c. */
void rill_gemm_VARIANT(const rill_gemm_params_t *p, const rill_x_t *x, const rill_w_t *w,
                       const rill_acc_t *bias, const int8_t *shift, rill_y_t *y)
{
    int32_t i, j, l;

    for (i = 0; i < p->m; ++i) {
        for (j = 0; j < p->n; ++j) {
            rill_acc_t acc = bias[j];
            for (l = 0; l < p->k; ++l) {
                acc += (rill_acc_t)x[i * p->k + l] * (rill_acc_t)w[j * p->k + l];
            }
            y[i * p->n + j] = (rill_y_t)rill_clamp(
                rill_sat(rill_round_shift(acc, shift[j]), RILL_Y_MIN, RILL_Y_MAX), p->act_min,
                p->act_max);
        }
    }
}
