/* Rill runtime: int8 kernel library (params structs and prototypes).
 * The formulas are specified in runtime/KERNELS.md; runtime/reference/kernels.py is the bit-exact
 * Python reference. Tensors that carry time are time-major: x[t][c] is at x + t*C + c.
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
} rill_conv1d_params_t;

typedef struct {
    int32_t m;
    int32_t k;
    int32_t n;
    int32_t act_min;
    int32_t act_max;
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
    int32_t out_bits;
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

void rill_conv1d_s8(const rill_conv1d_params_t *p, const int8_t *x, const int8_t *w,
                    const int32_t *bias, const int8_t *shift, int8_t *y);
void rill_gemm_s8(const rill_gemm_params_t *p, const int8_t *x, const int8_t *w,
                  const int32_t *bias, const int8_t *shift, int8_t *y);
void rill_add_s8(const rill_add_params_t *p, const int8_t *a, const int8_t *b, int8_t *y);
void rill_avgpool1d_s8(const rill_avgpool1d_params_t *p, const int8_t *x, int8_t *y);
void rill_lut_s8(int32_t n, const int8_t *table, const int8_t *x, int8_t *y);
void rill_requant_s8(int32_t n, int32_t shift, const int8_t *x, int8_t *y);
void rill_transpose_s8(const rill_transpose_params_t *p, const int8_t *x, int8_t *y);
void rill_quantize_f32_s8(int32_t n, int32_t exp, const float *x, int8_t *y);
void rill_dequantize_s8_f32(int32_t n, int32_t exp, const int8_t *x, float *y);

void rill_maxpool1d_s8(const rill_maxpool1d_params_t *p, const int8_t *x, int8_t *y);
void rill_conv2d_s8(const rill_conv2d_params_t *p, const int8_t *x, const int8_t *w,
                    const int32_t *bias, const int8_t *shift, int8_t *y);
void rill_reduce_s8(const rill_reduce_params_t *p, const int8_t *x, int8_t *y);
void rill_softmax_s8(const rill_softmax_params_t *p, const int32_t *table, const int8_t *x,
                     int8_t *y);
void rill_mask_frames_s8(int32_t frames, int32_t inner, int32_t pad, const int8_t *mask,
                         const int8_t *x, int8_t *y);
void rill_conv_transpose1d_s8(const rill_conv_transpose1d_params_t *p, const int8_t *x,
                              const int8_t *w, const int32_t *bias, const int8_t *shift,
                              int8_t *y);

#endif /* RILL_KERNELS_H */
