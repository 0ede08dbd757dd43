#include "rill_kernels.h"

/* rill_matmul_VARIANT: batched matrix product of a rill_x_t and b rill_x2_t read through
 * strides, y rill_y_t written through strides (any stored layout, broadcast batch dims with
 * stride 0):
 *   y[i0,i1,i,j] = out(sum_l a[i0,i1,i,l] * b[i0,i1,l,j])
 * with x[i0,i1,r,c] = x[i0*s[0] + i1*s[1] + r*s[2] + c*s[3]] for a (a_stride), b (b_stride)
 * and y (y_stride); products and the sum (from 0, l ascending) in rill_acc_t, and `out` the
 * variant's rill_matmul_out_VARIANT: matmul.c (integer: requantized) or matmul_f32.c (float32:
 * the sum), which both share this loop nest. y must not overlap a or b. */
void rill_matmul_VARIANT(const rill_matmul_params_t *p, const rill_x_t *a, const rill_x2_t *b,
                         rill_y_t *y)
{
    const int32_t *as = p->a_stride;
    const int32_t *bs = p->b_stride;
    const int32_t *ys = p->y_stride;
    int32_t i0, i1, i, j, l;

    for (i0 = 0; i0 < p->batch0; ++i0) {
        for (i1 = 0; i1 < p->batch1; ++i1) {
            const rill_x_t *ab = a + i0 * as[0] + i1 * as[1];
            const rill_x2_t *bb = b + i0 * bs[0] + i1 * bs[1];
            rill_y_t *yb = y + i0 * ys[0] + i1 * ys[1];
            for (i = 0; i < p->m; ++i) {
                const rill_x_t *ar = ab + i * as[2];
                for (j = 0; j < p->n; ++j) {
                    const rill_x2_t *bc = bb + j * bs[3];
                    rill_acc_t acc = 0;
                    for (l = 0; l < p->k; ++l) {
                        acc += (rill_acc_t)ar[l * as[3]] * (rill_acc_t)bc[l * bs[2]];
                    }
                    yb[i * ys[2] + j * ys[3]] = rill_matmul_out_VARIANT(p, acc);
                }
            }
        }
    }
}
