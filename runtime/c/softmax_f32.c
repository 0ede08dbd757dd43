#include "rill_kernels_f32.h"

/* rill_softmax_VARIANT: softmax over the last axis of x [rows][cols], y [rows][cols]. Per row:
 * m = max (m = x[0], m = v for every later v > m), e_j = expf(x_j - m), s = the sum of e_j
 * over j ascending, y_j = e_j / s. y may be x (in place). */
void rill_softmax_VARIANT(int32_t rows, int32_t cols, const float *x, float *y)
{
    int32_t r, j;

    for (r = 0; r < rows; ++r) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float m, s = 0.0f;
        if (cols == 0) {
            continue;
        }
        m = xr[0];
        for (j = 1; j < cols; ++j) {
            if (xr[j] > m) {
                m = xr[j];
            }
        }
        for (j = 0; j < cols; ++j) {
            yr[j] = expf(xr[j] - m);
            s += yr[j];
        }
        for (j = 0; j < cols; ++j) {
            yr[j] = yr[j] / s;
        }
    }
}
