/* data/tokenizer.h: the llama2.c tokenizer (tokenizer.bin), encoding exactly as
 * llama2.c's run.c `encode` does.
 *
 * tokenizer.bin: int32 max_token_length, then for each of the V pieces:
 * float32 score, int32 byte length, the bytes (SentencePiece's '▁' already
 * written as ' '; byte-fallback pieces as the text "<0xXX>", id = byte + 3).
 * V is not stored: it must match the model's vocab_size.
 *
 * Encoding: BOS (id 1) when asked, a dummy-prefix " " piece when the text is
 * not empty, one piece per UTF-8 code point (or its bytes as byte pieces when
 * the vocabulary lacks it), then repeatedly merge the adjacent pair whose
 * concatenation is the highest-scoring piece, leftmost first on ties. run.c
 * does this in O(n^2); here a heap over adjacent pairs gives the same merges
 * in O(n log n), so whole books can be encoded (tests check both agree).
 *
 *     data_tokenizer *t;
 *     data_tokenizer_load(&t, "tokenizer.bin", 4096, &err);
 *     int32_t *ids; size_t n;
 *     data_tokenizer_encode(t, "みかん", strlen("みかん"), 1, &ids, &n, &err);
 *     free(ids);
 *     data_tokenizer_free(t);
 */
#ifndef SAE_DATA_TOKENIZER_H
#define SAE_DATA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define DATA_TOKEN_BOS 1
#define DATA_TOKEN_EOS 2

typedef struct data_tokenizer data_tokenizer;

/* expected_vocab 0 accepts any count (pieces are read to the end of file). */
int data_tokenizer_load(data_tokenizer **out, const char *path, size_t expected_vocab,
                        sae_error *err);
void data_tokenizer_free(data_tokenizer *t);
size_t data_tokenizer_vocab_size(const data_tokenizer *t);
/* The piece's bytes as stored (NUL-terminated). */
const char *data_tokenizer_piece(const data_tokenizer *t, int32_t id);
float data_tokenizer_score(const data_tokenizer *t, int32_t id);
/* Piece id of an exact string, or -1. */
int32_t data_tokenizer_lookup(const data_tokenizer *t, const char *s);

/* Encodes len bytes of valid UTF-8 (callers check with data_utf8_check).
 * *ids is malloc'd. */
int data_tokenizer_encode(const data_tokenizer *t, const char *text, size_t len, int bos,
                          int32_t **ids, size_t *n, sae_error *err);
/* A string a person can read for piece id: byte pieces of printable ASCII as
 * the character, newline as "\n", other bytes as "<0xXX>"; BOS/EOS as
 * "<s>"/"</s>"; everything else as the piece text. */
void data_tokenizer_display(const data_tokenizer *t, int32_t id, char *buf, size_t cap);
/* Text to print when id follows prev during generation (llama2.c decode):
 * the leading space after BOS is dropped, byte pieces become their byte.
 * Returns a pointer into t or into byte_buf. */
const char *data_tokenizer_decode(const data_tokenizer *t, int32_t prev, int32_t id,
                                  char byte_buf[2]);

/* 0 if s[0..n) is valid UTF-8 (no overlongs, surrogates or NUL bytes), else
 * -1 with the offset of the first bad byte. */
int data_utf8_check(const char *s, size_t n, size_t *bad_offset);

#endif
