#include "rill_kernels.h"
#include "rill_recurrent.h"

/* rill_lstm_VARIANT (s8 only): ONNX LSTM (gates i, o, f, c; no peepholes), one direction,
 * batch 1, `t` frames; h (int8, exponent -7) and c (int16, exponent e_c) are updated in place
 * after every frame (spec: runtime/RECURRENT.md). All four gates read the old h, so they are
 * computed into `scratch` first; the cell and hidden updates are then elementwise. */

/* c = sat16((f*c + i*g*2^shift_ig) / 2^7), h = (o * tanh(c)) / 2^7 with tanh(c) from the
 * fifth table at sat16(round_shift(c, shift_tc)). |f*c| < 2^23, |i*g*2^shift_ig| < 2^31. */
static void rill_lstm_update_VARIANT(const rill_lstm_params_t *p, const int8_t *table,
                                     const int8_t *scratch, int8_t *h, int16_t *c)
{
    const int32_t hid = p->hidden;
    int32_t u;
    for (u = 0; u < hid; ++u) {
        const int64_t i = (int64_t)scratch[u] + 64;
        const int64_t o = (int64_t)scratch[hid + u] + 64;
        const int64_t f = (int64_t)scratch[2 * hid + u] + 64;
        const int64_t g = scratch[3 * hid + u];
        const int64_t ig = i * g * ((int64_t)1 << p->shift_ig);
        const int32_t cn = rill_rnn_sat16(rill_round_shift(f * c[u] + ig, 7));
        const int32_t tc = rill_rnn_lookup(table + 1024,
                                           rill_rnn_sat16(rill_round_shift(cn, p->shift_tc)));
        c[u] = (int16_t)cn;
        h[u] = (int8_t)rill_sat8(rill_round_shift(o * tc, 7));
    }
}

/* x [t][input], wx [4H][input], wh [4H][H] (ONNX gate rows i, o, f, c), bias [4H] int32,
 * shift [3][4H] int8 (sx, sh, so), table [5][256] (sigmoid i, o, f stored as round(128*s) - 64;
 * tanh g; tanh of the cell), h [H] int8 and c [H] int16 in/out, scratch [4H], y [t][H] or NULL. */
void rill_lstm_VARIANT(const rill_lstm_params_t *p, int32_t t, const int8_t *x,
                       const int8_t *wx, const int8_t *wh, const int32_t *bias,
                       const int8_t *shift, const int8_t *table, int8_t *h, int16_t *c,
                       int8_t *scratch, int8_t *y)
{
    const int32_t hid = p->hidden;
    int32_t f;
    for (f = 0; f < t; ++f) {
        /* rows i, o, f, g, each H long */
        rill_rnn_gate_rows(p->input, p->hidden, 4 * p->hidden, 4 * p->hidden, x + f * p->input,
                           wx, wh, bias, shift, table, h, scratch);
        rill_lstm_update_VARIANT(p, table, scratch, h, c);
        if (y != NULL) {
            memcpy(y + f * hid, h, (size_t)hid);
        }
    }
}
