/* Runs the Rill-compiled `tcn` component on microphone audio, chunk by chunk (ESP-IDF >= 5.0).
 *
 * One FreeRTOS task reads 10 ms of 16 kHz audio from an I2S MEMS microphone per hop, turns the
 * last 20 ms into one feature frame (audio_features.c), and hands it to model_stream.c, which calls
 * tcn_run_f32 every TCN_CHUNK_FRAMES frames. The model's RAM is fixed at compile time: the
 * stream state (TCN_STATE_BYTES, inside model_stream_t, static here) and the scratch arena
 * (TCN_ARENA_BYTES, a static buffer in the component); nothing is allocated at run time. */
#include <stdint.h>
#include <string.h>

#include "driver/gpio.h"
#include "driver/i2s_std.h"
#include "esp_err.h"
#include "esp_log.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "audio_features.h"
#include "model_stream.h"

/* Your board's microphone pins (a 16-bit mono I2S MEMS microphone; for a 24-in-32-bit part such
 * as the INMP441 read I2S_DATA_BIT_WIDTH_32BIT samples and keep their top 16 bits). */
#define MIC_BCLK_GPIO GPIO_NUM_4
#define MIC_WS_GPIO GPIO_NUM_5
#define MIC_DIN_GPIO GPIO_NUM_6

#define LOG_EVERY_CALLS 50 /* one log line per half second at 10 ms frames and CHUNK=1 */

static const char *TAG = "rill_app";

static i2s_chan_handle_t mic_open(void)
{
    i2s_chan_handle_t rx = NULL;
    i2s_chan_config_t chan_cfg = I2S_CHANNEL_DEFAULT_CONFIG(I2S_NUM_AUTO, I2S_ROLE_MASTER);
    i2s_std_config_t std_cfg = {
        .clk_cfg = I2S_STD_CLK_DEFAULT_CONFIG(FEATURES_SAMPLE_RATE),
        .slot_cfg = I2S_STD_PHILIPS_SLOT_DEFAULT_CONFIG(I2S_DATA_BIT_WIDTH_16BIT, I2S_SLOT_MODE_MONO),
        .gpio_cfg = {
            .mclk = I2S_GPIO_UNUSED,
            .bclk = MIC_BCLK_GPIO,
            .ws = MIC_WS_GPIO,
            .dout = I2S_GPIO_UNUSED,
            .din = MIC_DIN_GPIO,
            .invert_flags = {.mclk_inv = false, .bclk_inv = false, .ws_inv = false},
        },
    };
    ESP_ERROR_CHECK(i2s_new_channel(&chan_cfg, NULL, &rx));
    ESP_ERROR_CHECK(i2s_channel_init_std_mode(rx, &std_cfg));
    ESP_ERROR_CHECK(i2s_channel_enable(rx));
    return rx;
}

static int argmax(const float *v, int n)
{
    int best = 0, i;
    for (i = 1; i < n; ++i)
        if (v[i] > v[best])
            best = i;
    return best;
}

static void model_task(void *arg)
{
    /* static: the stream state and buffers live in .bss, not on this task's stack */
    static model_stream_t stream;
    static int16_t window[FEATURES_WINDOW];
    static float frame[TCN_INPUT_CHANNELS];
    static float out[TCN_OUTPUT_ELEMS];
    i2s_chan_handle_t mic = mic_open();
    int64_t busy_us = 0;
    (void)arg;

    model_stream_init(&stream);
    ESP_LOGI(TAG, "model: %d frame(s) per call, %d values per frame, state %d B, arena %d B",
             TCN_CHUNK_FRAMES, TCN_INPUT_CHANNELS, TCN_STATE_BYTES, TCN_ARENA_BYTES);
    for (;;) {
        size_t got = 0;
        int64_t t0;
        int ready;
        /* slide the window by one hop and read the new hop behind the kept one */
        memmove(window, window + FEATURES_HOP,
                (FEATURES_WINDOW - FEATURES_HOP) * sizeof window[0]);
        ESP_ERROR_CHECK(i2s_channel_read(mic, window + FEATURES_WINDOW - FEATURES_HOP,
                                         FEATURES_HOP * sizeof window[0], &got, portMAX_DELAY));
        t0 = esp_timer_get_time();
        features_log_bands(window, FEATURES_WINDOW, frame, TCN_INPUT_CHANNELS);
        ready = model_stream_push(&stream, frame, out);
        busy_us += esp_timer_get_time() - t0;
        if (ready < 0) {
            ESP_LOGE(TAG, "tcn_run_f32 failed (%d); restarting the stream", -ready);
            model_stream_init(&stream);
            continue;
        }
        if (ready && stream.calls % LOG_EVERY_CALLS == 0) {
            int best = argmax(out, TCN_OUTPUT_ELEMS);
            ESP_LOGI(TAG, "call %ld: class %d (score %.3f); features + model %lld us per call",
                     stream.calls, best, (double)out[best],
                     (long long)(busy_us / LOG_EVERY_CALLS));
            busy_us = 0;
        }
    }
}

void app_main(void)
{
    xTaskCreate(model_task, "rill_model", 4096, NULL, 5, NULL);
}
