/* SPDX-License-Identifier: MIT */
/* Centrifugo client protocol v2 over WebSocket (JSON): commands are
 * newline-separated JSON objects, handled strictly in order; the replies to
 * one frame leave together in one message. Per-command problems are error
 * replies; protocol violations are close frames with the protocol's code
 * (3501 bad request, 3500 invalid token, ...) and a plain-text reason. */
#include "protocol/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/evp.h>

#include "hf/frame.h"
#include "protocol/jsonw.h"
#include "log.h"
#include "protocol/proto.h"

typedef enum { CS_NEW, CS_CONNECTED, CS_FAILED, CS_CLOSED } cl_state;

typedef struct {
  hub_chan *ch;
  uint8_t server_side; /* from the token's channels/subs claims */
  int64_t expire_at;   /* subscription token expiry (Unix s); 0 = none */
  uint64_t deadline;   /* mono ms: expire_at + expired_sub_close_delay */
} cl_sub;

struct cl_client {
  hf_conn *conn;
  hub_local *hl;
  cl_list *list;
  cl_client *next, *prev;
  const cl_config *cfg;
  uintptr_t tag; /* the server's per-connection bits */
  hf_timer timer;
  uint8_t state;
  uint8_t await_pong;
  uint8_t busy;   /* inside cl_on_message: a teardown must not free yet */
  uint8_t zombie; /* cl_free was called while busy */
  char *user;      /* "" when anonymous */
  char *conn_info; /* minified JSON of the token's info claim, or NULL */
  char *client_info; /* {"user":..,"client":..,"conn_info":..} for pubs */
  int64_t expire_at; /* Unix seconds; 0 = never */
  uint64_t next_ping, pong_deadline, expire_deadline, stale_deadline; /* mono ms */
  cl_sub *subs;
  uint32_t nsubs, capsubs;
};

static void unsubscribe_push(cl_client *cl, cl_sub *s, unsigned code,
                             const char *reason);

/* ---- small helpers ------------------------------------------------------ */

static int64_t wall_s(void) { return (int64_t)time(NULL); }

static void log_client(cl_client *cl, srv_log_level lvl, const char *event,
                       srv_logline *l) {
  char id[37];
  hf_conn_id(cl->conn, id);
  srv_log_begin(l, lvl, event);
  srv_log_str(l, "conn_id", id);
  srv_log_str(l, "user", cl->user ? cl->user : "");
}

static void arm_timer(cl_client *cl) {
  hf_loop *loop = hf_conn_loop(cl->conn);
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
    for (uint32_t i = 0; i < cl->nsubs; i++)
      if (cl->subs[i].deadline && cl->subs[i].deadline < due)
        due = cl->subs[i].deadline;
  }
  if (due == UINT64_MAX) {
    hf_timer_cancel(loop, &cl->timer);
    return;
  }
  uint64_t now = hf_loop_now(loop);
  hf_timer_set(loop, &cl->timer, due > now ? due - now : 0);
}

/* Send the replies gathered so far as one message. */
static void flush_replies(cl_client *cl) {
  if (!cl->list->out.len)
    return;
  if (jw_ok(&cl->list->out))
    hf_conn_send(cl->conn, HF_OP_TEXT, (const uint8_t *)cl->list->out.p, cl->list->out.len);
  jw_reset(&cl->list->out);
}

static void begin_reply(cl_client *cl) {
  if (cl->list->out.len)
    jw_char(&cl->list->out, '\n');
}

void cl_disconnect(cl_client *cl, uint16_t code, const char *reason) {
  if (cl->state == CS_CLOSED)
    return;
  flush_replies(cl); /* replies before the close frame, in order */
  cl->state = CS_CLOSED;
  hf_timer_cancel(hf_conn_loop(cl->conn), &cl->timer);
  hf_conn_close(cl->conn, code, reason);
}

static void error_reply(cl_client *cl, uint32_t id, unsigned code,
                        const char *message, int temporary) {
  begin_reply(cl);
  jw_lit(&cl->list->out, "{\"id\":");
  jw_u64(&cl->list->out, id);
  jw_lit(&cl->list->out, ",\"error\":{\"code\":");
  jw_u64(&cl->list->out, code);
  jw_lit(&cl->list->out, ",\"message\":");
  jw_cstr(&cl->list->out, message);
  if (temporary)
    jw_lit(&cl->list->out, ",\"temporary\":true");
  jw_lit(&cl->list->out, "}}");
}

/* Start a reply {"id":N,"<key>":{ ... the caller writes fields, then
 * end_result() closes it. */
static void begin_result(cl_client *cl, uint32_t id, const char *key) {
  begin_reply(cl);
  jw_lit(&cl->list->out, "{\"id\":");
  jw_u64(&cl->list->out, id);
  jw_lit(&cl->list->out, ",\"");
  jw_lit(&cl->list->out, key);
  jw_lit(&cl->list->out, "\":{");
}

static void end_result(cl_client *cl) { jw_lit(&cl->list->out, "}}"); }

/* The fields connect and refresh results share: client, version, and
 * expires/ttl when the connection expires. */
static void begin_identity_result(cl_client *cl, uint32_t id, const char *key) {
  char cid[37];
  hf_conn_id(cl->conn, cid);
  begin_result(cl, id, key);
  jw_lit(&cl->list->out, "\"client\":");
  jw_cstr(&cl->list->out, cid);
  jw_lit(&cl->list->out, ",\"version\":");
  jw_cstr(&cl->list->out, cl->cfg->version);
  if (cl->expire_at) {
    int64_t ttl = cl->expire_at - wall_s();
    jw_lit(&cl->list->out, ",\"expires\":true,\"ttl\":");
    jw_u64(&cl->list->out, (uint64_t)(ttl > 0 ? ttl : 0));
  }
}

static void empty_result(cl_client *cl, uint32_t id, const char *key) {
  begin_result(cl, id, key);
  end_result(cl);
}

static void log_denied(cl_client *cl, const char *action, const char *ch,
                       size_t len, unsigned code) {
  srv_logline l;
  log_client(cl, LOG_WARN, "permission_denied", &l);
  srv_log_str(&l, "action", action);
  srv_log_strn(&l, "channel", ch, len);
  srv_log_int(&l, "code", code);
  srv_log_end(&l);
}

static cl_sub *find_sub(cl_client *cl, const char *ch, size_t len) {
  for (uint32_t i = 0; i < cl->nsubs; i++) {
    size_t n;
    const char *name = hub_chan_name(cl->subs[i].ch, &n);
    if (n == len && memcmp(name, ch, len) == 0)
      return &cl->subs[i];
  }
  return NULL;
}

static int add_sub(cl_client *cl, const char *ch, size_t len, int server_side) {
  if (cl->nsubs == cl->capsubs) {
    uint32_t cap = cl->capsubs ? cl->capsubs * 2 : 4;
    cl_sub *ns = realloc(cl->subs, cap * sizeof *ns);
    if (!ns)
      return -1;
    cl->subs = ns;
    cl->capsubs = cap;
  }
  hub_chan *hc = hub_subscribe(cl->hl, ch, len, cl);
  if (!hc)
    return -1;
  cl->subs[cl->nsubs++] = (cl_sub){hc, (uint8_t)server_side, 0, 0};
  return 0;
}

static void remove_sub(cl_client *cl, cl_sub *s) {
  hub_unsubscribe(cl->hl, s->ch, cl);
  *s = cl->subs[--cl->nsubs];
}

/* ---- token handling ----------------------------------------------------- */

static const char *claim_user(const cl_client *cl, json_t *claims) {
  const char *name = cl->cfg->user_id_claim && *cl->cfg->user_id_claim
                         ? cl->cfg->user_id_claim
                         : "sub";
  json_t *v = json_object_get(claims, name);
  return json_is_string(v) ? json_string_value(v) : "";
}

/* Connection expiry from exp / expire_at (Unix seconds; 0 = never). */
static int64_t claim_expiry(json_t *claims) {
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

/* conn_info from the claims: b64info (base64 of a JSON document; it takes
 * precedence, as in Centrifugo) or info; minified, or NULL. Binary b64info
 * that is not JSON cannot travel in the JSON protocol and is dropped. */
static char *claim_info(json_t *claims) {
  json_t *b64 = json_object_get(claims, "b64info");
  if (json_is_string(b64) && json_string_length(b64) &&
      json_string_length(b64) < 65536 && json_string_length(b64) % 4 == 0) {
    size_t n = json_string_length(b64);
    unsigned char *raw = malloc(n);
    int len = raw ? EVP_DecodeBlock(raw, (const unsigned char *)json_string_value(b64),
                                    (int)n)
                  : -1;
    if (len >= 0) {
      const char *v = json_string_value(b64);
      len -= (v[n - 1] == '=') + (v[n - 2] == '=');
      json_error_t je;
      json_t *doc = json_loadb((const char *)raw, (size_t)len, JSON_DECODE_ANY, &je);
      free(raw);
      if (doc) {
        char *text = jw_dump(doc);
        json_decref(doc);
        return text;
      }
    } else {
      free(raw);
    }
  }
  json_t *info = json_object_get(claims, "info");
  return info ? jw_dump(info) : NULL;
}

static int sub_token_matches(cl_client *cl, json_t *claims, const char *ch,
                             size_t len) {
  json_t *tch = json_object_get(claims, "channel");
  return json_is_string(tch) && json_string_length(tch) == len &&
         memcmp(json_string_value(tch), ch, len) == 0 &&
         strcmp(claim_user(cl, claims), cl->user) == 0;
}

static void set_sub_expiry(cl_client *cl, cl_sub *s, int64_t expire_at) {
  s->expire_at = cl->cfg->insecure ? 0 : expire_at;
  s->deadline = 0;
  if (s->expire_at) {
    int64_t left = s->expire_at - wall_s();
    s->deadline = hf_loop_now(hf_conn_loop(cl->conn)) +
                  (uint64_t)(left > 0 ? left : 0) * 1000 +
                  cl->cfg->expired_sub_close_delay_ms;
  }
}

static srv_jwt_status verify(cl_client *cl, const char *token, json_t **claims);

/* Verify a subscription token for channel ch[0..len). Returns SRV_JWT_OK,
 * or SRV_JWT_EXPIRED (valid signature; with match_expired the sub and
 * channel are still checked), with *exp set; or -1 after closing the
 * connection with 3500 (invalid, or for another user or channel). */
static int sub_token(cl_client *cl, const char *token, const char *ch,
                     size_t len, int match_expired, int64_t *exp) {
  json_t *claims = NULL;
  srv_jwt_status st = verify(cl, token, &claims);
  if (st != SRV_JWT_OK && st != SRV_JWT_EXPIRED) {
    cl_disconnect(cl, 3500, "invalid token");
    return -1;
  }
  int ok = (st == SRV_JWT_EXPIRED && !match_expired) ||
           sub_token_matches(cl, claims, ch, len);
  *exp = claim_expiry(claims);
  json_decref(claims);
  if (!ok) {
    cl_disconnect(cl, 3500, "invalid token: subscription token channel or user mismatch");
    return -1;
  }
  return (int)st;
}

/* "expires":true,"ttl":N of a subscription result (nothing if none). */
static void write_sub_ttl(cl_client *cl, const cl_sub *s) {
  if (!s->expire_at)
    return;
  int64_t ttl = s->expire_at - wall_s();
  jw_lit(&cl->list->out, "\"expires\":true,\"ttl\":");
  jw_u64(&cl->list->out, (uint64_t)(ttl > 0 ? ttl : 0));
}

/* A subscribe / sub_refresh result with the subscription's expiry. */
static void sub_result(cl_client *cl, uint32_t id, const char *key,
                       const cl_sub *s) {
  begin_result(cl, id, key);
  write_sub_ttl(cl, s);
  end_result(cl);
  arm_timer(cl);
}

static void set_expiry(cl_client *cl, int64_t expire_at) {
  cl->expire_at = expire_at;
  if (!expire_at || cl->cfg->insecure) {
    cl->expire_at = 0;
    cl->expire_deadline = 0;
    return;
  }
  int64_t left = expire_at - wall_s();
  uint64_t now = hf_loop_now(hf_conn_loop(cl->conn));
  cl->expire_deadline =
      now + (uint64_t)(left > 0 ? left : 0) * 1000 + cl->cfg->expired_close_delay_ms;
}

static srv_jwt_status verify(cl_client *cl, const char *token, json_t **claims) {
  if (!cl->cfg->keys)
    return SRV_JWT_ALG;
  return srv_jwt_verify(cl->cfg->keys, token, wall_s(), cl->cfg->audience,
                        cl->cfg->issuer, claims);
}

/* ---- commands ------------------------------------------------------------ */

static void build_client_info(cl_client *cl) {
  char id[37];
  hf_conn_id(cl->conn, id);
  jw_buf b;
  jw_init(&b);
  jw_lit(&b, "{\"user\":");
  jw_cstr(&b, cl->user);
  jw_lit(&b, ",\"client\":");
  jw_cstr(&b, id);
  if (cl->conn_info) {
    jw_lit(&b, ",\"conn_info\":");
    jw_lit(&b, cl->conn_info);
  }
  jw_char(&b, '}');
  jw_char(&b, 0);
  free(cl->client_info);
  cl->client_info = jw_ok(&b) ? b.p : NULL;
  if (!cl->client_info)
    jw_free(&b);
}

/* Subscribe to the token's server-side channels (channels / subs claims).
 * Returns 0, or a client error code (102/107) for the connect reply. */
static unsigned server_side_subs(cl_client *cl, json_t *claims, jw_buf *subs) {
  json_t *list = json_object_get(claims, "subs");
  json_t *chans = json_object_get(claims, "channels");
  const char *names[256];
  size_t n = 0;
  if (json_is_object(list)) {
    const char *k;
    json_t *v;
    json_object_foreach(list, k, v) {
      if (n < 256)
        names[n++] = k;
    }
  } else if (json_is_array(chans)) {
    size_t i;
    json_t *v;
    json_array_foreach(chans, i, v) {
      if (json_is_string(v) && n < 256)
        names[n++] = json_string_value(v);
    }
  }
  int first = 1;
  for (size_t i = 0; i < n; i++) {
    const chan_ns *ns;
    size_t len = strlen(names[i]);
    int r = chan_resolve(cl->cfg->chans, names[i], len, &ns);
    if (r != CHAN_OK)
      return (unsigned)r;
    if (find_sub(cl, names[i], len))
      continue;
    if (add_sub(cl, names[i], len, 1) < 0)
      return 100;
    jw_key(subs, &first, names[i]);
    jw_lit(subs, "{}");
  }
  return 0;
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
    srv_jwt_status st = verify(cl, token, &claims);
    if (st == SRV_JWT_EXPIRED) {
      json_decref(claims);
      error_reply(cl, id, 109, "token expired", 0);
      cl->state = CS_FAILED;
      return;
    }
    if (st != SRV_JWT_OK) {
      srv_logline l;
      log_client(cl, LOG_WARN, "connect_rejected", &l);
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
  } else if (!cl->cfg->allow_anonymous && !cl->cfg->insecure) {
    srv_logline l;
    log_client(cl, LOG_WARN, "connect_rejected", &l);
    srv_log_str(&l, "reason", "no token and anonymous connections are not allowed");
    srv_log_end(&l);
    cl_disconnect(cl, 3501, "bad request: client credentials not found");
    return;
  }
  free(cl->user);
  cl->user = strdup(claims ? claim_user(cl, claims) : "");
  cl->conn_info = claims ? claim_info(claims) : NULL;
  int64_t exp = claims ? claim_expiry(claims) : 0;
  if (exp && exp <= wall_s() && !cl->cfg->insecure) {
    json_decref(claims);
    error_reply(cl, id, 110, "expired", 0);
    cl->state = CS_FAILED;
    return;
  }
  build_client_info(cl);
  if (!cl->user || !cl->client_info) {
    json_decref(claims);
    cl_disconnect(cl, 3004, "internal server error");
    return;
  }
  jw_buf subs;
  jw_init(&subs);
  unsigned err = claims ? server_side_subs(cl, claims, &subs) : 0;
  json_decref(claims);
  if (err) {
    jw_free(&subs);
    error_reply(cl, id, err, err == 102 ? "unknown channel" : "bad request", 0);
    cl->state = CS_FAILED;
    return;
  }
  cl->state = CS_CONNECTED;
  set_expiry(cl, exp);
  begin_identity_result(cl, id, "connect");
  if (cl->cfg->ping_interval_ms) {
    jw_lit(&cl->list->out, ",\"ping\":");
    jw_u64(&cl->list->out, (cl->cfg->ping_interval_ms + 999) / 1000);
    if (cl->cfg->pong_timeout_ms)
      jw_lit(&cl->list->out, ",\"pong\":true");
  }
  if (subs.len) {
    jw_lit(&cl->list->out, ",\"subs\":{");
    jw_raw(&cl->list->out, subs.p, subs.len);
    jw_char(&cl->list->out, '}');
  }
  jw_free(&subs);
  end_result(cl);
  /* first ping at a random moment in [interval/2, interval]: spreads load */
  if (cl->cfg->ping_interval_ms) {
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r)
      r = (uint32_t)(uintptr_t)cl;
    uint32_t half = cl->cfg->ping_interval_ms / 2;
    cl->next_ping = hf_loop_now(hf_conn_loop(cl->conn)) + half + r % (half + 1);
  }
  arm_timer(cl);
  srv_logline l;
  log_client(cl, LOG_INFO, "client_connected", &l);
  srv_log_int(&l, "expire_at", cl->expire_at);
  srv_log_int(&l, "server_side_subs", cl->nsubs);
  srv_log_end(&l);
}

static const char *req_channel(json_t *req, size_t *len) {
  json_t *c = json_object_get(req, "channel");
  if (!json_is_string(c) || !json_string_length(c))
    return NULL;
  *len = json_string_length(c);
  return json_string_value(c);
}

/* The request's channel; a missing or empty one is a protocol violation:
 * close 3501 naming the command, and return NULL. */
static const char *require_channel(cl_client *cl, json_t *req, const char *cmd,
                                   size_t *len) {
  const char *ch = req_channel(req, len);
  if (!ch) {
    char why[80];
    snprintf(why, sizeof why, "bad request: %s without a channel", cmd);
    cl_disconnect(cl, 3501, why); /* the reason is copied */
  }
  return ch;
}

static void cmd_subscribe(cl_client *cl, uint32_t id, json_t *req) {
  size_t len;
  const char *ch = require_channel(cl, req, "subscribe", &len);
  if (!ch)
    return;
  json_t *delta = json_object_get(req, "delta");
  if (delta && (!json_is_string(delta) ||
                (json_string_length(delta) &&
                 strcmp(json_string_value(delta), "fossil") != 0))) {
    cl_disconnect(cl, 3501, "bad request: unknown delta type");
    return;
  }
  if (find_sub(cl, ch, len)) {
    error_reply(cl, id, 105, "already subscribed", 0);
    return;
  }
  if (cl->cfg->channel_limit && cl->nsubs >= cl->cfg->channel_limit) {
    error_reply(cl, id, 106, "limit exceeded", 0);
    return;
  }
  const chan_ns *ns;
  int r = chan_resolve(cl->cfg->chans, ch, len, &ns);
  if (r != CHAN_OK) {
    error_reply(cl, id, (unsigned)r, r == CHAN_E_UNKNOWN ? "unknown channel" : "bad request", 0);
    return;
  }
  json_t *tok = json_object_get(req, "token");
  int64_t sub_exp = 0;
  if (json_is_string(tok) && json_string_length(tok)) {
    /* subscription token: signature, expiry, then sub and channel */
    int st = sub_token(cl, json_string_value(tok), ch, len, 0, &sub_exp);
    if (st < 0)
      return;
    if (st == SRV_JWT_EXPIRED) {
      error_reply(cl, id, 109, "token expired", 0);
      return;
    }
  } else if ((r = chan_can_subscribe(cl->cfg->chans, ns, ch, len, cl->user)) != CHAN_OK) {
    log_denied(cl, "subscribe", ch, len, (unsigned)r);
    error_reply(cl, id, (unsigned)r, "permission denied", 0);
    return;
  }
  if (add_sub(cl, ch, len, 0) < 0) {
    error_reply(cl, id, 100, "internal server error", 1);
    return;
  }
  cl_sub *s = &cl->subs[cl->nsubs - 1];
  set_sub_expiry(cl, s, sub_exp);
  sub_result(cl, id, "subscribe", s);
}

static void cmd_sub_refresh(cl_client *cl, uint32_t id, json_t *req) {
  size_t len;
  const char *ch = require_channel(cl, req, "sub_refresh", &len);
  if (!ch)
    return;
  cl_sub *s = find_sub(cl, ch, len);
  if (!s) {
    error_reply(cl, id, 103, "permission denied", 0);
    return;
  }
  json_t *tok = json_object_get(req, "token");
  if (!json_is_string(tok) || !json_string_length(tok)) {
    error_reply(cl, id, 107, "bad request", 0);
    return;
  }
  int64_t exp = 0;
  int st = sub_token(cl, json_string_value(tok), ch, len, 1, &exp);
  if (st < 0)
    return;
  /* an already expired token keeps the old expiry: the subscription then
   * ends with unsubscribe 2501 and the SDK resubscribes with a new token */
  if (st == SRV_JWT_OK)
    set_sub_expiry(cl, s, exp);
  sub_result(cl, id, "sub_refresh", s);
}

static void cmd_unsubscribe(cl_client *cl, uint32_t id, json_t *req) {
  size_t len;
  const char *ch = require_channel(cl, req, "unsubscribe", &len);
  if (!ch)
    return;
  cl_sub *s = find_sub(cl, ch, len);
  if (s)
    remove_sub(cl, s); /* before the reply: no push after it */
  empty_result(cl, id, "unsubscribe");
}

static void cmd_publish(cl_client *cl, uint32_t id, json_t *req) {
  size_t len;
  const char *ch = require_channel(cl, req, "publish", &len);
  if (!ch)
    return;
  const chan_ns *ns;
  int r = chan_resolve(cl->cfg->chans, ch, len, &ns);
  if (r != CHAN_OK) {
    error_reply(cl, id, (unsigned)r, r == CHAN_E_UNKNOWN ? "unknown channel" : "bad request", 0);
    return;
  }
  json_t *data = json_object_get(req, "data");
  if (!data) {
    error_reply(cl, id, 107, "bad request", 0);
    return;
  }
  r = chan_can_publish(cl->cfg->chans, ns, cl->user, find_sub(cl, ch, len) != NULL);
  if (r != CHAN_OK) {
    log_denied(cl, "publish", ch, len, (unsigned)r);
    error_reply(cl, id, (unsigned)r, "permission denied", 0);
    return;
  }
  /* A publication into a channel this worker owns is delivered at once,
   * possibly to this very client: the replies so far (e.g. its subscribe
   * reply) must leave first, so no push precedes its subscribe reply. */
  flush_replies(cl);
  char *text = jw_dump(data); /* minified: never a raw newline */
  if (!text || hub_publish(cl->hl, ch, len, text, strlen(text), cl->client_info,
                           strlen(cl->client_info)) < 0) {
    free(text);
    error_reply(cl, id, 100, "internal server error", 1);
    return;
  }
  free(text);
  empty_result(cl, id, "publish");
}

static void cmd_refresh(cl_client *cl, uint32_t id, json_t *req) {
  json_t *tok = json_object_get(req, "token");
  if (!json_is_string(tok) || !json_string_length(tok)) {
    cl_disconnect(cl, 3501, "bad request: refresh without a token");
    return;
  }
  json_t *claims = NULL;
  srv_jwt_status st = verify(cl, json_string_value(tok), &claims);
  if (st == SRV_JWT_EXPIRED) {
    json_decref(claims);
    cl_disconnect(cl, 3005, "connection expired");
    return;
  }
  if (st != SRV_JWT_OK) {
    cl_disconnect(cl, 3500, "invalid token");
    return;
  }
  if (strcmp(claim_user(cl, claims), cl->user) != 0) {
    json_decref(claims);
    cl_disconnect(cl, 3500, "invalid token: refresh token is for another user");
    return;
  }
  char *info = claim_info(claims);
  if (info) {
    free(cl->conn_info);
    cl->conn_info = info;
    build_client_info(cl);
  }
  set_expiry(cl, claim_expiry(claims));
  json_decref(claims);
  arm_timer(cl);
  begin_identity_result(cl, id, "refresh");
  end_result(cl);
}

static void handle_command(cl_client *cl, const proto_cmd *cmd) {
  uint32_t id = cmd->id;
  json_t *req = cmd->req;
  switch (cmd->kind) {
  case PROTO_PONG:
    if (cl->await_pong) {
      cl->await_pong = 0;
      arm_timer(cl);
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
    cmd_subscribe(cl, id, req);
    return;
  case PROTO_UNSUBSCRIBE:
    cmd_unsubscribe(cl, id, req);
    return;
  case PROTO_PUBLISH:
    cmd_publish(cl, id, req);
    return;
  case PROTO_REFRESH:
    cmd_refresh(cl, id, req);
    return;
  case PROTO_SUB_REFRESH:
    cmd_sub_refresh(cl, id, req);
    return;
  default: /* rpc, presence, presence_stats, history, ping */
    error_reply(cl, id, 108, "not available", 0);
    return;
  }
}

static void process(cl_client *cl, int opcode, uint8_t *data, size_t len);
static void release(cl_client *cl);

/* A send inside command handling can fail and tear the connection down,
 * whose on_close frees the client: keep it alive until we are done. */
void cl_on_message(cl_client *cl, int opcode, uint8_t *data, size_t len) {
  cl->busy = 1;
  jw_reset(&cl->list->out);
  process(cl, opcode, data, len);
  jw_reset(&cl->list->out); /* whatever a closed client left unsent */
  cl->busy = 0;
  if (cl->zombie)
    release(cl);
}

static void process(cl_client *cl, int opcode, uint8_t *data, size_t len) {
  if (cl->state == CS_CLOSED)
    return;
  if (opcode != HF_OP_TEXT) {
    cl_disconnect(cl, 3506, "inappropriate protocol: binary frame on a JSON connection");
    return;
  }
  size_t off = 0;
  int commands = 0;
  while (off < len && cl->state != CS_CLOSED) {
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
      commands++;
      handle_command(cl, &cmd);
      proto_cmd_free(&cmd);
    }
    off = end + 1;
  }
  if (cl->state == CS_CLOSED)
    return;
  if (!commands) {
    cl_disconnect(cl, 3501, "bad request: empty frame");
    return;
  }
  flush_replies(cl);
}

/* ---- timers -------------------------------------------------------------- */

static void on_timer(hf_loop *loop, hf_timer *t) {
  cl_client *cl = (cl_client *)((char *)t - offsetof(cl_client, timer));
  uint64_t now = hf_loop_now(loop);
  if (cl->state == CS_NEW) {
    if (now >= cl->stale_deadline)
      cl_disconnect(cl, 3502, "stale: no connect command in time");
    else
      arm_timer(cl);
    return;
  }
  if (cl->state != CS_CONNECTED)
    return;
  if (cl->expire_deadline && now >= cl->expire_deadline) {
    cl_disconnect(cl, 3005, "connection expired");
    return;
  }
  if (cl->await_pong && now >= cl->pong_deadline) {
    cl_disconnect(cl, 3012, "no pong");
    return;
  }
  for (uint32_t i = cl->nsubs; i > 0; i--) {
    cl_sub *s = &cl->subs[i - 1];
    if (!s->deadline || now < s->deadline)
      continue;
    if (s->server_side) { /* a server-side subscription cannot be redone */
      cl_disconnect(cl, 3006, "subscription expired");
      return;
    }
    unsubscribe_push(cl, s, 2501, "subscription expired");
    if (cl->state != CS_CONNECTED)
      return;
  }
  if (!cl->await_pong && cl->next_ping && now >= cl->next_ping) {
    hf_conn_send(cl->conn, HF_OP_TEXT, (const uint8_t *)"{}", 2);
    cl->next_ping = now + cl->cfg->ping_interval_ms;
    if (cl->cfg->pong_timeout_ms) {
      cl->await_pong = 1;
      cl->pong_deadline = now + cl->cfg->pong_timeout_ms;
    }
  }
  arm_timer(cl);
}

/* ---- lifecycle ------------------------------------------------------------ */

cl_client *cl_new(hf_conn *conn, hub_local *hl, cl_list *list,
                  const cl_config *cfg) {
  cl_client *cl = calloc(1, sizeof *cl);
  if (!cl)
    return NULL;
  cl->conn = conn;
  cl->hl = hl;
  cl->list = list;
  cl->cfg = cfg;
  cl->timer.cb = on_timer;
  cl->next = list->head;
  if (list->head)
    list->head->prev = cl;
  list->head = cl;
  list->count++;
  cl->stale_deadline = hf_loop_now(hf_conn_loop(conn)) + cfg->stale_close_delay_ms;
  arm_timer(cl);
  return cl;
}

void cl_free(cl_client *cl) {
  if (!cl)
    return;
  hf_timer_cancel(hf_conn_loop(cl->conn), &cl->timer);
  while (cl->nsubs)
    remove_sub(cl, &cl->subs[cl->nsubs - 1]);
  cl->state = CS_CLOSED;
  if (cl->busy) {
    cl->zombie = 1;
    jw_reset(&cl->list->out); /* its pending replies have nowhere to go */
    return;
  }
  release(cl);
}

static void release(cl_client *cl) {
  if (cl->prev)
    cl->prev->next = cl->next;
  else
    cl->list->head = cl->next;
  if (cl->next)
    cl->next->prev = cl->prev;
  cl->list->count--;
  free(cl->subs);
  free(cl->user);
  free(cl->conn_info);
  free(cl->client_info);
  free(cl);
}

void cl_send_shared(cl_client *cl, hf_shared *frame) {
  if (cl->state == CS_CONNECTED)
    hf_conn_send_shared(cl->conn, frame, 0, frame->len);
}

const char *cl_user(const cl_client *cl) { return cl->user ? cl->user : ""; }
hf_conn *cl_conn(const cl_client *cl) { return cl->conn; }
cl_client *cl_next(const cl_client *cl) { return cl->next; }

void cl_server_unsubscribe(cl_client *cl, const char *ch, size_t len) {
  cl_sub *s = find_sub(cl, ch, len);
  if (s && cl->state == CS_CONNECTED)
    unsubscribe_push(cl, s, 2000, "server unsubscribe");
}

/* Leave s and tell the client with an unsubscribe push. */
static void unsubscribe_push(cl_client *cl, cl_sub *s, unsigned code,
                             const char *reason) {
  size_t len;
  const char *ch = hub_chan_name(s->ch, &len);
  jw_buf b;
  jw_init(&b);
  jw_lit(&b, "{\"push\":{\"channel\":");
  jw_str(&b, ch, len); /* before remove_sub: it may free the channel */
  remove_sub(cl, s);
  jw_lit(&b, ",\"unsubscribe\":{\"code\":");
  jw_u64(&b, code);
  jw_lit(&b, ",\"reason\":");
  jw_cstr(&b, reason);
  jw_lit(&b, "}}}");
  if (jw_ok(&b))
    hf_conn_send(cl->conn, HF_OP_TEXT, (const uint8_t *)b.p, b.len);
  jw_free(&b);
}

void cl_server_subscribe(cl_client *cl, const char *ch, size_t len) {
  if (cl->state != CS_CONNECTED || find_sub(cl, ch, len))
    return;
  if (add_sub(cl, ch, len, 1) < 0)
    return;
  jw_buf b;
  jw_init(&b);
  jw_lit(&b, "{\"push\":{\"channel\":");
  jw_str(&b, ch, len);
  jw_lit(&b, ",\"subscribe\":{}}}");
  if (jw_ok(&b))
    hf_conn_send(cl->conn, HF_OP_TEXT, (const uint8_t *)b.p, b.len);
  jw_free(&b);
}

void cl_server_refresh(cl_client *cl, int64_t expire_at) {
  if (cl->state != CS_CONNECTED)
    return;
  set_expiry(cl, expire_at);
  arm_timer(cl);
}

uintptr_t cl_tag(const cl_client *cl) { return cl->tag; }
void cl_set_tag(cl_client *cl, uintptr_t tag) { cl->tag = tag; }
