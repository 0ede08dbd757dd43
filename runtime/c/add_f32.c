#include "rill_kernels_f32.h"

/* rill_add_VARIANT: y[i] = a[i] + b[i] for i < n. y may be a or b (in place). */
void rill_add_VARIANT(int32_t n, const float *a, const float *b, float *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = a[i] + b[i];
    }
}
