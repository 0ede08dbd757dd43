#include "rill_kernels_f32.h"

/* rill_gemm_VARIANT: y [m][n] = clamp(bias[j] + sum_l x[i][l] * w[j][l], act_min, act_max) with
 * x [m][k], w [n][k], bias [n]; the sum starts from the bias and runs over l ascending. */
void rill_gemm_VARIANT(const rill_gemm_f32_params_t *p, const float *x, const float *w,
                   const float *bias, float *y)
{
    const int32_t m = p->m;
    const int32_t k = p->k;
    const int32_t n = p->n;
    int32_t i, j, l;

    for (i = 0; i < m; ++i) {
        const float *xr = x + i * k;
        for (j = 0; j < n; ++j) {
            const float *wr = w + j * k;
            float acc = bias[j];
            for (l = 0; l < k; ++l) {
                acc += xr[l] * wr[l];
            }
            y[i * n + j] = rill_clamp_f32(acc, p->act_min, p->act_max);
        }
    }
}
