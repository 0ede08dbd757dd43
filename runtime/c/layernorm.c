#include "rill_kernels.h"

/* floor(sqrt(v)) for v < 2^62, exactly (bit by bit). */
static int64_t rill_isqrt_VARIANT(uint64_t v)
{
    uint64_t root = 0, bit = (uint64_t)1 << 62;
    while (bit > v) {
        bit >>= 2;
    }
    while (bit != 0) {
        if (v >= root + bit) {
            v -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return (int64_t)root;
}

/* rill_layernorm_VARIANT: LayerNormalization of x rill_x_t [outer][length][inner] over
 * `length` for each (outer, inner), into y rill_y_t of the same layout, with gamma rill_w_t
 * [length], beta rill_acc_t [length] and shift int8 [length]. Per row, in int64:
 *   sum = sum_l x_l, W = length * sum_l x_l^2 - sum^2 + (eps_mant << eps_shift),
 *   k = 62 - bitlen(W) made even (rounded down), m = k / 2, s = isqrt(k >= 0 ? W << k : W >> -k)
 *   (s ~ sqrt(W) * 2^m in [2^30, 2^31)), e = z_frac + m,
 *   D_l = length * x_l - sum,  Z_l = W == 0 ? 0 : round_div(D_l * 2^max(e,0), s * 2^max(-e,0))
 *   (Z ~ (x - mean) / sqrt(var + eps) * 2^z_frac),
 *   y_l = sat_Y(round_shift(beta[l] + Z_l * gamma[l], shift[l])). */
void rill_layernorm_VARIANT(const rill_layernorm_params_t *p, const rill_x_t *x,
                            const rill_w_t *gamma, const rill_acc_t *beta, const int8_t *shift,
                            rill_y_t *y)
{
    const int32_t length = p->length;
    const int32_t inner = p->inner;
    int32_t o, i, l;

    for (o = 0; o < p->outer; ++o) {
        for (i = 0; i < inner; ++i) {
            const rill_x_t *xr = x + o * length * inner + i;
            rill_y_t *yr = y + o * length * inner + i;
            int64_t sum = 0, sq = 0, w, s = 0, num_mul = 1, den_mul = 1;
            for (l = 0; l < length; ++l) {
                const int64_t v = xr[l * inner];
                sum += v;
                sq += v * v;
            }
            w = (int64_t)length * sq - sum * sum + (int64_t)p->eps_mant * ((int64_t)1 << p->eps_shift);
            if (w > 0) {
                int32_t bits = 0, k, e;
                uint64_t t = (uint64_t)w;
                while (t != 0) {
                    ++bits;
                    t >>= 1;
                }
                k = 62 - bits;
                if (k % 2 != 0) {
                    k -= 1;
                }
                s = rill_isqrt_VARIANT(k >= 0 ? (uint64_t)w << k : (uint64_t)w >> -k);
                e = p->z_frac + k / 2;
                num_mul = (int64_t)1 << (e > 0 ? e : 0);
                den_mul = (int64_t)1 << (e < 0 ? -e : 0);
            }
            for (l = 0; l < length; ++l) {
                const int64_t d = (int64_t)length * xr[l * inner] - sum;
                const int64_t z = s == 0 ? 0 : rill_round_div(d * num_mul, s * den_mul);
                const int64_t acc = (int64_t)beta[l] + z * gamma[l];
                yr[l * inner] = (rill_y_t)rill_sat(rill_round_shift(acc, shift[l]), RILL_Y_MIN,
                                                   RILL_Y_MAX);
            }
        }
    }
}
