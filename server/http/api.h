/* SPDX-License-Identifier: MIT */
/* The server HTTP API (`POST /api/<method>`, Centrifugo v6 shapes):
 * publish, broadcast, subscribe, unsubscribe, disconnect, refresh,
 * channels, info and batch. Requests are JSON bodies; every answer is HTTP
 * 200 with {"result":{...}} or {"error":{"code":N,"message":"..."}} (batch:
 * {"replies":[...]}), as Centrifugo does. */
#ifndef SRV_API_H
#define SRV_API_H

#include <stddef.h>
#include <stdint.h>

#include "channels/chan.h"
#include "channels/hub.h"
#include "protocol/jsonw.h"

struct eng;

typedef struct {
  hub *h;
  struct eng *eng;
  const chan_config *chans; /* the current namespaces: read with api_chans
                               (a SIGHUP reload replaces them) */
  const char *version;
  const char *node_uid;  /* unique per process (the engine's node id) */
  const char *node_name; /* node.name or the host name */
  uint64_t t_start_ms; /* CLOCK_MONOTONIC ms at start-up */
  uint64_t (*num_clients)(void *arg);
  void *arg;
} api_ctx;

/* The namespaces in force (an acquire load of ctx->chans; any thread). */
static inline const chan_config *api_chans(const api_ctx *ctx) {
  return __atomic_load_n(&ctx->chans, __ATOMIC_ACQUIRE);
}

/* This node's info object and its channels matching a glob pattern ("" =
 * all), summed into map: the engine's eng_local callbacks (arg: api_ctx). */
void api_node_info(void *arg, jw_buf *out);
void api_local_channels(void *arg, const char *pattern, json_t *map);

/* Method id for a route name ("publish" ...), or -1 if unknown. */
int api_method(const char *name, size_t len);
/* The names, comma-separated, for error messages. */
const char *api_method_list(void);

/* The answer of a call: HTTP status (200; 400 with "Bad Request" for a
 * body that is not a JSON object, as Centrifugo; 500 out of memory) and the
 * body, valid during the callback. */
typedef void (*api_done_fn)(void *arg, int status, const jw_buf *body);

/* Run one call on the calling worker. done(arg, ...) is called exactly
 * once: before api_call returns (the memory engine) or later, from the
 * worker's loop (an engine that answers asynchronously). */
void api_call(const api_ctx *ctx, hub_local *hl, int method,
              const uint8_t *body, size_t len, api_done_fn done, void *arg);

/* The control handler the server API's targeted commands run on every
 * worker (subscribe, unsubscribe, disconnect, refresh); engines that span
 * nodes run it there too. */
void api_run_ctl(hub_local *hl, void *arg);

#endif
