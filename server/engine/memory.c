/* SPDX-License-Identifier: MIT */
/* The memory engine (the embedded default): streams in this process
 * (channels/stream.c), fan-out through each channel's owner worker
 * (channels/hub.c), presence read from the subscriber tables
 * (channels/query.c). Every operation completes before it returns. */
#include <stdlib.h>
#include <string.h>

#include "channels/query.h"
#include "engine/engine_impl.h"

static int mem_publish(eng *e, hub_local *from, const hub_pub *p, eng_publish_cb cb,
                       void *arg) {
  stream_pos pos;
  hub_status st = hub_publish(from, p, &pos);
  cb(arg, st == HUB_OK ? ENG_OK : st == HUB_DUPLICATE ? ENG_DUPLICATE : ENG_ENOMEM, &pos);
  return 0;
}

static int mem_join_leave(eng *e, hub_local *from, const char *ch, size_t len,
                          const char *info, size_t info_len, int leave) {
  return hub_join_leave(from, ch, len, info, info_len, leave);
}

typedef struct {
  jw_buf *b;
  eng_read_result *r;
  eng_pubs_form form;
  const char *ch;
  size_t len;
} read_acc;

static int add_pub(void *arg, const stream_pub *p) {
  read_acc *a = arg;
  if (!a->r->count)
    a->r->first_offset = p->offset;
  a->r->last_offset = p->offset;
  a->r->binary += eng__encode_pub(a->b, p, a->form, a->ch, a->len, !a->r->count);
  a->r->count++;
  return 0;
}

static int mem_read(eng *e, hub_local *from, const char *ch, size_t len,
                    const stream_opts *opts, const eng_read_req *rq, eng_read_cb cb,
                    void *arg) {
  jw_buf pubs;
  jw_init(&pubs);
  eng_read_result r;
  memset(&r, 0, sizeof r);
  r.pubs = &pubs;
  read_acc a = {&pubs, &r, rq->form, ch, len};
  stream_read_req sr = {rq->reverse, rq->has_bound, rq->bound, rq->limit,
                        hf_loop_now(hub_loop(from))};
  long n = stream_read(hub_streams(e->h), hub_hash(ch, len), ch, len, opts, &sr,
                       &r.top, &r.first, add_pub, &a);
  cb(arg, n < 0 || !jw_ok(&pubs) ? ENG_ENOMEM : ENG_OK, &r);
  jw_free(&pubs);
  return 0;
}

static int mem_remove_history(eng *e, hub_local *from, const char *ch, size_t len,
                              eng_done_cb cb, void *arg) {
  stream_remove_history(hub_streams(e->h), hub_hash(ch, len), ch, len);
  cb(arg, ENG_OK);
  return 0;
}

static int mem_presence(eng *e, hub_local *from, const char *ch, size_t len, int stats,
                        eng_fields_cb cb, void *arg) {
  jw_buf out;
  jw_init(&out);
  int st = ENG_OK;
  if (stats) {
    if (query_presence_stats(e->h, ch, len, &out))
      st = ENG_ENOMEM;
  } else {
    query_presence(e->h, ch, len, &out);
  }
  cb(arg, st == ENG_OK && !jw_ok(&out) ? ENG_ENOMEM : st, &out);
  jw_free(&out);
  return 0;
}

static int mem_node_subscribe(eng *e, hub_local *from, const char *ch, size_t len,
                              eng_done_cb ready, void *arg) {
  ready(arg, ENG_OK); /* every worker gets every publication already */
  return 0;
}

static int mem_broadcast_ctl(eng *e, hub_local *from, hub_ctl_fn fn, const void *arg,
                             size_t len) {
  return hub_broadcast_ctl(e->h, fn, arg, len);
}

static int mem_nodes(eng *e, hub_local *from, eng_json_cb cb, void *arg) {
  json_t *v = eng__local_nodes(e);
  cb(arg, v ? ENG_OK : ENG_ENOMEM, v);
  json_decref(v);
  return 0;
}

static int mem_channels(eng *e, hub_local *from, const char *pattern, eng_json_cb cb,
                        void *arg) {
  json_t *v = eng__local_channels(e, pattern);
  cb(arg, v ? ENG_OK : ENG_ENOMEM, v);
  json_decref(v);
  return 0;
}

static int mem_healthy(eng *e, char *why, size_t cap) {
  if (cap)
    why[0] = 0;
  return 1;
}

static void mem_free(eng *e) { free(e); }

static const eng_ops memory_ops = {
    .name = "memory",
    .publish = mem_publish,
    .join_leave = mem_join_leave,
    .read = mem_read,
    .remove_history = mem_remove_history,
    .presence = mem_presence,
    .node_subscribe = mem_node_subscribe,
    .broadcast_ctl = mem_broadcast_ctl,
    .nodes = mem_nodes,
    .channels = mem_channels,
    .healthy = mem_healthy,
    .free = mem_free,
};

eng *eng_memory_new(hub *h) {
  eng *e = calloc(1, sizeof *e);
  if (!e)
    return NULL;
  eng__init(e, &memory_ops, h);
  return e;
}
