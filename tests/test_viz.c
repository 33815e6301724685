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
#include <cmocka.h>

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
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return 1;
    return rc;
}
