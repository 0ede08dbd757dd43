/* Rill runtime: the kernel library's params structs (one per kernel family, the same for every
 * type variant). The formulas are specified in runtime/KERNELS.md; runtime/reference/kernels.py
 * is the bit-exact Python reference. Tensors that carry time are time-major: x[t][c] is at
 * x + t*C + c.
 *
 * Each runtime/c/<family>.c is a template written once with type tokens (rill_x_t, rill_x2_t,
 * rill_w_t, rill_acc_t, rill_y_t, RILL_Y_MIN, ... and the name suffix VARIANT, e.g.
 * rill_conv1d_VARIANT); codegen/kernel_library.py instantiates it per type signature (e.g.
 * rill_conv1d_s8, rill_conv1d_x16w8a32y16) and generates the prototypes.
 */
#ifndef RILL_KERNELS_H
#define RILL_KERNELS_H

#include "rill_common.h"

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
    int32_t act_min;
    int32_t act_max;
    int32_t wblock;  /* layout of w and bias: runtime/weight_layout.py */
    int32_t rq_bias;
} rill_conv1d_params_t;

typedef struct {
    int32_t m;
    int32_t k;
    int32_t n;
    int32_t act_min;
    int32_t act_max;
    int32_t wblock;  /* layout of w and bias: runtime/weight_layout.py */
    int32_t rq_bias;
} rill_gemm_params_t;

typedef struct {
    int32_t n;
    int32_t shift_a;
    int32_t shift_b;
    int32_t shift_out;
    int32_t act_min;
    int32_t act_max;
} rill_add_params_t;

typedef struct {
    int32_t t_in;
    int32_t channels;
    int32_t kernel;
    int32_t stride;
    int32_t pad_l;
    int32_t pad_r;
    int32_t count_include_pad;
    int32_t shift;
} rill_avgpool1d_params_t;

typedef struct {
    int32_t rank;
    int32_t in_shape[4];
    int32_t perm[4];
} rill_transpose_params_t;

typedef struct {
    int32_t t_in;
    int32_t channels;
    int32_t kernel;
    int32_t stride;
    int32_t dilation;
    int32_t pad_l;
    int32_t pad_r;
    int32_t pad_value;
    int32_t shift;
} rill_maxpool1d_params_t;

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
    int32_t act_min;
    int32_t act_max;
} rill_conv2d_params_t;

typedef struct {
    int32_t outer;
    int32_t length;
    int32_t inner;
    int32_t op; /* RILL_REDUCE_MEAN, RILL_REDUCE_MAX or RILL_REDUCE_SUM */
    int32_t shift;
} rill_reduce_params_t;

#define RILL_REDUCE_MEAN 0
#define RILL_REDUCE_MAX 1
#define RILL_REDUCE_SUM 2

typedef struct {
    int32_t rows;
    int32_t cols;
    int32_t out_frac;   /* fraction bits of the output: its exponent is -out_frac */
    int32_t lo_bits;    /* the exp table's low part has 2^lo_bits entries */
    int32_t hi_len;     /* entries of its high part: d >> lo_bits >= hi_len gives exp 0 */
    int32_t scale_bits; /* the high part is scaled by 2^scale_bits */
} rill_softmax_params_t;

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
    int32_t act_min;
    int32_t act_max;
} rill_conv_transpose1d_params_t;

typedef struct {
    int32_t op; /* RILL_BINARY_ADD, _SUB, _MUL, _DIV, _MAX, _MIN or _PRELU */
    int32_t shape[4];    /* output dims, outermost first (y is contiguous) */
    int32_t a_stride[4]; /* element stride of a along each output dim (0: broadcast) */
    int32_t b_stride[4];
    int32_t shift_a;
    int32_t shift_b;
    int32_t shift_out;
    int32_t act_min;
    int32_t act_max;
} rill_binary_params_t;

#define RILL_BINARY_ADD 0
#define RILL_BINARY_SUB 1
#define RILL_BINARY_MUL 2
#define RILL_BINARY_DIV 3
#define RILL_BINARY_MAX 4
#define RILL_BINARY_MIN 5
#define RILL_BINARY_PRELU 6

typedef struct {
    int32_t mode;  /* RILL_PAD_CONSTANT, _REFLECT, _EDGE or _WRAP */
    int32_t value; /* the constant (a value of the type) */
    int32_t in_shape[4];
    int32_t pad_lo[4]; /* elements added before each dim (negative: cropped) */
    int32_t pad_hi[4]; /* ... after it */
} rill_pad_params_t;

#define RILL_PAD_CONSTANT 0
#define RILL_PAD_REFLECT 1
#define RILL_PAD_EDGE 2
#define RILL_PAD_WRAP 3

typedef struct {
    int32_t outer;
    int32_t length; /* normalized over this axis (at most 65536) */
    int32_t inner;
    int32_t z_frac;    /* the normalized value Z has z_frac fraction bits */
    int32_t eps_mant;  /* epsilon in units of x^2 * length^2: eps_mant << eps_shift */
    int32_t eps_shift;
} rill_layernorm_params_t;

typedef struct {
    int32_t batch0;
    int32_t batch1;
    int32_t m;
    int32_t k;
    int32_t n;
    int32_t a_stride[4]; /* element strides of a along batch0, batch1, m, k */
    int32_t b_stride[4]; /* ... of b along batch0, batch1, k, n */
    int32_t y_stride[4]; /* ... of y along batch0, batch1, m, n */
    int32_t shift;
    int32_t act_min;
    int32_t act_max;
} rill_matmul_params_t;

#endif /* RILL_KERNELS_H */
