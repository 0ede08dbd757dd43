#include "rill_kernels.h"

/* rill_add_VARIANT: elementwise add of two tensors with different exponents (and types),
 * a rill_x_t [n], b rill_x2_t [n], y rill_y_t [n]; shift_a, shift_b in [0, 47] align both
 * inputs to their common finer exponent (|a*2^shift_a| + |b*2^shift_b| <= 2^63 in int64):
 *   y[i] = clamp(sat_Y(round_shift(a[i]*2^shift_a + b[i]*2^shift_b, shift_out)),
 *                act_min, act_max).
 * Speed: the power of two both aligned inputs share cancels against shift_out (the same
 * rational value, so the same rounding); one of them is then unscaled. When the aligned
 * inputs stay within 2^29 (the usual case: a few bits of alignment), the sum is int32, four
 * elements per step: without rounding when the output exponent is the finer one (shift <= 0),
 * else with the rounding constant added to the sum (rill_rq_folded, 0 < shift < 32); otherwise
 * int64. */

/* clamp(v, lo, hi) as two tests that keep v in place (GCC turns rill_clamp's nested ternary
 * into three register moves per element when lo and hi are not constants). */
static inline int32_t rill_add_clamp_VARIANT(int32_t v, int32_t lo, int32_t hi)
{
    if (v < lo) {
        v = lo;
    }
    if (v > hi) {
        v = hi;
    }
    return v;
}

/* One output without rounding: clamp(a * ma + b * mb, lo, hi) in int32 (it fits). */
static inline rill_y_t rill_add_exact1_VARIANT(int32_t a, int32_t ma, int32_t b, int32_t mb,
                                               int32_t lo, int32_t hi)
{
    return (rill_y_t)rill_add_clamp_VARIANT(a * ma + b * mb, lo, hi);
}

/* One rounded output: clamp(round_shift(a * ma + b * mb, s), lo, hi) in int32, 0 < s < 32,
 * c = the rounding constant of rill_rq_folded (|a * ma + b * mb| <= 2^30 leaves room for it). */
static inline rill_y_t rill_add_round1_VARIANT(int32_t a, int32_t ma, int32_t b, int32_t mb,
                                               int32_t c, int s, int32_t lo, int32_t hi)
{
    return (rill_y_t)rill_rq_folded(a * ma + b * mb + c, s, lo, hi);
}

/* rill_add_exact1_VARIANT over n elements, four per step. */
static void rill_add_exact_VARIANT(int32_t n, const rill_x_t *a, int32_t ma, const rill_x2_t *b,
                                   int32_t mb, int32_t lo, int32_t hi, rill_y_t *y)
{
    const rill_x_t *const end4 = a + (n - n % 4);
    const rill_x_t *const end = a + n;
    for (; a != end4; a += 4, b += 4, y += 4) {
        y[0] = rill_add_exact1_VARIANT(a[0], ma, b[0], mb, lo, hi);
        y[1] = rill_add_exact1_VARIANT(a[1], ma, b[1], mb, lo, hi);
        y[2] = rill_add_exact1_VARIANT(a[2], ma, b[2], mb, lo, hi);
        y[3] = rill_add_exact1_VARIANT(a[3], ma, b[3], mb, lo, hi);
    }
    for (; a != end; ++a, ++b, ++y) {
        *y = rill_add_exact1_VARIANT(*a, ma, *b, mb, lo, hi);
    }
}

/* rill_add_round1_VARIANT over n elements, four per step; inlined with ma or mb a literal 1
 * (no multiply for the unscaled input). */
static inline void rill_add_round_VARIANT(int32_t n, const rill_x_t *a, int32_t ma,
                                          const rill_x2_t *b, int32_t mb, int32_t c, int s,
                                          int32_t lo, int32_t hi, rill_y_t *y)
{
    const rill_x_t *const end4 = a + (n - n % 4);
    const rill_x_t *const end = a + n;
    for (; a != end4; a += 4, b += 4, y += 4) {
        y[0] = rill_add_round1_VARIANT(a[0], ma, b[0], mb, c, s, lo, hi);
        y[1] = rill_add_round1_VARIANT(a[1], ma, b[1], mb, c, s, lo, hi);
        y[2] = rill_add_round1_VARIANT(a[2], ma, b[2], mb, c, s, lo, hi);
        y[3] = rill_add_round1_VARIANT(a[3], ma, b[3], mb, c, s, lo, hi);
    }
    for (; a != end; ++a, ++b, ++y) {
        *y = rill_add_round1_VARIANT(*a, ma, *b, mb, c, s, lo, hi);
    }
}

/* The int64 loop (large alignments or shift_out); on its own, so that the int32 paths' call
 * does not save the registers it needs. */
static RILL_NOINLINE void rill_add_wide_VARIANT(const rill_add_params_t *p, const rill_x_t *a,
                                                const rill_x2_t *b, int32_t lo, int32_t hi,
                                                rill_y_t *y)
{
    const int64_t mul_a = (int64_t)1 << p->shift_a;
    const int64_t mul_b = (int64_t)1 << p->shift_b;
    int32_t i;
    for (i = 0; i < p->n; ++i) {
        const int64_t v = (int64_t)a[i] * mul_a + (int64_t)b[i] * mul_b;
        y[i] = (rill_y_t)rill_sat(rill_round_shift(v, (int)p->shift_out), lo, hi);
    }
}

void rill_add_VARIANT(const rill_add_params_t *p, const rill_x_t *a, const rill_x2_t *b,
                      rill_y_t *y)
{
    const int32_t n = p->n;
    const int32_t bits_b = (int32_t)sizeof(rill_x2_t) * 8;
    const int32_t common = p->shift_a < p->shift_b ? p->shift_a : p->shift_b;
    const int32_t sa = p->shift_a - common; /* one of sa, sb is 0 */
    const int32_t sb = p->shift_b - common;
    const int32_t s = p->shift_out - common;
    int32_t lo, hi;

    rill_out_bounds(RILL_Y_MIN, RILL_Y_MAX, p->act_min, p->act_max, &lo, &hi);
    if (s <= 0 && RILL_X_BITS - 1 + sa - s <= 29 && bits_b - 1 + sb - s <= 29) {
        rill_add_exact_VARIANT(n, a, (int32_t)1 << (sa - s), b, (int32_t)1 << (sb - s), lo, hi,
                               y);
    } else if (s > 0 && s < 32 && RILL_X_BITS - 1 + sa <= 29 && bits_b - 1 + sb <= 29) {
        const int32_t c = (int32_t)(((uint32_t)1 << (s - 1)) - 1u) + RILL_ROUNDING;
        if (sa == 0) {
            rill_add_round_VARIANT(n, a, 1, b, (int32_t)1 << sb, c, (int)s, lo, hi, y);
        } else {
            rill_add_round_VARIANT(n, a, (int32_t)1 << sa, b, 1, c, (int)s, lo, hi, y);
        }
    } else {
        rill_add_wide_VARIANT(p, a, b, lo, hi, y);
    }
}
