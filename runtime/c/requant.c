#include "rill_kernels.h"

/* rill_requant_s8: change the exponent of an int8 tensor, y[i] = sat8(round_shift(x[i], shift)). */
void rill_requant_s8(int32_t n, int32_t shift, const int8_t *x, int8_t *y)
{
    const int s = (int)shift;
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = (int8_t)rill_sat8(rill_round_shift(x[i], s));
    }
}
