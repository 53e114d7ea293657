/* SPDX-License-Identifier: MIT */
/* Unit tests of the client library's sans-I/O parts: ws:// URLs, the
 * response-head parser, the upgrade request and the check of the server's
 * answer (accept key, sub-protocols, extensions, every refusal diagnosis,
 * Retry-After), the close-code meanings, the reconnect reaction table, the
 * backoff bounds and the state machine driven with a fake clock. */
#include <stdlib.h>

#include "hf/close.h"
#include "hf/err.h"
#include "hf/handshake.h"
#include "hf/http.h"
#include "hf/reconnect.h"
#include "hf/upgrade.h"
#include "hf/url.h"
#include "test.h"

/* ---- URLs ------------------------------------------------------------------ */

static int url(hf_url *u, const char *s, const char **why) {
  *why = "";
  return hf_url_parse(u, s, strlen(s), why);
}

static void url_valid(void) {
  hf_url u;
  const char *why;
  CHECK_INT(url(&u, "ws://example.com/chat?room=1", &why), 0);
  CHECK_INT(u.secure, 0);
  CHECK_MEM(u.host, u.host_len, "example.com");
  CHECK_INT(u.port, 80);
  CHECK_INT(u.port_explicit, 0);
  CHECK_INT(u.host_ip, 0);
  CHECK_MEM(u.authority, u.authority_len, "example.com");
  CHECK_MEM(u.resource, u.resource_len, "/chat?room=1");

  CHECK_INT(url(&u, "WSS://Example.com", &why), 0);
  CHECK_INT(u.secure, 1);
  CHECK_INT(u.port, 443);
  CHECK_MEM(u.resource, u.resource_len, "/");

  CHECK_INT(url(&u, "ws://127.0.0.1:8000/connection/websocket", &why), 0);
  CHECK_INT(u.host_ip, 4);
  CHECK_INT(u.port, 8000);
  CHECK_INT(u.port_explicit, 1);
  CHECK_MEM(u.authority, u.authority_len, "127.0.0.1:8000");

  CHECK_INT(url(&u, "ws://[::1]:9000/x", &why), 0);
  CHECK_INT(u.host_ip, 6);
  CHECK_MEM(u.host, u.host_len, "::1");
  CHECK_MEM(u.authority, u.authority_len, "[::1]:9000");
  CHECK_INT(u.port, 9000);

  /* an empty path before a query is refused with the fix (the resource
   * would be "/?q=1", which is not a view of the input) */
  CHECK_INT(url(&u, "ws://host?q=1", &why), HF_EINVAL);
  CHECK(strstr(why, "/?") != NULL);
}

static void url_invalid(void) {
  hf_url u;
  const char *why;
  const char *bad[] = {"http://example.com/", "https://example.com/",
                       "ftp://x/", "ws:example.com", "ws://user:pw@host/",
                       "ws:///path", "ws://bad host/", "ws://host:0/",
                       "ws://host:65536/", "ws://host:x/", "ws://host/a#frag",
                       "ws://host/a b", "ws://[::1/", "ws://[fe80::1%eth0]/",
                       "ws://[zz::1]/", "ws://h\xc3\xa9/"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = url(&u, bad[i], &why);
    if (rc != HF_EINVAL || !why || !*why)
      HF_T_FAILF("%s: rc %d why \"%s\"", bad[i], rc, why ? why : "(null)");
  }
  url(&u, "https://x/", &why);
  CHECK(strstr(why, "wss://") != NULL);
  url(&u, "http://x/", &why);
  CHECK(strstr(why, "ws://") != NULL);
}

/* ---- response heads --------------------------------------------------------- */

static hf_http_header hdrs[32];
static hf_http_response res;

static ssize_t parse_resp(const char *s, const char **why) {
  memset(&res, 0, sizeof res);
  res.headers = hdrs;
  res.num_headers = 32;
  *why = "";
  return hf_http_parse_response(s, strlen(s), 0, 8192, &res, why);
}

static void response_parse(void) {
  const char *why;
  const char *ok = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
                   "Content-Length: 3\r\n\r\nno!";
  ssize_t n = parse_resp(ok, &why);
  CHECK_INT(n, (ssize_t)strlen(ok) - 3);
  CHECK_INT(res.status, 403);
  CHECK_INT(res.version_minor, 1);
  CHECK_MEM(res.reason, res.reason_len, "Forbidden");
  CHECK_INT(res.num_headers, 2);
  const hf_http_header *h = hf_http_header_find(res.headers, res.num_headers,
                                                "content-length");
  CHECK(h != NULL);
  if (h)
    CHECK_MEM(h->value, h->value_len, "3");

  CHECK_INT(parse_resp("HTTP/1.1 101\r\n\r\n", &why), 16); /* no reason */
  CHECK_INT(res.status, 101);
  CHECK_INT(res.reason_len, 0);
  CHECK_INT(parse_resp("HTTP/1.1 200 OK\r\nX: y\r\n", &why), HF_EAGAIN);
  CHECK_INT(parse_resp("HTTP/2 200 OK\r\n\r\n", &why), HF_EPROTO);
  CHECK_INT(parse_resp("HTTP/1.1 20 OK\r\n\r\n", &why), HF_EPROTO);
  CHECK_INT(parse_resp("SSH-2.0-OpenSSH\r\n\r\n", &why), HF_EPROTO);
  CHECK_STR(why, "malformed status line");
  CHECK_INT(parse_resp("HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n", &why),
            HF_EPROTO);
  /* too big: no end within max_head */
  char big[200];
  memset(big, 'a', sizeof big);
  memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
  memset(&res, 0, sizeof res);
  res.headers = hdrs;
  res.num_headers = 32;
  CHECK_INT(hf_http_parse_response(big, sizeof big, 0, 100, &res, &why),
            HF_ETOOBIG);
}

/* ---- upgrade request and check ------------------------------------------------ */

static const char KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";

static void upgrade_request(void) {
  char buf[1024];
  const char *protos[] = {"centrifuge-json", "chat"};
  const char *extra[] = {"Authorization: Bearer x", "X-Trace: 1"};
  hf_upgrade_request r = {"example.com:8000", 16, "/ws?a=1", 7, KEY,
                          "https://app.example", protos, 2, NULL, extra, 2,
                          "holdfast-client"};
  const char *why = "";
  int n = hf_upgrade_write_request(buf, sizeof buf, &r, &why);
  CHECK(n > 0);
  CHECK(strncmp(buf, "GET /ws?a=1 HTTP/1.1\r\nHost: example.com:8000\r\n", 46) == 0);
  CHECK(strstr(buf, "\r\nUpgrade: websocket\r\n") != NULL);
  CHECK(strstr(buf, "\r\nConnection: Upgrade\r\n") != NULL);
  CHECK(strstr(buf, "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n") != NULL);
  CHECK(strstr(buf, "\r\nSec-WebSocket-Version: 13\r\n") != NULL);
  CHECK(strstr(buf, "\r\nOrigin: https://app.example\r\n") != NULL);
  CHECK(strstr(buf, "\r\nSec-WebSocket-Protocol: centrifuge-json, chat\r\n") != NULL);
  CHECK(strstr(buf, "\r\nAuthorization: Bearer x\r\nX-Trace: 1\r\n\r\n") != NULL);
  CHECK_INT(hf_upgrade_write_request(buf, 40, &r, &why), HF_ETOOBIG);

  const char *bad_hdr[] = {"X-Evil: a\r\nInjected: 1"};
  r.headers = bad_hdr;
  r.n_headers = 1;
  CHECK_INT(hf_upgrade_write_request(buf, sizeof buf, &r, &why), HF_EINVAL);
  CHECK_INT(hf_upgrade_header_ok("Sec-WebSocket-Key: abc", &why), HF_EINVAL);
  CHECK_INT(hf_upgrade_header_ok("Host: evil", &why), HF_EINVAL);
  CHECK_INT(hf_upgrade_header_ok("no colon", &why), HF_EINVAL);
  CHECK_INT(hf_upgrade_header_ok("Cookie: a=b", &why), 0);
  const char *bad_proto[] = {"a b"};
  r.headers = extra;
  r.n_headers = 2;
  r.subprotocols = bad_proto;
  r.n_subprotocols = 1;
  CHECK_INT(hf_upgrade_write_request(buf, sizeof buf, &r, &why), HF_EINVAL);

  /* the key is the base64 of 16 bytes */
  uint8_t nonce[16] = "the sample nonce";
  char key[25];
  hf_upgrade_key(nonce, key);
  CHECK_STR(key, KEY);
}

static hf_upgrade_code check(const char *head, const char *origin,
                             const char *const *protos, size_t np,
                             hf_upgrade_result *out) {
  const char *why;
  if (parse_resp(head, &why) <= 0) {
    HF_T_FAILF("unparsable test response: %s", why);
    return (hf_upgrade_code)-1;
  }
  hf_upgrade_expect x = {KEY, origin, protos, np, NULL, 0};
  return hf_upgrade_check(&res, &x, 1000000, out);
}

#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static void upgrade_check_101(void) {
  hf_upgrade_result r;
  char want[29];
  hf_handshake_accept(KEY, strlen(KEY), want);
  CHECK_STR(want, ACCEPT);
  const char *protos[] = {"chat", "superchat"};
  CHECK_INT(check("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n"
                  "Sec-WebSocket-Protocol: superchat\r\n\r\n",
                  NULL, protos, 2, &r),
            HF_UPG_OK);
  CHECK_INT(r.accept, 1);
  CHECK_MEM(r.subprotocol, r.subprotocol_len, "superchat");
  CHECK_STR(r.reason, "ok");

  CHECK_INT(check("HTTP/1.1 101 X\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
                  NULL, NULL, 0, &r),
            HF_UPG_BAD_ACCEPT);
  CHECK_INT(r.accept, -1);
  CHECK_STR(r.reason, "bad_accept");
  CHECK_INT(check("HTTP/1.1 101 X\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                  NULL, NULL, 0, &r),
            HF_UPG_BAD_ACCEPT);
  CHECK_INT(r.accept, 0);
  CHECK_INT(check("HTTP/1.1 101 X\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
                  NULL, NULL, 0, &r),
            HF_UPG_NO_UPGRADE);
  CHECK_INT(check("HTTP/1.1 101 X\r\nUpgrade: websocket\r\n"
                  "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
                  NULL, NULL, 0, &r),
            HF_UPG_NO_CONNECTION);
  CHECK_INT(check("HTTP/1.0 101 X\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
                  NULL, NULL, 0, &r),
            HF_UPG_BAD_VERSION);
  /* a sub-protocol none offered, or not among those offered */
  CHECK_INT(check("HTTP/1.1 101 X\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: " ACCEPT "\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
                  NULL, NULL, 0, &r),
            HF_UPG_BAD_SUBPROTOCOL);
  CHECK_INT(check("HTTP/1.1 101 X\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: " ACCEPT "\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
                  NULL, protos, 2, &r),
            HF_UPG_BAD_SUBPROTOCOL);
  /* an extension that was not offered */
  CHECK_INT(check("HTTP/1.1 101 X\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: " ACCEPT "\r\n"
                  "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
                  NULL, NULL, 0, &r),
            HF_UPG_BAD_EXTENSION);
  CHECK_STR(r.reason, "bad_extension");
}

static void upgrade_check_refusals(void) {
  hf_upgrade_result r;
  struct {
    const char *head, *origin, *reason;
  } cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", NULL, "plain_http"},
      {"HTTP/1.1 301 Moved\r\nLocation: wss://x/\r\n\r\n", NULL, "redirect"},
      {"HTTP/1.1 400 Bad Request\r\n\r\n", NULL, "bad_request"},
      {"HTTP/1.1 401 Unauthorized\r\n\r\n", NULL, "unauthorized"},
      {"HTTP/1.1 403 Forbidden\r\n\r\n", "https://evil.example", "origin_rejected"},
      {"HTTP/1.1 403 Forbidden\r\n\r\n", NULL, "forbidden"},
      {"HTTP/1.1 404 Not Found\r\n\r\n", NULL, "not_found"},
      {"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\r\n", NULL,
       "upgrade_required"},
      {"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\n\r\n", NULL, "too_many_requests"},
      {"HTTP/1.1 502 Bad Gateway\r\n\r\n", NULL, "bad_gateway"},
      {"HTTP/1.1 503 Unavailable\r\n\r\n", NULL, "unavailable"},
      {"HTTP/1.1 500 Oops\r\n\r\n", NULL, "server_error"},
      {"HTTP/1.1 418 Teapot\r\n\r\n", NULL, "client_error"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    hf_upgrade_code c = check(cases[i].head, cases[i].origin, NULL, 0, &r);
    if (c != HF_UPG_STATUS || strcmp(r.reason, cases[i].reason) != 0 ||
        !*r.diagnosis)
      HF_T_FAILF("%s: code %d reason %s", cases[i].head, c, r.reason);
  }
  check("HTTP/1.1 200 OK\r\n\r\n", NULL, NULL, 0, &r);
  CHECK(strstr(r.fix, "proxy_set_header Upgrade") != NULL);
  check("HTTP/1.1 403 Forbidden\r\n\r\n", "https://evil.example", NULL, 0, &r);
  CHECK(strstr(r.fix, "allowed_origins") != NULL);
  check("HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\n\r\n", NULL, NULL, 0, &r);
  CHECK_INT(r.retry_after_s, 7);
  check("HTTP/1.1 301 Moved\r\nLocation: wss://x/\r\n\r\n", NULL, NULL, 0, &r);
  CHECK_MEM(r.location, r.location_len, "wss://x/");
  /* Access-Control-Allow-Origin against the Origin sent */
  check("HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: https://a.example\r\n\r\n",
        "https://a.example", NULL, 0, &r);
  CHECK_INT(r.acao, HF_UPG_ACAO_MATCH);
  check("HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: https://b.example\r\n\r\n",
        "https://a.example", NULL, 0, &r);
  CHECK_INT(r.acao, HF_UPG_ACAO_MISMATCH);
  check("HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\n\r\n",
        "https://a.example", NULL, 0, &r);
  CHECK_INT(r.acao, HF_UPG_ACAO_ANY);
  check("HTTP/1.1 200 OK\r\n\r\n", "https://a.example", NULL, 0, &r);
  CHECK_INT(r.acao, HF_UPG_ACAO_ABSENT);
  check("HTTP/1.1 200 OK\r\n\r\n", NULL, NULL, 0, &r);
  CHECK_INT(r.acao, HF_UPG_ACAO_NO_ORIGIN);
}

static void retry_after(void) {
  const char *d = "Sun, 06 Nov 1994 08:49:37 GMT";
  CHECK_INT(hf_upgrade_retry_after("120", 3, 0), 120);
  CHECK_INT(hf_upgrade_retry_after(d, strlen(d), 784111777 - 30), 30);
  CHECK_INT(hf_upgrade_retry_after(d, strlen(d), 784111777 + 30), 0);
  CHECK_INT(hf_upgrade_retry_after("soon", 4, 0), -1);
  CHECK_INT(hf_upgrade_retry_after("", 0, 0), -1);
  CHECK_INT(hf_upgrade_retry_after("12x", 3, 0), -1);
}

/* ---- close codes ------------------------------------------------------------------ */

static void close_meaning(void) {
  CHECK_STR(hf_close_meaning(1000), "normal closure");
  CHECK(strstr(hf_close_meaning(1006), "without a close frame") != NULL);
  CHECK(strstr(hf_close_meaning(3500), "terminal") != NULL);
  CHECK_STR(hf_close_meaning(3333), "library code, reconnect range");
  CHECK_STR(hf_close_meaning(3777), "library code, terminal range");
  CHECK_STR(hf_close_meaning(4001), "application code, reconnect range");
  CHECK_STR(hf_close_meaning(4999), "application code, terminal range");
  CHECK_STR(hf_close_meaning(2000), "unknown code");
}

/* ---- reconnection ------------------------------------------------------------------ */

static void reconnect_table(void) {
  hf_reconnect_config c;
  hf_reconnect_config_init(&c);
  struct {
    hf_cause cause;
    int code;
    hf_rc_action want;
  } t[] = {
      {HF_CAUSE_CLOSE_FRAME, 1000, HF_RC_STOP},
      {HF_CAUSE_CLOSE_FRAME, 1001, HF_RC_BACKOFF},
      {HF_CAUSE_CLOSE_FRAME, 1006, HF_RC_BACKOFF},
      {HF_CAUSE_CLOSE_FRAME, 1011, HF_RC_BACKOFF},
      {HF_CAUSE_CLOSE_FRAME, 1012, HF_RC_BACKOFF},
      {HF_CAUSE_CLOSE_FRAME, 1013, HF_RC_BACKOFF},
      {HF_CAUSE_CLOSE_FRAME, 1014, HF_RC_BACKOFF},
      {HF_CAUSE_CLOSE_FRAME, 1002, HF_RC_STOP},
      {HF_CAUSE_CLOSE_FRAME, 1003, HF_RC_STOP},
      {HF_CAUSE_CLOSE_FRAME, 1007, HF_RC_STOP},
      {HF_CAUSE_CLOSE_FRAME, 1009, HF_RC_STOP},
      {HF_CAUSE_CLOSE_FRAME, 1010, HF_RC_STOP},
      {HF_CAUSE_CLOSE_FRAME, 3001, HF_RC_BACKOFF},
      {HF_CAUSE_CLOSE_FRAME, 3005, HF_RC_BACKOFF}, /* no refresh callback */
      {HF_CAUSE_CLOSE_FRAME, 3499, HF_RC_BACKOFF},
      {HF_CAUSE_CLOSE_FRAME, 3500, HF_RC_STOP},
      {HF_CAUSE_CLOSE_FRAME, 3999, HF_RC_STOP},
      {HF_CAUSE_CLOSE_FRAME, 4000, HF_RC_BACKOFF},
      {HF_CAUSE_CLOSE_FRAME, 4500, HF_RC_STOP},
      {HF_CAUSE_HTTP, 401, HF_RC_STOP},
      {HF_CAUSE_HTTP, 403, HF_RC_STOP},
      {HF_CAUSE_HTTP, 404, HF_RC_STOP},
      {HF_CAUSE_HTTP, 429, HF_RC_BACKOFF},
      {HF_CAUSE_HTTP, 503, HF_RC_BACKOFF},
      {HF_CAUSE_HTTP, 502, HF_RC_BACKOFF},
      {HF_CAUSE_PROTOCOL, 1002, HF_RC_STOP},
      {HF_CAUSE_HANDSHAKE, 0, HF_RC_STOP},
      {HF_CAUSE_TLS_CERT, 0, HF_RC_STOP},
      {HF_CAUSE_ABNORMAL, 1006, HF_RC_BACKOFF},
      {HF_CAUSE_HEARTBEAT, 1006, HF_RC_BACKOFF},
      {HF_CAUSE_TCP, 0, HF_RC_BACKOFF},
      {HF_CAUSE_DNS, 0, HF_RC_BACKOFF},
      {HF_CAUSE_TIMEOUT, 0, HF_RC_BACKOFF},
      {HF_CAUSE_USER, 1000, HF_RC_STOP},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    hf_rc_action a = hf_reconnect_classify(&c, t[i].cause, t[i].code);
    if (a != t[i].want)
      HF_T_FAILF("%s %d: %d, want %d", hf_cause_name(t[i].cause), t[i].code, a,
                 t[i].want);
  }
  c.can_refresh = 1;
  CHECK_INT(hf_reconnect_classify(&c, HF_CAUSE_HTTP, 401), HF_RC_REFRESH);
  CHECK_INT(hf_reconnect_classify(&c, HF_CAUSE_CLOSE_FRAME, 3005), HF_RC_REFRESH);
}

static void backoff_bounds(void) {
  hf_reconnect_config c;
  hf_reconnect_config_init(&c);
  c.min_ms = 100;
  c.max_ms = 5000;
  c.factor = 2;
  uint32_t rnds[] = {0, 1, 0x7fffffffu, 0x80000000u, 0xffffffffu};
  for (uint32_t n = 0; n < 100; n++)
    for (size_t k = 0; k < 5; k++) {
      uint64_t d = hf_reconnect_backoff(&c, n, rnds[k]);
      if (d < c.min_ms || d > c.max_ms)
        HF_T_FAILF("n %u rnd %u: %llu out of bounds", n, rnds[k],
                   (unsigned long long)d);
    }
  /* full jitter: the ceiling grows min * factor^n */
  CHECK_INT(hf_reconnect_backoff(&c, 0, 0), 100);
  CHECK(hf_reconnect_backoff(&c, 0, 0xffffffffu) <= 200);
  CHECK(hf_reconnect_backoff(&c, 3, 0xffffffffu) >= 850); /* 100 + ~800 */
  CHECK(hf_reconnect_backoff(&c, 3, 0xffffffffu) <= 900);
  CHECK_INT(hf_reconnect_backoff(&c, 40, 0xffffffffu), 5000);
  /* the spread is real: different random numbers, different delays */
  CHECK(hf_reconnect_backoff(&c, 5, 0x10000000u) !=
        hf_reconnect_backoff(&c, 5, 0xe0000000u));
}

static void state_machine(void) {
  hf_reconnect_config c;
  hf_reconnect_config_init(&c);
  c.min_ms = 100;
  c.max_ms = 1000;
  c.healthy_ms = 5000;
  c.max_attempts = 3;
  hf_reconnect r;
  hf_reconnect_init(&r, &c);
  uint64_t now = 1000;
  CHECK_INT(r.state, HF_CLIENT_STOPPED);
  CHECK_INT(hf_reconnect_opened(&r, now), HF_EINVAL); /* not connecting */
  CHECK_INT(hf_reconnect_connect(&r), 0);
  CHECK_INT(hf_reconnect_connect(&r), HF_EINVAL);
  CHECK_INT(hf_reconnect_opened(&r, now), 0);
  CHECK_INT(r.state, HF_CLIENT_OPEN);
  /* a short-lived connection: the attempt count grows */
  hf_reconnect_decision d =
      hf_reconnect_ended(&r, now + 10, HF_CAUSE_ABNORMAL, 1006, -1, 0);
  CHECK_INT(d.to, HF_CLIENT_WAITING);
  CHECK_INT(d.attempt, 1);
  CHECK_INT(d.delay_ms, 100);
  CHECK(!hf_reconnect_due(&r, now + 10 + 99));
  CHECK(hf_reconnect_due(&r, now + 10 + 100));
  /* failed attempts: 2, 3, then give up */
  for (uint32_t k = 2; k <= 3; k++) {
    CHECK_INT(hf_reconnect_connect(&r), 0);
    d = hf_reconnect_ended(&r, now, HF_CAUSE_TCP, 0, -1, 0xffffffffu);
    CHECK_INT(d.to, HF_CLIENT_WAITING);
    CHECK_INT(d.attempt, k);
    CHECK(d.delay_ms >= 100 && d.delay_ms <= 1000);
  }
  CHECK_INT(hf_reconnect_connect(&r), 0);
  d = hf_reconnect_ended(&r, now, HF_CAUSE_TCP, 0, -1, 0);
  CHECK_INT(d.to, HF_CLIENT_STOPPED);
  CHECK(strstr(d.why, "maximum") != NULL);

  /* a healthy connection resets the count */
  hf_reconnect_init(&r, &c);
  hf_reconnect_connect(&r);
  hf_reconnect_ended(&r, now, HF_CAUSE_TCP, 0, -1, 0);
  hf_reconnect_connect(&r);
  hf_reconnect_ended(&r, now, HF_CAUSE_TCP, 0, -1, 0);
  CHECK_INT(r.attempts, 2);
  hf_reconnect_connect(&r);
  hf_reconnect_opened(&r, now);
  CHECK_INT(hf_reconnect_closing(&r), 0);
  d = hf_reconnect_ended(&r, now + 6000, HF_CAUSE_CLOSE_FRAME, 1001, -1, 0);
  CHECK_INT(d.to, HF_CLIENT_WAITING);
  CHECK_INT(d.attempt, 1);

  /* terminal codes stop, whatever the budget */
  hf_reconnect_connect(&r);
  hf_reconnect_opened(&r, now);
  d = hf_reconnect_ended(&r, now + 1, HF_CAUSE_CLOSE_FRAME, 3501, -1, 0);
  CHECK_INT(d.to, HF_CLIENT_STOPPED);
  CHECK_INT(d.action, HF_RC_STOP);

  /* Retry-After: at least that long, plus up to min_ms of spread */
  hf_reconnect_connect(&r);
  d = hf_reconnect_ended(&r, now, HF_CAUSE_HTTP, 503, 30000, 0x80000000u);
  CHECK_INT(d.to, HF_CLIENT_WAITING);
  CHECK(d.delay_ms >= 30000 && d.delay_ms <= 30100);
  CHECK(strstr(d.why, "Retry-After") != NULL);
  /* ... capped at one hour */
  hf_reconnect_connect(&r);
  d = hf_reconnect_ended(&r, now, HF_CAUSE_HTTP, 429, 99999999, 0);
  CHECK_INT(d.delay_ms, 3600000);

  /* disabled: every ending stops, with that reason */
  c.enabled = 0;
  hf_reconnect_init(&r, &c);
  hf_reconnect_connect(&r);
  d = hf_reconnect_ended(&r, now, HF_CAUSE_TCP, 0, -1, 0);
  CHECK_INT(d.to, HF_CLIENT_STOPPED);
  CHECK_INT(d.action, HF_RC_BACKOFF);
  CHECK_STR(d.why, "reconnection is disabled");

  /* refresh: 401 with a credentials callback waits and reconnects */
  c.enabled = 1;
  c.can_refresh = 1;
  hf_reconnect_init(&r, &c);
  hf_reconnect_connect(&r);
  d = hf_reconnect_ended(&r, now, HF_CAUSE_HTTP, 401, -1, 0);
  CHECK_INT(d.to, HF_CLIENT_WAITING);
  CHECK_INT(d.action, HF_RC_REFRESH);
  hf_reconnect_stop(&r);
  CHECK_INT(r.state, HF_CLIENT_STOPPED);
  CHECK_STR(hf_client_state_name(HF_CLIENT_WAITING), "waiting");
  CHECK_STR(hf_cause_name(HF_CAUSE_HEARTBEAT), "heartbeat");
}

int main(void) {
  hf_t_suite = "client";
  RUN_TEST(url_valid);
  RUN_TEST(url_invalid);
  RUN_TEST(response_parse);
  RUN_TEST(upgrade_request);
  RUN_TEST(upgrade_check_101);
  RUN_TEST(upgrade_check_refusals);
  RUN_TEST(retry_after);
  RUN_TEST(close_meaning);
  RUN_TEST(reconnect_table);
  RUN_TEST(backoff_bounds);
  RUN_TEST(state_machine);
  TEST_MAIN_END();
}
