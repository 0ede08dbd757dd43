#include "rill_kernels.h"

/* Reference for `make bench` (not shipped): the int8 table lookup as a first version writes
 * it, one indexed load per element (int16 inputs: the interpolated table, per element). Same
 * signature and results as runtime/c/lut.c. */
void rill_lut_VARIANT(int32_t n, int32_t frac_bits, const rill_table_t *table,
                      const rill_x_t *x, rill_y_t *y)
{
    int32_t i;

    for (i = 0; i < n; ++i) {
        if (RILL_X_BITS == 8) {
            y[i] = (rill_y_t)table[(int32_t)x[i] + 128];
        } else {
            const int32_t u = (int32_t)x[i] - RILL_X_MIN;
            const int32_t k = u >> frac_bits;
            const int64_t t0 = table[k];
            const int64_t f = (int64_t)(u & (((int32_t)1 << frac_bits) - 1));
            y[i] = (rill_y_t)rill_sat(t0 + rill_round_shift((table[k + 1] - t0) * f, frac_bits),
                                      RILL_Y_MIN, RILL_Y_MAX);
        }
    }
}
