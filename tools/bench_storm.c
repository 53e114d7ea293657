/* SPDX-License-Identifier: MIT */
/* `holdfast bench -m reconnect|flood`: failure-shaped load. One thread,
 * level-triggered epoll, loopback only, bounded by a hard deadline.
 *
 *   reconnect  N clients connect (WebSocket upgrade; with --rt also the
 *              protocol's connect command and its reply), then all lose
 *              their connection at once: the bench resets them itself
 *              (--trigger self) or waits for the server to drop them (a
 *              restart, a chaos cut: --trigger server). Each reconnects
 *              after a delay: SDK-like full-jitter backoff (the centrifuge
 *              SDK's: min + random(0, min(max, min * 2^attempt)), capped at
 *              max) or none (retry at once). Reported: the time until all
 *              are back, per-client reconnect time percentiles, attempts and
 *              why they failed, and the arrival curve (reconnections per
 *              time bucket since the drop).
 *   flood      K observers each keep one small echo in flight at a fixed
 *              rate and measure its round trip; after a baseline, one
 *              flooder sends S-byte messages as fast as the socket takes
 *              them (reading its echoes or, by default, not). Reported: the
 *              flooder's rate and fate (closed by the server with which
 *              code, after how long), the observers' round-trip p50/p99/max
 *              before and during the flood and their failures. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hf/err.h"
#include "hf/frame.h"

#include "bench.h"
#include "bench_util.h"

#define NS BU_NS_PER_S
#define MS 1000000ull
#define MAX_CONNS 100000
#define RBUF_SIZE (1u << 20)
#define HS_MAX 8192
#define SETUP_TIMEOUT_NS (10 * NS) /* connect + handshake (+ connect reply) */
#define MAX_ROWS 40                /* arrival curve rows at most */
#define NONE_FLOOR_NS (5 * MS)     /* --backoff none: at most one attempt per 5 ms */

enum { M_RECONNECT, M_FLOOD };
enum { T_SELF, T_SERVER };
enum { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_CONNECT_REPLY, C_UP, C_WAIT, C_DONE };
enum { K_CLIENT, K_OBSERVER, K_FLOODER };

typedef struct {
  int fd;
  uint8_t state, kind, ev_out, counted;
  uint8_t noread; /* the flooder that never reads: EPOLLIN off */
  uint32_t idx;
  char key[25];
  uint8_t *in; /* response head, or the tail of an incomplete frame */
  uint32_t in_len, in_cap;
  bu_out out;
  hf_ws_parser ps;
  uint32_t attempt;
  uint64_t t_start, t_drop, t_next;
  uint64_t t_sent; /* observer: its echo in flight since (0: none) */
} sconn;

static struct {
  int mode, trigger, backoff_jitter, rt, json, flood_read, drop_rst;
  const char *url;
  bu_target tg;
  long n, pending, size;
  double min_delay, max_delay, wait, deadline, warmup, duration, rate, bucket;
  char token[512];
} cfg;

static struct {
  sconn *c;
  int ep, nsrc;
  uint8_t *rbuf, *payload;
  uint64_t rng, t_begin, t_deadline;
  volatile sig_atomic_t stop;
  bu_fails fails;
  bu_results res;
  /* reconnect */
  int storm;
  long up, done, attempts, next_connect;
  uint64_t t_drop0, t_last_up;
  uint64_t *arrivals; /* per client: reconnect time since its drop */
  long narr;
  /* flood */
  int flooding;
  uint64_t t_flood0, t_flood_end, flood_msgs, flood_bytes, flood_echoes, t_flood_gone;
  char flood_fate[160];
  bu_hist base, during;
  long obs_fail;
} S;

static uint32_t rnd32(void) { /* xorshift64* */
  S.rng ^= S.rng >> 12;
  S.rng ^= S.rng << 25;
  S.rng ^= S.rng >> 27;
  return (uint32_t)((S.rng * 0x2545F4914F6CDD1Dull) >> 32);
}

static double secs(uint64_t ns) { return (double)ns / 1e9; }

/* ------------------------------------------------------------ connections */

static void set_out(sconn *c, int want) {
  if (c->ev_out == want || c->fd < 0)
    return;
  struct epoll_event ev = {.events = (c->noread ? 0u : EPOLLIN) | (want ? EPOLLOUT : 0u),
                           .data.ptr = c};
  epoll_ctl(S.ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->ev_out = (uint8_t)want;
}

static void release(sconn *c, int rst) {
  if (c->fd >= 0) {
    if (rst) {
      struct linger lg = {1, 0};
      setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(c->fd);
  }
  c->fd = -1;
  free(c->in);
  c->in = NULL;
  bu_out_free(&c->out);
  c->in_len = c->in_cap = 0;
  c->ev_out = 0;
}

/* The delay before attempt number `attempt` (0 = the first reconnect). */
static uint64_t backoff_ns(uint32_t attempt) {
  if (!cfg.backoff_jitter)
    return NONE_FLOOR_NS;
  double mn = cfg.min_delay, mx = cfg.max_delay;
  double span = mn * pow(2, attempt > 31 ? 31 : attempt);
  if (span > mx)
    span = mx;
  double d = mn + span * ((double)rnd32() / 4294967296.0);
  if (d > mx)
    d = mx;
  return (uint64_t)(d * 1e9);
}

/* A client lost its connection (or an attempt failed): schedule the next
 * attempt during the storm; before it, count a setup failure. */
static void on_readable(sconn *c);

static void conn_down(sconn *c, const char *why) {
  char saved[160];
  if (c->kind == K_FLOODER && c->noread && c->fd >= 0) {
    /* before giving up on the flooder that never read, read what arrived:
     * a close frame from the server explains its end better than ours */
    snprintf(saved, sizeof saved, "%s", why);
    c->noread = 0;
    int avail = 0;
    for (int i = 0; i < 4096 && c->fd >= 0; i++) {
      if (ioctl(c->fd, FIONREAD, &avail) < 0 || avail <= 0)
        break;
      on_readable(c);
    }
    if (c->fd < 0)
      return;
    why = saved;
  }
  int was_up = c->state == C_UP;
  release(c, 0);
  uint64_t now = bu_now_ns();
  if (c->kind == K_FLOODER) {
    if (!S.t_flood_gone) {
      S.t_flood_gone = now;
      snprintf(S.flood_fate, sizeof S.flood_fate, "%s", why);
    }
    c->state = C_DONE;
    return;
  }
  if (c->kind == K_OBSERVER) {
    bu_fail(&S.fails, "observer: %s", why);
    S.obs_fail++;
    c->state = C_DONE;
    return;
  }
  if (was_up)
    S.up--;
  if (!S.storm) {
    if (was_up && cfg.trigger == T_SERVER) { /* the trigger: the storm begins */
      S.storm = 1;
      S.t_drop0 = now;
    } else {
      bu_fail(&S.fails, "setup: %s", why);
      c->state = C_DONE;
      S.done++;
      return;
    }
  }
  if (was_up) {
    c->t_drop = now;
    c->attempt = 0;
  } else {
    bu_fail(&S.fails, "attempt: %s", why);
    c->attempt++;
  }
  c->state = C_WAIT;
  c->t_next = now + backoff_ns(c->attempt);
}

static int flush(sconn *c) {
  int r = bu_out_send(&c->out, c->fd);
  if (r < 0) {
    char why[96];
    snprintf(why, sizeof why, "send: %s", strerror(errno));
    conn_down(c, why);
    return -1;
  }
  set_out(c, r == BU_OUT_AGAIN);
  return 0;
}

static int ws_queue(sconn *c, int op, const void *p, size_t n) {
  uint8_t stack[1024], *f = n + HF_FRAME_MAX_HEADER <= sizeof stack ? stack : malloc(n + 14);
  if (!f)
    return -1;
  int r = bu_out_add(&c->out, f, bu_client_frame(f, op, p, n, rnd32()));
  if (f != stack)
    free(f);
  return r;
}

static void start(sconn *c) {
  c->state = C_CONNECTING;
  c->t_start = bu_now_ns();
  c->in_len = 0;
  S.attempts += c->kind == K_CLIENT && S.storm;
  char why[128];
  if (bu_open_socket(&cfg.tg, S.nsrc, c->idx, S.ep, c, &c->fd, why, sizeof why) < 0) {
    conn_down(c, why);
    return;
  }
  c->ev_out = 1;
}

static void came_up(sconn *c, uint64_t now) {
  c->state = C_UP;
  S.up++;
  free(c->in); /* an idle client holds no buffers */
  c->in = NULL;
  c->in_cap = c->in_len = 0;
  if (S.storm && c->kind == K_CLIENT) {
    S.arrivals[S.narr++] = now - c->t_drop;
    S.t_last_up = now;
  }
}

/* ------------------------------------------------------------ input */

static void on_text(sconn *c, const uint8_t *p, size_t n, uint64_t now) {
  if (c->kind == K_OBSERVER) {
    if (c->t_sent) {
      bu_hist_add(S.flooding ? &S.during : &S.base, now - c->t_sent);
      c->t_sent = 0;
    }
    return;
  }
  if (c->kind == K_FLOODER) {
    S.flood_echoes++;
    return;
  }
  /* --rt: lines of the protocol */
  size_t off = 0;
  while (off < n && c->fd >= 0) {
    const uint8_t *nl = memchr(p + off, '\n', n - off);
    size_t end = nl ? (size_t)(nl - p) : n, ll = end - off;
    const uint8_t *l = p + off;
    if (ll == 2 && l[0] == '{' && l[1] == '}') {
      if (ws_queue(c, HF_OP_TEXT, "{}", 2) < 0)
        conn_down(c, "out of memory");
    } else if (c->state == C_CONNECT_REPLY && memmem(l, ll, "\"id\":1", 6)) {
      if (memmem(l, ll, "\"error\"", 7)) {
        char why[160];
        snprintf(why, sizeof why, "connect refused: %.*s", (int)(ll > 100 ? 100 : ll), l);
        conn_down(c, why);
        return;
      }
      came_up(c, now);
    } else if (memmem(l, ll, "\"disconnect\"", 12)) {
      conn_down(c, "server disconnect push");
      return;
    }
    off = end + 1;
  }
}

/* Parse the frames in buf[0..len); returns bytes used, -1 if c went down. */
static ssize_t feed(sconn *c, uint8_t *buf, size_t len, uint64_t now) {
  size_t off = 0;
  while (off < len) {
    hf_ws_event ev;
    ssize_t r = hf_ws_parse(&c->ps, buf + off, len - off, &ev, NULL);
    if (r == HF_EAGAIN)
      break;
    if (r < 0) {
      conn_down(c, "bad frame from the server");
      return -1;
    }
    off += (size_t)r;
    if (ev.type == HF_WS_EV_DATA && ev.fin) {
      on_text(c, ev.data, ev.len, now); /* only whole small messages matter */
    } else if (ev.type == HF_WS_EV_PING) {
      if (ws_queue(c, HF_OP_PONG, ev.data, ev.len) < 0) {
        conn_down(c, "out of memory");
        return -1;
      }
    } else if (ev.type == HF_WS_EV_CLOSE) {
      char why[160];
      snprintf(why, sizeof why, "closed by the server: %u %.*s", ev.close_code,
               (int)(ev.close_reason_len > 100 ? 100 : ev.close_reason_len),
               (const char *)ev.close_reason);
      conn_down(c, why);
      return -1;
    }
    if (c->fd < 0)
      return -1;
  }
  return (ssize_t)off;
}

static void keep_tail(sconn *c, const uint8_t *p, size_t n) {
  if (n > c->in_cap) {
    uint8_t *b = realloc(c->in, n);
    if (!b) {
      conn_down(c, "out of memory");
      return;
    }
    c->in = b;
    c->in_cap = (uint32_t)n;
  }
  if (n)
    memmove(c->in, p, n);
  c->in_len = (uint32_t)n;
}

static void after_101(sconn *c, size_t extra, uint64_t now) {
  memset(&c->ps, 0, sizeof c->ps);
  c->ps.max_message = 64u << 20;
  if (cfg.rt && c->kind == K_CLIENT) {
    char m[700];
    int n = cfg.token[0]
                ? snprintf(m, sizeof m, "{\"connect\":{\"token\":\"%s\"},\"id\":1}", cfg.token)
                : snprintf(m, sizeof m, "{\"connect\":{},\"id\":1}");
    if (ws_queue(c, HF_OP_TEXT, m, (size_t)n) < 0) {
      conn_down(c, "out of memory");
      return;
    }
    c->state = C_CONNECT_REPLY;
  } else {
    came_up(c, now);
  }
  if (extra) {
    memcpy(S.rbuf, c->in + (c->in_len - extra), extra);
    ssize_t u = feed(c, S.rbuf, extra, now);
    if (u < 0)
      return;
    keep_tail(c, S.rbuf + u, extra - (size_t)u);
  } else {
    c->in_len = 0;
  }
  if (c->fd >= 0 && bu_out_pending(&c->out))
    flush(c);
}

static void on_readable(sconn *c) {
  uint64_t now = bu_now_ns();
  char why[160];
  if (c->state == C_HANDSHAKE) {
    if (!c->in && !(c->in = malloc(HS_MAX))) {
      conn_down(c, "out of memory");
      return;
    }
    c->in_cap = HS_MAX;
    size_t hl;
    int st = bu_read_head(c->fd, (char *)c->in, &c->in_len, HS_MAX, &hl, why, sizeof why);
    if (st == BU_HEAD_ERROR) {
      conn_down(c, why);
      return;
    }
    if (st == BU_HEAD_MORE)
      return;
    const char *bad = bu_check_101((const char *)c->in, hl, c->key, 0, why, sizeof why);
    if (bad) {
      conn_down(c, bad);
      return;
    }
    after_101(c, c->in_len - hl, now);
    return;
  }
  size_t have = c->in_len;
  if (have)
    memcpy(S.rbuf, c->in, have);
  ssize_t r = recv(c->fd, S.rbuf + have, RBUF_SIZE - have, 0);
  if (r == 0) {
    conn_down(c, "the server closed TCP without a close frame");
    return;
  }
  if (r < 0) {
    if (errno == EAGAIN || errno == EINTR)
      return;
    snprintf(why, sizeof why, "recv: %s", strerror(errno));
    conn_down(c, why);
    return;
  }
  size_t total = have + (size_t)r;
  ssize_t u = feed(c, S.rbuf, total, now);
  if (u < 0)
    return;
  keep_tail(c, S.rbuf + u, total - (size_t)u);
  if (c->fd >= 0 && bu_out_pending(&c->out) && !c->ev_out)
    flush(c);
}

static void on_connected(sconn *c) {
  int err = bu_socket_error(c->fd);
  if (err) {
    char why[96];
    snprintf(why, sizeof why, "connect: %s", strerror(err));
    conn_down(c, why);
    return;
  }
  bu_ws_key(c->key, rnd32);
  char req[1400];
  int n = bu_upgrade_request(req, sizeof req, &cfg.tg, c->key);
  if (n <= 0 || (size_t)n >= sizeof req || bu_out_add(&c->out, req, (size_t)n) < 0) {
    conn_down(c, "cannot build the upgrade request");
    return;
  }
  c->state = C_HANDSHAKE;
  flush(c);
}

static void wait_events(uint64_t until) {
  struct epoll_event evs[1024];
  uint64_t now = bu_now_ns();
  uint64_t ms = until > now ? (until - now + MS - 1) / MS : 0;
  if (ms > 20)
    ms = 20;
  int n = epoll_wait(S.ep, evs, 1024, (int)ms);
  for (int i = 0; i < n; i++) {
    sconn *c = evs[i].data.ptr;
    uint32_t e = evs[i].events;
    if (c->fd < 0)
      continue;
    if (c->state == C_CONNECTING) {
      if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        on_connected(c);
      continue;
    }
    if ((e & EPOLLOUT) && flush(c) < 0)
      continue;
    if (e & (EPOLLIN | EPOLLERR | EPOLLHUP))
      on_readable(c);
  }
}

/* Connections in setup longer than the timeout fail. */
static void check_timeouts(uint64_t now) {
  for (long i = 0; i < cfg.n; i++) {
    sconn *c = &S.c[i];
    if ((c->state == C_CONNECTING || c->state == C_HANDSHAKE || c->state == C_CONNECT_REPLY) &&
        now - c->t_start > SETUP_TIMEOUT_NS)
      conn_down(c, c->state == C_CONNECTING ? "connect timeout (10 s)"
                   : c->state == C_HANDSHAKE ? "handshake timeout (10 s)"
                                             : "no connect reply within 10 s");
  }
}

/* ------------------------------------------------------------ reconnect */

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int run_reconnect(void) {
  uint64_t t_last_check = 0, t_wait_end = 0;
  int phase = 0; /* 0 connect all, 1 waiting for the drop, 2 storm, 3 end */
  while (phase != 3) {
    uint64_t now = bu_now_ns(), wake = now + 20 * MS;
    if (S.stop || now >= S.t_deadline)
      break;
    if (now - t_last_check > 100 * MS) {
      t_last_check = now;
      check_timeouts(now);
    }
    if (phase == 0) {
      long pending = 0;
      for (long i = 0; i < S.next_connect; i++)
        pending += S.c[i].state == C_CONNECTING || S.c[i].state == C_HANDSHAKE ||
                   S.c[i].state == C_CONNECT_REPLY;
      while (S.next_connect < cfg.n && pending < cfg.pending) {
        start(&S.c[S.next_connect++]);
        pending++;
      }
      if (S.next_connect == cfg.n && S.up + S.done == cfg.n) {
        if (S.up == 0)
          break;
        printf("holdfast bench: reconnect %s, %ld client%s up; %s\n", cfg.url, S.up,
               S.up == 1 ? "" : "s",
               cfg.trigger == T_SELF ? "dropping them all now"
                                     : "waiting for the server to drop them");
        fflush(stdout);
        if (cfg.trigger == T_SELF) {
          S.storm = 1;
          S.t_drop0 = bu_now_ns();
          for (long i = 0; i < cfg.n; i++) {
            sconn *c = &S.c[i];
            if (c->state != C_UP)
              continue;
            release(c, cfg.drop_rst);
            S.up--;
            c->t_drop = S.t_drop0;
            c->attempt = 0;
            c->state = C_WAIT;
            c->t_next = S.t_drop0 + backoff_ns(0);
          }
          phase = 2;
        } else {
          phase = 1;
          t_wait_end = now + (uint64_t)(cfg.wait * 1e9);
        }
      }
    } else if (phase == 1) {
      if (S.storm)
        phase = 2;
      else if (now >= t_wait_end)
        break;
    }
    if (phase == 2) {
      long waiting = 0, storm_done = 1;
      for (long i = 0; i < cfg.n; i++) {
        sconn *c = &S.c[i];
        if (c->state == C_WAIT) {
          if (c->t_next <= now)
            start(c);
          else if (c->t_next < wake)
            wake = c->t_next;
          waiting++;
        }
        if (c->state != C_UP && c->state != C_DONE)
          storm_done = 0;
      }
      if (storm_done && S.up + S.done == cfg.n && S.narr + S.done >= cfg.n)
        phase = 3;
      else if (!storm_done && cfg.trigger == T_SERVER && S.up && !waiting) {
        /* clients still up and not dropped yet: keep waiting for them */
      }
    }
    if (phase != 3)
      wait_events(wake < S.t_deadline ? wake : S.t_deadline);
  }
  uint64_t t_end = bu_now_ns();
  int deadline = t_end >= S.t_deadline, ok = S.storm && S.narr == cfg.n && !S.done;
  /* ---- report */
  double total = S.narr && S.t_last_up > S.t_drop0 ? secs(S.t_last_up - S.t_drop0) : 0;
  qsort(S.arrivals, (size_t)S.narr, sizeof *S.arrivals, cmp_u64);
#define PCT(q) (S.narr ? secs(S.arrivals[(size_t)((double)(S.narr - 1) * (q))]) : 0)
  printf("  storm     %s, %s backoff", cfg.trigger == T_SELF ? (cfg.drop_rst ? "reset by the bench" : "closed by the bench") : "dropped by the server",
         cfg.backoff_jitter ? "SDK-like full-jitter" : "no");
  if (cfg.backoff_jitter)
    printf(" (min %g s, max %g s)", cfg.min_delay, cfg.max_delay);
  printf("\n");
  printf("  back      %ld of %ld in %.3f s; per client p50 %.3f s, p90 %.3f s, p99 %.3f s, "
         "max %.3f s\n",
         S.narr, cfg.n, total, PCT(0.5), PCT(0.9), PCT(0.99), PCT(1.0));
  printf("  attempts  %ld (%.2f per client), failed %ld\n", S.attempts,
         cfg.n ? (double)S.attempts / (double)cfg.n : 0.0, S.attempts - S.narr);
  /* the arrival curve: rows of `bucket` seconds since the drop */
  double b = cfg.bucket;
  double span = S.narr ? secs(S.arrivals[S.narr - 1]) : 0;
  while (span / b > MAX_ROWS)
    b *= 2;
  long rows = S.narr ? (long)(span / b) + 1 : 0, peak = 0;
  long *cnt = calloc((size_t)(rows ? rows : 1), sizeof *cnt);
  for (long i = 0; cnt && i < S.narr; i++)
    cnt[(long)(secs(S.arrivals[i]) / b)]++;
  for (long r = 0; cnt && r < rows; r++)
    if (cnt[r] > peak)
      peak = cnt[r];
  printf("  arrivals  reconnections per %.3g s since the drop (peak %.0f/s):\n", b,
         (double)peak / b);
  for (long r = 0; cnt && r < rows; r++) {
    int bar = peak ? (int)((double)cnt[r] * 50 / (double)peak + 0.5) : 0;
    printf("    +%7.3f s %7ld %.*s\n", (double)r * b, cnt[r], bar,
           "##################################################");
  }
  bu_results *rs = &S.res;
  bu_res(rs, "mode", BU_STR, "reconnect");
  bu_res(rs, "url", BU_STR, "%s", cfg.url);
  bu_res(rs, "clients", BU_NUM, "%ld", cfg.n);
  bu_res(rs, "trigger", BU_STR, "%s", cfg.trigger == T_SELF ? "self" : "server");
  bu_res(rs, "backoff", BU_STR, "%s", cfg.backoff_jitter ? "jitter" : "none");
  bu_res(rs, "reconnected", BU_NUM, "%ld", S.narr);
  bu_res(rs, "all_back_s", BU_NUM, "%.3f", total);
  bu_res(rs, "p50_s", BU_NUM, "%.3f", PCT(0.5));
  bu_res(rs, "p90_s", BU_NUM, "%.3f", PCT(0.9));
  bu_res(rs, "p99_s", BU_NUM, "%.3f", PCT(0.99));
  bu_res(rs, "attempts", BU_NUM, "%ld", S.attempts);
  bu_res(rs, "peak_per_s", BU_NUM, "%.0f", (double)peak / b);
  bu_res(rs, "bucket_s", BU_NUM, "%g", b);
  char curve[112];
  size_t o = 0;
  for (long r = 0; cnt && r < rows && o + 12 < sizeof curve; r++)
    o += (size_t)snprintf(curve + o, sizeof curve - o, "%s%ld", r ? "," : "", cnt[r]);
  curve[o] = 0;
  bu_res(rs, "curve", BU_STR, "%s", curve);
  bu_res(rs, "status", BU_STR, "%s", deadline ? "deadline" : S.stop ? "interrupted" : ok ? "ok" : "failed");
#undef PCT
  free(cnt);
  bu_fail_print(&S.fails);
  if (!S.storm)
    fprintf(stderr, "holdfast bench: the connections were never dropped%s\n",
            cfg.trigger == T_SERVER ? " (--wait elapsed)" : "");
  if (deadline)
    fprintf(stderr, "holdfast bench: hard deadline (-T %g s) reached\n", cfg.deadline);
  bu_res_print(rs, cfg.json);
  return ok && !deadline && !S.stop ? 0 : 1;
}

/* ------------------------------------------------------------ flood */

static void flooder_push(sconn *c) {
  /* keep about 256 KiB handed to the kernel or queued: as fast as it takes */
  while (c->fd >= 0 && S.flooding && bu_out_pending(&c->out) < 256 * 1024) {
    if (ws_queue(c, HF_OP_TEXT, S.payload, (size_t)cfg.size) < 0) {
      conn_down(c, "out of memory");
      return;
    }
    S.flood_msgs++;
    S.flood_bytes += (uint64_t)cfg.size;
  }
  if (c->fd >= 0 && bu_out_pending(&c->out))
    flush(c);
}

static int run_flood(void) {
  long nobs = cfg.n;
  sconn *fl = &S.c[nobs];
  uint64_t period = (uint64_t)(1e9 / cfg.rate), t_last_check = 0;
  for (long i = 0; i <= nobs; i++)
    start(&S.c[i]);
  while (S.up < nobs + 1) {
    uint64_t now = bu_now_ns();
    if (S.stop || now >= S.t_deadline || S.obs_fail || fl->state == C_DONE)
      break;
    if (now - t_last_check > 100 * MS) {
      t_last_check = now;
      check_timeouts(now);
    }
    wait_events(now + 20 * MS);
  }
  int ready = S.up == nobs + 1;
  uint64_t t0 = bu_now_ns(), t_base_end = t0 + (uint64_t)(cfg.warmup * 1e9);
  uint64_t t_end = t_base_end + (uint64_t)(cfg.duration * 1e9);
  if (!cfg.flood_read && fl->fd >= 0) { /* never read: the server's queue grows */
    fl->noread = 1;
    struct epoll_event ev = {.events = fl->ev_out ? EPOLLOUT : 0u, .data.ptr = fl};
    epoll_ctl(S.ep, EPOLL_CTL_MOD, fl->fd, &ev);
  }
  for (long i = 0; ready && i < nobs; i++)
    S.c[i].t_next = t0 + (uint64_t)i * period / (uint64_t)nobs; /* spread */
  while (ready) {
    uint64_t now = bu_now_ns(), wake = now + 20 * MS;
    if (S.stop || now >= S.t_deadline || now >= t_end)
      break;
    if (!S.flooding && now >= t_base_end) {
      S.flooding = 1;
      S.t_flood0 = now;
    }
    if (S.flooding && fl->fd >= 0) {
      if (!cfg.flood_read && bu_socket_error(fl->fd)) /* reset while not reading */
        conn_down(fl, "connection reset by the server");
      else
        flooder_push(fl);
    }
    for (long i = 0; i < nobs; i++) {
      sconn *c = &S.c[i];
      if (c->state != C_UP)
        continue;
      if (!c->t_sent && c->t_next <= now) {
        static const char ping[32] = "observer round trip 0123456789ab";
        c->t_sent = now;
        c->t_next += period;
        if (c->t_next < now)
          c->t_next = now + period;
        if (ws_queue(c, HF_OP_TEXT, ping, sizeof ping) == 0)
          flush(c);
      } else if (c->t_sent && now - c->t_sent > 10 * NS) {
        conn_down(c, "no echo within 10 s");
      }
      if (c->t_next < wake)
        wake = c->t_next;
    }
    if (S.flooding && fl->fd >= 0 && wake > now + MS)
      wake = now + MS; /* keep the flood going */
    wait_events(wake < t_end ? wake : t_end);
  }
  S.t_flood_end = bu_now_ns();
  int deadline = S.t_flood_end >= S.t_deadline;
  double fl_s = S.t_flood0 ? secs((S.t_flood_gone ? S.t_flood_gone : S.t_flood_end) - S.t_flood0) : 0;
  double b50 = (double)bu_hist_quantile(&S.base, 0.5) / 1e3, b99 = (double)bu_hist_quantile(&S.base, 0.99) / 1e3,
         d50 = (double)bu_hist_quantile(&S.during, 0.5) / 1e3, d99 = (double)bu_hist_quantile(&S.during, 0.99) / 1e3;
  printf("holdfast bench: flood %s, %ld observer%s at %g round trips/s each, one flooder of "
         "%ld-byte messages (%s its echoes)\n",
         cfg.url, nobs, nobs == 1 ? "" : "s", cfg.rate, cfg.size,
         cfg.flood_read ? "reading" : "never reading");
  printf("  flooder   %" PRIu64 " messages = %.1f MB in %.3f s (%.0f msgs/s), %" PRIu64 " echoes read; %s%s\n",
         S.flood_msgs, (double)S.flood_bytes / 1e6, fl_s, fl_s > 0 ? (double)S.flood_msgs / fl_s : 0,
         S.flood_echoes, S.t_flood_gone ? "ended: " : "still connected at the end",
         S.t_flood_gone ? S.flood_fate : "");
  if (S.t_flood_gone)
    printf("  ended     %.3f s after the flood began\n", secs(S.t_flood_gone - S.t_flood0));
  printf("  observers round trip before: p50 %.1f us, p99 %.1f us, max %.1f us (%" PRIu64 ")\n", b50,
         b99, (double)S.base.max / 1e3, S.base.n);
  printf("            during the flood: p50 %.1f us, p99 %.1f us, max %.1f us (%" PRIu64
         "); p99 ratio %.2f; failures %ld\n",
         d50, d99, (double)S.during.max / 1e3, S.during.n, b99 > 0 ? d99 / b99 : 0, S.obs_fail);
  bu_results *rs = &S.res;
  bu_res(rs, "mode", BU_STR, "flood");
  bu_res(rs, "url", BU_STR, "%s", cfg.url);
  bu_res(rs, "observers", BU_NUM, "%ld", nobs);
  bu_res(rs, "size", BU_NUM, "%ld", cfg.size);
  bu_res(rs, "flood_read", BU_NUM, "%d", cfg.flood_read);
  bu_res(rs, "flood_msgs", BU_NUM, "%" PRIu64, S.flood_msgs);
  bu_res(rs, "flood_MBps", BU_NUM, "%.2f", fl_s > 0 ? (double)S.flood_bytes / 1e6 / fl_s : 0);
  bu_res(rs, "flooder_ended", BU_NUM, "%d", S.t_flood_gone != 0);
  if (S.t_flood_gone)
    bu_res(rs, "flooder_ended_after_s", BU_NUM, "%.3f", secs(S.t_flood_gone - S.t_flood0));
  bu_res(rs, "flooder_fate", BU_STR, "%s", S.t_flood_gone ? S.flood_fate : "connected");
  bu_res(rs, "base_p50_us", BU_NUM, "%.1f", b50);
  bu_res(rs, "base_p99_us", BU_NUM, "%.1f", b99);
  bu_res(rs, "flood_p50_us", BU_NUM, "%.1f", d50);
  bu_res(rs, "flood_p99_us", BU_NUM, "%.1f", d99);
  bu_res(rs, "flood_max_us", BU_NUM, "%.1f", (double)S.during.max / 1e3);
  bu_res(rs, "observer_failures", BU_NUM, "%ld", S.obs_fail);
  int ok = ready && !S.obs_fail && S.during.n > 0 && !deadline && !S.stop;
  bu_res(rs, "status", BU_STR, "%s", deadline ? "deadline" : S.stop ? "interrupted" : ok ? "ok" : "failed");
  bu_fail_print(&S.fails);
  if (!ready)
    fprintf(stderr, "holdfast bench: not every connection opened\n");
  bu_res_print(rs, cfg.json);
  return ok ? 0 : 1;
}

/* ------------------------------------------------------------ arguments */

static void usage(FILE *out) {
  fprintf(out,
      "usage: holdfast bench -m reconnect|flood [options]\n"
      "Failure-shaped load; loopback only, bounded by a hard deadline.\n"
      "\n"
      "  reconnect  -c N clients connect (with --rt also the protocol's connect\n"
      "             command), then all lose their connection at once and\n"
      "             reconnect; reports the time until all are back, per-client\n"
      "             percentiles, attempts, failures and the arrival curve.\n"
      "  flood      -c K observers measure echo round trips at -r per second\n"
      "             each; after -w s one flooder sends -s byte messages as fast\n"
      "             as it can for -d s; reports its fate and the observers'\n"
      "             round trips before and during the flood.\n"
      "\n"
      "options [default]:\n"
      "  -u URL      ws://HOST:PORT/PATH, loopback only  [reconnect:\n"
      "              ws://127.0.0.1:8000/connection/websocket with --rt, else\n"
      "              /echo; flood: ws://127.0.0.1:8000/echo]\n"
      "  -c N        reconnect: clients, 1..100000 [1000]; flood: observers [10]\n"
      "  -C C        reconnect: most connects pending in the first phase [256]\n"
      "  --rt        reconnect: send {\"connect\":{..}} and wait for its reply\n"
      "  -t SECRET   reconnect --rt: an HS256 token {\"sub\":\"bench\"}\n"
      "  --trigger self|server  reconnect: the bench resets every connection\n"
      "              itself, or waits (--wait) for the server to drop them  [self]\n"
      "  --drop rst|fin  reconnect --trigger self: how                    [rst]\n"
      "  --wait D    reconnect --trigger server: most seconds to wait     [60]\n"
      "  --backoff jitter|none  reconnect: SDK-like full jitter or at once [jitter]\n"
      "  --min-delay D, --max-delay D  the backoff's bounds in seconds [0.5, 20]\n"
      "  --bucket D  reconnect: arrival curve bucket in seconds (widened to fit\n"
      "              40 rows)                                             [0.1]\n"
      "  -r R        flood: round trips per second per observer          [20]\n"
      "  -s S        flood: the flooder's message size in bytes, 1..16777216 [1024]\n"
      "  --flood-read  flood: the flooder reads its echoes (else never reads)\n"
      "  -w W        flood: seconds of baseline before the flood           [1]\n"
      "  -d D        flood: seconds of flood                               [3]\n"
      "  -T T        hard deadline in seconds    [reconnect: wait + max-delay x 4\n"
      "              + N/100 + 60; flood: W + D + 30]\n"
      "  -j          also print the result as one JSON line\n"
      "\n"
      "--backoff none retries at once (at most once per 5 ms per client): the\n"
      "herd without jitter. exit status: 0 all reconnected / observers never\n"
      "failed; 1 otherwise or the deadline; 2 usage error.\n");
}

static int parse_dsecs(const char *s, const char *name, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
    fprintf(stderr, "holdfast bench: --%s %s: want seconds from %g to %g\n", name, s, lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_args(int argc, char **argv) {
  enum { O_RT = 256, O_TRIGGER, O_DROP, O_WAIT, O_BACKOFF, O_MIN, O_MAX, O_BUCKET, O_FREAD };
  static const struct option lo[] = {
      {"help", no_argument, NULL, 'h'},         {"rt", no_argument, NULL, O_RT},
      {"trigger", required_argument, NULL, O_TRIGGER}, {"drop", required_argument, NULL, O_DROP},
      {"wait", required_argument, NULL, O_WAIT}, {"backoff", required_argument, NULL, O_BACKOFF},
      {"min-delay", required_argument, NULL, O_MIN}, {"max-delay", required_argument, NULL, O_MAX},
      {"bucket", required_argument, NULL, O_BUCKET}, {"flood-read", no_argument, NULL, O_FREAD},
      {NULL, 0, NULL, 0}};
  char **av = calloc((size_t)argc + 2, sizeof *av);
  if (!av)
    return -1;
  static char prog[] = "holdfast bench";
  av[0] = prog;
  for (int i = 0; i < argc; i++)
    av[i + 1] = argv[i];
  int ac = argc + 1, opt, rc = 0, n_set = 0, deadline_set = 0;
  const char *secret = NULL;
  optind = 0;
  opterr = 1;
  while (rc == 0 && (opt = getopt_long(ac, av, "m:u:c:C:t:r:s:w:d:T:jh", lo, NULL)) != -1) {
    switch (opt) {
    case 'm': cfg.mode = strcmp(optarg, "flood") == 0 ? M_FLOOD : M_RECONNECT; break;
    case 'u': cfg.url = optarg; break;
    case 'c': rc = bu_parse_long(optarg, 'c', 1, MAX_CONNS, &cfg.n); n_set = 1; break;
    case 'C': rc = bu_parse_long(optarg, 'C', 1, MAX_CONNS, &cfg.pending); break;
    case 't': secret = optarg; break;
    case 'r': rc = parse_dsecs(optarg, "r (per second)", 0.1, 10000, &cfg.rate); break;
    case 's': rc = bu_parse_long(optarg, 's', 1, 16l << 20, &cfg.size); break;
    case 'w': rc = bu_parse_secs(optarg, 'w', 0, 3600, 0, &cfg.warmup); break;
    case 'd': rc = bu_parse_secs(optarg, 'd', 0, 3600, 1, &cfg.duration); break;
    case 'T': rc = bu_parse_secs(optarg, 'T', 0, 86400, 1, &cfg.deadline); deadline_set = 1; break;
    case 'j': cfg.json = 1; break;
    case O_RT: cfg.rt = 1; break;
    case O_FREAD: cfg.flood_read = 1; break;
    case O_TRIGGER:
      if (strcmp(optarg, "self") == 0 || strcmp(optarg, "server") == 0)
        cfg.trigger = optarg[1] == 'e' && optarg[2] == 'l' ? T_SELF : T_SERVER;
      else {
        fprintf(stderr, "holdfast bench: --trigger %s: want self or server\n", optarg);
        rc = -1;
      }
      break;
    case O_DROP:
      if (strcmp(optarg, "rst") == 0 || strcmp(optarg, "fin") == 0)
        cfg.drop_rst = optarg[0] == 'r';
      else {
        fprintf(stderr, "holdfast bench: --drop %s: want rst or fin\n", optarg);
        rc = -1;
      }
      break;
    case O_BACKOFF:
      if (strcmp(optarg, "jitter") == 0 || strcmp(optarg, "none") == 0)
        cfg.backoff_jitter = optarg[0] == 'j';
      else {
        fprintf(stderr, "holdfast bench: --backoff %s: want jitter or none\n", optarg);
        rc = -1;
      }
      break;
    case O_WAIT: rc = parse_dsecs(optarg, "wait", 0.1, 3600, &cfg.wait); break;
    case O_MIN: rc = parse_dsecs(optarg, "min-delay", 0, 600, &cfg.min_delay); break;
    case O_MAX: rc = parse_dsecs(optarg, "max-delay", 0.001, 3600, &cfg.max_delay); break;
    case O_BUCKET: rc = parse_dsecs(optarg, "bucket", 0.001, 60, &cfg.bucket); break;
    case 'h': usage(stdout); rc = 1; break;
    default: rc = -1; break;
    }
  }
  if (rc == 0 && optind < ac) {
    fprintf(stderr, "holdfast bench: unexpected argument \"%s\"\n", av[optind]);
    rc = -1;
  }
  free(av);
  if (rc != 0)
    return rc;
  if (cfg.min_delay > cfg.max_delay) {
    fprintf(stderr, "holdfast bench: --min-delay is above --max-delay\n");
    return -1;
  }
  if (!cfg.url)
    cfg.url = cfg.mode == M_RECONNECT && cfg.rt ? "ws://127.0.0.1:8000/connection/websocket"
                                                : "ws://127.0.0.1:8000/echo";
  if (!n_set)
    cfg.n = cfg.mode == M_FLOOD ? 10 : 1000;
  if (bu_parse_url(&cfg.tg, cfg.url, "ws") < 0)
    return -1;
  if (secret && (!*secret || bu_hs256_token(secret, cfg.token, sizeof cfg.token) < 0)) {
    fprintf(stderr, "holdfast bench: -t: cannot sign a token with that secret\n");
    return -1;
  }
  if (!deadline_set)
    cfg.deadline = cfg.mode == M_FLOOD ? cfg.warmup + cfg.duration + 30
                                       : (cfg.trigger == T_SERVER ? cfg.wait : 0) +
                                             cfg.max_delay * 4 + (double)cfg.n / 100 + 60;
  return 0;
}

static void on_signal(int sig) {
  (void)sig;
  S.stop = 1;
}

int bench_storm_main(int argc, char **argv) {
  memset(&cfg, 0, sizeof cfg);
  memset(&S, 0, sizeof S);
  cfg.pending = 256;
  cfg.backoff_jitter = 1;
  cfg.drop_rst = 1;
  cfg.min_delay = 0.5;
  cfg.max_delay = 20;
  cfg.wait = 60;
  cfg.bucket = 0.1;
  cfg.rate = 20;
  cfg.size = 1024;
  cfg.warmup = 1;
  cfg.duration = 3;
  int r = parse_args(argc, argv);
  if (r != 0) {
    if (r < 0)
      fprintf(stderr, "(holdfast bench -m reconnect --help lists the options)\n");
    return r > 0 ? 0 : 2;
  }
  long nconns = cfg.n + (cfg.mode == M_FLOOD);
  if (bu_raise_nofile(nconns) < 0)
    return 2;
  S.nsrc = bu_source_addresses(cfg.tg.dst.ss_family, nconns * 2);
  if (getrandom(&S.rng, sizeof S.rng, 0) != (ssize_t)sizeof S.rng || !S.rng)
    S.rng = bu_now_ns() | 1;
  int rc = 2;
  S.ep = epoll_create1(EPOLL_CLOEXEC);
  S.c = calloc((size_t)nconns, sizeof *S.c);
  S.rbuf = malloc(RBUF_SIZE);
  S.arrivals = calloc((size_t)cfg.n, sizeof *S.arrivals);
  S.payload = malloc((size_t)cfg.size);
  if (S.ep < 0 || !S.c || !S.rbuf || !S.arrivals || !S.payload) {
    fprintf(stderr, "holdfast bench: out of memory\n");
    goto out;
  }
  for (long i = 0; i < cfg.size; i++)
    S.payload[i] = (uint8_t)('a' + i % 26);
  for (long i = 0; i < nconns; i++) {
    S.c[i].fd = -1;
    S.c[i].idx = (uint32_t)i;
    S.c[i].kind = cfg.mode == M_RECONNECT ? K_CLIENT : i < cfg.n ? K_OBSERVER : K_FLOODER;
  }
  struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  signal(SIGPIPE, SIG_IGN);
  S.t_begin = bu_now_ns();
  S.t_deadline = S.t_begin + (uint64_t)(cfg.deadline * 1e9);
  rc = cfg.mode == M_FLOOD ? run_flood() : run_reconnect();
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
out:
  for (long i = 0; S.c && i < nconns; i++)
    release(&S.c[i], 0);
  if (S.ep >= 0)
    close(S.ep);
  free(S.c);
  free(S.rbuf);
  free(S.arrivals);
  free(S.payload);
  return rc;
}
