/* SPDX-License-Identifier: MIT */
/* WebSocket URLs (RFC 6455 section 3): ws:// and wss:// with a host name,
 * an IPv4 literal or a bracketed IPv6 literal, an optional port and a
 * resource (path and query). Sans-I/O: the result is a set of views into
 * the caller's string; nothing is allocated. */
#ifndef HF_URL_H
#define HF_URL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest host name accepted (RFC 1035: 253 characters in text form). */
#define HF_URL_MAX_HOST 253

typedef struct {
  int secure;             /* 1 for wss://, 0 for ws:// */
  const char *host;       /* name or address, without IPv6 brackets */
  size_t host_len;
  int host_ip;            /* 4 or 6 for an address literal, 0 for a name */
  int port;               /* explicit, else 80 (ws) or 443 (wss) */
  int port_explicit;      /* 1 if the URL names the port */
  const char *authority;  /* "host[:port]" as written (brackets kept): the
                             value of the Host header */
  size_t authority_len;
  const char *resource;   /* path and query, e.g. "/chat?room=1"; "/" (a
                             static string) when the URL has no path */
  size_t resource_len;
} hf_url;

/* Parse url[0..len) into *u (views into url, valid as long as it is).
 * The scheme is case-insensitive. Rejected, with HF_EINVAL and a short
 * English explanation in *why (if not NULL):
 *   - any scheme but ws/wss (http:// and https:// get a hint to use
 *     ws:// and wss://), a missing "//";
 *   - user information ("user:pass@host": a WebSocket client sends
 *     credentials in headers, never in the URL);
 *   - an empty or overlong host, characters outside letters, digits, '-',
 *     '.' and '_' in a name, a malformed IPv4 or IPv6 literal, an IPv6
 *     zone ("%eth0");
 *   - a port that is not 1..65535;
 *   - a fragment ('#', forbidden by RFC 6455 3), spaces, control and
 *     non-ASCII bytes in the resource (they must be percent-encoded).
 * Returns 0 on success. Thread-safe; no allocation. */
int hf_url_parse(hf_url *u, const char *url, size_t len, const char **why);

#ifdef __cplusplus
}
#endif
#endif
