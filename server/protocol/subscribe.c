/* SPDX-License-Identifier: MIT */
/* Subscriptions of a real-time client: subscribe (client-side, server-side
 * from the token or the server API), the stream position and recovery
 * (reference section 5: the history read and the subscriber's position are
 * taken together, so that live delivery continues right after the
 * recovered publications with no gap and no duplicate), join/leave and
 * presence, subscription expiry, insufficient state, and the slow-consumer
 * policy that drops queued publications and lets the client recover. */
#include "protocol/client_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channels/query.h"
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
  const char *data; /* result data (JSON text) or NULL */
  int64_t expire_at;
  int server_side;
} sub_spec;

/* ---- the subscription list --------------------------------------------- */

cl_sub *cl__find_sub(cl_client *cl, const char *ch, size_t len) {
  for (uint32_t i = 0; i < cl->nsubs; i++) {
    size_t n;
    const char *name = hub_chan_name(cl->subs[i]->hs.ch, &n);
    if (n == len && memcmp(name, ch, len) == 0)
      return cl->subs[i];
  }
  return NULL;
}

char *cl__sub_info(cl_client *cl, const cl_sub *s) {
  size_t n = strlen(cl->client_info);
  if (!s->chan_info)
    return strdup(cl->client_info);
  /* {"user":..,"client":..[,"conn_info":..]} + ,"chan_info":X } */
  size_t cl_len = strlen(s->chan_info);
  char *p = malloc(n + cl_len + 14);
  if (!p)
    return NULL;
  memcpy(p, cl->client_info, n - 1);
  memcpy(p + n - 1, ",\"chan_info\":", 13);
  memcpy(p + n + 12, s->chan_info, cl_len);
  p[n + 12 + cl_len] = '}';
  p[n + 13 + cl_len] = 0;
  return p;
}

void cl__refresh_sub_infos(cl_client *cl) {
  for (uint32_t i = 0; i < cl->nsubs; i++) {
    cl_sub *s = cl->subs[i];
    if (s->hs.info) {
      char *info = cl__sub_info(cl, s);
      if (info)
        hub_sub_set_info(cl->hl, &s->hs, info);
    }
  }
}

static void free_sub(cl_sub *s) {
  free(s->hs.info);
  free(s->chan_info);
  free(s);
}

void cl__remove_sub(cl_client *cl, cl_sub *s) {
  if (s->emit_join_leave && s->hs.info) {
    /* posted, so it is delivered after the removal below */
    size_t len;
    const char *ch = hub_chan_name(s->hs.ch, &len);
    hub_join_leave(cl->hl, ch, len, s->hs.info, strlen(s->hs.info), 1);
  }
  hub_unsubscribe(cl->hl, &s->hs);
  for (uint32_t i = 0; i < cl->nsubs; i++)
    if (cl->subs[i] == s) {
      cl->subs[i] = cl->subs[--cl->nsubs];
      break;
    }
  free_sub(s);
}

static int add_to_list(cl_client *cl, cl_sub *s) {
  if (cl->nsubs == cl->capsubs) {
    uint32_t cap = cl->capsubs ? cl->capsubs * 2 : 4;
    cl_sub **ns = realloc(cl->subs, cap * sizeof *ns);
    if (!ns)
      return -1;
    cl->subs = ns;
    cl->capsubs = cap;
  }
  cl->subs[cl->nsubs++] = s;
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
    hf_conn_send(cl->conn, HF_OP_TEXT, (const uint8_t *)b.p, b.len);
  jw_free(&b);
}

static void set_sub_expiry(cl_client *cl, cl_sub *s, int64_t expire_at) {
  s->expire_at = cl->cfg->insecure ? 0 : expire_at;
  s->deadline = 0;
  if (s->expire_at) {
    int64_t left = s->expire_at - cl__wall_s();
    s->deadline = hf_loop_now(hf_conn_loop(cl->conn)) +
                  (uint64_t)(left > 0 ? left : 0) * 1000 +
                  cl->cfg->expired_sub_close_delay_ms;
  }
}

int cl__check_sub_deadlines(cl_client *cl, uint64_t now) {
  for (uint32_t i = cl->nsubs; i > 0; i--) {
    cl_sub *s = cl->subs[i - 1];
    if (!s->deadline || now < s->deadline)
      continue;
    if (s->server_side) { /* a server-side subscription cannot be redone */
      cl_disconnect(cl, 3006, "subscription expired");
      return -1;
    }
    cl__unsubscribe_push(cl, s, 2501, "subscription expired");
    if (cl->state != CS_CONNECTED)
      return -1;
  }
  return 0;
}

/* ---- options -------------------------------------------------------------- */

/* override.<key>.value from a token, else the namespace's value. */
static bool overridden(json_t *override, const char *key, bool ns_value) {
  json_t *o = json_object_get(json_object_get(override, key), "value");
  return json_is_boolean(o) ? json_is_true(o) : ns_value;
}

static bool req_bool(json_t *req, const char *key) {
  return json_is_true(json_object_get(req, key));
}

/* ---- establishing a subscription -------------------------------------------- */

typedef struct {
  jw_buf *b;
  int n, as_string;
  uint64_t first, last;
  const char *push_ch; /* set: write pub pushes, one per line */
  size_t push_len;
} pubs_acc;

static int add_pub(void *arg, const stream_pub *p) {
  pubs_acc *a = arg;
  if (!a->n++)
    a->first = p->offset;
  a->last = p->offset;
  if (a->push_ch) {
    jw_lit(a->b, "\n{\"push\":{\"channel\":");
    jw_str(a->b, a->push_ch, a->push_len);
    jw_lit(a->b, ",\"pub\":");
  } else if (a->n > 1) {
    jw_char(a->b, ',');
  }
  hub_encode_pub(a->b, p, a->as_string);
  if (a->push_ch)
    jw_lit(a->b, "}}");
  return 0;
}

static void log_recovery(cl_client *cl, const sub_spec *sp, const char *reason,
                         uint64_t from, uint64_t top) {
  srv_logline l;
  cl__log_begin(cl, LOG_INFO, "recovery_failed", &l);
  srv_log_strn(&l, "channel", sp->ch, sp->len);
  srv_log_str(&l, "reason", reason);
  srv_log_int(&l, "offset", (long long)from);
  srv_log_int(&l, "top", (long long)top);
  srv_log_end(&l);
}

/* Register the subscription, read the stream when positioned, and write
 * the SubscribeResult fields (no braces) into out. With recovered_pubs,
 * the recovered publications go there as pub pushes, each after a newline
 * (server API subscribes: a subscribe push carries none). Returns 0 with *res set, or a
 * client error code (112 unrecoverable, 100 internal) with nothing left
 * registered. */
static unsigned establish(cl_client *cl, sub_spec *sp, jw_buf *out, cl_sub **res,
                          jw_buf *recovered_pubs) {
  const chan_ns *ns = sp->ns;
  json_t *req = sp->req, *ov = sp->override;
  bool history = chan_has_history(ns);
  bool hist_access = chan_can_history(cl->cfg->chans, ns, cl->user, true) == CHAN_OK;
  bool pres_access = chan_can_presence(cl->cfg->chans, ns, cl->user, true) == CHAN_OK;
  bool presence = overridden(ov, "presence", ns->presence);
  bool emit_jl = overridden(ov, "join_leave", ns->join_leave);
  bool push_jl = overridden(ov, "force_push_join_leave", ns->force_push_join_leave) ||
                 (emit_jl && req_bool(req, "join_leave") && pres_access);
  bool recovery = history && (overridden(ov, "force_recovery", ns->force_recovery) ||
                              (req_bool(req, "recoverable") &&
                               (ns->allow_recovery || hist_access)));
  json_t *dv = json_object_get(req, "delta");
  bool delta = history && ns->delta_fossil && json_is_string(dv) &&
               strcmp(json_string_value(dv), "fossil") == 0;
  /* a delta subscriber must never miss a publication silently: positioned */
  bool positioning = history && (recovery || delta ||
                                 overridden(ov, "force_positioning", ns->force_positioning) ||
                                 (req_bool(req, "positioned") &&
                                  (ns->allow_positioning || hist_access)));
  cl_sub *s = calloc(1, sizeof *s);
  if (!s)
    return 100;
  s->cl = cl;
  s->server_side = (uint8_t)sp->server_side;
  s->emit_join_leave = emit_jl;
  s->recoverable = recovery;
  s->chan_info = sp->chan_info;
  sp->chan_info = NULL;
  s->hs.user = cl->user;
  s->hs.client = cl->id;
  s->hs.flags = (positioning ? HUB_SUB_POSITIONED : 0) | (push_jl ? HUB_SUB_JOIN_LEAVE : 0) |
                (presence ? HUB_SUB_PRESENCE : 0) | (delta ? HUB_SUB_DELTA : 0);
  if ((presence || emit_jl) && !(s->hs.info = cl__sub_info(cl, s))) {
    free_sub(s);
    return 100;
  }
  if (add_to_list(cl, s) < 0) {
    free_sub(s);
    return 100;
  }
  if (hub_subscribe(cl->hl, sp->ch, sp->len, &s->hs) < 0) {
    cl->nsubs--;
    free_sub(s);
    return 100;
  }
  set_sub_expiry(cl, s, sp->expire_at);
  bool recover = req_bool(req, "recover");
  bool recovered = false;
  stream_pos top = {0, 0};
  uint64_t req_offset = 0;
  jw_buf pubs;
  jw_init(&pubs);
  pubs_acc acc = {&pubs, 0, delta, 0, 0, recovered_pubs ? sp->ch : NULL, sp->len};
  if (positioning) {
    json_t *jo = json_object_get(req, "offset");
    req_offset = json_is_integer(jo) && json_integer_value(jo) > 0
                     ? (uint64_t)json_integer_value(jo) : 0;
    json_t *je = json_object_get(req, "epoch");
    const char *req_epoch = json_is_string(je) ? json_string_value(je) : "";
    size_t req_epoch_len = json_is_string(je) ? json_string_length(je) : 0;
    stream_opts so = query_stream_opts(ns);
    int cache = ns->recovery_mode == CHAN_RECOVERY_CACHE;
    uint32_t max = cl->cfg->recovery_max_publication_limit;
    stream_read_req rq = {0, 1, req_offset, 0, hf_loop_now(hf_conn_loop(cl->conn))};
    if (recovery && recover) {
      if (cache) { /* the latest publication only */
        rq.reverse = 1;
        rq.has_bound = 0;
        rq.limit = 1;
      } else {
        rq.limit = max ? (size_t)max + 1 : SIZE_MAX;
      }
    }
    uint64_t first;
    /* The read and the position below happen before this worker handles
     * anything else: publications already posted to it carry offsets the
     * read covers (skipped by the position check), later ones follow on. */
    if (stream_read(hub_streams(hub_of(cl->hl)), hub_hash(sp->ch, sp->len), sp->ch,
                    sp->len, &so, &rq, &top, &first, add_pub, &acc) < 0) {
      jw_free(&pubs);
      cl__remove_sub(cl, s);
      return 100;
    }
    if (recovery && recover) {
      int epoch_ok = !req_epoch_len ||
                     stream_epoch_parse(req_epoch, req_epoch_len) == top.epoch;
      if (cache) {
        char cur[STREAM_EPOCH_LEN + 1];
        stream_epoch_text(top.epoch, cur);
        int same = req_offset && req_offset == top.offset && req_epoch_len &&
                   strcmp(req_epoch, cur) == 0;
        if (acc.n && same) { /* the client has it already */
          jw_reset(&pubs);
          acc.n = 0;
        }
        recovered = acc.n ? acc.last == top.offset : same;
      } else if (!epoch_ok) {
        log_recovery(cl, sp, "epoch changed (the stream was lost or recreated)",
                     req_offset, top.offset);
      } else if (req_offset > top.offset) {
        log_recovery(cl, sp, "offset ahead of the stream", req_offset, top.offset);
      } else if (max && acc.n > (int)max) {
        log_recovery(cl, sp, "more missed publications than client.recovery_max_publication_limit",
                     req_offset, top.offset);
      } else if (!acc.n) {
        recovered = top.offset == req_offset;
        if (!recovered)
          log_recovery(cl, sp, "missed publications expired or were trimmed", req_offset,
                       top.offset);
      } else if (acc.first != req_offset + 1 || acc.last != top.offset) {
        log_recovery(cl, sp, "missed publications expired or were trimmed", req_offset,
                     top.offset);
      } else {
        recovered = true;
      }
      json_t *flag = json_object_get(req, "flag");
      if (!recovered && json_is_integer(flag) && (json_integer_value(flag) & 2)) {
        jw_free(&pubs);
        cl__remove_sub(cl, s); /* rejectUnrecovered: 112, no subscription */
        return 112;
      }
    }
    s->hs.offset = top.offset;
    s->hs.epoch = top.epoch;
    if (delta && recovered && acc.n && acc.last == top.offset)
      s->hs.flags |= HUB_SUB_DELTA_BASE;
  }
  /* the SubscribeResult fields */
  int first_field = 1;
  if (s->expire_at) {
    int64_t ttl = s->expire_at - cl__wall_s();
    jw_key(out, &first_field, "expires");
    jw_lit(out, "true");
    jw_key(out, &first_field, "ttl");
    jw_u64(out, (uint64_t)(ttl > 0 ? ttl : 0));
  }
  if (positioning) {
    char ep[STREAM_EPOCH_LEN + 1];
    stream_epoch_text(top.epoch, ep);
    if (recovery) {
      jw_key(out, &first_field, "recoverable");
      jw_lit(out, "true");
    }
    jw_key(out, &first_field, "positioned");
    jw_lit(out, "true");
    jw_key(out, &first_field, "epoch");
    jw_cstr(out, ep);
    jw_key(out, &first_field, "offset");
    jw_u64(out, recovered ? req_offset : top.offset);
    if (recovered && acc.n) {
      if (recovered_pubs) {
        jw_raw(recovered_pubs, pubs.p, pubs.len);
      } else {
        jw_key(out, &first_field, "publications");
        jw_char(out, '[');
        jw_raw(out, pubs.p, pubs.len);
        jw_char(out, ']');
      }
    }
    if (recovered) {
      jw_key(out, &first_field, "recovered");
      jw_lit(out, "true");
    }
  }
  jw_free(&pubs);
  if (recover) {
    jw_key(out, &first_field, "was_recovering");
    jw_lit(out, "true");
  }
  if (sp->data) {
    jw_key(out, &first_field, "data");
    jw_lit(out, sp->data);
  }
  if (delta) {
    jw_key(out, &first_field, "delta");
    jw_lit(out, "true");
  }
  *res = s;
  return 0;
}

/* Emit the join of s (after its subscribe reply left). */
static void announce_join(cl_client *cl, cl_sub *s) {
  if (!s->emit_join_leave || !s->hs.info)
    return;
  size_t len;
  const char *ch = hub_chan_name(s->hs.ch, &len);
  hub_join_leave(cl->hl, ch, len, s->hs.info, strlen(s->hs.info), 0);
}

void cl__announce_joins(cl_client *cl) {
  for (uint32_t i = 0; i < cl->nsubs; i++)
    announce_join(cl, cl->subs[i]);
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
  if (cl->cfg->channel_limit && cl->nsubs >= cl->cfg->channel_limit) {
    cl__error_reply(cl, id, 106, "limit exceeded", 0);
    return;
  }
  const chan_ns *ns;
  int r = chan_resolve(cl->cfg->chans, ch, len, &ns);
  if (r != CHAN_OK) {
    cl__channel_error(cl, id, r);
    return;
  }
  sub_spec sp = {ch, len, ns, req, NULL, NULL, NULL, 0, 0};
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
    sp.expire_at = cl__claim_expiry(claims);
    sp.override = json_object_get(claims, "override");
    sp.chan_info = cl__claim_info(claims, "info", "b64info");
    sp.data = cl__claim_info(claims, "data", "b64data");
  } else if ((r = chan_can_subscribe(cl->cfg->chans, ns, ch, len, cl->user)) != CHAN_OK) {
    cl__log_denied(cl, "subscribe", ch, len, (unsigned)r);
    cl__error_reply(cl, id, (unsigned)r, "permission denied", 0);
    return;
  }
  jw_buf fields;
  jw_init(&fields);
  cl_sub *s = NULL;
  unsigned err = establish(cl, &sp, &fields, &s, NULL);
  free(sp.chan_info);
  free((char *)sp.data);
  json_decref(claims);
  if (err) {
    jw_free(&fields);
    cl__error_reply(cl, id, err, err == 112 ? "unrecoverable position" : "internal server error",
                    err == 100);
    return;
  }
  cl__begin_result(cl, id, "subscribe");
  jw_raw(cl__out(cl), fields.p, fields.len);
  cl__end_result(cl);
  jw_free(&fields);
  cl__arm_timer(cl);
  announce_join(cl, s); /* posted: it follows the reply flushed below */
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
    set_sub_expiry(cl, s, cl__claim_expiry(claims));
  json_decref(claims);
  cl__begin_result(cl, id, "sub_refresh");
  if (s->expire_at) {
    int64_t ttl = s->expire_at - cl__wall_s();
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

unsigned cl__server_side_subs(cl_client *cl, json_t *claims, json_t *req_subs,
                              jw_buf *out) {
  json_t *list = json_object_get(claims, "subs");
  json_t *chans = json_object_get(claims, "channels");
  json_t *names = json_array();
  if (!names)
    return 100;
  if (json_is_object(list)) {
    const char *k;
    json_t *v;
    json_object_foreach(list, k, v) json_array_append_new(names, json_string(k));
  } else if (json_is_array(chans)) {
    size_t i;
    json_t *v;
    json_array_foreach(chans, i, v) {
      if (json_is_string(v))
        json_array_append(names, v);
    }
  }
  unsigned err = 0;
  int first = 1;
  size_t i;
  json_t *nv;
  json_array_foreach(names, i, nv) {
    const char *name = json_string_value(nv);
    size_t len = json_string_length(nv);
    const chan_ns *ns;
    int r = chan_resolve(cl->cfg->chans, name, len, &ns);
    if (r != CHAN_OK) {
      err = (unsigned)r;
      break;
    }
    if (cl__find_sub(cl, name, len))
      continue;
    json_t *opts = json_object_get(list, name); /* {info, data, override} */
    sub_spec sp = {name, len, ns, json_object_get(req_subs, name),
                   json_object_get(opts, "override"),
                   cl__claim_info(opts, "info", "b64info"),
                   cl__claim_info(opts, "data", "b64data"), 0, 1};
    jw_buf fields;
    jw_init(&fields);
    cl_sub *s;
    unsigned e = establish(cl, &sp, &fields, &s, NULL);
    free(sp.chan_info);
    free((char *)sp.data);
    if (e == 112) { /* a server-side channel the client cannot recover: a
                       fresh position, as if it had not asked */
      sp.req = NULL;
      e = establish(cl, &sp, &fields, &s, NULL);
    }
    if (e) {
      jw_free(&fields);
      err = e;
      break;
    }
    jw_key(out, &first, name);
    jw_char(out, '{');
    jw_raw(out, fields.p, fields.len);
    jw_char(out, '}');
    jw_free(&fields);
  }
  json_decref(names);
  return err;
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
  if (chan_resolve(cl->cfg->chans, ch, len, &ns) != CHAN_OK)
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
                 json_is_integer(ea) ? json_integer_value(ea) : 0, 1};
  jw_buf fields, pubs;
  jw_init(&fields);
  jw_init(&pubs);
  cl_sub *s;
  unsigned e = establish(cl, &sp, &fields, &s, &pubs);
  free(sp.chan_info);
  free((char *)sp.data);
  json_decref(req);
  if (!e) {
    jw_buf b;
    jw_init(&b);
    jw_lit(&b, "{\"push\":{\"channel\":");
    jw_str(&b, ch, len);
    jw_lit(&b, ",\"subscribe\":{");
    jw_raw(&b, fields.p, fields.len);
    jw_lit(&b, "}}}");
    jw_raw(&b, pubs.p, pubs.len); /* then the recovered publications */
    if (jw_ok(&b))
      hf_conn_send(cl->conn, HF_OP_TEXT, (const uint8_t *)b.p, b.len);
    jw_free(&b);
    cl__arm_timer(cl);
    announce_join(cl, s);
  }
  jw_free(&fields);
  jw_free(&pubs);
}

/* ---- delivery callbacks of the hub -------------------------------------------- */

static void hub_deliver(hub_sub *hs, hf_shared *frame) {
  cl_sub *s = (cl_sub *)hs;
  cl_send_shared(s->cl, frame);
}

/* The subscriber missed publications: tell it, per reference 5.5. */
static void hub_gap(hub_sub *hs) {
  cl_sub *s = (cl_sub *)hs;
  cl_client *cl = s->cl;
  if (cl->state != CS_CONNECTED)
    return;
  size_t len;
  const char *ch = hub_chan_name(hs->ch, &len);
  srv_logline l;
  cl__log_begin(cl, LOG_INFO, "insufficient_state", &l);
  srv_log_strn(&l, "channel", ch, len);
  srv_log_int(&l, "offset", (long long)hs->offset);
  srv_log_bool(&l, "server_side", s->server_side);
  srv_log_end(&l);
  if (s->server_side)
    cl_disconnect(cl, 3010, "insufficient state");
  else
    cl__unsubscribe_push(cl, s, 2500, "insufficient state");
}

const hub_callbacks *cl_hub_callbacks(void) {
  static const hub_callbacks cb = {hub_deliver, hub_gap};
  return &cb;
}

/* ---- slow consumers ------------------------------------------------------------ */

int cl_on_slow(cl_client *cl, size_t queued) {
  if (cl->state != CS_CONNECTED || !cl->nsubs)
    return 0;
  /* only when every subscription can recover what is dropped */
  for (uint32_t i = 0; i < cl->nsubs; i++) {
    cl_sub *s = cl->subs[i];
    size_t len;
    const char *ch = hub_chan_name(s->hs.ch, &len);
    const chan_ns *ns;
    if (s->server_side || !s->recoverable || !(s->hs.flags & HUB_SUB_POSITIONED) ||
        chan_resolve(cl->cfg->chans, ch, len, &ns) != CHAN_OK ||
        ns->slow_policy != CHAN_SLOW_RECOVER)
      return 0;
  }
  size_t dropped = hf_conn_drop_queued(cl->conn);
  srv_logline l;
  cl__log_begin(cl, LOG_WARN, "slow_consumer_recover", &l);
  srv_log_int(&l, "queued_bytes", (long long)queued);
  srv_log_int(&l, "dropped_bytes", (long long)dropped);
  srv_log_int(&l, "subscriptions", cl->nsubs);
  srv_log_str(&l, "action", "dropped queued publications; the client resubscribes "
                            "and recovers them from history (unsubscribe 2500)");
  srv_log_end(&l);
  while (cl->nsubs && cl->state == CS_CONNECTED)
    cl__unsubscribe_push(cl, cl->subs[cl->nsubs - 1], 2500, "insufficient state");
  return 1;
}
