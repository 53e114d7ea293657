/* SPDX-License-Identifier: MIT */
/* Server HTTP API methods (see api.h). A call is a list of items (one for
 * a plain method, one per channel of a broadcast, one per command of a
 * batch); each is answered by the engine at once (memory) or later (Redis),
 * and the body is assembled in order when the last one is in. Targeted
 * commands (subscribe, unsubscribe, disconnect, refresh) go to every worker
 * of every node through the engine, which acts on its own matching
 * connections; the call answers once they are handed over, as Centrifugo
 * answers once they are handed to its broker. */
#include "http/api.h"
#include "metrics/metrics.h"

#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "channels/pdata.h"
#include "channels/query.h"
#include "engine/engine.h"
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
  met_api_error_inc(code);
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
  if (data) {
    p->data = jw_dump(data);
  } else if (json_is_string(b64)) {
    /* base64 of a JSON document is that document (JSON text, as before);
     * anything else is binary data (channels/pdata.h): Protobuf
     * subscribers get the bytes, JSON subscribers are closed with 3506 */
    const char *t = json_string_value(b64);
    size_t n = json_string_length(b64);
    if (!(p->data = jw_b64_json(t, n)) && !(p->data = pd_from_b64(t, n)))
      return "bad request: b64data must be standard base64 (with padding)";
  }
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


/* ---- the asynchronous request --------------------------------------------- */

typedef struct api_req api_req;

typedef struct {
  api_req *r;
  int method;     /* batch: the item's method (its reply is named after it) */
  size_t epoch_len;
  char epoch[32]; /* history: since.epoch */
  jw_buf out;     /* {"result":..} or {"error":..} */
} api_item;

struct api_req {
  const api_ctx *ctx;
  hub_local *hl;
  api_done_fn done;
  void *arg;
  int method;
  int starting; /* items are still being started: do not finish yet */
  size_t n, pending;
  api_item *it;
};

static void finish(api_req *r);

static void item_done(api_item *it) {
  api_req *r = it->r;
  if (!--r->pending && !r->starting)
    finish(r);
}

static void item_error(api_item *it, unsigned code, const char *msg) {
  api_error(&it->out, code, msg);
  item_done(it);
}

/* ---- publish and broadcast ---------------------------------------------------- */

static void on_published(void *arg, int status, const stream_pos *pos) {
  api_item *it = arg;
  if (status != ENG_OK && status != ENG_DUPLICATE) {
    item_error(it, 100, status == ENG_ETEMP
                            ? "internal server error: the broker is unavailable, retry"
                            : "internal server error");
    return;
  }
  if (status == ENG_OK)
    MET_INC(MET_PUBLICATIONS_API);
  jw_lit(&it->out, "{\"result\":{");
  if (pos->offset) {
    char ep[STREAM_EPOCH_LEN + 1];
    stream_epoch_text(pos->epoch, ep);
    jw_lit(&it->out, "\"offset\":");
    jw_u64(&it->out, pos->offset);
    jw_lit(&it->out, ",\"epoch\":");
    jw_cstr(&it->out, ep);
  }
  jw_lit(&it->out, "}}");
  item_done(it);
}

static void publish_one(api_item *it, const char *ch, size_t len, const pub_req *p) {
  const api_ctx *ctx = it->r->ctx;
  if (!ch || !len) {
    item_error(it, 107, "bad request: channel required");
    return;
  }
  const chan_ns *ns;
  int rr = chan_resolve(api_chans(ctx), ch, len, &ns);
  if (rr != CHAN_OK) {
    write_channel_error(&it->out, rr);
    item_done(it);
    return;
  }
  stream_opts so = query_stream_opts(ns);
  hub_pub hp = {ch, len, p->data, NULL, p->tags, strlen(p->data), 0,
                p->tags ? strlen(p->tags) : 0,
                chan_has_history(ns) && !p->skip_history ? &so : NULL,
                p->idem_key, p->idem_len, p->delta || ns->delta_publish,
                ns->delta_fossil};
  hub_hold(it->r->hl); /* the caller waits for no push: sweep runs of them */
  if (eng_publish(ctx->eng, it->r->hl, &hp, on_published, it) < 0)
    item_error(it, 100, "internal server error");
}

/* ---- history and presence -------------------------------------------------------- */

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
  int r = chan_resolve(api_chans(ctx), *ch, *len, &ns);
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


static void on_history(void *arg, int status, const eng_read_result *res) {
  api_item *it = arg;
  jw_buf f;
  jw_init(&f);
  unsigned err = status != ENG_OK ? 100 : eng_history_result(res, it->epoch, it->epoch_len, &f);
  if (err) {
    api_error(&it->out, err, err == 112 ? "unrecoverable position" : "internal server error");
  } else {
    jw_lit(&it->out, "{\"result\":{");
    jw_raw(&it->out, f.p, f.len);
    jw_lit(&it->out, "}}");
  }
  jw_free(&f);
  item_done(it);
}

static void history(api_item *it, json_t *req) {
  const char *ch;
  size_t len;
  const chan_ns *ns = read_channel(it->r->ctx, req, 0, &ch, &len, &it->out);
  if (!ns) {
    item_done(it);
    return;
  }
  eng_read_req rq;
  const char *epoch;
  size_t epoch_len;
  /* no cap on the server API (limit -1 is everything kept) */
  if (eng_history_request(req, 0, &rq, &epoch, &epoch_len)) {
    item_error(it, 107, "bad request: limit, since {offset, epoch} or reverse");
    return;
  }
  if (epoch_len < sizeof it->epoch) {
    it->epoch_len = epoch_len;
    memcpy(it->epoch, epoch ? epoch : "", epoch_len);
  } else {
    it->epoch_len = 1;
    it->epoch[0] = '?'; /* too long to be an epoch of ours: never matches */
  }
  stream_opts so = query_stream_opts(ns);
  if (eng_read(it->r->ctx->eng, it->r->hl, ch, len, &so, &rq, on_history, it) < 0)
    item_error(it, 100, "internal server error");
}

static void on_removed(void *arg, int status) {
  api_item *it = arg;
  if (status != ENG_OK)
    api_error(&it->out, 100, "internal server error");
  else
    jw_lit(&it->out, "{\"result\":{}}");
  item_done(it);
}

static void history_remove(api_item *it, json_t *req) {
  const char *ch;
  size_t len;
  if (!read_channel(it->r->ctx, req, 0, &ch, &len, &it->out)) {
    item_done(it);
    return;
  }
  if (eng_remove_history(it->r->ctx->eng, it->r->hl, ch, len, on_removed, it) < 0)
    item_error(it, 100, "internal server error");
}

static void on_presence(void *arg, int status, const jw_buf *fields) {
  api_item *it = arg;
  if (status != ENG_OK) {
    api_error(&it->out, 100, "internal server error");
  } else {
    jw_lit(&it->out, "{\"result\":{");
    jw_raw(&it->out, fields->p, fields->len);
    jw_lit(&it->out, "}}");
  }
  item_done(it);
}

static void presence(api_item *it, json_t *req, int stats) {
  const char *ch;
  size_t len;
  if (!read_channel(it->r->ctx, req, 1, &ch, &len, &it->out)) {
    item_done(it);
    return;
  }
  if (eng_presence(it->r->ctx->eng, it->r->hl, ch, len, stats, on_presence, it) < 0)
    item_error(it, 100, "internal server error");
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

void api_run_ctl(hub_local *hl, void *arg) {
  const ctl_arg *a = arg;
  cl_list *list = hub_data(hl);
  cl_client *cl = cl_list_first(list);
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

static void targeted_arg(const api_ctx *ctx, hub_local *hl, int op, json_t *req, ctl_arg *ap,
                         jw_buf *o);

static void targeted(const api_ctx *ctx, hub_local *hl, int op, json_t *req, jw_buf *o) {
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
  targeted_arg(ctx, hl, op, req, ap, o);
  free(ap);
}

static void targeted_arg(const api_ctx *ctx, hub_local *hl, int op, json_t *req, ctl_arg *ap,
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
    int r = chan_resolve(api_chans(ctx), ap->channel, strlen(ap->channel), &ns);
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
  if (eng_broadcast_ctl(ctx->eng, hl, api_run_ctl, ap, sizeof *ap + ap->opts_len) < 0) {
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

void api_local_channels(void *arg, const char *pattern, json_t *map) {
  const api_ctx *ctx = arg;
  chan_acc acc = {map, pattern};
  hub_each_channel(ctx->h, add_chan, &acc);
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void api_node_info(void *arg, jw_buf *o) {
  const api_ctx *ctx = arg;
  uint64_t nch, nsubs;
  hub_totals(ctx->h, &nch, &nsubs);
  /* a channel with subscribers on several workers is one channel */
  chan_acc acc = {json_object(), NULL};
  hub_each_channel(ctx->h, add_chan, &acc);
  nch = json_object_size(acc.map);
  json_decref(acc.map);
  jw_lit(o, "{\"uid\":");
  jw_cstr(o, ctx->node_uid);
  jw_lit(o, ",\"name\":");
  jw_cstr(o, ctx->node_name);
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
  jw_lit(o, "}");
}

/* nodes: an array of node objects; channels: the merged channel map */
static void on_cluster(void *arg, int status, json_t *v, const char *key) {
  api_item *it = arg;
  if (status != ENG_OK || !v) {
    api_error(&it->out, 100, "internal server error");
  } else {
    jw_lit(&it->out, "{\"result\":{\"");
    jw_raw(&it->out, key, strlen(key));
    jw_lit(&it->out, "\":");
    jw_json(&it->out, v);
    jw_lit(&it->out, "}}");
  }
  item_done(it);
}

static void on_nodes(void *arg, int status, json_t *v) { on_cluster(arg, status, v, "nodes"); }
static void on_channels(void *arg, int status, json_t *v) {
  on_cluster(arg, status, v, "channels");
}

static void channels(api_item *it, json_t *req) {
  size_t n;
  const char *pattern = str_field(req, "pattern", &n);
  if (pattern && n >= 256) {
    item_error(it, 107, "bad request: pattern longer than 255 bytes");
    return;
  }
  if (eng_channels(it->r->ctx->eng, it->r->hl, pattern, on_channels, it) < 0)
    item_error(it, 100, "internal server error");
}

static void info(api_item *it) {
  if (eng_nodes(it->r->ctx->eng, it->r->hl, on_nodes, it) < 0)
    item_error(it, 100, "internal server error");
}

/* ---- dispatch ---------------------------------------------------------------- */

/* Start item it: method m with params req. Every path ends in item_done. */
static void start_item(api_item *it, int m, json_t *req) {
  const api_ctx *ctx = it->r->ctx;
  switch (m) {
  case M_PUBLISH: {
    pub_req p;
    const char *bad = pub_req_parse(req, &p);
    size_t n;
    const char *ch = str_field(req, "channel", &n);
    if (bad)
      item_error(it, 107, bad);
    else
      publish_one(it, ch, n, &p); /* the engine copies what it keeps */
    pub_req_free(&p);
    return;
  }
  case M_HISTORY:
    history(it, req);
    return;
  case M_HISTORY_REMOVE:
    history_remove(it, req);
    return;
  case M_PRESENCE:
  case M_PRESENCE_STATS:
    presence(it, req, m == M_PRESENCE_STATS);
    return;
  case M_SUBSCRIBE:
    targeted(ctx, it->r->hl, CTL_SUBSCRIBE, req, &it->out);
    break;
  case M_UNSUBSCRIBE:
    targeted(ctx, it->r->hl, CTL_UNSUBSCRIBE, req, &it->out);
    break;
  case M_DISCONNECT:
    targeted(ctx, it->r->hl, CTL_DISCONNECT, req, &it->out);
    break;
  case M_REFRESH:
    targeted(ctx, it->r->hl, CTL_REFRESH, req, &it->out);
    break;
  case M_CHANNELS:
    channels(it, req);
    return;
  case M_INFO:
    info(it);
    return;
  default:
    api_error(&it->out, 107, "bad request");
  }
  item_done(it);
}

static api_req *new_req(const api_ctx *ctx, hub_local *hl, int method, size_t n,
                        api_done_fn done, void *arg) {
  api_req *r = calloc(1, sizeof *r);
  if (!r || !(r->it = calloc(n ? n : 1, sizeof *r->it))) {
    free(r);
    return NULL;
  }
  r->ctx = ctx;
  r->hl = hl;
  r->method = method;
  r->done = done;
  r->arg = arg;
  r->n = n;
  r->pending = n;
  r->starting = 1;
  for (size_t i = 0; i < n; i++) {
    r->it[i].r = r;
    jw_init(&r->it[i].out);
  }
  return r;
}

/* The body: the single item (plain methods, and a broadcast or batch whose
 * request was refused as a whole), {"result":{"responses":[..]}}
 * (broadcast) or {"replies":[..]} (batch, not wrapped in result, each
 * reply named after its method: {"publish":{..}} or {"error":{..}}). */
static void finish(api_req *r) {
  jw_buf body;
  jw_init(&body);
  if (r->method == M_BROADCAST || r->method == M_BATCH) {
    jw_lit(&body, r->method == M_BATCH ? "{\"replies\":[" : "{\"result\":{\"responses\":[");
    for (size_t i = 0; i < r->n; i++) {
      jw_buf *o = &r->it[i].out;
      if (i)
        jw_char(&body, ',');
      if (r->method == M_BATCH && jw_ok(o) && o->len > 11 &&
          memcmp(o->p, "{\"result\":", 10) == 0) {
        jw_lit(&body, "{\"");
        jw_lit(&body, names[r->it[i].method]);
        jw_lit(&body, "\":");
        jw_raw(&body, o->p + 10, o->len - 10);
      } else {
        jw_raw(&body, o->p, o->len);
      }
    }
    jw_lit(&body, r->method == M_BATCH ? "]}" : "]}}");
  } else {
    jw_raw(&body, r->it[0].out.p, r->it[0].out.len);
  }
  for (size_t i = 0; i < r->n; i++)
    if (!jw_ok(&r->it[i].out))
      body.oom = 1;
  r->done(r->arg, jw_ok(&body) ? 200 : 500, &body);
  jw_free(&body);
  for (size_t i = 0; i < r->n; i++)
    jw_free(&r->it[i].out);
  free(r->it);
  free(r);
}

/* A whole-request answer (bad params of a broadcast or batch). */
static void answer_now(const api_ctx *ctx, hub_local *hl, unsigned code, const char *msg,
                       api_done_fn done, void *arg) {
  api_req *r = new_req(ctx, hl, M_PUBLISH, 1, done, arg);
  if (!r) {
    jw_buf none = {0};
    done(arg, 500, &none);
    return;
  }
  r->starting = 0;
  item_error(&r->it[0], code, msg);
}

/* broadcast: its own request of one publish per channel; done(arg, ..) gets
 * {"result":{"responses":[..]}} or the error of the whole request. */
static void broadcast(const api_ctx *ctx, hub_local *hl, json_t *req, api_done_fn done,
                      void *arg) {
  pub_req p;
  const char *bad = pub_req_parse(req, &p);
  json_t *chs = json_object_get(req, "channels");
  if (!bad && (!json_is_array(chs) || !json_array_size(chs)))
    bad = "bad request: channels required";
  api_req *r = NULL;
  if (bad) {
    answer_now(ctx, hl, 107, bad, done, arg);
  } else if ((r = new_req(ctx, hl, M_BROADCAST, json_array_size(chs), done, arg))) {
    size_t i;
    json_t *v;
    json_array_foreach(chs, i, v) {
      publish_one(&r->it[i], json_is_string(v) ? json_string_value(v) : NULL,
                  json_is_string(v) ? json_string_length(v) : 0, &p);
    }
    r->starting = 0;
    if (!r->pending)
      finish(r);
  } else {
    jw_buf none = {0};
    done(arg, 500, &none);
  }
  pub_req_free(&p);
}

/* A broadcast inside a batch answers into its batch item. */
static void nested_done(void *arg, int status, const jw_buf *body) {
  api_item *it = arg;
  if (status != 200)
    api_error(&it->out, 100, "internal server error");
  else
    jw_raw(&it->out, body->p, body->len);
  item_done(it);
}

void api_call(const api_ctx *ctx, hub_local *hl, int method, const uint8_t *body,
              size_t len, api_done_fn done, void *arg) {
  MET_INC(MET_API_REQUESTS);
  json_error_t je;
  json_t *req = json_loadb((const char *)body, len, 0, &je);
  if (!req || !json_is_object(req)) {
    json_decref(req);
    jw_buf b;
    jw_init(&b);
    jw_lit(&b, "Bad Request: the body must be a JSON object");
    done(arg, 400, &b);
    jw_free(&b);
    return;
  }
  api_req *r = NULL;
  int answered = 0; /* the request was refused as a whole */
  if (method == M_BATCH) {
    json_t *cmds = json_object_get(req, "commands");
    if (!json_is_array(cmds)) {
      answer_now(ctx, hl, 107, "bad request: commands required", done, arg);
      answered = 1;
    } else if ((r = new_req(ctx, hl, M_BATCH, json_array_size(cmds), done, arg))) {
      size_t i;
      json_t *c;
      json_array_foreach(cmds, i, c) {
        const char *k = NULL;
        json_t *params = NULL;
        if (json_is_object(c) && json_object_size(c) == 1) {
          void *iter = json_object_iter(c);
          k = json_object_iter_key(iter);
          params = json_object_iter_value(iter);
        }
        int m = k ? api_method(k, strlen(k)) : -1;
        r->it[i].method = m;
        if (m < 0 || m == M_BATCH || !json_is_object(params))
          item_error(&r->it[i], 107, "bad request: each command is {\"method\":{params}}");
        else if (m == M_BROADCAST)
          broadcast(ctx, hl, params, nested_done, &r->it[i]);
        else
          start_item(&r->it[i], m, params);
      }
    }
  } else if (method == M_BROADCAST) {
    broadcast(ctx, hl, req, done, arg);
    answered = 1;
  } else if ((r = new_req(ctx, hl, method, 1, done, arg))) {
    start_item(&r->it[0], method, req);
  }
  json_decref(req);
  if (r) {
    r->starting = 0;
    if (!r->pending)
      finish(r);
  } else if (!answered) { /* out of memory */
    jw_buf none = {0};
    done(arg, 500, &none);
  }
}
