#include "rill_kernels.h"

/* One output of rill_matmul_VARIANT (the loop nest: matmul_loop.c) from its rill_acc_t sum of
 * products: clamp(sat_Y(round_shift(acc, shift)), act_min, act_max). */
static rill_y_t rill_matmul_out_VARIANT(const rill_matmul_params_t *p, rill_acc_t acc)
{
    return (rill_y_t)rill_clamp(rill_sat(rill_round_shift(acc, p->shift), RILL_Y_MIN, RILL_Y_MAX),
                                p->act_min, p->act_max);
}
