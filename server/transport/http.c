/* SPDX-License-Identifier: MIT */
/* The HTTP side of the transports, free of any connection: CORS answers
 * under the WebSocket origin policy, streaming response headers, the
 * cf_connect query decoder, emulation session ids and their per-worker
 * table, and requests waiting for their body. */
#include "transport/transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "hf/err.h"

/* ---- HTTP details ---------------------------------------------------------- */

int tr_cors(const hf_http_request *req, const hf_handshake_policy *pol,
            char *out, size_t cap, const char **why) {
  out[0] = 0;
  const hf_http_header *o = hf_http_find(req, "Origin");
  if (!o) {
    if (!pol->allow_missing_origin) {
      *why = "missing_origin";
      return 403;
    }
    return 0;
  }
  if (o->value_len == 4 && memcmp(o->value, "null", 4) == 0) {
    if (!pol->allow_null_origin) {
      *why = "null_origin";
      return 403;
    }
  } else if (!hf_handshake_origin_allowed(pol, o->value, o->value_len)) {
    /* same-origin pages, when the policy allows them, as for WebSocket */
    const char *host = pol->same_origin_host;
    size_t hl = pol->same_origin_host_len;
    const hf_http_header *h = host ? NULL : hf_http_find(req, "Host");
    if (h) {
      host = h->value;
      hl = h->value_len;
    }
    if (!pol->allow_same_origin || !host ||
        !hf_handshake_same_origin(o->value, o->value_len, host, hl)) {
      *why = "origin_rejected";
      return 403;
    }
  }
  int n = snprintf(out, cap,
                   "Access-Control-Allow-Origin: %.*s\r\n"
                   "Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n",
                   (int)(o->value_len > 512 ? 512 : o->value_len), o->value);
  const hf_http_header *rh = hf_http_find(req, "Access-Control-Request-Headers");
  if (rh && rh->value_len && !(rh->value_len == 4 && memcmp(rh->value, "null", 4) == 0) &&
      n > 0 && (size_t)n < cap)
    snprintf(out + n, cap - (size_t)n, "Access-Control-Allow-Headers: %.*s\r\n",
             (int)(rh->value_len > 512 ? 512 : rh->value_len), rh->value);
  return 0;
}

int tr_stream_headers(tr_kind k, const char *extra, char *out, size_t cap) {
  int n = snprintf(out, cap,
                   "%sConnection: keep-alive\r\nX-Accel-Buffering: no\r\n"
                   "Cache-Control: private, no-cache, no-store, must-revalidate, max-age=0\r\n"
                   "Pragma: no-cache\r\nExpires: 0\r\n%s",
                   tr_is_sse(k) ? "Content-Type: text/event-stream; charset=utf-8\r\n" : "",
                   extra ? extra : "");
  return n < 0 || (size_t)n >= cap ? -1 : n;
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

int tr_query_connect(const char *target, size_t tlen, size_t max,
                     uint8_t **out, size_t *len) {
  const char *q = memchr(target, '?', tlen), *end = target + tlen;
  if (!q)
    return 1;
  for (const char *p = q + 1; p < end;) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *pe = amp ? amp : end;
    if ((size_t)(pe - p) > 10 && memcmp(p, "cf_connect=", 11) == 0) {
      const char *v = p + 11;
      size_t vl = (size_t)(pe - v);
      uint8_t *b = malloc(vl + 1);
      if (!b)
        return 2;
      size_t n = 0;
      for (size_t i = 0; i < vl; i++) {
        if (v[i] == '%') {
          int h = i + 2 < vl ? hexval(v[i + 1]) : -1, l = h >= 0 ? hexval(v[i + 2]) : -1;
          if (h < 0 || l < 0) {
            free(b);
            return -1;
          }
          b[n++] = (uint8_t)(h * 16 + l);
          i += 2;
        } else {
          b[n++] = v[i] == '+' ? ' ' : (uint8_t)v[i];
        }
      }
      if (!n || n > max) {
        free(b);
        return -1;
      }
      *out = b;
      *len = n;
      return 0;
    }
    p = amp ? amp + 1 : end;
  }
  return 1;
}

/* ---- sessions ------------------------------------------------------------ */

#define SESS_BUCKETS 1024

struct tr_session {
  tr_session *next;
  void *owner;
  uint32_t requests;
  char id[48];
};

struct tr_sessions {
  tr_session *b[SESS_BUCKETS];
};

static unsigned sess_hash(const char *id, size_t len) {
  unsigned h = 2166136261u;
  for (size_t i = 0; i < len; i++)
    h = (h ^ (unsigned char)id[i]) * 16777619u;
  return h & (SESS_BUCKETS - 1);
}

tr_sessions *tr_sessions_new(void) { return calloc(1, sizeof(tr_sessions)); }

void tr_sessions_free(tr_sessions *t) { free(t); }

tr_session *tr_session_add(tr_sessions *t, unsigned worker, void *owner) {
  uint8_t rnd[16];
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
    return NULL; /* a guessable session would let others inject commands */
  tr_session *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  int n = snprintf(s->id, sizeof s->id, "%u.", worker);
  static const char hx[] = "0123456789abcdef";
  for (int i = 0; i < 16; i++) {
    s->id[n++] = hx[rnd[i] >> 4];
    s->id[n++] = hx[rnd[i] & 15];
  }
  s->id[n] = 0;
  s->owner = owner;
  unsigned h = sess_hash(s->id, (size_t)n);
  s->next = t->b[h];
  t->b[h] = s;
  return s;
}

const char *tr_session_id(const tr_session *s) { return s->id; }

void tr_session_remove(tr_sessions *t, tr_session *s) {
  for (tr_session **pp = &t->b[sess_hash(s->id, strlen(s->id))]; *pp;
       pp = &(*pp)->next)
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  free(s);
}

uint32_t tr_session_remove_id(tr_sessions *t, const char *id) {
  for (tr_session **pp = &t->b[sess_hash(id, strlen(id))]; *pp; pp = &(*pp)->next)
    if (strcmp((*pp)->id, id) == 0) {
      tr_session *s = *pp;
      uint32_t n = s->requests;
      *pp = s->next;
      free(s);
      return n;
    }
  return 0;
}

static tr_session *sess_lookup(tr_sessions *t, const char *id, size_t len) {
  if (len >= sizeof ((tr_session *)0)->id)
    return NULL;
  for (tr_session *s = t->b[sess_hash(id, len)]; s; s = s->next)
    if (strlen(s->id) == len && memcmp(s->id, id, len) == 0)
      return s;
  return NULL;
}

void *tr_session_find(tr_sessions *t, const char *id, size_t len) {
  tr_session *s = sess_lookup(t, id, len);
  return s ? s->owner : NULL;
}

void *tr_session_deliver(tr_sessions *t, const char *id, size_t len) {
  tr_session *s = sess_lookup(t, id, len);
  if (!s)
    return NULL;
  s->requests++;
  return s->owner;
}

int tr_session_worker(const char *id, size_t len) {
  int w = 0;
  size_t i = 0;
  for (; i < len && i < 4 && id[i] >= '0' && id[i] <= '9'; i++)
    w = w * 10 + (id[i] - '0');
  return i && i < len && id[i] == '.' ? w : -1;
}

/* ---- pending bodies --------------------------------------------------------- */

int tr_pending_add(tr_pending **list, hf_conn *c, int what, const char *headers,
                   char *px_headers) {
  size_t hl = strlen(headers);
  tr_pending *p = malloc(sizeof *p + hl + 1);
  if (!p) {
    free(px_headers);
    return HF_ENOMEM;
  }
  p->c = c;
  p->what = what;
  p->px_headers = px_headers;
  memcpy(p->headers, headers, hl + 1);
  p->next = *list;
  *list = p;
  return 0;
}

void tr_pending_free(tr_pending *p) {
  if (p)
    free(p->px_headers);
  free(p);
}

tr_pending *tr_pending_take(tr_pending **list, hf_conn *c) {
  for (tr_pending **pp = list; *pp; pp = &(*pp)->next)
    if ((*pp)->c == c) {
      tr_pending *p = *pp;
      *pp = p->next;
      return p;
    }
  return NULL;
}
