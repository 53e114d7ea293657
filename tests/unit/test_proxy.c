/* SPDX-License-Identifier: MIT */
/* Unit tests for the proxy layer in lib/: the PROXY protocol v1/v2 parser
 * (addresses, LOCAL/UNKNOWN, TLVs, every split point, malformed headers)
 * and the trusted-proxy side (CIDR parsing and matching, forwarded address
 * forms, X-Forwarded-For / Forwarded / X-Real-IP walks from the right,
 * proto and host). */
#include <arpa/inet.h>
#include <stdlib.h>

#include "hf/err.h"
#include "hf/forwarded.h"
#include "hf/http.h"
#include "hf/proxy.h"
#include "test.h"

static const uint8_t v2sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                  0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static ssize_t parse_s(const char *s, hf_proxy_info *pi, const char **why) {
  return hf_proxy_parse((const uint8_t *)s, strlen(s), pi, why);
}

static void ip4(const uint8_t *b, char *out) { inet_ntop(AF_INET, b, out, 64); }

static void proxy_v1_tcp4(void) {
  const char *h = "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\nGET / HTTP/1.1\r\n";
  hf_proxy_info pi;
  ssize_t r = parse_s(h, &pi, NULL);
  CHECK_INT(r, 44);
  CHECK_INT(pi.version, 1);
  CHECK_INT(pi.local, 0);
  CHECK_INT(pi.family, 4);
  char a[64];
  ip4(pi.src, a);
  CHECK_STR(a, "203.0.113.7");
  ip4(pi.dst, a);
  CHECK_STR(a, "192.0.2.1");
  CHECK_INT(pi.src_port, 51234);
  CHECK_INT(pi.dst_port, 443);
}

static void proxy_v1_tcp6_unknown(void) {
  hf_proxy_info pi;
  ssize_t r = parse_s("PROXY TCP6 2001:db8::1 ::1 1 65535\r\n", &pi, NULL);
  CHECK(r > 0);
  CHECK_INT(pi.family, 6);
  CHECK_INT(pi.src[0], 0x20);
  CHECK_INT(pi.src[15], 1);
  CHECK_INT(pi.dst_port, 65535);
  r = parse_s("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", &pi, NULL);
  CHECK(r > 0);
  CHECK_INT(pi.local, 1);
  r = parse_s("PROXY UNKNOWN\r\n", &pi, NULL);
  CHECK_INT(r, 15);
  CHECK_INT(pi.local, 1);
}

static void proxy_v1_every_split(void) {
  const char *h = "PROXY TCP4 10.1.2.3 10.0.0.1 4000 80\r\n";
  size_t n = strlen(h);
  hf_proxy_info pi;
  for (size_t k = 0; k < n; k++)
    CHECK_INT(hf_proxy_parse((const uint8_t *)h, k, &pi, NULL), HF_EAGAIN);
  CHECK_INT(hf_proxy_parse((const uint8_t *)h, n, &pi, NULL), (ssize_t)n);
}

static void proxy_v1_malformed(void) {
  static const char *const bad[] = {
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",        /* LF without CR */
      "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",      /* protocol */
      "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",        /* too few fields */
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",    /* too many */
      "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",     /* two spaces */
      "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",          /* v6 address in TCP4 */
      "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",          /* v4 address in TCP6 */
      "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",  /* port range */
      "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",     /* leading zero */
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 x\r\n",      /* not a number */
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",     /* trailing space */
      "PROXY \r\n",                              /* nothing */
      "PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n",     /* stray CR */
      "GET / HTTP/1.1\r\n\r\n",                  /* not PROXY at all */
      "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",      /* case */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    hf_proxy_info pi;
    const char *why = NULL;
    ssize_t r = parse_s(bad[i], &pi, &why);
    if (r != HF_EPROTO)
      HF_T_FAILF("case %zu %s: %zd", i, bad[i], r);
    CHECK(why != NULL && strlen(why) > 10);
  }
  /* a line that never ends within 107 bytes */
  char longl[200];
  memset(longl, 'a', sizeof longl);
  memcpy(longl, "PROXY UNKNOWN ", 14);
  hf_proxy_info pi;
  CHECK_INT(hf_proxy_parse((const uint8_t *)longl, 106, &pi, NULL), HF_EAGAIN);
  CHECK_INT(hf_proxy_parse((const uint8_t *)longl, sizeof longl, &pi, NULL), HF_EPROTO);
  /* early refusal: the first byte already tells */
  CHECK_INT(hf_proxy_parse((const uint8_t *)"\x16\x03\x01", 3, &pi, NULL), HF_EPROTO);
  CHECK_INT(hf_proxy_parse((const uint8_t *)"PRO", 3, &pi, NULL), HF_EAGAIN);
  CHECK_INT(hf_proxy_parse((const uint8_t *)"PRX", 3, &pi, NULL), HF_EPROTO);
}

/* A v2 header: command, family byte, address block, extra TLV bytes. */
static size_t v2(uint8_t *b, uint8_t cmd, uint8_t fam, const uint8_t *addr,
                 size_t alen, size_t tlv) {
  memcpy(b, v2sig, 12);
  b[12] = (uint8_t)(0x20 | cmd);
  b[13] = fam;
  size_t body = alen + tlv;
  b[14] = (uint8_t)(body >> 8);
  b[15] = (uint8_t)body;
  memcpy(b + 16, addr, alen);
  for (size_t i = 0; i < tlv; i++)
    b[16 + alen + i] = (uint8_t)i;
  return 16 + body;
}

static void proxy_v2_inet(void) {
  uint8_t a[12] = {198, 51, 100, 9, 10, 0, 0, 1, 0xC8, 0x01, 0x01, 0xBB};
  uint8_t b[64];
  size_t n = v2(b, 1, 0x11, a, 12, 7); /* with TLV bytes, skipped */
  hf_proxy_info pi;
  CHECK_INT(hf_proxy_parse(b, n + 5, &pi, NULL), (ssize_t)n);
  CHECK_INT(pi.version, 2);
  CHECK_INT(pi.family, 4);
  char s[64];
  ip4(pi.src, s);
  CHECK_STR(s, "198.51.100.9");
  CHECK_INT(pi.src_port, 0xC801);
  CHECK_INT(pi.dst_port, 443);
  for (size_t k = 0; k < n; k++)
    if (hf_proxy_parse(b, k, &pi, NULL) != HF_EAGAIN)
      HF_T_FAILF("prefix %zu not HF_EAGAIN", k);
}

static void proxy_v2_inet6_local_unix(void) {
  uint8_t a[36] = {0x20, 0x01, 0x0d, 0xb8};
  a[15] = 5;
  a[32] = 0x12;
  a[33] = 0x34;
  uint8_t b[300];
  hf_proxy_info pi;
  size_t n = v2(b, 1, 0x21, a, 36, 0);
  CHECK_INT(hf_proxy_parse(b, n, &pi, NULL), (ssize_t)n);
  CHECK_INT(pi.family, 6);
  CHECK_INT(pi.src[15], 5);
  CHECK_INT(pi.src_port, 0x1234);
  n = v2(b, 0, 0x00, a, 0, 0); /* LOCAL: health check by the proxy */
  CHECK_INT(hf_proxy_parse(b, n, &pi, NULL), 16);
  CHECK_INT(pi.local, 1);
  uint8_t ux[216] = {0};
  n = v2(b, 1, 0x31, ux, 216, 0); /* a UNIX socket client: keep the peer */
  CHECK_INT(hf_proxy_parse(b, n, &pi, NULL), (ssize_t)n);
  CHECK_INT(pi.local, 1);
}

static void proxy_v2_malformed(void) {
  uint8_t a[36] = {0};
  uint8_t b[300];
  hf_proxy_info pi;
  size_t n = v2(b, 1, 0x11, a, 8, 0); /* IPv4 block too short */
  CHECK_INT(hf_proxy_parse(b, n, &pi, NULL), HF_EPROTO);
  n = v2(b, 1, 0x21, a, 20, 0); /* IPv6 block too short */
  CHECK_INT(hf_proxy_parse(b, n, &pi, NULL), HF_EPROTO);
  n = v2(b, 2, 0x11, a, 12, 0); /* command 2 */
  CHECK_INT(hf_proxy_parse(b, n, &pi, NULL), HF_EPROTO);
  n = v2(b, 1, 0x11, a, 12, 0);
  b[12] = 0x11; /* version 1 in a v2 signature */
  CHECK_INT(hf_proxy_parse(b, n, &pi, NULL), HF_EPROTO);
  n = v2(b, 1, 0x41, a, 12, 0); /* family 4 */
  CHECK_INT(hf_proxy_parse(b, n, &pi, NULL), HF_EPROTO);
  memcpy(b, v2sig, 12);
  b[12] = 0x21;
  b[13] = 0x11;
  b[14] = 0x20; /* 8192 bytes announced */
  b[15] = 0x00;
  CHECK_INT(hf_proxy_parse(b, 16, &pi, NULL), HF_ETOOBIG);
  memcpy(b, v2sig, 12);
  b[5] = 0x0C; /* damaged signature */
  CHECK_INT(hf_proxy_parse(b, 12, &pi, NULL), HF_EPROTO);
}

/* ---- CIDRs and forwarding headers ------------------------------------------ */

static void cidr_parse_match(void) {
  hf_cidr c[4];
  CHECK_INT(hf_cidr_parse("10.0.0.0/8", &c[0]), 0);
  CHECK_INT(hf_cidr_parse("192.168.1.7", &c[1]), 0);
  CHECK_INT(hf_cidr_parse("fd00::/8", &c[2]), 0);
  CHECK_INT(hf_cidr_parse("::ffff:172.16.0.0/108", &c[3]), 0); /* mapped: 172.16/12 */
  CHECK_INT(c[1].bits, 32);
  CHECK_INT(c[3].len, 4);
  CHECK_INT(c[3].bits, 12);
  uint8_t ip[16];
  inet_pton(AF_INET, "10.200.3.4", ip);
  CHECK(hf_cidr_match(c, 4, ip, 4));
  inet_pton(AF_INET, "11.0.0.1", ip);
  CHECK(!hf_cidr_match(c, 4, ip, 4));
  inet_pton(AF_INET, "192.168.1.7", ip);
  CHECK(hf_cidr_match(c, 4, ip, 4));
  inet_pton(AF_INET, "192.168.1.8", ip);
  CHECK(!hf_cidr_match(c, 4, ip, 4));
  inet_pton(AF_INET, "172.31.255.255", ip);
  CHECK(hf_cidr_match(c, 4, ip, 4));
  inet_pton(AF_INET6, "fdab::1", ip);
  CHECK(hf_cidr_match(c, 4, ip, 16));
  inet_pton(AF_INET6, "fe80::1", ip);
  CHECK(!hf_cidr_match(c, 4, ip, 16));
  inet_pton(AF_INET6, "::ffff:10.9.9.9", ip); /* mapped peer vs IPv4 list */
  CHECK(hf_cidr_match(c, 4, ip, 16));
  hf_cidr any;
  CHECK_INT(hf_cidr_parse("0.0.0.0/0", &any), 0);
  inet_pton(AF_INET, "8.8.8.8", ip);
  CHECK(hf_cidr_match(&any, 1, ip, 4));
  static const char *const bad[] = {"10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/", "10.0.0/8",
                                    "fd00::/129", "x", "", "10.0.0.0/8x", "::ffff:1.2.3.4/95"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (hf_cidr_parse(bad[i], &any) != HF_EINVAL)
      HF_T_FAILF("accepted bad CIDR %s", bad[i]);
}

static void fwd_addr_forms(void) {
  uint8_t ip[16];
  CHECK_INT(hf_fwd_parse_addr("1.2.3.4", 7, ip), 4);
  CHECK_INT(hf_fwd_parse_addr(" 1.2.3.4:80 ", 12, ip), 4);
  CHECK_INT(ip[3], 4);
  CHECK_INT(hf_fwd_parse_addr("2001:db8::1", 11, ip), 16);
  CHECK_INT(hf_fwd_parse_addr("\"[2001:db8::1]:4711\"", 20, ip), 16);
  CHECK_INT(hf_fwd_parse_addr("[::1]", 5, ip), 16);
  CHECK_INT(hf_fwd_parse_addr("::ffff:1.2.3.4", 14, ip), 4);
  static const char *const bad[] = {"unknown", "_hidden", "1.2.3.4:x", "[::1]x", "[::1",
                                    "1.2.3", "", "\"\"", "1.2.3.4:80:90"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (hf_fwd_parse_addr(bad[i], strlen(bad[i]), ip) != 0)
      HF_T_FAILF("parsed bad address %s", bad[i]);
}

static hf_http_header hh[16];
static hf_http_request rq;

static void headers(const char *const *nv, size_t n) {
  memset(&rq, 0, sizeof rq);
  rq.headers = hh;
  for (size_t i = 0; i < n; i++) {
    hh[i].name = nv[2 * i];
    hh[i].name_len = strlen(nv[2 * i]);
    hh[i].value = nv[2 * i + 1];
    hh[i].value_len = strlen(nv[2 * i + 1]);
  }
  rq.num_headers = n;
}

static hf_cidr trusted[2];

static const char *client_of(const char *const *nv, size_t n, hf_fwd_result *r) {
  static char buf[64];
  headers(nv, n);
  hf_fwd_resolve(&rq, trusted, 2, r);
  if (!r->client_len)
    return "-";
  inet_ntop(r->client_len == 4 ? AF_INET : AF_INET6, r->client, buf, sizeof buf);
  return buf;
}

static void fwd_resolve_walks(void) {
  hf_cidr_parse("10.0.0.0/8", &trusted[0]);
  hf_cidr_parse("::1", &trusted[1]);
  hf_fwd_result r;
  const char *a[] = {"X-Forwarded-For", "198.51.100.1, 203.0.113.7, 10.0.0.5"};
  CHECK_STR(client_of(a, 1, &r), "203.0.113.7"); /* a spoofed left entry is ignored */
  CHECK_STR(r.source, "x-forwarded-for");
  CHECK_INT(r.hops, 1);
  const char *b[] = {"x-forwarded-for", "198.51.100.1", "X-Forwarded-For", "10.1.1.1, 10.2.2.2"};
  CHECK_STR(client_of(b, 2, &r), "198.51.100.1"); /* lines joined in order */
  const char *c[] = {"X-Forwarded-For", "10.0.0.9, 10.0.0.5"};
  CHECK_STR(client_of(c, 1, &r), "10.0.0.9"); /* all trusted: the left-most */
  const char *d[] = {"X-Forwarded-For", "203.0.113.9, unknown, 10.0.0.5"};
  CHECK_STR(client_of(d, 1, &r), "10.0.0.5"); /* junk stops the walk */
  CHECK_INT(r.bad, 1);
  const char *e[] = {"X-Forwarded-For", "garbage"};
  CHECK_STR(client_of(e, 1, &r), "-");
  const char *f[] = {"Forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43",
                     "Forwarded", "for=\"[2001:db8:cafe::17]:4711\";proto=https;host=app.example.com, for=10.0.0.2",
                     "X-Forwarded-For", "1.1.1.1"};
  CHECK_STR(client_of(f, 3, &r), "2001:db8:cafe::17"); /* Forwarded wins over XFF */
  CHECK_STR(r.source, "forwarded");
  CHECK_MEM(r.proto, r.proto_len, "https");
  CHECK_MEM(r.host, r.host_len, "app.example.com");
  const char *g[] = {"X-Real-IP", "203.0.113.50", "X-Forwarded-Proto", "http, https",
                     "X-Forwarded-Host", "a.example, b.example"};
  CHECK_STR(client_of(g, 3, &r), "203.0.113.50");
  CHECK_STR(r.source, "x-real-ip");
  CHECK_MEM(r.proto, r.proto_len, "https"); /* the right-most value */
  CHECK_MEM(r.host, r.host_len, "b.example");
  const char *h[] = {"Forwarded", "proto=https"}; /* no for= */
  CHECK_STR(client_of(h, 1, &r), "-");
  CHECK_INT(r.bad, 1);
  const char *i[] = {"Forwarded", "for=\"_gazonk\""}; /* obfuscated */
  CHECK_STR(client_of(i, 1, &r), "-");
  const char *j[] = {"User-Agent", "x"};
  headers(j, 1);
  CHECK(!hf_fwd_present(&rq));
  headers(g, 3);
  CHECK(hf_fwd_present(&rq));
  /* a long padded chain: only the right-most 64 entries are walked */
  char longv[4000] = "";
  for (int k = 0; k < 100; k++)
    strcat(longv, "10.0.0.1, ");
  strcat(longv, "203.0.113.1, 10.0.0.2");
  const char *l[] = {"X-Forwarded-For", longv};
  CHECK_STR(client_of(l, 1, &r), "203.0.113.1");
}

int main(void) {
  hf_t_suite = "proxy";
  RUN_TEST(proxy_v1_tcp4);
  RUN_TEST(proxy_v1_tcp6_unknown);
  RUN_TEST(proxy_v1_every_split);
  RUN_TEST(proxy_v1_malformed);
  RUN_TEST(proxy_v2_inet);
  RUN_TEST(proxy_v2_inet6_local_unix);
  RUN_TEST(proxy_v2_malformed);
  RUN_TEST(cidr_parse_match);
  RUN_TEST(fwd_addr_forms);
  RUN_TEST(fwd_resolve_walks);
  TEST_MAIN_END();
}
