#include "rill_kernels_f32.h"

/* b + sum_k w[k] * v[k], k ascending. */
static float rill_lstm_dot_VARIANT(const float *w, const float *v, int32_t n, float b)
{
    float acc = b;
    int32_t k;
    for (k = 0; k < n; ++k) {
        acc += w[k] * v[k];
    }
    return acc;
}

/* rill_lstm_VARIANT: ONNX LSTM (gates i, o, f, c), one direction, batch 1, no peepholes, `t`
 * frames, float32; h and c are updated in place after every frame. x [t][I], wx [4H][I],
 * wh [4H][H] (ONNX W, R), bias [8H] (ONNX B: Wb, Rb), h, c [H] in/out, scratch [4H]
 * (clobbered), y [t][H] or NULL. Per frame, with
 * pre[j] = (Wb[j] + wx[j].x) + (Rb[j] + wh[j].h) (sums in order):
 *   i, o, f = sigmoid(pre), g = tanh(pre); c = f * c + i * g; h = o * tanh(c).
 * h, c, scratch and y must not overlap each other or the inputs. */
void rill_lstm_VARIANT(const rill_lstm_f32_params_t *p, int32_t t, const float *x, const float *wx,
                   const float *wh, const float *bias, float *h, float *c, float *scratch,
                   float *y)
{
    const int32_t in = p->input;
    const int32_t hid = p->hidden;
    int32_t f, j;

    for (f = 0; f < t; ++f) {
        const float *xt = x + f * in;
        for (j = 0; j < 4 * hid; ++j) {
            const float ax = rill_lstm_dot_VARIANT(wx + j * in, xt, in, bias[j]);
            const float pre = ax + rill_lstm_dot_VARIANT(wh + j * hid, h, hid, bias[4 * hid + j]);
            scratch[j] = j < 3 * hid ? rill_sigmoid_f32(pre) : tanhf(pre);
        }
        for (j = 0; j < hid; ++j) {
            const float gi = scratch[j];
            const float go = scratch[hid + j];
            const float gf = scratch[2 * hid + j];
            const float gc = scratch[3 * hid + j];
            c[j] = gf * c[j] + gi * gc;
            h[j] = go * tanhf(c[j]);
        }
        if (y != 0) {
            memcpy(y + f * hid, h, (size_t)hid * sizeof(float));
        }
    }
}
