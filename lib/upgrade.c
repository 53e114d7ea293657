/* SPDX-License-Identifier: MIT */
/* Client side of the RFC 6455 opening handshake: writes the upgrade
 * request and checks the response, turning each way it can go wrong into
 * a diagnosis and a fix, because in the field most failures are proxies,
 * origin policies and credentials, not bugs. */
#include "hf/upgrade.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hf/err.h"
#include "hf/handshake.h"

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

static int eq_ci(const char *a, size_t an, const char *b) {
  size_t bn = strlen(b);
  if (an != bn)
    return 0;
  for (size_t i = 0; i < an; i++)
    if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
      return 0;
  return 1;
}

static int is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

void hf_upgrade_key(const uint8_t nonce[16], char out[25]) {
  static const char t[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0, i = 0;
  for (; i + 3 <= 15; i += 3) {
    uint32_t v = (uint32_t)nonce[i] << 16 | (uint32_t)nonce[i + 1] << 8 | nonce[i + 2];
    out[o++] = t[v >> 18];
    out[o++] = t[(v >> 12) & 63];
    out[o++] = t[(v >> 6) & 63];
    out[o++] = t[v & 63];
  }
  uint32_t v = (uint32_t)nonce[15] << 16; /* one byte left: "xx==" */
  out[o++] = t[v >> 18];
  out[o++] = t[(v >> 12) & 63];
  out[o++] = '=';
  out[o++] = '=';
  out[o] = '\0';
}

static const char *const reserved[] = {
    "host", "upgrade", "connection", "sec-websocket-key",
    "sec-websocket-version", "sec-websocket-accept", "sec-websocket-protocol",
    "sec-websocket-extensions", "content-length", "transfer-encoding"};

int hf_upgrade_header_ok(const char *line, const char **why) {
  const char *colon = line ? strchr(line, ':') : NULL;
  const char *w = NULL;
  if (!colon || colon == line)
    w = "a header must look like \"Name: value\"";
  for (const char *p = line; !w && p < colon; p++)
    if (!is_tchar((unsigned char)*p))
      w = "the header name has a character that is not allowed in a token";
  for (const char *p = colon; !w && *p; p++)
    if ((unsigned char)*p < 0x20 ? *p != '\t' : (unsigned char)*p == 0x7f)
      w = "the header value has a control character (CR, LF, ...)";
  for (size_t i = 0; !w && i < sizeof reserved / sizeof reserved[0]; i++)
    if (eq_ci(line, (size_t)(colon - line), reserved[i]))
      w = "this header is set by the handshake itself (use the origin, "
          "sub-protocol or URL options instead)";
  if (w) {
    if (why)
      *why = w;
    return HF_EINVAL;
  }
  return 0;
}

typedef struct {
  char *buf;
  size_t cap, len;
  int overflow;
} obuf;

static void put(obuf *b, const char *s, size_t n) {
  if (b->overflow || n > b->cap - b->len) {
    b->overflow = 1;
    return;
  }
  memcpy(b->buf + b->len, s, n);
  b->len += n;
}

static void puts_(obuf *b, const char *s) { put(b, s, strlen(s)); }

int hf_upgrade_write_request(char *buf, size_t cap, const hf_upgrade_request *r,
                             const char **why) {
  obuf b = {buf, cap, 0, 0};
  for (size_t i = 0; i < r->n_headers; i++)
    if (hf_upgrade_header_ok(r->headers[i], why) < 0)
      return HF_EINVAL;
  for (size_t i = 0; i < r->n_subprotocols; i++) {
    const char *p = r->subprotocols[i];
    if (!p || !*p) {
      if (why)
        *why = "empty sub-protocol name";
      return HF_EINVAL;
    }
    for (; *p; p++)
      if (!is_tchar((unsigned char)*p)) {
        if (why)
          *why = "a sub-protocol name must be a token (no spaces, commas...)";
        return HF_EINVAL;
      }
  }
  puts_(&b, "GET ");
  put(&b, r->resource, r->resource_len);
  puts_(&b, " HTTP/1.1\r\nHost: ");
  put(&b, r->host, r->host_len);
  puts_(&b, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: ");
  puts_(&b, r->key);
  puts_(&b, "\r\nSec-WebSocket-Version: 13\r\n");
  if (r->origin) {
    puts_(&b, "Origin: ");
    puts_(&b, r->origin);
    puts_(&b, "\r\n");
  }
  if (r->n_subprotocols) {
    puts_(&b, "Sec-WebSocket-Protocol: ");
    for (size_t i = 0; i < r->n_subprotocols; i++) {
      if (i)
        puts_(&b, ", ");
      puts_(&b, r->subprotocols[i]);
    }
    puts_(&b, "\r\n");
  }
  if (r->extensions) {
    puts_(&b, "Sec-WebSocket-Extensions: ");
    puts_(&b, r->extensions);
    puts_(&b, "\r\n");
  }
  if (r->user_agent) {
    puts_(&b, "User-Agent: ");
    puts_(&b, r->user_agent);
    puts_(&b, "\r\n");
  }
  for (size_t i = 0; i < r->n_headers; i++) {
    puts_(&b, r->headers[i]);
    puts_(&b, "\r\n");
  }
  puts_(&b, "\r\n");
  if (b.overflow)
    return HF_ETOOBIG;
  if (b.len < b.cap)
    buf[b.len] = '\0';
  return (int)b.len;
}

/* ---- Retry-After ---------------------------------------------------------- */

static int parse_digits(const char *s, size_t n, int *out) {
  int v = 0;
  if (n == 0)
    return -1;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

int64_t hf_upgrade_retry_after(const char *v, size_t len, int64_t now_unix) {
  if (len == 0)
    return -1;
  if (v[0] >= '0' && v[0] <= '9') {
    int64_t s = 0;
    for (size_t i = 0; i < len; i++) {
      if (v[i] < '0' || v[i] > '9' || s > 100000000)
        return -1;
      s = s * 10 + (v[i] - '0');
    }
    return s;
  }
  /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (29 characters) */
  static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  if (len != 29 || v[3] != ',' || v[4] != ' ' || v[7] != ' ' || v[11] != ' ' ||
      v[16] != ' ' || v[19] != ':' || v[22] != ':' || v[25] != ' ' ||
      memcmp(v + 26, "GMT", 3) != 0)
    return -1;
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  int mon = -1;
  for (int m = 0; m < 12; m++)
    if (memcmp(v + 8, months + 3 * m, 3) == 0)
      mon = m;
  int day, year, hh, mm, ss;
  if (mon < 0 || parse_digits(v + 5, 2, &day) || parse_digits(v + 12, 4, &year) ||
      parse_digits(v + 17, 2, &hh) || parse_digits(v + 20, 2, &mm) ||
      parse_digits(v + 23, 2, &ss) || day < 1 || day > 31 || hh > 23 ||
      mm > 59 || ss > 60)
    return -1;
  tm.tm_mday = day;
  tm.tm_mon = mon;
  tm.tm_year = year - 1900;
  tm.tm_hour = hh;
  tm.tm_min = mm;
  tm.tm_sec = ss;
  int64_t t = (int64_t)timegm(&tm);
  return t > now_unix ? t - now_unix : 0;
}

/* ---- response check ------------------------------------------------------- */

static hf_upgrade_code result(hf_upgrade_result *out, hf_upgrade_code code,
                              const char *reason, const char *diagnosis,
                              const char *fix) {
  out->code = code;
  out->reason = reason;
  out->diagnosis = diagnosis;
  out->fix = fix;
  return code;
}

static const char fix_proxy[] =
    "if a proxy is in front of the server, make it pass the upgrade through "
    "(" HF_UPGRADE_NGINX_FIX "); otherwise check the URL's path";

/* The diagnosis of a status other than 101. */
static hf_upgrade_code status_diagnosis(const hf_upgrade_expect *exp, int st,
                                        hf_upgrade_result *out) {
  if (st >= 200 && st < 300)
    return result(out, HF_UPG_STATUS, "plain_http",
                  "something answered the upgrade as a plain HTTP request: a "
                  "web server or application that does not speak WebSocket at "
                  "this path, or a proxy that stripped the Upgrade and "
                  "Connection headers on the way",
                  fix_proxy);
  if (st >= 300 && st < 400)
    return result(out, HF_UPG_STATUS, "redirect",
                  "the server redirects (see Location); WebSocket clients do "
                  "not follow redirects",
                  "use the URL it redirects to (often wss:// instead of ws://, "
                  "another host, or a path with a trailing slash)");
  switch (st) {
  case 400:
    return result(out, HF_UPG_STATUS, "bad_request",
                  "the server refused the upgrade request as malformed; a "
                  "proxy that rewrites the Connection or Upgrade header is "
                  "the usual cause (the response body often says which)",
                  fix_proxy);
  case 401:
    return result(out, HF_UPG_STATUS, "unauthorized",
                  "the server wants credentials for this endpoint, or the ones "
                  "sent are expired or wrong",
                  "send valid credentials (an Authorization header, a cookie "
                  "or a token in the query string, as the server expects); "
                  "refresh them if they expired");
  case 403:
    if (exp->origin)
      return result(out, HF_UPG_STATUS, "origin_rejected",
                    "the server refused the Origin that was sent: it is not "
                    "on the server's list of allowed origins",
                    "add the origin to the server's allow-list (holdfast and "
                    "Centrifugo: client.allowed_origins)");
    return result(out, HF_UPG_STATUS, "forbidden",
                  "the server refused the request; it was sent without an "
                  "Origin, and the server may require one (holdfast: "
                  "client.allow_missing_origin) or deny this client",
                  "send the origin of the page the socket belongs to, or "
                  "allow requests without an Origin on the server");
  case 404:
    return result(out, HF_UPG_STATUS, "not_found",
                  "there is no endpoint at this path",
                  "check the URL's path (holdfast: /connection/websocket for "
                  "the real-time protocol, /echo for the echo endpoint)");
  case 405:
    return result(out, HF_UPG_STATUS, "bad_method",
                  "the server does not accept GET at this path: it is not a "
                  "WebSocket endpoint",
                  "check the URL's path");
  case 426:
    return result(out, HF_UPG_STATUS, "upgrade_required",
                  "the server wanted a WebSocket upgrade and did not get one: "
                  "a proxy removed the Upgrade header on the way, or the "
                  "server does not support WebSocket version 13 (see its "
                  "Sec-WebSocket-Version header)",
                  fix_proxy);
  case 429:
    return result(out, HF_UPG_STATUS, "too_many_requests",
                  "the server is rate-limiting this client",
                  "wait at least the Retry-After delay before reconnecting, "
                  "and reconnect with backoff");
  case 502:
  case 504:
    return result(out, HF_UPG_STATUS, "bad_gateway",
                  "a proxy or load balancer could not get an answer from the "
                  "WebSocket server behind it",
                  "check that the upstream server is running and that the "
                  "proxy's upstream address and port are right");
  case 503:
    return result(out, HF_UPG_STATUS, "unavailable",
                  "the server is overloaded, at its connection limit or "
                  "shutting down",
                  "reconnect with backoff, no sooner than Retry-After");
  case 505:
    return result(out, HF_UPG_STATUS, "http_version",
                  "the request reached the server as HTTP/1.0; proxies speak "
                  "HTTP/1.0 to their upstreams unless told otherwise, and "
                  "WebSocket needs HTTP/1.1",
                  fix_proxy);
  default:
    break;
  }
  if (st >= 500)
    return result(out, HF_UPG_STATUS, "server_error",
                  "the server failed while answering the upgrade",
                  "look at the server's log; reconnect with backoff");
  if (st >= 400)
    return result(out, HF_UPG_STATUS, "client_error",
                  "the server refused the upgrade request",
                  "the response body usually says why");
  return result(out, HF_UPG_STATUS, "unexpected_status",
                "the server answered with an informational status other than "
                "101 Switching Protocols",
                "");
}

/* The header named name in res, NULL if absent; *count gets how many. */
static const hf_http_header *header(const hf_http_response *res,
                                    const char *name, size_t *count) {
  const hf_http_header *first = NULL;
  size_t n = 0;
  for (size_t i = 0; i < res->num_headers; i++)
    if (eq_ci(res->headers[i].name, res->headers[i].name_len, name)) {
      if (!n++)
        first = &res->headers[i];
    }
  if (count)
    *count = n;
  return first;
}

/* The extension name at the start of one list element ("x; a=1"). */
static int offered_extension(const hf_upgrade_expect *exp, const char *e,
                             size_t n) {
  size_t k = 0;
  while (k < n && e[k] != ';' && e[k] != ' ' && e[k] != '\t')
    k++;
  for (size_t i = 0; i < exp->n_extensions; i++)
    if (eq_ci(e, k, exp->extensions[i]))
      return 1;
  return 0;
}

hf_upgrade_code hf_upgrade_check(const hf_http_response *res,
                                 const hf_upgrade_expect *exp, int64_t now_unix,
                                 hf_upgrade_result *out) {
  const hf_http_header *h;
  size_t n;

  memset(out, 0, sizeof *out);
  out->status = res->status;
  out->retry_after_s = -1;
  if ((h = header(res, "Retry-After", NULL)))
    out->retry_after_s = hf_upgrade_retry_after(h->value, h->value_len, now_unix);
  if ((h = header(res, "Location", NULL))) {
    out->location = h->value;
    out->location_len = h->value_len;
  }
  out->acao = HF_UPG_ACAO_NO_ORIGIN;
  if ((h = header(res, "Access-Control-Allow-Origin", NULL))) {
    out->acao_value = h->value;
    out->acao_len = h->value_len;
  }
  if (exp->origin) {
    if (!out->acao_value)
      out->acao = HF_UPG_ACAO_ABSENT;
    else if (out->acao_len == 1 && out->acao_value[0] == '*')
      out->acao = HF_UPG_ACAO_ANY;
    else if (out->acao_len == strlen(exp->origin) &&
             memcmp(out->acao_value, exp->origin, out->acao_len) == 0)
      out->acao = HF_UPG_ACAO_MATCH;
    else
      out->acao = HF_UPG_ACAO_MISMATCH;
  }

  if (res->status != 101)
    return status_diagnosis(exp, res->status, out);
  if (res->version_major != 1 || res->version_minor < 1)
    return result(out, HF_UPG_BAD_VERSION, "http_version",
                  "the server switched protocols over HTTP/1.0, which RFC "
                  "6455 does not allow",
                  "fix the server or the proxy to answer with HTTP/1.1");

  int up = 0;
  for (size_t i = 0; i < res->num_headers; i++) {
    const hf_http_header *x = &res->headers[i];
    if (eq_ci(x->name, x->name_len, "Upgrade") &&
        hf_http_has_token(x->value, x->value_len, "websocket"))
      up = 1;
  }
  if (!up)
    return result(out, HF_UPG_NO_UPGRADE, "no_upgrade",
                  "the 101 response has no \"Upgrade: websocket\": it switched "
                  "to some other protocol, or a proxy rewrote it",
                  fix_proxy);
  int conn = 0;
  for (size_t i = 0; i < res->num_headers; i++) {
    const hf_http_header *x = &res->headers[i];
    if (eq_ci(x->name, x->name_len, "Connection") &&
        hf_http_has_token(x->value, x->value_len, "upgrade"))
      conn = 1;
  }
  if (!conn)
    return result(out, HF_UPG_NO_CONNECTION, "no_connection_upgrade",
                  "the 101 response has no \"Connection: Upgrade\"; a proxy "
                  "probably rewrote the hop-by-hop Connection header",
                  fix_proxy);

  char want[29];
  hf_handshake_accept(exp->key, strlen(exp->key), want);
  h = header(res, "Sec-WebSocket-Accept", &n);
  if (!h || n != 1) {
    out->accept = 0;
    return result(out, HF_UPG_BAD_ACCEPT, "no_accept",
                  "the 101 response has no (or more than one) "
                  "Sec-WebSocket-Accept header: the answer did not come from "
                  "a WebSocket server that read this request",
                  "check what answers at this address (a caching or "
                  "intercepting proxy?)");
  }
  if (h->value_len != 28 || memcmp(h->value, want, 28) != 0) {
    out->accept = -1;
    return result(out, HF_UPG_BAD_ACCEPT, "bad_accept",
                  "Sec-WebSocket-Accept does not match the key that was sent: "
                  "the answer belongs to another request (a caching or "
                  "replaying proxy) or the server computes it wrongly",
                  "check what answers at this address; a proxy must not "
                  "cache or rewrite upgrade responses");
  }
  out->accept = 1;

  h = header(res, "Sec-WebSocket-Protocol", &n);
  if (h) {
    int ok = n == 1;
    for (size_t i = 0; ok && i < exp->n_subprotocols; i++)
      if (h->value_len == strlen(exp->subprotocols[i]) &&
          memcmp(h->value, exp->subprotocols[i], h->value_len) == 0) {
        out->subprotocol = h->value;
        out->subprotocol_len = h->value_len;
      }
    if (!out->subprotocol)
      return result(out, HF_UPG_BAD_SUBPROTOCOL, "bad_subprotocol",
                    exp->n_subprotocols
                        ? "the server selected a sub-protocol that was not "
                          "offered (RFC 6455 4.1 makes this a failure)"
                        : "the server selected a sub-protocol although none "
                          "was offered (RFC 6455 4.1 makes this a failure)",
                    "offer the sub-protocol the server speaks, or fix the "
                    "server to select only one of those offered");
  }

  for (size_t i = 0; i < res->num_headers; i++) {
    const hf_http_header *x = &res->headers[i];
    if (!eq_ci(x->name, x->name_len, "Sec-WebSocket-Extensions"))
      continue;
    if (!out->extensions) {
      out->extensions = x->value;
      out->extensions_len = x->value_len;
    }
    size_t j = 0;
    while (j < x->value_len) {
      size_t s = j;
      while (j < x->value_len && x->value[j] != ',')
        j++;
      size_t e = j++;
      while (s < e && (x->value[s] == ' ' || x->value[s] == '\t'))
        s++;
      if (s < e && !offered_extension(exp, x->value + s, e - s))
        return result(out, HF_UPG_BAD_EXTENSION, "bad_extension",
                      "the server accepted an extension that was not offered "
                      "(RFC 6455 9.1 makes this a failure)",
                      "fix the server (or the proxy) to answer only with "
                      "extensions the client offered");
    }
  }
  return result(out, HF_UPG_OK, "ok", "the server accepted the upgrade", "");
}
