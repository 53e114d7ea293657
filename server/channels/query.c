/* SPDX-License-Identifier: MIT */
/* Presence queries and stream limits (see query.h). */
#include "channels/query.h"

#include <string.h>

#include "hf/conn.h"

stream_opts query_stream_opts(const chan_ns *ns) {
  stream_opts o = {ns->history_size, ns->history_ttl_ms,
                   ns->history_meta_ttl_ms ? ns->history_meta_ttl_ms
                                           : QUERY_DEFAULT_META_TTL_MS};
  return o;
}

typedef struct {
  jw_buf *b;
  int first;
} pres_acc;

static void add_presence(void *arg, const hub_sub *s, const char *user,
                         const uint8_t *client) {
  pres_acc *a = arg;
  char id[37];
  hf_conn_id_format(client, id);
  jw_key(a->b, &a->first, id);
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

static void count_presence(void *arg, const hub_sub *s, const char *user,
                           const uint8_t *client) {
  stats_acc *a = arg;
  a->clients++;
  if (json_object_set_new(a->users, user, json_true()) < 0)
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
