/* app_host.c: runs the plain-C part of examples/esp-idf-app (audio_features.c, model_stream.c) on
 * the host, as its ESP-IDF task would, with stdin in place of the microphone.
 *
 *   app_host features   stdin: int32 n, n int16 samples  -> stdout: TCN_INPUT_CHANNELS float32
 *   app_host stream     stdin: int32 frames, frames x TCN_INPUT_CHANNELS float32
 *                       -> stdout: TCN_OUTPUT_ELEMS float32 per call model_stream_push ran
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio_features.h"
#include "model_stream.h"

static int read_exact(void *dst, size_t size, size_t count)
{
    return fread(dst, size, count, stdin) == count;
}

static int run_features(void)
{
    int32_t n = 0;
    int16_t *pcm;
    float bands[TCN_INPUT_CHANNELS];
    if (!read_exact(&n, sizeof n, 1) || n <= 1)
        return 2;
    pcm = malloc((size_t)n * sizeof *pcm);
    if (pcm == NULL || !read_exact(pcm, sizeof *pcm, (size_t)n))
        return 2;
    features_log_bands(pcm, n, bands, TCN_INPUT_CHANNELS);
    fwrite(bands, sizeof bands[0], TCN_INPUT_CHANNELS, stdout);
    free(pcm);
    return 0;
}

static int run_stream(void)
{
    static model_stream_t stream;
    int32_t frames = 0, i;
    float frame[TCN_INPUT_CHANNELS], out[TCN_OUTPUT_ELEMS];
    if (!read_exact(&frames, sizeof frames, 1))
        return 2;
    model_stream_init(&stream);
    for (i = 0; i < frames; ++i) {
        int ready;
        if (!read_exact(frame, sizeof frame[0], TCN_INPUT_CHANNELS))
            return 2;
        ready = model_stream_push(&stream, frame, out);
        if (ready < 0)
            return 3;
        if (ready)
            fwrite(out, sizeof out[0], TCN_OUTPUT_ELEMS, stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "features") == 0)
        return run_features();
    if (argc == 2 && strcmp(argv[1], "stream") == 0)
        return run_stream();
    fprintf(stderr, "usage: app_host features|stream < input\n");
    return 2;
}
