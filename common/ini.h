/* common/ini.h: INI config files, with no silent limits.
 *
 * Replaces Debian's inih, which split lines at 199 bytes (the tail of a long
 * comment became a setting), truncated long values, reported line numbers
 * past the end of the file, read an indented line as the continuation of the
 * previous key and accepted a directory as an empty file. The grammar here is
 * small and every deviation from it is an error at its real line:
 *
 *   - The whole file is read first. It may hold at most SAE_INI_MAX_BYTES
 *     (16 MiB, far beyond any config) and no NUL byte; lines may be of any
 *     length. Lines end in LF or CRLF (a CR anywhere else is an error); a
 *     UTF-8 byte order mark at the very start is skipped. Other control
 *     characters than tab are refused (a config file is text).
 *   - Leading and trailing whitespace (space, tab) of a line is insignificant,
 *     so an indented line means what it means unindented. There are no
 *     continuation lines: every line is blank, a comment, a section or a
 *     key = value pair on its own; anything else (a line without '=') is a
 *     syntax error.
 *   - Comments: a line whose first non-blank character is '#' or ';'. In a
 *     section or an unquoted value, a '#' or ';' that starts the value or
 *     follows a space or tab starts a comment to the end of the line
 *     (`k = 32   ; active latents`); one inside a word (`a;b`, `x#1`) is text.
 *   - `[name]` opens a section; the name is trimmed, non-empty and has no
 *     '[' or ']'. Keys before the first section have section "". A section
 *     may be opened again; its keys continue.
 *   - `key = value`: the key (trimmed) is non-empty and made of letters,
 *     digits, '_', '-' and '.'; keys and sections are case-sensitive. The value
 *     is trimmed and may be empty. A value that begins with '"' is quoted: it
 *     ends at the next unescaped '"', `\"` and `\\` stand for '"' and '\', and
 *     only whitespace or a comment may follow; quoting keeps '#', ';' and
 *     surrounding spaces.
 *   - A key given twice in one section is an error naming both lines.
 *
 * Errors set err with subject "NAME:LINE" (LINE 1-based, the line the problem
 * is on) and return the negative code: SAE_ERR_FORMAT for the grammar, size
 * and NUL rules, SAE_ERR_IO / SAE_ERR_ARG for a path that cannot be read
 * (empty, missing, a directory, unreadable; see sae_check_input_file), and
 * SAE_ERR_NOMEM. All memory comes from common/mem.h and is freed on return.
 *
 *     static int on_entry(void *user, const sae_ini_entry *e, sae_error *err) {
 *         if (strcmp(e->key, "k") != 0)
 *             return sae_ini_error(err, SAE_ERR_ARG, e, "unknown key '%s'", e->key);
 *         ...
 *         return 0;
 *     }
 *     if (sae_ini_parse_file(path, on_entry, &ctx, &err) < 0) report(&err);
 */
#ifndef SAE_COMMON_INI_H
#define SAE_COMMON_INI_H

#include <stddef.h>

#include "common/err.h"

#define SAE_INI_MAX_BYTES ((size_t)16 << 20)

/* One key = value pair. Every pointer is valid only during the callback;
 * copy what must outlive it. */
typedef struct sae_ini_entry {
    const char *name;    /* the file's name, as given for messages */
    const char *section; /* "" before the first [section] */
    const char *key;
    const char *value;   /* NUL-terminated; quotes and escapes removed */
    size_t value_len;    /* strlen(value) */
    size_t line;         /* 1-based line of the file */
    size_t section_line; /* the line of its [section], 0 before the first */
} sae_ini_entry;

/* Called for each pair, in file order. Returns 0 to go on, or a negative
 * sae_err code (err filled, e.g. with sae_ini_error) to stop the parse, which
 * then returns that code. */
typedef int (*sae_ini_handler)(void *user, const sae_ini_entry *e, sae_error *err);

/* Parses the file at path. Returns 0 or a negative sae_err code. */
int sae_ini_parse_file(const char *path, sae_ini_handler fn, void *user, sae_error *err);
/* Parses len bytes (need not be NUL-terminated; NUL bytes are refused);
 * name is used in messages. */
int sae_ini_parse_buffer(const char *buf, size_t len, const char *name, sae_ini_handler fn,
                         void *user, sae_error *err);

/* sae_error_set with subject "NAME:LINE" of entry e; returns code. */
int sae_ini_error(sae_error *err, int code, const sae_ini_entry *e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
