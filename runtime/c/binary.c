#include "rill_kernels.h"

/* One output value of rill_binary_VARIANT before saturation and the activation clamp. */
static int64_t rill_binary_one_VARIANT(const rill_binary_params_t *p, int64_t va, int64_t vb)
{
    const int64_t mul_a = (int64_t)1 << p->shift_a;
    const int64_t mul_b = (int64_t)1 << p->shift_b;
    const int s = (int)p->shift_out;
    switch (p->op) {
    case RILL_BINARY_ADD:
        return rill_round_shift(va * mul_a + vb * mul_b, s);
    case RILL_BINARY_SUB:
        return rill_round_shift(va * mul_a - vb * mul_b, s);
    case RILL_BINARY_MUL:
        return rill_round_shift(va * vb, s);
    case RILL_BINARY_DIV:
        if (vb == 0) {
            return va > 0 ? RILL_Y_MAX : (va < 0 ? RILL_Y_MIN : 0);
        }
        if (vb < 0) {
            va = -va;
            vb = -vb;
        }
        return s >= 0 ? rill_round_div(va, vb * ((int64_t)1 << s))
                      : rill_round_div(va * ((int64_t)1 << -s), vb);
    case RILL_BINARY_MAX:
        return rill_round_shift(va * mul_a > vb * mul_b ? va * mul_a : vb * mul_b, s);
    case RILL_BINARY_MIN:
        return rill_round_shift(va * mul_a < vb * mul_b ? va * mul_a : vb * mul_b, s);
    default: /* RILL_BINARY_PRELU: b is the slope */
        return rill_round_shift(va >= 0 ? va * mul_a : va * vb * mul_b, s);
    }
}

/* One output of rill_binary_VARIANT (the loop nest: binary_loop.c). In int64, with the shifts
 * aligning the operands' exponents:
 *   add: round_shift(a*2^shift_a + b*2^shift_b, shift_out)    sub: ... a*2^sa - b*2^sb ...
 *   mul: round_shift(a*b, shift_out)
 *   div: a/b / 2^shift_out rounded once (round_div); b = 0 saturates by the sign of a (0/0: 0)
 *   max, min: round_shift(max(a*2^sa, b*2^sb), shift_out)
 *   prelu: round_shift(a >= 0 ? a*2^sa : a*b*2^sb, shift_out)
 * then y = clamp(sat_Y(r), act_min, act_max). */
static rill_y_t rill_binary_out_VARIANT(const rill_binary_params_t *p, rill_x_t va, rill_x2_t vb)
{
    const int64_t r = rill_binary_one_VARIANT(p, va, vb);
    return (rill_y_t)rill_clamp(rill_sat(r, RILL_Y_MIN, RILL_Y_MAX), p->act_min, p->act_max);
}
