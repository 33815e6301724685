/* fuzz/fuzz_curves.c: training logs (viz_train_log_read), then the curves
 * figure drawn from what parsed (viz_render_curves), on a small canvas.
 * The bytes are the log file itself; rendering is where a log once hung
 * (log10(0) reached the line rasteriser), so every accepted log is drawn.
 * The font is looked up through fontconfig once and then passed by path. */
#include <stdio.h>
#include <string.h>

#include "fuzzutil.h"
#include "viz/viz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *font_path(void) {
    static char font[1024];
    static int done;
    if (!done) {
        viz_canvas *c;
        sae_error err = {0};
        if (viz_canvas_new(&c, 10, 10, 1.0, NULL, &err) == SAE_OK) {
            snprintf(font, sizeof font, "%s", viz_canvas_font(c));
            viz_canvas_free(c);
        }
        done = 1;
    }
    return font[0] ? font : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *font = font_path();
    const char *path = fuzz_bytes_file(data, size, ".jsonl");
    viz_train_log log;
    sae_error err = {0};
    if (viz_train_log_read(&log, path, &err) != SAE_OK) return 0;
    char out[512];
    snprintf(out, sizeof out, "%s", fuzz_scratch_path(".png"));
    viz_render_opts o = {.scale = 0.25, .font = font, .command = "fuzz_curves"};
    viz_render_curves(&log, "curves", out, &o, &err);
    remove(out);
    viz_train_log_free(&log);
    return 0;
}
