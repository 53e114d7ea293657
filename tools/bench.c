/* SPDX-License-Identifier: MIT */
/* `holdfast bench`: a bounded, loopback-only WebSocket load generator built
 * on libhf (frame header writer, masking, the client-side frame parser and
 * Sec-WebSocket-Accept). One thread, raw level-triggered epoll. Modes:
 *   echo   N connections keep exactly K messages in flight each: echoes/s,
 *          MB/s, send-to-echo latency percentiles, client/server/host CPU;
 *   storm  N handshakes, at most C pending: handshakes/s and their latency;
 *   idle   N open connections held H seconds: server RSS per connection.
 * The method is the team's reference one (../shared/bench/README.md).
 *
 * wss:// URLs run the same modes over TLS (hf_tls client role, without
 * certificate verification: a loopback load generator); the handshake
 * figures then include the TLS handshake and idle mode measures the
 * server's memory per idle TLS connection.
 *
 * Output is generated lazily: a connection stores only how many messages it
 * still owes, the unsent tail of a partly sent frame (its timestamp, mask
 * and offset, from which the bytes are regenerated) and a few control
 * bytes, so a slow server cannot make the client buffer N*K*S bytes. */
#include <arpa/inet.h>
#include <dirent.h>
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hf/deflate.h"
#include "hf/err.h"
#include "hf/frame.h"
#include "hf/handshake.h"
#include "hf/http.h"
#include "hf/tls.h"

#include "bench.h"
#include "bench_util.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ------------------------------------------------------------ limits */

#define MAX_CONNS 100000
#define MAX_INFLIGHT 4096
#define MAX_SIZE (16l << 20)
#define MAX_DURATION 3600.0
#define MAX_DEADLINE 86400.0
#define TS_LEN 16 /* hex CLOCK_MONOTONIC ns at the start of every payload */
#define HS_TIMEOUT_NS (10 * BU_NS_PER_S) /* connect + handshake, per connection */
#define HS_MAX 8192                   /* largest handshake response head */
#define CTRL_CAP 2048                 /* pending control bytes per connection */
#define RBUF_SIZE (256 * 1024)        /* shared receive buffer */
#define STAGE_MAX (16 * 1024) /* partial frames up to this size are staged in
                                 the shared buffer, bigger ones kept in place */
#define WBUF_MIN (64 * 1024)
#define WBUF_MAX (4 * 1024 * 1024)
#define RX_BUDGET (2ull << 30) /* conns * (size + 14): worst-case receive
                                  buffering when every frame is partial */
#define FIFO_BUDGET (32ull << 20) /* -V: conns * inflight timestamps */
#define CLOSE_GRACE_NS (2 * BU_NS_PER_S)
/* -z: the client compresses each message on its own */
#define DEFLATE_OFFER                                                          \
  "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; " \
  "client_max_window_bits\r\n"

/* ------------------------------------------------------------ config */

typedef enum { MODE_ECHO, MODE_STORM, MODE_IDLE } bench_mode;
static const char *const mode_names[] = {"echo", "storm", "idle"};

typedef struct {
  bench_mode mode;
  const char *url;
  bu_target tg; /* authority, path, port, destination */
  long conns, inflight, size, pending_max, server_pid;
  double warmup, duration, hold, deadline;
  int binary, verify, json;
  int deflate;   /* -z: offer permessage-deflate, send compressed messages */
  int pid_found; /* server_pid came from /proc, not -R */
} bench_cfg;

/* ------------------------------------------------------------ connections */

enum {
  C_NEW = 0,
  C_CONNECTING, /* connect() in progress */
  C_TLS,        /* wss://: TLS handshake in progress */
  C_HANDSHAKE,  /* request sent (or being sent), reading the 101 */
  C_OPEN,
  C_CLOSING, /* our close frame queued at the end of the run */
  C_DONE,    /* closed by us */
  C_FAILED
};

typedef struct {
  int fd;
  hf_tls *tls;   /* wss:// only */
  uint8_t *tls_pend; /* wss://: bytes handed to TLS that it has not taken
                        yet; offered again, unchanged, before anything new */
  uint32_t tls_pend_len, tls_pend_off;
  uint8_t state;
  uint8_t ev_out;  /* EPOLLOUT registered */
  uint8_t msg_bad; /* the message being received is already known bad */
  uint8_t ts_have;
  uint32_t inflight; /* messages issued and not yet echoed */
  uint32_t queued;   /* issued, no byte sent yet */
  uint64_t t_start;  /* connect() time */
  /* output: [tail of a partly sent frame][ctrl bytes][queued frames] */
  uint32_t tail_off; /* bytes of the current data frame already sent; 0 = none */
  uint8_t tail_mask[4];
  uint64_t tail_ts;
  uint8_t *ctrl; /* handshake request, pongs, close; NULL when empty */
  uint16_t ctrl_len, ctrl_off;
  /* input */
  char *hs; /* handshake response head while C_HANDSHAKE */
  uint32_t hs_len;
  uint8_t *in; /* unconsumed bytes of an incomplete frame */
  size_t in_len, in_cap, in_need;
  hf_ws_parser ps;
  uint64_t msg_len;
  uint8_t ts[TS_LEN];
  char key[25];
  /* -V: send timestamps of the frames on the wire, oldest first */
  uint64_t *fifo;
  uint32_t fifo_head, fifo_n;
} conn;

typedef struct {
  uint64_t t;
  double self, server, host; /* CPU seconds; server < 0 when unknown */
} cpu_snap;

static struct {
  bench_cfg cfg;
  conn *conns;
  int ep;
  hf_tls_client *tlsc; /* wss:// */
  uint8_t *rbuf, *wbuf, *tmpl;
  size_t wcap, hdr_len, frame_len;
  uint8_t opcode;
  /* what goes on the wire: tmpl itself, or with -z its compressed form
   * (a stored block holding the timestamp, then the rest of the template
   * compressed once: every message has the same length) */
  uint8_t *wtmpl, wire_op;
  size_t wlen, ts_off;
  uint8_t *zbuf; /* -z: an inflated echo */
  size_t zcap;
  uint64_t rng;
  int nsrc; /* source addresses 127.0.0.1.. used round-robin (IPv4) */
  long next, started, opened, alive, failed_pre, dropped, closing;
  long scan_lo;
  uint64_t bad, pongs_dropped;
  int running, counting;
  uint64_t t_begin, t_all_open, t_last_open, t_run, t_ms, t_me, t_deadline;
  uint64_t msgs, echoes_total;
  bu_hist lat, hs;
  bu_fails fails;
  volatile sig_atomic_t stop;
  int deadline_hit, interrupted;
} B;

static uint32_t send_masks[MAX_INFLIGHT];

/* ------------------------------------------------------------ small helpers */

static uint32_t rnd32(void) { /* xorshift64*; seeded from getrandom */
  B.rng ^= B.rng >> 12;
  B.rng ^= B.rng << 25;
  B.rng ^= B.rng >> 27;
  return (uint32_t)((B.rng * 0x2545F4914F6CDD1Dull) >> 32);
}

static void put_hex16(uint8_t out[TS_LEN], uint64_t v) {
  static const char hx[] = "0123456789abcdef";
  for (int i = TS_LEN - 1; i >= 0; i--) {
    out[i] = (uint8_t)hx[v & 15];
    v >>= 4;
  }
}

static int get_hex16(const uint8_t in[TS_LEN], uint64_t *v) {
  uint64_t r = 0;
  for (int i = 0; i < TS_LEN; i++) {
    uint8_t ch = in[i], d;
    if (ch >= '0' && ch <= '9')
      d = (uint8_t)(ch - '0');
    else if (ch >= 'a' && ch <= 'f')
      d = (uint8_t)(ch - 'a' + 10);
    else
      return -1;
    r = r << 4 | d;
  }
  *v = r;
  return 0;
}

static double secs(uint64_t ns) { return (double)ns / 1e9; }

/* Count a failure (or bad echo) under its description. */
__attribute__((format(printf, 1, 2))) static void note_failure(const char *fmt,
                                                               ...) {
  va_list ap;
  va_start(ap, fmt);
  bu_vfail(&B.fails, fmt, ap);
  va_end(ap);
}

/* ------------------------------------------------------------ /proc readers */

static void snap(cpu_snap *s) {
  s->t = bu_now_ns();
  s->self = bu_self_cpu();
  s->server = B.cfg.server_pid > 0 ? bu_proc_cpu(B.cfg.server_pid) : -1;
  s->host = bu_host_cpu();
}

/* ------------------------------------------------------------ output path */

static void set_out(conn *c, int want) {
  if (c->ev_out == want)
    return;
  struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0u),
                           .data.ptr = c};
  epoll_ctl(B.ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->ev_out = (uint8_t)want;
}

static void conn_release(conn *c) {
  hf_tls_free(c->tls);
  c->tls = NULL;
  free(c->tls_pend);
  c->tls_pend = NULL;
  c->tls_pend_len = c->tls_pend_off = 0;
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  free(c->ctrl);
  free(c->hs);
  free(c->in);
  free(c->fifo);
  c->ctrl = NULL;
  c->hs = NULL;
  c->in = NULL;
  c->fifo = NULL;
  c->in_len = c->in_cap = 0;
  c->ctrl_len = c->ctrl_off = 0;
}

__attribute__((format(printf, 2, 3))) static void conn_fail(conn *c,
                                                            const char *fmt,
                                                            ...) {
  if (c->state == C_CLOSING) { /* anything goes while we close */
    conn_release(c);
    c->state = C_DONE;
    B.closing--;
    return;
  }
  char text[128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  note_failure("%s", text);
  if (c->state == C_OPEN) {
    B.dropped++;
    B.alive--;
  } else {
    B.failed_pre++;
  }
  conn_release(c);
  c->state = C_FAILED;
}

/* Bytes [from, to) of a data frame with this timestamp and mask. */
static void gen_frame(uint8_t *dst, uint64_t ts, const uint8_t mask[4],
                      size_t from, size_t to) {
  size_t hl = B.hdr_len;
  if (from < hl) {
    uint8_t h[HF_FRAME_MAX_HEADER];
    hf_frame_header(h, 1, B.wire_op, (uint64_t)B.wlen, mask);
    size_t n = (to < hl ? to : hl) - from;
    memcpy(dst, h + from, n);
    dst += n;
    from += n;
  }
  if (from >= to)
    return;
  size_t o = from - hl, len = to - from;
  memcpy(dst, B.wtmpl + o, len);
  size_t t0 = B.ts_off, t1 = B.ts_off + TS_LEN; /* where the timestamp goes */
  if (o < t1 && o + len > t0) {
    uint8_t hex[TS_LEN];
    put_hex16(hex, ts);
    size_t a = o > t0 ? o : t0, b = o + len < t1 ? o + len : t1;
    memcpy(dst + (a - o), hex + (a - t0), b - a);
  }
  hf_frame_mask(dst, len, mask, o);
}

static void fifo_push(conn *c, uint64_t ts) {
  if (!c->fifo || c->fifo_n >= (uint32_t)B.cfg.inflight)
    return;
  c->fifo[(c->fifo_head + c->fifo_n) % (uint32_t)B.cfg.inflight] = ts;
  c->fifo_n++;
}

/* wss://: write the bytes TLS has not taken yet. 1 when none are left, 0
 * when TLS waits for the socket (EPOLLOUT armed), -1 on a failure. */
static int tls_drain(conn *c) {
  while (c->tls_pend_off < c->tls_pend_len) {
    struct iovec iov = {c->tls_pend + c->tls_pend_off,
                        c->tls_pend_len - c->tls_pend_off};
    ssize_t w = hf_tls_writev(c->tls, &iov, 1);
    if (w == HF_EAGAIN) {
      set_out(c, 1);
      return 0;
    }
    if (w < 0)
      return -1;
    c->tls_pend_off += (uint32_t)w;
  }
  free(c->tls_pend);
  c->tls_pend = NULL;
  c->tls_pend_len = c->tls_pend_off = 0;
  return 1;
}

/* wss:// in place of send(): OpenSSL must be offered the same bytes again
 * after a short write, but the output here is generated afresh each time
 * (new timestamps and masks), so what TLS does not take now is kept and
 * drained first next time. Returns len (all bytes are committed: sent or
 * kept), 0 when earlier bytes still wait, or -1 on a failure. */
static ssize_t tls_send(conn *c, const uint8_t *p, size_t len) {
  int d = tls_drain(c);
  if (d <= 0)
    return d;
  struct iovec iov = {(void *)p, len};
  ssize_t w = hf_tls_writev(c->tls, &iov, 1);
  if (w == HF_EAGAIN)
    w = 0;
  if (w < 0)
    return -1;
  if ((size_t)w < len) {
    c->tls_pend = malloc(len - (size_t)w);
    if (!c->tls_pend)
      return -1;
    memcpy(c->tls_pend, p + w, len - (size_t)w);
    c->tls_pend_len = (uint32_t)(len - (size_t)w);
    c->tls_pend_off = 0;
    set_out(c, 1);
  }
  return (ssize_t)len;
}

/* Send what the connection owes, one send() per batch: the tail of a partly
 * sent frame, control bytes, then fresh frames (stamped now). Returns 0, or
 * -1 if the connection failed. */
static int conn_flush(conn *c) {
  const size_t F = B.frame_len;
  if (c->tls && c->tls_pend) {
    int d = tls_drain(c);
    if (d < 0) {
      conn_fail(c, "TLS write: %s", hf_tls_error(c->tls));
      return -1;
    }
    if (d == 0)
      return 0;
  }
  for (;;) {
    size_t len = 0, tail_n = 0, ctrl_n = 0;
    uint32_t k = 0;
    uint64_t ts = 0;
    if (c->tail_off) {
      tail_n = F - c->tail_off;
      if (tail_n > B.wcap)
        tail_n = B.wcap;
      gen_frame(B.wbuf, c->tail_ts, c->tail_mask, c->tail_off,
                c->tail_off + tail_n);
      len = tail_n;
    }
    int tail_whole = c->tail_off + tail_n == F || !c->tail_off;
    if (tail_whole && c->ctrl_len > c->ctrl_off) {
      ctrl_n = (size_t)(c->ctrl_len - c->ctrl_off);
      memcpy(B.wbuf + len, c->ctrl + c->ctrl_off, ctrl_n); /* wbuf has CTRL_CAP spare */
      len += ctrl_n;
    }
    if (tail_whole && c->queued && len < B.wcap) {
      ts = bu_now_ns();
      while (k < c->queued && len < B.wcap) {
        size_t n = F < B.wcap - len ? F : B.wcap - len;
        uint32_t m = rnd32();
        send_masks[k++] = m;
        gen_frame(B.wbuf + len, ts, (const uint8_t *)&m, 0, n);
        len += n;
      }
    }
    if (!len) {
      set_out(c, 0);
      return 0;
    }
    ssize_t w = c->tls ? tls_send(c, B.wbuf, len)
                       : send(c->fd, B.wbuf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && c->tls) {
      conn_fail(c, "TLS write: %s", hf_tls_error(c->tls));
      return -1;
    }
    if (w < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        conn_fail(c, "send: %s", strerror(errno));
        return -1;
      }
      w = 0;
    }
    size_t rem = (size_t)w;
    if (tail_n) {
      size_t t = rem < tail_n ? rem : tail_n;
      c->tail_off += (uint32_t)t;
      rem -= t;
      if (c->tail_off == F)
        c->tail_off = 0;
    }
    if (ctrl_n) {
      size_t t = rem < ctrl_n ? rem : ctrl_n;
      c->ctrl_off = (uint16_t)(c->ctrl_off + t);
      rem -= t;
      if (c->ctrl_off == c->ctrl_len) {
        free(c->ctrl);
        c->ctrl = NULL;
        c->ctrl_len = c->ctrl_off = 0;
      }
    }
    if (k) {
      size_t full = rem / F, part = rem % F, started = full + (part != 0);
      for (size_t i = 0; i < started; i++)
        fifo_push(c, ts);
      c->queued -= (uint32_t)started;
      if (part) {
        c->tail_off = (uint32_t)part;
        c->tail_ts = ts;
        memcpy(c->tail_mask, &send_masks[full], 4);
      }
    }
    if ((size_t)w < len) {
      set_out(c, 1); /* the kernel is full: continue on EPOLLOUT */
      return 0;
    }
    if (!c->tail_off && !c->ctrl_len && !c->queued) {
      set_out(c, 0);
      return 0;
    }
  }
}

/* Queue raw control bytes (handshake request, pong, close). */
static int ctrl_append(conn *c, const void *p, size_t n) {
  if (!c->ctrl) {
    c->ctrl = malloc(CTRL_CAP);
    if (!c->ctrl)
      return -1;
    c->ctrl_len = c->ctrl_off = 0;
  }
  if (c->ctrl_off && c->ctrl_len + n > CTRL_CAP) {
    memmove(c->ctrl, c->ctrl + c->ctrl_off, (size_t)(c->ctrl_len - c->ctrl_off));
    c->ctrl_len = (uint16_t)(c->ctrl_len - c->ctrl_off);
    c->ctrl_off = 0;
  }
  if (c->ctrl_len + n > CTRL_CAP)
    return -1;
  memcpy(c->ctrl + c->ctrl_len, p, n);
  c->ctrl_len = (uint16_t)(c->ctrl_len + n);
  return 0;
}

static void queue_control(conn *c, int opcode, const uint8_t *pl, size_t n) {
  uint8_t f[HF_FRAME_MAX_HEADER + HF_FRAME_MAX_CONTROL];
  size_t fl = bu_client_frame(f, opcode, pl, n, rnd32());
  if (ctrl_append(c, f, fl) < 0 && opcode == HF_OP_PONG)
    B.pongs_dropped++; /* a later pong answers for it (RFC 6455 5.5.3) */
}

/* ------------------------------------------------------------ input path */

static void conn_open(conn *c, uint64_t now) {
  c->state = C_OPEN;
  B.opened++;
  B.alive++;
  B.t_last_open = now;
  if (B.cfg.mode == MODE_STORM)
    bu_hist_add(&B.hs, now - c->t_start);
  memset(&c->ps, 0, sizeof c->ps);
  c->ps.expect_mask = 0;
  /* compressed, a tiny echo can be a little longer than itself */
  c->ps.max_message = B.cfg.deflate ? (uint64_t)hf_deflate_bound((size_t)B.cfg.size)
                                    : (uint64_t)B.cfg.size;
  c->ps.allow_rsv1 = (uint8_t)B.cfg.deflate;
  if (B.cfg.verify && B.cfg.mode == MODE_ECHO)
    c->fifo = calloc((size_t)B.cfg.inflight, sizeof *c->fifo);
}

/* One complete data frame (a whole message or a fragment of it). */
static void on_data(conn *c, const hf_ws_event *ev, uint64_t now,
                    unsigned *replaced) {
  const size_t S = (size_t)B.cfg.size;
  if (ev->first) {
    c->msg_len = 0;
    c->ts_have = 0;
    c->msg_bad = 0;
    if (ev->opcode != B.opcode) {
      c->msg_bad = 1;
      note_failure("bad echo: %s frame for a %s message",
                   ev->opcode == HF_OP_TEXT ? "text" : "binary",
                   B.opcode == HF_OP_TEXT ? "text" : "binary");
    }
  }
  if (c->ts_have < TS_LEN) {
    size_t room = (size_t)(TS_LEN - c->ts_have);
    size_t k = room < ev->len ? room : ev->len;
    memcpy(c->ts + c->ts_have, ev->data, k);
    c->ts_have = (uint8_t)(c->ts_have + k);
  }
  if (B.cfg.verify && !c->msg_bad) {
    size_t o = (size_t)c->msg_len, lo = o < TS_LEN ? TS_LEN : o,
           hi = o + ev->len; /* <= S: the parser enforces max_message */
    if (lo < hi && memcmp(ev->data + (lo - o), B.tmpl + lo, hi - lo) != 0) {
      c->msg_bad = 1;
      note_failure("bad echo: payload bytes differ from what was sent");
    }
  }
  c->msg_len += ev->len;
  if (!ev->fin)
    return;
  if (c->state != C_OPEN)
    return; /* echoes still arriving while we close */
  if (B.cfg.mode != MODE_ECHO || !c->inflight) {
    B.bad++;
    note_failure("bad echo: a message nobody asked for (%" PRIu64 " bytes)",
                 c->msg_len);
    return;
  }
  c->inflight--;
  uint64_t ts = 0;
  int ok = !c->msg_bad;
  if (ok && c->msg_len != S) {
    ok = 0;
    note_failure("bad echo: %" PRIu64 " bytes instead of %zu", c->msg_len, S);
  }
  if (ok && (get_hex16(c->ts, &ts) < 0 || ts < B.t_begin || ts > now)) {
    ok = 0;
    note_failure("bad echo: payload does not start with our timestamp");
  }
  if (c->fifo) {
    uint64_t want = c->fifo_n ? c->fifo[c->fifo_head] : 0;
    if (c->fifo_n) {
      c->fifo_head = (c->fifo_head + 1) % (uint32_t)B.cfg.inflight;
      c->fifo_n--;
    }
    if (ok && want != ts) {
      ok = 0;
      note_failure("bad echo: out of order or not a message we sent");
    }
  }
  if (!ok) {
    B.bad++;
  } else {
    B.echoes_total++;
    if (B.counting && now >= B.t_ms && now < B.t_me) {
      B.msgs++;
      bu_hist_add(&B.lat, now - ts);
    }
  }
  if (B.running) { /* replace it at once; sent with the others of this recv */
    c->queued++;
    c->inflight++;
    (*replaced)++;
  }
}

/* -z: replace a compressed echo (one frame: holdfast never fragments) by
 * its inflated bytes in B.zbuf. 0, or -1 if the connection failed. */
static int inflate_echo(conn *c, hf_ws_event *ev) {
  hf_inflate *z = hf_inflate_thread();
  if (!ev->first || !ev->fin || !z) {
    conn_fail(c, "%s", z ? "fragmented compressed echo" : "out of memory");
    return -1;
  }
  hf_inflate_reset(z);
  size_t n = 0;
  int r = hf_inflate_feed(z, ev->data, ev->len, 1, &B.zbuf, &n, &B.zcap,
                          (size_t)B.cfg.size);
  if (r < 0) {
    conn_fail(c, "compressed echo: %s", hf_strerror(r));
    return -1;
  }
  ev->data = B.zbuf;
  ev->len = n;
  ev->compressed = 0;
  return 0;
}

/* Parse server frames in buf[0..len). Returns bytes consumed, or -1 if the
 * connection is gone. */
static ssize_t feed_frames(conn *c, uint8_t *buf, size_t len, uint64_t now,
                           unsigned *replaced) {
  size_t off = 0;
  c->in_need = 0;
  while (off < len) {
    hf_ws_event ev;
    size_t need = 0;
    ssize_t r = hf_ws_parse(&c->ps, buf + off, len - off, &ev, &need);
    if (r == HF_EAGAIN) {
      c->in_need = need;
      break;
    }
    if (r < 0) {
      conn_fail(c, "bad frame from the server: %s",
                c->ps.err_reason ? c->ps.err_reason : hf_strerror((int)r));
      return -1;
    }
    off += (size_t)r;
    if (ev.type == HF_WS_EV_DATA && ev.compressed && inflate_echo(c, &ev) < 0)
      return -1;
    switch (ev.type) {
    case HF_WS_EV_DATA:
      on_data(c, &ev, now, replaced);
      break;
    case HF_WS_EV_PING:
      if (c->state == C_OPEN)
        queue_control(c, HF_OP_PONG, ev.data, ev.len);
      break;
    case HF_WS_EV_PONG:
      break;
    case HF_WS_EV_CLOSE:
      conn_fail(c, "server sent close %u%s%.*s", ev.close_code,
                ev.close_reason_len ? " " : "", (int)ev.close_reason_len,
                (const char *)ev.close_reason);
      return -1;
    }
  }
  return (ssize_t)off;
}

static int in_reserve(conn *c, size_t want) {
  if (c->in_cap >= want)
    return 0;
  size_t cap = c->in_cap ? c->in_cap * 2 : 256;
  while (cap < want)
    cap *= 2;
  uint8_t *p = realloc(c->in, cap);
  if (!p)
    return -1;
  c->in = p;
  c->in_cap = cap;
  return 0;
}

static void conn_read(conn *c) {
  size_t have = c->in_len, cap;
  uint8_t *buf;
  int staged = have <= STAGE_MAX && c->in_need <= STAGE_MAX;
  if (staged) { /* small remainder: receive behind it in the shared buffer */
    if (have)
      memcpy(B.rbuf, c->in, have);
    buf = B.rbuf;
    cap = RBUF_SIZE;
  } else { /* a big frame in progress: receive in place */
    size_t want = (c->in_need > have ? c->in_need : have) + 64 * 1024;
    if (in_reserve(c, want) < 0) {
      conn_fail(c, "out of memory for a %zu-byte frame", c->in_need);
      return;
    }
    buf = c->in;
    cap = c->in_cap;
  }
  ssize_t r;
  if (c->tls) {
    r = hf_tls_read(c->tls, buf + have, cap - have);
    if (r == HF_EAGAIN) {
      if (hf_tls_want(c->tls) == HF_TLS_WANT_WRITE)
        set_out(c, 1);
      return;
    }
    if (r < 0) {
      conn_fail(c, "TLS read: %s", hf_tls_error(c->tls));
      return;
    }
  } else {
    r = recv(c->fd, buf + have, cap - have, 0);
  }
  if (r == 0) {
    if (c->state == C_CLOSING) {
      conn_fail(c, "closed"); /* finishes a closing connection */
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
  uint64_t now = bu_now_ns();
  size_t total = have + (size_t)r;
  unsigned replaced = 0;
  ssize_t used = feed_frames(c, buf, total, now, &replaced);
  if (used < 0)
    return;
  size_t left = total - (size_t)used;
  if (staged) {
    if (left) {
      if (in_reserve(c, left) < 0) {
        conn_fail(c, "out of memory");
        return;
      }
      memcpy(c->in, buf + used, left);
    }
  } else if (left && used) {
    memmove(c->in, c->in + used, left);
  }
  c->in_len = left;
  if (!left && c->in_cap > 4 * STAGE_MAX) { /* give big buffers back */
    free(c->in);
    c->in = NULL;
    c->in_cap = 0;
  }
  if ((replaced || c->ctrl_len) && !c->ev_out) /* else EPOLLOUT flushes */
    conn_flush(c);
}

static void read_handshake(conn *c) {
  size_t head_len;
  char why[128];
  int st;
  if (c->tls) {
    ssize_t r = hf_tls_read(c->tls, c->hs + c->hs_len, HS_MAX - c->hs_len);
    if (r == HF_EAGAIN)
      return;
    if (r < 0) {
      conn_fail(c, "handshake: TLS read: %s", hf_tls_error(c->tls));
      return;
    }
    st = bu_head_feed(c->hs, &c->hs_len, HS_MAX, r, &head_len, why, sizeof why);
  } else {
    st = bu_read_head(c->fd, c->hs, &c->hs_len, HS_MAX, &head_len, why, sizeof why);
  }
  if (st != BU_HEAD_DONE) {
    if (st == BU_HEAD_ERROR)
      conn_fail(c, "%s", why);
    return;
  }
  const char *bad = bu_check_101(c->hs, head_len, c->key, 1, why, sizeof why);
  if (!bad && B.cfg.deflate && !memmem(c->hs, head_len, "permessage-deflate", 18))
    bad = "handshake: the server did not accept permessage-deflate (-z)";
  if (bad) {
    conn_fail(c, "%s", bad);
    return;
  }
  uint64_t now = bu_now_ns();
  size_t extra = c->hs_len - head_len;
  conn_open(c, now);
  if (extra) { /* frames right behind the 101 */
    if (in_reserve(c, extra) < 0) {
      conn_fail(c, "out of memory");
      return;
    }
    memcpy(c->in, c->hs + head_len, extra);
  }
  free(c->hs);
  c->hs = NULL;
  if (extra) {
    unsigned replaced = 0;
    ssize_t used = feed_frames(c, c->in, extra, now, &replaced);
    if (used < 0)
      return;
    memmove(c->in, c->in + used, extra - (size_t)used);
    c->in_len = extra - (size_t)used;
    if (c->ctrl_len)
      conn_flush(c);
  }
}

/* ------------------------------------------------------------ connecting */

static void start_connect(long i) {
  conn *c = &B.conns[i];
  c->fd = -1;
  c->state = C_CONNECTING;
  c->t_start = bu_now_ns();
  B.started++;
  char why[128];
  /* several sources 127.0.0.x: one ephemeral port range each */
  if (bu_open_socket(&B.cfg.tg, B.nsrc, i, B.ep, c, &c->fd, why, sizeof why) < 0) {
    conn_fail(c, "%s", why);
    return;
  }
  c->ev_out = 1;
}

static void send_upgrade(conn *c);

/* wss://: advance the TLS handshake; send the upgrade request when done. */
static void tls_step(conn *c) {
  int r = hf_tls_handshake(c->tls);
  if (r < 0) {
    conn_fail(c, "TLS handshake: %s", hf_tls_error(c->tls));
    return;
  }
  if (r == 0) {
    set_out(c, hf_tls_want(c->tls) == HF_TLS_WANT_WRITE);
    return;
  }
  send_upgrade(c);
}

static void on_connected(conn *c) {
  int err = bu_socket_error(c->fd);
  if (err) {
    conn_fail(c, "connect: %s", strerror(err));
    return;
  }
  if (B.tlsc) {
    c->tls = hf_tls_connect(B.tlsc, c->fd, B.cfg.tg.host);
    if (!c->tls) {
      conn_fail(c, "TLS: out of memory");
      return;
    }
    c->state = C_TLS;
    tls_step(c);
    return;
  }
  send_upgrade(c);
}

static void send_upgrade(conn *c) {
  bu_ws_key(c->key, rnd32);
  char req[CTRL_CAP];
  int n = bu_upgrade_request_ext(req, sizeof req, &B.cfg.tg, c->key,
                                 B.cfg.deflate ? DEFLATE_OFFER : "");
  c->hs = malloc(HS_MAX);
  c->hs_len = 0;
  if (!c->hs || n <= 0 || (size_t)n >= sizeof req ||
      ctrl_append(c, req, (size_t)n) < 0) {
    conn_fail(c, "handshake: cannot build the request");
    return;
  }
  c->state = C_HANDSHAKE;
  conn_flush(c);
}

static void connect_more(void) {
  long resolved = B.opened + B.failed_pre;
  long pending = B.started - resolved;
  while (B.next < B.cfg.conns && pending < B.cfg.pending_max) {
    start_connect(B.next++);
    pending++;
  }
}

/* Fail connections pending longer than HS_TIMEOUT_NS. They start in index
 * order with one timeout, so the scan stops at the first young one. */
static void check_timeouts(uint64_t now) {
  while (B.scan_lo < B.next && B.conns[B.scan_lo].state != C_CONNECTING &&
         B.conns[B.scan_lo].state != C_TLS && B.conns[B.scan_lo].state != C_HANDSHAKE)
    B.scan_lo++;
  for (long i = B.scan_lo; i < B.next; i++) {
    conn *c = &B.conns[i];
    if (c->state != C_CONNECTING && c->state != C_TLS && c->state != C_HANDSHAKE)
      continue;
    if (now < c->t_start + HS_TIMEOUT_NS)
      break;
    conn_fail(c, "%s timeout (10 s)",
              c->state == C_CONNECTING ? "connect" : "handshake");
  }
}

static void dispatch(struct epoll_event *evs, int n) {
  for (int i = 0; i < n; i++) {
    conn *c = evs[i].data.ptr;
    uint32_t e = evs[i].events;
    switch (c->state) {
    case C_CONNECTING:
      if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        on_connected(c);
      break;
    case C_TLS:
      tls_step(c);
      break;
    case C_HANDSHAKE:
    case C_OPEN:
    case C_CLOSING:
      if ((e & EPOLLOUT) && conn_flush(c) < 0)
        break;
      if (!(e & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        break;
      if (c->state == C_HANDSHAKE)
        read_handshake(c);
      else
        conn_read(c);
      /* TLS may hold decrypted bytes the socket no longer signals */
      for (int k = 0; k < 64 && c->tls && hf_tls_pending(c->tls) &&
                      (c->state == C_HANDSHAKE || c->state == C_OPEN ||
                       c->state == C_CLOSING); k++) {
        if (c->state == C_HANDSHAKE)
          read_handshake(c);
        else
          conn_read(c);
      }
      break;
    default: /* closed earlier in this batch */
      break;
    }
  }
}

static int wait_events(uint64_t until) {
  struct epoll_event evs[1024];
  uint64_t now = bu_now_ns();
  uint64_t ms = until > now ? (until - now + 999999) / 1000000 : 0;
  if (ms > 100)
    ms = 100;
  int n = epoll_wait(B.ep, evs, 1024, (int)ms);
  if (n < 0)
    return errno == EINTR ? 0 : -1;
  dispatch(evs, n);
  return 0;
}

/* ------------------------------------------------------------ results */

static bu_results RS;

static void res_pct(const char *key, double v) {
  if (v >= 0 && isfinite(v))
    bu_res(&RS, key, BU_PCT, "%.0f", v);
}

static double pct(double cpu_s, double wall_s) {
  return cpu_s >= 0 && wall_s > 0 ? 100.0 * cpu_s / wall_s : -1;
}

/* CPU shares over [a, b] as % of one core: client, server, host, other. */
static void cpu_report(const cpu_snap *a, const cpu_snap *b, double out[4]) {
  double wall = secs(b->t - a->t);
  out[0] = pct(b->self - a->self, wall);
  out[1] = a->server >= 0 && b->server >= 0 ? pct(b->server - a->server, wall) : -1;
  out[2] = a->host >= 0 && b->host >= 0 ? pct(b->host - a->host, wall) : -1;
  out[3] = out[1] >= 0 && out[2] >= 0 ? out[2] - out[0] - out[1] : -1;
  if (out[3] < 0 && out[1] >= 0 && out[2] >= 0)
    out[3] = 0; /* tick sampling noise */
}

static void print_cpu_line(const double c[4]) {
  printf("  cpu       client %.0f%%", c[0]);
  if (c[1] >= 0)
    printf(", server %.0f%%", c[1]);
  if (c[2] >= 0)
    printf(", host %.0f%%", c[2]);
  if (c[3] >= 0)
    printf(" (other %.0f%%)", c[3]);
  printf(" of one core\n");
}

static void res_common(void) {
  bu_res(&RS, "mode", BU_STR, "%s", mode_names[B.cfg.mode]);
  bu_res(&RS, "url", BU_STR, "%s", B.cfg.url);
  bu_res(&RS, "port", BU_NUM, "%d", B.cfg.tg.port);
  bu_res(&RS, "conns", BU_NUM, "%ld", B.cfg.conns);
}

static void res_tail(const char *status) {
  if (B.cfg.server_pid > 0)
    bu_res(&RS, "server_pid", BU_NUM, "%ld", B.cfg.server_pid);
  bu_res(&RS, "status", BU_STR, "%s", status);
}

/* ------------------------------------------------------------ the run */

static void close_all_gracefully(void) {
  uint8_t pl[HF_FRAME_MAX_CONTROL];
  size_t n = hf_frame_close_payload(pl, 1000, "bench done");
  B.closing = 0;
  for (long i = 0; i < B.next; i++) {
    conn *c = &B.conns[i];
    if (c->state != C_OPEN)
      continue;
    c->state = C_CLOSING;
    B.closing++;
    c->queued = 0;
    queue_control(c, HF_OP_CLOSE, pl, n);
    conn_flush(c);
  }
  uint64_t until = bu_now_ns() + CLOSE_GRACE_NS;
  if (until > B.t_deadline)
    until = B.t_deadline;
  while (B.closing > 0 && !B.stop && bu_now_ns() < until)
    if (wait_events(until) < 0)
      break;
}

static int run(void) {
  bench_cfg *cfg = &B.cfg;
  enum { P_CONNECT, P_RUN, P_HOLD, P_END } phase = P_CONNECT;
  cpu_snap c0 = {0}, c1 = {0};
  int have_c0 = 0, have_c1 = 0;
  long rss0 = cfg->server_pid > 0 ? bu_proc_rss_kb(cfg->server_pid) : -1, rss1 = -1;
  uint64_t t_hold_end = 0;

  B.t_begin = bu_now_ns();
  B.t_deadline = B.t_begin + (uint64_t)(cfg->deadline * 1e9);
  if (cfg->mode == MODE_STORM) {
    snap(&c0);
    have_c0 = 1;
  }
  while (phase != P_END) {
    uint64_t now = bu_now_ns(), wake = now + 100 * 1000000ull;
    if (B.stop) {
      B.interrupted = 1;
      break;
    }
    if (now >= B.t_deadline) {
      B.deadline_hit = 1;
      break;
    }
    if (phase == P_CONNECT) {
      connect_more();
      check_timeouts(now);
      if (B.next == cfg->conns && B.opened + B.failed_pre == cfg->conns) {
        B.t_all_open = now;
        if (cfg->mode == MODE_STORM || B.alive == 0) {
          if (have_c0) {
            snap(&c1);
            have_c1 = 1;
          }
          break;
        }
        if (cfg->mode == MODE_IDLE) {
          phase = P_HOLD;
          t_hold_end = now + (uint64_t)(cfg->hold * 1e9);
        } else {
          phase = P_RUN;
          B.t_run = now;
          B.t_ms = now + (uint64_t)(cfg->warmup * 1e9);
          B.t_me = B.t_ms + (uint64_t)(cfg->duration * 1e9);
          B.running = B.counting = 1;
          for (long i = 0; i < cfg->conns; i++) {
            conn *c = &B.conns[i];
            if (c->state != C_OPEN)
              continue;
            c->queued = c->inflight = (uint32_t)cfg->inflight;
            conn_flush(c);
          }
        }
      } else {
        wake = now + 10 * 1000000ull;
      }
    }
    if (phase == P_RUN) {
      now = bu_now_ns();
      if (!have_c0 && now >= B.t_ms) {
        snap(&c0);
        have_c0 = 1;
      }
      if (now >= B.t_me || B.alive == 0) { /* done, or nothing left to measure */
        snap(&c1);
        have_c1 = 1;
        B.running = B.counting = 0;
        break;
      }
      wake = have_c0 ? B.t_me : B.t_ms;
    }
    if (phase == P_HOLD) {
      if (now >= t_hold_end) {
        rss1 = cfg->server_pid > 0 ? bu_proc_rss_kb(cfg->server_pid) : -1;
        break;
      }
      wake = t_hold_end;
    }
    if (wake > B.t_deadline)
      wake = B.t_deadline;
    if (wait_events(wake) < 0) {
      perror("holdfast bench: epoll_wait");
      break;
    }
  }
  B.running = B.counting = 0;
  if (have_c0 && !have_c1) { /* stopped early: CPU up to now */
    snap(&c1);
    have_c1 = 1;
  }
  uint64_t t_stop = bu_now_ns();

  /* ---------------- report */
  long failed = B.failed_pre + B.dropped;
  int ok = !B.deadline_hit && !B.interrupted && failed == 0 && B.bad == 0 &&
           B.opened == cfg->conns;
  double cpu[4] = {-1, -1, -1, -1};
  if (have_c0 && have_c1)
    cpu_report(&c0, &c1, cpu);
  double connect_s = B.t_all_open ? secs(B.t_all_open - B.t_begin) : -1;

  printf("holdfast bench: %s %s, %ld connection%s", mode_names[cfg->mode], cfg->url,
         cfg->conns, cfg->conns == 1 ? "" : "s");
  if (cfg->mode == MODE_ECHO)
    printf(" x %ld in flight x %ld-byte %s messages", cfg->inflight, cfg->size,
           cfg->binary ? "binary" : "text");
  printf("\n");
  if (cfg->server_pid > 0)
    printf("  server    pid %ld%s\n", cfg->server_pid,
           cfg->pid_found ? " (the listener of the port, found in /proc)" : "");
  if (connect_s >= 0)
    printf("  open      %ld of %ld in %.3f s\n", B.opened, cfg->conns, connect_s);
  else
    printf("  open      %ld of %ld (%ld still pending)\n", B.opened, cfg->conns,
           B.started - B.opened - B.failed_pre);

  if (cfg->mode == MODE_ECHO) {
    double window = cfg->duration;
    if (!B.t_run)
      window = 0;
    else if (t_stop < B.t_me) /* stopped early */
      window = t_stop > B.t_ms ? secs(t_stop - B.t_ms) : 0;
    double mps = window > 0 ? (double)B.msgs / window : 0;
    double mbps = window > 0 ? (double)B.msgs * (double)cfg->size / window / 1e6 : 0;
    double p50 = (double)bu_hist_quantile(&B.lat, 0.50) / 1e3,
           p99 = (double)bu_hist_quantile(&B.lat, 0.99) / 1e3,
           p999 = (double)bu_hist_quantile(&B.lat, 0.999) / 1e3,
           pmax = (double)B.lat.max / 1e3;
    if (B.t_run)
      printf("  window    warm-up %g s, measured %.3f s\n", cfg->warmup, window);
    printf("  echoes    %" PRIu64 " = %.0f msgs/s, %.2f MB/s payload each way%s\n",
           B.msgs, mps, mbps, cfg->verify ? " (every byte verified)" : "");
    printf("  latency   p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n", p50,
           p99, p999, pmax);
    if (have_c1)
      print_cpu_line(cpu);
    res_common();
    bu_res(&RS, "inflight", BU_NUM, "%ld", cfg->inflight);
    bu_res(&RS, "size", BU_NUM, "%ld", cfg->size);
    bu_res(&RS, "binary", BU_NUM, "%d", cfg->binary);
    bu_res(&RS, "open", BU_NUM, "%ld", B.opened);
    bu_res(&RS, "failed", BU_NUM, "%ld", failed);
    bu_res(&RS, "dropped", BU_NUM, "%ld", B.dropped);
    bu_res(&RS, "bad", BU_NUM, "%" PRIu64, B.bad);
    bu_res(&RS, "warmup_s", BU_NUM, "%g", cfg->warmup);
    bu_res(&RS, "duration_s", BU_NUM, "%.3f", window);
    bu_res(&RS, "msgs", BU_NUM, "%" PRIu64, B.msgs);
    bu_res(&RS, "msgs_per_s", BU_NUM, "%.0f", mps);
    bu_res(&RS, "MBps", BU_NUM, "%.2f", mbps);
    bu_res(&RS, "p50_us", BU_NUM, "%.1f", p50);
    bu_res(&RS, "p99_us", BU_NUM, "%.1f", p99);
    bu_res(&RS, "p999_us", BU_NUM, "%.1f", p999);
    bu_res(&RS, "max_us", BU_NUM, "%.1f", pmax);
    res_pct("client_cpu", cpu[0]);
    res_pct("server_cpu", cpu[1]);
    res_pct("host_cpu", cpu[2]);
    res_pct("other_cpu", cpu[3]);
    if (B.msgs == 0) {
      ok = 0;
      fprintf(stderr, "holdfast bench: no echo completed in the measured window\n");
    }
  } else if (cfg->mode == MODE_STORM) {
    double el = B.opened ? secs(B.t_last_open - B.t_begin) : 0;
    double rate = el > 0 ? (double)B.opened / el : 0;
    double p50 = (double)bu_hist_quantile(&B.hs, 0.50) / 1e3,
           p99 = (double)bu_hist_quantile(&B.hs, 0.99) / 1e3,
           pmax = (double)B.hs.max / 1e3;
    printf("  storm     %ld handshakes in %.3f s = %.0f handshakes/s, at most %ld "
           "pending\n",
           B.opened, el, rate, cfg->pending_max);
    printf("  latency   connect to verified 101: p50 %.1f us, p99 %.1f us, max "
           "%.1f us\n",
           p50, p99, pmax);
    if (have_c1)
      print_cpu_line(cpu);
    res_common();
    bu_res(&RS, "pending", BU_NUM, "%ld", cfg->pending_max);
    bu_res(&RS, "open", BU_NUM, "%ld", B.opened);
    bu_res(&RS, "failed", BU_NUM, "%ld", failed);
    bu_res(&RS, "elapsed_s", BU_NUM, "%.3f", el);
    bu_res(&RS, "handshakes_per_s", BU_NUM, "%.0f", rate);
    bu_res(&RS, "hs_p50_us", BU_NUM, "%.1f", p50);
    bu_res(&RS, "hs_p99_us", BU_NUM, "%.1f", p99);
    bu_res(&RS, "hs_max_us", BU_NUM, "%.1f", pmax);
    res_pct("client_cpu", cpu[0]);
    res_pct("server_cpu", cpu[1]);
    res_pct("host_cpu", cpu[2]);
  } else {
    long alive = B.alive;
    printf("  hold      %g s with %ld open\n", cfg->hold, alive);
    res_common();
    bu_res(&RS, "open", BU_NUM, "%ld", B.opened);
    bu_res(&RS, "alive", BU_NUM, "%ld", alive);
    bu_res(&RS, "failed", BU_NUM, "%ld", failed);
    bu_res(&RS, "hold_s", BU_NUM, "%g", cfg->hold);
    if (connect_s >= 0)
      bu_res(&RS, "connect_s", BU_NUM, "%.3f", connect_s);
    if (rss0 >= 0 && rss1 >= 0 && alive > 0) {
      double per = (double)(rss1 - rss0) * 1024.0 / (double)alive;
      printf("  server    RSS %ld kB before, %ld kB after: %.0f bytes per "
             "connection\n",
             rss0, rss1, per);
      bu_res(&RS, "rss_before_kb", BU_NUM, "%ld", rss0);
      bu_res(&RS, "rss_after_kb", BU_NUM, "%ld", rss1);
      bu_res(&RS, "rss_per_conn_bytes", BU_NUM, "%.0f", per);
    } else if (cfg->server_pid <= 0) {
      printf("  server    RSS not measured: no server PID (give -R PID)\n");
    }
  }
  if (B.pongs_dropped)
    fprintf(stderr, "holdfast bench: %" PRIu64 " pongs not sent (control queue full)\n",
            B.pongs_dropped);
  bu_fail_print(&B.fails);
  if (B.deadline_hit)
    fprintf(stderr, "holdfast bench: hard deadline (-T %g s) reached\n", cfg->deadline);
  if (B.interrupted)
    fprintf(stderr, "holdfast bench: interrupted\n");
  res_tail(B.deadline_hit  ? "deadline"
           : B.interrupted ? "interrupted"
           : ok            ? "ok"
                           : "failed");
  bu_res_print(&RS, cfg->json);
  fflush(stdout);

  if (!B.deadline_hit && !B.interrupted)
    close_all_gracefully();
  return ok ? 0 : 1;
}

/* ------------------------------------------------------------ arguments */

static void usage(FILE *out) {
  fprintf(out,
      "usage: holdfast bench [options]\n"
      "Load generator for a WebSocket server on this machine (loopback only).\n"
      "\n"
      "modes:\n"
      "  echo   N connections keep exactly K messages in flight each; reports\n"
      "         echoes/s, MB/s, send-to-echo latency and client/server/host CPU\n"
      "  storm  opens N connections, at most C handshakes pending at a time;\n"
      "         reports handshakes/s and handshake latency\n"
      "  idle   opens N connections and holds them H seconds; reports the\n"
      "         server's RSS growth per connection (needs the server PID)\n"
      "  fanout, churn  the real-time endpoint and the server API: see\n"
      "         holdfast bench -m fanout --help\n"
      "  recover  a reconnect storm with recovery (or --refetch through the\n"
      "         server API): see holdfast bench -m recover --help\n"
      "  reconnect  N clients dropped at once reconnect, with full-jitter backoff\n"
      "         or without: time until all are back and the arrival curve\n"
      "  flood  one client floods while observers measure their round trips:\n"
      "         see holdfast bench -m reconnect --help (both modes)\n"
      "  sendpath  the sender's CPU per send: sendmsg vs io_uring vs\n"
      "         MSG_ZEROCOPY over N loopback connections (no server):\n"
      "         see holdfast bench -m sendpath --help\n"
      "\n"
      "options [default]:\n"
      "  -m MODE   echo, storm or idle                                 [echo]\n"
      "  -u URL    ws://HOST[:PORT]/PATH or wss:// (TLS, certificate not verified);\n"
      "            HOST is 127.0.0.0/8, [::1] or localhost\n"
      "                                               [ws://127.0.0.1:8000/echo]\n"
      "  -c N      connections, 1..100000                              [100]\n"
      "  -k K      echo: messages in flight per connection, 1..4096    [16]\n"
      "  -s S      echo: message size in bytes, 16..16777216           [32]\n"
      "  -b        echo: binary frames                                 [text]\n"
      "  -w W      echo: warm-up seconds, 0..3600                      [1]\n"
      "  -d D      echo: measured seconds, up to 3600                  [5]\n"
      "  -C C      most connects+handshakes pending at once            [64]\n"
      "  -H H      idle: seconds to hold the connections, 0..3600      [5]\n"
      "  -R PID    server process for CPU/RSS figures  [the listener of the\n"
      "            URL's port, found via /proc; figures omitted if not found]\n"
      "  -T T      hard deadline in seconds: report and exit 1   [W+D+H+30]\n"
      "  -V        echo: verify every payload byte and the order of echoes\n"
      "  -z        offer permessage-deflate (all modes); echo: send compressed\n"
      "            messages and inflate the echoes (fails if not accepted)\n"
      "  -j        also print the result as one JSON line\n"
      "  -h, --help  this text\n"
      "\n"
      "Each handshake must complete within 10 s. The RESULT line counts in\n"
      "'failed' every connection that failed (refused, timed out, reset, closed\n"
      "by the server, bad frame), 'dropped' those of them that had been open;\n"
      "'bad' counts wrong echoes. CPU figures are %% of one core over the\n"
      "measured window. Messages above the server's message size limit\n"
      "(1 MiB by default) are closed with 1009.\n"
      "\n"
      "exit status: 0 success; 1 a connection failed, an echo was wrong, no echo\n"
      "completed, or the deadline hit; 2 usage error.\n");
}

/* 0 to run, 1 after --help, -1 on a usage error. */
static int parse_args(bench_cfg *cfg, int argc, char **argv) {
  static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  /* getopt expects argv[0] to be the program; ours starts with an option */
  char **av = calloc((size_t)argc + 2, sizeof *av);
  if (!av)
    return -1;
  static char prog[] = "holdfast bench";
  av[0] = prog;
  for (int i = 0; i < argc; i++)
    av[i + 1] = argv[i];
  int ac = argc + 1, opt, rc = 0, deadline_set = 0;
  optind = 0; /* full re-initialisation (glibc) */
  opterr = 1;
  while (rc == 0 && (opt = getopt_long(ac, av, "m:u:c:k:s:d:w:bC:H:R:T:Vzjh",
                                       longopts, NULL)) != -1) {
    switch (opt) {
    case 'm':
      if (strcmp(optarg, "echo") == 0)
        cfg->mode = MODE_ECHO;
      else if (strcmp(optarg, "storm") == 0)
        cfg->mode = MODE_STORM;
      else if (strcmp(optarg, "idle") == 0)
        cfg->mode = MODE_IDLE;
      else {
        fprintf(stderr, "holdfast bench: -m %s: want echo, storm, idle, fanout, churn, recover, reconnect, flood or sendpath\n", optarg);
        rc = -1;
      }
      break;
    case 'u': cfg->url = optarg; break;
    case 'c': rc = bu_parse_long(optarg, 'c', 1, MAX_CONNS, &cfg->conns); break;
    case 'k': rc = bu_parse_long(optarg, 'k', 1, MAX_INFLIGHT, &cfg->inflight); break;
    case 's': rc = bu_parse_long(optarg, 's', TS_LEN, MAX_SIZE, &cfg->size); break;
    case 'd':
      rc = bu_parse_secs(optarg, 'd', 0, MAX_DURATION, 1, &cfg->duration);
      break;
    case 'w':
      rc = bu_parse_secs(optarg, 'w', 0, MAX_DURATION, 0, &cfg->warmup);
      break;
    case 'b': cfg->binary = 1; break;
    case 'C': rc = bu_parse_long(optarg, 'C', 1, MAX_CONNS, &cfg->pending_max); break;
    case 'H': rc = bu_parse_secs(optarg, 'H', 0, MAX_DURATION, 0, &cfg->hold); break;
    case 'R': rc = bu_parse_long(optarg, 'R', 1, 0x7fffffffl, &cfg->server_pid); break;
    case 'T':
      rc = bu_parse_secs(optarg, 'T', 0, MAX_DEADLINE, 1, &cfg->deadline);
      deadline_set = 1;
      break;
    case 'V': cfg->verify = 1; break;
    case 'z': cfg->deflate = 1; break;
    case 'j': cfg->json = 1; break;
    case 'h':
      usage(stdout);
      rc = 1;
      break;
    default: /* getopt printed the problem */
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
  if (bu_parse_url(&cfg->tg, cfg->url, "ws") < 0)
    return -1;
  if (!deadline_set)
    cfg->deadline = cfg->warmup + cfg->duration + cfg->hold + 30;
  if (cfg->mode == MODE_ECHO) {
    uint64_t rx = (uint64_t)cfg->conns * (uint64_t)(cfg->size + HF_FRAME_MAX_HEADER);
    if (rx > RX_BUDGET) {
      fprintf(stderr,
              "holdfast bench: -c %ld x -s %ld may need %.1f GiB of receive "
              "buffers (limit 2 GiB); lower -c or -s\n",
              cfg->conns, cfg->size, (double)rx / (double)(1ull << 30));
      return -1;
    }
    if (cfg->verify &&
        (uint64_t)cfg->conns * (uint64_t)cfg->inflight > FIFO_BUDGET) {
      fprintf(stderr, "holdfast bench: -V keeps one timestamp per message in "
                      "flight; -c x -k must stay below %llu\n",
              (unsigned long long)FIFO_BUDGET);
      return -1;
    }
  }
  return 0;
}

/* What every message looks like on the wire (B.wtmpl, B.wlen, B.ts_off,
 * B.wire_op). With -z: a stored DEFLATE block with the 16 timestamp bytes
 * (so they can change without recompressing), then the rest of the template
 * compressed once by a fresh compressor (it refers to nothing before it),
 * the sync-flush tail removed (RFC 7692 7.2.1). 0, or -1 on OOM. */
static int wire_template(void) {
  size_t S = (size_t)B.cfg.size;
  if (!B.cfg.deflate) {
    B.wtmpl = B.tmpl;
    B.wlen = S;
    B.ts_off = 0;
    B.wire_op = B.opcode;
    return 0;
  }
  hf_deflate_enc *e = hf_deflate_enc_new(6, 8, 15);
  size_t bound = hf_deflate_bound(S - TS_LEN);
  B.wtmpl = e ? malloc(5 + TS_LEN + bound) : NULL;
  if (!B.wtmpl) {
    hf_deflate_enc_free(e);
    return -1;
  }
  static const uint8_t stored[5] = {0x00, TS_LEN, 0x00, (uint8_t)~TS_LEN, 0xff};
  memcpy(B.wtmpl, stored, 5);
  memset(B.wtmpl + 5, '0', TS_LEN);
  long n = hf_deflate_compress(e, 1, B.tmpl + TS_LEN, S - TS_LEN,
                               B.wtmpl + 5 + TS_LEN, bound);
  hf_deflate_enc_free(e);
  if (n < 0)
    return -1;
  B.wlen = 5 + TS_LEN + (size_t)n;
  B.ts_off = 5;
  B.wire_op = (uint8_t)(B.opcode | HF_FRAME_RSV1);
  return 0;
}

static void on_signal(int sig) {
  (void)sig;
  B.stop = 1;
}

/* The mode named by -m (or -mMODE) in argv, or NULL. */
static const char *requested_mode(int argc, char **argv) {
  const char *mode = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0)
      break;
    if (strcmp(argv[i], "-m") == 0 && i + 1 < argc)
      mode = argv[++i];
    else if (strncmp(argv[i], "-m", 2) == 0 && argv[i][2])
      mode = argv[i] + 2;
  }
  return mode;
}

int bench_main(int argc, char **argv) {
  const char *mode = requested_mode(argc, argv);
  if (mode && (strcmp(mode, "fanout") == 0 || strcmp(mode, "churn") == 0))
    return bench_rt_main(argc, argv);
  if (mode && strcmp(mode, "recover") == 0)
    return bench_recover_main(argc, argv);
  if (mode && (strcmp(mode, "reconnect") == 0 || strcmp(mode, "flood") == 0))
    return bench_storm_main(argc, argv);
  if (mode && strcmp(mode, "sendpath") == 0)
    return bench_send_main(argc, argv);
  memset(&B, 0, sizeof B);
  RS.n = 0;
  bench_cfg *cfg = &B.cfg;
  cfg->mode = MODE_ECHO;
  cfg->url = "ws://127.0.0.1:8000/echo";
  cfg->tg.allow_tls = 1;
  cfg->conns = 100;
  cfg->inflight = 16;
  cfg->size = 32;
  cfg->duration = 5;
  cfg->warmup = 1;
  cfg->pending_max = 64;
  cfg->hold = 5;
  int r = parse_args(cfg, argc, argv);
  if (r != 0) {
    if (r < 0)
      fprintf(stderr, "(holdfast bench --help lists the options)\n");
    return r > 0 ? 0 : 2;
  }
  if (bu_raise_nofile(cfg->conns) < 0)
    return 2;
  if (cfg->server_pid <= 0) {
    char why[160];
    cfg->server_pid = bu_find_listener(cfg->tg.dst.ss_family, cfg->tg.port, why, sizeof why);
    if (cfg->server_pid > 0)
      cfg->pid_found = 1;
    else
      fprintf(stderr, "holdfast bench: server figures omitted: %s\n", why);
  } else if (bu_proc_cpu(cfg->server_pid) < 0) {
    fprintf(stderr, "holdfast bench: -R %ld: no such process\n", cfg->server_pid);
    return 2;
  }
  if (cfg->mode == MODE_IDLE && cfg->server_pid <= 0)
    fprintf(stderr, "holdfast bench: idle mode without a server PID reports no "
                    "RSS figures\n");
  B.nsrc = bu_source_addresses(cfg->tg.dst.ss_family, cfg->conns);

  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed || !seed)
    seed = bu_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
  B.rng = seed ? seed : 1;
  B.opcode = cfg->binary ? HF_OP_BINARY : HF_OP_TEXT;

  int rc = 2;
  B.ep = -1;
  B.conns = calloc((size_t)cfg->conns, sizeof *B.conns);
  B.rbuf = malloc(RBUF_SIZE);
  B.tmpl = malloc((size_t)cfg->size);
  if (!B.conns || !B.rbuf || !B.tmpl) {
    fprintf(stderr, "holdfast bench: out of memory\n");
    goto out;
  }
  for (long i = 0; i < cfg->conns; i++)
    B.conns[i].fd = -1;
  for (long i = 0; i < cfg->size; i++) /* 'a'..'z': valid UTF-8 text */
    B.tmpl[i] = (uint8_t)('a' + i % 26);
  if (wire_template() < 0) {
    fprintf(stderr, "holdfast bench: out of memory\n");
    goto out;
  }
  uint8_t h[HF_FRAME_MAX_HEADER], m[4] = {0};
  B.hdr_len = hf_frame_header(h, 1, B.wire_op, (uint64_t)B.wlen, m);
  B.frame_len = B.hdr_len + B.wlen;
  size_t want = (size_t)cfg->inflight * B.frame_len + CTRL_CAP;
  B.wcap = want < WBUF_MIN ? WBUF_MIN : want > WBUF_MAX ? WBUF_MAX : want;
  B.wbuf = malloc(B.wcap + CTRL_CAP);
  if (!B.wbuf) {
    fprintf(stderr, "holdfast bench: out of memory\n");
    goto out;
  }
  B.ep = epoll_create1(EPOLL_CLOEXEC);
  if (B.ep < 0) {
    perror("holdfast bench: epoll_create1");
    goto out;
  }
  if (cfg->tg.tls) {
    /* no verification: a loopback load generator measuring the server */
    hf_tls_client_config tc = {.insecure = 1, .alpn_http11 = 1};
    char why[256];
    B.tlsc = hf_tls_client_new(&tc, why, sizeof why);
    if (!B.tlsc) {
      fprintf(stderr, "holdfast bench: TLS: %s\n", why);
      goto out;
    }
  }
  struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  signal(SIGPIPE, SIG_IGN);
  rc = run();
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
out:
  if (B.conns)
    for (long i = 0; i < cfg->conns; i++)
      conn_release(&B.conns[i]);
  if (B.ep >= 0)
    close(B.ep);
  free(B.conns);
  free(B.rbuf);
  free(B.wbuf);
  if (B.wtmpl != B.tmpl)
    free(B.wtmpl);
  free(B.tmpl);
  hf_tls_client_free(B.tlsc);
  B.tlsc = NULL;
  free(B.zbuf);
  return rc;
}
