/* SPDX-License-Identifier: MIT */
/* The example program of docs/client.md: a client that reconnects
 * correctly, driven from the application's own poll(2) loop through one
 * descriptor and a timeout. It says hello on every connection, prints every
 * state transition with its reason and every message, and after `want`
 * echoes in total closes normally. Reconnection (backoff with full jitter,
 * the close-code table, Retry-After) is the library's; the program only
 * reacts to what it is told.
 *
 *   build/examples/reconnect ws://127.0.0.1:8000/echo [echoes]
 *
 * Exit status: 0 after `want` echoes, 1 when the client stopped before. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf/client.h"
#include "hf/err.h"
#include "hf/frame.h"

typedef struct {
  int opened;   /* connections so far */
  int echoes;   /* messages received */
  int want;     /* then close */
} app;

/* Every transition, with the library's reason (and decision, when it
 * waits or stops). */
static void on_state(hf_client *c, const hf_client_event *ev, void *user) {
  app *a = user;
  printf("state %s -> %s: %s", hf_client_state_name(ev->from),
         hf_client_state_name(ev->to), ev->reason);
  if (ev->to == HF_CLIENT_WAITING)
    printf(" [%s, next attempt %u in %llu ms]", ev->decision, ev->attempt,
           (unsigned long long)ev->delay_ms);
  else if (ev->to == HF_CLIENT_STOPPED)
    printf(" [%s]", ev->decision);
  printf("\n");
  if (ev->to == HF_CLIENT_OPEN) {
    char hello[64];
    int n = snprintf(hello, sizeof hello, "hello %d", ++a->opened);
    hf_client_send(c, HF_OP_TEXT, hello, (size_t)n);
  }
}

static void on_message(hf_client *c, int opcode, const uint8_t *data,
                       size_t len, void *user) {
  app *a = user;
  printf("message: %.*s\n", (int)len, (const char *)data);
  if (++a->echoes == a->want)
    hf_client_close(c, 1000, "done");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s ws://host:port/path [echoes]\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  app a = {0, 0, argc > 2 ? atoi(argv[2]) : 3};

  hf_client_config cfg;
  hf_client_config_init(&cfg); /* defaults: reconnect on, 500 ms .. 20 s */
  cfg.url = argv[1];
  cfg.reconnect.min_ms = 100;
  cfg.reconnect.max_ms = 2000;
  cfg.reconnect.max_attempts = 50;
  cfg.ping_interval_ms = 5000; /* notice a dead server within 5 s + 10 s */
  cfg.on_state = on_state;
  cfg.on_message = on_message;
  cfg.user = &a;

  char err[256];
  hf_client *c = hf_client_new(&cfg, err, sizeof err);
  if (!c) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  hf_client_start(c);
  while (hf_client_get_state(c) != HF_CLIENT_STOPPED) {
    struct pollfd p = {.fd = hf_client_fd(c), .events = POLLIN};
    poll(&p, 1, hf_client_timeout_ms(c)); /* -1: no deadline */
    hf_client_process(c);
  }
  hf_client_free(c);
  printf("done: %d connections, %d echoes\n", a.opened, a.echoes);
  return a.echoes >= a.want ? 0 : 1;
}
