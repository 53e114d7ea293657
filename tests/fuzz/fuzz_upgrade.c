/* SPDX-License-Identifier: MIT */
/* libFuzzer target for what the WebSocket client reads from the network or
 * the user: the HTTP response-head parser (whole and byte-split feeding
 * must agree, every view inside the buffer), the upgrade response check
 * (every outcome has a reason and a diagnosis, views inside the buffer),
 * Retry-After values, and ws:// URLs (views inside the input, ports in
 * range). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf/err.h"
#include "hf/http.h"
#include "hf/upgrade.h"
#include "hf/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                          \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_upgrade: %s:%d: invariant failed: %s\n",          \
              __FILE__, __LINE__, #cond);                                      \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#define MAX_HEAD 4096

static int inside(const char *p, size_t n, const char *buf, size_t len) {
  return p >= buf && p + n <= buf + len;
}

static void check_response(const char *buf, size_t len) {
  hf_http_header h1[16], h2[16];
  hf_http_response r1, r2;
  memset(&r1, 0, sizeof r1);
  r1.headers = h1;
  r1.num_headers = 16;
  const char *why = NULL;
  ssize_t n1 = hf_http_parse_response(buf, len, 0, MAX_HEAD, &r1, &why);
  /* fed in growing prefixes with last_len: the same answer at the end */
  ssize_t n2 = HF_EAGAIN;
  size_t last = 0;
  for (size_t k = 1; k <= len; k += 1 + k / 4) {
    memset(&r2, 0, sizeof r2);
    r2.headers = h2;
    r2.num_headers = 16;
    n2 = hf_http_parse_response(buf, k, last, MAX_HEAD, &r2, &why);
    if (n2 != HF_EAGAIN)
      break;
    last = k;
  }
  if (n2 == HF_EAGAIN && len) {
    memset(&r2, 0, sizeof r2);
    r2.headers = h2;
    r2.num_headers = 16;
    n2 = hf_http_parse_response(buf, len, last, MAX_HEAD, &r2, &why);
  }
  if (n1 >= 0 && n2 >= 0)
    REQUIRE(n1 == n2);
  if (n1 < 0 || (size_t)n1 > len)
    return;
  REQUIRE(r1.status >= 100 && r1.status <= 999);
  REQUIRE(inside(r1.reason, r1.reason_len, buf, (size_t)n1));
  for (size_t i = 0; i < r1.num_headers; i++) {
    REQUIRE(inside(r1.headers[i].name, r1.headers[i].name_len, buf, (size_t)n1));
    REQUIRE(inside(r1.headers[i].value, r1.headers[i].value_len, buf, (size_t)n1));
  }
  static const char *const protos[] = {"chat", "centrifuge-json"};
  static const char *const exts[] = {"permessage-deflate"};
  hf_upgrade_expect x = {"dGhlIHNhbXBsZSBub25jZQ==", "https://a.example", protos, 2,
                         exts, (size_t)(len & 1)};
  hf_upgrade_result res;
  hf_upgrade_code c = hf_upgrade_check(&r1, &x, 1700000000, &res);
  REQUIRE(c == res.code);
  REQUIRE(res.reason && *res.reason && res.diagnosis && *res.diagnosis && res.fix);
  REQUIRE(res.status == r1.status);
  REQUIRE((c == HF_UPG_STATUS) == (r1.status != 101));
  if (res.subprotocol)
    REQUIRE(inside(res.subprotocol, res.subprotocol_len, buf, (size_t)n1));
  if (res.acao_value)
    REQUIRE(inside(res.acao_value, res.acao_len, buf, (size_t)n1));
  if (res.location)
    REQUIRE(inside(res.location, res.location_len, buf, (size_t)n1));
  if (res.extensions)
    REQUIRE(inside(res.extensions, res.extensions_len, buf, (size_t)n1));
  REQUIRE(res.retry_after_s >= -1);
}

static void check_url(const char *s, size_t len) {
  hf_url u;
  const char *why = NULL;
  if (hf_url_parse(&u, s, len, &why) < 0) {
    REQUIRE(why && *why);
    return;
  }
  REQUIRE(u.port >= 1 && u.port <= 65535);
  REQUIRE(u.host_len > 0 && inside(u.host, u.host_len, s, len));
  REQUIRE(inside(u.authority, u.authority_len, s, len));
  REQUIRE(u.resource_len > 0 && u.resource[0] == '/');
  REQUIRE(memchr(u.resource, '#', u.resource_len) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *buf = malloc(size + 1); /* an exact-size copy: ASan sees overreads */
  if (!buf)
    return 0;
  memcpy(buf, data, size);
  buf[size] = '\0';
  check_response(buf, size);
  check_url(buf, size);
  int64_t ra = hf_upgrade_retry_after(buf, size, 1700000000);
  REQUIRE(ra >= -1);
  free(buf);
  return 0;
}
