#include "rill_kernels.h"

/* rill_gemm_VARIANT: fully connected layer. x rill_x_t [m][k], w rill_w_t [n][k], bias
 * rill_acc_t [n], shift int8 [n], y rill_y_t [m][n]:
 *   y[i][j] = clamp(sat_Y(round_shift(bias[j] + sum_l x[i][l] * w[j][l], shift[j])),
 *                   act_min, act_max)
 * (the sum accumulated in rill_acc_t, the bias type).
 *
 * Speed (exact integer sums: any order gives the same result): register blocks of four rows x
 * two outputs (each weight loaded once for four rows, each input once for two outputs), else one
 * row x four outputs; inner loops walk pointers two inputs per step; the requantization is one
 * int32 rounding and one clamp per output (rill_rq_apply). */

#define RILL_GEMM_WIDE_VARIANT (sizeof(rill_acc_t) > 4)

/* Rows x0 + r*k (r = 0..3) x outputs j, j + 1 (weights w0, w0 + k): y0 + r*n + {0, 1}. */
static void rill_gemm_block4x2_VARIANT(const rill_x_t *x0, const rill_w_t *w0, int32_t k,
                                       int32_t n, const rill_acc_t *bias, const int8_t *shift,
                                       int32_t lo, int32_t hi, rill_y_t *y0)
{
    const int wide = RILL_GEMM_WIDE_VARIANT;
    const rill_x_t *xa = x0, *xb = x0 + k, *xc = xb + k, *xd = xc + k;
    const rill_w_t *wa = w0, *wb = w0 + k;
    const rill_w_t *const wa_end = wa + (k & ~(int32_t)1);
    rill_acc_t a0 = bias[0], a1 = a0, a2 = a0, a3 = a0;
    rill_acc_t b0 = bias[1], b1 = b0, b2 = b0, b3 = b0;
    rill_rq_t ra, rb;
    while (wa != wa_end) { /* two inputs per step: the pointers move once */
        rill_acc_t va = wa[0], vb = wb[0];
        a0 += va * xa[0];
        a1 += va * xb[0];
        a2 += va * xc[0];
        a3 += va * xd[0];
        b0 += vb * xa[0];
        b1 += vb * xb[0];
        b2 += vb * xc[0];
        b3 += vb * xd[0];
        va = wa[1], vb = wb[1];
        a0 += va * xa[1];
        a1 += va * xb[1];
        a2 += va * xc[1];
        a3 += va * xd[1];
        b0 += vb * xa[1];
        b1 += vb * xb[1];
        b2 += vb * xc[1];
        b3 += vb * xd[1];
        wa += 2, wb += 2, xa += 2, xb += 2, xc += 2, xd += 2;
    }
    if (k & 1) {
        const rill_acc_t va = wa[0], vb = wb[0];
        a0 += va * xa[0];
        a1 += va * xb[0];
        a2 += va * xc[0];
        a3 += va * xd[0];
        b0 += vb * xa[0];
        b1 += vb * xb[0];
        b2 += vb * xc[0];
        b3 += vb * xd[0];
    }
    ra = rill_rq_init(shift[0]);
    rb = rill_rq_init(shift[1]);
    y0[0] = (rill_y_t)rill_requant(ra, a0, wide, lo, hi);
    y0[1] = (rill_y_t)rill_requant(rb, b0, wide, lo, hi);
    y0 += n;
    y0[0] = (rill_y_t)rill_requant(ra, a1, wide, lo, hi);
    y0[1] = (rill_y_t)rill_requant(rb, b1, wide, lo, hi);
    y0 += n;
    y0[0] = (rill_y_t)rill_requant(ra, a2, wide, lo, hi);
    y0[1] = (rill_y_t)rill_requant(rb, b2, wide, lo, hi);
    y0 += n;
    y0[0] = (rill_y_t)rill_requant(ra, a3, wide, lo, hi);
    y0[1] = (rill_y_t)rill_requant(rb, b3, wide, lo, hi);
}

/* One row x0 x outputs j..j + 3 (weights w0 + q*k): y0[0..3]. */
static void rill_gemm_block1x4_VARIANT(const rill_x_t *x0, const rill_w_t *w0, int32_t k,
                                       const rill_acc_t *bias, const int8_t *shift, int32_t lo,
                                       int32_t hi, rill_y_t *y0)
{
    const int wide = RILL_GEMM_WIDE_VARIANT;
    const rill_x_t *xa = x0;
    const rill_x_t *const xa_end = xa + (k & ~(int32_t)1);
    const rill_w_t *wa = w0, *wb = w0 + k, *wc = wb + k, *wd = wc + k;
    rill_acc_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
    while (xa != xa_end) { /* two inputs per step: the pointers move once */
        const rill_acc_t u = xa[0], v = xa[1];
        a0 += u * wa[0] + v * wa[1];
        a1 += u * wb[0] + v * wb[1];
        a2 += u * wc[0] + v * wc[1];
        a3 += u * wd[0] + v * wd[1];
        xa += 2, wa += 2, wb += 2, wc += 2, wd += 2;
    }
    if (k & 1) {
        const rill_acc_t u = xa[0];
        a0 += u * wa[0];
        a1 += u * wb[0];
        a2 += u * wc[0];
        a3 += u * wd[0];
    }
    y0[0] = (rill_y_t)rill_requant(rill_rq_init(shift[0]), a0, wide, lo, hi);
    y0[1] = (rill_y_t)rill_requant(rill_rq_init(shift[1]), a1, wide, lo, hi);
    y0[2] = (rill_y_t)rill_requant(rill_rq_init(shift[2]), a2, wide, lo, hi);
    y0[3] = (rill_y_t)rill_requant(rill_rq_init(shift[3]), a3, wide, lo, hi);
}

void rill_gemm_VARIANT(const rill_gemm_params_t *p, const rill_x_t *x, const rill_w_t *w,
                       const rill_acc_t *bias, const int8_t *shift, rill_y_t *y)
{
    const int wide = RILL_GEMM_WIDE_VARIANT;
    const int32_t m = p->m;
    const int32_t k = p->k;
    const int32_t n = p->n;
    int32_t lo, hi, i = 0, j, l;

    rill_out_bounds(RILL_Y_MIN, RILL_Y_MAX, p->act_min, p->act_max, &lo, &hi);
    for (; i + 4 <= m && n >= 2; i += 4) { /* four rows at a time */
        for (j = 0; j + 2 <= n; j += 2) {
            rill_gemm_block4x2_VARIANT(x + i * k, w + j * k, k, n, bias + j, shift + j, lo, hi,
                                       y + i * n + j);
        }
        if (j < n) { /* an odd last output: row by row below */
            break;
        }
    }
    for (; i < m; ++i) {
        const rill_x_t *xr = x + i * k;
        rill_y_t *yr = y + i * n;
        for (j = 0; j + 4 <= n; j += 4) {
            rill_gemm_block1x4_VARIANT(xr, w + j * k, k, bias + j, shift + j, lo, hi, yr + j);
        }
        for (; j < n; ++j) {
            const rill_w_t *wr = w + j * k;
            rill_acc_t acc = bias[j];
            for (l = 0; l < k; ++l) {
                acc += (rill_acc_t)xr[l] * (rill_acc_t)wr[l];
            }
            yr[j] = (rill_y_t)rill_requant(rill_rq_init(shift[j]), acc, wide, lo, hi);
        }
    }
}
