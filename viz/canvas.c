/* viz/canvas.c: the RGB canvas, FreeType text, colour maps, and the one place
 * that talks to libpng. */
#include <fontconfig/fontconfig.h>
#include <ft2build.h>
#include FT_FREETYPE_H
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileutil.h"
#include "common/mem.h"
#include "viz/viz.h"

struct viz_canvas {
    int w, h;      /* pixels */
    double scale;  /* pixels per point */
    uint8_t *rgb;  /* (h, w, 3) */
    FT_Library ft;
    FT_Face face;
    char font[1024];
};

/* --- fonts ------------------------------------------------------------------ */
static int find_font(char *out, size_t cap) {
    if (!FcInit()) return -1;
    /* a sans-serif face whose charset has ん: Japanese labels must never be tofu */
    const char *queries[] = {"sans-serif:lang=ja", "Noto Sans CJK JP", "sans-serif"};
    int found = -1;
    for (size_t q = 0; q < 3 && found < 0; q++) {
        FcPattern *p = FcNameParse((const FcChar8 *)queries[q]);
        FcConfigSubstitute(NULL, p, FcMatchPattern);
        FcDefaultSubstitute(p);
        FcResult r;
        FcPattern *m = FcFontMatch(NULL, p, &r);
        FcChar8 *file = NULL;
        FcCharSet *cs = NULL;
        if (m && FcPatternGetString(m, FC_FILE, 0, &file) == FcResultMatch &&
            FcPatternGetCharSet(m, FC_CHARSET, 0, &cs) == FcResultMatch && FcCharSetHasChar(cs, 0x3093)) {
            snprintf(out, cap, "%s", (const char *)file);
            found = 0;
        }
        if (m) FcPatternDestroy(m);
        FcPatternDestroy(p);
    }
    FcFini(); /* only the path is kept: release fontconfig's caches */
    return found;
}

int viz_canvas_new(viz_canvas **out, double w_pt, double h_pt, double scale, const char *font,
                   sae_error *err) {
    *out = NULL;
    if (!(scale > 0 && scale <= 8)) return sae_error_set(err, SAE_ERR_ARG, "--scale", "must be in (0, 8]");
    viz_canvas *c = sae_calloc_n(1, sizeof *c);
    if (!c) return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory");
    c->scale = scale;
    c->w = (int)ceil(w_pt * scale), c->h = (int)ceil(h_pt * scale);
    int w = c->w, h = c->h;
    if (w < 1 || h < 1 || (double)w * h > 4e8) {
        sae_free(c);
        return sae_error_set(err, SAE_ERR_ARG, NULL, "figure size %dx%d pixels is out of range", w, h);
    }
    c->rgb = sae_malloc((size_t)w * (size_t)h * 3);
    if (!c->rgb) {
        sae_free(c);
        return sae_error_set(err, SAE_ERR_NOMEM, NULL, "out of memory for a %dx%d figure", w, h);
    }
    memset(c->rgb, 0xff, (size_t)c->w * (size_t)c->h * 3);
    if (font) snprintf(c->font, sizeof c->font, "%s", font);
    else if (find_font(c->font, sizeof c->font) != 0) {
        viz_canvas_free(c);
        return sae_error_set(err, SAE_ERR_IO, "font",
                             "no font with Japanese glyphs found through fontconfig; install "
                             "fonts-noto-cjk or pass --font PATH");
    }
    if (FT_Init_FreeType(&c->ft) != 0 || FT_New_Face(c->ft, c->font, 0, &c->face) != 0) {
        int had_ft = c->ft != NULL;
        sae_error_set(err, SAE_ERR_IO, c->font, "not a font FreeType can read");
        if (!had_ft) c->ft = NULL;
        viz_canvas_free(c);
        return SAE_ERR_IO;
    }
    *out = c;
    return SAE_OK;
}

void viz_canvas_free(viz_canvas *c) {
    if (!c) return;
    if (c->face) FT_Done_Face(c->face);
    if (c->ft) FT_Done_FreeType(c->ft);
    sae_free(c->rgb);
    sae_free(c);
}

const char *viz_canvas_font(const viz_canvas *c) { return c->font; }

/* --- pixels ----------------------------------------------------------------- */
static void blend(viz_canvas *c, int x, int y, viz_rgb col, double a) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h || a <= 0) return;
    if (a > 1) a = 1;
    uint8_t *p = c->rgb + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    p[0] = (uint8_t)lround(p[0] + (col.r - p[0]) * a);
    p[1] = (uint8_t)lround(p[1] + (col.g - p[1]) * a);
    p[2] = (uint8_t)lround(p[2] + (col.b - p[2]) * a);
}

/* A pixel coordinate clamped to [-1, limit + 1]: drawing loops then run over
 * the canvas at most, whatever the input (NaN and +-Inf included), and no
 * conversion to an integer can overflow. */
static double clampc(double v, int limit) {
    if (!(v > -1.0)) return -1.0; /* NaN lands here too */
    return v < limit + 1.0 ? v : limit + 1.0;
}

void viz_fill_rect(viz_canvas *c, double x, double y, double w, double h, viz_rgb col) {
    /* fills snap to whole pixels: adjacent cells and colour-bar steps tile
     * exactly, with no seams of background between them */
    if (!(isfinite(x) && isfinite(y) && isfinite(w) && isfinite(h))) return;
    long x0 = lround(clampc(x * c->scale, c->w)), y0 = lround(clampc(y * c->scale, c->h));
    long x1 = lround(clampc((x + w) * c->scale, c->w)), y1 = lround(clampc((y + h) * c->scale, c->h));
    if (x1 == x0 && w > 0) x1 = x0 + 1;
    if (y1 == y0 && h > 0) y1 = y0 + 1;
    for (long py = y0; py < y1; py++)
        for (long px = x0; px < x1; px++) blend(c, (int)px, (int)py, col, 1.0);
}

double viz_scale(const viz_canvas *c) { return c->scale; }

/* anti-aliased rectangle: exact pixel coverage at the edges, for thin rules */
static void rect_aa(viz_canvas *c, double x, double y, double w, double h, viz_rgb col) {
    double x0 = clampc(x * c->scale, c->w), y0 = clampc(y * c->scale, c->h);
    double x1 = clampc((x + w) * c->scale, c->w), y1 = clampc((y + h) * c->scale, c->h);
    for (int py = (int)floor(y0); py < (int)ceil(y1); py++) {
        double cy = fmin(py + 1, y1) - fmax(py, y0);
        for (int px = (int)floor(x0); px < (int)ceil(x1); px++) {
            double cx = fmin(px + 1, x1) - fmax(px, x0);
            blend(c, px, py, col, cx * cy);
        }
    }
}

/* Liang-Barsky: clips the segment (x0,y0)-(x1,y1) to [lo, hi] in x and y
 * (points); 0 when nothing of it is inside. */
static int clip_segment(double *x0, double *y0, double *x1, double *y1, double xlo, double xhi, double ylo,
                        double yhi) {
    double dx = *x1 - *x0, dy = *y1 - *y0, t0 = 0.0, t1 = 1.0;
    double p[4] = {-dx, dx, -dy, dy}, q[4] = {*x0 - xlo, xhi - *x0, *y0 - ylo, yhi - *y0};
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0.0) {
            if (q[i] < 0.0) return 0;
            continue;
        }
        double t = q[i] / p[i];
        if (p[i] < 0.0) t0 = t > t0 ? t : t0;
        else t1 = t < t1 ? t : t1;
    }
    if (!(t0 <= t1)) return 0;
    double ax = *x0 + t0 * dx, ay = *y0 + t0 * dy, bx = *x0 + t1 * dx, by = *y0 + t1 * dy;
    *x0 = ax, *y0 = ay, *x1 = bx, *y1 = by;
    return isfinite(ax) && isfinite(ay) && isfinite(bx) && isfinite(by);
}

void viz_line(viz_canvas *c, double x0, double y0, double x1, double y1, double width, viz_rgb col) {
    /* Clipped to the canvas (plus the line's width) first, so the loops below
     * cover at most the canvas whatever the coordinates: an unclipped
     * log10(0) = -Inf once reached this rasteriser and hung it. */
    if (!(isfinite(x0) && isfinite(y0) && isfinite(x1) && isfinite(y1) && isfinite(width) && width > 0)) return;
    double m = width + 2.0, W = c->w / c->scale, H = c->h / c->scale;
    if (!clip_segment(&x0, &y0, &x1, &y1, -m, W + m, -m, H + m)) return;
    if (x0 == x1 || y0 == y1) { /* axis-aligned: a rectangle */
        double hw = width / 2;
        if (y0 == y1) rect_aa(c, fmin(x0, x1), y0 - hw, fabs(x1 - x0), width, col);
        else rect_aa(c, x0 - hw, fmin(y0, y1), width, fabs(y1 - y0), col);
        return;
    }
    /* general: coverage from the distance to the segment, 4x4 supersampled */
    double s = c->scale, ax = x0 * s, ay = y0 * s, bx = x1 * s, by = y1 * s, hw = width * s / 2;
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    if (len2 == 0.0) return;
    int minx = (int)floor(clampc(fmin(ax, bx) - hw - 1, c->w)), maxx = (int)ceil(clampc(fmax(ax, bx) + hw + 1, c->w));
    int miny = (int)floor(clampc(fmin(ay, by) - hw - 1, c->h)), maxy = (int)ceil(clampc(fmax(ay, by) + hw + 1, c->h));
    for (int py = miny; py <= maxy; py++)
        for (int px = minx; px <= maxx; px++) {
            int in = 0;
            for (int sy = 0; sy < 4; sy++)
                for (int sx = 0; sx < 4; sx++) {
                    double qx = px + (sx + 0.5) / 4, qy = py + (sy + 0.5) / 4;
                    double t = ((qx - ax) * dx + (qy - ay) * dy) / len2;
                    t = t < 0 ? 0 : t > 1 ? 1 : t;
                    double ex = ax + t * dx - qx, ey = ay + t * dy - qy;
                    in += ex * ex + ey * ey <= hw * hw;
                }
            blend(c, px, py, col, in / 16.0);
        }
}

/* --- text ------------------------------------------------------------------- */
static uint32_t next_cp(const char **s) {
    const unsigned char *u = (const unsigned char *)*s;
    uint32_t cp;
    int n;
    if (u[0] < 0x80) cp = u[0], n = 1;
    else if ((u[0] & 0xE0) == 0xC0) cp = u[0] & 0x1F, n = 2;
    else if ((u[0] & 0xF0) == 0xE0) cp = u[0] & 0x0F, n = 3;
    else cp = u[0] & 0x07, n = 4;
    for (int i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80) { /* broken UTF-8: show U+FFFD, resync */
            *s += i;
            return 0xFFFD;
        }
        cp = (cp << 6) | (u[i] & 0x3F);
    }
    *s += n;
    return cp;
}

static void set_size(viz_canvas *c, double size_pt) {
    FT_Set_Char_Size(c->face, 0, (FT_F26Dot6)lround(size_pt * 64), (FT_UInt)lround(72 * c->scale),
                     (FT_UInt)lround(72 * c->scale));
}

double viz_text_width(viz_canvas *c, const char *utf8, double size_pt) {
    set_size(c, size_pt);
    double w = 0;
    for (const char *s = utf8; *s;) {
        uint32_t cp = next_cp(&s);
        if (FT_Load_Char(c->face, cp, FT_LOAD_DEFAULT) == 0) w += c->face->glyph->advance.x / 64.0;
    }
    return w / c->scale;
}

int viz_font_covers(viz_canvas *c, const char *utf8) {
    for (const char *s = utf8; *s;)
        if (FT_Get_Char_Index(c->face, next_cp(&s)) == 0) return 0;
    return 1;
}

double viz_text(viz_canvas *c, double x, double y, const char *utf8, double size_pt, viz_rgb col,
                int align, int rotate) {
    double w = viz_text_width(c, utf8, size_pt); /* also sets the size */
    double start = align == VIZ_LEFT ? 0 : align == VIZ_CENTER ? -w / 2 : -w;
    double pen = start * c->scale; /* along the baseline, pixels */
    double ox = x * c->scale, oy = y * c->scale;
    for (const char *s = utf8; *s;) {
        uint32_t cp = next_cp(&s);
        if (FT_Load_Char(c->face, cp, FT_LOAD_RENDER) != 0) continue;
        FT_GlyphSlot g = c->face->glyph;
        FT_Bitmap *b = &g->bitmap;
        for (unsigned r = 0; r < b->rows; r++)
            for (unsigned q = 0; q < b->width; q++) {
                double a = b->buffer[r * (unsigned)b->pitch + q] / 255.0;
                if (a <= 0) continue;
                /* glyph coordinates: u along the baseline, v up from it */
                double u = pen + g->bitmap_left + q, v = g->bitmap_top - (double)r;
                int px, py;
                if (rotate) px = (int)lround(ox - v), py = (int)lround(oy - u);
                else px = (int)lround(ox + u), py = (int)lround(oy - v);
                blend(c, px, py, col, a);
            }
        pen += g->advance.x / 64.0;
    }
    return w;
}

/* --- PNG ---------------------------------------------------------------------- */
int viz_canvas_write_png(viz_canvas *c, const char *path, const char *command, sae_error *err) {
    char tmp[4200];
    int rc = sae_tmp_path(tmp, sizeof tmp, path, err);
    if (rc < 0) return rc;
    FILE *f = fopen(tmp, "wb");
    if (!f) return sae_error_set(err, SAE_ERR_IO, path, "cannot create the output");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        remove(tmp);
        return sae_error_set(err, SAE_ERR_IO, path, "cannot write the PNG (disk full?)");
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)c->w, (png_uint_32)c->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 9);
    /* pixels per metre: 72 dpi times the scale, so viewers size it right */
    png_uint_32 ppm = (png_uint_32)lround(72.0 * c->scale / 0.0254);
    png_set_pHYs(png, info, ppm, ppm, PNG_RESOLUTION_METER);
    png_text text[2];
    memset(text, 0, sizeof text);
    text[0].compression = PNG_TEXT_COMPRESSION_NONE;
    text[0].key = (char *)"Software";
    text[0].text = (char *)"sae (sparse autoencoder toolkit)";
    text[1].compression = PNG_TEXT_COMPRESSION_NONE;
    text[1].key = (char *)"Comment";
    text[1].text = (char *)(command ? command : "");
    png_set_text(png, info, text, 2);
    png_write_info(png, info);
    for (int y = 0; y < c->h; y++) png_write_row(png, c->rgb + (size_t)y * (size_t)c->w * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (fclose(f) != 0) {
        remove(tmp);
        return sae_error_set(err, SAE_ERR_IO, path, "cannot write the PNG (disk full?)");
    }
    return sae_commit_file(tmp, path, err);
}

/* --- colour maps ------------------------------------------------------------------- */
static const float VIRIDIS[256][3] = {
#include "viz/viridis.inc"
};

/* ColorBrewer RdBu, 11 classes, from blue (-1) to red (+1) */
static const uint8_t RDBU[11][3] = {
    {0x05, 0x30, 0x61}, {0x21, 0x66, 0xac}, {0x43, 0x93, 0xc3}, {0x92, 0xc5, 0xde},
    {0xd1, 0xe5, 0xf0}, {0xf7, 0xf7, 0xf7}, {0xfd, 0xdb, 0xc7}, {0xf4, 0xa5, 0x82},
    {0xd6, 0x60, 0x4d}, {0xb2, 0x18, 0x2b}, {0x67, 0x00, 0x1f}};

viz_rgb viz_colormap(viz_cmap map, double t) {
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    if (map == VIZ_CMAP_VIRIDIS) {
        double p = t * 255;
        int i = (int)p < 255 ? (int)p : 254;
        double f = p - i;
        viz_rgb o;
        o.r = (uint8_t)lround(255 * (VIRIDIS[i][0] + f * (VIRIDIS[i + 1][0] - VIRIDIS[i][0])));
        o.g = (uint8_t)lround(255 * (VIRIDIS[i][1] + f * (VIRIDIS[i + 1][1] - VIRIDIS[i][1])));
        o.b = (uint8_t)lround(255 * (VIRIDIS[i][2] + f * (VIRIDIS[i + 1][2] - VIRIDIS[i][2])));
        return o;
    }
    double p = t * 10;
    int i = (int)p < 10 ? (int)p : 9;
    double f = p - i;
    viz_rgb o = {(uint8_t)lround(RDBU[i][0] + f * (RDBU[i + 1][0] - RDBU[i][0])),
                 (uint8_t)lround(RDBU[i][1] + f * (RDBU[i + 1][1] - RDBU[i][1])),
                 (uint8_t)lround(RDBU[i][2] + f * (RDBU[i + 1][2] - RDBU[i][2]))};
    return o;
}
