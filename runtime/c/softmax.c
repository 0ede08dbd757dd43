#include "rill_kernels.h"

/* exp(-d * 2^e_in) * 2^scale of softmax for a distance d >= 0 below the row max: the low
 * table part at d's low lo_bits bits times the high part at the rest, rescaled; 0 once the
 * high index passes hi_len (where exp has rounded to 0). Entries in [0, 2^30], the high ones
 * in [0, 2^scale_bits]: the product fits int64 and the result is in [0, 2^30]. */
static int64_t rill_softmax_exp_VARIANT(const rill_softmax_params_t *p, const int32_t *table,
                                        int32_t d)
{
    const int32_t k = d >> p->lo_bits;
    const int32_t lo = d & (((int32_t)1 << p->lo_bits) - 1);
    if (k >= p->hi_len) {
        return 0;
    }
    return rill_round_shift((int64_t)table[lo] * table[((int32_t)1 << p->lo_bits) + k],
                            p->scale_bits);
}

/* rill_softmax_VARIANT: softmax over the last axis of x rill_x_t [rows][cols] into
 * y rill_y_t [rows][cols] (exponent -out_frac). table int32 [2^lo_bits + hi_len]: the low part
 * lo[j] ~ exp(-j * 2^e_in) * 2^S, the high part hi[k] ~ exp(-k * 2^lo_bits * 2^e_in) *
 * 2^scale_bits (see softmax_plan). Per row: m = max_j x[j], d_j = m - x[j] >= 0,
 *   e_j = d_j >> lo_bits < hi_len ? round_shift(lo[d_j & (2^lo_bits-1)] * hi[d_j >> lo_bits],
 *                                               scale_bits) : 0,
 *   s = sum_j e_j (int64),  y[j] = sat_Y(round_div(e_j * 2^out_frac, s));
 * a row with s = 0 gives 0. Subtracting the max keeps the largest term at d = 0. */
void rill_softmax_VARIANT(const rill_softmax_params_t *p, const int32_t *table, const rill_x_t *x,
                          rill_y_t *y)
{
    const int32_t cols = p->cols;
    const int64_t mul = (int64_t)1 << p->out_frac;
    int32_t r, j;

    for (r = 0; r < p->rows; ++r) {
        const rill_x_t *xr = x + r * cols;
        rill_y_t *yr = y + r * cols;
        int32_t m = RILL_X_MIN;
        int64_t s = 0;
        for (j = 0; j < cols; ++j) {
            if (xr[j] > m) {
                m = xr[j];
            }
        }
        for (j = 0; j < cols; ++j) {
            s += rill_softmax_exp_VARIANT(p, table, m - xr[j]);
        }
        for (j = 0; j < cols; ++j) {
            const int64_t e = rill_softmax_exp_VARIANT(p, table, m - xr[j]);
            yr[j] = (rill_y_t)(s > 0 ? rill_sat(rill_round_div(e * mul, s), RILL_Y_MIN,
                                                RILL_Y_MAX)
                                     : 0);
        }
    }
}
