/* SPDX-License-Identifier: MIT */
/* Prometheus metrics (prefix met_). Every worker thread counts into its own
 * met_worker, reached through a thread-local pointer: a count is a relaxed
 * load and store by the one thread that owns it (no lock, no atomic
 * read-modify-write on the message path). A scrape, on any thread, sums
 * the workers with relaxed loads. Label sets are bounded: a label never
 * carries a user, channel, connection or address. */
#ifndef SRV_METRICS_H
#define SRV_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/jsonw.h"

/* Plain counters. */
typedef enum {
  MET_UPGRADES_REALTIME,
  MET_UPGRADES_ECHO,
  MET_HANDSHAKE_TIMEOUTS,
  MET_HEARTBEAT_TIMEOUTS_PROTO, /* no pong after a protocol ping ({}) */
  MET_PUBLICATIONS_API,
  MET_PUBLICATIONS_CLIENT,
  MET_DELIVERIES,
  MET_PUSH_FRAMES, /* push frames the hub encoded (shared by all workers) */
  MET_SLOW_DISCONNECT,
  MET_SLOW_RECOVER,
  MET_TOKEN_EXPIRED,
  MET_TOKEN_REFRESHED,
  MET_TOKEN_REJECTED,
  MET_RECOVERIES_OK,
  MET_RECOVERIES_FAILED,
  MET_INSUFFICIENT_STATE,
  MET_HISTORY_EVICTIONS,
  MET_BINARY_JSON_CLOSES, /* JSON clients closed with 3506: binary data for them */
  MET_ENGINE_DISCONNECTS,
  MET_API_REQUESTS,
  /* reload re-check (protocol/recheck.c): subscriptions and connections
   * the reloaded configuration no longer allows */
  MET_RELOAD_UNSUBSCRIBED,
  MET_RELOAD_DISCONNECTED,
  /* below HTTP: TLS and PROXY-protocol failures (holdfast_transport_errors_total) */
  MET_TX_TLS_HANDSHAKE,
  MET_TX_PLAIN_ON_TLS,
  MET_TX_TLS_ON_PLAIN,
  MET_TX_BAD_PROXY,
  MET_TX_PROXY_UNTRUSTED,
  /* real-time sessions opened and closed, by transport (tr_kind order) */
  MET_TR_OPEN_WS, /* + k for the kinds after websocket */
  MET_TR_CLOSE_WS = MET_TR_OPEN_WS + 6,
  MET_N = MET_TR_CLOSE_WS + 6
} met_counter;

/* Why a handshake or HTTP request was refused (holdfast_rejections_total). */
typedef enum {
  MET_REJ_BAD_REQUEST, /* malformed head, bad upgrade headers */
  MET_REJ_MISSING_UPGRADE,
  MET_REJ_ORIGIN,
  MET_REJ_LIMIT, /* connection limits */
  MET_REJ_DRAINING,
  MET_REJ_NOT_FOUND,
  MET_REJ_API_AUTH,
  MET_REJ_API_OTHER,
  MET_REJ_HEAD_TOO_LARGE,
  MET_REJ_OTHER,
  MET_REJ_N
} met_reject;

/* Which limit refused a command (holdfast_rate_limited_total). */
typedef enum {
  MET_RL_COMMAND,
  MET_RL_BYTES,
  MET_RL_PUBLISH,
  MET_RL_SUBSCRIBE,
  MET_RL_USER,
  MET_RL_CHANNEL,
  MET_RL_ACCEPT, /* upgrades over client.accept_rate(_per_ip) */
  MET_RL_N
} met_ratelimit;

enum { MET_SIDE_SERVER, MET_SIDE_CLIENT, MET_SIDE_ABNORMAL, MET_SIDES };
#define MET_CODES 48 /* see met_code_index */
#define MET_METHODS 12 /* the protocol's command kinds */
#define MET_ERRS 16    /* see met_err_index */
#define MET_BUCKETS 16
#define MET_PX_EVENTS 6  /* proxy events (proxy/proxy.h px_event) */
#define MET_PX_RESULTS 7 /* proxy request results (px_status) */

typedef struct {
  _Atomic uint64_t b[MET_BUCKETS + 1]; /* the last one: +Inf */
  _Atomic uint64_t sum_us;
} met_hist;

typedef struct met_worker {
  _Atomic uint64_t n[MET_N];
  _Atomic uint64_t rejects[MET_REJ_N];
  _Atomic uint64_t closes[MET_CODES][MET_SIDES];
  _Atomic uint64_t commands[MET_METHODS];
  _Atomic uint64_t cmd_errors[MET_ERRS];
  _Atomic uint64_t api_errors[MET_ERRS];
  _Atomic uint64_t rate_limited[MET_RL_N];
  met_hist ping_rtt, fanout, queue, lag;
  _Atomic uint64_t lag_max_us; /* over the last second (a gauge) */
  /* backend event proxy */
  _Atomic uint64_t px_requests[MET_PX_EVENTS][MET_PX_RESULTS];
  met_hist px_latency[MET_PX_EVENTS];
  _Atomic uint64_t px_breakers_open; /* a gauge: open breakers of this worker */
  _Atomic uint64_t px_breaker_opened;
  struct met_worker *next;
  int idx; /* worker index, -1: not a worker */
} met_worker;

extern _Thread_local met_worker *met_self;

#ifdef HF_METRICS_OFF
/* `make METRICS=off`: every count compiled out (a benchmark baseline for
 * the cost of metrics; /metrics then reports zeros). */
static inline void met_add_(_Atomic uint64_t *c, uint64_t n) {
  (void)c;
  (void)n;
}
#else
static inline void met_add_(_Atomic uint64_t *c, uint64_t n) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                        memory_order_relaxed);
}
#endif
#define MET_INC(id) met_add_(&met_self->n[id], 1)
#define MET_ADD(id, k) met_add_(&met_self->n[id], (k))

/* The calling thread's counters from now on (a worker, at its start). The
 * block lives until exit: a scrape may read it at any time. */
met_worker *met_register(int worker_idx);

/* A real-time session of transport k (tr_kind: 0 websocket, 1
 * http_stream, 2 sse, 3 uni_websocket, 4 uni_http_stream, 5 uni_sse)
 * opened / closed (the same worker does both). */
void met_transport_open(int k);
void met_transport_close(int k);
void met_reject_inc(met_reject r);
/* The rejection of a handshake reason string ("origin_rejected", ...). */
met_reject met_reject_of(const char *reason);
void met_close_inc(unsigned code, int side);
void met_command_inc(int kind);
void met_cmd_error_inc(unsigned code);
void met_api_error_inc(unsigned code);
/* A command refused by rate limit r. */
void met_ratelimit_inc(met_ratelimit r);
/* Histograms, in microseconds (queue: bytes). */
void met_observe_ping_rtt(uint64_t us);
void met_observe_fanout(uint64_t us);
void met_observe_queue(uint64_t bytes);
void met_observe_lag(uint64_t us);
/* Backend event proxy: a request of event ev ended with result st (both
 * as in proxy/proxy.h); its latency; a breaker opened (+1) or closed (-1). */
void met_proxy_request(int ev, int st);
void met_observe_proxy(int ev, uint64_t us);
void met_proxy_breaker(int delta);

/* Gauges and totals the scrape asks the server for. */
typedef struct {
  uint64_t connections_ws, connections_tcp, clients;
  uint64_t channels, subscriptions;
  uint64_t bytes_in, bytes_out, msgs_in, msgs_out; /* summed over workers */
  uint64_t pong_timeouts; /* WebSocket-level heartbeat timeouts */
  /* permessage-deflate: messages inflated, messages compressed for one
   * connection, shared frames compressed once for all recipients */
  uint64_t deflate_in, deflate_out, deflate_shared;
  uint64_t flush_yields; /* flushes continued after input (flush_budget) */
  int engine_up;
  const char *engine, *version;
  double start_time_s; /* Unix */
  int64_t tls_not_after; /* Unix; 0: no TLS listener */
} met_snapshot;

/* For the admin dashboard (any thread): the registered counter blocks (a
 * list through next, read with relaxed loads), the close code of a
 * closes[] row (4000: any 4000-4999 code, 0: any other) and the label of
 * a rejection reason. */
const met_worker *met_workers(void);
unsigned met_code_of(int idx);
const char *met_reject_name(met_reject r);
const char *met_ratelimit_name(met_ratelimit r);

/* The Prometheus text exposition (format 0.0.4) of everything. */
void met_render(jw_buf *out, const met_snapshot *s);

#endif
