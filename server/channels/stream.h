/* SPDX-License-Identifier: MIT */
/* In-memory publication streams: the memory engine's history. A channel
 * whose namespace keeps history has a stream: an epoch (a random 64-bit id,
 * new whenever the stream is created), the top offset (+1 per publication)
 * and the most recent publications, bounded by history_size, history_ttl, a
 * meta TTL for the position itself and a process-wide memory cap (oldest
 * publication evicted first). Idempotency keys of recent publications are
 * remembered here too, so a retried publish returns its first result.
 *
 * Streams are split into shards, one per worker (the channel's owner
 * worker: hash % shards). Any thread may call these functions; each takes
 * its shard's mutex for the duration of the call. Callbacks run under that
 * mutex and must not call back into this module. Never on the per-recipient
 * path: one call per publication, subscribe or history request. */
#ifndef SRV_STREAM_H
#define SRV_STREAM_H

#include <stddef.h>
#include <stdint.h>

typedef struct stream_set stream_set;

/* History limits of a channel's namespace. */
typedef struct {
  uint32_t size;        /* history_size: most publications kept (> 0) */
  uint64_t ttl_ms;      /* history_ttl: how long each is kept (> 0) */
  uint64_t meta_ttl_ms; /* history_meta_ttl: how long the position outlives
                           the last publication (> 0) */
} stream_opts;

typedef struct {
  uint64_t offset; /* 0: no stream position (channel without history) */
  uint64_t epoch;  /* 0 only with offset 0 and no stream */
} stream_pos;

/* A publication as stored (views; valid during a callback only when read
 * from a stream). data is minified JSON; info a ClientInfo JSON object or
 * absent; tags a JSON object of strings or absent. */
typedef struct {
  uint64_t offset;
  const char *data;
  const char *info;
  const char *tags;
  uint32_t data_len, info_len, tags_len;
} stream_pub;

typedef struct {
  uint64_t max_bytes;        /* memory cap over every shard (0 = none) */
  uint64_t idem_window_ms;   /* how long an idempotency key is remembered */
  uint32_t idem_max;         /* most keys remembered over every shard */
} stream_limits;

stream_set *stream_set_new(size_t nshards, const stream_limits *lim);
void stream_set_free(stream_set *ss);
/* The shard (owner worker) of a channel hash. */
size_t stream_shard_of(const stream_set *ss, uint32_t hash);
/* Change the limits (configuration reload); applies from the next call. */
void stream_set_limits(stream_set *ss, const stream_limits *lim);

/* Epochs travel as 8 letters [A-Za-z]; the text is what clients store. */
#define STREAM_EPOCH_LEN 8
void stream_epoch_text(uint64_t epoch, char out[STREAM_EPOCH_LEN + 1]);
/* Parse an epoch text; 0 if it is not one this process could have made. */
uint64_t stream_epoch_parse(const char *s, size_t n);

/* Called under the shard lock for every accepted publication (not for an
 * idempotent repeat): pos is its position, prev the publication before it
 * in the stream (offset pos->offset - 1) if still stored, else NULL. Post
 * the fan-out from here: messages posted to the owner's inbox under the
 * lock arrive in offset order. Return 0, or -1 to refuse the publication
 * (out of memory: it is then taken out of the stream again). */
typedef int (*stream_accept_fn)(void *arg, const stream_pos *pos,
                                const stream_pub *prev);

typedef struct {
  const stream_opts *opts; /* NULL: the channel keeps no history */
  const char *idem_key;    /* idempotency key or NULL */
  size_t idem_len;
  uint64_t now_ms;         /* CLOCK_MONOTONIC ms (TTLs) */
} stream_publish_req;

typedef enum {
  STREAM_OK = 0,
  STREAM_DUPLICATE = 1, /* idempotency key seen: *pos is the first result */
  STREAM_ENOMEM = -1
} stream_status;

/* Publish p (p->offset is ignored) into channel ch[0..len) with hash h.
 * With history the publication gets the next offset and is stored; without
 * it *pos is {0,0}. accept(arg, ...) runs under the lock before returning
 * (also for channels without history). *evicted gets how many stored
 * publications the memory cap pushed out (all channels of the shard). */
stream_status stream_publish(stream_set *ss, uint32_t h, const char *ch,
                             size_t len, const stream_pub *p,
                             const stream_publish_req *rq, stream_pos *pos,
                             stream_accept_fn accept, void *arg,
                             uint64_t *evicted);

/* Read a stream (creating it when absent: offset 0 and a new epoch, so
 * that a subscriber's position is stable before the first publication).
 * Forward: publications with offset > after (all when !has_after), oldest
 * first. Reverse: offset < before (all when !has_before... see has_bound),
 * newest first. At most limit are passed to each(arg, pub) (limit 0: none,
 * just the position); *top gets the stream position and *first the oldest
 * offset still stored (top + 1 when none). Returns the number passed, or -1
 * if each returned nonzero (stops) or on OOM creating the stream. */
typedef int (*stream_each_fn)(void *arg, const stream_pub *p);
typedef struct {
  int reverse;
  int has_bound;   /* forward: after = bound; reverse: before = bound */
  uint64_t bound;
  size_t limit;
  uint64_t now_ms;
} stream_read_req;
long stream_read(stream_set *ss, uint32_t h, const char *ch, size_t len,
                 const stream_opts *opts, const stream_read_req *rq,
                 stream_pos *top, uint64_t *first, stream_each_fn each,
                 void *arg);

/* Drop the stored publications of ch, keeping offset and epoch
 * (history_remove). Returns 0, or 1 if the channel has no stream. */
int stream_remove_history(stream_set *ss, uint32_t h, const char *ch,
                          size_t len);

/* Expire publications and positions past their TTLs in shard idx, visiting
 * at most budget streams from where the last sweep stopped; also forgets
 * expired idempotency keys. Call periodically from the owner's loop.
 * Returns the number of streams dropped. */
size_t stream_sweep(stream_set *ss, size_t idx, uint64_t now_ms, size_t budget);

typedef struct {
  uint64_t streams, publications, bytes, evicted, expired, idem_keys;
} stream_stats;
/* Totals over every shard (each shard locked in turn). */
void stream_get_stats(stream_set *ss, stream_stats *st);

#endif
