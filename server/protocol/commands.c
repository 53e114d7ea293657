/* SPDX-License-Identifier: MIT */
/* Channel commands of a real-time client that are not subscriptions:
 * publish (into the stream when the namespace keeps history), history,
 * presence and presence_stats, with the namespace permissions and the
 * protocol's errors (108 where the namespace disables the feature). */
#include "protocol/client_impl.h"
#include "metrics/metrics.h"

#include <stdlib.h>
#include <string.h>

#include "channels/pdata.h"
#include "channels/query.h"
#include "engine/engine.h"

/* Resolve ch or answer the error; NULL when answered. */
static const chan_ns *resolve(cl_client *cl, uint32_t id, const char *ch,
                              size_t len) {
  const chan_ns *ns;
  int r = chan_resolve(cl_policy_get(cl->list->cfg)->chans, ch, len, &ns);
  if (r != CHAN_OK) {
    cl__channel_error(cl, id, r);
    return NULL;
  }
  return ns;
}

static void on_published(void *arg, int status, const stream_pos *pos) {
  cl_op *op = arg;
  int token;
  cl_client *cl = cl__op_enter(op, &token);
  if (!cl)
    return;
  if (status == ENG_OK || status == ENG_DUPLICATE) {
    if (status == ENG_OK)
      MET_INC(MET_PUBLICATIONS_CLIENT);
    cl__begin_result(cl, op->id, "publish");
    cl__end_result(cl);
  } else {
    cl__error_reply(cl, op->id, 100, "internal server error", 1);
  }
  cl__op_done(op);
  cl__op_exit(cl, token);
}

static void publish_keyed(cl_client *cl, uint32_t id, const char *ch, size_t len,
                          const chan_ns *ns, const char *text, bool skip_history,
                          const char *idem, size_t idem_len);

void cl__cmd_publish(cl_client *cl, uint32_t id, json_t *req) {
  size_t len;
  const char *ch = cl__require_channel(cl, req, "publish", &len);
  if (!ch)
    return;
  json_t *type = json_object_get(req, "type");
  if (type && !(json_is_integer(type) && json_integer_value(type) == 0)) {
    cl__error_reply(cl, id, 108, "not available: map publications are not supported", 0);
    return;
  }
  if (json_is_true(json_object_get(req, "removed"))) {
    cl__error_reply(cl, id, 107, "bad request: removed is for map publications", 0);
    return;
  }
  const chan_ns *ns = resolve(cl, id, ch, len);
  if (!ns)
    return;
  json_t *data = json_object_get(req, "data");
  /* binary data (Protobuf clients only: pbcodec gives it as b64data) */
  json_t *b64 = cl->pb && !data ? json_object_get(req, "b64data") : NULL;
  if (!data && !json_is_string(b64)) {
    cl__error_reply(cl, id, 107, "bad request", 0);
    return;
  }
  if (cl__proxy_publish(cl, id, req, ch, len, ns))
    return; /* the backend decides, and may rewrite the data */
  cl_sub *own = cl__find_sub(cl, ch, len);
  int r = chan_can_publish(cl_policy_get(cl->list->cfg)->chans, ns, cl->user, own != NULL);
  if (r != CHAN_OK) {
    cl__log_denied(cl, "publish", ch, len, (unsigned)r);
    cl__error_reply(cl, id, (unsigned)r, "permission denied", 0);
    return;
  }
  /* idempotency_key (a holdfast extension used by the C SDK): applied once
   * per key within channel.idempotency_window, as in the server API */
  json_t *key = json_object_get(req, "idempotency_key");
  if (key && (!json_is_string(key) || json_string_length(key) > 256)) {
    cl__error_reply(cl, id, 107, "bad request: idempotency_key must be a string of at most 256 bytes", 0);
    return;
  }
  char *text = data ? jw_dump(data) /* minified: never a raw newline */
                    : pd_from_b64(json_string_value(b64), json_string_length(b64));
  if (!text) {
    cl__error_reply(cl, id, 100, "internal server error", 1);
    return;
  }
  publish_keyed(cl, id, ch, len, ns, text, false, key ? json_string_value(key) : NULL,
                key ? json_string_length(key) : 0);
  free(text);
}

void cl__publish_allowed(cl_client *cl, uint32_t id, const char *ch, size_t len,
                         const chan_ns *ns, const char *text, bool skip_history) {
  publish_keyed(cl, id, ch, len, ns, text, skip_history, NULL, 0);
}

static void publish_keyed(cl_client *cl, uint32_t id, const char *ch, size_t len,
                          const chan_ns *ns, const char *text, bool skip_history,
                          const char *idem, size_t idem_len) {
  cl_sub *own = cl__find_sub(cl, ch, len);
  /* A publication into a channel this worker owns may be delivered at
   * once, possibly to this very client: the replies so far (e.g. its
   * subscribe reply) must leave first, so no push precedes its subscribe
   * reply. */
  cl__flush_replies(cl);
  /* info: the publisher's ClientInfo, with chan_info of its own
   * subscription to the channel if any */
  char *info = own && cl__sub_chan_info(own) ? cl__sub_info(cl, own) : NULL;
  const char *pinfo = info ? info : cl__client_info(cl);
  if (!pinfo) {
    cl__error_reply(cl, id, 100, "internal server error", 1);
    return;
  }
  stream_opts so = query_stream_opts(ns);
  hub_pub p = {ch, len, text, pinfo, NULL, strlen(text), strlen(pinfo), 0,
               chan_has_history(ns) && !skip_history ? &so : NULL,
               idem_len ? idem : NULL, idem_len, ns->delta_publish, ns->delta_fossil};
  cl_op *op = cl__op_new(cl, sizeof *op, id);
  if (!op || eng_publish(cl->list->cfg->eng, cl->list->hl, &p, on_published, op) < 0) {
    if (op)
      cl__op_done(op);
    cl__error_reply(cl, id, 100, "internal server error", 1);
  }
  free(info);
}

/* The checks history and presence share: channel, namespace, the feature
 * being on (108) and the permission (103). NULL when answered. */
static const chan_ns *read_access(cl_client *cl, uint32_t id, json_t *req,
                                  const char *cmd, int presence, const char **ch,
                                  size_t *len) {
  if (!(*ch = cl__require_channel(cl, req, cmd, len)))
    return NULL;
  const chan_ns *ns = resolve(cl, id, *ch, *len);
  if (!ns)
    return NULL;
  if (presence ? !ns->presence : !chan_has_history(ns)) {
    cl__error_reply(cl, id, 108, "not available", 0);
    return NULL;
  }
  bool subscribed = cl__find_sub(cl, *ch, *len) != NULL;
  int r = presence ? chan_can_presence(cl_policy_get(cl->list->cfg)->chans, ns, cl->user, subscribed)
                   : chan_can_history(cl_policy_get(cl->list->cfg)->chans, ns, cl->user, subscribed);
  if (r != CHAN_OK) {
    cl__log_denied(cl, cmd, *ch, *len, (unsigned)r);
    cl__error_reply(cl, id, (unsigned)r, "permission denied", 0);
    return NULL;
  }
  return ns;
}

typedef struct {
  cl_op op;
  size_t epoch_len;
  char epoch[32]; /* since.epoch (never longer than ours if it can match) */
} history_op;

static void on_history(void *arg, int status, const eng_read_result *r) {
  history_op *h = arg;
  int token;
  cl_client *cl = cl__op_enter(&h->op, &token);
  if (!cl)
    return;
  jw_buf fields;
  jw_init(&fields);
  unsigned err = status != ENG_OK ? 100 : eng_history_result(r, h->epoch, h->epoch_len, &fields);
  if (!err && !jw_ok(&fields))
    err = 100;
  if (!err && r->binary && !cl->pb) { /* JSON cannot carry binary data */
    cl__binary_for_json(cl, "history", NULL, 0);
  } else if (err) {
    cl__error_reply(cl, h->op.id, err, err == 112 ? "unrecoverable position" : "internal server error",
                    err == 100);
  } else {
    cl__begin_result(cl, h->op.id, "history");
    jw_raw(cl__out(cl), fields.p, fields.len);
    cl__end_result(cl);
  }
  jw_free(&fields);
  cl__op_done(&h->op);
  cl__op_exit(cl, token);
}

void cl__cmd_history(cl_client *cl, uint32_t id, json_t *req) {
  const char *ch;
  size_t len;
  const chan_ns *ns = read_access(cl, id, req, "history", 0, &ch, &len);
  if (!ns)
    return;
  eng_read_req rq;
  const char *epoch;
  size_t epoch_len;
  unsigned err = eng_history_request(req, cl->list->cfg->history_max_publication_limit, &rq,
                                     &epoch, &epoch_len);
  if (err) {
    cl__error_reply(cl, id, err, "bad request", 0);
    return;
  }
  history_op *h = (history_op *)cl__op_new(cl, sizeof *h, id);
  if (!h) {
    cl__error_reply(cl, id, 100, "internal server error", 1);
    return;
  }
  if (epoch_len < sizeof h->epoch) {
    h->epoch_len = epoch_len;
    memcpy(h->epoch, epoch ? epoch : "", epoch_len);
  } else { /* too long to be an epoch of ours: never matches (112) */
    h->epoch_len = 1;
    h->epoch[0] = '?';
  }
  stream_opts so = query_stream_opts(ns);
  if (eng_read(cl->list->cfg->eng, cl->list->hl, ch, len, &so, &rq, on_history, h) < 0) {
    cl__op_done(&h->op);
    cl__error_reply(cl, id, 100, "internal server error", 1);
  }
}

typedef struct {
  cl_op op;
  const char *cmd;
} presence_op;

static void on_presence(void *arg, int status, const jw_buf *fields) {
  presence_op *p = arg;
  int token;
  cl_client *cl = cl__op_enter(&p->op, &token);
  if (!cl)
    return;
  if (status != ENG_OK) {
    cl__error_reply(cl, p->op.id, 100, "internal server error", 1);
  } else {
    cl__begin_result(cl, p->op.id, p->cmd);
    jw_raw(cl__out(cl), fields->p, fields->len);
    cl__end_result(cl);
  }
  cl__op_done(&p->op);
  cl__op_exit(cl, token);
}

void cl__cmd_presence(cl_client *cl, uint32_t id, json_t *req, int stats) {
  const char *ch;
  size_t len;
  const char *cmd = stats ? "presence_stats" : "presence";
  if (!read_access(cl, id, req, cmd, 1, &ch, &len))
    return;
  presence_op *p = (presence_op *)cl__op_new(cl, sizeof *p, id);
  if (!p) {
    cl__error_reply(cl, id, 100, "internal server error", 1);
    return;
  }
  p->cmd = cmd;
  if (eng_presence(cl->list->cfg->eng, cl->list->hl, ch, len, stats, on_presence, p) < 0) {
    cl__op_done(&p->op);
    cl__error_reply(cl, id, 100, "internal server error", 1);
  }
}
