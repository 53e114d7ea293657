/* SPDX-License-Identifier: MIT */
/* RFC 6455 section 4 opening handshake, server side: validation of a parsed
 * request against a policy (origin allow-list, sub-protocols), the
 * Sec-WebSocket-Accept computation and the response heads, 101 or an
 * explained rejection. Pure functions: no I/O, no allocation. */
#ifndef HF_HANDSHAKE_H
#define HF_HANDSHAKE_H

#include <stddef.h>

#include "hf/deflate.h"
#include "hf/http.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  // Origin allow-list. Entries are exact origins ("https://app.example.com",
  // compared case-insensitively), "*" (any origin), or patterns where a '*'
  // stands for one or more characters of [A-Za-z0-9-.], e.g.
  // "https://*.example.com" (matches "https://a.b.example.com", not
  // "https://example.com" nor "https://evil.com/.example.com").
  const char *const *allowed_origins;
  size_t n_allowed_origins;
  int allow_null_origin;    /* accept "Origin: null" (sandboxed iframes, file://) */
  int allow_missing_origin; /* accept requests without Origin (non-browser) */
  /* Same-origin pages: accept an Origin whose host[:port] equals the
   * request's host (default ports :80 for http and :443 for https may be
   * written or left out on either side; the scheme is not compared, as
   * gorilla/websocket does). The request's host is same_origin_host when
   * set (the host a trusted proxy forwarded), else the Host header. */
  int allow_same_origin;
  const char *same_origin_host;
  size_t same_origin_host_len;
  /* Sub-protocols this endpoint speaks, in the server's preference order.
   * The first of these that the client offers is selected. If the client
   * offers some but none matches, the upgrade still succeeds without
   * Sec-WebSocket-Protocol (RFC 6455 4.2.2); the client decides, unless
   * refuse_unmatched is set: then such an offer is refused (400,
   * HF_HS_SUBPROTOCOL, a body naming the supported ones). A request that
   * offers none is always accepted without one. */
  const char *const *subprotocols;
  size_t n_subprotocols;
  int refuse_unmatched;
  /* permessage-deflate: NULL = not offered to clients (the default) */
  const hf_deflate_config *deflate;
} hf_handshake_policy;

/* Which check failed; stable identifiers used in logs and tests. */
typedef enum {
  HF_HS_OK = 0,
  HF_HS_BAD_METHOD,       /* 405, Allow: GET */
  HF_HS_BAD_VERSION,      /* 505: HTTP/1.0 or older */
  HF_HS_NO_HOST,          /* 400 */
  HF_HS_NO_UPGRADE,       /* 426: plain HTTP request or proxy stripped Upgrade */
  HF_HS_BAD_UPGRADE,      /* 400: Upgrade present but not "websocket" */
  HF_HS_NO_CONNECTION_UPGRADE, /* 400: Connection lacks the upgrade token */
  HF_HS_BAD_KEY,          /* 400: missing or not base64 of 16 bytes */
  HF_HS_BODY,             /* 400: Content-Length > 0 or Transfer-Encoding */
  HF_HS_BAD_WS_VERSION,   /* 426, Sec-WebSocket-Version: 13 */
  HF_HS_ORIGIN_REJECTED,  /* 403 */
  HF_HS_NULL_ORIGIN,      /* 403: Origin "null" not allowed */
  HF_HS_MISSING_ORIGIN,   /* 403: no Origin and allow_missing_origin is 0 */
  HF_HS_SUBPROTOCOL       /* 400: offered sub-protocols, none supported
                             (pol->refuse_unmatched) */
} hf_hs_code;

typedef struct {
  hf_hs_code code;
  int status;           /* 101 when code == HF_HS_OK, else the HTTP status */
  const char *reason;   /* short snake_case id for logs, e.g. "missing_upgrade" */
  const char *message;  /* plain-text explanation with the likely cause and
                           fix, for the response body (ends with '\n') */
  const char *extra_header; /* a complete "Name: value\r\n" line to add to the
                               rejection, or NULL */
  /* Views into the request (NULL/0 when absent). */
  const char *key;
  size_t key_len;
  const char *origin;
  size_t origin_len;
  const char *subprotocol; /* selected sub-protocol, NULL if none */
  size_t subprotocol_len;
  /* permessage-deflate accepted (pol->deflate set and an offer honoured):
   * the parameters, and the Sec-WebSocket-Extensions value the 101 sends */
  int deflate;
  hf_deflate_params deflate_params;
  char extensions[160]; /* the longest response is 128 characters */
  /* HF_HS_SUBPROTOCOL: message points here (supported and offered lists,
   * truncated to fit) */
  char msgbuf[512];
} hf_handshake_result;

/* Validate req as a WebSocket upgrade under pol. Checks, in order: method
 * GET, version >= 1.1, Host, Upgrade: websocket, Connection: upgrade,
 * Sec-WebSocket-Version: 13, Sec-WebSocket-Key (base64 of exactly 16 bytes),
 * no request body, then Origin, then selects a sub-protocol and negotiates
 * permessage-deflate (pol->deflate). Fills *out and returns out->code
 * (HF_HS_OK on success). Never fails otherwise. */
hf_hs_code hf_handshake_check(const hf_http_request *req,
                              const hf_handshake_policy *pol,
                              hf_handshake_result *out);

/* 1 if origin[0..len) names the same host[:port] as host[0..hlen) (a
 * Host header value), default ports normalised, case-insensitive. */
int hf_handshake_same_origin(const char *origin, size_t len, const char *host,
                             size_t hlen);

/* 1 if origin[0..len) is allowed by pol's allow-list ("null" and missing
 * origins are decided by the caller through the two flags), else 0. */
int hf_handshake_origin_allowed(const hf_handshake_policy *pol,
                                const char *origin, size_t len);

/* Sec-WebSocket-Accept for key[0..key_len): base64(SHA-1(key + GUID)).
 * Writes 28 characters and a NUL to out. Uses OpenSSL. */
void hf_handshake_accept(const char *key, size_t key_len, char out[29]);

/* Write the 101 Switching Protocols head into buf[0..cap). extra_headers is
 * inserted verbatim (each line ending "\r\n"; may be NULL), e.g.
 * "X-Holdfast-Connection-Id: ...\r\n". If res->origin is set, adds
 * Access-Control-Allow-Origin and Vary: Origin. Returns bytes written, or
 * HF_ETOOBIG if cap is too small. */
int hf_handshake_write_101(char *buf, size_t cap, const hf_handshake_result *res,
                           const char *extra_headers);

/* Write a complete plain-text HTTP/1.1 error response (status line,
 * Content-Type: text/plain; charset=utf-8, Content-Length, Connection: close,
 * extra_headers verbatim, then body). Returns bytes written or HF_ETOOBIG. */
int hf_http_write_response(char *buf, size_t cap, int status,
                           const char *extra_headers, const char *content_type,
                           const char *body, size_t body_len);

/* The same with "Connection: keep-alive" when keep_alive is non-zero. */
int hf_http_write_response_ka(char *buf, size_t cap, int status, int keep_alive,
                              const char *extra_headers,
                              const char *content_type, const char *body,
                              size_t body_len);

#ifdef __cplusplus
}
#endif
#endif
