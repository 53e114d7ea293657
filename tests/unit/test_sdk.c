/* SPDX-License-Identifier: MIT */
/* Unit tests of the SDK (hf/sdk.h) that need no server: positions, argument
 * checks, the bounded offline queue, calls that time out or fail when the
 * client disconnects or closes, a subscription removed from inside its own
 * event, and the transport error of an attempt to a closed port. The
 * protocol behaviour is tested against the real binary and centrifuge-js
 * in tests/integration/test_sdk.py. */
#include <poll.h>
#include <stdlib.h>
#include <time.h>

#include "hf/err.h"
#include "hf/sdk.h"
#include "test.h"

static void position_text(void) {
  hfs_position p;
  char out[128];
  CHECK_INT(hfs_position_parse("42:abcd", &p), 0);
  CHECK_INT(p.offset, 42);
  CHECK_STR(p.epoch, "abcd");
  hfs_position_format(&p, out, sizeof out);
  CHECK_STR(out, "42:abcd");
  CHECK_INT(hfs_position_parse("7", &p), 0);
  CHECK_INT(p.offset, 7);
  CHECK_STR(p.epoch, "");
  CHECK_INT(hfs_position_parse("", &p), HF_EINVAL);
  CHECK_INT(hfs_position_parse("x:y", &p), HF_EINVAL);
  CHECK_INT(hfs_position_parse("-1:e", &p), HF_EINVAL);
  CHECK_INT(hfs_position_parse("1x:e", &p), HF_EINVAL);
  CHECK_INT(hfs_position_parse("99999999999999999999999:e", &p), HF_EINVAL);
  char long_epoch[200];
  memset(long_epoch, 'e', sizeof long_epoch);
  long_epoch[0] = '1';
  long_epoch[1] = ':';
  long_epoch[sizeof long_epoch - 1] = '\0';
  CHECK_INT(hfs_position_parse(long_epoch, &p), HF_EINVAL);
}

typedef struct {
  int replies, last_code, events[16];
  hfs_sub *remove_me;
} rec;

static void on_event(hfs_client *c, const hfs_event *ev, void *user) {
  rec *r = user;
  if ((unsigned)ev->type < 16)
    r->events[ev->type]++;
  if (ev->type == HFS_EV_SUBSCRIBING && ev->sub && ev->sub == r->remove_me) {
    hfs_sub_remove(ev->sub); /* from its own event: freed after the call */
    r->remove_me = NULL;
  }
}

static void on_reply(hfs_client *c, const hfs_reply *r, void *arg) {
  rec *x = arg;
  x->replies++;
  x->last_code = (int)r->error_code;
  CHECK(r->error_message != NULL);
  CHECK(r->result == NULL);
}

static hfs_client *make(rec *r, const char *url, size_t offline_max, uint32_t timeout_ms) {
  hfs_config cfg;
  hfs_config_init(&cfg);
  cfg.url = url;
  cfg.token = "t";
  cfg.offline_max = offline_max;
  cfg.timeout_ms = timeout_ms;
  cfg.min_reconnect_ms = 20;
  cfg.max_reconnect_ms = 50;
  cfg.on_event = on_event;
  cfg.user = r;
  char err[256];
  return hfs_client_new(&cfg, err, sizeof err);
}

static void arguments(void) {
  hfs_config cfg;
  hfs_config_init(&cfg);
  char err[256];
  CHECK(hfs_client_new(&cfg, err, sizeof err) == NULL); /* no URL */
  cfg.url = "http://127.0.0.1/";
  CHECK(hfs_client_new(&cfg, err, sizeof err) == NULL);
  cfg.url = "ws://127.0.0.1:1/";
  cfg.data = "{not json";
  CHECK(hfs_client_new(&cfg, err, sizeof err) == NULL);
  CHECK_STR(err, "connect data is not JSON");
  rec r = {0};
  hfs_client *c = make(&r, "ws://127.0.0.1:1/", 10, 1000);
  CHECK(c != NULL);
  if (!c)
    return;
  hfs_sub_config sc = {.channel = "a"};
  CHECK(hfs_sub_new(c, &sc, err, sizeof err) != NULL);
  CHECK(hfs_sub_new(c, &sc, err, sizeof err) == NULL); /* one per channel */
  sc.channel = "";
  CHECK(hfs_sub_new(c, &sc, err, sizeof err) == NULL);
  sc.channel = "b";
  sc.data = "{";
  CHECK(hfs_sub_new(c, &sc, err, sizeof err) == NULL);
  CHECK_INT(hfs_publish(c, "a", "{bad", NULL, NULL, NULL), HF_EINVAL);
  CHECK_INT(hfs_publish(c, "", "1", NULL, NULL, NULL), HF_EINVAL);
  char key[300];
  memset(key, 'k', sizeof key);
  key[sizeof key - 1] = '\0';
  CHECK_INT(hfs_publish(c, "a", "1", key, NULL, NULL), HF_EINVAL);
  CHECK_INT(hfs_rpc(c, "m", "[", NULL, NULL), HF_EINVAL);
  CHECK_INT(hfs_client_state(c), HFS_DISCONNECTED);
  CHECK(hfs_client_sub(c, "a") != NULL);
  CHECK_STR(hfs_client_id(c), "");
  hfs_client_free(c);
}

static void offline_queue_bound_and_disconnect(void) {
  rec r = {0};
  hfs_client *c = make(&r, "ws://127.0.0.1:1/", 3, 60000);
  if (!c)
    return;
  for (int i = 0; i < 3; i++)
    CHECK_INT(hfs_publish(c, "a", "1", NULL, on_reply, &r), 0);
  CHECK_INT(hfs_publish(c, "a", "1", NULL, on_reply, &r), HF_ELIMIT);
  CHECK_INT(hfs_client_pending(c), 3);
  hfs_client_disconnect(c); /* waiting calls fail: client disconnected */
  CHECK_INT(r.replies, 3);
  CHECK_INT(r.last_code, 3);
  CHECK_INT(hfs_client_pending(c), 0);
  CHECK_INT(hfs_publish(c, "a", "1", "key", on_reply, &r), 0);
  hfs_client_close(c); /* and on close: client closed */
  CHECK_INT(r.replies, 4);
  CHECK_INT(r.last_code, 4);
  CHECK_INT(hfs_client_state(c), HFS_CLOSED);
  CHECK_INT(hfs_publish(c, "a", "1", NULL, on_reply, &r), HF_ECLOSED);
  CHECK_INT(hfs_client_connect(c), HF_EINVAL);
  hfs_client_free(c);
}

static uint64_t ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void calls_time_out_while_the_server_is_away(void) {
  rec r = {0};
  hfs_client *c = make(&r, "ws://127.0.0.1:1/", 10, 100); /* nothing listens on port 1 */
  if (!c)
    return;
  char err[256];
  hfs_sub_config sc = {.channel = "gone"};
  hfs_sub *s = hfs_sub_new(c, &sc, err, sizeof err);
  r.remove_me = s;
  CHECK_INT(hfs_sub_subscribe(s), 0); /* removed by its SUBSCRIBING event */
  CHECK(hfs_client_sub(c, "gone") == NULL);
  CHECK_INT(hfs_presence(c, "a", on_reply, &r), 0);
  CHECK_INT(hfs_client_connect(c), 0);
  CHECK_INT(hfs_client_state(c), HFS_CONNECTING);
  uint64_t end = ms() + 5000;
  while ((r.replies == 0 || r.events[HFS_EV_ERROR] < 2) && ms() < end) {
    struct pollfd p = {.fd = hfs_client_fd(c), .events = POLLIN};
    int t = hfs_client_timeout_ms(c);
    poll(&p, 1, t < 0 || t > 100 ? 100 : t);
    hfs_client_process(c);
  }
  CHECK_INT(r.replies, 1);
  CHECK_INT(r.last_code, 1); /* timeout */
  CHECK(r.events[HFS_EV_ERROR] >= 2); /* transport errors, attempt after attempt */
  CHECK_INT(r.events[HFS_EV_CONNECTING], 1);
  CHECK_INT(r.events[HFS_EV_CONNECTED], 0);
  CHECK_INT(hfs_client_state(c), HFS_CONNECTING);
  hfs_client_free(c);
}

int main(void) {
  hf_t_suite = "sdk";
  RUN_TEST(position_text);
  RUN_TEST(arguments);
  RUN_TEST(offline_queue_bound_and_disconnect);
  RUN_TEST(calls_time_out_while_the_server_is_away);
  TEST_MAIN_END();
}
