#include "rill_kernels.h"

/* rill_conv1d_VARIANT: grouped/dilated/strided 1-D convolution over time-major frames.
 * x rill_x_t [t_in][c_in], w rill_w_t [c_out][kernel][c_in/groups], bias rill_acc_t [c_out],
 * shift int8 [c_out], y rill_y_t [t_out][c_out]. With cg = c_in/groups, og = c_out/groups,
 * g = co/og:
 *   acc = bias[co] + sum_{k, i} w[co][k][i] * x[t*stride + k*dilation - pad_l][g*cg + i]
 * (frames outside [0, t_in) read 0; summed in rill_acc_t, the bias type), then
 *   y[t][co] = clamp(sat_Y(round_shift(acc, shift[co])), act_min, act_max).
 *
 * Speed (the sums are exact integers, so any order gives the same result): output frames whose
 * taps all read inside [0, t_in) are computed in register blocks -- dense convs (groups 1) four
 * frames x two output channels (each weight loaded once for four frames, each input once for two
 * channels), or one frame x four channels; depthwise convs (one input and one output channel per
 * group) four frames of one channel per weight load. Inner loops walk pointers two input channels
 * per step. Frames that read padding, and other groupings, take the plain loop. The
 * requantization is one int32 rounding and one clamp per output (rill_rq_apply), set up once
 * per channel and block. */

#define RILL_CONV1D_WIDE_VARIANT (sizeof(rill_acc_t) > 4)

/* Dense block: output frames j = 0..3 (inputs x0 + j*fstep, outputs y0 + j*ystep) of channels
 * co, co + 1 (weights w0, w0 + wrow; bias[0..1], shift[0..1]), `kernel` taps x cg. */
static void rill_conv1d_dense4x2_VARIANT(const rill_x_t *x0, int32_t fstep, int32_t tstep,
                                         const rill_w_t *w0, int32_t wrow, int32_t kernel,
                                         int32_t cg, const rill_acc_t *bias,
                                         const int8_t *shift, int32_t lo, int32_t hi,
                                         rill_y_t *y0, int32_t ystep)
{
    const int wide = RILL_CONV1D_WIDE_VARIANT;
    rill_acc_t a0 = bias[0], a1 = a0, a2 = a0, a3 = a0;
    rill_acc_t b0 = bias[1], b1 = b0, b2 = b0, b3 = b0;
    rill_rq_t ra, rb;
    int32_t k;
    for (k = 0; k < kernel; ++k) {
        const rill_x_t *xa = x0 + k * tstep;
        const rill_x_t *xb = xa + fstep;
        const rill_x_t *xc = xb + fstep;
        const rill_x_t *xd = xc + fstep;
        const rill_w_t *wa = w0 + k * cg;
        const rill_w_t *wb = wa + wrow;
        const rill_w_t *const wa_end = wa + (cg & ~(int32_t)1);
        while (wa != wa_end) { /* two input channels per step: the pointers move once */
            rill_acc_t va = wa[0], vb = wb[0];
            a0 += va * xa[0];
            a1 += va * xb[0];
            a2 += va * xc[0];
            a3 += va * xd[0];
            b0 += vb * xa[0];
            b1 += vb * xb[0];
            b2 += vb * xc[0];
            b3 += vb * xd[0];
            va = wa[1], vb = wb[1];
            a0 += va * xa[1];
            a1 += va * xb[1];
            a2 += va * xc[1];
            a3 += va * xd[1];
            b0 += vb * xa[1];
            b1 += vb * xb[1];
            b2 += vb * xc[1];
            b3 += vb * xd[1];
            wa += 2, wb += 2, xa += 2, xb += 2, xc += 2, xd += 2;
        }
        if (cg & 1) {
            const rill_acc_t va = wa[0], vb = wb[0];
            a0 += va * xa[0];
            a1 += va * xb[0];
            a2 += va * xc[0];
            a3 += va * xd[0];
            b0 += vb * xa[0];
            b1 += vb * xb[0];
            b2 += vb * xc[0];
            b3 += vb * xd[0];
        }
    }
    ra = rill_rq_init(shift[0]);
    rb = rill_rq_init(shift[1]);
    y0[0] = (rill_y_t)rill_requant(ra, a0, wide, lo, hi);
    y0[1] = (rill_y_t)rill_requant(rb, b0, wide, lo, hi);
    y0 += ystep;
    y0[0] = (rill_y_t)rill_requant(ra, a1, wide, lo, hi);
    y0[1] = (rill_y_t)rill_requant(rb, b1, wide, lo, hi);
    y0 += ystep;
    y0[0] = (rill_y_t)rill_requant(ra, a2, wide, lo, hi);
    y0[1] = (rill_y_t)rill_requant(rb, b2, wide, lo, hi);
    y0 += ystep;
    y0[0] = (rill_y_t)rill_requant(ra, a3, wide, lo, hi);
    y0[1] = (rill_y_t)rill_requant(rb, b3, wide, lo, hi);
}

/* Dense block: one output frame (input x0), channels co..co + 3 (weights w0 + j*wrow,
 * bias[0..3], shift[0..3], outputs y0[0..3]), `kernel` taps x cg. */
static void rill_conv1d_dense1x4_VARIANT(const rill_x_t *x0, int32_t tstep, const rill_w_t *w0,
                                         int32_t wrow, int32_t kernel, int32_t cg,
                                         const rill_acc_t *bias, const int8_t *shift,
                                         int32_t lo, int32_t hi, rill_y_t *y0)
{
    const int wide = RILL_CONV1D_WIDE_VARIANT;
    rill_acc_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
    int32_t k;
    for (k = 0; k < kernel; ++k) {
        const rill_x_t *xa = x0 + k * tstep;
        const rill_x_t *const xa_end = xa + (cg & ~(int32_t)1);
        const rill_w_t *wa = w0 + k * cg;
        const rill_w_t *wb = wa + wrow;
        const rill_w_t *wc = wb + wrow;
        const rill_w_t *wd = wc + wrow;
        while (xa != xa_end) { /* two inputs per step: the pointers move once */
            const rill_acc_t u = xa[0], v = xa[1];
            a0 += u * wa[0] + v * wa[1];
            a1 += u * wb[0] + v * wb[1];
            a2 += u * wc[0] + v * wc[1];
            a3 += u * wd[0] + v * wd[1];
            xa += 2, wa += 2, wb += 2, wc += 2, wd += 2;
        }
        if (cg & 1) {
            const rill_acc_t u = xa[0];
            a0 += u * wa[0];
            a1 += u * wb[0];
            a2 += u * wc[0];
            a3 += u * wd[0];
        }
    }
    y0[0] = (rill_y_t)rill_requant(rill_rq_init(shift[0]), a0, wide, lo, hi);
    y0[1] = (rill_y_t)rill_requant(rill_rq_init(shift[1]), a1, wide, lo, hi);
    y0[2] = (rill_y_t)rill_requant(rill_rq_init(shift[2]), a2, wide, lo, hi);
    y0[3] = (rill_y_t)rill_requant(rill_rq_init(shift[3]), a3, wide, lo, hi);
}

/* Depthwise block: output frames j = 0..3 (inputs x0 + j*fstep: channel c's column, outputs
 * y0 + j*ystep) of one channel (its `kernel` weights w0, bias[0], shift[0]). */
static void rill_conv1d_depthwise4_VARIANT(const rill_x_t *x0, int32_t fstep, int32_t tstep,
                                           const rill_w_t *w0, int32_t kernel,
                                           const rill_acc_t *bias, const int8_t *shift,
                                           int32_t lo, int32_t hi, rill_y_t *y0, int32_t ystep)
{
    const int wide = RILL_CONV1D_WIDE_VARIANT;
    const rill_x_t *xb = x0 + fstep;
    const rill_x_t *xc = xb + fstep;
    const rill_x_t *xd = xc + fstep;
    const rill_w_t *const w_end = w0 + kernel;
    rill_acc_t a0 = bias[0], a1 = a0, a2 = a0, a3 = a0;
    rill_rq_t r;
    while (w0 != w_end) {
        const rill_acc_t v = *w0++;
        a0 += v * *x0;
        a1 += v * *xb;
        a2 += v * *xc;
        a3 += v * *xd;
        x0 += tstep, xb += tstep, xc += tstep, xd += tstep;
    }
    r = rill_rq_init(shift[0]);
    y0[0] = (rill_y_t)rill_requant(r, a0, wide, lo, hi);
    y0[ystep] = (rill_y_t)rill_requant(r, a1, wide, lo, hi);
    y0[2 * ystep] = (rill_y_t)rill_requant(r, a2, wide, lo, hi);
    y0[3 * ystep] = (rill_y_t)rill_requant(r, a3, wide, lo, hi);
}

void rill_conv1d_VARIANT(const rill_conv1d_params_t *p, const rill_x_t *x, const rill_w_t *w,
                         const rill_acc_t *bias, const int8_t *shift, rill_y_t *y)
{
    const int32_t t_in = p->t_in;
    const int32_t c_in = p->c_in;
    const int32_t c_out = p->c_out;
    const int32_t kernel = p->kernel;
    const int32_t stride = p->stride;
    const int32_t dilation = p->dilation;
    const int32_t cg = c_in / p->groups;
    const int32_t og = c_out / p->groups;
    const int32_t wrow = kernel * cg; /* weights per output channel */
    const int32_t span = t_in + p->pad_l + p->pad_r - dilation * (kernel - 1) - 1;
    const int32_t t_out = span < 0 ? 0 : span / stride + 1; /* no frame if input too short */
    const int32_t fstep = stride * c_in;   /* from one output frame's input to the next */
    const int32_t tstep = dilation * c_in; /* from one tap's input frame to the next */
    const int dense = p->groups == 1;
    const int depthwise = cg == 1 && og == 1;
    int32_t lo, hi, t_a, t_b, t, co;

    rill_out_bounds(RILL_Y_MIN, RILL_Y_MAX, p->act_min, p->act_max, &lo, &hi);
    /* [t_a, t_b): the output frames whose taps all read inside [0, t_in) */
    t_a = p->pad_l <= 0 ? 0 : (p->pad_l + stride - 1) / stride;
    t_b = t_in - 1 - dilation * (kernel - 1) + p->pad_l;
    t_b = t_b < 0 ? 0 : t_b / stride + 1;
    t_b = t_b > t_out ? t_out : t_b;
    t_a = t_a > t_b ? t_b : t_a;

    for (t = 0; t < t_out; ++t) {
        const int32_t t0 = t * stride - p->pad_l; /* input frame of tap 0 */
        const rill_x_t *xt = x + t0 * c_in;
        rill_y_t *yt = y + t * c_out;
        co = 0;
        if (t >= t_a && t + 4 <= t_b && (dense || depthwise)) { /* four interior frames */
            if (dense) {
                for (; co + 2 <= c_out; co += 2) {
                    rill_conv1d_dense4x2_VARIANT(xt, fstep, tstep, w + co * wrow, wrow, kernel,
                                                 cg, bias + co, shift + co, lo, hi, yt + co,
                                                 c_out);
                }
            } else {
                for (; co < c_out; ++co) {
                    rill_conv1d_depthwise4_VARIANT(xt + co, fstep, tstep, w + co * kernel,
                                                   kernel, bias + co, shift + co, lo, hi,
                                                   yt + co, c_out);
                }
            }
            if (co == c_out) {
                t += 3;
                continue;
            }
            co = 0; /* a dense conv's odd last channel: frame by frame below */
        }
        if (t >= t_a && t < t_b && dense) { /* one interior frame: four channels per x load */
            for (; co + 4 <= c_out; co += 4) {
                rill_conv1d_dense1x4_VARIANT(xt, tstep, w + co * wrow, wrow, kernel, cg,
                                             bias + co, shift + co, lo, hi, yt + co);
            }
        } else if (t >= t_a && t < t_b && depthwise) { /* one interior frame, no tap test */
            for (; co < c_out; ++co) {
                const rill_x_t *xk = xt + co;
                const rill_w_t *wk = w + co * kernel;
                const rill_w_t *const w_end = wk + kernel;
                rill_acc_t acc = bias[co];
                while (wk != w_end) {
                    acc += (rill_acc_t)*wk++ * (rill_acc_t)*xk;
                    xk += tstep;
                }
                yt[co] = (rill_y_t)rill_requant(rill_rq_init(shift[co]), acc,
                                                RILL_CONV1D_WIDE_VARIANT, lo, hi);
            }
        }
        {
            const int wide = RILL_CONV1D_WIDE_VARIANT;
            int32_t k_lo, k_hi, k, i; /* the taps that read frames inside [0, t_in) */
            rill_tap_range(t0, t_in, dilation, kernel, &k_lo, &k_hi);
            for (; co < c_out; ++co) {
                const rill_x_t *xg = x + (co / og) * cg;
                const rill_w_t *wc = w + co * wrow;
                rill_acc_t acc = bias[co];
                for (k = k_lo; k < k_hi; ++k) {
                    const rill_x_t *xr = xg + (t0 + k * dilation) * c_in;
                    const rill_w_t *wr = wc + k * cg;
                    for (i = 0; i < cg; ++i) {
                        acc += (rill_acc_t)wr[i] * (rill_acc_t)xr[i];
                    }
                }
                yt[co] = (rill_y_t)rill_requant(rill_rq_init(shift[co]), acc, wide, lo, hi);
            }
        }
    }
}
