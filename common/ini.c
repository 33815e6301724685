/* common/ini.c: the INI reader described in common/ini.h.
 *
 * The file is read whole into one buffer (a copy, for a caller's buffer) that
 * is parsed in place: each line is NUL-terminated where it ends, so section
 * names and keys stay valid, unmoved, until the parse returns, which lets the
 * duplicate-key table point into the buffer instead of copying. */
#include "common/ini.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/fileutil.h"
#include "common/mem.h"

/* ---------------------------------------------------------------------------
 * Errors */

static int error_at(sae_error *err, int code, const char *name, size_t line, const char *fmt,
                    va_list ap) {
    char subject[sizeof err->subject], msg[sizeof err->msg];
    snprintf(subject, sizeof subject, "%s:%zu", name, line);
    vsnprintf(msg, sizeof msg, fmt, ap);
    return sae_error_set(err, code, subject, "%s", msg);
}

static int line_error(sae_error *err, const char *name, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int line_error(sae_error *err, const char *name, size_t line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = error_at(err, SAE_ERR_FORMAT, name, line, fmt, ap);
    va_end(ap);
    return rc;
}

int sae_ini_error(sae_error *err, int code, const sae_ini_entry *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = error_at(err, code, e->name, e->line, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Keys seen so far, for duplicates: open addressing on (section, key), at
 * most half full. The strings live in the parse buffer. */

typedef struct seen_key {
    const char *section, *key; /* key NULL: empty slot */
    size_t line;
} seen_key;

typedef struct seen_set {
    seen_key *slots;
    size_t cap, n; /* cap is a power of two */
} seen_set;

static uint64_t hash_key(const char *section, const char *key) {
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (const char *s = section; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
    h = (h ^ 0xff) * 1099511628211u; /* separator; equality is decided by strcmp */
    for (const char *s = key; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static seen_key *seen_slot(seen_key *slots, size_t cap, const char *section, const char *key) {
    size_t i = (size_t)hash_key(section, key) & (cap - 1);
    while (slots[i].key && (strcmp(slots[i].key, key) != 0 || strcmp(slots[i].section, section) != 0))
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static int seen_grow(seen_set *s) {
    size_t cap = s->cap ? 2 * s->cap : 64;
    seen_key *slots = sae_calloc_n(cap, sizeof *slots);
    if (!slots) return SAE_ERR_NOMEM;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i].key) *seen_slot(slots, cap, s->slots[i].section, s->slots[i].key) = s->slots[i];
    sae_free(s->slots);
    s->slots = slots, s->cap = cap;
    return 0;
}

/* 0 and *first = 0 for a new key (now recorded), or *first = the line of the
 * earlier occurrence. */
static int seen_add(seen_set *s, const char *section, const char *key, size_t line, size_t *first) {
    *first = 0;
    if (2 * (s->n + 1) > s->cap && seen_grow(s) != 0) return SAE_ERR_NOMEM;
    seen_key *k = seen_slot(s->slots, s->cap, section, key);
    if (k->key) {
        *first = k->line;
        return 0;
    }
    *k = (seen_key){section, key, line};
    s->n++;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Lines */

typedef struct parser {
    const char *name;
    sae_ini_handler fn;
    void *user;
    sae_error *err;
    const char *section;
    size_t section_line;
    seen_set seen;
} parser;

static int is_blank(char c) { return c == ' ' || c == '\t'; }
static int is_comment(char c) { return c == '#' || c == ';'; }

static char *skip_blank(char *s) {
    while (is_blank(*s)) s++;
    return s;
}

static void trim_end(char *s, char *end) {
    while (end > s && is_blank(end[-1])) end--;
    *end = 0;
}

static int key_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/* "[name]" with optional whitespace and comment after it. */
static int parse_section(parser *p, char *s, size_t line) {
    char *close = strchr(s + 1, ']');
    if (!close) return line_error(p->err, p->name, line, "'[' without a closing ']'");
    char *rest = skip_blank(close + 1);
    if (*rest && !is_comment(*rest))
        return line_error(p->err, p->name, line, "text after ']' (only a comment may follow a section)");
    char *name = skip_blank(s + 1);
    trim_end(name, close);
    if (!name[0]) return line_error(p->err, p->name, line, "empty section name '[]'");
    if (strchr(name, '['))
        return line_error(p->err, p->name, line, "'[' inside a section name");
    p->section = name, p->section_line = line;
    return 0;
}

/* A quoted value, in place: s points at the opening '"'. */
static int parse_quoted(parser *p, char *s, size_t line, char **value, size_t *len) {
    char *r = s + 1, *w = s;
    for (;; r++) {
        if (!*r) return line_error(p->err, p->name, line, "quoted value without a closing '\"'");
        if (*r == '"') break;
        if (*r == '\\') {
            r++;
            if (*r != '"' && *r != '\\')
                return line_error(p->err, p->name, line,
                                  "unknown escape in a quoted value (only \\\" and \\\\ are escapes)");
        }
        *w++ = *r;
    }
    char *rest = skip_blank(r + 1);
    if (*rest && !is_comment(*rest))
        return line_error(p->err, p->name, line, "text after the closing '\"' (only a comment may follow)");
    *w = 0;
    *value = s, *len = (size_t)(w - s);
    return 0;
}

/* The value after '=': quoted, or up to a comment that starts it or follows
 * whitespace, trimmed. */
static int parse_value(parser *p, char *s, size_t line, char **value, size_t *len) {
    s = skip_blank(s);
    if (*s == '"') return parse_quoted(p, s, line, value, len);
    char *end = s;
    while (*end && !(is_comment(*end) && (end == s || is_blank(end[-1])))) end++;
    trim_end(s, end);
    *value = s, *len = strlen(s);
    return 0;
}

static int bad_key_char(parser *p, const char *key, char c, size_t line) {
    char shown[8];
    if (c > ' ' && c < 0x7f) snprintf(shown, sizeof shown, "'%c'", c);
    else if (c == ' ' || c == '\t') snprintf(shown, sizeof shown, "'%s'", c == ' ' ? " " : "\\t");
    else snprintf(shown, sizeof shown, "0x%02x", (unsigned char)c);
    return line_error(p->err, p->name, line,
                      "invalid character %s in key '%.60s' (keys are letters, digits, '_', '-', '.')",
                      shown, key);
}

static int parse_pair(parser *p, char *s, size_t line) {
    char *eq = strchr(s, '=');
    if (!eq)
        return line_error(p->err, p->name, line,
                          "expected 'key = value', '[section]' or a comment, got '%.60s%s' "
                          "(a line does not continue the one before it)",
                          s, strlen(s) > 60 ? "..." : "");
    trim_end(s, eq);
    if (!s[0]) return line_error(p->err, p->name, line, "'=' without a key before it");
    for (const char *c = s; *c; c++)
        if (!key_char(*c)) return bad_key_char(p, s, *c, line);
    sae_ini_entry e = {.name = p->name, .section = p->section, .key = s, .line = line,
                       .section_line = p->section_line};
    char *value = NULL; /* set by parse_value on success (gcc -O2 cannot see it) */
    int rc = parse_value(p, eq + 1, line, &value, &e.value_len);
    if (rc) return rc;
    e.value = value;
    size_t first;
    if (seen_add(&p->seen, p->section, s, line, &first) != 0)
        return sae_error_set(p->err, SAE_ERR_NOMEM, p->name, "out of memory reading the config file");
    if (first) {
        if (p->section[0])
            return line_error(p->err, p->name, line, "duplicate key '%.100s' in [%.100s] (first set at line %zu)",
                              s, p->section, first);
        return line_error(p->err, p->name, line, "duplicate key '%.100s' (first set at line %zu)", s,
                          first);
    }
    rc = p->fn(p->user, &e, p->err);
    SAE_ASSERT(rc <= 0);
    if (rc < 0 && p->err && !p->err->code) sae_ini_error(p->err, rc, &e, "rejected '%s'", s);
    return rc;
}

static int parse_line(parser *p, char *s, size_t line) {
    s = skip_blank(s);
    if (!*s || is_comment(*s)) return 0;
    if (*s == '[') return parse_section(p, s, line);
    return parse_pair(p, s, line);
}

/* ---------------------------------------------------------------------------
 * Buffers */

static size_t line_of(const char *buf, size_t at) {
    size_t line = 1;
    for (const char *q = buf; (q = memchr(q, '\n', (size_t)(buf + at - q))) != NULL; q++) line++;
    return line;
}

/* buf[len] must be writable; buf is modified. */
static int parse_owned(char *buf, size_t len, parser *p) {
    const char *nul = memchr(buf, 0, len);
    if (nul)
        return line_error(p->err, p->name, line_of(buf, (size_t)(nul - buf)),
                          "contains a NUL byte (a config file is text)");
    size_t pos = 0;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) pos = 3; /* UTF-8 BOM */
    for (size_t line = 1;; line++) { /* invariant: pos <= len */
        char *start = buf + pos;
        char *nl = memchr(start, '\n', len - pos);
        char *end = nl ? nl : buf + len;
        pos = (size_t)(end - buf) + 1;
        if (end > start && end[-1] == '\r') end--;
        if (memchr(start, '\r', (size_t)(end - start)))
            return line_error(p->err, p->name, line,
                              "carriage return inside a line (lines end in LF or CRLF)");
        *end = 0;
        for (const unsigned char *c = (const unsigned char *)start; *c; c++)
            if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
                return line_error(p->err, p->name, line,
                                  "control character 0x%02x (a config file is text)", *c);
        int rc = parse_line(p, start, line);
        if (rc || !nl) return rc;
    }
}

static int parse_with(char *buf, size_t len, const char *name, sae_ini_handler fn, void *user,
                      sae_error *err) {
    parser p = {.name = name, .fn = fn, .user = user, .err = err, .section = ""};
    int rc = parse_owned(buf, len, &p);
    sae_free(p.seen.slots);
    return rc;
}

static int too_big(sae_error *err, const char *name) {
    return sae_error_set(err, SAE_ERR_FORMAT, name,
                         "larger than %zu MiB, which no config file is (is this the right file?)",
                         SAE_INI_MAX_BYTES >> 20);
}

int sae_ini_parse_buffer(const char *buf, size_t len, const char *name, sae_ini_handler fn,
                         void *user, sae_error *err) {
    if (len > SAE_INI_MAX_BYTES) return too_big(err, name);
    char *copy = sae_malloc(len + 1);
    if (!copy) return sae_error_set(err, SAE_ERR_NOMEM, name, "out of memory reading the config file");
    if (len) memcpy(copy, buf, len);
    copy[len] = 0;
    int rc = parse_with(copy, len, name, fn, user, err);
    sae_free(copy);
    return rc;
}

/* Reads all of f (a pipe too: no size is trusted) into *out, one byte more
 * than the limit at most, so that an oversized file is recognised. */
static int read_all(FILE *f, const char *path, char **out, size_t *len, sae_error *err) {
    size_t cap = 4096, n = 0;
    char *buf = sae_malloc(cap);
    if (!buf) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory reading the config file");
    for (;;) {
        if (n + 1 == cap) { /* keep one byte for the terminator */
            size_t grow = cap >= SAE_INI_MAX_BYTES ? SAE_INI_MAX_BYTES + 2 : 2 * cap;
            char *b = sae_realloc(buf, grow);
            if (!b) {
                sae_free(buf);
                return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory reading the config file");
            }
            buf = b, cap = grow;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (n > SAE_INI_MAX_BYTES) {
            sae_free(buf);
            return too_big(err, path);
        }
        if (got == 0) break;
    }
    if (ferror(f)) {
        int e = errno;
        sae_free(buf);
        return sae_error_set(err, SAE_ERR_IO, path, "cannot read: %s", strerror(e));
    }
    *out = buf, *len = n;
    return 0;
}

int sae_ini_parse_file(const char *path, sae_ini_handler fn, void *user, sae_error *err) {
    int rc = sae_check_input_file(path, "config file", err);
    if (rc) return rc;
    FILE *f = fopen(path, "rb");
    if (!f) return sae_error_set(err, SAE_ERR_IO, path, "%s", strerror(errno));
    char *buf = NULL;
    size_t len = 0;
    rc = read_all(f, path, &buf, &len, err);
    fclose(f);
    if (rc) return rc;
    rc = parse_with(buf, len, path, fn, user, err);
    sae_free(buf);
    return rc;
}
