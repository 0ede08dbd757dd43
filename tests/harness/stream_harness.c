/* stream_harness.c: "someone else's harness" for a Rill component (the acceptance test).
 *
 * Written against the public API of contract §4 only: it includes nothing but the component's
 * public header, named on the command line, and reaches the model's symbols through macros:
 *
 *   gcc -std=c99 -Wall -Wextra -Werror -pedantic \
 *       -DMODEL_HEADER='"tcn.h"' -DMODEL=tcn -DMODEL_UPPER=TCN \
 *       -I<component>/include stream_harness.c <component>/src/\*.c <component>/test/\*.c -lm
 *
 * Usage: stream_harness INPUTS.f32 OUTPUTS.f32 N FRAMES ROUNDING
 *   INPUTS.f32   N inputs, each float32 [INPUT_CHANNELS][FRAMES] (the ONNX NCW layout, batch 1)
 *   OUTPUTS.f32  written: per input, the last call's OUTPUT_ELEMS float32 (the summary output)
 *   ROUNDING     "half_even" (esp32p4) or "half_up" (esp32s3): how this harness quantizes
 *
 * Each input is streamed from <name>_init in FRAMES / CHUNK_FRAMES calls, twice, on two
 * instances: once through <name>_run_f32 and once through <name>_run with the harness's own
 * quantization (<NAME>_INPUT_EXPONENT, the target's rounding, saturation) and dequantization
 * (<NAME>_OUTPUT_EXPONENT). Both must agree bit for bit. Prints "selftest <r>" and
 * "mismatches <n>"; exits 0 only when the self-test returns 0 and nothing mismatched.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef MODEL_HEADER
#error "compile with -DMODEL_HEADER='\"name.h\"' -DMODEL=name -DMODEL_UPPER=NAME"
#endif
#include MODEL_HEADER

#define PASTE_(a, b) a##b
#define PASTE(a, b) PASTE_(a, b)
#define M(suffix) PASTE(MODEL, suffix)       /* M(_init) -> <name>_init */
#define U(suffix) PASTE(MODEL_UPPER, suffix) /* U(_CHUNK_FRAMES) -> <NAME>_CHUNK_FRAMES */

#define CHUNK U(_CHUNK_FRAMES)
#define CHANNELS U(_INPUT_CHANNELS)
#define IN_ELEMS U(_INPUT_ELEMS)
#define OUT_ELEMS U(_OUTPUT_ELEMS)
#define IN_EXP U(_INPUT_EXPONENT)
#define OUT_EXP U(_OUTPUT_EXPONENT)

typedef M(_t) model_t;

/* The macros must be consistent: a chunk is CHUNK frames of CHANNELS values. */
typedef char harness_check_input_elems[(IN_ELEMS == CHUNK * CHANNELS) ? 1 : -1];
typedef char harness_check_sizes[(U(_STATE_BYTES) + U(_ARENA_BYTES) > 0) ? 1 : -1];

/* float -> int8 at 2^exponent: exact (the scaling is exact in double), the target's rounding
 * of ties, saturation, NaN -> 0. */
static int8_t quantize(float x, int exponent, int half_up)
{
    double v, f, r;
    if (x != x) {
        return 0;
    }
    v = ldexp((double)x, -exponent);
    if (v >= 127.0) {
        return 127;
    }
    if (v <= -128.0) {
        return -128;
    }
    f = floor(v);
    r = v - f;
    if (r > 0.5 || (r == 0.5 && (half_up || fmod(f, 2.0) != 0.0))) {
        f += 1.0;
    }
    return (int8_t)f;
}

int main(int argc, char **argv)
{
    FILE *fin, *fout;
    float *inputs;
    long n, frames, i, call, calls, f, c, mismatches = 0, failures = 0;
    int half_up, selftest;
    static model_t mf, mq; /* two instances: float API and int8 API */
    float fbuf[IN_ELEMS], fres[OUT_ELEMS];
    int8_t qbuf[IN_ELEMS], qres[OUT_ELEMS];

    if (argc != 6) {
        fprintf(stderr, "usage: %s INPUTS.f32 OUTPUTS.f32 N FRAMES half_even|half_up\n", argv[0]);
        return 2;
    }
    n = strtol(argv[3], NULL, 10);
    frames = strtol(argv[4], NULL, 10);
    half_up = strcmp(argv[5], "half_up") == 0;
    if (n <= 0 || frames <= 0 || frames % CHUNK != 0 ||
        (!half_up && strcmp(argv[5], "half_even") != 0)) {
        fprintf(stderr, "bad arguments (FRAMES must be a multiple of %d)\n", (int)CHUNK);
        return 2;
    }
    calls = frames / CHUNK;

    selftest = M(_selftest)();
    printf("selftest %d\n", selftest);

    inputs = (float *)malloc((size_t)n * (size_t)CHANNELS * (size_t)frames * sizeof(float));
    if (inputs == NULL) {
        return 2;
    }
    fin = fopen(argv[1], "rb");
    if (fin == NULL ||
        fread(inputs, sizeof(float), (size_t)(n * CHANNELS * frames), fin) != (size_t)(n * CHANNELS * frames)) {
        fprintf(stderr, "cannot read %ld inputs from %s\n", n, argv[1]);
        if (fin != NULL) {
            fclose(fin);
        }
        free(inputs);
        return 2;
    }
    fclose(fin);
    fout = fopen(argv[2], "wb");
    if (fout == NULL) {
        free(inputs);
        return 2;
    }

    for (i = 0; i < n; ++i) {
        const float *x = inputs + i * CHANNELS * frames; /* [CHANNELS][frames] */
        M(_init)(&mf);
        M(_init)(&mq);
        for (call = 0; call < calls; ++call) {
            /* time-major chunk: frame after frame, CHANNELS values per frame */
            for (f = 0; f < CHUNK; ++f) {
                for (c = 0; c < CHANNELS; ++c) {
                    fbuf[f * CHANNELS + c] = x[c * frames + call * CHUNK + f];
                    qbuf[f * CHANNELS + c] = quantize(fbuf[f * CHANNELS + c], IN_EXP, half_up);
                }
            }
            if (M(_run_f32)(&mf, fbuf, fres) != 0 || M(_run)(&mq, qbuf, qres) != 0) {
                ++failures;
            }
            for (c = 0; c < OUT_ELEMS; ++c) {
                if (fres[c] != (float)ldexp((double)qres[c], OUT_EXP)) {
                    ++mismatches;
                }
            }
        }
        fwrite(fres, sizeof(float), OUT_ELEMS, fout); /* summary output: the last call's */
    }
    fclose(fout);
    free(inputs);
    printf("mismatches %ld\n", mismatches);
    printf("failures %ld\n", failures);
    return (selftest == 0 && mismatches == 0 && failures == 0) ? 0 : 1;
}
