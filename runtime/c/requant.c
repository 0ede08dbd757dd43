#include "rill_kernels.h"

/* rill_requant_VARIANT: change the exponent (and type) of a tensor, x rill_x_t [n],
 * y rill_y_t [n]: y[i] = sat_Y(round_shift(x[i], shift)). */
void rill_requant_VARIANT(int32_t n, int32_t shift, const rill_x_t *x, rill_y_t *y)
{
    const int s = (int)shift;
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = (rill_y_t)rill_sat(rill_round_shift(x[i], s), RILL_Y_MIN, RILL_Y_MAX);
    }
}
