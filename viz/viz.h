/* viz/viz.h: publication figures as PNG, drawn by the toolkit itself.
 *
 * A canvas is an RGB image measured in points; --scale sets pixels per point
 * (2 for high-DPI). Text is FreeType-rendered, anti-aliased, from a font found
 * through fontconfig (one that has Japanese glyphs, e.g. Noto Sans CJK) or
 * given by path. The same inputs always give the same bytes: no timestamps,
 * fixed compression; the command line goes into a PNG text chunk.
 *
 * viz/ knows nothing of SAEs or features: figures take plain matrices, series
 * and strings; cli/ wires the toolkit's files to them.
 *
 *     viz_canvas *c;
 *     viz_canvas_new(&c, 400, 300, 2.0, NULL, &err);
 *     viz_text(c, 200, 20, "みかん", 12, VIZ_BLACK, VIZ_CENTER, 0);
 *     viz_canvas_write_png(c, "out.png", "sae viz ...", &err);
 *     viz_canvas_free(c);
 */
#ifndef SAE_VIZ_H
#define SAE_VIZ_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct viz_rgb {
    uint8_t r, g, b;
} viz_rgb;

#define VIZ_BLACK ((viz_rgb){0x22, 0x22, 0x22})
#define VIZ_GREY ((viz_rgb){0x77, 0x77, 0x77})
#define VIZ_LIGHT ((viz_rgb){0xdd, 0xdd, 0xdd})
#define VIZ_WHITE ((viz_rgb){0xff, 0xff, 0xff})
enum { VIZ_LEFT = -1, VIZ_CENTER = 0, VIZ_RIGHT = 1 };

typedef struct viz_canvas viz_canvas;

/* font: a font file, or NULL to ask fontconfig for a sans-serif font with
 * Japanese glyphs. */
int viz_canvas_new(viz_canvas **out, double w_pt, double h_pt, double scale, const char *font,
                   sae_error *err);
void viz_canvas_free(viz_canvas *c);
const char *viz_canvas_font(const viz_canvas *c);
double viz_scale(const viz_canvas *c); /* pixels per point */

/* solid fill, edges snapped to whole pixels (cells tile without seams) */
void viz_fill_rect(viz_canvas *c, double x, double y, double w, double h, viz_rgb col);
/* a straight line of the given width in points (anti-aliased by coverage) */
void viz_line(viz_canvas *c, double x0, double y0, double x1, double y1, double width, viz_rgb col);
/* Draws UTF-8 text with its baseline at y; align is relative to x; rotate 90
 * draws it bottom to top with the baseline at x. Returns the advance in points. */
double viz_text(viz_canvas *c, double x, double y, const char *utf8, double size_pt, viz_rgb col,
                int align, int rotate);
double viz_text_width(viz_canvas *c, const char *utf8, double size_pt);
/* 1 if the font has a glyph for every code point of utf8 */
int viz_font_covers(viz_canvas *c, const char *utf8);

/* Written to a temporary name and renamed; the command line in a tEXt chunk. */
int viz_canvas_write_png(viz_canvas *c, const char *path, const char *command, sae_error *err);

/* --- colour maps ---------------------------------------------------------------
 * viridis: the published 256-entry table, interpolated linearly.
 * rdbu: ColorBrewer's 11-class RdBu reversed (blue = -1, white = 0, red = +1),
 * interpolated linearly between its published control points. */
typedef enum { VIZ_CMAP_VIRIDIS = 0, VIZ_CMAP_RDBU = 1 } viz_cmap;
viz_rgb viz_colormap(viz_cmap map, double t); /* t in [0, 1], clamped */

/* --- figures ----------------------------------------------------------------------- */
typedef struct viz_heatmap {
    const char *title, *caption;      /* caption: a line under the figure, may be NULL */
    const char *x_title, *y_title, *cbar_title;
    const float *values;              /* (rows, cols) */
    size_t rows, cols;
    const char *const *row_labels;    /* rows strings, or NULL */
    const char *const *col_labels;    /* cols strings, or NULL */
    int col_labels_vertical;          /* column labels written bottom to top */
    double vmin, vmax;
    viz_cmap cmap;
    double cell_w, cell_h;            /* points; 0 = automatic */
} viz_heatmap;

typedef struct viz_series {
    const char *name;
    const double *x, *y;
    size_t n;
} viz_series;

typedef struct viz_panel {
    const char *y_title;
    const viz_series *series;
    size_t n_series;
    int log_x, log_y;
} viz_panel;

typedef struct viz_lines {
    const char *title, *x_title;
    const viz_panel *panels;
    size_t n_panels;                  /* stacked vertically, sharing x */
} viz_lines;

typedef struct viz_bars {
    const char *title, *x_title, *y_title, *caption;
    const double *edges;              /* n + 1 bin edges */
    const double *counts;             /* n */
    size_t n;
} viz_bars;

typedef struct viz_shaded_text {
    const char *title, *caption, *cbar_title;
    const char *const *tokens;        /* n token strings, shown one after another */
    const float *values;              /* n */
    size_t n;
    double vmax;                      /* colour scale 0 .. vmax */
    double width_pt;                  /* text column width */
} viz_shaded_text;

typedef struct viz_render_opts {
    double scale;
    const char *font;    /* NULL: fontconfig */
    const char *command; /* stored in the PNG */
} viz_render_opts;

int viz_render_heatmap(const viz_heatmap *h, const char *path, const viz_render_opts *o, sae_error *err);
int viz_render_lines(const viz_lines *l, const char *path, const viz_render_opts *o, sae_error *err);
int viz_render_bars(const viz_bars *b, const char *path, const viz_render_opts *o, sae_error *err);
int viz_render_text(const viz_shaded_text *t, const char *path, const viz_render_opts *o, sae_error *err);

/* --- training logs ------------------------------------------------------------------
 * `sae train --log` writes one JSON object per line; the curves figure needs
 * its tokens, fvu, l0 and dead_frac. viz_train_log_read takes every non-blank
 * line (each must be exactly one object with those four numbers; the error
 * names the file and line) into n-long arrays, values as written. Line panels
 * skip points a log axis cannot show (<= 0, non-finite), so any log renders. */
typedef struct viz_train_log {
    size_t n;
    double *tokens, *fvu, *l0, *dead_frac;
} viz_train_log;

int viz_train_log_read(viz_train_log *out, const char *path, sae_error *err);
void viz_train_log_free(viz_train_log *log);
/* FVU (log-log), L0 and the dead fraction against tokens, stacked. */
int viz_render_curves(const viz_train_log *log, const char *title, const char *path, const viz_render_opts *o,
                      sae_error *err);

#endif
