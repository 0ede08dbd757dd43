/* Test driver for the Rill int8 kernels (used by tests/test_kernels.py).
 *
 * Build once per rounding mode with -DRILL_ROUNDING=0|1 together with runtime/c/\*.c.
 * Reads a stream of kernel calls from stdin and writes each call's output bytes to stdout.
 * Every integer below is a native-endian int32.
 *
 *   record  := op nparams params[nparams] narrays array[narrays] out_nbytes
 *   array   := nbytes bytes[nbytes]
 *
 * A negative op or end of input stops. Each input array gets its own exactly sized heap block
 * and the output block is exactly out_nbytes, so AddressSanitizer catches any out-of-bounds
 * access. Each call runs twice, with the output pre-filled with 0x55 and then 0xAA: a byte the
 * kernel fails to write shows up as a difference, reported on stderr (exit status 3).
 */
#include <stdio.h>
#include <stdlib.h>

#include "rill_kernels.h"

#define MAX_PARAMS 32
#define MAX_ARRAYS 8

enum {
    OP_CONV1D = 1,
    OP_GEMM = 2,
    OP_ADD = 3,
    OP_AVGPOOL1D = 4,
    OP_LUT = 5,
    OP_REQUANT = 6,
    OP_TRANSPOSE = 7,
    OP_QUANTIZE = 8,
    OP_DEQUANTIZE = 9,
    OP_ROUND_SHIFT = 10,
    OP_ROUND_DIV = 11,
    OP_ROUND_F32_SAT8 = 12,
    OP_FLOOR_SHIFT = 13,
    OP_MAXPOOL1D = 14,
    OP_CONV2D = 15,
    OP_REDUCE = 16,
    OP_SOFTMAX = 17,
    OP_MASK_FRAMES = 18,
    OP_MASK_FRAMES_INPLACE = 19, /* x copied into the output first, then y = x = out */
    OP_CONV_TRANSPOSE1D = 20
};

static void die(const char *msg, long record)
{
    fprintf(stderr, "kernel_driver: record %ld: %s\n", record, msg);
    exit(2);
}

static int read_i32(int32_t *v)
{
    return fread(v, sizeof *v, 1, stdin) == 1;
}

static void expect_shape(int32_t nparams, int32_t narrays, int32_t want_params,
                         int32_t want_arrays, long record)
{
    if (nparams != want_params || narrays != want_arrays) {
        die("wrong number of params or arrays for this op", record);
    }
}

static void call(int32_t op, const int32_t *pr, int32_t np, void **a, int32_t na, void *out,
                 long record)
{
    int32_t i;
    switch (op) {
    case OP_CONV1D: {
        rill_conv1d_params_t p;
        expect_shape(np, na, 11, 4, record);
        p.t_in = pr[0];
        p.c_in = pr[1];
        p.c_out = pr[2];
        p.kernel = pr[3];
        p.stride = pr[4];
        p.dilation = pr[5];
        p.groups = pr[6];
        p.pad_l = pr[7];
        p.pad_r = pr[8];
        p.act_min = pr[9];
        p.act_max = pr[10];
        rill_conv1d_s8(&p, (const int8_t *)a[0], (const int8_t *)a[1], (const int32_t *)a[2],
                       (const int8_t *)a[3], (int8_t *)out);
        break;
    }
    case OP_GEMM: {
        rill_gemm_params_t p;
        expect_shape(np, na, 5, 4, record);
        p.m = pr[0];
        p.k = pr[1];
        p.n = pr[2];
        p.act_min = pr[3];
        p.act_max = pr[4];
        rill_gemm_s8(&p, (const int8_t *)a[0], (const int8_t *)a[1], (const int32_t *)a[2],
                     (const int8_t *)a[3], (int8_t *)out);
        break;
    }
    case OP_ADD: {
        rill_add_params_t p;
        expect_shape(np, na, 6, 2, record);
        p.n = pr[0];
        p.shift_a = pr[1];
        p.shift_b = pr[2];
        p.shift_out = pr[3];
        p.act_min = pr[4];
        p.act_max = pr[5];
        rill_add_s8(&p, (const int8_t *)a[0], (const int8_t *)a[1], (int8_t *)out);
        break;
    }
    case OP_AVGPOOL1D: {
        rill_avgpool1d_params_t p;
        expect_shape(np, na, 8, 1, record);
        p.t_in = pr[0];
        p.channels = pr[1];
        p.kernel = pr[2];
        p.stride = pr[3];
        p.pad_l = pr[4];
        p.pad_r = pr[5];
        p.count_include_pad = pr[6];
        p.shift = pr[7];
        rill_avgpool1d_s8(&p, (const int8_t *)a[0], (int8_t *)out);
        break;
    }
    case OP_LUT:
        expect_shape(np, na, 1, 2, record);
        rill_lut_s8(pr[0], (const int8_t *)a[0], (const int8_t *)a[1], (int8_t *)out);
        break;
    case OP_REQUANT:
        expect_shape(np, na, 2, 1, record);
        rill_requant_s8(pr[0], pr[1], (const int8_t *)a[0], (int8_t *)out);
        break;
    case OP_TRANSPOSE: {
        rill_transpose_params_t p;
        expect_shape(np, na, 9, 1, record);
        p.rank = pr[0];
        for (i = 0; i < 4; ++i) {
            p.in_shape[i] = pr[1 + i];
            p.perm[i] = pr[5 + i];
        }
        rill_transpose_s8(&p, (const int8_t *)a[0], (int8_t *)out);
        break;
    }
    case OP_QUANTIZE:
        expect_shape(np, na, 2, 1, record);
        rill_quantize_f32_s8(pr[0], pr[1], (const float *)a[0], (int8_t *)out);
        break;
    case OP_DEQUANTIZE:
        expect_shape(np, na, 2, 1, record);
        rill_dequantize_s8_f32(pr[0], pr[1], (const int8_t *)a[0], (float *)out);
        break;
    case OP_ROUND_SHIFT:
    case OP_FLOOR_SHIFT: {
        const int64_t *x = (const int64_t *)a[0];
        const int32_t *s = (const int32_t *)a[1];
        int64_t *y = (int64_t *)out;
        expect_shape(np, na, 1, 2, record);
        for (i = 0; i < pr[0]; ++i) {
            y[i] = op == OP_ROUND_SHIFT ? rill_round_shift(x[i], (int)s[i])
                                        : rill_floor_shift(x[i], (int)s[i]);
        }
        break;
    }
    case OP_ROUND_DIV: {
        const int64_t *n = (const int64_t *)a[0];
        const int64_t *d = (const int64_t *)a[1];
        int64_t *y = (int64_t *)out;
        expect_shape(np, na, 1, 2, record);
        for (i = 0; i < pr[0]; ++i) {
            y[i] = rill_round_div(n[i], d[i]);
        }
        break;
    }
    case OP_ROUND_F32_SAT8: {
        const float *v = (const float *)a[0];
        int8_t *y = (int8_t *)out;
        expect_shape(np, na, 1, 1, record);
        for (i = 0; i < pr[0]; ++i) {
            y[i] = (int8_t)rill_round_f32_sat8(v[i]);
        }
        break;
    }
    case OP_MAXPOOL1D: {
        rill_maxpool1d_params_t p;
        expect_shape(np, na, 9, 1, record);
        p.t_in = pr[0];
        p.channels = pr[1];
        p.kernel = pr[2];
        p.stride = pr[3];
        p.dilation = pr[4];
        p.pad_l = pr[5];
        p.pad_r = pr[6];
        p.pad_value = pr[7];
        p.shift = pr[8];
        rill_maxpool1d_s8(&p, (const int8_t *)a[0], (int8_t *)out);
        break;
    }
    case OP_CONV2D: {
        rill_conv2d_params_t p;
        expect_shape(np, na, 17, 4, record);
        p.t_in = pr[0];
        p.f_in = pr[1];
        p.c_in = pr[2];
        p.c_out = pr[3];
        p.kernel_t = pr[4];
        p.kernel_f = pr[5];
        p.stride_t = pr[6];
        p.stride_f = pr[7];
        p.dilation_t = pr[8];
        p.dilation_f = pr[9];
        p.groups = pr[10];
        p.pad_t_l = pr[11];
        p.pad_t_r = pr[12];
        p.pad_f_l = pr[13];
        p.pad_f_r = pr[14];
        p.act_min = pr[15];
        p.act_max = pr[16];
        rill_conv2d_s8(&p, (const int8_t *)a[0], (const int8_t *)a[1], (const int32_t *)a[2],
                       (const int8_t *)a[3], (int8_t *)out);
        break;
    }
    case OP_REDUCE: {
        rill_reduce_params_t p;
        expect_shape(np, na, 5, 1, record);
        p.outer = pr[0];
        p.length = pr[1];
        p.inner = pr[2];
        p.op = pr[3];
        p.shift = pr[4];
        rill_reduce_s8(&p, (const int8_t *)a[0], (int8_t *)out);
        break;
    }
    case OP_SOFTMAX: {
        rill_softmax_params_t p;
        expect_shape(np, na, 3, 2, record);
        p.rows = pr[0];
        p.cols = pr[1];
        p.out_bits = pr[2];
        rill_softmax_s8(&p, (const int32_t *)a[0], (const int8_t *)a[1], (int8_t *)out);
        break;
    }
    case OP_MASK_FRAMES:
        expect_shape(np, na, 3, 2, record);
        rill_mask_frames_s8(pr[0], pr[1], pr[2], (const int8_t *)a[0], (const int8_t *)a[1],
                            (int8_t *)out);
        break;
    case OP_MASK_FRAMES_INPLACE: {
        int8_t *y = (int8_t *)out;
        const int8_t *x = (const int8_t *)a[1];
        expect_shape(np, na, 3, 2, record);
        for (i = 0; i < pr[0] * pr[1]; ++i) {
            y[i] = x[i];
        }
        rill_mask_frames_s8(pr[0], pr[1], pr[2], (const int8_t *)a[0], y, y);
        break;
    }
    case OP_CONV_TRANSPOSE1D: {
        rill_conv_transpose1d_params_t p;
        expect_shape(np, na, 12, 4, record);
        p.t_in = pr[0];
        p.c_in = pr[1];
        p.c_out = pr[2];
        p.kernel = pr[3];
        p.stride = pr[4];
        p.dilation = pr[5];
        p.groups = pr[6];
        p.pad_l = pr[7];
        p.pad_r = pr[8];
        p.output_padding = pr[9];
        p.act_min = pr[10];
        p.act_max = pr[11];
        rill_conv_transpose1d_s8(&p, (const int8_t *)a[0], (const int8_t *)a[1],
                                 (const int32_t *)a[2], (const int8_t *)a[3], (int8_t *)out);
        break;
    }
    default:
        die("unknown op", record);
    }
}

int main(void)
{
    long record = 0;
    int32_t op;
    while (read_i32(&op) && op >= 0) {
        int32_t params[MAX_PARAMS];
        void *arrays[MAX_ARRAYS];
        int32_t nparams, narrays, out_nbytes, i;
        unsigned char *out, *first;
        if (!read_i32(&nparams) || nparams < 0 || nparams > MAX_PARAMS) {
            die("bad nparams", record);
        }
        for (i = 0; i < nparams; ++i) {
            if (!read_i32(&params[i])) {
                die("truncated params", record);
            }
        }
        if (!read_i32(&narrays) || narrays < 0 || narrays > MAX_ARRAYS) {
            die("bad narrays", record);
        }
        for (i = 0; i < narrays; ++i) {
            int32_t nbytes;
            if (!read_i32(&nbytes) || nbytes < 0) {
                die("bad array size", record);
            }
            arrays[i] = malloc((size_t)nbytes); /* may be NULL for 0 bytes */
            if (arrays[i] == NULL && nbytes > 0) {
                die("out of memory", record);
            }
            if (nbytes > 0 && fread(arrays[i], 1, (size_t)nbytes, stdin) != (size_t)nbytes) {
                die("truncated array", record);
            }
        }
        if (!read_i32(&out_nbytes) || out_nbytes < 0) {
            die("bad out_nbytes", record);
        }
        /* exactly out_nbytes (malloc(0) may give a zero-sized block: any write is caught) */
        out = (unsigned char *)malloc((size_t)out_nbytes);
        first = (unsigned char *)malloc((size_t)out_nbytes);
        if ((out == NULL || first == NULL) && out_nbytes > 0) {
            die("out of memory", record);
        }
        if (out_nbytes > 0) {
            memset(out, 0x55, (size_t)out_nbytes);
        }
        call(op, params, nparams, arrays, narrays, out, record);
        if (out_nbytes > 0) {
            memcpy(first, out, (size_t)out_nbytes);
            memset(out, 0xAA, (size_t)out_nbytes);
        }
        call(op, params, nparams, arrays, narrays, out, record);
        if (out_nbytes > 0 && memcmp(first, out, (size_t)out_nbytes) != 0) {
            fprintf(stderr, "kernel_driver: record %ld (op %ld): output bytes left unwritten\n",
                    record, (long)op);
            exit(3);
        }
        if (out_nbytes > 0 && fwrite(out, 1, (size_t)out_nbytes, stdout) != (size_t)out_nbytes) {
            die("write failed", record);
        }
        free(out);
        free(first);
        for (i = 0; i < narrays; ++i) {
            free(arrays[i]);
        }
        ++record;
    }
    return 0;
}
