#include "rill_kernels.h"

/* rill_binary_VARIANT: element-wise op of a rill_x_t and b rill_x2_t with numpy broadcasting,
 * y rill_y_t [shape[0]][shape[1]][shape[2]][shape[3]] contiguous; the operands of output
 * (i0, i1, i2, i3) are a[sum i_k * a_stride[k]] and b[sum i_k * b_stride[k]] (stride 0 along a
 * broadcast axis), and the output is rill_binary_out_VARIANT(p, a, b): binary.c (integer) or
 * binary_f32.c (float32) before this loop nest, which both share. y may be an operand that is
 * not broadcast. */
void rill_binary_VARIANT(const rill_binary_params_t *p, const rill_x_t *a, const rill_x2_t *b,
                         rill_y_t *y)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < p->shape[0]; ++i0) {
        for (i1 = 0; i1 < p->shape[1]; ++i1) {
            for (i2 = 0; i2 < p->shape[2]; ++i2) {
                const rill_x_t *ar = a + i0 * p->a_stride[0] + i1 * p->a_stride[1]
                                     + i2 * p->a_stride[2];
                const rill_x2_t *br = b + i0 * p->b_stride[0] + i1 * p->b_stride[1]
                                      + i2 * p->b_stride[2];
                for (i3 = 0; i3 < p->shape[3]; ++i3) {
                    *y++ = rill_binary_out_VARIANT(p, ar[i3 * p->a_stride[3]],
                                                   br[i3 * p->b_stride[3]]);
                }
            }
        }
    }
}
