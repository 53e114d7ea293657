// fuzz-sources: sdk/sdk.c sdk/sdk_sub.c sdk/codec_json.c sdk/codec_pb.c client/reconnect.c build/gen/client.pb-c.c
/* SPDX-License-Identifier: MIT */
/* libFuzzer target for what the C SDK reads from a server: replies, pushes
 * and pings in any order and shape. The WebSocket client underneath is
 * replaced by a fake (the hf_client_* functions below) that opens at once
 * and records what the SDK writes; the SDK is connected with a connect
 * reply that announces server-side subscriptions, has three subscriptions
 * (one recoverable with a position) and calls in flight, and then receives
 * the input, split into messages at 0xff bytes. Whatever arrives, the SDK
 * must not crash, leak or break its own invariants (a known state, every
 * call answered at most once), and must free everything at the end. The
 * same input also goes through the Protobuf codec's decoder, whose trees
 * must be objects, and each is encoded back as a Command. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../sdk/codec.h"
#include "hf/err.h"
#include "hf/sdk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the fake WebSocket client ------------------------------------------------ */

/* The fake transport made last: the SDK client's only hf_client. */
static struct hf_client *last;

struct hf_client {
  hf_client_config cfg;
  hf_client_state state;
  size_t sent;
};

void hf_client_config_init(hf_client_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  hf_reconnect_config_init(&cfg->reconnect);
}

hf_client *hf_client_new(const hf_client_config *cfg, char *err, size_t errcap) {
  hf_client *c = calloc(1, sizeof *c);
  if (c)
    c->cfg = *cfg;
  last = c;
  return c;
}

void hf_client_free(hf_client *c) { free(c); }

static void fake_event(hf_client *c, hf_client_state to, hf_cause cause, int code) {
  hf_client_event ev;
  memset(&ev, 0, sizeof ev);
  ev.from = c->state;
  ev.to = to;
  ev.cause = cause;
  ev.reason = "fake";
  ev.diagnosis = "";
  ev.close_code = code;
  ev.close_reason = code ? "fake close" : "";
  c->state = to;
  c->cfg.on_state(c, &ev, c->cfg.user);
}

int hf_client_start(hf_client *c) {
  if (c->state != HF_CLIENT_STOPPED)
    return HF_EINVAL;
  c->state = HF_CLIENT_CONNECTING;
  fake_event(c, HF_CLIENT_OPEN, HF_CAUSE_NONE, 0);
  return 0;
}

int hf_client_send(hf_client *c, int opcode, const void *d, size_t len) {
  if (c->state == HF_CLIENT_STOPPED)
    return HF_ECLOSED;
  c->sent += len;
  return 0;
}

int hf_client_close(hf_client *c, int code, const char *reason) {
  c->state = HF_CLIENT_STOPPED;
  return 0;
}

void hf_client_stop(hf_client *c) { c->state = HF_CLIENT_STOPPED; }
hf_client_state hf_client_get_state(const hf_client *c) { return c->state; }
int hf_client_fd(const hf_client *c) { return -1; }
int hf_client_timeout_ms(const hf_client *c) { return -1; }
hf_client_state hf_client_process(hf_client *c) { return c->state; }

/* the loop is never attached here */
int hf_loop_add(hf_loop *loop, hf_io *io, uint32_t events) { return -1; }
int hf_loop_del(hf_loop *loop, hf_io *io) { return 0; }
void hf_timer_set(hf_loop *loop, hf_timer *t, uint64_t delay_ms) {}
void hf_timer_cancel(hf_loop *loop, hf_timer *t) {}

/* ---- the target ---------------------------------------------------------------------- */

static int answered;

static void on_event(hfs_client *c, const hfs_event *ev, void *user) {
  if (!ev->reason || !ev->channel || (unsigned)ev->type > HFS_EV_MESSAGE)
    __builtin_trap();
  if (ev->type == HFS_EV_PUBLICATION && !ev->data)
    __builtin_trap();
}

static void on_reply(hfs_client *c, const hfs_reply *r, void *arg) {
  if (!r->error_message || (!r->error_code && !r->result))
    __builtin_trap();
  answered++;
}

static void feed(hfs_client *c, hf_client *t, const char *msg, size_t len) {
  if (t->state == HF_CLIENT_OPEN && t->cfg.on_message)
    t->cfg.on_message(t, 1, (const uint8_t *)msg, len, t->cfg.user);
}

static int pb_tree(void *arg, json_t *reply) {
  if (!json_is_object(reply))
    __builtin_trap();
  char *out;
  size_t len;
  if (hfs_codec_protobuf.encode(reply, &out, &len) == 0)
    free(out);
  json_decref(reply);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hfs_codec_protobuf.decode(data, size, pb_tree, NULL);
  hfs_config cfg;
  hfs_config_init(&cfg);
  cfg.url = "ws://127.0.0.1:1/connection/websocket";
  cfg.token = "t";
  cfg.on_event = on_event;
  char err[256];
  last = NULL;
  hfs_client *c = hfs_client_new(&cfg, err, sizeof err);
  if (!c || !last)
    return 0;
  hfs_position pos = {5, "ep"};
  hfs_sub_config a = {.channel = "a", .recoverable = 1, .since = &pos};
  hfs_sub_config b = {.channel = "b", .join_leave = 1};
  hfs_sub_config d = {.channel = "d", .token = "st"};
  hfs_sub_subscribe(hfs_sub_new(c, &a, err, sizeof err));
  hfs_sub_subscribe(hfs_sub_new(c, &b, err, sizeof err));
  hfs_sub_subscribe(hfs_sub_new(c, &d, err, sizeof err));
  hfs_publish(c, "a", "{\"x\":1}", "k", on_reply, NULL);
  hfs_publish(c, "b", "1", NULL, on_reply, NULL);
  answered = 0;
  hfs_client_connect(c); /* the fake opens at once: connect is id 1 */
  hf_client *t = last;
  static const char hello[] =
      "{\"id\":1,\"connect\":{\"client\":\"x\",\"ping\":25,\"pong\":true,\"expires\":true,"
      "\"ttl\":100,\"subs\":{\"s\":{\"recoverable\":true,\"epoch\":\"e\",\"offset\":3}}}}";
  feed(c, t, hello, sizeof hello - 1);
  hfs_presence(c, "a", on_reply, NULL);
  hfs_history(c, "a", 10, &pos, 0, on_reply, NULL);
  size_t start = 0;
  for (size_t i = 0; i <= size; i++) {
    if (i == size || data[i] == 0xff) {
      feed(c, t, (const char *)data + start, i - start);
      start = i + 1;
    }
  }
  hfs_state st = hfs_client_process(c);
  if ((unsigned)st > HFS_CLOSED || answered > 4) /* each call answered at most once */
    __builtin_trap();
  hfs_client_close(c);
  hfs_client_free(c);
  return 0;
}
