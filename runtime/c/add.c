#include "rill_kernels.h"

/* rill_add_VARIANT: elementwise add of two tensors with different exponents (and types),
 * a rill_x_t [n], b rill_x2_t [n], y rill_y_t [n]; shift_a, shift_b in [0, 47] align both
 * inputs to their common finer exponent (|a*2^shift_a| + |b*2^shift_b| <= 2^63 in int64):
 *   y[i] = clamp(sat_Y(round_shift(a[i]*2^shift_a + b[i]*2^shift_b, shift_out)),
 *                act_min, act_max).
 * Speed: when both aligned inputs stay within 2^29 (the usual case: a few bits of alignment),
 * the sum and its rounding are int32 (the rounding constant added to the sum, rill_rq_folded,
 * when 0 < shift_out < 32; else rill_rq_apply); otherwise int64. */
void rill_add_VARIANT(const rill_add_params_t *p, const rill_x_t *a, const rill_x2_t *b,
                      rill_y_t *y)
{
    const int32_t n = p->n;
    const int shift_out = (int)p->shift_out;
    const int32_t bits_b = (int32_t)sizeof(rill_x2_t) * 8;
    int32_t lo, hi, i;

    rill_out_bounds(RILL_Y_MIN, RILL_Y_MAX, p->act_min, p->act_max, &lo, &hi);
    if (RILL_X_BITS - 1 + p->shift_a <= 29 && bits_b - 1 + p->shift_b <= 29) {
        const int32_t mul_a = (int32_t)1 << p->shift_a;
        const int32_t mul_b = (int32_t)1 << p->shift_b;
        const rill_rq_t r = rill_rq_init(shift_out);
        if (r.fast) { /* |sum| < 2^30: room for the rounding constant of rill_rq_folded */
            const int32_t c = (int32_t)r.bias + RILL_ROUNDING;
            const rill_x_t *const a_end = a + n;
            while (a != a_end) {
                *y++ = (rill_y_t)rill_rq_folded((int32_t)*a++ * mul_a + (int32_t)*b++ * mul_b + c,
                                                shift_out, lo, hi);
            }
            return;
        }
        for (i = 0; i < n; ++i) {
            y[i] = (rill_y_t)rill_rq_apply(r, (int32_t)a[i] * mul_a + (int32_t)b[i] * mul_b, lo,
                                           hi);
        }
    } else {
        const int64_t mul_a = (int64_t)1 << p->shift_a;
        const int64_t mul_b = (int64_t)1 << p->shift_b;
        for (i = 0; i < n; ++i) {
            const int64_t s = (int64_t)a[i] * mul_a + (int64_t)b[i] * mul_b;
            y[i] = (rill_y_t)rill_sat(rill_round_shift(s, shift_out), lo, hi);
        }
    }
}
