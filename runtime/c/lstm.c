#include "rill_kernels.h"
#include "rill_recurrent.h"

/* rill_lstm_VARIANT: ONNX LSTM (gates i, o, f, c; no peepholes), one direction, batch 1, `t`
 * frames; h (rill_y_t, exponent -Q with Q = RILL_Y_BITS - 1) and the cell c (rill_c_t: int16
 * for int8 h, int32 for int16 h; exponent e_c) are updated in place after every frame (spec:
 * runtime/RECURRENT.md). All four gates read the old h, so they are computed into `scratch`
 * first; the cell and hidden updates are then elementwise. */

/* sum_k w[k]*x[k] in rill_acc_t. The compiler guarantees sum_k |w[k]| * 2^(RILL_X_BITS-1) fits
 * the type (int8 with int32: n <= 131071 gives at most 2^31 - 2^14). */
static rill_acc_t rill_lstm_dot_x_VARIANT(const rill_w_t *w, const rill_x_t *x, int32_t n)
{
    rill_acc_t acc = 0;
    int32_t k;
    for (k = 0; k < n; ++k) {
        acc += (rill_acc_t)w[k] * (rill_acc_t)x[k];
    }
    return acc;
}

/* sum_k w[k]*h[k] in rill_acc_t, with the same guarantee for |h| <= 2^Q. */
static rill_acc_t rill_lstm_dot_h_VARIANT(const rill_w_t *w, const rill_y_t *h, int32_t n)
{
    rill_acc_t acc = 0;
    int32_t k;
    for (k = 0; k < n; ++k) {
        acc += (rill_acc_t)w[k] * (rill_acc_t)h[k];
    }
    return acc;
}

/* The gate table at pre-activation v, linearly interpolated (rill_rnn_locate / interp). */
static int32_t rill_lstm_lookup_VARIANT(const rill_y_t *table, int32_t v)
{
    int32_t k, k1;
    const int32_t r = rill_rnn_locate(v, RILL_Y_BITS, &k, &k1);
    return rill_rnn_interp(table[k], table[k1], r, RILL_Y_BITS);
}

/* scratch[j] = table value of gate row j (rows i, o, f, g, each H long) from frame xt and the
 * old h: sum = dot_x*2^sx + bias + dot_h*2^sh (a negative shift rounds), rounded by so - FRAC.
 * The compiler guarantees |dot*2^max(s,0)| + |bias| <= 2^(61-Q) per term: the sum fits int64. */
static void rill_lstm_gates_VARIANT(const rill_lstm_params_t *p, const rill_x_t *xt,
                                    const rill_w_t *wx, const rill_w_t *wh,
                                    const rill_acc_t *bias, const int8_t *shift,
                                    const rill_y_t *table, const rill_y_t *h, rill_y_t *scratch)
{
    const int32_t in = p->input;
    const int32_t hid = p->hidden;
    const int32_t rows = 4 * hid;
    const int frac = RILL_RNN_FRAC(RILL_Y_BITS);
    int32_t j;
    for (j = 0; j < rows; ++j) {
        const int64_t sum =
            rill_round_shift((int64_t)rill_lstm_dot_x_VARIANT(wx + j * in, xt, in), -shift[j]) +
            (int64_t)bias[j] +
            rill_round_shift((int64_t)rill_lstm_dot_h_VARIANT(wh + j * hid, h, hid),
                             -shift[rows + j]);
        const int32_t pre = rill_rnn_pre(sum, shift[2 * rows + j] - frac, RILL_Y_BITS);
        const rill_y_t *tab = table + rill_rnn_table_offset(RILL_Y_BITS, j / hid, 3);
        scratch[j] = (rill_y_t)rill_lstm_lookup_VARIANT(tab, pre);
    }
}

/* c = sat_C((f*c + i*g*2^shift_ig) / 2^Q), h = (o * tanh(c)) / 2^Q with tanh(c) from the cell
 * table at sat(round_shift(c, shift_tc)). For any table contents the gates are below
 * 1.5 * 2^Q and |c| <= 2^(2Q+1), so |f*c| < 2^(3Q+1.6) and |i*g*2^16| < 2^(2Q+16.6): each
 * below 2^46.6 for int16 h. -shift_tc <= 40 for int16 cells and <= 31 for int32 cells, so the
 * left shift of c fits int64. */
static void rill_lstm_update_VARIANT(const rill_lstm_params_t *p, const rill_y_t *table,
                                     const rill_y_t *scratch, rill_y_t *h, rill_c_t *c)
{
    const int32_t hid = p->hidden;
    const int q = RILL_RNN_Q(RILL_Y_BITS);
    const int64_t half = (int64_t)1 << (q - 1);
    const rill_y_t *tab = table + rill_rnn_table_offset(RILL_Y_BITS, 4, 3);
    int32_t u;
    for (u = 0; u < hid; ++u) {
        const int64_t i = (int64_t)scratch[u] + half;
        const int64_t o = (int64_t)scratch[hid + u] + half;
        const int64_t f = (int64_t)scratch[2 * hid + u] + half;
        const int64_t g = scratch[3 * hid + u];
        const int64_t ig = i * g * ((int64_t)1 << p->shift_ig);
        const int32_t cn = rill_sat(rill_round_shift(f * c[u] + ig, q), RILL_C_MIN, RILL_C_MAX);
        const int32_t v = rill_rnn_pre(cn, p->shift_tc, RILL_Y_BITS);
        const int64_t tc = rill_lstm_lookup_VARIANT(tab, v);
        c[u] = (rill_c_t)cn;
        h[u] = (rill_y_t)rill_sat(rill_round_shift(o * tc, q), RILL_Y_MIN, RILL_Y_MAX);
    }
}

/* x [t][input], wx [4H][input], wh [4H][H] (ONNX gate rows i, o, f, c), bias [4H], shift
 * [3][4H] int8 (sx, sh, so), table: int8 h [5][256] (sigmoid i, o, f stored as
 * round(2^Q*s) - 2^(Q-1); tanh g; tanh of the cell), int16 h [2][2048] (sigmoid, tanh); h [H]
 * and c [H] in/out, scratch [4H], y [t][H] or NULL. */
void rill_lstm_VARIANT(const rill_lstm_params_t *p, int32_t t, const rill_x_t *x,
                       const rill_w_t *wx, const rill_w_t *wh, const rill_acc_t *bias,
                       const int8_t *shift, const rill_y_t *table, rill_y_t *h, rill_c_t *c,
                       rill_y_t *scratch, rill_y_t *y)
{
    const int32_t hid = p->hidden;
    int32_t f;
    for (f = 0; f < t; ++f) {
        rill_lstm_gates_VARIANT(p, x + f * p->input, wx, wh, bias, shift, table, h, scratch);
        rill_lstm_update_VARIANT(p, table, scratch, h, c);
        if (y != NULL) {
            memcpy(y + f * hid, h, (size_t)hid * sizeof *h);
        }
    }
}
