/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the untrusted-input side of the handshake: the HTTP
 * head parser (checked for split-feeding consistency and view bounds), the
 * handshake check and response writers, the origin matcher (against a
 * reference backtracking matcher) and the incremental UTF-8 validator. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hf/err.h"
#include "hf/http.h"
#include "hf/utf8.h"
#include "hf/handshake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Invariant violations abort so libFuzzer records the input. */
#define REQUIRE(cond)                                                          \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_http: %s:%d: invariant failed: %s\n", __FILE__,    \
              __LINE__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static const char *const origins[] = {
    "https://app.example.com", "https://*.example.org", "http://localhost:*",
    "http://*.*.test"};
static const char *const protos[] = {"chat.v2", "chat", "x"};

static int in_range(const char *p, size_t n, const char *base, size_t len) {
  return p >= base && n <= len && (size_t)(p - base) <= len - n;
}

/* The parsed views must lie inside the head and be free of the bytes the
 * parser promised to reject. */
static void check_views(const hf_http_request *req, const char *buf,
                        ssize_t head) {
  size_t hl = (size_t)head;
  REQUIRE(in_range(req->method, req->method_len, buf, hl));
  REQUIRE(req->method_len > 0);
  REQUIRE(in_range(req->target, req->target_len, buf, hl));
  REQUIRE(req->target_len > 0);
  REQUIRE(req->version_major == 1);
  REQUIRE(req->version_minor >= 0 && req->version_minor <= 9);
  for (size_t i = 0; i < req->num_headers; i++) {
    const hf_http_header *h = &req->headers[i];
    REQUIRE(in_range(h->name, h->name_len, buf, hl));
    REQUIRE(in_range(h->value, h->value_len, buf, hl));
    REQUIRE(h->name_len > 0);
    REQUIRE(!memchr(h->name, ':', h->name_len));
    for (size_t j = 0; j < h->value_len; j++) {
      unsigned char c = (unsigned char)h->value[j];
      REQUIRE(c != '\r' && c != '\n' && c != 0);
    }
    if (h->value_len) {
      REQUIRE(h->value[0] != ' ' && h->value[0] != '\t');
      REQUIRE(h->value[h->value_len - 1] != ' ' &&
              h->value[h->value_len - 1] != '\t');
    }
    (void)hf_http_has_token(h->value, h->value_len, "upgrade");
  }
}

/* Write into a heap block of exactly cap bytes so ASan sees any overrun. */
static void write_bounded_101(const hf_handshake_result *res, size_t cap) {
  char *b = malloc(cap ? cap : 1);
  REQUIRE(b != NULL);
  int n = hf_handshake_write_101(b, cap, res, "X-Fuzz: 1\r\n");
  REQUIRE(n == HF_ETOOBIG || (n > 0 && (size_t)n <= cap));
  free(b);
}

static void exercise_handshake(const hf_http_request *req, uint8_t knob) {
  hf_handshake_policy pol;
  hf_handshake_result res;
  memset(&pol, 0, sizeof pol);
  pol.allowed_origins = origins;
  pol.n_allowed_origins = sizeof origins / sizeof origins[0];
  pol.allow_null_origin = knob & 1;
  pol.allow_missing_origin = (knob >> 1) & 1;
  pol.subprotocols = protos;
  pol.n_subprotocols = sizeof protos / sizeof protos[0];

  hf_hs_code code = hf_handshake_check(req, &pol, &res);
  REQUIRE(code == res.code);
  REQUIRE(res.reason != NULL && res.message != NULL);
  size_t ml = strlen(res.message);
  REQUIRE(ml > 0 && res.message[ml - 1] == '\n');

  char big[4096];
  if (code == HF_HS_OK) {
    REQUIRE(res.status == 101);
    REQUIRE(res.key != NULL && res.key_len == 24);
    int n = hf_handshake_write_101(big, sizeof big, &res, NULL);
    REQUIRE(n > 0);
    /* The head must stay one response: no CR/LF smuggled via echoes. */
    REQUIRE(n >= 4 && memcmp(big + n - 4, "\r\n\r\n", 4) == 0);
    REQUIRE(memmem(big, (size_t)n - 2, "\r\n\r\n", 4) == NULL);
    write_bounded_101(&res, (size_t)n - (knob % 8 + 1));
    write_bounded_101(&res, (size_t)n);
  } else {
    REQUIRE(res.status >= 400 && res.status < 600);
    int n = hf_http_write_response(big, sizeof big, res.status,
                                   res.extra_header, NULL, res.message, ml);
    REQUIRE(n > 0);
    size_t cap = (size_t)n - (knob % 16 + 1);
    char *b = malloc(cap);
    REQUIRE(b != NULL);
    REQUIRE(hf_http_write_response(b, cap, res.status, res.extra_header, NULL,
                                   res.message, ml) == HF_ETOOBIG);
    free(b);
  }
}

static unsigned char lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static int wild(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '-';
}

/* Straightforward recursive matcher, exponential in the worst case, so only
 * used on short origins: the reference for the library's NFA. */
static int ref_match(const char *p, const char *o, size_t n) {
  if (!*p)
    return n == 0;
  if (*p == '*') {
    for (size_t k = 1; k <= n && wild((unsigned char)o[k - 1]); k++)
      if (ref_match(p + 1, o + k, n - k))
        return 1;
    return 0;
  }
  return n > 0 && lower((unsigned char)*p) == lower((unsigned char)*o) &&
         ref_match(p + 1, o + 1, n - 1);
}

static void check_origin_matcher(const char *o, size_t n) {
  hf_handshake_policy pol;
  memset(&pol, 0, sizeof pol);
  if (n > 48)
    n = 48;
  for (size_t i = 0; i < sizeof origins / sizeof origins[0]; i++) {
    pol.allowed_origins = &origins[i];
    pol.n_allowed_origins = 1;
    REQUIRE(hf_handshake_origin_allowed(&pol, o, n) ==
            ref_match(origins[i], o, n));
  }
}

static void check_utf8(const uint8_t *p, size_t n, size_t cut) {
  size_t off_all = 0, off1 = 0, off2 = 0;
  hf_utf8_state all = hf_utf8_feed(HF_UTF8_ACCEPT, p, n, &off_all);
  hf_utf8_state st = hf_utf8_feed(HF_UTF8_ACCEPT, p, cut, &off1);
  REQUIRE(hf_utf8_valid(p, n) == (all == HF_UTF8_ACCEPT));
  if (st == HF_UTF8_REJECT) {
    REQUIRE(all == HF_UTF8_REJECT && off1 == off_all);
    return;
  }
  st = hf_utf8_feed(st, p + cut, n - cut, &off2);
  /* The DFA is deterministic: splitting must not change the outcome. */
  REQUIRE(st == all);
  if (all == HF_UTF8_REJECT)
    REQUIRE(off_all >= cut && off2 == off_all - cut);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t max_heads[] = {0, 16, 64, 1024, 65536};
  const char *buf = (const char *)data;
  hf_http_header hdrs[32];
  uint8_t knob = size ? data[size - 1] : 0;

  for (size_t m = 0; m < sizeof max_heads / sizeof max_heads[0]; m++) {
    size_t max_head = max_heads[m];
    size_t cap = (m & 1) ? 4 : 32;
    hf_http_request req, req2;
    const char *why = NULL;

    memset(&req, 0, sizeof req);
    req.headers = hdrs;
    req.num_headers = cap;
    ssize_t whole = hf_http_parse_request(buf, size, 0, max_head, &req, &why);
    REQUIRE(whole == HF_EAGAIN || whole == HF_ETOOBIG || whole == HF_EPROTO ||
            (whole > 0 && (size_t)whole <= size && (size_t)whole <= max_head));
    if (whole == HF_ETOOBIG || whole == HF_EPROTO)
      REQUIRE(why != NULL);
    if (whole == HF_EAGAIN)
      REQUIRE(size < max_head);

    /* Split feeding: a prefix either needs more input or already decides,
     * and then the full buffer (with last_len) gives the same answer. */
    for (int s = 0; s < 3 && size > 0; s++) {
      size_t k = s == 0 ? size / 2 : s == 1 ? (size_t)knob % size : size - 1;
      memset(&req2, 0, sizeof req2);
      hf_http_header h2[32];
      req2.headers = h2;
      req2.num_headers = cap;
      ssize_t first = hf_http_parse_request(buf, k, 0, max_head, &req2, NULL);
      if (first != HF_EAGAIN) {
        REQUIRE(first == whole);
        continue;
      }
      /* HF_EAGAIN must leave the capacity alone, so req2 is reused as is. */
      REQUIRE(req2.num_headers == cap);
      ssize_t second =
          hf_http_parse_request(buf, size, k, max_head, &req2, NULL);
      REQUIRE(second == whole);
      if (whole > 0)
        REQUIRE(req2.num_headers == req.num_headers &&
                req2.method_len == req.method_len);
    }

    if (whole > 0) {
      check_views(&req, buf, whole);
      for (size_t i = 0; i < req.num_headers; i++) {
        const hf_http_header *h = &req.headers[i];
        if (h->name_len == 6 && strncasecmp(h->name, "Origin", 6) == 0)
          check_origin_matcher(h->value, h->value_len);
      }
      exercise_handshake(&req, knob);
    }
  }

  check_origin_matcher(buf, size);
  check_utf8(data, size, size ? (size_t)knob % (size + 1) : 0);
  check_utf8(data, size, size / 2);
  return 0;
}
