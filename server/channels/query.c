/* SPDX-License-Identifier: MIT */
/* History and presence queries (see query.h). */
#include "channels/query.h"

#include <string.h>

stream_opts query_stream_opts(const chan_ns *ns) {
  stream_opts o = {ns->history_size, ns->history_ttl_ms,
                   ns->history_meta_ttl_ms ? ns->history_meta_ttl_ms
                                           : QUERY_DEFAULT_META_TTL_MS};
  return o;
}

typedef struct {
  jw_buf *b;
  int n;
} hist_acc;

static int add_pub(void *arg, const stream_pub *p) {
  hist_acc *a = arg;
  if (a->n++)
    jw_char(a->b, ',');
  hub_encode_pub(a->b, p, 0);
  return 0;
}

unsigned query_history(hub *h, const char *ch, size_t len, const chan_ns *ns,
                       json_t *req, uint32_t max_limit, uint64_t now_ms,
                       jw_buf *out) {
  json_t *jl = json_object_get(req, "limit");
  json_t *since = json_object_get(req, "since");
  json_t *jr = json_object_get(req, "reverse");
  if ((jl && !json_is_integer(jl)) || (since && !json_is_object(since) && !json_is_null(since)) ||
      (jr && !json_is_boolean(jr)))
    return 107;
  long long limit = jl ? json_integer_value(jl) : 0;
  if (limit < -1)
    return 107;
  size_t lim = limit == -1 ? (max_limit ? max_limit : SIZE_MAX) : (size_t)limit;
  if (max_limit && lim > max_limit)
    lim = max_limit;
  int reverse = json_is_true(jr);
  stream_read_req rq = {reverse, 0, 0, lim, now_ms};
  const char *epoch = NULL;
  size_t epoch_len = 0;
  if (json_is_object(since)) {
    json_t *so = json_object_get(since, "offset");
    json_t *se = json_object_get(since, "epoch");
    if ((so && (!json_is_integer(so) || json_integer_value(so) < 0)) ||
        (se && !json_is_string(se)))
      return 107;
    rq.has_bound = 1;
    rq.bound = so ? (uint64_t)json_integer_value(so) : 0;
    if (reverse && !rq.bound)
      return 107; /* "before offset 0" names nothing */
    if (se) {
      epoch = json_string_value(se);
      epoch_len = json_string_length(se);
    }
  }
  stream_opts so = query_stream_opts(ns);
  jw_buf pubs;
  jw_init(&pubs);
  hist_acc acc = {&pubs, 0};
  stream_pos top;
  uint64_t first;
  if (stream_read(hub_streams(h), hub_hash(ch, len), ch, len, &so, &rq, &top, &first,
                  add_pub, &acc) < 0 || !jw_ok(&pubs)) {
    jw_free(&pubs);
    return 100;
  }
  if (epoch_len && stream_epoch_parse(epoch, epoch_len) != top.epoch) {
    jw_free(&pubs);
    return 112;
  }
  char ep[STREAM_EPOCH_LEN + 1];
  stream_epoch_text(top.epoch, ep);
  jw_lit(out, "\"publications\":[");
  jw_raw(out, pubs.p, pubs.len);
  jw_lit(out, "],\"epoch\":");
  jw_cstr(out, ep);
  jw_lit(out, ",\"offset\":");
  jw_u64(out, top.offset);
  jw_free(&pubs);
  return 0;
}

typedef struct {
  jw_buf *b;
  int first;
} pres_acc;

static void add_presence(void *arg, const hub_sub *s) {
  pres_acc *a = arg;
  jw_key(a->b, &a->first, s->client);
  jw_lit(a->b, s->info);
}

void query_presence(hub *h, const char *ch, size_t len, jw_buf *out) {
  pres_acc acc = {out, 1};
  jw_lit(out, "\"presence\":{");
  hub_presence(h, ch, len, add_presence, &acc);
  jw_char(out, '}');
}

typedef struct {
  json_t *users;
  uint64_t clients;
  int oom;
} stats_acc;

static void count_presence(void *arg, const hub_sub *s) {
  stats_acc *a = arg;
  a->clients++;
  if (json_object_set_new(a->users, s->user ? s->user : "", json_true()) < 0)
    a->oom = 1;
}

unsigned query_presence_stats(hub *h, const char *ch, size_t len, jw_buf *out) {
  stats_acc acc = {json_object(), 0, 0};
  if (!acc.users)
    return 100;
  hub_presence(h, ch, len, count_presence, &acc);
  uint64_t users = json_object_size(acc.users);
  json_decref(acc.users);
  if (acc.oom)
    return 100;
  jw_lit(out, "\"num_clients\":");
  jw_u64(out, acc.clients);
  jw_lit(out, ",\"num_users\":");
  jw_u64(out, users);
  return 0;
}
