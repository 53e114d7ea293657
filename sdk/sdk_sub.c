/* SPDX-License-Identifier: MIT */
/* SDK subscriptions: the unsubscribed/subscribing/subscribed state machine,
 * subscription tokens and sub_refresh, recovery from a stored position
 * with deduplication by offset, resubscribe with backoff, the unsubscribe
 * push codes, and server-side subscriptions (connect "subs" and pushes). */
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "hf/err.h"
#include "sdk_impl.h"

static hfs_sub *find_sub(hfs_client *c, const char *ch) {
  for (hfs_sub *s = c->subs; s; s = s->next)
    if (!s->dead && strcmp(s->channel, ch) == 0)
      return s;
  return NULL;
}

hfs_sub *hfs_client_sub(hfs_client *c, const char *channel) {
  return channel ? find_sub(c, channel) : NULL;
}

static hfs_ssub *find_ssub(hfs_client *c, const char *ch) {
  for (hfs_ssub *s = c->ssubs; s; s = s->next)
    if (strcmp(s->channel, ch) == 0)
      return s;
  return NULL;
}

void hfs__sub_free(hfs_sub *s) {
  free(s->channel);
  free(s->token);
  free(s->data);
  free(s);
}

hfs_sub *hfs_sub_new(hfs_client *c, const hfs_sub_config *cfg, char *err,
                     size_t errcap) {
  if (!cfg->channel || !*cfg->channel) {
    snprintf(err, errcap, "no channel");
    return NULL;
  }
  if (find_sub(c, cfg->channel)) {
    snprintf(err, errcap, "already a subscription to %s", cfg->channel);
    return NULL;
  }
  if (cfg->data) {
    json_t *d = hfs__parse(cfg->data);
    if (!d) {
      snprintf(err, errcap, "subscribe data is not JSON");
      return NULL;
    }
    json_decref(d);
  }
  hfs_sub *s = calloc(1, sizeof *s);
  if (!s || !(s->channel = strdup(cfg->channel)) ||
      (cfg->token && !(s->token = strdup(cfg->token))) ||
      (cfg->data && !(s->data = strdup(cfg->data)))) {
    if (s)
      hfs__sub_free(s);
    snprintf(err, errcap, "out of memory");
    return NULL;
  }
  s->c = c;
  s->get_token = cfg->get_token;
  s->recoverable = cfg->recoverable || cfg->since;
  s->positioned = cfg->positioned;
  s->join_leave = cfg->join_leave;
  s->user = cfg->user;
  if (cfg->since) {
    s->pos = *cfg->since;
    s->has_pos = 1;
  }
  s->next = c->subs;
  c->subs = s;
  return s;
}

static void emit_sub(hfs_sub *s, hfs_event_type t, uint32_t code, const char *reason) {
  hfs_event ev = {0};
  ev.type = t;
  ev.sub = s;
  ev.channel = s->channel;
  ev.code = code;
  ev.reason = reason;
  hfs__emit(s->c, &ev);
}

static void clear_inflight(hfs_sub *s) {
  s->sub_id = 0;
  s->sub_due = 0;
  s->resub_due = 0;
  s->refresh_due = 0;
  s->refresh_id = 0;
  s->refreshing = 0;
  s->token_wait = 0;
}

static void set_unsubscribed(hfs_sub *s, uint32_t code, const char *reason, int send_cmd) {
  if (s->state == HFS_SUB_UNSUBSCRIBED)
    return;
  hfs_client *c = s->c;
  int was_active = s->state == HFS_SUB_SUBSCRIBED || s->sub_id;
  clear_inflight(s);
  s->state = HFS_SUB_UNSUBSCRIBED;
  if (send_cmd && was_active && c->state == HFS_CONNECTED)
    hfs__send(c, hfs__id(c), "unsubscribe", json_pack("{s:s}", "channel", s->channel));
  emit_sub(s, HFS_EV_UNSUBSCRIBED, code, reason);
}

static void set_subscribing(hfs_sub *s, uint32_t code, const char *reason) {
  if (s->state == HFS_SUB_SUBSCRIBING)
    return;
  clear_inflight(s);
  s->state = HFS_SUB_SUBSCRIBING;
  emit_sub(s, HFS_EV_SUBSCRIBING, code, reason);
}

static uint64_t sub_backoff(hfs_sub *s) {
  hfs_config *cf = &s->c->cfg;
  hf_reconnect_config rc = {1, cf->min_resubscribe_ms, cf->max_resubscribe_ms, 2, 0, 0, 0};
  return hf_reconnect_backoff(&rc, s->resub_attempts++, hfs__rand(s->c));
}

static void write_subscribe(hfs_sub *s) {
  hfs_client *c = s->c;
  json_t *req = json_pack("{s:s}", "channel", s->channel);
  if (!req)
    return;
  if (s->token && *s->token)
    json_object_set_new(req, "token", json_string(s->token));
  if (s->data)
    json_object_set_new(req, "data", hfs__parse(s->data));
  if (s->positioned)
    json_object_set_new(req, "positioned", json_true());
  if (s->recoverable)
    json_object_set_new(req, "recoverable", json_true());
  if (s->join_leave)
    json_object_set_new(req, "join_leave", json_true());
  if (s->has_pos) {
    json_object_set_new(req, "recover", json_true());
    if (s->pos.offset)
      json_object_set_new(req, "offset", json_integer((json_int_t)s->pos.offset));
    if (s->pos.epoch[0])
      json_object_set_new(req, "epoch", json_string(s->pos.epoch));
  }
  s->sub_id = hfs__id(c);
  s->sub_due = hfs__now() + c->cfg.timeout_ms;
  hfs__send(c, s->sub_id, "subscribe", req);
}

void hfs__sub_send_subscribe(hfs_sub *s) {
  hfs_client *c = s->c;
  if (c->state != HFS_CONNECTED || s->state != HFS_SUB_SUBSCRIBING || s->sub_id ||
      s->token_wait || s->dead)
    return;
  s->resub_due = 0;
  int need = s->refresh_required || ((!s->token || !*s->token) && s->get_token);
  if (!need) {
    write_subscribe(s);
    return;
  }
  s->token_wait = 1;
  s->in_get_token = 1;
  int r = s->get_token(s, s->user);
  s->in_get_token = 0;
  if (s->state != HFS_SUB_SUBSCRIBING || c->state != HFS_CONNECTED)
    return;
  if (r == HFS_TOKEN_UNAUTHORIZED) {
    s->token_wait = 0;
    set_unsubscribed(s, 1, "unauthorized", 1);
  } else if (r != HFS_TOKEN_OK) {
    s->token_wait = 0;
    hfs__emit_error(c, s, "subscribeToken", 8, "could not get a subscription token", 0);
    if (s->state == HFS_SUB_SUBSCRIBING)
      s->resub_due = hfs__now() + sub_backoff(s);
  } else if (!s->token_wait) {
    write_subscribe(s);
  }
}

static void sub_set_token(hfs_sub *s, char *t);

int hfs_sub_set_token(hfs_sub *s, const char *token) {
  char *t = strdup(token ? token : "");
  if (!t)
    return HF_ENOMEM;
  hfs_client *c = s->c;
  hfs__enter(c);
  sub_set_token(s, t);
  hfs__leave(c);
  return 0;
}

static void sub_set_token(hfs_sub *s, char *t) {
  hfs_client *c = s->c;
  free(s->token);
  s->token = t;
  s->refresh_required = 0;
  if (s->token_wait) {
    s->token_wait = 0;
    if (!*t)
      set_unsubscribed(s, 1, "unauthorized", 1);
    else if (!s->in_get_token)
      write_subscribe(s);
  } else if (s->refreshing && s->state == HFS_SUB_SUBSCRIBED && c->state == HFS_CONNECTED) {
    s->refreshing = 0;
    if (!*t) {
      set_unsubscribed(s, 1, "unauthorized", 1);
      return;
    }
    s->refresh_id = hfs__id(c);
    hfs__send(c, s->refresh_id, "sub_refresh",
              json_pack("{s:s,s:s}", "channel", s->channel, "token", t));
  }
}

int hfs_sub_subscribe(hfs_sub *s) {
  if (s->state != HFS_SUB_UNSUBSCRIBED || s->dead || s->c->state == HFS_CLOSED)
    return HF_EINVAL;
  hfs_client *c = s->c;
  hfs__enter(c);
  s->resub_attempts = 0;
  set_subscribing(s, 0, "subscribe called");
  hfs__sub_send_subscribe(s);
  hfs__leave(c);
  return 0;
}

int hfs_sub_unsubscribe(hfs_sub *s) {
  if (s->state == HFS_SUB_UNSUBSCRIBED || s->dead)
    return HF_EINVAL;
  hfs_client *c = s->c;
  hfs__enter(c);
  set_unsubscribed(s, 0, "unsubscribe called", 1);
  hfs__leave(c);
  return 0;
}

void hfs_sub_remove(hfs_sub *s) {
  hfs_client *c = s->c;
  if (s->state != HFS_SUB_UNSUBSCRIBED) {
    int was_active = s->state == HFS_SUB_SUBSCRIBED || s->sub_id;
    clear_inflight(s);
    s->state = HFS_SUB_UNSUBSCRIBED;
    if (was_active && c->state == HFS_CONNECTED)
      hfs__send(c, hfs__id(c), "unsubscribe", json_pack("{s:s}", "channel", s->channel));
  }
  s->dead = 1; /* freed when the outermost call into the client returns */
  hfs__enter(c);
  hfs__leave(c);
}

hfs_sub_state hfs_sub_get_state(const hfs_sub *s) { return s->state; }
const char *hfs_sub_channel(const hfs_sub *s) { return s->channel; }
void *hfs_sub_user(const hfs_sub *s) { return s->user; }
uint64_t hfs_sub_duplicates(const hfs_sub *s) { return s->dups; }

int hfs_sub_position(const hfs_sub *s, hfs_position *out) {
  if (!s->has_pos)
    return 0;
  *out = s->pos;
  return 1;
}

/* ---- publications ------------------------------------------------------------- */

void hfs__publication(hfs_client *c, hfs_sub *s, hfs_ssub *ss, const char *channel,
                      json_t *pub) {
  uint64_t off = (uint64_t)json_integer_value(json_object_get(pub, "offset"));
  hfs_position *pos = s ? &s->pos : ss ? &ss->pos : NULL;
  int has = s ? s->has_pos : ss ? ss->recoverable : 0;
  if (off && has && off <= pos->offset) {
    if (s)
      s->dups++;
    return; /* seen already: dropped (deduplication by offset) */
  }
  if (off && pos && (has || (s && s->recoverable))) {
    pos->offset = off;
    if (s)
      s->has_pos = 1;
  }
  hfs_event ev = {0};
  ev.type = HFS_EV_PUBLICATION;
  ev.sub = s;
  ev.channel = channel;
  ev.offset = off;
  if (pos)
    ev.position = *pos;
  json_t *d = json_object_get(pub, "data"), *info = json_object_get(pub, "info"),
         *tags = json_object_get(pub, "tags"), *b64 = json_object_get(pub, "b64data");
  char *dt = d ? json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  char *it = info ? json_dumps(info, JSON_COMPACT) : NULL;
  char *tt = tags ? json_dumps(tags, JSON_COMPACT) : NULL;
  ev.data = dt ? dt : "null";
  ev.data_len = strlen(ev.data);
  if (!d && json_is_string(b64)) { /* binary data (the Protobuf codec) */
    size_t n = json_string_length(b64);
    const char *t = json_string_value(b64);
    dt = n % 4 == 0 && n <= INT_MAX ? malloc(n / 4 * 3 + 1) : NULL;
    int len = dt ? EVP_DecodeBlock((unsigned char *)dt, (const unsigned char *)t, (int)n) : -1;
    if (len >= 0) {
      len -= n ? (t[n - 1] == '=') + (t[n - 2] == '=') : 0;
      dt[len] = '\0';
      ev.data = dt;
      ev.data_len = (size_t)len;
      ev.binary = 1;
    }
  }
  ev.info = it;
  ev.tags = tt;
  hfs__emit(c, &ev);
  free(dt);
  free(it);
  free(tt);
}

static void join_leave(hfs_client *c, hfs_sub *s, const char *ch, hfs_event_type t,
                       json_t *jl) {
  json_t *info = json_object_get(jl, "info");
  char *it = info ? json_dumps(info, JSON_COMPACT) : NULL;
  hfs_event ev = {0};
  ev.type = t;
  ev.sub = s;
  ev.channel = ch;
  ev.info = it;
  hfs__emit(c, &ev);
  free(it);
}

/* Fill a SUBSCRIBED event from a subscribe result (client or server side). */
/* Emit HFS_EV_SUBSCRIBED for a subscribe result res (sub: a client-side
 * subscription, NULL for a server-side one), with its data as JSON text. */
static void emit_subscribed(hfs_client *c, hfs_sub *sub, const char *channel, json_t *res,
                            const hfs_position *pos) {
  hfs_event ev = {0};
  ev.type = HFS_EV_SUBSCRIBED;
  ev.sub = sub;
  ev.channel = channel;
  ev.recoverable = json_is_true(json_object_get(res, "recoverable"));
  ev.positioned = json_is_true(json_object_get(res, "positioned"));
  ev.was_recovering = json_is_true(json_object_get(res, "was_recovering"));
  ev.recovered = json_is_true(json_object_get(res, "recovered"));
  ev.position = *pos;
  json_t *d = json_object_get(res, "data");
  char *dt = d ? json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  ev.data = dt;
  hfs__emit(c, &ev);
  free(dt);
}

static void set_pos(hfs_position *p, json_t *res) {
  p->offset = (uint64_t)json_integer_value(json_object_get(res, "offset"));
  snprintf(p->epoch, sizeof p->epoch, "%s",
           json_string_value(json_object_get(res, "epoch")) ?: "");
}

static void subscribe_result(hfs_sub *s, json_t *res) {
  hfs_client *c = s->c;
  s->sub_id = 0;
  s->sub_due = 0;
  s->resub_attempts = 0;
  int recoverable = json_is_true(json_object_get(res, "recoverable"));
  if (recoverable || json_is_true(json_object_get(res, "positioned"))) {
    set_pos(&s->pos, res);
    s->has_pos = recoverable || s->has_pos;
    if (recoverable)
      s->has_pos = 1;
  }
  s->state = HFS_SUB_SUBSCRIBED;
  emit_subscribed(c, s, s->channel, res, &s->pos);
  json_t *pubs = json_object_get(res, "publications");
  for (size_t i = 0; i < json_array_size(pubs) && s->state == HFS_SUB_SUBSCRIBED && !s->dead;
       i++)
    hfs__publication(c, s, NULL, s->channel, json_array_get(pubs, i));
  if (s->state == HFS_SUB_SUBSCRIBED && json_is_true(json_object_get(res, "expires")))
    s->refresh_due =
        hfs__now() + (uint64_t)json_integer_value(json_object_get(res, "ttl")) * 1000u;
}

static void subscribe_error(hfs_sub *s, json_t *err) {
  hfs_client *c = s->c;
  s->sub_id = 0;
  s->sub_due = 0;
  uint32_t code = (uint32_t)json_integer_value(json_object_get(err, "code"));
  const char *msg = json_string_value(json_object_get(err, "message"));
  int temporary = json_is_true(json_object_get(err, "temporary"));
  if (code < 100 || code == 109 || temporary) {
    if (code == 109) {
      free(s->token);
      s->token = NULL;
      s->refresh_required = s->get_token != NULL;
    }
    hfs__emit_error(c, s, "subscribe", code, msg, temporary);
    if (s->state == HFS_SUB_SUBSCRIBING && !s->sub_id)
      s->resub_due = hfs__now() + sub_backoff(s);
  } else {
    set_unsubscribed(s, code, msg, 0);
  }
}

static void sub_refresh_reply(hfs_sub *s, json_t *reply) {
  hfs_client *c = s->c;
  s->refresh_id = 0;
  json_t *err = json_object_get(reply, "error");
  if (!err) {
    json_t *res = json_object_get(reply, "sub_refresh");
    s->refresh_due = json_is_true(json_object_get(res, "expires"))
                         ? hfs__now() + (uint64_t)json_integer_value(
                                            json_object_get(res, "ttl")) * 1000u
                         : 0;
    return;
  }
  uint32_t code = (uint32_t)json_integer_value(json_object_get(err, "code"));
  const char *msg = json_string_value(json_object_get(err, "message"));
  int temporary = json_is_true(json_object_get(err, "temporary"));
  hfs__emit_error(c, s, "subRefresh", code, msg, temporary);
  if (s->state != HFS_SUB_SUBSCRIBED)
    return;
  if (code < 100 || temporary)
    s->refresh_due = hfs__now() + 10000 + hfs__rand(c) % 10000;
  else
    set_unsubscribed(s, code, msg, 1);
}

int hfs__sub_reply(hfs_client *c, uint32_t id, json_t *reply) {
  for (hfs_sub *s = c->subs; s; s = s->next) {
    if (s->dead)
      continue;
    if (s->sub_id == id) {
      json_t *err = json_object_get(reply, "error");
      if (err)
        subscribe_error(s, err);
      else
        subscribe_result(s, json_object_get(reply, "subscribe"));
      return 1;
    }
    if (s->refresh_id == id) {
      sub_refresh_reply(s, reply);
      return 1;
    }
  }
  return 0;
}

/* ---- pushes ------------------------------------------------------------------------ */

static void ssub_remove(hfs_client *c, hfs_ssub *ss) {
  hfs_ssub **pp = &c->ssubs;
  while (*pp != ss)
    pp = &(*pp)->next;
  *pp = ss->next;
  hfs_event ev = {0};
  ev.type = HFS_EV_UNSUBSCRIBED;
  ev.channel = ss->channel;
  hfs__emit(c, &ev);
  free(ss->channel);
  free(ss);
}

static hfs_ssub *ssub_add(hfs_client *c, const char *ch) {
  hfs_ssub *ss = find_ssub(c, ch);
  if (ss)
    return ss;
  ss = calloc(1, sizeof *ss);
  if (!ss || !(ss->channel = strdup(ch))) {
    free(ss);
    return NULL;
  }
  ss->next = c->ssubs;
  c->ssubs = ss;
  return ss;
}

/* A server-side subscription established (connect reply or push). */
static void ssub_subscribed(hfs_client *c, hfs_ssub *ss, json_t *res) {
  ss->recoverable = json_is_true(json_object_get(res, "recoverable"));
  if (ss->recoverable)
    set_pos(&ss->pos, res);
  ss->subscribed = 1;
  emit_subscribed(c, NULL, ss->channel, res, &ss->pos);
  json_t *pubs = json_object_get(res, "publications");
  for (size_t i = 0; i < json_array_size(pubs) && c->state == HFS_CONNECTED; i++)
    hfs__publication(c, NULL, ss, ss->channel, json_array_get(pubs, i));
}

void hfs__ssub_connect_subs(hfs_client *c, json_t *subs) {
  for (hfs_ssub *ss = c->ssubs; ss; ss = ss->next)
    ss->seen = 0;
  const char *ch;
  json_t *res;
  json_object_foreach(subs, ch, res) {
    hfs_ssub *ss = ssub_add(c, ch);
    if (!ss)
      continue;
    ss->seen = 1;
    ssub_subscribed(c, ss, res);
    if (c->state != HFS_CONNECTED)
      return;
  }
  hfs_ssub *ss = c->ssubs;
  while (ss && c->state == HFS_CONNECTED) {
    hfs_ssub *next = ss->next;
    if (!ss->seen)
      ssub_remove(c, ss);
    ss = next;
  }
}

json_t *hfs__ssub_request(hfs_client *c) {
  json_t *subs = NULL;
  for (hfs_ssub *ss = c->ssubs; ss; ss = ss->next) {
    if (!ss->recoverable)
      continue;
    if (!subs && !(subs = json_object()))
      return NULL;
    json_t *r = json_pack("{s:b}", "recover", 1);
    if (ss->pos.offset)
      json_object_set_new(r, "offset", json_integer((json_int_t)ss->pos.offset));
    if (ss->pos.epoch[0])
      json_object_set_new(r, "epoch", json_string(ss->pos.epoch));
    json_object_set_new(subs, ss->channel, r);
  }
  return subs;
}

void hfs__sub_push(hfs_client *c, json_t *push) {
  const char *ch = json_string_value(json_object_get(push, "channel"));
  if (!ch)
    return;
  hfs_sub *s = find_sub(c, ch);
  json_t *x;
  if (s && s->state == HFS_SUB_UNSUBSCRIBED)
    s = NULL;
  hfs_ssub *ss = s ? NULL : find_ssub(c, ch);
  if ((x = json_object_get(push, "pub"))) {
    if ((s && s->state == HFS_SUB_SUBSCRIBED) || ss)
      hfs__publication(c, s, ss, ch, x);
  } else if ((x = json_object_get(push, "join"))) {
    if (s || ss)
      join_leave(c, s, ch, HFS_EV_JOIN, x);
  } else if ((x = json_object_get(push, "leave"))) {
    if (s || ss)
      join_leave(c, s, ch, HFS_EV_LEAVE, x);
  } else if ((x = json_object_get(push, "unsubscribe"))) {
    uint32_t code = (uint32_t)json_integer_value(json_object_get(x, "code"));
    const char *reason = json_string_value(json_object_get(x, "reason"));
    if (s) {
      if (code < 2500) {
        set_unsubscribed(s, code, reason, 0);
      } else {
        if (code == 2502) {
          s->pos.offset = 0;
          s->pos.epoch[0] = '\0';
          s->has_pos = 0;
          free(s->token);
          s->token = NULL;
        }
        set_subscribing(s, code, reason);
        hfs__sub_send_subscribe(s);
      }
    } else if (ss) {
      ssub_remove(c, ss);
    }
  } else if ((x = json_object_get(push, "subscribe"))) {
    if (!s && (ss = ssub_add(c, ch)))
      ssub_subscribed(c, ss, x);
  }
}

/* ---- connection changes and timers ----------------------------------------------- */

void hfs__sub_connected(hfs_client *c) {
  for (hfs_sub *s = c->subs; s && c->state == HFS_CONNECTED; s = s->next)
    if (s->state == HFS_SUB_SUBSCRIBING && !s->dead) {
      s->resub_due = 0;
      hfs__sub_send_subscribe(s);
    }
}

void hfs__sub_transport_closed(hfs_client *c) {
  for (hfs_sub *s = c->subs; s; s = s->next) {
    if (s->dead)
      continue;
    if (s->state == HFS_SUB_SUBSCRIBED)
      set_subscribing(s, 1, "transport closed");
    else
      clear_inflight(s);
  }
  for (hfs_ssub *ss = c->ssubs; ss; ss = ss->next)
    if (ss->subscribed) {
      ss->subscribed = 0;
      hfs_event ev = {0};
      ev.type = HFS_EV_SUBSCRIBING;
      ev.channel = ss->channel;
      hfs__emit(c, &ev);
    }
}

void hfs__sub_invalidate(hfs_client *c) {
  for (hfs_sub *s = c->subs; s; s = s->next)
    if (s->has_pos) {
      s->pos.offset = 0;
      snprintf(s->pos.epoch, sizeof s->pos.epoch, "_");
    }
  for (hfs_ssub *ss = c->ssubs; ss; ss = ss->next) {
    ss->pos.offset = 0;
    snprintf(ss->pos.epoch, sizeof ss->pos.epoch, "_");
  }
}

static void start_sub_refresh(hfs_sub *s) {
  s->refresh_due = 0;
  if (!s->get_token)
    return;
  s->refreshing = 1;
  int r = s->get_token(s, s->user);
  if (s->state != HFS_SUB_SUBSCRIBED)
    return;
  if (r == HFS_TOKEN_UNAUTHORIZED) {
    s->refreshing = 0;
    set_unsubscribed(s, 1, "unauthorized", 1);
  } else if (r != HFS_TOKEN_OK) {
    s->refreshing = 0;
    hfs__emit_error(s->c, s, "subRefresh", 9, "could not get a subscription token", 0);
    if (s->state == HFS_SUB_SUBSCRIBED)
      s->refresh_due = hfs__now() + 10000 + hfs__rand(s->c) % 10000;
  }
}

void hfs__sub_timers(hfs_client *c, uint64_t now) {
  for (hfs_sub *s = c->subs; s && c->state == HFS_CONNECTED; s = s->next) {
    if (s->dead)
      continue;
    if (s->sub_due && now >= s->sub_due) {
      hfs__disconnect(c, 3, "subscribe timeout", 1);
      return;
    }
    if (s->resub_due && now >= s->resub_due) {
      s->resub_due = 0;
      hfs__sub_send_subscribe(s);
    }
    if (s->refresh_due && now >= s->refresh_due && s->state == HFS_SUB_SUBSCRIBED)
      start_sub_refresh(s);
  }
}

uint64_t hfs__sub_next_due(hfs_client *c) {
  uint64_t d = 0;
  for (hfs_sub *s = c->subs; s; s = s->next) {
    uint64_t t[] = {s->sub_due, s->resub_due, s->refresh_due};
    for (int i = 0; i < 3; i++)
      if (t[i] && (!d || t[i] < d))
        d = t[i];
  }
  return d;
}
