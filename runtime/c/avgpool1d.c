#include "rill_kernels.h"

/* rill_avgpool1d_VARIANT: 1-D average pooling over time, per channel; x rill_x_t
 * [t_in][channels], y rill_y_t [t_out][channels], shift = e_out - e_in:
 *   y = sat_Y(round_div(sum * 2^max(0,-shift), count * 2^max(0,shift)))
 * with sum over the in-range frames of the window (int64) and count = kernel if
 * count_include_pad, else the number of in-range frames (a window with count 0 gives 0).
 * Speed: int32 sums and division (rill_round_div32) whenever they cannot overflow. */
void rill_avgpool1d_VARIANT(const rill_avgpool1d_params_t *p, const rill_x_t *x, rill_y_t *y)
{
    const int32_t t_in = p->t_in;
    const int32_t channels = p->channels;
    const int32_t kernel = p->kernel;
    const int32_t stride = p->stride;
    const int64_t mul_n = (int64_t)1 << (p->shift < 0 ? -p->shift : 0);
    const int64_t mul_d = (int64_t)1 << (p->shift > 0 ? p->shift : 0);
    const int32_t span = t_in + p->pad_l + p->pad_r - kernel;
    const int32_t t_out = span < 0 ? 0 : span / stride + 1; /* no frame if input too short */
    /* int32 sums and division when |sum * mul_n| <= kernel * 2^(X_BITS-1) * mul_n and the
     * divisor fit (the usual case: a hardware division, not an int64 library call) */
    const int narrow = (int64_t)kernel * ((int64_t)1 << (RILL_X_BITS - 1)) * mul_n <= INT32_MAX &&
                       (int64_t)kernel * mul_d <= INT32_MAX;
    int32_t t, c, f;

    for (t = 0; t < t_out; ++t) {
        const int32_t t0 = t * stride - p->pad_l;
        const int32_t lo = t0 < 0 ? 0 : t0;
        const int32_t hi = t0 + kernel < t_in ? t0 + kernel : t_in;
        const int32_t frames = hi > lo ? hi - lo : 0;
        const int64_t count = p->count_include_pad ? kernel : frames;
        rill_y_t *yt = y + t * channels;
        for (c = 0; c < channels; ++c) {
            int64_t sum = 0;
            if (count == 0) {
                yt[c] = 0;
                continue;
            }
            if (narrow) {
                int32_t sum32 = 0;
                for (f = lo; f < hi; ++f) {
                    sum32 += x[f * channels + c];
                }
                yt[c] = (rill_y_t)rill_sat(rill_round_div32(sum32 * (int32_t)mul_n,
                                                            (int32_t)(count * mul_d)),
                                           RILL_Y_MIN, RILL_Y_MAX);
                continue;
            }
            for (f = lo; f < hi; ++f) {
                sum += x[f * channels + c];
            }
            yt[c] = (rill_y_t)rill_sat(rill_round_div(sum * mul_n, count * mul_d), RILL_Y_MIN,
                                       RILL_Y_MAX);
        }
    }
}
