#include "rill_kernels.h"

/* Reference for `make bench` (not shipped): the requantizing add as a first version writes it,
 * both inputs aligned in int64 and rounded by the common helper per element. Same signature
 * and results as runtime/c/add.c. */
void rill_add_VARIANT(const rill_add_params_t *p, const rill_x_t *a, const rill_x2_t *b,
                      rill_y_t *y)
{
    int32_t i;

    for (i = 0; i < p->n; ++i) {
        const int64_t s = (int64_t)a[i] * ((int64_t)1 << p->shift_a) +
                          (int64_t)b[i] * ((int64_t)1 << p->shift_b);
        y[i] = (rill_y_t)rill_clamp(
            rill_sat(rill_round_shift(s, (int)p->shift_out), RILL_Y_MIN, RILL_Y_MAX),
            p->act_min, p->act_max);
    }
}
