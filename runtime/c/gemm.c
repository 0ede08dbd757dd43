#include "rill_kernels.h"

/* rill_gemm_VARIANT: fully connected layer. x rill_x_t [m][k], w rill_w_t [n][k], bias
 * rill_acc_t [n], shift int8 [n], y rill_y_t [m][n]:
 *   y[i][j] = clamp(sat_Y(round_shift(bias[j] + sum_l x[i][l] * w[j][l], shift[j])),
 *                   act_min, act_max)
 * (the sum accumulated in rill_acc_t, the bias type). */
void rill_gemm_VARIANT(const rill_gemm_params_t *p, const rill_x_t *x, const rill_w_t *w,
                       const rill_acc_t *bias, const int8_t *shift, rill_y_t *y)
{
    const int32_t m = p->m;
    const int32_t k = p->k;
    const int32_t n = p->n;
    const int32_t act_min = p->act_min;
    const int32_t act_max = p->act_max;
    int32_t i, j, l;

    for (i = 0; i < m; ++i) {
        const rill_x_t *xr = x + i * k;
        rill_y_t *yr = y + i * n;
        for (j = 0; j < n; ++j) {
            const rill_w_t *wr = w + j * k;
            rill_acc_t acc = bias[j];
            for (l = 0; l < k; ++l) {
                acc += (rill_acc_t)xr[l] * (rill_acc_t)wr[l];
            }
            yr[j] = (rill_y_t)rill_clamp(
                rill_sat(rill_round_shift(acc, shift[j]), RILL_Y_MIN, RILL_Y_MAX), act_min,
                act_max);
        }
    }
}
