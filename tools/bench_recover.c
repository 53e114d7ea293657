/* SPDX-License-Identifier: MIT */
/* `holdfast bench -m recover`: a reconnect storm with recovery. S
 * subscribers connect and subscribe (recoverable) to one channel with
 * history; all their TCP connections are reset at once; P publications go
 * into the channel through the server API while they are away; then all of
 * them reconnect at once (at most C connects pending) and subscribe with
 * recover + their offset and epoch. Reported: the time until every
 * subscriber has recovered exactly the P publications (checked: recovered,
 * count, consecutive offsets), server CPU over the storm, failures.
 *
 * With --refetch the same storm without recovery, the way an application
 * without it would catch up: subscribe afresh, then fetch the missed
 * publications through POST /api/history (since the old position), over a
 * pool of kept-alive HTTP connections. Same checks, same report.
 *
 * One thread, level-triggered epoll, loopback only, bounded by a deadline. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hf/err.h"
#include "hf/frame.h"

#include "bench.h"
#include "bench_util.h"

#define NS BU_NS_PER_S
#define MAX_SUBS 100000
#define MAX_MISSED 10000
#define RBUF (4u << 20)
#define HTTP_POOL_MAX 256

enum { C_FREE, C_CONNECTING, C_HANDSHAKE, C_WAIT, C_READY, C_FETCH, C_DONE, C_FAILED };

typedef struct {
  int fd;
  uint8_t state, kind; /* kind 0: subscriber, 1: API connection */
  uint32_t idx;
  char key[25];
  hf_ws_parser ps;
  uint8_t *in;
  uint32_t in_len, in_cap;
  bu_out out;
  uint64_t offset; /* subscriber: position before the cut */
  char epoch[16];
  int32_t fetching; /* API connection: the subscriber it fetches for, -1 */
} bconn;

static struct {
  bu_target ws, api;
  const char *channel, *secret, *key;
  long subs, missed, pending, pool;
  int refetch, json;
  double deadline;
  char token[512];
  int ep;
  bconn *c;     /* subscribers */
  bconn *http;  /* API pool */
  long done, failed, connecting;
  long next_connect;
  long *fetch_queue;
  int batch_status; /* HTTP status of the publish batch, 0 until answered */
  long fq_head, fq_tail;
  uint8_t *rbuf;
  uint32_t mask_seed;
  char why[256];
} B;

static uint32_t rnd(void) {
  B.mask_seed ^= B.mask_seed << 13;
  B.mask_seed ^= B.mask_seed >> 17;
  B.mask_seed ^= B.mask_seed << 5;
  return B.mask_seed;
}

/* Record the first failure as "what[: detail]" and drop c. */
static void fail(bconn *c, const char *what, const char *detail) {
  if (c->state == C_FAILED)
    return;
  if (!B.why[0])
    snprintf(B.why, sizeof B.why, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
  c->state = C_FAILED;
  if (!c->kind)
    B.failed++;
  if (c->fd >= 0) {
    close(c->fd);
    c->fd = -1;
  }
}

static void flush(bconn *c) {
  int r = bu_out_send(&c->out, c->fd);
  if (r < 0) {
    fail(c, "send", strerror(errno));
    return;
  }
  struct epoll_event ev = {.events = EPOLLIN | (r == BU_OUT_AGAIN ? EPOLLOUT : 0),
                           .data.ptr = c};
  epoll_ctl(B.ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void ws_text(bconn *c, const char *s, size_t n) {
  uint8_t *f = malloc(n + HF_FRAME_MAX_HEADER);
  if (!f || bu_out_add(&c->out, f, bu_client_frame(f, HF_OP_TEXT, s, n, rnd())) < 0)
    fail(c, "out of memory", NULL);
  free(f);
}

static void open_conn(bconn *c, const bu_target *t) {
  char why[128];
  c->fd = -1;
  c->in_len = 0;
  bu_out_free(&c->out);
  memset(&c->ps, 0, sizeof c->ps);
  c->ps.expect_mask = 0;
  c->state = C_CONNECTING;
  if (bu_open_socket(t, bu_source_addresses(t->dst.ss_family, B.subs), c->idx, B.ep, c,
                     &c->fd, why, sizeof why) < 0)
    fail(c, "socket", why);
}

/* ---- subscribers -------------------------------------------------------- */

static void send_subscribe(bconn *c, int recover) {
  char cmd[1024];
  int n;
  const char *tok = B.token[0] ? B.token : NULL;
  if (recover)
    n = snprintf(cmd, sizeof cmd,
                 "{\"connect\":{%s%s%s},\"id\":1}\n{\"subscribe\":{\"channel\":\"%s\","
                 "\"recoverable\":true,\"recover\":true,\"offset\":%llu,\"epoch\":\"%s\"},\"id\":2}",
                 tok ? "\"token\":\"" : "", tok ? tok : "", tok ? "\"" : "", B.channel,
                 (unsigned long long)c->offset, c->epoch);
  else
    n = snprintf(cmd, sizeof cmd,
                 "{\"connect\":{%s%s%s},\"id\":1}\n{\"subscribe\":{\"channel\":\"%s\","
                 "\"recoverable\":true},\"id\":2}",
                 tok ? "\"token\":\"" : "", tok ? tok : "", tok ? "\"" : "", B.channel);
  ws_text(c, cmd, (size_t)n);
}

/* The subscribe reply (id 2) of a subscriber. */
static void on_subscribed(bconn *c, json_t *res, int storm) {
  json_t *pubs = json_object_get(res, "publications");
  if (!storm) { /* the first subscribe: remember the position */
    json_t *off = json_object_get(res, "offset");
    json_t *ep = json_object_get(res, "epoch");
    if (!json_is_string(ep)) {
      fail(c, "subscribe result without a position (is the channel's namespace "
              "recoverable?)", NULL);
      return;
    }
    c->offset = json_is_integer(off) ? (uint64_t)json_integer_value(off) : 0;
    snprintf(c->epoch, sizeof c->epoch, "%s", json_string_value(ep));
    c->state = C_READY;
    B.done++;
    return;
  }
  if (B.refetch) {
    c->state = C_FETCH;
    B.fetch_queue[B.fq_tail++] = c->idx;
    return;
  }
  if (!json_is_true(json_object_get(res, "recovered"))) {
    fail(c, "not recovered", NULL);
    return;
  }
  size_t n = json_array_size(pubs);
  if ((long)n != B.missed) {
    fail(c, "recovered a wrong number of publications", NULL);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_object_get(json_array_get(pubs, i), "offset");
    if (!json_is_integer(o) || (uint64_t)json_integer_value(o) != c->offset + 1 + i) {
      fail(c, "recovered publications out of order", NULL);
      return;
    }
  }
  c->state = C_DONE;
  B.done++;
  close(c->fd);
  c->fd = -1;
}

static void on_line(bconn *c, const char *p, size_t n, int storm) {
  json_error_t je;
  json_t *o = json_loadb(p, n, 0, &je);
  if (!o) {
    fail(c, "reply is not JSON", NULL);
    return;
  }
  json_t *id = json_object_get(o, "id");
  if (json_object_get(o, "error")) {
    char *t = json_dumps(o, JSON_COMPACT);
    fail(c, "error reply", t);
    free(t);
  } else if (json_is_integer(id) && json_integer_value(id) == 2) {
    on_subscribed(c, json_object_get(o, "subscribe"), storm);
  }
  json_decref(o);
}

static void ws_input(bconn *c, int storm) {
  size_t off = 0;
  while (off < c->in_len && c->state != C_FAILED && c->state != C_DONE) {
    hf_ws_event ev;
    ssize_t r = hf_ws_parse(&c->ps, c->in + off, c->in_len - off, &ev, NULL);
    if (r == HF_EAGAIN)
      break;
    if (r < 0 || ev.type == HF_WS_EV_CLOSE) {
      fail(c, "bad frame or close from the server", NULL);
      return;
    }
    off += (size_t)r;
    if (ev.type == HF_WS_EV_DATA && ev.first && ev.fin) {
      const char *p = (const char *)ev.data, *end = p + ev.len;
      while (p < end && c->state != C_FAILED && c->state != C_DONE) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        if (e > p && !(e - p == 2 && p[0] == '{' && p[1] == '}'))
          on_line(c, p, (size_t)(e - p), storm);
        p = e + 1;
      }
    } else if (ev.type == HF_WS_EV_DATA) {
      fail(c, "fragmented message (not expected)", NULL);
      return;
    }
  }
  if (c->state == C_FAILED || c->state == C_DONE)
    return;
  memmove(c->in, c->in + off, c->in_len - off);
  c->in_len -= (uint32_t)off;
}

static int read_into(bconn *c) {
  for (;;) {
    if (c->in_cap - c->in_len < 65536) {
      uint32_t cap = c->in_cap ? c->in_cap * 2 : 65536;
      uint8_t *p = realloc(c->in, cap);
      if (!p)
        return -1;
      c->in = p;
      c->in_cap = cap;
    }
    ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (r > 0) {
      c->in_len += (uint32_t)r;
      continue;
    }
    if (r < 0 && errno == EAGAIN)
      return 0;
    return -1; /* EOF or error */
  }
}

static void sub_event(bconn *c, uint32_t ev, int storm) {
  if (c->state == C_CONNECTING) {
    if (!(ev & EPOLLOUT))
      return;
    int err = bu_socket_error(c->fd);
    if (err) {
      fail(c, "connect", strerror(err));
      return;
    }
    B.connecting--;
    char req[2048];
    bu_ws_key(c->key, rnd);
    int n = bu_upgrade_request(req, sizeof req, &B.ws, c->key);
    c->state = C_HANDSHAKE;
    if (bu_out_add(&c->out, req, (size_t)n) < 0) {
      fail(c, "out of memory", NULL);
      return;
    }
    flush(c);
    return;
  }
  if (ev & EPOLLOUT)
    flush(c);
  if (c->state == C_FAILED || !(ev & (EPOLLIN | EPOLLHUP | EPOLLERR)))
    return;
  if (read_into(c) < 0 && c->state != C_DONE) {
    fail(c, "the server closed the connection", NULL);
    return;
  }
  if (c->state == C_HANDSHAKE) {
    const char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end)
      return;
    size_t hl = (size_t)(end - (const char *)c->in) + 4;
    char why[128];
    if (bu_check_101((const char *)c->in, hl, c->key, 1, why, sizeof why)) {
      fail(c, "upgrade refused", why);
      return;
    }
    memmove(c->in, c->in + hl, c->in_len - hl);
    c->in_len -= (uint32_t)hl;
    c->state = C_WAIT;
    send_subscribe(c, storm && !B.refetch);
    flush(c);
  }
  if (c->state == C_WAIT || c->state == C_READY || c->state == C_FETCH)
    ws_input(c, storm);
}

/* ---- the server API ------------------------------------------------------- */

static int http_post(bconn *h, const char *method, const char *body, size_t n) {
  char head[512];
  int hl = snprintf(head, sizeof head,
                    "POST %s/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                    "%s%s%sContent-Length: %zu\r\n\r\n",
                    B.api.path, method, B.api.authority, B.key ? "X-API-Key: " : "",
                    B.key ? B.key : "", B.key ? "\r\n" : "", n);
  if (bu_out_add(&h->out, head, (size_t)hl) < 0 || bu_out_add(&h->out, body, n) < 0)
    return -1;
  flush(h);
  return 0;
}

/* A whole response in h->in? Returns its body (NUL-terminated in place) or
 * NULL; *status gets the HTTP status. */
static char *http_response(bconn *h, int *status, size_t *total) {
  const char *end = memmem(h->in, h->in_len, "\r\n\r\n", 4);
  if (!end)
    return NULL;
  size_t hl = (size_t)(end - (const char *)h->in) + 4;
  const char *cl = memmem(h->in, hl, "Content-Length:", 15);
  if (!cl)
    cl = memmem(h->in, hl, "content-length:", 15);
  size_t blen = cl ? strtoul(cl + 15, NULL, 10) : 0;
  if (h->in_len < hl + blen)
    return NULL;
  *status = atoi((const char *)h->in + 9);
  *total = hl + blen;
  return (char *)h->in + hl;
}

static void api_fetch_next(bconn *h) {
  if (B.fq_head == B.fq_tail) {
    h->fetching = -1;
    return;
  }
  bconn *c = &B.c[B.fetch_queue[B.fq_head++]];
  h->fetching = (int32_t)c->idx;
  char body[512];
  int n = snprintf(body, sizeof body,
                   "{\"channel\":\"%s\",\"limit\":%ld,\"since\":{\"offset\":%llu,\"epoch\":\"%s\"}}",
                   B.channel, B.missed, (unsigned long long)c->offset, c->epoch);
  if (http_post(h, "history", body, (size_t)n) < 0)
    fail(h, "out of memory", NULL);
}

static void api_event(bconn *h, uint32_t ev) {
  if (h->state == C_CONNECTING) {
    if (!(ev & EPOLLOUT))
      return;
    if (bu_socket_error(h->fd)) {
      fail(h, "API connect failed", NULL);
      return;
    }
    h->state = C_READY;
    flush(h);
    return;
  }
  if (ev & EPOLLOUT)
    flush(h);
  if (!(ev & EPOLLIN) || h->state == C_FAILED)
    return;
  if (read_into(h) < 0) {
    fail(h, "the API connection closed", NULL);
    return;
  }
  int status;
  size_t total;
  char *body;
  while ((body = http_response(h, &status, &total))) {
    char save = h->in[total];
    h->in[total] = 0;
    json_error_t je;
    json_t *o = status == 200 ? json_loads(body, 0, &je) : NULL;
    h->in[total] = (uint8_t)save;
    json_t *pubs = json_object_get(json_object_get(o, "result"), "publications");
    if (h->fetching == -2) { /* the publish batch */
      B.batch_status = status;
      h->fetching = -1;
      json_decref(o);
      memmove(h->in, h->in + total, h->in_len - total);
      h->in_len -= (uint32_t)total;
      continue;
    }
    if (h->fetching >= 0) {
      bconn *c = &B.c[h->fetching];
      if ((long)json_array_size(pubs) == B.missed &&
          (uint64_t)json_integer_value(json_object_get(json_array_get(pubs, 0), "offset")) ==
              c->offset + 1) {
        c->state = C_DONE;
        B.done++;
        close(c->fd);
        c->fd = -1;
      } else {
        fail(c, "history did not return the missed publications", NULL);
      }
    }
    json_decref(o);
    memmove(h->in, h->in + total, h->in_len - total);
    h->in_len -= (uint32_t)total;
    api_fetch_next(h);
  }
}

/* ---- phases ------------------------------------------------------------------- */

static void dispatch(int timeout_ms, int storm) {
  struct epoll_event evs[256];
  int n = epoll_wait(B.ep, evs, 256, timeout_ms);
  for (int i = 0; i < n; i++) {
    bconn *c = evs[i].data.ptr;
    if (c->state == C_FAILED || c->fd < 0)
      continue;
    if (c->kind)
      api_event(c, evs[i].events);
    else
      sub_event(c, evs[i].events, storm);
  }
}

/* Connect every subscriber (at most B.pending connects at once) and run
 * until each is done or failed, or the deadline. */
static int run_phase(int storm, uint64_t deadline) {
  B.done = B.failed = B.connecting = 0;
  B.next_connect = 0;
  while (B.done + B.failed < B.subs) {
    while (B.next_connect < B.subs && B.connecting < B.pending) {
      bconn *c = &B.c[B.next_connect++];
      open_conn(c, &B.ws);
      if (c->state != C_FAILED)
        B.connecting++;
    }
    if (B.refetch && storm)
      for (long k = 0; k < B.pool; k++)
        if (B.http[k].state == C_READY && B.http[k].fetching < 0)
          api_fetch_next(&B.http[k]);
    if (bu_now_ns() > deadline)
      return -1;
    dispatch(50, storm);
  }
  return 0;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: holdfast bench -m recover [options]\n"
          "A reconnect storm with recovery: S subscribers on one channel with history\n"
          "are cut at once, P publications go out meanwhile, all reconnect at once\n"
          "and recover them. Reports the time until all recovered and server CPU.\n\n"
          "  -u URL    real-time endpoint  [ws://127.0.0.1:8000/connection/websocket]\n"
          "  -A URL    server API prefix   [http://127.0.0.1:8000/api]\n"
          "  -K KEY    API key             [none]\n"
          "  -t SECRET HS256 connection tokens signed with SECRET [anonymous]\n"
          "  --channel NAME  a channel whose namespace keeps history and allows\n"
          "            recovery                                 [bench:recover]\n"
          "  -c S      subscribers, 1..100000                    [10000]\n"
          "  -p P      publications missed by each, 1..10000      [100]\n"
          "  -C C      most connects pending at once              [1000]\n"
          "  --refetch no recovery: subscribe afresh, then POST API/history for the\n"
          "            missed publications (over -P kept-alive connections [32])\n"
          "  -R PID    server process for CPU  [the listener of the URL's port]\n"
          "  -T T      hard deadline in seconds                   [120]\n"
          "  -j        also print the result as one JSON line\n"
          "exit status: 0 every subscriber caught up exactly; 1 failure or deadline;\n"
          "2 usage error.\n");
}

int bench_recover_main(int argc, char **argv) {
  memset(&B, 0, sizeof B);
  const char *url = "ws://127.0.0.1:8000/connection/websocket";
  const char *api = "http://127.0.0.1:8000/api";
  B.channel = "bench:recover";
  B.subs = 10000;
  B.missed = 100;
  B.pending = 1000;
  B.pool = 32;
  B.deadline = 120;
  long pid = 0;
  static const struct option lopts[] = {{"channel", required_argument, 0, 1},
                                        {"refetch", no_argument, 0, 2},
                                        {"help", no_argument, 0, 'h'},
                                        {0, 0, 0, 0}};
  /* argv holds the options only (after "holdfast bench"): getopt wants a
   * program name first */
  char **av = calloc((size_t)argc + 2, sizeof *av);
  if (!av)
    return 1;
  static char prog[] = "holdfast bench";
  av[0] = prog;
  for (int i = 0; i < argc; i++)
    av[i + 1] = argv[i];
  int ac = argc + 1, o;
  optind = 0; /* full re-initialisation (glibc) */
  while ((o = getopt_long(ac, av, "m:u:A:K:t:c:p:C:P:R:T:jh", lopts, NULL)) != -1) {
    switch (o) {
    case 'm': break;
    case 'u': url = optarg; break;
    case 'A': api = optarg; break;
    case 'K': B.key = optarg; break;
    case 't': B.secret = optarg; break;
    case 1: B.channel = optarg; break;
    case 2: B.refetch = 1; break;
    case 'j': B.json = 1; break;
    case 'c': if (bu_parse_long(optarg, 'c', 1, MAX_SUBS, &B.subs) < 0) { free(av); return 2; } break;
    case 'p': if (bu_parse_long(optarg, 'p', 1, MAX_MISSED, &B.missed) < 0) { free(av); return 2; } break;
    case 'C': if (bu_parse_long(optarg, 'C', 1, 100000, &B.pending) < 0) { free(av); return 2; } break;
    case 'P': if (bu_parse_long(optarg, 'P', 1, HTTP_POOL_MAX, &B.pool) < 0) { free(av); return 2; } break;
    case 'R': if (bu_parse_long(optarg, 'R', 1, 1 << 22, &pid) < 0) { free(av); return 2; } break;
    case 'T': if (bu_parse_secs(optarg, 'T', 1, 3600, 0, &B.deadline) < 0) { free(av); return 2; } break;
    case 'h': usage(stdout); free(av); return 0;
    default: usage(stderr); free(av); return 2;
    }
  }
  if (optind < ac) {
    fprintf(stderr, "holdfast bench: unexpected argument \"%s\"\n", av[optind]);
    free(av);
    return 2;
  }
  free(av);
  if (bu_parse_url(&B.ws, url, "ws") < 0 || bu_parse_url(&B.api, api, "http") < 0)
    return 2;
  if (strchr(B.channel, '"') || strchr(B.channel, '\\')) {
    fprintf(stderr, "bench: --channel must not contain quotes or backslashes\n");
    return 2;
  }
  if (B.secret && bu_hs256_token(B.secret, B.token, sizeof B.token) < 0)
    return 2;
  if (bu_raise_nofile(B.subs + B.pool) < 0)
    return 2;
  if (!pid) {
    char why[128];
    pid = bu_find_listener(B.ws.dst.ss_family, B.ws.port, why, sizeof why);
  }
  B.mask_seed = (uint32_t)bu_now_ns() | 1;
  B.ep = epoll_create1(EPOLL_CLOEXEC);
  B.c = calloc((size_t)B.subs, sizeof *B.c);
  B.http = calloc((size_t)B.pool, sizeof *B.http);
  B.fetch_queue = calloc((size_t)B.subs, sizeof *B.fetch_queue);
  if (B.ep < 0 || !B.c || !B.http || !B.fetch_queue)
    return 1;
  for (long i = 0; i < B.subs; i++) {
    B.c[i].idx = (uint32_t)i;
    B.c[i].fd = -1;
  }
  uint64_t deadline = bu_now_ns() + (uint64_t)(B.deadline * NS);
  int rc = 1;
  /* 1: everyone subscribes and learns its position */
  if (run_phase(0, deadline) < 0 || B.failed) {
    fprintf(stderr, "bench: setup: %ld of %ld subscribed; %s\n", B.done, B.subs,
            B.why[0] ? B.why : "deadline");
    goto out;
  }
  /* 2: every connection reset at once */
  for (long i = 0; i < B.subs; i++) {
    struct linger lg = {1, 0};
    setsockopt(B.c[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(B.c[i].fd);
    B.c[i].fd = -1;
    free(B.c[i].in);
    B.c[i].in = NULL;
    B.c[i].in_len = B.c[i].in_cap = 0;
  }
  /* 3: P publications while they are away (one batch on one API connection) */
  bconn *h = &B.http[0];
  for (long k = 0; k < B.pool; k++) {
    B.http[k].kind = 1;
    B.http[k].fetching = -1;
    B.http[k].idx = (uint32_t)k;
    open_conn(&B.http[k], &B.api);
  }
  {
    size_t cap = (size_t)B.missed * (strlen(B.channel) + 64) + 64, n = 0;
    char *body = malloc(cap);
    if (!body)
      goto out;
    n += (size_t)snprintf(body + n, cap - n, "{\"commands\":[");
    for (long i = 0; i < B.missed; i++)
      n += (size_t)snprintf(body + n, cap - n, "%s{\"publish\":{\"channel\":\"%s\",\"data\":{\"n\":%ld}}}",
                            i ? "," : "", B.channel, i);
    n += (size_t)snprintf(body + n, cap - n, "]}");
    while (h->state == C_CONNECTING && bu_now_ns() < deadline)
      dispatch(50, 0);
    if (h->state != C_READY || http_post(h, "batch", body, n) < 0) {
      free(body);
      fprintf(stderr, "bench: cannot reach the server API: %s\n", B.why);
      goto out;
    }
    free(body);
    h->fetching = -2; /* the batch: wait for its answer */
    while (!B.batch_status && h->state != C_FAILED && bu_now_ns() < deadline)
      dispatch(50, 0);
    if (B.batch_status != 200) {
      fprintf(stderr, "bench: the publish batch failed (HTTP %d) %s\n", B.batch_status, B.why);
      goto out;
    }
  }
  /* 4: the storm */
  double cpu0 = pid ? bu_proc_cpu(pid) : -1;
  uint64_t t0 = bu_now_ns();
  for (long i = 0; i < B.subs; i++)
    B.c[i].state = C_FREE;
  int r = run_phase(1, deadline);
  double wall = (double)(bu_now_ns() - t0) / NS;
  double cpu = pid && cpu0 >= 0 ? bu_proc_cpu(pid) - cpu0 : -1;
  static bu_results rs; /* large: off the stack */
  rs.n = 0;
  bu_res(&rs, "mode", BU_STR, "recover");
  if (B.refetch)
    bu_res(&rs, "refetch", BU_STR, "api_history");
  bu_res(&rs, "subscribers", BU_NUM, "%ld", B.subs);
  bu_res(&rs, "missed", BU_NUM, "%ld", B.missed);
  bu_res(&rs, "caught_up", BU_NUM, "%ld", B.done);
  bu_res(&rs, "failed", BU_NUM, "%ld", B.failed);
  bu_res(&rs, "elapsed_s", BU_NUM, "%.3f", wall);
  bu_res(&rs, "per_s", BU_NUM, "%.0f", wall > 0 ? (double)B.done / wall : 0);
  bu_res(&rs, "server_cpu_s", BU_NUM, "%.3f", cpu);
  bu_res(&rs, "status", BU_STR, "%s", r < 0 ? "deadline" : B.failed ? "failed" : "ok");
  if (B.why[0])
    bu_res(&rs, "first_failure", BU_STR, "%s", B.why);
  bu_res_print(&rs, B.json);
  rc = r < 0 || B.failed ? 1 : 0;
out:
  for (long i = 0; i < B.subs; i++) {
    if (B.c[i].fd >= 0)
      close(B.c[i].fd);
    free(B.c[i].in);
    bu_out_free(&B.c[i].out);
  }
  for (long k = 0; k < B.pool; k++) {
    if (B.http[k].fd >= 0)
      close(B.http[k].fd);
    free(B.http[k].in);
    bu_out_free(&B.http[k].out);
  }
  free(B.c);
  free(B.http);
  free(B.fetch_queue);
  close(B.ep);
  return rc;
}
