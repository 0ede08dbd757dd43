#include "rill_kernels_f32.h"

/* rill_reduce_VARIANT: reduce the middle axis of x [outer][length][inner] to y [outer][inner]:
 * mean (op RILL_REDUCE_MEAN: the sum over l ascending from 0, divided by length), max
 * (RILL_REDUCE_MAX: m = x[0], m = v for every later v > m) or sum (RILL_REDUCE_SUM).
 * length 0 gives 0. */
void rill_reduce_VARIANT(const rill_reduce_f32_params_t *p, const float *x, float *y)
{
    const int32_t length = p->length;
    const int32_t inner = p->inner;
    int32_t o, i, l;

    for (o = 0; o < p->outer; ++o) {
        const float *xo = x + o * length * inner;
        for (i = 0; i < inner; ++i) {
            float acc = 0.0f;
            if (p->op == RILL_REDUCE_MAX && length > 0) {
                acc = xo[i];
                for (l = 1; l < length; ++l) {
                    if (xo[l * inner + i] > acc) {
                        acc = xo[l * inner + i];
                    }
                }
            } else {
                for (l = 0; l < length; ++l) {
                    acc += xo[l * inner + i];
                }
                if (p->op == RILL_REDUCE_MEAN && length > 0) {
                    acc /= (float)length;
                }
            }
            y[o * inner + i] = acc;
        }
    }
}
