/* SPDX-License-Identifier: MIT */
/* Server side of the RFC 6455 opening handshake: validates a parsed request
 * against a policy and explains every rejection in plain English (most
 * failures in the field are proxies or misconfigured clients), computes
 * Sec-WebSocket-Accept and writes the response heads. */

#include "hf/handshake.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "hf/err.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Longest allow-list pattern the wildcard matcher handles; its state sets
 * live on the stack. Longer patterns with a '*' never match (fail closed);
 * real origins are far shorter. */
#define ORIGIN_PATTERN_MAX 512

#define NGINX_FIX                                                              \
  "If this server is behind nginx, add to the location block:\n"              \
  "    proxy_http_version 1.1;\n"                                            \
  "    proxy_set_header Upgrade $http_upgrade;\n"                            \
  "    proxy_set_header Connection \"upgrade\";\n"

static const char msg_ok[] = "WebSocket upgrade accepted.\n";
static const char msg_bad_method[] =
    "A WebSocket handshake must use the GET method.\n";
static const char msg_http_version[] =
    "A WebSocket handshake requires HTTP/1.1 or later; this request used "
    "HTTP/1.0. If a proxy sits in front of this server, configure it to "
    "speak HTTP/1.1 to the upstream.\n" NGINX_FIX;
static const char msg_missing_host[] =
    "The request must carry exactly one Host header.\n";
static const char msg_missing_upgrade[] =
    "This is a WebSocket endpoint, but the request has no Upgrade header. "
    "Either this is a plain HTTP request (for example a browser visiting the "
    "URL directly), or a proxy between the client and this server stripped "
    "the hop-by-hop Upgrade header.\n" NGINX_FIX;
static const char msg_bad_upgrade[] =
    "The Upgrade header does not contain the \"websocket\" token; this "
    "server only speaks the WebSocket protocol.\n";
static const char msg_missing_connection_upgrade[] =
    "The Connection header does not contain the \"upgrade\" token. Proxies "
    "often rewrite the hop-by-hop Connection header (for example to "
    "\"close\" or \"keep-alive\"); they must forward \"Connection: upgrade\" "
    "for WebSocket requests.\n" NGINX_FIX;
static const char msg_unsupported_version[] =
    "This server only supports WebSocket protocol version 13 (RFC 6455); "
    "the request's Sec-WebSocket-Version header is missing, repeated or "
    "names another version.\n";
static const char msg_bad_key[] =
    "The Sec-WebSocket-Key header must appear exactly once and be the "
    "base64 encoding of 16 bytes (24 characters ending in \"==\").\n";
static const char msg_request_body[] =
    "A WebSocket upgrade request must not have a body (Content-Length or "
    "Transfer-Encoding was sent).\n";
static const char msg_origin_rejected[] =
    "Origin not allowed: this server accepts pages of its own origin (the "
    "host the request was sent to) and the origins in its allowed origins "
    "list.\n";
static const char msg_origin_repeated[] =
    "The request carries more than one Origin header.\n";
static const char msg_null_origin[] =
    "Requests with \"Origin: null\" (sandboxed iframes, file:// pages) are "
    "not allowed by this server.\n";
static const char msg_missing_origin[] =
    "The request has no Origin header, and this server only accepts "
    "requests from browsers that send one.\n";

static unsigned char to_lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

static int is_b64_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '+' || c == '/';
}

static int is_origin_wild_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '-';
}

/* Case-insensitive header-name test; ASCII only, whatever the locale. */
static int name_is(const hf_http_header *h, const char *name, size_t nlen) {
  if (h->name_len != nlen)
    return 0;
  for (size_t j = 0; j < nlen; j++)
    if (to_lower((unsigned char)h->name[j]) != to_lower((unsigned char)name[j]))
      return 0;
  return 1;
}

/* Number of header fields named name, and the first one in *first. */
static size_t count_headers(const hf_http_request *req, const char *name,
                            const hf_http_header **first) {
  size_t n = 0, nlen = strlen(name);
  *first = NULL;
  for (size_t i = 0; i < req->num_headers; i++) {
    if (!name_is(&req->headers[i], name, nlen))
      continue;
    if (n++ == 0)
      *first = &req->headers[i];
  }
  return n;
}

/* 1 if any header named name has token in its comma-separated value; the
 * list may legitimately be split across several field lines. */
static int any_header_has_token(const hf_http_request *req, const char *name,
                                const char *token) {
  size_t nlen = strlen(name);
  for (size_t i = 0; i < req->num_headers; i++) {
    const hf_http_header *h = &req->headers[i];
    if (name_is(h, name, nlen) &&
        hf_http_has_token(h->value, h->value_len, token))
      return 1;
  }
  return 0;
}

/* RFC 6455 4.1: the key is base64 of 16 random bytes, i.e. 22 alphabet
 * characters and "==". Non-zero padding bits are tolerated, as in most
 * decoders, since they still decode to 16 bytes. */
static int key_is_valid(const char *k, size_t n) {
  if (n != 24 || k[22] != '=' || k[23] != '=')
    return 0;
  for (size_t i = 0; i < 22; i++)
    if (!is_b64_char((unsigned char)k[i]))
      return 0;
  return 1;
}

/* Does o[0..olen) match pattern p (NUL-terminated)? Letters compare
 * case-insensitively; each '*' consumes one or more wildcard characters.
 * Runs the pattern as an NFA over the origin, tracking the set of pattern
 * positions reachable so far, so the cost is O(len(p) * olen) whatever the
 * pattern: no backtracking blow-up on inputs like "*a*a*a*a*b". */
static int wild_match(const char *p, const char *o, size_t olen) {
  unsigned char set_a[ORIGIN_PATTERN_MAX + 1], set_b[ORIGIN_PATTERN_MAX + 1];
  unsigned char *cur = set_a, *next = set_b;
  size_t m = strlen(p);

  if (m > ORIGIN_PATTERN_MAX)
    return 0;
  /* cur[j]: the origin prefix read so far can leave us before p[j]. A star
   * state j needs at least one more class character; after one it can
   * either take more (stay at j) or move on (j + 1), hence both bits. */
  memset(cur, 0, m + 1);
  cur[0] = 1;
  for (size_t i = 0; i < olen; i++) {
    unsigned char c = (unsigned char)o[i];
    int any = 0;
    memset(next, 0, m + 1);
    for (size_t j = 0; j < m; j++) {
      if (!cur[j])
        continue;
      if (p[j] == '*') {
        if (is_origin_wild_char(c)) {
          next[j] = next[j + 1] = 1;
          any = 1;
        }
      } else if (to_lower((unsigned char)p[j]) == to_lower(c)) {
        next[j + 1] = 1;
        any = 1;
      }
    }
    if (!any)
      return 0;
    unsigned char *t = cur;
    cur = next;
    next = t;
  }
  return cur[m];
}

int hf_handshake_origin_allowed(const hf_handshake_policy *pol,
                                const char *origin, size_t len) {
  if (!pol || !origin)
    return 0;
  for (size_t i = 0; i < pol->n_allowed_origins; i++) {
    const char *pat = pol->allowed_origins[i];
    if (!pat)
      continue;
    if (strcmp(pat, "*") == 0)
      return 1;
    if (wild_match(pat, origin, len))
      return 1;
  }
  return 0;
}

/* host[:port] without a default port for scheme (http :80, https :443;
 * ws/wss likewise). */
static size_t strip_default_port(const char *h, size_t n, int https) {
  const char *dp = https ? ":443" : ":80";
  size_t dl = https ? 4 : 3;
  if (n > dl && memcmp(h + n - dl, dp, dl) == 0 && h[n - dl - 1] != ':')
    return n - dl;
  return n;
}

static int ieq(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (to_lower((unsigned char)a[i]) != to_lower((unsigned char)b[i]))
      return 0;
  return 1;
}

int hf_handshake_same_origin(const char *origin, size_t len, const char *host,
                             size_t hlen) {
  if (!origin || !host || !hlen)
    return 0;
  const char *sep = NULL;
  for (size_t i = 0; i + 2 < len; i++)
    if (origin[i] == ':' && origin[i + 1] == '/' && origin[i + 2] == '/') {
      sep = origin + i;
      break;
    }
  if (!sep)
    return 0;
  size_t sl = (size_t)(sep - origin);
  int https = (sl == 5 && ieq(origin, "https", 5)) || (sl == 3 && ieq(origin, "wss", 3));
  if (!https && !(sl == 4 && ieq(origin, "http", 4)) && !(sl == 2 && ieq(origin, "ws", 2)))
    return 0;
  const char *oh = sep + 3;
  size_t ohl = len - sl - 3;
  if (!ohl || memchr(oh, '/', ohl) || memchr(oh, '@', ohl))
    return 0; /* an origin has no path and no user info */
  ohl = strip_default_port(oh, ohl, https);
  hlen = strip_default_port(host, hlen, https);
  return ohl == hlen && ieq(oh, host, hlen);
}

/* Exact (case-sensitive, as browsers compare the echoed value) search for
 * proto in the client's Sec-WebSocket-Protocol lists. Returns the client's
 * copy so the response echoes what was offered. */
static const char *find_offered(const hf_http_request *req, const char *proto,
                                size_t *out_len) {
  size_t plen = strlen(proto);
  static const char name[] = "Sec-WebSocket-Protocol";
  if (plen == 0)
    return NULL;
  for (size_t i = 0; i < req->num_headers; i++) {
    const hf_http_header *h = &req->headers[i];
    if (!name_is(h, name, sizeof name - 1))
      continue;
    size_t j = 0;
    while (j < h->value_len) {
      size_t s = j, e;
      while (j < h->value_len && h->value[j] != ',')
        j++;
      e = j;
      while (s < e && is_ows(h->value[s]))
        s++;
      while (e > s && is_ows(h->value[e - 1]))
        e--;
      if (e - s == plen && memcmp(h->value + s, proto, plen) == 0) {
        *out_len = plen;
        return h->value + s;
      }
      j++;
    }
  }
  return NULL;
}

/* 1 if the request carries at least one non-empty sub-protocol token. */
static int offers_subprotocol(const hf_http_request *req) {
  static const char name[] = "Sec-WebSocket-Protocol";
  for (size_t i = 0; i < req->num_headers; i++) {
    const hf_http_header *h = &req->headers[i];
    if (!name_is(h, name, sizeof name - 1))
      continue;
    for (size_t j = 0; j < h->value_len; j++)
      if (h->value[j] != ',' && !is_ows(h->value[j]))
        return 1;
  }
  return 0;
}

/* The refusal body of an unsupported offer: what this endpoint speaks and
 * what the client offered (values truncated to fit out->msgbuf). */
static void subprotocol_message(const hf_http_request *req,
                                const hf_handshake_policy *pol,
                                hf_handshake_result *out) {
  static const char name[] = "Sec-WebSocket-Protocol";
  char *b = out->msgbuf;
  size_t cap = sizeof out->msgbuf, n = 0;
#define PUT(s, l)                                                              \
  do {                                                                         \
    size_t l_ = (l);                                                           \
    if (l_ > cap - 2 - n)                                                      \
      l_ = cap - 2 - n;                                                        \
    memcpy(b + n, (s), l_);                                                    \
    n += l_;                                                                   \
  } while (0)
  static const char a[] = "None of the offered WebSocket sub-protocols is "
                          "supported here. Supported: ";
  PUT(a, sizeof a - 1);
  int first = 1;
  for (size_t i = 0; i < pol->n_subprotocols; i++) {
    if (!pol->subprotocols[i])
      continue;
    if (!first)
      PUT(", ", 2);
    first = 0;
    PUT(pol->subprotocols[i], strlen(pol->subprotocols[i]));
  }
  static const char o[] = ". Offered: ";
  PUT(o, sizeof o - 1);
  first = 1;
  for (size_t i = 0; i < req->num_headers; i++) {
    const hf_http_header *h = &req->headers[i];
    if (!name_is(h, name, sizeof name - 1))
      continue;
    if (!first)
      PUT(", ", 2);
    first = 0;
    size_t vl = h->value_len > 200 ? 200 : h->value_len;
    for (size_t j = 0; j < vl; j++) /* keep the body printable text */
      if ((unsigned char)h->value[j] < 0x20 || (unsigned char)h->value[j] > 0x7e)
        vl = j;
    PUT(h->value, vl);
  }
  static const char e[] = ". Offer one of the supported sub-protocols, or "
                          "none for the default.";
  PUT(e, sizeof e - 1);
#undef PUT
  b[n++] = '\n';
  b[n] = '\0';
}

static hf_hs_code reject(hf_handshake_result *out, hf_hs_code code, int status,
                         const char *reason, const char *message,
                         const char *extra) {
  out->code = code;
  out->status = status;
  out->reason = reason;
  out->message = message;
  out->extra_header = extra;
  return code;
}

/* The policy allows same-origin pages and origin names the request's own
 * host (forwarded by a trusted proxy, or the single Host header). */
static int same_origin_ok(const hf_http_request *req,
                          const hf_handshake_policy *pol,
                          const hf_http_header *origin) {
  if (!pol || !pol->allow_same_origin)
    return 0;
  const char *host = pol->same_origin_host;
  size_t hl = pol->same_origin_host_len;
  if (!host) {
    const hf_http_header *h;
    if (count_headers(req, "Host", &h) != 1)
      return 0;
    host = h->value;
    hl = h->value_len;
  }
  return hf_handshake_same_origin(origin->value, origin->value_len, host, hl);
}

hf_hs_code hf_handshake_check(const hf_http_request *req,
                              const hf_handshake_policy *pol,
                              hf_handshake_result *out) {
  const hf_http_header *h, *key, *origin;
  size_t n_key, n_origin;

  memset(out, 0, sizeof *out);
  /* Fill the views first so even a rejection can be logged with them. */
  n_key = count_headers(req, "Sec-WebSocket-Key", &key);
  if (key) {
    out->key = key->value;
    out->key_len = key->value_len;
  }
  n_origin = count_headers(req, "Origin", &origin);
  if (origin) {
    out->origin = origin->value;
    out->origin_len = origin->value_len;
  }

  if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0)
    return reject(out, HF_HS_BAD_METHOD, 405, "bad_method", msg_bad_method,
                  "Allow: GET\r\n");
  if (req->version_major < 1 ||
      (req->version_major == 1 && req->version_minor < 1))
    return reject(out, HF_HS_BAD_VERSION, 505, "http_version",
                  msg_http_version, NULL);
  if (count_headers(req, "Host", &h) != 1)
    return reject(out, HF_HS_NO_HOST, 400, "missing_host", msg_missing_host,
                  NULL);
  if (count_headers(req, "Upgrade", &h) == 0)
    return reject(out, HF_HS_NO_UPGRADE, 426, "missing_upgrade",
                  msg_missing_upgrade, "Upgrade: websocket\r\n");
  if (!any_header_has_token(req, "Upgrade", "websocket"))
    return reject(out, HF_HS_BAD_UPGRADE, 400, "bad_upgrade", msg_bad_upgrade,
                  NULL);
  if (!any_header_has_token(req, "Connection", "upgrade"))
    return reject(out, HF_HS_NO_CONNECTION_UPGRADE, 400,
                  "missing_connection_upgrade",
                  msg_missing_connection_upgrade, NULL);
  if (count_headers(req, "Sec-WebSocket-Version", &h) != 1 ||
      h->value_len != 2 || memcmp(h->value, "13", 2) != 0)
    return reject(out, HF_HS_BAD_WS_VERSION, 426, "unsupported_version",
                  msg_unsupported_version, "Sec-WebSocket-Version: 13\r\n");
  if (n_key != 1 || !key_is_valid(key->value, key->value_len))
    return reject(out, HF_HS_BAD_KEY, 400, "bad_key", msg_bad_key, NULL);
  /* An upgrade request has no body. If it declared one, its bytes would be
   * read as WebSocket frames: refuse rather than guess (request smuggling). */
  if (count_headers(req, "Transfer-Encoding", &h) != 0 ||
      (count_headers(req, "Content-Length", &h) != 0 &&
       !(h->value_len == 1 && h->value[0] == '0')))
    return reject(out, HF_HS_BODY, 400, "request_body", msg_request_body,
                  NULL);

  if (n_origin == 0) {
    if (!pol || !pol->allow_missing_origin)
      return reject(out, HF_HS_MISSING_ORIGIN, 403, "missing_origin",
                    msg_missing_origin, NULL);
  } else if (n_origin > 1) {
    /* Browsers send exactly one; two means a hand-crafted request trying
     * to get one past the check while another is logged or echoed. */
    return reject(out, HF_HS_ORIGIN_REJECTED, 403, "origin_rejected",
                  msg_origin_repeated, NULL);
  } else if (origin->value_len == 4 && memcmp(origin->value, "null", 4) == 0) {
    if (!pol || !pol->allow_null_origin)
      return reject(out, HF_HS_NULL_ORIGIN, 403, "null_origin",
                    msg_null_origin, NULL);
  } else if (!hf_handshake_origin_allowed(pol, origin->value,
                                          origin->value_len) &&
             !same_origin_ok(req, pol, origin)) {
    return reject(out, HF_HS_ORIGIN_REJECTED, 403, "origin_rejected",
                  msg_origin_rejected, NULL);
  }

  for (size_t i = 0; pol && i < pol->n_subprotocols; i++) {
    size_t len = 0;
    const char *p;
    if (!pol->subprotocols[i])
      continue;
    p = find_offered(req, pol->subprotocols[i], &len);
    if (p) {
      out->subprotocol = p;
      out->subprotocol_len = len;
      break;
    }
  }
  if (!out->subprotocol && pol && pol->refuse_unmatched &&
      offers_subprotocol(req)) {
    subprotocol_message(req, pol, out);
    return reject(out, HF_HS_SUBPROTOCOL, 400, "unsupported_subprotocol",
                  out->msgbuf, NULL);
  }
  if (pol && pol->deflate &&
      hf_deflate_negotiate(pol->deflate, req, &out->deflate_params) &&
      hf_deflate_response(&out->deflate_params, out->extensions,
                          sizeof out->extensions) > 0)
    out->deflate = 1;
  out->code = HF_HS_OK;
  out->status = 101;
  out->reason = "ok";
  out->message = msg_ok;
  out->extra_header = NULL;
  return HF_HS_OK;
}

void hf_handshake_accept(const char *key, size_t key_len, char out[29]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
           EVP_DigestUpdate(ctx, key, key_len) &&
           EVP_DigestUpdate(ctx, WS_GUID, sizeof WS_GUID - 1) &&
           EVP_DigestFinal_ex(ctx, md, &md_len) && md_len == 20;
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    /* Only on OpenSSL allocation failure. An empty value makes the client
     * fail the handshake rather than trust garbage. */
    out[0] = '\0';
    return;
  }
  /* 20 bytes -> 28 base64 characters plus the NUL EVP_EncodeBlock adds. */
  EVP_EncodeBlock((unsigned char *)out, md, 20);
}

/* Bounded string builder: remembers overflow instead of writing past cap,
 * so the callers can append unconditionally and check once at the end. */
typedef struct {
  char *buf;
  size_t cap, len;
  int overflow;
} out_buf;

static void put(out_buf *b, const char *s, size_t n) {
  if (b->overflow || n > b->cap - b->len) {
    b->overflow = 1;
    return;
  }
  if (n)
    memcpy(b->buf + b->len, s, n);
  b->len += n;
}

static void put_str(out_buf *b, const char *s) {
  if (s)
    put(b, s, strlen(s));
}

static int finish(out_buf *b) {
  if (b->overflow || b->len > INT_MAX)
    return HF_ETOOBIG;
  /* NUL-terminate when there is room, as a convenience for logging; the
   * returned length never includes it. */
  if (b->len < b->cap)
    b->buf[b->len] = '\0';
  return (int)b->len;
}

int hf_handshake_write_101(char *buf, size_t cap, const hf_handshake_result *res,
                           const char *extra_headers) {
  out_buf b = {buf, cap, 0, 0};
  char accept[29];

  if (!buf || !res || !res->key)
    return HF_EINVAL;
  hf_handshake_accept(res->key, res->key_len, accept);
  put_str(&b, "HTTP/1.1 101 Switching Protocols\r\n"
              "Upgrade: websocket\r\n"
              "Connection: Upgrade\r\n"
              "Sec-WebSocket-Accept: ");
  put_str(&b, accept);
  put_str(&b, "\r\n");
  if (res->subprotocol) {
    put_str(&b, "Sec-WebSocket-Protocol: ");
    put(&b, res->subprotocol, res->subprotocol_len);
    put_str(&b, "\r\n");
  }
  if (res->deflate) {
    put_str(&b, "Sec-WebSocket-Extensions: ");
    put_str(&b, res->extensions);
    put_str(&b, "\r\n");
  }
  if (res->origin) {
    /* Echo the checked origin (including "null" when that was allowed);
     * Vary keeps caches from replaying it to other origins. */
    put_str(&b, "Access-Control-Allow-Origin: ");
    put(&b, res->origin, res->origin_len);
    put_str(&b, "\r\nVary: Origin\r\n");
  }
  put_str(&b, extra_headers);
  put_str(&b, "\r\n");
  return finish(&b);
}

int hf_http_write_response(char *buf, size_t cap, int status,
                           const char *extra_headers, const char *content_type,
                           const char *body, size_t body_len) {
  return hf_http_write_response_ka(buf, cap, status, 0, extra_headers,
                                   content_type, body, body_len);
}

int hf_http_write_response_ka(char *buf, size_t cap, int status, int keep_alive,
                              const char *extra_headers,
                              const char *content_type, const char *body,
                              size_t body_len) {
  out_buf b = {buf, cap, 0, 0};
  char num[32];
  int n;

  if (!buf || (body_len && !body))
    return HF_EINVAL;
  n = snprintf(num, sizeof num, "%d ", status);
  put(&b, "HTTP/1.1 ", 9);
  put(&b, num, (size_t)n);
  put_str(&b, hf_http_status_text(status));
  put_str(&b, "\r\nContent-Type: ");
  put_str(&b, content_type ? content_type : "text/plain; charset=utf-8");
  n = snprintf(num, sizeof num, "%zu", body_len);
  put_str(&b, "\r\nContent-Length: ");
  put(&b, num, (size_t)n);
  put_str(&b, keep_alive ? "\r\nConnection: keep-alive\r\n"
                        : "\r\nConnection: close\r\n");
  put_str(&b, extra_headers);
  put_str(&b, "\r\n");
  put(&b, body, body_len);
  return finish(&b);
}
