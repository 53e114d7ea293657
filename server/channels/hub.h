/* SPDX-License-Identifier: MIT */
/* Channels and fan-out (the memory engine). Each worker has a hub_local: a
 * table of the channels its own connections subscribe to, each with its
 * subscribers (hub_sub, embedded in the protocol layer's subscription:
 * the hub never sees a connection, only the two callbacks it was given).
 *
 * A publication is routed to the channel's owner worker (hash of the name),
 * which gives every channel one total order; when the channel keeps
 * history, its stream (channels/stream.h) assigns the offset under the
 * stream's lock and the publication is posted to the owner in offset
 * order. The owner encodes the push once (JSON and WebSocket frame, plus
 * the string and fossil-delta forms when the namespace allows delta) into
 * shared buffers and posts a reference to every worker; each worker queues
 * those same buffers on its subscribers. No copy per recipient, no lock on
 * the delivery path.
 *
 * Positioned subscribers carry their stream position (offset, epoch); the
 * hub delivers a publication with offset o only if it is the next one
 * (o == offset + 1), skips what the subscriber already has, and reports a
 * gap or a new epoch through the gap callback (insufficient state) instead
 * of delivering past it. */
#ifndef SRV_HUB_H
#define SRV_HUB_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "channels/stream.h"
#include "hf/loop.h"
#include "hf/shared.h"
#include "protocol/jsonw.h"

typedef struct hub hub;
typedef struct hub_local hub_local;
typedef struct hub_chan hub_chan;

enum {
  HUB_SUB_POSITIONED = 1,  /* check offsets and epochs */
  HUB_SUB_JOIN_LEAVE = 2,  /* receives join and leave pushes */
  HUB_SUB_PRESENCE = 4,    /* listed in presence */
  HUB_SUB_DELTA = 8,       /* fossil delta negotiated */
  HUB_SUB_DELTA_BASE = 16, /* has received a full payload to patch */
  HUB_SUB_PAUSED = 32,     /* receives nothing (being removed) */
  HUB_SUB_PENDING = 64,    /* its position is being established: pushes go
                              to the pending callback, in order */
  /* bits 16-31 of hub_sub.flags belong to the owner that embeds the
   * hub_sub (no room of its own is spent on them); the hub keeps them */
  HUB_SUB_OWNER_BITS = 0xffff0000
};

/* The encoded frames of one push, shared by every recipient. */
typedef struct {
  hf_shared *plain; /* the push as every subscriber gets it */
  hf_shared *str;   /* delta subscribers: data as a JSON string, or NULL */
  hf_shared *patch; /* delta subscribers with a base: fossil delta, or NULL */
  uint64_t offset, epoch;
  uint64_t t_us;    /* CLOCK_MONOTONIC microseconds when it was accepted */
  uint8_t kind;     /* HUB_PUSH_* */
} hub_frames;

enum { HUB_PUSH_PUB, HUB_PUSH_JOIN, HUB_PUSH_LEAVE };

/* A subscriber. The owner embeds it and keeps it at a stable address while
 * subscribed. Fields are read by the hub on the subscriber's worker; info
 * is read by other threads under the worker's lock (presence): change it
 * only through hub_sub_set_info. Who the subscriber is (user, connection
 * id) the owner tells through hub_callbacks.member, so that every
 * subscription does not carry two more pointers. */
typedef struct hub_sub {
  hub_chan *ch;      /* set by hub_subscribe */
  uint64_t offset;   /* positioned: the last offset the client has */
  uint64_t epoch;    /* positioned: the stream epoch (0: adopt the next) */
  char *info;        /* ClientInfo JSON for presence, or NULL; owned */
  uint32_t flags;    /* HUB_SUB_* */
} hub_sub;

typedef struct {
  /* Queue a push frame on the subscriber's connection. */
  void (*deliver)(hub_sub *s, hf_shared *frame);
  /* The subscriber missed publications (or the stream was recreated):
   * unsubscribe it with insufficient state. It may hub_unsubscribe. */
  void (*gap)(hub_sub *s);
  /* A push for a HUB_SUB_PENDING subscriber: keep it (take references)
   * until the position is known, then pass it to hub_frame_for. */
  void (*pending)(hub_sub *s, const hub_frames *f);
  /* Queue push frames[0..n) (n >= 2), in order, on the subscriber's
   * connection (a run swept subscriber-major, see hub_hold). Returns how
   * many it handled (1..n): fewer when the connection's queue went over
   * its limit, so that the hub looks whether the subscriber is still
   * there (a slow-consumer policy may have unsubscribed it) before
   * offering the rest. NULL: deliver is called for each. */
  size_t (*deliver_n)(hub_sub *s, hf_shared *const *frames, size_t n);
  /* Who s is, for presence: its user (NUL-terminated, "" when anonymous)
   * and its connection id (16 bytes; text with hf_conn_id_format), both
   * unchanged while s is subscribed. Called from any thread, under the
   * lock of s's worker or on that worker's loop. */
  void (*member)(const hub_sub *s, const char **user, const uint8_t **client);
} hub_callbacks;

/* The frame subscriber s gets for push f after its position check (and
 * delta choice), advancing its position; NULL: nothing for it (*gap set:
 * it missed publications and must be told). */
hf_shared *hub_frame_for(hub_sub *s, const hub_frames *f, int *gap);
void hub_frames_ref(const hub_frames *f);
void hub_frames_unref(const hub_frames *f);

typedef struct {
  stream_limits limits;     /* history memory cap, idempotency window */
  size_t sweep_budget;      /* streams visited per sweep tick (per worker) */
  uint32_t sweep_interval_ms;
} hub_options;

/* The process-wide hub over nw workers (loops filled in by hub_attach). */
hub *hub_new(size_t nw, const hub_callbacks *cb, const hub_options *opt);
void hub_free(hub *h);
/* Worker idx's part, created for its loop (call from the worker's setup,
 * before the loop runs; starts the stream sweeper on that loop). */
hub_local *hub_attach(hub *h, size_t idx, hf_loop *loop);
/* Stop the worker's timers (before its loop is freed). */
void hub_detach(hub_local *hl);
stream_set *hub_streams(hub *h);
hub *hub_of(const hub_local *hl);

/* Subscribe s to channel ch on this worker (s->flags, and for positioned
 * subscribers offset/epoch, set by the caller). Returns 0 or -1 (OOM). */
int hub_subscribe(hub_local *hl, const char *ch, size_t len, hub_sub *s);
void hub_unsubscribe(hub_local *hl, hub_sub *s);
const char *hub_chan_name(const hub_chan *c, size_t *len);
/* Who subscriber s of hub h is (hub_callbacks.member). */
void hub_sub_member(const hub *h, const hub_sub *s, const char **user,
                    const uint8_t **client);
/* Replace s->info (under the worker's lock); the old one is freed. */
void hub_sub_set_info(hub_local *hl, hub_sub *s, char *info);

/* A publication. data: minified JSON (no raw newline); info: the
 * publisher's ClientInfo JSON or NULL; tags: a JSON object or NULL. */
typedef struct {
  const char *ch;
  size_t len;
  const char *data, *info, *tags;
  size_t data_len, info_len, tags_len;
  const stream_opts *history; /* NULL: the channel keeps no history */
  const char *idem_key;       /* NULL: none */
  size_t idem_len;
  int delta;         /* send a fossil delta to delta subscribers */
  int delta_allowed; /* the namespace allows delta subscribers */
} hub_pub;

typedef enum {
  HUB_OK = 0,
  HUB_DUPLICATE = 1, /* idempotency key seen: *pos is the first result */
  HUB_ENOMEM = -1
} hub_status;

/* Publish from worker `from` (any worker's thread). *pos gets the stream
 * position ({0,0} without history). The bytes are copied. */
hub_status hub_publish(hub_local *from, const hub_pub *p, stream_pos *pos);

/* Hold this worker's local deliveries until the end of the current loop
 * iteration: consecutive pushes into one channel are then swept over its
 * subscribers once, subscriber-major (channels/hubrun.h), each subscriber
 * still getting them in publication order. For publishers that do not
 * wait for their own push on this thread (the server API calls it before
 * publishing; the hub does for messages from other workers). Loop thread
 * only; a no-op while hub_attach's run could not be allocated. */
void hub_hold(hub_local *hl);

/* Join (leave = 0) or leave push with the subscriber's ClientInfo JSON,
 * ordered with the channel's publications, for HUB_SUB_JOIN_LEAVE
 * subscribers. Returns 0 or -1 (OOM). */
int hub_join_leave(hub_local *from, const char *ch, size_t len,
                   const char *info, size_t info_len, int leave);

/* A push that came from a broker (the Redis engine) to this worker: it is
 * encoded here and delivered to this worker's subscribers (the broker gives
 * every worker the channel's order itself: no owner hop). prev is the
 * previous publication's data for a fossil delta, or NULL. */
typedef struct {
  int kind; /* HUB_PUSH_* */
  const char *ch;
  size_t len;
  const char *data, *info, *tags, *prev;
  size_t data_len, info_len, tags_len, prev_len;
  uint64_t offset, epoch;
  int delta, delta_allowed;
} hub_remote;
void hub_deliver_remote(hub_local *hl, const hub_remote *p);

/* After a broker outage: every positioned subscriber of ch on this worker
 * whose position is behind top or in another epoch missed publications
 * and is told (the gap callback). ahead_too: also one ahead of top (after
 * a failover to a replica that had not received everything). */
void hub_check_positions(hub_local *hl, const char *ch, size_t len, uint64_t top,
                         uint64_t epoch, int ahead_too);
/* The worker's index. */
size_t hub_index(const hub_local *hl);

/* Every subscriber of this worker with any of the flags, with its channel
 * (the Redis engine refreshes presence with it). Loop thread only. */
typedef void (*hub_sub_fn)(void *arg, const char *ch, size_t len, hub_sub *s);
void hub_each_local_sub(hub_local *hl, uint32_t flags, hub_sub_fn fn, void *arg);

/* Presence over every worker (any thread; each worker's table is read
 * under its lock): calls each(arg, s, user, client) for every
 * HUB_SUB_PRESENCE subscriber of ch that has info (user and client as
 * hub_callbacks.member tells); all are valid during the call only. */
typedef void (*hub_presence_fn)(void *arg, const hub_sub *s, const char *user,
                                const uint8_t *client);
void hub_presence(hub *h, const char *ch, size_t len, hub_presence_fn each,
                  void *arg);

/* Counts for /api/info and /api/channels (any thread, under each worker's
 * lock; not on the message path). */
typedef void (*hub_chan_cb)(void *arg, const char *ch, size_t len,
                            uint32_t subscribers);
void hub_each_channel(hub *h, hub_chan_cb cb, void *arg);
void hub_totals(hub *h, uint64_t *channels, uint64_t *subscriptions);
/* Every channel of this worker with its subscribers here and the
 * publications delivered here per second since the previous call (0 on
 * the first). Loop thread only; O(channels), for the admin dashboard. */
typedef void (*hub_stat_fn)(void *arg, const char *ch, size_t len, uint32_t subscribers,
                            double pubs_per_s);
void hub_local_stats(hub_local *hl, uint64_t now_ms, hub_stat_fn fn, void *arg);

/* Run fn(worker_hub, arg) on every worker's loop thread (control commands
 * of the server API: disconnect, unsubscribe...). arg is copied (len bytes)
 * for each worker. Returns 0 or -1. */
typedef void (*hub_ctl_fn)(hub_local *hl, void *arg);
int hub_broadcast_ctl(hub *h, hub_ctl_fn fn, const void *arg, size_t len);

/* The worker's loop, and an opaque per-worker pointer for the caller. */
hf_loop *hub_loop(const hub_local *hl);
void hub_set_data(hub_local *hl, void *data);
void *hub_data(const hub_local *hl);

/* Write a stored publication as a Publication JSON object ({"data":..,
 * "info":..,"offset":..,"tags":..}); data_as_string: data as a JSON
 * string of its text (delta subscribers). Binary data (pdata.h) is written
 * as "b64data":"<base64>" instead of "data"; returns 1 then, else 0. */
int hub_encode_pub(jw_buf *b, const stream_pub *p, int data_as_string);

/* The hash that picks a channel's owner worker and stream shard. */
uint32_t hub_hash(const char *ch, size_t len);

#endif
