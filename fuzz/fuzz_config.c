/* fuzz/fuzz_config.c: the INI config reader (common/ini.h) on untrusted bytes.
 * The bytes are parsed from memory and, through a file, from disk; both must
 * agree on the result and the entries, and every entry must keep the reader's
 * promises (valid key, value_len = strlen(value), lines in order), or the
 * harness traps. A key named "stop" makes the handler refuse, so the
 * refusal path runs too. */
#include <string.h>

#include "common/ini.h"
#include "fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    size_t n, last_line;
    uint64_t digest; /* of every key and value, to compare the two reads */
} tally;

static uint64_t mix(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
    return (h ^ 0xff) * 1099511628211u;
}

static int check_entry(void *user, const sae_ini_entry *e, sae_error *err) {
    tally *t = user;
    if (!e->key[0] || strlen(e->value) != e->value_len || e->line <= t->last_line ||
        e->section_line > e->line || (e->section[0] != 0) != (e->section_line != 0))
        __builtin_trap();
    for (const char *c = e->key; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.", *c))
            __builtin_trap();
    t->n++, t->last_line = e->line;
    t->digest = mix(mix(mix(t->digest, e->section), e->key), e->value);
    if (strcmp(e->key, "stop") == 0) return sae_ini_error(err, SAE_ERR_ARG, e, "stop");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tally a = {0}, b = {0};
    sae_error ea = {0}, eb = {0};
    int ra = sae_ini_parse_buffer((const char *)data, size, "fuzz.ini", check_entry, &a, &ea);
    const char *path = fuzz_bytes_file(data, size, ".ini");
    int rb = sae_ini_parse_file(path, check_entry, &b, &eb);
    if (ra != rb || a.n != b.n || a.digest != b.digest || strcmp(ea.msg, eb.msg) != 0)
        __builtin_trap();
    if (ra != 0 && !ea.msg[0]) __builtin_trap(); /* every refusal says why */
    return 0;
}
