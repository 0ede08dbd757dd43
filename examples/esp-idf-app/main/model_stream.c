/* Frame-by-frame feeding of the generated component (see model_stream.h). */
#include "model_stream.h"

#include <string.h>

void model_stream_init(model_stream_t *s)
{
    tcn_init(&s->model);
    s->frames = 0;
    s->calls = 0;
}

int model_stream_push(model_stream_t *s, const float *frame, float *out)
{
    int status;
    memcpy(s->chunk + (long)s->frames * TCN_INPUT_CHANNELS, frame,
           TCN_INPUT_CHANNELS * sizeof s->chunk[0]);
    if (++s->frames < TCN_CHUNK_FRAMES)
        return 0;
    s->frames = 0;
    status = tcn_run_f32(&s->model, s->chunk, out);
    if (status != 0)
        return status > 0 ? -status : status;
    ++s->calls;
    return 1;
}
