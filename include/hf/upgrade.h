/* SPDX-License-Identifier: MIT */
/* RFC 6455 section 4 opening handshake, client side: the upgrade request
 * and the check of the server's response, with a diagnosis of every
 * failure in plain English (a 200 is a proxy or a plain HTTP server, a 403
 * with an Origin is the server's allow-list, a wrong accept key is
 * something answering for the server...). Pure functions: no I/O, no
 * allocation. The server side is hf/handshake.h. */
#ifndef HF_UPGRADE_H
#define HF_UPGRADE_H

#include <stddef.h>
#include <stdint.h>

#include "hf/http.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the client sends. Strings are NUL-terminated unless a length is
 * given. */
typedef struct {
  const char *host;        /* Host header value: "host[:port]" */
  size_t host_len;
  const char *resource;    /* "/path?query" */
  size_t resource_len;
  const char *key;         /* 24 characters from hf_upgrade_key */
  const char *origin;      /* NULL: no Origin header (not a browser) */
  const char *const *subprotocols; /* offered, in preference order */
  size_t n_subprotocols;
  const char *extensions;  /* Sec-WebSocket-Extensions to offer; NULL: none */
  const char *const *headers; /* extra complete lines "Name: value" */
  size_t n_headers;
  const char *user_agent;  /* NULL: no User-Agent */
} hf_upgrade_request;

/* Sec-WebSocket-Key: base64 of 16 random bytes (the caller's CSPRNG).
 * Writes 24 characters and a NUL. */
void hf_upgrade_key(const uint8_t nonce[16], char out[25]);

/* Check one extra header line "Name: value": a token name, a value
 * without CR, LF or other control bytes, and not one of the headers the
 * handshake itself sets (Host, Upgrade, Connection, Sec-WebSocket-Key,
 * -Version, -Accept, -Protocol, -Extensions; use the matching fields).
 * Returns 0, or HF_EINVAL with a reason in *why. */
int hf_upgrade_header_ok(const char *line, const char **why);

/* Write the GET request head for r into buf[0..cap). Returns its length,
 * HF_ETOOBIG if cap is too small, or HF_EINVAL (a bad extra header or
 * sub-protocol; *why says which rule). */
int hf_upgrade_write_request(char *buf, size_t cap, const hf_upgrade_request *r,
                             const char **why);

/* Outcome of the response check. */
typedef enum {
  HF_UPG_OK = 0,
  HF_UPG_STATUS,          /* not 101: see status, reason, diagnosis */
  HF_UPG_BAD_VERSION,     /* 101 over HTTP/1.0 */
  HF_UPG_NO_UPGRADE,      /* 101 without "Upgrade: websocket" */
  HF_UPG_NO_CONNECTION,   /* 101 without "Connection: upgrade" */
  HF_UPG_BAD_ACCEPT,      /* Sec-WebSocket-Accept missing or wrong */
  HF_UPG_BAD_SUBPROTOCOL, /* a sub-protocol that was not offered */
  HF_UPG_BAD_EXTENSION    /* an extension that was not offered */
} hf_upgrade_code;

/* The Access-Control-Allow-Origin answer compared with the Origin sent
 * (browsers do not require it for WebSockets; reported for diagnosis). */
typedef enum {
  HF_UPG_ACAO_NO_ORIGIN = 0, /* no Origin was sent */
  HF_UPG_ACAO_ABSENT,        /* Origin sent, no Access-Control-Allow-Origin */
  HF_UPG_ACAO_MATCH,         /* equal to the Origin sent */
  HF_UPG_ACAO_ANY,           /* "*" */
  HF_UPG_ACAO_MISMATCH       /* another origin */
} hf_upgrade_acao;

typedef struct {
  const char *key;         /* the key that was sent */
  const char *origin;      /* the Origin that was sent, or NULL */
  const char *const *subprotocols; /* offered */
  size_t n_subprotocols;
  const char *const *extensions;   /* names of the extensions offered */
  size_t n_extensions;
} hf_upgrade_expect;

typedef struct {
  hf_upgrade_code code;
  int status;              /* the response status */
  const char *reason;      /* stable snake_case id, e.g. "ok", "plain_http",
                              "origin_rejected", "unauthorized", "bad_accept" */
  const char *diagnosis;   /* the most likely cause, one or two sentences */
  const char *fix;         /* what to change; "" when nothing obvious */
  int accept;              /* 1 valid, 0 absent, -1 wrong (101 only) */
  hf_upgrade_acao acao;
  const char *acao_value;  /* views into the response, NULL if absent */
  size_t acao_len;
  const char *subprotocol; /* selected by the server, NULL if none */
  size_t subprotocol_len;
  const char *extensions;  /* Sec-WebSocket-Extensions answered, NULL if none */
  size_t extensions_len;
  const char *location;    /* Location of a redirect, NULL if none */
  size_t location_len;
  int64_t retry_after_s;   /* Retry-After in seconds from now_unix; -1 if
                              absent or unreadable */
} hf_upgrade_result;

/* Check res against what was sent. now_unix (seconds) turns an HTTP-date
 * Retry-After into a delay. Fills *out and returns out->code. Every
 * failure gets a reason id, a diagnosis and (when one exists) a fix.
 * Order: status 101, HTTP/1.1, Upgrade, Connection, accept key,
 * sub-protocol (a server may pick none; picking one not offered, or
 * several, fails), extensions (any not offered fails). */
hf_upgrade_code hf_upgrade_check(const hf_http_response *res,
                                 const hf_upgrade_expect *exp, int64_t now_unix,
                                 hf_upgrade_result *out);

/* Retry-After value v[0..len): delta-seconds, or an IMF-fixdate ("Sun, 06
 * Nov 1994 08:49:37 GMT") turned into seconds after now_unix (0 if in the
 * past). Returns -1 if the value is neither. */
int64_t hf_upgrade_retry_after(const char *v, size_t len, int64_t now_unix);

/* The nginx lines that pass an upgrade through (for diagnoses). */
#define HF_UPGRADE_NGINX_FIX                                                   \
  "in the nginx location block: proxy_http_version 1.1; "                    \
  "proxy_set_header Upgrade $http_upgrade; "                                 \
  "proxy_set_header Connection \"upgrade\";"

#ifdef __cplusplus
}
#endif
#endif
