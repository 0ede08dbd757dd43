#include "rill_kernels.h"

/* rill_maxpool1d_s8: 1-D max pooling over time, per channel. Frames outside [0, t_in) read as
 * pad_value (-128 stands for ONNX's -inf padding); y = sat8(round_shift(max, shift)).
 * The running max lives in y itself (it is an int8 value), so no scratch is needed and the
 * inner loops walk contiguous channels. */
void rill_maxpool1d_s8(const rill_maxpool1d_params_t *p, const int8_t *x, int8_t *y)
{
    const int32_t t_in = p->t_in;
    const int32_t channels = p->channels;
    const int32_t kernel = p->kernel;
    const int32_t stride = p->stride;
    const int32_t dilation = p->dilation;
    const int32_t shift = p->shift;
    const int32_t span = t_in + p->pad_l + p->pad_r - dilation * (kernel - 1) - 1;
    const int32_t t_out = span < 0 ? 0 : span / stride + 1; /* no frame if input too short */
    int32_t t, c, k;

    for (t = 0; t < t_out; ++t) {
        const int32_t t0 = t * stride - p->pad_l; /* input frame of tap 0 */
        /* taps k in [k_lo, k_hi) read frames inside [0, t_in), the others read pad_value */
        int32_t k_lo = t0 < 0 ? (-t0 + dilation - 1) / dilation : 0;
        int32_t k_hi = t0 < t_in ? (t_in - t0 + dilation - 1) / dilation : 0;
        int8_t *yt = y + t * channels;
        int8_t init;
        if (k_hi > kernel) {
            k_hi = kernel;
        }
        if (k_lo > k_hi) {
            k_lo = k_hi;
        }
        /* -128 is neutral for the max; a window touching the padding starts at pad_value */
        init = (int8_t)(k_lo > 0 || k_hi < kernel ? p->pad_value : -128);
        for (c = 0; c < channels; ++c) {
            yt[c] = init;
        }
        for (k = k_lo; k < k_hi; ++k) {
            const int8_t *xr = x + (t0 + k * dilation) * channels;
            for (c = 0; c < channels; ++c) {
                if (xr[c] > yt[c]) {
                    yt[c] = xr[c];
                }
            }
        }
        if (shift != 0) {
            for (c = 0; c < channels; ++c) {
                yt[c] = (int8_t)rill_sat8(rill_round_shift(yt[c], shift));
            }
        }
    }
}
