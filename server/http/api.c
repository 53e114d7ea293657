/* SPDX-License-Identifier: MIT */
/* Server HTTP API methods (see api.h). Targeted commands (subscribe,
 * unsubscribe, disconnect, refresh) are posted to every worker, which acts
 * on its own matching connections; the call answers once they are posted,
 * as Centrifugo answers once they are handed to its broker. */
#include "http/api.h"

#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "channels/query.h"
#include "protocol/client.h"

enum {
  M_PUBLISH, M_BROADCAST, M_SUBSCRIBE, M_UNSUBSCRIBE, M_DISCONNECT,
  M_REFRESH, M_CHANNELS, M_INFO, M_BATCH, M_HISTORY, M_HISTORY_REMOVE,
  M_PRESENCE, M_PRESENCE_STATS, M_COUNT
};

static const char *const names[M_COUNT] = {
    "publish",  "broadcast", "subscribe", "unsubscribe",    "disconnect",
    "refresh",  "channels",  "info",      "batch",          "history",
    "history_remove", "presence", "presence_stats"};

int api_method(const char *name, size_t len) {
  for (int i = 0; i < M_COUNT; i++)
    if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
      return i;
  return -1;
}

const char *api_method_list(void) {
  return "publish, broadcast, subscribe, unsubscribe, disconnect, refresh, "
         "channels, info, batch, history, history_remove, presence, "
         "presence_stats";
}

/* ---- errors and small helpers ------------------------------------------- */

static void api_error(jw_buf *o, unsigned code, const char *msg) {
  jw_lit(o, "{\"error\":{\"code\":");
  jw_u64(o, code);
  jw_lit(o, ",\"message\":");
  jw_cstr(o, msg);
  jw_lit(o, "}}");
}

static const char *str_field(json_t *req, const char *k, size_t *len) {
  json_t *v = json_object_get(req, k);
  if (!json_is_string(v)) {
    *len = 0;
    return NULL;
  }
  *len = json_string_length(v);
  return json_string_value(v);
}

/* The parts of a publish request shared by every channel of a broadcast,
 * checked once. */
typedef struct {
  char *data; /* minified JSON */
  char *tags; /* a JSON object of strings, or NULL */
  const char *idem_key;
  size_t idem_len;
  int skip_history, delta;
} pub_req;

static void pub_req_free(pub_req *p) {
  free(p->data);
  free(p->tags);
}

/* Returns NULL, or the message of a 107 error. */
static const char *pub_req_parse(json_t *req, pub_req *p) {
  memset(p, 0, sizeof *p);
  json_t *data = json_object_get(req, "data");
  json_t *b64 = json_object_get(req, "b64data");
  if (data)
    p->data = jw_dump(data);
  else if (json_is_string(b64) &&
           !(p->data = jw_b64_json(json_string_value(b64), json_string_length(b64))))
    return "bad request: b64data must be base64 of a JSON document (the JSON "
           "protocol cannot carry binary data)";
  if (!p->data)
    return "bad request: data required";
  json_t *tags = json_object_get(req, "tags");
  if (tags) {
    const char *k;
    json_t *v;
    if (!json_is_object(tags))
      return "bad request: tags must be an object of strings";
    json_object_foreach(tags, k, v) {
      if (!json_is_string(v))
        return "bad request: tags must be an object of strings";
    }
    if (json_object_size(tags))
      p->tags = jw_dump(tags);
  }
  json_t *key = json_object_get(req, "idempotency_key");
  if (key && (!json_is_string(key) || json_string_length(key) > 256))
    return "bad request: idempotency_key must be a string of at most 256 bytes";
  if (key && json_string_length(key)) {
    p->idem_key = json_string_value(key);
    p->idem_len = json_string_length(key);
  }
  json_t *sh = json_object_get(req, "skip_history");
  json_t *dl = json_object_get(req, "delta");
  if ((sh && !json_is_boolean(sh)) || (dl && !json_is_boolean(dl)))
    return "bad request: skip_history and delta must be booleans";
  if (json_object_get(req, "version") || json_object_get(req, "version_epoch"))
    return "bad request: version and version_epoch are not supported";
  p->skip_history = json_is_true(sh);
  p->delta = json_is_true(dl);
  return NULL;
}

static void write_channel_error(jw_buf *o, int r) {
  api_error(o, (unsigned)r, r == CHAN_E_UNKNOWN ? "unknown channel"
                                                : "bad request: invalid channel name");
}

/* Publish into one channel; writes a reply object (result or error). */
static void publish_one(const api_ctx *ctx, hub_local *hl, const char *ch,
                        size_t len, const pub_req *p, jw_buf *o) {
  if (!ch || !len) {
    api_error(o, 107, "bad request: channel required");
    return;
  }
  const chan_ns *ns;
  int r = chan_resolve(ctx->chans, ch, len, &ns);
  if (r != CHAN_OK) {
    write_channel_error(o, r);
    return;
  }
  stream_opts so = query_stream_opts(ns);
  hub_pub hp = {ch, len, p->data, NULL, p->tags, strlen(p->data), 0,
                p->tags ? strlen(p->tags) : 0,
                chan_has_history(ns) && !p->skip_history ? &so : NULL,
                p->idem_key, p->idem_len, p->delta || ns->delta_publish,
                ns->delta_fossil};
  stream_pos pos;
  if (hub_publish(hl, &hp, &pos) == HUB_ENOMEM) {
    api_error(o, 100, "internal server error");
    return;
  }
  jw_lit(o, "{\"result\":{");
  if (pos.offset) {
    char ep[STREAM_EPOCH_LEN + 1];
    stream_epoch_text(pos.epoch, ep);
    jw_lit(o, "\"offset\":");
    jw_u64(o, pos.offset);
    jw_lit(o, ",\"epoch\":");
    jw_cstr(o, ep);
  }
  jw_lit(o, "}}");
}

static void publish(const api_ctx *ctx, hub_local *hl, json_t *req, int broadcast,
                    jw_buf *o) {
  pub_req p;
  const char *bad = pub_req_parse(req, &p);
  json_t *chs = json_object_get(req, "channels");
  if (broadcast && !bad && (!json_is_array(chs) || !json_array_size(chs)))
    bad = "bad request: channels required";
  if (bad) {
    api_error(o, 107, bad);
  } else if (!broadcast) {
    size_t n;
    const char *ch = str_field(req, "channel", &n);
    publish_one(ctx, hl, ch, n, &p, o);
  } else {
    jw_lit(o, "{\"result\":{\"responses\":[");
    size_t i;
    json_t *v;
    json_array_foreach(chs, i, v) {
      if (i)
        jw_char(o, ',');
      publish_one(ctx, hl, json_is_string(v) ? json_string_value(v) : NULL,
                  json_is_string(v) ? json_string_length(v) : 0, &p, o);
    }
    jw_lit(o, "]}}");
  }
  pub_req_free(&p);
}

/* ---- history and presence ------------------------------------------------- */

static uint64_t mono_ms(void);

/* The channel of a read method, resolved and with its feature on; NULL
 * after writing the error. */
static const chan_ns *read_channel(const api_ctx *ctx, json_t *req, int presence,
                                   const char **ch, size_t *len, jw_buf *o) {
  *ch = str_field(req, "channel", len);
  if (!*ch || !*len) {
    api_error(o, 107, "bad request: channel required");
    return NULL;
  }
  const chan_ns *ns;
  int r = chan_resolve(ctx->chans, *ch, *len, &ns);
  if (r != CHAN_OK) {
    write_channel_error(o, r);
    return NULL;
  }
  if (presence ? !ns->presence : !chan_has_history(ns)) {
    api_error(o, 108, presence ? "not available: presence is off for this namespace"
                               : "not available: history is off for this namespace");
    return NULL;
  }
  return ns;
}

static void history(const api_ctx *ctx, json_t *req, jw_buf *o) {
  const char *ch;
  size_t len;
  const chan_ns *ns = read_channel(ctx, req, 0, &ch, &len, o);
  if (!ns)
    return;
  jw_buf f;
  jw_init(&f);
  /* no cap on the server API (limit -1 is everything kept) */
  unsigned err = query_history(ctx->h, ch, len, ns, req, 0, mono_ms(), &f);
  if (err)
    api_error(o, err, err == 112 ? "unrecoverable position"
                      : err == 107 ? "bad request: limit, since {offset, epoch} or reverse"
                                   : "internal server error");
  else {
    jw_lit(o, "{\"result\":{");
    jw_raw(o, f.p, f.len);
    jw_lit(o, "}}");
  }
  jw_free(&f);
}

static void history_remove(const api_ctx *ctx, json_t *req, jw_buf *o) {
  const char *ch;
  size_t len;
  if (!read_channel(ctx, req, 0, &ch, &len, o))
    return;
  stream_remove_history(hub_streams(ctx->h), hub_hash(ch, len), ch, len);
  jw_lit(o, "{\"result\":{}}");
}

static void presence(const api_ctx *ctx, json_t *req, int stats, jw_buf *o) {
  const char *ch;
  size_t len;
  if (!read_channel(ctx, req, 1, &ch, &len, o))
    return;
  jw_lit(o, "{\"result\":{");
  if (stats && query_presence_stats(ctx->h, ch, len, o)) {
    jw_reset(o);
    api_error(o, 100, "internal server error");
    return;
  }
  if (!stats)
    query_presence(ctx->h, ch, len, o);
  jw_lit(o, "}}");
}

/* ---- targeted commands (run on every worker) ----------------------------- */

enum { CTL_SUBSCRIBE, CTL_UNSUBSCRIBE, CTL_DISCONNECT, CTL_REFRESH };

typedef struct {
  int op;
  char user[256];
  char client[40];
  char channel[256];
  uint16_t code;
  char reason[124];
  int64_t expire_at;
  int expired;
  char whitelist[16][40];
  int nwhite;
  size_t opts_len; /* subscribe: the request as JSON text in opts */
  char opts[];
} ctl_arg;

static int matches(const ctl_arg *a, cl_client *cl) {
  char id[37];
  hf_conn_id(cl_conn(cl), id);
  if (a->client[0] && strcmp(a->client, id) != 0)
    return 0;
  if (!a->client[0] && strcmp(a->user, cl_user(cl)) != 0)
    return 0;
  for (int i = 0; i < a->nwhite; i++)
    if (strcmp(a->whitelist[i], id) == 0)
      return 0;
  return 1;
}

static void run_ctl(hub_local *hl, void *arg) {
  const ctl_arg *a = arg;
  cl_list *list = hub_data(hl);
  cl_client *cl = list->head;
  while (cl) {
    cl_client *next = cl_next(cl); /* a disconnect may free cl */
    if (matches(a, cl)) {
      switch (a->op) {
      case CTL_SUBSCRIBE: {
        json_error_t je;
        json_t *opts = json_loadb(a->opts, a->opts_len, 0, &je);
        cl_server_subscribe(cl, a->channel, strlen(a->channel), opts);
        json_decref(opts);
        break;
      }
      case CTL_UNSUBSCRIBE:
        cl_server_unsubscribe(cl, a->channel, strlen(a->channel));
        break;
      case CTL_DISCONNECT:
        cl_disconnect(cl, a->code, a->reason);
        break;
      case CTL_REFRESH:
        if (a->expired)
          cl_disconnect(cl, 3005, "connection expired");
        else
          cl_server_refresh(cl, a->expire_at);
        break;
      }
    }
    cl = next;
  }
}

static int copy_field(char *dst, size_t cap, json_t *req, const char *k) {
  size_t n;
  const char *v = str_field(req, k, &n);
  if (!v) {
    dst[0] = 0;
    return json_object_get(req, k) ? -1 : 0; /* present but not a string */
  }
  if (n >= cap || memchr(v, 0, n))
    return -1;
  memcpy(dst, v, n);
  dst[n] = 0;
  return 0;
}

static void targeted_arg(const api_ctx *ctx, int op, json_t *req, ctl_arg *ap,
                         jw_buf *o);

static void targeted(const api_ctx *ctx, int op, json_t *req, jw_buf *o) {
  /* subscribe: the whole request travels to every worker as JSON text */
  char *opts = op == CTL_SUBSCRIBE ? jw_dump(req) : NULL;
  size_t opts_len = opts ? strlen(opts) : 0;
  ctl_arg *ap = calloc(1, sizeof *ap + opts_len);
  if (!ap || (op == CTL_SUBSCRIBE && !opts)) {
    free(ap);
    free(opts);
    api_error(o, 100, "internal server error");
    return;
  }
  memcpy(ap->opts, opts ? opts : "", opts_len);
  ap->opts_len = opts_len;
  free(opts);
  targeted_arg(ctx, op, req, ap, o);
  free(ap);
}

static void targeted_arg(const api_ctx *ctx, int op, json_t *req, ctl_arg *ap,
                         jw_buf *o) {
  ap->op = op;
  if (copy_field(ap->user, sizeof ap->user, req, "user") < 0 ||
      copy_field(ap->client, sizeof ap->client, req, "client") < 0 ||
      copy_field(ap->channel, sizeof ap->channel, req, "channel") < 0) {
    api_error(o, 107, "bad request: user, client and channel must be short strings");
    return;
  }
  if (!ap->user[0] && !ap->client[0]) {
    api_error(o, 107, "bad request: user or client required");
    return;
  }
  if (op == CTL_SUBSCRIBE || op == CTL_UNSUBSCRIBE) {
    const chan_ns *ns;
    if (!ap->channel[0]) {
      api_error(o, 107, "bad request: channel required");
      return;
    }
    int r = chan_resolve(ctx->chans, ap->channel, strlen(ap->channel), &ns);
    if (r != CHAN_OK) {
      api_error(o, (unsigned)r, r == CHAN_E_UNKNOWN ? "unknown channel" : "bad request: invalid channel name");
      return;
    }
  }
  if (op == CTL_DISCONNECT) {
    ap->code = 3503;
    snprintf(ap->reason, sizeof ap->reason, "force disconnect");
    json_t *d = json_object_get(req, "disconnect");
    if (json_is_object(d)) {
      json_t *c = json_object_get(d, "code");
      json_t *r = json_object_get(d, "reason");
      if (c && (!json_is_integer(c) || json_integer_value(c) < 3000 ||
                json_integer_value(c) > 4999)) {
        api_error(o, 107, "bad request: disconnect.code must be 3000-4999");
        return;
      }
      if (c)
        ap->code = (uint16_t)json_integer_value(c);
      if (json_is_string(r) && json_string_length(r))
        snprintf(ap->reason, sizeof ap->reason, "%s", json_string_value(r));
    }
    json_t *wl = json_object_get(req, "whitelist");
    size_t i;
    json_t *v;
    json_array_foreach(wl, i, v) {
      if (json_is_string(v) && ap->nwhite < 16)
        snprintf(ap->whitelist[ap->nwhite++], sizeof ap->whitelist[0], "%s",
                 json_string_value(v));
    }
  }
  if (op == CTL_REFRESH) {
    ap->expired = json_is_true(json_object_get(req, "expired"));
    json_t *ea = json_object_get(req, "expire_at");
    ap->expire_at = json_is_integer(ea) ? json_integer_value(ea) : 0;
  }
  json_t *since = json_object_get(req, "recover_since");
  if (op == CTL_SUBSCRIBE && since && !json_is_object(since)) {
    api_error(o, 107, "bad request: recover_since must be {\"offset\":N,\"epoch\":\"...\"}");
    return;
  }
  if (hub_broadcast_ctl(ctx->h, run_ctl, ap, sizeof *ap + ap->opts_len) < 0) {
    api_error(o, 100, "internal server error");
    return;
  }
  jw_lit(o, "{\"result\":{}}");
}

/* ---- channels / info ------------------------------------------------------ */

typedef struct {
  json_t *map;
  const char *pattern;
} chan_acc;

static void add_chan(void *arg, const char *ch, size_t len, uint32_t n) {
  chan_acc *acc = arg;
  char name[1024];
  if (len >= sizeof name)
    return;
  memcpy(name, ch, len);
  name[len] = 0;
  if (acc->pattern && *acc->pattern && fnmatch(acc->pattern, name, 0) != 0)
    return;
  json_t *cur = json_object_get(acc->map, name);
  json_int_t prev = cur ? json_integer_value(json_object_get(cur, "num_clients")) : 0;
  json_object_set_new(acc->map, name, json_pack("{s:I}", "num_clients", prev + n));
}

static void channels(const api_ctx *ctx, json_t *req, jw_buf *o) {
  size_t n;
  chan_acc acc = {json_object(), str_field(req, "pattern", &n)};
  hub_each_channel(ctx->h, add_chan, &acc);
  jw_lit(o, "{\"result\":{\"channels\":");
  jw_json(o, acc.map);
  jw_lit(o, "}}");
  json_decref(acc.map);
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void info(const api_ctx *ctx, jw_buf *o) {
  uint64_t nch, nsubs;
  hub_totals(ctx->h, &nch, &nsubs);
  /* a channel with subscribers on several workers is one channel */
  chan_acc acc = {json_object(), NULL};
  hub_each_channel(ctx->h, add_chan, &acc);
  nch = json_object_size(acc.map);
  json_decref(acc.map);
  char host[256] = "holdfast";
  gethostname(host, sizeof host - 1);
  jw_lit(o, "{\"result\":{\"nodes\":[{\"uid\":");
  jw_cstr(o, host);
  jw_lit(o, ",\"name\":");
  jw_cstr(o, host);
  jw_lit(o, ",\"version\":");
  jw_cstr(o, ctx->version);
  jw_lit(o, ",\"num_clients\":");
  jw_u64(o, ctx->num_clients(ctx->arg));
  jw_lit(o, ",\"num_channels\":");
  jw_u64(o, nch);
  jw_lit(o, ",\"num_subs\":");
  jw_u64(o, nsubs);
  jw_lit(o, ",\"uptime\":");
  jw_u64(o, (mono_ms() - ctx->t_start_ms) / 1000);
  jw_lit(o, "}]}}");
}

/* ---- dispatch ---------------------------------------------------------------- */

static void call(const api_ctx *ctx, hub_local *hl, int m, json_t *req,
                 jw_buf *o) {
  switch (m) {
  case M_PUBLISH:
  case M_BROADCAST:
    publish(ctx, hl, req, m == M_BROADCAST, o);
    return;
  case M_HISTORY:
    history(ctx, req, o);
    return;
  case M_HISTORY_REMOVE:
    history_remove(ctx, req, o);
    return;
  case M_PRESENCE:
  case M_PRESENCE_STATS:
    presence(ctx, req, m == M_PRESENCE_STATS, o);
    return;
  case M_SUBSCRIBE:
    targeted(ctx, CTL_SUBSCRIBE, req, o);
    return;
  case M_UNSUBSCRIBE:
    targeted(ctx, CTL_UNSUBSCRIBE, req, o);
    return;
  case M_DISCONNECT:
    targeted(ctx, CTL_DISCONNECT, req, o);
    return;
  case M_REFRESH:
    targeted(ctx, CTL_REFRESH, req, o);
    return;
  case M_CHANNELS:
    channels(ctx, req, o);
    return;
  case M_INFO:
    info(ctx, o);
    return;
  default:
    api_error(o, 107, "bad request");
  }
}

/* {"publish":{...}} -> {"publish":{...result...}} or {"error":{...}} */
static void batch(const api_ctx *ctx, hub_local *hl, json_t *req, jw_buf *o) {
  json_t *cmds = json_object_get(req, "commands");
  if (!json_is_array(cmds)) {
    api_error(o, 107, "bad request: commands required");
    return;
  }
  jw_lit(o, "{\"replies\":[");
  size_t i;
  json_t *c;
  json_array_foreach(cmds, i, c) {
    if (i)
      jw_char(o, ',');
    const char *k = NULL;
    json_t *body = NULL;
    if (json_is_object(c) && json_object_size(c) == 1) {
      void *it = json_object_iter(c);
      k = json_object_iter_key(it);
      body = json_object_iter_value(it);
    }
    int m = k ? api_method(k, strlen(k)) : -1;
    if (m < 0 || m == M_BATCH || !json_is_object(body)) {
      api_error(o, 107, "bad request: each command is {\"method\":{params}}");
      continue;
    }
    jw_buf one;
    jw_init(&one);
    call(ctx, hl, m, body, &one);
    /* turn {"result":X} into {"<method>":X}; errors stay as they are */
    if (jw_ok(&one) && one.len > 11 && memcmp(one.p, "{\"result\":", 10) == 0) {
      jw_lit(o, "{\"");
      jw_lit(o, names[m]);
      jw_lit(o, "\":");
      jw_raw(o, one.p + 10, one.len - 10);
    } else {
      jw_raw(o, one.p, one.len);
    }
    jw_free(&one);
  }
  jw_lit(o, "]}");
}

int api_call(const api_ctx *ctx, hub_local *hl, int method,
             const uint8_t *body, size_t len, jw_buf *out) {
  json_error_t je;
  json_t *req = json_loadb((const char *)body, len, 0, &je);
  if (!req || !json_is_object(req)) {
    json_decref(req);
    jw_lit(out, "Bad Request: the body must be a JSON object");
    return 400;
  }
  if (method == M_BATCH)
    batch(ctx, hl, req, out);
  else
    call(ctx, hl, method, req, out);
  json_decref(req);
  return 200;
}
