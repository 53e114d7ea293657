/* SPDX-License-Identifier: MIT */
/* Process structure: the main thread binds every listener (so port 0 is
 * resolved once and shared through SO_REUSEPORT), starts one worker per
 * core, then waits for SIGTERM/SIGINT and asks each worker, through its
 * loop's inbox, to drain. Workers share nothing on the message path; the
 * only shared state is the connection counters touched at accept/close. */
#include "server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <strings.h>

#include "hf/close.h"
#include "hf/conn.h"
#include "hf/frame.h"
#include "hf/shared.h"
#include "hf/loop.h"
#include "http/api.h"
#include "channels/chan.h"
#include "evproxy/evproxy.h"
#include "protocol/client.h"
#include "protocol/pbcodec.h"
#include "channels/hub.h"
#include "engine/engine.h"
#include "engine/redis.h"
#include "auth/jwt.h"
#include "hf/tls.h"
#include "auth/tokenkeys.h"
#include "log.h"
#include "proxies.h"
#include "tlsconf.h"
#include "metrics/metrics.h"
#include "transport/transport.h"
#include "admin/admin.h"
#include "admin/session.h"

/* Per-connection application state lives in the udata pointer. It is
 * either a tagged integer (bit 0 set) carrying the bits below, so echo,
 * API and not-yet-routed connections cost no allocation, or a pointer to a
 * real-time client (bit 0 clear), which keeps the same bits in its tag. */
enum {
  U_TAG = 1,      /* udata is a tag, not a cl_client pointer */
  U_COUNTED = 2,  /* counted in the global total */
  U_IP = 4,       /* counted in the per-IP table */
  U_OVER = 8,     /* over a limit: answer 503 */
  U_INTERNAL = 16, /* accepted on the internal (API) listener */
  U_ECHO = 32,    /* upgraded on the echo endpoint */
  U_API = 64,     /* a server API call; the method id is in bits 8-15 */
  U_WAIT = 128,   /* a server API call waits for the engine (api_wait) */
  /* bits 8-15: the API method id */
  U_RESOLVED = 1 << 16, /* the client address is final (first request seen) */
  U_DEFER_IP = 1 << 17, /* per-IP accounting waits for the client address
                           (the peer is a proxy) */
  U_FDS = 1 << 18,      /* accepted near the descriptor limit: answer 503 */
  U_BODY = 1 << 19, /* a transport request waits for its body (tr_pending) */
  U_UNI_SEEN = 1 << 20, /* uni_websocket: the connect request arrived */
  U_ADMIN = 1 << 21,   /* an admin call (method id in bits 8-15) */
  U_ADMIN_WS = 1 << 22 /* a dashboard WebSocket */
};
_Static_assert(U_ADMIN_WS < (1u << 31), "cl_set_tag keeps 32 bits");

/* What a listener speaks (server.lkind). */
enum { LK_TLS = 1, LK_PROXY = 2, LK_INTERNAL = 4 };

#define HOLDFAST_VERSION_STR "holdfast 0.1.0"

typedef struct ip_entry {
  struct ip_entry *next;
  uint8_t ip[16];
  uint8_t len;
  uint32_t count;
} ip_entry;

#define IP_BUCKETS 4096

typedef struct server server;

/* A server API call whose answer comes later (the engine answers
 * asynchronously): found by on_close if the connection goes first. */
typedef struct api_wait {
  struct api_wait *next;
  void *w;      /* the worker */
  hf_conn *c;   /* NULL once the connection is gone */
  int in_call;  /* api_call has not returned yet */
  int done;
} api_wait;

typedef struct {
  int idx;
  server *srv;
  pthread_t th;
  hf_loop *loop;
  hf_conn_ctx *ctx;
  hf_io *lis; /* one per listen address (the internal one last) */
  size_t nlis;
  hub_local *hl;
  cl_list clients; /* real-time clients on this worker */
  struct api_wait *waits; /* server API calls waiting for the engine */
  tr_sessions *sessions;  /* emulation sessions of this worker's clients */
  tr_pending *bodies;     /* transport requests waiting for their body */
  hf_msg drain_msg;
  hf_timer drain_timer;
  uint64_t drain_deadline;
  int draining;
  int spreading;                 /* closing clients over shutdown.spread */
  uint64_t spread_start;         /* loop ms when the drain began */
  uint64_t spread_total, spread_done; /* clients at the start, closed so far */
  int reserve_fd; /* closed to accept-and-drop under EMFILE */
  size_t forced;  /* connections still open at the drain deadline */
  uint64_t emfile_logged;
  uint64_t untrusted_logged;
  hf_tls_server *tls; /* a reference to the TLS material of generation */
  unsigned tls_gen;   /* tls_gen; refreshed at accept after a reload */
  uint64_t jitter; /* LCG state for Retry-After jitter (this worker only) */
  hf_timer met_timer; /* event-loop lag every 250 ms, queue sizes every 1 s */
  uint64_t met_due_us, lag_window_us;
  unsigned met_ticks;
} worker;

struct server {
  const srv_config *cfg;
  worker *w;
  size_t nw;
  hf_deflate_config deflate; /* permessage-deflate offers we accept */
  struct live *live; /* what a reload may change: read with live_get */
  hub *hub;
  eng *eng;
  cl_config clcfg; /* clcfg.policy: the live snapshot's pol */

  uint64_t fd_max, fd_headroom; /* RLIMIT_NOFILE after raising; margin kept */
  px_config px; /* backend event proxy (evproxy/evproxy.h) */
  api_ctx api;
  adm *adm;                  /* admin API and dashboard, or NULL */
  hf_handshake_policy adm_pol;
  hf_loop **w_loops;         /* per worker, for the admin module */
  cl_list **w_clients;
  hub_local **w_hubs;
  char node_name[256];
  atomic_ullong rt_clients; /* real-time clients (info) */
  int has_internal;         /* an internal listener serves the API */
  atomic_ullong conns;    /* TCP connections (limits) */
  atomic_ullong ws_conns; /* upgraded WebSocket connections (health) */
  atomic_int draining;
  pthread_mutex_t ip_mu;
  ip_entry *ip_tab[IP_BUCKETS];
  uint64_t t_start;
  double start_unix;
  int *lfds; /* nw * naddr listening sockets */
  size_t naddr;
  uint8_t *lkind; /* LK_* per listen address */
  srv_tls *tls;   /* NULL when no listener speaks TLS */
  srv_proxies *proxies;
  uint64_t expiry_checked; /* last daily certificate check (mono ms) */
  struct recheck_job *rechecks; /* posted by reloads; freed when done or at exit */
};

/* What a SIGHUP reload may change, as one immutable snapshot: handshake
 * policies (allowed origins), the containment values, and the real-time
 * policy (channel namespaces and permissions, token keys and claims,
 * anonymous / insecure access). Workers read the current one through
 * live_get / cl_policy_get / api_chans (an acquire load, no lock) and use
 * it within one callback (nothing keeps a pointer into a snapshot across
 * callbacks; the event proxy's answers resolve the namespace again). A
 * reload publishes a new one and keeps the old ones (chained through
 * `older`, each owning the configuration its strings point into) until
 * every worker has run the re-check posted after it (a message on each
 * inbox, so each worker has finished every callback that could have read
 * an older one); the next reload then frees the snapshots older than the
 * newest fully re-checked one (rechecks_free). So at most a few snapshots
 * exist, and no worker is left with freed memory. */
struct live {
  hf_handshake_policy ws_pol, echo_pol;
  rl_limits limits;
  chan_config chans; /* owned when has_chans */
  srv_jwt_keys *keys; /* owned; NULL: no key configured */
  cl_policy pol;      /* points into chans, keys and the configuration */
  int has_chans;
  srv_config *own; /* the reloaded configuration (NULL: srv_run's) */
  struct live *older;
};

static const struct live *live_get(const server *s) {
  return __atomic_load_n(&s->live, __ATOMIC_ACQUIRE);
}


static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- per-IP accounting (accept/close only, never per message) ---------- */

static unsigned ip_hash(const uint8_t *ip, size_t n) {
  unsigned h = 2166136261u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ ip[i]) * 16777619u;
  return h & (IP_BUCKETS - 1);
}

/* Count delta connections for address ip[0..n) (IPv6: its /64, see
 * rl_ip_key); returns the new count. */
static uint32_t ip_add(server *s, const uint8_t *addr, size_t alen, int delta) {
  uint8_t ip[16];
  size_t n = rl_ip_key(addr, alen, ip);
  uint32_t count = 0;
  pthread_mutex_lock(&s->ip_mu);
  ip_entry **pp = &s->ip_tab[ip_hash(ip, n)];
  while (*pp && !((*pp)->len == n && memcmp((*pp)->ip, ip, n) == 0))
    pp = &(*pp)->next;
  if (!*pp && delta > 0) {
    ip_entry *e = calloc(1, sizeof *e);
    if (e) {
      memcpy(e->ip, ip, n);
      e->len = (uint8_t)n;
      *pp = e;
    }
  }
  if (*pp) {
    (*pp)->count += (uint32_t)delta;
    count = (*pp)->count;
    if (!count) {
      ip_entry *e = *pp;
      *pp = e->next;
      free(e);
    }
  }
  pthread_mutex_unlock(&s->ip_mu);
  return count;
}

/* ---- per-connection state ------------------------------------------------ */

static uintptr_t conn_bits(hf_conn *c) {
  uintptr_t u = (uintptr_t)hf_conn_udata(c);
  return (u & U_TAG) ? u : cl_tag((cl_client *)u);
}

static cl_client *conn_client(hf_conn *c) {
  uintptr_t u = (uintptr_t)hf_conn_udata(c);
  return (u & U_TAG) || !u ? NULL : (cl_client *)u;
}

/* ---- logging helpers ---------------------------------------------------- */

static const hf_http_header *hdr(const hf_http_request *req, const char *n) {
  return hf_http_find(req, n);
}

/* "remote": the client (behind a proxy: the address it named); "peer":
 * the TCP peer, when that is a proxy. */
static void log_remote(srv_logline *l, hf_conn *c) {
  char peer[64];
  hf_conn_client(c, peer, sizeof peer);
  srv_log_str(l, "remote", peer);
  if (hf_conn_has_client(c)) {
    hf_conn_peer(c, peer, sizeof peer);
    srv_log_str(l, "peer", peer);
  }
}

static void log_conn_fields(srv_logline *l, hf_conn *c,
                            const hf_http_request *req, const char *path,
                            size_t path_len) {
  char id[37];
  hf_conn_id(c, id);
  srv_log_str(l, "conn_id", id);
  log_remote(l, c);
  const hf_http_header *o = hdr(req, "Origin");
  const hf_http_header *ua = hdr(req, "User-Agent");
  srv_log_strn(l, "origin", o ? o->value : NULL, o ? o->value_len : 0);
  srv_log_strn(l, "path", path, path_len);
  srv_log_strn(l, "user_agent", ua ? ua->value : NULL, ua ? ua->value_len : 0);
}

/* ---- routes ------------------------------------------------------------- */

static void respond_text(hf_conn *c, int status, const char *extra,
                         const char *body) {
  hf_conn_respond(c, status, extra, NULL, body, strlen(body));
}

static void route_health(worker *w, hf_conn *c, const hf_http_request *req) {
  server *s = w->srv;
  if (!(req->method_len == 3 && memcmp(req->method, "GET", 3) == 0) &&
      !(req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0)) {
    respond_text(c, 405, "Allow: GET, HEAD\r\n",
                 "The health endpoint answers GET only.\n");
    return;
  }
  int draining = atomic_load(&s->draining);
  char why[256], body[512];
  int healthy = eng_healthy(s->eng, why, sizeof why);
  /* an engine that cannot reach its broker degrades the node but does not
   * take it out of a load balancer: every node would go at once */
  jw_buf reason;
  jw_init(&reason);
  jw_cstr(&reason, why);
  jw_char(&reason, 0);
  int n = snprintf(body, sizeof body,
                   "{\"status\":\"%s\",\"uptime_s\":%llu,\"connections\":%llu,"
                   "\"workers\":%zu,\"engine\":\"%s\"%s%s}\n",
                   draining ? "draining" : healthy ? "ok" : "degraded",
                   (unsigned long long)((mono_ms() - s->t_start) / 1000),
                   (unsigned long long)atomic_load(&s->ws_conns), s->nw, eng_name(s->eng),
                   healthy ? "" : ",\"reason\":", healthy || !jw_ok(&reason) ? "" : reason.p);
  jw_free(&reason);
  int64_t days, not_after;
  if (n > 2 && n < (int)sizeof body - 100 && srv_tls_days_left(s->tls, &days, &not_after) == 0) {
    char na[32];
    hf_tls_format_time(not_after, na);
    n -= 2; /* reopen the object: "}\n" */
    n += snprintf(body + n, sizeof body - (size_t)n,
                  ",\"tls\":{\"days_left\":%lld,\"not_after\":\"%s\"}}\n",
                  (long long)days, na);
  }
  hf_conn_respond(c, draining ? 503 : 200, "Cache-Control: no-store\r\n",
                  "application/json", body, (size_t)n);
}

/* ---- /metrics ---------------------------------------------------------------- */

/* process_* metrics of this process from /proc (the Prometheus client
 * libraries' standard names). */
static void process_metrics(jw_buf *o) {
  char buf[1024];
  long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
  FILE *f = fopen("/proc/self/stat", "r");
  unsigned long long ut = 0, st = 0, start = 0;
  if (f) {
    if (fgets(buf, sizeof buf, f)) {
      const char *p = strrchr(buf, ')'); /* the name may hold spaces */
      if (p)
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                      "%*d %*d %llu", &ut, &st, &start);
    }
    fclose(f);
  }
  unsigned long long rss = 0, vsz = 0;
  if ((f = fopen("/proc/self/statm", "r"))) {
    if (fscanf(f, "%llu %llu", &vsz, &rss) != 2)
      rss = vsz = 0;
    fclose(f);
  }
  unsigned long long fds = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    for (struct dirent *e; (e = readdir(d));)
      fds += e->d_name[0] != '.';
    closedir(d);
    fds = fds ? fds - 1 : 0; /* the directory's own descriptor */
  }
  struct rlimit rl = {0, 0};
  getrlimit(RLIMIT_NOFILE, &rl);
  char out[1400];
  int n = snprintf(out, sizeof out,
                   "# HELP process_cpu_seconds_total User and system CPU time spent.\n"
                   "# TYPE process_cpu_seconds_total counter\n"
                   "process_cpu_seconds_total %.2f\n"
                   "# HELP process_resident_memory_bytes Resident memory size.\n"
                   "# TYPE process_resident_memory_bytes gauge\n"
                   "process_resident_memory_bytes %llu\n"
                   "# HELP process_virtual_memory_bytes Virtual memory size.\n"
                   "# TYPE process_virtual_memory_bytes gauge\n"
                   "process_virtual_memory_bytes %llu\n"
                   "# HELP process_open_fds Open file descriptors.\n"
                   "# TYPE process_open_fds gauge\n"
                   "process_open_fds %llu\n"
                   "# HELP process_max_fds The file descriptor limit.\n"
                   "# TYPE process_max_fds gauge\n"
                   "process_max_fds %llu\n",
                   tck > 0 ? (double)(ut + st) / (double)tck : 0.0,
                   rss * (unsigned long long)page, vsz * (unsigned long long)page, fds,
                   (unsigned long long)rl.rlim_cur);
  if (n > 0)
    jw_raw(o, out, (size_t)n < sizeof out ? (size_t)n : sizeof out - 1);
}

static void route_metrics(worker *w, hf_conn *c, const hf_http_request *req) {
  server *s = w->srv;
  if (!(req->method_len == 3 && memcmp(req->method, "GET", 3) == 0) &&
      !(req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0)) {
    respond_text(c, 405, "Allow: GET, HEAD\r\n", "The metrics endpoint answers GET only.\n");
    return;
  }
  met_snapshot snap = {0};
  snap.connections_ws = atomic_load(&s->ws_conns);
  snap.connections_tcp = atomic_load(&s->conns);
  snap.clients = atomic_load(&s->rt_clients);
  hub_totals(s->hub, &snap.channels, &snap.subscriptions);
  for (size_t i = 0; i < s->nw; i++) {
    const hf_conn_ctx *ctx = s->w[i].ctx;
    if (!ctx)
      continue;
    const hf_conn_stats *st = hf_conn_ctx_stats(ctx);
    snap.bytes_in += atomic_load_explicit(&st->bytes_in, memory_order_relaxed);
    snap.bytes_out += atomic_load_explicit(&st->bytes_out, memory_order_relaxed);
    snap.msgs_in += atomic_load_explicit(&st->msgs_in, memory_order_relaxed);
    snap.msgs_out += atomic_load_explicit(&st->msgs_out, memory_order_relaxed);
    snap.pong_timeouts += atomic_load_explicit(&st->pong_timeouts, memory_order_relaxed);
    snap.deflate_in += atomic_load_explicit(&st->msgs_inflated, memory_order_relaxed);
    snap.deflate_out += atomic_load_explicit(&st->msgs_deflated, memory_order_relaxed);
    snap.flush_yields += atomic_load_explicit(&st->flush_yields, memory_order_relaxed);
  }
  snap.deflate_shared = hf_shared_deflate_count();
  char why[64];
  snap.engine_up = eng_healthy(s->eng, why, sizeof why);
  snap.engine = eng_name(s->eng);
  snap.version = HOLDFAST_VERSION_STR;
  snap.start_time_s = s->start_unix;
  int64_t tls_days;
  if (srv_tls_days_left(s->tls, &tls_days, &snap.tls_not_after) < 0)
    snap.tls_not_after = 0;
  jw_buf b;
  jw_init(&b);
  met_render(&b, &snap);
  process_metrics(&b);
  if (!jw_ok(&b)) {
    jw_free(&b);
    respond_text(c, 500, NULL, "out of memory\n");
    return;
  }
  hf_conn_respond(c, 200, "Cache-Control: no-store\r\n", "text/plain; version=0.0.4; charset=utf-8",
                  b.p, b.len);
  jw_free(&b);
}

/* Answer with an explained error and one warn line (event: what was
 * refused, e.g. upgrade_rejected or api_rejected). */
static void reject_as(const char *event, hf_conn *c, const hf_http_request *req,
                      const char *path, size_t path_len, int status,
                      const char *reason, const char *extra, const char *body) {
  srv_logline l;
  srv_log_begin(&l, LOG_WARN, event);
  srv_log_str(&l, "reason", reason);
  srv_log_int(&l, "status", status);
  log_conn_fields(&l, c, req, path, path_len);
  srv_log_end(&l);
  if (strcmp(event, "api_rejected") == 0 || strcmp(event, "admin_rejected") == 0)
    met_reject_inc(status == 401 ? MET_REJ_API_AUTH : MET_REJ_API_OTHER);
  else
    met_reject_inc(met_reject_of(reason));
  respond_text(c, status, extra, body);
}

static void reject_logged(hf_conn *c, const hf_http_request *req,
                          const char *path, size_t path_len, int status, const char *reason,
                          const char *extra, const char *body) {
  reject_as("upgrade_rejected", c, req, path, path_len, status, reason, extra, body);
}

/* Upgrades near the descriptor limit or over the accept rate (global or
 * per address, IPv6 by /64) get 503 with a jittered Retry-After (between
 * client.retry_after and twice that), so a storm of reconnects spreads out
 * instead of coming back in the same second. Returns 1 if it answered. */
static int containment_refuses(worker *w, hf_conn *c, const hf_http_request *req,
                               const char *path, size_t path_len, uintptr_t u) {
  server *s = w->srv;
  const char *reason, *body;
  if (u & U_FDS) {
    reason = "fd_limit";
    body = "The server is near its open file limit. Retry later, with backoff.\n";
  } else {
    uint8_t ip[16], key[16];
    size_t n = rl_ip_key(ip, hf_conn_client_ip(c, ip), key); /* behind a proxy: the client */
    int which = 0;
    if (rl_accept_take(s->clcfg.rl, key, n, hf_loop_now(w->loop), &which))
      return 0;
    met_ratelimit_inc(MET_RL_ACCEPT);
    reason = which ? "accept_rate_limit_per_ip" : "accept_rate_limit";
    body = which ? "Too many new connections from this address "
                   "(client.accept_rate_per_ip). Retry later, with backoff.\n"
                 : "Too many new connections (client.accept_rate). Retry "
                   "later, with backoff.\n";
  }
  uint64_t base = s->cfg->retry_after ? s->cfg->retry_after : 1;
  w->jitter = w->jitter * 6364136223846793005ull + 1442695040888963407ull;
  char extra[64];
  snprintf(extra, sizeof extra, "Retry-After: %llu\r\n",
           (unsigned long long)(base + (w->jitter >> 33) % (base + 1)));
  reject_logged(c, req, path, path_len, 503, reason, extra, body);
  return 1;
}

/* permessage-deflate: which endpoints offer it, what we accept, and the
 * settings of the compress-once shared frames. */
static void setup_deflate(server *s) {
  const srv_config *cfg = s->cfg;
  s->deflate.allow_client_takeover = cfg->compression_context_takeover;
  s->deflate.server_max_window_bits = (uint8_t)cfg->compression_window_bits;
  s->deflate.client_max_window_bits = (uint8_t)cfg->compression_window_bits;
  hf_shared_deflate_cfg sd = {
      .enabled = cfg->compression,
      .level = (int)cfg->compression_level,
      .mem_level = (int)cfg->compression_mem_level,
      .window_bits = (int)cfg->compression_window_bits,
      .min_size = cfg->compression_min_size,
  };
  hf_shared_deflate_setup(&sd);
}

/* The real-time connection speaks the Protobuf encoding: the client chose
 * the centrifuge-protobuf sub-protocol, or asked with cf_protocol=protobuf
 * (or the legacy format=protobuf) in the query (reference 1.1). */
static int wants_protobuf(const hf_http_request *req, const hf_handshake_result *res) {
  static const char pb[] = "centrifuge-protobuf";
  if (res->subprotocol && res->subprotocol_len == sizeof pb - 1 &&
      memcmp(res->subprotocol, pb, sizeof pb - 1) == 0)
    return 1;
  if (res->subprotocol) /* centrifuge-json named explicitly */
    return 0;
  const char *q = memchr(req->target, '?', req->target_len);
  if (!q)
    return 0;
  size_t n = req->target_len - (size_t)(q - req->target);
  for (const char *p = q + 1, *e = q + n; p < e;) {
    const char *amp = memchr(p, '&', (size_t)(e - p));
    size_t l = amp ? (size_t)(amp - p) : (size_t)(e - p);
    if ((l == 20 && memcmp(p, "cf_protocol=protobuf", 20) == 0) ||
        (l == 15 && memcmp(p, "format=protobuf", 15) == 0))
      return 1;
    p += l + 1;
  }
  return 0;
}

/* Upgrade on the echo (rt = 0), the real-time (rt = 1) or the
 * unidirectional WebSocket endpoint (rt = 2). */
static void route_upgrade(worker *w, hf_conn *c, const hf_http_request *req,
                          const char *path, size_t path_len, int rt,
                          const srv_forwarded *fw) {
  server *s = w->srv;
  uintptr_t u = (uintptr_t)hf_conn_udata(c);
  if (u & U_OVER) {
    char extra[64];
    snprintf(extra, sizeof extra, "Retry-After: %llu\r\n",
             (unsigned long long)s->cfg->retry_after);
    reject_logged(c, req, path, path_len, 503, "connection_limit", extra,
                  "Too many connections: the server's connection limit "
                  "(client.connection_limit or client.connection_limit_per_ip) "
                  "is reached. Retry later, with backoff.\n");
    return;
  }
  if (w->draining) {
    reject_logged(c, req, path, path_len, 503, "shutting_down", "Retry-After: 1\r\n",
                  "The server is shutting down. Reconnect with backoff.\n");
    return;
  }
  if (containment_refuses(w, c, req, path, path_len, u))
    return;
  hf_handshake_result res;
  const struct live *lv = live_get(s);
  hf_handshake_policy pol = rt ? lv->ws_pol : lv->echo_pol;
  if (rt == 2) /* unidirectional WebSocket: JSON only */
    pol.n_subprotocols = 1;
  if (fw->host) { /* same-origin against the host the client asked the proxy for */
    pol.same_origin_host = fw->host;
    pol.same_origin_host_len = fw->host_len;
  }
  hf_hs_code code = hf_conn_upgrade(c, req, &pol, NULL, &res);
  srv_logline l;
  if (code == HF_HS_OK) {
    if (rt) {
      cl_client *cl = cl_new(c, w->hl, &w->clients, &s->clcfg);
      if (!cl) {
        hf_conn_close(c, 3004, "internal server error");
        return;
      }
      cl_set_tag(cl, u);
      const hf_http_header *o = hdr(req, "Origin");
      if (o) /* listed by the admin API */
        cl_set_origin(cl, o->value, o->value_len);
      hf_conn_set_udata(c, cl);
      if (s->clcfg.px)
        cl_set_request_headers(cl, req); /* Cookie etc. for the proxy */
      atomic_fetch_add(&s->rt_clients, 1);
      if (rt == 2)
        cl_set_transport(cl, TR_UNI_WEBSOCKET, NULL, NULL);
      else if (wants_protobuf(req, &res))
        cl_set_protobuf(cl);
    } else {
      hf_conn_set_udata(c, (void *)(u | U_ECHO));
    }
    atomic_fetch_add(&s->ws_conns, 1);
    MET_INC(rt ? MET_UPGRADES_REALTIME : MET_UPGRADES_ECHO);
    if (rt)
      met_transport_open(rt == 2 ? TR_UNI_WEBSOCKET : TR_WEBSOCKET);
    srv_log_begin(&l, LOG_INFO, "upgrade_accepted");
    log_conn_fields(&l, c, req, path, path_len);
    srv_log_strn(&l, "subprotocol", res.subprotocol, res.subprotocol_len);
    if (res.deflate) /* the negotiated permessage-deflate response */
      srv_log_str(&l, "extensions", res.extensions);
    hf_tls *t = hf_conn_tls(c);
    if (t) {
      srv_log_str(&l, "tls", hf_tls_version(t));
      srv_log_str(&l, "sni", hf_tls_server_name(t));
      srv_log_bool(&l, "ktls", hf_tls_ktls(t) != 0);
    }
    if (fw->proto)
      srv_log_strn(&l, "forwarded_proto", fw->proto, fw->proto_len);
    srv_log_end(&l);
    return;
  }
  met_reject_inc(code == HF_HS_ORIGIN_REJECTED || code == HF_HS_NULL_ORIGIN ||
                         code == HF_HS_MISSING_ORIGIN
                     ? MET_REJ_ORIGIN
                     : met_reject_of(res.reason));
  srv_log_begin(&l, LOG_WARN, "upgrade_rejected");
  srv_log_str(&l, "reason", res.reason);
  srv_log_int(&l, "status", res.status);
  log_conn_fields(&l, c, req, path, path_len);
  if (code == HF_HS_ORIGIN_REJECTED && fw->host)
    srv_log_strn(&l, "forwarded_host", fw->host, fw->host_len);
  if (code == HF_HS_ORIGIN_REJECTED)
    srv_log_str(&l, "hint", "add this origin to client.allowed_origins to allow it");
  else if (code == HF_HS_NULL_ORIGIN)
    srv_log_str(&l, "hint", "set client.allow_null_origin to allow it");
  else if (code == HF_HS_MISSING_ORIGIN)
    srv_log_str(&l, "hint", "set client.allow_missing_origin to allow it");
  else if (code == HF_HS_SUBPROTOCOL) {
    const hf_http_header *sp = hdr(req, "Sec-WebSocket-Protocol");
    if (sp)
      srv_log_strn(&l, "offered", sp->value, sp->value_len > 200 ? 200 : sp->value_len);
    srv_log_str(&l, "hint", rt == 2 ? "this endpoint speaks centrifuge-json (or none offered)"
                                    : "offer centrifuge-json or centrifuge-protobuf, or none");
  }
  srv_log_end(&l);
}

/* The path of the request target: origin-form "/p?q", or absolute-form
 * "http://host/p?q" (RFC 9112 3.2.2: a server must accept it). */
static const char *target_path(const hf_http_request *req, size_t *len) {
  const char *t = req->target, *end = t + req->target_len;
  if (req->target_len > 7 && (strncasecmp(t, "http://", 7) == 0 ||
                              strncasecmp(t, "https://", 8) == 0 ||
                              strncasecmp(t, "ws://", 5) == 0 ||
                              strncasecmp(t, "wss://", 6) == 0)) {
    const char *colon = memchr(t, ':', req->target_len); /* scheme end */
    const char *p = colon + 3;
    p = memchr(p, '/', (size_t)(end - p));
    if (!p) {
      *len = 1;
      return "/";
    }
    t = p;
  }
  const char *q = memchr(t, '?', (size_t)(end - t));
  *len = q ? (size_t)(q - t) : (size_t)(end - t);
  return t;
}

/* ---- server API ------------------------------------------------------------ */

static int api_key_ok(const srv_config *cfg, const hf_http_request *req) {
  if (cfg->api_insecure)
    return 1;
  size_t kl = strlen(cfg->api_key);
  if (!kl)
    return 0; /* no key configured: nobody gets in */
  const char *v = NULL;
  size_t vl = 0;
  const hf_http_header *h = hf_http_find(req, "X-API-Key");
  if (h) {
    v = h->value;
    vl = h->value_len;
  } else if ((h = hf_http_find(req, "Authorization")) && h->value_len > 7 &&
             strncasecmp(h->value, "apikey ", 7) == 0) {
    v = h->value + 7;
    vl = h->value_len - 7;
    while (vl && (*v == ' ' || *v == '\t')) {
      v++;
      vl--;
    }
  }
  if (!v || vl != kl)
    return 0;
  return CRYPTO_memcmp(v, cfg->api_key, kl) == 0; /* constant time */
}

static void api_reject(hf_conn *c, const hf_http_request *req, const char *path,
                       size_t pl, int status, const char *reason,
                       const char *extra, const char *body) {
  reject_as("api_rejected", c, req, path, pl, status, reason, extra, body);
}

static void read_json_body(hf_conn *c, const hf_http_request *req, const char *path,
                           size_t pl, const char *event, uint64_t max, const char *too_large,
                           uintptr_t bits);

static void route_api(worker *w, hf_conn *c, const hf_http_request *req,
                      const char *name, size_t nl) {
  const srv_config *cfg = w->srv->cfg;
  const char *path = name - strlen(cfg->api_path) - 1;
  size_t pl = nl + strlen(cfg->api_path) + 1;
  if (!(req->method_len == 4 && memcmp(req->method, "POST", 4) == 0)) {
    api_reject(c, req, path, pl, 405, "bad_method", "Allow: POST\r\n",
               "The server API answers POST only.\n");
    return;
  }
  if (!api_key_ok(cfg, req)) {
    api_reject(c, req, path, pl, 401, "bad_api_key", NULL,
               "Unauthorized: missing or wrong API key (send X-API-Key: KEY or "
               "Authorization: apikey KEY; configured by http_api.key).\n");
    return;
  }
  int m = api_method(name, nl);
  if (m < 0) {
    char body[300];
    snprintf(body, sizeof body, "Unknown server API method \"%.*s\". Methods: %s.\n",
             (int)(nl > 64 ? 64 : nl), name, api_method_list());
    api_reject(c, req, path, pl, 404, "unknown_method", NULL, body);
    return;
  }
  read_json_body(c, req, path, pl, "api_rejected", cfg->api_max_body,
                 "Payload Too Large: see http_api.max_body.\n", U_API | ((uintptr_t)m << 8));
}

/* Read the JSON body of a POST (Content-Length, at most max bytes), then
 * on_body runs the call that bits (U_API or U_ADMIN, method id in bits
 * 8-15) name; refusals are logged as event. */
static void read_json_body(hf_conn *c, const hf_http_request *req, const char *path,
                           size_t pl, const char *event, uint64_t max, const char *too_large,
                           uintptr_t bits) {
  if (hf_http_find(req, "Transfer-Encoding")) {
    reject_as(event, c, req, path, pl, 411, "chunked_body", NULL,
              "Length Required: send the body with Content-Length.\n");
    return;
  }
  const hf_http_header *cl = hf_http_find(req, "Content-Length");
  unsigned long long len = 0;
  if (cl) {
    char num[24];
    size_t n = cl->value_len < sizeof num - 1 ? cl->value_len : sizeof num - 1;
    memcpy(num, cl->value, n);
    num[n] = 0;
    char *end;
    len = strtoull(num, &end, 10);
    if (*end || !n)
      len = 0;
  }
  if (!len) {
    reject_as(event, c, req, path, pl, 400, "empty_body", NULL,
              "Bad Request: the body must be a JSON object.\n");
    return;
  }
  if (len > max) {
    reject_as(event, c, req, path, pl, 413, "body_too_large", NULL, too_large);
    return;
  }
  uintptr_t u = (uintptr_t)hf_conn_udata(c) & ~(uintptr_t)(U_API | U_ADMIN | 0xff00);
  hf_conn_set_udata(c, (void *)(u | bits));
  /* backends publish over kept-alive connections (HTTP/1.1 default) */
  const hf_http_header *conn_hdr = hf_http_find(req, "Connection");
  if (req->version_minor >= 1 &&
      !(conn_hdr && hf_http_has_token(conn_hdr->value, conn_hdr->value_len, "close")))
    hf_conn_keep_alive(c);
  hf_conn_read_body(c, (size_t)len);
}

static void unlink_wait(worker *w, api_wait *aw) {
  for (api_wait **pp = &w->waits; *pp; pp = &(*pp)->next)
    if (*pp == aw) {
      *pp = aw->next;
      return;
    }
}

/* The answer of a server API or admin call (ctype NULL: JSON on 200). */
static void adm_answered(void *arg, int status, const char *ctype, const jw_buf *body) {
  api_wait *aw = arg;
  if (aw->c) {
    hf_conn *c = aw->c;
    hf_conn_set_udata(c, (void *)((uintptr_t)hf_conn_udata(c) & ~(uintptr_t)U_WAIT));
    if (status == 500 || !jw_ok(body))
      respond_text(c, 500, NULL, "Internal Server Error\n");
    else
      hf_conn_respond(c, status, ctype ? "Cache-Control: no-store\r\n" : NULL,
                      ctype ? ctype : status == 200 ? "application/json" : NULL, body->p,
                      body->len);
  }
  aw->done = 1;
  if (!aw->in_call) { /* answered later: on_body is long gone */
    unlink_wait(aw->w, aw);
    free(aw);
  }
}

static void tr_on_body(worker *w, hf_conn *c, uint8_t *body, size_t len);
static void api_answered(void *arg, int status, const jw_buf *body) {
  adm_answered(arg, status, NULL, body);
}

static void on_body(hf_conn *c, uint8_t *body, size_t len) {
  worker *w = hf_loop_data(hf_conn_loop(c));
  uintptr_t u = (uintptr_t)hf_conn_udata(c);
  if (u & U_BODY) {
    tr_on_body(w, c, body, len);
    return;
  }
  api_wait *aw = calloc(1, sizeof *aw);
  if (!aw) {
    respond_text(c, 500, NULL, "Internal Server Error\n");
    return;
  }
  aw->w = w;
  aw->c = c;
  aw->in_call = 1;
  aw->next = w->waits;
  w->waits = aw;
  hf_conn_set_udata(c, (void *)(u | U_WAIT));
  if (u & U_ADMIN)
    adm_call(w->srv->adm, (size_t)w->idx, (int)((u >> 8) & 0xff), body, len, adm_answered, aw);
  else
    api_call(&w->srv->api, w->hl, (int)((u >> 8) & 0xff), body, len, api_answered, aw);
  aw->in_call = 0;
  if (aw->done) { /* answered already (the memory engine) */
    unlink_wait(w, aw);
    free(aw);
  } else {
    hf_conn_defer(c);
  }
}

/* First request of a connection: the client address is final now (PROXY
 * header read, forwarding headers from a trusted proxy applied); count it
 * for the per-IP limit if that waited for it. */
static uintptr_t resolve_client(worker *w, hf_conn *c, const hf_http_request *req,
                                uintptr_t u, srv_forwarded *fw) {
  server *s = w->srv;
  memset(fw, 0, sizeof *fw);
  if (u & U_RESOLVED)
    return u;
  srv_proxies_apply(s->proxies, c, req, fw);
  u |= U_RESOLVED;
  if ((u & U_DEFER_IP) && s->cfg->connection_limit_per_ip) {
    uint8_t ip[16]; /* ip_add counts IPv6 by /64 */
    size_t n = hf_conn_client_ip(c, ip);
    u |= U_IP;
    if (ip_add(s, ip, n, 1) > s->cfg->connection_limit_per_ip)
      u |= U_OVER;
  }
  hf_conn_set_udata(c, (void *)u);
  return u;
}

/* ---- HTTP streaming, SSE and the emulation endpoint (transport/) ---------- */

enum { TB_HTTP_STREAM = TR_HTTP_STREAM, TB_SSE = TR_SSE, TB_EMULATION = 8 };
/* or-ed into a pending body's kind: the body is Protobuf
 * (Content-Type: application/octet-stream; http_stream and emulation) */
#define TB_PROTOBUF 0x100

static int is_method(const hf_http_request *req, const char *m) {
  return req->method_len == strlen(m) && memcmp(req->method, m, req->method_len) == 0;
}

/* A streaming session: the response starts, the client is created and
 * bound to a session of this worker, and the connect command runs. */
/* A unidirectional client's connect request (a ConnectRequest object) as
 * the connect command {"connect":<req>,"id":1}: re-serialized compactly, so
 * that nothing in it can start another command line. A request that is not
 * one JSON object closes the connection (3501). */
static void uni_connect(cl_client *cl, const uint8_t *req, size_t len) {
  json_error_t jerr;
  json_t *j = json_loadb((const char *)req, len, 0, &jerr);
  char *text = json_is_object(j) ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (!text) {
    cl_disconnect(cl, 3501, "bad request: the connect request must be a JSON object");
    return;
  }
  size_t tl = strlen(text);
  char *cmd = malloc(tl + 32);
  if (cmd) {
    int n = snprintf(cmd, tl + 32, "{\"connect\":%s,\"id\":1}", text);
    cl_on_message(cl, HF_OP_TEXT, (uint8_t *)cmd, (size_t)n);
  } else {
    cl_disconnect(cl, 3004, "internal server error");
  }
  free(cmd);
  free(text);
}

/* px_headers: the request headers the event proxy forwards (taken). */
static void tr_start(worker *w, hf_conn *c, tr_kind k, const char *extra,
                     uint8_t *cmd, size_t len, int pb, char *px_headers) {
  server *s = w->srv;
  uintptr_t u = (uintptr_t)hf_conn_udata(c) & ~(uintptr_t)U_BODY;
  char hdrs[2048];
  if (tr_stream_headers(k, extra, hdrs, sizeof hdrs) < 0 ||
      hf_conn_stream_start(c, hdrs) < 0) {
    free(px_headers);
    return;
  }
  cl_client *cl = cl_new(c, w->hl, &w->clients, &s->clcfg);
  tr_session *ss = cl && !tr_is_uni(k) ? tr_session_add(w->sessions, (unsigned)w->idx, cl)
                                       : NULL;
  if (!cl || (!ss && !tr_is_uni(k))) {
    free(px_headers);
    if (cl)
      cl_free(cl);
    hf_conn_set_udata(c, (void *)u);
    hf_conn_close(c, 3004, "internal server error");
    return;
  }
  cl_set_transport(cl, k, ss ? tr_session_id(ss) : NULL, ss ? s->api.node_uid : NULL);
  cl_take_request_headers(cl, px_headers); /* Cookie etc. for the proxy */
  if (pb)
    cl_set_protobuf(cl);
  cl_set_tag(cl, u);
  hf_conn_set_udata(c, cl);
  atomic_fetch_add(&s->rt_clients, 1);
  atomic_fetch_add(&s->ws_conns, 1);
  met_transport_open(k);
  if (tr_is_sse(k)) { /* the SSE preamble, flushed at once */
    struct iovec nl = {(void *)"\r\n", 2};
    hf_conn_send_chunk(c, &nl, 1);
  }
  if (tr_is_uni(k))
    uni_connect(cl, cmd, len);
  else
    cl_on_message(cl, pb ? HF_OP_BINARY : HF_OP_TEXT, cmd, len);
}

/* The connection of client cl is gone: forget its session. Returns the
 * emulation requests the session had. */
static uint32_t tr_close_client(worker *w, cl_client *cl) {
  int k = cl_transport(cl);
  met_transport_close(k);
  const char *id = cl_session(cl);
  return id ? tr_session_remove_id(w->sessions, id) : 0;
}

/* One emulation request, carried to the worker that owns the session. */
typedef struct {
  hf_msg m;
  size_t slen, dlen;
  int opcode; /* HF_OP_TEXT (JSON) or HF_OP_BINARY (Protobuf commands) */
  char buf[]; /* session, then data */
} emu_msg;

static void emu_run(hf_loop *loop, hf_msg *m) {
  worker *w = hf_loop_data(loop);
  emu_msg *e = (emu_msg *)m;
  cl_client *cl = tr_session_deliver(w->sessions, e->buf, e->slen);
  if (cl) /* in arrival order: the inbox is FIFO and this loop serial */
    cl_on_message(cl, e->opcode, (uint8_t *)e->buf + e->slen, e->dlen);
  free(e);
}

static void emu_drop(hf_msg *m) { free(m); }

static void tr_reject(hf_conn *c, const hf_http_request *req, const char *path,
                      size_t pl, int status, const char *reason,
                      const char *extra, const char *body) {
  reject_as("transport_rejected", c, req, path, pl, status, reason, extra, body);
}

/* The request's Content-Length (0 if absent or malformed). */
static unsigned long long content_length(const hf_http_request *req) {
  const hf_http_header *h = hf_http_find(req, "Content-Length");
  if (!h || !h->value_len || h->value_len > 20)
    return 0;
  char num[24];
  memcpy(num, h->value, h->value_len);
  num[h->value_len] = 0;
  char *end;
  unsigned long long v = strtoull(num, &end, 10);
  return *end ? 0 : v;
}

/* Serve http_stream, SSE and emulation requests; 0 if path is none of them. */
static int tr_route(worker *w, hf_conn *c, const hf_http_request *req,
                    const char *path, size_t pl, const srv_forwarded *fw) {
  server *s = w->srv;
  const srv_config *cfg = s->cfg;
  int what;
  uint64_t max;
  if (cfg->http_stream_enabled && pl == strlen(cfg->http_stream_path) &&
      memcmp(path, cfg->http_stream_path, pl) == 0) {
    what = TB_HTTP_STREAM;
    max = cfg->http_stream_max_body;
  } else if (cfg->sse_enabled && pl == strlen(cfg->sse_path) &&
             memcmp(path, cfg->sse_path, pl) == 0) {
    what = TB_SSE;
    max = cfg->sse_max_body;
  } else if (cfg->uni_http_stream_enabled && pl == strlen(cfg->uni_http_stream_path) &&
             memcmp(path, cfg->uni_http_stream_path, pl) == 0) {
    what = TR_UNI_HTTP_STREAM;
    max = cfg->uni_http_stream_max_body;
  } else if (cfg->uni_sse_enabled && pl == strlen(cfg->uni_sse_path) &&
             memcmp(path, cfg->uni_sse_path, pl) == 0) {
    what = TR_UNI_SSE;
    max = cfg->uni_sse_max_body;
  } else if ((cfg->http_stream_enabled || cfg->sse_enabled) &&
             pl == strlen(cfg->emulation_path) &&
             memcmp(path, cfg->emulation_path, pl) == 0) {
    what = TB_EMULATION;
    max = cfg->emulation_max_body;
  } else {
    return 0;
  }
  char cors[1200];
  const char *why = NULL;
  hf_handshake_policy pol = live_get(s)->ws_pol;
  if (fw->host) { /* same-origin against the host the client asked the proxy for */
    pol.same_origin_host = fw->host;
    pol.same_origin_host_len = fw->host_len;
  }
  if (tr_cors(req, &pol, cors, sizeof cors, &why)) {
    met_reject_inc(MET_REJ_ORIGIN);
    tr_reject(c, req, path, pl, 403, why, NULL,
              "Forbidden: this Origin is not allowed by client.allowed_origins "
              "(the same policy as for WebSocket).\n");
    return 1;
  }
  if (is_method(req, "OPTIONS")) { /* CORS preflight */
    char h[1400];
    snprintf(h, sizeof h, "%sAccess-Control-Max-Age: 300\r\n"
                          "Access-Control-Allow-Methods: %s\r\n",
             cors, tr_is_sse(what) ? "GET, POST, OPTIONS" : "POST, OPTIONS");
    hf_conn_respond(c, 204, h, NULL, "", 0);
    return 1;
  }
  int get_ok = tr_is_sse(what) && is_method(req, "GET");
  if (!get_ok && !is_method(req, "POST")) {
    tr_reject(c, req, path, pl, 405, "bad_method",
              tr_is_sse(what) ? "Allow: GET, POST, OPTIONS\r\n" : "Allow: POST, OPTIONS\r\n",
              "Method Not Allowed.\n");
    return 1;
  }
  uintptr_t u = (uintptr_t)hf_conn_udata(c);
  if (what != TB_EMULATION && (u & U_OVER)) {
    char extra[64];
    snprintf(extra, sizeof extra, "Retry-After: %llu\r\n",
             (unsigned long long)cfg->retry_after);
    tr_reject(c, req, path, pl, 503, "connection_limit", extra,
              "Too many connections: the server's connection limit is reached. "
              "Retry later, with backoff.\n");
    return 1;
  }
  if (what != TB_EMULATION && w->draining) {
    tr_reject(c, req, path, pl, 503, "shutting_down", "Retry-After: 1\r\n",
              "The server is shutting down. Reconnect with backoff.\n");
    return 1;
  }
  if (get_ok) { /* SSE: the connect command is in the cf_connect parameter */
    uint8_t *cmd = NULL;
    size_t len = 0;
    int r = tr_query_connect(req->target, req->target_len, max, &cmd, &len);
    if (r) {
      tr_reject(c, req, path, pl, r == 2 ? 500 : 400, "bad_connect", NULL,
                r == 1 ? "Bad Request: the cf_connect query parameter (the connect "
                         "command, URL-encoded JSON) is missing.\n"
                       : "Bad Request: cf_connect is malformed or too large "
                         "(sse.max_request_body_size).\n");
      return 1;
    }
    tr_start(w, c, (tr_kind)what, cors, cmd, len, 0,
             s->clcfg.px ? px_capture_headers(s->clcfg.px, req) : NULL);
    free(cmd);
    return 1;
  }
  if (hf_http_find(req, "Transfer-Encoding")) {
    tr_reject(c, req, path, pl, 411, "chunked_body", NULL,
              "Length Required: send the body with Content-Length.\n");
    return 1;
  }
  unsigned long long len = content_length(req);
  if (len > max) {
    tr_reject(c, req, path, pl, 413, "body_too_large", NULL,
              what == TB_EMULATION ? "Payload Too Large: see emulation.max_request_body_size.\n"
              : what == TB_SSE     ? "Payload Too Large: see sse.max_request_body_size.\n"
              : what == TR_UNI_SSE ? "Payload Too Large: see uni_sse.max_request_body_size.\n"
              : what == TR_UNI_HTTP_STREAM
                  ? "Payload Too Large: see uni_http_stream.max_request_body_size.\n"
                                   : "Payload Too Large: see http_stream.max_request_body_size.\n");
    return 1;
  }
  if (!len) {
    tr_reject(c, req, path, pl, 400, "empty_body", NULL,
              "Bad Request: the body must hold the commands (JSON).\n");
    return 1;
  }
  /* the Protobuf builds of the SDKs post their commands (http_stream) and
   * EmulationRequests as application/octet-stream */
  const hf_http_header *ct = hf_http_find(req, "Content-Type");
  int pb = ct && ct->value_len >= 24 && strncasecmp(ct->value, "application/octet-stream", 24) == 0 &&
           (what == TB_HTTP_STREAM || what == TB_EMULATION);
  char *pxh = s->clcfg.px && what != TB_EMULATION ? px_capture_headers(s->clcfg.px, req) : NULL;
  if (tr_pending_add(&w->bodies, c, what | (pb ? TB_PROTOBUF : 0), cors, pxh) < 0) {
    respond_text(c, 500, NULL, "Internal Server Error\n");
    return 1;
  }
  hf_conn_set_udata(c, (void *)(u | U_BODY));
  if (what == TB_EMULATION) { /* SDKs send batches over kept-alive connections */
    const hf_http_header *ch = hf_http_find(req, "Connection");
    if (req->version_minor >= 1 &&
        !(ch && hf_http_has_token(ch->value, ch->value_len, "close")))
      hf_conn_keep_alive(c);
  }
  hf_conn_read_body(c, (size_t)len);
  return 1;
}

static void emu_bad(hf_conn *c, int status, const char *cors, const char *reason,
                    const char *body) {
  char id[37], peer[64];
  hf_conn_id(c, id);
  hf_conn_peer(c, peer, sizeof peer);
  srv_logline l;
  srv_log_begin(&l, LOG_WARN, "transport_rejected");
  srv_log_str(&l, "reason", reason);
  srv_log_int(&l, "status", status);
  srv_log_str(&l, "conn_id", id);
  srv_log_str(&l, "remote", peer);
  srv_log_str(&l, "path", "emulation");
  srv_log_end(&l);
  met_reject_inc(MET_REJ_OTHER);
  hf_conn_respond(c, status, cors, NULL, body, strlen(body));
}

/* An emulation request body: {"session":..,"node":..,"data":"<commands>"},
 * or with pb a Protobuf EmulationRequest (data: Protobuf commands). */
static void tr_emulation(worker *w, hf_conn *c, const char *cors, uint8_t *body,
                         size_t len, int pb) {
  server *s = w->srv;
  json_error_t jerr;
  json_t *j = pb ? pb_emulation_json(body, len)
                 : json_loadb((const char *)body, len, 0, &jerr);
  json_t *sess = json_object_get(j, "session"), *node = json_object_get(j, "node"),
         *data = json_object_get(j, "data");
  if (!json_is_object(j) || !json_is_string(sess) || !json_is_string(data) ||
      (node && !json_is_string(node))) {
    json_decref(j);
    emu_bad(c, 400, cors, "bad_body",
            pb ? "Bad Request: the body must be a Protobuf EmulationRequest.\n"
               : "Bad Request: the body must be {\"session\":..,\"node\":..,\"data\":\"<commands>\"}.\n");
    return;
  }
  const char *nid = node ? json_string_value(node) : "";
  if (*nid && strcmp(nid, s->api.node_uid) != 0) {
    json_decref(j);
    emu_bad(c, 404, cors, "unknown_node",
            "Not Found: no such node here (sticky routing to the node that holds "
            "the stream is needed with several nodes).\n");
    return;
  }
  size_t sl = json_string_length(sess), dl = json_string_length(data);
  int owner = tr_session_worker(json_string_value(sess), sl);
  /* while shutting down, nothing is posted: a stopped loop would never run
   * (and free) the message; every session is being closed anyway */
  if (atomic_load(&s->draining)) {
    json_decref(j);
    hf_conn_respond(c, 503, cors, NULL, "The server is shutting down.\n", 29);
    return;
  }
  if (owner >= 0 && (size_t)owner < s->nw && dl) {
    emu_msg *e = malloc(sizeof *e + sl + dl);
    if (e) {
      e->m.run = emu_run;
      e->m.drop = emu_drop;
      e->slen = sl;
      e->dlen = dl;
      e->opcode = pb ? HF_OP_BINARY : HF_OP_TEXT;
      memcpy(e->buf, json_string_value(sess), sl);
      memcpy(e->buf + sl, json_string_value(data), dl);
      hf_loop_post(s->w[owner].loop, &e->m);
    }
  } /* an unknown session is dropped silently (reference 7.3) */
  json_decref(j);
  hf_conn_respond(c, 204, cors, NULL, "", 0);
}

static void tr_on_body(worker *w, hf_conn *c, uint8_t *body, size_t len) {
  tr_pending *p = tr_pending_take(&w->bodies, c);
  hf_conn_set_udata(c, (void *)((uintptr_t)hf_conn_udata(c) & ~(uintptr_t)U_BODY));
  if (!p) {
    respond_text(c, 500, NULL, "Internal Server Error\n");
    return;
  }
  int pb = (p->what & TB_PROTOBUF) != 0, what = p->what & ~TB_PROTOBUF;
  if (what == TB_EMULATION)
    tr_emulation(w, c, p->headers, body, len, pb);
  else {
    tr_start(w, c, (tr_kind)what, p->headers, body, len, pb, p->px_headers);
    p->px_headers = NULL;
  }
  tr_pending_free(p);
}

/* A stream ends: the disconnect push goes before its last chunk. */
static void on_stream_end(hf_conn *c, uint16_t code, const char *reason) {
  cl_client *cl = conn_client(c);
  if (cl && cl_protobuf(cl))
    cl_disconnect_push(cl, code, reason);
  else
    tr_disconnect_push(c, cl ? (tr_kind)cl_transport(cl) : TR_HTTP_STREAM, code, reason);
}

/* ---- admin API and dashboard ---------------------------------------------- */
/* A browser request to the admin must come from the admin's own page: an
 * Origin header, when there is one, must name the Host it was sent to
 * (cross-site requests and WebSockets are refused even in admin.insecure
 * mode). */
static int admin_same_origin(const hf_http_request *req) {
  const hf_http_header *o = hf_http_find(req, "Origin"), *h = hf_http_find(req, "Host");
  if (!o)
    return 1; /* not a browser */
  const char *v = o->value;
  size_t n = o->value_len;
  if (n > 7 && strncasecmp(v, "http://", 7) == 0) {
    v += 7;
    n -= 7;
  } else if (n > 8 && strncasecmp(v, "https://", 8) == 0) {
    v += 8;
    n -= 8;
  } else {
    return 0;
  }
  return h && h->value_len == n && strncasecmp(h->value, v, n) == 0;
}

/* /admin/ (the page), /admin/auth (login), /admin/api/METHOD, /admin/ws. */
static void route_admin(worker *w, hf_conn *c, const hf_http_request *req, const char *path,
                        size_t pl) {
  server *s = w->srv;
  const char *sub = path + 6; /* after "/admin" */
  size_t sl = pl - 6;
  const char *reason = NULL;
  size_t tl = 0;
  const char *tok;
  int st;
  if (sl > 1 && !admin_same_origin(req)) {
    reject_as("admin_rejected", c, req, path, pl, 403, "admin_cross_origin", NULL,
              "Forbidden: the admin answers its own page only (Origin must match Host).\n");
  } else if (sl == 0) {
    respond_text(c, 301, "Location: /admin/\r\n", "Moved to /admin/\n");
  } else if ((sl == 1 || (sl == 11 && memcmp(sub, "/index.html", 11) == 0)) &&
             (is_method(req, "GET") || is_method(req, "HEAD"))) {
    size_t n;
    const char *page = adm_page(&n);
    hf_conn_respond(c, 200,
                    "Cache-Control: no-store\r\nContent-Security-Policy: default-src 'self'; "
                    "script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                    "connect-src 'self' ws: wss:\r\nX-Frame-Options: DENY\r\n",
                    "text/html; charset=utf-8", page, n);
  } else if (sl == 5 && memcmp(sub, "/auth", 5) == 0) {
    if (!is_method(req, "POST"))
      reject_as("admin_rejected", c, req, path, pl, 405, "bad_method", "Allow: POST\r\n",
                "The admin login answers POST {\"password\":\"...\"} only.\n");
    else
      read_json_body(c, req, path, pl, "admin_rejected", 4096, "Payload Too Large.\n",
                     U_ADMIN | ((uintptr_t)ADM_LOGIN << 8));
  } else if (sl > 5 && memcmp(sub, "/api/", 5) == 0) {
    int m = adm_method(sub + 5, sl - 5);
    tok = adm_token_of(req, &tl);
    if (!is_method(req, "POST"))
      reject_as("admin_rejected", c, req, path, pl, 405, "bad_method", "Allow: POST\r\n",
                "The admin API answers POST only.\n");
    else if ((st = adm_check_token(s->adm, tok, tl, &reason)))
      reject_as("admin_rejected", c, req, path, pl, st, reason, NULL,
                st == 401 ? "Unauthorized: log in with POST /admin/auth {\"password\":...} and "
                            "send Authorization: token TOKEN (admin.password).\n"
                          : "Forbidden: the admin token is wrong or expired; log in again.\n");
    else if (m < 0) {
      char body[200];
      snprintf(body, sizeof body, "Unknown admin method. Methods: %s.\n", adm_method_list());
      reject_as("admin_rejected", c, req, path, pl, 404, "unknown_method", NULL, body);
    } else
      read_json_body(c, req, path, pl, "admin_rejected", 65536, "Payload Too Large.\n",
                     U_ADMIN | ((uintptr_t)m << 8));
  } else if (sl == 3 && memcmp(sub, "/ws", 3) == 0) {
    tok = adm_query_param(req->target, req->target_len, "token", &tl);
    if ((st = adm_check_token(s->adm, tok, tl, &reason))) {
      reject_as("admin_rejected", c, req, path, pl, st, reason, NULL,
                st == 401 ? "Unauthorized: connect to /admin/ws?token=TOKEN (POST /admin/auth).\n"
                          : "Forbidden: the admin token is wrong or expired; log in again.\n");
      return;
    }
    hf_handshake_result res;
    if (hf_conn_upgrade(c, req, &s->adm_pol, NULL, &res) != HF_HS_OK)
      return; /* explained by the handshake layer */
    uintptr_t u = (uintptr_t)hf_conn_udata(c);
    hf_conn_set_udata(c, (void *)(u | U_ADMIN_WS));
    if (adm_ws_open(s->adm, (size_t)w->idx, c) < 0) {
      hf_conn_set_udata(c, (void *)u);
      hf_conn_close(c, 1011, "out of memory");
      return;
    }
    srv_logline l;
    srv_log_begin(&l, LOG_INFO, "admin_dashboard_opened");
    log_conn_fields(&l, c, req, path, pl);
    srv_log_end(&l);
  } else {
    respond_text(c, 404, NULL,
                 "No admin endpoint here: /admin/ (dashboard), POST /admin/auth, POST "
                 "/admin/api/METHOD, /admin/ws.\n");
  }
}

static void on_request(hf_conn *c, const hf_http_request *req) {
  worker *w = hf_loop_data(hf_conn_loop(c));
  const srv_config *cfg = w->srv->cfg;
  size_t pl;
  const char *path = target_path(req, &pl);
  srv_forwarded fw;
  uintptr_t u = resolve_client(w, c, req, (uintptr_t)hf_conn_udata(c), &fw);
  size_t apl = strlen(cfg->api_path);
  if (pl > apl + 1 && memcmp(path, cfg->api_path, apl) == 0 &&
      path[apl] == '/' && (!w->srv->has_internal || (u & U_INTERNAL))) {
    route_api(w, c, req, path + apl + 1, pl - apl - 1);
    return;
  }
  if (cfg->prometheus_enabled && pl == strlen(cfg->prometheus_path) &&
      memcmp(path, cfg->prometheus_path, pl) == 0 && (!w->srv->has_internal || (u & U_INTERNAL))) {
    route_metrics(w, c, req);
    return;
  }
  if (cfg->admin_enabled && pl >= 6 && memcmp(path, "/admin", 6) == 0 &&
      (pl == 6 || path[6] == '/') && (!w->srv->has_internal || (u & U_INTERNAL))) {
    route_admin(w, c, req, path, pl);
    return;
  }
  if (u & U_INTERNAL) { /* the internal listener serves the API and metrics only */
    respond_text(c, 404, NULL,
                 "The internal listener serves the server API, /metrics and /admin/ only.\n");
    return;
  }
  if (cfg->ws_enabled && pl == strlen(cfg->ws_path) &&
      memcmp(path, cfg->ws_path, pl) == 0) {
    route_upgrade(w, c, req, path, pl, 1, &fw);
    return;
  }
  if (cfg->uni_ws_enabled && pl == strlen(cfg->uni_ws_path) &&
      memcmp(path, cfg->uni_ws_path, pl) == 0) {
    route_upgrade(w, c, req, path, pl, 2, &fw);
    return;
  }
  if (tr_route(w, c, req, path, pl, &fw))
    return;
  if (cfg->health_enabled && pl == strlen(cfg->health_path) &&
      memcmp(path, cfg->health_path, pl) == 0) {
    route_health(w, c, req);
    return;
  }
  if (cfg->echo_enabled && pl == strlen(cfg->echo_path) &&
      memcmp(path, cfg->echo_path, pl) == 0) {
    route_upgrade(w, c, req, path, pl, 0, &fw);
    return;
  }
  /* say what is served here, so a wrong path is fixed at once */
  char list[600] = "";
  size_t ln = 0;
#define ADD_EP(cond, ...)                                                              \
  if ((cond) && ln < sizeof list)                                                      \
    ln += (size_t)snprintf(list + ln, sizeof list - ln, __VA_ARGS__);
  ADD_EP(cfg->ws_enabled, "\n  %s  real-time WebSocket (Centrifugo client protocol)",
         cfg->ws_path)
  ADD_EP(cfg->http_stream_enabled, "\n  POST %s  HTTP streaming", cfg->http_stream_path)
  ADD_EP(cfg->sse_enabled, "\n  GET %s  Server-Sent Events", cfg->sse_path)
  ADD_EP(cfg->http_stream_enabled || cfg->sse_enabled, "\n  POST %s  emulation",
         cfg->emulation_path)
  ADD_EP(cfg->uni_ws_enabled, "\n  %s  unidirectional WebSocket", cfg->uni_ws_path)
  ADD_EP(cfg->uni_http_stream_enabled, "\n  POST %s  unidirectional HTTP streaming",
         cfg->uni_http_stream_path)
  ADD_EP(cfg->uni_sse_enabled, "\n  GET %s  unidirectional SSE", cfg->uni_sse_path)
  ADD_EP(cfg->echo_enabled, "\n  %s  WebSocket echo", cfg->echo_path)
  ADD_EP(cfg->health_enabled, "\n  GET %s  health check", cfg->health_path)
  ADD_EP(!w->srv->has_internal, "\n  POST %s/<method>  server API", cfg->api_path)
  ADD_EP(cfg->prometheus_enabled && !w->srv->has_internal, "\n  GET %s  Prometheus metrics",
         cfg->prometheus_path)
  ADD_EP(cfg->admin_enabled && !w->srv->has_internal, "\n  GET /admin/  admin dashboard and API")
#undef ADD_EP
  char body[900];
  snprintf(body, sizeof body, "No endpoint at %.*s. This server serves:%s\n",
           (int)(pl > 200 ? 200 : pl), path, ln ? list : " nothing on this listener");
  srv_logline l;
  const hf_http_header *up = hdr(req, "Upgrade");
  met_reject_inc(MET_REJ_NOT_FOUND);
  srv_log_begin(&l, up ? LOG_WARN : LOG_INFO, up ? "upgrade_rejected" : "http_not_found");
  srv_log_str(&l, "reason", "not_found");
  srv_log_int(&l, "status", 404);
  log_conn_fields(&l, c, req, path, pl);
  srv_log_end(&l);
  respond_text(c, 404, NULL, body);
}

static void on_message(hf_conn *c, int opcode, uint8_t *data, size_t len) {
  cl_client *cl = conn_client(c);
  if (cl && cl_transport(cl) == TR_UNI_WEBSOCKET) {
    /* the first message is the connect request; later ones are ignored */
    if (!(cl_tag(cl) & U_UNI_SEEN)) {
      cl_set_tag(cl, cl_tag(cl) | U_UNI_SEEN);
      uni_connect(cl, data, len);
    }
  } else if (cl)
    cl_on_message(cl, opcode, data, len);
  else if (conn_bits(c) & U_ADMIN_WS)
    return; /* the dashboard only listens */
  else
    hf_conn_send(c, opcode, data, len); /* /echo: straight back */
}

static void on_close(hf_conn *c, const hf_conn_close_info *ci) {
  worker *w = hf_loop_data(hf_conn_loop(c));
  server *s = w->srv;
  uintptr_t u = conn_bits(c);
  if (u & U_WAIT) /* its API answer will find nobody to give it to */
    for (api_wait *aw = w->waits; aw; aw = aw->next)
      if (aw->c == c)
        aw->c = NULL;
  if (u & U_BODY)
    tr_pending_free(tr_pending_take(&w->bodies, c));
  cl_client *cl = conn_client(c);
  const char *transport = cl ? tr_name((tr_kind)cl_transport(cl)) : NULL;
  int stream = cl && cl_session(cl) != NULL; /* an emulation session */
  uint32_t emu_requests = cl ? tr_close_client(w, cl) : 0;
  if (cl) {
    cl_free(cl);
    hf_conn_set_udata(c, (void *)u);
    atomic_fetch_sub(&s->rt_clients, 1);
    atomic_fetch_sub(&s->ws_conns, 1);
  }
  if (u & U_ADMIN_WS)
    adm_ws_closed(s->adm, (size_t)w->idx, c);
  if (u & U_COUNTED)
    atomic_fetch_sub(&s->conns, 1);
  if (u & U_ECHO)
    atomic_fetch_sub(&s->ws_conns, 1);
  if (u & U_IP) {
    uint8_t ip[16];
    size_t n = hf_conn_client_ip(c, ip); /* the address it was counted under */
    ip_add(s, ip, n, -1);
  }
  char id[37];
  hf_conn_id(c, id);
  srv_logline l;
  if (ci->handshake_timeout) {
    MET_INC(MET_HANDSHAKE_TIMEOUTS);
    srv_log_begin(&l, LOG_WARN, "handshake_timeout");
    srv_log_str(&l, "conn_id", id);
    log_remote(&l, c);
    if (ci->tls == 1)
      srv_log_str(&l, "stage", "tls: the TLS handshake did not finish");
    srv_log_int(&l, "timeout_ms", (long long)s->cfg->handshake_timeout_ms);
    srv_log_int(&l, "duration_ms", (long long)ci->duration_ms);
    srv_log_end(&l);
    return;
  }
  if (!ci->upgraded)
    return; /* the response line said everything */
  met_close_inc(ci->code, ci->who == HF_WHO_ABNORMAL ? MET_SIDE_ABNORMAL
                          : ci->who == HF_WHO_CLIENT  ? MET_SIDE_CLIENT
                                                      : MET_SIDE_SERVER);
  if (ci->code == 3008)
    MET_INC(MET_SLOW_DISCONNECT);
  static const char *who[] = {"server", "client", "abnormal"};
  srv_log_begin(&l, ci->who == HF_WHO_ABNORMAL ? LOG_WARN : LOG_INFO, "closed");
  srv_log_str(&l, "conn_id", id);
  srv_log_int(&l, "code", ci->code);
  srv_log_str(&l, "reason", ci->reason);
  srv_log_str(&l, "who", who[ci->who]);
  if (transport)
    srv_log_str(&l, "transport", transport);
  if (stream)
    srv_log_int(&l, "emulation_requests", emu_requests);
  srv_log_int(&l, "duration_ms", (long long)ci->duration_ms);
  srv_log_int(&l, "bytes_in", (long long)ci->bytes_in);
  srv_log_int(&l, "bytes_out", (long long)ci->bytes_out);
  srv_log_int(&l, "msgs_in", (long long)ci->msgs_in);
  srv_log_int(&l, "msgs_out", (long long)ci->msgs_out);
  if (ci->tls)
    srv_log_bool(&l, "tls", 1);
  srv_log_end(&l);
  /* a stream the client gave up on without ever sending a command: its
   * replies probably never reached it (a buffering proxy) */
  if (stream && !emu_requests && ci->who == HF_WHO_CLIENT && ci->duration_ms >= 2000) {
    srv_log_begin(&l, LOG_WARN, "stream_unanswered");
    srv_log_str(&l, "conn_id", id);
    srv_log_str(&l, "transport", transport);
    srv_log_int(&l, "duration_ms", (long long)ci->duration_ms);
    srv_log_str(&l, "hint", "the client closed the stream without one emulation request: "
                            "if most streams end this way, a proxy buffers responses "
                            "(nginx: proxy_buffering off)");
    srv_log_end(&l);
  }
}

static void on_bad_request(hf_conn *c, int status, const char *reason,
                           const char *detail) {
  char id[37];
  hf_conn_id(c, id);
  met_reject_inc(status == 431 ? MET_REJ_HEAD_TOO_LARGE : met_reject_of(reason));
  srv_logline l;
  srv_log_begin(&l, LOG_WARN, "upgrade_rejected");
  srv_log_str(&l, "reason", reason);
  srv_log_int(&l, "status", status);
  srv_log_str(&l, "detail", detail);
  srv_log_str(&l, "conn_id", id);
  log_remote(&l, c);
  srv_log_end(&l);
}

/* Failures below HTTP (TLS, PROXY header): one warn line each, the event
 * named after the reason. */
static void on_transport_error(hf_conn *c, const char *reason, const char *detail) {
  char id[37];
  hf_conn_id(c, id);
  srv_logline l;
  srv_log_begin(&l, LOG_WARN, reason);
  srv_log_str(&l, "conn_id", id);
  log_remote(&l, c);
  srv_log_str(&l, "reason", detail);
  hf_tls *t = hf_conn_tls_session(c);
  if (t && strcmp(reason, "tls_handshake_failed") == 0) {
    srv_log_str(&l, "sni", hf_tls_server_name(t));
    srv_log_str(&l, "openssl", hf_tls_error_reason(t));
  }
  if (strcmp(reason, "plain_http_on_tls_port") == 0)
    srv_log_int(&l, "status", 400);
  MET_INC(strcmp(reason, "tls_handshake_failed") == 0     ? MET_TX_TLS_HANDSHAKE
          : strcmp(reason, "plain_http_on_tls_port") == 0 ? MET_TX_PLAIN_ON_TLS
          : strcmp(reason, "tls_on_plain_port") == 0      ? MET_TX_TLS_ON_PLAIN
                                                          : MET_TX_BAD_PROXY);
  srv_log_end(&l);
}

/* A real-time client whose subscriptions can all recover may shed its
 * queued publications instead of being closed (namespace
 * slow_consumer_policy "recover"). */
static int on_slow(hf_conn *c, size_t queued) {
  cl_client *cl = conn_client(c);
  return cl ? cl_on_slow(cl, queued) : 0;
}

/* A real-time client's deadline (its ping, pong, stale, expiry and
 * subscription due times share the connection's timer). */
static void on_timer(hf_conn *c) {
  cl_client *cl = conn_client(c);
  if (cl)
    cl_on_timer(cl);
}

static const hf_conn_handler handler = {
    .on_request = on_request,
    .on_message = on_message,
    .on_body = on_body,
    .on_bad_request = on_bad_request,
    .on_slow = on_slow,
    .on_stream_end = on_stream_end,
    .on_close = on_close,
    .on_transport_error = on_transport_error,
    .on_timer = on_timer,
};

/* ---- accept ------------------------------------------------------------- */

static size_t sockaddr_ip(const struct sockaddr *sa, uint8_t out[16]) {
  if (sa->sa_family == AF_INET) {
    memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    return 4;
  }
  if (sa->sa_family == AF_INET6) {
    memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    return 16;
  }
  return 0;
}

/* A PROXY-protocol listener reached by a peer that is not a trusted proxy:
 * closed at once (its header would let it claim any address); logged at
 * most once a second per worker. */
static void refuse_untrusted_proxy(worker *w, const struct sockaddr *sa, socklen_t sl) {
  MET_INC(MET_TX_PROXY_UNTRUSTED);
  uint64_t now = hf_loop_now(w->loop);
  if (w->untrusted_logged && now - w->untrusted_logged < 1000)
    return;
  w->untrusted_logged = now;
  char host[INET6_ADDRSTRLEN] = "?", serv[16] = "?";
  getnameinfo(sa, sl, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
  srv_logline l;
  srv_log_begin(&l, LOG_WARN, "proxy_peer_untrusted");
  srv_log_str(&l, "remote", host);
  srv_log_str(&l, "reason", "this listener expects a PROXY protocol header, which only "
                            "peers in http_server.trusted_proxies may send; closed");
  srv_log_end(&l);
}

/* This worker's reference to the current TLS material (renewed after a
 * certificate reload: one atomic load per accept otherwise). */
static hf_tls_server *worker_tls(worker *w) {
  srv_tls *t = w->srv->tls;
  if (!w->tls || srv_tls_generation(t) != w->tls_gen) {
    hf_tls_server_unref(w->tls);
    w->tls = srv_tls_current(t, &w->tls_gen);
  }
  return w->tls;
}

static void on_accept(hf_loop *loop, hf_io *io, uint32_t revents) {
  worker *w = hf_loop_data(loop);
  server *s = w->srv;
  for (int i = 0; i < 64; i++) {
    if (i && hf_loop_bulk_over(loop))
      return; /* the rest next iteration (client.handshake_budget_us) */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(io->fd, (struct sockaddr *)&ss, &sl,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if ((errno == EMFILE || errno == ENFILE) && w->reserve_fd >= 0) {
        /* out of descriptors: accept and drop one so the backlog does not
         * spin the loop, then keep the reserve for next time */
        close(w->reserve_fd);
        int x = accept(io->fd, NULL, NULL);
        if (x >= 0)
          close(x);
        w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        uint64_t now = hf_loop_now(loop);
        if (now - w->emfile_logged > 1000) {
          w->emfile_logged = now;
          srv_logline l;
          srv_log_begin(&l, LOG_ERROR, "accept_failed");
          srv_log_str(&l, "reason", "out of file descriptors (raise ulimit -n)");
          srv_log_end(&l);
        }
      }
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint8_t kind = s->lkind[io - w->lis];
    uint8_t pip[16];
    size_t pn = sockaddr_ip((struct sockaddr *)&ss, pip);
    int trusted = srv_proxies_trusted(s->proxies, pip, pn);
    if ((kind & LK_PROXY) && !srv_proxies_empty(s->proxies) && !trusted) {
      refuse_untrusted_proxy(w, (struct sockaddr *)&ss, sl);
      close(fd);
      continue;
    }
    hf_conn_accept_opts ao = {NULL, (kind & LK_PROXY) != 0};
    if (kind & LK_TLS)
      ao.tls = worker_tls(w);
    hf_conn *c = hf_conn_accept_ex(w->ctx, fd, (struct sockaddr *)&ss, sl, &ao);
    if (!c)
      continue;
    uintptr_t u = U_TAG | U_COUNTED;
    if (kind & LK_INTERNAL)
      u |= U_INTERNAL;
    unsigned long long total = atomic_fetch_add(&s->conns, 1) + 1;
    if (s->cfg->connection_limit && total > s->cfg->connection_limit)
      u |= U_OVER;
    if ((kind & LK_PROXY) || trusted) /* the client is known later */
      u |= U_DEFER_IP;
    else if (s->cfg->connection_limit_per_ip) {
      uint8_t ip[16];
      size_t n = hf_conn_peer_ip(c, ip);
      u |= U_IP;
      if (ip_add(s, ip, n, 1) > s->cfg->connection_limit_per_ip)
        u |= U_OVER;
    }
    if (s->fd_max && total + s->fd_headroom > s->fd_max)
      u |= U_FDS; /* answered 503 while descriptors are left to answer */
    hf_conn_set_udata(c, (void *)u);
  }
}

/* ---- drain -------------------------------------------------------------- */

/* All real-time clients are closed: close the rest (echo) and give the
 * close handshakes shutdown.timeout. */
static void drain_close_rest(worker *w) {
  w->spreading = 0;
  hf_conn_ctx_close_all(w->ctx, HF_CLOSE_GOING_AWAY,
                        "server shutting down, reconnect with backoff");
  w->drain_deadline = hf_loop_now(w->loop) + w->srv->cfg->shutdown_timeout_ms;
}

/* While spreading: close as many clients as the elapsed part of
 * shutdown.spread calls for (rounded at random, so ticks do not all close
 * the same number), in list order. */
static void drain_spread_step(worker *w) {
  uint64_t now = hf_loop_now(w->loop), win = w->srv->cfg->shutdown_spread_ms;
  uint64_t el = now - w->spread_start;
  uint64_t due = w->spread_total;
  if (el < win) {
    w->jitter = w->jitter * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t scaled = w->spread_total * el * 1024u / win; /* due, in 1/1024ths */
    due = (scaled + ((w->jitter >> 33) & 1023u)) / 1024u;
  }
  if (due > w->spread_done)
    w->spread_done += cl_list_disconnect_next(&w->clients, (size_t)(due - w->spread_done),
                                              HF_CLOSE_SHUTDOWN, "shutdown");
  if (!w->clients.cursor)
    drain_close_rest(w);
}

static void drain_tick(hf_loop *loop, hf_timer *t) {
  worker *w = hf_loop_data(loop);
  if (w->spreading) {
    drain_spread_step(w);
  } else if (hf_conn_ctx_count(w->ctx) == 0 || hf_loop_now(loop) >= w->drain_deadline) {
    hf_loop_stop(loop);
    return;
  }
  hf_timer_set(loop, t, 20);
}

/* Stop accepting, then close the real-time clients with 3001 (a reconnect
 * code), at once or spread over shutdown.spread, then everything else. */
static void on_drain(hf_loop *loop, hf_msg *m) {
  worker *w = hf_loop_data(loop);
  if (w->draining)
    return;
  w->draining = 1;
  for (size_t i = 0; i < w->nlis; i++) {
    hf_loop_del(loop, &w->lis[i]);
    close(w->lis[i].fd);
    w->lis[i].fd = -1;
  }
  cl_list_drain_begin(&w->clients);
  w->spread_total = w->clients.count;
  w->spread_done = 0;
  w->spread_start = hf_loop_now(loop);
  w->drain_timer.cb = drain_tick;
  if (w->srv->cfg->shutdown_spread_ms && w->spread_total) {
    w->spreading = 1;
    drain_spread_step(w);
  } else {
    cl_list_disconnect_next(&w->clients, SIZE_MAX, HF_CLOSE_SHUTDOWN, "shutdown");
    drain_close_rest(w);
  }
  hf_timer_set(loop, &w->drain_timer, 0);
}

void srv_drain(void) { kill(getpid(), SIGTERM); }

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sample_queue(void *arg, hf_conn *c) { met_observe_queue(hf_conn_queued(c)); }

/* Every 250 ms: how late this timer fired (the loop was busy that long);
 * every second: the largest of those, and every connection's queue. */
static void met_tick(hf_loop *loop, hf_timer *t) {
  worker *w = (worker *)((char *)t - offsetof(worker, met_timer));
  uint64_t now = mono_us();
  uint64_t lag = now > w->met_due_us ? now - w->met_due_us : 0;
  met_observe_lag(lag);
  if (lag > w->lag_window_us)
    w->lag_window_us = lag;
  if (++w->met_ticks % 4 == 0) {
    atomic_store_explicit(&met_self->lag_max_us, w->lag_window_us, memory_order_relaxed);
    w->lag_window_us = 0;
    if (w->ctx)
      hf_conn_ctx_each(w->ctx, sample_queue, NULL);
  }
  w->met_due_us = now + 250000;
  hf_timer_set(loop, t, 250);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  met_register(w->idx);
  w->met_timer.cb = met_tick;
  w->met_due_us = mono_us() + 250000;
  hf_timer_set(w->loop, &w->met_timer, 250);
  hf_loop_run(w->loop);
  hub_detach(w->hl);
  if (strcmp(w->srv->cfg->engine_type, "redis") == 0)
    eng_redis_detach(w->srv->eng, (size_t)w->idx);
  /* whatever did not finish the close handshake in time is dropped now */
  w->forced = hf_conn_ctx_count(w->ctx);
  hf_conn_ctx_free(w->ctx);
  w->ctx = NULL;
  px_worker_free(w->clients.px); /* answers still in flight find no client */
  w->clients.px = NULL;
  hf_tls_server_unref(w->tls);
  w->tls = NULL;
  return NULL;
}

/* ---- listeners ---------------------------------------------------------- */

static int split_hostport(const char *spec, char *host, size_t hcap,
                          char *port, size_t pcap) {
  const char *colon;
  if (spec[0] == '[') {
    const char *rb = strchr(spec, ']');
    if (!rb || rb[1] != ':')
      return -1;
    snprintf(host, hcap, "%.*s", (int)(rb - spec - 1), spec + 1);
    colon = rb + 1;
  } else {
    colon = strrchr(spec, ':');
    if (!colon)
      return -1;
    snprintf(host, hcap, "%.*s", (int)(colon - spec), spec);
  }
  snprintf(port, pcap, "%s", colon + 1);
  return *port ? 0 : -1;
}

static int bind_one(const struct sockaddr *sa, socklen_t sl, char *err,
                    size_t ecap) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, ecap, "socket: %s", strerror(errno));
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (sa->sa_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, sa, sl) < 0 || listen(fd, 4096) < 0) {
    snprintf(err, ecap, "%s", strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

/* Bind nw sockets per address; the first resolves port 0 for the rest. */
static int open_listeners(server *s, const srv_strlist *addrs) {
  s->naddr = addrs->n;
  s->lfds = calloc(s->naddr * s->nw, sizeof(int));
  if (!s->lfds)
    return -1;
  for (size_t a = 0; a < addrs->n; a++) {
    char host[256], port[32], err[256];
    if (split_hostport(addrs->v[a], host, sizeof host, port, sizeof port) < 0) {
      fprintf(stderr,
              "holdfast: invalid configuration: listen = \"%s\": expected "
              "HOST:PORT, e.g. 127.0.0.1:8000 or [::1]:8000\n",
              addrs->v[a]);
      return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gr = getaddrinfo(*host ? host : NULL, port, &hints, &ai);
    if (gr != 0) {
      fprintf(stderr, "holdfast: listen = \"%s\": cannot resolve: %s\n",
              addrs->v[a], gai_strerror(gr));
      return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = (socklen_t)ai->ai_addrlen;
    memcpy(&ss, ai->ai_addr, sl);
    freeaddrinfo(ai);
    for (size_t i = 0; i < s->nw; i++) {
      int fd = bind_one((struct sockaddr *)&ss, sl, err, sizeof err);
      if (fd < 0) {
        fprintf(stderr, "holdfast: cannot listen on %s: %s\n", addrs->v[a], err);
        return -1;
      }
      s->lfds[a * s->nw + i] = fd;
      if (i == 0) /* learn the real port (for port 0) */
        getsockname(fd, (struct sockaddr *)&ss, &sl);
    }
    char ip[INET6_ADDRSTRLEN], real[300];
    unsigned p;
    if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
      inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
      p = ntohs(s6->sin6_port);
      snprintf(real, sizeof real, "[%s]:%u", ip, p);
    } else {
      struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
      inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
      p = ntohs(s4->sin_port);
      snprintf(real, sizeof real, "%s:%u", ip, p);
    }
    srv_logline l;
    srv_log_begin(&l, LOG_INFO, "listening");
    srv_log_str(&l, "address", real);
    srv_log_bool(&l, "internal", (s->lkind[a] & LK_INTERNAL) != 0);
    srv_log_bool(&l, "tls", (s->lkind[a] & LK_TLS) != 0);
    srv_log_bool(&l, "proxy_protocol", (s->lkind[a] & LK_PROXY) != 0);
    srv_log_int(&l, "port", p);
    srv_log_int(&l, "workers", (long long)s->nw);
    srv_log_str(&l, "echo", s->cfg->echo_enabled ? s->cfg->echo_path : NULL);
    srv_log_str(&l, "health", s->cfg->health_enabled ? s->cfg->health_path : NULL);
    srv_log_int(&l, "pid", getpid());
    srv_log_end(&l);
  }
  return 0;
}

/* ---- real-time layer set-up ----------------------------------------------- */

static void warn_key(const char *key) {
  srv_logline l;
  srv_log_begin(&l, LOG_WARN, "config_warning");
  srv_log_str(&l, "key", key);
  srv_log_str(&l, "message", "option not supported by this holdfast version; ignored");
  srv_log_end(&l);
}

static uint64_t count_clients(void *arg) {
  server *s = arg;
  return atomic_load(&s->rt_clients);
}

static void limits_of(const srv_config *cfg, rl_limits *l);

/* A snapshot of cfg (own: take ownership of it, freed with the snapshot).
 * NULL on OOM. */
static struct live *live_new(const srv_config *cfg, srv_config *own,
                             const hf_deflate_config *dfl) {
  struct live *lv = calloc(1, sizeof *lv);
  if (!lv)
    return NULL;
  lv->own = own;
  lv->echo_pol.allowed_origins = (const char *const *)cfg->allowed_origins.v;
  lv->echo_pol.n_allowed_origins = cfg->allowed_origins.n;
  lv->echo_pol.allow_null_origin = cfg->allow_null_origin;
  lv->echo_pol.allow_missing_origin = cfg->allow_missing_origin;
  lv->echo_pol.allow_same_origin = cfg->allow_same_origin;
  lv->echo_pol.subprotocols = (const char *const *)cfg->echo_subprotocols.v;
  lv->echo_pol.n_subprotocols = cfg->echo_subprotocols.n;
  /* the real-time endpoint speaks JSON (named or nothing offered) and
   * Protobuf; an offer of only other sub-protocols is refused (400 naming
   * these), never accepted without one (docs/protocol.md) */
  static const char *const rt_protocols[] = {"centrifuge-json", "centrifuge-protobuf"};
  lv->ws_pol = lv->echo_pol;
  lv->ws_pol.subprotocols = rt_protocols;
  lv->ws_pol.n_subprotocols = 2;
  lv->ws_pol.refuse_unmatched = 1;
  /* permessage-deflate: which endpoints offer it (the codec settings are
   * fixed at start) */
  lv->echo_pol.deflate = cfg->echo_compression ? dfl : NULL;
  lv->ws_pol.deflate = cfg->compression ? dfl : NULL;
  limits_of(cfg, &lv->limits);
  return lv;
}

static void live_free_all(struct live *lv) {
  while (lv) {
    struct live *o = lv->older;
    if (lv->has_chans)
      chan_config_free(&lv->chans);
    srv_jwt_keys_free(lv->keys);
    if (lv->own) {
      srv_config_free(lv->own);
      free(lv->own);
    }
    free(lv);
    lv = o;
  }
}

/* The containment values of a configuration, as one snapshot. */
static void limits_of(const srv_config *cfg, rl_limits *l) {
  memset(l, 0, sizeof *l);
  l->command = (rl_rate){cfg->rl_command_rate, cfg->rl_command_burst};
  l->bytes = (rl_rate){cfg->rl_bytes_rate, cfg->rl_bytes_burst};
  l->publish = (rl_rate){cfg->rl_publish_rate, 0};
  l->subscribe = (rl_rate){cfg->rl_subscribe_rate, 0};
  l->user = (rl_rate){cfg->rl_user_command_rate, 0};
  l->channel = (rl_rate){cfg->rl_channel_publish_rate, 0};
  l->ip = (rl_rate){cfg->accept_rate_per_ip, cfg->accept_burst_per_ip};
  l->accept = (rl_rate){cfg->accept_rate, cfg->accept_burst};
  l->user_connection_limit = cfg->user_connection_limit;
  l->disconnect_after = (uint32_t)cfg->rl_disconnect_after;
}

/* The real-time policy of cfg into lv: namespaces (checked against the
 * event proxy's endpoints when px is given), token keys, claims and access
 * flags. An error goes to err naming the key (start: with the
 * "invalid configuration" prefix). Returns 0 or -1 (lv keeps what it
 * loaded; live_free_all frees it). */
static int live_realtime(struct live *lv, const srv_config *cfg, const px_config *px,
                         FILE *err) {
  lv->has_chans = 1; /* a half-loaded set is freed too (a failed reload) */
  if (chan_config_load(&lv->chans, cfg->channel_without_ns, cfg->channel_namespaces,
                       cfg->channel_max_length, cfg->insecure, warn_key, err) < 0)
    return -1;
  if (px && px_check_namespaces(px, &lv->chans, err) < 0)
    return -1;
  char kerr[300];
  lv->keys = tk_keys(cfg, kerr, sizeof kerr);
  if (!lv->keys && *kerr) {
    fprintf(err, "holdfast: invalid configuration: %s\n", kerr);
    return -1;
  }
  lv->pol = (cl_policy){&lv->chans,         lv->keys,
                        cfg->token_audience, cfg->token_issuer,
                        cfg->token_user_id_claim, cfg->allow_anonymous,
                        cfg->insecure};
  return 0;
}

static int setup_realtime(server *s) {
  const srv_config *cfg = s->cfg;
  /* namespaces and keys first (no proxy check yet: px needs them) */
  if (live_realtime(s->live, cfg, NULL, stderr) < 0)
    return -1;
  int px_on = px_config_load(&s->px, cfg, &s->live->chans, stderr);
  if (px_on < 0)
    return -1;
  hub_options ho = {{cfg->history_memory_limit, cfg->idempotency_window_ms,
                     (uint32_t)cfg->idempotency_max_keys},
                    1000, 1000};
  s->hub = hub_new(s->nw, cl_hub_callbacks(), &ho);
  if (!s->hub)
    return -1;
  if (strcmp(cfg->engine_type, "redis") == 0) {
    eng_redis_config rc = {(const char *const *)cfg->redis_address.v, cfg->redis_address.n,
                           cfg->redis_user, cfg->redis_password, cfg->redis_client_name,
                           (int)cfg->redis_db, cfg->redis_prefix,
                           (uint32_t)cfg->redis_connect_timeout_ms,
                           (uint32_t)cfg->redis_io_timeout_ms, cfg->redis_presence_ttl_ms,
                           720ull * 3600 * 1000, cfg->idempotency_window_ms,
                           (const char *const *)cfg->redis_sentinel_address.v,
                           cfg->redis_sentinel_address.n, cfg->redis_sentinel_master,
                           cfg->redis_sentinel_user, cfg->redis_sentinel_password,
                           (const char *const *)cfg->redis_cluster_address.v,
                           cfg->redis_cluster_address.n};
    char err[300] = "";
    s->eng = eng_redis_new(&rc, s->hub, s->nw, api_run_ctl, err, sizeof err);
    if (!s->eng) {
      fprintf(stderr, "holdfast: invalid configuration: %s\n", err);
      return -1;
    }
  } else if (!(s->eng = eng_memory_new(s->hub))) {
    return -1;
  }
  cl_config *cc = &s->clcfg;
  cc->eng = s->eng;
  cc->policy = &s->live->pol;
  cc->ping_interval_ms = (uint32_t)cfg->client_ping_ms;
  cc->pong_timeout_ms = (uint32_t)cfg->client_pong_ms;
  cc->expired_close_delay_ms = (uint32_t)cfg->expired_close_delay_ms;
  cc->expired_sub_close_delay_ms = (uint32_t)cfg->expired_sub_close_delay_ms;
  cc->stale_close_delay_ms = (uint32_t)cfg->stale_close_delay_ms;
  cc->channel_limit = (uint32_t)cfg->channel_limit;
  cc->recovery_max_publication_limit = (uint32_t)cfg->recovery_max_publication_limit;
  cc->history_max_publication_limit = (uint32_t)cfg->history_max_publication_limit;
  cc->version = HOLDFAST_VERSION_STR;
  cc->limits = &s->live->limits;
  if (!(cc->rl = rl_shared_new(&cc->limits)))
    return -1;
  cc->px = px_on ? &s->px : NULL;
  cc->max_message = cfg->message_size_limit;
  s->api.h = s->hub;
  s->api.eng = s->eng;
  s->api.chans = &s->live->chans;
  s->api.version = HOLDFAST_VERSION_STR;
  s->api.node_uid = eng_node_id(s->eng);
  if (cfg->node_name && *cfg->node_name) {
    snprintf(s->node_name, sizeof s->node_name, "%s", cfg->node_name);
  } else if (gethostname(s->node_name, sizeof s->node_name - 1) < 0 || !s->node_name[0]) {
    snprintf(s->node_name, sizeof s->node_name, "holdfast");
  }
  s->api.node_name = s->node_name;
  s->api.t_start_ms = s->t_start;
  s->api.num_clients = count_clients;
  s->api.arg = s;
  eng_local loc = {api_node_info, api_local_channels, &s->api};
  eng_set_local(s->eng, &loc);
  return 0;
}

/* ---- process ------------------------------------------------------------ */

/* SIGHUP: reload what can change without a restart. Today: the TLS
 * certificates and keys (live connections keep theirs; a bad file keeps
 * the old material and says why). Main thread. Returns 0 if everything
 * reloaded, -1 if something kept its old state. */
static int g_argc;
static char **g_argv;

void srv_set_reload_args(int argc, char **argv) {
  g_argc = argc;
  g_argv = argv;
}

/* The settings a reload applies (prefixes end with '.'); every other
 * setting keeps its start-up value and a change to it is logged as
 * needing a restart. docs/operations.md lists the same. */
static const char *const live_keys[] = {
    "log.level", "client.allowed_origins", "client.allow_null_origin",
    "client.allow_missing_origin", "client.allow_same_origin", "echo.subprotocols",
    "echo.compression", "websocket.compression", "client.rate_limit.",
    "client.accept_rate", "client.accept_burst", "client.accept_rate_per_ip",
    "client.accept_burst_per_ip", "client.user_connection_limit",
    "channel.without_namespace", "channel.namespaces", "channel.max_length",
    "client.insecure", "client.allow_anonymous_connect_without_token",
    "client.token.hmac_secret_key", "client.token.rsa_public_key",
    "client.token.ecdsa_public_key", "client.token.jwks_file", "client.token.audience",
    "client.token.issuer", "client.token.user_id_claim",
    /* reloaded by srv_tls_reload (files re-read even when unchanged) */
    "http_server.tls.cert_pem_file", "http_server.tls.key_pem_file",
    "http_server.tls.sni"};

static int is_live_key(const char *key) {
  for (size_t i = 0; i < sizeof live_keys / sizeof live_keys[0]; i++) {
    size_t n = strlen(live_keys[i]);
    if (live_keys[i][n - 1] == '.' ? strncmp(key, live_keys[i], n) == 0
                                   : strcmp(key, live_keys[i]) == 0)
      return 1;
  }
  return 0;
}

/* Collects changed keys as a comma-separated list (srv_config_diff). */
typedef struct {
  char buf[600];
  size_t n;
  int live; /* collect live keys (1) or restart-only ones (0) */
  size_t count;
} key_list;

static void collect_key(void *arg, const char *key) {
  key_list *k = arg;
  if (is_live_key(key) != k->live)
    return;
  k->count++;
  int w = snprintf(k->buf + k->n, sizeof k->buf - k->n, "%s%s", k->n ? "," : "", key);
  if (w > 0 && k->n + (size_t)w < sizeof k->buf)
    k->n += (size_t)w;
}

/* Re-read the configuration (file, environment, flags) and publish what
 * can change live (live_keys: log level, origin settings, containment
 * values, channel namespaces and permissions, token keys and claims,
 * anonymous / insecure access). A configuration with an error (also a
 * namespace naming a missing proxy, an unreadable key file) changes
 * nothing and the log says why. Other settings keep their start-up values
 * and a change to one is logged as needing a restart. Main thread.
 * Returns 0 or -1. */
static void recheck_post(server *s);

static int reload_config(server *s) {
  if (!g_argv)
    return 0;
  srv_config *nc = calloc(1, sizeof *nc);
  char *why = NULL;
  size_t whylen = 0;
  FILE *err = open_memstream(&why, &whylen);
  if (!nc || !err) {
    free(nc);
    if (err)
      fclose(err);
    free(why);
    return -1;
  }
  srv_config_init(nc);
  int r = srv_config_load(nc, g_argc, g_argv, err);
  struct live *lv = r == 0 ? live_new(nc, nc, &s->deflate) : NULL;
  if (lv && live_realtime(lv, nc, &s->px, err) < 0) {
    live_free_all(lv); /* frees nc too */
    nc = NULL;
    lv = NULL;
    r = -1;
  }
  fclose(err);
  if (!lv) {
    while (whylen && (why[whylen - 1] == '\n' || why[whylen - 1] == ' '))
      why[--whylen] = 0;
    srv_logline l;
    srv_log_begin(&l, LOG_ERROR, "reload_failed");
    srv_log_str(&l, "reason", whylen ? why : "out of memory");
    srv_log_str(&l, "kept", "the running configuration");
    srv_log_end(&l);
    free(why);
    if (nc) {
      srv_config_free(nc);
      free(nc);
    }
    return -1;
  }
  free(why);
  const struct live *old = live_get(s);
  key_list changed = {.live = 1}, restart = {.live = 0};
  srv_config_diff(old->own ? old->own : s->cfg, nc, collect_key, &changed);
  srv_config_diff(s->cfg, nc, collect_key, &restart);
  lv->older = s->live;
  srv_log_set_level(srv_log_parse_level(nc->log_level));
  __atomic_store_n(&s->live, lv, __ATOMIC_RELEASE);
  rl_limits_publish(&s->clcfg.limits, &lv->limits);
  cl_policy_publish(&s->clcfg, &lv->pol);
  __atomic_store_n(&s->api.chans, &lv->chans, __ATOMIC_RELEASE);
  srv_logline l;
  srv_log_begin(&l, LOG_INFO, "config_reloaded");
  srv_log_str(&l, "log_level", nc->log_level);
  srv_log_int(&l, "allowed_origins", (long long)nc->allowed_origins.n);
  srv_log_bool(&l, "limits_changed",
               memcmp(&old->limits, &lv->limits, sizeof lv->limits) != 0);
  srv_log_int(&l, "namespaces", (long long)lv->chans.n_ns);
  srv_log_bool(&l, "token_keys", lv->keys != NULL);
  srv_log_str(&l, "changed", changed.buf);
  srv_log_end(&l);
  if (restart.count) {
    srv_log_begin(&l, LOG_WARN, "config_restart_needed");
    srv_log_str(&l, "keys", restart.buf);
    srv_log_str(&l, "message", "changed but needs a restart; the running values stay");
    srv_log_end(&l);
  }
  recheck_post(s);
  return 0;
}

/* ---- re-check after a reload ------------------------------------------- */

/* One re-check of every worker's clients after a successful reload: one
 * message per worker inbox; the last worker to finish logs the totals.
 * The main thread owns the job and frees it once every worker is done
 * (next reload) or at exit. */
typedef struct {
  hf_msg m;
  struct recheck_job *job;
  worker *w;
} recheck_msg;

typedef struct recheck_job {
  struct recheck_job *next;
  struct live *lv;    /* the snapshot its reload published */
  atomic_size_t left; /* workers still to run it */
  atomic_ullong checked, subs, conns;
  uint64_t t0_us;
  recheck_msg msg[];
} recheck_job;

static void on_recheck(hf_loop *loop, hf_msg *m) {
  recheck_msg *rm = (recheck_msg *)m;
  recheck_job *j = rm->job;
  cl_recheck_counts n = {0, 0, 0};
  cl_list_recheck(&rm->w->clients, &rm->w->srv->clcfg, &n);
  atomic_fetch_add(&j->checked, n.checked);
  atomic_fetch_add(&j->subs, n.subs_removed);
  atomic_fetch_add(&j->conns, n.conns_closed);
  /* the values are read by the last worker only (acq_rel orders them) */
  if (atomic_fetch_sub_explicit(&j->left, 1, memory_order_acq_rel) != 1)
    return;
  srv_logline l;
  srv_log_begin(&l, LOG_INFO, "reload_recheck");
  srv_log_int(&l, "clients", (long long)atomic_load(&j->checked));
  srv_log_int(&l, "subscriptions_removed", (long long)atomic_load(&j->subs));
  srv_log_int(&l, "connections_closed", (long long)atomic_load(&j->conns));
  srv_log_int(&l, "duration_us", (long long)(mono_us() - j->t0_us));
  srv_log_end(&l);
}

/* Free the jobs every worker has finished (all of them at exit, after the
 * workers stopped: force), and the snapshots older than the newest
 * finished job's: every worker has passed its re-check since that
 * snapshot was published, so none reads an older one. Main thread. */
static void rechecks_free(server *s, int force) {
  for (recheck_job *j = s->rechecks; j && !force; j = j->next) /* newest first */
    if (atomic_load_explicit(&j->left, memory_order_acquire) == 0) {
      live_free_all(j->lv->older);
      j->lv->older = NULL;
      break;
    }
  for (recheck_job **pp = &s->rechecks; *pp;) {
    recheck_job *j = *pp;
    if (force || atomic_load_explicit(&j->left, memory_order_acquire) == 0) {
      *pp = j->next;
      free(j);
    } else {
      pp = &j->next;
    }
  }
}

/* Post a re-check to every worker (the new policy is already published).
 * Main thread. */
static void recheck_post(server *s) {
  rechecks_free(s, 0);
  recheck_job *j = calloc(1, sizeof *j + s->nw * sizeof j->msg[0]);
  if (!j) {
    srv_logline l;
    srv_log_begin(&l, LOG_ERROR, "reload_recheck_failed");
    srv_log_str(&l, "reason", "out of memory");
    srv_log_end(&l);
    return;
  }
  atomic_init(&j->left, s->nw);
  j->lv = s->live;
  j->t0_us = mono_us();
  j->next = s->rechecks;
  s->rechecks = j;
  for (size_t i = 0; i < s->nw; i++) {
    j->msg[i] = (recheck_msg){{NULL, on_recheck, NULL}, j, &s->w[i]};
    hf_loop_post(s->w[i].loop, &j->msg[i].m);
  }
}

static int srv_reload(server *s) {
  srv_logline l;
  srv_log_begin(&l, LOG_INFO, "reload_requested");
  srv_log_str(&l, "signal", "SIGHUP");
  srv_log_bool(&l, "tls", s->tls != NULL);
  srv_log_end(&l);
  int rc = 0;
  if (s->tls && srv_tls_reload(s->tls) < 0)
    rc = -1;
  if (reload_config(s) < 0)
    rc = -1;
  return rc;
}

static void adm_gauges(void *arg, uint64_t *ws, uint64_t *tcp) {
  server *s = arg;
  *ws = atomic_load(&s->ws_conns);
  *tcp = atomic_load(&s->conns);
}

/* The admin drain: the same path as SIGTERM (sigwait in srv_run). */
static void adm_drain(void *arg) { srv_drain(); }

static int setup_admin(server *s) {
  static const char *const any[] = {"*"};
  s->adm_pol.allowed_origins = any; /* the token is the check */
  s->adm_pol.n_allowed_origins = 1;
  s->adm_pol.allow_null_origin = 1;
  s->adm_pol.allow_missing_origin = 1;
  s->w_loops = calloc(s->nw, sizeof *s->w_loops);
  s->w_clients = calloc(s->nw, sizeof *s->w_clients);
  s->w_hubs = calloc(s->nw, sizeof *s->w_hubs);
  if (!s->w_loops || !s->w_clients || !s->w_hubs)
    return -1;
  for (size_t i = 0; i < s->nw; i++) {
    s->w_loops[i] = s->w[i].loop;
    s->w_clients[i] = &s->w[i].clients;
    s->w_hubs[i] = s->w[i].hl;
  }
  adm_env env = {s->cfg, s->nw, s->w_loops, s->w_clients, s->w_hubs, s->node_name,
                 adm_gauges, adm_drain, s};
  s->adm = adm_new(&env);
  return s->adm ? 0 : -1;
}
/* Which send path a worker's flush took (http_server.io_uring_send): said
 * once, by worker 0; a kernel that refuses io_uring is a warning. */
static void log_send_path(const srv_config *cfg, const worker *w) {
  int err = 0;
  if (!cfg->io_uring_send || w->idx != 0)
    return;
  int on = hf_conn_ctx_send_uring(w->ctx, &err);
  srv_logline l;
  srv_log_begin(&l, on ? LOG_INFO : LOG_WARN, on ? "send_path" : "io_uring_unavailable");
  srv_log_str(&l, "path", on ? "io_uring" : "sendmsg");
  if (!on)
    srv_log_str(&l, "error", strerror(-err));
  srv_log_end(&l);
}


int srv_run(const srv_config *cfg) {
  server *s = calloc(1, sizeof *s);
  if (!s)
    return 1;
  s->cfg = cfg;
  s->t_start = mono_ms();
  /* certificates first: a refusal leaves nothing else behind */
  s->proxies = srv_proxies_new(&cfg->trusted_proxies);
  if (!s->proxies || srv_tls_setup(&s->tls, cfg, stderr) < 0) {
    srv_proxies_free(s->proxies);
    free(s);
    return 2;
  }
  /* as many descriptors as the hard limit allows: one per connection */
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    rlim_t was = nofile.rlim_cur;
    nofile.rlim_cur = nofile.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &nofile) == 0) {
      srv_logline l;
      srv_log_begin(&l, LOG_INFO, "fd_limit_raised");
      srv_log_int(&l, "from", (long long)was);
      srv_log_int(&l, "to", (long long)nofile.rlim_max);
      srv_log_end(&l);
    }
  }
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    s->fd_max = (uint64_t)nofile.rlim_cur;
    /* listeners, epoll, eventfds, engine connections, logs: kept free */
    s->fd_headroom = s->fd_max / 50 > 32 ? s->fd_max / 50 : 32;
  }
  {
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    s->start_unix = (double)rt.tv_sec + (double)rt.tv_nsec / 1e9;
  }
  pthread_mutex_init(&s->ip_mu, NULL);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  s->nw = cfg->workers ? cfg->workers : (size_t)(cores > 0 ? cores : 1);
  setup_deflate(s); /* before the policies: they point at s->deflate */
  if (!(s->live = live_new(cfg, NULL, &s->deflate))) {
    srv_tls_free(s->tls);
    srv_proxies_free(s->proxies);
    free(s);
    return 1;
  }
  if (setup_realtime(s) < 0)
    return 2;

  /* SIGTERM/SIGINT/SIGHUP go to the main thread only (sigwait); SIGPIPE
   * never (OpenSSL writes with write(2)). */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  /* listen addresses, the TLS ones, then the internal (API-only) one last */
  char *addrv[130];
  uint8_t kinds[130];
  char defbuf[300], intbuf[300];
  srv_strlist addrs = {addrv, 0};
  if (cfg->listen.n > 64 || cfg->tls_listen.n > 64) {
    fprintf(stderr, "holdfast: invalid configuration: listen, http_server.tls.listen: "
                    "at most 64 addresses each\n");
    return 2;
  }
  uint8_t main_kind = (uint8_t)((cfg->tls_enabled ? LK_TLS : 0) |
                                (cfg->proxy_protocol ? LK_PROXY : 0));
  for (size_t i = 0; i < cfg->listen.n; i++) {
    kinds[addrs.n] = main_kind;
    addrv[addrs.n++] = cfg->listen.v[i];
  }
  if (!addrs.n) {
    snprintf(defbuf, sizeof defbuf, strchr(cfg->http_address, ':') ? "[%s]:%llu" : "%s:%llu",
             cfg->http_address, (unsigned long long)cfg->http_port);
    kinds[addrs.n] = main_kind;
    addrv[addrs.n++] = defbuf;
  }
  for (size_t i = 0; i < cfg->tls_listen.n; i++) {
    kinds[addrs.n] = (uint8_t)(LK_TLS | (cfg->tls_proxy_protocol ? LK_PROXY : 0));
    addrv[addrs.n++] = cfg->tls_listen.v[i];
  }
  if (cfg->internal_port) {
    snprintf(intbuf, sizeof intbuf,
             strchr(cfg->internal_address, ':') ? "[%s]:%llu" : "%s:%llu",
             cfg->internal_address, (unsigned long long)cfg->internal_port);
    kinds[addrs.n] = LK_INTERNAL;
    addrv[addrs.n++] = intbuf;
    s->has_internal = 1;
  }
  s->lkind = kinds; /* lives as long as srv_run */
  /* OpenSSL 3 loads and caches its SHA-1 implementation on first use: do it
   * now, before the first handshake and before anyone measures memory */
  char warm[29];
  hf_handshake_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, warm);

  s->w = calloc(s->nw, sizeof *s->w);
  if (!s->w || open_listeners(s, &addrs) < 0)
    return 2;

  hf_conn_config cc = {
      .max_message = cfg->message_size_limit,
      .max_head = (uint32_t)cfg->max_header_size,
      .max_headers = (uint32_t)cfg->max_headers,
      .max_queue = (uint32_t)cfg->queue_max_size,
      .max_queue_hard = (uint32_t)cfg->queue_hard_limit,
      .slow_grace_ms = (uint32_t)cfg->queue_grace_ms,
      .handshake_timeout_ms = (uint32_t)cfg->handshake_timeout_ms,
      .ping_interval_ms = (uint32_t)cfg->ping_interval_ms,
      .pong_timeout_ms = (uint32_t)cfg->pong_timeout_ms,
      .close_timeout_ms = (uint32_t)cfg->close_timeout_ms,
      .deflate_level = (int)cfg->compression_level,
      .deflate_mem_level = (int)cfg->compression_mem_level,
      .deflate_min_size = (uint32_t)cfg->compression_min_size,
      .send_uring = cfg->io_uring_send,
      .flush_budget = (uint32_t)cfg->flush_budget,
  };
  for (size_t i = 0; i < s->nw; i++) {
    worker *w = &s->w[i];
    w->idx = (int)i;
    w->srv = s;
    /* 512 KiB shared receive buffer per loop; timers tick every 50 ms */
    w->loop = hf_loop_new(50, 512 * 1024);
    w->ctx = w->loop ? hf_conn_ctx_new(w->loop, &cc, &handler) : NULL;
    w->lis = calloc(s->naddr, sizeof *w->lis);
    if (!w->ctx || !w->lis) {
      fprintf(stderr, "holdfast: cannot create event loop: %s\n", strerror(errno));
      return 1;
    }
    hf_loop_set_data(w->loop, w);
    hf_loop_set_bulk_budget(w->loop, (unsigned)cfg->handshake_budget_us);
    log_send_path(cfg, w);
    w->hl = hub_attach(s->hub, i, w->loop);
    if (strcmp(cfg->engine_type, "redis") == 0 && eng_redis_attach(s->eng, i, w->loop, w->hl) < 0) {
      fprintf(stderr, "holdfast: cannot set up the Redis engine: out of memory\n");
      return 1;
    }
    hub_set_data(w->hl, &w->clients);
    w->sessions = tr_sessions_new();
    if (!w->sessions) {
      fprintf(stderr, "holdfast: out of memory\n");
      return 1;
    }
    jw_init(&w->clients.out);
    jw_init(&w->clients.pb);
    w->clients.of_conn = conn_client; /* the clients are walked through w->ctx */
    if (s->clcfg.px && !(w->clients.px = px_worker_new(&s->px, w->loop))) {
      fprintf(stderr, "holdfast: cannot set up the proxy HTTP client (libcurl)\n");
      return 1;
    }
    w->drain_msg.run = on_drain;
    w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    w->jitter = mono_us() ^ ((uint64_t)(i + 1) << 40);
    w->nlis = s->naddr;
    for (size_t a = 0; a < s->naddr; a++) {
      w->lis[a].fd = s->lfds[a * s->nw + i];
      w->lis[a].cb = on_accept;
      w->lis[a].bulk = 1;
      hf_loop_add(w->loop, &w->lis[a], EPOLLIN);
    }
  }
  if (cfg->admin_enabled && setup_admin(s) < 0) {
    fprintf(stderr, "holdfast: cannot set up the admin API: out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < s->nw; i++)
    pthread_create(&s->w[i].th, NULL, worker_main, &s->w[i]);

  srv_tls_check_expiry(s->tls, "start");
  s->expiry_checked = mono_ms();
  int sig = 0;
  for (;;) {
    /* wake up hourly for the daily certificate check */
    struct timespec hour = {3600, 0};
    sig = sigtimedwait(&set, NULL, &hour);
    if (sig == SIGHUP) {
      srv_reload(s);
      continue;
    }
    if (sig < 0) {
      if (mono_ms() - s->expiry_checked >= 24ull * 3600 * 1000) {
        srv_tls_check_expiry(s->tls, "daily");
        s->expiry_checked = mono_ms();
      }
      continue;
    }
    break; /* SIGTERM or SIGINT */
  }
  atomic_store(&s->draining, 1);
  srv_logline l;
  srv_log_begin(&l, LOG_INFO, "shutdown_started");
  srv_log_str(&l, "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  srv_log_int(&l, "connections", (long long)atomic_load(&s->conns));
  srv_log_int(&l, "drain_timeout_ms", (long long)cfg->shutdown_timeout_ms);
  srv_log_int(&l, "spread_ms", (long long)cfg->shutdown_spread_ms);
  srv_log_end(&l);
  for (size_t i = 0; i < s->nw; i++)
    hf_loop_post(s->w[i].loop, &s->w[i].drain_msg);
  for (size_t i = 0; i < s->nw; i++)
    pthread_join(s->w[i].th, NULL);
  size_t forced = 0;
  for (size_t i = 0; i < s->nw; i++)
    forced += s->w[i].forced;
  srv_log_begin(&l, forced ? LOG_WARN : LOG_INFO, "shutdown_complete");
  srv_log_int(&l, "forced_closed", (long long)forced);
  srv_log_int(&l, "uptime_s", (long long)((mono_ms() - s->t_start) / 1000));
  srv_log_end(&l);
  /* the engine first: freeing its connections fails what is still in
   * flight (nobody is left to answer) and takes them off the loops */
  eng_free(s->eng);
  s->eng = NULL;
  for (size_t i = 0; i < s->nw; i++) {
    jw_free(&s->w[i].clients.out);
    jw_free(&s->w[i].clients.pb);
    while (s->w[i].waits) { /* calls the engine never answered */
      api_wait *aw = s->w[i].waits;
      s->w[i].waits = aw->next;
      free(aw);
    }
    hf_loop_free(s->w[i].loop);
    tr_sessions_free(s->w[i].sessions);
    free(s->w[i].lis);
    if (s->w[i].reserve_fd >= 0)
      close(s->w[i].reserve_fd);
  }
  for (size_t b = 0; b < IP_BUCKETS; b++)
    while (s->ip_tab[b]) {
      ip_entry *e = s->ip_tab[b];
      s->ip_tab[b] = e->next;
      free(e);
    }
  adm_free(s->adm);
  free(s->w_loops);
  free(s->w_clients);
  free(s->w_hubs);
  free(s->lfds);
  free(s->w);
  hub_free(s->hub);
  rl_shared_free(s->clcfg.rl);
  rechecks_free(s, 1);
  live_free_all(s->live);
  px_config_free(&s->px);
  srv_tls_free(s->tls);
  srv_proxies_free(s->proxies);
  pthread_mutex_destroy(&s->ip_mu);
  free(s);
  return 0;
}
