/* SPDX-License-Identifier: MIT */
/* Backend event proxy over HTTP (prefix px_; not the PROXY protocol of
 * hf/proxy.h): the proxy configuration (Centrifugo v6 keys:
 * client.proxy.*, channel.proxy.*, rpc.*, proxies) and
 * one HTTP/1.1 keep-alive client per worker, libcurl's multi interface
 * driven by the worker's own event loop (socket and timer callbacks: no
 * thread, no blocking call). Every request has a timeout, counts against a
 * per-worker and a per-endpoint bound, and goes through the endpoint's
 * circuit breaker; every failure is logged and counted. */
#ifndef SRV_EVPROXY_H
#define SRV_EVPROXY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "channels/chan.h"
#include "config.h"
#include "hf/http.h"
#include "hf/loop.h"
#include "protocol/jsonw.h"

typedef enum {
  PX_CONNECT,
  PX_REFRESH,
  PX_SUBSCRIBE,
  PX_PUBLISH,
  PX_SUB_REFRESH,
  PX_RPC,
  PX_EVENTS
} px_event;

/* The outcome of a proxy request (also the metrics' result label). */
typedef enum {
  PX_OK,          /* 200 with a JSON object body */
  PX_E_TIMEOUT,   /* no complete answer within the endpoint's timeout */
  PX_E_CONNECT,   /* refused, unreachable, reset, TLS failure */
  PX_E_STATUS,    /* an HTTP status other than 200 */
  PX_E_BODY,      /* not a JSON object */
  PX_E_OVERLOAD,  /* the in-flight bound was reached: not sent */
  PX_E_BREAKER,   /* the endpoint's breaker is open: not sent */
  PX_RESULTS
} px_status;

/* One proxy object (endpoint, timeout, headers). */
typedef struct {
  char *name;     /* a named proxy's name, or the key it came from */
  char *endpoint; /* http:// or https:// URL */
  uint32_t timeout_ms;
  char **http_headers; /* names copied from the client's upgrade request */
  size_t n_http_headers;
  char **static_headers; /* "Name: value" lines */
  size_t n_static;
  bool include_meta; /* include_connection_meta */
  bool binary;       /* binary_encoding: b64data instead of data */
} px_endpoint;

typedef struct {
  char *name;
  int ep; /* endpoint index, -1: not proxied */
} px_rpc_ns;

typedef struct px_config {
  px_endpoint *ep;
  size_t nep;
  int ev_ep[PX_EVENTS]; /* default endpoint per event, -1: none */
  bool connect_enabled, refresh_enabled;
  int rpc_default; /* rpc.without_namespace's endpoint, -1: none */
  px_rpc_ns *rpc_ns;
  size_t n_rpc_ns;
  char *rpc_boundary;
  uint32_t max_in_flight, max_in_flight_endpoint;
  uint32_t breaker_failures, breaker_open_ms;
  uint32_t max_timeout_ms; /* the longest endpoint timeout */
} px_config;

/* Check the namespaces' proxy options against px's endpoints (every
 * enabled event names an existing proxy): 0, or -1 after writing an error
 * naming the key to err. Used again for namespaces loaded by a reload (the
 * endpoints themselves need a restart). Reads only. */
int px_check_namespaces(const px_config *px, const chan_config *chans, FILE *err);

/* Load and check the proxy settings of cfg against the channel namespaces
 * (every enabled namespace must name an existing proxy). Returns 1 when
 * some proxy is configured, 0 when none is (px stays empty), -1 after
 * writing an error that names the key to err. */
int px_config_load(px_config *px, const srv_config *cfg, const chan_config *chans,
                   FILE *err);
void px_config_free(px_config *px);

/* The endpoint of a channel event (PX_SUBSCRIBE, PX_PUBLISH,
 * PX_SUB_REFRESH) in namespace ns, or -1 when that event is not proxied
 * there. */
int px_channel_endpoint(const px_config *px, px_event ev, const chan_ns *ns);
/* The endpoint of RPC method m[0..len), or -1. */
int px_rpc_endpoint(const px_config *px, const char *m, size_t len);

/* The upgrade request's headers any endpoint asks for, as "Name: value\n"
 * lines (malloc'd, NUL-terminated), or NULL when there are none. */
char *px_capture_headers(const px_config *px, const hf_http_request *req);

/* ---- the per-worker client --------------------------------------------- */

typedef struct px_worker px_worker;
typedef struct px_req px_req;

/* A finished request: st PX_OK with body (a JSON object, borrowed for the
 * call), or a failure (body NULL). http_status is 0 when none came. */
typedef struct {
  px_status st;
  long http_status;
  json_t *body;
  uint64_t latency_us;
} px_result;
typedef void (*px_done_fn)(void *arg, const px_result *r);

/* Create the client of a worker on loop (loop thread only from then on).
 * NULL on failure. */
px_worker *px_worker_new(const px_config *px, hf_loop *loop);
/* Stop: requests still in flight are finished with PX_E_CONNECT. */
void px_worker_free(px_worker *w);

/* POST body[0..len) (JSON; copied) to endpoint ep for event ev on behalf of
 * connection conn_id, with the endpoint's headers picked from hdrs (as
 * returned by px_capture_headers; may be NULL). done(arg, r) is called
 * later, on the loop, exactly once; never from inside px_call. Returns 0,
 * or a px_status (PX_E_OVERLOAD, PX_E_BREAKER, PX_E_CONNECT on OOM) with
 * nothing started and the failure counted and logged. */
px_status px_call(px_worker *w, int ep, px_event ev, const char *conn_id,
                  const char *body, size_t len, const char *hdrs, px_done_fn done,
                  void *arg);

/* The event's name ("connect", ...) and a status's ("ok", "timeout", ...). */
const char *px_event_name(px_event ev);
const char *px_status_name(px_status st);

/* Base64 of s[0..n) appended to b as a JSON string (for b64data). */
void px_b64_str(jw_buf *b, const char *s, size_t n);

#endif
