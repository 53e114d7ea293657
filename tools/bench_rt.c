/* SPDX-License-Identifier: MIT */
/* `holdfast bench -m fanout|churn`: load for the real-time layer (Centrifugo
 * client protocol v2, JSON, and the server HTTP API). One thread, raw
 * level-triggered epoll, loopback only, every phase bounded by a hard
 * deadline.
 *
 *   fanout  S subscribers connect ({"connect":{..},"id":1}) and subscribe
 *           ({"subscribe":{"channel":C},"id":2}), all on one channel or, with
 *           -M channels, each on its own; then publications go out at a fixed
 *           rate through POST /api/publish (or /api/batch when several are
 *           due), one HTTP/1.1 request per connection, one request in flight
 *           (so the server sees them in order). Each publication's data is
 *           {"t":<CLOCK_MONOTONIC ns at send>,"n":<per-channel sequence>}.
 *           Reported: deliveries/s, publish-to-delivery latency, missing /
 *           duplicate / out-of-order deliveries per subscriber, server CPU and
 *           RSS, and with -S the server's syscalls per delivery (perf stat).
 *           -d 0 only subscribes and holds: server RSS per idle subscriber.
 *           With --slow N the last N subscribers are slow readers: a 4 KiB
 *           receive buffer, read at --slow-rate bytes/s; their fate (closed
 *           3008, told to recover, still there) and lag are reported apart,
 *           and the others must be unaffected (nothing missing).
 *   churn   N cycles of connect + subscribe + wait for the reply + abrupt TCP
 *           drop (no close frame), at most C in flight; reports cycles/s and
 *           the server's VmRSS at the start, after 10% of the cycles and at
 *           the end (memory must stay flat).
 *
 * Frames from the server go through libhf's parser (hf_ws_parse, client
 * side: expect_mask 0); frames to it are masked with a fresh key each. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "hf/deflate.h"
#include "hf/err.h"
#include "hf/frame.h"
#include "hf/handshake.h"
#include "hf/http.h"

#include "bench.h"
#include "bench_util.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ------------------------------------------------------------ limits */

#define NS BU_NS_PER_S
#define MAX_SUBS 100000
#define MAX_CYCLES 10000000
#define MAX_PENDING 4096
#define MAX_RATE 1000000.0
#define MAX_BATCH 1000
#define MAX_DATA 65536
#define MAX_DURATION 3600.0
#define MAX_DEADLINE 86400.0
#define MAX_MESSAGE (1u << 20) /* largest message accepted from the server */
#define RBUF_SIZE (MAX_MESSAGE + 2 * HF_FRAME_MAX_HEADER + 512 * 1024)
#define HS_MAX 8192
#define HTTP_MAX 65536
#define SETUP_TIMEOUT_NS (10 * NS) /* connect + handshake + subscribe */
#define API_TIMEOUT_NS (10 * NS)
#define CLOSE_GRACE_NS (2 * NS)
#define SETTLE_NS (200 * 1000000ull)

/* ------------------------------------------------------------ config */

enum { RT_FANOUT, RT_CHURN };
enum { DROP_MIX, DROP_RST, DROP_FIN };

/* -z: holdfast's counter of broadcast frames compressed once */
#define SHARED_SERIES "holdfast_compressed_messages_total{kind=\"shared\"}"

static struct {
  int mode;
  const char *url, *api_url, *api_key, *secret, *channel;
  bu_target ws, api;
  int per_channel; /* -M channels */
  int drop;
  long subs, cycles, pending, server_pid, size, batch;
  double rate, warmup, duration, hold, drain, deadline;
  int syscalls, json, pid_found;
  int deflate; /* -z: subscribers offer permessage-deflate */
  int protobuf; /* --protobuf: subscribers speak centrifuge-protobuf */
  int raw;      /* --raw: bare pub/sub peer: subscribed on open, bare data */
  long slow;        /* --slow: the last N subscribers read slowly */
  double slow_rate; /* --slow-rate: their bytes per second */
  char token[512];
  int transport; /* TR_WS, TR_STREAM (http_stream), TR_SSE */
} cfg;

/* Subscriber transports: WebSocket, or a streaming HTTP response whose
 * subscription comes from the token's channels claim (server-side). */
enum { TR_WS, TR_STREAM, TR_SSE };

/* ------------------------------------------------------------ connections */

enum { K_SUB, K_API };
enum {
  S_FREE = 0,
  S_CONNECTING,
  S_HANDSHAKE,  /* upgrade request sent, reading the 101 */
  S_SUBSCRIBE,  /* connect + subscribe sent, waiting for the id-2 reply */
  S_READY,      /* subscribed */
  S_CLOSING,    /* our close frame sent at the end */
  S_HTTP,       /* API request sent, reading the response */
  S_DONE,
  S_FAILED
};

typedef struct {
  int fd;
  uint8_t state, kind, ev_out, got_connect;
  uint32_t idx;     /* subscriber number = its channel in -M channels */
  uint64_t cycle;   /* churn: the cycle this slot runs */
  uint64_t t_start; /* connect() */
  char key[25];
  bu_out out; /* unsent bytes */
  uint8_t *in; /* 101 head / partial frame / HTTP response */
  uint32_t in_len, in_cap;
  uint8_t *msg; /* a fragmented message being assembled */
  uint32_t msg_len, msg_cap;
  hf_ws_parser ps;
  /* deliveries: highest n seen plus a bitmap of the 64 below it */
  uint64_t max_seen, bits, distinct;
  uint32_t dup, ooo;
  uint8_t slow, paused; /* a slow reader; reading paused until tokens refill */
  double tokens;
} rconn;

static struct {
  rconn *subs; /* fanout: cfg.subs; churn: cfg.pending slots */
  long nconns;
  rconn api;
  int ep, nsrc;
  uint8_t *rbuf;
  uint64_t rng;
  volatile sig_atomic_t stop;
  int interrupted, deadline_hit;
  uint64_t t_begin, t_deadline;
  /* setup */
  long next, started, ready, failed_setup, dropped, alive, closing;
  long scan_lo;
  uint64_t t_all_ready;
  /* publishing */
  int publishing;
  uint64_t t_pub0, t_ms, t_me;
  uint64_t pub_sent, pub_ok, pub_err, pubs_win, req_sent, req_err;
  uint32_t *chan_sent; /* -M channels: publications sent per channel */
  uint32_t req_pubs;    /* publications in the request in flight */
  uint64_t req_first;   /* seq of its first publication */
  int req_batch;
  uint64_t sched_lag_max;
  char *req_buf;
  size_t req_cap;
  /* deliveries */
  uint64_t deliveries, deliveries_win, bad, dup, ooo;
  uint64_t inflated; /* -z: compressed messages received */
  uint64_t rx_ready; /* bytes subscribers received once subscribed */
  double shared0;    /* -z: the server's shared compressions at the start */
  bu_hist lat, api_rtt, cycle_lat;
  /* slow readers */
  long slow_ended;
  uint64_t slow_deliveries, t_slow_first_end, t_slow_tick;
  bu_hist slow_lat;
  /* churn */
  long cycles_done, cycles_failed, inflight;
  long *free_slots;
  long nfree;
  long rss_mid;
  uint64_t t_last_cycle;
  /* failures */
  bu_fails fails;
} R;

/* ------------------------------------------------------------ helpers */

static uint32_t rnd32(void) { /* xorshift64* */
  R.rng ^= R.rng >> 12;
  R.rng ^= R.rng << 25;
  R.rng ^= R.rng >> 27;
  return (uint32_t)((R.rng * 0x2545F4914F6CDD1Dull) >> 32);
}

static double secs(uint64_t ns) { return (double)ns / 1e9; }

__attribute__((format(printf, 1, 2))) static void note_failure(const char *fmt,
                                                               ...) {
  va_list ap;
  va_start(ap, fmt);
  bu_vfail(&R.fails, fmt, ap);
  va_end(ap);
}

/* Decimal number right after key in p[0..n); -1 if absent. */
static int num_after(const uint8_t *p, size_t n, const char *key, size_t kl,
                     uint64_t *out) {
  const uint8_t *q = memmem(p, n, key, kl);
  if (!q)
    return -1;
  const uint8_t *e = p + n;
  q += kl;
  if (q >= e || *q < '0' || *q > '9')
    return -1;
  uint64_t v = 0;
  while (q < e && *q >= '0' && *q <= '9')
    v = v * 10 + (uint64_t)(*q++ - '0');
  *out = v;
  return 0;
}

/* Channel name of subscriber i: "C" or, with -M channels, "C.i"; churn
 * cycle i: "C<i % 100>". */
static int channel_name(char *out, size_t cap, uint64_t i) {
  if (cfg.mode == RT_CHURN)
    return snprintf(out, cap, "%s%" PRIu64, cfg.channel, i % 100);
  if (cfg.per_channel)
    return snprintf(out, cap, "%s.%" PRIu64, cfg.channel, i);
  return snprintf(out, cap, "%s", cfg.channel);
}

/* ------------------------------------------------------------ output */

static void set_events(rconn *c) {
  struct epoll_event ev = {.events = (c->paused ? 0u : EPOLLIN) | (c->ev_out ? EPOLLOUT : 0u),
                           .data.ptr = c};
  epoll_ctl(R.ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void set_out(rconn *c, int want) {
  if (c->ev_out == want || c->fd < 0)
    return;
  struct epoll_event ev = {.events = (c->paused ? 0u : EPOLLIN) | (want ? EPOLLOUT : 0u),
                           .data.ptr = c};
  epoll_ctl(R.ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->ev_out = (uint8_t)want;
}

static void conn_release(rconn *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  bu_out_free(&c->out);
  free(c->in);
  free(c->msg);
  c->in = c->msg = NULL;
  c->in_len = c->in_cap = c->msg_len = c->msg_cap = 0;
  c->ev_out = 0;
}

static void slot_done(rconn *c); /* churn: a cycle ended */

__attribute__((format(printf, 2, 3))) static void conn_fail(rconn *c,
                                                            const char *fmt, ...) {
  if (c->state == S_FAILED || c->state == S_DONE || c->state == S_FREE)
    return;
  char text[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  int closing = c->state == S_CLOSING;
  if (c->slow && c->state == S_READY) { /* an expected fate, reported apart */
    note_failure("slow reader: %s", text);
    R.slow_ended++;
    R.alive--;
    if (!R.t_slow_first_end)
      R.t_slow_first_end = bu_now_ns();
    conn_release(c);
    c->state = S_FAILED;
    return;
  }
  if (!closing)
    note_failure("%s%s", c->kind == K_API ? "api: " : "", text);
  if (c->kind == K_API) {
    R.req_err++;
    R.pub_err += R.req_pubs;
    R.req_pubs = 0;
  } else if (closing) {
    R.closing--;
  } else if (c->state == S_READY) {
    R.dropped++;
    R.alive--;
  } else {
    R.failed_setup++;
    if (cfg.mode == RT_CHURN)
      R.cycles_failed++;
  }
  conn_release(c);
  c->state = closing ? S_DONE : S_FAILED;
  if (cfg.mode == RT_CHURN && c->kind == K_SUB)
    slot_done(c);
}

/* Send what is pending. 0, or -1 if the connection failed. */
static int conn_flush(rconn *c) {
  int r = bu_out_send(&c->out, c->fd);
  if (r < 0) {
    conn_fail(c, "send: %s", strerror(errno));
    return -1;
  }
  set_out(c, r == BU_OUT_AGAIN);
  return 0;
}

/* Queue one masked client frame. */
static int ws_queue(rconn *c, int opcode, const void *p, size_t n) {
  uint8_t stack[512], *f = stack;
  size_t cap = n + HF_FRAME_MAX_HEADER;
  if (cap > sizeof stack && !(f = malloc(cap)))
    return -1;
  int r = bu_out_add(&c->out, f, bu_client_frame(f, opcode, p, n, rnd32()));
  if (f != stack)
    free(f);
  return r;
}

/* ------------------------------------------------------------ connecting */

static int open_socket(rconn *c, const bu_target *t, long src) {
  char why[128];
  /* slow readers: a small window, so the server's queue fills, not ours */
  if (bu_open_socket_rcvbuf(t, R.nsrc, src, R.ep, c, c->slow ? 4096 : 0, &c->fd, why,
                            sizeof why) < 0) {
    conn_fail(c, "%s", why);
    return -1;
  }
  c->ev_out = 1;
  return 0;
}

static void start_sub(rconn *c, uint32_t idx, uint64_t cycle) {
  memset(c, 0, sizeof *c);
  c->fd = -1;
  c->kind = K_SUB;
  c->idx = idx;
  c->cycle = cycle;
  c->state = S_CONNECTING;
  c->t_start = bu_now_ns();
  R.started++;
  c->slow = cfg.slow && cfg.mode == RT_FANOUT && idx >= (uint32_t)(cfg.subs - cfg.slow);
  open_socket(c, &cfg.ws, cfg.mode == RT_CHURN ? (long)cycle : (long)idx);
}

static int connect_error(rconn *c) {
  int err = bu_socket_error(c->fd);
  if (err)
    conn_fail(c, "connect: %s", strerror(err));
  return err;
}

/* http_stream: POST the connect command; SSE: GET with it in cf_connect. */
static void on_connected_stream(rconn *c) {
  char cmd[800], req[2400];
  int cl = snprintf(cmd, sizeof cmd, "{\"connect\":{\"token\":\"%s\"},\"id\":1}", cfg.token);
  int n;
  if (cfg.transport == TR_STREAM) {
    n = snprintf(req, sizeof req,
                 "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                 "Content-Length: %d\r\n\r\n%s",
                 cfg.ws.path, cfg.ws.authority, cl, cmd);
  } else {
    char q[1600];
    size_t o = 0;
    for (int i = 0; i < cl && o + 4 < sizeof q; i++) {
      unsigned char ch = (unsigned char)cmd[i];
      if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '-' || ch == '_' || ch == '.')
        q[o++] = (char)ch;
      else
        o += (size_t)snprintf(q + o, sizeof q - o, "%%%02X", ch);
    }
    q[o] = 0;
    n = snprintf(req, sizeof req, "GET %s?cf_connect=%s HTTP/1.1\r\nHost: %s\r\n\r\n",
                 cfg.ws.path, q, cfg.ws.authority);
  }
  if (n <= 0 || (size_t)n >= sizeof req || bu_out_add(&c->out, req, (size_t)n) < 0) {
    conn_fail(c, "cannot build the stream request");
    return;
  }
  c->state = S_HANDSHAKE;
  conn_flush(c);
}

static void on_connected_ws(rconn *c) {
  if (connect_error(c))
    return;
  if (cfg.transport != TR_WS) {
    on_connected_stream(c);
    return;
  }
  bu_ws_key(c->key, rnd32);
  char req[1400], extra[160];
  snprintf(extra, sizeof extra, "%s%s",
           cfg.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                       : "",
           cfg.protobuf ? "Sec-WebSocket-Protocol: centrifuge-protobuf\r\n" : "");
  int n = bu_upgrade_request_ext(req, sizeof req, &cfg.ws, c->key, extra);
  if (n <= 0 || (size_t)n >= sizeof req || bu_out_add(&c->out, req, (size_t)n) < 0) {
    conn_fail(c, "handshake: cannot build the request");
    return;
  }
  c->state = S_HANDSHAKE;
  conn_flush(c);
}

/* ------------------------------------------------------------ the protocol */

static void on_subscribed(rconn *c, uint64_t now);

/* --protobuf: a varint, a length-delimited field, a varint field. */
static size_t pb_varint(uint8_t *o, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    o[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  o[n++] = (uint8_t)v;
  return n;
}

static size_t pb_bytes(uint8_t *o, unsigned num, const void *p, size_t len) {
  size_t n = pb_varint(o, (uint64_t)num << 3 | 2);
  n += pb_varint(o + n, len);
  memcpy(o + n, p, len);
  return n + len;
}

/* Two delimited Commands: {id 1, connect{token}}, {id 2, subscribe{channel}}. */
static size_t pb_connect_subscribe(uint8_t *o, const char *ch) {
  uint8_t a[700], b[400], m[720];
  size_t an = pb_bytes(a, 1, cfg.token, strlen(cfg.token)); /* ConnectRequest.token */
  size_t mn = pb_varint(m, 1 << 3);                            /* Command.id = 1 */
  mn += pb_varint(m + mn, 1);
  mn += pb_bytes(m + mn, 4, a, cfg.token[0] ? an : 0); /* Command.connect */
  size_t n = pb_varint(o, mn);
  memcpy(o + n, m, mn);
  n += mn;
  size_t bn = pb_bytes(b, 1, ch, strlen(ch)); /* SubscribeRequest.channel */
  mn = pb_varint(m, 1 << 3);
  mn += pb_varint(m + mn, 2);
  mn += pb_bytes(m + mn, 5, b, bn); /* Command.subscribe */
  n += pb_varint(o + n, mn);
  memcpy(o + n, m, mn);
  return n + mn;
}

static void send_connect_subscribe(rconn *c) {
  char ch[300], m[1024];
  channel_name(ch, sizeof ch, cfg.mode == RT_CHURN ? c->cycle : c->idx);
  int n;
  if (cfg.protobuf) {
    uint8_t pb[1100];
    size_t pn = pb_connect_subscribe(pb, ch);
    if (ws_queue(c, HF_OP_BINARY, pb, pn) < 0) {
      conn_fail(c, "cannot build the connect command");
      return;
    }
    c->state = S_SUBSCRIBE;
    conn_flush(c);
    return;
  }
  if (cfg.token[0])
    n = snprintf(m, sizeof m,
                 "{\"connect\":{\"token\":\"%s\"},\"id\":1}\n"
                 "{\"subscribe\":{\"channel\":\"%s\"},\"id\":2}",
                 cfg.token, ch);
  else
    n = snprintf(m, sizeof m,
                 "{\"connect\":{},\"id\":1}\n"
                 "{\"subscribe\":{\"channel\":\"%s\"},\"id\":2}",
                 ch);
  if (n <= 0 || (size_t)n >= sizeof m || ws_queue(c, HF_OP_TEXT, m, (size_t)n) < 0) {
    conn_fail(c, "cannot build the connect command");
    return;
  }
  c->state = S_SUBSCRIBE;
  conn_flush(c);
}

/* One publication pushed to subscriber c: {"push":{"channel":..,"pub":{
 * "data":{"t":T,"n":N..}..}}}. */
static void count_delivery(rconn *c, const uint8_t *d, size_t dn, const uint8_t *chan,
                           size_t chn, uint64_t now);

static void on_publication(rconn *c, const uint8_t *p, size_t n, uint64_t now) {
  const uint8_t *d = memmem(p, n, "\"data\":", 7);
  const uint8_t *q = memmem(p, n, "\"channel\":\"", 11);
  const uint8_t *qe = q ? memchr(q + 11, '"', (size_t)(p + n - (q + 11))) : NULL;
  if (!d) {
    R.bad++;
    note_failure("bad push: %.60s", (const char *)p);
    return;
  }
  count_delivery(c, d, n - (size_t)(d - p), qe ? q + 11 : NULL, qe ? (size_t)(qe - q - 11) : 0,
                 now);
}

/* A publication's data d[0..dn) ({"t":..,"n":..}) for channel chan[0..chn)
 * (NULL: not given) delivered to c: check and count it. */
static void count_delivery(rconn *c, const uint8_t *d, size_t dn, const uint8_t *chan,
                           size_t chn, uint64_t now) {
  uint64_t t, seq;
  if (num_after(d, dn, "\"t\":", 4, &t) < 0 || num_after(d, dn, "\"n\":", 4, &seq) < 0 ||
      t > now || t < R.t_begin) {
    R.bad++;
    note_failure("bad push: %.60s", (const char *)d);
    return;
  }
  uint64_t sent = cfg.per_channel ? R.chan_sent[c->idx] : R.pub_sent;
  if (seq == 0 || seq > sent) {
    R.bad++;
    note_failure("bad push: sequence %" PRIu64 " never published", seq);
    return;
  }
  if (cfg.per_channel) { /* "channel":"C.idx" */
    char want[300];
    int wl = channel_name(want, sizeof want, c->idx);
    if (!chan || chn != (size_t)wl || memcmp(chan, want, chn) != 0) {
      R.bad++;
      note_failure("bad push: publication for another channel");
      return;
    }
  }
  if (seq > c->max_seen) {
    uint64_t d2 = seq - c->max_seen;
    c->bits = d2 >= 64 ? 1 : (c->bits << d2) | 1;
    c->max_seen = seq;
  } else {
    uint64_t d2 = c->max_seen - seq;
    if (d2 < 64 && ((c->bits >> d2) & 1)) {
      c->dup++;
      R.dup++;
      return;
    }
    if (d2 < 64)
      c->bits |= 1ull << d2;
    c->ooo++;
    R.ooo++;
  }
  c->distinct++;
  if (c->slow) {
    R.slow_deliveries++;
    bu_hist_add(&R.slow_lat, now - t);
    return;
  }
  R.deliveries++;
  if (now >= R.t_ms && now < R.t_me) {
    R.deliveries_win++;
    bu_hist_add(&R.lat, now - t);
  }
}

/* The reply to the subscribe command (id 2), in either encoding. */
static void on_subscribe_reply(rconn *c, uint64_t now) {
  if (!c->got_connect) {
    conn_fail(c, "subscribe reply before the connect reply");
    return;
  }
  if (c->state == S_SUBSCRIBE)
    on_subscribed(c, now);
}

static void on_line(rconn *c, const uint8_t *p, size_t n, uint64_t now) {
  if (n == 2 && p[0] == '{' && p[1] == '}') { /* application ping */
    if ((c->state == S_READY || c->state == S_SUBSCRIBE) && cfg.transport == TR_WS) {
      if (ws_queue(c, HF_OP_TEXT, "{}", 2) < 0)
        conn_fail(c, "out of memory");
    }
    return;
  }
  if (n > 8 && memcmp(p, "{\"push\":", 8) == 0) {
    if (memmem(p, n, "\"pub\":", 6)) {
      if (c->state != S_READY) {
        R.bad++;
        note_failure("publication before the subscribe reply");
        return;
      }
      on_publication(c, p, n, now);
    } else if (memmem(p, n, "\"unsubscribe\":", 14) ||
               memmem(p, n, "\"disconnect\":", 13)) {
      conn_fail(c, "server push: %.80s", (const char *)p);
    }
    return;
  }
  if (memmem(p, n, "\"error\":", 8)) {
    conn_fail(c, "error reply: %.*s", (int)(n > 100 ? 100 : n), (const char *)p);
    return;
  }
  uint64_t id;
  if (num_after(p, n, "\"id\":", 5, &id) < 0) {
    note_failure("unexpected reply: %.*s", (int)(n > 80 ? 80 : n), (const char *)p);
    return;
  }
  if (id == 1 && memmem(p, n, "\"connect\":", 10)) {
    c->got_connect = 1;
    if (cfg.transport != TR_WS && c->state == S_SUBSCRIBE) { /* server-side */
      if (!memmem(p, n, "\"subs\":", 7)) {
        conn_fail(c, "connect reply without the token's subscription");
        return;
      }
      on_subscribed(c, now);
    }
  } else if (id == 2 && memmem(p, n, "\"subscribe\":", 12)) {
    on_subscribe_reply(c, now);
  } else {
    note_failure("unexpected reply: %.*s", (int)(n > 80 ? 80 : n), (const char *)p);
  }
}

/* --protobuf: read a varint at *i of p[0..n); -1 if truncated. */
static int pb_get(const uint8_t *p, size_t n, size_t *i, uint64_t *v) {
  *v = 0;
  for (unsigned sh = 0; sh < 64; sh += 7) {
    if (*i >= n)
      return -1;
    uint8_t b = p[(*i)++];
    *v |= (uint64_t)(b & 0x7f) << sh;
    if (!(b & 0x80))
      return 0;
  }
  return -1;
}

/* The length-delimited field num of message p[0..n) (the first one), or
 * NULL; *ln its length. Other wire types are skipped. */
static const uint8_t *pb_field(const uint8_t *p, size_t n, unsigned num, size_t *ln,
                               uint64_t *varint_out) {
  size_t i = 0;
  uint64_t key, v;
  while (i < n && pb_get(p, n, &i, &key) == 0) {
    unsigned wt = (unsigned)(key & 7);
    if (wt == 0) {
      if (pb_get(p, n, &i, &v) < 0)
        return NULL;
      if ((key >> 3) == num && varint_out) {
        *varint_out = v;
        *ln = 0;
        return p + i;
      }
    } else if (wt == 2) {
      if (pb_get(p, n, &i, &v) < 0 || v > n - i)
        return NULL;
      if ((key >> 3) == num) {
        *ln = (size_t)v;
        return p + i;
      }
      i += (size_t)v;
    } else {
      return NULL; /* no fixed-width fields in Replies */
    }
  }
  return NULL;
}

/* One Protobuf Reply (--protobuf), as on_line does for a JSON one. */
static void on_reply_pb(rconn *c, const uint8_t *p, size_t n, uint64_t now) {
  size_t ln, pl, dl, chl;
  uint64_t id = 0;
  if (n == 0) { /* application ping: an empty Reply; the pong an empty Command */
    if (c->state == S_READY || c->state == S_SUBSCRIBE) {
      static const uint8_t pong[1] = {0}; /* length 0, no fields */
      if (ws_queue(c, HF_OP_BINARY, pong, 1) < 0)
        conn_fail(c, "out of memory");
    }
    return;
  }
  const uint8_t *push = pb_field(p, n, 4, &ln, NULL);
  if (push) {
    const uint8_t *pub = pb_field(push, ln, 4, &pl, NULL);
    if (pub) {
      if (c->state != S_READY) {
        R.bad++;
        note_failure("publication before the subscribe reply");
        return;
      }
      const uint8_t *d = pb_field(pub, pl, 4, &dl, NULL);
      const uint8_t *ch = pb_field(push, ln, 2, &chl, NULL);
      if (!d) {
        R.bad++;
        note_failure("bad Protobuf push");
        return;
      }
      count_delivery(c, d, dl, ch, ch ? chl : 0, now);
    } else if (pb_field(push, ln, 7, &pl, NULL) || pb_field(push, ln, 11, &pl, NULL)) {
      conn_fail(c, "server push: unsubscribe or disconnect");
    }
    return;
  }
  if (pb_field(p, n, 2, &ln, NULL)) {
    conn_fail(c, "error reply (Protobuf)");
    return;
  }
  pb_field(p, n, 1, &ln, &id);
  if (id == 1 && pb_field(p, n, 5, &ln, NULL)) {
    c->got_connect = 1;
  } else if (id == 2 && pb_field(p, n, 6, &ln, NULL)) {
    on_subscribe_reply(c, now);
  } else {
    note_failure("unexpected Protobuf reply (id %" PRIu64 ")", id);
  }
}

static void on_message(rconn *c, const uint8_t *p, size_t n, uint64_t now) {
  size_t off = 0;
  if (cfg.raw) { /* the message is the publication's data itself */
    if (c->state == S_READY)
      count_delivery(c, p, n, NULL, 0, now);
    return;
  }
  if (cfg.protobuf) { /* length-delimited Replies */
    while (off < n && c->state != S_FAILED && c->state != S_DONE && c->state != S_FREE) {
      uint64_t len;
      if (pb_get(p, n, &off, &len) < 0 || len > n - off) {
        conn_fail(c, "bad Protobuf length prefix from the server");
        return;
      }
      on_reply_pb(c, p + off, (size_t)len, now);
      off += (size_t)len;
    }
    return;
  }
  while (off < n && c->state != S_FAILED && c->state != S_DONE &&
         c->state != S_FREE) {
    const uint8_t *nl = memchr(p + off, '\n', n - off);
    size_t end = nl ? (size_t)(nl - p) : n;
    if (end > off)
      on_line(c, p + off, end - off, now);
    off = end + 1;
  }
}

/* Streams: whole chunks in buf[0..len); each chunk's lines go to on_line
 * (SSE: the data of "data: " lines). Returns bytes consumed, or -1. */
static ssize_t feed_chunks(rconn *c, uint8_t *buf, size_t len, uint64_t now) {
  size_t off = 0;
  while (off < len) {
    uint8_t *crlf = memmem(buf + off, len - off, "\r\n", 2);
    if (!crlf)
      break;
    char *end;
    unsigned long sz = strtoul((const char *)buf + off, &end, 16);
    if ((uint8_t *)end != crlf || sz > MAX_MESSAGE) {
      conn_fail(c, "bad chunk from the server");
      return -1;
    }
    size_t body = (size_t)(crlf + 2 - buf);
    if (body + sz + 2 > len)
      break;
    if (!sz) {
      conn_fail(c, "the server ended the stream");
      return -1;
    }
    uint8_t *p = buf + body, *e = p + sz;
    while (p < e && c->state != S_FAILED && c->state != S_FREE && c->state != S_DONE) {
      uint8_t *nl = memchr(p, '\n', (size_t)(e - p));
      uint8_t *le = nl ? nl : e;
      if (cfg.transport == TR_SSE) {
        if (le - p > 6 && memcmp(p, "data: ", 6) == 0)
          on_line(c, p + 6, (size_t)(le - p - 6), now);
      } else if (le > p) {
        on_line(c, p, (size_t)(le - p), now);
      }
      p = le + 1;
    }
    if (c->state == S_FAILED || c->state == S_DONE || c->state == S_FREE)
      return -1;
    off = body + sz + 2;
  }
  return (ssize_t)off;
}

/* Parse frames in buf[0..len). Returns bytes consumed, or -1 if c is gone. */
static ssize_t feed_frames(rconn *c, uint8_t *buf, size_t len, uint64_t now) {
  if (cfg.transport != TR_WS)
    return feed_chunks(c, buf, len, now);
  size_t off = 0;
  while (off < len) {
    hf_ws_event ev;
    size_t need = 0;
    ssize_t r = hf_ws_parse(&c->ps, buf + off, len - off, &ev, &need);
    if (r == HF_EAGAIN)
      break;
    if (r < 0) {
      conn_fail(c, "bad frame from the server: %s",
                c->ps.err_reason ? c->ps.err_reason : hf_strerror((int)r));
      return -1;
    }
    off += (size_t)r;
    if (ev.type == HF_WS_EV_DATA && ev.compressed) { /* -z: one whole frame */
      static uint8_t *zb;
      static size_t zcap;
      size_t zn = 0;
      hf_inflate *z = hf_inflate_thread();
      int zr = !z || !ev.first || !ev.fin ? HF_EPROTO : 0;
      if (!zr) {
        hf_inflate_reset(z);
        zr = hf_inflate_feed(z, ev.data, ev.len, 1, &zb, &zn, &zcap, MAX_MESSAGE);
      }
      if (zr < 0) {
        conn_fail(c, "compressed message: %s", hf_strerror(zr));
        return -1;
      }
      R.inflated++;
      ev.data = zb;
      ev.len = zn;
    }
    switch (ev.type) {
    case HF_WS_EV_DATA:
      if (ev.opcode != (cfg.protobuf ? HF_OP_BINARY : HF_OP_TEXT)) {
        conn_fail(c, cfg.protobuf ? "text message on a Protobuf connection"
                                  : "binary message from the server");
        return -1;
      }
      if (ev.first && ev.fin) {
        on_message(c, ev.data, ev.len, now);
      } else {
        if (ev.first)
          c->msg_len = 0;
        if (c->msg_len + ev.len > c->msg_cap) {
          uint32_t cap = c->msg_cap ? c->msg_cap : 1024;
          while (cap < c->msg_len + ev.len)
            cap *= 2;
          uint8_t *m = realloc(c->msg, cap);
          if (!m) {
            conn_fail(c, "out of memory");
            return -1;
          }
          c->msg = m;
          c->msg_cap = cap;
        }
        memcpy(c->msg + c->msg_len, ev.data, ev.len);
        c->msg_len += (uint32_t)ev.len;
        if (ev.fin) {
          on_message(c, c->msg, c->msg_len, now);
          if (c->state != S_FAILED && c->state != S_FREE) {
            free(c->msg);
            c->msg = NULL;
            c->msg_len = c->msg_cap = 0;
          }
        }
      }
      break;
    case HF_WS_EV_PING:
      if (c->state != S_CLOSING && ws_queue(c, HF_OP_PONG, ev.data, ev.len) < 0)
        conn_fail(c, "out of memory");
      break;
    case HF_WS_EV_PONG:
      break;
    case HF_WS_EV_CLOSE:
      if (c->state == S_CLOSING) { /* the answer to ours: wait for EOF */
        break;
      }
      conn_fail(c, "server sent close %u%s%.*s", ev.close_code,
                ev.close_reason_len ? " " : "", (int)ev.close_reason_len,
                (const char *)ev.close_reason);
      return -1;
    }
    if (c->state == S_FAILED || c->state == S_DONE || c->state == S_FREE)
      return -1;
  }
  return (ssize_t)off;
}

static int in_reserve(rconn *c, size_t want) {
  if (c->in_cap >= want)
    return 0;
  size_t cap = c->in_cap ? c->in_cap : 256;
  while (cap < want)
    cap *= 2;
  uint8_t *p = realloc(c->in, cap);
  if (!p)
    return -1;
  c->in = p;
  c->in_cap = (uint32_t)cap;
  return 0;
}

/* Parse R.rbuf[0..total) for c and keep an incomplete tail in c->in. The
 * handlers may free c->in (or all of c) meanwhile: the frames are parsed in
 * the shared buffer only. */
static void feed_rbuf(rconn *c, size_t total) {
  ssize_t used = feed_frames(c, R.rbuf, total, bu_now_ns());
  if (used < 0)
    return;
  size_t left = total - (size_t)used;
  if (left) {
    if (in_reserve(c, left) < 0) {
      conn_fail(c, "out of memory");
      return;
    }
    memcpy(c->in, R.rbuf + used, left);
  } else if (c->in_cap > 64 * 1024) {
    free(c->in);
    c->in = NULL;
    c->in_cap = 0;
  }
  c->in_len = (uint32_t)left;
  if (bu_out_pending(&c->out) && !c->ev_out)
    conn_flush(c);
}

static void read_handshake(rconn *c) {
  if (in_reserve(c, HS_MAX) < 0) {
    conn_fail(c, "out of memory");
    return;
  }
  size_t head_len;
  char why[128];
  int st = bu_read_head(c->fd, (char *)c->in, &c->in_len, HS_MAX, &head_len,
                        why, sizeof why);
  if (st != BU_HEAD_DONE) {
    if (st == BU_HEAD_ERROR)
      conn_fail(c, "%s", why);
    return;
  }
  const char *bad =
      cfg.transport != TR_WS
          ? (memcmp(c->in, "HTTP/1.1 200 ", 13) == 0 ? NULL : "stream request refused")
          : bu_check_101((const char *)c->in, head_len, c->key, 0, why, sizeof why);
  if (!bad && cfg.protobuf && !memmem(c->in, head_len, "centrifuge-protobuf", 19))
    bad = "handshake: the server did not select centrifuge-protobuf (--protobuf)";
  if (!bad && cfg.deflate && !memmem(c->in, head_len, "permessage-deflate", 18))
    bad = "handshake: the server did not accept permessage-deflate (-z; "
          "websocket.compression on?)";
  if (bad) {
    conn_fail(c, "%s: %.60s", bad, (const char *)c->in);
    return;
  }
  memset(&c->ps, 0, sizeof c->ps);
  c->ps.expect_mask = 0; /* client side: server frames are not masked */
  c->ps.max_message = MAX_MESSAGE;
  c->ps.allow_rsv1 = (uint8_t)cfg.deflate;
  size_t extra = c->in_len - head_len;
  memcpy(R.rbuf, c->in + head_len, extra); /* frames right behind the 101 */
  c->in_len = 0;
  if (cfg.transport != TR_WS)
    c->state = S_SUBSCRIBE; /* the connect command went with the request */
  else if (cfg.raw)
    on_subscribed(c, bu_now_ns()); /* the peer subscribes every socket on open */
  else
    send_connect_subscribe(c);
  if ((c->state != S_SUBSCRIBE && c->state != S_READY) || !extra)
    return;
  feed_rbuf(c, extra);
}

static void ws_read(rconn *c) {
  size_t have = c->in_len, room = RBUF_SIZE - have;
  int metered = c->slow && c->state == S_READY;
  if (metered) {
    if (c->tokens < 1) { /* out of budget: wait for the next refill */
      int err = bu_socket_error(c->fd); /* unless the server reset it */
      if (err) {
        conn_fail(c, "connection reset by the server (%s)", strerror(err));
        return;
      }
      c->paused = 1;
      set_events(c);
      return;
    }
    if (room > (size_t)c->tokens)
      room = (size_t)c->tokens;
  }
  if (have)
    memcpy(R.rbuf, c->in, have); /* the tail of an incomplete frame */
  ssize_t r = recv(c->fd, R.rbuf + have, room, 0);
  if (metered && r > 0)
    c->tokens -= (double)r;
  if (r > 0 && c->state == S_READY)
    R.rx_ready += (uint64_t)r;
  if (r == 0) {
    if (c->state == S_CLOSING) {
      R.closing--;
      conn_release(c);
      c->state = S_DONE;
      return;
    }
    conn_fail(c, "server closed TCP without a close frame");
    return;
  }
  if (r < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      conn_fail(c, "recv: %s", strerror(errno));
    return;
  }
  feed_rbuf(c, have + (size_t)r);
}

/* ------------------------------------------------------------ the API publisher */

static size_t pub_data(char *out, uint64_t t, uint64_t seq) {
  int n = sprintf(out, "{\"t\":%" PRIu64 ",\"n\":%" PRIu64, t, seq);
  if (cfg.size > n + 1) { /* pad to exactly -s bytes: ,"p":"xx..x"} */
    long pad = cfg.size - n - 8;
    if (pad >= 0) {
      memcpy(out + n, ",\"p\":\"", 6);
      n += 6;
      memset(out + n, 'x', (size_t)pad);
      n += (int)pad;
      out[n++] = '"';
    }
  }
  out[n++] = '}';
  return (size_t)n;
}

/* Build and start one request carrying k publications (k > 1: /batch). */
static void api_start(uint64_t k, uint64_t now) {
  rconn *c = &R.api;
  size_t per = (size_t)cfg.size + 400 + strlen(cfg.channel);
  size_t need = k * per + 1024;
  if (need > R.req_cap) {
    char *b = realloc(R.req_buf, need);
    if (!b) {
      note_failure("api: out of memory");
      R.stop = 1;
      return;
    }
    R.req_buf = b;
    R.req_cap = need;
  }
  char *body = R.req_buf + 1024; /* room for the head in front */
  size_t bl = 0;
  if (k > 1)
    bl += (size_t)sprintf(body, "{\"commands\":[");
  R.req_first = R.pub_sent + 1;
  for (uint64_t i = 0; i < k; i++) {
    uint64_t g = ++R.pub_sent; /* global sequence */
    uint64_t seq = g;
    uint32_t chan = 0;
    if (cfg.per_channel) {
      chan = (uint32_t)((g - 1) % (uint64_t)cfg.subs);
      seq = ++R.chan_sent[chan];
    }
    if (now >= R.t_ms && now < R.t_me)
      R.pubs_win++;
    char ch[300];
    channel_name(ch, sizeof ch, chan);
    if (k > 1)
      bl += (size_t)sprintf(body + bl, "%s{\"publish\":{", i ? "," : "");
    else
      bl += (size_t)sprintf(body + bl, "{");
    bl += (size_t)sprintf(body + bl, "\"channel\":\"%s\",\"data\":", ch);
    bl += pub_data(body + bl, now, seq);
    bl += (size_t)sprintf(body + bl, k > 1 ? "}}" : "}");
  }
  if (k > 1)
    bl += (size_t)sprintf(body + bl, "]}");
  char head[1024];
  int hl = snprintf(head, sizeof head,
                    "POST %s%s%s HTTP/1.1\r\n"
                    "Host: %s\r\n"
                    "%s%s%s"
                    "Content-Type: application/json\r\n"
                    "Content-Length: %zu\r\n"
                    "Connection: close\r\n\r\n",
                    cfg.api.path, cfg.api.path[strlen(cfg.api.path) - 1] == '/' ? "" : "/",
                    k > 1 ? "batch" : "publish", cfg.api.authority,
                    cfg.api_key ? "X-API-Key: " : "", cfg.api_key ? cfg.api_key : "",
                    cfg.api_key ? "\r\n" : "", bl);
  if (hl <= 0 || (size_t)hl >= sizeof head) {
    note_failure("api: request head too long");
    R.stop = 1;
    return;
  }
  char *req = body - hl;
  memcpy(req, head, (size_t)hl);
  memset(c, 0, sizeof *c);
  c->fd = -1;
  c->kind = K_API;
  c->state = S_CONNECTING;
  c->t_start = now;
  R.req_pubs = (uint32_t)k;
  R.req_batch = k > 1;
  R.req_sent++;
  if (bu_out_add(&c->out, req, (size_t)hl + bl) < 0) {
    conn_fail(c, "out of memory");
    return;
  }
  open_socket(c, &cfg.api, 0);
}

/* The whole response is in c->in (the server closes after it). */
static void api_done(rconn *c) {
  const char *p = (const char *)c->in;
  size_t n = c->in_len;
  const char *eoh = n ? memmem(p, n, "\r\n\r\n", 4) : NULL;
  int status = n >= 12 && strncmp(p, "HTTP/1.1 ", 9) == 0 ? atoi(p + 9) : 0;
  uint64_t now = bu_now_ns();
  bu_hist_add(&R.api_rtt, now - c->t_start);
  if (!eoh || status != 200) {
    const char *eol = n ? memchr(p, '\r', n) : NULL;
    int l = eol ? (int)(eol - p) : (int)(n > 60 ? 60 : n);
    conn_fail(c, "response %.*s", l > 60 ? 60 : l, p);
    return;
  }
  const char *b = eoh + 4;
  size_t bl = n - (size_t)(b - p);
  uint64_t errs = 0;
  for (const char *q = b; (q = memmem(q, bl - (size_t)(q - b), "\"error\"", 7)); q += 7)
    errs++;
  int shape_ok = R.req_batch ? memmem(b, bl, "\"replies\"", 9) != NULL
                             : memmem(b, bl, "\"result\"", 8) != NULL;
  if (!shape_ok && !errs)
    errs = R.req_pubs;
  if (errs) {
    note_failure("api: error reply %.*s", (int)(bl > 100 ? 100 : bl), b);
    R.req_err++;
  }
  if (errs > R.req_pubs)
    errs = R.req_pubs;
  R.pub_err += errs;
  R.pub_ok += R.req_pubs - errs;
  R.req_pubs = 0;
  conn_release(c);
  c->state = S_DONE;
}

static void api_read(rconn *c) {
  if (in_reserve(c, (size_t)c->in_len + 4096) < 0 || c->in_len > HTTP_MAX) {
    conn_fail(c, "response too large");
    return;
  }
  ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
  if (r < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      conn_fail(c, "recv: %s", strerror(errno));
    return;
  }
  if (r > 0) {
    c->in_len += (uint32_t)r;
    /* complete by Content-Length? then no need to wait for EOF */
    const char *p = (const char *)c->in;
    const char *eoh = memmem(p, c->in_len, "\r\n\r\n", 4);
    if (!eoh)
      return;
    const char *cl = memmem(p, (size_t)(eoh - p), "\r\nContent-Length:", 17);
    if (!cl)
      cl = memmem(p, (size_t)(eoh - p), "\r\ncontent-length:", 17);
    if (!cl)
      return; /* read to EOF */
    size_t want = (size_t)strtoul(cl + 17, NULL, 10);
    if ((size_t)c->in_len < (size_t)(eoh + 4 - p) + want)
      return;
  }
  api_done(c);
}

/* ------------------------------------------------------------ events */

static void dispatch(struct epoll_event *evs, int n) {
  for (int i = 0; i < n; i++) {
    rconn *c = evs[i].data.ptr;
    uint32_t e = evs[i].events;
    if (c->fd < 0)
      continue; /* closed earlier in this batch */
    if (c->state == S_CONNECTING) {
      if (!(e & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        continue;
      if (c->kind == K_API) {
        if (connect_error(c))
          continue;
        c->state = S_HTTP;
        conn_flush(c);
      } else {
        on_connected_ws(c);
      }
      continue;
    }
    if ((e & EPOLLOUT) && conn_flush(c) < 0)
      continue;
    if (!(e & (EPOLLIN | EPOLLERR | EPOLLHUP)))
      continue;
    switch (c->state) {
    case S_HANDSHAKE:
      read_handshake(c);
      break;
    case S_SUBSCRIBE:
    case S_READY:
    case S_CLOSING:
      ws_read(c);
      break;
    case S_HTTP:
      api_read(c);
      break;
    default:
      break;
    }
  }
}

static int wait_events(uint64_t until) {
  struct epoll_event evs[1024];
  uint64_t now = bu_now_ns();
  uint64_t ms = until > now ? (until - now + 999999) / 1000000 : 0;
  if (ms > 50)
    ms = 50;
  int n = epoll_wait(R.ep, evs, 1024, (int)ms);
  if (n < 0)
    return errno == EINTR ? 0 : -1;
  dispatch(evs, n);
  return 0;
}

/* ------------------------------------------------------------ results */

static bu_results RS;

typedef struct {
  uint64_t t;
  double self, server, host;
} cpu_snap;

static void snap(cpu_snap *s) {
  s->t = bu_now_ns();
  s->self = bu_self_cpu();
  s->server = cfg.server_pid > 0 ? bu_proc_cpu(cfg.server_pid) : -1;
  s->host = bu_host_cpu();
}

static double pct(double a, double b, double wall) {
  return a >= 0 && b >= 0 && wall > 0 ? 100.0 * (b - a) / wall : -1;
}

static void report_failures(void) {
  bu_fail_print(&R.fails);
  if (R.deadline_hit)
    fprintf(stderr, "holdfast bench: hard deadline (-T %g s) reached\n", cfg.deadline);
  if (R.interrupted)
    fprintf(stderr, "holdfast bench: interrupted\n");
}

/* Wait (<= max_ns) until the server used no CPU for 200 ms. */
static void server_quiesce(uint64_t max_ns) {
  if (cfg.server_pid <= 0)
    return;
  uint64_t until = bu_now_ns() + max_ns;
  double prev = bu_proc_cpu(cfg.server_pid);
  while (bu_now_ns() < until && !R.stop) {
    struct timespec ts = {0, 200 * 1000000l};
    nanosleep(&ts, NULL);
    double cur = bu_proc_cpu(cfg.server_pid);
    if (cur < 0 || cur - prev < 0.005)
      break;
    prev = cur;
  }
}

/* ------------------------------------------------------------ perf stat (-S) */

static const char *const perf_events[] = {
    "raw_syscalls:sys_enter",        "syscalls:sys_enter_sendmsg",
    "syscalls:sys_enter_sendto",     "syscalls:sys_enter_write",
    "syscalls:sys_enter_writev",     "syscalls:sys_enter_sendmmsg",
    "syscalls:sys_enter_recvfrom",   "syscalls:sys_enter_read",
    "syscalls:sys_enter_epoll_wait", "syscalls:sys_enter_accept4"};
#define N_PERF (sizeof perf_events / sizeof perf_events[0])

static struct {
  pid_t pid;
  char out[64];
  double counts[N_PERF];
  int ok;
} PF;

static void perf_start(double seconds) {
  snprintf(PF.out, sizeof PF.out, "/tmp/holdfast-bench-perf.%ld", (long)getpid());
  unlink(PF.out);
  char evs[1024] = "", pid[24], dur[32];
  for (size_t i = 0; i < N_PERF; i++)
    snprintf(evs + strlen(evs), sizeof evs - strlen(evs), "%s%s", i ? "," : "",
             perf_events[i]);
  snprintf(pid, sizeof pid, "%ld", cfg.server_pid);
  snprintf(dur, sizeof dur, "%.3f", seconds);
  PF.pid = fork();
  if (PF.pid == 0) {
    int dn = open("/dev/null", O_RDWR);
    if (dn >= 0) {
      dup2(dn, 0);
      dup2(dn, 1);
      dup2(dn, 2);
    }
    execlp("perf", "perf", "stat", "-x,", "-o", PF.out, "-e", evs, "-p", pid, "--",
           "sleep", dur, (char *)NULL);
    _exit(127);
  }
  if (PF.pid < 0)
    fprintf(stderr, "holdfast bench: -S: fork: %s\n", strerror(errno));
}

static void perf_finish(void) {
  if (PF.pid <= 0)
    return;
  int st = 0;
  uint64_t until = bu_now_ns() + 5 * NS;
  pid_t w;
  while ((w = waitpid(PF.pid, &st, WNOHANG)) == 0 && bu_now_ns() < until) {
    struct timespec ts = {0, 20 * 1000000l};
    nanosleep(&ts, NULL);
  }
  if (w == 0) {
    kill(PF.pid, SIGKILL);
    waitpid(PF.pid, &st, 0);
  }
  PF.pid = 0;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "holdfast bench: -S: perf stat failed (exit %d); is perf "
                    "installed and are syscall tracepoints readable?\n",
            WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    unlink(PF.out);
    return;
  }
  FILE *f = fopen(PF.out, "r");
  if (!f)
    return;
  char line[512];
  int seen = 0;
  while (fgets(line, sizeof line, f)) {
    char *c1 = strchr(line, ',');
    if (!c1 || line[0] == '#')
      continue;
    char *c2 = strchr(c1 + 1, ',');
    if (!c2)
      continue;
    char *name = c2 + 1, *c3 = strchr(name, ',');
    if (c3)
      *c3 = '\0';
    for (size_t i = 0; i < N_PERF; i++)
      if (strcmp(name, perf_events[i]) == 0) {
        PF.counts[i] = strtod(line, NULL); /* "<not counted>" reads as 0 */
        seen++;
      }
  }
  fclose(f);
  unlink(PF.out);
  PF.ok = seen > 0;
}

/* ------------------------------------------------------------ fanout */

static void on_subscribed(rconn *c, uint64_t now) {
  if (cfg.mode == RT_CHURN) {
    bu_hist_add(&R.cycle_lat, now - c->t_start);
    R.cycles_done++;
    R.t_last_cycle = now;
    /* drop abruptly: no close frame; RST (linger 0) or a plain FIN */
    int rst = cfg.drop == DROP_RST || (cfg.drop == DROP_MIX && (c->cycle & 1));
    if (rst) {
      struct linger lg = {1, 0};
      setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    conn_release(c);
    c->state = S_DONE;
    slot_done(c);
    return;
  }
  c->state = S_READY;
  R.ready++;
  R.alive++;
  free(c->in); /* idle subscribers hold no buffers */
  c->in = NULL;
  c->in_cap = 0;
  if (R.ready + R.failed_setup == cfg.subs)
    R.t_all_ready = now;
}

static void check_setup_timeouts(rconn *arr, long n, uint64_t now) {
  for (long i = 0; i < n; i++) {
    rconn *c = &arr[i];
    if (c->state != S_CONNECTING && c->state != S_HANDSHAKE && c->state != S_SUBSCRIBE)
      continue;
    if (now >= c->t_start + SETUP_TIMEOUT_NS)
      conn_fail(c, "%s timeout (10 s)",
                c->state == S_CONNECTING  ? "connect"
                : c->state == S_HANDSHAKE ? "handshake"
                                          : "subscribe");
  }
}

/* Slow readers: refill their byte budgets (at most 50 ms worth) and resume
 * the paused ones. */
static void slow_tick(uint64_t now) {
  if (!cfg.slow)
    return;
  double dt = R.t_slow_tick ? secs(now - R.t_slow_tick) : 0;
  R.t_slow_tick = now;
  double cap = cfg.slow_rate / 20 < 1 ? 1 : cfg.slow_rate / 20;
  for (long i = cfg.subs - cfg.slow; i < cfg.subs; i++) {
    rconn *c = &R.subs[i];
    if (c->state != S_READY)
      continue;
    c->tokens += dt * cfg.slow_rate;
    if (c->tokens > cap)
      c->tokens = cap;
    if (c->paused && c->tokens >= 1) {
      c->paused = 0;
      set_events(c);
    }
  }
}

/* Deliveries owed to, and received by, the subscribers that read at full
 * speed (slow readers are reported apart). */
static uint64_t expected_total(void) {
  uint64_t e = 0;
  for (long i = 0; i < cfg.subs; i++)
    if (R.subs[i].state == S_READY && !R.subs[i].slow)
      e += cfg.per_channel ? R.chan_sent[i] : R.pub_sent;
  return e;
}

static uint64_t distinct_total(void) {
  uint64_t d = 0;
  for (long i = 0; i < cfg.subs; i++)
    if (R.subs[i].state == S_READY && !R.subs[i].slow)
      d += R.subs[i].distinct;
  return d;
}

static void close_all(void) {
  uint8_t pl[HF_FRAME_MAX_CONTROL];
  size_t n = hf_frame_close_payload(pl, 1000, "bench done");
  R.closing = 0;
  for (long i = 0; i < R.nconns; i++) {
    rconn *c = &R.subs[i];
    if (c->state != S_READY)
      continue;
    if (cfg.transport != TR_WS) { /* a stream ends when its client closes */
      conn_release(c);
      c->state = S_DONE;
      continue;
    }
    if (ws_queue(c, HF_OP_CLOSE, pl, n) < 0)
      continue;
    c->state = S_CLOSING;
    R.closing++;
    conn_flush(c);
  }
  uint64_t until = bu_now_ns() + CLOSE_GRACE_NS;
  if (until > R.t_deadline)
    until = R.t_deadline;
  while (R.closing > 0 && !R.stop && bu_now_ns() < until)
    if (wait_events(until) < 0)
      break;
}

static int run_fanout(void) {
  enum { P_SUB, P_SETTLE, P_PUB, P_DRAIN, P_HOLD, P_END } phase = P_SUB;
  long rss0 = cfg.server_pid > 0 ? bu_proc_rss_kb(cfg.server_pid) : -1;
  if (cfg.deflate)
    R.shared0 = bu_metric(&cfg.api, SHARED_SERIES);
  long rss_sub = -1, rss_end = -1;
  cpu_snap c0 = {0}, c1 = {0};
  int have_c0 = 0, have_c1 = 0;
  uint64_t t_settle = 0, t_hold_end = 0, t_drain_end = 0, t_last_check = 0;
  uint64_t period = (uint64_t)((double)NS / cfg.rate);

  while (phase != P_END) {
    uint64_t now = bu_now_ns(), wake = now + 50 * 1000000ull;
    if (R.stop) {
      R.interrupted = 1;
      break;
    }
    if (now >= R.t_deadline) {
      R.deadline_hit = 1;
      break;
    }
    switch (phase) {
    case P_SUB:
      while (R.next < cfg.subs && R.started - R.ready - R.failed_setup < cfg.pending)
        start_sub(&R.subs[R.next], (uint32_t)R.next, 0), R.next++;
      if (now - t_last_check > 100 * 1000000ull) {
        t_last_check = now;
        long hi = R.next;
        while (R.scan_lo < hi && R.subs[R.scan_lo].state != S_CONNECTING &&
               R.subs[R.scan_lo].state != S_HANDSHAKE &&
               R.subs[R.scan_lo].state != S_SUBSCRIBE)
          R.scan_lo++;
        check_setup_timeouts(R.subs + R.scan_lo, hi - R.scan_lo, now);
      }
      if (R.next == cfg.subs && R.ready + R.failed_setup == cfg.subs) {
        if (!R.t_all_ready)
          R.t_all_ready = now;
        if (R.alive == 0) {
          phase = P_END;
          break;
        }
        phase = P_SETTLE;
        t_settle = now + SETTLE_NS;
      }
      wake = now + 5 * 1000000ull;
      break;
    case P_SETTLE:
      if (now < t_settle) {
        wake = t_settle;
        break;
      }
      rss_sub = cfg.server_pid > 0 ? bu_proc_rss_kb(cfg.server_pid) : -1;
      if (cfg.duration == 0) {
        phase = P_HOLD;
        t_hold_end = now + (uint64_t)(cfg.hold * 1e9);
        break;
      }
      phase = P_PUB;
      R.publishing = 1;
      R.t_pub0 = now;
      R.t_ms = now + (uint64_t)(cfg.warmup * 1e9);
      R.t_me = R.t_ms + (uint64_t)(cfg.duration * 1e9);
      wake = now; /* the first publication is due now */
      break;
    case P_PUB:
      if (!have_c0 && now >= R.t_ms) {
        snap(&c0);
        have_c0 = 1;
        if (cfg.syscalls && cfg.server_pid > 0)
          perf_start(cfg.duration);
      }
      if (now >= R.t_me) {
        snap(&c1);
        have_c1 = 1;
        R.publishing = 0;
        phase = P_DRAIN;
        t_drain_end = now + (uint64_t)(cfg.drain * 1e9);
        break;
      }
      if (R.api.state != S_CONNECTING && R.api.state != S_HTTP) {
        uint64_t due = (now - R.t_pub0) / period + 1; /* publications due so far */
        if (due > R.pub_sent) {
          uint64_t k = due - R.pub_sent;
          if (k > (uint64_t)cfg.batch)
            k = (uint64_t)cfg.batch;
          uint64_t t_due = R.t_pub0 + R.pub_sent * period;
          if (now - t_due > R.sched_lag_max)
            R.sched_lag_max = now - t_due;
          api_start(k, now);
        }
      } else if (now - R.api.t_start > API_TIMEOUT_NS) {
        conn_fail(&R.api, "no response within 10 s");
      }
      {
        uint64_t next_due = R.t_pub0 + R.pub_sent * period;
        int busy = R.api.state == S_CONNECTING || R.api.state == S_HTTP;
        wake = busy ? now + 50 * 1000000ull : next_due > now ? next_due : now;
        if (!have_c0 && R.t_ms < wake)
          wake = R.t_ms;
        if (R.t_me < wake)
          wake = R.t_me;
      }
      break;
    case P_DRAIN:
      if (R.api.state == S_CONNECTING || R.api.state == S_HTTP) {
        if (now - R.api.t_start > API_TIMEOUT_NS)
          conn_fail(&R.api, "no response within 10 s");
      } else if (now - t_last_check > 20 * 1000000ull) {
        t_last_check = now;
        if (distinct_total() >= expected_total())
          phase = P_END;
      }
      if (now >= t_drain_end)
        phase = P_END;
      wake = now + 20 * 1000000ull;
      break;
    case P_HOLD:
      if (now >= t_hold_end) {
        rss_end = cfg.server_pid > 0 ? bu_proc_rss_kb(cfg.server_pid) : -1;
        phase = P_END;
      }
      wake = t_hold_end;
      break;
    case P_END:
      break;
    }
    if (phase == P_END)
      break;
    if (wake > R.t_deadline)
      wake = R.t_deadline;
    if (cfg.slow && wake > now + 10 * 1000000ull)
      wake = now + 10 * 1000000ull; /* slow readers read every 10 ms */
    if (wait_events(wake) < 0) {
      perror("holdfast bench: epoll_wait");
      break;
    }
    slow_tick(bu_now_ns());
  }
  R.publishing = 0;
  if (have_c0 && !have_c1) {
    snap(&c1);
    have_c1 = 1;
  }
  perf_finish();
  if (rss_end < 0 && cfg.server_pid > 0)
    rss_end = bu_proc_rss_kb(cfg.server_pid);

  /* ---------------- report */
  uint64_t t_stop = bu_now_ns();
  double window = cfg.duration;
  if (!R.t_me)
    window = 0;
  else if (t_stop < R.t_me)
    window = t_stop > R.t_ms ? secs(t_stop - R.t_ms) : 0;
  uint64_t expected = expected_total(), distinct = distinct_total();
  uint64_t missing = expected > distinct ? expected - distinct : 0;
  long subs_missing = 0, subs_dup = 0, subs_ooo = 0;
  for (long i = 0; i < cfg.subs; i++) {
    rconn *c = &R.subs[i];
    if (c->state != S_READY || c->slow)
      continue;
    uint64_t e = cfg.per_channel ? R.chan_sent[i] : R.pub_sent;
    subs_missing += c->distinct < e;
    subs_dup += c->dup > 0;
    subs_ooo += c->ooo > 0;
  }
  double dps = window > 0 ? (double)R.deliveries_win / window : 0;
  double pps = window > 0 ? (double)R.pubs_win / window : 0;
  double p50 = (double)bu_hist_quantile(&R.lat, 0.50) / 1e3,
         p99 = (double)bu_hist_quantile(&R.lat, 0.99) / 1e3,
         p999 = (double)bu_hist_quantile(&R.lat, 0.999) / 1e3,
         pmax = (double)R.lat.max / 1e3;
  double wall = have_c1 ? secs(c1.t - c0.t) : 0;
  double cli = have_c1 ? pct(c0.self, c1.self, wall) : -1,
         srv = have_c1 ? pct(c0.server, c1.server, wall) : -1,
         host = have_c1 ? pct(c0.host, c1.host, wall) : -1;
  double other = cli >= 0 && srv >= 0 && host >= 0 ? host - cli - srv : -1;
  if (other < 0 && host >= 0 && srv >= 0)
    other = 0;
  double setup_s = R.t_all_ready ? secs(R.t_all_ready - R.t_begin) : -1;
  long failed = R.failed_setup + R.dropped;
  int ok = !R.deadline_hit && !R.interrupted && failed == 0 && R.bad == 0 &&
           R.ready == cfg.subs && missing == 0 && R.dup == 0 && R.ooo == 0 &&
           R.pub_err == 0 && R.req_err == 0 &&
           (cfg.duration == 0 || R.deliveries_win > 0);

  printf("holdfast bench: fanout %s, %ld subscriber%s on %s%s\n", cfg.url, cfg.subs,
         cfg.subs == 1 ? "" : "s", cfg.per_channel ? "one channel each: " : "channel ",
         cfg.channel);
  if (cfg.server_pid > 0)
    printf("  server    pid %ld%s\n", cfg.server_pid,
           cfg.pid_found ? " (the listener of the port, found in /proc)" : "");
  if (setup_s >= 0)
    printf("  subscribe %ld of %ld in %.3f s\n", R.ready, cfg.subs, setup_s);
  if (cfg.duration > 0) {
    printf("  publish   %.1f/s via %s (%s, at most %ld per request), %" PRIu64
           " sent, %" PRIu64 " ok, %" PRIu64 " errors; scheduling lag max %.1f ms\n",
           cfg.rate, cfg.api_url, cfg.batch > 1 ? "publish or batch" : "publish",
           cfg.batch, R.pub_sent, R.pub_ok, R.pub_err, (double)R.sched_lag_max / 1e6);
    printf("  window    warm-up %g s, measured %.3f s\n", cfg.warmup, window);
    printf("  deliver   %" PRIu64 " in the window = %.0f/s; missing %" PRIu64
           ", duplicate %" PRIu64 ", out of order %" PRIu64 ", bad %" PRIu64 "\n",
           R.deliveries_win, dps, missing, R.dup, R.ooo, R.bad);
    if (R.deliveries + R.slow_deliveries)
      printf("  wire      %s: %.1f bytes received per delivery (frames, pings and "
             "replies after subscribing included)\n", cfg.raw ? "raw" : cfg.protobuf ? "protobuf" : "json",
             (double)R.rx_ready / (double)(R.deliveries + R.slow_deliveries));
    printf("  latency   publish to delivery: p50 %.1f us, p99 %.1f us, p99.9 %.1f us, "
           "max %.1f us\n",
           p50, p99, p999, pmax);
    printf("  api       request round trip p50 %.1f us, p99 %.1f us\n",
           (double)bu_hist_quantile(&R.api_rtt, 0.5) / 1e3,
           (double)bu_hist_quantile(&R.api_rtt, 0.99) / 1e3);
    if (have_c1) {
      printf("  cpu       client %.0f%%", cli);
      if (srv >= 0)
        printf(", server %.0f%%", srv);
      if (host >= 0)
        printf(", host %.0f%% (other %.0f%%)", host, other);
      printf(" of one core\n");
    }
  }
  long slow_alive = 0;
  for (long i = cfg.subs - cfg.slow; cfg.slow && i < cfg.subs; i++)
    slow_alive += R.subs[i].state == S_READY;
  if (cfg.slow) {
    printf("  slow      %ld reader%s at %.0f B/s: %ld ended by the server", cfg.slow,
           cfg.slow == 1 ? "" : "s", cfg.slow_rate, R.slow_ended);
    if (R.t_slow_first_end && R.t_pub0)
      printf(" (the first %.2f s after publishing began)",
             R.t_slow_first_end > R.t_pub0 ? secs(R.t_slow_first_end - R.t_pub0) : 0.0);
    printf(", %ld still subscribed; %" PRIu64 " deliveries, lag p50 %.1f ms, max %.1f ms\n",
           slow_alive, R.slow_deliveries, (double)bu_hist_quantile(&R.slow_lat, 0.5) / 1e6,
           (double)R.slow_lat.max / 1e6);
    printf("  others    %ld at full speed: missing %" PRIu64 " (the slow readers must "
           "not cost them anything)\n", cfg.subs - cfg.slow, missing);
  }
  if (rss0 >= 0 && rss_sub >= 0 && R.ready > 0)
    printf("  server    RSS %ld kB before, %ld kB subscribed (%.0f bytes per "
           "subscriber), %ld kB at the end\n",
           rss0, rss_sub, (double)(rss_sub - rss0) * 1024.0 / (double)R.ready, rss_end);

  bu_res(&RS, "mode", BU_STR, "fanout");
  bu_res(&RS, "url", BU_STR, "%s", cfg.url);
  bu_res(&RS, "subs", BU_NUM, "%ld", cfg.subs);
  bu_res(&RS, "channels", BU_NUM, "%ld", cfg.per_channel ? cfg.subs : 1);
  bu_res(&RS, "token", BU_NUM, "%d", cfg.token[0] != 0);
  bu_res(&RS, "transport", BU_STR, "%s", cfg.transport == TR_WS ? "websocket"
                            : cfg.transport == TR_SSE ? "sse" : "http_stream");
  bu_res(&RS, "rate", BU_NUM, "%g", cfg.rate);
  bu_res(&RS, "batch", BU_NUM, "%ld", cfg.batch);
  bu_res(&RS, "size", BU_NUM, "%ld", cfg.size);
  bu_res(&RS, "subscribed", BU_NUM, "%ld", R.ready);
  bu_res(&RS, "alive", BU_NUM, "%ld", R.alive);
  bu_res(&RS, "failed", BU_NUM, "%ld", failed);
  bu_res(&RS, "dropped", BU_NUM, "%ld", R.dropped);
  if (setup_s >= 0)
    bu_res(&RS, "sub_s", BU_NUM, "%.2f", setup_s);
  bu_res(&RS, "duration_s", BU_NUM, "%.3f", window);
  bu_res(&RS, "pubs", BU_NUM, "%" PRIu64, R.pub_sent);
  bu_res(&RS, "pub_ok", BU_NUM, "%" PRIu64, R.pub_ok);
  bu_res(&RS, "pub_err", BU_NUM, "%" PRIu64, R.pub_err);
  bu_res(&RS, "pubs_per_s", BU_NUM, "%.1f", pps);
  bu_res(&RS, "deliveries", BU_NUM, "%" PRIu64, R.deliveries);
  bu_res(&RS, "deliveries_per_s", BU_NUM, "%.0f", dps);
  bu_res(&RS, "encoding", BU_STR, "%s", cfg.raw ? "raw" : cfg.protobuf ? "protobuf" : "json");
  if (R.deliveries + R.slow_deliveries)
    bu_res(&RS, "rx_bytes_per_delivery", BU_NUM, "%.1f",
           (double)R.rx_ready / (double)(R.deliveries + R.slow_deliveries));
  if (cfg.deflate) { /* the compress-once claim, from the server's counter */
    double s1 = bu_metric(&cfg.api, SHARED_SERIES);
    bu_res(&RS, "inflated", BU_NUM, "%" PRIu64, R.inflated);
    if (R.shared0 >= 0 && s1 >= 0 && R.pub_ok) {
      bu_res(&RS, "shared_compressions", BU_NUM, "%.0f", s1 - R.shared0);
      bu_res(&RS, "compressions_per_pub", BU_NUM, "%.3f", (s1 - R.shared0) / (double)R.pub_ok);
    }
  }
  bu_res(&RS, "p50_us", BU_NUM, "%.1f", p50);
  bu_res(&RS, "p99_us", BU_NUM, "%.1f", p99);
  bu_res(&RS, "p999_us", BU_NUM, "%.1f", p999);
  bu_res(&RS, "max_us", BU_NUM, "%.1f", pmax);
  bu_res(&RS, "missing", BU_NUM, "%" PRIu64, missing);
  bu_res(&RS, "dup", BU_NUM, "%" PRIu64, R.dup);
  bu_res(&RS, "ooo", BU_NUM, "%" PRIu64, R.ooo);
  bu_res(&RS, "bad", BU_NUM, "%" PRIu64, R.bad);
  bu_res(&RS, "subs_missing", BU_NUM, "%ld", subs_missing);
  bu_res(&RS, "subs_dup", BU_NUM, "%ld", subs_dup);
  bu_res(&RS, "subs_ooo", BU_NUM, "%ld", subs_ooo);
  bu_res(&RS, "sched_lag_max_ms", BU_NUM, "%.1f", (double)R.sched_lag_max / 1e6);
  bu_res(&RS, "api_p50_us", BU_NUM, "%.1f", (double)bu_hist_quantile(&R.api_rtt, 0.5) / 1e3);
  bu_res(&RS, "api_p99_us", BU_NUM, "%.1f", (double)bu_hist_quantile(&R.api_rtt, 0.99) / 1e3);
  if (cli >= 0)
    bu_res(&RS, "client_cpu", BU_PCT, "%.0f", cli);
  if (srv >= 0)
    bu_res(&RS, "server_cpu", BU_PCT, "%.0f", srv);
  if (host >= 0)
    bu_res(&RS, "host_cpu", BU_PCT, "%.0f", host);
  if (other >= 0)
    bu_res(&RS, "other_cpu", BU_PCT, "%.0f", other);
  if (rss0 >= 0) {
    bu_res(&RS, "rss_before_kb", BU_NUM, "%ld", rss0);
    bu_res(&RS, "rss_sub_kb", BU_NUM, "%ld", rss_sub);
    bu_res(&RS, "rss_end_kb", BU_NUM, "%ld", rss_end);
    if (rss_sub >= 0 && R.ready > 0)
      bu_res(&RS, "rss_per_sub_bytes", BU_NUM, "%.0f",
          (double)(rss_sub - rss0) * 1024.0 / (double)R.ready);
  }
  if (PF.ok && R.deliveries_win > 0) {
    double d = (double)R.deliveries_win, w = PF.counts[1] + PF.counts[2] +
                                               PF.counts[3] + PF.counts[4] +
                                               PF.counts[5];
    printf("  syscalls  per delivery (perf stat over the window): all %.3f, writes "
           "%.3f (sendmsg %.3f, sendto %.3f, write %.3f, writev %.3f), epoll_wait "
           "%.4f\n",
           PF.counts[0] / d, w / d, PF.counts[1] / d, PF.counts[2] / d,
           PF.counts[3] / d, PF.counts[4] / d, PF.counts[8] / d);
    bu_res(&RS, "syscalls_per_delivery", BU_NUM, "%.4f", PF.counts[0] / d);
    bu_res(&RS, "writes_per_delivery", BU_NUM, "%.4f", w / d);
    bu_res(&RS, "sendmsg_per_delivery", BU_NUM, "%.4f", PF.counts[1] / d);
    bu_res(&RS, "sendto_per_delivery", BU_NUM, "%.4f", PF.counts[2] / d);
    bu_res(&RS, "writev_per_delivery", BU_NUM, "%.4f", PF.counts[4] / d);
    bu_res(&RS, "epoll_wait_per_delivery", BU_NUM, "%.4f", PF.counts[8] / d);
  }
  if (cfg.slow) {
    bu_res(&RS, "slow", BU_NUM, "%ld", cfg.slow);
    bu_res(&RS, "slow_rate", BU_NUM, "%.0f", cfg.slow_rate);
    bu_res(&RS, "slow_ended", BU_NUM, "%ld", R.slow_ended);
    bu_res(&RS, "slow_alive", BU_NUM, "%ld", slow_alive);
    bu_res(&RS, "slow_deliveries", BU_NUM, "%" PRIu64, R.slow_deliveries);
    bu_res(&RS, "slow_lag_p50_ms", BU_NUM, "%.1f", (double)bu_hist_quantile(&R.slow_lat, 0.5) / 1e6);
    bu_res(&RS, "slow_lag_max_ms", BU_NUM, "%.1f", (double)R.slow_lat.max / 1e6);
    if (R.t_slow_first_end && R.t_pub0 && R.t_slow_first_end > R.t_pub0)
      bu_res(&RS, "slow_first_end_s", BU_NUM, "%.2f", secs(R.t_slow_first_end - R.t_pub0));
  }
  if (cfg.server_pid > 0)
    bu_res(&RS, "server_pid", BU_NUM, "%ld", cfg.server_pid);
  bu_res(&RS, "status", BU_STR, "%s",
      R.deadline_hit ? "deadline" : R.interrupted ? "interrupted" : ok ? "ok" : "failed");
  report_failures();
  bu_res_print(&RS, cfg.json);
  if (!R.deadline_hit && !R.interrupted)
    close_all();
  return ok ? 0 : 1;
}

/* ------------------------------------------------------------ churn */

static void slot_done(rconn *c) {
  R.inflight--;
  R.free_slots[R.nfree++] = (long)(c - R.subs);
  c->state = S_FREE;
}

static int run_churn(void) {
  long rss0 = cfg.server_pid > 0 ? bu_proc_rss_kb(cfg.server_pid) : -1;
  long rss_end = -1;
  long mark = cfg.cycles / 10 ? cfg.cycles / 10 : 1;
  uint64_t t_last_check = 0;
  cpu_snap c0, c1;
  snap(&c0);
  R.rss_mid = -1;
  for (long i = 0; i < R.nconns; i++)
    R.free_slots[R.nfree++] = R.nconns - 1 - i;
  uint64_t next_cycle = 0;
  while (1) {
    uint64_t now = bu_now_ns();
    if (R.stop) {
      R.interrupted = 1;
      break;
    }
    if (now >= R.t_deadline) {
      R.deadline_hit = 1;
      break;
    }
    while (next_cycle < (uint64_t)cfg.cycles && R.nfree > 0) {
      rconn *c = &R.subs[R.free_slots[--R.nfree]];
      R.inflight++;
      start_sub(c, 0, next_cycle++);
    }
    if (R.rss_mid < 0 && R.cycles_done + R.cycles_failed >= mark && cfg.server_pid > 0)
      R.rss_mid = bu_proc_rss_kb(cfg.server_pid);
    if (R.cycles_done + R.cycles_failed >= cfg.cycles)
      break;
    if (now - t_last_check > 100 * 1000000ull) {
      t_last_check = now;
      check_setup_timeouts(R.subs, R.nconns, now);
      continue; /* timeouts free slots: refill first */
    }
    if (wait_events(now + 100 * 1000000ull) < 0) {
      perror("holdfast bench: epoll_wait");
      break;
    }
  }
  snap(&c1);
  uint64_t t_end = R.t_last_cycle ? R.t_last_cycle : bu_now_ns();
  /* let the server finish the last drops before the final RSS sample */
  server_quiesce(3 * NS);
  if (cfg.server_pid > 0)
    rss_end = bu_proc_rss_kb(cfg.server_pid);
  for (long i = 0; i < R.nconns; i++)
    conn_release(&R.subs[i]);

  double el = secs(t_end - R.t_begin);
  double rate = el > 0 ? (double)R.cycles_done / el : 0;
  double wall = secs(c1.t - c0.t);
  double cli = pct(c0.self, c1.self, wall), srv = pct(c0.server, c1.server, wall);
  long failed = R.cycles_failed + (cfg.cycles - R.cycles_done - R.cycles_failed);
  int ok = !R.deadline_hit && !R.interrupted && failed == 0 &&
           R.cycles_done == cfg.cycles;
  printf("holdfast bench: churn %s, %ld cycles of connect + subscribe + drop (%s), "
         "at most %ld in flight\n",
         cfg.url, cfg.cycles,
         cfg.drop == DROP_RST ? "RST" : cfg.drop == DROP_FIN ? "FIN" : "FIN/RST alternating",
         cfg.pending);
  printf("  cycles    %ld done, %ld failed in %.3f s = %.0f cycles/s\n", R.cycles_done,
         failed, el, rate);
  printf("  latency   connect to subscribe reply: p50 %.1f us, p99 %.1f us, max %.1f us\n",
         (double)bu_hist_quantile(&R.cycle_lat, 0.5) / 1e3,
         (double)bu_hist_quantile(&R.cycle_lat, 0.99) / 1e3,
         (double)R.cycle_lat.max / 1e3);
  if (rss0 >= 0)
    printf("  server    VmRSS %ld kB at the start, %ld kB after %ld cycles, %ld kB at "
           "the end: %+ld kB since the 10%% mark\n",
           rss0, R.rss_mid, mark, rss_end,
           R.rss_mid >= 0 && rss_end >= 0 ? rss_end - R.rss_mid : 0);
  bu_res(&RS, "mode", BU_STR, "churn");
  bu_res(&RS, "url", BU_STR, "%s", cfg.url);
  bu_res(&RS, "cycles", BU_NUM, "%ld", R.cycles_done);
  bu_res(&RS, "requested", BU_NUM, "%ld", cfg.cycles);
  bu_res(&RS, "failed", BU_NUM, "%ld", failed);
  bu_res(&RS, "pending", BU_NUM, "%ld", cfg.pending);
  bu_res(&RS, "drop", BU_STR, "%s", cfg.drop == DROP_RST ? "rst" : cfg.drop == DROP_FIN ? "fin" : "mix");
  bu_res(&RS, "elapsed_s", BU_NUM, "%.3f", el);
  bu_res(&RS, "cycles_per_s", BU_NUM, "%.0f", rate);
  bu_res(&RS, "cycle_p50_us", BU_NUM, "%.1f", (double)bu_hist_quantile(&R.cycle_lat, 0.5) / 1e3);
  bu_res(&RS, "cycle_p99_us", BU_NUM, "%.1f", (double)bu_hist_quantile(&R.cycle_lat, 0.99) / 1e3);
  bu_res(&RS, "cycle_max_us", BU_NUM, "%.1f", (double)R.cycle_lat.max / 1e3);
  if (cli >= 0)
    bu_res(&RS, "client_cpu", BU_PCT, "%.0f", cli);
  if (srv >= 0)
    bu_res(&RS, "server_cpu", BU_PCT, "%.0f", srv);
  bu_res(&RS, "rss_start_kb", BU_NUM, "%ld", rss0);
  bu_res(&RS, "rss_mid_kb", BU_NUM, "%ld", R.rss_mid);
  bu_res(&RS, "rss_end_kb", BU_NUM, "%ld", rss_end);
  bu_res(&RS, "rss_growth_kb", BU_NUM, "%ld",
      R.rss_mid >= 0 && rss_end >= 0 ? rss_end - R.rss_mid : -1);
  if (cfg.server_pid > 0)
    bu_res(&RS, "server_pid", BU_NUM, "%ld", cfg.server_pid);
  bu_res(&RS, "status", BU_STR, "%s",
      R.deadline_hit ? "deadline" : R.interrupted ? "interrupted" : ok ? "ok" : "failed");
  report_failures();
  bu_res_print(&RS, cfg.json);
  return ok ? 0 : 1;
}

/* ------------------------------------------------------------ arguments */

static void usage(FILE *out) {
  fprintf(out,
      "usage: holdfast bench -m fanout|churn [options]\n"
      "Load for the real-time endpoint (Centrifugo client protocol v2, JSON) and\n"
      "the server API; loopback only, bounded by a hard deadline.\n"
      "\n"
      "  fanout  S subscribers connect and subscribe (one channel, or one each\n"
      "          with -M channels), then publications at a fixed rate through\n"
      "          POST API/publish (API/batch when several are due); reports\n"
      "          deliveries/s, publish-to-delivery latency, missing / duplicate /\n"
      "          out-of-order deliveries, server CPU and RSS, syscalls (-S).\n"
      "          -d 0: subscribe, hold -H s, report RSS per idle subscriber.\n"
      "  churn   N cycles of connect + subscribe (channel PREFIX<i %% 100>) + wait\n"
      "          for the reply + abrupt TCP drop without a close frame; reports\n"
      "          cycles/s and the server's VmRSS at the start, after 10%% of the\n"
      "          cycles and at the end.\n"
      "\n"
      "options [default]:\n"
      "  -u URL    real-time endpoint  [ws://127.0.0.1:8000/connection/websocket]\n"
      "  -t SECRET connect with an HS256 token {\"sub\":\"bench\"} signed with SECRET\n"
      "            [no token: the server must allow anonymous connects, e.g.\n"
      "            --client.insecure=true]\n"
      "  --transport websocket|http_stream|sse  fanout subscribers' transport\n"
      "            [websocket]; http_stream/sse: -u http://HOST:PORT/connection/<t>,\n"
      "            one channel, -t required (the token's channels claim subscribes;\n"
      "            run the server with client.ping_interval=0: no emulation pongs)\n"
      "  --channel NAME  fanout: the channel (\"NAME.i\" with -M channels) [bench];\n"
      "            churn: the prefix of \"PREFIXi\"                    [churn:]\n"
      "  -c S      fanout: subscribers, 1..100000                      [1000]\n"
      "  -M channels  fanout: every subscriber on its own channel, publications\n"
      "            round-robin over them\n"
      "  -A URL    fanout: server API prefix http://HOST:PORT/PATH\n"
      "                                               [http://127.0.0.1:8000/api]\n"
      "  -K KEY    fanout: API key (X-API-Key)          [none: --http_api.insecure]\n"
      "  -r R      fanout: publications per second, up to 1000000      [100]\n"
      "  -b N      fanout: most publications per API request (/batch if > 1)  [1]\n"
      "  -s S      fanout: pad the data to S bytes (0: {\"t\":..,\"n\":..}) [0]\n"
      "  -w W      fanout: warm-up seconds                              [1]\n"
      "  -d D      fanout: measured seconds; 0 = subscribe and hold only [5]\n"
      "  -H H      fanout -d 0: seconds to hold the subscribers         [5]\n"
      "  -G G      fanout: most seconds to wait for late deliveries     [5]\n"
      "  --protobuf  fanout/churn: subscribers speak the Protobuf encoding\n"
      "            (centrifuge-protobuf sub-protocol, length-delimited binary\n"
      "            frames); WebSocket only. Every run reports the bytes received\n"
      "            per delivery (compare with and without)\n"
      "  --raw     fanout: the server is a bare pub/sub peer (no protocol): a\n"
      "            WebSocket opened on -u is subscribed, every message is a\n"
      "            publication's data; publications still go to -A (e.g. the\n"
      "            uWebSockets peer of docs/benchmarks.md, to compare servers\n"
      "            with the same generator and load)\n"
      "  -z        fanout/churn: subscribers offer permessage-deflate and inflate\n"
      "            what arrives compressed; fanout reports the server's shared\n"
      "            compressions per publication (/metrics)\n"
      "  --slow N  fanout: the last N subscribers are slow readers (4 KiB receive\n"
      "            buffer, read at --slow-rate); reported apart: ended by the\n"
      "            server (3008 or told to recover) or still there, their lag;\n"
      "            the others must miss nothing\n"
      "  --slow-rate B  fanout: the slow readers' bytes per second      [1000]\n"
      "  -S        fanout: count the server's syscalls with perf stat over the\n"
      "            measured window (needs perf and -R or a found listener)\n"
      "  -n N      churn: cycles, 1..10000000                          [10000]\n"
      "  -C C      most connections being set up at once (churn: in flight) [64]\n"
      "  --drop mix|rst|fin  churn: how to drop: RST (SO_LINGER 0), FIN (close),\n"
      "            or alternating                                       [mix]\n"
      "  -R PID    server process for CPU and RSS   [the listener of the URL's port]\n"
      "  -T T      hard deadline in seconds   [fanout: S/500+W+D+G+H+60; churn:\n"
      "            N/200+60]\n"
      "  -j        also print the result as one JSON line\n"
      "\n"
      "Each subscriber must be connected and subscribed within 10 s. Every\n"
      "publication's data is {\"t\":<CLOCK_MONOTONIC ns>,\"n\":<sequence>}; one\n"
      "API request is in flight at a time, so publications reach the server in\n"
      "order. exit status: 0 success; 1 a failure, missing / duplicate /\n"
      "out-of-order / bad delivery, API error or the deadline; 2 usage error.\n");
}

static int parse_args(int argc, char **argv) {
  enum { O_CHANNEL = 256, O_DROP, O_SLOW, O_SLOW_RATE, O_TRANSPORT, O_PROTOBUF, O_RAW };
  static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                           {"channel", required_argument, NULL, O_CHANNEL},
                                           {"drop", required_argument, NULL, O_DROP},
                                           {"slow", required_argument, NULL, O_SLOW},
                                           {"slow-rate", required_argument, NULL, O_SLOW_RATE},
                                           {"transport", required_argument, NULL, O_TRANSPORT},
                                           {"protobuf", no_argument, NULL, O_PROTOBUF},
                                           {"raw", no_argument, NULL, O_RAW},
                                           {NULL, 0, NULL, 0}};
  char **av = calloc((size_t)argc + 2, sizeof *av);
  if (!av)
    return -1;
  static char prog[] = "holdfast bench";
  av[0] = prog;
  for (int i = 0; i < argc; i++)
    av[i + 1] = argv[i];
  int ac = argc + 1, opt, rc = 0, deadline_set = 0, channel_set = 0;
  optind = 0;
  opterr = 1;
  while (rc == 0 && (opt = getopt_long(ac, av, "m:u:t:c:M:A:K:r:b:s:w:d:H:G:Sn:C:R:T:zjh",
                                       longopts, NULL)) != -1) {
    switch (opt) {
    case 'm':
      if (strcmp(optarg, "fanout") == 0)
        cfg.mode = RT_FANOUT;
      else if (strcmp(optarg, "churn") == 0)
        cfg.mode = RT_CHURN;
      else {
        fprintf(stderr, "holdfast bench: -m %s: want fanout or churn here\n", optarg);
        rc = -1;
      }
      break;
    case 'u': cfg.url = optarg; break;
    case 't': cfg.secret = optarg; break;
    case O_CHANNEL: cfg.channel = optarg; channel_set = 1; break;
    case 'c': rc = bu_parse_long(optarg, 'c', 1, MAX_SUBS, &cfg.subs); break;
    case 'M':
      if (strcmp(optarg, "channels") != 0) {
        fprintf(stderr, "holdfast bench: -M %s: the only variant is \"channels\"\n",
                optarg);
        rc = -1;
      }
      cfg.per_channel = 1;
      break;
    case 'A': cfg.api_url = optarg; break;
    case 'K': cfg.api_key = optarg; break;
    case 'r': {
      char *end;
      errno = 0;
      cfg.rate = strtod(optarg, &end);
      if (errno || end == optarg || *end || !isfinite(cfg.rate) || cfg.rate <= 0 ||
          cfg.rate > MAX_RATE) {
        fprintf(stderr, "holdfast bench: -r %s: want publications per second, more "
                        "than 0 and at most %g\n", optarg, MAX_RATE);
        rc = -1;
      }
      break;
    }
    case 'b': rc = bu_parse_long(optarg, 'b', 1, MAX_BATCH, &cfg.batch); break;
    case 's': rc = bu_parse_long(optarg, 's', 0, MAX_DATA, &cfg.size); break;
    case 'w': rc = bu_parse_secs(optarg, 'w', 0, MAX_DURATION, 0, &cfg.warmup); break;
    case 'd': rc = bu_parse_secs(optarg, 'd', 0, MAX_DURATION, 0, &cfg.duration); break;
    case 'H': rc = bu_parse_secs(optarg, 'H', 0, MAX_DURATION, 0, &cfg.hold); break;
    case 'G': rc = bu_parse_secs(optarg, 'G', 0, MAX_DURATION, 0, &cfg.drain); break;
    case 'S': cfg.syscalls = 1; break;
    case 'z': cfg.deflate = 1; break;
    case O_PROTOBUF: cfg.protobuf = 1; break;
    case O_RAW: cfg.raw = 1; break;
    case 'n': rc = bu_parse_long(optarg, 'n', 1, MAX_CYCLES, &cfg.cycles); break;
    case 'C': rc = bu_parse_long(optarg, 'C', 1, MAX_PENDING, &cfg.pending); break;
    case O_TRANSPORT:
      if (strcmp(optarg, "websocket") == 0)
        cfg.transport = TR_WS;
      else if (strcmp(optarg, "http_stream") == 0)
        cfg.transport = TR_STREAM;
      else if (strcmp(optarg, "sse") == 0)
        cfg.transport = TR_SSE;
      else {
        fprintf(stderr, "holdfast bench: --transport %s: want websocket, http_stream or sse\n",
                optarg);
        rc = -1;
      }
      break;
    case O_DROP:
      if (strcmp(optarg, "mix") == 0)
        cfg.drop = DROP_MIX;
      else if (strcmp(optarg, "rst") == 0)
        cfg.drop = DROP_RST;
      else if (strcmp(optarg, "fin") == 0)
        cfg.drop = DROP_FIN;
      else {
        fprintf(stderr, "holdfast bench: --drop %s: want mix, rst or fin\n", optarg);
        rc = -1;
      }
      break;
    case 'R': rc = bu_parse_long(optarg, 'R', 1, 0x7fffffffl, &cfg.server_pid); break;
    case 'T':
      rc = bu_parse_secs(optarg, 'T', 0, MAX_DEADLINE, 1, &cfg.deadline);
      deadline_set = 1;
      break;
    case O_SLOW:
    case O_SLOW_RATE: {
      char *end;
      errno = 0;
      long v = strtol(optarg, &end, 10);
      if (errno || end == optarg || *end || v < 1 || v > (opt == O_SLOW ? MAX_SUBS : 1l << 30)) {
        fprintf(stderr, "holdfast bench: --%s %s: want a whole number from 1 to %ld\n",
                opt == O_SLOW ? "slow" : "slow-rate", optarg,
                opt == O_SLOW ? (long)MAX_SUBS : 1l << 30);
        rc = -1;
      } else if (opt == O_SLOW) {
        cfg.slow = v;
      } else {
        cfg.slow_rate = (double)v;
      }
      break;
    }
    case 'j': cfg.json = 1; break;
    case 'h':
      usage(stdout);
      rc = 1;
      break;
    default:
      rc = -1;
      break;
    }
  }
  if (rc == 0 && optind < ac) {
    fprintf(stderr, "holdfast bench: unexpected argument \"%s\"\n", av[optind]);
    rc = -1;
  }
  free(av);
  if (rc != 0)
    return rc;
  if (cfg.slow && (cfg.mode != RT_FANOUT || cfg.slow >= cfg.subs)) {
    fprintf(stderr, "holdfast bench: --slow N: fanout only, and fewer than -c subscribers "
                    "(some must read at full speed)\n");
    return -1;
  }
  if (!channel_set)
    cfg.channel = cfg.mode == RT_CHURN ? "churn:" : "bench";
  for (const char *s = cfg.channel; *s; s++)
    if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e || *s == '"' || *s == '\\') {
      fprintf(stderr, "holdfast bench: --channel: printable ASCII without quotes, "
                      "backslashes or spaces\n");
      return -1;
    }
  if (strlen(cfg.channel) > 200) {
    fprintf(stderr, "holdfast bench: --channel: at most 200 characters\n");
    return -1;
  }
  if (cfg.raw && (cfg.mode != RT_FANOUT || cfg.protobuf || cfg.deflate || cfg.per_channel ||
                  cfg.transport != TR_WS)) {
    fprintf(stderr, "holdfast bench: --raw: fanout on one channel over WebSocket, "
                    "without --protobuf, -z or -M\n");
    return -1;
  }
  if (cfg.protobuf && cfg.transport != TR_WS) {
    fprintf(stderr, "holdfast bench: --protobuf is for WebSocket subscribers only\n");
    return -1;
  }
  if (cfg.transport != TR_WS && (cfg.mode != RT_FANOUT || cfg.per_channel || !cfg.secret)) {
    fprintf(stderr, "holdfast bench: --transport http_stream|sse: fanout on one channel "
                    "with -t (the subscription comes from the token)\n");
    return -1;
  }
  if (bu_parse_url(&cfg.ws, cfg.url, cfg.transport == TR_WS ? "ws" : "http") < 0)
    return -1;
  if (cfg.mode == RT_FANOUT && cfg.duration > 0 &&
      bu_parse_url(&cfg.api, cfg.api_url, "http") < 0)
    return -1;
  if (cfg.api_key)
    for (const char *s = cfg.api_key; *s; s++)
      if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) {
        fprintf(stderr, "holdfast bench: -K: printable ASCII only\n");
        return -1;
      }
  if (cfg.secret) {
    char claims[300];
    snprintf(claims, sizeof claims, "{\"sub\":\"bench\",\"channels\":[\"%s\"]}", cfg.channel);
    if (!*cfg.secret ||
        (cfg.transport == TR_WS ? bu_hs256_token(cfg.secret, cfg.token, sizeof cfg.token)
                                : bu_hs256_token_claims(cfg.secret, claims, cfg.token,
                                                        sizeof cfg.token)) < 0) {
      fprintf(stderr, "holdfast bench: -t: cannot sign a token with that secret\n");
      return -1;
    }
  }
  if (!deadline_set)
    cfg.deadline = cfg.mode == RT_CHURN
                       ? (double)cfg.cycles / 200.0 + 60
                       : (double)cfg.subs / 500.0 + cfg.warmup + cfg.duration +
                             cfg.drain + (cfg.duration == 0 ? cfg.hold : 0) + 60;
  return 0;
}

static void on_signal(int sig) {
  (void)sig;
  R.stop = 1;
}

int bench_rt_main(int argc, char **argv) {
  memset(&cfg, 0, sizeof cfg);
  memset(&R, 0, sizeof R);
  memset(&PF, 0, sizeof PF);
  RS.n = 0;
  cfg.mode = RT_FANOUT;
  cfg.url = "ws://127.0.0.1:8000/connection/websocket";
  cfg.api_url = "http://127.0.0.1:8000/api";
  cfg.subs = 1000;
  cfg.cycles = 10000;
  cfg.pending = 64;
  cfg.rate = 100;
  cfg.batch = 1;
  cfg.warmup = 1;
  cfg.duration = 5;
  cfg.hold = 5;
  cfg.drain = 5;
  cfg.slow_rate = 1000;
  int r = parse_args(argc, argv);
  if (r != 0) {
    if (r < 0)
      fprintf(stderr, "(holdfast bench -m fanout --help lists the options)\n");
    return r > 0 ? 0 : 2;
  }
  R.nconns = cfg.mode == RT_CHURN ? cfg.pending : cfg.subs;
  if (bu_raise_nofile(R.nconns + 1) < 0)
    return 2;
  if (cfg.server_pid <= 0) {
    char why[160];
    cfg.server_pid = bu_find_listener(cfg.ws.dst.ss_family, cfg.ws.port, why, sizeof why);
    if (cfg.server_pid > 0)
      cfg.pid_found = 1;
    else
      fprintf(stderr, "holdfast bench: server figures omitted: %s\n", why);
  } else if (bu_proc_cpu(cfg.server_pid) < 0) {
    fprintf(stderr, "holdfast bench: -R %ld: no such process\n", cfg.server_pid);
    return 2;
  }
  if (cfg.syscalls && cfg.server_pid <= 0)
    fprintf(stderr, "holdfast bench: -S needs the server PID; no syscall counts\n");
  /* churn: FIN-closed client sockets linger in TIME_WAIT, so size the source
   * addresses for every cycle, not only those in flight */
  R.nsrc = bu_source_addresses(cfg.ws.dst.ss_family,
                               cfg.mode == RT_CHURN ? cfg.cycles : cfg.subs);
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed || !seed)
    seed = bu_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
  R.rng = seed ? seed : 1;

  int rc = 2;
  R.ep = -1;
  R.api.fd = -1;
  R.subs = calloc((size_t)R.nconns, sizeof *R.subs);
  R.rbuf = malloc(RBUF_SIZE);
  if (cfg.mode == RT_FANOUT && cfg.per_channel)
    R.chan_sent = calloc((size_t)cfg.subs, sizeof *R.chan_sent);
  if (cfg.mode == RT_CHURN)
    R.free_slots = calloc((size_t)R.nconns, sizeof *R.free_slots);
  if (!R.subs || !R.rbuf || (cfg.per_channel && cfg.mode == RT_FANOUT && !R.chan_sent) ||
      (cfg.mode == RT_CHURN && !R.free_slots)) {
    fprintf(stderr, "holdfast bench: out of memory\n");
    goto out;
  }
  for (long i = 0; i < R.nconns; i++)
    R.subs[i].fd = -1;
  R.ep = epoll_create1(EPOLL_CLOEXEC);
  if (R.ep < 0) {
    perror("holdfast bench: epoll_create1");
    goto out;
  }
  struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  signal(SIGPIPE, SIG_IGN);
  R.t_begin = bu_now_ns();
  R.t_deadline = R.t_begin + (uint64_t)(cfg.deadline * 1e9);
  rc = cfg.mode == RT_CHURN ? run_churn() : run_fanout();
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
out:
  if (PF.pid > 0) {
    kill(PF.pid, SIGKILL);
    waitpid(PF.pid, NULL, 0);
    unlink(PF.out);
  }
  if (R.subs)
    for (long i = 0; i < R.nconns; i++)
      conn_release(&R.subs[i]);
  conn_release(&R.api);
  if (R.ep >= 0)
    close(R.ep);
  free(R.subs);
  free(R.rbuf);
  free(R.chan_sent);
  free(R.free_slots);
  free(R.req_buf);
  return rc;
}
