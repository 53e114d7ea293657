/* SPDX-License-Identifier: MIT */
/* The real-time protocol's side of the backend event proxy: connect
 * without a token, refresh, subscribe, publish, sub_refresh and rpc asked
 * of the application over HTTP (evproxy/evproxy.h), with Centrifugo v6's
 * request and answer JSON. Each request is an operation of the client
 * (cl_op): later commands wait behind it in order, and an answer that
 * arrives after the connection went only frees the operation. */
#include "protocol/client_impl.h"
#include "metrics/metrics.h"
#include "evproxy/evproxy.h"
#include "channels/pdata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A proxied event in flight. */
typedef struct {
  cl_op op;
  px_event ev;
  int ep;
  json_t *req;        /* the command (connect, subscribe), or NULL */
  char *text;         /* publish: the client's data (JSON text) */
  size_t len;
  char ch[];          /* subscribe, publish, sub_refresh: the channel */
} px_op;

bool cl__proxy_connect_enabled(const cl_client *cl) {
  return cl->list->cfg->px && cl->list->cfg->px->connect_enabled && cl->list->px;
}

bool cl__proxy_sub_refresh_enabled(const cl_client *cl, const chan_ns *ns) {
  return cl->list->px && px_channel_endpoint(cl->list->cfg->px, PX_SUB_REFRESH, ns) >= 0;
}

void cl_set_request_headers(cl_client *cl, const hf_http_request *req) {
  cl_take_request_headers(cl, px_capture_headers(cl->list->cfg->px, req));
}

void cl_take_request_headers(cl_client *cl, char *headers) {
  cl_extra *ex = headers ? cl__extra(cl) : cl->ex;
  if (ex) {
    free(ex->px_headers);
    ex->px_headers = headers;
  } else {
    free(headers); /* out of memory: proxies get no headers */
  }
}

/* ---- request bodies ---------------------------------------------------------- */

static void begin_body(jw_buf *b, cl_client *cl, const px_endpoint *e, int with_user) {
  char id[37];
  hf_conn_id(cl->conn, id);
  jw_lit(b, "{\"client\":");
  jw_cstr(b, id);
  /* the session's transport and protocol; payloads stay JSON text for
   * both encodings */
  jw_lit(b, ",\"transport\":");
  jw_cstr(b, tr_name((tr_kind)cl->transport));
  jw_lit(b, cl->pb ? ",\"protocol\":\"protobuf\",\"encoding\":\"json\""
                   : ",\"protocol\":\"json\",\"encoding\":\"json\"");
  if (with_user) {
    jw_lit(b, ",\"user\":");
    jw_cstr(b, cl->user ? cl->user : "");
  }
  if (e->include_meta && cl->ex && cl->ex->meta) {
    jw_lit(b, ",\"meta\":");
    jw_lit(b, cl->ex->meta);
  }
}

/* "data": the JSON value v, or "b64data" in binary_encoding mode. */
static void put_data(jw_buf *b, const px_endpoint *e, json_t *v) {
  if (!v)
    return;
  if (e->binary) {
    char *t = jw_dump(v);
    if (t) {
      jw_lit(b, ",\"b64data\":");
      px_b64_str(b, t, strlen(t));
      free(t);
    }
    return;
  }
  jw_lit(b, ",\"data\":");
  jw_json(b, v);
}

/* ---- starting and finishing ---------------------------------------------------- */

static void on_answer(void *arg, const px_result *r);

/* Send body for operation po (already created); an immediate refusal is
 * answered at once through the same path as a late failure. */
static void send_op(cl_client *cl, px_op *po, jw_buf *body) {
  jw_char(body, '}');
  px_result fail = {PX_E_CONNECT, 0, NULL, 0};
  if (!jw_ok(body)) {
    on_answer(po, &fail);
  } else {
    char id[37];
    hf_conn_id(cl->conn, id);
    px_status st = px_call(cl->list->px, po->ep, po->ev, id, body->p, body->len,
                           cl->ex ? cl->ex->px_headers : NULL, on_answer, po);
    if (st != PX_OK) {
      fail.st = st;
      on_answer(po, &fail);
    }
  }
  jw_free(body);
}

static px_op *new_op(cl_client *cl, px_event ev, int ep, uint32_t id, int background,
                     const char *ch, size_t len) {
  px_op *po = (px_op *)(background ? cl__op_new_bg(cl, sizeof *po + len + 1)
                                   : cl__op_new(cl, sizeof *po + len + 1, id));
  if (!po)
    return NULL;
  po->ev = ev;
  po->ep = ep;
  po->len = len;
  if (len)
    memcpy(po->ch, ch, len);
  po->ch[len] = 0;
  return po;
}

/* The backend's disconnect {code, reason}: end the connection with it.
 * Returns 1 when it did. */
static int backend_disconnect(cl_client *cl, json_t *d) {
  if (!json_is_object(d))
    return 0;
  json_t *code = json_object_get(d, "code");
  json_t *reason = json_object_get(d, "reason");
  long long c = json_is_integer(code) ? json_integer_value(code) : 0;
  if (c < 3000 || c > 4999)
    c = 3000; /* a code the protocol cannot carry: a reconnecting one */
  char why[124]; /* a close frame carries at most 123 bytes of reason */
  snprintf(why, sizeof why, "%s", json_is_string(reason) ? json_string_value(reason) : "");
  srv_logline l;
  cl__log_begin(cl, LOG_INFO, "proxy_disconnect", &l);
  srv_log_int(&l, "code", c);
  srv_log_str(&l, "reason", why);
  srv_log_end(&l);
  cl_disconnect(cl, (uint16_t)c, why);
  return 1;
}

/* What the answer means for a command (connect, subscribe, publish, rpc):
 * its result object, or NULL after the client was answered (an error
 * reply, or a close). */
static json_t *command_outcome(cl_client *cl, px_op *po, const px_result *r) {
  uint32_t id = po->op.id;
  if (r->st != PX_OK) { /* the backend failed: the client retries later */
    if (r->st == PX_E_OVERLOAD)
      cl__error_reply(cl, id, 111, "too many requests", 1);
    else
      cl__error_reply(cl, id, 100, "internal server error", 1);
    return NULL;
  }
  if (backend_disconnect(cl, json_object_get(r->body, "disconnect")))
    return NULL;
  json_t *err = json_object_get(r->body, "error");
  if (json_is_object(err)) {
    json_t *code = json_object_get(err, "code");
    json_t *msg = json_object_get(err, "message");
    long long c = json_is_integer(code) ? json_integer_value(code) : 0;
    if (c <= 0 || c > 0xffffffffLL)
      c = 100;
    if (po->ev == PX_SUBSCRIBE)
      cl__log_denied(cl, "subscribe", po->ch, po->len, (unsigned)c);
    else if (po->ev == PX_PUBLISH)
      cl__log_denied(cl, "publish", po->ch, po->len, (unsigned)c);
    cl__error_reply(cl, id, (unsigned)c, json_is_string(msg) ? json_string_value(msg) : "",
                    json_is_true(json_object_get(err, "temporary")));
    return NULL;
  }
  json_t *res = json_object_get(r->body, "result");
  if (json_is_object(res))
    return res;
  if (po->ev != PX_CONNECT && !res) /* {} allows */
    return r->body;
  srv_logline l;
  cl__log_begin(cl, LOG_WARN, "proxy_bad_answer", &l);
  srv_log_str(&l, "event", px_event_name(po->ev));
  srv_log_str(&l, "reason", "no result, error or disconnect object");
  srv_log_end(&l);
  cl__error_reply(cl, id, 100, "internal server error", 1);
  return NULL;
}

static int64_t int_field(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return json_is_integer(v) ? json_integer_value(v) : 0;
}

static void connect_answer(cl_client *cl, px_op *po, const px_result *r) {
  json_t *res = command_outcome(cl, po, r);
  if (!res) {
    if (cl->state == CS_NEW)
      cl->state = CS_FAILED; /* as after any connect error reply */
    return;
  }
  json_t *user = json_object_get(res, "user");
  json_t *meta = json_object_get(res, "meta");
  cl->px_session = 1;
  cl_extra *ex = json_is_object(meta) ? cl__extra(cl) : NULL;
  if (ex) { /* out of memory: no meta for later proxy requests */
    free(ex->meta);
    ex->meta = jw_dump(meta);
  }
  cl__begin_session(cl, po->op.id, json_is_string(user) ? json_string_value(user) : "",
                    cl__claim_info(res, "info", "b64info"), int_field(res, "expire_at"), res,
                    po->req, cl__claim_info(res, "data", "b64data"));
}

/* The channel's namespace now (not kept while the backend answers: a
 * reload may have replaced the namespaces and freed the old ones); NULL
 * after an error reply when it is gone. */
static const chan_ns *answer_ns(cl_client *cl, px_op *po) {
  const chan_ns *ns;
  int r = chan_resolve(cl_policy_get(cl->list->cfg)->chans, po->ch, po->len, &ns);
  if (r != CHAN_OK) {
    cl__channel_error(cl, po->op.id, r);
    return NULL;
  }
  return ns;
}

static void subscribe_answer(cl_client *cl, px_op *po, const px_result *r) {
  json_t *res = command_outcome(cl, po, r);
  const chan_ns *ns = res ? answer_ns(cl, po) : NULL;
  if (!ns)
    return;
  unsigned err = cl__subscribe_allowed(cl, po->op.id, po->ch, po->len, ns, po->req,
                                       json_object_get(res, "override"),
                                       cl__claim_info(res, "info", "b64info"),
                                       cl__claim_info(res, "data", "b64data"),
                                       int_field(res, "expire_at"));
  if (err)
    cl__error_reply(cl, po->op.id, err,
                    err == 105 ? "already subscribed" : "internal server error", err == 100);
}

static void publish_answer(cl_client *cl, px_op *po, const px_result *r) {
  json_t *res = command_outcome(cl, po, r);
  const chan_ns *ns = res ? answer_ns(cl, po) : NULL;
  if (!ns)
    return;
  /* the backend may publish other data instead of the client's */
  char *text = cl__claim_info(res, "data", "b64data");
  json_t *b64 = json_object_get(res, "b64data");
  if (!text && json_is_string(b64)) /* not JSON: binary data, as in Centrifugo */
    text = pd_from_b64(json_string_value(b64), json_string_length(b64));
  if (!text && json_is_string(b64)) {
    cl__error_reply(cl, po->op.id, 107, "bad request: b64data is not base64", 0);
    return;
  }
  cl__publish_allowed(cl, po->op.id, po->ch, po->len, ns, text ? text : po->text,
                      json_is_true(json_object_get(res, "skip_history")));
  free(text);
}

static void rpc_answer(cl_client *cl, px_op *po, const px_result *r) {
  json_t *res = command_outcome(cl, po, r);
  if (!res)
    return;
  char *data = cl__claim_info(res, "data", "b64data");
  json_t *b64 = json_object_get(res, "b64data");
  if (!data && json_is_string(b64)) { /* binary data: Protobuf clients only */
    if (!cl->pb) {
      cl__binary_for_json(cl, "rpc", NULL, 0);
      return;
    }
    data = pd_from_b64(json_string_value(b64), json_string_length(b64));
  }
  cl__begin_result(cl, po->op.id, "rpc");
  if (data)
    pd_write_member(cl__out(cl), data, strlen(data));
  cl__end_result(cl);
  free(data);
}

/* Retry a failed refresh this much later (the expiry deadline still
 * closes a session the backend never prolongs). */
#define REFRESH_RETRY_MS 5000

/* What a refresh or sub_refresh answer says: REFRESH_RETRY (failed: ask
 * again later; *due is set), REFRESH_EXPIRED, or REFRESH_OK with the new
 * expiry in *exp and the new info (malloc'd JSON or NULL) in *info. */
enum { REFRESH_RETRY, REFRESH_EXPIRED, REFRESH_OK };
static int refresh_outcome(cl_client *cl, const px_result *r, uint64_t *due, int64_t *exp,
                           char **info) {
  json_t *res = r->st == PX_OK ? json_object_get(r->body, "result") : NULL;
  if (!json_is_object(res)) { /* failed: keep it, ask again */
    *due = hf_loop_now(hf_conn_loop(cl->conn)) + REFRESH_RETRY_MS;
    cl__arm_timer(cl);
    return REFRESH_RETRY;
  }
  if (json_is_true(json_object_get(res, "expired"))) {
    MET_INC(MET_TOKEN_EXPIRED);
    return REFRESH_EXPIRED;
  }
  MET_INC(MET_TOKEN_REFRESHED);
  *exp = int_field(res, "expire_at");
  *info = cl__claim_info(res, "info", "b64info");
  return REFRESH_OK;
}

static void refresh_answer(cl_client *cl, px_op *po, const px_result *r) {
  int64_t exp;
  char *info;
  if (cl->state != CS_CONNECTED)
    return;
  cl_extra *ex = cl__extra(cl); /* made when refresh_due was set */
  if (!ex) {
    cl_disconnect(cl, 3004, "internal server error");
    return;
  }
  int how = refresh_outcome(cl, r, &ex->refresh_due, &exp, &info);
  if (how == REFRESH_EXPIRED) {
    cl_disconnect(cl, 3005, "connection expired");
  } else if (how == REFRESH_OK) {
    if (info) {
      free(cl->conn_info);
      cl->conn_info = info;
      cl__reset_client_info(cl);
      cl__refresh_sub_infos(cl);
    }
    cl__set_expiry(cl, exp);
    cl__arm_timer(cl);
  }
}

static void sub_refresh_answer(cl_client *cl, px_op *po, const px_result *r) {
  int64_t exp;
  char *info;
  cl_sub *s = cl->state == CS_CONNECTED ? cl__find_sub(cl, po->ch, po->len) : NULL;
  if (!s)
    return; /* unsubscribed meanwhile */
  if (!s->x)
    return; /* not a proxy-refreshed subscription (cannot happen) */
  int how = refresh_outcome(cl, r, &s->x->tok.refresh_due, &exp, &info);
  if (how == REFRESH_EXPIRED && cl__sub_has(s, CLS_SERVER_SIDE)) {
    cl_disconnect(cl, 3006, "subscription expired");
  } else if (how == REFRESH_EXPIRED) {
    cl__unsubscribe_push(cl, s, 2501, "subscription expired");
  } else if (how == REFRESH_OK) {
    if (info) {
      free(s->x->tok.chan_info);
      s->x->tok.chan_info = info;
      cl__refresh_sub_infos(cl);
    }
    cl__set_sub_expiry(cl, s, exp);
    cl__arm_timer(cl);
  }
}

static void on_answer(void *arg, const px_result *r) {
  px_op *po = arg;
  json_t *req = po->req;
  char *text = po->text;
  int token;
  cl_client *cl = cl__op_enter(&po->op, &token);
  if (cl) {
    switch (po->ev) {
    case PX_CONNECT: connect_answer(cl, po, r); break;
    case PX_REFRESH: refresh_answer(cl, po, r); break;
    case PX_SUBSCRIBE: subscribe_answer(cl, po, r); break;
    case PX_PUBLISH: publish_answer(cl, po, r); break;
    case PX_SUB_REFRESH: sub_refresh_answer(cl, po, r); break;
    case PX_RPC: rpc_answer(cl, po, r); break;
    default: break;
    }
    cl__op_done(&po->op);
    cl__op_exit(cl, token);
  }
  json_decref(req);
  free(text);
}

/* ---- the events ---------------------------------------------------------------- */

/* Headers emulation: a connect command's "headers" map stands in for the
 * upgrade request's headers (browsers cannot set WebSocket headers). */
static void emulated_headers(cl_client *cl, json_t *h) {
  if (!json_is_object(h) || !json_object_size(h))
    return;
  jw_buf b;
  jw_init(&b);
  const char *k;
  json_t *v;
  json_object_foreach(h, k, v) {
    if (!json_is_string(v) || !*k || strpbrk(k, ":\r\n") || strpbrk(json_string_value(v), "\r\n"))
      continue;
    jw_lit(&b, k);
    jw_lit(&b, ": ");
    jw_lit(&b, json_string_value(v));
    jw_char(&b, '\n');
  }
  jw_char(&b, 0);
  if (!jw_ok(&b) || b.len <= 1) {
    jw_free(&b);
    return;
  }
  cl_extra *ex = cl__extra(cl);
  if (!ex) {
    jw_free(&b);
    return;
  }
  free(ex->px_headers);
  ex->px_headers = b.p;
}

void cl__proxy_connect(cl_client *cl, uint32_t id, json_t *req) {
  const px_config *px = cl->list->cfg->px;
  const px_endpoint *e = &px->ep[px->ev_ep[PX_CONNECT]];
  emulated_headers(cl, json_object_get(req, "headers"));
  px_op *po = new_op(cl, PX_CONNECT, px->ev_ep[PX_CONNECT], id, 0, NULL, 0);
  if (!po) {
    cl_disconnect(cl, 3004, "internal server error");
    return;
  }
  po->req = json_incref(req);
  jw_buf b;
  jw_init(&b);
  begin_body(&b, cl, e, 0);
  json_t *name = json_object_get(req, "name"), *version = json_object_get(req, "version");
  if (json_is_string(name) && json_string_length(name)) {
    jw_lit(&b, ",\"name\":");
    jw_json(&b, name);
  }
  if (json_is_string(version) && json_string_length(version)) {
    jw_lit(&b, ",\"version\":");
    jw_json(&b, version);
  }
  put_data(&b, e, json_object_get(req, "data"));
  json_t *subs = json_object_get(req, "subs");
  if (json_is_object(subs) && json_object_size(subs)) {
    jw_lit(&b, ",\"channels\":[");
    const char *k;
    json_t *v;
    int first = 1;
    json_object_foreach(subs, k, v) {
      if (!first)
        jw_char(&b, ',');
      first = 0;
      jw_cstr(&b, k);
    }
    jw_char(&b, ']');
  }
  send_op(cl, po, &b);
}

void cl__proxy_refresh(cl_client *cl) {
  const px_config *px = cl->list->cfg->px;
  if (!px || !cl->list->px || px->ev_ep[PX_REFRESH] < 0)
    return;
  px_op *po = new_op(cl, PX_REFRESH, px->ev_ep[PX_REFRESH], 0, 1, NULL, 0);
  if (!po)
    return; /* the expiry deadline still applies */
  jw_buf b;
  jw_init(&b);
  begin_body(&b, cl, &px->ep[po->ep], 1);
  send_op(cl, po, &b);
}

/* A channel event's request (user, the op's channel, data when given; or
 * b64, a client's binary data already in base64, as "b64data"). */
static void send_channel_event(cl_client *cl, px_op *po, json_t *data, json_t *b64) {
  const px_endpoint *e = &cl->list->cfg->px->ep[po->ep];
  jw_buf b;
  jw_init(&b);
  begin_body(&b, cl, e, 1);
  jw_lit(&b, ",\"channel\":");
  jw_str(&b, po->ch, po->len);
  if (b64) {
    jw_lit(&b, ",\"b64data\":");
    jw_json(&b, b64);
  } else {
    put_data(&b, e, data);
  }
  send_op(cl, po, &b);
}

int cl__proxy_subscribe(cl_client *cl, uint32_t id, json_t *req, const char *ch,
                        size_t len, const chan_ns *ns) {
  int ep = cl->list->px ? px_channel_endpoint(cl->list->cfg->px, PX_SUBSCRIBE, ns) : -1;
  if (ep < 0)
    return 0;
  /* user-limited channels carry their own permission (as in Centrifugo) */
  if (ns->allow_user_limited_channels && memchr(ch, '#', len))
    return 0;
  px_op *po = new_op(cl, PX_SUBSCRIBE, ep, id, 0, ch, len);
  if (!po) {
    cl__error_reply(cl, id, 100, "internal server error", 1);
    return 1;
  }
  po->req = json_incref(req);
  send_channel_event(cl, po, json_object_get(req, "data"), NULL);
  return 1;
}

/* Binary data for a proxy without binary_encoding: JSON "data" cannot
 * carry it, and the backend would get something else than the client
 * sent. Refused with 107 and a command_rejected warning. */
static void refuse_binary(cl_client *cl, uint32_t id, const char *method, const char *why) {
  srv_logline l;
  cl__log_begin(cl, LOG_WARN, "command_rejected", &l);
  srv_log_str(&l, "method", method);
  srv_log_str(&l, "reason", why);
  srv_log_end(&l);
  cl__error_reply(cl, id, 107, why, 0);
}

int cl__proxy_publish(cl_client *cl, uint32_t id, json_t *req, const char *ch, size_t len,
                      const chan_ns *ns) {
  int ep = cl->list->px ? px_channel_endpoint(cl->list->cfg->px, PX_PUBLISH, ns) : -1;
  if (ep < 0)
    return 0;
  json_t *data = json_object_get(req, "data");
  json_t *b64 = data ? NULL : json_object_get(req, "b64data");
  if (b64 && !cl->list->cfg->px->ep[ep].binary) {
    refuse_binary(cl, id, "publish", "bad request: binary data needs a publish proxy with binary_encoding");
    return 1;
  }
  px_op *po = new_op(cl, PX_PUBLISH, ep, id, 0, ch, len);
  if (!po || !(po->text = data ? jw_dump(data)
                               : pd_from_b64(json_string_value(b64), json_string_length(b64)))) {
    if (po)
      cl__op_done(&po->op);
    cl__error_reply(cl, id, 100, "internal server error", 1);
    return 1;
  }
  send_channel_event(cl, po, data, b64);
  return 1;
}

void cl__proxy_sub_refresh(cl_client *cl, cl_sub *s) {
  size_t len;
  const char *ch = hub_chan_name(s->hs.ch, &len);
  const chan_ns *ns;
  if (chan_resolve(cl_policy_get(cl->list->cfg)->chans, ch, len, &ns) != CHAN_OK)
    return;
  int ep = cl->list->px ? px_channel_endpoint(cl->list->cfg->px, PX_SUB_REFRESH, ns) : -1;
  if (ep < 0)
    return;
  px_op *po = new_op(cl, PX_SUB_REFRESH, ep, 0, 1, ch, len);
  if (!po)
    return;
  send_channel_event(cl, po, NULL, NULL);
}

void cl__cmd_rpc(cl_client *cl, uint32_t id, json_t *req) {
  json_t *m = json_object_get(req, "method");
  const char *method = json_is_string(m) ? json_string_value(m) : "";
  size_t mlen = json_is_string(m) ? json_string_length(m) : 0;
  int ep = cl->list->px ? px_rpc_endpoint(cl->list->cfg->px, method, mlen) : -1;
  if (ep < 0) {
    cl__error_reply(cl, id, 108, "not available", 0);
    return;
  }
  const px_endpoint *e = &cl->list->cfg->px->ep[ep];
  json_t *b64 = cl->pb ? json_object_get(req, "b64data") : NULL; /* binary data */
  if (b64 && !e->binary) {
    refuse_binary(cl, id, "rpc", "bad request: binary data needs an rpc proxy with binary_encoding");
    return;
  }
  px_op *po = new_op(cl, PX_RPC, ep, id, 0, NULL, 0);
  if (!po) {
    cl__error_reply(cl, id, 100, "internal server error", 1);
    return;
  }
  jw_buf b;
  jw_init(&b);
  begin_body(&b, cl, e, 1);
  if (mlen) {
    jw_lit(&b, ",\"method\":");
    jw_str(&b, method, mlen);
  }
  put_data(&b, e, json_object_get(req, "data"));
  if (b64) {
    jw_lit(&b, ",\"b64data\":");
    jw_json(&b, b64); /* the client's bytes, already base64 */
  }
  send_op(cl, po, &b);
}
