/* Rill runtime: shared integer helpers (rounding, saturation, window taps) for the kernels.
 *
 * Define RILL_ROUNDING before including this header:
 *   0 = round half to even (esp32p4), 1 = round half up, i.e. ties toward +inf (esp32s3).
 * All helpers are exact and portable C99: no right shift and no left shift of negative values,
 * no shift by 64 or more.
 */
#ifndef RILL_COMMON_H
#define RILL_COMMON_H

#include <stdint.h>
#include <string.h>
#include <math.h>

#ifndef RILL_ROUNDING
#error "RILL_ROUNDING must be defined before rill_common.h (0 = half even, 1 = half up)"
#endif
#if RILL_ROUNDING != 0 && RILL_ROUNDING != 1
#error "RILL_ROUNDING must be 0 (half even) or 1 (half up)"
#endif

/* Marks a kernel's register-block functions: compiled on their own, each gets the whole
 * register file for its accumulators (inlined into a large kernel, GCC spills them). Only an
 * optimization hint: empty for compilers without the attribute. */
#if defined(__GNUC__) || defined(__clang__)
#define RILL_NOINLINE __attribute__((noinline))
#else
#define RILL_NOINLINE
#endif

/* Marks the inner loops of the widest register blocks (16 accumulators): GCC's instruction
 * scheduling before register allocation hoists every load of the loop body and runs out of
 * registers (spilling accumulators on a 32-register core); without it the loop is the
 * ideal loads + multiply-adds. Only an optimization hint: empty for other compilers. */
#if defined(__GNUC__) && !defined(__clang__)
#define RILL_WIDE_BLOCK __attribute__((noinline, optimize("no-schedule-insns")))
#else
#define RILL_WIDE_BLOCK RILL_NOINLINE
#endif


/* Expanded at each call even when called twice: a body specialized by constant arguments
 * (conv1d_fx.c's walkers with and without ReLU, and with a layer's geometry: unused when no
 * layer has a fixed shape, hence `unused`). Only an optimization hint (plain `inline`
 * elsewhere). */
#if defined(__GNUC__) || defined(__clang__)
#define RILL_ALWAYS_INLINE __inline__ __attribute__((always_inline, unused))
#else
#define RILL_ALWAYS_INLINE inline
#endif

/* Hides how a pointer was computed from GCC's induction-variable analysis, which otherwise
 * gives every load of an unrolled walk its own pointer (more registers, one add each). No code;
 * empty for other compilers. */
#if defined(__GNUC__) || defined(__clang__)
#define RILL_OPAQUE(p) __asm__("" : "+r"(p))
#else
#define RILL_OPAQUE(p) ((void)0)
#endif

/* floor(x / 2^s) for 0 <= s <= 63, without right-shifting a negative value. */
static inline int64_t rill_floor_shift(int64_t x, int s)
{
    return x >= 0 ? (x >> s) : ~(~x >> s);
}

/* s > 0: x / 2^s rounded with RILL_ROUNDING, exactly; s <= 0: x * 2^-s (caller guarantees it
 * fits, so -s <= 62). s >= 64 gives 0, which is the exact rounded result for every int64 x. */
static inline int64_t rill_round_shift(int64_t x, int s)
{
    int64_t q;
    uint64_t r, half;
    if (s <= 0) {
        return x * ((int64_t)1 << -s);
    }
    if (s > 63) {
        return 0;
    }
    q = rill_floor_shift(x, s);
    r = (uint64_t)x & ((((uint64_t)1) << s) - 1u); /* x - q*2^s, in [0, 2^s) */
    half = ((uint64_t)1) << (s - 1);
#if RILL_ROUNDING == 1
    return q + (r >= half);
#else
    return q + (r > half || (r == half && (q & 1) != 0));
#endif
}

/* n / d rounded with RILL_ROUNDING, exactly, for d > 0. */
static inline int64_t rill_round_div(int64_t n, int64_t d)
{
    int64_t q = n / d;
    int64_t r = n % d;
    if (r < 0) { /* C99 division truncates toward zero: make q the floor, 0 <= r < d */
        q -= 1;
        r += d;
    }
    /* compare 2r with d as r against d - r (no overflow) */
#if RILL_ROUNDING == 1
    return q + (r >= d - r);
#else
    return q + (r > d - r || (r == d - r && (q & 1) != 0));
#endif
}

/* rill_round_div in int32 arithmetic (n, d > 0 int32: the same result; a hardware division
 * on a 32-bit core instead of a library call). */
static inline int32_t rill_round_div32(int32_t n, int32_t d)
{
    int32_t q = n / d;
    int32_t r = n % d;
    if (r < 0) {
        q -= 1;
        r += d;
    }
#if RILL_ROUNDING == 1
    return q + (r >= d - r);
#else
    return q + (r > d - r || (r == d - r && (q & 1) != 0));
#endif
}

/* Clamp an int64 to [lo, hi] (lo <= hi): saturation to an output type's range (e.g.
 * [INT16_MIN, INT16_MAX]) or to an activation's bounds. */
static inline int32_t rill_sat(int64_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : (int32_t)v);
}

/* Clamp to [lo, hi] (activation bounds, already quantized). */
static inline int32_t rill_clamp(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* The requantization of a layer's accumulator: round_shift(acc, s) saturated to the output
 * type and clamped to the activation bounds, as one clamp to [lo, hi] = the output range's ends
 * clamped to [act_min, act_max] (rill_out_bounds; exact for act_min <= act_max: the composition
 * is nondecreasing). */
static inline void rill_out_bounds(int32_t y_min, int32_t y_max, int32_t act_min, int32_t act_max,
                                   int32_t *lo, int32_t *hi)
{
    *lo = rill_clamp(y_min, act_min, act_max);
    *hi = rill_clamp(y_max, act_min, act_max);
}

/* The rounding of one output channel's int32 accumulators, set up once per channel
 * (rill_rq_init) and applied per output (rill_rq_apply): clamp(round_shift(x, s), lo, hi) in
 * 32-bit arithmetic when 0 < s < 32 (the common case; else through the int64 helper).
 * q = floor(x / 2^s), r = the low s bits of x; q + 1 exactly when r + 2^(s-1) - 1 + (half even:
 * q & 1; half up: 1) carries past 2^s (an unsigned sum < 2^32). The floor of a negative x is
 * ~(~x >> s): no right shift of a negative value, and compilers emit one arithmetic shift. */
typedef struct {
    int s;
    int fast;      /* 0 < s < 32 */
    uint32_t mask; /* 2^s - 1 */
    uint32_t bias; /* 2^(s-1) - 1 */
} rill_rq_t;

static inline rill_rq_t rill_rq_init(int s)
{
    rill_rq_t r;
    r.s = s;
    r.fast = s > 0 && s < 32;
    r.mask = r.fast ? ((uint32_t)1 << s) - 1u : 0u;
    r.bias = r.mask >> 1;
    return r;
}

static inline int32_t rill_rq_apply(rill_rq_t r, int32_t x, int32_t lo, int32_t hi)
{
    int32_t q;
    if (!r.fast) {
        return rill_sat(rill_round_shift(x, r.s), lo, hi);
    }
    q = x >= 0 ? x >> r.s : ~(~x >> r.s);
#if RILL_ROUNDING == 1
    q += (int32_t)((((uint32_t)x & r.mask) + r.bias + 1u) >> r.s);
#else
    q += (int32_t)((((uint32_t)x & r.mask) + r.bias + ((uint32_t)q & 1u)) >> r.s);
#endif
    return q < lo ? lo : (q > hi ? hi : q);
}

/* The requantization of an int32 accumulator `t` whose bias already holds the rounding
 * constant of the mode (folded at compile time, runtime/weight_layout.py): 2^(s-1) for half up,
 * 2^(s-1) - 1 for half even, 0 < s < 32, and t + 1 cannot overflow. Half up is then the floor
 * of t / 2^s; half even rounds down except at a tie, where t's low s bits are all ones and
 * adding q's parity carries an odd q up to the even neighbour (away from a tie the carry never
 * crosses a multiple of 2^s). Then clamp(., lo, hi). */
static inline int32_t rill_rq_folded(int32_t t, int s, int32_t lo, int32_t hi)
{
    int32_t q = t >= 0 ? t >> s : ~(~t >> s);
#if RILL_ROUNDING == 0
    t += q & 1;
    q = t >= 0 ? t >> s : ~(~t >> s);
#endif
    if (q < lo) { /* two untaken branches for an output in range */
        q = lo;
    }
    if (q > hi) {
        q = hi;
    }
    return q;
}

/* The requantization of an accumulator of either width (`wide`, a compile-time constant in the
 * kernels: sizeof(acc) > 4): rill_rq_apply for int32, the int64 helper otherwise. */
static inline int32_t rill_requant(rill_rq_t r, int64_t acc, int wide, int32_t lo, int32_t hi)
{
    return wide ? rill_sat(rill_round_shift(acc, r.s), lo, hi)
                : rill_rq_apply(r, (int32_t)acc, lo, hi);
}

/* Round a float to an integer with RILL_ROUNDING, exactly (no double rounding), then saturate
 * to [lo, hi] (an integer type's range: |lo|, |hi| < 2^24, so lo - 1 and hi + 1 are exact
 * floats and every float in between has an exact fraction). NaN gives 0; +-Inf and huge values
 * saturate (clamped to [lo - 1, hi + 1] before converting: no UB). */
static inline int32_t rill_round_f32_sat(float v, int32_t lo, int32_t hi)
{
    const float v_lo = (float)lo - 1.0f;
    const float v_hi = (float)hi + 1.0f;
    float f, r;
    int32_t q;
    if (v != v) {
        return 0;
    }
    if (v > v_hi) {
        v = v_hi;
    } else if (v < v_lo) {
        v = v_lo;
    }
    f = floorf(v);
    r = v - f; /* fraction in [0, 1), exact */
    q = (int32_t)f;
#if RILL_ROUNDING == 1
    q += (r >= 0.5f);
#else
    q += (r > 0.5f || (r == 0.5f && (q % 2) != 0));
#endif
    return rill_sat(q, lo, hi);
}

/* The taps k of a dilated window of `kernel` taps whose tap 0 reads position p0 that read a
 * position inside [0, n) are k in [*lo, *hi) (an empty range when none does): the loops skip
 * the padding instead of testing every tap. */
static inline void rill_tap_range(int32_t p0, int32_t n, int32_t dilation, int32_t kernel,
                                  int32_t *lo, int32_t *hi)
{
    int32_t k_lo = p0 < 0 ? (-p0 + dilation - 1) / dilation : 0;
    int32_t k_hi = p0 < n ? (n - p0 + dilation - 1) / dilation : 0;
    if (k_hi > kernel) {
        k_hi = kernel;
    }
    if (k_lo > k_hi) {
        k_lo = k_hi;
    }
    *lo = k_lo;
    *hi = k_hi;
}

/* The output frames of a 1-D window (conv, pool) over t_in frames padded by pad_l / pad_r:
 * t_out of them, and [t_a, t_b) those whose taps all read inside [0, t_in) (the interior
 * frames, which the fast paths compute without testing taps). */
typedef struct {
    int32_t t_out, t_a, t_b;
} rill_frames_t;

static inline rill_frames_t rill_conv_frames(int32_t t_in, int32_t pad_l, int32_t pad_r,
                                             int32_t kernel, int32_t stride, int32_t dilation)
{
    const int32_t span = t_in + pad_l + pad_r - dilation * (kernel - 1) - 1;
    rill_frames_t f;
    f.t_out = span < 0 ? 0 : span / stride + 1; /* no frame if the input is too short */
    f.t_a = pad_l <= 0 ? 0 : (pad_l + stride - 1) / stride;
    f.t_b = t_in - 1 - dilation * (kernel - 1) + pad_l;
    f.t_b = f.t_b < 0 ? 0 : f.t_b / stride + 1;
    f.t_b = f.t_b > f.t_out ? f.t_out : f.t_b;
    f.t_a = f.t_a > f.t_b ? f.t_b : f.t_a;
    return f;
}

/* Where output channel `co` of a weight array in blocks of `wblock` channels starts
 * (runtime/weight_layout.py: each block [rows][width], channels innermost, the last block
 * `c_out mod wblock` wide when that is not 0): the element offset of its weight `row0` and,
 * in *width, its block's width (the step from one row to the next). */
static inline int32_t rill_wblock_lane(int32_t co, int32_t c_out, int32_t wblock, int32_t rows,
                                       int32_t row0, int32_t *width)
{
    const int32_t first = co - co % wblock;
    *width = c_out - first < wblock ? c_out - first : wblock;
    return first * rows + row0 * *width + (co - first);
}

/* The exact float kernels' output stage (conv1d_fx.c): a float v that is an integer multiple
 * of 2^-24 or coarser, clamped to [lo, hi] (integers, exact as floats) and rounded to the
 * nearest integer, ties to even (clamping first gives the same result: rounding is monotone and
 * the bounds are integers). On RISC-V with the F extension: fmax.s, fmin.s and fcvt.w.s with
 * the static rounding mode rne (whatever the dynamic one): three instructions, no branch;
 * elsewhere portable C with lrintf in C's default rounding mode (to nearest, ties to even). */
#if defined(__riscv) && defined(__riscv_flen) && defined(__GNUC__)
static inline float rill_fmin(float v, float hi)
{
    __asm__("fmin.s %0, %0, %1" : "+f"(v) : "f"(hi));
    return v;
}

static inline float rill_fclamp(float v, float lo, float hi)
{
    __asm__("fmax.s %0, %0, %1" : "+f"(v) : "f"(lo));
    return rill_fmin(v, hi);
}

static inline int32_t rill_rne(float v)
{
    int32_t q;
    __asm__("fcvt.w.s %0, %1, rne" : "=r"(q) : "f"(v));
    return q;
}

/* rill_rne(max(v, 0)) for v < 2^31: the unsigned conversion saturates below 0 (ReLU's lower
 * bound for free). */
static inline int32_t rill_rne_u(float v)
{
    uint32_t q;
    __asm__("fcvt.wu.s %0, %1, rne" : "=r"(q) : "f"(v));
    return (int32_t)q;
}
#else
static inline float rill_fmin(float v, float hi)
{
    return v > hi ? hi : v;
}

static inline float rill_fclamp(float v, float lo, float hi)
{
    return v < lo ? lo : rill_fmin(v, hi);
}

static inline int32_t rill_rne(float v)
{
    return (int32_t)lrintf(v);
}

static inline int32_t rill_rne_u(float v)
{
    const int32_t q = (int32_t)lrintf(v);
    return q < 0 ? 0 : q;
}
#endif

#endif /* RILL_COMMON_H */
