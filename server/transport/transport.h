/* SPDX-License-Identifier: MIT */
/* Transports of the real-time protocol besides the WebSocket frame: how a
 * reply or push is framed (HTTP streaming lines, Server-Sent Events),
 * the disconnect push that ends a stream, the CORS answer shared by the
 * HTTP transports, and each worker's table of emulation sessions and of
 * requests waiting for their body. One client state machine (cl_) uses
 * them through tr_send / tr_send_shared. Loop thread only unless noted. */
#ifndef SRV_TRANSPORT_H
#define SRV_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "hf/conn.h"
#include "hf/handshake.h"
#include "hf/http.h"
#include "hf/shared.h"

typedef enum {
  TR_WEBSOCKET = 0, /* RFC 6455 text frames */
  TR_HTTP_STREAM,   /* chunked POST response, one JSON per line */
  TR_SSE,           /* text/event-stream, one "data: JSON" event each */
  /* unidirectional (reference 7.6): bare Push objects, no replies, no
   * commands after the connect request, no pong asked */
  TR_UNI_WEBSOCKET, /* text frames; the connect request is the first message */
  TR_UNI_HTTP_STREAM, /* POST body = connect request; JSON lines */
  TR_UNI_SSE,       /* cf_connect query (or POST body); SSE events */
  TR_KINDS
} tr_kind;

/* 1 for the unidirectional kinds. */
static inline int tr_is_uni(int k) { return k >= TR_UNI_WEBSOCKET && k < TR_KINDS; }
/* 1 when k is framed as SSE events / as a chunked stream. */
static inline int tr_is_sse(int k) { return k == TR_SSE || k == TR_UNI_SSE; }
static inline int tr_is_stream(int k) { return k != TR_WEBSOCKET && k != TR_UNI_WEBSOCKET; }

/* The transport's name as logged and counted ("websocket", "http_stream",
 * "sse", "uni_websocket", "uni_http_stream", "uni_sse"). */
const char *tr_name(tr_kind k);

/* Send one protocol message: replies and pushes joined by '\n', framed
 * for k (a WebSocket text frame; one chunk of "JSON\n" lines; one SSE event
 * per line). Unidirectional kinds get bare pushes: {"push":P} becomes P, the
 * connect reply becomes {"connect":{..}}, a connect error ends the
 * connection with a disconnect (3500 invalid token, 3005 expired, else
 * 3501), other replies are dropped. Returns the hf_conn_send /
 * hf_conn_send_chunk result. */
int tr_send(hf_conn *c, tr_kind k, const uint8_t *json, size_t len);

/* Queue a prepared WebSocket push frame of the hub's fan-out framed for k:
 * the frame itself for WebSocket, else its variant for k, built once per
 * publication and shared by every recipient of that transport (no copy per
 * recipient). Returns the hf_conn_send_shared result or HF_ENOMEM. */
int tr_send_shared(hf_conn *c, tr_kind k, hf_shared *frame);

/* The disconnect push {"push":{"disconnect":{"code":..,"reason":..}}} that
 * a stream writes before it ends (reference 4.5); nothing for WebSocket
 * (its close frame says it). */
void tr_disconnect_push(hf_conn *c, tr_kind k, uint16_t code,
                        const char *reason);

/* CORS of the HTTP transports (reference 7.4) under the WebSocket origin
 * policy pol. Writes the response headers to add into out (cap bytes, "" if
 * the request has no Origin) and returns 0, or returns 403 when the Origin
 * is not allowed (why: a short reason id for the log). */
int tr_cors(const hf_http_request *req, const hf_handshake_policy *pol,
            char *out, size_t cap, const char **why);

/* The headers of a streaming response of kind k (no-cache, keep-alive,
 * X-Accel-Buffering: no, the SSE content type) followed by extra. Returns
 * the length written or -1 if cap is too small. */
int tr_stream_headers(tr_kind k, const char *extra, char *out, size_t cap);

/* Decode the cf_connect query parameter of an SSE request target into a
 * malloc'd buffer (*out, *len). Returns 0, 1 if absent, -1 if malformed
 * or longer than max bytes decoded (2 out of memory). */
int tr_query_connect(const char *target, size_t tlen, size_t max,
                     uint8_t **out, size_t *len);

/* ---- sessions of emulation transports (one table per worker) ---------- */

typedef struct tr_session tr_session;
typedef struct tr_sessions tr_sessions;

tr_sessions *tr_sessions_new(void);
/* Free the table (its sessions must have been removed). */
void tr_sessions_free(tr_sessions *t);
/* A new session owned by worker `worker` for owner (the client): its id is
 * "<worker>.<32 random hex digits>". NULL on OOM. */
tr_session *tr_session_add(tr_sessions *t, unsigned worker, void *owner);
/* The id text (NUL-terminated, stable while the session exists). */
const char *tr_session_id(const tr_session *s);
/* Remove and free s. */
void tr_session_remove(tr_sessions *t, tr_session *s);
/* Remove and free the session with id text id (from tr_session_id), if
 * it is in t. Returns how many requests tr_session_deliver counted for it. */
uint32_t tr_session_remove_id(tr_sessions *t, const char *id);
/* tr_session_find that also counts one request for the session. */
void *tr_session_deliver(tr_sessions *t, const char *id, size_t len);
/* The owner of session id[0..len), or NULL. */
void *tr_session_find(tr_sessions *t, const char *id, size_t len);
/* The worker number encoded in a session id, or -1 if malformed. */
int tr_session_worker(const char *id, size_t len);

/* ---- requests waiting for their body (one list per worker) ---------------- */

/* What the answer to a request needs once its body arrives: the transport,
 * the response headers computed from the request head (CORS) and the
 * request headers the event proxy forwards (the head is gone by then). */
typedef struct tr_pending {
  struct tr_pending *next;
  hf_conn *c;
  int what;         /* the caller's kind of request */
  char *px_headers; /* owned; NULL when the proxy wants none */
  char headers[];
} tr_pending;

/* Remember headers for c (copied) and px_headers (taken: freed with the
 * entry by tr_pending_free, or handed on by the caller who clears it).
 * Returns 0 or HF_ENOMEM (px_headers is freed then too). */
int tr_pending_add(tr_pending **list, hf_conn *c, int what, const char *headers,
                   char *px_headers);
/* Take c's entry off the list (the caller frees it with tr_pending_free),
 * or NULL. */
tr_pending *tr_pending_take(tr_pending **list, hf_conn *c);
/* Free an entry taken off the list (NULL is fine). */
void tr_pending_free(tr_pending *p);

#endif
