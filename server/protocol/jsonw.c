/* SPDX-License-Identifier: MIT */
/* JSON writer (see jsonw.h). */
#include "protocol/jsonw.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jw_init(jw_buf *b) { memset(b, 0, sizeof *b); }

void jw_free(jw_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

void jw_reset(jw_buf *b) {
  b->len = 0;
  b->oom = 0;
}

int jw_ok(const jw_buf *b) { return !b->oom; }

static int grow(jw_buf *b, size_t n) {
  if (b->oom)
    return -1;
  if (b->len + n <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + n)
    cap *= 2;
  char *np = realloc(b->p, cap);
  if (!np) {
    b->oom = 1;
    return -1;
  }
  b->p = np;
  b->cap = cap;
  return 0;
}

void jw_raw(jw_buf *b, const char *s, size_t n) {
  if (!n || grow(b, n) < 0)
    return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

void jw_lit(jw_buf *b, const char *s) { jw_raw(b, s, strlen(s)); }

void jw_char(jw_buf *b, char c) { jw_raw(b, &c, 1); }

void jw_str(jw_buf *b, const char *s, size_t n) {
  static const char hx[] = "0123456789abcdef";
  if (grow(b, n + 2) < 0)
    return;
  jw_char(b, '"');
  size_t run = 0; /* copy runs of plain bytes at once */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    jw_raw(b, s + run, i - run);
    run = i + 1;
    switch (c) {
    case '"': jw_raw(b, "\\\"", 2); break;
    case '\\': jw_raw(b, "\\\\", 2); break;
    case '\n': jw_raw(b, "\\n", 2); break;
    case '\r': jw_raw(b, "\\r", 2); break;
    case '\t': jw_raw(b, "\\t", 2); break;
    default: {
      char e[6] = {'\\', 'u', '0', '0', hx[c >> 4], hx[c & 15]};
      jw_raw(b, e, 6);
    }
    }
  }
  jw_raw(b, s + run, n - run);
  jw_char(b, '"');
}

void jw_cstr(jw_buf *b, const char *s) { jw_str(b, s, strlen(s)); }

void jw_u64(jw_buf *b, uint64_t v) {
  char t[24];
  int n = snprintf(t, sizeof t, "%llu", (unsigned long long)v);
  jw_raw(b, t, (size_t)n);
}

void jw_i64(jw_buf *b, int64_t v) {
  char t[24];
  int n = snprintf(t, sizeof t, "%lld", (long long)v);
  jw_raw(b, t, (size_t)n);
}

void jw_key(jw_buf *b, int *first, const char *key) {
  if (!*first)
    jw_char(b, ',');
  *first = 0;
  jw_cstr(b, key);
  jw_char(b, ':');
}

static int dump_cb(const char *buf, size_t size, void *data) {
  jw_raw(data, buf, size);
  return 0;
}

void jw_json(jw_buf *b, const json_t *v) {
  /* compact output never contains a raw newline: strings are escaped */
  if (json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY) < 0)
    b->oom = 1;
}

char *jw_dump(const json_t *v) {
  return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

uint8_t *jw_b64_decode(const char *b64, size_t n, size_t *len) {
  if (n >= (1u << 24) || n % 4)
    return NULL;
  unsigned char *raw = malloc(n / 4 * 3 + 1);
  if (!raw)
    return NULL;
  int l = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
  if (l < 0) {
    free(raw);
    return NULL;
  }
  if (n)
    l -= (b64[n - 1] == '=') + (b64[n - 2] == '=');
  *len = (size_t)l;
  return raw;
}

char *jw_b64_json(const char *b64, size_t n) {
  size_t len;
  unsigned char *raw = n ? jw_b64_decode(b64, n, &len) : NULL;
  if (!raw)
    return NULL;
  json_error_t je;
  json_t *doc = json_loadb((const char *)raw, (size_t)len, JSON_DECODE_ANY, &je);
  free(raw);
  if (!doc)
    return NULL;
  char *text = jw_dump(doc);
  json_decref(doc);
  return text;
}
