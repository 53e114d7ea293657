/* SPDX-License-Identifier: MIT */
/* Engine dispatch (see engine.h) and what the engines share. */
#include "engine/engine_impl.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

int eng_publish(eng *e, hub_local *from, const hub_pub *p, eng_publish_cb cb,
                void *arg) {
  return e->ops->publish(e, from, p, cb, arg);
}

int eng_join_leave(eng *e, hub_local *from, const char *ch, size_t len,
                   const char *info, size_t info_len, int leave) {
  return e->ops->join_leave(e, from, ch, len, info, info_len, leave);
}

int eng_read(eng *e, hub_local *from, const char *ch, size_t len,
             const stream_opts *opts, const eng_read_req *rq, eng_read_cb cb,
             void *arg) {
  return e->ops->read(e, from, ch, len, opts, rq, cb, arg);
}

int eng_remove_history(eng *e, hub_local *from, const char *ch, size_t len,
                       eng_done_cb cb, void *arg) {
  return e->ops->remove_history(e, from, ch, len, cb, arg);
}

int eng_presence(eng *e, hub_local *from, const char *ch, size_t len, int stats,
                 eng_fields_cb cb, void *arg) {
  return e->ops->presence(e, from, ch, len, stats, cb, arg);
}

void eng_presence_update(eng *e, hub_local *from, const char *ch, size_t len,
                         const hub_sub *s, int add) {
  if (e->ops->presence_update)
    e->ops->presence_update(e, from, ch, len, s, add);
}

int eng_node_subscribe(eng *e, hub_local *from, const char *ch, size_t len,
                       eng_done_cb ready, void *arg) {
  return e->ops->node_subscribe(e, from, ch, len, ready, arg);
}

void eng_node_unsubscribe(eng *e, hub_local *from, const char *ch, size_t len) {
  if (e->ops->node_unsubscribe)
    e->ops->node_unsubscribe(e, from, ch, len);
}

int eng_broadcast_ctl(eng *e, hub_local *from, hub_ctl_fn fn, const void *arg,
                      size_t len) {
  return e->ops->broadcast_ctl(e, from, fn, arg, len);
}

int eng_healthy(eng *e, char *why, size_t cap) { return e->ops->healthy(e, why, cap); }

void eng__init(eng *e, const eng_ops *ops, hub *h) {
  e->ops = ops;
  e->h = h;
  uint8_t id[16];
  if (getrandom(id, sizeof id, 0) != sizeof id) { /* no entropy yet: still unique enough */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t v[2] = {(uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 32), (uint64_t)ts.tv_nsec};
    memcpy(id, v, sizeof id);
  }
  for (int i = 0; i < 16; i++)
    snprintf(e->node + 2 * i, 3, "%02x", id[i]);
}

const char *eng_node_id(const eng *e) { return e->node; }

void eng_set_local(eng *e, const eng_local *l) { e->local = *l; }

int eng_nodes(eng *e, hub_local *from, eng_json_cb cb, void *arg) {
  return e->ops->nodes(e, from, cb, arg);
}

int eng_channels(eng *e, hub_local *from, const char *pattern, eng_json_cb cb, void *arg) {
  return e->ops->channels(e, from, pattern, cb, arg);
}

json_t *eng__local_nodes(eng *e) {
  json_t *arr = json_array();
  if (!arr || !e->local.node)
    return arr;
  jw_buf b;
  jw_init(&b);
  e->local.node(e->local.arg, &b);
  json_error_t je;
  json_t *one = jw_ok(&b) ? json_loadb(b.p, b.len, 0, &je) : NULL;
  jw_free(&b);
  if (one)
    json_array_append_new(arr, one);
  return arr;
}

json_t *eng__local_channels(eng *e, const char *pattern) {
  json_t *map = json_object();
  if (map && e->local.channels)
    e->local.channels(e->local.arg, pattern ? pattern : "", map);
  return map;
}

const char *eng_name(const eng *e) { return e->ops->name; }

void eng_free(eng *e) {
  if (e)
    e->ops->free(e);
}

int eng__encode_pub(jw_buf *b, const stream_pub *p, eng_pubs_form form,
                     const char *ch, size_t len, int first) {
  if (form == ENG_PUBS_PUSHES) {
    jw_lit(b, "\n{\"push\":{\"channel\":");
    jw_str(b, ch, len);
    jw_lit(b, ",\"pub\":");
  } else if (!first) {
    jw_char(b, ',');
  }
  int bin = hub_encode_pub(b, p, form == ENG_PUBS_STRINGS);
  if (form == ENG_PUBS_PUSHES)
    jw_lit(b, "}}");
  return bin;
}

unsigned eng_history_request(json_t *req, uint32_t max_limit, eng_read_req *rq,
                             const char **epoch, size_t *epoch_len) {
  json_t *jl = json_object_get(req, "limit");
  json_t *since = json_object_get(req, "since");
  json_t *jr = json_object_get(req, "reverse");
  *epoch = NULL;
  *epoch_len = 0;
  if ((jl && !json_is_integer(jl)) || (since && !json_is_object(since) && !json_is_null(since)) ||
      (jr && !json_is_boolean(jr)))
    return 107;
  long long limit = jl ? json_integer_value(jl) : 0;
  if (limit < -1)
    return 107;
  size_t lim = limit == -1 ? (max_limit ? max_limit : SIZE_MAX) : (size_t)limit;
  if (max_limit && lim > max_limit)
    lim = max_limit;
  memset(rq, 0, sizeof *rq);
  rq->reverse = json_is_true(jr);
  rq->limit = lim;
  rq->form = ENG_PUBS_ARRAY;
  if (json_is_object(since)) {
    json_t *so = json_object_get(since, "offset");
    json_t *se = json_object_get(since, "epoch");
    if ((so && (!json_is_integer(so) || json_integer_value(so) < 0)) ||
        (se && !json_is_string(se)))
      return 107;
    rq->has_bound = 1;
    rq->bound = so ? (uint64_t)json_integer_value(so) : 0;
    if (rq->reverse && !rq->bound)
      return 107; /* "before offset 0" names nothing */
    if (se) {
      *epoch = json_string_value(se);
      *epoch_len = json_string_length(se);
    }
  }
  return 0;
}

unsigned eng_history_result(const eng_read_result *r, const char *epoch,
                            size_t epoch_len, jw_buf *out) {
  if (epoch_len && stream_epoch_parse(epoch, epoch_len) != r->top.epoch)
    return 112;
  char ep[STREAM_EPOCH_LEN + 1];
  stream_epoch_text(r->top.epoch, ep);
  jw_lit(out, "\"publications\":[");
  jw_raw(out, r->pubs->p, r->pubs->len);
  jw_lit(out, "],\"epoch\":");
  jw_cstr(out, ep);
  jw_lit(out, ",\"offset\":");
  jw_u64(out, r->top.offset);
  return 0;
}
