/* SPDX-License-Identifier: MIT */
/* Unit tests for the HTTP/1.x request-head parser: complete and split input,
 * line endings, size limits, every malformed-input diagnosis, header lookup
 * and token lists; plus the error-code names in hf/err.h. */
#include <stdlib.h>

#include "hf/err.h"
#include "hf/http.h"
#include "test.h"

#define MAX_HDRS 16
#define BIG (64 * 1024)

static hf_http_header hdrs[MAX_HDRS];
static hf_http_request req;

/* Parse s[0..len) from scratch with room for MAX_HDRS headers. */
static ssize_t parse_n(const char *s, size_t len, size_t last_len,
                       size_t max_head, const char **why) {
  memset(&req, 0, sizeof req);
  req.headers = hdrs;
  req.num_headers = MAX_HDRS;
  return hf_http_parse_request(s, len, last_len, max_head, &req, why);
}

static ssize_t parse(const char *s, const char **why) {
  return parse_n(s, strlen(s), 0, BIG, why);
}

static const char upgrade_req[] =
    "GET /chat?room=1 HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

static void check_upgrade_fields(void) {
  CHECK_MEM(req.method, req.method_len, "GET");
  CHECK_MEM(req.target, req.target_len, "/chat?room=1");
  CHECK_INT(req.version_major, 1);
  CHECK_INT(req.version_minor, 1);
  CHECK_INT(req.num_headers, 7);
  if (req.num_headers != 7)
    return;
  CHECK_MEM(req.headers[0].name, req.headers[0].name_len, "Host");
  CHECK_MEM(req.headers[0].value, req.headers[0].value_len,
            "server.example.com");
  CHECK_MEM(req.headers[3].name, req.headers[3].name_len,
            "Sec-WebSocket-Key");
  CHECK_MEM(req.headers[3].value, req.headers[3].value_len,
            "dGhlIHNhbXBsZSBub25jZQ==");
  CHECK_MEM(req.headers[5].value, req.headers[5].value_len, "chat, superchat");
  CHECK_MEM(req.headers[6].value, req.headers[6].value_len, "13");
}

static void http_complete_request(void) {
  const char *why = NULL;
  ssize_t rc = parse(upgrade_req, &why);
  CHECK_INT(rc, (ssize_t)strlen(upgrade_req));
  check_upgrade_fields();
  /* Views point into the caller's buffer, not copies. */
  CHECK(req.method == upgrade_req);
}

/* Feed s in two ways: a fresh parse of every prefix, and a growing buffer
 * with last_len set as a real caller would. All incomplete prefixes must
 * say HF_EAGAIN; the complete one must give `want`. */
static void check_every_split(const char *s, ssize_t want) {
  size_t n = strlen(s);
  size_t last = 0;
  for (size_t k = 0; k < n; k++) {
    ssize_t rc = parse_n(s, k, 0, BIG, NULL);
    if (rc != HF_EAGAIN)
      HF_T_FAILF("prefix %zu of %zu: rc %zd, want HF_EAGAIN", k, n, rc);
    rc = parse_n(s, k, last, BIG, NULL);
    if (rc != HF_EAGAIN)
      HF_T_FAILF("grow to %zu (last %zu): rc %zd", k, last, rc);
    last = k;
  }
  for (size_t k = 0; k <= n; k++) {
    /* Whatever the previous call saw, the complete buffer parses the same. */
    ssize_t rc = parse_n(s, n, k == n ? 0 : k, BIG, NULL);
    if (rc != want)
      HF_T_FAILF("complete after split %zu: rc %zd, want %zd", k, rc, want);
  }
}

static void http_every_split_point(void) {
  check_every_split(upgrade_req, (ssize_t)strlen(upgrade_req));
  parse_n(upgrade_req, strlen(upgrade_req), strlen(upgrade_req) - 1, BIG,
          NULL);
  check_upgrade_fields();
  static const char lf[] = "GET / HTTP/1.1\nHost: a\n\n";
  static const char mixed[] = "GET / HTTP/1.1\r\nHost: a\n\r\n";
  check_every_split(lf, (ssize_t)sizeof lf - 1);
  check_every_split(mixed, (ssize_t)sizeof mixed - 1);
  /* Malformed heads are still only diagnosed once complete. */
  check_every_split("GET / HTTP/1.1\r\nBad Header\r\n\r\n", HF_EPROTO);
}

static void http_reuse_request_struct(void) {
  /* A caller keeps one request struct across reads: HF_EAGAIN must leave
   * the header capacity as it was. */
  hf_http_header h[MAX_HDRS];
  hf_http_request r;
  size_t n = strlen(upgrade_req), last = 0;
  memset(&r, 0, sizeof r);
  r.headers = h;
  r.num_headers = MAX_HDRS;
  for (size_t k = 1; k < n; k += 7) {
    CHECK_INT(hf_http_parse_request(upgrade_req, k, last, BIG, &r, NULL),
              HF_EAGAIN);
    CHECK_INT(r.num_headers, MAX_HDRS);
    last = k;
  }
  CHECK_INT(hf_http_parse_request(upgrade_req, n, last, BIG, &r, NULL),
            (ssize_t)n);
  CHECK_INT(r.num_headers, 7);
}

static void http_bare_lf(void) {
  const char *s = "GET /x HTTP/1.1\nHost: h\nUpgrade: websocket\n\n";
  CHECK_INT(parse(s, NULL), (ssize_t)strlen(s));
  CHECK_INT(req.num_headers, 2);
  CHECK_MEM(req.headers[0].value, req.headers[0].value_len, "h");
  CHECK_MEM(req.headers[1].name, req.headers[1].name_len, "Upgrade");
  CHECK_MEM(req.headers[1].value, req.headers[1].value_len, "websocket");
  /* Mixed endings, ending with LF CR LF. */
  s = "GET / HTTP/1.1\r\nA: 1\nB: 2\r\n\n";
  CHECK_INT(parse(s, NULL), (ssize_t)strlen(s));
  CHECK_INT(req.num_headers, 2);
  CHECK_MEM(req.headers[1].value, req.headers[1].value_len, "2");
}

static void http_trailing_bytes(void) {
  /* A client may pipeline its first frame right after the head. */
  char buf[256];
  size_t hl = strlen(upgrade_req);
  memcpy(buf, upgrade_req, hl);
  memcpy(buf + hl, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
  CHECK_INT(parse_n(buf, hl + 11, 0, BIG, NULL), (ssize_t)hl);
  check_upgrade_fields();
  /* Trailing bytes that look like another blank line do not matter. */
  const char *s = "GET / HTTP/1.1\r\nA: b\r\n\r\n\r\n\r\nXYZ";
  CHECK_INT(parse(s, NULL), 24);
}

static void http_no_headers_and_versions(void) {
  const char *why = NULL;
  CHECK_INT(parse("GET / HTTP/1.1\r\n\r\n", NULL), 18);
  CHECK_INT(req.num_headers, 0);
  /* HTTP/1.0 is well-formed; the handshake layer answers it with 505. */
  CHECK_INT(parse("GET / HTTP/1.0\r\nHost: a\r\n\r\n", &why), 27);
  CHECK_INT(req.version_major, 1);
  CHECK_INT(req.version_minor, 0);
  CHECK_INT(parse("OPTIONS * HTTP/1.1\r\n\r\n", NULL), 22);
  CHECK_MEM(req.method, req.method_len, "OPTIONS");
  CHECK_MEM(req.target, req.target_len, "*");
  /* A NULL header array is fine when its capacity is 0. */
  hf_http_request r0;
  memset(&r0, 0, sizeof r0);
  const char *s = "GET / HTTP/1.1\r\n\r\n";
  CHECK_INT(hf_http_parse_request(s, strlen(s), 0, BIG, &r0, NULL), 18);
  CHECK_INT(r0.num_headers, 0);
}

static void http_value_trimming(void) {
  const char *s = "GET / HTTP/1.1\r\n"
                  "A:   spaced  out \t \r\n"
                  "B:\r\n"
                  "C: \t \r\n"
                  "D:x\r\n"
                  "E: caf\xc3\xa9 \xff\r\n"
                  "\r\n";
  CHECK_INT(parse(s, NULL), (ssize_t)strlen(s));
  CHECK_INT(req.num_headers, 5);
  CHECK_MEM(req.headers[0].value, req.headers[0].value_len, "spaced  out");
  CHECK_INT(req.headers[1].value_len, 0);
  CHECK(req.headers[1].value != NULL);
  CHECK_INT(req.headers[2].value_len, 0);
  CHECK_MEM(req.headers[3].value, req.headers[3].value_len, "x");
  /* obs-text (bytes >= 0x80) is allowed in values. */
  CHECK_MEM(req.headers[4].value, req.headers[4].value_len, "caf\xc3\xa9 \xff");
}

static void http_max_head(void) {
  const char *why = NULL;
  size_t n = strlen(upgrade_req);
  /* Exactly max_head bytes is allowed. */
  CHECK_INT(parse_n(upgrade_req, n, 0, n, &why), (ssize_t)n);
  /* One byte over, complete: too big. */
  why = NULL;
  CHECK_INT(parse_n(upgrade_req, n, 0, n - 1, &why), HF_ETOOBIG);
  CHECK(why != NULL && strstr(why, "too large") != NULL);
  /* Incomplete and already at the limit: too big, not "read more". */
  why = NULL;
  CHECK_INT(parse_n(upgrade_req, 20, 0, 20, &why), HF_ETOOBIG);
  CHECK(why != NULL);
  CHECK_INT(parse_n(upgrade_req, 20, 0, 21, NULL), HF_EAGAIN);
  /* A complete head within the limit with more bytes beyond it is fine. */
  CHECK_INT(parse_n(upgrade_req, n, 0, 18, NULL), HF_ETOOBIG);
  const char *s = "GET / HTTP/1.1\r\n\r\nlots of frame bytes after the head";
  CHECK_INT(parse_n(s, strlen(s), 0, 18, NULL), 18);
  /* Growing a buffer past the limit one byte at a time. */
  size_t last = 0;
  for (size_t k = 1; k <= n; k++) {
    ssize_t rc = parse_n(upgrade_req, k, last, 64, NULL);
    CHECK_INT(rc, k < 64 ? HF_EAGAIN : HF_ETOOBIG);
    last = k;
  }
}

static void http_too_many_headers(void) {
  const char *why = NULL;
  const char *s = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
  hf_http_header h3[3];
  hf_http_request r;

  memset(&r, 0, sizeof r);
  r.headers = h3;
  r.num_headers = 3;
  CHECK_INT(hf_http_parse_request(s, strlen(s), 0, BIG, &r, &why),
            (ssize_t)strlen(s));
  CHECK_INT(r.num_headers, 3);

  memset(&r, 0, sizeof r);
  r.headers = h3;
  r.num_headers = 2;
  CHECK_INT(hf_http_parse_request(s, strlen(s), 0, BIG, &r, &why),
            HF_ETOOBIG);
  CHECK_STR(why, "too many header fields");

  memset(&r, 0, sizeof r);
  CHECK_INT(hf_http_parse_request(s, strlen(s), 0, BIG, &r, NULL),
            HF_ETOOBIG);
}

static const struct {
  const char *in;
  size_t len; /* explicit: some inputs embed a NUL */
  const char *why;
} malformed[] = {
#define M(lit, why) {lit, sizeof(lit) - 1, why}
    M("GET /\r\n\r\n", "malformed request line"),
    M("GET\r\n\r\n", "malformed request line"),
    M("GET  / HTTP/1.1\r\n\r\n", "malformed request line"),
    M("GET / HTTP/1.1 \r\n\r\n", "malformed request line"),
    M("GET /  HTTP/1.1\r\n\r\n", "malformed request line"),
    M(" GET / HTTP/1.1\r\n\r\n", "malformed request line"),
    M("G@T / HTTP/1.1\r\n\r\n", "malformed request line"),
    M("GET\t/ HTTP/1.1\r\n\r\n", "malformed request line"),
    M("GET /a\x01z HTTP/1.1\r\n\r\n", "malformed request line"),
    M("GET /a\x7fz HTTP/1.1\r\n\r\n", "malformed request line"),
    M("GET /\rx HTTP/1.1\r\n\r\n", "malformed request line"),
    M("GET / http/1.1\r\n\r\n", "malformed request line"),
    M("GET / HTTP/1.10\r\n\r\n", "malformed request line"),
    M("GET / HTTP/1\r\n\r\n", "malformed request line"),
    M("GET / HTTP/1.x\r\n\r\n", "malformed request line"),
    M("GET / HTTP/1.1\r\r\n\r\n", "malformed request line"),
    M("\r\n\r\n", "malformed request line"),
    M("\n\n", "malformed request line"),
    M("GET / HTTP/2.0\r\n\r\n", "unsupported HTTP version"),
    M("GET / HTTP/0.9\r\n\r\n", "unsupported HTTP version"),
    M("GET / HTTP/3.0\r\nHost: a\r\n\r\n", "unsupported HTTP version"),
    M("GET / HTTP/1.1\r\nHost example.com\r\n\r\n", "header line without a colon"),
    M("GET / HTTP/1.1\r\nHost\r\n\r\n", "header line without a colon"),
    M("GET / HTTP/1.1\r\nHost : a\r\n\r\n", "whitespace before colon"),
    M("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", "whitespace before colon"),
    M("GET / HTTP/1.1\r\nHost: a\x01z\r\n\r\n", "control character in header"),
    M("GET / HTTP/1.1\r\nHost: a\rz\r\n\r\n", "control character in header"),
    M("GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n", "control character in header"),
    M("GET / HTTP/1.1\r\nHo\x00st: a\r\n\r\n", "control character in header"),
    M("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", "control character in header"),
    M("GET / HTTP/1.1\r\n\r\r\n\r\n", "control character in header"),
    M("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", "obsolete line folding"),
    M("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", "obsolete line folding"),
    M("GET / HTTP/1.1\r\n: a\r\n\r\n", "empty header name"),
    M("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", "invalid character in header name"),
    M("GET / HTTP/1.1\r\nHo st: a\r\n\r\n", "invalid character in header name"),
#undef M
};

static void http_malformed(void) {
  for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
    const char *in = malformed[i].in;
    size_t n = malformed[i].len;
    const char *why = NULL;
    ssize_t rc = parse_n(in, n, 0, BIG, &why);
    if (rc != HF_EPROTO || !why || strcmp(why, malformed[i].why) != 0)
      HF_T_FAILF("case %zu: rc %zd why \"%s\", want HF_EPROTO \"%s\"", i, rc,
                 why ? why : "(null)", malformed[i].why);
    /* why is optional. */
    CHECK_INT(parse_n(in, n, 0, BIG, NULL), HF_EPROTO);
  }
}

static void http_find_case_insensitive(void) {
  const char *s = "GET / HTTP/1.1\r\n"
                  "Host: one\r\n"
                  "X-Dup: first\r\n"
                  "x-dup: second\r\n"
                  "SEC-WEBSOCKET-KEY: k\r\n"
                  "\r\n";
  CHECK(parse(s, NULL) > 0);
  const hf_http_header *h = hf_http_find(&req, "host");
  CHECK(h != NULL);
  if (h)
    CHECK_MEM(h->value, h->value_len, "one");
  CHECK(hf_http_find(&req, "HOST") == h);
  h = hf_http_find(&req, "x-DUP");
  CHECK(h != NULL);
  if (h)
    CHECK_MEM(h->value, h->value_len, "first");
  h = hf_http_find(&req, "Sec-WebSocket-Key");
  CHECK(h != NULL);
  if (h)
    CHECK_MEM(h->value, h->value_len, "k");
  CHECK(hf_http_find(&req, "Hos") == NULL);
  CHECK(hf_http_find(&req, "Hostx") == NULL);
  CHECK(hf_http_find(&req, "Origin") == NULL);
}

static void http_token_lists(void) {
  static const struct {
    const char *v, *tok;
    int want;
  } t[] = {
      {"Upgrade", "upgrade", 1},
      {"keep-alive, Upgrade", "upgrade", 1},
      {"Upgrade, keep-alive", "upgrade", 1},
      {" upgrade ", "upgrade", 1},
      {"\tUPGRADE\t", "upgrade", 1},
      {"keep-alive,upgrade", "upgrade", 1},
      {"a, , upgrade,", "upgrade", 1},
      {"upgrades", "upgrade", 0},
      {"xupgrade", "upgrade", 0},
      {"up grade", "upgrade", 0},
      {"keep-alive", "upgrade", 0},
      {"", "upgrade", 0},
      {",,,", "upgrade", 0},
      {"h2c, WebSocket", "websocket", 1},
      {"websocket/13", "websocket", 0},
      {"a, b", "", 0},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    int got = hf_http_has_token(t[i].v, strlen(t[i].v), t[i].tok);
    if (got != t[i].want)
      HF_T_FAILF("has_token(\"%s\", \"%s\") = %d, want %d", t[i].v, t[i].tok,
                 got, t[i].want);
  }
  /* Only value[0..len) is read. */
  CHECK_INT(hf_http_has_token("keep-alive, upgrade", 10, "upgrade"), 0);
  CHECK_INT(hf_http_has_token("upgradeXYZ", 7, "upgrade"), 1);
}

static void http_status_text(void) {
  CHECK_STR(hf_http_status_text(101), "Switching Protocols");
  CHECK_STR(hf_http_status_text(200), "OK");
  CHECK_STR(hf_http_status_text(400), "Bad Request");
  CHECK_STR(hf_http_status_text(403), "Forbidden");
  CHECK_STR(hf_http_status_text(404), "Not Found");
  CHECK_STR(hf_http_status_text(405), "Method Not Allowed");
  CHECK_STR(hf_http_status_text(408), "Request Timeout");
  CHECK_STR(hf_http_status_text(413), "Content Too Large");
  CHECK_STR(hf_http_status_text(426), "Upgrade Required");
  CHECK_STR(hf_http_status_text(429), "Too Many Requests");
  CHECK_STR(hf_http_status_text(431), "Request Header Fields Too Large");
  CHECK_STR(hf_http_status_text(500), "Internal Server Error");
  CHECK_STR(hf_http_status_text(503), "Service Unavailable");
  CHECK_STR(hf_http_status_text(505), "HTTP Version Not Supported");
  CHECK_STR(hf_http_status_text(299), "Unknown");
  CHECK_STR(hf_http_status_text(-1), "Unknown");
}

static void http_stale_last_len(void) {
  /* last_len beyond len (caller bug) must not skip the search. */
  CHECK_INT(parse_n(upgrade_req, strlen(upgrade_req), 100000, BIG, NULL),
            (ssize_t)strlen(upgrade_req));
}

static void err_names_and_text(void) {
  CHECK_STR(hf_err_name(HF_EAGAIN), "HF_EAGAIN");
  CHECK_STR(hf_err_name(HF_EPROTO), "HF_EPROTO");
  CHECK_STR(hf_err_name(HF_EIO), "HF_EIO");
  CHECK_STR(hf_strerror(HF_ETOOBIG), "size limit exceeded");
  CHECK_STR(hf_strerror(HF_EUTF8), "invalid UTF-8");
  CHECK_STR(hf_strerror(HF_ENOMEM), "out of memory");
  CHECK_STR(hf_strerror(-999), "unknown error");
  CHECK_STR(hf_strerror(42), "unknown error");
  CHECK_INT(HF_EAGAIN, -1);
  CHECK_INT(HF_EIO, -10);
  /* Every code in the table has a distinct name and non-generic text. */
  for (int e = -1; e >= -10; e--) {
    CHECK(strncmp(hf_err_name(e), "HF_E", 4) == 0);
    CHECK(strcmp(hf_strerror(e), "unknown error") != 0);
    for (int f = e - 1; f >= -10; f--)
      CHECK(strcmp(hf_err_name(e), hf_err_name(f)) != 0);
  }
}

int main(void) {
  hf_t_suite = "http";
  RUN_TEST(http_complete_request);
  RUN_TEST(http_every_split_point);
  RUN_TEST(http_reuse_request_struct);
  RUN_TEST(http_bare_lf);
  RUN_TEST(http_trailing_bytes);
  RUN_TEST(http_no_headers_and_versions);
  RUN_TEST(http_value_trimming);
  RUN_TEST(http_max_head);
  RUN_TEST(http_too_many_headers);
  RUN_TEST(http_malformed);
  RUN_TEST(http_find_case_insensitive);
  RUN_TEST(http_token_lists);
  RUN_TEST(http_status_text);
  RUN_TEST(http_stale_last_len);
  RUN_TEST(err_names_and_text);
  TEST_MAIN_END();
}
