#include "rill_kernels.h"

/* rill_gemm_s8: fully connected layer, y[i][j] = clamp(sat8(round_shift(
 * bias[j] + sum_l x[i][l] * w[j][l], shift[j])), act_min, act_max); x [m][k], w [n][k]. */
void rill_gemm_s8(const rill_gemm_params_t *p, const int8_t *x, const int8_t *w,
                  const int32_t *bias, const int8_t *shift, int8_t *y)
{
    const int32_t m = p->m;
    const int32_t k = p->k;
    const int32_t n = p->n;
    const int32_t act_min = p->act_min;
    const int32_t act_max = p->act_max;
    int32_t i, j, l;

    for (i = 0; i < m; ++i) {
        const int8_t *xr = x + i * k;
        int8_t *yr = y + i * n;
        for (j = 0; j < n; ++j) {
            const int8_t *wr = w + j * k;
            int32_t acc = bias[j];
            for (l = 0; l < k; ++l) {
                acc += (int32_t)xr[l] * (int32_t)wr[l];
            }
            yr[j] = (int8_t)rill_clamp(rill_sat8(rill_round_shift(acc, shift[j])), act_min,
                                       act_max);
        }
    }
}
