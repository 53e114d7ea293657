/* SPDX-License-Identifier: MIT */
/* Trusted proxies: the CIDR list, applying forwarding headers from trusted
 * peers to the connection's client address, and one warning per untrusted
 * peer that sends them. */
#include "proxies.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define SEEN_SLOTS 1024 /* peers remembered for the once-per-peer warning */

typedef struct {
  uint8_t ip[16];
  uint8_t len; /* 0: empty slot */
} seen_slot;

struct srv_proxies {
  hf_cidr *v;
  size_t n;
  pthread_mutex_t mu;
  size_t nseen;
  seen_slot seen[SEEN_SLOTS];
};

srv_proxies *srv_proxies_new(const srv_strlist *cidrs) {
  srv_proxies *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  pthread_mutex_init(&p->mu, NULL);
  if (cidrs->n && !(p->v = calloc(cidrs->n, sizeof *p->v))) {
    srv_proxies_free(p);
    return NULL;
  }
  for (size_t i = 0; i < cidrs->n; i++)
    if (hf_cidr_parse(cidrs->v[i], &p->v[p->n]) == 0) /* validated at load */
      p->n++;
  return p;
}

void srv_proxies_free(srv_proxies *p) {
  if (!p)
    return;
  pthread_mutex_destroy(&p->mu);
  free(p->v);
  free(p);
}

int srv_proxies_empty(const srv_proxies *p) { return p->n == 0; }

int srv_proxies_trusted(const srv_proxies *p, const uint8_t *ip, size_t len) {
  return hf_cidr_match(p->v, p->n, ip, len);
}

/* 1 the first time ip is seen (then remembered), 0 afterwards. */
static int first_time(srv_proxies *p, const uint8_t *ip, size_t len) {
  unsigned h = 2166136261u;
  for (size_t i = 0; i < len; i++)
    h = (h ^ ip[i]) * 16777619u;
  int first = 1;
  pthread_mutex_lock(&p->mu);
  if (p->nseen >= SEEN_SLOTS / 2) { /* full enough: start over */
    memset(p->seen, 0, sizeof p->seen);
    p->nseen = 0;
  }
  for (size_t k = 0; k < SEEN_SLOTS; k++) {
    seen_slot *s = &p->seen[(h + k) % SEEN_SLOTS];
    if (!s->len) {
      memcpy(s->ip, ip, len);
      s->len = (uint8_t)len;
      p->nseen++;
      break;
    }
    if (s->len == len && memcmp(s->ip, ip, len) == 0) {
      first = 0;
      break;
    }
  }
  pthread_mutex_unlock(&p->mu);
  return first;
}

void srv_proxies_apply(srv_proxies *p, hf_conn *c, const hf_http_request *req,
                       srv_forwarded *out) {
  memset(out, 0, sizeof *out);
  if (!hf_fwd_present(req))
    return;
  uint8_t ip[16];
  size_t n = hf_conn_client_ip(c, ip);
  if (!srv_proxies_trusted(p, ip, n)) {
    if (!first_time(p, ip, n))
      return;
    char peer[64];
    hf_conn_client(c, peer, sizeof peer);
    srv_logline l;
    srv_log_begin(&l, LOG_WARN, "forwarded_headers_ignored");
    srv_log_str(&l, "remote", peer);
    srv_log_str(&l, "reason", "X-Forwarded-For, X-Real-IP, Forwarded, X-Forwarded-Proto "
                              "and X-Forwarded-Host are believed only from "
                              "http_server.trusted_proxies; this peer is not listed");
    srv_log_str(&l, "note", "logged once per peer address");
    srv_log_end(&l);
    return;
  }
  hf_fwd_result r;
  hf_fwd_resolve(req, p->v, p->n, &r);
  if (r.client_len)
    hf_conn_set_client(c, r.client, r.client_len, 0);
  out->host = r.host;
  out->host_len = r.host_len;
  out->proto = r.proto;
  out->proto_len = r.proto_len;
  out->source = r.source;
}
