/* Feeding a Rill model frame by frame: plain C99, no ESP-IDF dependency (tested on the host).
 *
 * The generated component consumes TCN_CHUNK_FRAMES frames per call; a microphone delivers one
 * feature frame per hop. model_stream collects frames into the chunk buffer (time-major, as the
 * component expects: frame after frame, TCN_INPUT_CHANNELS values each) and runs one call when
 * the chunk is full. */
#ifndef MODEL_STREAM_H
#define MODEL_STREAM_H

#include "tcn.h"

typedef struct {
    tcn_t model;                  /* the stream's state (TCN_STATE_BYTES of past frames) */
    float chunk[TCN_INPUT_ELEMS]; /* the frames collected for the next call */
    int frames;                   /* how many of them are there */
    long calls;                   /* calls run since init */
} model_stream_t;

/* Start a stream from the model's initial state (also: reset after a gap in the audio). */
void model_stream_init(model_stream_t *s);

/* Add one frame of TCN_INPUT_CHANNELS values. When it completes a chunk, run the model, write
 * TCN_OUTPUT_ELEMS values to `out` and return 1; return 0 while the chunk is filling, and the
 * model's nonzero status negated (< 0) if the call fails. */
int model_stream_push(model_stream_t *s, const float *frame, float *out);

#endif /* MODEL_STREAM_H */
