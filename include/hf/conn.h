/* SPDX-License-Identifier: MIT */
/* A server-side WebSocket connection on an hf_loop: HTTP/1.1 request head,
 * upgrade or plain response, RFC 6455 message loop with fragment assembly,
 * ping/pong heartbeat, close handshake, corked non-blocking output with a
 * bounded queue, and timeouts. Knows nothing of channels or JSON: the
 * application sees requests, whole messages and a final close report.
 *
 * Threading: a connection belongs to the loop (thread) that accepted it and
 * must only be touched from that thread. Callbacks are never re-entered and
 * a connection is never freed inside one of its own callbacks. */
#ifndef HF_CONN_H
#define HF_CONN_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hf/handshake.h"
#include "hf/http.h"
#include "hf/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hf_conn hf_conn;
typedef struct hf_conn_ctx hf_conn_ctx;

typedef struct {
  uint64_t max_message;          /* largest incoming message, bytes */
  uint32_t max_head;             /* largest request head, bytes (431 over) */
  uint32_t max_headers;          /* most header fields (431 over) */
  uint32_t max_queue;            /* output queue soft limit, bytes */
  uint32_t max_queue_hard;       /* output queue hard limit: slow at once */
  uint32_t slow_grace_ms;        /* how long the queue may stay over
                                    max_queue while draining; then 3008 */
  uint32_t handshake_timeout_ms; /* accept -> complete request head */
  uint32_t ping_interval_ms;     /* 0 = no WebSocket pings */
  uint32_t pong_timeout_ms;      /* silence after a ping -> 3012 */
  uint32_t close_timeout_ms;     /* wait for the peer's close frame */
  uint32_t response_timeout_ms;  /* a deferred answer (0: 30 s); then the
                                    connection is dropped */
  /* permessage-deflate on connections that negotiated it (the handshake
   * policy decides who does): zlib level and memory level of outgoing
   * messages, and the smallest message compressed. */
  int deflate_level, deflate_mem_level;
  uint32_t deflate_min_size;
  /* 1: the end-of-iteration flush (broadcast output, one write per
   * connection) goes out as one io_uring batch (hf_usend) when the kernel
   * allows io_uring; sendmsg otherwise and with 0 (hf_conn_ctx_send_uring
   * tells which). TLS connections always use their own writes. */
  int send_uring;
  /* Connections the end-of-iteration flush writes before it lets the loop
   * read input again (0: all of them in one go). The flush list is served
   * in order (first queued, first written); the rest is written in the
   * next iteration, after its I/O events, so that a publication arriving
   * during a long sweep joins the connections not yet written instead of
   * waiting for the whole sweep to end. */
  uint32_t flush_budget;
} hf_conn_config;

/* Who ended a connection, as logged. */
typedef enum {
  HF_WHO_SERVER,   /* we sent the first close frame (or dropped the peer) */
  HF_WHO_CLIENT,   /* the peer sent the first close frame */
  HF_WHO_ABNORMAL  /* TCP ended without a close frame (observed 1006) */
} hf_conn_who;

typedef struct {
  uint16_t code;          /* close code sent or received; 1006 abnormal */
  const char *reason;     /* NUL-terminated; "" if none */
  hf_conn_who who;
  uint8_t upgraded;       /* 0: ended during the HTTP phase */
  uint8_t handshake_timeout; /* ended because the head did not arrive */
  uint64_t duration_ms;   /* since accept */
  uint64_t bytes_in, bytes_out;  /* TCP payload bytes, after the upgrade */
  uint64_t msgs_in, msgs_out;    /* data messages */
  uint8_t tls;            /* 0 plain; 1 TLS, handshake unfinished; 2 TLS */
} hf_conn_close_info;

typedef struct {
  /* A complete request head arrived. The handler must call exactly one of
   * hf_conn_upgrade() or hf_conn_respond() before returning. */
  void (*on_request)(hf_conn *c, const hf_http_request *req);
  /* A complete, validated data message (text is valid UTF-8). data is
   * writable scratch memory valid until the callback returns. */
  void (*on_message)(hf_conn *c, int opcode, uint8_t *data, size_t len);
  /* Optional: a request body asked for with hf_conn_read_body() arrived
   * whole. The handler must answer with hf_conn_respond(). */
  void (*on_body)(hf_conn *c, uint8_t *body, size_t len);
  /* Optional: the request head was rejected before it could be parsed
   * (status 400 malformed, 431 too large, 505 HTTP version); the answer is
   * sent by the engine. reason is a short snake_case id, detail English. */
  void (*on_bad_request)(hf_conn *c, int status, const char *reason,
                         const char *detail);
  /* Optional: the peer is slow (the output queue stayed over max_queue
   * for slow_grace_ms, or went over max_queue_hard). Return nonzero if the
   * application made room itself (hf_conn_drop_queued); if the queue is
   * still over the limit afterwards, or for 0, the connection is closed
   * with 3008 as without this callback. Sends made from here are queued
   * normally; the callback is not re-entered. */
  int (*on_slow)(hf_conn *c, size_t queued);
  /* Optional: a streaming response (hf_conn_stream_start) is about to end
   * with code and reason (hf_conn_close, slow consumer, drain): the last
   * chance to send (hf_conn_send_chunk) before the terminating chunk. */
  void (*on_stream_end)(hf_conn *c, uint16_t code, const char *reason);
  /* The connection is gone (always called once, last). */
  void (*on_close)(hf_conn *c, const hf_conn_close_info *info);
  /* Optional: the connection failed below HTTP. reason is one of
   * "tls_handshake_failed" (detail: hf_tls_error's sentence with OpenSSL's
   * reason; hf_conn_tls_session() gives the SNI name), "plain_http_on_tls_port"
   * (the engine answers 400 "this port speaks TLS"), "tls_on_plain_port" (a
   * TLS ClientHello on a plain port: closed without an answer) or
   * "bad_proxy_header" (a PROXY-protocol listener got none or a malformed
   * one: closed, or 400 if it looks like HTTP). on_close follows. */
  void (*on_transport_error)(hf_conn *c, const char *reason, const char *detail);
  /* Optional: the due time set with hf_conn_set_timer came (or may have:
   * see there). Not called again until set again; may send or close. */
  void (*on_timer)(hf_conn *c);
} hf_conn_handler;

struct hf_tls_server;
struct hf_tls;

/* How an accepted socket speaks below HTTP. */
typedef struct {
  struct hf_tls_server *tls; /* non-NULL: TLS, server role (the session
                                holds its own reference) */
  int proxy_protocol;        /* nonzero: a PROXY protocol v1/v2 header comes
                                first; its source address becomes the
                                connection's client address */
} hf_conn_accept_opts;

/* Per-loop context: configuration, handler, the cork buffer and the list of
 * live connections. One per worker thread. */
hf_conn_ctx *hf_conn_ctx_new(hf_loop *loop, const hf_conn_config *cfg,
                             const hf_conn_handler *h);
void hf_conn_ctx_free(hf_conn_ctx *ctx);
/* 1 if ctx's flush batches its sends on io_uring, 0 if it uses sendmsg
 * (send_uring off, or io_uring unavailable: then *err, if err is not NULL,
 * is the negative errno of the failed set-up, else 0). */
int hf_conn_ctx_send_uring(const hf_conn_ctx *ctx, int *err);
/* Number of live connections in ctx. */
size_t hf_conn_ctx_count(const hf_conn_ctx *ctx);

/* Totals of one ctx since it was created, written by its loop thread only
 * (relaxed stores) and readable from any thread (relaxed loads). Messages
 * sent counts messages queued to send; bytes sent counts bytes written. */
typedef struct {
  _Atomic uint64_t bytes_in, bytes_out, msgs_in, msgs_out, pong_timeouts;
  /* permessage-deflate: messages inflated, messages compressed for one
   * connection (shared frames are counted by hf_shared_deflate_count) */
  _Atomic uint64_t msgs_inflated, msgs_deflated;
  /* end-of-iteration flushes that stopped at flush_budget and went on in a
   * later iteration */
  _Atomic uint64_t flush_yields;
} hf_conn_stats;
const hf_conn_stats *hf_conn_ctx_stats(const hf_conn_ctx *ctx);

/* Call fn for every live connection of ctx (loop thread only; fn must not
 * close or free connections). */
void hf_conn_ctx_each(hf_conn_ctx *ctx, void (*fn)(void *arg, hf_conn *c), void *arg);
/* Walk the live connections of ctx, newest first: the first one (NULL if
 * none), then the one after c (NULL at the end). c must be live, or inside
 * its own on_close (then: the one that followed it). A connection accepted
 * during a walk is not seen; one torn down is left out by the walk once
 * gone (keep the next one before an action that may tear down c, as with
 * any list). Loop thread only. Lets an application iterate its
 * connections without links of its own. */
hf_conn *hf_conn_ctx_first(const hf_conn_ctx *ctx);
hf_conn *hf_conn_ctx_next(const hf_conn *c);
/* Start a graceful close of every connection: upgraded ones get a close
 * frame (code, reason); answered HTTP ones are dropped; ones still reading
 * their request head are left to be answered or to time out. */
void hf_conn_ctx_close_all(hf_conn_ctx *ctx, uint16_t code, const char *reason);

/* Take ownership of an accepted, non-blocking socket. Returns the new
 * connection or NULL (the fd is closed). */
hf_conn *hf_conn_accept(hf_conn_ctx *ctx, int fd, const struct sockaddr *sa,
                        socklen_t salen);
/* The same with a transport: PROXY header and/or TLS (o may be NULL). The
 * TLS handshake and the PROXY header are read without blocking and count
 * against handshake_timeout_ms, like the request head. */
hf_conn *hf_conn_accept_ex(hf_conn_ctx *ctx, int fd, const struct sockaddr *sa,
                           socklen_t salen, const hf_conn_accept_opts *o);

/* Answer the request with the upgrade if it passes hf_handshake_check under
 * pol, else with the explained rejection. When pol->deflate is set and an
 * offer is accepted, the connection speaks permessage-deflate: incoming
 * compressed messages are inflated (bounded by max_message, UTF-8 checked
 * after inflation), outgoing ones at least deflate_min_size bytes are
 * compressed, and shared frames with an alt use it. extra_headers are added to the
 * 101 (each "Name: value\r\n"). The connection id header is always added.
 * Fills *res (views valid for the callback) and returns res->code. */
hf_hs_code hf_conn_upgrade(hf_conn *c, const hf_http_request *req,
                           const hf_handshake_policy *pol,
                           const char *extra_headers, hf_handshake_result *res);

/* Before answering (from on_request or on_body): keep the connection open
 * after the answer for the next request (HTTP/1.1 keep-alive; the caller
 * checks the request allows it). Further requests must arrive within
 * handshake_timeout each. Ignored while draining. */
void hf_conn_keep_alive(hf_conn *c);

/* From on_request or on_body: the answer comes later (the application
 * waits for something asynchronous). Reading stops until hf_conn_respond;
 * requests pipelined behind this one wait, then are handled in order. If
 * the peer goes away meanwhile, on_close is called as usual (the
 * application must then forget the connection); if no answer comes within
 * response_timeout_ms the connection is dropped the same way. */
void hf_conn_defer(hf_conn *c);

/* Send a plain HTTP response; then close the connection, unless
 * hf_conn_keep_alive was called for this request. May be called later for
 * a deferred request (any callback on the connection's loop). */
void hf_conn_respond(hf_conn *c, int status, const char *extra_headers,
                     const char *content_type, const char *body,
                     size_t body_len);

/* From on_request only: read a request body of exactly len bytes (the
 * request's Content-Length; the caller checks its own size limit first),
 * then call the handler's on_body. The whole request, head and body, must
 * arrive within handshake_timeout. Returns 0 or HF_EINVAL. */
int hf_conn_read_body(hf_conn *c, size_t len);

/* From on_request or on_body (also for a deferred request): answer 200
 * with a never-ending chunked body (HTTP streaming, Server-Sent Events).
 * extra_headers: each "Name: value\r\n", or NULL. The connection is then
 * OPEN like an upgraded one: output queue limits and the slow-consumer rule
 * apply, hf_conn_send_shared queues whole prepared chunks, input is read
 * and dropped (the client ends the stream by closing; logged as 1001 by
 * the client), no WebSocket pings are sent (the application's heartbeat
 * applies), and hf_conn_close ends the body (on_stream_end, then the last
 * chunk). Returns 0, HF_EINVAL (not answerable) or an I/O error. */
int hf_conn_stream_start(hf_conn *c, const char *extra_headers);

/* Streaming response: queue one chunk whose body is the concatenation of
 * parts[0..n) (1 <= n <= 6; copied or written at once). Returns 0,
 * HF_ECLOSED (not a stream or ended), HF_EINVAL or HF_ELIMIT (queue over
 * its limit: the stream is being ended with 3008). Loop thread only. */
struct iovec;
int hf_conn_send_chunk(hf_conn *c, const struct iovec *parts, int n);

/* Queue a prepared frame (sh->data[off..off+len), header included) by
 * reference: no copy. A whole frame (off 0, len sh->len) with a compressed
 * alt goes out as the alt to connections that negotiated deflate. Everything queued for one connection during a loop
 * iteration leaves in one sendmsg at the end of the iteration. The queue
 * limit applies (3008). Same return values as hf_conn_send. Loop thread
 * only; sh may be shared with connections on other loops. */
struct hf_shared;
int hf_conn_send_shared(hf_conn *c, struct hf_shared *sh, size_t off,
                        size_t len);

/* Queue the whole frames sh[0..n) (n >= 1), in order, as n calls of
 * hf_conn_send_shared(c, sh[i], 0, sh[i]->len) would, touching the
 * connection once: one check of its state, one growth of its queue, one
 * place on the end-of-iteration write list. Stops after the frame that
 * takes the queue over max_queue (the slow-consumer rule is then applied
 * as hf_conn_send_shared does), so that the caller can look again before
 * queueing the rest. Returns the number of frames queued (1..n), or
 * HF_ECLOSED, HF_ELIMIT (being closed with 3008), HF_ENOMEM. Loop thread
 * only; the frames may be shared with connections on other loops. */
int hf_conn_send_shared_v(hf_conn *c, struct hf_shared *const *sh, size_t n);

/* Drop every queued frame held in an HF_SHARED_DROPPABLE buffer that has
 * not started to leave (the frame being written stays). Returns the bytes
 * dropped. Loop thread only. */
size_t hf_conn_drop_queued(hf_conn *c);
/* Bytes waiting in the output queue. */
size_t hf_conn_queued(const hf_conn *c);

/* Queue one message (HF_OP_TEXT/BINARY/PING/PONG). Sends made while the
 * connection's input is being processed are corked and leave together.
 * Returns 0, HF_ECLOSED (closing or closed), or HF_ELIMIT (the output queue
 * went over its limit: the connection is being closed with 3008). */
int hf_conn_send(hf_conn *c, int opcode, const uint8_t *data, size_t len);

/* Start the close handshake with code and a non-empty reason (truncated to
 * 123 bytes). Data received afterwards is discarded; TCP is closed when the
 * peer answers or after close_timeout. No-op if already closing. */
void hf_conn_close(hf_conn *c, uint16_t code, const char *reason);

/* 1 if the connection negotiated permessage-deflate. */
int hf_conn_deflate(const hf_conn *c);

/* Connection id: 16 random bytes formatted as a UUID (36 chars + NUL). */
void hf_conn_id(const hf_conn *c, char out[37]);
/* The same 16 bytes unformatted: valid (and unchanged) until the connection
 * is freed, readable from any thread while it lives. Kept once, here:
 * layers above format it when they need the text (hf_conn_id_format). */
const uint8_t *hf_conn_id_raw(const hf_conn *c);
/* Format 16 id bytes as a UUID (36 chars + NUL). Any thread. */
void hf_conn_id_format(const uint8_t id[16], char out[37]);
/* Remote address as "ip:port" ("[ip]:port" for IPv6). */
void hf_conn_peer(const hf_conn *c, char *out, size_t cap);
/* Remote IP as bytes (4 or 16) for limit bookkeeping; returns its length. */
size_t hf_conn_peer_ip(const hf_conn *c, uint8_t out[16]);

/* The client: the address a PROXY header or the application
 * (hf_conn_set_client, e.g. from a trusted proxy's X-Forwarded-For) named,
 * else the TCP peer. Same formats as hf_conn_peer / hf_conn_peer_ip. */
void hf_conn_client(const hf_conn *c, char *out, size_t cap);
size_t hf_conn_client_ip(const hf_conn *c, uint8_t out[16]);
/* 1 if a client address other than the TCP peer was set. */
int hf_conn_has_client(const hf_conn *c);
/* Set the client address (ip: 4 or 16 bytes; port 0 if unknown). Loop
 * thread only. */
void hf_conn_set_client(hf_conn *c, const uint8_t *ip, size_t len,
                        uint16_t port);

/* The established TLS session (hf/tls.h: version, SNI, ...), NULL on a
 * plain connection or before the handshake completed. */
struct hf_tls *hf_conn_tls(const hf_conn *c);
/* 1 if the connection speaks TLS (handshake finished or not). */
int hf_conn_is_tls(const hf_conn *c);
/* The TLS session even during the handshake (for failure logs: SNI). */
struct hf_tls *hf_conn_tls_session(const hf_conn *c);

/* The loop clock (hf_loop_now, ms) when the connection was accepted. */
uint64_t hf_conn_accept_ms(const hf_conn *c);

void hf_conn_set_udata(hf_conn *c, void *udata);
void *hf_conn_udata(const hf_conn *c);
hf_conn_ctx *hf_conn_get_ctx(const hf_conn *c);
hf_loop *hf_conn_loop(const hf_conn *c);

/* The application's deadline of c: the handler's on_timer runs on the loop
 * thread at or after due (absolute ms on the hf_loop_now clock), once;
 * 0 or UINT64_MAX cancels it, a later call replaces it. The connection's
 * one timer serves it and the engine's own deadlines (handshake, close,
 * ping), so an application needs no timer of its own per connection. A
 * due time more than 49 days after the engine's next deadline may be
 * reported early: on_timer does what is due at hf_loop_now and sets the
 * next due time. No-op once the connection is gone (on_close may call
 * it). Loop thread only. */
void hf_conn_set_timer(hf_conn *c, uint64_t due);

#ifdef __cplusplus
}
#endif
#endif
