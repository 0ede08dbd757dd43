#include "rill_kernels_f32.h"

/* One output of rill_binary_f32 (the loop nest: binary_loop.c), in float32: a + b, a - b,
 * a * b, a / b (IEEE: b = 0 gives +-Inf or NaN, as in onnxruntime), max: a >= b ? a : b,
 * min: a <= b ? a : b, prelu: a >= 0 ? a : a * b (b the slope). */
static rill_y_t rill_binary_out_VARIANT(const rill_binary_params_t *p, rill_x_t va, rill_x2_t vb)
{
    switch (p->op) {
    case RILL_BINARY_ADD:
        return va + vb;
    case RILL_BINARY_SUB:
        return va - vb;
    case RILL_BINARY_MUL:
        return va * vb;
    case RILL_BINARY_DIV:
        return va / vb;
    case RILL_BINARY_MAX:
        return va >= vb ? va : vb;
    case RILL_BINARY_MIN:
        return va <= vb ? va : vb;
    default: /* RILL_BINARY_PRELU */
        return va >= 0.0f ? va : va * vb;
    }
}
