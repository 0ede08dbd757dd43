#include "rill_kernels.h"

/* rill_conv1d_fx_VARIANT: the integer conv1d of runtime/KERNELS.md (and gemm, as a pointwise
 * conv over t_in = m frames) for an int8 input, accumulated in float32 -- exactly. The code
 * generator calls it only when every output channel's |bias| + 1 + sum|w| * 128 < 2^23
 * (runtime/weight_layout.py, `fx_exact`): then every product, every partial sum and the scaling
 * by 2^-shift is an exact float operation, so the result equals the integer kernel's bit for
 * bit in any summation order. Why: the FPU's multiply-add (fmadd.s: gcc contracts `a += w * x`
 * under -ffp-contract=fast, the default of ESP-IDF's GNU C) is one instruction per MAC where
 * integers take a multiply and an add, and its float-to-int conversion rounds half to even in
 * one instruction where integers take four.
 *
 * Arrays: w rill_w_t in the layout of p->wblock (runtime/weight_layout.py: dense convs in
 * 16-channel blocks, others [c_out][kernel][c_in/groups]): int8, or float32 holding the same
 * integers (one load per weight instead of a load and a conversion: for calls of a few frames,
 * where each weight is used once or twice); bias float [c_out]: the integer bias, plus 1/2 for
 * half up when the shift is >= 1; scale float [c_out]: 2^-shift. Then
 *   y[t][co] = clamp(rne((bias[co] + sum w * x) * scale[co]), lo, hi)
 * with rne rounding half to even (rill_rne). Half up: the added 1/2 makes the scaled sum
 * (A + 1/2) / 2^s, never a tie, and its nearest integer is floor(A / 2^s + 1/2).
 *
 * Speed: dense convs compute four interior frames x 4 channels per register block (16 float
 * accumulators; each weight loaded once for the four frames), else one frame x 16 (4)
 * channels; depthwise convs with kernels 3 and 5 (stride 1) and at least
 * RILL_CONV1D_FX_DW_FRAMES interior frames walk groups of four (two) channels along each
 * dilation phase, each output loading one new input frame and keeping the others in
 * registers, the taps and bias scaled by 2^-shift at compile time -- through a generated
 * function per layer shape that passes the geometry as constants (rill_conv1d_fx_fixed); the
 * rest (padding frames, a last block's odd channels, other groupings) takes the plain loop. */

#define RILL_CONV1D_FX_BLOCK 16   /* the dense weight blocks: weight_layout.DENSE_BLOCK */
#define RILL_CONV1D_FX_DW_FRAMES 4 /* depthwise: the phase walkers from this many interior
                                    * frames (kernel_select.WALKER_FRAMES) */

/* One output: the scaled float sum (exact) clamped to [lo, hi] and rounded half to even
 * (rill_fclamp, rill_rne: no branch, so outputs clamped by a ReLU cost no more). */
static inline int32_t rill_conv1d_fx_out_VARIANT(float acc, float lo, float hi)
{
    return rill_rne(rill_fclamp(acc, lo, hi));
}

/* The 4 outputs y[0..3] of one frame of a register block, scaled by scale[0..3]. */
static inline void rill_conv1d_fx_store4_VARIANT(rill_y_t *y, const float *scale, float lo,
                                                 float hi, float a0, float a1, float a2,
                                                 float a3)
{
    y[0] = (rill_y_t)rill_conv1d_fx_out_VARIANT(a0 * scale[0], lo, hi);
    y[1] = (rill_y_t)rill_conv1d_fx_out_VARIANT(a1 * scale[1], lo, hi);
    y[2] = (rill_y_t)rill_conv1d_fx_out_VARIANT(a2 * scale[2], lo, hi);
    y[3] = (rill_y_t)rill_conv1d_fx_out_VARIANT(a3 * scale[3], lo, hi);
}

/* Four interior frames (inputs x0 + f * fstep, f < 4: their tap 0; outputs y0 + f * c_out) x
 * the channels [0, n), n a multiple of 4 inside the weight blocks: 4 channels per register
 * block, each weight loaded once for the four frames and each input once for the 4 channels;
 * two inputs per loop step when the group has an even number of them. */
static RILL_WIDE_BLOCK void rill_conv1d_fx_quad_VARIANT(const rill_x_t *x0, int32_t fstep,
                                                       int32_t tstep, int32_t kernel,
                                                       int32_t cg, const rill_w_t *w,
                                                       int32_t c_out, int32_t n,
                                                       const float *bias, const float *scale,
                                                       float lo, float hi, rill_y_t *y0)
{
    int32_t co, k, width;
    for (co = 0; co < n; co += 4) {
        const rill_w_t *wp =
            w + rill_wblock_lane(co, c_out, RILL_CONV1D_FX_BLOCK, kernel * cg, 0, &width);
        float a0 = bias[co], a1 = bias[co + 1], a2 = bias[co + 2], a3 = bias[co + 3];
        float b0 = a0, b1 = a1, b2 = a2, b3 = a3, c0 = a0, c1 = a1, c2 = a2, c3 = a3;
        float d0 = a0, d1 = a1, d2 = a2, d3 = a3;
        for (k = 0; k < kernel; ++k) {
            const rill_x_t *xa = x0 + k * tstep;
            const rill_x_t *xb = xa + fstep, *xc = xb + fstep, *xd = xc + fstep;
            const rill_x_t *const xa_end = xa + cg;
            while (xa != xa_end) {
                const float u = *xa++, v = *xb++, s = *xc++, r = *xd++;
                float c = (float)wp[0];
                a0 += c * u, b0 += c * v, c0 += c * s, d0 += c * r, c = (float)wp[1];
                a1 += c * u, b1 += c * v, c1 += c * s, d1 += c * r, c = (float)wp[2];
                a2 += c * u, b2 += c * v, c2 += c * s, d2 += c * r, c = (float)wp[3];
                a3 += c * u, b3 += c * v, c3 += c * s, d3 += c * r;
                wp += width;
            }
        }
        rill_conv1d_fx_store4_VARIANT(y0 + co, scale + co, lo, hi, a0, a1, a2, a3);
        rill_conv1d_fx_store4_VARIANT(y0 + c_out + co, scale + co, lo, hi, b0, b1, b2, b3);
        rill_conv1d_fx_store4_VARIANT(y0 + 2 * c_out + co, scale + co, lo, hi, c0, c1, c2, c3);
        rill_conv1d_fx_store4_VARIANT(y0 + 3 * c_out + co, scale + co, lo, hi, d0, d1, d2, d3);
    }
}

/* One frame (x0: the input of its first tap used, k_lo; `taps` of them, tstep apart; output
 * y0) x the channels [0, n), n a multiple of 4 inside the weight blocks: 16 channels per
 * register block for a full weight block, else 4. */
static RILL_WIDE_BLOCK void rill_conv1d_fx_one_VARIANT(const rill_x_t *x0, int32_t tstep,
                                                      int32_t kernel, int32_t k_lo,
                                                      int32_t taps, int32_t cg,
                                                      const rill_w_t *w, int32_t c_out,
                                                      int32_t n, const float *bias,
                                                      const float *scale, float lo,
                                                      float hi, rill_y_t *y0)
{
    int32_t co = 0, k, width;
    for (; co + 16 <= n; co += 16) {
        const rill_w_t *wp = w + rill_wblock_lane(co, c_out, RILL_CONV1D_FX_BLOCK, kernel * cg,
                                                  k_lo * cg, &width);
        const float *b = bias + co;
        float a0 = b[0], a1 = b[1], a2 = b[2], a3 = b[3], a4 = b[4], a5 = b[5], a6 = b[6];
        float a7 = b[7], a8 = b[8], a9 = b[9], a10 = b[10], a11 = b[11], a12 = b[12];
        float a13 = b[13], a14 = b[14], a15 = b[15];
        for (k = 0; k < taps; ++k) {
            const rill_x_t *xa = x0 + k * tstep;
            const rill_x_t *const xa_end = xa + cg;
            while (xa != xa_end) {
                const float u = *xa++;
                a0 += u * (float)wp[0], a1 += u * (float)wp[1], a2 += u * (float)wp[2];
                a3 += u * (float)wp[3], a4 += u * (float)wp[4], a5 += u * (float)wp[5];
                a6 += u * (float)wp[6], a7 += u * (float)wp[7], a8 += u * (float)wp[8];
                a9 += u * (float)wp[9], a10 += u * (float)wp[10], a11 += u * (float)wp[11];
                a12 += u * (float)wp[12], a13 += u * (float)wp[13], a14 += u * (float)wp[14];
                a15 += u * (float)wp[15];
                wp += 16;
            }
        }
        rill_conv1d_fx_store4_VARIANT(y0 + co, scale + co, lo, hi, a0, a1, a2, a3);
        rill_conv1d_fx_store4_VARIANT(y0 + co + 4, scale + co + 4, lo, hi, a4, a5, a6, a7);
        rill_conv1d_fx_store4_VARIANT(y0 + co + 8, scale + co + 8, lo, hi, a8, a9, a10, a11);
        rill_conv1d_fx_store4_VARIANT(y0 + co + 12, scale + co + 12, lo, hi, a12, a13, a14,
                                      a15);
    }
    for (; co < n; co += 4) {
        const rill_w_t *wp = w + rill_wblock_lane(co, c_out, RILL_CONV1D_FX_BLOCK, kernel * cg,
                                                  k_lo * cg, &width);
        float a0 = bias[co], a1 = bias[co + 1], a2 = bias[co + 2], a3 = bias[co + 3];
        for (k = 0; k < taps; ++k) {
            const rill_x_t *xa = x0 + k * tstep;
            const rill_x_t *const xa_end = xa + cg;
            while (xa != xa_end) {
                const float u = *xa++;
                a0 += u * (float)wp[0], a1 += u * (float)wp[1], a2 += u * (float)wp[2];
                a3 += u * (float)wp[3];
                wp += width;
            }
        }
        rill_conv1d_fx_store4_VARIANT(y0 + co, scale + co, lo, hi, a0, a1, a2, a3);
    }
}

/* The plain loop: frame t, channels [co_a, co_b), any grouping and layout (p->wblock). */
static RILL_NOINLINE void rill_conv1d_fx_plain_VARIANT(const rill_conv1d_params_t *p,
                                                      const rill_x_t *x, const rill_w_t *w,
                                                      const float *bias, const float *scale,
                                                      float lo, float hi, int32_t t,
                                                      int32_t co_a, int32_t co_b, rill_y_t *y)
{
    const int32_t c_in = p->c_in, c_out = p->c_out, cg = c_in / p->groups;
    const int32_t og = c_out / p->groups, wrow = p->kernel * cg;
    const int32_t t0 = t * p->stride - p->pad_l; /* input frame of tap 0 */
    int32_t k_lo, k_hi, k, i, co, width;
    rill_tap_range(t0, p->t_in, p->dilation, p->kernel, &k_lo, &k_hi);
    for (co = co_a; co < co_b; ++co) {
        const rill_w_t *wc = w + rill_wblock_lane(co, c_out, p->wblock, wrow, 0, &width);
        const rill_x_t *xg = x + (co / og) * cg;
        float acc = bias[co];
        for (k = k_lo; k < k_hi; ++k) {
            const rill_x_t *xr = xg + (t0 + k * p->dilation) * c_in;
            const rill_w_t *wr = wc + k * cg * width;
            for (i = 0; i < cg; ++i) {
                acc += (float)wr[i * width] * (float)xr[i];
            }
        }
        y[t * c_out + co] = (rill_y_t)rill_conv1d_fx_out_VARIANT(acc * scale[co], lo, hi);
    }
}

/* The plain loop over the output frames [t_a, t_b), every channel. */
static RILL_NOINLINE void rill_conv1d_fx_frames_VARIANT(const rill_conv1d_params_t *p,
                                                       const rill_x_t *x, const rill_w_t *w,
                                                       const float *bias, const float *scale,
                                                       float lo, float hi, int32_t t_a,
                                                       int32_t t_b, rill_y_t *y)
{
    for (; t_a < t_b; ++t_a) {
        rill_conv1d_fx_plain_VARIANT(p, x, w, bias, scale, lo, hi, t_a, 0, p->c_out, y);
    }
}

/* Dense convs: every output frame, four interior ones at a time where it can (else one), every
 * channel: the register blocks, then the plain loop for the channels they leave. */
static RILL_NOINLINE void rill_conv1d_fx_dense_VARIANT(const rill_conv1d_params_t *p,
                                                      const rill_x_t *x, const rill_w_t *w,
                                                      const float *bias, const float *scale,
                                                      float lo, float hi, rill_frames_t f,
                                                      rill_y_t *y)
{
    const int32_t c_in = p->c_in, c_out = p->c_out, kernel = p->kernel;
    const int32_t tstep = p->dilation * c_in;
    const int32_t n = c_out - c_out % 4; /* channels in register blocks */
    int32_t t, k_lo, k_hi, frames, i;
    for (t = 0; t < f.t_out; t += frames) {
        const int32_t t0 = t * p->stride - p->pad_l; /* input frame of tap 0 */
        frames = t >= f.t_a && t + 4 <= f.t_b ? 4 : 1;
        if (frames == 4) {
            rill_conv1d_fx_quad_VARIANT(x + t0 * c_in, p->stride * c_in, tstep, kernel, c_in, w,
                                        c_out, n, bias, scale, lo, hi, y + t * c_out);
        } else {
            rill_tap_range(t0, p->t_in, p->dilation, kernel, &k_lo, &k_hi);
            rill_conv1d_fx_one_VARIANT(k_hi > k_lo ? x + (t0 + k_lo * p->dilation) * c_in : x,
                                       tstep, kernel, k_lo, k_hi - k_lo, c_in, w, c_out, n,
                                       bias, scale, lo, hi, y + t * c_out);
        }
        for (i = 0; n < c_out && i < frames; ++i) {
            rill_conv1d_fx_plain_VARIANT(p, x, w, bias, scale, lo, hi, t + i, n, c_out, y);
        }
    }
}

/* Depthwise channels: their arrays hold the taps and bias already scaled by 2^-shift (exact;
 * scale = 1), so a channel's taps are loaded into registers as they are. */
typedef struct {
    float b, w0, w1, w2, w3, w4;
} rill_conv1d_fx_taps_VARIANT;

static inline rill_conv1d_fx_taps_VARIANT rill_conv1d_fx_taps_at_VARIANT(const rill_w_t *w,
                                                                         int32_t kernel,
                                                                         const float *bias)
{
    rill_conv1d_fx_taps_VARIANT t;
    t.b = *bias;
    t.w0 = (float)w[0];
    t.w1 = kernel > 1 ? (float)w[1] : 0.0f;
    t.w2 = kernel > 2 ? (float)w[2] : 0.0f;
    t.w3 = kernel > 3 ? (float)w[3] : 0.0f;
    t.w4 = kernel > 4 ? (float)w[4] : 0.0f;
    return t;
}

/* The walkers' output stage: with `relu` (lo = 0; a constant where the walkers are expanded)
 * the conversion's saturation gives the lower bound (rill_rne_u): one instruction less. */
static inline int32_t rill_conv1d_fx_outr_VARIANT(float acc, float lo, float hi, int relu)
{
    return relu ? rill_rne_u(rill_fmin(acc, hi)) : rill_rne(rill_fclamp(acc, lo, hi));
}

static inline float rill_conv1d_fx_tap3_VARIANT(const rill_conv1d_fx_taps_VARIANT *t, float r0,
                                                float r1, float r2)
{
    return t->b + t->w0 * r0 + t->w1 * r1 + t->w2 * r2;
}

static inline float rill_conv1d_fx_tap5_VARIANT(const rill_conv1d_fx_taps_VARIANT *t, float r0,
                                                float r1, float r2, float r3, float r4)
{
    return t->b + t->w0 * r0 + t->w1 * r1 + t->w2 * r2 + t->w3 * r3 + t->w4 * r4;
}

/* Kernel 3, one step of a phase walk over four channels (taps t0..t3): load the phase's next
 * input frame into slot C (the one the oldest held), write the output from slots A, B, C (taps
 * 0, 1, 2), advance. */
#define RILL_CONV1D_FX_DW3_STEP_VARIANT(A, B, C)                                               \
    C##0 = xp[0], C##1 = xp[1], C##2 = xp[2], C##3 = xp[3], xp += xs;                          \
    yp[0] = (rill_y_t)rill_conv1d_fx_outr_VARIANT(                                             \
        rill_conv1d_fx_tap3_VARIANT(&t0, A##0, B##0, C##0), lo, hi, relu);                     \
    yp[1] = (rill_y_t)rill_conv1d_fx_outr_VARIANT(                                             \
        rill_conv1d_fx_tap3_VARIANT(&t1, A##1, B##1, C##1), lo, hi, relu);                     \
    yp[2] = (rill_y_t)rill_conv1d_fx_outr_VARIANT(                                             \
        rill_conv1d_fx_tap3_VARIANT(&t2, A##2, B##2, C##2), lo, hi, relu);                     \
    yp[3] = (rill_y_t)rill_conv1d_fx_outr_VARIANT(                                             \
        rill_conv1d_fx_tap3_VARIANT(&t3, A##3, B##3, C##3), lo, hi, relu);                     \
    yp += ys

/* Depthwise kernel 3, stride 1: `quads` groups of four channels from x0 (channel 0's tap 0 of
 * the first output; input and output frames `c` apart) along their n interior outputs. Each
 * dilation phase (outputs p, p + d, ...: inputs d frames apart) is walked with every output
 * loading one new input frame and keeping the other two in registers, rotated by unrolling
 * three outputs (no moves): per output, a load and a conversion, three multiply-adds and the
 * output stage. */
static RILL_ALWAYS_INLINE void rill_conv1d_fx_dw3quads_VARIANT(const rill_x_t *x0, int32_t c,
                                                               int32_t d, const rill_w_t *w,
                                                               const float *bias, float lo,
                                                               float hi, int relu, rill_y_t *y0,
                                                               int32_t n, int32_t quads)
{
    const int32_t xs = d * c, ys = d * c, q = n / d, r = n % d; /* phase p: q + (p < r) */
    const int32_t phases = d < n ? d : n;
    int32_t p, m;
    for (; quads > 0; --quads, x0 += 4, y0 += 4, w += 12, bias += 4) {
        const rill_conv1d_fx_taps_VARIANT t0 = rill_conv1d_fx_taps_at_VARIANT(w, 3, bias);
        const rill_conv1d_fx_taps_VARIANT t1 = rill_conv1d_fx_taps_at_VARIANT(w + 3, 3, bias + 1);
        const rill_conv1d_fx_taps_VARIANT t2 = rill_conv1d_fx_taps_at_VARIANT(w + 6, 3, bias + 2);
        const rill_conv1d_fx_taps_VARIANT t3 = rill_conv1d_fx_taps_at_VARIANT(w + 9, 3, bias + 3);
        for (p = 0; p < phases; ++p) {
            const rill_x_t *xp = x0 + p * c;
            rill_y_t *yp = y0 + p * c;
            float a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3;
            RILL_OPAQUE(xp);
            RILL_OPAQUE(yp);
            a0 = xp[0], a1 = xp[1], a2 = xp[2], a3 = xp[3], xp += xs; /* one pointer */
            b0 = xp[0], b1 = xp[1], b2 = xp[2], b3 = xp[3], xp += xs;
            for (m = q + (p < r); m >= 3; m -= 3) {
                RILL_CONV1D_FX_DW3_STEP_VARIANT(a, b, c);
                RILL_CONV1D_FX_DW3_STEP_VARIANT(b, c, a);
                RILL_CONV1D_FX_DW3_STEP_VARIANT(c, a, b);
            }
            if (m > 0) {
                RILL_CONV1D_FX_DW3_STEP_VARIANT(a, b, c);
            }
            if (m > 1) {
                RILL_CONV1D_FX_DW3_STEP_VARIANT(b, c, a);
            }
        }
    }
}
#undef RILL_CONV1D_FX_DW3_STEP_VARIANT

/* Kernel 5, one step of a phase walk over two channels (taps u, v; slots r and s). */
#define RILL_CONV1D_FX_DW5_STEP_VARIANT(R, S, r0, r1, r2, r3, r4, s0, s1, s2, s3, s4)           \
    R = xp[0], S = xp[1], xp += xs;                                                          \
    yp[0] = (rill_y_t)rill_conv1d_fx_outr_VARIANT(                                           \
        rill_conv1d_fx_tap5_VARIANT(&u, r0, r1, r2, r3, r4), lo, hi, relu);                  \
    yp[1] = (rill_y_t)rill_conv1d_fx_outr_VARIANT(                                           \
        rill_conv1d_fx_tap5_VARIANT(&v, s0, s1, s2, s3, s4), lo, hi, relu);                  \
    yp += ys

/* Depthwise kernel 5, stride 1: as rill_conv1d_fx_dw3quads with `pairs` groups of two
 * channels (the taps, bias and five rotating inputs of two channels fill 22 registers),
 * rotated by unrolling five outputs. The two walkers share their loops' shape but not their
 * registers (named slots that the unrolled steps rotate), so each is written out. */
static RILL_ALWAYS_INLINE void rill_conv1d_fx_dw5pairs_VARIANT(const rill_x_t *x0, int32_t c,
                                                               int32_t d, const rill_w_t *w,
                                                               const float *bias, float lo,
                                                               float hi, int relu, rill_y_t *y0,
                                                               int32_t n, int32_t pairs)
{
    const int32_t xs = d * c, ys = d * c, q = n / d, r = n % d; /* phase p: q + (p < r) */
    const int32_t phases = d < n ? d : n;
    int32_t p, m;
    for (; pairs > 0; --pairs, x0 += 2, y0 += 2, w += 10, bias += 2) {
        const rill_conv1d_fx_taps_VARIANT u = rill_conv1d_fx_taps_at_VARIANT(w, 5, bias);
        const rill_conv1d_fx_taps_VARIANT v = rill_conv1d_fx_taps_at_VARIANT(w + 5, 5, bias + 1);
        for (p = 0; p < phases; ++p) {
            const rill_x_t *xp = x0 + p * c;
            rill_y_t *yp = y0 + p * c;
            float r0, s0, r1, s1, r2, s2, r3, s3, r4, s4;
            RILL_OPAQUE(xp);
            RILL_OPAQUE(yp);
            r0 = xp[0], s0 = xp[1], xp += xs; /* one pointer along the phase */
            r1 = xp[0], s1 = xp[1], xp += xs;
            r2 = xp[0], s2 = xp[1], xp += xs;
            r3 = xp[0], s3 = xp[1], xp += xs;
            m = q + (p < r);
            if (m <= 2) { /* a short phase (a dilation near the frame count): no loop */
                RILL_CONV1D_FX_DW5_STEP_VARIANT(r4, s4, r0, r1, r2, r3, r4, s0, s1, s2, s3, s4);
                if (m == 2) {
                    RILL_CONV1D_FX_DW5_STEP_VARIANT(r0, s0, r1, r2, r3, r4, r0, s1, s2, s3, s4,
                                                    s0);
                }
                continue;
            }
            for (; m >= 5; m -= 5) {
                RILL_CONV1D_FX_DW5_STEP_VARIANT(r4, s4, r0, r1, r2, r3, r4, s0, s1, s2, s3, s4);
                RILL_CONV1D_FX_DW5_STEP_VARIANT(r0, s0, r1, r2, r3, r4, r0, s1, s2, s3, s4, s0);
                RILL_CONV1D_FX_DW5_STEP_VARIANT(r1, s1, r2, r3, r4, r0, r1, s2, s3, s4, s0, s1);
                RILL_CONV1D_FX_DW5_STEP_VARIANT(r2, s2, r3, r4, r0, r1, r2, s3, s4, s0, s1, s2);
                RILL_CONV1D_FX_DW5_STEP_VARIANT(r3, s3, r4, r0, r1, r2, r3, s4, s0, s1, s2, s3);
            }
            if (m > 0) {
                RILL_CONV1D_FX_DW5_STEP_VARIANT(r4, s4, r0, r1, r2, r3, r4, s0, s1, s2, s3, s4);
            }
            if (m > 1) {
                RILL_CONV1D_FX_DW5_STEP_VARIANT(r0, s0, r1, r2, r3, r4, r0, s1, s2, s3, s4, s0);
            }
            if (m > 2) {
                RILL_CONV1D_FX_DW5_STEP_VARIANT(r1, s1, r2, r3, r4, r0, r1, s2, s3, s4, s0, s1);
            }
            if (m > 3) {
                RILL_CONV1D_FX_DW5_STEP_VARIANT(r2, s2, r3, r4, r0, r1, r2, s3, s4, s0, s1, s2);
            }
        }
    }
}
#undef RILL_CONV1D_FX_DW5_STEP_VARIANT

/* Depthwise: channel co's n interior outputs (x0: its tap 0 of the first, fstep apart;
 * outputs y0, ystep apart), any kernel and stride (tstep between taps). */
static void rill_conv1d_fx_dwchannel_VARIANT(const rill_x_t *xt, int32_t fstep, int32_t tstep,
                                             const rill_w_t *w, int32_t kernel, float bias,
                                             float scale, float lo, float hi, rill_y_t *yt,
                                             int32_t ystep, int32_t n)
{
    int32_t k;
    rill_y_t *const y_end = yt + n * ystep;
    for (; yt != y_end; yt += ystep, xt += fstep) {
        const rill_x_t *xk = xt;
        float acc = bias;
        for (k = 0; k < kernel; ++k, xk += tstep) {
            acc += (float)w[k] * (float)*xk;
        }
        *yt = (rill_y_t)rill_conv1d_fx_out_VARIANT(acc * scale, lo, hi);
    }
}

/* Depthwise, one interior frame across the c channels, kernel 3 (input xt: channel 0's tap 0;
 * outputs yt[0..c)): three input pointers and the scaled taps walked together. */
static RILL_ALWAYS_INLINE void rill_conv1d_fx_dwframe3_VARIANT(const rill_x_t *xt, int32_t tstep,
                                                              const rill_w_t *w,
                                                              const float *bias, float lo,
                                                              float hi, int relu, rill_y_t *yt,
                                                              int32_t c)
{
    const rill_x_t *x1 = xt + tstep, *x2 = x1 + tstep;
    rill_y_t *const y_end = yt + c;
    for (; yt != y_end; ++yt, ++xt, ++x1, ++x2, ++bias, w += 3) {
        const float acc = *bias + (float)w[0] * (float)*xt + (float)w[1] * (float)*x1 +
                          (float)w[2] * (float)*x2;
        *yt = (rill_y_t)rill_conv1d_fx_outr_VARIANT(acc, lo, hi, relu);
    }
}

/* Depthwise, one interior frame (input xt: its tap 0) across the c channels (weights w
 * [c][kernel] and bias scaled by 2^-shift: scale is 1): outputs yt[0..c). */
static RILL_NOINLINE void rill_conv1d_fx_dwframe_VARIANT(const rill_x_t *xt, int32_t tstep,
                                                        const rill_w_t *w, int32_t kernel,
                                                        const float *bias, float lo, float hi,
                                                        rill_y_t *yt, int32_t c)
{
    int32_t co, k;
    if (kernel == 3 && lo == 0.0f) {
        rill_conv1d_fx_dwframe3_VARIANT(xt, tstep, w, bias, lo, hi, 1, yt, c);
        return;
    }
    if (kernel == 3) {
        rill_conv1d_fx_dwframe3_VARIANT(xt, tstep, w, bias, lo, hi, 0, yt, c);
        return;
    }
    for (co = 0; co < c; ++co) {
        const rill_x_t *xk = xt + co;
        float acc = bias[co];
        for (k = 0; k < kernel; ++k, xk += tstep) {
            acc += (float)*w++ * (float)*xk;
        }
        yt[co] = (rill_y_t)rill_conv1d_fx_out_VARIANT(acc, lo, hi);
    }
}

/* The depthwise conv1d_fx of one layer with its geometry -- kernel 3 or 5, c channels,
 * dilation d, n >= RILL_CONV1D_FX_DW_FRAMES interior frames, stride 1 -- as arguments. A
 * generated function passes them as constants (one per layer shape, codegen/kernel_library.py
 * `FixedDepthwise`): the walkers then step by immediate offsets and unroll their phases;
 * rill_conv1d_fx_walk passes them at run time. The walkers (ReLU or general output stage)
 * run last: a tail call, no registers to keep around it. */
static RILL_ALWAYS_INLINE void rill_conv1d_fx_fixed_VARIANT(const rill_conv1d_params_t *p,
                                                         const rill_x_t *x, const rill_w_t *w,
                                                         const float *bias, const float *scale,
                                                         rill_y_t *y, int32_t kernel,
                                                         int32_t c, int32_t d, int32_t n)
{
    const rill_frames_t f = rill_conv_frames(p->t_in, p->pad_l, p->pad_r, kernel, 1, d);
    const rill_x_t *const x0 = x + (f.t_a - p->pad_l) * c; /* tap 0 of frame t_a */
    rill_y_t *const y0 = y + f.t_a * c;
    const int32_t group = kernel == 3 ? 4 : 2;
    int32_t lo_i, hi_i, co;
    float lo, hi;
    rill_out_bounds(RILL_Y_MIN, RILL_Y_MAX, p->act_min, p->act_max, &lo_i, &hi_i);
    lo = (float)lo_i;
    hi = (float)hi_i;
    if (f.t_a > 0 || f.t_b < f.t_out) { /* the frames that read padding */
        rill_conv1d_fx_frames_VARIANT(p, x, w, bias, scale, lo, hi, 0, f.t_a, y);
        rill_conv1d_fx_frames_VARIANT(p, x, w, bias, scale, lo, hi, f.t_b, f.t_out, y);
    }
    for (co = c - c % group; co < c; ++co) { /* channels outside the groups */
        rill_conv1d_fx_dwchannel_VARIANT(x0 + co, c, d * c, w + co * kernel, kernel, bias[co],
                                         scale[co], lo, hi, y0 + co, c, n);
    }
    if (kernel == 3 && lo_i == 0) {
        rill_conv1d_fx_dw3quads_VARIANT(x0, c, d, w, bias, lo, hi, 1, y0, n, c / 4);
    } else if (kernel == 3) {
        rill_conv1d_fx_dw3quads_VARIANT(x0, c, d, w, bias, lo, hi, 0, y0, n, c / 4);
    } else if (lo_i == 0) {
        rill_conv1d_fx_dw5pairs_VARIANT(x0, c, d, w, bias, lo, hi, 1, y0, n, c / 2);
    } else {
        rill_conv1d_fx_dw5pairs_VARIANT(x0, c, d, w, bias, lo, hi, 0, y0, n, c / 2);
    }
}

/* rill_conv1d_fx_fixed on run-time geometry, compiled on its own (the walkers' registers fill
 * the FPU's 32): what a depthwise layer without a generated function of its shape runs. */
static RILL_WIDE_BLOCK void rill_conv1d_fx_walk_VARIANT(const rill_conv1d_params_t *p,
                                                       const rill_x_t *x, const rill_w_t *w,
                                                       const float *bias, const float *scale,
                                                       rill_y_t *y, int32_t kernel, int32_t c,
                                                       int32_t d, int32_t n)
{
    rill_conv1d_fx_fixed_VARIANT(p, x, w, bias, scale, y, kernel, c, d, n);
}

/* Depthwise, every output frame of the c channels (weights w [c][kernel]): kernels 3 and 5 at
 * stride 1 with RILL_CONV1D_FX_DW_FRAMES interior frames or more by the phase walkers
 * (rill_conv1d_fx_fixed); otherwise the interior frames channel by channel, or frame by frame
 * when there are fewer, and the frames that read padding by the plain loop. */
static void rill_conv1d_fx_depthwise_VARIANT(const rill_conv1d_params_t *p, const rill_x_t *x,
                                             const rill_w_t *w, const float *bias,
                                             const float *scale, float lo, float hi,
                                             rill_frames_t f, rill_y_t *y)
{
    const int32_t c = p->c_out, kernel = p->kernel, n = f.t_b - f.t_a;
    const int32_t fstep = p->stride * c, tstep = p->dilation * c;
    const rill_x_t *const x0 = x + (f.t_a * p->stride - p->pad_l) * c; /* tap 0, frame t_a */
    rill_y_t *const y0 = y + f.t_a * c;
    int32_t co, t;
    if ((kernel == 3 || kernel == 5) && p->stride == 1 && n >= RILL_CONV1D_FX_DW_FRAMES) {
        rill_conv1d_fx_walk_VARIANT(p, x, w, bias, scale, y, kernel, c, p->dilation, n);
        return;
    }
    if (f.t_a > 0 || f.t_b < f.t_out) { /* the frames that read padding */
        rill_conv1d_fx_frames_VARIANT(p, x, w, bias, scale, lo, hi, 0, f.t_a, y);
        rill_conv1d_fx_frames_VARIANT(p, x, w, bias, scale, lo, hi, f.t_b, f.t_out, y);
    }
    if (n < RILL_CONV1D_FX_DW_FRAMES) {
        for (t = 0; t < n; ++t) {
            rill_conv1d_fx_dwframe_VARIANT(x0 + t * fstep, tstep, w, kernel, bias, lo, hi,
                                           y0 + t * c, c);
        }
        return;
    }
    for (co = 0; co < c; ++co) {
        rill_conv1d_fx_dwchannel_VARIANT(x0 + co, fstep, tstep, w + co * kernel, kernel,
                                         bias[co], scale[co], lo, hi, y0 + co, c, n);
    }
}

void rill_conv1d_fx_VARIANT(const rill_conv1d_params_t *p, const rill_x_t *x, const rill_w_t *w,
                            const float *bias, const float *scale, rill_y_t *y)
{
    const rill_frames_t f = rill_conv_frames(p->t_in, p->pad_l, p->pad_r, p->kernel, p->stride,
                                             p->dilation);
    int32_t lo, hi;

    rill_out_bounds(RILL_Y_MIN, RILL_Y_MAX, p->act_min, p->act_max, &lo, &hi);
    if (p->groups == 1 && p->wblock == RILL_CONV1D_FX_BLOCK) {
        rill_conv1d_fx_dense_VARIANT(p, x, w, bias, scale, (float)lo, (float)hi, f, y);
    } else if (p->groups == p->c_in && p->c_in == p->c_out && p->wblock == 1) {
        rill_conv1d_fx_depthwise_VARIANT(p, x, w, bias, scale, (float)lo, (float)hi, f, y);
    } else {
        rill_conv1d_fx_frames_VARIANT(p, x, w, bias, scale, (float)lo, (float)hi, 0, f.t_out, y);
    }
}
