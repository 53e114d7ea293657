/* SPDX-License-Identifier: MIT */
/* The C side of the SDK comparison (tests/integration/test_sdk.py): drives
 * one hfs_client from commands on stdin and prints every event as one JSON
 * line in the normalised form that tests/sdk/driver.mjs (the centrifuge npm
 * SDK) prints too, so the test can compare the two sequences.
 *
 *   sdk_driver URL [--token T] [--get-token] [--min-delay MS] [--max-delay MS]
 *              [--ping-delay MS] [--timeout MS] [--protobuf]
 *
 * Commands (one per line): connect | disconnect | token T | sub CH
 * [recoverable|token|joinleave] | unsub CH | subtoken CH T | publish CH JSON [KEY] |
 * publishhex CH HEX [KEY] (binary data; publications of binary data print "hex") |
 * presence CH | presence_stats CH | history CH | rpc METHOD | quit. With --get-token the
 * token callback prints {"ev":"get_token"} and waits for a `token` line;
 * with `token` a sub's token callback prints {"ev":"get_sub_token","ch":..}. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf/sdk.h"

static void jstr(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      printf("\\u%04x", *s);
    else
      putchar(*s);
  }
  putchar('"');
}

static int get_token(hfs_client *c, void *user) {
  printf("{\"ev\":\"get_token\"}\n");
  return HFS_TOKEN_OK; /* answered by a `token` line */
}

static int get_sub_token(hfs_sub *s, void *user) {
  printf("{\"ev\":\"get_sub_token\",\"ch\":");
  jstr(hfs_sub_channel(s));
  printf("}\n");
  return HFS_TOKEN_OK;
}

static void on_event(hfs_client *c, const hfs_event *ev, void *user) {
  const char *prefix = ev->sub || ev->type <= HFS_EV_ERROR || ev->type == HFS_EV_MESSAGE
                           ? ""
                           : "server_";
  if (ev->type == HFS_EV_ERROR && ev->sub)
    prefix = "sub_";
  printf("{\"ev\":\"%s%s\"", prefix, hfs_event_name(ev->type));
  if (*ev->channel) {
    printf(",\"ch\":");
    jstr(ev->channel);
  }
  switch (ev->type) {
  case HFS_EV_CONNECTING:
  case HFS_EV_DISCONNECTED:
  case HFS_EV_UNSUBSCRIBED:
  case HFS_EV_SUBSCRIBING:
    if (ev->type != HFS_EV_CONNECTING && ev->type != HFS_EV_DISCONNECTED && !ev->sub)
      break; /* server-side: no code */
    printf(",\"code\":%u,\"reason\":", ev->code);
    jstr(ev->reason);
    break;
  case HFS_EV_ERROR:
    printf(",\"type\":\"%s\",\"code\":%u", ev->error_type, ev->code);
    break;
  case HFS_EV_SUBSCRIBED:
    printf(",\"wasRecovering\":%s,\"recovered\":%s", ev->was_recovering ? "true" : "false",
           ev->recovered ? "true" : "false");
    break;
  case HFS_EV_PUBLICATION:
    if (ev->binary) { /* binary data (Protobuf): its bytes in hex */
      printf(",\"hex\":\"");
      for (size_t i = 0; i < ev->data_len; i++)
        printf("%02x", (unsigned char)ev->data[i]);
      printf("\",\"offset\":%llu", (unsigned long long)ev->offset);
    } else {
      printf(",\"data\":%s,\"offset\":%llu", ev->data, (unsigned long long)ev->offset);
    }
    break;
  case HFS_EV_JOIN:
  case HFS_EV_LEAVE: { /* the user id from the ClientInfo */
    const char *u = ev->info ? strstr(ev->info, "\"user\":\"") : NULL;
    printf(",\"user\":\"%.*s\"", u ? (int)strcspn(u + 8, "\"") : 0, u ? u + 8 : "");
    break;
  }
  default:
    break;
  }
  printf("}\n");
}

static void on_reply(hfs_client *c, const hfs_reply *r, void *arg) {
  printf("{\"ev\":\"reply\",\"op\":\"%s\",\"code\":%u", (const char *)arg, r->error_code);
  if (!r->error_code && strcmp(arg, "presence_stats") == 0)
    printf(",\"result\":%s", r->result);
  printf("}\n");
}

static void command(hfs_client *c, char *line, int *quit) {
  char *save, *cmd = strtok_r(line, " \n", &save);
  if (!cmd)
    return;
  char *a1 = strtok_r(NULL, " \n", &save), *a2 = strtok_r(NULL, " \n", &save),
       *a3 = strtok_r(NULL, " \n", &save);
  char err[256];
  int rc = 0;
  if (!strcmp(cmd, "connect")) {
    rc = hfs_client_connect(c);
  } else if (!strcmp(cmd, "disconnect")) {
    hfs_client_disconnect(c);
  } else if (!strcmp(cmd, "token")) {
    rc = hfs_client_set_token(c, a1 ? a1 : "");
  } else if (!strcmp(cmd, "sub") && a1) {
    hfs_sub_config sc = {0};
    sc.channel = a1;
    int rec = (a2 && !strcmp(a2, "recoverable")) || (a3 && !strcmp(a3, "recoverable"));
    int tok = (a2 && !strcmp(a2, "token")) || (a3 && !strcmp(a3, "token"));
    sc.join_leave = (a2 && !strcmp(a2, "joinleave")) || (a3 && !strcmp(a3, "joinleave"));
    sc.recoverable = rec;
    sc.get_token = tok ? get_sub_token : NULL;
    hfs_sub *s = hfs_client_sub(c, a1);
    if (!s)
      s = hfs_sub_new(c, &sc, err, sizeof err);
    rc = s ? hfs_sub_subscribe(s) : -1;
  } else if (!strcmp(cmd, "unsub") && a1) {
    hfs_sub *s = hfs_client_sub(c, a1);
    rc = s ? hfs_sub_unsubscribe(s) : -1;
  } else if (!strcmp(cmd, "subtoken") && a1) {
    hfs_sub *s = hfs_client_sub(c, a1);
    rc = s ? hfs_sub_set_token(s, a2 ? a2 : "") : -1;
  } else if (!strcmp(cmd, "publish") && a1 && a2) {
    rc = hfs_publish(c, a1, a2, a3, on_reply, "publish");
  } else if (!strcmp(cmd, "publishhex") && a1 && a2) { /* binary data, hex */
    size_t n = strlen(a2) / 2;
    unsigned char *b = malloc(n + 1);
    for (size_t i = 0; b && i < n; i++) {
      unsigned v;
      if (sscanf(a2 + 2 * i, "%2x", &v) != 1)
        v = 0;
      b[i] = (unsigned char)v;
    }
    rc = b ? hfs_publish_bytes(c, a1, b, n, a3, on_reply, "publish") : -1;
    free(b);
  } else if (!strcmp(cmd, "presence") && a1) {
    rc = hfs_presence(c, a1, on_reply, "presence");
  } else if (!strcmp(cmd, "presence_stats") && a1) {
    rc = hfs_presence_stats(c, a1, on_reply, "presence_stats");
  } else if (!strcmp(cmd, "history") && a1) {
    rc = hfs_history(c, a1, -1, NULL, 0, on_reply, "history");
  } else if (!strcmp(cmd, "rpc") && a1) {
    rc = hfs_rpc(c, a1, "{}", on_reply, "rpc");
  } else if (!strcmp(cmd, "quit")) {
    *quit = 1;
  } else {
    rc = -1;
  }
  if (rc < 0)
    printf("{\"ev\":\"bad_command\",\"cmd\":\"%s\",\"rc\":%d}\n", cmd, rc);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s URL [--token T] [--get-token] [--min-delay MS] "
                    "[--max-delay MS]\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  hfs_config cfg;
  hfs_config_init(&cfg);
  cfg.url = argv[1];
  cfg.on_event = on_event;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--token") && i + 1 < argc)
      cfg.token = argv[++i];
    else if (!strcmp(argv[i], "--protobuf"))
      cfg.protobuf = 1;
    else if (!strcmp(argv[i], "--get-token"))
      cfg.get_token = get_token;
    else if (!strcmp(argv[i], "--min-delay") && i + 1 < argc)
      cfg.min_reconnect_ms = cfg.min_resubscribe_ms = (uint32_t)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
      cfg.timeout_ms = (uint32_t)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--ping-delay") && i + 1 < argc)
      cfg.max_server_ping_delay_ms = (uint32_t)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--max-delay") && i + 1 < argc)
      cfg.max_reconnect_ms = cfg.max_resubscribe_ms = (uint32_t)atoi(argv[++i]);
  }
  char err[256];
  hfs_client *c = hfs_client_new(&cfg, err, sizeof err);
  if (!c) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  char buf[65536];
  size_t have = 0;
  int quit = 0;
  while (!quit) {
    struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = hfs_client_fd(c), .events = POLLIN}};
    if (poll(p, 2, hfs_client_timeout_ms(c)) < 0 && errno != EINTR)
      break;
    if (p[0].revents) {
      ssize_t n = read(0, buf + have, sizeof buf - 1 - have);
      if (n <= 0)
        break;
      have += (size_t)n;
      char *nl;
      while ((nl = memchr(buf, '\n', have))) {
        *nl = '\0';
        command(c, buf, &quit);
        size_t used = (size_t)(nl - buf) + 1;
        memmove(buf, nl + 1, have - used);
        have -= used;
      }
    }
    hfs_client_process(c);
  }
  hfs_client_close(c);
  hfs_client_free(c);
  return 0;
}
