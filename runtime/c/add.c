#include "rill_kernels.h"

/* rill_add_s8: elementwise add of two int8 tensors with different exponents,
 * y[i] = clamp(sat8(round_shift(a[i]*2^shift_a + b[i]*2^shift_b, shift_out)), act_min, act_max). */
void rill_add_s8(const rill_add_params_t *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    const int32_t n = p->n;
    const int64_t mul_a = (int64_t)1 << p->shift_a;
    const int64_t mul_b = (int64_t)1 << p->shift_b;
    const int shift_out = (int)p->shift_out;
    const int32_t act_min = p->act_min;
    const int32_t act_max = p->act_max;
    int32_t i;

    for (i = 0; i < n; ++i) {
        const int64_t s = (int64_t)a[i] * mul_a + (int64_t)b[i] * mul_b;
        y[i] = (int8_t)rill_clamp(rill_sat8(rill_round_shift(s, shift_out)), act_min, act_max);
    }
}
