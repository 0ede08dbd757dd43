#include "rill_kernels.h"

/* rill_transpose_VARIANT: y = x.reshape(in_shape[:rank]).transpose(perm[:rank]), contiguous,
 * for rank 1..4 (lower ranks are padded with leading size-1 axes); x rill_x_t, y rill_y_t of
 * the same type (a pure data movement). */
void rill_transpose_VARIANT(const rill_transpose_params_t *p, const rill_x_t *x, rill_y_t *y)
{
    int32_t shape[4], perm[4], in_stride[4], out_shape[4], s[4];
    const int32_t pad = 4 - p->rank;
    int32_t d, i0, i1, i2, i3;

    for (d = 0; d < 4; ++d) {
        shape[d] = d < pad ? 1 : p->in_shape[d - pad];
        perm[d] = d < pad ? d : p->perm[d - pad] + pad;
    }
    in_stride[3] = 1;
    for (d = 2; d >= 0; --d) {
        in_stride[d] = in_stride[d + 1] * shape[d + 1];
    }
    for (d = 0; d < 4; ++d) {
        out_shape[d] = shape[perm[d]];
        s[d] = in_stride[perm[d]]; /* input stride of output axis d */
    }
    for (i0 = 0; i0 < out_shape[0]; ++i0) {
        for (i1 = 0; i1 < out_shape[1]; ++i1) {
            for (i2 = 0; i2 < out_shape[2]; ++i2) {
                const rill_x_t *xr = x + i0 * s[0] + i1 * s[1] + i2 * s[2];
                for (i3 = 0; i3 < out_shape[3]; ++i3) {
                    *y++ = (rill_y_t)xr[i3 * s[3]];
                }
            }
        }
    }
}
