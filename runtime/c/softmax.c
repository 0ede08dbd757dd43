#include "rill_kernels.h"

/* rill_softmax_s8: softmax over the last axis of x [rows][cols] through a 256-entry exp table.
 * Per row: m = max, e_j = table[m - x[j]] (table[k] ~ exp(-k * 2^e_in) * 2^20), s = sum e_j,
 * y[j] = sat8(round_div(e_j * 2^out_bits, s)); a row with s = 0 gives 0. Subtracting the max
 * keeps every index in 0..255 and the largest term at table[0]. */
void rill_softmax_s8(const rill_softmax_params_t *p, const int32_t *table, const int8_t *x,
                     int8_t *y)
{
    const int32_t cols = p->cols;
    const int64_t mul = (int64_t)1 << p->out_bits;
    int32_t r, j;

    for (r = 0; r < p->rows; ++r) {
        const int8_t *xr = x + r * cols;
        int8_t *yr = y + r * cols;
        int32_t m = -128;
        int64_t s = 0;
        for (j = 0; j < cols; ++j) {
            if (xr[j] > m) {
                m = xr[j];
            }
        }
        for (j = 0; j < cols; ++j) {
            s += table[m - xr[j]];
        }
        for (j = 0; j < cols; ++j) {
            yr[j] = (int8_t)(s > 0 ? rill_sat8(rill_round_div(table[m - xr[j]] * mul, s)) : 0);
        }
    }
}
