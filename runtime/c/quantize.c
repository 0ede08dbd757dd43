#include "rill_kernels.h"

/* rill_quantize_f32_VARIANT: float32 -> rill_y_t, y[i] = sat_Y(round(x[i] * 2^-exp)): the
 * scaling in float32 (an exact power of two), NaN -> 0, rounded exactly with RILL_ROUNDING.
 * rill_dequantize_VARIANT_f32: rill_x_t -> float32, y[i] = x[i] * 2^exp in float32 (exact).
 * (rill_x_t and rill_y_t are the same integer type.) */
void rill_quantize_f32_VARIANT(int32_t n, int32_t exp, const float *x, rill_y_t *y)
{
    const float scale = ldexpf(1.0f, (int)-exp);
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = (rill_y_t)rill_round_f32_sat(x[i] * scale, RILL_Y_MIN, RILL_Y_MAX);
    }
}

void rill_dequantize_VARIANT_f32(int32_t n, int32_t exp, const rill_x_t *x, float *y)
{
    const float scale = ldexpf(1.0f, (int)exp);
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = (float)x[i] * scale;
    }
}
