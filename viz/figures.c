/* viz/figures.c: layouts of the figures (heatmap, line panels, histogram,
 * shaded text) on top of the canvas primitives. Sizes are in points. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "viz/viz.h"
#include "common/mem.h"

#define TITLE_PT 14.0
#define AXIS_PT 10.5
#define TICK_PT 8.5
#define LABEL_PT 8.0
#define CAPTION_PT 9.5

static const viz_rgb PALETTE[] = {{0x1f, 0x77, 0xb4}, {0xd6, 0x27, 0x28}, {0x2c, 0xa0, 0x2c}, {0xff, 0x7f, 0x0e},
                                  {0x94, 0x67, 0xbd}, {0x8c, 0x56, 0x4b}};

/* a "nice" tick step (1, 2 or 5 times a power of ten) giving about n ticks */
static double nice_step(double range, int n) {
    double raw = range / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void fmt_num(char *buf, size_t cap, double v) {
    if (v == 0) snprintf(buf, cap, "0");
    else if (fabs(v) >= 1e4 || fabs(v) < 1e-3) snprintf(buf, cap, "%.0e", v);
    else snprintf(buf, cap, "%g", v);
}

static double max_width(viz_canvas *c, const char *const *labels, size_t n, double pt, double cap) {
    double w = 0;
    for (size_t i = 0; labels && i < n; i++) w = fmax(w, viz_text_width(c, labels[i], pt));
    return fmin(w, cap);
}

/* vertical colour bar at (x, y) of size (w, h), vmax at the top */
static void colorbar(viz_canvas *c, double x, double y, double w, double h, viz_cmap map, double vmin,
                     double vmax, const char *title, int white_ramp) {
    int steps = (int)lround(h * viz_scale(c)); /* one step per device pixel */
    if (steps < 1) steps = 1;
    for (int i = 0; i < steps; i++) {
        double t = 1.0 - (i + 0.5) / steps;
        viz_rgb col = viz_colormap(map, t);
        if (white_ramp) col = (viz_rgb){(uint8_t)lround(255 + t * (0xb2 - 255)), (uint8_t)lround(255 + t * (0x18 - 255)),
                                        (uint8_t)lround(255 + t * (0x2b - 255))};
        viz_fill_rect(c, x, y + h * i / steps, w, h / steps, col);
    }
    viz_line(c, x, y, x + w, y, 0.5, VIZ_GREY), viz_line(c, x, y + h, x + w, y + h, 0.5, VIZ_GREY);
    viz_line(c, x, y, x, y + h, 0.5, VIZ_GREY), viz_line(c, x + w, y, x + w, y + h, 0.5, VIZ_GREY);
    double step = nice_step(vmax - vmin, 4);
    for (double v = ceil(vmin / step) * step; v <= vmax + step * 1e-9; v += step) {
        double ty = y + h * (1 - (v - vmin) / (vmax - vmin));
        char buf[32];
        fmt_num(buf, sizeof buf, fabs(v) < step * 1e-9 ? 0 : v);
        viz_line(c, x + w, ty, x + w + 3, ty, 0.6, VIZ_BLACK);
        viz_text(c, x + w + 5, ty + TICK_PT * 0.35, buf, TICK_PT, VIZ_BLACK, VIZ_LEFT, 0);
    }
    if (title) viz_text(c, x + w + 40, y + h / 2, title, AXIS_PT, VIZ_BLACK, VIZ_CENTER, 1);
}

static void draw_title(viz_canvas *c, double cx, double y, const char *title) {
    viz_text(c, cx, y, title, TITLE_PT, VIZ_BLACK, VIZ_CENTER, 0);
}

int viz_render_heatmap(const viz_heatmap *h, const char *path, const viz_render_opts *o, sae_error *err) {
    viz_canvas *probe;
    int rc = viz_canvas_new(&probe, 1, 1, 1, o->font, err); /* to measure text */
    if (rc < 0) return rc;
    double big = (double)(h->rows > h->cols ? h->rows : h->cols);
    double cell = fmin(fmax(520.0 / big, 3.0), 28.0);
    double cw = h->cell_w > 0 ? h->cell_w : cell, ch = h->cell_h > 0 ? h->cell_h : cell;
    double lpt = fmin(LABEL_PT, fmax(ch * 0.8, 5.0)), cpt = fmin(LABEL_PT, fmax(cw * 0.8, 5.0));
    double rowlab = h->row_labels ? max_width(probe, h->row_labels, h->rows, lpt, 220) + 6 : 0;
    double collab = !h->col_labels ? 0
                    : h->col_labels_vertical ? max_width(probe, h->col_labels, h->cols, cpt, 120) + 6
                                             : cpt + 6;
    viz_canvas_free(probe);
    double pw = cw * (double)h->cols, ph = ch * (double)h->rows;
    double left = 14 + (h->y_title ? AXIS_PT + 8 : 0) + rowlab, top = 16 + (h->title ? TITLE_PT + 12 : 0);
    double right = 18 + 14 + 40 + (h->cbar_title ? AXIS_PT + 8 : 0);
    double bottom = collab + (h->x_title ? AXIS_PT + 12 : 0) + (h->caption ? CAPTION_PT + 14 : 0) + 12;
    double W = fmax(left + pw + right, 360), H = top + ph + bottom;
    viz_canvas *c;
    if ((rc = viz_canvas_new(&c, W, H, o->scale, o->font, err)) < 0) return rc;
    if (h->title) draw_title(c, W / 2, 16 + TITLE_PT, h->title);
    double span = h->vmax - h->vmin;
    for (size_t i = 0; i < h->rows; i++)
        for (size_t j = 0; j < h->cols; j++) {
            float v = h->values[i * h->cols + j];
            viz_rgb col = isfinite(v) ? viz_colormap(h->cmap, span > 0 ? (v - h->vmin) / span : 0.5) : VIZ_LIGHT;
            viz_fill_rect(c, left + cw * (double)j, top + ch * (double)i, cw, ch, col);
        }
    viz_line(c, left, top, left + pw, top, 0.6, VIZ_GREY), viz_line(c, left, top + ph, left + pw, top + ph, 0.6, VIZ_GREY);
    viz_line(c, left, top, left, top + ph, 0.6, VIZ_GREY), viz_line(c, left + pw, top, left + pw, top + ph, 0.6, VIZ_GREY);
    for (size_t i = 0; h->row_labels && i < h->rows; i++)
        viz_text(c, left - 4, top + ch * ((double)i + 0.5) + lpt * 0.35, h->row_labels[i], lpt, VIZ_BLACK, VIZ_RIGHT, 0);
    for (size_t j = 0; h->col_labels && j < h->cols; j++) {
        double x = left + cw * ((double)j + 0.5);
        if (h->col_labels_vertical) viz_text(c, x + cpt * 0.35, top + ph + 4, h->col_labels[j], cpt, VIZ_BLACK, VIZ_RIGHT, 1);
        else viz_text(c, x, top + ph + 4 + cpt, h->col_labels[j], cpt, VIZ_BLACK, VIZ_CENTER, 0);
    }
    if (h->y_title) viz_text(c, 14 + AXIS_PT, top + ph / 2, h->y_title, AXIS_PT, VIZ_BLACK, VIZ_CENTER, 1);
    double yb = top + ph + collab;
    if (h->x_title) viz_text(c, left + pw / 2, yb + AXIS_PT + 6, h->x_title, AXIS_PT, VIZ_BLACK, VIZ_CENTER, 0), yb += AXIS_PT + 12;
    if (h->caption) viz_text(c, W / 2, yb + CAPTION_PT + 8, h->caption, CAPTION_PT, VIZ_GREY, VIZ_CENTER, 0);
    colorbar(c, left + pw + 18, top, 12, fmax(ph, 60), h->cmap, h->vmin, h->vmax, h->cbar_title, 0);
    rc = viz_canvas_write_png(c, path, o->command, err);
    viz_canvas_free(c);
    return rc;
}

/* --- line panels ------------------------------------------------------------------ */
static double tx(double v, int logx) { return logx ? log10(v) : v; }

/* A point an axis can show: finite, positive on a log axis, and not so large
 * that spans between points overflow. */
static int plottable(double v, int logx) { return isfinite(v) && fabs(v) <= 1e300 && (!logx || v > 0); }

/* Makes [*lo, *hi] a finite range wide enough for ticks to advance: no data
 * gives [0, 1] (one decade on a log axis), a constant series a band around
 * it, or the foot of [0, 1] when it is 0 on a linear axis. */
static void fix_range(double *lo, double *hi, int logx) {
    if (!(*lo <= *hi)) *lo = 0, *hi = 1; /* no plottable point */
    if (!(*hi - *lo > 1e-9 * fmax(fabs(*lo), fabs(*hi)))) {
        if (!logx && *lo == 0) *hi = 1;
        else {
            double h = fabs(*lo) * 0.1 + (*lo == 0);
            *lo -= h, *hi += h;
        }
    }
}

int viz_render_lines(const viz_lines *l, const char *path, const viz_render_opts *o, sae_error *err) {
    const double pw = 520, ph = 150, left = 70, right = 24, gap = 26;
    double top = 16 + (l->title ? TITLE_PT + 12 : 0);
    double H = top + (ph + gap) * (double)l->n_panels + AXIS_PT + 28, W = left + pw + right;
    viz_canvas *c;
    int rc = viz_canvas_new(&c, W, H, o->scale, o->font, err);
    if (rc < 0) return rc;
    if (l->title) draw_title(c, W / 2, 16 + TITLE_PT, l->title);
    for (size_t p = 0; p < l->n_panels; p++) {
        const viz_panel *pn = &l->panels[p];
        double y0 = top + (ph + gap) * (double)p;
        double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
        for (size_t s = 0; s < pn->n_series; s++)
            for (size_t i = 0; i < pn->series[s].n; i++) {
                double x = pn->series[s].x[i], y = pn->series[s].y[i];
                if (!plottable(x, pn->log_x) || !plottable(y, pn->log_y)) continue;
                xmin = fmin(xmin, tx(x, pn->log_x)), xmax = fmax(xmax, tx(x, pn->log_x));
                ymin = fmin(ymin, tx(y, pn->log_y)), ymax = fmax(ymax, tx(y, pn->log_y));
            }
        if (!(xmax >= xmin)) xmin = 0, xmax = 1;
        else if (!(xmax > xmin)) xmax = xmin + 1;
        if (!(xmax - xmin > 1e-9 * fmax(fabs(xmin), fabs(xmax)))) fix_range(&xmin, &xmax, pn->log_x);
        fix_range(&ymin, &ymax, pn->log_y);
        if (!pn->log_y && ymin > 0 && ymin < 0.5 * ymax) ymin = 0; /* start linear axes at 0 when close */
        double pad = (ymax - ymin) * 0.05;
        ymin -= pn->log_y ? 0 : (ymin == 0 ? 0 : pad), ymax += pad;
        viz_fill_rect(c, left, y0, pw, ph, (viz_rgb){0xfa, 0xfa, 0xfa});
        /* grid and ticks */
        double xs = pn->log_x ? 1 : nice_step(xmax - xmin, 6), ys = pn->log_y ? 1 : nice_step(ymax - ymin, 4);
        /* ticks by index, at most 64: a step too small to advance v cannot loop */
        for (int k = 0; k < 64; k++) {
            double v = ceil(xmin / xs) * xs + k * xs;
            if (!(v <= xmax + 1e-9)) break;
            double x = left + pw * (v - xmin) / (xmax - xmin);
            viz_line(c, x, y0, x, y0 + ph, 0.4, VIZ_LIGHT);
            if (p + 1 == l->n_panels) {
                char buf[32];
                if (pn->log_x) snprintf(buf, sizeof buf, "1e%d", (int)lround(v));
                else fmt_num(buf, sizeof buf, v);
                viz_text(c, x, y0 + ph + TICK_PT + 4, buf, TICK_PT, VIZ_BLACK, VIZ_CENTER, 0);
            }
        }
        double yt[64];
        size_t nyt = 0;
        if (pn->log_y) { /* 1-2-5 ticks, or every digit when the range is under a decade */
            static const double M125[] = {1, 2, 5}, M19[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
            for (int pass = 0; pass < 2 && nyt < 3; pass++) {
                const double *mant = pass ? M19 : M125;
                size_t nm = pass ? 9 : 3;
                nyt = 0;
                /* |ymin|, |ymax| <= 301 (log10 of plottable values) */
                for (double e = floor(ymin); e <= ceil(ymax) && nyt < 64; e++)
                    for (size_t k = 0; k < nm && nyt < 64; k++) {
                        double lv = log10(mant[k]) + e;
                        if (lv >= ymin - 1e-9 && lv <= ymax + 1e-9) yt[nyt++] = lv;
                    }
            }
        } else {
            for (int k = 0; k < 64; k++) {
                double v = ceil(ymin / ys) * ys + k * ys;
                if (!(v <= ymax + 1e-9)) break;
                yt[nyt++] = v;
            }
        }
        for (size_t k = 0; k < nyt; k++) {
            double v = yt[k], y = y0 + ph * (1 - (v - ymin) / (ymax - ymin));
            viz_line(c, left, y, left + pw, y, 0.4, VIZ_LIGHT);
            char buf[32];
            fmt_num(buf, sizeof buf, pn->log_y ? pow(10, v) : (fabs(v) < ys * 1e-9 ? 0 : v));
            viz_text(c, left - 5, y + TICK_PT * 0.35, buf, TICK_PT, VIZ_BLACK, VIZ_RIGHT, 0);
        }
        viz_line(c, left, y0 + ph, left + pw, y0 + ph, 0.8, VIZ_BLACK);
        viz_line(c, left, y0, left, y0 + ph, 0.8, VIZ_BLACK);
        for (size_t s = 0; s < pn->n_series; s++) {
            const viz_series *se = &pn->series[s];
            viz_rgb col = PALETTE[s % 6];
            double px = NAN, py = NAN;
            for (size_t i = 0; i < se->n; i++) {
                double x = se->x[i], y = se->y[i];
                if (!plottable(x, pn->log_x) || !plottable(y, pn->log_y)) {
                    px = NAN;
                    continue;
                }
                double qx = left + pw * (tx(x, pn->log_x) - xmin) / (xmax - xmin);
                double qy = y0 + ph * (1 - (tx(y, pn->log_y) - ymin) / (ymax - ymin));
                if (isfinite(px)) viz_line(c, px, py, qx, qy, 1.4, col);
                px = qx, py = qy;
            }
            if (pn->n_series > 1 && se->name) {
                double ly = y0 + 12 + 12 * (double)s;
                viz_line(c, left + pw - 110, ly - 3, left + pw - 92, ly - 3, 1.6, col);
                viz_text(c, left + pw - 88, ly, se->name, TICK_PT, VIZ_BLACK, VIZ_LEFT, 0);
            }
        }
        if (pn->y_title) viz_text(c, 16, y0 + ph / 2, pn->y_title, AXIS_PT, VIZ_BLACK, VIZ_CENTER, 1);
    }
    if (l->x_title) viz_text(c, left + pw / 2, H - 10, l->x_title, AXIS_PT, VIZ_BLACK, VIZ_CENTER, 0);
    rc = viz_canvas_write_png(c, path, o->command, err);
    viz_canvas_free(c);
    return rc;
}

/* --- histogram ---------------------------------------------------------------------- */
int viz_render_bars(const viz_bars *b, const char *path, const viz_render_opts *o, sae_error *err) {
    const double pw = 520, ph = 260, left = 70, right = 24;
    double top = 16 + (b->title ? TITLE_PT + 12 : 0);
    double W = left + pw + right, H = top + ph + TICK_PT + AXIS_PT + 30 + (b->caption ? CAPTION_PT + 12 : 0);
    viz_canvas *c;
    int rc = viz_canvas_new(&c, W, H, o->scale, o->font, err);
    if (rc < 0) return rc;
    if (b->title) draw_title(c, W / 2, 16 + TITLE_PT, b->title);
    double xmin = b->edges[0], xmax = b->edges[b->n], ymax = 0;
    for (size_t i = 0; i < b->n; i++) ymax = fmax(ymax, b->counts[i]);
    if (!(xmax > xmin)) xmax = xmin + 1;
    if (!(ymax > 0)) ymax = 1;
    double ys = nice_step(ymax, 4);
    ymax = ceil(ymax * 1.05 / ys) * ys;
    viz_fill_rect(c, left, top, pw, ph, (viz_rgb){0xfa, 0xfa, 0xfa});
    for (double v = 0; v <= ymax + 1e-9; v += ys) {
        double y = top + ph * (1 - v / ymax);
        char buf[32];
        viz_line(c, left, y, left + pw, y, 0.4, VIZ_LIGHT);
        fmt_num(buf, sizeof buf, v);
        viz_text(c, left - 5, y + TICK_PT * 0.35, buf, TICK_PT, VIZ_BLACK, VIZ_RIGHT, 0);
    }
    viz_rgb bar = viz_colormap(VIZ_CMAP_VIRIDIS, 0.35);
    for (size_t i = 0; i < b->n; i++) {
        double x0 = left + pw * (b->edges[i] - xmin) / (xmax - xmin), x1 = left + pw * (b->edges[i + 1] - xmin) / (xmax - xmin);
        double hgt = ph * b->counts[i] / ymax;
        viz_fill_rect(c, x0 + 0.5, top + ph - hgt, fmax(x1 - x0 - 1, 0.5), hgt, bar);
    }
    double xs = nice_step(xmax - xmin, 6);
    for (double v = ceil(xmin / xs) * xs; v <= xmax + 1e-9; v += xs) {
        double x = left + pw * (v - xmin) / (xmax - xmin);
        char buf[32];
        fmt_num(buf, sizeof buf, fabs(v) < xs * 1e-9 ? 0 : v);
        viz_line(c, x, top + ph, x, top + ph + 3, 0.6, VIZ_BLACK);
        viz_text(c, x, top + ph + TICK_PT + 5, buf, TICK_PT, VIZ_BLACK, VIZ_CENTER, 0);
    }
    viz_line(c, left, top + ph, left + pw, top + ph, 0.8, VIZ_BLACK);
    viz_line(c, left, top, left, top + ph, 0.8, VIZ_BLACK);
    if (b->y_title) viz_text(c, 16, top + ph / 2, b->y_title, AXIS_PT, VIZ_BLACK, VIZ_CENTER, 1);
    if (b->x_title) viz_text(c, left + pw / 2, top + ph + TICK_PT + AXIS_PT + 14, b->x_title, AXIS_PT, VIZ_BLACK, VIZ_CENTER, 0);
    if (b->caption) viz_text(c, W / 2, H - 10, b->caption, CAPTION_PT, VIZ_GREY, VIZ_CENTER, 0);
    rc = viz_canvas_write_png(c, path, o->command, err);
    viz_canvas_free(c);
    return rc;
}

/* --- shaded text ----------------------------------------------------------------------- */
int viz_render_text(const viz_shaded_text *t, const char *path, const viz_render_opts *o, sae_error *err) {
    const double pt = 13, line_h = 22, margin = 24;
    double width = t->width_pt > 0 ? t->width_pt : 560;
    viz_canvas *probe;
    int rc = viz_canvas_new(&probe, 1, 1, 1, o->font, err);
    if (rc < 0) return rc;
    /* lay out: tokens flow left to right, a token that does not fit starts a
     * new line, "\n" tokens break lines */
    double *tx0 = sae_malloc(t->n * sizeof *tx0), *ty0 = sae_malloc(t->n * sizeof *ty0), *tw = sae_malloc(t->n * sizeof *tw);
    if (!tx0 || !ty0 || !tw) {
        viz_canvas_free(probe);
        sae_free(tx0), sae_free(ty0), sae_free(tw);
        return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    }
    double x = 0, y = 0;
    for (size_t i = 0; i < t->n; i++) {
        int nl = strcmp(t->tokens[i], "\n") == 0;
        tw[i] = nl ? viz_text_width(probe, "⏎", pt) : viz_text_width(probe, t->tokens[i], pt);
        if (x > 0 && x + tw[i] > width) x = 0, y += line_h;
        tx0[i] = x, ty0[i] = y;
        x += tw[i];
        if (nl) x = 0, y += line_h;
    }
    viz_canvas_free(probe);
    double top = margin + (t->title ? TITLE_PT + 14 : 0);
    double W = width + 2 * margin, H = top + y + line_h + 70 + (t->caption ? CAPTION_PT + 10 : 0);
    viz_canvas *c;
    if ((rc = viz_canvas_new(&c, W, H, o->scale, o->font, err)) == SAE_OK) {
        if (t->title) draw_title(c, W / 2, margin + TITLE_PT, t->title);
        for (size_t i = 0; i < t->n; i++) {
            double v = t->vmax > 0 ? t->values[i] / t->vmax : 0;
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            viz_rgb bg = {(uint8_t)lround(255 + v * (0xb2 - 255) * 0.9), (uint8_t)lround(255 + v * (0x18 - 255) * 0.9),
                          (uint8_t)lround(255 + v * (0x2b - 255) * 0.9)};
            if (v > 0) viz_fill_rect(c, margin + tx0[i], top + ty0[i], tw[i], line_h - 3, bg);
            int nl = strcmp(t->tokens[i], "\n") == 0;
            viz_text(c, margin + tx0[i], top + ty0[i] + pt + 1, nl ? "⏎" : t->tokens[i], pt,
                     v > 0.6 ? VIZ_WHITE : (nl ? VIZ_GREY : VIZ_BLACK), VIZ_LEFT, 0);
        }
        /* horizontal colour bar */
        double by = top + y + line_h + 16, bw = 200, bx = W - margin - bw;
        int steps = (int)lround(bw * viz_scale(c));
        for (int i = 0; i < steps; i++) {
            double v = (i + 0.5) / steps;
            viz_rgb col = {(uint8_t)lround(255 + v * (0xb2 - 255) * 0.9), (uint8_t)lround(255 + v * (0x18 - 255) * 0.9),
                           (uint8_t)lround(255 + v * (0x2b - 255) * 0.9)};
            viz_fill_rect(c, bx + bw * i / steps, by, bw / steps, 10, col);
        }
        char buf[64];
        viz_text(c, bx, by + 10 + TICK_PT + 3, "0", TICK_PT, VIZ_BLACK, VIZ_CENTER, 0);
        snprintf(buf, sizeof buf, "%.3g", t->vmax);
        viz_text(c, bx + bw, by + 10 + TICK_PT + 3, buf, TICK_PT, VIZ_BLACK, VIZ_CENTER, 0);
        if (t->cbar_title) viz_text(c, bx - 8, by + 9, t->cbar_title, TICK_PT, VIZ_BLACK, VIZ_RIGHT, 0);
        if (t->caption) viz_text(c, margin, H - 12, t->caption, CAPTION_PT, VIZ_GREY, VIZ_LEFT, 0);
        rc = viz_canvas_write_png(c, path, o->command, err);
        viz_canvas_free(c);
    }
    sae_free(tx0), sae_free(ty0), sae_free(tw);
    return rc;
}
