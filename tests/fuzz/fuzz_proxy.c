/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the proxy-facing parsers in lib/: the PROXY protocol
 * v1/v2 header (hf_proxy_parse) and the forwarding headers (a request head
 * parsed by hf_http_parse_request, then hf_fwd_resolve against a trusted
 * list), plus hf_cidr_parse and hf_fwd_parse_addr on raw bytes.
 * Invariants (abort on violation):
 *   - hf_proxy_parse returns HF_EAGAIN, HF_EPROTO, HF_ETOOBIG or a length
 *     within the input and the limits; a result is the same for every
 *     prefix that already decides it, and every prefix of a complete
 *     header is HF_EAGAIN (nothing is decided before the last byte);
 *     addresses are family 4 or 6 unless local;
 *   - hf_fwd_resolve names a client of 4 or 16 bytes or none, and its
 *     proto/host views lie inside the head;
 *   - a CIDR that parses has a prefix within its family and matches its
 *     own network address; parse_addr returns 0, 4 or 16. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf/err.h"
#include "hf/forwarded.h"
#include "hf/http.h"
#include "hf/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                          \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_proxy: %s:%d: invariant failed: %s\n", __FILE__,   \
              __LINE__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static int inside(const char *p, size_t n, const char *base, size_t len) {
  return p >= base && n <= len && (size_t)(p - base) <= len - n;
}

static void check_proxy(const uint8_t *d, size_t n) {
  /* an exactly-sized heap copy: ASan sees any read past the end */
  uint8_t *b = malloc(n ? n : 1);
  REQUIRE(b != NULL);
  memcpy(b, d, n);
  hf_proxy_info pi;
  const char *why = NULL;
  ssize_t r = hf_proxy_parse(b, n, &pi, &why);
  REQUIRE(r == HF_EAGAIN || r == HF_EPROTO || r == HF_ETOOBIG || r > 0);
  if (r == HF_EPROTO || r == HF_ETOOBIG)
    REQUIRE(why != NULL);
  if (r > 0) {
    REQUIRE((size_t)r <= n && (size_t)r <= HF_PROXY_MAX_HEADER);
    REQUIRE(pi.version == 1 || pi.version == 2);
    if (pi.version == 1)
      REQUIRE(r <= HF_PROXY_V1_MAX);
    REQUIRE(pi.local || pi.family == 4 || pi.family == 6);
    /* no prefix of a complete header decides anything */
    for (size_t k = 0; k < (size_t)r; k += 1 + k / 8)
      REQUIRE(hf_proxy_parse(b, k, &pi, NULL) == HF_EAGAIN);
  }
  /* a prefix that decides decides the same way as the whole */
  for (size_t k = 0; k < n; k += 1 + k / 4) {
    ssize_t p = hf_proxy_parse(b, k, &pi, NULL);
    REQUIRE(p == HF_EAGAIN || p == r);
  }
  free(b);
}

static void check_forwarded(const uint8_t *d, size_t n) {
  char *b = malloc(n ? n : 1);
  REQUIRE(b != NULL);
  memcpy(b, d, n);
  hf_http_header hdrs[32];
  hf_http_request req;
  memset(&req, 0, sizeof req);
  req.headers = hdrs;
  req.num_headers = 32;
  ssize_t head = hf_http_parse_request(b, n, 0, 65536, &req, NULL);
  if (head > 0) {
    static const char *const nets[] = {"10.0.0.0/8", "::1", "127.0.0.0/8", "fd00::/8"};
    hf_cidr t[4];
    for (int i = 0; i < 4; i++)
      REQUIRE(hf_cidr_parse(nets[i], &t[i]) == 0);
    hf_fwd_result r;
    REQUIRE(hf_fwd_resolve(&req, t, 4, &r) == 0);
    REQUIRE(r.client_len == 0 || r.client_len == 4 || r.client_len == 16);
    if (r.client_len)
      REQUIRE(r.source != NULL);
    if (r.proto)
      REQUIRE(inside(r.proto, r.proto_len, b, (size_t)head));
    if (r.host)
      REQUIRE(inside(r.host, r.host_len, b, (size_t)head));
    (void)hf_fwd_present(&req);
  }
  free(b);
}

static void check_cidr_addr(const uint8_t *d, size_t n) {
  char s[80];
  size_t l = n < sizeof s - 1 ? n : sizeof s - 1;
  memcpy(s, d, l);
  s[l] = 0;
  hf_cidr c;
  if (hf_cidr_parse(s, &c) == 0) {
    REQUIRE(c.len == 4 || c.len == 16);
    REQUIRE(c.bits <= c.len * 8);
    REQUIRE(hf_cidr_match(&c, 1, c.addr, c.len));
  }
  uint8_t ip[16];
  size_t k = hf_fwd_parse_addr((const char *)d, n, ip);
  REQUIRE(k == 0 || k == 4 || k == 16);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!size)
    return 0;
  switch (data[0] % 3) {
  case 0:
    check_proxy(data + 1, size - 1);
    break;
  case 1:
    check_forwarded(data + 1, size - 1);
    break;
  default:
    check_cidr_addr(data + 1, size - 1);
    break;
  }
  return 0;
}
