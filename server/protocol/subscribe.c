/* SPDX-License-Identifier: MIT */
/* Subscriptions of a real-time client: subscribe (client-side, server-side
 * from the token or the server API), the stream position and recovery
 * (reference section 5: the history read and the subscriber's position are
 * taken together, so that live delivery continues right after the
 * recovered publications with no gap and no duplicate), join/leave and
 * presence, subscription expiry, insufficient state, and the slow-consumer
 * policy that drops queued publications and lets the client recover. */
#include "protocol/client_impl.h"
#include "metrics/metrics.h"
#include "evproxy/evproxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channels/query.h"
#include "engine/engine.h"
#include "hf/conn.h"
#include "hf/frame.h"


/* Everything that decides one subscription. */
typedef struct {
  const char *ch;
  size_t len;
  const chan_ns *ns;
  json_t *req;      /* SubscribeRequest (or connect.subs entry); may be NULL */
  json_t *override; /* token override object or NULL */
  char *chan_info;  /* owned until moved into the subscription */
  char *data;       /* result data (JSON text) or NULL; the caller's */
  int64_t expire_at;
  uint8_t px_refresh; /* the sub_refresh proxy prolongs it */
  uint8_t granted;    /* by a subscription token or the subscribe proxy */
} sub_spec;

/* ---- the subscription list --------------------------------------------- */

cl_sub *cl__find_sub(cl_client *cl, const char *ch, size_t len) {
  for (uint32_t i = 0; i < cl->nsubs; i++) {
    size_t n;
    const char *name = hub_chan_name(cl__subs(cl)[i]->hs.ch, &n);
    if (n == len && memcmp(name, ch, len) == 0)
      return cl__subs(cl)[i];
  }
  return NULL;
}

char *cl__sub_info(cl_client *cl, const cl_sub *s) {
  const char *ci = cl__client_info(cl);
  if (!ci)
    return NULL;
  size_t n = strlen(ci);
  const char *chan_info = cl__sub_chan_info(s);
  if (!chan_info)
    return strdup(ci);
  /* {"user":..,"client":..[,"conn_info":..]} + ,"chan_info":X } */
  size_t cl_len = strlen(chan_info);
  char *p = malloc(n + cl_len + 14);
  if (!p)
    return NULL;
  memcpy(p, ci, n - 1);
  memcpy(p + n - 1, ",\"chan_info\":", 13);
  memcpy(p + n + 12, chan_info, cl_len);
  p[n + 12 + cl_len] = '}';
  p[n + 13 + cl_len] = 0;
  return p;
}

void cl__refresh_sub_infos(cl_client *cl) {
  for (uint32_t i = 0; i < cl->nsubs; i++) {
    cl_sub *s = cl__subs(cl)[i];
    if (s->hs.info) {
      char *info = cl__sub_info(cl, s);
      if (info)
        hub_sub_set_info(cl->list->hl, &s->hs, info);
    }
  }
}

static void free_pending(cl_sub *s);
static void forget_op(cl_sub *s);

static void free_sub(cl_sub *s) {
  free_pending(s);
  free(s->hs.info);
  if (s->x)
    free(s->x->tok.chan_info);
  free(s->x);
  free(s);
}

void cl__remove_sub(cl_client *cl, cl_sub *s) {
  size_t len;
  const char *ch = hub_chan_name(s->hs.ch, &len);
  eng *e = cl->list->cfg->eng;
  forget_op(s); /* a subscribe still being established learns it is gone */
  if (cl__sub_has(s, CLS_EMIT_JOIN_LEAVE) && s->hs.info && !(s->hs.flags & HUB_SUB_PENDING))
    eng_join_leave(e, cl->list->hl, ch, len, s->hs.info, strlen(s->hs.info), 1); /* posted */
  if (s->hs.flags & HUB_SUB_PRESENCE)
    eng_presence_update(e, cl->list->hl, ch, len, &s->hs, 0);
  if (cl__sub_has(s, CLS_NODE_REF))
    eng_node_unsubscribe(e, cl->list->hl, ch, len);
  hub_unsubscribe(cl->list->hl, &s->hs);
  for (uint32_t i = 0; i < cl->nsubs; i++)
    if (cl__subs(cl)[i] == s) {
      cl__subs(cl)[i] = cl__subs(cl)[--cl->nsubs];
      break;
    }
  free_sub(s);
}

static int add_to_list(cl_client *cl, cl_sub *s) {
  /* most have one, in the client (sub0); an array, once made, holds at
   * least the power of two at or above nsubs (it never shrinks): full
   * when nsubs is a power of two */
  uint32_t n = cl->nsubs;
  if (n && !(n & (n - 1))) {
    if (n >= UINT32_MAX / 2)
      return -1;
    cl_sub **ns = cl->subs_arr ? realloc(cl->subv, 2 * n * sizeof *ns)
                               : malloc(2 * n * sizeof *ns);
    if (!ns)
      return -1;
    if (!cl->subs_arr)
      ns[0] = cl->sub0;
    cl->subv = ns;
    cl->subs_arr = 1;
  }
  cl__subs(cl)[cl->nsubs++] = s;
  return 0;
}

void cl__unsubscribe_push(cl_client *cl, cl_sub *s, unsigned code,
                          const char *reason) {
  size_t len;
  const char *ch = hub_chan_name(s->hs.ch, &len);
  jw_buf b;
  jw_init(&b);
  jw_lit(&b, "{\"push\":{\"channel\":");
  jw_str(&b, ch, len); /* before the removal: it may free the channel */
  cl__remove_sub(cl, s);
  jw_lit(&b, ",\"unsubscribe\":{\"code\":");
  jw_u64(&b, code);
  jw_lit(&b, ",\"reason\":");
  jw_cstr(&b, reason);
  jw_lit(&b, "}}}");
  if (jw_ok(&b))
    cl__send(cl, b.p, b.len);
  jw_free(&b);
}

void cl__set_sub_expiry(cl_client *cl, cl_sub *s, int64_t expire_at) {
  if (cl_policy_get(cl->list->cfg)->insecure)
    expire_at = 0;
  if (!expire_at && !s->x)
    return; /* nothing to forget */
  if (!cl__sub_x(s)) {
    cl_disconnect(cl, 3004, "internal server error"); /* cannot keep the expiry */
    return;
  }
  cl_sub_tok *t = &s->x->tok;
  t->expire_at = expire_at;
  t->deadline = 0;
  t->refresh_due = 0;
  if (t->expire_at) {
    int64_t left = t->expire_at - cl__wall_s();
    uint64_t now = hf_loop_now(hf_conn_loop(cl->conn));
    t->deadline = now + (uint64_t)(left > 0 ? left : 0) * 1000 +
                  cl->list->cfg->expired_sub_close_delay_ms;
    if (t->px_refresh) { /* the backend is asked when it expires, and is
                            * given its timeout even with a short delay */
      t->refresh_due = now + (uint64_t)(left > 0 ? left : 0) * 1000 + 1;
      uint64_t last = t->refresh_due + cl->list->cfg->px->max_timeout_ms + 1000;
      if (t->deadline < last)
        t->deadline = last;
    }
  }
  cl__sub_x_trim(s); /* an expiry forgotten may leave nothing in it */
}

int cl__check_sub_deadlines(cl_client *cl, uint64_t now) {
  for (uint32_t i = cl->nsubs; i > 0; i--) {
    cl_sub *s = cl__subs(cl)[i - 1];
    if (!s->x)
      continue; /* no expiry */
    if (s->x->tok.refresh_due && now >= s->x->tok.refresh_due) {
      s->x->tok.refresh_due = 0;
      cl__proxy_sub_refresh(cl, s);
      if (cl->state != CS_CONNECTED)
        return -1;
    }
    if (!s->x->tok.deadline || now < s->x->tok.deadline)
      continue;
    if (cl__sub_has(s, CLS_SERVER_SIDE)) { /* a server-side subscription cannot be redone */
      cl_disconnect(cl, 3006, "subscription expired");
      return -1;
    }
    MET_INC(MET_TOKEN_EXPIRED);
    cl__unsubscribe_push(cl, s, 2501, "subscription expired");
    if (cl->state != CS_CONNECTED)
      return -1;
  }
  return 0;
}

/* ---- establishing a subscription ----------------------------------------------
 *
 * establish() registers the subscription at once (HUB_SUB_PENDING: pushes
 * that arrive meanwhile are held, in order), asks the engine to route the
 * channel's publications to this worker (eng_node_subscribe) and, for a
 * positioned subscription, reads the stream; finish() writes the result,
 * sets the position and replays the held pushes through the position
 * check, so live delivery continues right after the recovered
 * publications. With the memory engine all of it happens before
 * establish() returns; with Redis it completes later. */

enum { SO_CLIENT, SO_SERVER_SIDE, SO_API };

typedef struct {
  cl_op op;
  cl_sub *s; /* NULL if the subscription went away meanwhile */
  uint8_t kind, positioning, recovery, recover, delta, cache, reject;
  uint64_t req_offset;
  char req_epoch[STREAM_EPOCH_LEN + 8];
  size_t req_epoch_len;
  char *data; /* the result's data (JSON text) or NULL */
  stream_opts so;
  size_t len;
  char ch[];
} sub_op;

static void free_pending(cl_sub *s) {
  cl_pendq *q = cl__sub_pq(s);
  for (uint32_t i = 0; q && i < q->n; i++)
    hub_frames_unref(&q->f[i].f);
  free(q);
  if (s->x)
    s->x->pq = NULL;
}

cl_sub_x *cl__sub_x(cl_sub *s) {
  if (!s->x)
    s->x = calloc(1, sizeof *s->x);
  return s->x;
}

void cl__sub_x_trim(cl_sub *s) {
  cl_sub_x *x = s->x;
  if (x && !x->op && !x->pq && !x->tok.chan_info && !x->tok.expire_at && !x->tok.deadline &&
      !x->tok.refresh_due && !x->tok.px_refresh) {
    free(x);
    s->x = NULL;
  }
}

/* The hub's pending callback: hold the push until the position is known.
 * Bounded: over 4,096 held pushes the subscription stops receiving, and
 * the replay reports the gap (insufficient state) instead. */
static void hub_pending(hub_sub *hs, const hub_frames *f) {
  cl_sub *s = (cl_sub *)hs;
  cl_sub_x *x = cl__sub_x(s); /* there while establishing (x->op) */
  if (!x) {
    s->hs.flags |= HUB_SUB_PAUSED;
    return;
  }
  uint32_t n = x->pq ? x->pq->n : 0, cap = x->pq ? x->pq->cap : 0;
  if (n == cap) {
    cap = cap ? cap * 2 : 8;
    cl_pendq *nq = cap <= 4096 ? realloc(x->pq, sizeof *nq + cap * sizeof nq->f[0]) : NULL;
    if (!nq) {
      s->hs.flags |= HUB_SUB_PAUSED;
      return;
    }
    nq->n = n;
    nq->cap = cap;
    x->pq = nq;
  }
  x->pq->f[x->pq->n++].f = *f;
  hub_frames_ref(f);
}

/* Emit the join of s (after its subscribe reply left: it is posted). */
static void announce_join(cl_client *cl, cl_sub *s) {
  if (!cl__sub_has(s, CLS_EMIT_JOIN_LEAVE) || !s->hs.info)
    return;
  size_t len;
  const char *ch = hub_chan_name(s->hs.ch, &len);
  eng_join_leave(cl->list->cfg->eng, cl->list->hl, ch, len, s->hs.info, strlen(s->hs.info), 0);
}

void cl__announce_joins(cl_client *cl) {
  for (uint32_t i = 0; i < cl->nsubs; i++)
    announce_join(cl, cl__subs(cl)[i]);
}

static void log_recovery(cl_client *cl, const sub_op *so, const char *reason,
                         uint64_t top) {
  srv_logline l;
  cl__log_begin(cl, LOG_INFO, "recovery_failed", &l);
  srv_log_strn(&l, "channel", so->ch, so->len);
  srv_log_str(&l, "reason", reason);
  srv_log_int(&l, "offset", (long long)so->req_offset);
  srv_log_int(&l, "top", (long long)top);
  srv_log_end(&l);
}

/* Deliver the pushes held while the position was being set, through the
 * same position check as live ones. */
void cl__replay_pending(cl_client *cl, cl_sub *s) {
  s->hs.flags &= ~(uint32_t)HUB_SUB_PENDING;
  int lost = (s->hs.flags & HUB_SUB_PAUSED) != 0;
  s->hs.flags &= ~(uint32_t)HUB_SUB_PAUSED;
  cl_pendq *q = cl__sub_pq(s);
  cl_pending *p = q ? q->f : NULL;
  uint32_t n = q ? q->n : 0;
  if (q) {
    s->x->pq = NULL;
    cl__sub_x_trim(s);
  }
  int gap = lost;
  for (uint32_t i = 0; i < n; i++) {
    if (!gap && cl->state == CS_CONNECTED) {
      hf_shared *f = hub_frame_for(&s->hs, &p[i].f, &gap);
      if (f) {
        MET_INC(MET_DELIVERIES);
        cl_send_shared(cl, f);
      }
    }
    hub_frames_unref(&p[i].f);
  }
  free(q);
  if (gap && cl->state == CS_CONNECTED)
    cl_hub_callbacks()->gap(&s->hs);
}

/* The end of an establishment, for whoever asked: a reply (client), an
 * entry of the connect result (server-side) or a subscribe push (API). On
 * an error the subscription is gone by now. */
static void settle(cl_client *cl, sub_op *so, unsigned err, const jw_buf *fields,
                   const jw_buf *pushes) {
  cl_sub *s = so->s;
  if (s && s->x) {
    s->x->op = NULL;
    cl__sub_x_trim(s);
  }
  if (so->kind == SO_CLIENT) {
    if (err)
      cl__error_reply(cl, so->op.id, err,
                      err == 112 ? "unrecoverable position" : "internal server error",
                      err == 100);
    else {
      cl__begin_result(cl, so->op.id, "subscribe");
      jw_raw(cl__out(cl), fields->p, fields->len);
      cl__end_result(cl);
      /* held pushes go after the reply (an SDK drops publications that
       * arrive before its subscribe reply): then it leaves now */
      if (s && cl__sub_pq(s) && cl__sub_pq(s)->n)
        cl__flush_replies(cl);
    }
  } else if (so->kind == SO_SERVER_SIDE) {
    /* the connect reply replays every server-side subscription's held
     * pushes after it leaves (cl__connect_sub_done); s may be gone after */
    cl__connect_sub_done(cl, (cl_connect_op *)so->op.parent, err, so->ch, so->len, fields);
    s = NULL;
  } else if (!err) { /* the server API: a subscribe push, then the recovered */
    jw_buf b;
    jw_init(&b);
    jw_lit(&b, "{\"push\":{\"channel\":");
    jw_str(&b, so->ch, so->len);
    jw_lit(&b, ",\"subscribe\":{");
    jw_raw(&b, fields->p, fields->len);
    jw_lit(&b, "}}}");
    if (pushes)
      jw_raw(&b, pushes->p, pushes->len);
    if (jw_ok(&b) && cl->state == CS_CONNECTED)
      cl__send(cl, b.p, b.len);
    jw_free(&b);
  }
  if (s && !err) {
    cl__replay_pending(cl, s); /* after the reply: no push before it */
    cl__arm_timer(cl);
    announce_join(cl, s);
  }
  free(so->data);
  cl__op_done(&so->op);
}

/* An error before the result: take the subscription out, then settle. */
static void fail_establish(cl_client *cl, sub_op *so, unsigned err) {
  if (so->s) {
    if (so->s->x)
      so->s->x->op = NULL;
    cl__remove_sub(cl, so->s);
    so->s = NULL;
  }
  settle(cl, so, err, NULL, NULL);
}

/* The SubscribeResult fields, with the stream read r (NULL: not
 * positioned). Sets the subscriber's position. Returns 0, or 112 when the
 * request rejects an unrecovered position. */
static unsigned finish(cl_client *cl, sub_op *so, const eng_read_result *r,
                       jw_buf *out, jw_buf *pushes) {
  cl_sub *s = so->s;
  int recovered = 0;
  if (r && so->recovery && so->recover) {
    int epoch_ok = !so->req_epoch_len ||
                   stream_epoch_parse(so->req_epoch, so->req_epoch_len) == r->top.epoch;
    uint32_t max = cl->list->cfg->recovery_max_publication_limit;
    if (so->cache) { /* recovered means "has the latest publication" */
      char cur[STREAM_EPOCH_LEN + 1];
      stream_epoch_text(r->top.epoch, cur);
      int same = so->req_offset && so->req_offset == r->top.offset && so->req_epoch_len &&
                 strcmp(so->req_epoch, cur) == 0;
      recovered = !r->count ? same : same ? 2 /* has it: nothing to send */ : 1;
    } else if (!epoch_ok) {
      log_recovery(cl, so, "epoch changed (the stream was lost or recreated)", r->top.offset);
    } else if (so->req_offset > r->top.offset) {
      log_recovery(cl, so, "offset ahead of the stream", r->top.offset);
    } else if (max && r->count > (long)max) {
      log_recovery(cl, so, "more missed publications than client.recovery_max_publication_limit",
                   r->top.offset);
    } else if (!r->count) {
      recovered = r->top.offset == so->req_offset;
      if (!recovered)
        log_recovery(cl, so, "missed publications expired or were trimmed", r->top.offset);
    } else if (r->first_offset != so->req_offset + 1 || r->last_offset != r->top.offset) {
      log_recovery(cl, so, "missed publications expired or were trimmed", r->top.offset);
    } else {
      recovered = 1;
    }
    MET_INC(recovered ? MET_RECOVERIES_OK : MET_RECOVERIES_FAILED);
    if (!recovered && so->reject)
      return 112;
  }
  int with_pubs = recovered == 1 && r->count;
  if (r) {
    s->hs.offset = r->top.offset;
    s->hs.epoch = r->top.epoch;
    if (so->delta && with_pubs && r->last_offset == r->top.offset)
      s->hs.flags |= HUB_SUB_DELTA_BASE;
  }
  int first = 1;
  if (cl__sub_expire_at(s) && !s->x->tok.px_refresh) { /* the client refreshes it */
    int64_t ttl = s->x->tok.expire_at - cl__wall_s();
    jw_key(out, &first, "expires");
    jw_lit(out, "true");
    jw_key(out, &first, "ttl");
    jw_u64(out, (uint64_t)(ttl > 0 ? ttl : 0));
  }
  if (r) {
    char ep[STREAM_EPOCH_LEN + 1];
    stream_epoch_text(r->top.epoch, ep);
    if (so->recovery) {
      jw_key(out, &first, "recoverable");
      jw_lit(out, "true");
    }
    jw_key(out, &first, "positioned");
    jw_lit(out, "true");
    jw_key(out, &first, "epoch");
    jw_cstr(out, ep);
    jw_key(out, &first, "offset");
    jw_u64(out, recovered ? so->req_offset : r->top.offset);
    if (with_pubs && r->binary && !cl->pb)
      return 3506; /* binary data for a JSON client: complete() closes it */
    if (with_pubs) {
      if (pushes) {
        jw_raw(pushes, r->pubs->p, r->pubs->len);
      } else {
        jw_key(out, &first, "publications");
        jw_char(out, '[');
        jw_raw(out, r->pubs->p, r->pubs->len);
        jw_char(out, ']');
      }
    }
    if (recovered) {
      jw_key(out, &first, "recovered");
      jw_lit(out, "true");
    }
  }
  if (so->recover) {
    jw_key(out, &first, "was_recovering");
    jw_lit(out, "true");
  }
  if (so->data) {
    jw_key(out, &first, "data");
    jw_lit(out, so->data);
  }
  if (so->delta) {
    jw_key(out, &first, "delta");
    jw_lit(out, "true");
  }
  return 0;
}

static void complete(cl_client *cl, sub_op *so, const eng_read_result *r) {
  jw_buf fields, pushes;
  jw_init(&fields);
  jw_init(&pushes);
  unsigned err = finish(cl, so, r, &fields, so->kind == SO_API ? &pushes : NULL);
  if (!err && (!jw_ok(&fields) || !jw_ok(&pushes)))
    err = 100;
  if (err == 3506) { /* recovered publications hold binary data: JSON cannot */
    size_t len;
    const char *ch = hub_chan_name(so->s->hs.ch, &len);
    cl__binary_for_json(cl, "recovery", ch, len);
    err = 100; /* the subscription is undone; nothing reaches the client */
  }
  if (err)
    fail_establish(cl, so, err);
  else
    settle(cl, so, 0, &fields, &pushes);
  jw_free(&fields);
  jw_free(&pushes);
}

static void on_read(void *arg, int status, const eng_read_result *r) {
  sub_op *so = arg;
  int token;
  cl_client *cl = cl__op_enter(&so->op, &token);
  if (!cl)
    return;
  if (!so->s)
    fail_establish(cl, so, 100);
  else if (status != ENG_OK)
    fail_establish(cl, so, 100);
  else
    complete(cl, so, r);
  cl__op_exit(cl, token);
}

static void on_node_ready(void *arg, int status) {
  sub_op *so = arg;
  int token;
  cl_client *cl = cl__op_enter(&so->op, &token);
  if (!cl)
    return;
  if (!so->s || status != ENG_OK) {
    fail_establish(cl, so, 100);
  } else if (!so->positioning) {
    complete(cl, so, NULL);
  } else {
    eng_read_req rq = {0, 1, so->req_offset, 0,
                       so->kind == SO_API ? ENG_PUBS_PUSHES
                       : so->delta        ? ENG_PUBS_STRINGS
                                          : ENG_PUBS_ARRAY};
    if (so->recovery && so->recover) {
      if (so->cache) { /* the latest publication only */
        rq.reverse = 1;
        rq.has_bound = 0;
        rq.limit = 1;
      } else {
        uint32_t max = cl->list->cfg->recovery_max_publication_limit;
        rq.limit = max ? (size_t)max + 1 : SIZE_MAX;
      }
    }
    /* may complete (and free so) before it returns */
    if (eng_read(cl->list->cfg->eng, cl->list->hl, so->ch, so->len, &so->so, &rq, on_read, so) < 0)
      fail_establish(cl, so, 100);
  }
  cl__op_exit(cl, token);
}

/* override.<key>.value from a token, else the namespace's value. */
static bool overridden(json_t *override, const char *key, bool ns_value) {
  json_t *o = json_object_get(json_object_get(override, key), "value");
  return json_is_boolean(o) ? json_is_true(o) : ns_value;
}

static bool req_bool(json_t *req, const char *key) {
  return json_is_true(json_object_get(req, key));
}

/* Start establishing a subscription (see above). Takes sp->chan_info. The
 * outcome reaches the caller through settle(): a reply (kind SO_CLIENT, for
 * command id), an entry of the connect op `parent` (SO_SERVER_SIDE) or a
 * push (SO_API). Returns 0, or a client error code with nothing started
 * (100: out of memory). */
static unsigned establish(cl_client *cl, sub_spec *sp, int kind, uint32_t id,
                          cl_op *parent) {
  const chan_ns *ns = sp->ns;
  json_t *req = sp->req, *ov = sp->override;
  bool history = chan_has_history(ns);
  bool hist_access = chan_can_history(cl_policy_get(cl->list->cfg)->chans, ns, cl->user, true) == CHAN_OK;
  bool pres_access = chan_can_presence(cl_policy_get(cl->list->cfg)->chans, ns, cl->user, true) == CHAN_OK;
  bool presence = overridden(ov, "presence", ns->presence);
  bool emit_jl = overridden(ov, "join_leave", ns->join_leave);
  bool push_jl = overridden(ov, "force_push_join_leave", ns->force_push_join_leave) ||
                 (emit_jl && req_bool(req, "join_leave") && pres_access);
  bool recovery = history && (overridden(ov, "force_recovery", ns->force_recovery) ||
                              (req_bool(req, "recoverable") &&
                               (ns->allow_recovery || hist_access)));
  json_t *dv = json_object_get(req, "delta");
  /* Protobuf clients get full payloads: delta is not negotiated for them
   * (the result says so; docs/protocol.md) */
  bool delta = history && ns->delta_fossil && json_is_string(dv) && !cl->pb &&
               strcmp(json_string_value(dv), "fossil") == 0;
  /* a delta subscriber must never miss a publication silently: positioned */
  bool positioning = history && (recovery || delta ||
                                 overridden(ov, "force_positioning", ns->force_positioning) ||
                                 (req_bool(req, "positioned") &&
                                  (ns->allow_positioning || hist_access)));
  sub_op *so = (sub_op *)cl__op_new(cl, sizeof *so + sp->len + 1, id);
  cl_sub *s = calloc(1, sizeof *s);
  if (!so || !s) {
    free(s);
    if (so)
      cl__op_done(&so->op);
    return 100;
  }
  so->kind = (uint8_t)kind;
  so->positioning = positioning;
  so->recovery = recovery;
  so->recover = req_bool(req, "recover");
  so->delta = delta;
  so->cache = ns->recovery_mode == CHAN_RECOVERY_CACHE;
  json_t *flag = json_object_get(req, "flag");
  so->reject = json_is_integer(flag) && (json_integer_value(flag) & 2);
  json_t *jo = json_object_get(req, "offset");
  so->req_offset = json_is_integer(jo) && json_integer_value(jo) > 0
                       ? (uint64_t)json_integer_value(jo) : 0;
  json_t *je = json_object_get(req, "epoch");
  if (json_is_string(je) && json_string_length(je) < sizeof so->req_epoch) {
    so->req_epoch_len = json_string_length(je);
    memcpy(so->req_epoch, json_string_value(je), so->req_epoch_len + 1);
  } else if (json_is_string(je)) {
    memcpy(so->req_epoch, "?", 2); /* too long to be ours: never matches */
    so->req_epoch_len = 1;
  }
  so->data = sp->data ? strdup(sp->data) : NULL;
  so->so = query_stream_opts(ns);
  so->len = sp->len;
  memcpy(so->ch, sp->ch, sp->len);
  so->ch[sp->len] = 0;
  if (parent)
    cl__op_adopt(parent, &so->op);
  s->cl = cl;
  /* the cold state: the operation (below), and the token's if any */
  if (!cl__sub_x(s)) {
    free_sub(s);
    settle(cl, so, 100, NULL, NULL); /* also tells a parent */
    return 0;
  }
  s->x->tok.chan_info = sp->chan_info;
  s->x->tok.px_refresh = sp->px_refresh;
  sp->chan_info = NULL;
  s->hs.flags = HUB_SUB_PENDING | (positioning ? HUB_SUB_POSITIONED : 0) |
                (push_jl ? HUB_SUB_JOIN_LEAVE : 0) | (presence ? HUB_SUB_PRESENCE : 0) |
                (delta ? HUB_SUB_DELTA : 0) |
                (kind != SO_CLIENT ? CLS_SERVER_SIDE | CLS_GRANTED : 0) |
                (sp->granted ? CLS_GRANTED : 0) | (emit_jl ? CLS_EMIT_JOIN_LEAVE : 0) |
                (recovery ? CLS_RECOVERABLE : 0);
  if (((presence || emit_jl) && !(s->hs.info = cl__sub_info(cl, s))) ||
      add_to_list(cl, s) < 0) {
    free_sub(s);
    settle(cl, so, 100, NULL, NULL); /* also tells a parent */
    return 0;
  }
  if (hub_subscribe(cl->list->hl, sp->ch, sp->len, &s->hs) < 0) {
    cl->nsubs--;
    free_sub(s);
    settle(cl, so, 100, NULL, NULL);
    return 0;
  }
  s->x->op = &so->op;
  so->s = s;
  cl__set_sub_expiry(cl, s, sp->expire_at);
  if (presence)
    eng_presence_update(cl->list->cfg->eng, cl->list->hl, sp->ch, sp->len, &s->hs, 1);
  /* may complete (and free so) before it returns; on -1 it did neither,
   * and took no reference to release */
  s->hs.flags |= CLS_NODE_REF;
  if (eng_node_subscribe(cl->list->cfg->eng, cl->list->hl, sp->ch, sp->len, on_node_ready, so) < 0) {
    s->hs.flags &= ~(uint32_t)CLS_NODE_REF;
    fail_establish(cl, so, 100);
  }
  return 0;
}

/* ---- client commands -------------------------------------------------------- */

/* Verify a subscription token for channel ch[0..len). Returns SRV_JWT_OK or
 * SRV_JWT_EXPIRED (valid signature; with match_expired the sub and channel
 * are still checked) with *claims set (the caller frees), or -1 after
 * closing the connection with 3500 (invalid, or for another user, client
 * or channel). */
static int sub_token(cl_client *cl, const char *token, const char *ch,
                     size_t len, int match_expired, json_t **claims) {
  *claims = NULL;
  srv_jwt_status st = cl__verify(cl, token, claims);
  if (st != SRV_JWT_OK && st != SRV_JWT_EXPIRED) {
    cl_disconnect(cl, 3500, "invalid token");
    return -1;
  }
  int ok = st == SRV_JWT_EXPIRED && !match_expired;
  if (!ok) {
    json_t *tch = json_object_get(*claims, "channel");
    json_t *tcl = json_object_get(*claims, "client");
    char cid[37];
    hf_conn_id(cl->conn, cid);
    ok = json_is_string(tch) && json_string_length(tch) == len &&
         memcmp(json_string_value(tch), ch, len) == 0 &&
         strcmp(cl__claim_user(cl, *claims), cl->user) == 0 &&
         (!json_is_string(tcl) || !json_string_length(tcl) ||
          strcmp(json_string_value(tcl), cid) == 0);
  }
  if (!ok) {
    json_decref(*claims);
    *claims = NULL;
    cl_disconnect(cl, 3500, "invalid token: subscription token channel, user or client mismatch");
    return -1;
  }
  return (int)st;
}

void cl__cmd_subscribe(cl_client *cl, uint32_t id, json_t *req) {
  size_t len;
  const char *ch = cl__require_channel(cl, req, "subscribe", &len);
  if (!ch)
    return;
  json_t *delta = json_object_get(req, "delta");
  if (delta && (!json_is_string(delta) ||
                (json_string_length(delta) &&
                 strcmp(json_string_value(delta), "fossil") != 0))) {
    cl_disconnect(cl, 3501, "bad request: unknown delta type");
    return;
  }
  json_t *type = json_object_get(req, "type");
  if (type && !(json_is_integer(type) && json_integer_value(type) == 0)) {
    /* map and shared-poll subscriptions are not implemented: say so rather
     * than hand out a stream subscription the client did not ask for */
    cl__error_reply(cl, id, 108, "not available: only stream subscriptions are supported", 0);
    return;
  }
  if (json_object_get(req, "tf")) {
    cl__error_reply(cl, id, 107, "bad request: tags filter is not supported", 0);
    return;
  }
  if (cl__find_sub(cl, ch, len)) {
    cl__error_reply(cl, id, 105, "already subscribed", 0);
    return;
  }
  if (cl->list->cfg->channel_limit && cl->nsubs >= cl->list->cfg->channel_limit) {
    cl__error_reply(cl, id, 106, "limit exceeded", 0);
    return;
  }
  const chan_ns *ns;
  int r = chan_resolve(cl_policy_get(cl->list->cfg)->chans, ch, len, &ns);
  if (r != CHAN_OK) {
    cl__channel_error(cl, id, r);
    return;
  }
  sub_spec sp = {ch, len, ns, req, NULL, NULL, NULL, 0, 0, 0};
  json_t *tok = json_object_get(req, "token");
  json_t *claims = NULL;
  if (json_is_string(tok) && json_string_length(tok)) {
    /* subscription token: signature, expiry, then sub and channel */
    int st = sub_token(cl, json_string_value(tok), ch, len, 0, &claims);
    if (st < 0)
      return;
    if (st == SRV_JWT_EXPIRED) {
      json_decref(claims);
      cl__error_reply(cl, id, 109, "token expired", 0);
      return;
    }
    sp.granted = 1;
    sp.expire_at = cl__claim_expiry(claims);
    sp.override = json_object_get(claims, "override");
    sp.chan_info = cl__claim_info(claims, "info", "b64info");
    sp.data = cl__claim_info(claims, "data", "b64data");
  } else if (cl__proxy_subscribe(cl, id, req, ch, len, ns)) {
    return; /* the backend decides */
  } else if ((r = chan_can_subscribe(cl_policy_get(cl->list->cfg)->chans, ns, ch, len, cl->user)) != CHAN_OK) {
    cl__log_denied(cl, "subscribe", ch, len, (unsigned)r);
    cl__error_reply(cl, id, (unsigned)r, "permission denied", 0);
    return;
  }
  unsigned err = establish(cl, &sp, SO_CLIENT, id, NULL);
  free(sp.chan_info);
  free(sp.data);
  json_decref(claims);
  if (err)
    cl__error_reply(cl, id, err, "internal server error", 1);
}

unsigned cl__subscribe_allowed(cl_client *cl, uint32_t id, const char *ch, size_t len,
                               const chan_ns *ns, json_t *req, json_t *override,
                               char *chan_info, char *data, int64_t expire_at) {
  sub_spec sp = {ch, len, ns, req, override, chan_info, data, expire_at,
                 expire_at && cl__proxy_sub_refresh_enabled(cl, ns), 1};
  /* already subscribed meanwhile (e.g. by the server API)? */
  unsigned err = cl__find_sub(cl, ch, len) ? 105 : establish(cl, &sp, SO_CLIENT, id, NULL);
  free(sp.chan_info);
  free(sp.data);
  return err;
}

void cl__cmd_sub_refresh(cl_client *cl, uint32_t id, json_t *req) {
  size_t len;
  const char *ch = cl__require_channel(cl, req, "sub_refresh", &len);
  if (!ch)
    return;
  cl_sub *s = cl__find_sub(cl, ch, len);
  if (!s) {
    cl__error_reply(cl, id, 103, "permission denied", 0);
    return;
  }
  json_t *tok = json_object_get(req, "token");
  if (!json_is_string(tok) || !json_string_length(tok)) {
    cl__error_reply(cl, id, 107, "bad request", 0);
    return;
  }
  json_t *claims;
  int st = sub_token(cl, json_string_value(tok), ch, len, 1, &claims);
  if (st < 0)
    return;
  /* an already expired token keeps the old expiry: the subscription then
   * ends with unsubscribe 2501 and the SDK resubscribes with a new token */
  if (st == SRV_JWT_OK)
    cl__set_sub_expiry(cl, s, cl__claim_expiry(claims));
  json_decref(claims);
  MET_INC(MET_TOKEN_REFRESHED);
  cl__begin_result(cl, id, "sub_refresh");
  if (cl__sub_expire_at(s)) {
    int64_t ttl = s->x->tok.expire_at - cl__wall_s();
    jw_lit(cl__out(cl), "\"expires\":true,\"ttl\":");
    jw_u64(cl__out(cl), (uint64_t)(ttl > 0 ? ttl : 0));
  }
  cl__end_result(cl);
  cl__arm_timer(cl);
}

void cl__cmd_unsubscribe(cl_client *cl, uint32_t id, json_t *req) {
  size_t len;
  const char *ch = cl__require_channel(cl, req, "unsubscribe", &len);
  if (!ch)
    return;
  cl_sub *s = cl__find_sub(cl, ch, len);
  if (s)
    cl__remove_sub(cl, s); /* before the reply: no push after it */
  cl__begin_result(cl, id, "unsubscribe");
  cl__end_result(cl);
}

/* ---- server-side subscriptions ------------------------------------------------ */

unsigned cl__server_side_subs(cl_client *cl, cl_connect_op *c, json_t *claims,
                              json_t *req_subs) {
  json_t *list = json_object_get(claims, "subs");
  json_t *chans = json_object_get(claims, "channels");
  json_t *names = json_array();
  if (!names)
    return 100;
  if (json_is_object(list)) {
    const char *k;
    json_t *v;
    json_object_foreach(list, k, v) json_array_append_new(names, json_string(k));
  }
  if (json_is_array(chans)) { /* both may be given: channels adds to subs */
    size_t i;
    json_t *v;
    json_array_foreach(chans, i, v) {
      if (json_is_string(v) && !json_object_get(list, json_string_value(v)))
        json_array_append(names, v);
    }
  }
  size_t i;
  json_t *nv;
  json_array_foreach(names, i, nv) { /* every channel is known, or nothing starts */
    const chan_ns *ns;
    int r = chan_resolve(cl_policy_get(cl->list->cfg)->chans, json_string_value(nv), json_string_length(nv), &ns);
    if (r != CHAN_OK) {
      json_decref(names);
      return (unsigned)r;
    }
  }
  json_array_foreach(names, i, nv) {
    const char *name = json_string_value(nv);
    size_t len = json_string_length(nv);
    const chan_ns *ns;
    chan_resolve(cl_policy_get(cl->list->cfg)->chans, name, len, &ns);
    if (cl__find_sub(cl, name, len))
      continue;
    json_t *opts = json_object_get(list, name); /* {info, data, override} */
    sub_spec sp = {name, len, ns, json_object_get(req_subs, name),
                   json_object_get(opts, "override"),
                   cl__claim_info(opts, "info", "b64info"),
                   cl__claim_info(opts, "data", "b64data"), 0, 0, 0};
    c->pending++; /* before: it may settle before establish returns */
    unsigned e = establish(cl, &sp, SO_SERVER_SIDE, 0, &c->op);
    free(sp.chan_info);
    free(sp.data);
    if (e) { /* nothing started: it will not report */
      c->pending--;
      if (!c->err)
        c->err = e;
    }
  }
  json_decref(names);
  return 0;
}

void cl_server_unsubscribe(cl_client *cl, const char *ch, size_t len) {
  cl_sub *s = cl__find_sub(cl, ch, len);
  if (s && cl->state == CS_CONNECTED)
    cl__unsubscribe_push(cl, s, 2000, "server unsubscribe");
}

void cl_server_subscribe(cl_client *cl, const char *ch, size_t len,
                         json_t *opts) {
  if (cl->state != CS_CONNECTED || cl__find_sub(cl, ch, len))
    return;
  const chan_ns *ns;
  if (chan_resolve(cl_policy_get(cl->list->cfg)->chans, ch, len, &ns) != CHAN_OK)
    return;
  /* recover_since {offset, epoch} from the API works like a client's
   * recover request; the recovered publications follow as pushes */
  json_t *since = json_object_get(opts, "recover_since");
  json_t *req = json_object();
  if (!req)
    return;
  if (json_is_object(since)) { /* implies recovery for this subscription */
    json_object_set_new(req, "recoverable", json_true());
    json_object_set_new(req, "recover", json_true());
    json_object_set(req, "offset", json_object_get(since, "offset"));
    json_object_set(req, "epoch", json_object_get(since, "epoch"));
  }
  json_t *ea = json_object_get(opts, "expire_at");
  sub_spec sp = {ch, len, ns, req, json_object_get(opts, "override"),
                 cl__claim_info(opts, "info", "b64info"),
                 cl__claim_info(opts, "data", "b64data"),
                 json_is_integer(ea) ? json_integer_value(ea) : 0, 0, 0};
  establish(cl, &sp, SO_API, 0, NULL);
  free(sp.chan_info);
  free(sp.data);
  json_decref(req);
}

/* ---- delivery callbacks of the hub -------------------------------------------- */

static void forget_op(cl_sub *s) {
  if (cl__sub_op(s)) {
    ((sub_op *)s->x->op)->s = NULL;
    s->x->op = NULL;
  }
}

static void hub_deliver(hub_sub *hs, hf_shared *frame) {
  cl_sub *s = (cl_sub *)hs;
  MET_INC(MET_DELIVERIES);
  cl_send_shared(s->cl, frame);
}

static size_t hub_deliver_n(hub_sub *hs, hf_shared *const *frames, size_t n) {
  cl_sub *s = (cl_sub *)hs;
  size_t done = cl_send_shared_n(s->cl, frames, n);
  MET_ADD(MET_DELIVERIES, done);
  return done;
}

/* The subscriber missed publications: tell it, per reference 5.5. */
static void hub_gap(hub_sub *hs) {
  cl_sub *s = (cl_sub *)hs;
  cl_client *cl = s->cl;
  if (cl->state != CS_CONNECTED)
    return;
  MET_INC(MET_INSUFFICIENT_STATE);
  size_t len;
  const char *ch = hub_chan_name(hs->ch, &len);
  srv_logline l;
  cl__log_begin(cl, LOG_INFO, "insufficient_state", &l);
  srv_log_strn(&l, "channel", ch, len);
  srv_log_int(&l, "offset", (long long)hs->offset);
  srv_log_bool(&l, "server_side", cl__sub_has(s, CLS_SERVER_SIDE));
  srv_log_end(&l);
  if (cl__sub_has(s, CLS_SERVER_SIDE))
    cl_disconnect(cl, 3010, "insufficient state");
  else
    cl__unsubscribe_push(cl, s, 2500, "insufficient state");
}

/* The hub's member callback (any thread, under the worker's lock): the
 * client's user and connection id do not change while it is subscribed. */
static void hub_member(const hub_sub *hs, const char **user, const uint8_t **client) {
  const cl_client *cl = ((const cl_sub *)hs)->cl;
  *user = cl->user ? cl->user : "";
  *client = hf_conn_id_raw(cl->conn);
}

const hub_callbacks *cl_hub_callbacks(void) {
  static const hub_callbacks cb = {.deliver = hub_deliver,
                                   .gap = hub_gap,
                                   .pending = hub_pending,
                                   .deliver_n = hub_deliver_n,
                                   .member = hub_member};
  return &cb;
}

/* ---- slow consumers ------------------------------------------------------------ */

int cl_on_slow(cl_client *cl, size_t queued) {
  if (cl->state != CS_CONNECTED || !cl->nsubs)
    return 0;
  /* only when every subscription can recover what is dropped */
  for (uint32_t i = 0; i < cl->nsubs; i++) {
    cl_sub *s = cl__subs(cl)[i];
    size_t len;
    const char *ch = hub_chan_name(s->hs.ch, &len);
    const chan_ns *ns;
    if (cl__sub_has(s, CLS_SERVER_SIDE) || !cl__sub_has(s, CLS_RECOVERABLE) || !(s->hs.flags & HUB_SUB_POSITIONED) ||
        chan_resolve(cl_policy_get(cl->list->cfg)->chans, ch, len, &ns) != CHAN_OK ||
        ns->slow_policy != CHAN_SLOW_RECOVER)
      return 0;
  }
  size_t dropped = hf_conn_drop_queued(cl->conn);
  srv_logline l;
  MET_INC(MET_SLOW_RECOVER);
  cl__log_begin(cl, LOG_WARN, "slow_consumer_recover", &l);
  srv_log_int(&l, "queued_bytes", (long long)queued);
  srv_log_int(&l, "dropped_bytes", (long long)dropped);
  srv_log_int(&l, "subscriptions", cl->nsubs);
  srv_log_str(&l, "action", "dropped queued publications; the client resubscribes "
                            "and recovers them from history (unsubscribe 2500)");
  srv_log_end(&l);
  while (cl->nsubs && cl->state == CS_CONNECTED)
    cl__unsubscribe_push(cl, cl__subs(cl)[cl->nsubs - 1], 2500, "insufficient state");
  return 1;
}
