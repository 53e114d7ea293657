/* SPDX-License-Identifier: MIT */
/* Example (docs/client.md): refreshing credentials. The server refuses the
 * upgrade with 401, or closes with 3005 (token expired); the library asks
 * on_credentials for new ones, the program sets a new Authorization header
 * and the library reconnects with backoff. This program "fetches" tokens
 * from its command line: the first is used at start, each refresh takes
 * the next one. Driven by hf_client_process from a poll(2) loop.
 *
 *   build/examples/credentials ws://127.0.0.1:8000/path TOKEN1 TOKEN2 ...
 *
 * Exit status: 0 after a message was received on an accepted connection
 * (then it closes normally), 1 when the client stopped before. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "hf/client.h"
#include "hf/frame.h"

typedef struct {
  char **tokens;
  int n, next;
  int got;
} app;

static void set_token(hf_client *c, app *a) {
  char v[512];
  snprintf(v, sizeof v, "Bearer %s", a->tokens[a->next++]);
  hf_client_set_header(c, "Authorization", v);
}

static int on_credentials(hf_client *c, const hf_client_event *why, void *user) {
  app *a = user;
  printf("credentials refused (%s): ", why->reason);
  if (a->next == a->n) {
    printf("no more tokens\n");
    return HF_CRED_STOP;
  }
  printf("trying token %d\n", a->next + 1);
  set_token(c, a);
  return HF_CRED_READY; /* or HF_CRED_PENDING + hf_client_credentials_ready() */
}

static void on_state(hf_client *c, const hf_client_event *ev, void *user) {
  printf("state %s -> %s: %s%s%s\n", hf_client_state_name(ev->from),
         hf_client_state_name(ev->to), ev->reason, *ev->decision ? " / " : "",
         ev->decision);
}

static void on_message(hf_client *c, int op, const uint8_t *d, size_t n, void *user) {
  app *a = user;
  printf("message: %.*s\n", (int)n, (const char *)d);
  a->got = 1;
  hf_client_close(c, 1000, "");
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s URL TOKEN...\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  app a = {argv + 2, argc - 2, 0, 0};
  hf_client_config cfg;
  hf_client_config_init(&cfg);
  cfg.url = argv[1];
  cfg.reconnect.min_ms = 50;
  cfg.reconnect.max_ms = 500;
  cfg.reconnect.max_attempts = 10; /* then give up (exit 1) */
  cfg.on_state = on_state;
  cfg.on_message = on_message;
  cfg.on_credentials = on_credentials; /* makes 401 and 3005 "refresh" */
  cfg.user = &a;
  char err[256];
  hf_client *c = hf_client_new(&cfg, err, sizeof err);
  if (!c) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  set_token(c, &a);
  hf_client_start(c);
  while (hf_client_get_state(c) != HF_CLIENT_STOPPED) {
    struct pollfd p = {.fd = hf_client_fd(c), .events = POLLIN};
    poll(&p, 1, hf_client_timeout_ms(c));
    hf_client_process(c);
  }
  hf_client_free(c);
  return a.got ? 0 : 1;
}
