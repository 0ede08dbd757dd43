#include "rill_kernels_f32.h"

/* rill_layernorm_f32: LayerNormalization of x [outer][length][inner] over `length` for each
 * (outer, inner), into y of the same layout, with gamma and beta [length]. Per row, in float32:
 *   mean = (sum_l x_l, from 0, l ascending) / length,
 *   var = (sum_l (x_l - mean)^2, likewise) / length,  inv = 1 / sqrtf(var + epsilon),
 *   y_l = (x_l - mean) * inv * gamma[l] + beta[l]   (length 0: nothing to do).
 * y may be x (in place): each row is read before it is written. */
void rill_layernorm_VARIANT(const rill_layernorm_params_t *p, const rill_x_t *x,
                            const rill_w_t *gamma, const rill_acc_t *beta, rill_y_t *y)
{
    const int32_t length = p->length;
    const int32_t inner = p->inner;
    int32_t o, i, l;

    for (o = 0; o < p->outer; ++o) {
        for (i = 0; i < inner; ++i) {
            const rill_x_t *xr = x + o * length * inner + i;
            rill_y_t *yr = y + o * length * inner + i;
            float mean = 0.0f, var = 0.0f, inv;
            for (l = 0; l < length; ++l) {
                mean += xr[l * inner];
            }
            mean /= (float)length;
            for (l = 0; l < length; ++l) {
                const float d = xr[l * inner] - mean;
                var += d * d;
            }
            inv = 1.0f / sqrtf(var / (float)length + p->epsilon);
            for (l = 0; l < length; ++l) {
                yr[l * inner] = (xr[l * inner] - mean) * inv * gamma[l] + beta[l];
            }
        }
    }
}
