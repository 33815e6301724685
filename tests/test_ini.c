/* tests/test_ini.c: the INI reader (common/ini.h).
 *  - nothing is split, truncated or dropped: a 300-byte comment stays a
 *    comment (inih cut it at 199 bytes and applied its tail), a 1000-byte
 *    value arrives whole, line numbers stay right after long lines and CRLF;
 *  - no continuation lines: an indented key is its own key, an indented bare
 *    word is an error at its own line;
 *  - duplicate keys name both lines; a handler's refusal names file:line;
 *  - directories, empty and missing paths, NUL bytes and oversized files are
 *    refused with their cause; a byte order mark is skipped;
 *  - every allocation failure is a clean SAE_ERR_NOMEM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/ini.h"
#include "common/mem.h"
#include "tests/testutil.h"

static const char *dir;

/* ------------------------------------------------- recording handler -- */

enum { MAX_SEEN = 16 };

typedef struct {
    size_t n;
    char *section[MAX_SEEN], *key[MAX_SEEN], *value[MAX_SEEN];
    size_t line[MAX_SEEN];
    const char *only_section; /* when set, other sections are refused */
} record;

static int on_entry(void *user, const sae_ini_entry *e, sae_error *err) {
    record *r = user;
    if (r->only_section && strcmp(e->section, r->only_section) != 0)
        return sae_ini_error(err, SAE_ERR_ARG, e, "section [%s] does not apply", e->section);
    if (r->n == MAX_SEEN) return 0;
    r->section[r->n] = strdup(e->section);
    r->key[r->n] = strdup(e->key);
    r->value[r->n] = strdup(e->value);
    r->line[r->n] = e->line;
    r->n++;
    return 0;
}

static void record_free(record *r) {
    for (size_t i = 0; i < r->n; i++) free(r->section[i]), free(r->key[i]), free(r->value[i]);
    r->n = 0;
}

/* Parses text (len bytes; strlen when 0) into r; returns the parse's code. */
static int parse(const char *text, size_t len, record *r, sae_error *err) {
    memset(err, 0, sizeof *err);
    record_free(r);
    return sae_ini_parse_buffer(text, len ? len : strlen(text), "t.ini", on_entry, r, err);
}

static const char *write_file(const char *name, const char *data, size_t len) {
    const char *p = tu_path(dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return p;
}

static char *repeat(char c, size_t n) {
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = 0;
    return s;
}

/* ------------------------------------------------------------- limits -- */

static void test_long_comment_stays_comment(void **state) {
    (void)state;
    /* inih's 200-byte line buffer made the tail "k = 9" a setting */
    char *pad = repeat('x', 300), text[700];
    snprintf(text, sizeof text, "; %.200s k = 9 %.100s\n[train]\nk = 32\n", pad, pad);
    record r = {0};
    sae_error err;
    assert_int_equal(parse(text, 0, &r, &err), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.key[0], "k");
    assert_string_equal(r.value[0], "32");
    assert_int_equal(r.line[0], 3);
    /* the same as an inline comment after a value */
    snprintf(text, sizeof text, "k = 32 ; %.250s k = 9\n", pad);
    assert_int_equal(parse(text, 0, &r, &err), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.value[0], "32");
    record_free(&r);
    free(pad);
}

static void test_long_value_intact(void **state) {
    (void)state;
    char *v = repeat('v', 1000), text[1100];
    v[0] = '/', v[999] = 'z';
    snprintf(text, sizeof text, "out = %s\nk = 1\n", v);
    record r = {0};
    sae_error err;
    assert_int_equal(parse(text, 0, &r, &err), 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(strlen(r.value[0]), 1000);
    assert_string_equal(r.value[0], v);
    assert_int_equal(r.line[1], 2);
    /* and through a file, longer than any read chunk */
    char *big = repeat('b', 100000), *text2 = malloc(100100);
    assert_non_null(text2);
    int n = snprintf(text2, 100100, "[s]\nbig = %s\nafter = 2\n", big);
    const char *p = write_file("long.ini", text2, (size_t)n);
    record_free(&r);
    memset(&err, 0, sizeof err);
    assert_int_equal(sae_ini_parse_file(p, on_entry, &r, &err), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.value[0], big);
    assert_string_equal(r.value[1], "2");
    assert_int_equal(r.line[1], 3);
    record_free(&r);
    free(v), free(big), free(text2);
}

static void test_line_numbers(void **state) {
    (void)state;
    record r = {0};
    sae_error err;
    assert_int_equal(parse("[s]\r\na = 1\r\n\r\n; c\r\n  b = two words \r\n", 0, &r, &err), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.value[0], "1"); /* no CR left in a value */
    assert_int_equal(r.line[0], 2);
    assert_string_equal(r.value[1], "two words");
    assert_int_equal(r.line[1], 5);
    /* an error after long lines names its real line */
    char *pad = repeat('c', 5000), *text = malloc(11000);
    assert_non_null(text);
    snprintf(text, 11000, "# %s\r\nv = %s\r\n\r\nbroken line\r\nz = 1\r\n", pad, pad);
    assert_int_equal(parse(text, 0, &r, &err), SAE_ERR_FORMAT);
    assert_string_equal(err.subject, "t.ini:4");
    assert_non_null(strstr(err.msg, "broken line"));
    assert_int_equal(r.n, 1); /* the key before it was delivered */
    /* a file without a final newline */
    assert_int_equal(parse("a = 1\nb = 2", 0, &r, &err), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.value[1], "2");
    record_free(&r);
    free(pad), free(text);
}

/* ---------------------------------------------- no continuation lines -- */

static void test_indented_key_is_own_key(void **state) {
    (void)state;
    record r = {0};
    sae_error err;
    assert_int_equal(parse("[train]\nlr = 0.1\n    k = 32\n\t[ viz ]\n\t\tx=1\n", 0, &r, &err), 0);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.value[0], "0.1"); /* not "0.1\nk = 32" */
    assert_string_equal(r.key[1], "k");
    assert_string_equal(r.value[1], "32");
    assert_string_equal(r.section[1], "train");
    assert_string_equal(r.section[2], "viz");
    assert_int_equal(r.line[2], 5);
    record_free(&r);
}

static void test_indented_word_is_error(void **state) {
    (void)state;
    record r = {0};
    sae_error err;
    assert_int_equal(parse("lr = 0.1\n\n   more\n", 0, &r, &err), SAE_ERR_FORMAT);
    assert_string_equal(err.subject, "t.ini:3");
    assert_non_null(strstr(err.msg, "'more'"));
    assert_non_null(strstr(err.msg, "does not continue"));
    assert_int_equal(parse("word\n", 0, &r, &err), SAE_ERR_FORMAT);
    assert_string_equal(err.subject, "t.ini:1");
    record_free(&r);
}

/* --------------------------------------------------- values, comments -- */

static void test_comments_and_quotes(void **state) {
    (void)state;
    const char *text = "k = 32 ; note\n"
                       "h = 1\t# note\n"
                       "url = a#b\n"
                       "x = 1;2\n"
                       "e =\n"
                       "c = ;only a comment\n"
                       "q = \"  # kept \\\" \\\\ \" ; c\n"
                       "[s] ; the section\n"
                       "y=\"\"#c\n";
    record r = {0};
    sae_error err;
    assert_int_equal(parse(text, 0, &r, &err), 0);
    assert_int_equal(r.n, 8);
    const char *want[] = {"32", "1", "a#b", "1;2", "", "", "  # kept \" \\ ", ""};
    for (size_t i = 0; i < 8; i++) assert_string_equal(r.value[i], want[i]);
    assert_string_equal(r.section[7], "s");
    record_free(&r);
}

static void test_syntax_errors(void **state) {
    (void)state;
    static const struct {
        const char *text, *phrase;
    } cases[] = {
        {"[train\n", "closing ']'"},
        {"[ ]\n", "empty section"},
        {"[a] b\n", "after ']'"},
        {"[a[b]\n", "'['"},
        {" = 1\n", "without a key"},
        {"a b = 1\n", "invalid character ' '"},
        {"q = \"abc\n", "closing '\"'"},
        {"q = \"a\" b\n", "after the closing"},
        {"q = \"a\\nb\"\n", "unknown escape"},
        {"a = 1\rb = 2\n", "carriage return"},
        {"a = 1\x01\n", "control character 0x01"},
    };
    record r = {0};
    sae_error err;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(parse(cases[i].text, 0, &r, &err), SAE_ERR_FORMAT);
        assert_string_equal(err.subject, "t.ini:1");
        if (!strstr(err.msg, cases[i].phrase))
            fail_msg("'%s': message '%s' lacks '%s'", cases[i].text, err.msg, cases[i].phrase);
    }
    record_free(&r);
}

static void test_duplicate_key(void **state) {
    (void)state;
    record r = {0};
    sae_error err;
    /* the same key in two sections is fine; again in a reopened one is not */
    const char *text = "[s]\na = 1\n[t]\na = 2\n\n[s]\n  a = 3\n";
    assert_int_equal(parse(text, 0, &r, &err), SAE_ERR_FORMAT);
    assert_string_equal(err.subject, "t.ini:7");
    assert_non_null(strstr(err.msg, "duplicate key 'a' in [s]"));
    assert_non_null(strstr(err.msg, "first set at line 2"));
    assert_int_equal(r.n, 2);
    assert_int_equal(parse("k = 1\nk = 1\n", 0, &r, &err), SAE_ERR_FORMAT);
    assert_string_equal(err.subject, "t.ini:2");
    /* many keys: the duplicate set grows and stays linear */
    size_t n = 200000;
    char *big = malloc(n * 16), *w = big;
    assert_non_null(big);
    for (size_t i = 0; i < n; i++) w += sprintf(w, "k%zu = %zu\n", i, i);
    w += sprintf(w, "k77 = again\n");
    assert_int_equal(parse(big, (size_t)(w - big), &r, &err), SAE_ERR_FORMAT);
    char want[64];
    snprintf(want, sizeof want, "t.ini:%zu", n + 1);
    assert_string_equal(err.subject, want);
    assert_non_null(strstr(err.msg, "first set at line 78"));
    record_free(&r);
    free(big);
}

static void test_handler_refusal(void **state) {
    (void)state;
    record r = {.only_section = "train"};
    sae_error err;
    assert_int_equal(parse("[train]\nk = 1\n[viz]\nk = 2\n", 0, &r, &err), SAE_ERR_ARG);
    assert_string_equal(err.subject, "t.ini:4");
    assert_non_null(strstr(err.msg, "[viz] does not apply"));
    record_free(&r);
}

/* -------------------------------------------------------------- input -- */

static void test_paths_refused(void **state) {
    (void)state;
    record r = {0};
    sae_error err = {0};
    assert_int_equal(sae_ini_parse_file(dir, on_entry, &r, &err), SAE_ERR_IO);
    assert_string_equal(err.subject, dir);
    assert_non_null(strstr(err.msg, "directory"));
    memset(&err, 0, sizeof err);
    assert_int_equal(sae_ini_parse_file("", on_entry, &r, &err), SAE_ERR_ARG);
    assert_non_null(strstr(err.msg, "empty"));
    memset(&err, 0, sizeof err);
    assert_int_equal(sae_ini_parse_file(tu_path(dir, "missing.ini"), on_entry, &r, &err),
                     SAE_ERR_IO);
    assert_non_null(strstr(err.msg, "No such file"));
    assert_int_equal(r.n, 0);
}

static void test_bom(void **state) {
    (void)state;
    record r = {0};
    sae_error err;
    assert_int_equal(parse("\xEF\xBB\xBF[train]\r\nk = 1\r\n", 0, &r, &err), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.section[0], "train");
    assert_int_equal(r.line[0], 2);
    assert_int_equal(parse("\xEF\xBB\xBFk = 1\n", 0, &r, &err), 0);
    assert_string_equal(r.key[0], "k");
    assert_int_equal(r.line[0], 1);
    record_free(&r);
}

static void test_nul_refused(void **state) {
    (void)state;
    static const char text[] = "a = 1\nb = x\0y\nc = 3\n";
    record r = {0};
    sae_error err;
    assert_int_equal(parse(text, sizeof text - 1, &r, &err), SAE_ERR_FORMAT);
    assert_string_equal(err.subject, "t.ini:2");
    assert_non_null(strstr(err.msg, "NUL"));
    assert_int_equal(r.n, 0); /* refused before anything is applied */
    const char *p = write_file("nul.ini", text, sizeof text - 1);
    memset(&err, 0, sizeof err);
    assert_int_equal(sae_ini_parse_file(p, on_entry, &r, &err), SAE_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "NUL"));
}

static void test_too_large_refused(void **state) {
    (void)state;
    size_t n = SAE_INI_MAX_BYTES + 1;
    char *big = repeat(' ', n);
    record r = {0};
    sae_error err;
    assert_int_equal(parse(big, n, &r, &err), SAE_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "larger than 16 MiB"));
    const char *p = write_file("big.ini", big, n);
    memset(&err, 0, sizeof err);
    assert_int_equal(sae_ini_parse_file(p, on_entry, &r, &err), SAE_ERR_FORMAT);
    assert_string_equal(err.subject, p);
    assert_non_null(strstr(err.msg, "larger than 16 MiB"));
    /* exactly the bound is fine */
    p = write_file("max.ini", big, n - 1);
    memset(&err, 0, sizeof err);
    assert_int_equal(sae_ini_parse_file(p, on_entry, &r, &err), 0);
    remove(p);
    remove(tu_path(dir, "big.ini"));
    free(big);
}

static void test_alloc_failures(void **state) {
    (void)state;
    /* enough keys to grow the duplicate set, long enough to grow the read buffer */
    char *text = malloc(20000), *w = text;
    assert_non_null(text);
    for (int i = 0; i < 100; i++) w += sprintf(w, "[s%d]\nkey%d = %0150d\n", i % 3, i, i);
    const char *p = write_file("oom.ini", text, (size_t)(w - text));
    int ok = 0;
    for (long n = 0; !ok && n < 1000; n++) {
        record r = {0};
        sae_error err = {0};
        unsigned long before = sae_mem_count();
        sae_mem_fail_at(n);
        int rc = sae_ini_parse_file(p, on_entry, &r, &err);
        sae_mem_fail_at(-1);
        if (rc == 0) {
            ok = 1;
            assert_true(sae_mem_count() - before <= (unsigned long)n);
        } else {
            assert_int_equal(rc, SAE_ERR_NOMEM);
            assert_non_null(strstr(err.msg, "out of memory"));
        }
        record_free(&r);
    }
    assert_true(ok);
    free(text);
}

static void test_sections_and_keys(void **state) {
    (void)state;
    record r = {0};
    sae_error err;
    /* keys and sections are case-sensitive; an entry knows its section's line */
    assert_int_equal(parse("k = 1\n\n[s]\nK = 2\nk = 3\n[S]\nk = 4\n", 0, &r, &err), 0);
    assert_int_equal(r.n, 4);
    assert_string_equal(r.section[0], "");
    assert_string_equal(r.key[1], "K");
    assert_string_equal(r.section[3], "S");
    record_free(&r);
    /* a byte order mark is skipped only at the very start */
    assert_int_equal(parse("a = 1\n\xEF\xBB\xBF" "b = 2\n", 0, &r, &err), SAE_ERR_FORMAT);
    assert_string_equal(err.subject, "t.ini:2");
    record_free(&r);
}

static int check_section_line(void *user, const sae_ini_entry *e, sae_error *err) {
    (void)err;
    size_t *want = user;
    assert_int_equal(e->section_line, want[e->line]);
    return 0;
}

static void test_section_line(void **state) {
    (void)state;
    size_t want[8] = {0, 0, 0, 3, 3, 0, 6, 6}; /* by entry line */
    sae_error err = {0};
    const char *text = "a = 1\n\n[s]\nb = 2\n\n  [t] ; x\nc = 3\n";
    assert_int_equal(sae_ini_parse_buffer(text, strlen(text), "t", check_section_line, want, &err), 0);
}

int main(void) {
    dir = tu_tmpdir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_comment_stays_comment),
        cmocka_unit_test(test_long_value_intact),
        cmocka_unit_test(test_line_numbers),
        cmocka_unit_test(test_indented_key_is_own_key),
        cmocka_unit_test(test_indented_word_is_error),
        cmocka_unit_test(test_comments_and_quotes),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_handler_refusal),
        cmocka_unit_test(test_paths_refused),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_nul_refused),
        cmocka_unit_test(test_too_large_refused),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_sections_and_keys),
        cmocka_unit_test(test_section_line),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return 1;
    return rc;
}
