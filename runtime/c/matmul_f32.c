#include "rill_kernels_f32.h"

/* One output of rill_matmul_f32 (the loop nest: matmul_loop.c): the float32 sum itself. */
static rill_y_t rill_matmul_out_VARIANT(const rill_matmul_params_t *p, rill_acc_t acc)
{
    (void)p;
    return acc;
}
