/* SPDX-License-Identifier: MIT */
/* Channels and fan-out. Each worker has a hub_local: a table of the
 * channels its own connections subscribe to. A publication is routed to the
 * channel's owner worker (hash of the name), which gives every channel one
 * total order; the owner encodes the push once (JSON and WebSocket frame)
 * into a shared buffer and posts a reference to every worker's inbox; each
 * worker queues that same buffer on its subscribers. No copy per
 * recipient, no lock on the message path. */
#ifndef SRV_HUB_H
#define SRV_HUB_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "hf/loop.h"

typedef struct hub hub;
typedef struct hub_local hub_local;
typedef struct hub_chan hub_chan;
struct cl_client;

/* The process-wide hub over nw workers (loops filled in by hub_attach). */
hub *hub_new(size_t nw);
void hub_free(hub *h);
/* Worker idx's part, created for its loop (call from the worker's setup). */
hub_local *hub_attach(hub *h, size_t idx, hf_loop *loop);

/* Subscribe / unsubscribe a client on this worker. hub_subscribe returns
 * the channel (its state lives while it has subscribers) or NULL on OOM. */
hub_chan *hub_subscribe(hub_local *hl, const char *ch, size_t len,
                        struct cl_client *cl);
void hub_unsubscribe(hub_local *hl, hub_chan *c, struct cl_client *cl);
const char *hub_chan_name(const hub_chan *c, size_t *len);

/* Publish: data is minified JSON text (no raw newlines), info the
 * publisher's ClientInfo JSON or NULL. Any worker's thread; the text is
 * copied. Returns 0 or -1 (OOM). */
int hub_publish(hub_local *from, const char *ch, size_t len, const char *data,
                size_t data_len, const char *info, size_t info_len);

/* Counts for /api/info and /api/channels (any thread, under each worker's
 * lock; not on the message path). */
typedef void (*hub_chan_cb)(void *arg, const char *ch, size_t len,
                            uint32_t subscribers);
void hub_each_channel(hub *h, hub_chan_cb cb, void *arg);
void hub_totals(hub *h, uint64_t *channels, uint64_t *subscriptions);

/* Run fn(worker_hub, arg) on every worker's loop thread (control commands
 * of the server API: disconnect, unsubscribe...). arg is copied (len bytes)
 * for each worker. Returns 0 or -1. */
typedef void (*hub_ctl_fn)(hub_local *hl, void *arg);
int hub_broadcast_ctl(hub *h, hub_ctl_fn fn, const void *arg, size_t len);

/* The worker's loop, and an opaque per-worker pointer for the caller. */
hf_loop *hub_loop(const hub_local *hl);
void hub_set_data(hub_local *hl, void *data);
void *hub_data(const hub_local *hl);

#endif
