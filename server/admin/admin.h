/* SPDX-License-Identifier: MIT */
/* The admin API and the live dashboard (prefix adm_): a login that hands out
 * HMAC-signed session tokens, the connection list with filters and paging,
 * disconnect by connection or user, drain, and the once-a-second snapshot
 * the dashboard receives over its WebSocket. Connections live on worker
 * threads: every question is a survey posted to each worker's inbox, answered
 * by that worker on its own loop and merged on the asking worker's loop. */
#ifndef SRV_ADMIN_H
#define SRV_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "channels/hub.h"
#include "hf/conn.h"
#include "hf/loop.h"
#include "protocol/client.h"
#include "protocol/jsonw.h"

typedef struct adm adm;

/* What the admin module needs from the server. Arrays have nw entries,
 * indexed by worker; they must outlive the adm. */
typedef struct {
  const srv_config *cfg;
  size_t nw;
  hf_loop **loops;
  cl_list **clients;
  hub_local **hubs;
  const char *node_name;
  /* gauges: WebSocket connections and TCP connections (any thread) */
  void (*gauges)(void *arg, uint64_t *ws_conns, uint64_t *tcp_conns);
  /* start the server's drain (as SIGTERM does); any thread */
  void (*drain)(void *arg);
  void *arg;
} adm_env;

/* Methods of POST /admin/api/METHOD, plus the login. */
enum { ADM_LOGIN, ADM_CONNECTIONS, ADM_DISCONNECT, ADM_DRAIN, ADM_NMETHODS };

/* Create (main thread, before the workers run). NULL on OOM. */
adm *adm_new(const adm_env *env);
/* Free, after every worker loop stopped; surveys still in flight (a loop
 * stopped before answering) are freed here. NULL is ignored. */
void adm_free(adm *a);

/* The method id of an /admin/api/ name, or -1 (the names for errors:
 * adm_method_list). */
int adm_method(const char *name, size_t len);
const char *adm_method_list(void);

/* Check a session token (admin.insecure: anything passes). tok may be NULL
 * (none given). Returns 0 if allowed, else 401 (none given) or 403 (wrong
 * or expired), with *reason set to a short snake_case reason. */
int adm_check_token(const adm *a, const char *tok, size_t len, const char **reason);
/* The token of "Authorization: token T" (NULL if the header is missing or
 * has another scheme). */
const char *adm_token_of(const hf_http_request *req, size_t *len);

/* The answer of a call: HTTP status and body (valid during the call). */
typedef void (*adm_done_fn)(void *arg, int status, const char *ctype, const jw_buf *body);

/* Run a call from worker w's loop (body: the JSON request). done(arg, ...)
 * is called exactly once, before adm_call returns or later from w's loop.
 * ADM_LOGIN needs no session; every other method must be checked first. */
void adm_call(adm *a, size_t w, int method, const uint8_t *body, size_t len,
              adm_done_fn done, void *arg);

/* A dashboard WebSocket upgraded on worker w (its loop thread): it gets a
 * snapshot now and every second until adm_ws_closed. Returns 0, or -1 on
 * OOM (the caller closes it). */
int adm_ws_open(adm *a, size_t w, hf_conn *c);
void adm_ws_closed(adm *a, size_t w, hf_conn *c);

/* The dashboard page (embedded at build time). */
const char *adm_page(size_t *len);

#endif
