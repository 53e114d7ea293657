/* SPDX-License-Identifier: MIT */
/* Centrifugo client protocol v2 over WebSocket (JSON): commands are
 * newline-separated JSON objects, handled strictly in order; the replies to
 * one frame leave together in one message. Per-command problems are error
 * replies; protocol violations are close frames with the protocol's code
 * (3501 bad request, 3500 invalid token, ...) and a plain-text reason.
 * This file: lifecycle, dispatch, connect, refresh, pings and timers;
 * subscriptions live in subscribe.c, publish/history/presence in
 * commands.c. */
#include "protocol/client_impl.h"
#include "protocol/pbcodec.h"
#include "metrics/metrics.h"
#include "evproxy/evproxy.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <time.h>

#include "hf/frame.h"

/* ---- small helpers ------------------------------------------------------ */

/* Token expiry is compared with clocks outside this process (the backend
 * that signed the token, the client that asks for a refresh): the precise
 * wall clock, as time() lags a second boundary (a token minted then with
 * exp = now + 3 was answered with ttl 4). */
int64_t cl__wall_s(void) { return (int64_t)(hf_wall_ms() / 1000u); }

void cl__log_begin(cl_client *cl, srv_log_level lvl, const char *event,
                   srv_logline *l) {
  char id[37];
  hf_conn_id(cl->conn, id);
  srv_log_begin(l, lvl, event);
  srv_log_str(l, "conn_id", id);
  srv_log_str(l, "user", cl->user ? cl->user : "");
}

void cl__arm_timer(cl_client *cl) {
  uint64_t due = UINT64_MAX;
  if (cl->state == CS_NEW)
    due = cl->stale_deadline;
  if (cl->state == CS_CONNECTED) {
    if (cl->await_pong && cl->pong_deadline < due)
      due = cl->pong_deadline;
    else if (!cl->await_pong && cl->next_ping && cl->next_ping < due)
      due = cl->next_ping;
    if (cl->expire_deadline && cl->expire_deadline < due)
      due = cl->expire_deadline;
    uint64_t rd = cl__refresh_due(cl);
    if (rd && rd < due)
      due = rd;
    for (uint32_t i = 0; i < cl->nsubs; i++) {
      uint64_t d = cl__sub_deadline(cl__subs(cl)[i]), r = cl__sub_refresh_due(cl__subs(cl)[i]);
      if (d && d < due)
        due = d;
      if (r && r < due)
        due = r;
    }
  }
  hf_conn_set_timer(cl->conn, due); /* the connection's timer (UINT64_MAX: none) */
}

uint64_t cl__now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void cl__send(cl_client *cl, const char *json, size_t len) {
  if (!cl->pb) {
    tr_send(cl->conn, cl->transport, (const uint8_t *)json, len);
    return;
  }
  jw_buf *b = &cl->list->pb; /* the worker's scratch: no allocation per message */
  jw_reset(b);
  if (pb_from_json(b, json, len) == 0) {
    if (cl->transport == TR_HTTP_STREAM) { /* one chunk of delimited Replies */
      struct iovec v = {b->p, b->len};
      hf_conn_send_chunk(cl->conn, &v, 1);
    } else {
      hf_conn_send(cl->conn, HF_OP_BINARY, (const uint8_t *)b->p, b->len);
    }
  } else {
    srv_logline l;
    cl__log_begin(cl, LOG_ERROR, "protobuf_encode_failed", &l);
    srv_log_int(&l, "bytes", (long long)len);
    srv_log_end(&l);
  }
  jw_reset(b);
}

/* Send the replies gathered so far as one message. */
void cl__flush_replies(cl_client *cl) {
  jw_buf *o = cl__out(cl);
  if (!o->len)
    return;
  if (jw_ok(o))
    cl__send(cl, o->p, o->len);
  jw_reset(o);
}

static void begin_reply(cl_client *cl) {
  if (cl__out(cl)->len)
    jw_char(cl__out(cl), '\n');
}

void cl_disconnect(cl_client *cl, uint16_t code, const char *reason) {
  if (cl->state == CS_CLOSED)
    return;
  if (code == 3005 || code == 3006)
    MET_INC(MET_TOKEN_EXPIRED);
  else if (code == 3500)
    MET_INC(MET_TOKEN_REJECTED);
  else if (code == 3012)
    MET_INC(MET_HEARTBEAT_TIMEOUTS_PROTO);
  cl__flush_replies(cl); /* replies before the close frame, in order */
  cl->state = CS_CLOSED;
  hf_conn_set_timer(cl->conn, 0);
  /* the client is gone for the protocol now, not when the close handshake
   * ends (a vanished peer never answers it): leave presence, emit leaves */
  while (cl->nsubs)
    cl__remove_sub(cl, cl__subs(cl)[cl->nsubs - 1]);
  hf_conn_close(cl->conn, code, reason);
}

void cl__error_reply(cl_client *cl, uint32_t id, unsigned code,
                     const char *message, int temporary) {
  met_cmd_error_inc(code);
  if (code == 109)
    MET_INC(MET_TOKEN_EXPIRED);
  if (srv_log_enabled(LOG_DEBUG)) {
    srv_logline l;
    cl__log_begin(cl, LOG_DEBUG, "command_error", &l);
    srv_log_int(&l, "id", (long long)id);
    srv_log_int(&l, "code", code);
    srv_log_str(&l, "message", message);
    srv_log_end(&l);
  }
  jw_buf *o = cl__out(cl);
  begin_reply(cl);
  jw_lit(o, "{\"id\":");
  jw_u64(o, id);
  jw_lit(o, ",\"error\":{\"code\":");
  jw_u64(o, code);
  jw_lit(o, ",\"message\":");
  jw_cstr(o, message);
  if (temporary)
    jw_lit(o, ",\"temporary\":true");
  jw_lit(o, "}}");
}

void cl__begin_result(cl_client *cl, uint32_t id, const char *key) {
  jw_buf *o = cl__out(cl);
  begin_reply(cl);
  jw_lit(o, "{\"id\":");
  jw_u64(o, id);
  jw_lit(o, ",\"");
  jw_lit(o, key);
  jw_lit(o, "\":{");
}

void cl__end_result(cl_client *cl) { jw_lit(cl__out(cl), "}}"); }

/* The fields connect and refresh results share: client, version, and
 * expires/ttl when the connection expires. */
static void begin_identity_result(cl_client *cl, uint32_t id, const char *key) {
  char cid[37];
  hf_conn_id(cl->conn, cid);
  jw_buf *o = cl__out(cl);
  cl__begin_result(cl, id, key);
  jw_lit(o, "\"client\":");
  jw_cstr(o, cid);
  jw_lit(o, ",\"version\":");
  jw_cstr(o, cl->list->cfg->version);
  if (cl->expire_at && !cl__refresh_due(cl)) { /* the client refreshes */
    int64_t ttl = cl->expire_at - cl__wall_s();
    jw_lit(o, ",\"expires\":true,\"ttl\":");
    jw_u64(o, (uint64_t)(ttl > 0 ? ttl : 0));
  }
}

void cl__log_denied(cl_client *cl, const char *action, const char *ch,
                    size_t len, unsigned code) {
  srv_logline l;
  cl__log_begin(cl, LOG_WARN, "permission_denied", &l);
  srv_log_str(&l, "action", action);
  srv_log_strn(&l, "channel", ch, len);
  srv_log_int(&l, "code", code);
  srv_log_end(&l);
}

void cl__channel_error(cl_client *cl, uint32_t id, int code) {
  cl__error_reply(cl, id, (unsigned)code,
                  code == CHAN_E_UNKNOWN      ? "unknown channel"
                  : code == CHAN_E_PERMISSION ? "permission denied"
                                              : "bad request",
                  0);
}

static const char *req_channel(json_t *req, size_t *len) {
  json_t *c = json_object_get(req, "channel");
  if (!json_is_string(c) || !json_string_length(c))
    return NULL;
  *len = json_string_length(c);
  return json_string_value(c);
}

const char *cl__require_channel(cl_client *cl, json_t *req, const char *cmd,
                                size_t *len) {
  const char *ch = req_channel(req, len);
  if (!ch) {
    char why[80];
    snprintf(why, sizeof why, "bad request: %s without a channel", cmd);
    cl_disconnect(cl, 3501, why); /* the reason is copied */
  }
  return ch;
}

/* ---- token handling ----------------------------------------------------- */

const char *cl__claim_user(const cl_client *cl, json_t *claims) {
  const char *claim = cl_policy_get(cl->list->cfg)->user_id_claim;
  const char *name = claim && *claim ? claim : "sub";
  json_t *v = json_object_get(claims, name);
  return json_is_string(v) ? json_string_value(v) : "";
}

/* Expiry from exp / expire_at (Unix seconds; 0 = never). */
int64_t cl__claim_expiry(json_t *claims) {
  json_t *ea = json_object_get(claims, "expire_at");
  if (json_is_integer(ea))
    return json_integer_value(ea);
  json_t *exp = json_object_get(claims, "exp");
  if (json_is_integer(exp))
    return json_integer_value(exp);
  if (json_is_real(exp))
    return (int64_t)json_real_value(exp);
  return 0;
}

/* A JSON claim from obj: b64key (base64 of a JSON document; it takes
 * precedence, as in Centrifugo) or key; minified, or NULL. Binary base64
 * data that is not JSON cannot travel in the JSON protocol and is dropped. */
char *cl__claim_info(json_t *obj, const char *key, const char *b64key) {
  json_t *b64 = json_object_get(obj, b64key);
  char *text = json_is_string(b64)
                   ? jw_b64_json(json_string_value(b64), json_string_length(b64))
                   : NULL;
  if (text)
    return text;
  json_t *info = json_object_get(obj, key);
  return info ? jw_dump(info) : NULL;
}

void cl__set_expiry(cl_client *cl, int64_t expire_at) {
  cl->expire_at = expire_at;
  if (cl->ex)
    cl->ex->refresh_due = 0;
  if (!expire_at || cl_policy_get(cl->list->cfg)->insecure) {
    cl->expire_at = 0;
    cl->expire_deadline = 0;
    return;
  }
  int64_t left = expire_at - cl__wall_s();
  uint64_t now = hf_loop_now(hf_conn_loop(cl->conn));
  cl->expire_deadline =
      now + (uint64_t)(left > 0 ? left : 0) * 1000 + cl->list->cfg->expired_close_delay_ms;
  /* a proxy session with a refresh proxy: the backend prolongs it, and is
   * given its timeout (and a second) even when the close delay is shorter */
  const px_config *px = cl->list->cfg->px;
  cl_extra *ex = cl->px_session && px && px->refresh_enabled ? cl__extra(cl) : NULL;
  if (ex) { /* (out of memory: no refresh, the session just expires) */
    ex->refresh_due = now + (uint64_t)(left > 0 ? left : 0) * 1000 + 1;
    uint64_t last = ex->refresh_due + px->max_timeout_ms + 1000;
    if (cl->expire_deadline < last)
      cl->expire_deadline = last;
  }
}

srv_jwt_status cl__verify(cl_client *cl, const char *token, json_t **claims) {
  const cl_policy *p = cl_policy_get(cl->list->cfg);
  if (!p->keys)
    return SRV_JWT_ALG;
  return srv_jwt_verify(p->keys, token, cl__wall_s(), p->audience, p->issuer, claims);
}

/* ---- connect and refresh --------------------------------------------------- */

const char *cl__client_info(cl_client *cl) {
  if (cl->client_info)
    return cl->client_info;
  jw_buf b;
  jw_init(&b);
  jw_lit(&b, "{\"user\":");
  jw_cstr(&b, cl->user ? cl->user : "");
  jw_lit(&b, ",\"client\":");
  char id[37];
  hf_conn_id(cl->conn, id);
  jw_cstr(&b, id);
  if (cl->conn_info) {
    jw_lit(&b, ",\"conn_info\":");
    jw_lit(&b, cl->conn_info);
  }
  jw_char(&b, '}');
  jw_char(&b, 0);
  /* kept for the connection's life: exactly its size, not the buffer's */
  cl->client_info = jw_ok(&b) ? realloc(b.p, b.len) : NULL;
  if (!cl->client_info)
    jw_free(&b);
  return cl->client_info;
}

void cl__reset_client_info(cl_client *cl) {
  free(cl->client_info);
  cl->client_info = NULL;
}

static void cmd_connect(cl_client *cl, uint32_t id, json_t *req) {
  if (cl->state != CS_NEW) {
    cl_disconnect(cl, 3501, "bad request: client already connected");
    return;
  }
  json_t *tok = json_object_get(req, "token");
  const char *token = json_is_string(tok) ? json_string_value(tok) : "";
  json_t *claims = NULL;
  if (*token) {
    srv_jwt_status st = cl__verify(cl, token, &claims);
    if (st == SRV_JWT_EXPIRED) {
      json_decref(claims);
      cl__error_reply(cl, id, 109, "token expired", 0);
      cl->state = CS_FAILED;
      return;
    }
    if (st != SRV_JWT_OK) {
      srv_logline l;
      cl__log_begin(cl, LOG_WARN, "connect_rejected", &l);
      srv_log_str(&l, "reason", srv_jwt_strerror(st));
      srv_log_end(&l);
      cl_disconnect(cl, 3500, "invalid token");
      return;
    }
    if (json_object_get(claims, "channel")) {
      json_decref(claims);
      cl_disconnect(cl, 3500, "invalid token: connection token has a channel claim");
      return;
    }
  } else if (cl__proxy_connect_enabled(cl)) {
    cl__proxy_connect(cl, id, req); /* the backend decides (v6 rules) */
    return;
  } else if (!cl_policy_get(cl->list->cfg)->allow_anonymous &&
             !cl_policy_get(cl->list->cfg)->insecure) {
    srv_logline l;
    cl__log_begin(cl, LOG_WARN, "connect_rejected", &l);
    srv_log_str(&l, "reason", "no token and anonymous connections are not allowed");
    srv_log_end(&l);
    cl_disconnect(cl, 3501, "bad request: client credentials not found");
    return;
  }
  cl->anonymous = claims == NULL;
  cl__begin_session(cl, id, claims ? cl__claim_user(cl, claims) : "",
                    claims ? cl__claim_info(claims, "info", "b64info") : NULL,
                    claims ? cl__claim_expiry(claims) : 0, claims, req, NULL);
  json_decref(claims);
}

void cl__begin_session(cl_client *cl, uint32_t id, const char *user, char *info,
                       int64_t exp, json_t *src, json_t *req, char *data) {
  if (cl->rl_user) { /* a second session on one connection: start afresh */
    if (!cl->user_shared)
      free(cl->user);
    cl->user = NULL;
    cl->user_shared = 0;
    rl_user_release(cl->list->cfg->rl, cl->rl_user);
    cl->rl_user = NULL;
  }
  if (!cl->user_shared)
    free(cl->user);
  cl->user_shared = 0;
  cl->user = strdup(user);
  free(cl->conn_info);
  cl->conn_info = info;
  if (exp && exp <= cl__wall_s() && !cl_policy_get(cl->list->cfg)->insecure) {
    free(data);
    cl__error_reply(cl, id, 110, "expired", 0);
    cl->state = CS_FAILED;
    return;
  }
  cl__reset_client_info(cl);
  if (!cl->user) {
    free(data);
    cl_disconnect(cl, 3004, "internal server error");
    return;
  }
  if (*cl->user && cl->list->cfg->rl) { /* the user's connection count and bucket */
    uint64_t limit = rl_limits_get(&cl->list->cfg->limits)->user_connection_limit;
    int r = rl_user_acquire(cl->list->cfg->rl, cl->user, limit, &cl->rl_user);
    if (r) {
      free(data);
      if (r < 0) {
        cl_disconnect(cl, 3004, "internal server error");
        return;
      }
      srv_logline l;
      cl__log_begin(cl, LOG_WARN, "connect_rejected", &l);
      srv_log_str(&l, "reason", "user connection limit");
      srv_log_int(&l, "limit", (long long)limit);
      srv_log_end(&l);
      cl_disconnect(cl, 3504, "connection limit");
      return;
    }
    /* the entry holds the name while the client holds the entry: one copy
     * for all of the user's connections on this server */
    free(cl->user);
    cl->user = (char *)rl_user_name(cl->rl_user);
    cl->user_shared = 1;
  }
  /* the result waits for the server-side subscriptions (the engine may
   * answer later); commands after connect wait for it */
  cl_connect_op *c = (cl_connect_op *)cl__op_new(cl, sizeof *c, id);
  if (!c) {
    free(data);
    cl_disconnect(cl, 3004, "internal server error");
    return;
  }
  c->exp = exp;
  c->first = 1;
  c->data = data;
  jw_init(&c->subs);
  c->pending = 1; /* held until every subscription has started */
  unsigned err = src ? cl__server_side_subs(cl, c, src, json_object_get(req, "subs")) : 0;
  if (err && !c->err)
    c->err = err;
  cl__connect_sub_done(cl, c, 0, NULL, 0, NULL); /* releases the hold */
}

void cl__connect_sub_done(cl_client *cl, cl_connect_op *c, unsigned err,
                          const char *ch, size_t len, const jw_buf *fields) {
  if (err && !c->err)
    c->err = err;
  if (!err && fields && !c->err) {
    jw_buf *o = &c->subs;
    if (!c->first)
      jw_char(o, ',');
    c->first = 0;
    jw_str(o, ch, len);
    jw_char(o, ':');
    jw_char(o, '{');
    jw_raw(o, fields->p, fields->len);
    jw_char(o, '}');
  }
  if (--c->pending)
    return;
  uint32_t id = c->op.id;
  if (cl->state == CS_CLOSED) {
    /* closed meanwhile */
  } else if (c->err || !jw_ok(&c->subs)) {
    unsigned e = c->err ? c->err : 100;
    while (cl->nsubs)
      cl__remove_sub(cl, cl__subs(cl)[cl->nsubs - 1]);
    cl__error_reply(cl, id, e,
                    e == 102 ? "unknown channel" : e == 100 ? "internal server error"
                                                             : "bad request",
                    e == 100);
    cl->state = CS_FAILED;
  } else {
    cl->state = CS_CONNECTED;
    cl__set_expiry(cl, c->exp);
    jw_buf *o = cl__out(cl);
    begin_identity_result(cl, id, "connect");
    if (cl->ex && cl->ex->session) { /* emulation: where later commands are sent */
      jw_lit(o, ",\"session\":");
      jw_cstr(o, cl->ex->session);
      jw_lit(o, ",\"node\":");
      jw_cstr(o, cl->ex->node ? cl->ex->node : "");
    }
    if (cl->list->cfg->ping_interval_ms) {
      jw_lit(o, ",\"ping\":");
      jw_u64(o, (cl->list->cfg->ping_interval_ms + 999) / 1000);
      if (cl->list->cfg->pong_timeout_ms && !tr_is_uni(cl->transport))
        jw_lit(o, ",\"pong\":true");
    }
    if (c->data) {
      jw_lit(o, ",\"data\":");
      jw_lit(o, c->data);
    }
    if (c->subs.len) {
      jw_lit(o, ",\"subs\":{");
      jw_raw(o, c->subs.p, c->subs.len);
      jw_char(o, '}');
    }
    cl__end_result(cl);
    /* first ping at a random moment in [interval/2, interval]: spreads load */
    if (cl->list->cfg->ping_interval_ms) {
      uint32_t r = 0;
      if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r)
        r = (uint32_t)(uintptr_t)cl;
      uint32_t half = cl->list->cfg->ping_interval_ms / 2;
      cl->next_ping = hf_loop_now(hf_conn_loop(cl->conn)) + half + r % (half + 1);
    }
    cl__arm_timer(cl);
    srv_logline l;
    cl__log_begin(cl, LOG_INFO, "client_connected", &l);
    srv_log_int(&l, "expire_at", cl->expire_at);
    srv_log_int(&l, "server_side_subs", cl->nsubs);
    srv_log_str(&l, "transport", tr_name((tr_kind)cl->transport));
    srv_log_str(&l, "encoding", cl->pb ? "protobuf" : "json");
    srv_log_end(&l);
    /* the reply first, then what the server-side subscriptions held (a gap
     * among it ends the connection: nsubs drops to 0) */
    int held = 0;
    for (uint32_t i = 0; i < cl->nsubs; i++)
      held |= cl__sub_pq(cl__subs(cl)[i]) && cl__sub_pq(cl__subs(cl)[i])->n > 0;
    if (held)
      cl__flush_replies(cl);
    for (uint32_t i = 0; i < cl->nsubs; i++)
      if (cl__subs(cl)[i]->hs.flags & HUB_SUB_PENDING)
        cl__replay_pending(cl, cl__subs(cl)[i]);
    if (cl->state == CS_CONNECTED)
      cl__announce_joins(cl);
  }
  jw_free(&c->subs);
  free(c->data);
  cl__op_done(&c->op);
}

static void cmd_refresh(cl_client *cl, uint32_t id, json_t *req) {
  json_t *tok = json_object_get(req, "token");
  if (!json_is_string(tok) || !json_string_length(tok)) {
    cl_disconnect(cl, 3501, "bad request: refresh without a token");
    return;
  }
  json_t *claims = NULL;
  srv_jwt_status st = cl__verify(cl, json_string_value(tok), &claims);
  if (st == SRV_JWT_EXPIRED) {
    json_decref(claims);
    cl_disconnect(cl, 3005, "connection expired");
    return;
  }
  if (st != SRV_JWT_OK) {
    cl_disconnect(cl, 3500, "invalid token");
    return;
  }
  if (strcmp(cl__claim_user(cl, claims), cl->user) != 0) {
    json_decref(claims);
    cl_disconnect(cl, 3500, "invalid token: refresh token is for another user");
    return;
  }
  char *info = cl__claim_info(claims, "info", "b64info");
  if (info) {
    free(cl->conn_info);
    cl->conn_info = info;
    cl__reset_client_info(cl);
    cl__refresh_sub_infos(cl);
  }
  cl__set_expiry(cl, cl__claim_expiry(claims));
  json_decref(claims);
  cl__arm_timer(cl);
  MET_INC(MET_TOKEN_REFRESHED);
  begin_identity_result(cl, id, "refresh");
  cl__end_result(cl);
}

/* ---- asynchronous operations ------------------------------------------------ */

cl_op *cl__op_new(cl_client *cl, size_t size, uint32_t id) {
  cl_op *op = calloc(1, size);
  if (!op)
    return NULL;
  op->cl = cl;
  op->id = id;
  op->next = cl->ops;
  if (cl->ops)
    cl->ops->prev = op;
  cl->ops = op;
  cl->inflight++;
  return op;
}

cl_op *cl__op_new_bg(cl_client *cl, size_t size) {
  cl_op *op = cl__op_new(cl, size, 0);
  if (op) {
    op->background = 1;
    cl->inflight--;
  }
  return op;
}

void cl__op_adopt(cl_op *parent, cl_op *child) {
  child->parent = parent;
  parent->children++;
}

static void detach(cl_op *op) {
  cl_client *cl = op->cl;
  if (!cl)
    return;
  if (op->prev)
    op->prev->next = op->next;
  else
    cl->ops = op->next;
  if (op->next)
    op->next->prev = op->prev;
  if (!op->background)
    cl->inflight--;
  op->cl = NULL;
}

/* Free op when it is over and no child holds it; then its parent may go. */
static void release_op(cl_op *op) {
  while (op && op->done && !op->children) {
    cl_op *parent = op->parent;
    free(op);
    if (parent) {
      parent->children--;
      if (!parent->cl) /* its client is gone: nobody completes it */
        parent->done = 1;
    }
    op = parent;
  }
}

void cl__op_done(cl_op *op) {
  detach(op);
  op->done = 1;
  release_op(op);
}

cl_client *cl__op_enter(cl_op *op, int *token) {
  cl_client *cl = op->cl;
  *token = 0;
  if (!cl) { /* the client went away: nothing to answer */
    op->done = 1;
    release_op(op);
    return NULL;
  }
  if (!cl->busy) {
    cl->busy = 1;
    *token = 1;
  }
  return cl;
}

static void process_lines(cl_client *cl, uint8_t *data, size_t len, int *commands);
static void release(cl_client *cl);

void cl__op_exit(cl_client *cl, int token) {
  if (!token)
    return; /* inside a frame (or an outer completion): it flushes */
  /* the commands that waited for this one, in order */
  while (!cl->inflight && cl->queued && cl->state != CS_CLOSED && !cl->zombie) {
    jw_buf *q = cl->queued;
    cl->queued = NULL;
    int commands = 0;
    process_lines(cl, (uint8_t *)q->p, q->len, &commands);
    jw_free(q);
    free(q);
  }
  if (cl->state != CS_CLOSED)
    cl__flush_replies(cl);
  jw_reset(cl__out(cl));
  cl->busy = 0;
  if (cl->zombie)
    release(cl);
}

/* ---- rate limits -------------------------------------------------------------- */

/* A burst of abuse ends after this long without a refused command. */
#define RL_BURST_GAP_MS 1000

/* The one place where rate limits are consulted: before a command of
 * `bytes` bytes is handled. Returns 1 to handle it; 0 when a limit refused
 * it (error 111 sent when the command has an id, the refusal counted and
 * logged once per burst; past client.rate_limit.disconnect_after refusals
 * in one burst the connection is closed with 3013). */
static int rate_check(cl_client *cl, const proto_cmd *cmd, size_t bytes) {
  const cl_config *c = cl->list->cfg;
  const rl_limits *lim = rl_limits_get(&c->limits);
  if (cmd->kind == PROTO_PONG)
    return 1;
  uint64_t now = hf_loop_now(hf_conn_loop(cl->conn));
  met_ratelimit which;
  /* no limit of its own: no buckets (a bucket is full until first used,
   * so one made when a reload sets a limit starts as a fresh one would) */
  int own = lim->command.per_s || lim->bytes.per_s || lim->publish.per_s ||
            lim->subscribe.per_s;
  cl_buckets *b = cl__buckets(cl, own);
  if (own && !b) {
    cl_disconnect(cl, 3004, "internal server error");
    return 0;
  }
  if (b && !rl_take(&b->command, &lim->command, now, 1))
    which = MET_RL_COMMAND;
  else if (b && !rl_take(&b->bytes, &lim->bytes, now, bytes))
    which = MET_RL_BYTES;
  else if (b && cmd->kind == PROTO_PUBLISH && !rl_take(&b->publish, &lim->publish, now, 1))
    which = MET_RL_PUBLISH;
  else if (b && cmd->kind == PROTO_SUBSCRIBE &&
           !rl_take(&b->subscribe, &lim->subscribe, now, 1))
    which = MET_RL_SUBSCRIBE;
  else if (cl->rl_user && !rl_user_take(c->rl, cl->rl_user, now))
    which = MET_RL_USER;
  else {
    json_t *ch = cmd->kind == PROTO_PUBLISH && c->rl ? json_object_get(cmd->req, "channel")
                                                      : NULL;
    if (!json_is_string(ch) ||
        rl_channel_take(c->rl, json_string_value(ch), json_string_length(ch), now))
      return 1;
    which = MET_RL_CHANNEL;
  }
  static const char *const names[MET_RL_N] = {"command", "bytes",   "publish", "subscribe",
                                              "user",    "channel", "accept"};
  met_ratelimit_inc(which);
  if (!b && !(b = cl__buckets(cl, 1))) { /* a shared limit refused */
    cl_disconnect(cl, 3004, "internal server error");
    return 0;
  }
  if (!b->strikes || now - b->last_refusal > RL_BURST_GAP_MS) {
    b->strikes = 0; /* a new burst: say so once */
    srv_logline l;
    cl__log_begin(cl, LOG_WARN, "rate_limited", &l);
    srv_log_str(&l, "limit", names[which]);
    srv_log_end(&l);
  }
  b->strikes++;
  b->last_refusal = now;
  if (lim->disconnect_after && b->strikes > lim->disconnect_after) {
    srv_logline l;
    cl__log_begin(cl, LOG_WARN, "rate_limit_disconnect", &l);
    srv_log_str(&l, "limit", names[which]);
    srv_log_int(&l, "refused", (long long)b->strikes);
    srv_log_end(&l);
    cl_disconnect(cl, 3013, "too many requests");
    return 0;
  }
  if (cmd->id)
    cl__error_reply(cl, cmd->id, 111, "too many requests", 1);
  return 0;
}

/* ---- dispatch --------------------------------------------------------------- */

static void handle_command(cl_client *cl, const proto_cmd *cmd, size_t bytes) {
  uint32_t id = cmd->id;
  json_t *req = cmd->req;
  met_command_inc(cmd->kind);
  if (!rate_check(cl, cmd, bytes))
    return;
  if (cmd->bad) { /* Protobuf: a payload that is not JSON (cmd->bad) */
    srv_logline l;
    cl__log_begin(cl, LOG_WARN, "command_rejected", &l);
    srv_log_str(&l, "method", proto_kind_name(cmd->kind));
    srv_log_str(&l, "reason", cmd->bad);
    srv_log_end(&l);
    if (id)
      cl__error_reply(cl, id, 107, "bad request", 0);
    return;
  }
  if (cmd->kind >= 0 && srv_log_enabled(LOG_DEBUG)) {
    static const char *const names[PROTO_KINDS] = {
        "connect", "ping", "subscribe", "unsubscribe", "publish", "presence",
        "presence_stats", "history", "rpc", "send", "refresh", "sub_refresh"};
    srv_logline l;
    cl__log_begin(cl, LOG_DEBUG, "command", &l);
    srv_log_str(&l, "method", names[cmd->kind]);
    srv_log_int(&l, "id", (long long)id);
    json_t *ch = req ? json_object_get(req, "channel") : NULL;
    if (json_is_string(ch)) /* never tokens or data */
      srv_log_strn(&l, "channel", json_string_value(ch), json_string_length(ch));
    srv_log_end(&l);
  }
  switch (cmd->kind) {
  case PROTO_PONG:
    if (cl->await_pong) {
      cl->await_pong = 0;
      uint64_t now = cl__now_us();
      cl->rtt_us = (uint32_t)now - cl->ping_sent_us; /* modulo 2^32: under 71 min */
      met_observe_ping_rtt(cl->rtt_us);
      cl__arm_timer(cl);
    }
    return;
  case PROTO_SEND:
    cl_disconnect(cl, 3508, "not available: send is not supported");
    return;
  default:
    break;
  }
  if (cl->state == CS_FAILED) {
    cl_disconnect(cl, 3501, "bad request: command after a failed connect");
    return;
  }
  if (cmd->kind == PROTO_CONNECT) {
    cmd_connect(cl, id, req);
    return;
  }
  if (cl->state != CS_CONNECTED) {
    cl_disconnect(cl, 3501, "bad request: command before connect");
    return;
  }
  switch (cmd->kind) {
  case PROTO_SUBSCRIBE:
    cl__cmd_subscribe(cl, id, req);
    return;
  case PROTO_UNSUBSCRIBE:
    cl__cmd_unsubscribe(cl, id, req);
    return;
  case PROTO_PUBLISH:
    cl__cmd_publish(cl, id, req);
    return;
  case PROTO_HISTORY:
    cl__cmd_history(cl, id, req);
    return;
  case PROTO_PRESENCE:
    cl__cmd_presence(cl, id, req, 0);
    return;
  case PROTO_PRESENCE_STATS:
    cl__cmd_presence(cl, id, req, 1);
    return;
  case PROTO_REFRESH:
    cmd_refresh(cl, id, req);
    return;
  case PROTO_SUB_REFRESH:
    cl__cmd_sub_refresh(cl, id, req);
    return;
  case PROTO_RPC:
    cl__cmd_rpc(cl, id, req); /* 108 unless an RPC proxy takes the method */
    return;
  default: /* ping (not in protocol v2) */
    cl__error_reply(cl, id, 108, "not available", 0);
    return;
  }
}

static void process(cl_client *cl, int opcode, uint8_t *data, size_t len);

/* A send inside command handling can fail and tear the connection down,
 * whose on_close frees the client: keep it alive until we are done. */
void cl_on_message(cl_client *cl, int opcode, uint8_t *data, size_t len) {
  cl->busy = 1;
  jw_reset(cl__out(cl));
  process(cl, opcode, data, len);
  jw_reset(cl__out(cl)); /* whatever a closed client left unsent */
  cl->busy = 0;
  if (cl->zombie)
    release(cl);
}

/* Most bytes of commands that may wait behind an unfinished one. */
#define QUEUE_MAX (1u << 20)

/* Handle the commands of data[0..len), one per line, strictly in order:
 * while an earlier one is still in flight, the rest waits in cl->queued. */
static void process_lines(cl_client *cl, uint8_t *data, size_t len, int *commands) {
  size_t off = 0;
  while (off < len && cl->state != CS_CLOSED) {
    if (cl->inflight) {
      if (!cl->queued) { /* made for the first command that waits */
        cl->queued = malloc(sizeof *cl->queued);
        if (!cl->queued) {
          cl_disconnect(cl, 3004, "internal server error");
          return;
        }
        jw_init(cl->queued);
      }
      if (cl->queued->len + 1 + (len - off) > QUEUE_MAX) {
        cl_disconnect(cl, 3013, "too many requests: commands queued behind a slow one");
        return;
      }
      if (cl->queued->len && !cl->pb) /* Protobuf: the prefixes delimit */
        jw_char(cl->queued, '\n');
      jw_raw(cl->queued, (const char *)data + off, len - off);
      return;
    }
    if (cl->pb) {
      const uint8_t *m;
      size_t n;
      uint16_t code;
      const char *why;
      int r = pb_next(data, len, &off, cl->list->cfg->max_message, &m, &n, &code, &why);
      if (r <= 0) {
        if (r < 0) {
          srv_logline l;
          cl__log_begin(cl, LOG_WARN, "protocol_violation", &l);
          srv_log_str(&l, "reason", why);
          srv_log_end(&l);
          cl_disconnect(cl, code, why);
        }
        return;
      }
      proto_cmd cmd;
      if (pb_parse(m, n, &cmd, &why) < 0) {
        srv_logline l;
        cl__log_begin(cl, LOG_WARN, "protocol_violation", &l);
        srv_log_str(&l, "reason", why);
        srv_log_end(&l);
        cl_disconnect(cl, 3501, why);
        return;
      }
      (*commands)++;
      handle_command(cl, &cmd, n);
      proto_cmd_free(&cmd);
      continue;
    }
    uint8_t *nl = memchr(data + off, '\n', len - off);
    size_t end = nl ? (size_t)(nl - data) : len;
    size_t n = end - off;
    if (n && !(n == 1 && data[off] == '\r')) {
      proto_cmd cmd;
      const char *why;
      if (proto_parse((const char *)data + off, n, &cmd, &why) < 0) {
        cl_disconnect(cl, 3501, why);
        return;
      }
      (*commands)++;
      handle_command(cl, &cmd, n);
      proto_cmd_free(&cmd);
    }
    off = end + 1;
  }
}

static void process(cl_client *cl, int opcode, uint8_t *data, size_t len) {
  if (cl->state == CS_CLOSED)
    return;
  if (cl->pb && opcode != HF_OP_BINARY) {
    cl_disconnect(cl, 3506, "inappropriate protocol: text frame on a Protobuf connection");
    return;
  }
  if (!cl->pb && opcode != HF_OP_TEXT) {
    cl_disconnect(cl, 3506, "inappropriate protocol: binary frame on a JSON connection");
    return;
  }
  int commands = 0;
  int queued_before = cl->queued != NULL || cl->inflight;
  process_lines(cl, data, len, &commands);
  if (cl->state == CS_CLOSED)
    return;
  if (!commands && !queued_before && !cl->inflight) {
    cl_disconnect(cl, 3501, "bad request: empty frame");
    return;
  }
  cl__flush_replies(cl);
}

/* ---- timers -------------------------------------------------------------- */

static void timer_due(cl_client *cl);

/* A send from a timer can fail and tear the connection down, whose on_close
 * frees the client: keep it alive until the timer's work is done, as
 * cl_on_message does. */
void cl_on_timer(cl_client *cl) {
  int outer = cl->busy;
  cl->busy = 1;
  timer_due(cl);
  if (outer)
    return;
  cl->busy = 0;
  if (cl->zombie)
    release(cl);
}

static void timer_due(cl_client *cl) {
  uint64_t now = hf_loop_now(hf_conn_loop(cl->conn));
  if (cl->state == CS_NEW) {
    if (now >= cl->stale_deadline)
      cl_disconnect(cl, 3502, "stale: no connect command in time");
    else
      cl__arm_timer(cl);
    return;
  }
  if (cl->state != CS_CONNECTED)
    return;
  uint64_t rd = cl__refresh_due(cl);
  if (rd && now >= rd) {
    cl->ex->refresh_due = 0;
    cl__proxy_refresh(cl); /* may close the connection */
    if (cl->state != CS_CONNECTED)
      return;
  }
  if (cl->expire_deadline && now >= cl->expire_deadline) {
    cl_disconnect(cl, 3005, "connection expired");
    return;
  }
  if (cl->await_pong && now >= cl->pong_deadline) {
    cl_disconnect(cl, 3012, "no pong");
    return;
  }
  if (cl__check_sub_deadlines(cl, now) < 0)
    return;
  if (!cl->await_pong && cl->next_ping && now >= cl->next_ping) {
    cl__send(cl, "{}", 2);
    if (cl->state != CS_CONNECTED)
      return; /* the send failed and closed it */
    cl->ping_sent_us = (uint32_t)cl__now_us();
    cl->next_ping = now + cl->list->cfg->ping_interval_ms;
    if (cl->list->cfg->pong_timeout_ms && !tr_is_uni(cl->transport)) { /* uni: no pongs */
      cl->await_pong = 1;
      cl->pong_deadline = now + cl->list->cfg->pong_timeout_ms;
    }
  }
  cl__arm_timer(cl);
}

/* ---- lifecycle ------------------------------------------------------------ */

cl_client *cl_new(hf_conn *conn, hub_local *hl, cl_list *list,
                  const cl_config *cfg) {
  cl_client *cl = calloc(1, sizeof *cl);
  if (!cl)
    return NULL;
  cl->conn = conn;
  cl->list = list;
  list->hl = hl; /* the same for every client of the list */
  list->cfg = cfg;
  list->ctx = hf_conn_get_ctx(conn); /* the same for every client of the list */
  list->count++;
  cl->stale_deadline = hf_loop_now(hf_conn_loop(conn)) + cfg->stale_close_delay_ms;
  cl__arm_timer(cl);
  return cl;
}

void cl_free(cl_client *cl) {
  if (!cl)
    return;
  if (cl->list->cursor == cl) /* its connection is still walkable here */
    cl->list->cursor = cl_next(cl);
  hf_conn_set_timer(cl->conn, 0);
  while (cl->ops) /* their completions will find the client gone */
    detach(cl->ops);
  while (cl->nsubs)
    cl__remove_sub(cl, cl__subs(cl)[cl->nsubs - 1]);
  cl->state = CS_CLOSED;
  if (cl->busy) {
    cl->zombie = 1;
    jw_reset(cl__out(cl)); /* its pending replies have nowhere to go */
    return;
  }
  release(cl);
}

void cl_list_drain_begin(cl_list *l) { l->cursor = cl_list_first(l); }

/* The first client on c or after it. */
static cl_client *client_from(const cl_list *l, hf_conn *c) {
  for (; c; c = hf_conn_ctx_next(c)) {
    cl_client *cl = l->of_conn(c);
    if (cl)
      return cl;
  }
  return NULL;
}

cl_client *cl_list_first(const cl_list *l) {
  return l->ctx ? client_from(l, hf_conn_ctx_first(l->ctx)) : NULL;
}

size_t cl_list_disconnect_next(cl_list *l, size_t n, uint16_t code, const char *reason) {
  size_t done = 0;
  while (done < n && l->cursor) {
    cl_client *cl = l->cursor;
    l->cursor = cl_next(cl); /* before the close, which may free cl */
    if (cl->state != CS_CLOSED) {
      cl_disconnect(cl, code, reason);
      done++;
    }
  }
  return done;
}

static void release(cl_client *cl) {
  cl->list->count--;
  if (cl->subs_arr)
    free(cl->subv);
  if (cl->queued) {
    jw_free(cl->queued);
    free(cl->queued);
  }
  if (!cl->user_shared)
    free(cl->user);
  rl_user_release(cl->list->cfg->rl, cl->rl_user); /* after: user may be its name */
  free(cl->conn_info);
  free(cl->client_info);
  if (cl->ex) {
    free(cl->ex->origin);
    free(cl->ex->px_headers);
    free(cl->ex->meta);
    free(cl->ex->rb);
    free(cl->ex);
  }
  free(cl);
}

void cl_send_shared(cl_client *cl, hf_shared *frame) {
  if (cl->state != CS_CONNECTED)
    return;
  if (!cl->pb) {
    if (frame->flags & HF_SHARED_BINARY) /* JSON cannot carry it: 3506 */
      cl__binary_for_json(cl, "publication", NULL, 0);
    else
      tr_send_shared(cl->conn, cl->transport, frame);
    return;
  }
  /* built once per publication for every Protobuf recipient of any worker */
  hf_shared *v = pb_shared_variant(frame, cl->transport == TR_HTTP_STREAM);
  if (v) {
    hf_conn_send_shared(cl->conn, v, 0, v->len);
  } else { /* out of memory: this recipient misses it; said once */
    static atomic_int said;
    if (!atomic_exchange(&said, 1)) {
      srv_logline l;
      cl__log_begin(cl, LOG_ERROR, "protobuf_encode_failed", &l);
      srv_log_int(&l, "bytes", (long long)frame->len);
      srv_log_end(&l);
    }
  }
}

size_t cl_send_shared_n(cl_client *cl, hf_shared *const *frames, size_t n) {
  if (cl->state != CS_CONNECTED)
    return n;
  hf_shared *pbv[64];
  if (cl->pb && cl->transport == TR_WEBSOCKET) {
    /* the Protobuf variants, built once per publication (see above) */
    if (n > 64)
      n = 64;
    for (size_t i = 0; i < n; i++)
      if (!(pbv[i] = pb_shared_variant(frames[i], 0))) {
        cl_send_shared(cl, frames[0]); /* it logs; the rest is offered again */
        return 1;
      }
    frames = pbv;
  } else if (cl->pb || cl->transport != TR_WEBSOCKET) {
    for (size_t i = 0; i < n; i++) /* re-framed for a stream: one by one */
      cl_send_shared(cl, frames[i]);
    return n;
  } else {
    size_t b = 0; /* JSON: what comes before binary data goes as a run */
    while (b < n && !(frames[b]->flags & HF_SHARED_BINARY))
      b++;
    if (!b) {
      cl_send_shared(cl, frames[0]); /* binary: closed with 3506 */
      return 1;
    }
    n = b;
  }
  int r = hf_conn_send_shared_v(cl->conn, frames, n);
  return r > 0 ? (size_t)r : n; /* closed or closing: the rest goes nowhere */
}

void cl_set_protobuf(cl_client *cl) { cl->pb = 1; }

void cl_disconnect_push(cl_client *cl, uint16_t code, const char *reason) {
  if (!tr_is_stream(cl->transport))
    return;
  jw_buf b;
  jw_init(&b);
  jw_lit(&b, "{\"push\":{\"disconnect\":{\"code\":");
  jw_u64(&b, code);
  jw_lit(&b, ",\"reason\":");
  jw_cstr(&b, reason ? reason : "");
  jw_lit(&b, "}}}");
  if (jw_ok(&b))
    cl__send(cl, b.p, b.len);
  jw_free(&b);
}
int cl_protobuf(const cl_client *cl) { return cl->pb; }

void cl_set_transport(cl_client *cl, int kind, const char *session,
                      const char *node) {
  cl->transport = (uint8_t)kind;
  cl_extra *ex = session || node ? cl__extra(cl) : cl->ex;
  if (ex) { /* out of memory: the connect result names no session */
    ex->session = session;
    ex->node = node;
  }
}

cl_extra *cl__extra(cl_client *cl) {
  if (!cl->ex)
    cl->ex = calloc(1, sizeof *cl->ex);
  return cl->ex;
}

cl_buckets *cl__buckets(cl_client *cl, int make) {
  if (cl->ex && cl->ex->rb)
    return cl->ex->rb;
  cl_extra *ex = make ? cl__extra(cl) : NULL;
  return ex ? ex->rb = calloc(1, sizeof *ex->rb) : NULL;
}

int cl_transport(const cl_client *cl) { return cl->transport; }
const char *cl_session(const cl_client *cl) { return cl->ex ? cl->ex->session : NULL; }

const char *cl_user(const cl_client *cl) { return cl->user ? cl->user : ""; }
hf_conn *cl_conn(const cl_client *cl) { return cl->conn; }
cl_client *cl_next(const cl_client *cl) {
  return client_from(cl->list, hf_conn_ctx_next(cl->conn));
}

void cl_server_refresh(cl_client *cl, int64_t expire_at) {
  if (cl->state != CS_CONNECTED)
    return;
  MET_INC(MET_TOKEN_REFRESHED);
  cl__set_expiry(cl, expire_at);
  cl__arm_timer(cl);
}

uintptr_t cl_tag(const cl_client *cl) { return cl->tag; }

/* ---- what the admin API lists ------------------------------------------------ */

void cl_set_origin(cl_client *cl, const char *origin, size_t len) {
  cl_extra *ex = origin ? cl__extra(cl) : cl->ex;
  if (!ex)
    return; /* none, or out of memory: the admin list shows no origin */
  free(ex->origin);
  ex->origin = origin ? strndup(origin, len) : NULL;
}
const char *cl_origin(const cl_client *cl) { return cl->ex ? cl->ex->origin : NULL; }
uint64_t cl_rtt_us(const cl_client *cl) { return cl->rtt_us; }
uint64_t cl_created_ms(const cl_client *cl) { return hf_conn_accept_ms(cl->conn); }
size_t cl_num_channels(const cl_client *cl) { return cl->nsubs; }
const char *cl_channel_at(const cl_client *cl, size_t i, size_t *len) {
  return hub_chan_name(cl__subs(cl)[i]->hs.ch, len);
}
void cl_set_tag(cl_client *cl, uintptr_t tag) { cl->tag = (uint32_t)tag; }
