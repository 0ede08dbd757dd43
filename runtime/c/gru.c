#include "rill_kernels.h"
#include "rill_recurrent.h"

/* rill_gru_VARIANT (s8 only): ONNX GRU (gates z, r, n), one direction, batch 1, `t` frames;
 * h is updated in place after every frame (spec: runtime/RECURRENT.md). Per frame: (1) z and r
 * from the old h, (2) the candidate n from the old h, (3) h = (z*h + (128 - z)*n) / 2^7. The
 * gates live in `scratch` so that h is only overwritten once nothing reads the old value any
 * more. */

/* Phase 1: scratch[u] = table value of z (u < H) and r (H <= u < 2H); for
 * linear_before_reset = 0, scratch[H + u] is then replaced by r*h (exponent -7). */
static void rill_gru_gates_VARIANT(const rill_gru_params_t *p, const int8_t *xt,
                                   const int8_t *wx, const int8_t *wh, const int32_t *bias,
                                   const int8_t *shift, const int8_t *table, const int8_t *h,
                                   int8_t *scratch)
{
    const int32_t hid = p->hidden;
    int32_t j;
    rill_rnn_gate_rows(p->input, hid, 3 * hid, 2 * hid, xt, wx, wh, bias, shift, table, h, scratch);
    if (p->linear_before_reset == 0) {
        int8_t *rh = scratch + hid;
        for (j = 0; j < hid; ++j) {
            const int32_t r = (int32_t)rh[j] + 64;
            rh[j] = (int8_t)rill_sat8(rill_round_shift((int64_t)(r * (int32_t)h[j]), 7));
        }
    }
}

/* Phase 2: scratch[2H + u] = n = tanh table at sat16(round_shift(128*ax + m*ah, so - 1)),
 * ax = acc_x*2^sx + b_nx, ah = acc_h*2^sh + b_nh, where m = r (linear_before_reset = 1,
 * acc_h = R_n . h) or 128 (0, acc_h = R_n . (r*h)). Even for any table contents (m <= 191)
 * |128*ax| < 2^61 + 2^38 and |m*ah| < 2^61.6, so the int64 sum cannot overflow. */
static void rill_gru_candidate_VARIANT(const rill_gru_params_t *p, const int8_t *xt,
                                       const int8_t *wx, const int8_t *wh, const int32_t *bias,
                                       const int8_t *shift, const int8_t *table,
                                       const int8_t *h, int8_t *scratch)
{
    const int32_t in = p->input;
    const int32_t hid = p->hidden;
    const int32_t rows = 3 * hid;
    const int32_t lbr = p->linear_before_reset != 0;
    const int8_t *hv = lbr ? h : scratch + hid; /* what R_n multiplies */
    int32_t u;
    for (u = 0; u < hid; ++u) {
        const int32_t j = 2 * hid + u;
        const int64_t ax = rill_rnn_align(rill_rnn_dot_s8(wx + j * in, xt, in), shift[j],
                                          bias[j]);
        const int64_t ah = rill_rnn_align(rill_rnn_dot_s8(wh + j * hid, hv, hid),
                                          shift[rows + j], bias[rows + u]);
        const int64_t m = lbr ? (int64_t)scratch[hid + u] + 64 : 128;
        const int32_t pre = rill_rnn_sat16(rill_round_shift(128 * ax + m * ah,
                                                            shift[2 * rows + j] + 7 -
                                                                RILL_RNN_FRAC));
        scratch[j] = (int8_t)rill_rnn_lookup(table + 512, pre);
    }
}

/* x [t][input], wx [3H][input], wh [3H][H] (gate rows z, r, n), bias [4H] int32 (z, r, n_x,
 * n_h), shift [3][3H] int8 (sx, sh, so), table [3][256] (sigmoid z, sigmoid r: stored as
 * round(128*s) - 64; tanh n), h [H] in/out, scratch [3H], y [t][H] or NULL. */
void rill_gru_VARIANT(const rill_gru_params_t *p, int32_t t, const int8_t *x,
                      const int8_t *wx, const int8_t *wh, const int32_t *bias,
                      const int8_t *shift, const int8_t *table, int8_t *h, int8_t *scratch,
                      int8_t *y)
{
    const int32_t in = p->input;
    const int32_t hid = p->hidden;
    int32_t f, u;
    for (f = 0; f < t; ++f) {
        const int8_t *xt = x + f * in;
        rill_gru_gates_VARIANT(p, xt, wx, wh, bias, shift, table, h, scratch);
        rill_gru_candidate_VARIANT(p, xt, wx, wh, bias, shift, table, h, scratch);
        for (u = 0; u < hid; ++u) { /* phase 3: h = z*h + (1 - z)*n */
            const int32_t z = (int32_t)scratch[u] + 64;
            const int32_t n = scratch[2 * hid + u];
            h[u] = (int8_t)rill_sat8(rill_round_shift(z * (int32_t)h[u] + (128 - z) * n, 7));
        }
        if (y != NULL) {
            memcpy(y + f * hid, h, (size_t)hid);
        }
    }
}
