/* SPDX-License-Identifier: MIT */
/* Backend event proxy (see proxy.h): configuration loading, and the
 * per-worker HTTP client: libcurl's multi interface on the worker's epoll
 * loop, with in-flight bounds and a circuit breaker per endpoint. libcurl
 * is used rather than a hand-written client: keep-alive pools, https with
 * certificate verification, chunked bodies and redirects-off are its craft. */
#include "evproxy/evproxy.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>

#include "log.h"
#include "metrics/metrics.h"

_Static_assert(PX_EVENTS == MET_PX_EVENTS, "metrics know every proxy event");
_Static_assert(PX_RESULTS == MET_PX_RESULTS, "metrics know every proxy result");

/* Largest backend answer accepted; more is an invalid answer. */
#define PX_MAX_BODY (4u << 20)

static const char *const event_names[PX_EVENTS] = {"connect", "refresh", "subscribe",
                                                   "publish", "sub_refresh", "rpc"};
static const char *const status_names[PX_RESULTS] = {
    "ok", "timeout", "connect_error", "http_status", "bad_response", "overload", "breaker_open"};

const char *px_event_name(px_event ev) { return event_names[ev]; }
const char *px_status_name(px_status st) { return status_names[st]; }

/* ---- configuration ------------------------------------------------------ */

static int cfg_error(FILE *err, const char *key, const char *what) {
  fprintf(err, "holdfast: invalid configuration: %s: %s\n", key, what);
  return -1;
}

static int valid_name(const char *s) {
  if (strlen(s) < 2)
    return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
      return 0;
  return 1;
}

/* A header name or value that cannot smuggle another header line. */
static int header_safe(const char *s) {
  for (; *s; s++)
    if (*s == '\r' || *s == '\n')
      return 0;
  return 1;
}

/* Parse one proxy object into e (named: it came from `proxies`). */
static int load_endpoint(px_endpoint *e, json_t *o, const char *key, FILE *err) {
  if (!json_is_object(o))
    return cfg_error(err, key, "expected a proxy object {\"endpoint\":\"http://...\",...}");
  json_t *ep = json_object_get(o, "endpoint");
  if (!json_is_string(ep) || (strncmp(json_string_value(ep), "http://", 7) != 0 &&
                              strncmp(json_string_value(ep), "https://", 8) != 0)) {
    if (json_is_string(ep) && strncmp(json_string_value(ep), "grpc://", 7) == 0)
      return cfg_error(err, key, "endpoint: grpc:// proxies are not supported by this "
                                 "holdfast version; use an http:// or https:// endpoint");
    return cfg_error(err, key, "endpoint: expected an http:// or https:// URL");
  }
  e->endpoint = strdup(json_string_value(ep));
  e->timeout_ms = 1000;
  json_t *t = json_object_get(o, "timeout");
  if (t) {
    uint64_t ms;
    if (!json_is_string(t) || srv_config_parse_duration(json_string_value(t), &ms) < 0 ||
        ms < 1 || ms > 600000)
      return cfg_error(err, key, "timeout: expected a duration from 1ms to 10m like \"1s\"");
    e->timeout_ms = (uint32_t)ms;
  }
  json_t *hh = json_object_get(o, "http_headers");
  if (hh) {
    if (!json_is_array(hh))
      return cfg_error(err, key, "http_headers: expected a list of header names");
    e->http_headers = calloc(json_array_size(hh) + 1, sizeof *e->http_headers);
    size_t i;
    json_t *v;
    json_array_foreach(hh, i, v) {
      if (!json_is_string(v) || !json_string_length(v) || !header_safe(json_string_value(v)) ||
          strchr(json_string_value(v), ':'))
        return cfg_error(err, key, "http_headers: expected header names");
      e->http_headers[e->n_http_headers++] = strdup(json_string_value(v));
    }
  }
  json_t *sh = json_object_get(json_object_get(o, "http"), "static_headers");
  if (sh) {
    if (!json_is_object(sh))
      return cfg_error(err, key, "http.static_headers: expected {\"Name\":\"value\"}");
    e->static_headers = calloc(json_object_size(sh) + 1, sizeof *e->static_headers);
    const char *k;
    json_t *v;
    json_object_foreach(sh, k, v) {
      if (!json_is_string(v) || !*k || strchr(k, ':') || !header_safe(k) ||
          !header_safe(json_string_value(v)))
        return cfg_error(err, key, "http.static_headers: expected {\"Name\":\"value\"}");
      size_t n = strlen(k) + json_string_length(v) + 3;
      char *line = malloc(n);
      if (line)
        snprintf(line, n, "%s: %s", k, json_string_value(v));
      e->static_headers[e->n_static++] = line;
    }
  }
  e->include_meta = json_is_true(json_object_get(o, "include_connection_meta"));

  e->binary = json_is_true(json_object_get(o, "binary_encoding"));
  if (json_object_get(o, "grpc_metadata") || json_object_get(o, "grpc"))
    srv_config_warn_unsupported(key); /* gRPC options of an HTTP proxy: ignored */
  return e->endpoint ? 0 : -1;
}

static int add_endpoint(px_config *px, json_t *o, const char *name, FILE *err) {
  px_endpoint *ne = realloc(px->ep, (px->nep + 1) * sizeof *ne);
  if (!ne)
    return -1;
  px->ep = ne;
  px_endpoint *e = &px->ep[px->nep++];
  memset(e, 0, sizeof *e);
  e->name = strdup(name);
  if (!e->name || load_endpoint(e, o, name, err) < 0)
    return -1;
  return (int)px->nep - 1;
}

static int find_named(const px_config *px, const char *name) {
  for (size_t i = 0; i < px->nep; i++)
    if (strcmp(px->ep[i].name, name) == 0)
      return (int)i;
  return -1;
}

/* The endpoint a namespace option names: NULL/"default" is the event's
 * default one. -1 when there is none. */
static int named_or_default(const px_config *px, px_event ev, const char *name) {
  if (!name || !*name || strcmp(name, "default") == 0)
    return px->ev_ep[ev];
  return find_named(px, name);
}

static int check_ns_proxy(const px_config *px, const chan_ns *ns, px_event ev, bool on,
                          const char *name, FILE *err) {
  if (!on)
    return 0;
  if (named_or_default(px, ev, name) >= 0)
    return 0;
  char key[200];
  snprintf(key, sizeof key, "channel.%s%s%s.%s_proxy_enabled",
           *ns->name ? "namespaces[" : "without_namespace", ns->name, *ns->name ? "]" : "",
           event_names[ev]);
  char what[300];
  if (!name || !*name || strcmp(name, "default") == 0)
    snprintf(what, sizeof what, "is true but channel.proxy.%s has no endpoint",
             event_names[ev]);
  else
    snprintf(what, sizeof what, "names proxy \"%s\", which is not in proxies", name);
  return cfg_error(err, key, what);
}

/* rpc.without_namespace / an rpc.namespaces entry: its endpoint or -1. */
static int rpc_ns_endpoint(const px_config *px, json_t *o, const char *key, FILE *err,
                           int *out) {
  *out = -1;
  if (!json_is_true(json_object_get(o, "proxy_enabled")))
    return 0;
  json_t *n = json_object_get(o, "proxy_name");
  const char *name = json_is_string(n) ? json_string_value(n) : NULL;
  *out = named_or_default(px, PX_RPC, name);
  if (*out < 0)
    return cfg_error(err, key, name && strcmp(name, "default") != 0
                                   ? "proxy_name names a proxy that is not in proxies"
                                   : "proxy_enabled is true but rpc.proxy has no endpoint");
  return 0;
}

int px_check_namespaces(const px_config *px, const chan_config *chans, FILE *err) {
  for (size_t n = 0; n < 1 + chans->n_ns; n++) {
    const chan_ns *ns = n ? &chans->ns[n - 1] : &chans->without_ns;
    if (check_ns_proxy(px, ns, PX_SUBSCRIBE, ns->subscribe_proxy_enabled,
                       ns->subscribe_proxy_name, err) < 0 ||
        check_ns_proxy(px, ns, PX_PUBLISH, ns->publish_proxy_enabled,
                       ns->publish_proxy_name, err) < 0 ||
        check_ns_proxy(px, ns, PX_SUB_REFRESH, ns->sub_refresh_proxy_enabled,
                       ns->sub_refresh_proxy_name, err) < 0)
      return -1;
  }
  return 0;
}

int px_config_load(px_config *px, const srv_config *cfg, const chan_config *chans,
                   FILE *err) {
  memset(px, 0, sizeof *px);
  for (int i = 0; i < PX_EVENTS; i++)
    px->ev_ep[i] = -1;
  px->rpc_default = -1;
  px->max_in_flight = (uint32_t)cfg->proxy_max_in_flight;
  px->max_in_flight_endpoint = (uint32_t)cfg->proxy_max_in_flight_endpoint;
  px->breaker_failures = (uint32_t)cfg->proxy_breaker_failures;
  px->breaker_open_ms = (uint32_t)cfg->proxy_breaker_open_ms;
  px->rpc_boundary = strdup(cfg->rpc_ns_boundary && *cfg->rpc_ns_boundary
                                ? cfg->rpc_ns_boundary : ":");
  if (!px->rpc_boundary)
    return -1;
  if (cfg->proxies && !json_is_array(cfg->proxies))
    return cfg_error(err, "proxies", "expected a list of named proxy objects");
  size_t i;
  json_t *v;
  json_array_foreach(cfg->proxies, i, v) {
    json_t *n = json_object_get(v, "name");
    if (!json_is_string(n) || !valid_name(json_string_value(n)) ||
        strcmp(json_string_value(n), "default") == 0)
      return cfg_error(err, "proxies", "every proxy needs a \"name\" of 2 or more "
                                       "characters [A-Za-z0-9_.-] (not \"default\")");
    if (find_named(px, json_string_value(n)) >= 0) {
      char what[200];
      snprintf(what, sizeof what, "proxy \"%s\" is defined twice", json_string_value(n));
      return cfg_error(err, "proxies", what);
    }
    if (add_endpoint(px, v, json_string_value(n), err) < 0)
      return -1;
  }
  struct {
    json_t *o;
    px_event ev;
    const char *key;
    int has_enabled;
  } defs[] = {{cfg->proxy_connect, PX_CONNECT, "client.proxy.connect", 1},
              {cfg->proxy_refresh, PX_REFRESH, "client.proxy.refresh", 1},
              {cfg->proxy_subscribe, PX_SUBSCRIBE, "channel.proxy.subscribe", 0},
              {cfg->proxy_publish, PX_PUBLISH, "channel.proxy.publish", 0},
              {cfg->proxy_sub_refresh, PX_SUB_REFRESH, "channel.proxy.sub_refresh", 0},
              {cfg->proxy_rpc, PX_RPC, "rpc.proxy", 0}};
  for (size_t d = 0; d < sizeof defs / sizeof defs[0]; d++) {
    json_t *o = defs[d].o;
    if (!o || (json_is_object(o) && !json_object_size(o)))
      continue;
    if (!json_is_object(o))
      return cfg_error(err, defs[d].key, "expected a proxy object");
    if (defs[d].has_enabled) {
      json_t *en = json_object_get(o, "enabled");
      if (en && !json_is_boolean(en))
        return cfg_error(err, defs[d].key, "enabled: expected true or false");
      if (!json_is_true(en))
        continue; /* configured but off, as in Centrifugo */
    }
    if (!json_object_get(o, "endpoint") && !defs[d].has_enabled)
      continue;
    int idx = add_endpoint(px, o, defs[d].key, err);
    if (idx < 0)
      return -1;
    px->ev_ep[defs[d].ev] = idx;
  }
  for (size_t n = 0; n < px->nep; n++)
    if (px->ep[n].timeout_ms > px->max_timeout_ms)
      px->max_timeout_ms = px->ep[n].timeout_ms;
  px->connect_enabled = px->ev_ep[PX_CONNECT] >= 0;
  px->refresh_enabled = px->ev_ep[PX_REFRESH] >= 0;
  /* channel namespaces */
  if (px_check_namespaces(px, chans, err) < 0)
    return -1;
  /* RPC namespaces */
  if (cfg->rpc_without_ns && !json_is_object(cfg->rpc_without_ns))
    return cfg_error(err, "rpc.without_namespace", "expected an object");
  if (rpc_ns_endpoint(px, cfg->rpc_without_ns, "rpc.without_namespace", err,
                      &px->rpc_default) < 0)
    return -1;
  if (cfg->rpc_namespaces && !json_is_array(cfg->rpc_namespaces))
    return cfg_error(err, "rpc.namespaces", "expected a list of {\"name\":...} objects");
  px->rpc_ns = calloc(json_array_size(cfg->rpc_namespaces) + 1, sizeof *px->rpc_ns);
  if (!px->rpc_ns)
    return -1;
  json_array_foreach(cfg->rpc_namespaces, i, v) {
    json_t *n = json_object_get(v, "name");
    if (!json_is_object(v) || !json_is_string(n) || !valid_name(json_string_value(n)))
      return cfg_error(err, "rpc.namespaces", "every namespace needs a \"name\" of 2 or "
                                              "more characters [A-Za-z0-9_.-]");
    char key[200];
    snprintf(key, sizeof key, "rpc.namespaces[%s]", json_string_value(n));
    px_rpc_ns *r = &px->rpc_ns[px->n_rpc_ns++];
    r->name = strdup(json_string_value(n));
    if (!r->name || rpc_ns_endpoint(px, v, key, err, &r->ep) < 0)
      return -1;
  }
  return px->nep > 0;
}

void px_config_free(px_config *px) {
  for (size_t i = 0; i < px->nep; i++) {
    px_endpoint *e = &px->ep[i];
    free(e->name);
    free(e->endpoint);
    for (size_t j = 0; j < e->n_http_headers; j++)
      free(e->http_headers[j]);
    free(e->http_headers);
    for (size_t j = 0; j < e->n_static; j++)
      free(e->static_headers[j]);
    free(e->static_headers);
  }
  free(px->ep);
  for (size_t i = 0; i < px->n_rpc_ns; i++)
    free(px->rpc_ns[i].name);
  free(px->rpc_ns);
  free(px->rpc_boundary);
  memset(px, 0, sizeof *px);
}

int px_channel_endpoint(const px_config *px, px_event ev, const chan_ns *ns) {
  if (!px)
    return -1;
  switch (ev) {
  case PX_SUBSCRIBE:
    return ns->subscribe_proxy_enabled ? named_or_default(px, ev, ns->subscribe_proxy_name)
                                       : -1;
  case PX_PUBLISH:
    return ns->publish_proxy_enabled ? named_or_default(px, ev, ns->publish_proxy_name) : -1;
  case PX_SUB_REFRESH:
    return ns->sub_refresh_proxy_enabled
               ? named_or_default(px, ev, ns->sub_refresh_proxy_name)
               : -1;
  default:
    return -1;
  }
}

int px_rpc_endpoint(const px_config *px, const char *m, size_t len) {
  if (!px)
    return -1;
  size_t bl = strlen(px->rpc_boundary);
  const char *b = bl ? memmem(m, len, px->rpc_boundary, bl) : NULL;
  if (!b)
    return px->rpc_default;
  size_t nl = (size_t)(b - m);
  for (size_t i = 0; i < px->n_rpc_ns; i++)
    if (strlen(px->rpc_ns[i].name) == nl && memcmp(px->rpc_ns[i].name, m, nl) == 0)
      return px->rpc_ns[i].ep;
  return -1; /* an unknown RPC namespace is not proxied */
}

static int wanted(const px_endpoint *e, const char *name, size_t n) {
  for (size_t i = 0; i < e->n_http_headers; i++)
    if (strlen(e->http_headers[i]) == n && strncasecmp(e->http_headers[i], name, n) == 0)
      return 1;
  return 0;
}

char *px_capture_headers(const px_config *px, const hf_http_request *req) {
  if (!px)
    return NULL;
  jw_buf b;
  jw_init(&b);
  for (size_t h = 0; h < req->num_headers; h++) {
    const hf_http_header *hd = &req->headers[h];
    int any = 0;
    for (size_t i = 0; i < px->nep && !any; i++)
      any = wanted(&px->ep[i], hd->name, hd->name_len);
    if (!any || memchr(hd->value, '\n', hd->value_len) || memchr(hd->value, '\r', hd->value_len))
      continue;
    jw_raw(&b, hd->name, hd->name_len);
    jw_raw(&b, ": ", 2);
    jw_raw(&b, hd->value, hd->value_len);
    jw_char(&b, '\n');
  }
  if (!b.len || !jw_ok(&b)) {
    jw_free(&b);
    return NULL;
  }
  jw_char(&b, 0);
  if (!jw_ok(&b)) {
    jw_free(&b);
    return NULL;
  }
  return b.p;
}

void px_b64_str(jw_buf *b, const char *s, size_t n) {
  size_t cap = 4 * ((n + 2) / 3) + 1;
  char stackbuf[1024];
  char *out = cap <= sizeof stackbuf ? stackbuf : malloc(cap);
  if (!out) {
    jw_cstr(b, "");
    return;
  }
  int m = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
  jw_str(b, out, m > 0 ? (size_t)m : 0);
  if (out != stackbuf)
    free(out);
}

/* ---- the per-worker client ---------------------------------------------- */

enum { BR_CLOSED, BR_OPEN, BR_HALF_OPEN };

typedef struct {
  uint32_t inflight;
  uint32_t fails; /* consecutive */
  uint8_t state;
  uint8_t probing;     /* a half-open probe is in flight */
  uint64_t open_until; /* loop ms */
} px_ep_state;

/* An fd libcurl asked us to watch. */
typedef struct {
  hf_io io;
  px_worker *w;
} px_sock;

struct px_req {
  px_req *next, *prev;
  px_worker *w;
  CURL *easy;
  struct curl_slist *hdrs;
  int ep;
  px_event ev;
  uint8_t probe;
  char conn_id[37];
  uint64_t t0_us;
  jw_buf body;
  px_done_fn done;
  void *arg;
};

struct px_worker {
  const px_config *cfg;
  hf_loop *loop;
  CURLM *multi;
  hf_timer timer;
  hf_deferred soon; /* curl asked for a timeout of 0 */
  px_ep_state *eps;
  uint32_t inflight;
  px_req *reqs;
  CURL **idle; /* easy handles kept for reuse */
  size_t nidle;
};

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void check_done(px_worker *w);

static void on_sock(hf_loop *loop, hf_io *io, uint32_t revents) {
  px_sock *s = (px_sock *)io;
  px_worker *w = s->w;
  int flags = 0, running;
  if (revents & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
    flags |= CURL_CSELECT_IN;
  if (revents & EPOLLOUT)
    flags |= CURL_CSELECT_OUT;
  if (revents & EPOLLERR)
    flags |= CURL_CSELECT_ERR;
  curl_multi_socket_action(w->multi, io->fd, flags, &running);
  check_done(w);
}

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
  px_worker *w = userp;
  px_sock *s = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      hf_loop_del(w->loop, &s->io);
      curl_multi_assign(w->multi, fd, NULL);
      free(s);
    }
    return 0;
  }
  uint32_t ev = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s)
      return -1;
    s->w = w;
    s->io.fd = fd;
    s->io.cb = on_sock;
    if (hf_loop_add(w->loop, &s->io, ev) < 0) {
      free(s);
      return -1;
    }
    curl_multi_assign(w->multi, fd, s);
    return 0;
  }
  hf_loop_mod(w->loop, &s->io, ev);
  return 0;
}

static void on_timeout(px_worker *w) {
  int running;
  curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(w);
}

static void on_timer(hf_loop *loop, hf_timer *t) {
  on_timeout((px_worker *)((char *)t - offsetof(px_worker, timer)));
}

static void on_soon(hf_loop *loop, hf_deferred *d) {
  on_timeout((px_worker *)((char *)d - offsetof(px_worker, soon)));
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp) {
  px_worker *w = userp;
  if (timeout_ms < 0) {
    hf_timer_cancel(w->loop, &w->timer);
  } else if (timeout_ms == 0) {
    hf_timer_cancel(w->loop, &w->timer);
    hf_loop_defer(w->loop, &w->soon); /* the timer wheel ticks too coarsely */
  } else {
    hf_timer_set(w->loop, &w->timer, (uint64_t)timeout_ms);
  }
  return 0;
}

px_worker *px_worker_new(const px_config *px, hf_loop *loop) {
  static int global_done;
  if (!global_done) { /* once, before the worker threads start */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      return NULL;
    global_done = 1;
  }
  px_worker *w = calloc(1, sizeof *w);
  if (!w)
    return NULL;
  w->cfg = px;
  w->loop = loop;
  w->eps = calloc(px->nep ? px->nep : 1, sizeof *w->eps);
  w->idle = calloc(64, sizeof *w->idle);
  w->multi = curl_multi_init();
  if (!w->eps || !w->idle || !w->multi) {
    px_worker_free(w);
    return NULL;
  }
  w->timer.cb = on_timer;
  w->soon.cb = on_soon;
  curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
  curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
  curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
  /* keep-alive pool: room for every connection the bounds allow */
  curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS,
                    (long)(px->max_in_flight_endpoint < 1024 ? px->max_in_flight_endpoint : 1024));
  return w;
}

static void finish(px_worker *w, px_req *r, px_status st, long http, json_t *body);

void px_worker_free(px_worker *w) {
  if (!w)
    return;
  while (w->reqs) /* nobody will answer them now */
    finish(w, w->reqs, PX_E_CONNECT, 0, NULL);
  for (size_t i = 0; i < w->nidle; i++)
    curl_easy_cleanup(w->idle[i]);
  if (w->multi)
    curl_multi_cleanup(w->multi);
  if (w->loop)
    hf_timer_cancel(w->loop, &w->timer);
  free(w->idle);
  free(w->eps);
  free(w);
}

static size_t on_data(char *p, size_t size, size_t n, void *arg) {
  px_req *r = arg;
  size_t len = size * n;
  if (r->body.len + len > PX_MAX_BODY)
    return 0; /* aborts: an answer this large is not one we expect */
  jw_raw(&r->body, p, len);
  return jw_ok(&r->body) ? len : 0;
}

static void log_failure(px_worker *w, const px_req *r, px_status st, long http,
                        uint64_t lat_us, const char *detail) {
  srv_logline l;
  srv_log_begin(&l, LOG_WARN, "proxy_failed");
  srv_log_str(&l, "conn_id", r->conn_id);
  srv_log_str(&l, "proxy_event", event_names[r->ev]);
  srv_log_str(&l, "endpoint", w->cfg->ep[r->ep].endpoint);
  srv_log_str(&l, "proxy", w->cfg->ep[r->ep].name);
  srv_log_str(&l, "result", status_names[st]);
  srv_log_int(&l, "status", http);
  srv_log_int(&l, "latency_ms", (long long)(lat_us / 1000));
  if (detail && *detail)
    srv_log_str(&l, "error", detail);
  srv_log_end(&l);
}

static void breaker_result(px_worker *w, px_req *r, int failed) {
  px_ep_state *e = &w->eps[r->ep];
  uint32_t n = w->cfg->breaker_failures;
  if (r->probe)
    e->probing = 0;
  if (!failed) {
    if (e->state != BR_CLOSED) {
      met_proxy_breaker(-1);
      srv_logline l;
      srv_log_begin(&l, LOG_INFO, "proxy_breaker_closed");
      srv_log_str(&l, "endpoint", w->cfg->ep[r->ep].endpoint);
      srv_log_end(&l);
    }
    e->state = BR_CLOSED;
    e->fails = 0;
    return;
  }
  e->fails++;
  if (!n)
    return;
  if (e->state == BR_HALF_OPEN || (e->state == BR_CLOSED && e->fails >= n)) {
    if (e->state == BR_CLOSED) {
      met_proxy_breaker(+1);
      srv_logline l;
      srv_log_begin(&l, LOG_WARN, "proxy_breaker_open");
      srv_log_str(&l, "endpoint", w->cfg->ep[r->ep].endpoint);
      srv_log_int(&l, "failures", e->fails);
      srv_log_int(&l, "open_ms", w->cfg->breaker_open_ms);
      srv_log_end(&l);
    }
    e->state = BR_OPEN;
    e->open_until = hf_loop_now(w->loop) + w->cfg->breaker_open_ms;
  }
}

/* Complete r: count, log, call back, recycle its handle. */
static void finish(px_worker *w, px_req *r, px_status st, long http, json_t *body) {
  uint64_t lat = now_us() - r->t0_us;
  if (r->prev)
    r->prev->next = r->next;
  else
    w->reqs = r->next;
  if (r->next)
    r->next->prev = r->prev;
  w->inflight--;
  w->eps[r->ep].inflight--;
  curl_multi_remove_handle(w->multi, r->easy);
  curl_slist_free_all(r->hdrs);
  if (w->nidle < 64) {
    curl_easy_reset(r->easy);
    w->idle[w->nidle++] = r->easy;
  } else {
    curl_easy_cleanup(r->easy);
  }
  met_proxy_request(r->ev, st);
  met_observe_proxy(r->ev, lat);
  breaker_result(w, r, st != PX_OK && !(st == PX_E_STATUS && http < 500));
  px_result res = {st, http, body, lat};
  r->done(r->arg, &res);
  jw_free(&r->body);
  free(r);
}

static void check_done(px_worker *w) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(w->multi, &left))) {
    if (m->msg != CURLMSG_DONE)
      continue;
    px_req *r = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    CURLcode rc = m->data.result;
    long http = 0;
    curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &http);
    uint64_t lat = now_us() - r->t0_us;
    px_status st = PX_OK;
    json_t *body = NULL;
    char detail[160] = "";
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      st = PX_E_TIMEOUT;
    } else if (rc == CURLE_WRITE_ERROR) {
      st = PX_E_BODY;
      snprintf(detail, sizeof detail, "answer larger than %u bytes", PX_MAX_BODY);
    } else if (rc != CURLE_OK) {
      st = PX_E_CONNECT;
      snprintf(detail, sizeof detail, "%s", curl_easy_strerror(rc));
    } else if (http != 200) {
      st = PX_E_STATUS;
    } else {
      json_error_t je;
      body = json_loadb(r->body.p ? r->body.p : "", r->body.len, 0, &je);
      if (!json_is_object(body)) {
        st = PX_E_BODY;
        snprintf(detail, sizeof detail, "not a JSON object: %.100s", body ? "other JSON" : je.text);
        json_decref(body);
        body = NULL;
      }
    }
    if (st != PX_OK)
      log_failure(w, r, st, http, lat, detail);
    finish(w, r, st, http, body);
    json_decref(body);
  }
}

/* Does the captured header block hold a header called name[0..n)? */
static int sent_by_client(const char *hdrs, const char *name, size_t n) {
  for (const char *p = hdrs; p && *p;) {
    const char *nl = strchr(p, '\n');
    if ((size_t)(nl - p) > n && p[n] == ':' && strncasecmp(p, name, n) == 0)
      return 1;
    p = nl + 1;
  }
  return 0;
}

px_status px_call(px_worker *w, int ep, px_event ev, const char *conn_id,
                  const char *body, size_t len, const char *hdrs, px_done_fn done,
                  void *arg) {
  const px_endpoint *e = &w->cfg->ep[ep];
  px_ep_state *es = &w->eps[ep];
  px_req tmp = {.w = w, .ep = ep, .ev = ev};
  snprintf(tmp.conn_id, sizeof tmp.conn_id, "%s", conn_id ? conn_id : "");
  px_status refuse = PX_OK;
  if (w->inflight >= w->cfg->max_in_flight || es->inflight >= w->cfg->max_in_flight_endpoint) {
    refuse = PX_E_OVERLOAD;
  } else if (es->state == BR_OPEN) {
    if (hf_loop_now(w->loop) < es->open_until)
      refuse = PX_E_BREAKER;
    else
      es->state = BR_HALF_OPEN; /* this request is the probe */
  } else if (es->state == BR_HALF_OPEN && es->probing) {
    refuse = PX_E_BREAKER;
  }
  if (refuse) {
    met_proxy_request(ev, refuse);
    log_failure(w, &tmp, refuse, 0, 0,
                refuse == PX_E_OVERLOAD ? "too many proxy requests in flight"
                                        : "circuit breaker open: not sent");
    return refuse;
  }
  px_req *r = calloc(1, sizeof *r);
  CURL *easy = w->nidle ? w->idle[--w->nidle] : curl_easy_init();
  if (!r || !easy) {
    free(r);
    if (easy)
      curl_easy_cleanup(easy);
    met_proxy_request(ev, PX_E_CONNECT);
    log_failure(w, &tmp, PX_E_CONNECT, 0, 0, "out of memory");
    return PX_E_CONNECT;
  }
  *r = tmp;
  r->easy = easy;
  r->done = done;
  r->arg = arg;
  r->t0_us = now_us();
  jw_init(&r->body);
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
  /* the client's headers the endpoint asks for; a static header of the
   * same name gives way to the client's (as in Centrifugo) */
  for (const char *p = hdrs; p && *p;) {
    const char *nl = strchr(p, '\n');
    const char *colon = memchr(p, ':', (size_t)(nl - p));
    if (colon && wanted(e, p, (size_t)(colon - p))) {
      char line[8192];
      size_t n = (size_t)(nl - p) < sizeof line - 1 ? (size_t)(nl - p) : sizeof line - 1;
      memcpy(line, p, n);
      line[n] = 0;
      h = curl_slist_append(h, line);
    }
    p = nl + 1;
  }
  for (size_t i = 0; i < e->n_static; i++) {
    const char *sh = e->static_headers[i];
    size_t n = (size_t)(strchr(sh, ':') - sh);
    if (!(wanted(e, sh, n) && sent_by_client(hdrs, sh, n)))
      h = curl_slist_append(h, sh);
  }
  r->hdrs = h;
  curl_easy_setopt(easy, CURLOPT_URL, e->endpoint);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, r);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)len);
  curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "holdfast-proxy");
  curl_easy_setopt(easy, CURLOPT_PROXY, ""); /* never http_proxy & co. from the environment */
  if (!h || curl_multi_add_handle(w->multi, easy) != CURLM_OK) {
    curl_slist_free_all(h);
    curl_easy_cleanup(easy);
    free(r);
    met_proxy_request(ev, PX_E_CONNECT);
    log_failure(w, &tmp, PX_E_CONNECT, 0, 0, "cannot start the request");
    return PX_E_CONNECT;
  }
  r->probe = es->state == BR_HALF_OPEN;
  if (r->probe)
    es->probing = 1;
  r->next = w->reqs;
  if (w->reqs)
    w->reqs->prev = r;
  w->reqs = r;
  w->inflight++;
  es->inflight++;
  return PX_OK;
}
