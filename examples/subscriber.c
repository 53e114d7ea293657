/* SPDX-License-Identifier: MIT */
/* The subscriber of docs/sdk.md: survives its own restarts (and the
 * network's) without gaps. After every publication it persists the
 * subscription's position (offset and epoch) to a file, written to a
 * temporary name and renamed so a crash never leaves half a file; at start
 * it resumes from that position, and the server replays what was missed.
 * The SDK drops a publication whose offset it has already seen.
 *
 *   build/examples/subscriber URL CHANNEL STATEFILE [COUNT] [TOKEN]
 *
 * Prints each publication's data, one per line. Stops after COUNT
 * publications (0: never) or on SIGINT/SIGTERM (exit 0); exit 1 when the
 * subscription or the connection ended for good, or the position could not
 * be recovered (the server no longer has what was missed: reload state). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf/sdk.h"

static volatile sig_atomic_t stopping;
static void on_signal(int sig) { stopping = 1; }

typedef struct {
  const char *state_file;
  long count, seen;
  int failed;
} app;

static int load_position(const char *path, hfs_position *pos) {
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  char line[128] = "";
  int ok = fgets(line, sizeof line, f) != NULL;
  fclose(f);
  line[strcspn(line, "\n")] = '\0';
  return ok && hfs_position_parse(line, pos) == 0;
}

static void save_position(const char *path, const hfs_position *pos) {
  char tmp[4096], text[128];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  hfs_position_format(pos, text, sizeof text);
  FILE *f = fopen(tmp, "w");
  if (!f || fprintf(f, "%s\n", text) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
    fprintf(stderr, "subscriber: cannot save the position to %s: %s\n", path, strerror(errno));
}

static void on_event(hfs_client *c, const hfs_event *ev, void *user) {
  app *a = user;
  switch (ev->type) {
  case HFS_EV_PUBLICATION:
    printf("%s\n", ev->data);
    save_position(a->state_file, &ev->position); /* after handling it */
    if (a->count && ++a->seen >= a->count)
      stopping = 1;
    break;
  case HFS_EV_SUBSCRIBED:
    if (ev->was_recovering && !ev->recovered) {
      fprintf(stderr, "subscriber: the missed publications are gone (reload state)\n");
      a->failed = 1;
      stopping = 1;
    }
    save_position(a->state_file, &ev->position);
    break;
  case HFS_EV_UNSUBSCRIBED:
  case HFS_EV_DISCONNECTED:
    fprintf(stderr, "subscriber: %s (%u %s)\n", hfs_event_name(ev->type), ev->code, ev->reason);
    if (!stopping && (ev->type == HFS_EV_DISCONNECTED || ev->sub)) {
      a->failed = 1;
      stopping = 1;
    }
    break;
  default:
    break;
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s URL CHANNEL STATEFILE [COUNT] [TOKEN]\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  app a = {argv[3], argc > 4 ? atol(argv[4]) : 0, 0, 0};
  hfs_config cfg;
  hfs_config_init(&cfg);
  cfg.url = argv[1];
  cfg.token = argc > 5 ? argv[5] : getenv("HOLDFAST_TOKEN");
  cfg.min_reconnect_ms = 100;
  cfg.max_reconnect_ms = 2000;
  cfg.on_event = on_event;
  cfg.user = &a;
  char err[256];
  hfs_client *c = hfs_client_new(&cfg, err, sizeof err);
  if (!c) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  hfs_position since;
  hfs_sub_config sc = {0};
  sc.channel = argv[2];
  sc.recoverable = 1;
  sc.since = load_position(a.state_file, &since) ? &since : NULL;
  hfs_sub *s = hfs_sub_new(c, &sc, err, sizeof err);
  if (!s) {
    fprintf(stderr, "%s\n", err);
    hfs_client_free(c);
    return 2;
  }
  hfs_sub_subscribe(s);
  hfs_client_connect(c);
  while (!stopping) {
    struct pollfd p = {.fd = hfs_client_fd(c), .events = POLLIN};
    poll(&p, 1, hfs_client_timeout_ms(c));
    hfs_client_process(c);
  }
  hfs_client_close(c);
  hfs_client_free(c);
  return a.failed ? 1 : 0;
}
