/* SPDX-License-Identifier: MIT */
/* `holdfast connect URL`: a terminal WebSocket client on the client library,
 * run on holdfast's own loop. Lines from stdin are sent as messages,
 * messages received are printed on stdout, and every transition of the
 * connection (with its close code, meaning and who closed) goes to stderr;
 * the exit status names how it ended (docs/client.md). */
#include "connect.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "hf/close.h"
#include "hf/err.h"
#include "hf/frame.h"

#define PROG "holdfast connect"
#define LINE_MAX_BYTES (16u << 20)

typedef struct {
  hf_client *c;
  hf_loop *loop;
  int binary, timestamps, quiet;
  uint64_t wait_ms;
  uint64_t count;    /* --count: close once this many messages arrived (0: off) */
  uint64_t received; /* messages received */
  /* stdin */
  hf_io in;
  int in_registered, eof;
  char *line;
  size_t line_len, line_cap;
  /* closing after stdin ended */
  hf_timer check;
  uint64_t eof_flushed_at; /* ms when everything was sent after EOF */
  int closing;
  /* signals */
  hf_io sig;
  int signals;
  int status;      /* exit status of the last ending */
  int have_status;
} connect_app;

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: holdfast connect URL [options]\n"
          "A terminal WebSocket client: each stdin line is sent as a message,\n"
          "each message received is printed on stdout; status goes to stderr.\n\n");
  cli_client_usage(out);
  fprintf(out,
          "  -b, --binary                stdin lines are hex, sent as binary messages\n"
          "  -t, --timestamps            prefix received messages with the UTC time\n"
          "  --ping-interval DUR         heartbeat: ping after DUR of silence (0: off)\n"
          "  --pong-timeout DUR          heartbeat: then drop after DUR (default 10s)\n"
          "  -r, --reconnect             reconnect with backoff as the close code says\n"
          "  --reconnect-min DUR         backoff floor (default 500ms)\n"
          "  --reconnect-max DUR         backoff ceiling (default 20s)\n"
          "  --max-attempts N            give up after N reconnects (default: never)\n"
          "  -w, --wait DUR              after stdin ends and all was sent, wait DUR\n"
          "                              for replies before closing (default 0)\n"
          "  -n, --count N               with --wait: close as soon as N messages\n"
          "                              have been received in all (default: wait DUR)\n"
          "  --queue-max BYTES           outgoing queue limit (default 1MiB)\n"
          "  --max-message BYTES         largest message accepted (default 16MiB)\n"
          "  -q, --quiet                 no status lines\n\n"
          "exit status: 0 normal close (1000/1001, or stdin ended), 1 closed by the\n"
          "server with another code, 2 usage, 3 DNS failure, 4 network failure\n"
          "(TCP, connection lost, heartbeat), 5 TLS failure, 6 handshake rejected,\n"
          "7 protocol error\n");
}

static void say(connect_app *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(connect_app *a, const char *fmt, ...) {
  if (a->quiet)
    return;
  va_list ap;
  va_start(ap, fmt);
  fputs(PROG ": ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* The refused upgrade in full: status line, headers, body. */
static void print_response(connect_app *a, hf_client *c) {
  const hf_client_report *r = hf_client_get_report(c);
  if (a->quiet || !r->response)
    return;
  const hf_http_response *h = r->response;
  fprintf(stderr, "  < HTTP/%d.%d %d %.*s\n", h->version_major, h->version_minor,
          h->status, (int)h->reason_len, h->reason);
  for (size_t i = 0; i < h->num_headers; i++)
    fprintf(stderr, "  < %.*s: %.*s\n", (int)h->headers[i].name_len,
            h->headers[i].name, (int)h->headers[i].value_len, h->headers[i].value);
  if (r->body_len) {
    fputs("  < (body) ", stderr);
    cli_print_quoted(stderr, (const char *)r->body, r->body_len);
    fputs(r->body_truncated ? " ...\n" : "\n", stderr);
  }
}

static const char *who(int by) {
  switch (by) {
  case HF_BY_SERVER: return "closed by the server";
  case HF_BY_CLIENT: return "closed by the client";
  case HF_BY_NETWORK: return "lost (no close frame)";
  default: return "ended";
  }
}

static void on_state(hf_client *c, const hf_client_event *ev, void *user) {
  connect_app *a = user;
  switch (ev->to) {
  case HF_CLIENT_CONNECTING:
    if (ev->from == HF_CLIENT_WAITING)
      say(a, "reconnecting (attempt %u)", ev->attempt);
    break;
  case HF_CLIENT_OPEN: {
    const hf_client_report *r = hf_client_get_report(c);
    char addr[64] = "?";
    if (r->connected >= 0)
      hf_client_addr_text(&r->addrs[r->connected], addr, sizeof addr);
    const char *sp = hf_client_subprotocol(c);
    say(a, "connected to %s (%s%s%s%s)", hf_client_get_report(c)->host, addr,
        *sp ? ", sub-protocol " : "", sp,
        hf_client_get_report(c)->deflate ? ", permessage-deflate" : "");
    break;
  }
  case HF_CLIENT_CLOSING:
    break;
  case HF_CLIENT_WAITING:
  case HF_CLIENT_STOPPED: {
    int from_conn = ev->from == HF_CLIENT_OPEN || ev->from == HF_CLIENT_CLOSING;
    if (ev->cause != HF_CAUSE_USER || from_conn) {
      a->status = cli_exit_status(ev);
      a->have_status = 1;
    }
    if (ev->layer == HF_LAYER_WS && ev->close_code) {
      say(a, "%s: %d %s", who(ev->closed_by), ev->close_code,
          hf_close_meaning((unsigned)ev->close_code));
      if (*ev->close_reason && !a->quiet) {
        fputs("  reason: ", stderr);
        cli_print_quoted(stderr, ev->close_reason, strlen(ev->close_reason));
        fputc('\n', stderr);
      }
      if (ev->cause != HF_CAUSE_CLOSE_FRAME && ev->cause != HF_CAUSE_USER)
        say(a, "%s", ev->reason);
    } else if (ev->cause != HF_CAUSE_USER) {
      say(a, "%s", ev->reason);
      if (ev->cause == HF_CAUSE_HTTP || ev->cause == HF_CAUSE_HANDSHAKE)
        print_response(a, c);
    } else if (!from_conn) {
      say(a, "%s", ev->reason);
    }
    if (*ev->diagnosis && ev->cause != HF_CAUSE_USER)
      say(a, "cause: %s", ev->diagnosis);
    if (ev->to == HF_CLIENT_WAITING) {
      char ra[48] = "";
      if (ev->retry_after_ms >= 0)
        snprintf(ra, sizeof ra, ", Retry-After %lld s",
                 (long long)(ev->retry_after_ms / 1000));
      say(a, "reconnecting in %.3f s (attempt %u: %s%s)", (double)ev->delay_ms / 1000.0,
          ev->attempt, ev->decision, ra);
    } else {
      if (ev->cause != HF_CAUSE_USER)
        say(a, "not reconnecting: %s", ev->decision);
      hf_loop_stop(a->loop);
    }
    break;
  }
  }
}

static void print_time(FILE *out) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char b[32];
  strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
  fprintf(out, "%s.%03ldZ ", b, (long)(tv.tv_usec / 1000));
}

static void on_message(hf_client *c, int op, const uint8_t *p, size_t n, void *user) {
  connect_app *a = user;
  if (a->timestamps)
    print_time(stdout);
  if (op == HF_OP_TEXT) {
    fwrite(p, 1, n, stdout);
  } else {
    for (size_t i = 0; i < n; i++)
      printf("%02x", p[i]);
  }
  fputc('\n', stdout);
  fflush(stdout);
  a->received++;
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

static void send_line(connect_app *a, char *s, size_t n) {
  if (n && s[n - 1] == '\r')
    n--;
  int op = HF_OP_TEXT;
  if (a->binary) {
    size_t o = 0;
    int hi = -1;
    for (size_t i = 0; i < n; i++) {
      if (s[i] == ' ' || s[i] == '\t' || s[i] == ':')
        continue;
      int v = hexval((unsigned char)s[i]);
      if (v < 0) {
        say(a, "not hex, not sent: %.*s", (int)(n > 40 ? 40 : n), s);
        return;
      }
      if (hi < 0) {
        hi = v;
      } else {
        s[o++] = (char)(hi << 4 | v);
        hi = -1;
      }
    }
    if (hi >= 0) {
      say(a, "odd number of hex digits, not sent");
      return;
    }
    n = o;
    op = HF_OP_BINARY;
  }
  int rc = hf_client_send(a->c, op, s, n);
  if (rc == HF_ELIMIT)
    say(a, "outgoing queue full (--queue-max): message of %zu bytes dropped", n);
  else if (rc == HF_EUTF8)
    say(a, "not valid UTF-8, not sent (use --binary for bytes)");
  else if (rc < 0 && rc != HF_ECLOSED)
    say(a, "not sent: %s", hf_strerror(rc));
}

static void stdin_eof(connect_app *a) {
  a->eof = 1;
  if (a->in_registered) {
    hf_loop_del(a->loop, &a->in);
    a->in_registered = 0;
  }
  if (a->line_len) { /* a last line without '\n' */
    send_line(a, a->line, a->line_len);
    a->line_len = 0;
  }
  hf_timer_set(a->loop, &a->check, 0);
}

/* Read what stdin has; returns 0 at EOF, 1 otherwise. */
static int read_stdin(connect_app *a) {
  for (;;) {
    if (a->line_cap - a->line_len < 4096) {
      size_t cap = a->line_cap ? a->line_cap * 2 : 65536;
      if (cap > LINE_MAX_BYTES + 4096) {
        say(a, "a line longer than %u bytes: dropped", LINE_MAX_BYTES);
        a->line_len = 0;
        continue;
      }
      char *p = realloc(a->line, cap);
      if (!p) {
        say(a, "out of memory reading stdin");
        return 0;
      }
      a->line = p;
      a->line_cap = cap;
    }
    ssize_t n = read(0, a->line + a->line_len, a->line_cap - a->line_len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return 1;
    if (n <= 0)
      return 0;
    size_t start = 0, end = a->line_len + (size_t)n;
    for (size_t i = a->line_len; i < end; i++)
      if (a->line[i] == '\n') {
        send_line(a, a->line + start, i - start);
        start = i + 1;
      }
    memmove(a->line, a->line + start, end - start);
    a->line_len = end - start;
    if (a->in_registered)
      return 1; /* level-triggered: come back when more arrives */
  }
}

static void on_stdin(hf_loop *loop, hf_io *io, uint32_t ev) {
  connect_app *a = (connect_app *)((char *)io - offsetof(connect_app, in));
  if (!read_stdin(a))
    stdin_eof(a);
}

/* After stdin ended: once open and everything is written, wait --wait,
 * then close with 1000. */
static void on_check(hf_loop *loop, hf_timer *t) {
  connect_app *a = (connect_app *)((char *)t - offsetof(connect_app, check));
  hf_client_state s = hf_client_get_state(a->c);
  if (a->closing || s == HF_CLIENT_STOPPED)
    return;
  uint64_t now = mono_ms();
  if (s == HF_CLIENT_OPEN && hf_client_queued(a->c) == 0) {
    if (!a->eof_flushed_at)
      a->eof_flushed_at = now;
    if (now - a->eof_flushed_at >= a->wait_ms || (a->count && a->received >= a->count)) {
      a->closing = 1;
      hf_client_close(a->c, 1000, "");
      return;
    }
  } else {
    a->eof_flushed_at = 0;
  }
  hf_timer_set(loop, t, 20);
}

static void on_signal(hf_loop *loop, hf_io *io, uint32_t ev) {
  connect_app *a = (connect_app *)((char *)io - offsetof(connect_app, sig));
  struct signalfd_siginfo si;
  while (read(io->fd, &si, sizeof si) == sizeof si) {
    if (++a->signals == 1 && hf_client_get_state(a->c) == HF_CLIENT_OPEN) {
      say(a, "interrupted: closing (again to stop at once)");
      a->closing = 1;
      hf_client_close(a->c, 1000, "");
    } else {
      hf_client_stop(a->c);
    }
  }
}

int connect_main(int argc, char **argv) {
  hf_client_config cfg;
  cli_lists lists;
  connect_app a;
  memset(&lists, 0, sizeof lists);
  memset(&a, 0, sizeof a);
  a.sig.fd = -1;
  int fl = -1;
  hf_client_config_init(&cfg);
  cfg.reconnect.enabled = 0;
  int rc = CLI_EXIT_USAGE;

  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i], *v;
    uint64_t u;
    int r = cli_client_option(PROG, argc, argv, &i, &cfg, &lists);
    if (r < 0)
      return CLI_EXIT_USAGE;
    if (r > 0)
      continue;
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (cli_is(arg, "-b") || cli_is(arg, "--binary")) {
      a.binary = 1;
    } else if (cli_is(arg, "-t") || cli_is(arg, "--timestamps")) {
      a.timestamps = 1;
    } else if (cli_is(arg, "-q") || cli_is(arg, "--quiet")) {
      a.quiet = 1;
    } else if (cli_is(arg, "-r") || cli_is(arg, "--reconnect")) {
      cfg.reconnect.enabled = 1;
    } else if (cli_is(arg, "--ping-interval")) {
      if (!(v = cli_value(PROG, argc, argv, &i, arg)) ||
          cli_duration(PROG, "--ping-interval", v, &u) < 0)
        return CLI_EXIT_USAGE;
      cfg.ping_interval_ms = (uint32_t)(u > 3600000 ? 3600000 : u);
    } else if (cli_is(arg, "--pong-timeout")) {
      if (!(v = cli_value(PROG, argc, argv, &i, arg)) ||
          cli_duration(PROG, "--pong-timeout", v, &u) < 0)
        return CLI_EXIT_USAGE;
      cfg.pong_timeout_ms = (uint32_t)(u < 1 ? 1 : u > 3600000 ? 3600000 : u);
    } else if (cli_is(arg, "--reconnect-min")) {
      if (!(v = cli_value(PROG, argc, argv, &i, arg)) ||
          cli_duration(PROG, "--reconnect-min", v, &u) < 0)
        return CLI_EXIT_USAGE;
      cfg.reconnect.min_ms = (uint32_t)(u < 1 ? 1 : u > 3600000 ? 3600000 : u);
    } else if (cli_is(arg, "--reconnect-max")) {
      if (!(v = cli_value(PROG, argc, argv, &i, arg)) ||
          cli_duration(PROG, "--reconnect-max", v, &u) < 0)
        return CLI_EXIT_USAGE;
      cfg.reconnect.max_ms = (uint32_t)(u < 1 ? 1 : u > 3600000 ? 3600000 : u);
    } else if (cli_is(arg, "--max-attempts")) {
      char *end;
      if (!(v = cli_value(PROG, argc, argv, &i, arg)))
        return CLI_EXIT_USAGE;
      long n = strtol(v, &end, 10);
      if (*end || end == v || n < 0 || n > 1000000) {
        fprintf(stderr, PROG ": --max-attempts %s: want 0..1000000\n", v);
        return CLI_EXIT_USAGE;
      }
      cfg.reconnect.max_attempts = (uint32_t)n;
    } else if (cli_is(arg, "-w") || cli_is(arg, "--wait")) {
      if (!(v = cli_value(PROG, argc, argv, &i, arg)) ||
          cli_duration(PROG, "--wait", v, &a.wait_ms) < 0)
        return CLI_EXIT_USAGE;
    } else if (cli_is(arg, "-n") || cli_is(arg, "--count")) {
      char *end;
      if (!(v = cli_value(PROG, argc, argv, &i, arg)))
        return CLI_EXIT_USAGE;
      unsigned long long n = strtoull(v, &end, 10);
      if (*end || end == v || *v == '-' || n < 1) {
        fprintf(stderr, PROG ": --count %s: want a number of messages, 1 or more\n", v);
        return CLI_EXIT_USAGE;
      }
      a.count = n;
    } else if (cli_is(arg, "--queue-max")) {
      if (!(v = cli_value(PROG, argc, argv, &i, arg)) ||
          cli_size(PROG, "--queue-max", v, &u) < 0)
        return CLI_EXIT_USAGE;
      cfg.queue_max = (size_t)(u < 64 ? 64 : u);
    } else if (cli_is(arg, "--max-message")) {
      if (!(v = cli_value(PROG, argc, argv, &i, arg)) ||
          cli_size(PROG, "--max-message", v, &u) < 0)
        return CLI_EXIT_USAGE;
      cfg.max_message = u < 1 ? 1 : u;
    } else if (arg[0] == '-' && arg[1]) {
      fprintf(stderr, PROG ": unknown option %s (see --help)\n", arg);
      return CLI_EXIT_USAGE;
    } else if (!cfg.url) {
      cfg.url = arg;
    } else {
      fprintf(stderr, PROG ": one URL only (got %s and %s)\n", cfg.url, arg);
      return CLI_EXIT_USAGE;
    }
  }
  if (!cfg.url) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  cfg.on_state = on_state;
  cfg.on_message = on_message;
  cfg.user = &a;
  char err[512];
  a.c = hf_client_new(&cfg, err, sizeof err);
  if (!a.c) {
    fprintf(stderr, PROG ": %s\n", err);
    return CLI_EXIT_USAGE;
  }
  signal(SIGPIPE, SIG_IGN);
  a.loop = hf_loop_new(10, 4096);
  if (!a.loop) {
    fprintf(stderr, PROG ": cannot create the event loop: %s\n", strerror(errno));
    goto out;
  }
  a.check.cb = on_check;
  /* signals: SIGINT/SIGTERM close gracefully, a second one stops */
  sigset_t ss;
  sigemptyset(&ss);
  sigaddset(&ss, SIGINT);
  sigaddset(&ss, SIGTERM);
  sigprocmask(SIG_BLOCK, &ss, NULL);
  a.sig.fd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
  a.sig.cb = on_signal;
  if (a.sig.fd >= 0)
    hf_loop_add(a.loop, &a.sig, EPOLLIN);
  /* stdin: watched when the loop can (pipes, terminals); a file or
   * /dev/null is read whole at once */
  fl = fcntl(0, F_GETFL);
  a.in.fd = 0;
  a.in.cb = on_stdin;
  if (fl >= 0 && fcntl(0, F_SETFL, fl | O_NONBLOCK) == 0 &&
      hf_loop_add(a.loop, &a.in, EPOLLIN) == 0) {
    a.in_registered = 1;
  } else {
    if (fl >= 0)
      fcntl(0, F_SETFL, fl);
    while (read_stdin(&a))
      ;
    stdin_eof(&a);
  }
  if (hf_client_attach(a.c, a.loop) < 0) {
    fprintf(stderr, PROG ": cannot attach the client to the loop\n");
    goto out;
  }
  hf_client_start(a.c);
  if (hf_client_get_state(a.c) != HF_CLIENT_STOPPED)
    hf_loop_run(a.loop);
  rc = a.have_status ? a.status : CLI_EXIT_OK;
out:
  if (a.in_registered)
    hf_loop_del(a.loop, &a.in);
  if (fl >= 0)
    fcntl(0, F_SETFL, fl);
  hf_client_free(a.c);
  if (a.sig.fd >= 0)
    close(a.sig.fd);
  if (a.loop)
    hf_loop_free(a.loop);
  free(a.line);
  return rc;
}
