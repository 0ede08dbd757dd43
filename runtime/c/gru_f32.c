#include "rill_kernels_f32.h"

/* b + sum_k w[k] * v[k], k ascending. */
static float rill_gru_dot_VARIANT(const float *w, const float *v, int32_t n, float b)
{
    float acc = b;
    int32_t k;
    for (k = 0; k < n; ++k) {
        acc += w[k] * v[k];
    }
    return acc;
}

/* rill_gru_VARIANT: ONNX GRU (gates z, r, n), one direction, batch 1, `t` frames, float32; h is
 * updated in place after every frame. x [t][I], wx [3H][I], wh [3H][H] (ONNX W, R), bias [6H]
 * (ONNX B: Wb z r n, Rb z r n), h [H] in/out, scratch [4H] (clobbered), y [t][H] or NULL.
 * Per frame, with ax[j] = Wb[j] + wx[j].x and ah[j] = Rb[j] + wh[j].h (sums in order):
 *   z, r = sigmoid(ax + ah);
 *   n = tanh(ax_n + r * ah_n) (linear_before_reset), else tanh(ax_n + Rb_n + wh_n.(r*h));
 *   h = (1 - z) * n + z * h.
 * h, scratch and y must not overlap each other or the inputs. */
void rill_gru_VARIANT(const rill_gru_f32_params_t *p, int32_t t, const float *x, const float *wx,
                  const float *wh, const float *bias, float *h, float *scratch, float *y)
{
    const int32_t in = p->input;
    const int32_t hid = p->hidden;
    float *z = scratch;
    float *r = scratch + hid;
    float *rh = scratch + 2 * hid; /* r * h (linear_before_reset = 0) */
    float *n = scratch + 3 * hid;
    int32_t f, j;

    for (f = 0; f < t; ++f) {
        const float *xt = x + f * in;
        for (j = 0; j < 2 * hid; ++j) {
            const float ax = rill_gru_dot_VARIANT(wx + j * in, xt, in, bias[j]);
            const float ah = rill_gru_dot_VARIANT(wh + j * hid, h, hid, bias[3 * hid + j]);
            scratch[j] = rill_sigmoid_f32(ax + ah); /* z, then r */
        }
        for (j = 0; j < hid; ++j) {
            rh[j] = r[j] * h[j];
        }
        for (j = 0; j < hid; ++j) {
            const int32_t row = 2 * hid + j;
            const float ax = rill_gru_dot_VARIANT(wx + row * in, xt, in, bias[row]);
            if (p->linear_before_reset) {
                const float ah = rill_gru_dot_VARIANT(wh + row * hid, h, hid, bias[3 * hid + row]);
                n[j] = tanhf(ax + r[j] * ah);
            } else {
                const float ah = rill_gru_dot_VARIANT(wh + row * hid, rh, hid, bias[3 * hid + row]);
                n[j] = tanhf(ax + ah);
            }
        }
        for (j = 0; j < hid; ++j) {
            h[j] = (1.0f - z[j]) * n[j] + z[j] * h[j];
        }
        if (y != 0) {
            memcpy(y + f * hid, h, (size_t)hid * sizeof(float));
        }
    }
}
