#include "rill_kernels.h"

/* rill_gemm_VARIANT: fully connected layer. x rill_x_t [m][k], w rill_w_t [n][k] (logically;
 * stored as p->wblock says), bias rill_acc_t [n], shift int8 [n], y rill_y_t [m][n]:
 *   y[i][j] = clamp(sat_Y(round_shift(bias[j] + sum_l x[i][l] * w[j][l], shift[j])),
 *                   act_min, act_max)
 * (the sum accumulated in rill_acc_t, the bias type).
 *
 * Layout (chosen at compile time, runtime/weight_layout.py): w in blocks of p->wblock outputs,
 * each [k][width] with the outputs innermost (the last block narrower); wblock 1 is the
 * logical layout. p->rq_bias: the bias holds the rounding constant (rill_rq_folded).
 *
 * Speed (exact integer sums: any order gives the same result): with wblock = RILL_GEMM_BLOCK
 * (16) and rq_bias (or an int64 accumulator), register blocks of two rows x 8 outputs (each
 * weight loaded once for two rows, each input once for 8 outputs, one weight pointer with
 * immediate offsets), a single row 16 (else 8) outputs at a time; the outputs of a narrower
 * last block no 8-output block covers take the plain loop. */

#define RILL_GEMM_WIDE_VARIANT (sizeof(rill_acc_t) > 4)
#define RILL_GEMM_BLOCK 16

/* One output of the blocked paths: clamp(sat_Y(round_shift(acc, s)), lo, hi), the bias
 * holding the rounding constant (rq_bias) when the accumulator is int32. */
static inline int32_t rill_gemm_out_VARIANT(rill_acc_t acc, int s, int32_t lo, int32_t hi)
{
    if (RILL_GEMM_WIDE_VARIANT) {
        return rill_requant(rill_rq_init(s), acc, 1, lo, hi);
    }
    return rill_rq_folded((int32_t)acc, s, lo, hi);
}

/* The 8 outputs of one row of a block: y[j] from a_j and shift[j]. */
static inline void rill_gemm_store8_VARIANT(rill_y_t *y, const int8_t *shift, int32_t lo,
                                            int32_t hi, rill_acc_t a0,
                                            rill_acc_t a1, rill_acc_t a2, rill_acc_t a3,
                                            rill_acc_t a4, rill_acc_t a5, rill_acc_t a6,
                                            rill_acc_t a7)
{
    y[0] = (rill_y_t)rill_gemm_out_VARIANT(a0, shift[0], lo, hi);
    y[1] = (rill_y_t)rill_gemm_out_VARIANT(a1, shift[1], lo, hi);
    y[2] = (rill_y_t)rill_gemm_out_VARIANT(a2, shift[2], lo, hi);
    y[3] = (rill_y_t)rill_gemm_out_VARIANT(a3, shift[3], lo, hi);
    y[4] = (rill_y_t)rill_gemm_out_VARIANT(a4, shift[4], lo, hi);
    y[5] = (rill_y_t)rill_gemm_out_VARIANT(a5, shift[5], lo, hi);
    y[6] = (rill_y_t)rill_gemm_out_VARIANT(a6, shift[6], lo, hi);
    y[7] = (rill_y_t)rill_gemm_out_VARIANT(a7, shift[7], lo, hi);
}

/* Rows x0 and x0 + k x 8 outputs of one weight block (wp: their first weight, wstep weights
 * per input): y0[0..7] and y0[n..n + 7]. */
static RILL_WIDE_BLOCK void rill_gemm_block2x8_VARIANT(const rill_x_t *x0, const rill_w_t *wp,
                                                      int32_t wstep, int32_t k, int32_t n,
                                                      const rill_acc_t *bias,
                                                      const int8_t *shift, int32_t lo,
                                                      int32_t hi, rill_y_t *y0)
{
    const rill_x_t *xa = x0, *xb = x0 + k;
    const rill_x_t *const xa_end = xa + k;
    rill_acc_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
    rill_acc_t a4 = bias[4], a5 = bias[5], a6 = bias[6], a7 = bias[7];
    rill_acc_t b0 = a0, b1 = a1, b2 = a2, b3 = a3, b4 = a4, b5 = a5, b6 = a6, b7 = a7;
    while (xa != xa_end) {
        const rill_acc_t u = *xa++, v = *xb++;
        rill_acc_t c = wp[0];
        a0 += c * u, b0 += c * v, c = wp[1];
        a1 += c * u, b1 += c * v, c = wp[2];
        a2 += c * u, b2 += c * v, c = wp[3];
        a3 += c * u, b3 += c * v, c = wp[4];
        a4 += c * u, b4 += c * v, c = wp[5];
        a5 += c * u, b5 += c * v, c = wp[6];
        a6 += c * u, b6 += c * v, c = wp[7];
        a7 += c * u, b7 += c * v;
        wp += wstep;
    }
    rill_gemm_store8_VARIANT(y0, shift, lo, hi, a0, a1, a2, a3, a4, a5, a6, a7);
    rill_gemm_store8_VARIANT(y0 + n, shift, lo, hi, b0, b1, b2, b3, b4, b5, b6, b7);
}

/* Row x0 x 8 outputs of one weight block, as above: y0[0..7]. */
static void rill_gemm_block1x8_VARIANT(const rill_x_t *x0, const rill_w_t *wp, int32_t wstep,
                                       int32_t k, const rill_acc_t *bias, const int8_t *shift,
                                       int32_t lo, int32_t hi, rill_y_t *y0)
{
    const rill_x_t *const x_end = x0 + k;
    rill_acc_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
    rill_acc_t a4 = bias[4], a5 = bias[5], a6 = bias[6], a7 = bias[7];
    while (x0 != x_end) {
        const rill_acc_t u = *x0++;
        a0 += u * wp[0];
        a1 += u * wp[1];
        a2 += u * wp[2];
        a3 += u * wp[3];
        a4 += u * wp[4];
        a5 += u * wp[5];
        a6 += u * wp[6];
        a7 += u * wp[7];
        wp += wstep;
    }
    rill_gemm_store8_VARIANT(y0, shift, lo, hi, a0, a1, a2, a3, a4, a5, a6, a7);
}

/* Row x0 x the 16 outputs of one weight block (wp, 16 weights per input): y0[0..15]. */
static RILL_WIDE_BLOCK void rill_gemm_block1x16_VARIANT(const rill_x_t *x0, const rill_w_t *wp,
                                                       int32_t k, const rill_acc_t *bias,
                                                       const int8_t *shift, int32_t lo,
                                                       int32_t hi, rill_y_t *y0)
{
    const rill_x_t *const x_end = x0 + k;
    rill_acc_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
    rill_acc_t a4 = bias[4], a5 = bias[5], a6 = bias[6], a7 = bias[7];
    rill_acc_t b0 = bias[8], b1 = bias[9], b2 = bias[10], b3 = bias[11];
    rill_acc_t b4 = bias[12], b5 = bias[13], b6 = bias[14], b7 = bias[15];
    while (x0 != x_end) {
        const rill_acc_t u = *x0++;
        a0 += u * wp[0], a1 += u * wp[1], a2 += u * wp[2], a3 += u * wp[3];
        a4 += u * wp[4], a5 += u * wp[5], a6 += u * wp[6], a7 += u * wp[7];
        b0 += u * wp[8], b1 += u * wp[9], b2 += u * wp[10], b3 += u * wp[11];
        b4 += u * wp[12], b5 += u * wp[13], b6 += u * wp[14], b7 += u * wp[15];
        wp += 16;
    }
    rill_gemm_store8_VARIANT(y0, shift, lo, hi, a0, a1, a2, a3, a4, a5, a6, a7);
    rill_gemm_store8_VARIANT(y0 + 8, shift + 8, lo, hi, b0, b1, b2, b3, b4, b5, b6, b7);
}

/* The plain loop: row i, outputs [j_a, j_b), any layout (p->wblock). */
static RILL_NOINLINE void rill_gemm_plain_VARIANT(const rill_gemm_params_t *p,
                                                 const rill_x_t *x, const rill_w_t *w,
                                                 const rill_acc_t *bias, const int8_t *shift,
                                                 int32_t lo, int32_t hi, int32_t i, int32_t j_a,
                                                 int32_t j_b, rill_y_t *y)
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

/* Rows i and, with `two`, i + 1 x every output: the weight blocks of RILL_GEMM_BLOCK outputs in
 * register blocks, the outputs no register block covers (a narrower last block) in the plain
 * loop. */
static void rill_gemm_rows_VARIANT(const rill_gemm_params_t *p, const rill_x_t *x,
                                   const rill_w_t *w, const rill_acc_t *bias,
                                   const int8_t *shift, int32_t lo, int32_t hi, int32_t i,
                                   int two, rill_y_t *y)
{
    const int32_t k = p->k, n = p->n;
    const rill_x_t *const xr = x + i * k;
    rill_y_t *const yr = y + i * n;
    int32_t first, j;
    for (first = 0; first < n; first += RILL_GEMM_BLOCK) {
        const int32_t width = n - first < RILL_GEMM_BLOCK ? n - first : RILL_GEMM_BLOCK;
        const rill_w_t *const wb = w + first * k;
        j = 0;
        if (two) {
            for (; j + 8 <= width; j += 8) {
                rill_gemm_block2x8_VARIANT(xr, wb + j, width, k, n, bias + first + j,
                                           shift + first + j, lo, hi, yr + first + j);
            }
        } else {
            if (width == 16 && !RILL_GEMM_WIDE_VARIANT) { /* 16 int64 accumulators would spill */
                rill_gemm_block1x16_VARIANT(xr, wb, k, bias + first, shift + first, lo, hi,
                                            yr + first);
                j = 16;
            }
            for (; j + 8 <= width; j += 8) {
                rill_gemm_block1x8_VARIANT(xr, wb + j, width, k, bias + first + j,
                                           shift + first + j, lo, hi, yr + first + j);
            }
        }
        if (j < width) {
            rill_gemm_plain_VARIANT(p, x, w, bias, shift, lo, hi, i, first + j, first + width,
                                    y);
            if (two) {
                rill_gemm_plain_VARIANT(p, x, w, bias, shift, lo, hi, i + 1, first + j,
                                        first + width, y);
            }
        }
    }
}

void rill_gemm_VARIANT(const rill_gemm_params_t *p, const rill_x_t *x, const rill_w_t *w,
                       const rill_acc_t *bias, const int8_t *shift, rill_y_t *y)
{
    const int32_t m = p->m, n = p->n;
    /* the register blocks: the bias holds the rounding constant, or an int64 accumulator */
    const int blocked = (RILL_GEMM_WIDE_VARIANT || p->rq_bias) && p->wblock == RILL_GEMM_BLOCK;
    int32_t lo, hi, i = 0;

    rill_out_bounds(RILL_Y_MIN, RILL_Y_MAX, p->act_min, p->act_max, &lo, &hi);
    while (i < m) {
        if (!blocked) {
            rill_gemm_plain_VARIANT(p, x, w, bias, shift, lo, hi, i, 0, n, y);
            i += 1;
        } else if (i + 2 <= m && !RILL_GEMM_WIDE_VARIANT) { /* two rows at a time */
            rill_gemm_rows_VARIANT(p, x, w, bias, shift, lo, hi, i, 1, y);
            i += 2;
        } else {
            rill_gemm_rows_VARIANT(p, x, w, bias, shift, lo, hi, i, 0, y);
            i += 1;
        }
    }
}
