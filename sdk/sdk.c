/* SPDX-License-Identifier: MIT */
/* The SDK client: the connection state machine of the real-time protocol
 * (connect command, token callback and refresh, the disconnect-code table,
 * backoff with full jitter, the server-ping watchdog), the calls (publish
 * with idempotent retries, presence, history, rpc) with the bounded offline
 * queue, and the loop interface. Subscriptions are in sdk_sub.c. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>

#include "hf/err.h"
#include "hf/frame.h"
#include "sdk_impl.h"

uint64_t hfs__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* xorshift64*: jitter only, seeded from getrandom */
uint32_t hfs__rand(hfs_client *c) {
  uint64_t x = c->rnd;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  c->rnd = x;
  return (uint32_t)((x * 2685821657736338717ull) >> 32);
}

json_t *hfs__parse(const char *text) {
  if (!text)
    return NULL;
  json_error_t e;
  return json_loads(text, JSON_DECODE_ANY, &e);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

const char *hfs_state_name(hfs_state s) {
  static const char *const n[] = {"disconnected", "connecting", "connected", "closed"};
  return (unsigned)s < 4 ? n[s] : "?";
}

const char *hfs_sub_state_name(hfs_sub_state s) {
  static const char *const n[] = {"unsubscribed", "subscribing", "subscribed"};
  return (unsigned)s < 3 ? n[s] : "?";
}

const char *hfs_event_name(hfs_event_type t) {
  static const char *const n[] = {"connecting", "connected", "disconnected", "error",
                                  "subscribing", "subscribed", "unsubscribed",
                                  "publication", "join", "leave", "message"};
  return (unsigned)t <= HFS_EV_MESSAGE ? n[t] : "?";
}

int hfs_position_parse(const char *text, hfs_position *out) {
  char *end;
  if (!text || *text < '0' || *text > '9')
    return HF_EINVAL;
  errno = 0;
  unsigned long long off = strtoull(text, &end, 10);
  if (errno || end == text || (*end != ':' && *end != '\0'))
    return HF_EINVAL;
  const char *ep = *end == ':' ? end + 1 : "";
  if (strlen(ep) >= HFS_EPOCH_MAX)
    return HF_EINVAL;
  out->offset = off;
  snprintf(out->epoch, sizeof out->epoch, "%s", ep);
  return 0;
}

void hfs_position_format(const hfs_position *p, char *out, size_t cap) {
  snprintf(out, cap, "%llu:%s", (unsigned long long)p->offset, p->epoch);
}

void hfs_config_init(hfs_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->name = "holdfast-c";
  cfg->timeout_ms = 5000;
  cfg->min_reconnect_ms = 500;
  cfg->max_reconnect_ms = 20000;
  cfg->max_server_ping_delay_ms = 10000;
  cfg->min_resubscribe_ms = 500;
  cfg->max_resubscribe_ms = 20000;
  cfg->offline_max = 1000;
  cfg->publish_retry_ms = 60000;
}

void hfs__emit(hfs_client *c, hfs_event *ev) {
  if (c->state == HFS_CLOSED && ev->type != HFS_EV_DISCONNECTED)
    return;
  if (!ev->reason)
    ev->reason = "";
  if (!ev->channel)
    ev->channel = "";
  if (c->cfg.on_event)
    c->cfg.on_event(c, ev, c->cfg.user);
}

void hfs__emit_error(hfs_client *c, hfs_sub *sub, const char *type, int code,
                     const char *reason, int temporary) {
  hfs_event ev = {0};
  ev.type = HFS_EV_ERROR;
  ev.sub = sub;
  ev.channel = sub ? sub->channel : NULL;
  ev.error_type = type;
  ev.code = code;
  ev.reason = reason;
  ev.temporary = temporary;
  hfs__emit(c, &ev);
}

uint32_t hfs__id(hfs_client *c) {
  if (++c->next_id == 0)
    c->next_id = 1;
  return c->next_id;
}

/* Encode {"id":id,"<method>":body} (body reference taken) and write it. */
int hfs__send(hfs_client *c, uint32_t id, const char *method, json_t *body) {
  json_t *cmd = json_object();
  if (!cmd) {
    json_decref(body);
    return HF_ENOMEM;
  }
  if (id)
    json_object_set_new(cmd, "id", json_integer(id));
  if (method)
    json_object_set_new(cmd, method, body);
  else
    json_decref(body);
  char *out;
  size_t len;
  int rc = c->codec->encode(cmd, &out, &len);
  json_decref(cmd);
  if (rc < 0)
    return HF_ENOMEM;
  rc = hf_client_send(c->tc, c->codec->binary ? HF_OP_BINARY : HF_OP_TEXT, out, len);
  free(out);
  return rc;
}

static void rearm(hfs_client *c);
static void reap_subs(hfs_client *c);

/* Around every public entry point that can emit events: subscriptions
 * removed by a callback are freed only when the outermost call returns, and
 * the loop timer follows the new deadlines. */
void hfs__enter(hfs_client *c) { c->depth++; }

void hfs__leave(hfs_client *c) {
  if (--c->depth == 0)
    reap_subs(c);
  rearm(c);
}

/* ---- calls ----------------------------------------------------------------- */

static void call_free(hfs_call *k) {
  json_decref(k->req);
  free(k);
}

static void call_unlink(hfs_client *c, hfs_call *k) {
  hfs_call **pp = &c->calls;
  while (*pp && *pp != k)
    pp = &(*pp)->next;
  if (!*pp)
    return;
  *pp = k->next;
  if (c->calls_tail == &k->next)
    c->calls_tail = pp;
  c->ncalls--;
}

/* Finish a call: unlink, answer, free. */
static void call_finish(hfs_client *c, hfs_call *k, uint32_t code, const char *msg,
                        int temporary, const char *result) {
  call_unlink(c, k);
  if (k->cb) {
    hfs_reply r = {code, msg ? msg : "", temporary, code ? NULL : result, k->tries};
    k->cb(c, &r, k->arg);
  }
  call_free(k);
}

static void fail_calls(hfs_client *c, uint32_t code, const char *msg, int only_sent) {
  hfs_call *k = c->calls;
  while (k) {
    hfs_call *next = k->next;
    if (!only_sent || (k->id && !k->idempotent))
      call_finish(c, k, code, msg, 0, NULL);
    else if (k->id)
      k->id = 0; /* idempotent: again on the next connection */
    k = next;
  }
}

static void call_write(hfs_client *c, hfs_call *k, uint64_t now) {
  int async = strcmp(k->method, "send") == 0;
  k->id = async ? 0 : hfs__id(c);
  k->tries++;
  k->reply_due = now + c->cfg.timeout_ms;
  int rc = hfs__send(c, k->id, k->method, json_incref(k->req));
  if (async || rc < 0) {
    if (rc < 0)
      call_finish(c, k, 10, "transport write error", 0, NULL);
    else
      call_finish(c, k, 0, "", 0, "{}");
  }
}

static void flush_calls(hfs_client *c, uint64_t now) {
  if (c->state != HFS_CONNECTED)
    return;
  hfs_call *k = c->calls;
  while (k && c->state == HFS_CONNECTED) {
    hfs_call *next = k->next;
    if (!k->id && k->not_before <= now)
      call_write(c, k, now);
    k = next;
  }
}

static int call_submit(hfs_client *c, const char *method, json_t *req, int idempotent,
                       hfs_reply_cb cb, void *arg) {
  if (!req)
    return HF_ENOMEM;
  if (c->state == HFS_CLOSED) {
    json_decref(req);
    return HF_ECLOSED;
  }
  if (c->ncalls >= c->cfg.offline_max) {
    json_decref(req);
    return HF_ELIMIT;
  }
  hfs_call *k = calloc(1, sizeof *k);
  if (!k) {
    json_decref(req);
    return HF_ENOMEM;
  }
  uint64_t now = hfs__now();
  k->method = method;
  k->req = req;
  k->idempotent = idempotent;
  k->deadline = now + (idempotent ? c->cfg.publish_retry_ms : c->cfg.timeout_ms);
  k->cb = cb;
  k->arg = arg;
  *c->calls_tail = k;
  c->calls_tail = &k->next;
  c->ncalls++;
  if (c->state == HFS_CONNECTED) {
    hfs__enter(c);
    call_write(c, k, now);
    hfs__leave(c);
  } else {
    rearm(c);
  }
  return 0;
}

/* A reply to one of the calls: answered (1) or not ours (0). */
static int calls_reply(hfs_client *c, uint32_t id, json_t *reply) {
  hfs_call *k = c->calls;
  while (k && k->id != id)
    k = k->next;
  if (!k)
    return 0;
  json_t *err = json_object_get(reply, "error");
  if (err) {
    uint32_t code = (uint32_t)json_integer_value(json_object_get(err, "code"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    int temporary = json_is_true(json_object_get(err, "temporary"));
    if (k->idempotent && (temporary || code < 100) && hfs__now() < k->deadline) {
      k->id = 0; /* retry after a backoff delay */
      hfs_config *cf = &c->cfg;
      hf_reconnect_config rc = {1, cf->min_reconnect_ms, cf->max_reconnect_ms, 2, 0, 0, 0};
      k->not_before = hfs__now() + hf_reconnect_backoff(&rc, k->tries, hfs__rand(c));
      return 1;
    }
    call_finish(c, k, code ? code : 100, msg, temporary, NULL);
    return 1;
  }
  json_t *res = json_object_get(reply, k->method);
  char *text = res ? json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  call_finish(c, k, 0, "", 0, text ? text : "{}");
  free(text);
  return 1;
}

static void calls_timers(hfs_client *c, uint64_t now) {
  hfs_call *k = c->calls;
  while (k) {
    hfs_call *next = k->next;
    if (now >= k->deadline && !(k->id && now < k->reply_due)) {
      call_finish(c, k, 1, "timeout", 0, NULL);
    } else if (k->id && now >= k->reply_due) {
      if (k->idempotent)
        k->id = 0; /* resent below (same key: applied once) */
      else
        call_finish(c, k, 1, "timeout", 0, NULL);
    }
    k = next;
  }
  flush_calls(c, now);
}

int hfs_publish(hfs_client *c, const char *channel, const char *data,
                const char *idem_key, hfs_reply_cb cb, void *arg) {
  if (!channel || !*channel || !data || (idem_key && strlen(idem_key) > 256))
    return HF_EINVAL;
  json_t *d = hfs__parse(data);
  if (!d)
    return HF_EINVAL;
  json_t *req = json_pack("{s:s,s:o}", "channel", channel, "data", d);
  int idem = idem_key && *idem_key;
  if (req && idem)
    json_object_set_new(req, "idempotency_key", json_string(idem_key));
  return call_submit(c, "publish", req, idem, cb, arg);
}

int hfs_publish_bytes(hfs_client *c, const char *channel, const void *p, size_t len,
                      const char *idem_key, hfs_reply_cb cb, void *arg) {
  if (!c || c->codec != &hfs_codec_protobuf || !channel || !*channel || !p || !len ||
      len > (1u << 30) || (idem_key && strlen(idem_key) > 256))
    return HF_EINVAL;
  char *t = malloc(4 * ((len + 2) / 3) + 1);
  if (!t)
    return HF_ENOMEM;
  int n = EVP_EncodeBlock((unsigned char *)t, p, (int)len);
  /* the codec turns "b64data" into the bytes of PublishRequest.data */
  json_t *req = json_pack("{s:s,s:s%}", "channel", channel, "b64data", t, (size_t)n);
  free(t);
  int idem = idem_key && *idem_key;
  if (req && idem)
    json_object_set_new(req, "idempotency_key", json_string(idem_key));
  return call_submit(c, "publish", req, idem, cb, arg);
}

int hfs_presence(hfs_client *c, const char *channel, hfs_reply_cb cb, void *arg) {
  if (!channel || !*channel)
    return HF_EINVAL;
  return call_submit(c, "presence", json_pack("{s:s}", "channel", channel), 0, cb, arg);
}

int hfs_presence_stats(hfs_client *c, const char *channel, hfs_reply_cb cb,
                       void *arg) {
  if (!channel || !*channel)
    return HF_EINVAL;
  return call_submit(c, "presence_stats", json_pack("{s:s}", "channel", channel), 0, cb,
                     arg);
}

int hfs_history(hfs_client *c, const char *channel, int32_t limit,
                const hfs_position *since, int reverse, hfs_reply_cb cb, void *arg) {
  if (!channel || !*channel)
    return HF_EINVAL;
  json_t *req = json_pack("{s:s}", "channel", channel);
  if (req && limit)
    json_object_set_new(req, "limit", json_integer(limit));
  if (req && since)
    json_object_set_new(req, "since", json_pack("{s:I,s:s}", "offset",
                                                (json_int_t)since->offset, "epoch",
                                                since->epoch));
  if (req && reverse)
    json_object_set_new(req, "reverse", json_true());
  return call_submit(c, "history", req, 0, cb, arg);
}

int hfs_rpc(hfs_client *c, const char *method, const char *data, hfs_reply_cb cb,
            void *arg) {
  json_t *req = json_pack("{s:s}", "method", method ? method : "");
  if (req && data) {
    json_t *d = hfs__parse(data);
    if (!d) {
      json_decref(req);
      return HF_EINVAL;
    }
    json_object_set_new(req, "data", d);
  }
  return call_submit(c, "rpc", req, 0, cb, arg);
}

int hfs_send(hfs_client *c, const char *data) {
  json_t *d = hfs__parse(data);
  if (!d)
    return HF_EINVAL;
  return call_submit(c, "send", json_pack("{s:o}", "data", d), 0, NULL, NULL);
}

size_t hfs_client_pending(const hfs_client *c) { return c->ncalls; }

/* ---- the connection ---------------------------------------------------------- */

static void drop_transport(hfs_client *c, int graceful) {
  c->transport_active = 0;
  c->transport_open = 0;
  if (hf_client_get_state(c->tc) == HF_CLIENT_STOPPED)
    return;
  if (graceful && hf_client_get_state(c->tc) == HF_CLIENT_OPEN)
    hf_client_close(c->tc, 1000, "disconnect called");
  else
    hf_client_stop(c->tc);
}

static uint64_t backoff(hfs_client *c, uint32_t n) {
  hf_reconnect_config rc = {1, c->cfg.min_reconnect_ms, c->cfg.max_reconnect_ms, 2, 0, 0, 0};
  return hf_reconnect_backoff(&rc, n, hfs__rand(c));
}

static void schedule_reconnect(hfs_client *c) {
  c->reconnect_due = hfs__now() + backoff(c, c->attempts++);
}

void hfs__disconnect(hfs_client *c, uint32_t code, const char *reason, int reconnect) {
  if (code == 3014) { /* state invalidated: new token, positions unusable */
    if (c->cfg.get_token) {
      free(c->token);
      c->token = NULL;
      c->refresh_required = 1;
    }
    hfs__sub_invalidate(c);
  }
  if (c->state == HFS_DISCONNECTED || c->state == HFS_CLOSED) {
    if (!reconnect)
      fail_calls(c, 3, "client disconnected", 0);
    return;
  }
  hfs_state prev = c->state, next = reconnect ? HFS_CONNECTING : HFS_DISCONNECTED;
  drop_transport(c, !reconnect);
  c->reconnect_due = 0;
  c->connect_id = 0;
  c->connect_due = 0;
  c->token_wait = 0;
  c->ping_due = 0;
  c->refresh_due = 0;
  c->refresh_id = 0;
  c->refreshing = 0;
  c->state = next;
  fail_calls(c, reconnect ? 11 : 3, reconnect ? "connection closed" : "client disconnected",
             reconnect);
  if (prev == HFS_CONNECTED) {
    c->client_id[0] = '\0';
    hfs__sub_transport_closed(c);
  }
  if (c->state != next)
    return; /* a handler changed it */
  if (prev != next) {
    hfs_event ev = {0};
    ev.type = reconnect ? HFS_EV_CONNECTING : HFS_EV_DISCONNECTED;
    ev.code = code;
    ev.reason = reason;
    hfs__emit(c, &ev);
  }
  if (reconnect && c->state == HFS_CONNECTING && !c->reconnect_due && !c->transport_active)
    schedule_reconnect(c);
}

static void start_transport(hfs_client *c) {
  if (hf_client_get_state(c->tc) != HF_CLIENT_STOPPED)
    hf_client_stop(c->tc);
  c->transport_active = 1;
  c->transport_open = 0;
  if (hf_client_start(c->tc) < 0) {
    c->transport_active = 0;
    schedule_reconnect(c);
  }
}

/* Begin an attempt: a token first when one is needed. */
static void start_attempt(hfs_client *c) {
  c->reconnect_due = 0;
  int need = c->refresh_required || ((!c->token || !*c->token) && c->cfg.get_token);
  if (!need) {
    start_transport(c);
    return;
  }
  c->token_wait = 1;
  c->in_get_token = 1;
  int r = c->cfg.get_token(c, c->cfg.user);
  c->in_get_token = 0;
  if (c->state != HFS_CONNECTING)
    return;
  if (r == HFS_TOKEN_UNAUTHORIZED) {
    c->token_wait = 0;
    hfs__disconnect(c, 1, "unauthorized", 0);
  } else if (r != HFS_TOKEN_OK) {
    c->token_wait = 0;
    hfs__emit_error(c, NULL, "connectToken", 5, "could not get a connection token", 0);
    if (c->state == HFS_CONNECTING && !c->transport_active)
      schedule_reconnect(c);
  } else if (!c->token_wait) {
    start_transport(c); /* set synchronously */
  }
}

static void set_token(hfs_client *c, char *t);

int hfs_client_set_token(hfs_client *c, const char *token) {
  char *t = strdup(token ? token : "");
  if (!t)
    return HF_ENOMEM;
  hfs__enter(c);
  set_token(c, t);
  hfs__leave(c);
  return 0;
}

static void set_token(hfs_client *c, char *t) {
  free(c->token);
  c->token = t;
  c->refresh_required = 0;
  if (c->token_wait) {
    c->token_wait = 0;
    if (!*t) {
      hfs__disconnect(c, 1, "unauthorized", 0);
    } else if (c->state == HFS_CONNECTING && !c->in_get_token) {
      start_transport(c);
    }
    return;
  }
  if (c->refreshing && c->state == HFS_CONNECTED) {
    c->refreshing = 0;
    if (!*t) {
      hfs__disconnect(c, 1, "unauthorized", 0);
      return;
    }
    c->refresh_id = hfs__id(c);
    hfs__send(c, c->refresh_id, "refresh", json_pack("{s:s}", "token", t));
  }
}

static void send_connect(hfs_client *c) {
  json_t *req = json_object();
  if (!req)
    return;
  if (c->token && *c->token)
    json_object_set_new(req, "token", json_string(c->token));
  if (c->data)
    json_object_set_new(req, "data", hfs__parse(c->data));
  if (c->name && *c->name)
    json_object_set_new(req, "name", json_string(c->name));
  if (c->version && *c->version)
    json_object_set_new(req, "version", json_string(c->version));
  json_t *subs = hfs__ssub_request(c);
  if (subs)
    json_object_set_new(req, "subs", subs);
  c->connect_id = hfs__id(c);
  c->connect_due = hfs__now() + c->cfg.timeout_ms;
  hfs__send(c, c->connect_id, "connect", req);
}

static void arm_watchdog(hfs_client *c) {
  c->ping_due = c->ping_s ? hfs__now() + c->ping_s * 1000ull + c->cfg.max_server_ping_delay_ms
                          : 0;
}

static void connect_reply(hfs_client *c, json_t *reply) {
  c->connect_id = 0;
  c->connect_due = 0;
  json_t *err = json_object_get(reply, "error");
  if (err) {
    uint32_t code = (uint32_t)json_integer_value(json_object_get(err, "code"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    int temporary = json_is_true(json_object_get(err, "temporary"));
    if (code == 109)
      c->refresh_required = 1;
    if (code < 100 || temporary || code == 109) {
      hfs__emit_error(c, NULL, "connect", code, msg, temporary);
      if (c->state == HFS_CONNECTING)
        hfs__disconnect(c, code, msg, 1);
    } else {
      hfs__disconnect(c, code, msg, 0);
    }
    return;
  }
  json_t *res = json_object_get(reply, "connect");
  snprintf(c->client_id, sizeof c->client_id, "%s",
           json_string_value(json_object_get(res, "client")) ?: "");
  c->ping_s = (uint32_t)json_integer_value(json_object_get(res, "ping"));
  c->pong = json_is_true(json_object_get(res, "pong"));
  c->state = HFS_CONNECTED;
  c->attempts = 0;
  if (json_is_true(json_object_get(res, "expires"))) {
    uint64_t ttl = (uint64_t)json_integer_value(json_object_get(res, "ttl"));
    c->refresh_due = hfs__now() + ttl * 1000u;
  }
  arm_watchdog(c);
  hfs_event ev = {0};
  ev.type = HFS_EV_CONNECTED;
  ev.client_id = c->client_id;
  json_t *d = json_object_get(res, "data");
  char *dt = d ? json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  ev.data = dt;
  hfs__emit(c, &ev);
  free(dt);
  if (c->state != HFS_CONNECTED)
    return;
  hfs__ssub_connect_subs(c, json_object_get(res, "subs"));
  if (c->state != HFS_CONNECTED)
    return;
  hfs__sub_connected(c);
  flush_calls(c, hfs__now());
}

static void refresh_reply(hfs_client *c, json_t *reply) {
  c->refresh_id = 0;
  json_t *err = json_object_get(reply, "error");
  if (err) {
    uint32_t code = (uint32_t)json_integer_value(json_object_get(err, "code"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    int temporary = json_is_true(json_object_get(err, "temporary"));
    hfs__emit_error(c, NULL, "refresh", code, msg, temporary);
    if (c->state != HFS_CONNECTED)
      return;
    if (code < 100 || temporary)
      c->refresh_due = hfs__now() + 5000 + hfs__rand(c) % 5000;
    else
      hfs__disconnect(c, code, msg, 0);
    return;
  }
  json_t *res = json_object_get(reply, "refresh");
  if (json_is_true(json_object_get(res, "expires")))
    c->refresh_due =
        hfs__now() + (uint64_t)json_integer_value(json_object_get(res, "ttl")) * 1000u;
  else
    c->refresh_due = 0;
}

static void start_refresh(hfs_client *c) {
  c->refresh_due = 0;
  if (!c->cfg.get_token) {
    return; /* the server closes with 3005; the reconnect gets 109 */
  }
  c->refreshing = 1;
  int r = c->cfg.get_token(c, c->cfg.user);
  if (c->state != HFS_CONNECTED)
    return;
  if (r == HFS_TOKEN_UNAUTHORIZED) {
    c->refreshing = 0;
    hfs__disconnect(c, 1, "unauthorized", 0);
  } else if (r != HFS_TOKEN_OK) {
    c->refreshing = 0;
    hfs__emit_error(c, NULL, "refresh", 6, "could not get a connection token", 0);
    if (c->state == HFS_CONNECTED)
      c->refresh_due = hfs__now() + 5000 + hfs__rand(c) % 5000;
  }
}

/* One decoded reply, push or ping. */
static int on_reply(void *arg, json_t *reply) {
  hfs_client *c = arg;
  if (!c->transport_active) {
    json_decref(reply);
    return 1;
  }
  if (c->state == HFS_CONNECTED)
    arm_watchdog(c);
  uint32_t id = (uint32_t)json_integer_value(json_object_get(reply, "id"));
  json_t *push = json_object_get(reply, "push");
  if (id) {
    if (id == c->connect_id)
      connect_reply(c, reply);
    else if (id == c->refresh_id)
      refresh_reply(c, reply);
    else if (!hfs__sub_reply(c, id, reply))
      calls_reply(c, id, reply);
  } else if (push) {
    json_t *dis = json_object_get(push, "disconnect");
    if (dis) {
      uint32_t code = (uint32_t)json_integer_value(json_object_get(dis, "code"));
      const char *reason = json_string_value(json_object_get(dis, "reason"));
      int terminal = (code >= 3500 && code < 4000) || (code >= 4500 && code < 5000);
      hfs__disconnect(c, code, reason, !terminal);
    } else if (json_object_get(push, "message")) {
      json_t *d = json_object_get(json_object_get(push, "message"), "data");
      char *dt = d ? json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
      hfs_event ev = {0};
      ev.type = HFS_EV_MESSAGE;
      ev.data = dt;
      hfs__emit(c, &ev);
      free(dt);
    } else if (c->state == HFS_CONNECTED) {
      hfs__sub_push(c, push);
    }
  } else if (json_object_size(reply) == 0) { /* a ping */
    if (c->pong && c->state == HFS_CONNECTED)
      hfs__send(c, 0, NULL, NULL);
  }
  json_decref(reply);
  return !c->transport_active;
}

static void t_message(hf_client *tc, int opcode, const uint8_t *data, size_t len,
                      void *user) {
  hfs_client *c = user;
  if (!c->transport_active)
    return;
  if (c->codec->decode(data, len, on_reply, c) < 0 && c->transport_active)
    hfs__disconnect(c, 2, "bad protocol", 0);
}

/* The transport's end, classified as centrifuge-js does (reference 1.5). */
static void t_state(hf_client *tc, const hf_client_event *ev, void *user) {
  hfs_client *c = user;
  if (!c->transport_active)
    return;
  if (ev->to == HF_CLIENT_OPEN) {
    c->transport_open = 1;
    send_connect(c);
    return;
  }
  if (ev->to != HF_CLIENT_STOPPED)
    return;
  int was_open = c->transport_open;
  c->transport_active = 0;
  c->transport_open = 0;
  uint32_t code = 0;
  const char *reason = "connection closed";
  int reconnect = 1;
  if (ev->cause == HF_CAUSE_CLOSE_FRAME && ev->close_code > 0)
    code = (uint32_t)ev->close_code;
  char advice[128];
  if (ev->cause == HF_CAUSE_CLOSE_FRAME && ev->close_reason && *ev->close_reason) {
    json_t *adv = hfs__parse(ev->close_reason);
    if (json_is_object(adv)) { /* protocol v1 advice {"reason":..,"reconnect":..} */
      snprintf(advice, sizeof advice, "%s",
               json_string_value(json_object_get(adv, "reason")) ?: "");
      reason = advice;
      reconnect = json_is_true(json_object_get(adv, "reconnect"));
    } else {
      reason = ev->close_reason;
      if ((code >= 3500 && code < 4000) || (code >= 4500 && code < 5000))
        reconnect = 0;
    }
    json_decref(adv);
  }
  if (code < 3000) {
    if (code == 1009) {
      code = 3;
      reason = "message size limit exceeded";
      reconnect = 0;
    } else {
      code = 1;
      reason = "transport closed";
    }
  }
  if (c->state == HFS_CONNECTING && !was_open) {
    hfs_event e = {0};
    e.type = HFS_EV_ERROR;
    e.error_type = "transport";
    e.code = 2;
    e.reason = "transport closed";
    hfs__emit(c, &e);
    if (c->state != HFS_CONNECTING || c->transport_active || c->reconnect_due)
      return;
  }
  hfs__disconnect(c, code, reason, reconnect);
}

/* ---- life cycle ------------------------------------------------------------------ */

hfs_client *hfs_client_new(const hfs_config *cfg, char *err, size_t errcap) {
  hfs_client *c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(err, errcap, "out of memory");
    return NULL;
  }
  c->cfg = *cfg;
  c->url = dup_or_null(cfg->url);
  c->token = dup_or_null(cfg->token);
  c->name = dup_or_null(cfg->name);
  c->version = dup_or_null(cfg->version);
  c->data = dup_or_null(cfg->data);
  c->calls_tail = &c->calls;
  c->codec = cfg->protobuf ? &hfs_codec_protobuf : &hfs_codec_json;
  if (cfg->data) {
    json_t *d = hfs__parse(cfg->data);
    if (!d) {
      snprintf(err, errcap, "connect data is not JSON");
      hfs_client_free(c);
      return NULL;
    }
    json_decref(d);
  }
  if (getrandom(&c->rnd, sizeof c->rnd, 0) != sizeof c->rnd || !c->rnd)
    c->rnd = (uint64_t)hfs__now() * 0x9E3779B97F4A7C15ull | 1;
  hf_client_config tcfg;
  if (cfg->transport)
    tcfg = *cfg->transport;
  else
    hf_client_config_init(&tcfg);
  tcfg.url = cfg->url;
  tcfg.reconnect.enabled = 0; /* the SDK decides (the protocol's table) */
  tcfg.ping_interval_ms = 0;  /* the protocol's own pings */
  tcfg.on_state = t_state;
  tcfg.on_message = t_message;
  tcfg.on_pong = NULL;
  tcfg.on_credentials = NULL;
  tcfg.user = c;
  const char *proto = c->codec->subprotocol;
  if (proto) {
    tcfg.subprotocols = &proto;
    tcfg.n_subprotocols = 1;
  }
  if (!c->url || (cfg->name && !c->name)) {
    snprintf(err, errcap, "%s", c->url ? "out of memory" : "no URL");
    hfs_client_free(c);
    return NULL;
  }
  c->tc = hf_client_new(&tcfg, err, errcap);
  if (!c->tc) {
    hfs_client_free(c);
    return NULL;
  }
  c->state = HFS_DISCONNECTED;
  return c;
}

void hfs_client_free(hfs_client *c) {
  if (!c)
    return;
  if (c->loop) {
    hf_loop_del(c->loop, &c->lio);
    hf_timer_cancel(c->loop, &c->ltimer);
  }
  c->transport_active = 0;
  if (c->tc)
    hf_client_free(c->tc);
  while (c->subs) {
    hfs_sub *s = c->subs;
    c->subs = s->next;
    hfs__sub_free(s);
  }
  while (c->ssubs) {
    hfs_ssub *s = c->ssubs;
    c->ssubs = s->next;
    free(s->channel);
    free(s);
  }
  while (c->calls) {
    hfs_call *k = c->calls;
    c->calls = k->next;
    call_free(k);
  }
  free(c->url);
  free(c->token);
  free(c->name);
  free(c->version);
  free(c->data);
  free(c);
}

int hfs_client_connect(hfs_client *c) {
  if (c->state != HFS_DISCONNECTED)
    return HF_EINVAL;
  hfs__enter(c);
  c->state = HFS_CONNECTING;
  c->attempts = 0;
  hfs_event ev = {0};
  ev.type = HFS_EV_CONNECTING;
  ev.code = 0;
  ev.reason = "connect called";
  hfs__emit(c, &ev);
  if (c->state == HFS_CONNECTING && !c->transport_active && !c->token_wait)
    start_attempt(c);
  hfs__leave(c);
  return 0;
}

void hfs_client_disconnect(hfs_client *c) {
  hfs__enter(c);
  hfs__disconnect(c, 0, "disconnect called", 0);
  hfs__leave(c);
}

void hfs_client_close(hfs_client *c) {
  if (c->state == HFS_CLOSED)
    return;
  hfs__enter(c);
  fail_calls(c, 4, "client closed", 0);
  hfs__disconnect(c, 0, "disconnect called", 0);
  c->state = HFS_CLOSED;
  hfs__leave(c);
}

hfs_state hfs_client_state(const hfs_client *c) { return c->state; }
const char *hfs_client_id(const hfs_client *c) { return c->client_id; }

/* ---- timers and the loop --------------------------------------------------------- */

static uint64_t next_due(hfs_client *c) {
  uint64_t d = UINT64_MAX;
  uint64_t cand[] = {c->reconnect_due, c->connect_due, c->ping_due, c->refresh_due,
                     hfs__sub_next_due(c)};
  for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++)
    if (cand[i] && cand[i] < d)
      d = cand[i];
  for (hfs_call *k = c->calls; k; k = k->next) {
    uint64_t t = k->id ? k->reply_due : k->deadline;
    if (!k->id && k->not_before && c->state == HFS_CONNECTED && k->not_before < t)
      t = k->not_before;
    if (t < d)
      d = t;
  }
  return d;
}

static void timers(hfs_client *c) {
  uint64_t now = hfs__now();
  if (c->reconnect_due && now >= c->reconnect_due && c->state == HFS_CONNECTING)
    start_attempt(c);
  if (c->connect_due && now >= c->connect_due && c->state == HFS_CONNECTING) {
    hfs__emit_error(c, NULL, "connect", 1, "timeout", 0);
    if (c->state == HFS_CONNECTING)
      hfs__disconnect(c, 1, "transport closed", 1);
  }
  if (c->ping_due && now >= c->ping_due && c->state == HFS_CONNECTED)
    hfs__disconnect(c, 2, "no ping", 1);
  if (c->refresh_due && now >= c->refresh_due && c->state == HFS_CONNECTED)
    start_refresh(c);
  if (c->state == HFS_CONNECTED)
    hfs__sub_timers(c, now);
  calls_timers(c, now);
}

int hfs_client_fd(const hfs_client *c) { return hf_client_fd(c->tc); }

int hfs_client_timeout_ms(const hfs_client *c) {
  int t = hf_client_timeout_ms(c->tc);
  uint64_t d = next_due((hfs_client *)c);
  if (d == UINT64_MAX)
    return t;
  uint64_t now = hfs__now();
  int mine = d <= now ? 0 : (d - now > 3600000 ? 3600000 : (int)(d - now));
  return t < 0 || mine < t ? mine : t;
}

static void reap_subs(hfs_client *c) {
  hfs_sub **pp = &c->subs;
  while (*pp) {
    hfs_sub *s = *pp;
    if (s->dead) {
      *pp = s->next;
      hfs__sub_free(s);
    } else {
      pp = &s->next;
    }
  }
}

hfs_state hfs_client_process(hfs_client *c) {
  hfs__enter(c);
  hf_client_process(c->tc);
  timers(c);
  hfs__leave(c);
  return c->state;
}

static void loop_io(hf_loop *loop, hf_io *io, uint32_t revents) {
  hfs_client_process((hfs_client *)((char *)io - offsetof(hfs_client, lio)));
}

static void loop_timer(hf_loop *loop, hf_timer *t) {
  hfs_client_process((hfs_client *)((char *)t - offsetof(hfs_client, ltimer)));
}

static void rearm(hfs_client *c) {
  if (!c->loop)
    return;
  int t = hfs_client_timeout_ms(c);
  if (t < 0)
    hf_timer_cancel(c->loop, &c->ltimer);
  else
    hf_timer_set(c->loop, &c->ltimer, (uint64_t)t);
}

int hfs_client_attach(hfs_client *c, hf_loop *loop) {
  if (c->loop)
    return -EINVAL;
  c->lio.fd = hf_client_fd(c->tc);
  c->lio.cb = loop_io;
  c->ltimer.cb = loop_timer;
  int rc = hf_loop_add(loop, &c->lio, EPOLLIN);
  if (rc < 0)
    return rc;
  c->loop = loop;
  rearm(c);
  return 0;
}
