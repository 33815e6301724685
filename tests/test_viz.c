/* tests/test_viz.c: figures read back with libpng.
 *  - a heatmap's size, the colour of cells whose values are known (the
 *    colour map's end points), and that its colour bar spans the range;
 *  - the glyph for ん has ink (no tofu: the font covers it);
 *  - the same inputs give the same bytes. Skips when no font is installed. */
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "common/mem.h"
#include "tests/testutil.h"
#include "viz/viz.h"

static const char *dir;

typedef struct {
    unsigned w, h;
    uint8_t *rgb;
} image;

static image read_png(const char *path) {
    image im = {0};
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) fail_msg("%s: not a readable PNG", path);
    png_init_io(png, f);
    png_read_info(png, info);
    im.w = png_get_image_width(png, info), im.h = png_get_image_height(png, info);
    assert_int_equal(png_get_color_type(png, info), PNG_COLOR_TYPE_RGB);
    im.rgb = malloc((size_t)im.w * im.h * 3);
    for (unsigned y = 0; y < im.h; y++) png_read_row(png, im.rgb + (size_t)y * im.w * 3, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return im;
}

static viz_rgb px(const image *im, unsigned x, unsigned y) {
    const uint8_t *p = im->rgb + ((size_t)y * im->w + x) * 3;
    return (viz_rgb){p[0], p[1], p[2]};
}

static int close_to(viz_rgb a, viz_rgb b) { return abs(a.r - b.r) <= 1 && abs(a.g - b.g) <= 1 && abs(a.b - b.b) <= 1; }

static int have_font(void) {
    viz_canvas *c;
    sae_error err = {0};
    if (viz_canvas_new(&c, 10, 10, 1, NULL, &err) < 0) return 0;
    viz_canvas_free(c);
    return 1;
}

static void test_heatmap_cells_and_colorbar(void **state) {
    (void)state;
    float v[4] = {-1, 1, 0, 1}; /* 2 x 2 */
    const char *rl[2] = {"#1 みかん", "#2 きりん"}, *cl[2] = {"a", "b"};
    viz_heatmap h = {.title = "test", .values = v, .rows = 2, .cols = 2, .row_labels = rl, .col_labels = cl,
                     .vmin = -1, .vmax = 1, .cmap = VIZ_CMAP_RDBU, .cell_w = 40, .cell_h = 40, .cbar_title = "cos"};
    viz_render_opts o = {.scale = 1.0, .command = "test"};
    sae_error err = {0};
    const char *p = tu_path(dir, "h.png");
    assert_int_equal(viz_render_heatmap(&h, p, &o, &err), 0);
    image im = read_png(p);
    assert_true(im.w > 100 && im.h > 100);
    /* find the plot: the first row of a full-blue cell (value -1) */
    viz_rgb blue = viz_colormap(VIZ_CMAP_RDBU, 0), red = viz_colormap(VIZ_CMAP_RDBU, 1),
            white = viz_colormap(VIZ_CMAP_RDBU, 0.5);
    assert_true(close_to(blue, (viz_rgb){0x05, 0x30, 0x61}) && close_to(red, (viz_rgb){0x67, 0x00, 0x1f}));
    int fx = -1, fy = -1;
    for (unsigned y = 0; y < im.h && fx < 0; y++)
        for (unsigned x = 0; x < im.w; x++)
            if (close_to(px(&im, x, y), blue)) {
                fx = (int)x, fy = (int)y;
                break;
            }
    assert_true(fx >= 0);
    /* cell (0,0) blue, (0,1) red, (1,0) white, (1,1) red: sample cell centres */
    assert_true(close_to(px(&im, (unsigned)fx + 20, (unsigned)fy + 20), blue));
    assert_true(close_to(px(&im, (unsigned)fx + 60, (unsigned)fy + 20), red));
    assert_true(close_to(px(&im, (unsigned)fx + 20, (unsigned)fy + 60), white));
    assert_true(close_to(px(&im, (unsigned)fx + 60, (unsigned)fy + 60), red));
    /* the colour bar, right of the plot and as tall as it (80 px, one colour
     * step per pixel row): row 3 holds t = 1 - 3.5/80, row 76 t = 1 - 76.5/80
     * (rows 0 and 79 carry the bar's frame); fy is the plot's top row */
    int found_red_top = 0, found_blue_bottom = 0;
    for (int shift = 0; shift <= 1; shift++) { /* the frame may hide the plot's first row */
        viz_rgb want_top = viz_colormap(VIZ_CMAP_RDBU, 1 - (3.5 + shift) / 80);
        viz_rgb want_bot = viz_colormap(VIZ_CMAP_RDBU, 1 - (76.5 + shift) / 80);
        for (unsigned x = (unsigned)fx + 81; x < im.w; x++) {
            found_red_top |= close_to(px(&im, x, (unsigned)fy + 3), want_top);
            found_blue_bottom |= close_to(px(&im, x, (unsigned)fy + 76), want_bot);
        }
    }
    assert_true(found_red_top && found_blue_bottom);
    free(im.rgb);
    /* deterministic bytes */
    const char *p2 = tu_path(dir, "h2.png");
    assert_int_equal(viz_render_heatmap(&h, p2, &o, &err), 0);
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", p, p2);
    assert_int_equal(system(cmd), 0);
}

static void test_japanese_glyph_has_ink(void **state) {
    (void)state;
    viz_canvas *c;
    sae_error err = {0};
    assert_int_equal(viz_canvas_new(&c, 60, 40, 2, NULL, &err), 0);
    assert_true(viz_font_covers(c, "ん みかん きりん 漢字 カタカナ"));
    viz_text(c, 30, 30, "ん", 24, VIZ_BLACK, VIZ_CENTER, 0);
    const char *p = tu_path(dir, "n.png");
    assert_int_equal(viz_canvas_write_png(c, p, NULL, &err), 0);
    viz_canvas_free(c);
    image im = read_png(p);
    assert_int_equal(im.w, 120);
    assert_int_equal(im.h, 80);
    size_t ink = 0;
    for (size_t i = 0; i < (size_t)im.w * im.h; i++) ink += im.rgb[i * 3] < 128;
    /* a 24 pt ん at 2x covers a few hundred dark pixels; a missing glyph draws
     * nothing here (FreeType's .notdef box would be a thin outline) */
    assert_true(ink > 150);
    free(im.rgb);
}

static void test_viridis_endpoints(void **state) {
    (void)state;
    viz_rgb a = viz_colormap(VIZ_CMAP_VIRIDIS, 0), b = viz_colormap(VIZ_CMAP_VIRIDIS, 1);
    /* the published first and last entries: (0.267004, 0.004874, 0.329415), (0.993248, 0.906157, 0.143936) */
    assert_true(close_to(a, (viz_rgb){68, 1, 84}));
    assert_true(close_to(b, (viz_rgb){253, 231, 37}));
}

/* --- hardening: no coordinate can hang the rasteriser, no log the parser ---- */
static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int dark(viz_rgb p) { return p.r < 128 && p.g < 128 && p.b < 128; }

/* log10(0) = -Inf once reached viz_line, whose pixel loops then ran over the
 * whole unclipped span: lines far outside the canvas must be clipped to it
 * (drawing what is inside) and non-finite ones skipped, all at once. */
static void test_line_clipped_to_canvas(void **state) {
    (void)state;
    viz_canvas *c;
    sae_error err = {0};
    assert_int_equal(viz_canvas_new(&c, 40, 40, 1, NULL, &err), 0);
    double t0 = seconds_now();
    viz_line(c, -1e12, -1e12, 1e12, 1e12, 1.0, VIZ_BLACK); /* the diagonal, crossing the canvas */
    viz_line(c, 30.5, -1e15, 30.5, 1e15, 1.0, VIZ_BLACK);   /* a vertical rule over pixel column 30 */
    viz_line(c, -INFINITY, 5, 20, 5, 1.0, VIZ_BLACK);       /* skipped: not finite */
    viz_line(c, NAN, 5, 20, NAN, 1.0, VIZ_BLACK);
    viz_line(c, 1e300, 1e300, 2e300, 2e300, 1.0, VIZ_BLACK); /* wholly outside */
    viz_line(c, 5, 35, 6, 35, 1e300, VIZ_BLACK);             /* absurd width: clipped too */
    viz_fill_rect(c, -1e300, -1e300, 2e300, 10, (viz_rgb){0x99, 0x99, 0x99});
    viz_fill_rect(c, 0, 0, INFINITY, 10, VIZ_BLACK);          /* skipped */
    double dt = seconds_now() - t0;
    const char *p = tu_path(dir, "clip.png");
    assert_int_equal(viz_canvas_write_png(c, p, NULL, &err), 0);
    viz_canvas_free(c);
    if (dt > 2.0) fail_msg("drawing 8 clipped shapes took %.1f s", dt);
    image im = read_png(p);
    assert_int_equal(im.w, 40);
    assert_true(dark(px(&im, 20, 20)));  /* on the diagonal */
    assert_true(dark(px(&im, 30, 15)));  /* on the vertical rule */
    assert_false(dark(px(&im, 10, 15))); /* neither */
    free(im.rgb);
}

static const char *write_text(const char *name, const char *text, size_t len) {
    const char *p = tu_path(dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return p;
}

static void test_train_log_read(void **state) {
    (void)state;
    const char good[] = "{\"step\":1,\"tokens\":0,\"fvu\":0,\"l0\":0,\"dead_frac\":0}\n"
                        "\n"
                        "{\"tokens\":256,\"fvu\":-0.5,\"l0\":1e300,\"dead_frac\":1,\"lr\":2e-3}\r\n";
    viz_train_log log;
    sae_error err = {0};
    assert_int_equal(viz_train_log_read(&log, write_text("good.jsonl", good, sizeof good - 1), &err), 0);
    assert_int_equal(log.n, 2);
    /* values are kept as written: the figure decides what a log axis shows */
    assert_true(log.tokens[0] == 0 && log.fvu[0] == 0 && log.tokens[1] == 256);
    assert_true(log.fvu[1] == -0.5 && log.l0[1] == 1e300 && log.dead_frac[1] == 1);
    viz_train_log_free(&log);

    static const char nul[] = "{\"tokens\":1,\"fvu\":1,\"l0\":1,\"dead_frac\":0}\n{\"tokens\":2}\0 junk\n";
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
        const char *phrase;
    } bad[] = {
        {"{\"tokens\":1,\"fvu\":1,\"l0\":1,\"dead_frac\":0}\nnot json\n", 0, "line 2 is not a JSON object"},
        {"[1, 2]\n", 0, "line 1 is not a JSON object"},
        {"{\"tokens\":1,\"fvu\":1,\"l0\":1,\"dead_frac\":0} {}\n", 0, "line 1 has text after its JSON object"},
        {"{\"tokens\":1,\"fvu\":\"a\",\"l0\":1,\"dead_frac\":0}\n", 0, "line 1 lacks a number \"fvu\""},
        {"{\"tokens\":1,\"fvu\":1,\"l0\":1}\n", 0, "line 1 lacks a number \"dead_frac\""},
        {"", 0, "no metrics in the log"},
        {"\n  \n", 0, "no metrics in the log"},
        {nul, sizeof nul - 1, "line 2 holds a NUL byte"}, /* cJSON would stop at the NUL */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].text);
        const char *p = write_text("bad.jsonl", bad[i].text, len);
        memset(&err, 0, sizeof err);
        assert_int_equal(viz_train_log_read(&log, p, &err), SAE_ERR_FORMAT);
        if (!strstr(err.msg, bad[i].phrase)) fail_msg("case %zu: '%s', want '%s'", i, err.msg, bad[i].phrase);
        assert_string_equal(err.subject, p);
        assert_true(log.n == 0 && log.tokens == NULL); /* nothing to free on failure */
    }
    memset(&err, 0, sizeof err);
    assert_true(viz_train_log_read(&log, tu_path(dir, "missing.jsonl"), &err) < 0);
    assert_true(viz_train_log_read(&log, dir, &err) < 0); /* a folder */
}

/* The curves of a one-row file's training (fvu 0, tokens 0) and of values no
 * log axis can show render rather than hang. */
static void test_curves_render_any_values(void **state) {
    (void)state;
    double tok[4] = {0, 0, 1e300, -5}, fvu[4] = {0, NAN, INFINITY, -1};
    double l0[4] = {0, 1e308, -1e308, 4}, dead[4] = {0, 0, 1, 1};
    viz_train_log log = {4, tok, fvu, l0, dead};
    viz_render_opts o = {.scale = 0.5, .command = "test_viz"};
    sae_error err = {0};
    const char *p = tu_path(dir, "curves.png");
    double t0 = seconds_now();
    assert_int_equal(viz_render_curves(&log, "zeros", p, &o, &err), 0);
    for (size_t n = 1; n <= 4; n++) {
        log.n = n;
        assert_int_equal(viz_render_curves(&log, NULL, p, &o, &err), 0);
    }
    double dt = seconds_now() - t0;
    if (dt > 10.0) fail_msg("5 small curve figures took %.1f s", dt);
}

/* Every allocation of the log parser failing once: a clean SAE_ERR_NOMEM with
 * a message, nothing leaked (LeakSanitizer checks at exit). 300 lines make the
 * arrays grow twice. */
static void test_train_log_allocation_failure(void **state) {
    (void)state;
    const char *p = tu_path(dir, "long.jsonl");
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    for (int i = 0; i < 300; i++) fprintf(f, "{\"tokens\":%d,\"fvu\":%g,\"l0\":4,\"dead_frac\":0}\n", 256 * i, 1.0 / (i + 1));
    assert_int_equal(fclose(f), 0);
    viz_train_log log;
    sae_error err = {0};
    unsigned long before = sae_mem_count();
    assert_int_equal(viz_train_log_read(&log, p, &err), 0);
    unsigned long n = sae_mem_count() - before;
    assert_int_equal(log.n, 300);
    viz_train_log_free(&log);
    assert_true(n >= 3);
    for (unsigned long k = 0; k < n; k++) {
        memset(&err, 0, sizeof err);
        sae_mem_fail_at((long)k);
        int rc = viz_train_log_read(&log, p, &err);
        sae_mem_fail_at(-1);
        if (rc != SAE_ERR_NOMEM || !err.msg[0]) fail_msg("allocation %lu of %lu failed: rc %d (%s)", k, n, rc, err.msg);
        assert_true(log.n == 0 && log.tokens == NULL);
    }
}

int main(void) {
    dir = tu_tmpdir();
    if (!have_font()) {
        printf("SKIP: no font with Japanese glyphs (apt-get install fonts-noto-cjk)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_viridis_endpoints),
        cmocka_unit_test(test_heatmap_cells_and_colorbar),
        cmocka_unit_test(test_japanese_glyph_has_ink),
        cmocka_unit_test(test_line_clipped_to_canvas),
        cmocka_unit_test(test_train_log_read),
        cmocka_unit_test(test_curves_render_any_values),
        cmocka_unit_test(test_train_log_allocation_failure),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return 1;
    return rc;
}
