/* Test driver for the Rill int8 recurrent kernels (used by tests/test_kernels_recurrent.py).
 *
 * Build once per rounding mode with -DRILL_ROUNDING=0|1 together with rill_gru_s8 and
 * rill_lstm_s8, instantiated from runtime/c/gru.c and lstm.c by codegen/kernel_library.py into
 * rill_generated.h / rill_generated.c (tests/c_drivers.py). Reads a stream of calls from stdin,
 * writes each call's output to stdout.
 * Every integer below is a native-endian int32.
 *
 *   record  := op nparams params[nparams] narrays array[narrays]
 *   array   := nbytes bytes[nbytes]
 *   GRU  (op 1): params t split use_y input hidden linear_before_reset
 *                arrays x wx wh bias shift table h
 *                output y[t][hidden] (if use_y), h[hidden]
 *   LSTM (op 2): params t split use_y input hidden shift_ig shift_tc
 *                arrays x wx wh bias shift table h c
 *                output y[t][hidden] (if use_y), h[hidden], c[hidden] (int16)
 *
 * The kernel runs `split` frames and then the remaining t - split frames on the same state
 * buffers (the streaming use). A negative op or end of input stops. Every buffer is an exactly
 * sized heap block (constants copied, scratch pre-filled with garbage) so AddressSanitizer
 * catches any out-of-bounds access; y is NULL when use_y is 0. Each call runs twice, with y
 * pre-filled with 0x55 and then 0xAA and the state restored: a byte the kernel fails to write
 * (or any other difference) is reported on stderr (exit status 3).
 */
#include <stdio.h>
#include <stdlib.h>

#include "rill_generated.h"

#define MAX_PARAMS 8
#define MAX_ARRAYS 8

enum { OP_GRU = 1, OP_LSTM = 2 };

typedef struct {
    int32_t op, np, na;
    int32_t pr[MAX_PARAMS];
    void *a[MAX_ARRAYS];
    int32_t nbytes[MAX_ARRAYS];
} rill_record_t;

static void rill_die(const char *msg, long record)
{
    fprintf(stderr, "recurrent_driver: record %ld: %s\n", record, msg);
    exit(2);
}

static int rill_read_i32(int32_t *v)
{
    return fread(v, sizeof *v, 1, stdin) == 1;
}

static void *rill_alloc(int32_t nbytes, long record)
{
    void *p = malloc((size_t)nbytes); /* may be NULL for 0 bytes */
    if (p == NULL && nbytes > 0) {
        rill_die("out of memory", record);
    }
    return p;
}

static void rill_read_record(rill_record_t *r, long record)
{
    int32_t i;
    if (!rill_read_i32(&r->np) || r->np < 0 || r->np > MAX_PARAMS) {
        rill_die("bad nparams", record);
    }
    for (i = 0; i < r->np; ++i) {
        if (!rill_read_i32(&r->pr[i])) {
            rill_die("truncated params", record);
        }
    }
    if (!rill_read_i32(&r->na) || r->na < 0 || r->na > MAX_ARRAYS) {
        rill_die("bad narrays", record);
    }
    for (i = 0; i < r->na; ++i) {
        if (!rill_read_i32(&r->nbytes[i]) || r->nbytes[i] < 0) {
            rill_die("bad array size", record);
        }
        r->a[i] = rill_alloc(r->nbytes[i], record);
        if (r->nbytes[i] > 0 && fread(r->a[i], 1, (size_t)r->nbytes[i], stdin) !=
                                    (size_t)r->nbytes[i]) {
            rill_die("truncated array", record);
        }
    }
}

/* One run: fresh state copies, y pre-filled with `fill`; output = y | h | c. */
static void rill_run(const rill_record_t *r, int fill, unsigned char *out, long record)
{
    const int32_t t = r->pr[0], split = r->pr[1], use_y = r->pr[2];
    const int32_t *pr = r->pr + 3; /* the params struct fields */
    const int32_t hid = pr[1];
    const int32_t ny = use_y ? t * hid : 0;
    int8_t *y = use_y ? (int8_t *)rill_alloc(ny, record) : NULL;
    int8_t *h = (int8_t *)rill_alloc(hid, record);
    int16_t *c = (int16_t *)rill_alloc(r->op == OP_LSTM ? 2 * hid : 0, record);
    int8_t *scratch = (int8_t *)rill_alloc((r->op == OP_GRU ? 3 : 4) * hid, record);
    const int8_t *x = (const int8_t *)r->a[0];
    int32_t part;
    if (y != NULL) {
        memset(y, fill, (size_t)ny);
    }
    memset(scratch, 0x5A ^ fill, (size_t)((r->op == OP_GRU ? 3 : 4) * hid));
    memcpy(h, r->a[6], (size_t)hid); /* arrays 6 and 7: the initial h and c */
    if (r->op == OP_LSTM) {
        memcpy(c, r->a[7], (size_t)(2 * hid));
    }
    for (part = 0; part < 2; ++part) {
        const int32_t f0 = part == 0 ? 0 : split;
        const int32_t n = part == 0 ? split : t - split;
        int8_t *yp = y != NULL ? y + f0 * hid : NULL;
        if (r->op == OP_GRU) {
            rill_gru_params_t p;
            p.input = pr[0];
            p.hidden = hid;
            p.linear_before_reset = pr[2];
            rill_gru_s8(&p, n, x + f0 * pr[0], (const int8_t *)r->a[1],
                        (const int8_t *)r->a[2], (const int32_t *)r->a[3],
                        (const int8_t *)r->a[4], (const int8_t *)r->a[5], h, scratch, yp);
        } else {
            rill_lstm_params_t p;
            p.input = pr[0];
            p.hidden = hid;
            p.shift_ig = pr[2];
            p.shift_tc = pr[3];
            rill_lstm_s8(&p, n, x + f0 * pr[0], (const int8_t *)r->a[1],
                         (const int8_t *)r->a[2], (const int32_t *)r->a[3],
                         (const int8_t *)r->a[4], (const int8_t *)r->a[5], h, c, scratch, yp);
        }
    }
    if (ny > 0) {
        memcpy(out, y, (size_t)ny);
    }
    memcpy(out + ny, h, (size_t)hid);
    if (r->op == OP_LSTM) {
        memcpy(out + ny + hid, c, (size_t)(2 * hid));
    }
    free(y);
    free(h);
    free(c);
    free(scratch);
}

static void rill_check_shape(const rill_record_t *r, long record)
{
    const int32_t want_params = r->op == OP_GRU ? 6 : 7;
    const int32_t want_arrays = r->op == OP_GRU ? 7 : 8;
    if (r->np != want_params || r->na != want_arrays) {
        rill_die("wrong number of params or arrays for this op", record);
    }
    if (r->pr[4] < 1 || r->pr[0] < 0 || r->pr[1] < 0 || r->pr[1] > r->pr[0]) {
        rill_die("bad hidden / t / split", record);
    }
}

int main(void)
{
    long record = 0;
    rill_record_t r;
    while (rill_read_i32(&r.op) && r.op >= 0) {
        int32_t nout, i;
        unsigned char *first, *second;
        if (r.op != OP_GRU && r.op != OP_LSTM) {
            rill_die("unknown op", record);
        }
        rill_read_record(&r, record);
        rill_check_shape(&r, record);
        nout = (r.pr[2] ? r.pr[0] * r.pr[4] : 0) + r.pr[4] * (r.op == OP_LSTM ? 3 : 1);
        first = (unsigned char *)rill_alloc(nout, record);
        second = (unsigned char *)rill_alloc(nout, record);
        rill_run(&r, 0x55, first, record);
        rill_run(&r, 0xAA, second, record);
        if (memcmp(first, second, (size_t)nout) != 0) {
            fprintf(stderr, "recurrent_driver: record %ld: output bytes left unwritten or the "
                            "result depends on the scratch contents\n", record);
            exit(3);
        }
        if (fwrite(first, 1, (size_t)nout, stdout) != (size_t)nout) {
            rill_die("write failed", record);
        }
        free(first);
        free(second);
        for (i = 0; i < r.na; ++i) {
            free(r.a[i]);
        }
        ++record;
    }
    return 0;
}
