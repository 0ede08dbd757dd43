#include "rill_kernels_f32.h"

/* rill_unary_VARIANT: y[i] = f(x[i], alpha, beta) for i < n, f the unary function of the
 * variant (RILL_UNARY_FN: one of the RILL_F32_* macros of rill_kernels_f32.h), e.g.
 * rill_unary_sigmoid_f32. y may be x (in place). */
void rill_unary_VARIANT(int32_t n, float alpha, float beta, const float *x, float *y)
{
    int32_t i;
    (void)alpha;
    (void)beta;
    for (i = 0; i < n; ++i) {
        const float v = x[i];
        y[i] = RILL_UNARY_FN(v, alpha, beta);
    }
}
