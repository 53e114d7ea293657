/* SPDX-License-Identifier: MIT */
/* Framing of protocol messages for HTTP streaming and SSE (chunks built
 * per message, or once per publication for the fan-out), CORS of the HTTP
 * transports, emulation sessions and requests waiting for their body. */
#include "transport/transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/uio.h>

#include "hf/err.h"
#include "hf/frame.h"

static const char *const names[TR_KINDS] = {"websocket",     "http_stream",     "sse",
                                            "uni_websocket", "uni_http_stream", "uni_sse"};

const char *tr_name(tr_kind k) {
  return (unsigned)k < TR_KINDS ? names[k] : "unknown";
}

/* ---- framing ------------------------------------------------------------- */

/* One message (a line) framed for k. */
static int send_line(hf_conn *c, tr_kind k, const uint8_t *json, size_t len) {
  if (k == TR_WEBSOCKET || k == TR_UNI_WEBSOCKET)
    return hf_conn_send(c, HF_OP_TEXT, json, len);
  if (tr_is_sse(k)) {
    struct iovec p[3] = {{(void *)"data: ", 6}, {(void *)json, len}, {(void *)"\n\n", 2}};
    return hf_conn_send_chunk(c, p, 3);
  }
  struct iovec p[2] = {{(void *)json, len}, {(void *)"\n", 1}};
  return hf_conn_send_chunk(c, p, 2);
}

#define PUSH_PRE "{\"push\":"
#define CONNECT_PRE "{\"id\":1,\"connect\":"

/* A line for a unidirectional client: the bare push, the connect result
 * as a connect push, or a connect error as the end of the connection. */
static int send_uni(hf_conn *c, tr_kind k, const uint8_t *p, size_t n) {
  size_t pl = sizeof PUSH_PRE - 1, cl = sizeof CONNECT_PRE - 1;
  if (n > pl + 1 && memcmp(p, PUSH_PRE, pl) == 0)
    return send_line(c, k, p + pl, n - pl - 1);
  if (n > cl && memcmp(p, CONNECT_PRE, cl) == 0) {
    uint8_t buf[16];
    memcpy(buf, "{\"connect\":", 11); /* {"connect":{...}} */
    struct iovec parts[2] = {{buf, 11}, {(void *)(p + cl), n - cl}};
    if (k == TR_UNI_WEBSOCKET) { /* one frame: join the parts */
      uint8_t *m = malloc(n - cl + 11);
      if (!m)
        return HF_ENOMEM;
      memcpy(m, buf, 11);
      memcpy(m + 11, p + cl, n - cl);
      int r = hf_conn_send(c, HF_OP_TEXT, m, n - cl + 11);
      free(m);
      return r;
    }
    if (tr_is_sse(k)) {
      struct iovec e[4] = {{(void *)"data: ", 6}, parts[0], parts[1], {(void *)"\n\n", 2}};
      return hf_conn_send_chunk(c, e, 4);
    }
    struct iovec e[3] = {parts[0], parts[1], {(void *)"\n", 1}};
    return hf_conn_send_chunk(c, e, 3);
  }
  if (n > 7 && memcmp(p, "{\"id\":1,", 8) == 0 && memmem(p, n, "\"error\":", 8)) {
    const uint8_t *e = memmem(p, n, "\"code\":", 7);
    unsigned code = e ? (unsigned)strtoul((const char *)e + 7, NULL, 10) : 0;
    uint16_t dc = code == 101 ? 3500 : code == 109 ? 3005 : 3501;
    hf_conn_close(c, dc, dc == 3500 ? "invalid token" : dc == 3005 ? "connection expired"
                                                                   : "bad request");
    return HF_ECLOSED;
  }
  if (n == 2 && p[0] == '{' && p[1] == '}')
    return send_line(c, k, p, n); /* ping */
  return 0; /* other replies: a unidirectional client sent no commands */
}

int tr_send(hf_conn *c, tr_kind k, const uint8_t *json, size_t len) {
  if (k == TR_WEBSOCKET)
    return hf_conn_send(c, HF_OP_TEXT, json, len);
  if (k == TR_HTTP_STREAM)
    return send_line(c, k, json, len); /* lines stay joined in one chunk */
  /* SSE: one event per line (a line must not hold a raw newline); uni:
   * each line on its own */
  size_t off = 0;
  int r = 0;
  while (off < len && r == 0) {
    const uint8_t *nl = memchr(json + off, '\n', len - off);
    size_t end = nl ? (size_t)(nl - json) : len;
    if (end > off)
      r = tr_is_uni(k) ? send_uni(c, k, json + off, end - off)
                       : send_line(c, k, json + off, end - off);
    off = end + 1;
  }
  return r;
}

/* Where the payload of a server (unmasked) WebSocket frame starts. */
static size_t ws_payload_off(const hf_shared *f) {
  uint8_t l = f->data[1] & 0x7f;
  return l < 126 ? 2 : l == 126 ? 4 : 10;
}

/* Build k's framing of a fan-out frame (a push): a chunk
 * "<hex>\r\n<pre><json><post>\r\n", or for uni_websocket a new frame;
 * unidirectional kinds carry the bare push (the {"push":..} wrapper off). */
static hf_shared *build_variant(const hf_shared *f, void *arg) {
  tr_kind k = (tr_kind)(uintptr_t)arg;
  size_t off = ws_payload_off(f), jl = f->len - off;
  const uint8_t *json = f->data + off;
  size_t ppl = sizeof PUSH_PRE - 1;
  if (tr_is_uni(k) && jl > ppl + 1 && memcmp(json, PUSH_PRE, ppl) == 0) {
    json += ppl;
    jl -= ppl + 1;
  }
  hf_shared *v;
  if (k == TR_UNI_WEBSOCKET) {
    v = hf_shared_new(jl + HF_FRAME_MAX_HEADER);
    if (!v)
      return NULL;
    size_t hl = hf_frame_header(v->data, 1, HF_OP_TEXT, jl, NULL);
    memcpy(v->data + hl, json, jl);
    v->len = (uint32_t)(hl + jl);
  } else {
    const char *pre = tr_is_sse(k) ? "data: " : "";
    const char *post = tr_is_sse(k) ? "\n\n" : "\n";
    size_t pl = strlen(pre), sl = strlen(post), body = pl + jl + sl;
    v = hf_shared_new(body + 24);
    if (!v)
      return NULL;
    int hl = snprintf((char *)v->data, 20, "%zx\r\n", body);
    uint8_t *p = v->data + hl;
    memcpy(p, pre, pl);
    memcpy(p + pl, json, jl);
    memcpy(p + pl + jl, post, sl);
    memcpy(p + body, "\r\n", 2);
    v->len = (uint32_t)((size_t)hl + body + 2);
  }
  v->flags = f->flags; /* droppable publications stay droppable */
  return v;
}

int tr_send_shared(hf_conn *c, tr_kind k, hf_shared *frame) {
  if (k == TR_WEBSOCKET)
    return hf_conn_send_shared(c, frame, 0, frame->len);
  if (frame->len < 2)
    return HF_EINVAL;
  hf_shared *v = hf_shared_variant(frame, (uint32_t)k, build_variant,
                                   (void *)(uintptr_t)k);
  if (!v)
    return HF_ENOMEM;
  return hf_conn_send_shared(c, v, 0, v->len);
}

void tr_disconnect_push(hf_conn *c, tr_kind k, uint16_t code,
                        const char *reason) {
  if (!tr_is_stream(k))
    return;
  char buf[400];
  size_t n = (size_t)snprintf(buf, sizeof buf,
                              "{\"push\":{\"disconnect\":{\"code\":%u,\"reason\":\"",
                              (unsigned)code);
  /* reasons are our own plain text; escape what JSON needs anyway */
  for (const char *r = reason ? reason : ""; *r && n < sizeof buf - 8; r++) {
    unsigned char ch = (unsigned char)*r;
    if (ch == '"' || ch == '\\')
      buf[n++] = '\\';
    buf[n++] = ch < 0x20 ? ' ' : (char)ch;
  }
  memcpy(buf + n, "\"}}}", 4);
  n += 4;
  tr_send(c, k, (const uint8_t *)buf, n);
}

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

int tr_pending_add(tr_pending **list, hf_conn *c, int what, const char *headers) {
  size_t hl = strlen(headers);
  tr_pending *p = malloc(sizeof *p + hl + 1);
  if (!p)
    return HF_ENOMEM;
  p->c = c;
  p->what = what;
  memcpy(p->headers, headers, hl + 1);
  p->next = *list;
  *list = p;
  return 0;
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
