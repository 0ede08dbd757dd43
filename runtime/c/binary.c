#include "rill_kernels.h"

/* One output value of rill_binary_VARIANT before the activation clamp (see below). */
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

/* rill_binary_VARIANT: element-wise op of a rill_x_t and b rill_x2_t with numpy broadcasting,
 * y rill_y_t [shape[0]][shape[1]][shape[2]][shape[3]] contiguous; the operands of output
 * (i0, i1, i2, i3) are a[sum i_k * a_stride[k]] and b[sum i_k * b_stride[k]] (stride 0 along a
 * broadcast axis). In int64, with the shifts aligning the operands' exponents:
 *   add: round_shift(a*2^shift_a + b*2^shift_b, shift_out)    sub: ... a*2^sa - b*2^sb ...
 *   mul: round_shift(a*b, shift_out)
 *   div: a/b / 2^shift_out rounded once (round_div); b = 0 saturates by the sign of a (0/0: 0)
 *   max, min: round_shift(max(a*2^sa, b*2^sb), shift_out)
 *   prelu: round_shift(a >= 0 ? a*2^sa : a*b*2^sb, shift_out)
 * then y = clamp(sat_Y(r), act_min, act_max). y may be an operand that is not broadcast. */
void rill_binary_VARIANT(const rill_binary_params_t *p, const rill_x_t *a, const rill_x2_t *b,
                         rill_y_t *y)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < p->shape[0]; ++i0) {
        for (i1 = 0; i1 < p->shape[1]; ++i1) {
            for (i2 = 0; i2 < p->shape[2]; ++i2) {
                const rill_x_t *ar = a + i0 * p->a_stride[0] + i1 * p->a_stride[1]
                                     + i2 * p->a_stride[2];
                const rill_x2_t *br = b + i0 * p->b_stride[0] + i1 * p->b_stride[1]
                                      + i2 * p->b_stride[2];
                for (i3 = 0; i3 < p->shape[3]; ++i3) {
                    const int64_t r = rill_binary_one_VARIANT(p, ar[i3 * p->a_stride[3]],
                                                              br[i3 * p->b_stride[3]]);
                    *y++ = (rill_y_t)rill_clamp(rill_sat(r, RILL_Y_MIN, RILL_Y_MAX),
                                                p->act_min, p->act_max);
                }
            }
        }
    }
}
