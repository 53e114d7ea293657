/* SPDX-License-Identifier: MIT */
/* `holdfast chaos`: a fault-injecting TCP proxy for WebSocket tests and
 * failure drills, on one hf_loop. Each accepted connection gets its own
 * upstream connection; bytes pass unchanged (observed by chaos_track) unless
 * a rule delays, throttles, blackholes, rewrites (strip Upgrade), refuses,
 * answers or cuts. Rules come from flags or a JSON file and are replaced at
 * run time through a loopback HTTP control endpoint (POST /rules, GET
 * /stats, ...). Every action is a JSON log line on stderr and a counter. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hf/conn.h"
#include "hf/handshake.h"
#include "hf/http.h"
#include "hf/loop.h"

#include "config.h" /* srv_config_parse_duration */
#include "log.h"

#include "chaos.h"

#define TICK_MS 5                 /* timer granularity: latency is +- this */
#define RBUF_SIZE (256 * 1024)    /* the loop's shared receive buffer */
#define QCAP (1u << 20)           /* bytes held per direction before reading stops */
#define CONTROL_MAX_BODY (64 * 1024)
#define RESPOND_LINGER_MS 2000    /* after a canned answer: wait for the client's FIN */
#define DEFAULT_MAX_CONNS 20000

#define container_of(p, T, m) ((T *)((char *)(p) - offsetof(T, m)))

/* ------------------------------------------------------------ state */

typedef struct chunk {
  struct chunk *next;
  uint64_t due; /* loop ms: not before */
  uint32_t len, off;
  uint8_t data[];
} chunk;

/* One direction of a connection: bytes read from io[d], written to io[1-d]. */
typedef struct {
  chunk *head, *tail;
  size_t queued;        /* bytes in the chunks, not yet written */
  uint64_t last_due;
  uint64_t in, fwd;     /* bytes accepted (forwarded or queued), bytes written */
  uint64_t dropped;     /* discarded (blackhole) */
  uint64_t cut_at;      /* cut once fwd reaches this (CHAOS_OFF: no) */
  double tokens;        /* bandwidth bucket */
  uint64_t tok_t;
  chaos_track tr;
  uint8_t eof, shut, blackholed, blocked, hold;
} cdir;

typedef struct cpair {
  struct cpair *next, *prev;
  uint64_t id;
  hf_io io[2]; /* 0: the client's socket, 1: the upstream socket */
  cdir d[2];
  hf_timer timer;
  chaos_rules r;
  uint64_t t_accept, t_upgrade, t_active;
  uint8_t connecting, upgraded, dead, cut_armed, responding;
  int8_t first_eof; /* direction whose source sent FIN first, -1 none */
  uint8_t io_dead[2]; /* socket failed under a blackhole: out of epoll */
  uint8_t reg[2];     /* socket registered with the loop */
  uint8_t bh_logged[2];
  char client[64], up_local[64];
} cpair;

static struct {
  hf_loop *loop;
  uint8_t *rbuf;
  size_t rcap;
  chaos_ruleset rules;
  struct sockaddr_storage up_addr;
  socklen_t up_len;
  char upstream[128], listen_addr[128], control_addr[128];
  hf_io lis, ctl_lis, sig;
  hf_conn_ctx *ctl;
  cpair live; /* list head */
  cpair *grave;
  hf_deferred reaper;
  hf_timer exit_timer;
  uint64_t next_id, max_conns, rng;
  struct {
    uint64_t accepted, active, refused, responded, upstream_failed, closed, over_limit;
    uint64_t upgrades, http_responses, bytes[2], frames[2], close_frames[2];
    uint64_t cut_after, cut_after_bytes, cut_mid_frame, idle_kill, cut_control;
    uint64_t blackholed_connections, blackholed_bytes, stripped, delayed_chunks,
        throttled_waits, rules_changes;
  } st;
} G;

static const char *const dir_name[2] = {"up", "down"};

/* ------------------------------------------------------------ helpers */

static uint64_t rnd64(void) { /* xorshift64* */
  G.rng ^= G.rng >> 12;
  G.rng ^= G.rng << 25;
  G.rng ^= G.rng >> 27;
  return G.rng * 0x2545F4914F6CDD1Dull;
}

static uint64_t now_ms(void) { return hf_loop_now(G.loop); }

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t cap) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
    snprintf(out, cap, "[%s]:%u", ip, ntohs(s6->sin6_port));
  } else {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
    snprintf(out, cap, "%s:%u", ip, ntohs(s4->sin_port));
  }
}

static void log_conn(srv_logline *l, srv_log_level lvl, const char *event, const cpair *p) {
  srv_log_begin(l, lvl, event);
  srv_log_int(l, "conn", (long long)p->id);
}

/* Parse HOST:PORT ([v6]:PORT; HOST numeric or "localhost"). Returns 0, or
 * -1 with why. *loopback tells whether the address is a loopback one. */
static int parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len,
                          int *loopback, const char **why) {
  char host[64];
  const char *colon;
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof host) {
      *why = "expected [IPv6]:PORT";
      return -1;
    }
    snprintf(host, sizeof host, "%.*s", (int)(rb - s - 1), s + 1);
    colon = rb + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof host) {
      *why = "expected HOST:PORT";
      return -1;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - s), s);
  }
  char *end;
  errno = 0;
  long port = strtol(colon + 1, &end, 10);
  if (errno || end == colon + 1 || *end || port < 0 || port > 65535) {
    *why = "the port must be 0..65535";
    return -1;
  }
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
  if (strcasecmp(host, "localhost") == 0)
    snprintf(host, sizeof host, "127.0.0.1");
  if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    *len = sizeof *s4;
    *loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
  } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    *len = sizeof *s6;
    *loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
  } else {
    *why = "HOST must be a numeric IPv4/IPv6 address or localhost";
    return -1;
  }
  return 0;
}

static int listen_on(const char *spec, hf_io *io,
                     void (*cb)(hf_loop *, hf_io *, uint32_t), char *real, size_t rcap) {
  struct sockaddr_storage ss;
  socklen_t sl;
  int lo;
  const char *why = NULL;
  if (parse_hostport(spec, &ss, &sl, &lo, &why) < 0) {
    fprintf(stderr, "holdfast chaos: \"%s\": %s\n", spec, why);
    return -1;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0)
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 4096) < 0) {
    fprintf(stderr, "holdfast chaos: cannot listen on %s: %s\n", spec, strerror(errno));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  addr_text(&ss, real, rcap);
  io->fd = fd;
  io->cb = cb;
  hf_loop_add(G.loop, io, EPOLLIN);
  return 0;
}

/* ------------------------------------------------------------ pairs */

static void pair_update(cpair *p);
static void pair_rearm(cpair *p);
static void flush_dir(cpair *p, int d);

static void free_queue(cdir *x) {
  while (x->head) {
    chunk *c = x->head;
    x->head = c->next;
    free(c);
  }
  x->tail = NULL;
  x->queued = 0;
}

static void close_fd(cpair *p, int i, int rst) {
  hf_io *io = &p->io[i];
  if (io->fd < 0)
    return;
  if (rst) {
    struct linger lg = {1, 0};
    setsockopt(io->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  if (p->reg[i])
    hf_loop_del(G.loop, io);
  p->reg[i] = 0;
  close(io->fd);
  io->fd = -1;
}

/* End a connection: close both sockets (rst_client / rst_upstream pick RST
 * over FIN per side), log `chaos_closed` with how, free it later. */
static void pair_end(cpair *p, const char *how, int rst_client, int rst_upstream) {
  if (p->dead)
    return;
  p->dead = 1;
  srv_logline l;
  log_conn(&l, LOG_INFO, "chaos_closed", p);
  srv_log_str(&l, "how", how);
  srv_log_int(&l, "bytes_up", (long long)p->d[CHAOS_UP].fwd);
  srv_log_int(&l, "bytes_down", (long long)p->d[CHAOS_DOWN].fwd);
  srv_log_int(&l, "frames_up", (long long)p->d[CHAOS_UP].tr.frames);
  srv_log_int(&l, "frames_down", (long long)p->d[CHAOS_DOWN].tr.frames);
  srv_log_int(&l, "duration_ms", (long long)(now_ms() - p->t_accept));
  srv_log_end(&l);
  close_fd(p, 0, rst_client);
  close_fd(p, 1, rst_upstream);
  hf_timer_cancel(G.loop, &p->timer);
  p->prev->next = p->next;
  p->next->prev = p->prev;
  p->next = G.grave;
  G.grave = p;
  hf_loop_defer(G.loop, &G.reaper);
  G.st.active--;
  G.st.closed++;
}

static void reap(hf_loop *loop, hf_deferred *d) {
  while (G.grave) {
    cpair *p = G.grave;
    G.grave = p->next;
    for (int i = 0; i < 2; i++) {
      free_queue(&p->d[i]);
      chaos_track_free(&p->d[i].tr);
    }
    free(p);
  }
}

/* A cut by a rule or the control endpoint: both sides at once, FIN or RST
 * per cut-mode (or the given mode when rst >= 0). */
static void pair_cut(cpair *p, const char *why, int rst, uint64_t *counter) {
  if (p->dead)
    return;
  if (rst < 0)
    rst = p->r.cut_rst;
  int mid = chaos_track_inside_frame(&p->d[CHAOS_UP].tr) ||
            chaos_track_inside_frame(&p->d[CHAOS_DOWN].tr);
  srv_logline l;
  log_conn(&l, LOG_INFO, "chaos_cut", p);
  srv_log_str(&l, "why", why);
  srv_log_str(&l, "mode", rst ? "rst" : "fin");
  srv_log_bool(&l, "mid_frame", mid);
  srv_log_bool(&l, "upgraded", p->upgraded);
  srv_log_int(&l, "queued_dropped",
              (long long)(p->d[CHAOS_UP].queued + p->d[CHAOS_DOWN].queued));
  srv_log_int(&l, "age_ms", (long long)(now_ms() - p->t_accept));
  srv_log_end(&l);
  (*counter)++;
  pair_end(p, "cut", rst, rst);
}

static uint64_t anchor(const cpair *p) {
  if (p->r.from_upgrade)
    return p->upgraded ? p->t_upgrade : CHAOS_OFF;
  return p->t_accept;
}

static uint64_t after(uint64_t base, uint64_t delta) {
  return base == CHAOS_OFF || delta == CHAOS_OFF ? CHAOS_OFF : base + delta;
}

static void start_blackhole(cpair *p, int d) {
  cdir *x = &p->d[d];
  if (x->blackholed)
    return;
  x->blackholed = 1;
  x->dropped += x->queued;
  G.st.blackholed_bytes += x->queued;
  free_queue(x);
  x->blocked = 0;
  if (!p->bh_logged[0] && !p->bh_logged[1])
    G.st.blackholed_connections++;
  p->bh_logged[d] = 1;
  srv_logline l;
  log_conn(&l, LOG_INFO, "chaos_blackhole", p);
  srv_log_str(&l, "dir", dir_name[d]);
  srv_log_int(&l, "age_ms", (long long)(now_ms() - p->t_accept));
  srv_log_end(&l);
}

/* Apply the time rules; then write what is due. */
static void pair_tick(cpair *p) {
  if (p->dead)
    return;
  uint64_t now = now_ms(), a = anchor(p);
  if (!p->cut_armed && now >= after(a, p->r.cut_after_ms)) {
    if (!p->r.cut_mid_frame) {
      pair_cut(p, "cut-after", -1, &G.st.cut_after);
      return;
    }
    p->cut_armed = 1;
  }
  for (int d = 0; d < 2; d++)
    if (now >= after(a, p->r.dir[d].blackhole_after_ms))
      start_blackhole(p, d);
  if (now >= after(p->t_active, p->r.idle_kill_ms)) {
    pair_cut(p, "idle-kill", -1, &G.st.idle_kill);
    return;
  }
  if (p->responding && now >= p->t_active + RESPOND_LINGER_MS) {
    pair_end(p, "responded", 0, 0);
    return;
  }
  for (int d = 0; d < 2 && !p->dead; d++)
    flush_dir(p, d);
  if (!p->dead) {
    pair_update(p);
    pair_rearm(p);
  }
}

static void on_pair_timer(hf_loop *loop, hf_timer *t) {
  pair_tick(container_of(t, cpair, timer));
}

/* Milliseconds until direction d can write again (due chunk or tokens);
 * CHAOS_OFF when it waits for nothing timed. */
static uint64_t dir_wait(const cpair *p, int d, uint64_t now) {
  const cdir *x = &p->d[d];
  if (!x->head || x->blocked || p->dead)
    return CHAOS_OFF;
  if (x->head->due > now)
    return x->head->due - now;
  uint64_t bw = p->r.dir[d].bandwidth;
  if (!bw)
    return 0;
  double burst = bw / 20.0 < 1 ? 1 : bw / 20.0;
  double need = x->head->len - x->head->off;
  if (need > burst)
    need = burst;
  if (x->tokens >= need)
    return 0;
  uint64_t ms = (uint64_t)((need - x->tokens) * 1000.0 / (double)bw) + 1;
  return ms;
}

static void pair_rearm(cpair *p) {
  if (p->dead)
    return;
  uint64_t now = now_ms(), due = CHAOS_OFF, a = anchor(p);
  uint64_t ts[4] = {p->cut_armed ? CHAOS_OFF : after(a, p->r.cut_after_ms),
                    after(p->t_active, p->r.idle_kill_ms),
                    p->d[0].blackholed ? CHAOS_OFF : after(a, p->r.dir[0].blackhole_after_ms),
                    p->d[1].blackholed ? CHAOS_OFF : after(a, p->r.dir[1].blackhole_after_ms)};
  for (int i = 0; i < 4; i++)
    if (ts[i] < due)
      due = ts[i];
  for (int d = 0; d < 2; d++) {
    uint64_t w = dir_wait(p, d, now);
    if (w != CHAOS_OFF && now + w < due)
      due = now + w;
  }
  if (p->responding && p->t_active + RESPOND_LINGER_MS < due)
    due = p->t_active + RESPOND_LINGER_MS;
  if (due == CHAOS_OFF)
    hf_timer_cancel(G.loop, &p->timer);
  else
    hf_timer_set(G.loop, &p->timer, due > now ? due - now : 0);
}

/* Register what each socket waits for: reading while its direction has
 * room (or discards), writing while the other direction is blocked. */
static void pair_update(cpair *p) {
  if (p->dead)
    return;
  for (int i = 0; i < 2; i++) {
    hf_io *io = &p->io[i];
    if (io->fd < 0 || p->io_dead[i])
      continue;
    uint32_t ev = 0;
    const cdir *rd = &p->d[i], *wd = &p->d[1 - i];
    if (i == 1 && p->connecting) {
      ev = EPOLLOUT;
    } else {
      if (!rd->eof && (rd->blackholed || rd->queued < QCAP))
        ev |= EPOLLIN;
      if (wd->blocked)
        ev |= EPOLLOUT;
    }
    if (!p->reg[i]) {
      if (ev && hf_loop_add(G.loop, io, ev) == 0)
        p->reg[i] = 1;
    } else {
      hf_loop_mod(G.loop, io, ev);
    }
  }
}

static int enqueue(cpair *p, int d, const uint8_t *data, size_t n, uint64_t due) {
  cdir *x = &p->d[d];
  chunk *c = malloc(sizeof *c + n);
  if (!c)
    return -1;
  c->next = NULL;
  c->due = due;
  c->len = (uint32_t)n;
  c->off = 0;
  memcpy(c->data, data, n);
  if (x->tail)
    x->tail->next = c;
  else
    x->head = c;
  x->tail = c;
  x->queued += n;
  return 0;
}

/* cut-after-bytes: how many of n more accepted bytes may pass (all, or
 * up to the limit, which then becomes the cut point); with cut-mid-frame
 * reaching the limit arms a cut in the next frame instead. */
static size_t byte_limit(cpair *p, int d, size_t n) {
  cdir *x = &p->d[d];
  uint64_t lim = p->r.dir[d].cut_after_bytes;
  if (x->cut_at != CHAOS_OFF || lim == CHAOS_OFF || x->in + n < lim)
    return n;
  if (p->r.cut_mid_frame) {
    p->cut_armed = 1;
    return n;
  }
  x->cut_at = lim;
  return (size_t)(lim - x->in);
}

/* Forward n accepted bytes in direction d: straight to the socket when no
 * rule holds them, else queued with their due time. */
static void forward(cpair *p, int d, const uint8_t *data, size_t n) {
  cdir *x = &p->d[d];
  const chaos_dir_rules *r = &p->r.dir[d];
  if (!n || p->dead)
    return;
  n = byte_limit(p, d, n);
  x->in += n;
  uint64_t now = now_ms();
  int timed = r->latency_ms || r->jitter_ms;
  if (!timed && !r->bandwidth && !x->head && !x->blocked && x->cut_at == CHAOS_OFF &&
      !(d == CHAOS_UP && p->connecting)) {
    ssize_t w = send(p->io[1 - d].fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
      pair_end(p, d == CHAOS_UP ? "upstream write failed" : "client write failed",
               d == CHAOS_UP, d == CHAOS_DOWN);
      return;
    }
    if (w < 0)
      w = 0;
    x->fwd += (uint64_t)w;
    G.st.bytes[d] += (uint64_t)w;
    data += w;
    n -= (size_t)w;
    if (!n)
      return;
    x->blocked = 1;
    if (enqueue(p, d, data, n, now) < 0)
      pair_end(p, "out of memory", 1, 1);
    return;
  }
  uint64_t due = now;
  if (timed) {
    int64_t delay = (int64_t)r->latency_ms;
    if (r->jitter_ms)
      delay += (int64_t)(rnd64() % (2 * r->jitter_ms + 1)) - (int64_t)r->jitter_ms;
    due = now + (uint64_t)(delay > 0 ? delay : 0);
    if (due < x->last_due)
      due = x->last_due; /* TCP keeps order: no chunk overtakes another */
    x->last_due = due;
    G.st.delayed_chunks++;
  }
  if (enqueue(p, d, data, n, due) < 0) {
    pair_end(p, "out of memory", 1, 1);
    return;
  }
  flush_dir(p, d);
}

/* Write what is due in direction d, within the bandwidth. */
static void flush_dir(cpair *p, int d) {
  cdir *x = &p->d[d];
  const chaos_dir_rules *r = &p->r.dir[d];
  uint64_t now = now_ms();
  if (r->bandwidth) {
    double burst = r->bandwidth / 20.0 < 1 ? 1 : r->bandwidth / 20.0;
    x->tokens += (double)(now - x->tok_t) * (double)r->bandwidth / 1000.0;
    if (x->tokens > burst)
      x->tokens = burst;
  }
  x->tok_t = now;
  while (x->head && !x->blocked && !p->dead && !(d == CHAOS_UP && p->connecting)) {
    chunk *c = x->head;
    if (c->due > now)
      break;
    size_t n = c->len - c->off;
    if (r->bandwidth) {
      if (x->tokens < 1) {
        G.st.throttled_waits++;
        break;
      }
      if ((double)n > x->tokens)
        n = (size_t)x->tokens;
    }
    if (x->cut_at != CHAOS_OFF && x->fwd + n > x->cut_at)
      n = (size_t)(x->cut_at - x->fwd);
    ssize_t w = n ? send(p->io[1 - d].fd, c->data + c->off, n, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        x->blocked = 1;
        break;
      }
      pair_end(p, d == CHAOS_UP ? "upstream write failed" : "client write failed",
               d == CHAOS_UP, d == CHAOS_DOWN);
      return;
    }
    x->fwd += (uint64_t)w;
    G.st.bytes[d] += (uint64_t)w;
    x->queued -= (size_t)w;
    c->off += (uint32_t)w;
    if (r->bandwidth)
      x->tokens -= (double)w;
    if (c->off == c->len) {
      x->head = c->next;
      if (!x->head)
        x->tail = NULL;
      free(c);
    }
    if (x->cut_at != CHAOS_OFF && x->fwd >= x->cut_at) {
      pair_cut(p, p->r.cut_mid_frame ? "cut-mid-frame" : "cut-after-bytes", -1,
               p->r.cut_mid_frame ? &G.st.cut_mid_frame : &G.st.cut_after_bytes);
      return;
    }
    if ((size_t)w < n) {
      x->blocked = 1;
      break;
    }
  }
  if (p->dead)
    return;
  if (!x->head && x->eof && !x->shut && p->io[1 - d].fd >= 0) {
    shutdown(p->io[1 - d].fd, SHUT_WR); /* pass the FIN on */
    x->shut = 1;
  }
  if (p->d[0].shut && p->d[1].shut)
    pair_end(p, p->first_eof == CHAOS_UP ? "client closed" : "upstream closed", 0, 0);
  else if (p->responding && d == CHAOS_DOWN && !x->head && !x->shut) {
    shutdown(p->io[0].fd, SHUT_WR);
    x->shut = 1;
  }
}

/* ------------------------------------------------------------ heads */

static void respond_canned(cpair *p) {
  char body[CHAOS_RESPOND_MAX + 64], buf[2 * CHAOS_RESPOND_MAX + 512];
  if (p->r.respond_body[0])
    snprintf(body, sizeof body, "%s", p->r.respond_body);
  else
    snprintf(body, sizeof body, "holdfast chaos: canned %u response\n", p->r.respond);
  int n = hf_http_write_response(buf, sizeof buf, p->r.respond, "X-Chaos: canned response\r\n",
                                 "text/plain; charset=utf-8", body, strlen(body));
  const char *path = "";
  int plen = 0;
  if (p->d[CHAOS_UP].tr.head_len) { /* the request target, for the log */
    const char *h = p->d[CHAOS_UP].tr.head, *sp = memchr(h, ' ', p->d[CHAOS_UP].tr.head_len);
    if (sp) {
      const char *sp2 = memchr(sp + 1, ' ', p->d[CHAOS_UP].tr.head_len - (size_t)(sp + 1 - h));
      path = sp + 1;
      plen = sp2 ? (int)(sp2 - sp - 1) : 0;
    }
  }
  srv_logline l;
  log_conn(&l, LOG_INFO, "chaos_responded", p);
  srv_log_int(&l, "status", p->r.respond);
  srv_log_strn(&l, "path", path, (size_t)plen);
  srv_log_end(&l);
  G.st.responded++;
  p->responding = 1;
  p->d[CHAOS_UP].blackholed = 1; /* whatever else the client sends is dropped */
  if (n > 0)
    forward(p, CHAOS_DOWN, (const uint8_t *)buf, (size_t)n);
  if (!p->dead)
    flush_dir(p, CHAOS_DOWN); /* passes the FIN on once it left */
}

/* The up direction held its bytes until the request head was complete
 * (strip-upgrade): send the head rewritten, then the rest unchanged. */
static void release_head(cpair *p, const uint8_t *rest, size_t rest_n) {
  cdir *x = &p->d[CHAOS_UP];
  x->hold = 0;
  if (p->r.respond) {
    respond_canned(p);
    return;
  }
  const char *h = x->tr.head;
  size_t have = x->tr.head_have, hl = x->tr.head_len;
  if (h && hl && p->r.strip_upgrade) {
    char out[CHAOS_HEAD_MAX];
    int removed = 0;
    long n = chaos_strip_upgrade(h, hl, out, sizeof out, &removed);
    srv_logline l;
    log_conn(&l, LOG_INFO, "chaos_strip_upgrade", p);
    srv_log_int(&l, "removed", removed);
    srv_log_end(&l);
    G.st.stripped++;
    if (n > 0)
      forward(p, CHAOS_UP, (const uint8_t *)out, (size_t)n);
    forward(p, CHAOS_UP, (const uint8_t *)h + hl, have - hl);
  } else if (h) {
    forward(p, CHAOS_UP, (const uint8_t *)h, have);
  }
  forward(p, CHAOS_UP, rest, rest_n);
}

static void on_head(cpair *p, int d) {
  chaos_track *t = &p->d[d].tr;
  if (d == CHAOS_DOWN) {
    if (t->status == 101) {
      p->upgraded = 1;
      p->t_upgrade = now_ms();
      G.st.upgrades++;
      if (p->r.cut_mid_frame && p->r.cut_after_ms == CHAOS_OFF &&
          p->r.dir[0].cut_after_bytes == CHAOS_OFF && p->r.dir[1].cut_after_bytes == CHAOS_OFF)
        p->cut_armed = 1;
    } else {
      G.st.http_responses++;
      p->d[CHAOS_UP].tr.phase = CHAOS_TRACK_RAW; /* HTTP, not frames */
      chaos_track_free(&p->d[CHAOS_UP].tr);
    }
    srv_logline l;
    log_conn(&l, LOG_INFO, "chaos_response", p);
    srv_log_int(&l, "status", t->status);
    srv_log_end(&l);
    chaos_track_free(t);
  }
}

/* ------------------------------------------------------------ I/O */

static void read_dir(cpair *p, int d) {
  cdir *x = &p->d[d];
  hf_io *src = &p->io[d];
  size_t cap = G.rcap;
  if (!x->blackholed && QCAP - x->queued < cap)
    cap = QCAP - x->queued;
  if (!cap)
    return;
  ssize_t n = recv(src->fd, G.rbuf, cap, 0);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR)
      return;
    if (x->blackholed) { /* a half-open path passes no reset either; the
                            dead socket stops reporting (EPOLLERR) */
      if (p->reg[d])
        hf_loop_del(G.loop, src);
      p->reg[d] = 0;
      p->io_dead[d] = 1;
      n = 0;
    }
  }
  if (n < 0) {
    /* a reset (or error) on one side resets the other */
    pair_end(p, d == CHAOS_UP ? "client reset" : "upstream reset", d == CHAOS_DOWN,
             d == CHAOS_UP);
    return;
  }
  p->t_active = now_ms();
  if (n == 0) {
    x->eof = 1;
    if (p->first_eof < 0)
      p->first_eof = (int8_t)d;
    if (p->responding && d == CHAOS_UP) {
      pair_end(p, "responded", 0, 0);
      return;
    }
    if (x->blackholed) { /* a half-open path passes no FIN either */
      x->shut = 1;
      if (p->d[1 - d].eof)
        pair_end(p, "both sides gone (blackholed)", 0, 0);
      return;
    }
    if (x->hold) { /* the client gave up before its head was complete */
      x->hold = 0;
      if (x->tr.head)
        forward(p, d, (const uint8_t *)x->tr.head, x->tr.head_have);
    }
    flush_dir(p, d);
    return;
  }
  if (x->blackholed) {
    x->dropped += (uint64_t)n;
    G.st.blackholed_bytes += (uint64_t)n;
    return;
  }
  uint8_t *buf = G.rbuf;
  size_t len = (size_t)n;
  if (x->hold) {
    uint32_t before = x->tr.head_have;
    chaos_track_feed(&x->tr, buf, len);
    size_t copied = x->tr.head_have - before;
    if (x->tr.phase != CHAOS_TRACK_HEAD) {
      G.st.frames[d] = G.st.frames[d] + x->tr.frames;
      release_head(p, buf + copied, len - copied);
      chaos_track_free(&x->tr);
    }
    return;
  }
  /* a cut waiting for a frame lands in the middle of this one */
  size_t cut = p->cut_armed ? chaos_track_mid_frame(&x->tr, buf, len) : SIZE_MAX;
  if (cut != SIZE_MAX)
    len = cut;
  else
    len = byte_limit(p, d, len); /* the tracker sees only what passes */
  uint64_t frames0 = x->tr.frames;
  unsigned ev = chaos_track_feed(&x->tr, buf, len);
  G.st.frames[d] += x->tr.frames - frames0;
  if (ev & CHAOS_EV_CLOSE) {
    G.st.close_frames[d]++;
    srv_logline l;
    log_conn(&l, LOG_INFO, "chaos_close_frame", p);
    srv_log_str(&l, "dir", dir_name[d]);
    srv_log_int(&l, "code", x->tr.close_code);
    srv_log_end(&l);
  }
  if (cut != SIZE_MAX) {
    x->cut_at = x->in + len;
    p->cut_armed = 0;
    forward(p, d, buf, len);
    if (!p->dead && x->fwd >= x->cut_at)
      pair_cut(p, "cut-mid-frame", -1, &G.st.cut_mid_frame);
    return;
  }
  forward(p, d, buf, len);
  if ((ev & CHAOS_EV_HEAD) && !p->dead)
    on_head(p, d);
}

static void upstream_connected(cpair *p) {
  int err = 0;
  socklen_t el = sizeof err;
  getsockopt(p->io[1].fd, SOL_SOCKET, SO_ERROR, &err, &el);
  if (err) {
    G.st.upstream_failed++;
    srv_logline l;
    log_conn(&l, LOG_WARN, "chaos_upstream_failed", p);
    srv_log_str(&l, "upstream", G.upstream);
    srv_log_str(&l, "error", strerror(err));
    srv_log_end(&l);
    pair_end(p, "upstream unreachable", 1, 0);
    return;
  }
  p->connecting = 0;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(p->io[1].fd, (struct sockaddr *)&ss, &sl) == 0)
    addr_text(&ss, p->up_local, sizeof p->up_local);
  srv_logline l;
  log_conn(&l, LOG_INFO, "chaos_upstream", p);
  srv_log_str(&l, "client", p->client);
  srv_log_str(&l, "up_local", p->up_local);
  srv_log_end(&l);
  flush_dir(p, CHAOS_UP);
}

static void on_io(cpair *p, int i, uint32_t revents) {
  if (p->dead)
    return;
  if (i == 1 && p->connecting) {
    upstream_connected(p);
  } else {
    if (revents & EPOLLOUT) {
      p->d[1 - i].blocked = 0;
      flush_dir(p, 1 - i);
    }
    if (!p->dead && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
      read_dir(p, i);
  }
  if (!p->dead) {
    pair_update(p);
    pair_rearm(p);
  }
}

static void on_client_io(hf_loop *loop, hf_io *io, uint32_t ev) {
  on_io(container_of(io, cpair, io[0]), 0, ev);
}

static void on_upstream_io(hf_loop *loop, hf_io *io, uint32_t ev) {
  on_io(container_of(io, cpair, io[1]), 1, ev);
}

static void refuse_fd(int fd) {
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

static void on_accept(hf_loop *loop, hf_io *io, uint32_t revents) {
  for (int k = 0; k < 64; k++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(io->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    uint64_t id = ++G.next_id;
    char client[64];
    addr_text(&ss, client, sizeof client);
    const chaos_rules *r = chaos_ruleset_for(&G.rules, id);
    if (r->refuse || G.st.active >= G.max_conns) {
      srv_logline l;
      srv_log_begin(&l, LOG_INFO, r->refuse ? "chaos_refused" : "chaos_over_limit");
      srv_log_int(&l, "conn", (long long)id);
      srv_log_str(&l, "client", client);
      srv_log_end(&l);
      if (r->refuse)
        G.st.refused++;
      else
        G.st.over_limit++;
      refuse_fd(fd);
      continue;
    }
    cpair *p = calloc(1, sizeof *p);
    if (!p) {
      refuse_fd(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    p->id = id;
    p->first_eof = -1;
    p->r = *r;
    p->t_accept = p->t_active = now_ms();
    snprintf(p->client, sizeof p->client, "%s", client);
    p->io[0].fd = fd;
    p->io[0].cb = on_client_io;
    p->io[1].fd = -1;
    p->io[1].cb = on_upstream_io;
    p->timer.cb = on_pair_timer;
    for (int d = 0; d < 2; d++) {
      p->d[d].cut_at = CHAOS_OFF;
      p->d[d].tr.request = d == CHAOS_UP;
      p->d[d].tok_t = p->t_accept;
    }
    p->next = G.live.next;
    p->prev = &G.live;
    G.live.next->prev = p;
    G.live.next = p;
    G.st.accepted++;
    G.st.active++;
    srv_logline l;
    log_conn(&l, LOG_INFO, "chaos_accepted", p);
    srv_log_str(&l, "client", client);
    srv_log_end(&l);
    if (r->respond || r->strip_upgrade)
      p->d[CHAOS_UP].hold = 1;
    if (!r->respond) {
      int ufd = socket(G.up_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (ufd >= 0)
        setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (ufd < 0 || (connect(ufd, (struct sockaddr *)&G.up_addr, G.up_len) < 0 &&
                      errno != EINPROGRESS)) {
        int e = errno;
        if (ufd >= 0)
          close(ufd);
        G.st.upstream_failed++;
        log_conn(&l, LOG_WARN, "chaos_upstream_failed", p);
        srv_log_str(&l, "upstream", G.upstream);
        srv_log_str(&l, "error", strerror(e));
        srv_log_end(&l);
        pair_end(p, "upstream unreachable", 1, 0);
        continue;
      }
      p->io[1].fd = ufd;
      p->connecting = 1;
    }
    pair_update(p);
    pair_rearm(p);
  }
}

/* ------------------------------------------------------------ control */

static cpair *find_pair(uint64_t id) {
  for (cpair *p = G.live.next; p != &G.live; p = p->next)
    if (p->id == id)
      return p;
  return NULL;
}

/* New rules for a live connection: anchors stay, thresholds are re-checked
 * at once (a 10 s old connection given cut-after 5s is cut now). */
static void pair_set_rules(cpair *p, const chaos_rules *r) {
  p->r = *r;
  if (p->d[CHAOS_UP].hold && !r->strip_upgrade && !r->respond)
    release_head(p, NULL, 0); /* what was held leaves unchanged */
  if (!p->dead)
    pair_tick(p);
}

static void log_rules(const char *source, long long conn) {
  json_t *j = chaos_ruleset_json(&G.rules);
  char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
  srv_logline l;
  srv_log_begin(&l, LOG_INFO, "chaos_rules");
  srv_log_str(&l, "source", source);
  if (conn)
    srv_log_int(&l, "conn", conn);
  srv_log_str(&l, "rules", s ? s : "?");
  srv_log_end(&l);
  free(s);
  json_decref(j);
}

static json_t *stats_json(void) {
  json_t *o = json_object();
#define S(k, v) json_object_set_new(o, k, json_integer((json_int_t)(v)))
  S("accepted", G.st.accepted);
  S("active", G.st.active);
  S("refused", G.st.refused);
  S("over_limit", G.st.over_limit);
  S("responded", G.st.responded);
  S("upstream_failed", G.st.upstream_failed);
  S("closed", G.st.closed);
  S("upgrades", G.st.upgrades);
  S("http_responses", G.st.http_responses);
  S("bytes_up", G.st.bytes[0]);
  S("bytes_down", G.st.bytes[1]);
  S("frames_up", G.st.frames[0]);
  S("frames_down", G.st.frames[1]);
  S("close_frames_up", G.st.close_frames[0]);
  S("close_frames_down", G.st.close_frames[1]);
  S("cut_after", G.st.cut_after);
  S("cut_after_bytes", G.st.cut_after_bytes);
  S("cut_mid_frame", G.st.cut_mid_frame);
  S("idle_kill", G.st.idle_kill);
  S("cut_control", G.st.cut_control);
  S("blackholed_connections", G.st.blackholed_connections);
  S("blackholed_bytes", G.st.blackholed_bytes);
  S("stripped", G.st.stripped);
  S("delayed_chunks", G.st.delayed_chunks);
  S("throttled_waits", G.st.throttled_waits);
  S("rules_changes", G.st.rules_changes);
#undef S
  return o;
}

static json_t *connections_json(void) {
  json_t *a = json_array();
  uint64_t now = now_ms();
  for (cpair *p = G.live.next; p != &G.live; p = p->next) {
    json_t *o = json_pack("{sI ss ss sI sb sI sI sb sb}", "conn", (json_int_t)p->id,
                          "client", p->client, "up_local", p->up_local, "age_ms",
                          (json_int_t)(now - p->t_accept), "upgraded", p->upgraded,
                          "bytes_up", (json_int_t)p->d[0].fwd, "bytes_down",
                          (json_int_t)p->d[1].fwd, "blackholed_up", p->d[0].blackholed,
                          "blackholed_down", p->d[1].blackholed);
    json_array_append_new(a, o);
  }
  return a;
}

static void reply_json(hf_conn *c, int status, json_t *j) {
  char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (!s) {
    hf_conn_respond(c, 500, NULL, "text/plain; charset=utf-8", "out of memory\n", 14);
    return;
  }
  size_t n = strlen(s);
  char *body = realloc(s, n + 2);
  if (body) {
    body[n] = '\n';
    s = body;
    n++;
  }
  hf_conn_respond(c, status, NULL, "application/json", s, n);
  free(s);
}

static void reply_error(hf_conn *c, int status, const char *msg) {
  reply_json(c, status, json_pack("{ss}", "error", msg));
}

/* "conn=N" / "mode=rst" from a query string; 0 / -1 when absent. */
static int query_conn(const char *q, size_t n, uint64_t *conn, int *rst) {
  *conn = 0;
  *rst = -1;
  while (n) {
    const char *amp = memchr(q, '&', n);
    size_t l = amp ? (size_t)(amp - q) : n;
    if (l > 5 && strncmp(q, "conn=", 5) == 0) {
      char b[24];
      if (l - 5 >= sizeof b)
        return -1;
      memcpy(b, q + 5, l - 5);
      b[l - 5] = 0;
      char *end;
      unsigned long long v = strtoull(b, &end, 10);
      if (*end || !v)
        return -1;
      *conn = v;
    } else if (l == 8 && strncmp(q, "mode=rst", 8) == 0) {
      *rst = 1;
    } else if (l == 8 && strncmp(q, "mode=fin", 8) == 0) {
      *rst = 0;
    } else if (l) {
      return -1;
    }
    q += l + (amp ? 1 : 0);
    n -= l + (amp ? 1 : 0);
  }
  return 0;
}

typedef struct {
  uint64_t conn;
} ctl_req;

static void ctl_on_request(hf_conn *c, const hf_http_request *req) {
  const char *t = req->target, *qm = memchr(t, '?', req->target_len);
  size_t plen = qm ? (size_t)(qm - t) : req->target_len;
  uint64_t conn;
  int rst;
  if (query_conn(qm ? qm + 1 : "", qm ? req->target_len - plen - 1 : 0, &conn, &rst) < 0) {
    reply_error(c, 400, "bad query: use conn=N (and mode=fin|rst for /cut)");
    return;
  }
  int get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
  int post = req->method_len == 4 && memcmp(req->method, "POST", 4) == 0;
#define PATH(s) (plen == sizeof(s) - 1 && memcmp(t, s, plen) == 0)
  if (PATH("/stats") && get) {
    reply_json(c, 200, stats_json());
  } else if (PATH("/rules") && get) {
    reply_json(c, 200, chaos_ruleset_json(&G.rules));
  } else if (PATH("/connections") && get) {
    reply_json(c, 200, connections_json());
  } else if (PATH("/rules") && post) {
    const hf_http_header *cl = hf_http_find(req, "content-length");
    unsigned long len = cl ? strtoul(cl->value, NULL, 10) : 0;
    if (!cl || len == 0 || len > CONTROL_MAX_BODY) {
      reply_error(c, cl ? 413 : 411, "POST /rules needs a JSON body of 1 to 65536 bytes");
      return;
    }
    ctl_req *cr = malloc(sizeof *cr);
    if (!cr) {
      reply_error(c, 500, "out of memory");
      return;
    }
    cr->conn = conn;
    hf_conn_set_udata(c, cr);
    hf_conn_read_body(c, len);
  } else if (PATH("/cut") && post) {
    long n = 0;
    for (cpair *p = G.live.next, *nx; p != &G.live; p = nx) {
      nx = p->next;
      if (!conn || p->id == conn) {
        pair_cut(p, "control", rst, &G.st.cut_control);
        n++;
      }
    }
    if (conn && !n) {
      reply_error(c, 404, "no such live connection");
      return;
    }
    reply_json(c, 200, json_pack("{sI}", "cut", (json_int_t)n));
  } else if (PATH("/stats") || PATH("/rules") || PATH("/connections") || PATH("/cut")) {
    reply_error(c, 405, "GET /stats, GET /rules, GET /connections, POST /rules, POST /cut");
  } else {
    reply_error(c, 404, "endpoints: GET /stats, GET /rules, GET /connections, "
                        "POST /rules[?conn=N], POST /cut[?conn=N&mode=fin|rst]");
  }
#undef PATH
}

static void ctl_on_body(hf_conn *c, uint8_t *body, size_t len) {
  ctl_req *cr = hf_conn_udata(c);
  hf_conn_set_udata(c, NULL);
  uint64_t conn = cr ? cr->conn : 0;
  free(cr);
  char err[512];
  chaos_ruleset *next = malloc(sizeof *next);
  if (!next) {
    reply_error(c, 500, "out of memory");
    return;
  }
  if (chaos_ruleset_parse(next, (const char *)body, len, err, sizeof err) < 0) {
    srv_logline l;
    srv_log_begin(&l, LOG_WARN, "chaos_rules_rejected");
    srv_log_str(&l, "error", err);
    srv_log_end(&l);
    reply_error(c, 400, err);
    free(next);
    return;
  }
  G.st.rules_changes++;
  if (conn) { /* the top-level rules become connection conn's */
    size_t i = 0;
    while (i < G.rules.nconn && G.rules.conn[i].conn != conn)
      i++;
    if (i == CHAOS_MAX_CONN_RULES) {
      free(next);
      reply_error(c, 400, "too many per-connection rules (64)");
      return;
    }
    G.rules.conn[i].conn = conn;
    G.rules.conn[i].rules = next->all;
    if (i == G.rules.nconn)
      G.rules.nconn++;
    cpair *p = find_pair(conn);
    if (p)
      pair_set_rules(p, &next->all);
  } else {
    G.rules = *next;
    for (cpair *p = G.live.next, *nx; p != &G.live; p = nx) {
      nx = p->next;
      pair_set_rules(p, chaos_ruleset_for(&G.rules, p->id));
    }
  }
  free(next);
  log_rules("control", (long long)conn);
  reply_json(c, 200, json_pack("{sb so}", "ok", 1, "rules", chaos_ruleset_json(&G.rules)));
}

static void ctl_on_message(hf_conn *c, int opcode, uint8_t *data, size_t len) {}

static void ctl_on_close(hf_conn *c, const hf_conn_close_info *ci) {
  free(hf_conn_udata(c));
  hf_conn_set_udata(c, NULL);
}

static void on_ctl_accept(hf_loop *loop, hf_io *io, uint32_t revents) {
  for (int k = 0; k < 16; k++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(io->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    hf_conn_accept(G.ctl, fd, (struct sockaddr *)&ss, sl);
  }
}

/* ------------------------------------------------------------ main */

static void stop_all(const char *why) {
  srv_logline l;
  srv_log_begin(&l, LOG_INFO, "chaos_stopped");
  srv_log_str(&l, "why", why);
  srv_log_int(&l, "accepted", (long long)G.st.accepted);
  srv_log_int(&l, "active", (long long)G.st.active);
  srv_log_int(&l, "cuts", (long long)(G.st.cut_after + G.st.cut_after_bytes +
                                      G.st.cut_mid_frame + G.st.idle_kill + G.st.cut_control));
  srv_log_int(&l, "blackholed_connections", (long long)G.st.blackholed_connections);
  srv_log_int(&l, "refused", (long long)G.st.refused);
  srv_log_end(&l);
  while (G.live.next != &G.live)
    pair_end(G.live.next, "chaos stopped", 0, 0);
  hf_loop_stop(G.loop);
}

static void on_signal(hf_loop *loop, hf_io *io, uint32_t revents) {
  struct signalfd_siginfo si;
  if (read(io->fd, &si, sizeof si) == (ssize_t)sizeof si)
    stop_all(si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
}

static void on_exit_timer(hf_loop *loop, hf_timer *t) { stop_all("exit-after"); }

static void usage(FILE *out) {
  fprintf(out,
      "usage: holdfast chaos --listen HOST:PORT --upstream HOST:PORT [rules] [options]\n"
      "A WebSocket-aware TCP proxy that fails on purpose, for tests and drills.\n"
      "Bytes pass unchanged unless a rule says otherwise; the HTTP upgrade and\n"
      "the frame boundaries are observed so rules can act after the handshake\n"
      "or in the middle of a frame.\n"
      "\n"
      "rules (durations like 500ms, 5s, 1m; all off by default):\n"
      "  --latency D            add D to every chunk of bytes (order is kept)\n"
      "  --jitter D             +- D uniformly around the latency\n"
      "  --bandwidth N          at most N bytes per second\n"
      "  --cut-after D          close both sides D after the accept (or the 101)\n"
      "  --cut-after-bytes N    close once N bytes were forwarded (per direction)\n"
      "  --cut-mode fin|rst     how cuts and idle kills end TCP       [fin]\n"
      "  --cut-mid-frame        a cut waits for a WebSocket frame and lands in the\n"
      "                         middle of its payload; alone: the first frame\n"
      "  --blackhole-after D    then stop forwarding without closing (half-open):\n"
      "                         bytes are read and dropped\n"
      "  --idle-kill D          cut connections with no byte either way for D\n"
      "                         (a load balancer or NAT timeout)\n"
      "  --strip-upgrade        remove Upgrade and Connection from the request\n"
      "                         (a misconfigured proxy)\n"
      "  --refuse               reset every new connection at once\n"
      "  --respond STATUS       answer every request with this HTTP status\n"
      "  --respond-body TEXT    ... and this body           [a short sentence]\n"
      "  --direction up|down|both  which direction the directional rules (latency,\n"
      "                         jitter, bandwidth, cut-after-bytes, blackhole-after)\n"
      "                         apply to: up = client to upstream      [both]\n"
      "  --from accept|upgrade  what durations count from             [accept]\n"
      "  --rules FILE           rules as JSON (the flag names as keys, e.g.\n"
      "                         {\"latency\":\"100ms\",\"down\":{\"bandwidth\":1000},\n"
      "                         \"connections\":{\"2\":{\"cut-after\":\"1s\"}}});\n"
      "                         flags given as well apply on top\n"
      "\n"
      "options:\n"
      "  --listen HOST:PORT     where clients connect (port 0: any free port,\n"
      "                         named in the chaos_listening log line)\n"
      "  --upstream HOST:PORT   the server; loopback only unless\n"
      "  --allow-remote-upstream  is given\n"
      "  --control HOST:PORT    loopback HTTP control endpoint:\n"
      "                           POST /rules[?conn=N]  JSON rules replace the rules\n"
      "                                for new and existing connections (or for\n"
      "                                connection N only)\n"
      "                           POST /cut[?conn=N][&mode=fin|rst]  cut now\n"
      "                           GET /stats  counters; GET /rules; GET /connections\n"
      "  --max-conns N          connections at once; more are reset    [%d]\n"
      "  --exit-after D         stop by itself after D (scripts and tests)\n"
      "  --log-format json|pretty, --log-level debug|info|warn|error\n"
      "  -h, --help\n"
      "\n"
      "Every action is a log line on stderr (chaos_accepted, chaos_upstream with\n"
      "the upstream-side address the server sees, chaos_response, chaos_cut,\n"
      "chaos_blackhole, chaos_strip_upgrade, chaos_refused, chaos_responded,\n"
      "chaos_close_frame, chaos_closed, chaos_rules) and a counter in GET /stats.\n"
      "SIGTERM or SIGINT stops it (exit 0).\n",
      DEFAULT_MAX_CONNS);
}

static int arg_value(int argc, char **argv, int *i, const char *name, const char **val) {
  const char *a = argv[*i];
  size_t nl = strlen(name);
  if (strncmp(a, name, nl) != 0)
    return 0;
  if (a[nl] == '=') {
    *val = a + nl + 1;
    return 1;
  }
  if (a[nl])
    return 0;
  if (*i + 1 >= argc) {
    fprintf(stderr, "holdfast chaos: %s needs a value\n", name);
    return -1;
  }
  *val = argv[++*i];
  return 1;
}

/* The rule flags, applied after the rules file. */
static const char *const rule_flags[] = {
    "--latency", "--jitter", "--bandwidth", "--cut-after-bytes", "--cut-after",
    "--blackhole-after", "--idle-kill", "--cut-mode", "--from", "--respond-body",
    "--respond", NULL};
static const char *const bool_flags[] = {"--cut-mid-frame", "--strip-upgrade", "--refuse", NULL};

typedef struct {
  const char *listen, *upstream, *control, *rules_file, *log_format, *log_level;
  int allow_remote;
  uint64_t exit_after_ms;
} chaos_opts;

static int parse_args(int argc, char **argv, chaos_opts *o) {
  unsigned dirs = CHAOS_DIR_BOTH;
  /* --direction and --rules first: they shape how the rule flags apply */
  for (int i = 0; i < argc; i++) {
    const char *v;
    int r = arg_value(argc, argv, &i, "--direction", &v);
    if (r < 0)
      return -1;
    if (r > 0) {
      if (strcmp(v, "both") == 0)
        dirs = CHAOS_DIR_BOTH;
      else if (strcmp(v, "up") == 0)
        dirs = CHAOS_DIR_UP;
      else if (strcmp(v, "down") == 0)
        dirs = CHAOS_DIR_DOWN;
      else {
        fprintf(stderr, "holdfast chaos: --direction %s: want up, down or both\n", v);
        return -1;
      }
    }
    r = arg_value(argc, argv, &i, "--rules", &v);
    if (r < 0)
      return -1;
    if (r > 0)
      o->rules_file = v;
  }
  if (o->rules_file) {
    FILE *f = fopen(o->rules_file, "r");
    if (!f) {
      fprintf(stderr, "holdfast chaos: --rules %s: %s\n", o->rules_file, strerror(errno));
      return -1;
    }
    static char text[CONTROL_MAX_BODY + 1];
    size_t n = fread(text, 1, sizeof text, f);
    fclose(f);
    char err[512];
    if (n > CONTROL_MAX_BODY) {
      fprintf(stderr, "holdfast chaos: --rules %s: longer than 64 KiB\n", o->rules_file);
      return -1;
    }
    if (chaos_ruleset_parse(&G.rules, text, n, err, sizeof err) < 0) {
      fprintf(stderr, "holdfast chaos: --rules %s: %s\n", o->rules_file, err);
      return -1;
    }
  }
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    int r, handled = 0;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return 1;
    }
    struct {
      const char *name;
      const char **dst;
    } opts[] = {{"--listen", &o->listen},         {"--upstream", &o->upstream},
                {"--control", &o->control},       {"--log-format", &o->log_format},
                {"--log-level", &o->log_level},   {"--direction", &v},
                {"--rules", &v}};
    for (size_t k = 0; k < sizeof opts / sizeof opts[0] && !handled; k++) {
      r = arg_value(argc, argv, &i, opts[k].name, opts[k].dst);
      if (r < 0)
        return -1;
      handled = r;
    }
    for (int k = 0; rule_flags[k] && !handled; k++) {
      r = arg_value(argc, argv, &i, rule_flags[k], &v);
      if (r < 0)
        return -1;
      if (r > 0) {
        handled = 1;
        char err[512];
        const char *name = rule_flags[k] + 2;
        unsigned dd = strcmp(name, "latency") == 0 || strcmp(name, "jitter") == 0 ||
                              strcmp(name, "bandwidth") == 0 ||
                              strcmp(name, "cut-after-bytes") == 0 ||
                              strcmp(name, "blackhole-after") == 0
                          ? dirs
                          : CHAOS_DIR_BOTH;
        if (chaos_rules_set(&G.rules.all, name, v, dd, err, sizeof err) < 0) {
          fprintf(stderr, "holdfast chaos: --%s\n", err);
          return -1;
        }
      }
    }
    for (int k = 0; bool_flags[k] && !handled; k++) {
      if (strcmp(a, bool_flags[k]) == 0) {
        char err[256];
        chaos_rules_set(&G.rules.all, bool_flags[k] + 2, "true", CHAOS_DIR_BOTH, err, sizeof err);
        handled = 1;
      }
    }
    if (!handled && strcmp(a, "--allow-remote-upstream") == 0) {
      o->allow_remote = 1;
      handled = 1;
    }
    if (!handled) {
      r = arg_value(argc, argv, &i, "--max-conns", &v);
      if (r < 0)
        return -1;
      if (r > 0) {
        char *end;
        unsigned long long m = strtoull(v, &end, 10);
        if (*end || m < 1 || m > 1000000) {
          fprintf(stderr, "holdfast chaos: --max-conns %s: want 1..1000000\n", v);
          return -1;
        }
        G.max_conns = m;
        handled = 1;
      }
    }
    if (!handled) {
      r = arg_value(argc, argv, &i, "--exit-after", &v);
      if (r < 0)
        return -1;
      if (r > 0) {
        if (srv_config_parse_duration(v, &o->exit_after_ms) < 0 || !o->exit_after_ms) {
          fprintf(stderr, "holdfast chaos: --exit-after %s: want a duration like 30s\n", v);
          return -1;
        }
        handled = 1;
      }
    }
    if (!handled) {
      fprintf(stderr, "holdfast chaos: unknown argument \"%s\"\n", a);
      return -1;
    }
  }
  if (!o->listen || !o->upstream) {
    fprintf(stderr, "holdfast chaos: --listen and --upstream are required\n");
    return -1;
  }
  return 0;
}

int chaos_main(int argc, char **argv) {
  memset(&G, 0, sizeof G);
  chaos_ruleset_init(&G.rules);
  G.max_conns = DEFAULT_MAX_CONNS;
  chaos_opts o = {0};
  sigset_t ss;
  sigemptyset(&ss);
  sigaddset(&ss, SIGINT);
  sigaddset(&ss, SIGTERM);
  int r = parse_args(argc, argv, &o);
  if (r != 0) {
    if (r < 0)
      fprintf(stderr, "(holdfast chaos --help lists the options)\n");
    return r > 0 ? 0 : 2;
  }
  const char *why = NULL;
  int lo = 0;
  if (parse_hostport(o.upstream, &G.up_addr, &G.up_len, &lo, &why) < 0) {
    fprintf(stderr, "holdfast chaos: --upstream %s: %s\n", o.upstream, why);
    return 2;
  }
  if (!lo && !o.allow_remote) {
    fprintf(stderr, "holdfast chaos: --upstream %s is not a loopback address; chaos "
                    "forwards to this machine only unless --allow-remote-upstream is given\n",
            o.upstream);
    return 2;
  }
  snprintf(G.upstream, sizeof G.upstream, "%s", o.upstream);
  struct sockaddr_storage cs;
  socklen_t csl;
  if (o.control && (parse_hostport(o.control, &cs, &csl, &lo, &why) < 0 || !lo)) {
    fprintf(stderr, "holdfast chaos: --control %s: %s\n", o.control,
            why ? why : "the control endpoint listens on loopback only (127.0.0.0/8 or [::1])");
    return 2;
  }
  int pretty = o.log_format && strcmp(o.log_format, "pretty") == 0;
  if (o.log_format && !pretty && strcmp(o.log_format, "json") != 0) {
    fprintf(stderr, "holdfast chaos: --log-format %s: want json or pretty\n", o.log_format);
    return 2;
  }
  srv_log_setup(pretty, srv_log_parse_level(o.log_level ? o.log_level : "info"), 2);
  if (getrandom(&G.rng, sizeof G.rng, 0) != (ssize_t)sizeof G.rng || !G.rng)
    G.rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();

  G.loop = hf_loop_new(TICK_MS, RBUF_SIZE);
  if (!G.loop) {
    perror("holdfast chaos: event loop");
    return 1;
  }
  G.rbuf = hf_loop_rbuf(G.loop, &G.rcap);
  G.live.next = G.live.prev = &G.live;
  G.reaper.cb = reap;
  G.lis.fd = G.ctl_lis.fd = G.sig.fd = -1;
  int rc = 1;
  if (listen_on(o.listen, &G.lis, on_accept, G.listen_addr, sizeof G.listen_addr) < 0)
    goto out;
  if (o.control) {
    hf_conn_config cc = {.max_message = 1024, .max_head = 8192, .max_headers = 64,
                         .max_queue = 1u << 20, .max_queue_hard = 4u << 20,
                         .slow_grace_ms = 5000, .handshake_timeout_ms = 5000,
                         .close_timeout_ms = 1000, .response_timeout_ms = 5000};
    static const hf_conn_handler ch = {.on_request = ctl_on_request,
                                       .on_message = ctl_on_message,
                                       .on_body = ctl_on_body,
                                       .on_close = ctl_on_close};
    G.ctl = hf_conn_ctx_new(G.loop, &cc, &ch);
    if (!G.ctl || listen_on(o.control, &G.ctl_lis, on_ctl_accept, G.control_addr,
                            sizeof G.control_addr) < 0)
      goto out;
  }
  sigprocmask(SIG_BLOCK, &ss, NULL);
  signal(SIGPIPE, SIG_IGN);
  G.sig.fd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
  G.sig.cb = on_signal;
  if (G.sig.fd < 0 || hf_loop_add(G.loop, &G.sig, EPOLLIN) < 0) {
    perror("holdfast chaos: signalfd");
    goto out;
  }
  if (o.exit_after_ms) {
    G.exit_timer.cb = on_exit_timer;
    hf_timer_set(G.loop, &G.exit_timer, o.exit_after_ms);
  }
  srv_logline l;
  srv_log_begin(&l, LOG_INFO, "chaos_listening");
  srv_log_str(&l, "address", G.listen_addr);
  srv_log_int(&l, "port", atoi(strrchr(G.listen_addr, ':') + 1));
  srv_log_str(&l, "upstream", G.upstream);
  if (o.control) {
    srv_log_str(&l, "control", G.control_addr);
    srv_log_int(&l, "control_port", atoi(strrchr(G.control_addr, ':') + 1));
  }
  srv_log_int(&l, "pid", getpid());
  srv_log_end(&l);
  log_rules(o.rules_file ? "file+flags" : "flags", 0);
  hf_loop_run(G.loop);
  reap(G.loop, &G.reaper);
  rc = 0;
out:
  if (G.ctl)
    hf_conn_ctx_free(G.ctl);
  for (hf_io *io = &G.lis; io; io = io == &G.lis ? &G.ctl_lis : io == &G.ctl_lis ? &G.sig : NULL)
    if (io->fd >= 0) {
      if (io->events)
        hf_loop_del(G.loop, io);
      close(io->fd);
    }
  hf_loop_free(G.loop);
  sigprocmask(SIG_UNBLOCK, &ss, NULL);
  return rc;
}
