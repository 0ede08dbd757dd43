/* Feature frames from 16 kHz microphone audio: plain C99, no ESP-IDF dependency.
 *
 * A stand-in for the front end the model was trained with: a real model needs the very features
 * (and scaling) of its training pipeline, computed the same way here. */
#ifndef AUDIO_FEATURES_H
#define AUDIO_FEATURES_H

#include <stdint.h>

#define FEATURES_SAMPLE_RATE 16000
#define FEATURES_HOP 160 /* 10 ms: one feature frame per hop */
#define FEATURES_WINDOW 320 /* 20 ms: this hop and the one before */

/* Log energies of `n_bands` bands of one window of `n` samples: a Hann window, then the
 * Goertzel power at centre frequencies spaced evenly on the mel scale between 100 Hz and 7 kHz,
 * normalized by n^2; bands[i] = ln(power + 1e-6). */
void features_log_bands(const int16_t *window, int n, float *bands, int n_bands);

#endif /* AUDIO_FEATURES_H */
