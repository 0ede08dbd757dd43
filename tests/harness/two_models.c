/* two_models.c: two Rill components (mic_a, mic_b) linked into one program.
 *
 *   gcc -std=c99 -Wall -Wextra -Werror -pedantic -Imic_a/include -Imic_b/include two_models.c \
 *       mic_a/src/\*.c mic_a/test/\*.c mic_b/src/\*.c mic_b/test/\*.c -lm
 *
 * Optional: -DCALLER_ARENA -DMIC_A_CALLER_ARENA -DMIC_B_CALLER_ARENA gives every instance its
 * own scratch arena (the build option of contract §4).
 * Prints "<name> selftest <r>" and "<name> two_instances <bad>"; exits 0 when all are 0.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mic_a.h"
#include "mic_b.h"

#define PASTE_(a, b) a##b
#define PASTE(a, b) PASTE_(a, b)
#define M(suffix) PASTE(MODEL, suffix)
#define U(suffix) PASTE(MODEL_UPPER, suffix)

#if defined(__GNUC__) || defined(__clang__)
#define HARNESS_ALIGN16 __attribute__((aligned(16)))
#else
#define HARNESS_ALIGN16
#endif

static int8_t next_int8(uint32_t *state) /* a small LCG: deterministic, no libc rand() */
{
    *state = *state * 1664525u + 1013904223u;
    return (int8_t)((int)((*state >> 24) & 0xffu) - 128);
}

#define MODEL mic_a
#define MODEL_UPPER MIC_A
#include "two_instances.inc"
#undef MODEL
#undef MODEL_UPPER

#define MODEL mic_b
#define MODEL_UPPER MIC_B
#include "two_instances.inc"
#undef MODEL
#undef MODEL_UPPER

int main(void)
{
    int a_self = mic_a_selftest(), b_self = mic_b_selftest();
    int a_two = mic_a_two_instances(), b_two = mic_b_two_instances();
    printf("mic_a selftest %d\nmic_b selftest %d\n", a_self, b_self);
    printf("mic_a two_instances %d\nmic_b two_instances %d\n", a_two, b_two);
    return (a_self == 0 && b_self == 0 && a_two == 0 && b_two == 0) ? 0 : 1;
}
