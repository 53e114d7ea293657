/* SPDX-License-Identifier: MIT */
/* Prometheus metrics: per-thread counters, summed on scrape (metrics.h). */
#include "metrics/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/proto.h"
#include "evproxy/evproxy.h"

static met_worker fallback = {.idx = -1}; /* threads that are not workers */
_Thread_local met_worker *met_self = &fallback;

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static met_worker *_Atomic all = &fallback;

met_worker *met_register(int worker_idx) {
  met_worker *m = calloc(1, sizeof *m);
  if (!m)
    return NULL;
  m->idx = worker_idx;
  pthread_mutex_lock(&reg_mu);
  m->next = atomic_load(&all);
  atomic_store(&all, m); /* published whole: readers follow next pointers */
  pthread_mutex_unlock(&reg_mu);
  met_self = m;
  return m;
}

/* ---- label tables (bounded) ------------------------------------------------- */

static const unsigned close_codes[] = {
    1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
    1014, 1015, 3000, 3001, 3002, 3003, 3004, 3005, 3006, 3007, 3008, 3009, 3010,
    3011, 3012, 3013, 3500, 3501, 3502, 3503, 3504, 3505, 3506, 3507, 3508};
#define NCLOSE (sizeof close_codes / sizeof close_codes[0])
enum { CODE_APP = NCLOSE, CODE_OTHER = NCLOSE + 1 };
_Static_assert(NCLOSE + 2 <= MET_CODES, "close code table");

static int code_index(unsigned code) {
  for (size_t i = 0; i < NCLOSE; i++)
    if (close_codes[i] == code)
      return (int)i;
  return code >= 4000 && code <= 4999 ? CODE_APP : CODE_OTHER;
}

unsigned met_code_of(int idx) {
  return idx < (int)NCLOSE ? close_codes[idx] : idx == CODE_APP ? 4000 : 0;
}
const met_worker *met_workers(void) { return atomic_load(&all); }

static const unsigned err_codes[] = {100, 101, 102, 103, 104, 105, 106,
                                     107, 108, 109, 110, 111, 112};
#define NERR (sizeof err_codes / sizeof err_codes[0])
_Static_assert(NERR + 1 <= MET_ERRS, "error code table");

static int err_index(unsigned code) {
  for (size_t i = 0; i < NERR; i++)
    if (err_codes[i] == code)
      return (int)i;
  return NERR; /* other */
}

static const char *const reject_names[MET_REJ_N] = {
    "bad_request", "missing_upgrade", "origin_rejected", "connection_limit", "draining",
    "not_found",   "api_auth",        "api_other",       "head_too_large",   "other"};

static const char *const method_names[MET_METHODS] = {
    "connect", "ping", "subscribe", "unsubscribe", "publish", "presence", "presence_stats",
    "history", "rpc",  "send",      "refresh",     "sub_refresh"};
_Static_assert(PROTO_KINDS == MET_METHODS, "one label per command kind");

const char *met_reject_name(met_reject r) { return r < MET_REJ_N ? reject_names[r] : "other"; }

met_reject met_reject_of(const char *r) {
  if (!r)
    return MET_REJ_OTHER;
  if (strstr(r, "origin"))
    return MET_REJ_ORIGIN;
  if (strcmp(r, "missing_upgrade") == 0)
    return MET_REJ_MISSING_UPGRADE;
  if (strstr(r, "limit"))
    return MET_REJ_LIMIT;
  if (strstr(r, "drain") || strstr(r, "shutting"))
    return MET_REJ_DRAINING;
  if (strcmp(r, "not_found") == 0)
    return MET_REJ_NOT_FOUND;
  if (strstr(r, "too_large") || strstr(r, "header"))
    return MET_REJ_HEAD_TOO_LARGE;
  if (strstr(r, "key") || strstr(r, "auth"))
    return MET_REJ_API_AUTH;
  return MET_REJ_BAD_REQUEST;
}

void met_transport_open(int k) {
  if (k >= 0 && k < 6)
    MET_INC(MET_TR_OPEN_WS + k);
}

void met_transport_close(int k) {
  if (k >= 0 && k < 6)
    MET_INC(MET_TR_CLOSE_WS + k);
}

void met_reject_inc(met_reject r) { met_add_(&met_self->rejects[r < MET_REJ_N ? r : MET_REJ_OTHER], 1); }

void met_close_inc(unsigned code, int side) {
  if (side < 0 || side >= MET_SIDES)
    side = MET_SIDE_ABNORMAL;
  met_add_(&met_self->closes[code_index(code)][side], 1);
}

void met_command_inc(int kind) {
  if (kind >= 0 && kind < MET_METHODS)
    met_add_(&met_self->commands[kind], 1);
}

void met_cmd_error_inc(unsigned code) { met_add_(&met_self->cmd_errors[err_index(code)], 1); }
void met_api_error_inc(unsigned code) { met_add_(&met_self->api_errors[err_index(code)], 1); }
const char *met_ratelimit_name(met_ratelimit r) {
  static const char *const rl_names[MET_RL_N] = {"command", "bytes",   "publish", "subscribe",
                                                 "user",    "channel", "accept"};
  return r < MET_RL_N ? rl_names[r] : "other";
}

void met_ratelimit_inc(met_ratelimit r) { met_add_(&met_self->rate_limited[r], 1); }

/* ---- histograms ------------------------------------------------------------------ */

typedef struct {
  const char *name, *help;
  double bound[MET_BUCKETS]; /* upper bounds, in the exported unit */
  int nb;
  double scale; /* observed value -> exported unit */
  size_t off;   /* offsetof(met_worker, hist) */
} hist_def;

static const hist_def H_PING = {
    "holdfast_ping_rtt_seconds",
    "Round trip of the real-time protocol's ping ({} sent, pong received).",
    {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
    14, 1e-6, offsetof(met_worker, ping_rtt)};
static const hist_def H_FANOUT = {
    "holdfast_fanout_latency_seconds",
    "From a publication's acceptance to the end of its delivery sweep on a worker.",
    {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
     2.5, 5},
    15, 1e-6, offsetof(met_worker, fanout)};
static const hist_def H_QUEUE = {
    "holdfast_send_queue_bytes",
    "Bytes waiting in WebSocket connections' output queues, sampled every second.",
    {0, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864},
    10, 1, offsetof(met_worker, queue)};
static const hist_def H_LAG = {
    "holdfast_event_loop_lag_seconds",
    "How late a worker's 250 ms timer fired: time the loop spent busy.",
    {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
    12, 1e-6, offsetof(met_worker, lag)};

static void observe(const hist_def *d, uint64_t v) {
#ifdef HF_METRICS_OFF
  (void)d;
  (void)v;
  return;
#endif
  met_hist *h = (met_hist *)((char *)met_self + d->off);
  double x = (double)v * d->scale;
  int i = 0;
  while (i < d->nb && x > d->bound[i])
    i++;
  met_add_(&h->b[i], 1);
  met_add_(&h->sum_us, v);
}

void met_observe_ping_rtt(uint64_t us) { observe(&H_PING, us); }
void met_observe_fanout(uint64_t us) { observe(&H_FANOUT, us); }
void met_observe_queue(uint64_t bytes) { observe(&H_QUEUE, bytes); }
static const hist_def H_PROXY = {
    "holdfast_proxy_request_duration_seconds",
    "Backend event proxy requests: from sending to the answer (or failure), by event.",
    {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
    13, 1e-6, offsetof(met_worker, px_latency)};

void met_proxy_request(int ev, int st) { met_add_(&met_self->px_requests[ev][st], 1); }
void met_observe_proxy(int ev, uint64_t us) {
  hist_def d = H_PROXY;
  d.off += (size_t)ev * sizeof(met_hist);
  observe(&d, us);
}
void met_proxy_breaker(int delta) {
  uint64_t v = atomic_load_explicit(&met_self->px_breakers_open, memory_order_relaxed);
  atomic_store_explicit(&met_self->px_breakers_open, delta > 0 ? v + 1 : (v ? v - 1 : 0),
                        memory_order_relaxed);
  if (delta > 0)
    met_add_(&met_self->px_breaker_opened, 1);
}

void met_observe_lag(uint64_t us) {
  observe(&H_LAG, us);
  if (us > atomic_load_explicit(&met_self->lag_max_us, memory_order_relaxed))
    atomic_store_explicit(&met_self->lag_max_us, us, memory_order_relaxed);
}

/* ---- rendering ---------------------------------------------------------------------- */

static uint64_t ld(const _Atomic uint64_t *p) {
  return atomic_load_explicit(p, memory_order_relaxed);
}

static void emit(jw_buf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(jw_buf *o, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0)
    jw_raw(o, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static void head(jw_buf *o, const char *name, const char *type, const char *help) {
  emit(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

#define SUM(expr)                                                              \
  ({                                                                           \
    uint64_t s_ = 0;                                                           \
    for (met_worker *w_ = atomic_load(&all); w_; w_ = w_->next)                \
      s_ += ld(&w_->expr);                                                     \
    s_;                                                                        \
  })

static void counter(jw_buf *o, const char *name, const char *help, met_counter id) {
  head(o, name, "counter", help);
  emit(o, "%s %llu\n", name, (unsigned long long)SUM(n[id]));
}

static void render_hist(jw_buf *o, const hist_def *d) {
  head(o, d->name, "histogram", d->help);
  uint64_t cum = 0, sum = 0;
  for (int i = 0; i <= d->nb; i++) {
    uint64_t c = 0;
    for (met_worker *w = atomic_load(&all); w; w = w->next) {
      met_hist *h = (met_hist *)((char *)w + d->off);
      c += ld(&h->b[i]);
      if (i == 0)
        sum += ld(&h->sum_us);
    }
    cum += c;
    if (i < d->nb)
      emit(o, "%s_bucket{le=\"%g\"} %llu\n", d->name, d->bound[i], (unsigned long long)cum);
    else
      emit(o, "%s_bucket{le=\"+Inf\"} %llu\n", d->name, (unsigned long long)cum);
  }
  emit(o, "%s_sum %.6f\n%s_count %llu\n", d->name, (double)sum * d->scale, d->name,
       (unsigned long long)cum);
}

/* One histogram family with one label over n series (at d->off + i). */
static void render_hist_labeled(jw_buf *o, const hist_def *d, const char *label,
                                const char *const *values, int n) {
  head(o, d->name, "histogram", d->help);
  for (int k = 0; k < n; k++) {
    uint64_t cum = 0, sum = 0;
    size_t off = d->off + (size_t)k * sizeof(met_hist);
    for (int i = 0; i <= d->nb; i++) {
      uint64_t c = 0;
      for (met_worker *w = atomic_load(&all); w; w = w->next) {
        met_hist *h = (met_hist *)((char *)w + off);
        c += ld(&h->b[i]);
        if (i == 0)
          sum += ld(&h->sum_us);
      }
      cum += c;
      if (i < d->nb)
        emit(o, "%s_bucket{%s=\"%s\",le=\"%g\"} %llu\n", d->name, label, values[k],
             d->bound[i], (unsigned long long)cum);
      else
        emit(o, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %llu\n", d->name, label, values[k],
             (unsigned long long)cum);
    }
    emit(o, "%s_sum{%s=\"%s\"} %.6f\n%s_count{%s=\"%s\"} %llu\n", d->name, label,
         values[k], (double)sum * d->scale, d->name, label, values[k],
         (unsigned long long)cum);
  }
}

static void render_proxy(jw_buf *o) {
  const char *ev[MET_PX_EVENTS], *st[MET_PX_RESULTS];
  for (int i = 0; i < MET_PX_EVENTS; i++)
    ev[i] = px_event_name((px_event)i);
  for (int i = 0; i < MET_PX_RESULTS; i++)
    st[i] = px_status_name((px_status)i);
  head(o, "holdfast_proxy_requests_total", "counter",
       "Backend event proxy requests, by event and result (ok: the backend answered; "
       "overload and breaker_open: refused before sending).");
  for (int e = 0; e < MET_PX_EVENTS; e++)
    for (int r = 0; r < MET_PX_RESULTS; r++)
      emit(o, "holdfast_proxy_requests_total{event=\"%s\",result=\"%s\"} %llu\n", ev[e],
           st[r], (unsigned long long)SUM(px_requests[e][r]));
  render_hist_labeled(o, &H_PROXY, "event", ev, MET_PX_EVENTS);
  head(o, "holdfast_proxy_breakers_open", "gauge",
       "Proxy endpoint circuit breakers open now (one per endpoint and worker).");
  emit(o, "holdfast_proxy_breakers_open %llu\n", (unsigned long long)SUM(px_breakers_open));
  head(o, "holdfast_proxy_breaker_opened_total", "counter",
       "Times a proxy endpoint's circuit breaker opened.");
  emit(o, "holdfast_proxy_breaker_opened_total %llu\n",
       (unsigned long long)SUM(px_breaker_opened));
}

void met_render(jw_buf *o, const met_snapshot *s) {
  head(o, "holdfast_build_info", "gauge", "Build information (always 1).");
  emit(o, "holdfast_build_info{version=\"%s\",engine=\"%s\"} 1\n", s->version, s->engine);
  static const char *const trn[6] = {"websocket",     "http_stream",     "sse",
                                     "uni_websocket", "uni_http_stream", "uni_sse"};
  uint64_t streams[6] = {0}, all_streams = 0;
  for (int k = 1; k < 6; k++) {
    uint64_t op = SUM(n[MET_TR_OPEN_WS + k]), cl = SUM(n[MET_TR_CLOSE_WS + k]);
    streams[k] = op > cl ? op - cl : 0;
    all_streams += streams[k];
  }
  head(o, "holdfast_connections", "gauge",
       "Open long-lived connections (WebSocket, HTTP streaming, SSE), by transport.");
  emit(o, "holdfast_connections{transport=\"websocket\"} %llu\n",
       (unsigned long long)(s->connections_ws > all_streams ? s->connections_ws - all_streams : 0));
  for (int k = 1; k < 6; k++)
    emit(o, "holdfast_connections{transport=\"%s\"} %llu\n", trn[k],
         (unsigned long long)streams[k]);
  head(o, "holdfast_tcp_connections", "gauge",
       "Open TCP connections (HTTP, WebSocket and server API).");
  emit(o, "holdfast_tcp_connections %llu\n", (unsigned long long)s->connections_tcp);
  head(o, "holdfast_clients", "gauge", "Connected real-time protocol clients.");
  emit(o, "holdfast_clients %llu\n", (unsigned long long)s->clients);
  head(o, "holdfast_channels", "gauge", "Channels with subscribers on this node.");
  emit(o, "holdfast_channels %llu\n", (unsigned long long)s->channels);
  head(o, "holdfast_subscriptions", "gauge", "Subscriptions on this node.");
  emit(o, "holdfast_subscriptions %llu\n", (unsigned long long)s->subscriptions);
  head(o, "holdfast_engine_up", "gauge",
       "1 when the engine works (memory: always; Redis: every connection up).");
  emit(o, "holdfast_engine_up %d\n", s->engine_up);

  head(o, "holdfast_upgrades_total", "counter", "Accepted WebSocket upgrades, by endpoint.");
  emit(o, "holdfast_upgrades_total{endpoint=\"realtime\"} %llu\n",
       (unsigned long long)SUM(n[MET_UPGRADES_REALTIME]));
  emit(o, "holdfast_upgrades_total{endpoint=\"echo\"} %llu\n",
       (unsigned long long)SUM(n[MET_UPGRADES_ECHO]));
  head(o, "holdfast_transport_sessions_total", "counter",
       "Real-time sessions opened, by transport (a rising http_stream/sse share: "
       "WebSocket is blocked somewhere).");
  for (int k = 0; k < 6; k++)
    emit(o, "holdfast_transport_sessions_total{transport=\"%s\"} %llu\n", trn[k],
         (unsigned long long)SUM(n[MET_TR_OPEN_WS + k]));
  head(o, "holdfast_rejections_total", "counter",
       "Refused handshakes and HTTP requests, by reason.");
  for (int r = 0; r < MET_REJ_N; r++)
    emit(o, "holdfast_rejections_total{reason=\"%s\"} %llu\n", reject_names[r],
         (unsigned long long)SUM(rejects[r]));
  counter(o, "holdfast_handshake_timeouts_total",
          "Connections closed before their HTTP request head was complete in time.",
          MET_HANDSHAKE_TIMEOUTS);
  head(o, "holdfast_transport_errors_total", "counter",
       "Connections refused below HTTP (TLS, PROXY protocol), by reason.");
  static const struct {
    const char *name;
    met_counter id;
  } tx[] = {{"tls_handshake_failed", MET_TX_TLS_HANDSHAKE},
            {"plain_http_on_tls_port", MET_TX_PLAIN_ON_TLS},
            {"tls_on_plain_port", MET_TX_TLS_ON_PLAIN},
            {"bad_proxy_header", MET_TX_BAD_PROXY},
            {"proxy_peer_untrusted", MET_TX_PROXY_UNTRUSTED}};
  for (size_t i = 0; i < sizeof tx / sizeof tx[0]; i++)
    emit(o, "holdfast_transport_errors_total{reason=\"%s\"} %llu\n", tx[i].name,
         (unsigned long long)SUM(n[tx[i].id]));
  head(o, "holdfast_tls_certificate_expiry_timestamp_seconds", "gauge",
       "When the first of the served TLS certificates expires (Unix time; no "
       "sample without TLS).");
  if (s->tls_not_after)
    emit(o, "holdfast_tls_certificate_expiry_timestamp_seconds %lld\n",
         (long long)s->tls_not_after);

  head(o, "holdfast_closes_total", "counter",
       "Closed WebSocket connections, by close code and by who ended them "
       "(abnormal: TCP ended without a close frame).");
  static const char *const sides[MET_SIDES] = {"server", "client", "abnormal"};
  for (int c = 0; c < (int)NCLOSE + 2; c++)
    for (int sd = 0; sd < MET_SIDES; sd++) {
      uint64_t v = SUM(closes[c][sd]);
      if (!v)
        continue; /* most (code, side) pairs never happen */
      if (c < (int)NCLOSE)
        emit(o, "holdfast_closes_total{code=\"%u\",side=\"%s\"} %llu\n", close_codes[c],
             sides[sd], (unsigned long long)v);
      else
        emit(o, "holdfast_closes_total{code=\"%s\",side=\"%s\"} %llu\n",
             c == CODE_APP ? "4xxx" : "other", sides[sd], (unsigned long long)v);
    }
  head(o, "holdfast_heartbeat_timeouts_total", "counter",
       "Connections closed because the peer stopped answering, by level.");
  emit(o, "holdfast_heartbeat_timeouts_total{level=\"websocket\"} %llu\n",
       (unsigned long long)s->pong_timeouts);
  emit(o, "holdfast_heartbeat_timeouts_total{level=\"protocol\"} %llu\n",
       (unsigned long long)SUM(n[MET_HEARTBEAT_TIMEOUTS_PROTO]));
  render_hist(o, &H_PING);

  head(o, "holdfast_messages_received_total", "counter", "WebSocket messages received.");
  emit(o, "holdfast_messages_received_total %llu\n", (unsigned long long)s->msgs_in);
  head(o, "holdfast_messages_sent_total", "counter", "WebSocket messages sent.");
  emit(o, "holdfast_messages_sent_total %llu\n", (unsigned long long)s->msgs_out);
  head(o, "holdfast_received_bytes_total", "counter", "WebSocket bytes received.");
  emit(o, "holdfast_received_bytes_total %llu\n", (unsigned long long)s->bytes_in);
  head(o, "holdfast_sent_bytes_total", "counter", "WebSocket bytes sent.");
  emit(o, "holdfast_sent_bytes_total %llu\n", (unsigned long long)s->bytes_out);

  head(o, "holdfast_compressed_messages_total", "counter",
       "permessage-deflate messages: inflated (in), compressed for one connection "
       "(out), compressed once per shared frame for every recipient (shared).");
  emit(o, "holdfast_compressed_messages_total{kind=\"in\"} %llu\n",
       (unsigned long long)s->deflate_in);
  emit(o, "holdfast_compressed_messages_total{kind=\"out\"} %llu\n",
       (unsigned long long)s->deflate_out);
  emit(o, "holdfast_compressed_messages_total{kind=\"shared\"} %llu\n",
       (unsigned long long)s->deflate_shared);
  head(o, "holdfast_flush_yields_total", "counter",
       "End-of-iteration flushes that reached http_server.flush_budget and let the "
       "worker read input before writing to the rest of their connections.");
  emit(o, "holdfast_flush_yields_total %llu\n", (unsigned long long)s->flush_yields);

  head(o, "holdfast_commands_total", "counter", "Real-time protocol commands, by method.");
  for (int m = 0; m < MET_METHODS; m++)
    emit(o, "holdfast_commands_total{method=\"%s\"} %llu\n", method_names[m],
         (unsigned long long)SUM(commands[m]));
  head(o, "holdfast_command_errors_total", "counter",
       "Error replies to real-time protocol commands, by error code.");
  for (int e = 0; e <= (int)NERR; e++) {
    uint64_t v = SUM(cmd_errors[e]);
    if (e < (int)NERR)
      emit(o, "holdfast_command_errors_total{code=\"%u\"} %llu\n", err_codes[e],
           (unsigned long long)v);
    else
      emit(o, "holdfast_command_errors_total{code=\"other\"} %llu\n", (unsigned long long)v);
  }
  counter(o, "holdfast_api_requests_total", "Server API calls (a batch counts once).",
          MET_API_REQUESTS);
  head(o, "holdfast_api_errors_total", "counter", "Server API error replies, by error code.");
  for (int e = 0; e <= (int)NERR; e++) {
    uint64_t v = SUM(api_errors[e]);
    if (e < (int)NERR)
      emit(o, "holdfast_api_errors_total{code=\"%u\"} %llu\n", err_codes[e],
           (unsigned long long)v);
    else
      emit(o, "holdfast_api_errors_total{code=\"other\"} %llu\n", (unsigned long long)v);
  }

  head(o, "holdfast_publications_total", "counter", "Accepted publications, by source.");
  emit(o, "holdfast_publications_total{source=\"api\"} %llu\n",
       (unsigned long long)SUM(n[MET_PUBLICATIONS_API]));
  emit(o, "holdfast_publications_total{source=\"client\"} %llu\n",
       (unsigned long long)SUM(n[MET_PUBLICATIONS_CLIENT]));
  counter(o, "holdfast_deliveries_total",
          "Publication pushes queued to subscribers' connections.", MET_DELIVERIES);
  counter(o, "holdfast_push_frames_encoded_total",
          "Push frames the hub encoded: one per publication, join or leave and frame "
          "variant, shared by every subscriber on every worker.", MET_PUSH_FRAMES);
  render_hist(o, &H_FANOUT);
  render_hist(o, &H_QUEUE);
  head(o, "holdfast_slow_consumers_total", "counter",
       "Connections whose output queue stayed over its limit, by action taken.");
  emit(o, "holdfast_slow_consumers_total{action=\"disconnect\"} %llu\n",
       (unsigned long long)SUM(n[MET_SLOW_DISCONNECT]));
  emit(o, "holdfast_slow_consumers_total{action=\"recover\"} %llu\n",
       (unsigned long long)SUM(n[MET_SLOW_RECOVER]));
  head(o, "holdfast_rate_limited_total", "counter",
       "Client commands refused with error 111 (too many requests), by the "
       "limit that refused them; accept: upgrades refused with 503 by "
       "client.accept_rate or client.accept_rate_per_ip.");
  for (int i = 0; i < MET_RL_N; i++)
    emit(o, "holdfast_rate_limited_total{limit=\"%s\"} %llu\n",
         met_ratelimit_name((met_ratelimit)i), (unsigned long long)SUM(rate_limited[i]));

  head(o, "holdfast_tokens_total", "counter",
       "Connection and subscription token events: expired (a connection or "
       "subscription ended for it), refreshed, rejected.");
  emit(o, "holdfast_tokens_total{event=\"expired\"} %llu\n",
       (unsigned long long)SUM(n[MET_TOKEN_EXPIRED]));
  emit(o, "holdfast_tokens_total{event=\"refreshed\"} %llu\n",
       (unsigned long long)SUM(n[MET_TOKEN_REFRESHED]));
  emit(o, "holdfast_tokens_total{event=\"rejected\"} %llu\n",
       (unsigned long long)SUM(n[MET_TOKEN_REJECTED]));
  head(o, "holdfast_recoveries_total", "counter",
       "Subscribes that asked to recover missed publications, by result.");
  emit(o, "holdfast_recoveries_total{result=\"recovered\"} %llu\n",
       (unsigned long long)SUM(n[MET_RECOVERIES_OK]));
  emit(o, "holdfast_recoveries_total{result=\"failed\"} %llu\n",
       (unsigned long long)SUM(n[MET_RECOVERIES_FAILED]));
  counter(o, "holdfast_insufficient_state_total",
          "Subscribers told they missed publications (unsubscribe 2500 or close 3010).",
          MET_INSUFFICIENT_STATE);
  counter(o, "holdfast_binary_data_json_closes_total",
          "JSON-encoded clients closed with 3506 because a publication, history or rpc "
          "result for them held binary (non-JSON) data.",
          MET_BINARY_JSON_CLOSES);
  counter(o, "holdfast_history_evictions_total",
          "Publications evicted from history to stay under channel.history_memory_limit.",
          MET_HISTORY_EVICTIONS);
  head(o, "holdfast_reload_recheck_total", "counter",
       "After a SIGHUP reload: subscriptions ended (unsubscribe 2000) and "
       "connections closed (3501) because the new configuration no longer allows them.");
  emit(o, "holdfast_reload_recheck_total{action=\"unsubscribe\"} %llu\n",
       (unsigned long long)SUM(n[MET_RELOAD_UNSUBSCRIBED]));
  emit(o, "holdfast_reload_recheck_total{action=\"disconnect\"} %llu\n",
       (unsigned long long)SUM(n[MET_RELOAD_DISCONNECTED]));
  counter(o, "holdfast_engine_disconnects_total",
          "Connections to the engine's broker (Redis) that were lost.", MET_ENGINE_DISCONNECTS);

  render_proxy(o);
  render_hist(o, &H_LAG);
  head(o, "holdfast_event_loop_lag_max_seconds", "gauge",
       "The largest event-loop lag of each worker over the last second.");
  for (met_worker *w = atomic_load(&all); w; w = w->next)
    if (w->idx >= 0)
      emit(o, "holdfast_event_loop_lag_max_seconds{worker=\"%d\"} %.6f\n", w->idx,
           (double)ld(&w->lag_max_us) / 1e6);
  head(o, "holdfast_start_time_seconds", "gauge", "Start time of the process, Unix seconds.");
  emit(o, "holdfast_start_time_seconds %.3f\n", s->start_time_s);
}
