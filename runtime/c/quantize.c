#include "rill_kernels.h"

/* rill_quantize_f32_s8: y[i] = sat8(round(x[i] * 2^-exp)), the scaling in float32 (exact power
 * of two), NaN -> 0, rounded exactly with RILL_ROUNDING.
 * rill_dequantize_s8_f32: y[i] = x[i] * 2^exp in float32 (exact). */
void rill_quantize_f32_s8(int32_t n, int32_t exp, const float *x, int8_t *y)
{
    const float scale = ldexpf(1.0f, (int)-exp);
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = (int8_t)rill_round_f32_sat8(x[i] * scale);
    }
}

void rill_dequantize_s8_f32(int32_t n, int32_t exp, const int8_t *x, float *y)
{
    const float scale = ldexpf(1.0f, (int)exp);
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = (float)x[i] * scale;
    }
}
