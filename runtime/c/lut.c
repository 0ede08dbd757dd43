#include "rill_kernels.h"

/* rill_lut_VARIANT: elementwise table lookup, x rill_x_t [n], y rill_y_t [n].
 * int8 input: table rill_table_t (the output type) [256], y[i] = table[x[i] + 128]
 *   (frac_bits unused, 0).
 * int16 input: an interpolated int32 table of 2^(16 - frac_bits) + 1 knots: with
 *   u = x[i] + 32768, k = u >> frac_bits, f = u & (2^frac_bits - 1),
 *   y[i] = sat_Y(table[k] + round_shift((table[k+1] - table[k]) * f, frac_bits))
 *   (in int64; frac_bits in [0, 16]). */
void rill_lut_VARIANT(int32_t n, int32_t frac_bits, const rill_table_t *table,
                      const rill_x_t *x, rill_y_t *y)
{
    int32_t i;
    if (RILL_X_BITS == 8) {
        const rill_table_t *const mid = table + 128; /* the entry of x = 0 */
        for (i = 0; i + 8 <= n; i += 8) { /* eight lookups per step: the pointers move once */
            const int32_t a = x[i], b = x[i + 1], c = x[i + 2], d = x[i + 3];
            const int32_t e = x[i + 4], f = x[i + 5], g = x[i + 6], h = x[i + 7];
            y[i] = (rill_y_t)mid[a];
            y[i + 1] = (rill_y_t)mid[b];
            y[i + 2] = (rill_y_t)mid[c];
            y[i + 3] = (rill_y_t)mid[d];
            y[i + 4] = (rill_y_t)mid[e];
            y[i + 5] = (rill_y_t)mid[f];
            y[i + 6] = (rill_y_t)mid[g];
            y[i + 7] = (rill_y_t)mid[h];
        }
        for (; i < n; ++i) {
            y[i] = (rill_y_t)mid[x[i]];
        }
    } else {
        const int32_t mask = ((int32_t)1 << frac_bits) - 1;
        for (i = 0; i < n; ++i) {
            const int32_t u = (int32_t)x[i] - RILL_X_MIN;
            const int32_t k = u >> frac_bits;
            const int64_t t0 = table[k];
            const int64_t v = t0 + rill_round_shift((table[k + 1] - t0) * (u & mask), frac_bits);
            y[i] = (rill_y_t)rill_sat(v, RILL_Y_MIN, RILL_Y_MAX);
        }
    }
}
