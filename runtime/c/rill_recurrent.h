/* Rill runtime: int8 recurrent kernels (ONNX GRU / LSTM, one direction, batch 1).
 * The formulas are specified in runtime/RECURRENT.md; runtime/reference/recurrent.py is the
 * bit-exact Python reference. The kernels (runtime/c/gru.c, lstm.c) are int8 only: the code
 * generator instantiates them as rill_gru_s8 / rill_lstm_s8 (prototypes generated with the
 * other variants). Each call runs `t` frames and updates the state (h, and c for the LSTM) in
 * place, so a streaming model keeps it in its state buffer between calls.
 */
#ifndef RILL_RECURRENT_H
#define RILL_RECURRENT_H

#include "rill_common.h"

/* Fraction bits of a gate pre-activation below its table step (the tables interpolate). */
#define RILL_RNN_FRAC 8

typedef struct {
    int32_t input;               /* I: features per input frame */
    int32_t hidden;              /* H: hidden units */
    int32_t linear_before_reset; /* ONNX attribute: 0 or 1 */
} rill_gru_params_t;

typedef struct {
    int32_t input;    /* I */
    int32_t hidden;   /* H */
    int32_t shift_ig; /* i*g (exponent -14) onto f*c (exponent e_c - 7): -7 - e_c, in [0, 16] */
    int32_t shift_tc; /* c (exponent e_c) to the cell tanh input (e_tc - 8): e_tc - 8 - e_c */
} rill_lstm_params_t;

/* Sum of a[k] * b[k]; n <= 131071 keeps |sum| <= n * 2^14 inside int32. */
static inline int32_t rill_rnn_dot_s8(const int8_t *a, const int8_t *b, int32_t n)
{
    int32_t acc = 0;
    int32_t k;
    for (k = 0; k < n; ++k) {
        acc += (int32_t)a[k] * (int32_t)b[k];
    }
    return acc;
}

/* acc * 2^s + bias for a left shift 0 <= s <= 23: |result| < 2^54 + 2^31. */
static inline int64_t rill_rnn_align(int32_t acc, int32_t s, int32_t bias)
{
    return (int64_t)acc * ((int64_t)1 << s) + bias;
}

/* Clamp to the int16 range. */
static inline int32_t rill_rnn_sat16(int64_t v)
{
    return v < -32768 ? -32768 : (v > 32767 ? 32767 : (int32_t)v);
}

/* Gate pre-activation of row j with RILL_RNN_FRAC fraction bits below the gate exponent,
 * saturated to int16: the x and h dot products aligned to a common exponent (left shifts sx,
 * sh), plus the bias, rounded by so - 8 >= 0. shift = [sx | sh | so], each `rows` long. */
static inline int32_t rill_rnn_pre(int32_t acc_x, int32_t acc_h, int32_t bias,
                                   const int8_t *shift, int32_t rows, int32_t j)
{
    const int64_t a = rill_rnn_align(acc_x, shift[j], bias) +
                      rill_rnn_align(acc_h, shift[rows + j], 0);
    return rill_rnn_sat16(rill_round_shift(a, shift[2 * rows + j] - RILL_RNN_FRAC));
}

/* 256-entry table at v / 2^8 (v in the int16 range), linearly interpolated between the
 * entries k = floor(v / 2^8) and min(k + 1, 127): the gates keep the precision of the int32
 * sums instead of the 8-bit index. */
static inline int32_t rill_rnn_lookup(const int8_t *table, int32_t v)
{
    const int32_t k = (int32_t)rill_floor_shift(v, RILL_RNN_FRAC); /* [-128, 127] */
    const int32_t r = v - k * 256;                                  /* [0, 256) */
    const int32_t k1 = k < 127 ? k + 1 : 127;
    const int32_t mix = (int32_t)table[k + 128] * (256 - r) + (int32_t)table[k1 + 128] * r;
    return (int32_t)rill_round_shift(mix, RILL_RNN_FRAC);
}

/* scratch[j] = table value of gate row j for the first `count` of `rows` gate rows (each
 * `hidden` long, table (j / hidden) per gate), all from the same frame x and the old h. */
static inline void rill_rnn_gate_rows(int32_t input, int32_t hidden, int32_t rows, int32_t count,
                                      const int8_t *xt, const int8_t *wx, const int8_t *wh,
                                      const int32_t *bias, const int8_t *shift,
                                      const int8_t *table, const int8_t *h, int8_t *scratch)
{
    int32_t j;
    for (j = 0; j < count; ++j) {
        const int32_t pre = rill_rnn_pre(rill_rnn_dot_s8(wx + j * input, xt, input),
                                         rill_rnn_dot_s8(wh + j * hidden, h, hidden), bias[j],
                                         shift, rows, j);
        scratch[j] = (int8_t)rill_rnn_lookup(table + (j / hidden) * 256, pre);
    }
}

#endif /* RILL_RECURRENT_H */
