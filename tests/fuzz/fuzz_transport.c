// fuzz-sources: server/transport/http.c
/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the untrusted inputs of the HTTP transports
 * (server/transport/http.c): the cf_connect query decoder (output
 * bounded by max and never longer than the input, the same result for
 * every max at or above the decoded length), session id parsing (worker
 * numbers only from "<digits>." ids) and the CORS answer for any request
 * head (well-formed header lines only: the request's Origin and
 * Access-Control-Request-Headers are echoed, and the parser already
 * refuses CR/LF in values). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf/err.h"
#include "hf/http.h"
#include "transport/transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                          \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_transport: %s:%d: invariant failed: %s\n",         \
              __FILE__, __LINE__, #cond);                                      \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static void check_query(const char *t, size_t n) {
  uint8_t *out = NULL;
  size_t len = 0;
  int r = tr_query_connect(t, n, 1 << 20, &out, &len);
  REQUIRE(r == 0 || r == 1 || r == -1);
  if (r != 0)
    return;
  REQUIRE(len >= 1 && len <= n);
  uint8_t *o2 = NULL;
  size_t l2 = 0;
  REQUIRE(tr_query_connect(t, n, len, &o2, &l2) == 0 && l2 == len &&
          memcmp(out, o2, len) == 0);
  free(o2);
  if (len > 1)
    REQUIRE(tr_query_connect(t, n, len - 1, &o2, &l2) == -1);
  free(out);
}

static void check_session(const char *p, size_t n) {
  int w = tr_session_worker(p, n);
  REQUIRE(w >= -1 && w < 10000);
  if (w >= 0)
    REQUIRE(n >= 2 && p[0] >= '0' && p[0] <= '9' && memchr(p, '.', n));
}

static void check_cors(const char *p, size_t n) {
  hf_http_header hdrs[64];
  hf_http_request req = {0};
  req.headers = hdrs;
  req.num_headers = 64;
  const char *why = NULL;
  if (hf_http_parse_request(p, n, 0, 8192, &req, &why) <= 0)
    return;
  static const char *const origins[] = {"https://app.example.com", "http://*.test"};
  hf_handshake_policy pol = {.allowed_origins = origins, .n_allowed_origins = 2,
                             .allow_null_origin = (n & 1), .allow_missing_origin = (n & 2) != 0};
  char out[1200];
  why = NULL;
  int st = tr_cors(&req, &pol, out, sizeof out, &why);
  REQUIRE(st == 0 || (st == 403 && why));
  if (st)
    return;
  size_t ol = strlen(out);
  REQUIRE(ol < sizeof out);
  /* whole header lines, each "Name: value\r\n" without a bare CR or LF */
  for (size_t i = 0; i < ol; i++) {
    if (out[i] == '\r')
      REQUIRE(i + 1 < ol && out[i + 1] == '\n');
    if (out[i] == '\n')
      REQUIRE(i > 0 && out[i - 1] == '\r');
  }
  REQUIRE(ol == 0 || (ol >= 2 && out[ol - 2] == '\r' && out[ol - 1] == '\n'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 16384)
    return 0;
  check_query((const char *)data, size);
  check_session((const char *)data, size);
  check_cors((const char *)data, size);
  return 0;
}
