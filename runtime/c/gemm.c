#include "rill_kernels.h"

/* rill_gemm_VARIANT: fully connected layer. x rill_x_t [m][k], w rill_w_t [n][k] (logically;
 * stored as p->wblock says), bias rill_acc_t [n], shift int8 [n], y rill_y_t [m][n]:
 *   y[i][j] = clamp(sat_Y(round_shift(bias[j] + sum_l x[i][l] * w[j][l], shift[j])),
 *                   act_min, act_max)
 * (the sum accumulated in rill_acc_t, the bias type).
 *
 * Layout (runtime/weight_layout.py): w in blocks of p->wblock outputs, each [k][width] with the
 * outputs innermost (the last block narrower); wblock 1 is the logical layout. p->rq_bias: the
 * bias holds the rounding constant (rill_rq_folded).
 *
 * Speed: none of its own. A gemm is the pointwise conv1d over m frames, and the code generator
 * runs gemm steps on conv1d's register blocks (codegen/kernel_select.py); this is the family's
 * plain loop, for callers of the kernel library and as its C twin of the reference. */

#define RILL_GEMM_WIDE_VARIANT (sizeof(rill_acc_t) > 4)

/* The plain loop: row i, outputs [j_a, j_b), any layout (p->wblock). */
static void rill_gemm_plain_VARIANT(const rill_gemm_params_t *p, const rill_x_t *x,
                                    const rill_w_t *w, const rill_acc_t *bias,
                                    const int8_t *shift, int32_t lo, int32_t hi, int32_t i,
                                    int32_t j_a, int32_t j_b, rill_y_t *y)
{
    const int32_t k = p->k, n = p->n, wb = p->wblock;
    const rill_x_t *xr = x + i * k;
    int32_t j, l;
    for (j = j_a; j < j_b; ++j) {
        int32_t width;
        const rill_w_t *wr = w + rill_wblock_lane(j, n, wb, k, 0, &width);
        rill_acc_t acc = bias[j];
        for (l = 0; l < k; ++l) {
            acc += (rill_acc_t)xr[l] * (rill_acc_t)wr[l * width];
        }
        y[i * n + j] = (rill_y_t)(p->rq_bias && !RILL_GEMM_WIDE_VARIANT
                                  ? rill_rq_folded((int32_t)acc, shift[j], lo, hi)
                                  : rill_requant(rill_rq_init(shift[j]), acc,
                                                 RILL_GEMM_WIDE_VARIANT, lo, hi));
    }
}

void rill_gemm_VARIANT(const rill_gemm_params_t *p, const rill_x_t *x, const rill_w_t *w,
                       const rill_acc_t *bias, const int8_t *shift, rill_y_t *y)
{
    int32_t lo, hi, i;
    rill_out_bounds(RILL_Y_MIN, RILL_Y_MAX, p->act_min, p->act_max, &lo, &hi);
    for (i = 0; i < p->m; ++i) {
        rill_gemm_plain_VARIANT(p, x, w, bias, shift, lo, hi, i, 0, p->n, y);
    }
}
