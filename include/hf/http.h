/* SPDX-License-Identifier: MIT */
/* Bounded, allocation-free HTTP/1.x request- and response-head parser. It is stateless:
 * call it again on the whole accumulated buffer whenever more bytes arrive
 * (last_len lets it skip the CRLFCRLF search over bytes it has seen). All
 * returned strings are views into the caller's buffer. */
#ifndef HF_HTTP_H
#define HF_HTTP_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  const char *name;
  size_t name_len;
  const char *value; /* leading/trailing spaces and tabs trimmed */
  size_t value_len;
} hf_http_header;

typedef struct {
  const char *method;
  size_t method_len;
  const char *target; /* request-target as sent, e.g. "/echo?x=1" */
  size_t target_len;
  int version_major; /* 1 */
  int version_minor; /* 0 or 1 */
  hf_http_header *headers; /* in: array supplied by the caller */
  size_t num_headers;      /* in: capacity of headers[]; out: count parsed */
} hf_http_request;

/* Parse a request head (request line + header fields + empty line) from
 * buf[0..len). last_len is how many of these bytes were already passed to a
 * previous call that returned HF_EAGAIN (0 the first time).
 *
 * Returns:
 *   > 0        length of the head including the final CRLFCRLF; bytes after
 *              it are not part of the head (e.g. WebSocket frames).
 *   HF_EAGAIN  the head is incomplete and len < max_head: read more.
 *   HF_ETOOBIG the head is longer than max_head bytes, or has more header
 *              fields than req->num_headers (answer 431).
 *   HF_EPROTO  malformed (answer 400).
 * On HF_ETOOBIG/HF_EPROTO, *why (if not NULL) is set to a short static
 * English explanation, e.g. "header line without a colon".
 * Bare LF line endings are accepted as well as CRLF (RFC 9112 2.2). Obsolete
 * line folding, control characters in fields, and whitespace before the
 * colon are rejected. */
ssize_t hf_http_parse_request(const char *buf, size_t len, size_t last_len,
                              size_t max_head, hf_http_request *req,
                              const char **why);

/* Find a header by case-insensitive name. Returns the first match or NULL. */
const hf_http_header *hf_http_find(const hf_http_request *req,
                                   const char *name);

/* A parsed response head (the client side of an upgrade). */
typedef struct {
  int version_major; /* 1 */
  int version_minor;
  int status;        /* 100..999 */
  const char *reason; /* reason phrase, possibly empty */
  size_t reason_len;
  hf_http_header *headers; /* in: array supplied by the caller */
  size_t num_headers;      /* in: capacity of headers[]; out: count parsed */
} hf_http_response;

/* Parse a response head (status line + header fields + empty line) from
 * buf[0..len), with the same contract as hf_http_parse_request: returns
 * the head length, HF_EAGAIN (incomplete, len < max_head), HF_ETOOBIG
 * (longer than max_head or more fields than res->num_headers) or HF_EPROTO
 * (malformed; *why says what, e.g. "malformed status line"). The status
 * line is "HTTP/1.x NNN reason"; a missing reason phrase is accepted. */
ssize_t hf_http_parse_response(const char *buf, size_t len, size_t last_len,
                               size_t max_head, hf_http_response *res,
                               const char **why);

/* Find a header by case-insensitive name in h[0..n). First match or NULL. */
const hf_http_header *hf_http_header_find(const hf_http_header *h, size_t n,
                                          const char *name);

/* 1 if the comma-separated list value[0..len) contains token
 * (case-insensitive, surrounding whitespace ignored), else 0. */
int hf_http_has_token(const char *value, size_t len, const char *token);

/* Standard reason phrase for a status code ("Unknown" if not listed). */
const char *hf_http_status_text(int status);

#ifdef __cplusplus
}
#endif
#endif
