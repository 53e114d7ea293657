/* SPDX-License-Identifier: MIT */
/* A small JSON writer into a growable byte buffer: the protocol replies and
 * pushes are written directly (no DOM), with user payloads spliced in as
 * already-minified JSON text. Allocation failures are sticky: check
 * jw_ok() once at the end. */
#ifndef SRV_JSONW_H
#define SRV_JSONW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  char *p;
  size_t len, cap;
  int oom;
} jw_buf;

void jw_init(jw_buf *b);
void jw_free(jw_buf *b);
void jw_reset(jw_buf *b);
int jw_ok(const jw_buf *b);
void jw_raw(jw_buf *b, const char *s, size_t n);
void jw_lit(jw_buf *b, const char *s); /* NUL-terminated raw text */
void jw_char(jw_buf *b, char c);
/* A JSON string literal (quotes added, escaped; invalid UTF-8 is not
 * checked here: callers pass validated text). */
void jw_str(jw_buf *b, const char *s, size_t n);
void jw_cstr(jw_buf *b, const char *s);
void jw_u64(jw_buf *b, uint64_t v);
void jw_i64(jw_buf *b, int64_t v);
/* Write "key": (with a leading comma unless *first). */
void jw_key(jw_buf *b, int *first, const char *key);
/* A jansson value as compact JSON (no newlines can appear in the output). */
void jw_json(jw_buf *b, const json_t *v);

/* Minified JSON text of v (malloc'd, NUL-terminated), or NULL. */
char *jw_dump(const json_t *v);

/* Minified JSON text of the document base64 text b64[0..n) encodes
 * (malloc'd), or NULL if it is not base64 of a JSON document: binary data
 * cannot travel in the JSON protocol. */
char *jw_b64_json(const char *b64, size_t n);

/* The bytes standard base64 text b64[0..n) encodes (malloc'd, *len of
 * them), or NULL if n is not a multiple of 4 (or 16 MiB or more), the text
 * is not base64, or out of memory. The caller frees it. */
uint8_t *jw_b64_decode(const char *b64, size_t n, size_t *len);

#endif
