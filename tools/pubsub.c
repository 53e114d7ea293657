/* SPDX-License-Identifier: MIT */
/* `holdfast sub` and `holdfast pub`: thin command-line tools on the SDK
 * (hf/sdk.h). sub prints every publication of a channel as one JSON line
 * and survives reconnects and restarts without gaps or duplicates (SDK
 * recovery with deduplication); pub publishes one message, optionally with
 * an idempotency key, and prints the result. */
#include "pubsub.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "hf/err.h"
#include "hf/sdk.h"

static volatile sig_atomic_t stop_sig;
static void on_sig(int s) { stop_sig = s; }

typedef struct {
  const char *prog;
  const char *channel;
  int status;      /* exit status once done, -1 while running */
  int quiet;
  uint64_t count;  /* sub: stop after this many (0: never) */
  uint64_t seen;
  int published;   /* pub: the reply arrived */
} ps_app;

/* Exit statuses (docs/sdk.md). */
enum {
  PS_OK = 0,
  PS_USAGE = 2,
  PS_DISCONNECTED = 3, /* the server refused the connection for good (a
                          terminal code: invalid token, forced disconnect) */
  PS_REFUSED = 4,      /* sub: the subscription was refused; pub: an error
                          reply (permission, unknown namespace...) */
  PS_TIMEOUT = 5       /* pub: no reply within --timeout */
};

static void log_event(ps_app *a, const hfs_event *ev) {
  if (a->quiet)
    return;
  switch (ev->type) {
  case HFS_EV_CONNECTING:
  case HFS_EV_DISCONNECTED:
  case HFS_EV_SUBSCRIBING:
  case HFS_EV_UNSUBSCRIBED:
    fprintf(stderr, "%s: %s%s%s (%u %s)\n", a->prog, hfs_event_name(ev->type),
            *ev->channel ? " " : "", ev->channel, ev->code, ev->reason);
    break;
  case HFS_EV_ERROR:
    fprintf(stderr, "%s: %s error %u: %s\n", a->prog, ev->error_type, ev->code, ev->reason);
    break;
  case HFS_EV_CONNECTED:
    fprintf(stderr, "%s: connected (client %s)\n", a->prog, ev->client_id);
    break;
  case HFS_EV_SUBSCRIBED: {
    char pos[128];
    hfs_position_format(&ev->position, pos, sizeof pos);
    fprintf(stderr, "%s: subscribed %s at %s%s\n", a->prog, ev->channel, pos,
            ev->was_recovering ? (ev->recovered ? " (recovered)"
                                                : " (recovery failed: publications "
                                                  "may be missing)")
                               : "");
    break;
  }
  default:
    break;
  }
}

static void sub_event(hfs_client *c, const hfs_event *ev, void *user) {
  ps_app *a = user;
  log_event(a, ev);
  if (ev->type == HFS_EV_PUBLICATION && ev->sub) {
    printf("{\"offset\":%llu,\"data\":%s}\n", (unsigned long long)ev->offset, ev->data);
    fflush(stdout);
    if (a->count && ++a->seen >= a->count)
      a->status = PS_OK;
  } else if (ev->type == HFS_EV_DISCONNECTED) {
    a->status = PS_DISCONNECTED;
  } else if (ev->type == HFS_EV_UNSUBSCRIBED && ev->sub) {
    a->status = PS_REFUSED;
  }
}

static void pub_event(hfs_client *c, const hfs_event *ev, void *user) {
  ps_app *a = user;
  log_event(a, ev);
  if (ev->type == HFS_EV_DISCONNECTED && !a->published)
    a->status = PS_DISCONNECTED;
}

static void pub_reply(hfs_client *c, const hfs_reply *r, void *arg) {
  ps_app *a = arg;
  a->published = 1;
  if (r->error_code == 0) {
    printf("{\"ok\":true,\"result\":%s}\n", r->result);
    a->status = PS_OK;
  } else {
    printf("{\"ok\":false,\"code\":%u,\"message\":\"%s\"}\n", r->error_code,
           r->error_message);
    a->status = r->error_code == 1   ? PS_TIMEOUT
                : r->error_code == 3 ? PS_DISCONNECTED
                                     : PS_REFUSED;
  }
  fflush(stdout);
}

static int run(hfs_client *c, ps_app *a, uint64_t deadline_ms) {
  uint64_t start = 0;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  start = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
  while (a->status < 0 && !stop_sig) {
    int t = hfs_client_timeout_ms(c);
    if (deadline_ms) {
      clock_gettime(CLOCK_MONOTONIC, &ts);
      uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
      if (now - start >= deadline_ms) {
        fprintf(stderr, "%s: no reply within the timeout\n", a->prog);
        a->status = PS_TIMEOUT;
        break;
      }
      int left = (int)(deadline_ms - (now - start));
      if (t < 0 || left < t)
        t = left;
    }
    struct pollfd p = {.fd = hfs_client_fd(c), .events = POLLIN};
    if (poll(&p, 1, t) < 0 && errno != EINTR)
      break;
    hfs_client_process(c);
  }
  return a->status < 0 ? PS_OK : a->status;
}

static void sub_usage(FILE *f) {
  fprintf(f,
          "usage: holdfast sub URL CHANNEL [--token T] [--since OFFSET:EPOCH] [--count N] "
          "[--protobuf] [--quiet]\n"
          "  prints each publication as {\"offset\":N,\"data\":...}, one per line;\n"
          "  reconnects and recovers without gaps or duplicates. HOLDFAST_TOKEN replaces\n"
          "  --token. On exit the last position is printed to stderr (resume with\n"
          "  --since). Exit: 0 ok (signal or --count), 2 usage, 3 disconnected for good,\n"
          "  4 subscription refused.\n");
}

static void pub_usage(FILE *f) {
  fprintf(f,
          "usage: holdfast pub URL CHANNEL JSON [--token T] [--idempotency-key K] "
          "[--timeout 10s] [--protobuf] [--quiet]\n"
          "  publishes one message and prints {\"ok\":true,...} or {\"ok\":false,\"code\":N,...}.\n"
          "  With a key the publish is retried through reconnects and applied once.\n"
          "  HOLDFAST_TOKEN replaces --token. Exit: 0 ok, 2 usage, 3 disconnected for good,\n"
          "  4 error reply, 5 timeout.\n");
}

/* Common option parsing; returns 1 consumed, 0 not ours, -1 bad. */
static int common_opt(const char *prog, int argc, char **argv, int *i, hfs_config *cfg,
                      ps_app *a) {
  const char *arg = argv[*i];
  if (cli_is(arg, "--token")) {
    if (!(cfg->token = cli_value(prog, argc, argv, i, "--token")))
      return -1;
    return 1;
  }
  if (cli_is(arg, "-q") || cli_is(arg, "--quiet")) {
    a->quiet = 1;
    return 1;
  }
  if (cli_is(arg, "--protobuf")) {
    cfg->protobuf = 1;
    return 1;
  }
  return 0;
}

int pubsub_sub_main(int argc, char **argv) {
  const char *prog = "holdfast sub";
  hfs_config cfg;
  hfs_config_init(&cfg);
  ps_app a = {prog, NULL, -1, 0, 0, 0, 0};
  const char *pos_arg[2] = {NULL, NULL};
  int npos = 0;
  hfs_position since;
  int have_since = 0;
  cfg.token = getenv("HOLDFAST_TOKEN");
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i], *v;
    int r = common_opt(prog, argc, argv, &i, &cfg, &a);
    if (r < 0)
      return PS_USAGE;
    if (r > 0)
      continue;
    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
      sub_usage(stdout);
      return 0;
    } else if (cli_is(arg, "--since")) {
      if (!(v = cli_value(prog, argc, argv, &i, "--since")))
        return PS_USAGE;
      if (hfs_position_parse(v, &since) < 0) {
        fprintf(stderr, "%s: --since %s: want OFFSET:EPOCH\n", prog, v);
        return PS_USAGE;
      }
      have_since = 1;
    } else if (cli_is(arg, "--count")) {
      if (!(v = cli_value(prog, argc, argv, &i, "--count")))
        return PS_USAGE;
      a.count = strtoull(v, NULL, 10);
    } else if (arg[0] == '-' && arg[1]) {
      fprintf(stderr, "%s: unknown option %s\n", prog, arg);
      sub_usage(stderr);
      return PS_USAGE;
    } else if (npos < 2) {
      pos_arg[npos++] = arg;
    } else {
      sub_usage(stderr);
      return PS_USAGE;
    }
  }
  if (npos != 2) {
    sub_usage(stderr);
    return PS_USAGE;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {0};
  sa.sa_handler = on_sig;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  cfg.url = pos_arg[0];
  cfg.on_event = sub_event;
  cfg.user = &a;
  char err[256];
  hfs_client *c = hfs_client_new(&cfg, err, sizeof err);
  if (!c) {
    fprintf(stderr, "%s: %s\n", prog, err);
    return PS_USAGE;
  }
  hfs_sub_config sc = {0};
  sc.channel = pos_arg[1];
  sc.recoverable = 1;
  sc.since = have_since ? &since : NULL;
  hfs_sub *s = hfs_sub_new(c, &sc, err, sizeof err);
  if (!s) {
    fprintf(stderr, "%s: %s\n", prog, err);
    hfs_client_free(c);
    return PS_USAGE;
  }
  hfs_sub_subscribe(s);
  hfs_client_connect(c);
  int rc = run(c, &a, 0);
  hfs_position p;
  if (hfs_sub_position(s, &p)) {
    char text[128];
    hfs_position_format(&p, text, sizeof text);
    fprintf(stderr, "%s: position %s\n", prog, text);
  }
  hfs_client_close(c);
  hfs_client_free(c);
  return rc;
}

int pubsub_pub_main(int argc, char **argv) {
  const char *prog = "holdfast pub";
  hfs_config cfg;
  hfs_config_init(&cfg);
  ps_app a = {prog, NULL, -1, 0, 0, 0, 0};
  const char *pos_arg[3] = {NULL, NULL, NULL};
  int npos = 0;
  const char *key = NULL;
  uint64_t timeout = 10000;
  cfg.token = getenv("HOLDFAST_TOKEN");
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i], *v;
    int r = common_opt(prog, argc, argv, &i, &cfg, &a);
    if (r < 0)
      return PS_USAGE;
    if (r > 0)
      continue;
    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
      pub_usage(stdout);
      return 0;
    } else if (cli_is(arg, "--idempotency-key")) {
      if (!(key = cli_value(prog, argc, argv, &i, "--idempotency-key")))
        return PS_USAGE;
    } else if (cli_is(arg, "--timeout")) {
      if (!(v = cli_value(prog, argc, argv, &i, "--timeout")) ||
          cli_duration(prog, "--timeout", v, &timeout) < 0)
        return PS_USAGE;
    } else if (arg[0] == '-' && arg[1]) {
      fprintf(stderr, "%s: unknown option %s\n", prog, arg);
      pub_usage(stderr);
      return PS_USAGE;
    } else if (npos < 3) {
      pos_arg[npos++] = arg;
    } else {
      pub_usage(stderr);
      return PS_USAGE;
    }
  }
  if (npos != 3 || !timeout) {
    pub_usage(stderr);
    return PS_USAGE;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  cfg.url = pos_arg[0];
  cfg.on_event = pub_event;
  cfg.user = &a;
  cfg.publish_retry_ms = (uint32_t)(timeout > 3600000 ? 3600000 : timeout);
  cfg.timeout_ms = cfg.publish_retry_ms;
  char err[256];
  hfs_client *c = hfs_client_new(&cfg, err, sizeof err);
  if (!c) {
    fprintf(stderr, "%s: %s\n", prog, err);
    return PS_USAGE;
  }
  int rc = hfs_publish(c, pos_arg[1], pos_arg[2], key, pub_reply, &a);
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", prog,
            rc == HF_EINVAL ? "the data is not JSON (or the key is over 256 bytes)"
                            : hf_strerror(rc));
    hfs_client_free(c);
    return PS_USAGE;
  }
  hfs_client_connect(c);
  rc = run(c, &a, timeout + 1000);
  hfs_client_close(c);
  hfs_client_free(c);
  return rc;
}
