#include "rill_kernels.h"

/* rill_avgpool1d_VARIANT: 1-D average pooling over time, per channel; x rill_x_t
 * [t_in][channels], y rill_y_t [t_out][channels], shift = e_out - e_in:
 *   y = sat_Y(round_div(sum * 2^max(0,-shift), count * 2^max(0,shift)))
 * with sum over the in-range frames of the window (int64) and count = kernel if
 * count_include_pad, else the number of in-range frames (a window with count 0 gives 0).
 * Speed: when int32 sums cannot overflow (the usual case), an output frame's rows are summed
 * four channels at a time (contiguous loads), and its rounding division, set up once per
 * window size (rill_avgpool1d_recip_VARIANT), is a multiply-high by a reciprocal, exact over
 * the frame's bounded sums (else an int32 division per output); otherwise int64. */

/* The rounding division of one output frame by a reciprocal: n = sum * mul_n, y = round(n / d).
 * With k = ceil(n_max / d) (n_max >= |n|), v = 2n + d + 2dk lies in [d, v_max], and
 *   round_half_up(n / d) = floor((2n + d) / 2d) = floor(v / 2d) - k;
 * half even differs only at a tie (2d divides v), where it takes the even neighbour (the tie
 * needs an even d: 2n + d is odd otherwise). floor(v / c) for c = 2d >= 2 is (v * m) >> 32
 * with m = ceil(2^32 / c) = (2^32 + e) / c, 0 <= e < c: v * m / 2^32 = v / c + v e / (c 2^32),
 * and v e < v c <= 2^32 keeps it below the next integer (the remainder of v / c is at most
 * c - 1). rill_avgpool1d_recip_VARIANT says whether v_max * c <= 2^32 holds. */
typedef struct {
    uint32_t a; /* 2 mul_n: v = sum * a + b */
    uint32_t b; /* d + 2dk */
    uint32_t c; /* 2d */
    uint32_t m; /* ceil(2^32 / c) */
    int32_t k;
    int ties; /* half even and d even */
} rill_avgpool1d_recip_VARIANT_t;

/* Sets up *r for d = count * mul_d and n_max = frames * 2^(X_BITS-1) * mul_n (both at most
 * INT32_MAX, d > 0); 0 when the reciprocal is not exact for every sum of the frame. */
static int rill_avgpool1d_recip_VARIANT(rill_avgpool1d_recip_VARIANT_t *r, uint32_t mul_n,
                                        uint32_t d, uint32_t n_max)
{
    const uint32_t k = (n_max + d - 1u) / d; /* both < 2^31: no wrap */
    const uint64_t b = (uint64_t)2u * d * k + d;
    const uint64_t v_max = (uint64_t)2u * n_max + b;
    r->a = 2u * mul_n;
    r->c = 2u * d;
    r->m = UINT32_MAX / r->c + 1u; /* ceil(2^32 / c) for c >= 2 */
    r->k = (int32_t)k;
    r->b = (uint32_t)b;
    r->ties = RILL_ROUNDING == 0 && d % 2u == 0u;
    return v_max <= UINT32_MAX / r->c; /* then v_max * c < 2^32 */
}

static inline rill_y_t rill_avgpool1d_round_VARIANT(const rill_avgpool1d_recip_VARIANT_t *r,
                                                    int32_t sum)
{
    /* v in [d, v_max] < 2^32: the unsigned wrap-around of sum * a + b lands on it exactly */
    const uint32_t v = (uint32_t)sum * r->a + r->b;
    const uint32_t fl = (uint32_t)(((uint64_t)v * r->m) >> 32); /* floor(v / c) */
    int32_t q = (int32_t)fl - r->k;
    if (r->ties && fl * r->c == v && (q & 1) != 0) {
        q -= 1;
    }
    return (rill_y_t)rill_clamp(q, RILL_Y_MIN, RILL_Y_MAX);
}

/* One output frame from `frames` rows of x (`channels` apart; int32 sums cannot overflow):
 * four channels per pass over the rows, so the loads are contiguous and the row pointer moves
 * once per four sums. */
static void rill_avgpool1d_frame_VARIANT(const rill_avgpool1d_recip_VARIANT_t *r,
                                         const rill_x_t *x, int32_t frames, int32_t channels,
                                         rill_y_t *y)
{
    int32_t c, f;
    for (c = 0; c + 4 <= channels; c += 4) {
        const rill_x_t *xr = x + c;
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (f = 0; f < frames; ++f, xr += channels) {
            s0 += xr[0];
            s1 += xr[1];
            s2 += xr[2];
            s3 += xr[3];
        }
        y[c] = rill_avgpool1d_round_VARIANT(r, s0);
        y[c + 1] = rill_avgpool1d_round_VARIANT(r, s1);
        y[c + 2] = rill_avgpool1d_round_VARIANT(r, s2);
        y[c + 3] = rill_avgpool1d_round_VARIANT(r, s3);
    }
    for (; c < channels; ++c) {
        int32_t s = 0;
        for (f = 0; f < frames; ++f) {
            s += x[f * channels + c];
        }
        y[c] = rill_avgpool1d_round_VARIANT(r, s);
    }
}

/* One output frame with an int32 division per output (sums too large for the reciprocal). */
static void rill_avgpool1d_frame_div_VARIANT(const rill_x_t *x, int32_t frames, int32_t channels,
                                             int32_t mul_n, int32_t d, rill_y_t *y)
{
    int32_t c, f;
    for (c = 0; c < channels; ++c) {
        int32_t sum = 0;
        for (f = 0; f < frames; ++f) {
            sum += x[f * channels + c];
        }
        y[c] = (rill_y_t)rill_sat(rill_round_div32(sum * mul_n, d), RILL_Y_MIN, RILL_Y_MAX);
    }
}

/* One output frame in int64 (sums or divisor beyond int32: large |shift|). */
static void rill_avgpool1d_frame_wide_VARIANT(const rill_x_t *x, int32_t frames,
                                              int32_t channels, int64_t mul_n, int64_t d,
                                              rill_y_t *y)
{
    int32_t c, f;
    for (c = 0; c < channels; ++c) {
        int64_t sum = 0;
        for (f = 0; f < frames; ++f) {
            sum += x[f * channels + c];
        }
        y[c] = (rill_y_t)rill_sat(rill_round_div(sum * mul_n, d), RILL_Y_MIN, RILL_Y_MAX);
    }
}

void rill_avgpool1d_VARIANT(const rill_avgpool1d_params_t *p, const rill_x_t *x, rill_y_t *y)
{
    const int32_t t_in = p->t_in;
    const int32_t channels = p->channels;
    const int32_t kernel = p->kernel;
    const int32_t stride = p->stride;
    const int64_t mul_n = (int64_t)1 << (p->shift < 0 ? -p->shift : 0);
    const int64_t mul_d = (int64_t)1 << (p->shift > 0 ? p->shift : 0);
    const int64_t half_x = (int64_t)1 << (RILL_X_BITS - 1); /* the largest |x| */
    const int32_t span = t_in + p->pad_l + p->pad_r - kernel;
    const int32_t t_out = span < 0 ? 0 : span / stride + 1; /* no frame if input too short */
    /* int32 sums, numerators and divisors: |sum * mul_n| <= kernel * half_x * mul_n */
    const int narrow = kernel * half_x * mul_n <= INT32_MAX && kernel * mul_d <= INT32_MAX;
    rill_avgpool1d_recip_VARIANT_t r = {0u, 0u, 0u, 0u, 0, 0};
    int32_t t, c, recip = 0, last_frames = -1, last_count = -1;

    for (t = 0; t < t_out; ++t) {
        const int32_t t0 = t * stride - p->pad_l;
        const int32_t lo = t0 < 0 ? 0 : t0;
        const int32_t hi = t0 + kernel < t_in ? t0 + kernel : t_in;
        const int32_t frames = hi > lo ? hi - lo : 0;
        const int32_t count = p->count_include_pad ? kernel : frames;
        const rill_x_t *xt = x + lo * channels;
        rill_y_t *yt = y + t * channels;
        if (count == 0) {
            for (c = 0; c < channels; ++c) {
                yt[c] = 0;
            }
            continue;
        }
        if (!narrow) {
            rill_avgpool1d_frame_wide_VARIANT(xt, frames, channels, mul_n, count * mul_d, yt);
            continue;
        }
        if (frames != last_frames || count != last_count) { /* changes at the padded edges */
            recip = rill_avgpool1d_recip_VARIANT(&r, (uint32_t)mul_n, (uint32_t)(count * mul_d),
                                                 (uint32_t)(frames * half_x * mul_n));
            last_frames = frames;
            last_count = count;
        }
        if (recip) {
            rill_avgpool1d_frame_VARIANT(&r, xt, frames, channels, yt);
        } else {
            rill_avgpool1d_frame_div_VARIANT(xt, frames, channels, (int32_t)mul_n,
                                             (int32_t)(count * mul_d), yt);
        }
    }
}
