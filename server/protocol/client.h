/* SPDX-License-Identifier: MIT */
/* A real-time client: one connection on /connection/websocket speaking the
 * Centrifugo client protocol v2 (JSON). It owns the protocol state machine
 * (NEW -> CONNECTED, or FAILED after a connect error), the application
 * ping/pong, connection expiry and refresh, and the client's
 * subscriptions. Loop thread only. */
#ifndef SRV_CLIENT_H
#define SRV_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "channels/chan.h"
#include "hf/conn.h"
#include "hf/http.h"
#include "hf/shared.h"
#include "channels/hub.h"
#include "protocol/jsonw.h"
#include "auth/jwt.h"
#include "limits/ratelimit.h"
#include <jansson.h>

typedef struct cl_client cl_client;

struct eng;
struct px_config;
struct px_worker;

/* What a SIGHUP reload may change for real-time clients: namespaces and
 * their permissions, token keys and claims, anonymous/insecure access. One
 * immutable snapshot; server.c publishes a new one with cl_policy_publish
 * and keeps the old ones readable (a client may be in the middle of a
 * command with one). */
typedef struct cl_policy {
  const chan_config *chans;
  const srv_jwt_keys *keys; /* NULL: no token can be verified */
  const char *audience, *issuer;
  const char *user_id_claim; /* "" = "sub" */
  bool allow_anonymous;      /* client.allow_anonymous_connect_without_token */
  bool insecure;             /* client.insecure */
} cl_policy;

typedef struct {
  struct eng *eng;           /* memory or Redis (engine/engine.h) */
  const cl_policy *policy;   /* the current snapshot: read with cl_policy_get */
  uint32_t ping_interval_ms; /* client.ping_interval (0 = no pings) */
  uint32_t pong_timeout_ms;  /* client.pong_timeout (0 = no pong asked) */
  uint32_t expired_close_delay_ms;
  uint32_t expired_sub_close_delay_ms;
  uint32_t stale_close_delay_ms;
  uint32_t channel_limit;
  uint32_t recovery_max_publication_limit; /* 0 = no limit */
  uint32_t history_max_publication_limit;  /* history command cap */
  const char *version;
  /* containment (server/limits/): per connection rates, the shared
   * per-user / per-channel table (NULL: no user or channel limits) */
  const rl_limits *limits; /* the current snapshot: read with rl_limits_get */
  struct rl_shared *rl;
  const struct px_config *px; /* backend event proxy, or NULL */
  uint64_t max_message;       /* websocket.message_size_limit: the longest
                                 Protobuf command a length prefix may give */
} cl_config;

/* The current policy snapshot of c (an acquire load; any thread). */
static inline const cl_policy *cl_policy_get(const cl_config *c) {
  return __atomic_load_n(&c->policy, __ATOMIC_ACQUIRE);
}
/* Publish p as c's policy (a release store; the old one stays readable). */
static inline void cl_policy_publish(cl_config *c, const cl_policy *p) {
  __atomic_store_n(&c->policy, p, __ATOMIC_RELEASE);
}

/* All clients of one worker (for the server API's targeted commands).
 * They are walked through the worker's connections (cl_list_first,
 * cl_next), not through links of their own. */
typedef struct cl_list {
  hf_conn_ctx *ctx; /* the worker's connections (set by cl_new) */
  /* the client on connection c, or NULL (the server's udata convention);
   * set by the server before the first cl_new */
  cl_client *(*of_conn)(hf_conn *c);
  size_t count;
  jw_buf out; /* replies of the frame being processed (one at a time) */
  jw_buf pb;  /* scratch for their Protobuf form (Protobuf clients) */
  cl_client *cursor; /* the next client a spread drain closes, or NULL */
  struct px_worker *px; /* this worker's proxy client, or NULL */
  /* what every client of the worker shares, kept here rather than in each
   * client (set by cl_new) */
  hub_local *hl;
  const cl_config *cfg;
} cl_list;

/* Spread drain (server.c): start a pass over every client of l (new ones
 * are not added while draining), then close up to n more of them with a
 * disconnect code; returns how many were closed. A client that goes away by
 * itself meanwhile is skipped. Loop thread of l only. */
void cl_list_drain_begin(cl_list *l);
/* The first client of l (NULL if none); then cl_next. Loop thread of l. */
cl_client *cl_list_first(const cl_list *l);
size_t cl_list_disconnect_next(cl_list *l, size_t n, uint16_t code, const char *reason);

/* What a reload re-check did on one worker (added to by cl_list_recheck). */
typedef struct {
  uint64_t checked;      /* clients looked at */
  uint64_t subs_removed; /* unsubscribe pushes (2000) */
  uint64_t conns_closed; /* connections closed (3501) */
} cl_recheck_counts;

/* After a reload published a new policy into cfg: check every connected
 * client of l against it (protocol/recheck.c). A subscription whose
 * channel no longer resolves (namespace removed) gets an unsubscribe push
 * 2000; one the client made itself (no subscription token, not the
 * subscribe proxy, not server-side) whose subscribe permission was revoked
 * too; a connection made without a token while anonymous connections are
 * now refused is closed with 3501. Connections verified with a key that
 * was removed stay (their token is checked again at its next refresh).
 * Counts into n and the metrics. Loop thread of l only. */
void cl_list_recheck(cl_list *l, const cl_config *cfg, cl_recheck_counts *n);

/* Create the protocol state for an upgraded connection. NULL on OOM. */
cl_client *cl_new(hf_conn *conn, hub_local *hl, cl_list *list,
                  const cl_config *cfg);
/* The transport of this client (tr_kind of transport/transport.h; default
 * WebSocket) and, for emulation transports, the session and node written
 * into the connect result (borrowed: they must outlive the client). */
void cl_set_transport(cl_client *cl, int kind, const char *session,
                      const char *node);
int cl_transport(const cl_client *cl);
/* The client speaks the Protobuf encoding (the centrifuge-protobuf
 * sub-protocol or cf_protocol=protobuf on WebSocket; an
 * application/octet-stream body on http_stream): commands are binary frames
 * (chunks) of length-delimited Commands, replies and pushes likewise.
 * Call right after cl_new. */
void cl_set_protobuf(cl_client *cl);
int cl_protobuf(const cl_client *cl);
/* A stream transport ends: the disconnect push in the client's encoding
 * (JSON clients: tr_disconnect_push does it). Nothing for WebSocket. */
void cl_disconnect_push(cl_client *cl, uint16_t code, const char *reason);
/* The session given to cl_set_transport, or NULL. */
const char *cl_session(const cl_client *cl);
/* A WebSocket message for this client (commands, one per line). */
void cl_on_message(cl_client *cl, int opcode, uint8_t *data, size_t len);
/* The due time cl gave its connection (hf_conn_set_timer) came: the stale
 * close, pings and pong timeouts, connection and subscription expiry, the
 * refresh proxies' due times; sets the next one. May close the connection.
 * Calls at other times are harmless (only what is due is done). */
void cl_on_timer(cl_client *cl);
/* The connection is gone: leave every channel, stop timers, free. */
void cl_free(cl_client *cl);

/* Keep the upgrade request's headers that proxies forward (Cookie, ...). */
void cl_set_request_headers(cl_client *cl, const hf_http_request *req);
/* The same, already captured (px_capture_headers; taken, NULL for none):
 * for HTTP transports whose request head is gone when the session starts. */
void cl_take_request_headers(cl_client *cl, char *headers);

/* Queue a prepared push frame (fan-out). */
void cl_send_shared(cl_client *cl, hf_shared *frame);
/* Queue push frames[0..n) (n >= 1) in order, as n cl_send_shared calls
 * would, touching a WebSocket JSON client's connection once. Returns how
 * many were handled (queued, or dropped because the client is not
 * connected): fewer than n when its output queue went over its limit and
 * it is still open (the slow-consumer rule ran: the caller looks whether
 * it is still subscribed before offering the rest). Loop thread only. */
size_t cl_send_shared_n(cl_client *cl, hf_shared *const *frames, size_t n);

/* Close with a protocol disconnect code and plain-text reason. */
void cl_disconnect(cl_client *cl, uint16_t code, const char *reason);

/* An opaque word the server keeps per connection (limit bookkeeping): 32
 * bits are kept (server.c's U_* bits fit). */
uintptr_t cl_tag(const cl_client *cl);
void cl_set_tag(cl_client *cl, uintptr_t tag);

/* Accessors for the server API's targeted commands. */
const char *cl_user(const cl_client *cl);
hf_conn *cl_conn(const cl_client *cl);
/* The client after cl in its worker's list (NULL at the end); cl's
 * connection must be live or in its on_close (hf_conn_ctx_next). */
cl_client *cl_next(const cl_client *cl);
/* For the admin connection list (loop thread only). The upgrade's Origin
 * (copied; NULL: none), the last ping round trip in microseconds (0: not
 * measured yet), the loop-clock ms of the connection's accept, and the subscribed
 * channels by index (0 <= i < cl_num_channels; the name is not
 * NUL-terminated and lives while the subscription does). */
void cl_set_origin(cl_client *cl, const char *origin, size_t len);
const char *cl_origin(const cl_client *cl);
uint64_t cl_rtt_us(const cl_client *cl);
uint64_t cl_created_ms(const cl_client *cl);
size_t cl_num_channels(const cl_client *cl);
const char *cl_channel_at(const cl_client *cl, size_t i, size_t *len);
/* Leave channel ch (server API unsubscribe); sends an unsubscribe push. */
void cl_server_unsubscribe(cl_client *cl, const char *ch, size_t len);
/* Join channel ch (server API subscribe); sends a subscribe push. opts:
 * the API request (info/b64info, data/b64data, expire_at, override,
 * recover_since), or NULL. */
void cl_server_subscribe(cl_client *cl, const char *ch, size_t len,
                         json_t *opts);
/* The hub's delivery callbacks for real-time clients. */
const hub_callbacks *cl_hub_callbacks(void);
/* The connection's output queue went over its limit: when every
 * subscription can recover, drop the queued publications and make the
 * client resubscribe and recover (returns 1); else 0 (close 3008). */
int cl_on_slow(cl_client *cl, size_t queued);
/* New connection expiry (server API refresh); 0 = never. */
void cl_server_refresh(cl_client *cl, int64_t expire_at);

#endif
