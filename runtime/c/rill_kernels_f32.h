/* Rill runtime: the float32 kernels' params structs and unary functions (spec:
 * runtime/KERNELS.md, "Float32 kernels"; Python reference: runtime/reference/f32.py).
 *
 * A float32 kernel computes in float: no exponents, no rounding modes, no saturation. Its
 * sums run in the order the spec gives (the bias first, then the taps in ascending order), so
 * C and the reference differ only by multiply-add contraction, excess precision (x87) and the
 * libm: they agree within a relative tolerance, not bit for bit. Fields named act_min,
 * act_max, pad_value are float, all others int32. Needs <math.h> (rill_common.h includes it).
 */
#ifndef RILL_KERNELS_F32_H
#define RILL_KERNELS_F32_H

#include "rill_kernels.h"

typedef struct {
    int32_t t_in;
    int32_t c_in;
    int32_t c_out;
    int32_t kernel;
    int32_t stride;
    int32_t dilation;
    int32_t groups;
    int32_t pad_l;
    int32_t pad_r;
    float act_min;
    float act_max;
} rill_conv1d_f32_params_t;

typedef struct {
    int32_t t_in;
    int32_t f_in;
    int32_t c_in;
    int32_t c_out;
    int32_t kernel_t;
    int32_t kernel_f;
    int32_t stride_t;
    int32_t stride_f;
    int32_t dilation_t;
    int32_t dilation_f;
    int32_t groups;
    int32_t pad_t_l;
    int32_t pad_t_r;
    int32_t pad_f_l;
    int32_t pad_f_r;
    float act_min;
    float act_max;
} rill_conv2d_f32_params_t;

typedef struct {
    int32_t t_in;
    int32_t c_in;
    int32_t c_out;
    int32_t kernel;
    int32_t stride;
    int32_t dilation;
    int32_t groups;
    int32_t pad_l;
    int32_t pad_r;
    int32_t output_padding;
    float act_min;
    float act_max;
} rill_conv_transpose1d_f32_params_t;

typedef struct {
    int32_t m;
    int32_t k;
    int32_t n;
    float act_min;
    float act_max;
} rill_gemm_f32_params_t;

typedef struct {
    int32_t t_in;
    int32_t channels;
    int32_t kernel;
    int32_t stride;
    int32_t pad_l;
    int32_t pad_r;
    int32_t count_include_pad;
} rill_avgpool1d_f32_params_t;

typedef struct {
    int32_t t_in;
    int32_t channels;
    int32_t kernel;
    int32_t stride;
    int32_t dilation;
    int32_t pad_l;
    int32_t pad_r;
    float pad_value;
} rill_maxpool1d_f32_params_t;

typedef struct {
    int32_t outer;
    int32_t length;
    int32_t inner;
    int32_t op; /* RILL_REDUCE_MEAN, RILL_REDUCE_MAX or RILL_REDUCE_SUM */
} rill_reduce_f32_params_t;

typedef struct {
    int32_t input;
    int32_t hidden;
    int32_t linear_before_reset;
} rill_gru_f32_params_t;

typedef struct {
    int32_t input;
    int32_t hidden;
} rill_lstm_f32_params_t;

typedef struct {
    int32_t op;          /* RILL_BINARY_ADD, _SUB, _MUL, _DIV, _MAX, _MIN or _PRELU */
    int32_t shape[4];    /* output dims, outermost first (y is contiguous) */
    int32_t a_stride[4]; /* element stride of a along each output dim (0: broadcast) */
    int32_t b_stride[4];
} rill_binary_f32_params_t;

typedef struct {
    int32_t batch0;
    int32_t batch1;
    int32_t m;
    int32_t k;
    int32_t n;
    int32_t a_stride[4]; /* element strides of a along batch0, batch1, m, k */
    int32_t b_stride[4]; /* ... of b along batch0, batch1, k, n */
    int32_t y_stride[4]; /* ... of y along batch0, batch1, m, n */
} rill_matmul_f32_params_t;

typedef struct {
    int32_t mode; /* RILL_PAD_CONSTANT, _REFLECT, _EDGE or _WRAP */
    float value;  /* the constant */
    int32_t in_shape[4];
    int32_t pad_lo[4]; /* elements added before each dim (negative: cropped) */
    int32_t pad_hi[4]; /* ... after it */
} rill_pad_f32_params_t;

typedef struct {
    int32_t outer;
    int32_t length; /* normalized over this axis */
    int32_t inner;
    float epsilon;
} rill_layernorm_f32_params_t;

/* clamp(v, lo, hi) as `v < lo ? lo : (v > hi ? hi : v)`: NaN passes through. */
static inline float rill_clamp_f32(float v, float lo, float hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

static inline float rill_sigmoid_f32(float v)
{
    return 1.0f / (1.0f + expf(-v));
}

/* The unary functions f(v, alpha, beta) of rill_unary_<fn>_f32, one macro each (v is a
 * variable: evaluated more than once). alpha, beta: Clip's bounds, LeakyRelu's / Elu's alpha,
 * HardSigmoid's / HardSwish's alpha and beta, Pow's exponent (alpha); unused otherwise. */
#define RILL_F32_RELU(v, alpha, beta) ((v) < 0.0f ? 0.0f : (v))
#define RILL_F32_CLIP(v, alpha, beta) rill_clamp_f32((v), (alpha), (beta))
#define RILL_F32_SIGMOID(v, alpha, beta) rill_sigmoid_f32(v)
#define RILL_F32_SILU(v, alpha, beta) ((v) / (1.0f + expf(-(v))))
#define RILL_F32_TANH(v, alpha, beta) tanhf(v)
#define RILL_F32_LEAKY_RELU(v, alpha, beta) ((v) >= 0.0f ? (v) : (alpha) * (v))
#define RILL_F32_HARD_SIGMOID(v, alpha, beta) rill_clamp_f32((alpha) * (v) + (beta), 0.0f, 1.0f)
#define RILL_F32_HARD_SWISH(v, alpha, beta) \
    ((v) * rill_clamp_f32((alpha) * (v) + (beta), 0.0f, 1.0f))
#define RILL_F32_GELU(v, alpha, beta) (0.5f * (v) * (1.0f + erff((v) * 0.70710678118654752f)))
#define RILL_F32_GELU_TANH(v, alpha, beta) \
    (0.5f * (v) * (1.0f + tanhf(0.79788456080286536f * ((v) + 0.044715f * (v) * (v) * (v)))))
#define RILL_F32_EXP(v, alpha, beta) expf(v)
#define RILL_F32_SOFTPLUS(v, alpha, beta) \
    ((v) > 0.0f ? (v) + log1pf(expf(-(v))) : log1pf(expf(v)))
#define RILL_F32_ELU(v, alpha, beta) ((v) > 0.0f ? (v) : (alpha) * expm1f(v))
#define RILL_F32_NEG(v, alpha, beta) (-(v))
#define RILL_F32_ABS(v, alpha, beta) fabsf(v)
#define RILL_F32_ERF(v, alpha, beta) erff(v)
#define RILL_F32_SQRT(v, alpha, beta) sqrtf(v)
#define RILL_F32_RECIPROCAL(v, alpha, beta) (1.0f / (v))
#define RILL_F32_POW(v, alpha, beta) powf((v), (alpha))

#endif /* RILL_KERNELS_F32_H */
