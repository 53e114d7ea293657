/* SPDX-License-Identifier: MIT */
/* Framing of protocol messages for HTTP streaming, SSE and the
 * unidirectional transports: chunks or frames built per message, or once
 * per publication for the fan-out (shared-buffer variants), and the
 * disconnect push that ends a stream. The HTTP helpers are in http.c. */
#include "transport/transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
