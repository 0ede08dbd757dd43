#include "rill_kernels.h"

/* rill_conv1d_VARIANT: grouped/dilated/strided 1-D convolution over time-major frames.
 * x rill_x_t [t_in][c_in], w rill_w_t [c_out][kernel][c_in/groups] (logically; stored as
 * p->wblock says), bias rill_acc_t [c_out], shift int8 [c_out], y rill_y_t [t_out][c_out].
 * With cg = c_in/groups, og = c_out/groups, g = co/og:
 *   acc = bias[co] + sum_{k, i} w[co][k][i] * x[t*stride + k*dilation - pad_l][g*cg + i]
 * (frames outside [0, t_in) read 0; summed in rill_acc_t, the bias type), then
 *   y[t][co] = clamp(sat_Y(round_shift(acc, shift[co])), act_min, act_max).
 *
 * Layout (chosen at compile time, runtime/weight_layout.py): w in blocks of p->wblock output
 * channels, each [kernel][cg][width] with the channels innermost (the last block narrower);
 * wblock 1 is the logical layout. p->rq_bias: the bias holds the rounding constant
 * (rill_rq_folded).
 *
 * Speed (the sums are exact integers, so any order gives the same result), on the blocked
 * paths (rq_bias, or an int64 accumulator): dense convs with wblock = RILL_CONV1D_BLOCK (16)
 * compute two interior frames x 8 channels per register block (each weight loaded once for
 * both frames, each input once for 8 channels, one weight pointer with immediate offsets; x 4
 * channels with int64 accumulators), a single frame or one that reads padding 16 (else 8)
 * channels at a time with its taps restricted to the inside; depthwise convs keep a channel's
 * taps in registers (kernel 3: two channels at a time) and walk its interior frames, or with
 * fewer than RILL_CONV1D_DW_FRAMES of them go frame by frame across the channels. The rest --
 * the channels of a narrower last block no 8-channel block covers, other groupings, the
 * padding frames of a depthwise conv, the logical layout -- takes the plain loop, which reads
 * any layout. */

#define RILL_CONV1D_WIDE_VARIANT (sizeof(rill_acc_t) > 4)
#define RILL_CONV1D_BLOCK 16
#define RILL_CONV1D_DW_FRAMES 4 /* depthwise: channel by channel from this many frames */

/* One output of the blocked paths: clamp(sat_Y(round_shift(acc, s)), lo, hi), the bias
 * holding the rounding constant (rq_bias) when the accumulator is int32. */
static inline int32_t rill_conv1d_out_VARIANT(rill_acc_t acc, int s, int32_t lo, int32_t hi)
{
    if (RILL_CONV1D_WIDE_VARIANT) {
        return rill_requant(rill_rq_init(s), acc, 1, lo, hi);
    }
    return rill_rq_folded((int32_t)acc, s, lo, hi);
}

/* The 8 outputs of one frame of a block: y[j] from a_j and shift[j]. */
static inline void rill_conv1d_store8_VARIANT(rill_y_t *y, const int8_t *shift, int32_t lo,
                                              int32_t hi, rill_acc_t a0,
                                              rill_acc_t a1, rill_acc_t a2, rill_acc_t a3,
                                              rill_acc_t a4, rill_acc_t a5, rill_acc_t a6,
                                              rill_acc_t a7)
{
    y[0] = (rill_y_t)rill_conv1d_out_VARIANT(a0, shift[0], lo, hi);
    y[1] = (rill_y_t)rill_conv1d_out_VARIANT(a1, shift[1], lo, hi);
    y[2] = (rill_y_t)rill_conv1d_out_VARIANT(a2, shift[2], lo, hi);
    y[3] = (rill_y_t)rill_conv1d_out_VARIANT(a3, shift[3], lo, hi);
    y[4] = (rill_y_t)rill_conv1d_out_VARIANT(a4, shift[4], lo, hi);
    y[5] = (rill_y_t)rill_conv1d_out_VARIANT(a5, shift[5], lo, hi);
    y[6] = (rill_y_t)rill_conv1d_out_VARIANT(a6, shift[6], lo, hi);
    y[7] = (rill_y_t)rill_conv1d_out_VARIANT(a7, shift[7], lo, hi);
}

/* Dense convs, weights in blocks of RILL_CONV1D_BLOCK channels (the last one `c_out mod
 * RILL_CONV1D_BLOCK` wide when that is not 0), each [kernel][cg][width]: channel co's weight of
 * tap k and input i is at w + first*wrow + (k*cg + i)*width + (co - first), first = co's
 * block. The register blocks below cover the channels [0, n) in groups of 8 (4), each group
 * inside one block: `rill_wblock_lane` (rill_common.h) gives the group's first weight. */

/* Two interior frames (inputs x0 and x0 + fstep: their tap 0; outputs y0 and y0 + c_out) x
 * the channels [0, n), n a multiple of 8: 8 channels per register block, each weight loaded
 * once for both frames, each input once for 8 channels. */
static RILL_WIDE_BLOCK void rill_conv1d_pair8_VARIANT(const rill_x_t *x0, int32_t fstep,
                                                     int32_t tstep, int32_t kernel, int32_t cg,
                                                     const rill_w_t *w, int32_t c_out,
                                                     int32_t n, const rill_acc_t *bias,
                                                     const int8_t *shift, int32_t lo,
                                                     int32_t hi, rill_y_t *y0)
{
    int32_t co, k, width;
    for (co = 0; co < n; co += 8) {
        const rill_w_t *wp =
            w + rill_wblock_lane(co, c_out, RILL_CONV1D_BLOCK, kernel * cg, 0, &width);
        rill_acc_t a0 = bias[co], a1 = bias[co + 1], a2 = bias[co + 2], a3 = bias[co + 3];
        rill_acc_t a4 = bias[co + 4], a5 = bias[co + 5], a6 = bias[co + 6], a7 = bias[co + 7];
        rill_acc_t b0 = a0, b1 = a1, b2 = a2, b3 = a3, b4 = a4, b5 = a5, b6 = a6, b7 = a7;
        for (k = 0; k < kernel; ++k) {
            const rill_x_t *xa = x0 + k * tstep;
            const rill_x_t *xb = xa + fstep;
            const rill_x_t *const xa_end = xa + cg;
            while (xa != xa_end) {
                const rill_acc_t u = *xa++, v = *xb++;
                rill_acc_t c = wp[0];
                a0 += c * u, b0 += c * v, c = wp[1];
                a1 += c * u, b1 += c * v, c = wp[2];
                a2 += c * u, b2 += c * v, c = wp[3];
                a3 += c * u, b3 += c * v, c = wp[4];
                a4 += c * u, b4 += c * v, c = wp[5];
                a5 += c * u, b5 += c * v, c = wp[6];
                a6 += c * u, b6 += c * v, c = wp[7];
                a7 += c * u, b7 += c * v;
                wp += width;
            }
        }
        rill_conv1d_store8_VARIANT(y0 + co, shift + co, lo, hi, a0, a1, a2, a3, a4, a5, a6,
                                   a7);
        rill_conv1d_store8_VARIANT(y0 + c_out + co, shift + co, lo, hi, b0, b1, b2, b3, b4, b5,
                                   b6, b7);
    }
}

/* The same with 4 channels per register block, n a multiple of 4 (int64 accumulators: two
 * registers each). */
static RILL_NOINLINE void rill_conv1d_pair4_VARIANT(const rill_x_t *x0, int32_t fstep,
                                                   int32_t tstep, int32_t kernel, int32_t cg,
                                                   const rill_w_t *w, int32_t c_out, int32_t n,
                                                   const rill_acc_t *bias, const int8_t *shift,
                                                   int32_t lo, int32_t hi, rill_y_t *y0)
{
    int32_t co, k, width;
    for (co = 0; co < n; co += 4) {
        const rill_w_t *wp =
            w + rill_wblock_lane(co, c_out, RILL_CONV1D_BLOCK, kernel * cg, 0, &width);
        rill_acc_t a0 = bias[co], a1 = bias[co + 1], a2 = bias[co + 2], a3 = bias[co + 3];
        rill_acc_t b0 = a0, b1 = a1, b2 = a2, b3 = a3;
        rill_y_t *const ya = y0 + co;
        rill_y_t *const yb = ya + c_out;
        for (k = 0; k < kernel; ++k) {
            const rill_x_t *xa = x0 + k * tstep;
            const rill_x_t *xb = xa + fstep;
            const rill_x_t *const xa_end = xa + cg;
            while (xa != xa_end) {
                const rill_acc_t u = *xa++, v = *xb++;
                rill_acc_t c = wp[0];
                a0 += c * u, b0 += c * v, c = wp[1];
                a1 += c * u, b1 += c * v, c = wp[2];
                a2 += c * u, b2 += c * v, c = wp[3];
                a3 += c * u, b3 += c * v;
                wp += width;
            }
        }
        ya[0] = (rill_y_t)rill_conv1d_out_VARIANT(a0, shift[co], lo, hi);
        ya[1] = (rill_y_t)rill_conv1d_out_VARIANT(a1, shift[co + 1], lo, hi);
        ya[2] = (rill_y_t)rill_conv1d_out_VARIANT(a2, shift[co + 2], lo, hi);
        ya[3] = (rill_y_t)rill_conv1d_out_VARIANT(a3, shift[co + 3], lo, hi);
        yb[0] = (rill_y_t)rill_conv1d_out_VARIANT(b0, shift[co], lo, hi);
        yb[1] = (rill_y_t)rill_conv1d_out_VARIANT(b1, shift[co + 1], lo, hi);
        yb[2] = (rill_y_t)rill_conv1d_out_VARIANT(b2, shift[co + 2], lo, hi);
        yb[3] = (rill_y_t)rill_conv1d_out_VARIANT(b3, shift[co + 3], lo, hi);
    }
}

/* One frame (x0: the input of its first tap used, k_lo; `taps` of them, tstep apart; output
 * y0) x the channels [0, n), n a multiple of 8: 16 channels per register block for a full
 * weight block (int32 accumulators), else 8. */
static RILL_WIDE_BLOCK void rill_conv1d_one_VARIANT(const rill_x_t *x0, int32_t tstep,
                                                   int32_t kernel, int32_t k_lo, int32_t taps,
                                                   int32_t cg, const rill_w_t *w,
                                                   int32_t c_out, int32_t n,
                                                   const rill_acc_t *bias, const int8_t *shift,
                                                   int32_t lo, int32_t hi, rill_y_t *y0)
{
    int32_t co = 0, k, width;
    for (; co + 16 <= n && !RILL_CONV1D_WIDE_VARIANT; co += 16) {
        const rill_w_t *wp =
            w + rill_wblock_lane(co, c_out, RILL_CONV1D_BLOCK, kernel * cg, k_lo * cg, &width);
        rill_acc_t a0 = bias[co], a1 = bias[co + 1], a2 = bias[co + 2], a3 = bias[co + 3];
        rill_acc_t a4 = bias[co + 4], a5 = bias[co + 5], a6 = bias[co + 6], a7 = bias[co + 7];
        rill_acc_t b0 = bias[co + 8], b1 = bias[co + 9], b2 = bias[co + 10];
        rill_acc_t b3 = bias[co + 11], b4 = bias[co + 12], b5 = bias[co + 13];
        rill_acc_t b6 = bias[co + 14], b7 = bias[co + 15];
        for (k = 0; k < taps; ++k) {
            const rill_x_t *xa = x0 + k * tstep;
            const rill_x_t *const xa_end = xa + cg;
            while (xa != xa_end) {
                const rill_acc_t u = *xa++;
                a0 += u * wp[0], a1 += u * wp[1], a2 += u * wp[2], a3 += u * wp[3];
                a4 += u * wp[4], a5 += u * wp[5], a6 += u * wp[6], a7 += u * wp[7];
                b0 += u * wp[8], b1 += u * wp[9], b2 += u * wp[10], b3 += u * wp[11];
                b4 += u * wp[12], b5 += u * wp[13], b6 += u * wp[14], b7 += u * wp[15];
                wp += 16;
            }
        }
        rill_conv1d_store8_VARIANT(y0 + co, shift + co, lo, hi, a0, a1, a2, a3, a4, a5, a6,
                                   a7);
        rill_conv1d_store8_VARIANT(y0 + co + 8, shift + co + 8, lo, hi, b0, b1, b2, b3, b4, b5,
                                   b6, b7);
    }
    for (; co < n; co += 8) {
        const rill_w_t *wp =
            w + rill_wblock_lane(co, c_out, RILL_CONV1D_BLOCK, kernel * cg, k_lo * cg, &width);
        rill_acc_t a0 = bias[co], a1 = bias[co + 1], a2 = bias[co + 2], a3 = bias[co + 3];
        rill_acc_t a4 = bias[co + 4], a5 = bias[co + 5], a6 = bias[co + 6], a7 = bias[co + 7];
        for (k = 0; k < taps; ++k) {
            const rill_x_t *xa = x0 + k * tstep;
            const rill_x_t *const xa_end = xa + cg;
            while (xa != xa_end) {
                const rill_acc_t u = *xa++;
                a0 += u * wp[0], a1 += u * wp[1], a2 += u * wp[2], a3 += u * wp[3];
                a4 += u * wp[4], a5 += u * wp[5], a6 += u * wp[6], a7 += u * wp[7];
                wp += width;
            }
        }
        rill_conv1d_store8_VARIANT(y0 + co, shift + co, lo, hi, a0, a1, a2, a3, a4, a5, a6,
                                   a7);
    }
}

/* Depthwise, kernel 3: n interior frames (input xt: channel c's tap 0 of the first, fstep
 * apart; outputs yt, ystep apart) of channels c and c + 1 (weights w [2][3], bias, shift). */
static void rill_conv1d_dw3pair_VARIANT(const rill_x_t *xt, int32_t fstep, int32_t tstep,
                                        const rill_w_t *w, const rill_acc_t *bias,
                                        const int8_t *shift, int32_t lo, int32_t hi,
                                        rill_y_t *yt, int32_t ystep, int32_t n)
{
    const rill_acc_t u0 = w[0], u1 = w[1], u2 = w[2], v0 = w[3], v1 = w[4], v2 = w[5];
    const rill_acc_t bu = bias[0], bv = bias[1];
    const int su = shift[0], sv = shift[1];
    rill_y_t *const y_end = yt + n * ystep;
    for (; yt != y_end; yt += ystep, xt += fstep) {
        const rill_x_t *x1 = xt + tstep, *x2 = x1 + tstep;
        const rill_acc_t a = bu + u0 * xt[0] + u1 * x1[0] + u2 * x2[0];
        const rill_acc_t b = bv + v0 * xt[1] + v1 * x1[1] + v2 * x2[1];
        yt[0] = (rill_y_t)rill_conv1d_out_VARIANT(a, su, lo, hi);
        yt[1] = (rill_y_t)rill_conv1d_out_VARIANT(b, sv, lo, hi);
    }
}

/* Depthwise: n interior frames (input x0: channel 0's tap 0 of the first, fstep apart;
 * outputs y0, ystep apart) of the c channels (weights w [c][kernel], bias, shift), channel by
 * channel (two at a time for kernel 3) with the taps (tstep apart) held in registers for
 * kernels 3 and 5. */
static RILL_NOINLINE void rill_conv1d_depthwise_VARIANT(const rill_x_t *x0, int32_t fstep,
                                                       int32_t tstep, const rill_w_t *w,
                                                       int32_t kernel, const rill_acc_t *bias,
                                                       const int8_t *shift, int32_t lo,
                                                       int32_t hi, rill_y_t *y0, int32_t ystep,
                                                       int32_t c, int32_t n)
{
    int32_t co = 0, k;
    if (kernel == 3) {
        for (; co + 2 <= c; co += 2) {
            rill_conv1d_dw3pair_VARIANT(x0 + co, fstep, tstep, w + co * 3, bias + co, shift + co,
                                        lo, hi, y0 + co, ystep, n);
        }
    }
    for (w += co * kernel; co < c; ++co, w += kernel) {
        const rill_x_t *xt = x0 + co;
        rill_y_t *yt = y0 + co;
        rill_y_t *const y_end = yt + n * ystep;
        const rill_acc_t b = bias[co];
        const int s = shift[co];
        if (kernel == 3) {
            const rill_acc_t w0 = w[0], w1 = w[1], w2 = w[2];
            for (; yt != y_end; yt += ystep, xt += fstep) {
                const rill_acc_t acc = b + w0 * xt[0] + w1 * xt[tstep] + w2 * xt[2 * tstep];
                *yt = (rill_y_t)rill_conv1d_out_VARIANT(acc, s, lo, hi);
            }
        } else if (kernel == 5) {
            const rill_acc_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4];
            for (; yt != y_end; yt += ystep, xt += fstep) {
                const rill_acc_t acc = b + w0 * xt[0] + w1 * xt[tstep] + w2 * xt[2 * tstep] +
                                       w3 * xt[3 * tstep] + w4 * xt[4 * tstep];
                *yt = (rill_y_t)rill_conv1d_out_VARIANT(acc, s, lo, hi);
            }
        } else {
            for (; yt != y_end; yt += ystep, xt += fstep) {
                const rill_x_t *xk = xt;
                rill_acc_t acc = b;
                for (k = 0; k < kernel; ++k, xk += tstep) {
                    acc += (rill_acc_t)w[k] * (rill_acc_t)*xk;
                }
                *yt = (rill_y_t)rill_conv1d_out_VARIANT(acc, s, lo, hi);
            }
        }
    }
}

/* Depthwise, one interior frame (input xt: its tap 0) across the c channels (weights w
 * [c][kernel]): outputs yt[0..c). */
static RILL_NOINLINE void rill_conv1d_dwframe_VARIANT(const rill_x_t *xt, int32_t tstep,
                                                     const rill_w_t *w, int32_t kernel,
                                                     const rill_acc_t *bias,
                                                     const int8_t *shift, int32_t lo,
                                                     int32_t hi, rill_y_t *yt, int32_t c)
{
    int32_t co, k;
    if (kernel == 3) {
        for (co = 0; co < c; ++co, w += 3) {
            const rill_x_t *xk = xt + co;
            const rill_acc_t acc = bias[co] + (rill_acc_t)w[0] * xk[0] +
                                   (rill_acc_t)w[1] * xk[tstep] +
                                   (rill_acc_t)w[2] * xk[2 * tstep];
            yt[co] = (rill_y_t)rill_conv1d_out_VARIANT(acc, shift[co], lo, hi);
        }
        return;
    }
    for (co = 0; co < c; ++co) {
        const rill_x_t *xk = xt + co;
        rill_acc_t acc = bias[co];
        for (k = 0; k < kernel; ++k, xk += tstep) {
            acc += (rill_acc_t)*w++ * (rill_acc_t)*xk;
        }
        yt[co] = (rill_y_t)rill_conv1d_out_VARIANT(acc, shift[co], lo, hi);
    }
}

/* The plain loop: frame t, channels [co_a, co_b), any layout (p->wblock). */
static RILL_NOINLINE void rill_conv1d_plain_VARIANT(const rill_conv1d_params_t *p,
                                                   const rill_x_t *x, const rill_w_t *w,
                                                   const rill_acc_t *bias, const int8_t *shift,
                                                   int32_t lo, int32_t hi, int32_t t,
                                                   int32_t co_a, int32_t co_b, rill_y_t *y)
{
    const int32_t c_in = p->c_in, c_out = p->c_out, cg = c_in / p->groups;
    const int32_t og = c_out / p->groups, wrow = p->kernel * cg, wb = p->wblock;
    const int32_t t0 = t * p->stride - p->pad_l; /* input frame of tap 0 */
    int32_t k_lo, k_hi, k, i, co;
    rill_tap_range(t0, p->t_in, p->dilation, p->kernel, &k_lo, &k_hi);
    for (co = co_a; co < co_b; ++co) {
        int32_t width;
        const rill_w_t *wc = w + rill_wblock_lane(co, c_out, wb, wrow, 0, &width);
        const rill_x_t *xg = x + (co / og) * cg;
        rill_acc_t acc = bias[co];
        for (k = k_lo; k < k_hi; ++k) {
            const rill_x_t *xr = xg + (t0 + k * p->dilation) * c_in;
            const rill_w_t *wr = wc + k * cg * width;
            for (i = 0; i < cg; ++i) {
                acc += (rill_acc_t)wr[i * width] * (rill_acc_t)xr[i];
            }
        }
        y[t * c_out + co] = (rill_y_t)(p->rq_bias && !RILL_CONV1D_WIDE_VARIANT
                                       ? rill_rq_folded((int32_t)acc, shift[co], lo, hi)
                                       : rill_requant(rill_rq_init(shift[co]), acc,
                                                      RILL_CONV1D_WIDE_VARIANT, lo, hi));
    }
}

/* Dense convs: output frame t and, with `two`, t + 1 (both interior), every channel: the
 * register blocks, then the plain loop for the channels they leave (a narrower last block). */
static void rill_conv1d_dense_VARIANT(const rill_conv1d_params_t *p, const rill_x_t *x,
                                      const rill_w_t *w, const rill_acc_t *bias,
                                      const int8_t *shift, int32_t lo, int32_t hi, int32_t t,
                                      int two, rill_y_t *y)
{
    const int32_t c_in = p->c_in, c_out = p->c_out, kernel = p->kernel;
    const int32_t tstep = p->dilation * c_in;
    const int32_t t0 = t * p->stride - p->pad_l; /* input frame of tap 0 */
    const int32_t full = c_out - c_out % RILL_CONV1D_BLOCK; /* channels in full blocks */
    const int32_t lanes = two && RILL_CONV1D_WIDE_VARIANT ? 4 : 8;
    const int32_t n = full + (c_out - full) / lanes * lanes; /* channels in register blocks */
    int32_t k_lo = 0, k_hi = kernel;
    if (two && RILL_CONV1D_WIDE_VARIANT) {
        rill_conv1d_pair4_VARIANT(x + t0 * c_in, p->stride * c_in, tstep, kernel, c_in, w,
                                  c_out, n, bias, shift, lo, hi, y + t * c_out);
    } else if (two) {
        rill_conv1d_pair8_VARIANT(x + t0 * c_in, p->stride * c_in, tstep, kernel, c_in, w,
                                  c_out, n, bias, shift, lo, hi, y + t * c_out);
    } else {
        rill_tap_range(t0, p->t_in, p->dilation, kernel, &k_lo, &k_hi);
        rill_conv1d_one_VARIANT(k_hi > k_lo ? x + (t0 + k_lo * p->dilation) * c_in : x, tstep,
                                kernel, k_lo, k_hi - k_lo, c_in, w, c_out, n, bias, shift, lo,
                                hi, y + t * c_out);
    }
    if (n < c_out) {
        rill_conv1d_plain_VARIANT(p, x, w, bias, shift, lo, hi, t, n, c_out, y);
        if (two) {
            rill_conv1d_plain_VARIANT(p, x, w, bias, shift, lo, hi, t + 1, n, c_out, y);
        }
    }
}

void rill_conv1d_VARIANT(const rill_conv1d_params_t *p, const rill_x_t *x, const rill_w_t *w,
                         const rill_acc_t *bias, const int8_t *shift, rill_y_t *y)
{
    const int32_t c_in = p->c_in, c_out = p->c_out, kernel = p->kernel;
    const int32_t stride = p->stride, dilation = p->dilation;
    const int32_t cg = c_in / p->groups;
    const int32_t og = c_out / p->groups;
    const int32_t fstep = stride * c_in;   /* from one output frame's input to the next */
    const int32_t tstep = dilation * c_in; /* from one tap's input frame to the next */
    /* the blocked paths: the bias holds the rounding constant, or an int64 accumulator */
    const int blocked = RILL_CONV1D_WIDE_VARIANT || p->rq_bias;
    /* t_out frames; [t_a, t_b) those whose taps all read inside [0, t_in) */
    const rill_frames_t f = rill_conv_frames(p->t_in, p->pad_l, p->pad_r, kernel, stride,
                                             dilation);
    const int32_t t_out = f.t_out, t_a = f.t_a, t_b = f.t_b;
    int32_t lo, hi, t;

    rill_out_bounds(RILL_Y_MIN, RILL_Y_MAX, p->act_min, p->act_max, &lo, &hi);

    if (blocked && p->groups == 1 && p->wblock == RILL_CONV1D_BLOCK) {
        for (t = 0; t < t_out;) {
            const int two = t >= t_a && t + 2 <= t_b; /* two interior frames */
            rill_conv1d_dense_VARIANT(p, x, w, bias, shift, lo, hi, t, two, y);
            t += two ? 2 : 1;
        }
        return;
    }
    if (blocked && cg == 1 && og == 1 && p->wblock == 1) { /* depthwise */
        if (t_b - t_a >= RILL_CONV1D_DW_FRAMES) { /* each channel along its interior frames */
            rill_conv1d_depthwise_VARIANT(x + (t_a * stride - p->pad_l) * c_in, fstep, tstep, w,
                                          kernel, bias, shift, lo, hi, y + t_a * c_out, c_out,
                                          c_out, t_b - t_a);
        } else { /* a few frames: each frame across the channels */
            for (t = t_a; t < t_b; ++t) {
                rill_conv1d_dwframe_VARIANT(x + (t * stride - p->pad_l) * c_in, tstep, w, kernel,
                                            bias, shift, lo, hi, y + t * c_out, c_out);
            }
        }
        for (t = 0; t < t_out; ++t) { /* the frames that read padding */
            if (t == t_a) {
                t = t_b;
                if (t >= t_out) {
                    break;
                }
            }
            rill_conv1d_plain_VARIANT(p, x, w, bias, shift, lo, hi, t, 0, c_out, y);
        }
        return;
    }
    for (t = 0; t < t_out; ++t) {
        rill_conv1d_plain_VARIANT(p, x, w, bias, shift, lo, hi, t, 0, c_out, y);
    }
}
