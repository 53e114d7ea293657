/* SPDX-License-Identifier: MIT */
/* The sensor of docs/sdk.md: publishes `count` numbered readings into a
 * channel through network loss without duplicates. Each reading carries an
 * idempotency key ("<id>:<seq>"), so the SDK may write it again after a
 * reconnect (it cannot know whether the server applied it before the
 * connection broke) and the server still applies it once. At most `window`
 * readings are unacknowledged at a time: the SDK's offline queue stays
 * bounded while the network is away.
 *
 *   build/examples/sensor URL CHANNEL COUNT [TOKEN]   (or HOLDFAST_TOKEN)
 *
 * Prints "published N retried K" and exits 0 once every reading was
 * acknowledged; 1 if the client stopped (a terminal disconnect) or a
 * reading failed. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf/sdk.h"

typedef struct {
  int next;      /* next reading to publish (1-based) */
  int acked;     /* readings acknowledged */
  int inflight;  /* published, not acknowledged */
  int retried;   /* readings the SDK wrote more than once */
  int failed;
  int count;
  const char *channel;
} sensor;

enum { WINDOW = 32 };

static void on_ack(hfs_client *c, const hfs_reply *r, void *arg) {
  sensor *s = arg;
  s->inflight--;
  if (r->error_code) {
    fprintf(stderr, "reading failed: %u %s\n", r->error_code, r->error_message);
    s->failed++;
    return;
  }
  s->acked++;
  if (r->attempts > 1)
    s->retried++;
}

static void on_event(hfs_client *c, const hfs_event *ev, void *user) {
  if (ev->type == HFS_EV_CONNECTING || ev->type == HFS_EV_DISCONNECTED)
    fprintf(stderr, "sensor: %s (%u %s)\n", hfs_event_name(ev->type), ev->code, ev->reason);
}

/* Publish while the window has room. */
static void pump(hfs_client *c, sensor *s) {
  while (s->next <= s->count && s->inflight < WINDOW) {
    char data[96], key[64];
    snprintf(data, sizeof data, "{\"sensor\":\"s1\",\"seq\":%d,\"value\":%d}", s->next,
             (s->next * 37) % 100);
    snprintf(key, sizeof key, "s1:%d", s->next);
    if (hfs_publish(c, s->channel, data, key, on_ack, s) < 0)
      return; /* queue full: try again after the next event */
    s->inflight++;
    s->next++;
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s URL CHANNEL COUNT [TOKEN]\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  sensor s = {1, 0, 0, 0, 0, atoi(argv[3]), argv[2]};
  hfs_config cfg;
  hfs_config_init(&cfg);
  cfg.url = argv[1];
  cfg.token = argc > 4 ? argv[4] : getenv("HOLDFAST_TOKEN");
  cfg.min_reconnect_ms = 100;  /* come back quickly after a cut */
  cfg.max_reconnect_ms = 2000;
  cfg.publish_retry_ms = 60000; /* keep a reading for up to a minute offline */
  cfg.on_event = on_event;
  char err[256];
  hfs_client *c = hfs_client_new(&cfg, err, sizeof err);
  if (!c) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  hfs_client_connect(c);
  while (s.acked + s.failed < s.count && hfs_client_state(c) != HFS_DISCONNECTED) {
    pump(c, &s);
    struct pollfd p = {.fd = hfs_client_fd(c), .events = POLLIN};
    poll(&p, 1, hfs_client_timeout_ms(c));
    hfs_client_process(c);
  }
  printf("published %d retried %d failed %d\n", s.acked, s.retried, s.failed);
  int ok = s.acked == s.count;
  hfs_client_close(c);
  hfs_client_free(c);
  return ok ? 0 : 1;
}
