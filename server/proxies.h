/* SPDX-License-Identifier: MIT */
/* Trusted proxies (http_server.trusted_proxies): who may tell us the
 * client's address, scheme and host through forwarding headers or a PROXY
 * header, and the "ignored forwarding headers from an untrusted peer"
 * warning, logged once per peer address. */
#ifndef SRV_PROXIES_H
#define SRV_PROXIES_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hf/conn.h"
#include "hf/forwarded.h"

typedef struct srv_proxies srv_proxies;

/* From the validated configuration list (never NULL unless out of
 * memory; an empty list trusts nobody). */
srv_proxies *srv_proxies_new(const srv_strlist *cidrs);
void srv_proxies_free(srv_proxies *p);

/* 1 if the list is empty. */
int srv_proxies_empty(const srv_proxies *p);
/* 1 if ip[0..len) is a trusted proxy. Thread-safe. */
int srv_proxies_trusted(const srv_proxies *p, const uint8_t *ip, size_t len);

/* What the proxy chain said about the request (views into it). */
typedef struct {
  const char *host;  /* forwarded Host, or NULL */
  size_t host_len;
  const char *proto; /* forwarded scheme ("https"), or NULL */
  size_t proto_len;
  const char *source; /* header that named the client, or NULL */
} srv_forwarded;

/* Apply the forwarding headers of req to c: when the immediate peer (the
 * PROXY-named client if any, else the TCP peer) is trusted, the client
 * address they name is set on c (hf_conn_set_client) and *out filled;
 * call it once per connection, for its first request (a connection keeps
 * the client it was counted under);
 * from an untrusted peer they are ignored and a forwarded_headers_ignored
 * warning is logged the first time that peer address does it. Loop
 * thread; the once-per-peer table is shared (mutex, touched only when
 * ignored headers arrive; bounded, forgotten when full). */
void srv_proxies_apply(srv_proxies *p, hf_conn *c, const hf_http_request *req,
                       srv_forwarded *out);

#endif
