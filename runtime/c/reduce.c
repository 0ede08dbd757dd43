#include "rill_kernels.h"

/* One reduction of x[0], x[step], ..., x[(length-1)*step] (length >= 1), before saturation. */
static int64_t rill_reduce_one_VARIANT(const rill_reduce_params_t *p, const rill_x_t *x,
                                       int32_t step, int64_t mul_n, int64_t den)
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
        int64_t sum = 0;
        for (l = 0; l < p->length; ++l) {
            sum += x[l * step];
        }
        if (p->op == RILL_REDUCE_MEAN) {
            return rill_round_div(sum * mul_n, den);
        }
        return rill_round_shift(sum, p->shift);
    }
}

/* rill_reduce_VARIANT: reduce the middle axis of x rill_x_t [outer][length][inner] to
 * y rill_y_t [outer][inner], with sum (int64) and max over l < length and shift = e_out - e_in:
 *   mean: sat_Y(round_div(sum * 2^max(0,-shift), length * 2^max(0,shift)));
 *   max:  sat_Y(round_shift(max, shift));  sum: sat_Y(round_shift(sum, shift)).
 * length 0 gives 0. */
void rill_reduce_VARIANT(const rill_reduce_params_t *p, const rill_x_t *x, rill_y_t *y)
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
        const rill_x_t *xo = x + o * length * inner;
        rill_y_t *yo = y + o * inner;
        for (i = 0; i < inner; ++i) {
            yo[i] = (rill_y_t)(length > 0 ? rill_sat(rill_reduce_one_VARIANT(p, xo + i, inner,
                                                                            mul_n, den),
                                                     RILL_Y_MIN, RILL_Y_MAX)
                                          : 0);
        }
    }
}
