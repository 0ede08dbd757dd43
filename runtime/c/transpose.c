#include "rill_kernels.h"

/* rill_transpose_VARIANT: y = x.reshape(in_shape[:rank]).transpose(perm[:rank]), contiguous,
 * for rank 1..4 (lower ranks are padded with leading size-1 axes); x rill_x_t, y rill_y_t of
 * the same type (a pure data movement).
 * Speed: the output's last axis is walked per row: a row copy when it is contiguous in x too;
 * when the output's second-last axis is x's contiguous axis (a 2-D transpose), four output rows
 * at a time, so that each step reads four neighbouring x through one pointer. */

/* Four output rows of `len` elements (y, y + len, ...), row r reading x[r + i * step]. */
static void rill_transpose_rows4_VARIANT(const rill_x_t *x, int32_t step, int32_t len,
                                         rill_y_t *y)
{
    rill_y_t *const y1 = y + len;
    rill_y_t *const y2 = y1 + len;
    rill_y_t *const y3 = y2 + len;
    int32_t i;
    for (i = 0; i < len; ++i, x += step) {
        y[i] = (rill_y_t)x[0];
        y1[i] = (rill_y_t)x[1];
        y2[i] = (rill_y_t)x[2];
        y3[i] = (rill_y_t)x[3];
    }
}

/* One output row of `len` elements reading x[i * step]. */
static void rill_transpose_row_VARIANT(const rill_x_t *x, int32_t step, int32_t len, rill_y_t *y)
{
    int32_t i;
    if (step == 1 && len > 0) {
        memcpy(y, x, (size_t)len * sizeof(rill_y_t));
        return;
    }
    for (i = 0; i < len; ++i, x += step) {
        y[i] = (rill_y_t)*x;
    }
}

void rill_transpose_VARIANT(const rill_transpose_params_t *p, const rill_x_t *x, rill_y_t *y)
{
    /* output axis d (of 4: leading size-1 axes pad the rank): its size and input stride */
    int32_t size[4], s[4], in_stride[4];
    const int32_t rank = p->rank;
    int32_t d, i0, i1, i2, acc = 1;

    for (d = rank - 1; d >= 0; --d) { /* the input's row-major strides */
        in_stride[d] = acc;
        acc *= p->in_shape[d];
    }
    for (d = 0; d < 4 - rank; ++d) {
        size[d] = 1;
        s[d] = 0;
    }
    for (d = 0; d < rank; ++d) {
        size[4 - rank + d] = p->in_shape[p->perm[d]];
        s[4 - rank + d] = in_stride[p->perm[d]];
    }
    for (i0 = 0; i0 < size[0]; ++i0) {
        for (i1 = 0; i1 < size[1]; ++i1) {
            const rill_x_t *const xp = x + i0 * s[0] + i1 * s[1];
            i2 = 0;
            if (s[2] == 1) { /* rows i2..i2+3 read neighbouring x */
                for (; i2 + 4 <= size[2]; i2 += 4, y += 4 * size[3]) {
                    rill_transpose_rows4_VARIANT(xp + i2, s[3], size[3], y);
                }
            }
            for (; i2 < size[2]; ++i2, y += size[3]) {
                rill_transpose_row_VARIANT(xp + i2 * s[2], s[3], size[3], y);
            }
        }
    }
}
