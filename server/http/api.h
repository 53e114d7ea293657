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

typedef struct {
  hub *h;
  const chan_config *chans;
  const char *version;
  uint64_t t_start_ms; /* CLOCK_MONOTONIC ms at start-up */
  uint64_t (*num_clients)(void *arg);
  void *arg;
} api_ctx;

/* Method id for a route name ("publish" ...), or -1 if unknown. */
int api_method(const char *name, size_t len);
/* The names, comma-separated, for error messages. */
const char *api_method_list(void);

/* Run one call on the calling worker. Writes the response body to out and
 * returns the HTTP status (200; 400 with "Bad Request" for a body that is
 * not a JSON object, as Centrifugo). */
int api_call(const api_ctx *ctx, hub_local *hl, int method,
             const uint8_t *body, size_t len, jw_buf *out);

#endif
