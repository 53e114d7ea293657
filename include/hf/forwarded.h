/* SPDX-License-Identifier: MIT */
/* Who is the client behind a proxy: CIDR lists of trusted proxies, and the
 * forwarding headers (RFC 7239 Forwarded, X-Forwarded-For, X-Real-IP,
 * X-Forwarded-Proto, X-Forwarded-Host) read right to left, so that the
 * client is the right-most address that is not a trusted proxy. Sans-I/O:
 * pure functions over a parsed request; no allocation. */
#ifndef HF_FORWARDED_H
#define HF_FORWARDED_H

#include <stddef.h>
#include <stdint.h>

#include "hf/http.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An IPv4 or IPv6 network. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d)
 * are matched as IPv4 everywhere. */
typedef struct {
  uint8_t addr[16]; /* network order, host bits zeroed */
  uint8_t len;      /* 4 or 16 */
  uint8_t bits;     /* prefix length, 0..32 or 0..128 */
} hf_cidr;

/* Parse "10.0.0.0/8", "192.168.1.7" (a /32), "::1", "fd00::/8".
 * Returns 0, or HF_EINVAL (bad address, prefix out of range, or host bits
 * set: "10.0.0.1/8" is refused as ambiguous). */
int hf_cidr_parse(const char *s, hf_cidr *out);

/* 1 if ip[0..len) (4 or 16 bytes) is inside any of list[0..n). */
int hf_cidr_match(const hf_cidr *list, size_t n, const uint8_t *ip, size_t len);

/* Parse one address as forwarding headers carry it: "1.2.3.4",
 * "1.2.3.4:567", "2001:db8::1", "[2001:db8::1]:567", optionally in double
 * quotes (Forwarded). Writes 4 or 16 bytes to out and returns the length,
 * or 0 if it is not an address ("unknown", obfuscated "_id" identifiers,
 * garbage). */
size_t hf_fwd_parse_addr(const char *s, size_t n, uint8_t out[16]);

typedef struct {
  uint8_t client[16];  /* the client address (when client_len > 0) */
  size_t client_len;   /* 0: no forwarding header named a client */
  const char *source;  /* header that named it: "forwarded",
                          "x-forwarded-for", "x-real-ip", or NULL */
  const char *proto;   /* "http"/"https"/... as forwarded, or NULL */
  size_t proto_len;
  const char *host;    /* the Host the client asked the proxy for, or NULL */
  size_t host_len;
  int hops;            /* trusted proxies walked through (beyond the peer) */
  int bad;             /* 1: a malformed entry stopped the walk early */
} hf_fwd_result;

/* 1 if the request carries any forwarding header (Forwarded,
 * X-Forwarded-For, X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host). */
int hf_fwd_present(const hf_http_request *req);

/* Resolve the client of req received from a peer that is a trusted proxy
 * (the caller checks that first; headers from other peers must be
 * ignored). Forwarded (all its field lines, elements in order) takes
 * precedence over X-Forwarded-For, which takes precedence over X-Real-IP.
 * The list is walked from the right: addresses inside trusted[0..n) are
 * proxies and skipped; the first one that is not is the client. If every
 * address is trusted, the left-most is the client. A malformed or
 * obfuscated entry stops the walk and the last trusted address seen is
 * the client (out->bad = 1); if there is none, no client is named.
 * proto and host come from the Forwarded element that named the client,
 * else from the right-most X-Forwarded-Proto / X-Forwarded-Host value.
 * Views in *out point into req. Always returns 0. */
int hf_fwd_resolve(const hf_http_request *req, const hf_cidr *trusted,
                   size_t n_trusted, hf_fwd_result *out);

#ifdef __cplusplus
}
#endif
#endif
