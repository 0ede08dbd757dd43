#include "rill_kernels.h"

/* The input index that output index i (already shifted by the leading pad) reads along an
 * axis of n elements, or -1 for the constant: i itself inside [0, n); outside, by mode. */
static int32_t rill_pad_index_VARIANT(int32_t i, int32_t n, int32_t mode)
{
    int32_t period;
    if (i >= 0 && i < n) {
        return i;
    }
    if (n <= 0 || mode == RILL_PAD_CONSTANT) {
        return -1;
    }
    switch (mode) {
    case RILL_PAD_REFLECT:
        if (n == 1) {
            return 0;
        }
        period = 2 * (n - 1);
        i = (i < 0 ? -i : i) % period;
        return i >= n ? period - i : i;
    case RILL_PAD_EDGE:
        return i < 0 ? 0 : n - 1;
    default: /* RILL_PAD_WRAP */
        i %= n;
        return i < 0 ? i + n : i;
    }
}

/* rill_pad_VARIANT: pad (or crop, with negative pads) a tensor x rill_x_t [in_shape[0..3]]
 * into y rill_y_t [in_shape[d] + pad_lo[d] + pad_hi[d]] (both contiguous, same type). Output
 * (o0, o1, o2, o3) reads x at i_d = o_d - pad_lo[d] mapped by rill_pad_index (constant: the
 * value `value` outside; reflect: mirrored without repeating the edge; edge: the nearest
 * element; wrap: periodic). */
void rill_pad_VARIANT(const rill_pad_params_t *p, const rill_x_t *x, rill_y_t *y)
{
    int32_t out[4], stride[4], d, o0, o1, o2, o3;
    for (d = 0; d < 4; ++d) {
        out[d] = p->in_shape[d] + p->pad_lo[d] + p->pad_hi[d];
    }
    stride[3] = 1;
    for (d = 2; d >= 0; --d) {
        stride[d] = stride[d + 1] * p->in_shape[d + 1];
    }
    for (o0 = 0; o0 < out[0]; ++o0) {
        const int32_t i0 = rill_pad_index_VARIANT(o0 - p->pad_lo[0], p->in_shape[0], p->mode);
        for (o1 = 0; o1 < out[1]; ++o1) {
            const int32_t i1 = rill_pad_index_VARIANT(o1 - p->pad_lo[1], p->in_shape[1], p->mode);
            for (o2 = 0; o2 < out[2]; ++o2) {
                const int32_t i2 = rill_pad_index_VARIANT(o2 - p->pad_lo[2], p->in_shape[2],
                                                          p->mode);
                const int outside = i0 < 0 || i1 < 0 || i2 < 0;
                const rill_x_t *xr =
                    outside ? x : x + i0 * stride[0] + i1 * stride[1] + i2 * stride[2];
                for (o3 = 0; o3 < out[3]; ++o3) {
                    const int32_t i3 = outside ? -1 : rill_pad_index_VARIANT(
                                                          o3 - p->pad_lo[3], p->in_shape[3], p->mode);
                    *y++ = i3 < 0 ? (rill_y_t)p->value : (rill_y_t)xr[i3];
                }
            }
        }
    }
}
