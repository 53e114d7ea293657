/* SPDX-License-Identifier: MIT */
/* The engine: what a publication, a history read, presence and a control
 * command need beyond this worker. Two implementations behind one table of
 * functions (chosen by `engine.type`):
 *   memory  the embedded default: streams in this process (channels/stream.c),
 *           fan-out through each channel's owner worker (channels/hub.c),
 *           presence read from the subscriber tables. Every call completes
 *           before it returns.
 *   redis   several holdfast nodes share Redis: streams and presence live
 *           there, publications reach every node through PUB/SUB, control
 *           commands through a control channel. Calls complete later, from
 *           the worker's loop.
 * Callers therefore always pass a completion callback and must not assume
 * when it runs (before or after the call returns), only that it runs
 * exactly once, on the calling worker's thread, unless the call returns
 * -1 (nothing started, no callback). Prefix eng_. */
#ifndef SRV_ENGINE_H
#define SRV_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "channels/hub.h"
#include "channels/stream.h"
#include "protocol/jsonw.h"

typedef struct eng eng;

/* Result codes of engine operations. */
enum {
  ENG_OK = 0,
  ENG_DUPLICATE = 1, /* publish: idempotency key seen, pos is the first result */
  ENG_ETEMP = -1,    /* temporarily unavailable (broker down, timeout): retry */
  ENG_ENOMEM = -2
};

/* ---- publish ------------------------------------------------------------- */

typedef void (*eng_publish_cb)(void *arg, int status, const stream_pos *pos);
/* Publish p (see hub_pub) from worker `from`. */
int eng_publish(eng *e, hub_local *from, const hub_pub *p, eng_publish_cb cb,
                void *arg);

/* Join (leave = 0) or leave push for the channel's join/leave subscribers. */
int eng_join_leave(eng *e, hub_local *from, const char *ch, size_t len,
                   const char *info, size_t info_len, int leave);

/* ---- history ---------------------------------------------------------------- */

typedef enum {
  ENG_PUBS_ARRAY,   /* Publication objects separated by ',' */
  ENG_PUBS_STRINGS, /* the same with data as a JSON string (delta clients) */
  ENG_PUBS_PUSHES   /* "\n{"push":{"channel":..,"pub":{..}}}" per publication */
} eng_pubs_form;

typedef struct {
  int reverse;
  int has_bound; /* forward: after bound; reverse: before bound */
  uint64_t bound;
  size_t limit;  /* 0: only the position */
  eng_pubs_form form;
} eng_read_req;

typedef struct {
  stream_pos top;        /* the stream's position */
  uint64_t first;        /* oldest stored offset (top + 1 if none) */
  long count;            /* publications written to pubs */
  long binary;           /* of those, with binary data ("b64data": JSON
                            clients cannot take them, see pdata.h) */
  uint64_t first_offset, last_offset; /* of those (0 if none) */
  const jw_buf *pubs;    /* the publications in the requested form */
} eng_read_result;

typedef void (*eng_read_cb)(void *arg, int status, const eng_read_result *r);
/* Read ch's stream (created when absent, so a position is stable before
 * the first publication). */
int eng_read(eng *e, hub_local *from, const char *ch, size_t len,
             const stream_opts *opts, const eng_read_req *rq, eng_read_cb cb,
             void *arg);

/* A HistoryRequest-shaped object (limit, since {offset, epoch}, reverse)
 * as a read request; max_limit caps limit (0: no cap; the client protocol
 * uses client.history_max_publication_limit, the server API none). *epoch
 * points at since.epoch inside req (or NULL). Returns 0 or 107. */
unsigned eng_history_request(json_t *req, uint32_t max_limit, eng_read_req *rq,
                             const char **epoch, size_t *epoch_len);
/* The history result fields "publications":[..],"epoch":"..","offset":N
 * into out. Returns 0, or 112 if epoch (since.epoch) is not the stream's. */
unsigned eng_history_result(const eng_read_result *r, const char *epoch,
                            size_t epoch_len, jw_buf *out);

typedef void (*eng_done_cb)(void *arg, int status);
/* Drop ch's stored publications, keeping offset and epoch. */
int eng_remove_history(eng *e, hub_local *from, const char *ch, size_t len,
                       eng_done_cb cb, void *arg);

/* ---- presence ----------------------------------------------------------------- */

/* The result fields of presence ("presence":{..}) or presence_stats
 * ("num_clients":n,"num_users":m) in out, valid during the callback. */
typedef void (*eng_fields_cb)(void *arg, int status, const jw_buf *out);
int eng_presence(eng *e, hub_local *from, const char *ch, size_t len, int stats,
                 eng_fields_cb cb, void *arg);
/* A subscriber with presence joined (add) or left: engines that store
 * presence elsewhere record it; the memory engine reads the hub tables. */
void eng_presence_update(eng *e, hub_local *from, const char *ch, size_t len,
                         const hub_sub *s, int add);

/* ---- node-level subscriptions --------------------------------------------------- */

/* This worker now has (or no longer has) subscribers of ch: engines with a
 * broker subscribe this worker to the channel there. ready(arg, status)
 * runs once publications of ch reach this worker (at once for memory), or
 * with ENG_ETEMP when the broker is away. -1: out of memory, ready is not
 * called and nothing is to be released; otherwise, whatever ready reports,
 * the call is paired with one eng_node_unsubscribe (the engine counts
 * subscribers per channel and worker). */
int eng_node_subscribe(eng *e, hub_local *from, const char *ch, size_t len,
                       eng_done_cb ready, void *arg);
void eng_node_unsubscribe(eng *e, hub_local *from, const char *ch, size_t len);

/* ---- control --------------------------------------------------------------------- */

/* Run fn(worker_hub, arg) on every worker of every node (server API
 * disconnect, unsubscribe, subscribe, refresh). arg is copied. */
int eng_broadcast_ctl(eng *e, hub_local *from, hub_ctl_fn fn, const void *arg,
                      size_t len);

/* ---- cluster view (server API info and channels) -------------------------------- */

/* What this node contributes, set once by the server: node(arg, out)
 * writes this node's info object; channels(arg, pattern, map) adds this
 * node's channels matching the glob pattern ("" = all) to map as
 * {"ch":{"num_clients":n}}, summing with what is there. Any worker. */
typedef struct {
  void (*node)(void *arg, jw_buf *out);
  void (*channels)(void *arg, const char *pattern, json_t *map);
  void *arg;
} eng_local;
void eng_set_local(eng *e, const eng_local *l);
/* This process's node id (32 hex digits, fresh at every start). */
const char *eng_node_id(const eng *e);

/* v: the array of every node's info object (nodes), or the object of
 * every node's channels (channels, merged); owned by the engine. */
typedef void (*eng_json_cb)(void *arg, int status, json_t *v);
int eng_nodes(eng *e, hub_local *from, eng_json_cb cb, void *arg);
int eng_channels(eng *e, hub_local *from, const char *pattern, eng_json_cb cb, void *arg);

/* ---- health ------------------------------------------------------------------------ */

/* 1 if the engine works, else 0 with the reason in why. Any thread. */
int eng_healthy(eng *e, char *why, size_t cap);
/* "memory" or "redis". */
const char *eng_name(const eng *e);

/* ---- the memory engine ---------------------------------------------------------------- */

eng *eng_memory_new(hub *h);
void eng_free(eng *e);

#endif
