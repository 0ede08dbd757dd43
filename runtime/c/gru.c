#include "rill_kernels.h"
#include "rill_recurrent.h"

/* rill_gru_VARIANT: ONNX GRU (gates z, r, n), one direction, batch 1, `t` frames; h is updated
 * in place after every frame (spec: runtime/RECURRENT.md). x rill_x_t, weights rill_w_t, bias
 * and dot products rill_acc_t, h / y / gates rill_y_t at exponent -Q (Q = RILL_Y_BITS - 1, so
 * 1.0 = 2^Q). Per frame: (1) z and r from the old h, (2) the candidate n from the old h, (3)
 * h = (z*h + (2^Q - z)*n) / 2^Q. The gates live in `scratch` so that h is only overwritten once
 * nothing reads the old value any more. */

/* sum_k w[k]*x[k] in rill_acc_t. The compiler guarantees sum_k |w[k]| * 2^(RILL_X_BITS-1) fits
 * the type (int8 with int32: n <= 131071 gives at most 2^31 - 2^14), so no partial sum
 * overflows whatever the order. */
static rill_acc_t rill_gru_dot_x_VARIANT(const rill_w_t *w, const rill_x_t *x, int32_t n)
{
    rill_acc_t acc = 0;
    int32_t k;
    for (k = 0; k < n; ++k) {
        acc += (rill_acc_t)w[k] * (rill_acc_t)x[k];
    }
    return acc;
}

/* sum_k w[k]*h[k] in rill_acc_t, with the same guarantee for |h| <= 2^Q. */
static rill_acc_t rill_gru_dot_h_VARIANT(const rill_w_t *w, const rill_y_t *h, int32_t n)
{
    rill_acc_t acc = 0;
    int32_t k;
    for (k = 0; k < n; ++k) {
        acc += (rill_acc_t)w[k] * (rill_acc_t)h[k];
    }
    return acc;
}

/* The gate table at pre-activation v, linearly interpolated (rill_rnn_locate / interp). */
static int32_t rill_gru_lookup_VARIANT(const rill_y_t *table, int32_t v)
{
    int32_t k, k1;
    const int32_t r = rill_rnn_locate(v, RILL_Y_BITS, &k, &k1);
    return rill_rnn_interp(table[k], table[k1], r, RILL_Y_BITS);
}

/* Phase 1: scratch[j] = table value of z (j < H) and r (H <= j < 2H): the pre-activation
 * sum = dot_x*2^sx + bias + dot_h*2^sh (a negative shift rounds) rounded by so - FRAC. The
 * compiler guarantees |dot*2^max(s,0)| + |bias| <= 2^(61-Q) per term, so the int64 sum fits.
 * For linear_before_reset = 0, scratch[H + u] is then replaced by r*h (exponent -Q). */
static void rill_gru_gates_VARIANT(const rill_gru_params_t *p, const rill_x_t *xt,
                                   const rill_w_t *wx, const rill_w_t *wh,
                                   const rill_acc_t *bias, const int8_t *shift,
                                   const rill_y_t *table, const rill_y_t *h, rill_y_t *scratch)
{
    const int32_t in = p->input;
    const int32_t hid = p->hidden;
    const int32_t rows = 3 * hid;
    const int frac = RILL_RNN_FRAC(RILL_Y_BITS);
    const int q = RILL_RNN_Q(RILL_Y_BITS);
    int32_t j;
    for (j = 0; j < 2 * hid; ++j) {
        const int64_t sum =
            rill_round_shift((int64_t)rill_gru_dot_x_VARIANT(wx + j * in, xt, in), -shift[j]) +
            (int64_t)bias[j] +
            rill_round_shift((int64_t)rill_gru_dot_h_VARIANT(wh + j * hid, h, hid),
                             -shift[rows + j]);
        const int32_t pre = rill_rnn_pre(sum, shift[2 * rows + j] - frac, RILL_Y_BITS);
        const rill_y_t *tab = table + rill_rnn_table_offset(RILL_Y_BITS, j / hid, 2);
        scratch[j] = (rill_y_t)rill_gru_lookup_VARIANT(tab, pre);
    }
    if (p->linear_before_reset == 0) {
        rill_y_t *rh = scratch + hid;
        for (j = 0; j < hid; ++j) {
            const int64_t r = (int64_t)rh[j] + ((int64_t)1 << (q - 1));
            rh[j] = (rill_y_t)rill_sat(rill_round_shift(r * h[j], q), RILL_Y_MIN, RILL_Y_MAX);
        }
    }
}

/* Phase 2: scratch[2H + u] = n = tanh table at sat(round_shift(2^Q*ax + m*ah, so + Q - FRAC)),
 * ax = dot_x*2^sx + b_nx, ah = dot_h*2^sh + b_nh, where m = r (linear_before_reset = 1,
 * dot_h = R_n . h) or 2^Q (0, dot_h = R_n . (r*h)). With |ax|, |ah| <= 2^(61-Q) (the compiler's
 * guarantee) and m < 1.5 * 2^Q for any table contents, the int64 sum stays below 2^62.4. */
static void rill_gru_candidate_VARIANT(const rill_gru_params_t *p, const rill_x_t *xt,
                                       const rill_w_t *wx, const rill_w_t *wh,
                                       const rill_acc_t *bias, const int8_t *shift,
                                       const rill_y_t *table, const rill_y_t *h,
                                       rill_y_t *scratch)
{
    const int32_t in = p->input;
    const int32_t hid = p->hidden;
    const int32_t rows = 3 * hid;
    const int32_t lbr = p->linear_before_reset != 0;
    const int frac = RILL_RNN_FRAC(RILL_Y_BITS);
    const int q = RILL_RNN_Q(RILL_Y_BITS);
    const int64_t one = (int64_t)1 << q;
    const rill_y_t *hv = lbr ? h : scratch + hid; /* what R_n multiplies */
    const rill_y_t *tab = table + rill_rnn_table_offset(RILL_Y_BITS, 2, 2);
    int32_t u;
    for (u = 0; u < hid; ++u) {
        const int32_t j = 2 * hid + u;
        const int64_t ax =
            rill_round_shift((int64_t)rill_gru_dot_x_VARIANT(wx + j * in, xt, in), -shift[j]) +
            (int64_t)bias[j];
        const int64_t ah =
            rill_round_shift((int64_t)rill_gru_dot_h_VARIANT(wh + j * hid, hv, hid),
                             -shift[rows + j]) +
            (int64_t)bias[rows + u];
        const int64_t m = lbr ? (int64_t)scratch[hid + u] + one / 2 : one;
        const int32_t pre = rill_rnn_pre(one * ax + m * ah, shift[2 * rows + j] + q - frac,
                                         RILL_Y_BITS);
        scratch[j] = (rill_y_t)rill_gru_lookup_VARIANT(tab, pre);
    }
}

/* x [t][input], wx [3H][input], wh [3H][H] (gate rows z, r, n), bias [4H] (z, r, n_x, n_h),
 * shift [3][3H] int8 (sx, sh, so), table: int8 h [3][256] (sigmoid z, sigmoid r: stored as
 * round(2^Q*s) - 2^(Q-1); tanh n), int16 h [2][2048] (sigmoid, tanh); h [H] in/out, scratch
 * [3H], y [t][H] or NULL. */
void rill_gru_VARIANT(const rill_gru_params_t *p, int32_t t, const rill_x_t *x,
                      const rill_w_t *wx, const rill_w_t *wh, const rill_acc_t *bias,
                      const int8_t *shift, const rill_y_t *table, rill_y_t *h,
                      rill_y_t *scratch, rill_y_t *y)
{
    const int32_t in = p->input;
    const int32_t hid = p->hidden;
    const int q = RILL_RNN_Q(RILL_Y_BITS);
    const int64_t one = (int64_t)1 << q;
    int32_t f, u;
    for (f = 0; f < t; ++f) {
        const rill_x_t *xt = x + f * in;
        rill_gru_gates_VARIANT(p, xt, wx, wh, bias, shift, table, h, scratch);
        rill_gru_candidate_VARIANT(p, xt, wx, wh, bias, shift, table, h, scratch);
        for (u = 0; u < hid; ++u) { /* phase 3: h = z*h + (1 - z)*n */
            const int64_t z = (int64_t)scratch[u] + one / 2;
            const int64_t n = scratch[2 * hid + u];
            h[u] = (rill_y_t)rill_sat(rill_round_shift(z * h[u] + (one - z) * n, q), RILL_Y_MIN,
                                      RILL_Y_MAX);
        }
        if (y != NULL) {
            memcpy(y + f * hid, h, (size_t)hid * sizeof *h);
        }
    }
}
