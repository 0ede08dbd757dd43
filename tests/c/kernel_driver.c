/* Test driver for the Rill kernels (used by tests/test_kernels.py).
 *
 * Built once per rounding mode with -DRILL_ROUNDING=0|1 together with the kernel variants under
 * test, instantiated from the runtime/c templates by codegen/kernel_library.py into
 * rill_generated.h / rill_generated.c, and kernel_dispatch.inc (tests/c_drivers.py), which
 * calls each variant from a record (op codes >= 100). Reads a stream of calls from stdin and
 * writes each call's output bytes to stdout. Every integer below is a native-endian int32.
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

#include "rill_generated.h"

#define MAX_PARAMS 32
#define MAX_ARRAYS 8

/* The helpers of rill_common.h, called directly (op codes below 100). */
enum {
    OP_ROUND_SHIFT = 10,
    OP_ROUND_DIV = 11,
    OP_ROUND_F32_SAT = 12, /* params n lo hi */
    OP_FLOOR_SHIFT = 13,
    OP_REQUANT32 = 14 /* params n lo hi; arrays x int32, s int32 */
};

static void rill_die(const char *msg, long record)
{
    fprintf(stderr, "kernel_driver: record %ld: %s\n", record, msg);
    exit(2);
}

static void rill_expect(int ok, long record)
{
    if (!ok) {
        rill_die("wrong number of params or arrays for this op", record);
    }
}

#include "kernel_dispatch.inc"

static int rill_read_i32(int32_t *v)
{
    return fread(v, sizeof *v, 1, stdin) == 1;
}

static void rill_call(int32_t op, const int32_t *pr, int32_t np, void **a, int32_t na,
                      void *out, long record)
{
    int32_t i;
    switch (op) {
    case OP_ROUND_SHIFT:
    case OP_FLOOR_SHIFT: {
        const int64_t *x = (const int64_t *)a[0];
        const int32_t *s = (const int32_t *)a[1];
        int64_t *y = (int64_t *)out;
        rill_expect(np == 1 && na == 2, record);
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
        rill_expect(np == 1 && na == 2, record);
        for (i = 0; i < pr[0]; ++i) {
            y[i] = rill_round_div(n[i], d[i]);
        }
        break;
    }
    case OP_REQUANT32: {
        const int32_t *x = (const int32_t *)a[0];
        const int32_t *s = (const int32_t *)a[1];
        int32_t *y = (int32_t *)out;
        rill_expect(np == 3 && na == 2, record);
        for (i = 0; i < pr[0]; ++i) {
            y[i] = rill_rq_apply(rill_rq_init((int)s[i]), x[i], pr[1], pr[2]);
        }
        break;
    }
    case OP_ROUND_F32_SAT: {
        const float *v = (const float *)a[0];
        int32_t *y = (int32_t *)out;
        rill_expect(np == 3 && na == 1, record);
        for (i = 0; i < pr[0]; ++i) {
            y[i] = rill_round_f32_sat(v[i], pr[1], pr[2]);
        }
        break;
    }
    default:
        if (!rill_call_variant(op, pr, np, a, na, out, record)) {
            rill_die("unknown op", record);
        }
    }
}

int main(void)
{
    long record = 0;
    int32_t op;
    while (rill_read_i32(&op) && op >= 0) {
        int32_t params[MAX_PARAMS];
        void *arrays[MAX_ARRAYS];
        int32_t nparams, narrays, out_nbytes, i;
        unsigned char *out, *first;
        if (!rill_read_i32(&nparams) || nparams < 0 || nparams > MAX_PARAMS) {
            rill_die("bad nparams", record);
        }
        for (i = 0; i < nparams; ++i) {
            if (!rill_read_i32(&params[i])) {
                rill_die("truncated params", record);
            }
        }
        if (!rill_read_i32(&narrays) || narrays < 0 || narrays > MAX_ARRAYS) {
            rill_die("bad narrays", record);
        }
        for (i = 0; i < narrays; ++i) {
            int32_t nbytes;
            if (!rill_read_i32(&nbytes) || nbytes < 0) {
                rill_die("bad array size", record);
            }
            arrays[i] = malloc((size_t)nbytes); /* may be NULL for 0 bytes */
            if (arrays[i] == NULL && nbytes > 0) {
                rill_die("out of memory", record);
            }
            if (nbytes > 0 && fread(arrays[i], 1, (size_t)nbytes, stdin) != (size_t)nbytes) {
                rill_die("truncated array", record);
            }
        }
        if (!rill_read_i32(&out_nbytes) || out_nbytes < 0) {
            rill_die("bad out_nbytes", record);
        }
        /* exactly out_nbytes (malloc(0) may give a zero-sized block: any write is caught) */
        out = (unsigned char *)malloc((size_t)out_nbytes);
        first = (unsigned char *)malloc((size_t)out_nbytes);
        if ((out == NULL || first == NULL) && out_nbytes > 0) {
            rill_die("out of memory", record);
        }
        if (out_nbytes > 0) {
            memset(out, 0x55, (size_t)out_nbytes);
        }
        rill_call(op, params, nparams, arrays, narrays, out, record);
        if (out_nbytes > 0) {
            memcpy(first, out, (size_t)out_nbytes);
            memset(out, 0xAA, (size_t)out_nbytes);
        }
        rill_call(op, params, nparams, arrays, narrays, out, record);
        if (out_nbytes > 0 && memcmp(first, out, (size_t)out_nbytes) != 0) {
            fprintf(stderr, "kernel_driver: record %ld (op %ld): output bytes left unwritten\n",
                    record, (long)op);
            exit(3);
        }
        if (out_nbytes > 0 && fwrite(out, 1, (size_t)out_nbytes, stdout) != (size_t)out_nbytes) {
            rill_die("write failed", record);
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
