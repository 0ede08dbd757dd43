#include "rill_kernels.h"

/* rill_lut_VARIANT: elementwise table lookup, x rill_x_t [n], y rill_y_t [n].
 * int8 input: table rill_table_t (the output type) [256], y[i] = table[x[i] + 128]
 *   (frac_bits unused, 0).
 * int16 input: an interpolated int32 table of 2^(16 - frac_bits) + 1 knots: with
 *   u = x[i] + 32768, k = u >> frac_bits, f = u & (2^frac_bits - 1),
 *   y[i] = sat_Y(table[k] + round_shift((table[k+1] - table[k]) * f, frac_bits))
 *   (the value of int64 arithmetic; frac_bits in [0, 16]).
 * Speed: int8 inputs eight lookups per step; int16 inputs in int32 whenever that is exact. */

/* int16 inputs: y = sat_Y(t0 + round_shift((t1 - t0) * f, s)), t0 = table[k],
 * t1 = table[k + 1]. In int32 whenever |t1 - t0| < L = 2^(30 - s) and |t0| < 2^31 - L (knots
 * of a smooth function: the usual case): the wrapped difference t1 - t0 mod 2^32 then is the
 * true one (|t1 - t0| < 2^32 - L), |(t1 - t0) * f| < 2^30 leaves room for rill_rq_folded's
 * rounding constant, and t0 plus the rounded term (between 0 and t1 - t0) fits int32.
 * Otherwise, and for s = 0, in int64. */
typedef struct {
    int s;
    int32_t mask;    /* 2^s - 1 */
    uint32_t lim;    /* L (0 for s = 0: never int32) */
    uint32_t t0_lim; /* 2^31 - L */
    int32_t c;       /* rill_rq_folded's rounding constant */
} rill_lut_interp_VARIANT_t;

/* y[i] for i = from, from + 1, ... in int32 up to the first that needs int64 (returned; n when
 * none). On its own: no int64 code competes for the loop's registers. */
static RILL_NOINLINE int32_t rill_lut_run32_VARIANT(const rill_lut_interp_VARIANT_t *q,
                                                    int32_t from, int32_t n,
                                                    const rill_table_t *table,
                                                    const rill_x_t *x, rill_y_t *y)
{
    const int s = q->s;
    const int32_t mask = q->mask, c = q->c;
    const uint32_t lim = q->lim, t0_lim = q->t0_lim;
    int32_t i;
    for (i = from; i < n; ++i) {
        const int32_t u = (int32_t)x[i] - RILL_X_MIN;
        const int32_t t0 = table[u >> s];
        const uint32_t d = (uint32_t)table[(u >> s) + 1] - (uint32_t)t0 + lim; /* mod 2^32 */
        int32_t v;
        if (d >= 2u * lim || (uint32_t)t0 + t0_lim >= 2u * t0_lim) {
            break;
        }
        v = t0 + rill_rq_folded(((int32_t)d - (int32_t)lim) * (u & mask) + c, s, INT32_MIN,
                                INT32_MAX);
        if (v < RILL_Y_MIN) { /* two tests, v kept in place (no conversion after them) */
            v = RILL_Y_MIN;
        }
        if (v > RILL_Y_MAX) {
            v = RILL_Y_MAX;
        }
        y[i] = (rill_y_t)v;
    }
    return i;
}

static void rill_lut_interp_VARIANT(int32_t n, int s, const rill_table_t *table,
                                    const rill_x_t *x, rill_y_t *y)
{
    rill_lut_interp_VARIANT_t q;
    int32_t i = 0;
    q.s = s;
    q.mask = ((int32_t)1 << s) - 1;
    q.lim = s > 0 ? (uint32_t)1 << (30 - s) : 0u;
    q.t0_lim = (uint32_t)INT32_MAX - q.lim + 1u;
    q.c = s > 0 ? (int32_t)(((uint32_t)1 << (s - 1)) - 1u) + RILL_ROUNDING : 0;
    while ((i = rill_lut_run32_VARIANT(&q, i, n, table, x, y)) < n) { /* then one in int64 */
        const int32_t u = (int32_t)x[i] - RILL_X_MIN;
        const int64_t t0 = table[u >> s];
        const int64_t v = t0 + rill_round_shift((table[(u >> s) + 1] - t0) * (u & q.mask), s);
        y[i] = (rill_y_t)rill_sat(v, RILL_Y_MIN, RILL_Y_MAX);
        ++i;
    }
}

void rill_lut_VARIANT(int32_t n, int32_t frac_bits, const rill_table_t *table,
                      const rill_x_t *x, rill_y_t *y)
{
    int32_t i;
    if (RILL_X_BITS == 8) {
        const rill_table_t *const mid = table + 128; /* the entry of x = 0 */
        for (i = 0; i + 8 <= n; i += 8) { /* eight lookups per step: the pointers move once */
            const int32_t a = x[i], b = x[i + 1], c = x[i + 2], d = x[i + 3];
            const int32_t e = x[i + 4], f = x[i + 5], g = x[i + 6], h = x[i + 7];
            y[i] = (rill_y_t)mid[a];
            y[i + 1] = (rill_y_t)mid[b];
            y[i + 2] = (rill_y_t)mid[c];
            y[i + 3] = (rill_y_t)mid[d];
            y[i + 4] = (rill_y_t)mid[e];
            y[i + 5] = (rill_y_t)mid[f];
            y[i + 6] = (rill_y_t)mid[g];
            y[i + 7] = (rill_y_t)mid[h];
        }
        for (; i < n; ++i) {
            y[i] = (rill_y_t)mid[x[i]];
        }
    } else {
        rill_lut_interp_VARIANT(n, (int)frac_bits, table, x, y);
    }
}
