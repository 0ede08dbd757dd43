/* Rill runtime: shared helpers of the recurrent kernels (ONNX GRU / LSTM, one direction,
 * batch 1). The formulas are specified in runtime/RECURRENT.md; runtime/reference/recurrent.py
 * is the bit-exact Python reference. runtime/c/gru.c and lstm.c are templates instantiated per
 * type variant (rill_gru_s8, rill_gru_s16, rill_lstm_x16w8a64y16, ...): the input x is rill_x_t,
 * the weights rill_w_t, biases and dot products rill_acc_t, h / y / gate values rill_y_t and the
 * LSTM cell rill_c_t. Everything that depends on the variant's type is in the templates; the
 * helpers below are plain integer arithmetic, parameterized by the bits of h (`ybits`, 8 or 16:
 * a compile-time constant in every call). Each call runs `t` frames and updates the state (h,
 * and c for the LSTM) in place, so a streaming model keeps it in its state buffer.
 */
#ifndef RILL_RECURRENT_H
#define RILL_RECURRENT_H

#include "rill_common.h"

/* The gate formats by the bits of h (RECURRENT.md, "Number formats"): h and every gate value
 * at exponent -Q (1.0 = 2^Q); gate tables of 2^TABLE_BITS entries of h's type, read at a
 * pre-activation with FRAC fraction bits below the table step and linearly interpolated. */
#define RILL_RNN_Q(ybits) ((ybits) - 1)
#define RILL_RNN_TABLE_BITS(ybits) ((ybits) == 8 ? 8 : 11)
#define RILL_RNN_FRAC(ybits) ((ybits) == 8 ? 8 : 12)

typedef struct {
    int32_t input;               /* I: features per input frame */
    int32_t hidden;              /* H: hidden units */
    int32_t linear_before_reset; /* ONNX attribute: 0 or 1 */
} rill_gru_params_t;

typedef struct {
    int32_t input;    /* I */
    int32_t hidden;   /* H */
    int32_t shift_ig; /* i*g (exponent -2Q) onto f*c (exponent e_c - Q): -Q - e_c, in [0, 16] */
    int32_t shift_tc; /* c (exponent e_c) to the cell tanh input (e_tc - FRAC): e_tc - FRAC - e_c */
} rill_lstm_params_t;

/* Clamp to the signed range of `bits` bits, [-2^(bits-1), 2^(bits-1) - 1], 2 <= bits <= 32. */
static inline int32_t rill_rnn_sat_bits(int64_t v, int bits)
{
    const int64_t hi = ((int64_t)1 << (bits - 1)) - 1;
    return v < -hi - 1 ? (int32_t)(-hi - 1) : (v > hi ? (int32_t)hi : (int32_t)v);
}

/* A gate pre-activation: `sum` (the aligned dot products plus bias, at the row's accumulation
 * exponent) rounded by `s`, saturated to the gate table's input range, TABLE_BITS + FRAC bits
 * (int8 h: the int16 range; int16 h: +-2^22). */
static inline int32_t rill_rnn_pre(int64_t sum, int s, int ybits)
{
    return rill_rnn_sat_bits(rill_round_shift(sum, s),
                             RILL_RNN_TABLE_BITS(ybits) + RILL_RNN_FRAC(ybits));
}

/* Where pre-activation v falls in a gate table: entry *k = floor(v / 2^FRAC) + 2^(TABLE_BITS-1)
 * (the table's index 0 is the most negative input), the next entry *k1 (the last entry pairs
 * with itself), and the returned weight r = v mod 2^FRAC of *k1. */
static inline int32_t rill_rnn_locate(int32_t v, int ybits, int32_t *k, int32_t *k1)
{
    const int frac = RILL_RNN_FRAC(ybits);
    const int32_t half = (int32_t)1 << (RILL_RNN_TABLE_BITS(ybits) - 1);
    const int32_t q = (int32_t)rill_floor_shift(v, frac); /* [-half, half) */
    *k = q + half;
    *k1 = q + 1 < half ? q + half + 1 : 2 * half - 1;
    return v - q * ((int32_t)1 << frac);
}

/* Linear interpolation between table entries a (weight 2^FRAC - r) and b (weight r), rounded
 * back to the entries' scale: the gates keep the precision of the pre-activation instead of
 * the table's index. |a|, |b| <= 2^15 and 2^FRAC <= 2^12, so the sum is below 2^28. */
static inline int32_t rill_rnn_interp(int32_t a, int32_t b, int32_t r, int ybits)
{
    const int frac = RILL_RNN_FRAC(ybits);
    return (int32_t)rill_round_shift((int64_t)a * (((int32_t)1 << frac) - r) + (int64_t)b * r,
                                     frac);
}

/* Offset of gate g's table in the `table` array. int8 h: one 256-entry table per gate, in gate
 * order. int16 h: one 2048-entry table per function, [sigmoid | tanh]: gates g < n_sigmoid read
 * the sigmoid table, the others (and the LSTM cell, g = 4) the tanh table. */
static inline int32_t rill_rnn_table_offset(int ybits, int32_t g, int32_t n_sigmoid)
{
    const int32_t n = (int32_t)1 << RILL_RNN_TABLE_BITS(ybits);
    return ybits == 8 ? g * n : (g < n_sigmoid ? 0 : n);
}

#endif /* RILL_RECURRENT_H */
