#include "rill_kernels.h"

/* rill_maxpool1d_VARIANT: 1-D max pooling over time, per channel; x rill_x_t [t_in][channels],
 * y rill_y_t [t_out][channels]. Frames outside [0, t_in) read pad_value (a value of the input
 * type; its minimum stands for ONNX's -inf padding):
 *   y[t][c] = sat_Y(round_shift(max_k x[t*stride + k*dilation - pad_l][c], shift)). */
void rill_maxpool1d_VARIANT(const rill_maxpool1d_params_t *p, const rill_x_t *x, rill_y_t *y)
{
    const int32_t t_in = p->t_in;
    const int32_t channels = p->channels;
    const int32_t kernel = p->kernel;
    const int32_t stride = p->stride;
    const int32_t dilation = p->dilation;
    const int32_t span = t_in + p->pad_l + p->pad_r - dilation * (kernel - 1) - 1;
    const int32_t t_out = span < 0 ? 0 : span / stride + 1; /* no frame if input too short */
    int32_t t, c, k;

    for (t = 0; t < t_out; ++t) {
        const int32_t t0 = t * stride - p->pad_l; /* input frame of tap 0 */
        int32_t k_lo, k_hi; /* the taps that read frames inside [0, t_in) */
        int32_t init;
        rill_y_t *yt = y + t * channels;
        rill_tap_range(t0, t_in, dilation, kernel, &k_lo, &k_hi);
        /* the type's minimum is neutral for the max; a window touching the padding starts at
         * pad_value */
        init = k_lo > 0 || k_hi < kernel ? p->pad_value : RILL_X_MIN;
        for (c = 0; c < channels; ++c) {
            int32_t m = init;
            for (k = k_lo; k < k_hi; ++k) {
                const int32_t v = x[(t0 + k * dilation) * channels + c];
                if (v > m) {
                    m = v;
                }
            }
            yt[c] = (rill_y_t)rill_sat(rill_round_shift(m, p->shift), RILL_Y_MIN, RILL_Y_MAX);
        }
    }
}
