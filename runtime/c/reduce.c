#include "rill_kernels.h"

/* One reduction x[0], x[step], ..., x[(length-1)*step] (length >= 1), before saturation. */
static int64_t rill_reduce_one(const rill_reduce_params_t *p, const int8_t *x, int32_t step,
                               int64_t mul_n, int64_t den)
{
    int32_t l;
    if (p->op == RILL_REDUCE_MAX) {
        int32_t m = x[0];
        for (l = 1; l < p->length; ++l) {
            if (x[l * step] > m) {
                m = x[l * step];
            }
        }
        return rill_round_shift(m, p->shift);
    } else {
        int32_t sum = 0; /* |sum| <= 128 * length < 2^31 for length < 2^24 */
        for (l = 0; l < p->length; ++l) {
            sum += x[l * step];
        }
        if (p->op == RILL_REDUCE_MEAN) {
            return rill_round_div((int64_t)sum * mul_n, den);
        }
        return rill_round_shift(sum, p->shift);
    }
}

/* rill_reduce_s8: reduce the middle axis of x [outer][length][inner] to y [outer][inner].
 * mean: sat8(round_div(sum * 2^max(0,-shift), length * 2^max(0,shift)));
 * max: sat8(round_shift(max, shift)); sum: sat8(round_shift(sum, shift)). length 0 gives 0. */
void rill_reduce_s8(const rill_reduce_params_t *p, const int8_t *x, int8_t *y)
{
    const int32_t outer = p->outer;
    const int32_t length = p->length;
    const int32_t inner = p->inner;
    int64_t mul_n = 1, den = 1;
    int32_t o, i;

    if (p->op == RILL_REDUCE_MEAN) { /* shifts only here: max/sum may use any shift */
        mul_n = (int64_t)1 << (p->shift < 0 ? -p->shift : 0);
        den = (int64_t)length * ((int64_t)1 << (p->shift > 0 ? p->shift : 0));
    }
    for (o = 0; o < outer; ++o) {
        const int8_t *xo = x + o * length * inner;
        int8_t *yo = y + o * inner;
        for (i = 0; i < inner; ++i) {
            yo[i] = (int8_t)(length > 0 ? rill_sat8(rill_reduce_one(p, xo + i, inner, mul_n, den))
                                        : 0);
        }
    }
}
