/* Log band energies by the Goertzel algorithm (see audio_features.h). */
#include "audio_features.h"

#include <math.h>

#define PI_F 3.14159265358979f
#define LOW_HZ 100.0f
#define HIGH_HZ 7000.0f

static float hz_to_mel(float hz) { return 2595.0f * log10f(1.0f + hz / 700.0f); }
static float mel_to_hz(float mel) { return 700.0f * (powf(10.0f, mel / 2595.0f) - 1.0f); }

/* The band's centre frequency: band i of n, mel-spaced between LOW_HZ and HIGH_HZ. */
static float centre_hz(int i, int n)
{
    float lo = hz_to_mel(LOW_HZ), hi = hz_to_mel(HIGH_HZ);
    return mel_to_hz(lo + ((float)i + 0.5f) * (hi - lo) / (float)n);
}

void features_log_bands(const int16_t *window, int n, float *bands, int n_bands)
{
    int b, i;
    for (b = 0; b < n_bands; ++b) {
        float coeff = 2.0f * cosf(2.0f * PI_F * centre_hz(b, n_bands) / FEATURES_SAMPLE_RATE);
        float s1 = 0.0f, s2 = 0.0f, power;
        for (i = 0; i < n; ++i) {
            float hann = 0.5f - 0.5f * cosf(2.0f * PI_F * (float)i / (float)(n - 1));
            float x = hann * ((float)window[i] / 32768.0f);
            float s = x + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        power = (s1 * s1 + s2 * s2 - coeff * s1 * s2) / ((float)n * (float)n);
        bands[b] = logf((power > 0.0f ? power : 0.0f) + 1e-6f);
    }
}
