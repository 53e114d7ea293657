/* SPDX-License-Identifier: MIT */
/* Unit tests for the RFC 6455 server handshake: the accept key, every
 * rejection with its status, reason and extra header, the check order,
 * origin allow-list patterns, sub-protocol selection and the response
 * writers' output and bounds. */
#include <stdlib.h>

#include "hf/err.h"
#include "hf/http.h"
#include "hf/handshake.h"
#include "test.h"

#define RL "GET /ws HTTP/1.1\r\n"
#define H_HOST "Host: example.com\r\n"
#define H_UPG "Upgrade: websocket\r\n"
#define H_CONN "Connection: Upgrade\r\n"
#define H_VER "Sec-WebSocket-Version: 13\r\n"
#define H_KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define H_ORIG "Origin: https://app.example.com\r\n"
#define END "\r\n"
#define GOOD_HEADERS H_HOST H_UPG H_CONN H_VER H_KEY H_ORIG

#define NGINX_LINES                                                            \
  "proxy_http_version 1.1;\n"                                                 \
  "    proxy_set_header Upgrade $http_upgrade;\n"                             \
  "    proxy_set_header Connection \"upgrade\";\n"

static const char *const origins[] = {"https://app.example.com",
                                      "https://*.example.org",
                                      "http://localhost:*"};
static const char *const protos[] = {"chat.v2", "chat.v1"};

static hf_handshake_policy policy(void) {
  hf_handshake_policy p;
  memset(&p, 0, sizeof p);
  p.allowed_origins = origins;
  p.n_allowed_origins = sizeof origins / sizeof origins[0];
  p.subprotocols = protos;
  p.n_subprotocols = sizeof protos / sizeof protos[0];
  return p;
}

static char reqbuf[4096];
static hf_http_header hdrs[32];
static hf_http_request req;

/* Parse a head into the shared request; views stay valid until the next
 * call. Returns 0 on success so callers can skip the check on test bugs. */
static int load(const char *head) {
  size_t n = strlen(head);
  if (n >= sizeof reqbuf)
    return -1;
  memcpy(reqbuf, head, n);
  memset(&req, 0, sizeof req);
  req.headers = hdrs;
  req.num_headers = sizeof hdrs / sizeof hdrs[0];
  ssize_t rc = hf_http_parse_request(reqbuf, n, 0, sizeof reqbuf, &req, NULL);
  if (rc != (ssize_t)n) {
    HF_T_FAILF("test request did not parse (rc %zd): %s", rc, head);
    return -1;
  }
  return 0;
}

static hf_hs_code check_with(const char *head, const hf_handshake_policy *pol,
                             hf_handshake_result *res) {
  memset(res, 0xA5, sizeof *res); /* prove every field is written */
  if (load(head) != 0)
    return (hf_hs_code)-1;
  return hf_handshake_check(&req, pol, res);
}

static void hs_accept_rfc_example(void) {
  char out[29];
  memset(out, 'X', sizeof out);
  hf_handshake_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
  CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  /* key_len is honoured: trailing bytes are not hashed. */
  hf_handshake_accept("dGhlIHNhbXBsZSBub25jZQ==garbage", 24, out);
  CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  /* Another known pair (from the MDN WebSocket server guide). */
  hf_handshake_accept("x3JJHMbDL1EzLkh9GBhXDw==", 24, out);
  CHECK_STR(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
  CHECK_INT(strlen(out), 28);
}

static void hs_valid_request(void) {
  hf_handshake_policy pol = policy();
  hf_handshake_result res;
  CHECK_INT(check_with(RL GOOD_HEADERS END, &pol, &res), HF_HS_OK);
  CHECK_INT(res.code, HF_HS_OK);
  CHECK_INT(res.status, 101);
  CHECK_STR(res.reason, "ok");
  CHECK(res.message != NULL);
  CHECK(res.extra_header == NULL);
  CHECK_MEM(res.key, res.key_len, "dGhlIHNhbXBsZSBub25jZQ==");
  CHECK_MEM(res.origin, res.origin_len, "https://app.example.com");
  CHECK(res.subprotocol == NULL);
  CHECK_INT(res.subprotocol_len, 0);
  /* Views point into the request buffer. */
  CHECK(res.key >= reqbuf && res.key < reqbuf + sizeof reqbuf);

  /* Lenient spellings that are all legal. */
  CHECK_INT(check_with("GET /ws HTTP/1.1\r\n"
                       "host: example.com\r\n"
                       "upgrade: WebSocket\r\n"
                       "connection: keep-alive, Upgrade\r\n"
                       "sec-websocket-version:  13 \r\n"
                       "sec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
                       "origin: HTTPS://APP.EXAMPLE.COM\r\n"
                       "\r\n",
                       &pol, &res),
            HF_HS_OK);
  /* Upgrade offering several protocols, Connection split over lines. */
  CHECK_INT(check_with(RL H_HOST "Upgrade: h2c, websocket\r\n"
                              "Connection: keep-alive\r\n"
                              "Connection: upgrade\r\n" H_VER H_KEY H_ORIG END,
                       &pol, &res),
            HF_HS_OK);
  /* Any later minor version of HTTP/1 is fine. */
  CHECK_INT(check_with("GET / HTTP/1.2\r\n" GOOD_HEADERS END, &pol, &res),
            HF_HS_OK);
}

static const struct {
  const char *name;
  const char *head;
  hf_hs_code code;
  int status;
  const char *reason;
  const char *extra; /* NULL: no extra header */
} rejections[] = {
    {"post", "POST /ws HTTP/1.1\r\n" GOOD_HEADERS END, HF_HS_BAD_METHOD, 405,
     "bad_method", "Allow: GET\r\n"},
    {"lowercase get", "get /ws HTTP/1.1\r\n" GOOD_HEADERS END,
     HF_HS_BAD_METHOD, 405, "bad_method", "Allow: GET\r\n"},
    {"http/1.0", "GET /ws HTTP/1.0\r\n" GOOD_HEADERS END, HF_HS_BAD_VERSION,
     505, "http_version", NULL},
    {"no host", RL H_UPG H_CONN H_VER H_KEY H_ORIG END, HF_HS_NO_HOST, 400,
     "missing_host", NULL},
    {"two hosts", RL H_HOST "Host: other.com\r\n" H_UPG H_CONN H_VER H_KEY
         H_ORIG END,
     HF_HS_NO_HOST, 400, "missing_host", NULL},
    {"no upgrade", RL H_HOST H_CONN H_VER H_KEY H_ORIG END, HF_HS_NO_UPGRADE,
     426, "missing_upgrade", "Upgrade: websocket\r\n"},
    {"plain browser GET", RL H_HOST "Accept: text/html\r\n" END,
     HF_HS_NO_UPGRADE, 426, "missing_upgrade", "Upgrade: websocket\r\n"},
    {"upgrade h2c", RL H_HOST "Upgrade: h2c\r\n" H_CONN H_VER H_KEY H_ORIG END,
     HF_HS_BAD_UPGRADE, 400, "bad_upgrade", NULL},
    {"upgrade websocketx",
     RL H_HOST "Upgrade: websocketx\r\n" H_CONN H_VER H_KEY H_ORIG END,
     HF_HS_BAD_UPGRADE, 400, "bad_upgrade", NULL},
    {"upgrade empty", RL H_HOST "Upgrade:\r\n" H_CONN H_VER H_KEY H_ORIG END,
     HF_HS_BAD_UPGRADE, 400, "bad_upgrade", NULL},
    {"no connection", RL H_HOST H_UPG H_VER H_KEY H_ORIG END,
     HF_HS_NO_CONNECTION_UPGRADE, 400, "missing_connection_upgrade", NULL},
    {"connection keep-alive",
     RL H_HOST H_UPG "Connection: keep-alive\r\n" H_VER H_KEY H_ORIG END,
     HF_HS_NO_CONNECTION_UPGRADE, 400, "missing_connection_upgrade", NULL},
    {"connection upgrades",
     RL H_HOST H_UPG "Connection: upgrades\r\n" H_VER H_KEY H_ORIG END,
     HF_HS_NO_CONNECTION_UPGRADE, 400, "missing_connection_upgrade", NULL},
    {"no version", RL H_HOST H_UPG H_CONN H_KEY H_ORIG END,
     HF_HS_BAD_WS_VERSION, 426, "unsupported_version",
     "Sec-WebSocket-Version: 13\r\n"},
    {"version 8",
     RL H_HOST H_UPG H_CONN "Sec-WebSocket-Version: 8\r\n" H_KEY H_ORIG END,
     HF_HS_BAD_WS_VERSION, 426, "unsupported_version",
     "Sec-WebSocket-Version: 13\r\n"},
    {"version 13, 8",
     RL H_HOST H_UPG H_CONN "Sec-WebSocket-Version: 13, 8\r\n" H_KEY H_ORIG
         END,
     HF_HS_BAD_WS_VERSION, 426, "unsupported_version",
     "Sec-WebSocket-Version: 13\r\n"},
    {"version 013",
     RL H_HOST H_UPG H_CONN "Sec-WebSocket-Version: 013\r\n" H_KEY H_ORIG END,
     HF_HS_BAD_WS_VERSION, 426, "unsupported_version",
     "Sec-WebSocket-Version: 13\r\n"},
    {"two versions", RL H_HOST H_UPG H_CONN H_VER H_VER H_KEY H_ORIG END,
     HF_HS_BAD_WS_VERSION, 426, "unsupported_version",
     "Sec-WebSocket-Version: 13\r\n"},
    {"no key", RL H_HOST H_UPG H_CONN H_VER H_ORIG END, HF_HS_BAD_KEY, 400,
     "bad_key", NULL},
    {"key 23 chars",
     RL H_HOST H_UPG H_CONN H_VER
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n" H_ORIG END,
     HF_HS_BAD_KEY, 400, "bad_key", NULL},
    {"key unpadded",
     RL H_HOST H_UPG H_CONN H_VER
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n" H_ORIG END,
     HF_HS_BAD_KEY, 400, "bad_key", NULL},
    {"key 25 chars",
     RL H_HOST H_UPG H_CONN H_VER
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ===\r\n" H_ORIG END,
     HF_HS_BAD_KEY, 400, "bad_key", NULL},
    {"key of 17 bytes",
     RL H_HOST H_UPG H_CONN H_VER
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZTE=\r\n" H_ORIG END,
     HF_HS_BAD_KEY, 400, "bad_key", NULL},
    {"key url-safe alphabet",
     RL H_HOST H_UPG H_CONN H_VER
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j-_==\r\n" H_ORIG END,
     HF_HS_BAD_KEY, 400, "bad_key", NULL},
    {"key padding inside",
     RL H_HOST H_UPG H_CONN H_VER
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ===\r\n" H_ORIG END,
     HF_HS_BAD_KEY, 400, "bad_key", NULL},
    {"key with space",
     RL H_HOST H_UPG H_CONN H_VER
         "Sec-WebSocket-Key: dGhlIHNhbXBsZS Bub25jZ==\r\n" H_ORIG END,
     HF_HS_BAD_KEY, 400, "bad_key", NULL},
    {"two keys", RL H_HOST H_UPG H_CONN H_VER H_KEY H_KEY H_ORIG END,
     HF_HS_BAD_KEY, 400, "bad_key", NULL},
    {"origin not listed",
     RL H_HOST H_UPG H_CONN H_VER H_KEY "Origin: https://evil.com\r\n" END,
     HF_HS_ORIGIN_REJECTED, 403, "origin_rejected", NULL},
    {"origin other port",
     RL H_HOST H_UPG H_CONN H_VER H_KEY
         "Origin: https://app.example.com:8443\r\n" END,
     HF_HS_ORIGIN_REJECTED, 403, "origin_rejected", NULL},
    {"two origins",
     RL H_HOST H_UPG H_CONN H_VER H_KEY H_ORIG "Origin: https://evil.com\r\n"
         END,
     HF_HS_ORIGIN_REJECTED, 403, "origin_rejected", NULL},
    {"null origin", RL H_HOST H_UPG H_CONN H_VER H_KEY "Origin: null\r\n" END,
     HF_HS_NULL_ORIGIN, 403, "null_origin", NULL},
    {"missing origin", RL H_HOST H_UPG H_CONN H_VER H_KEY END,
     HF_HS_MISSING_ORIGIN, 403, "missing_origin", NULL},
};

static void hs_rejections(void) {
  hf_handshake_policy pol = policy();
  for (size_t i = 0; i < sizeof rejections / sizeof rejections[0]; i++) {
    hf_handshake_result res;
    hf_hs_code code = check_with(rejections[i].head, &pol, &res);
    const char *want_extra = rejections[i].extra;
    int extra_ok = want_extra ? (res.extra_header &&
                                 strcmp(res.extra_header, want_extra) == 0)
                              : res.extra_header == NULL;
    if (code != rejections[i].code || res.code != code ||
        res.status != rejections[i].status || !res.reason ||
        strcmp(res.reason, rejections[i].reason) != 0 || !extra_ok)
      HF_T_FAILF("%s: code %d status %d reason %s extra %s; want %d %d %s",
                 rejections[i].name, (int)code, res.status,
                 res.reason ? res.reason : "(null)",
                 res.extra_header ? res.extra_header : "(null)",
                 (int)rejections[i].code, rejections[i].status,
                 rejections[i].reason);
    /* Every rejection explains itself in whole lines of plain text. */
    size_t ml = res.message ? strlen(res.message) : 0;
    if (ml < 10 || res.message[ml - 1] != '\n' || strchr(res.message, '\r'))
      HF_T_FAILF("%s: bad message", rejections[i].name);
    CHECK(res.subprotocol == NULL);
  }
}

static void hs_messages(void) {
  hf_handshake_policy pol = policy();
  hf_handshake_result res;

  check_with(RL H_HOST H_CONN H_VER H_KEY H_ORIG END, &pol, &res);
  CHECK_STR(res.reason, "missing_upgrade");
  CHECK(strstr(res.message, "proxy") != NULL);
  CHECK(strstr(res.message, "plain HTTP request") != NULL);
  CHECK(strstr(res.message, NGINX_LINES) != NULL);

  check_with(RL H_HOST H_UPG "Connection: close\r\n" H_VER H_KEY H_ORIG END,
             &pol, &res);
  CHECK_STR(res.reason, "missing_connection_upgrade");
  CHECK(strstr(res.message, "Prox") != NULL ||
        strstr(res.message, "prox") != NULL);
  CHECK(strstr(res.message, NGINX_LINES) != NULL);

  check_with(RL H_HOST H_UPG H_CONN H_VER H_KEY "Origin: https://x.net\r\n" END,
             &pol, &res);
  CHECK_STR(res.message,
            "Origin not allowed: this server accepts pages of its own origin (the "
            "host the request was sent to) and the origins in its allowed origins "
            "list.\n");
}

/* Same-origin pages: Origin host[:port] == Host (default ports either
 * way), or == the host a trusted proxy forwarded; off unless asked for. */
static void hs_same_origin(void) {
  hf_handshake_policy pol = policy();
  hf_handshake_result res;
  const char *page = RL "Host: chat.test:8000\r\n" H_UPG H_CONN H_VER H_KEY
                        "Origin: http://Chat.Test:8000\r\n" END;
  CHECK_INT(check_with(page, &pol, &res), HF_HS_ORIGIN_REJECTED); /* off */
  pol.allow_same_origin = 1;
  CHECK_INT(check_with(page, &pol, &res), HF_HS_OK);
  CHECK_MEM(res.origin, res.origin_len, "http://Chat.Test:8000");
  CHECK_INT(check_with(RL "Host: chat.test:8001\r\n" H_UPG H_CONN H_VER H_KEY
                          "Origin: http://chat.test:8000\r\n" END,
                       &pol, &res),
            HF_HS_ORIGIN_REJECTED); /* another port is another origin */
  CHECK_INT(check_with(RL "Host: chat.test:443\r\n" H_UPG H_CONN H_VER H_KEY
                          "Origin: https://chat.test\r\n" END,
                       &pol, &res),
            HF_HS_OK);
  CHECK_INT(check_with(RL "Host: chat.test\r\n" H_UPG H_CONN H_VER H_KEY
                          "Origin: http://chat.test:80\r\n" END,
                       &pol, &res),
            HF_HS_OK);
  CHECK_INT(check_with(RL "Host: chat.test\r\n" H_UPG H_CONN H_VER H_KEY
                          "Origin: https://chat.test.evil.com\r\n" END,
                       &pol, &res),
            HF_HS_ORIGIN_REJECTED);
  /* behind a proxy that rewrote Host: the forwarded host decides */
  const char *proxied = RL "Host: 127.0.0.1:8000\r\n" H_UPG H_CONN H_VER H_KEY
                           "Origin: https://chat.example\r\n" END;
  CHECK_INT(check_with(proxied, &pol, &res), HF_HS_ORIGIN_REJECTED);
  pol.same_origin_host = "chat.example";
  pol.same_origin_host_len = 12;
  CHECK_INT(check_with(proxied, &pol, &res), HF_HS_OK);
  CHECK_INT(check_with(page, &pol, &res), HF_HS_ORIGIN_REJECTED);
  /* the helper on its own */
  CHECK(hf_handshake_same_origin("wss://a.test", 12, "a.test:443", 10));
  CHECK(!hf_handshake_same_origin("ftp://a.test", 12, "a.test", 6));
  CHECK(!hf_handshake_same_origin("https://a.test/x", 16, "a.test", 6));
  CHECK(!hf_handshake_same_origin("https://u@a.test", 16, "a.test", 6));
  CHECK(!hf_handshake_same_origin("a.test", 6, "a.test", 6));
  CHECK(!hf_handshake_same_origin("https://a.test", 14, "", 0));
  CHECK(hf_handshake_same_origin("http://[::1]:80", 15, "[::1]", 5));
}

static void hs_check_order(void) {
  /* Each step fixes the previously reported problem; the next one in the
   * documented order must surface. */
  static const struct {
    const char *head;
    hf_hs_code code;
  } steps[] = {
      {"PUT /ws HTTP/1.0\r\n\r\n", HF_HS_BAD_METHOD},
      {"GET /ws HTTP/1.0\r\n\r\n", HF_HS_BAD_VERSION},
      {RL "Upgrade: h2c\r\n\r\n", HF_HS_NO_HOST},
      {RL H_HOST "Sec-WebSocket-Key: x\r\n\r\n", HF_HS_NO_UPGRADE},
      {RL H_HOST "Upgrade: h2c\r\n\r\n", HF_HS_BAD_UPGRADE},
      {RL H_HOST H_UPG "Sec-WebSocket-Version: 7\r\n\r\n",
       HF_HS_NO_CONNECTION_UPGRADE},
      {RL H_HOST H_UPG H_CONN "Sec-WebSocket-Key: x\r\n\r\n",
       HF_HS_BAD_WS_VERSION},
      {RL H_HOST H_UPG H_CONN H_VER "Origin: https://evil.com\r\n\r\n",
       HF_HS_BAD_KEY},
      {RL H_HOST H_UPG H_CONN H_VER H_KEY "Origin: https://evil.com\r\n\r\n",
       HF_HS_ORIGIN_REJECTED},
      {RL GOOD_HEADERS "\r\n", HF_HS_OK},
  };
  hf_handshake_policy pol = policy();
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    hf_handshake_result res;
    hf_hs_code c = check_with(steps[i].head, &pol, &res);
    if (c != steps[i].code)
      HF_T_FAILF("step %zu: code %d, want %d", i, (int)c, (int)steps[i].code);
  }
}

static void hs_origin_flags(void) {
  hf_handshake_policy pol = policy();
  hf_handshake_result res;
  const char *nul = RL H_HOST H_UPG H_CONN H_VER H_KEY "Origin: null\r\n" END;
  const char *none = RL H_HOST H_UPG H_CONN H_VER H_KEY END;

  CHECK_INT(check_with(nul, &pol, &res), HF_HS_NULL_ORIGIN);
  CHECK_INT(check_with(none, &pol, &res), HF_HS_MISSING_ORIGIN);
  CHECK(res.origin == NULL);

  pol.allow_null_origin = 1;
  CHECK_INT(check_with(nul, &pol, &res), HF_HS_OK);
  CHECK_MEM(res.origin, res.origin_len, "null");
  CHECK_INT(check_with(none, &pol, &res), HF_HS_MISSING_ORIGIN);

  pol.allow_null_origin = 0;
  pol.allow_missing_origin = 1;
  CHECK_INT(check_with(none, &pol, &res), HF_HS_OK);
  CHECK(res.origin == NULL);
  CHECK_INT(res.origin_len, 0);
  CHECK_INT(check_with(nul, &pol, &res), HF_HS_NULL_ORIGIN);

  /* "*" accepts any origin but not "null": that has its own switch. */
  static const char *const any[] = {"*"};
  pol.allowed_origins = any;
  pol.n_allowed_origins = 1;
  pol.allow_missing_origin = 0;
  CHECK_INT(check_with(nul, &pol, &res), HF_HS_NULL_ORIGIN);
  CHECK_INT(check_with(RL H_HOST H_UPG H_CONN H_VER H_KEY
                           "Origin: https://whatever.test\r\n" END,
                       &pol, &res),
            HF_HS_OK);

  /* An empty allow-list (or no policy at all) accepts no browser. */
  pol.n_allowed_origins = 0;
  CHECK_INT(check_with(RL GOOD_HEADERS END, &pol, &res),
            HF_HS_ORIGIN_REJECTED);
  CHECK_INT(check_with(RL GOOD_HEADERS END, NULL, &res),
            HF_HS_ORIGIN_REJECTED);
  CHECK_INT(check_with(none, NULL, &res), HF_HS_MISSING_ORIGIN);
}

static int allowed(const hf_handshake_policy *pol, const char *o) {
  return hf_handshake_origin_allowed(pol, o, strlen(o));
}

static void hs_origin_patterns(void) {
  hf_handshake_policy pol = policy();
  /* exact, case-insensitive */
  CHECK_INT(allowed(&pol, "https://app.example.com"), 1);
  CHECK_INT(allowed(&pol, "HTTPS://App.Example.COM"), 1);
  CHECK_INT(allowed(&pol, "https://app.example.co"), 0);
  CHECK_INT(allowed(&pol, "https://app.example.com.evil.net"), 0);
  CHECK_INT(allowed(&pol, "https://app.example.com/"), 0);
  CHECK_INT(allowed(&pol, "http://app.example.com"), 0);
  CHECK_INT(allowed(&pol, ""), 0);
  /* wildcard subdomain */
  CHECK_INT(allowed(&pol, "https://a.example.org"), 1);
  CHECK_INT(allowed(&pol, "https://a.b-c.example.org"), 1);
  CHECK_INT(allowed(&pol, "https://A.EXAMPLE.ORG"), 1);
  CHECK_INT(allowed(&pol, "https://example.org"), 0);
  CHECK_INT(allowed(&pol, "https://.example.org"), 0);
  CHECK_INT(allowed(&pol, "https://evil.com/.example.org"), 0);
  CHECK_INT(allowed(&pol, "https://evil.com?.example.org"), 0);
  CHECK_INT(allowed(&pol, "https://evil.com#.example.org"), 0);
  CHECK_INT(allowed(&pol, "https://user@evil.com.example.org"), 0);
  CHECK_INT(allowed(&pol, "https://a.example.org.evil.com"), 0);
  CHECK_INT(allowed(&pol, "https://a.example.org:444"), 0);
  CHECK_INT(allowed(&pol, "http://a.example.org"), 0);
  CHECK_INT(allowed(&pol, "https://evilexample.org"), 0);
  /* wildcard port */
  CHECK_INT(allowed(&pol, "http://localhost:8080"), 1);
  CHECK_INT(allowed(&pol, "http://localhost:"), 0);
  CHECK_INT(allowed(&pol, "http://localhost"), 0);
  CHECK_INT(allowed(&pol, "http://localhost:80/x"), 0);
  /* length is honoured: trailing bytes are not part of the origin */
  CHECK_INT(hf_handshake_origin_allowed(&pol, "https://app.example.comX", 23),
            1);

  static const char *const any[] = {"*"};
  hf_handshake_policy p2 = pol;
  p2.allowed_origins = any;
  p2.n_allowed_origins = 1;
  CHECK_INT(allowed(&p2, "https://anything.at.all:1234"), 1);
  CHECK_INT(allowed(&p2, "moz-extension://abc"), 1);

  /* Several stars, and a star in the middle of a label. */
  static const char *const multi[] = {"https://*.*.example.com",
                                      "https://app-*.example.net"};
  p2.allowed_origins = multi;
  p2.n_allowed_origins = 2;
  CHECK_INT(allowed(&p2, "https://a.b.example.com"), 1);
  CHECK_INT(allowed(&p2, "https://x.y.z.example.com"), 1);
  CHECK_INT(allowed(&p2, "https://a.example.com"), 0);
  CHECK_INT(allowed(&p2, "https://app-pr42.example.net"), 1);
  CHECK_INT(allowed(&p2, "https://app-.example.net"), 0);

  /* A pattern that makes naive backtracking exponential stays cheap. */
  static const char *const patho[] = {"https://*a*a*a*a*a*a*a*a*a*a*a*a*a*b"};
  char longo[300];
  memcpy(longo, "https://", 8);
  memset(longo + 8, 'a', 200);
  longo[208] = '\0';
  p2.allowed_origins = patho;
  p2.n_allowed_origins = 1;
  CHECK_INT(allowed(&p2, longo), 0);
  /* ...and still matches when it should (it needs 28 characters). */
  CHECK_INT(allowed(&p2, "https://aaaaaaaaaaaaaaaaaaaaaaaaaab"), 0);
  CHECK_INT(allowed(&p2, "https://aaaaaaaaaaaaaaaaaaaaaaaaaaab"), 1);
  longo[207] = 'b';
  CHECK_INT(allowed(&p2, longo), 1);

  /* Over-long wildcard patterns never match (fail closed). */
  static char bigpat[700];
  static const char *const big[] = {bigpat};
  memcpy(bigpat, "https://*.", 10);
  memset(bigpat + 10, 'x', 600);
  bigpat[610] = '\0';
  p2.allowed_origins = big;
  char bigorigin[700];
  memcpy(bigorigin, "https://a.", 10);
  memset(bigorigin + 10, 'x', 600);
  CHECK_INT(hf_handshake_origin_allowed(&p2, bigorigin, 610), 0);

  /* NULL entries and NULL policy are tolerated. */
  static const char *const holes[] = {NULL, "https://ok.test"};
  p2.allowed_origins = holes;
  p2.n_allowed_origins = 2;
  CHECK_INT(allowed(&p2, "https://ok.test"), 1);
  CHECK_INT(allowed(NULL, "https://ok.test"), 0);
}

static void hs_subprotocols(void) {
  hf_handshake_policy pol = policy();
  hf_handshake_result res;
#define BASE RL GOOD_HEADERS

  /* Server preference wins over client order. */
  CHECK_INT(check_with(BASE "Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n" END,
                       &pol, &res),
            HF_HS_OK);
  CHECK_MEM(res.subprotocol, res.subprotocol_len, "chat.v2");
  CHECK(res.subprotocol >= reqbuf && res.subprotocol < reqbuf + sizeof reqbuf);

  CHECK_INT(check_with(BASE "Sec-WebSocket-Protocol: x, chat.v1\r\n" END, &pol,
                       &res),
            HF_HS_OK);
  CHECK_MEM(res.subprotocol, res.subprotocol_len, "chat.v1");

  /* Offers spread over several header lines. */
  CHECK_INT(check_with(BASE "Sec-WebSocket-Protocol: foo\r\n"
                            "Sec-WebSocket-Protocol: bar, chat.v1\r\n" END,
                       &pol, &res),
            HF_HS_OK);
  CHECK_MEM(res.subprotocol, res.subprotocol_len, "chat.v1");

  /* No overlap: still accepted, no protocol selected (RFC 6455 4.2.2). */
  CHECK_INT(check_with(BASE "Sec-WebSocket-Protocol: mqtt\r\n" END, &pol,
                       &res),
            HF_HS_OK);
  CHECK(res.subprotocol == NULL);

  /* Exact token match only: case and prefixes matter. */
  CHECK_INT(check_with(BASE "Sec-WebSocket-Protocol: CHAT.V2, chat\r\n" END,
                       &pol, &res),
            HF_HS_OK);
  CHECK(res.subprotocol == NULL);

  /* No offer at all. */
  CHECK_INT(check_with(BASE END, &pol, &res), HF_HS_OK);
  CHECK(res.subprotocol == NULL);

  /* A server without sub-protocols ignores offers. */
  pol.n_subprotocols = 0;
  CHECK_INT(check_with(BASE "Sec-WebSocket-Protocol: chat.v2\r\n" END, &pol,
                       &res),
            HF_HS_OK);
  CHECK(res.subprotocol == NULL);

  /* refuse_unmatched: an offer without overlap is refused, naming both
   * sides; a match or no offer at all still passes. */
  pol = policy();
  pol.refuse_unmatched = 1;
  CHECK_INT(check_with(BASE "Sec-WebSocket-Protocol: mqtt, wamp\r\n" END, &pol,
                       &res),
            HF_HS_SUBPROTOCOL);
  CHECK_INT(res.status, 400);
  CHECK(strcmp(res.reason, "unsupported_subprotocol") == 0);
  CHECK(strstr(res.message, "Supported: chat.v2, chat.v1") != NULL);
  CHECK(strstr(res.message, "Offered: mqtt, wamp") != NULL);
  CHECK(res.message[strlen(res.message) - 1] == '\n');
  CHECK_INT(check_with(BASE "Sec-WebSocket-Protocol: mqtt, chat.v1\r\n" END, &pol,
                       &res),
            HF_HS_OK);
  CHECK_MEM(res.subprotocol, res.subprotocol_len, "chat.v1");
  CHECK_INT(check_with(BASE END, &pol, &res), HF_HS_OK);
  CHECK_INT(check_with(BASE "Sec-WebSocket-Protocol: , \r\n" END, &pol, &res), HF_HS_OK);
  /* a long or non-printable offer is cut, the body stays bounded text */
  char big[3000];
  int n = snprintf(big, sizeof big, "%sSec-WebSocket-Protocol: ", BASE);
  memset(big + n, 'x', 1500);
  big[n + 5] = '\x80'; /* obs-text: allowed in a value, not echoed */
  snprintf(big + n + 1500, sizeof big - (size_t)n - 1500, "\r\n%s", END);
  if (check_with(big, &pol, &res) != HF_HS_SUBPROTOCOL)
    HF_T_FAILF("long offer: not refused");
  CHECK(strlen(res.message) < sizeof res.msgbuf);
  CHECK(strstr(res.message, "Offered: xxxxx.") != NULL);
#undef BASE
}

static const char want_101[] =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "Sec-WebSocket-Protocol: chat.v2\r\n"
    "Access-Control-Allow-Origin: https://app.example.com\r\n"
    "Vary: Origin\r\n"
    "X-Holdfast-Connection-Id: 7\r\n"
    "\r\n";

static void hs_write_101(void) {
  hf_handshake_policy pol = policy();
  hf_handshake_result res;
  char buf[512];

  CHECK_INT(check_with(RL GOOD_HEADERS "Sec-WebSocket-Protocol: chat.v2\r\n" END,
                       &pol, &res),
            HF_HS_OK);
  int n = hf_handshake_write_101(buf, sizeof buf, &res,
                                 "X-Holdfast-Connection-Id: 7\r\n");
  CHECK_INT(n, (int)strlen(want_101));
  if (n > 0)
    CHECK_MEM(buf, (size_t)n, want_101);

  /* No origin, no protocol, no extras: the minimal head. */
  pol.allow_missing_origin = 1;
  CHECK_INT(check_with(RL H_HOST H_UPG H_CONN H_VER H_KEY END, &pol, &res),
            HF_HS_OK);
  n = hf_handshake_write_101(buf, sizeof buf, &res, NULL);
  if (n > 0)
    CHECK_MEM(buf, (size_t)n,
              "HTTP/1.1 101 Switching Protocols\r\n"
              "Upgrade: websocket\r\n"
              "Connection: Upgrade\r\n"
              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
              "\r\n");
  else
    CHECK(n > 0);

  /* An allowed "null" origin is echoed as such. */
  pol.allow_null_origin = 1;
  CHECK_INT(check_with(RL H_HOST H_UPG H_CONN H_VER H_KEY "Origin: null\r\n" END,
                       &pol, &res),
            HF_HS_OK);
  n = hf_handshake_write_101(buf, sizeof buf, &res, NULL);
  CHECK(n > 0 && strstr(buf, "\r\nAccess-Control-Allow-Origin: null\r\n"
                             "Vary: Origin\r\n\r\n") != NULL);

  /* Missing key (a result that did not come from a successful check). */
  hf_handshake_result empty;
  memset(&empty, 0, sizeof empty);
  CHECK_INT(hf_handshake_write_101(buf, sizeof buf, &empty, NULL), HF_EINVAL);
}

static void hs_write_101_too_small(void) {
  hf_handshake_policy pol = policy();
  hf_handshake_result res;
  char buf[600];
  size_t need = strlen(want_101);

  CHECK_INT(check_with(RL GOOD_HEADERS "Sec-WebSocket-Protocol: chat.v2\r\n" END,
                       &pol, &res),
            HF_HS_OK);
  for (size_t cap = 0; cap < need; cap++) {
    memset(buf, 0x5A, sizeof buf);
    int n = hf_handshake_write_101(buf, cap, &res,
                                   "X-Holdfast-Connection-Id: 7\r\n");
    if (n != HF_ETOOBIG)
      HF_T_FAILF("cap %zu: %d, want HF_ETOOBIG", cap, n);
    for (size_t i = cap; i < sizeof buf; i++)
      if ((unsigned char)buf[i] != 0x5A) {
        HF_T_FAILF("cap %zu: wrote byte %zu", cap, i);
        break;
      }
  }
  /* Exactly enough room: no terminating NUL needed. */
  memset(buf, 0x5A, sizeof buf);
  CHECK_INT(hf_handshake_write_101(buf, need, &res,
                                   "X-Holdfast-Connection-Id: 7\r\n"),
            (int)need);
  CHECK_INT((unsigned char)buf[need], 0x5A);
}

static void hs_write_response(void) {
  char buf[512];
  static const char body[] = "hello\n";
  static const char want[] = "HTTP/1.1 426 Upgrade Required\r\n"
                             "Content-Type: text/plain; charset=utf-8\r\n"
                             "Content-Length: 6\r\n"
                             "Connection: close\r\n"
                             "Upgrade: websocket\r\n"
                             "\r\n"
                             "hello\n";
  int n = hf_http_write_response(buf, sizeof buf, 426, "Upgrade: websocket\r\n",
                                 NULL, body, 6);
  CHECK_INT(n, (int)strlen(want));
  if (n > 0)
    CHECK_MEM(buf, (size_t)n, want);

  n = hf_http_write_response(buf, sizeof buf, 200, NULL, "application/json",
                             "{}", 2);
  if (n > 0)
    CHECK_MEM(buf, (size_t)n,
              "HTTP/1.1 200 OK\r\n"
              "Content-Type: application/json\r\n"
              "Content-Length: 2\r\n"
              "Connection: close\r\n"
              "\r\n"
              "{}");
  else
    CHECK(n > 0);

  n = hf_http_write_response(buf, sizeof buf, 503, NULL, NULL, NULL, 0);
  if (n > 0)
    CHECK_MEM(buf, (size_t)n,
              "HTTP/1.1 503 Service Unavailable\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n"
              "Content-Length: 0\r\n"
              "Connection: close\r\n"
              "\r\n");
  else
    CHECK(n > 0);

  /* Every capacity short of the full response fails without overflow. */
  size_t need = strlen(want);
  for (size_t cap = 0; cap < need; cap++) {
    memset(buf, 0x5A, sizeof buf);
    n = hf_http_write_response(buf, cap, 426, "Upgrade: websocket\r\n", NULL,
                               body, 6);
    if (n != HF_ETOOBIG)
      HF_T_FAILF("cap %zu: %d, want HF_ETOOBIG", cap, n);
    for (size_t i = cap; i < sizeof buf; i++)
      if ((unsigned char)buf[i] != 0x5A) {
        HF_T_FAILF("cap %zu: wrote byte %zu", cap, i);
        break;
      }
  }
  CHECK_INT(hf_http_write_response(buf, need, 426, "Upgrade: websocket\r\n",
                                   NULL, body, 6),
            (int)need);

  /* A handshake rejection renders into a complete response. */
  hf_handshake_policy pol = policy();
  hf_handshake_result res;
  char big[2048];
  check_with(RL H_HOST H_CONN H_VER H_KEY H_ORIG END, &pol, &res);
  n = hf_http_write_response(big, sizeof big, res.status, res.extra_header,
                             NULL, res.message, strlen(res.message));
  CHECK(n > 0);
  CHECK(strncmp(big, "HTTP/1.1 426 Upgrade Required\r\n", 31) == 0);
  CHECK(strstr(big, "\r\nUpgrade: websocket\r\n\r\n") != NULL);
}

int main(void) {
  hf_t_suite = "handshake";
  RUN_TEST(hs_accept_rfc_example);
  RUN_TEST(hs_valid_request);
  RUN_TEST(hs_rejections);
  RUN_TEST(hs_messages);
  RUN_TEST(hs_check_order);
  RUN_TEST(hs_origin_flags);
  RUN_TEST(hs_origin_patterns);
  RUN_TEST(hs_subprotocols);
  RUN_TEST(hs_same_origin);
  RUN_TEST(hs_write_101);
  RUN_TEST(hs_write_101_too_small);
  RUN_TEST(hs_write_response);
  TEST_MAIN_END();
}
