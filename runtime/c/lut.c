#include "rill_kernels.h"

/* rill_lut_s8: elementwise 256-entry table lookup, y[i] = table[x[i] + 128]. */
void rill_lut_s8(int32_t n, const int8_t *table, const int8_t *x, int8_t *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = table[(int32_t)x[i] + 128];
    }
}
