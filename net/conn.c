/* SPDX-License-Identifier: MIT */
/* Server-side connection engine: one explicit state machine per socket
 * (HTTP -> OPEN -> CLOSING -> gone, or HTTP -> RESPONDED -> gone), reading
 * into the loop's shared receive buffer, corked output, a bounded output
 * queue, one coarse timer per connection for every timeout, and deferred
 * freeing so that no connection dies inside its own callback. */
#include "hf/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <unistd.h>

#include "hf/close.h"
#include "hf/deflate.h"
#include "hf/err.h"
#include "hf/frame.h"
#include "hf/proxy.h"
#include "hf/shared.h"
#include "hf/tls.h"
#include "hf/usend.h"

#define CORK_CAP (64 * 1024)
/* References taken and given back are kept per frame in two-way tables:
 * a connection's queue holds several frames (a run of publications, see
 * hf_conn_send_shared_v) and the next connection's holds the same ones, so
 * each of them needs its own slot. 2^REF_SLOT_BITS slots per table. */
#define REF_SLOT_BITS 9
#define REF_SLOTS (1u << REF_SLOT_BITS)
/* Messages at least this big skip the cork and go out with writev, straight
 * from where they are: no copy. */
#define DIRECT_MIN (16 * 1024)
#define MAX_HEADERS_CAP 256
#define OUT_IOV 64         /* segments per write */
#define US_BATCH 256       /* io_uring flush: connections per submit */
#define US_IOV 2048        /* ... and iovecs per submit */

typedef enum {
  ST_HTTP,      /* reading the request head */
  ST_BODY,      /* reading a request body the application asked for */
  ST_RESPONDED, /* plain HTTP answer queued; then shutdown and close */
  ST_OPEN,      /* WebSocket open */
  ST_CLOSING,   /* a close frame was sent; waiting for the peer / flush */
  ST_DEAD       /* torn down, waiting to be freed */
} conn_state;

enum {
  F_CLOSE_SENT = 1 << 0,
  F_CLOSE_RCVD = 1 << 1,
  F_AWAIT_PONG = 1 << 2,
  F_SLOW = 1 << 3,
  F_NO_READ = 1 << 4, /* stop reading (slow consumer, after close frame) */
  F_LINGER = 1 << 5,  /* write side shut down after the last byte */
  F_HS_TIMEOUT = 1 << 6, /* the request head did not arrive in time */
  F_DISCARD = 1 << 7,    /* failed: read and drop input until EOF */
  F_HEAD_REQ = 1 << 8,   /* the request was HEAD: answer without a body */
  F_FLUSH_Q = 1 << 9,    /* on the context's end-of-iteration flush list */
  F_KEEPALIVE = 1 << 10, /* answer this request and keep the connection */
  F_ANSWERED = 1 << 11,  /* hf_conn_respond ran for the current request */
  F_PIPELINED = 1 << 12, /* c->in holds the next request, not yet parsed */
  F_IN_SLOW_CB = 1 << 13, /* inside the handler's on_slow */
  F_OVER = 1 << 14,       /* the queue is over max_queue since over_since */
  F_DEFERRED = 1 << 15    /* the application answers the request later */
};

/* Transport below HTTP (c->xport). */
enum {
  X_PLAIN,  /* bytes are HTTP/WebSocket as they come */
  X_PROXY,  /* reading the PROXY protocol header (then X_TLS_HS or X_PLAIN) */
  X_TLS_HS, /* TLS handshake in progress */
  X_TLS     /* TLS established: reads and writes go through conn_tls(c) */
};

enum {
  XF_PEEKED = 1,     /* the first bytes on the TLS port were looked at */
  XF_RD_WANTS_WR = 2, /* a TLS read waits for the socket to be writable */
  XF_US_Q = 4         /* its write is in the io_uring flush batch */
};

/* An IP address and port, compactly (20 bytes, not a 28-byte sockaddr). */
typedef struct {
  uint8_t ip[16]; /* the first len bytes */
  uint16_t port;  /* host order; 0: not known */
  uint8_t len;    /* 4 (IPv4), 16 (IPv6) or 0 (unknown) */
} conn_addr;

/* The rarely used part of a connection, allocated when first needed
 * (fragmented or compressed input, a close reason, a client address behind
 * a proxy) and kept until the connection is freed. */
struct conn_x {
  uint8_t *msg; /* fragment assembly; NULL unless a fragmented message */
  uint32_t msg_len, msg_cap;
  /* permessage-deflate: an inflater of our own only while a fragmented
   * compressed message is in progress, or for good when the client keeps
   * its context (client_no_context_takeover not negotiated) */
  hf_inflate *inf;
  char *peer_reason; /* close reason received from the peer */
  char *own_reason;  /* copy of a reason given to hf_conn_close */
  const char *reason; /* the reason of our close as logged: static text or
                         own_reason (set_reason) */
  struct hf_tls *tls; /* the TLS session; NULL on plain connections
                         (conn_tls) */
  conn_addr client;  /* the client behind a proxy (PROXY header or set by
                        the application), if has_client */
  uint8_t has_client;
  uint32_t over_since; /* F_OVER: low bits of the loop clock (ms) */
};

/* Laid out for size (an idle connection is mostly this struct): hot
 * fields first, no holes; what idle connections do not need lives behind
 * x, ws and in, which are NULL while unused. */
struct hf_conn {
  hf_io io;
  hf_timer timer;
  hf_conn *next, *prev; /* ctx list; next also links the graveyard */
  hf_conn_ctx *ctx;
  void *udata;
  /* Output the kernel did not take yet: segments of shared buffers, in
   * order (owned bytes live in buffers with one reference). NULL when
   * nothing is queued, so idle connections hold no output memory. */
  struct outseg *segs;
  uint32_t out_len; /* bytes queued over all segments */
  uint16_t seg_head, seg_n, seg_cap;
  uint16_t flags;
  /* One timer serves the engine's own deadline (handshake, response,
   * close, ping/pong) and the application's (hf_conn_set_timer): it is
   * armed at the earlier one, t_later ms before the other (both are
   * decoded from timer.due_ms with t_own/t_app/t_own_first: timer_get) */
  uint32_t t_later;
  hf_conn *flush_next; /* end-of-iteration flush list */
  uint8_t *in; /* unconsumed input (partial head or frame); NULL when idle */
  uint32_t in_len, in_cap;
  union {
    uint32_t need;      /* WebSocket: bytes the incomplete frame needs */
    uint32_t body_need; /* ST_BODY: bytes of body expected */
  };
  uint16_t close_code;
  uint8_t state;
  uint8_t xport : 2, xflags : 3, who : 2; /* X_*, XF_*, hf_conn_who */
  uint8_t upgraded : 1;
  /* The frame parser while a frame or a fragmented message is incomplete;
   * NULL at a frame boundary (a fresh parser then reads the next one). */
  hf_ws_parser *ws;
  struct conn_x *x;    /* cold state (above), NULL until needed; always
                          there on TLS connections (their session) */
  uint64_t t_accept;
  uint64_t bytes_in, bytes_out;
  uint32_t msgs_in, msgs_out; /* data messages (the close report): wrap at 2^32 */
  uint8_t id[16];
  conn_addr peer;
  uint8_t dfl : 1;       /* permessage-deflate negotiated */
  uint8_t dfl_ctake : 1; /* the client keeps its context between messages */
  uint8_t heard : 1;     /* input arrived since the last ping left */
  uint8_t dfl_sbits : 4; /* our compression window (8..15) */
  uint8_t dfl_cbits : 4; /* the client's window */
  uint8_t stream : 1; /* a streaming (chunked) HTTP response, not WebSocket */
  uint8_t t_own : 1;       /* the timer holds the engine's own deadline */
  uint8_t t_app : 1;       /* ... and/or the application's */
  uint8_t t_own_first : 1; /* the engine's is the earlier one (timer.due_ms) */
};
/* An idle connection is mostly this struct: 248 bytes is a 256-byte glibc
 * chunk (size + 8 rounded up to 16); docs/benchmarks.md, "Memory per
 * connection (issue 14)", has the byte table. */
_Static_assert(sizeof(struct hf_conn) <= 248, "hf_conn crosses a malloc step");

/* The bit-fields above must hold every value put in them. */
_Static_assert(X_TLS < 4 && HF_WHO_ABNORMAL < 4, "xport and who fit 2 bits");
_Static_assert((XF_PEEKED | XF_RD_WANTS_WR | XF_US_Q) < 8, "xflags fits 3 bits");

struct outseg {
  hf_shared *sh;
  uint32_t off, len;
};

/* Per frame: references held (taken ahead, or given back) in n. A slot
 * with n > 0 keeps its frame alive, so equal pointers are the same frame.
 * used[] lists the slots set since the last settle_refs. */
struct ref_table {
  struct ref_slot {
    hf_shared *sh;
    uint32_t n;
  } s[REF_SLOTS];
  uint16_t used[REF_SLOTS];
  uint32_t nused;
};

struct hf_conn_ctx {
  hf_loop *loop;
  hf_conn_config cfg;
  hf_conn_handler h;
  hf_conn *head; /* live connections */
  size_t count;
  hf_conn *grave; /* torn down, freed at the end of the iteration */
  hf_conn *flush, *flush_tail; /* connections with broadcast output to
                                  write, first queued first */
  hf_deferred reaper; /* end of iteration: write queued output, free grave */
  hf_conn *cork_owner;
  uint32_t cork_len;
  int draining; /* close_all ran: no more keep-alive */
  uint32_t n_over;     /* connections with F_OVER */
  hf_conn *resume;     /* answered deferred requests with pipelined ones
                          behind them (linked through flush_next) */
  hf_deferred resumer; /* end of iteration: parse those */
  hf_timer over_timer; /* re-checks them while any exist */
  uint64_t rng[4];
  hf_conn_stats stats;
  /* batched references to shared frames (take_ref, drop_ref): taken ahead
   * and not yet given to a segment; given back and not yet released */
  struct ref_table takes, drops;
  int reaping; /* inside reap, which settles them at its end */
  uint8_t *zbuf; /* inflated single-frame messages (kept, <= max_message+1) */
  size_t zbuf_cap;
  /* the io_uring flush (send_uring): the ring, and one batch's connections,
   * message headers and iovecs (borrowed by the ring until it has run) */
  hf_usend *us;
  int us_err;
  struct us_batch {
    hf_conn *c[US_BATCH];
    struct msghdr mh[US_BATCH];
    int res[US_BATCH];
    uint32_t len[US_BATCH]; /* bytes in the write */
    struct iovec iov[US_IOV];
    unsigned n, niov_used;
  } *usb;
  uint8_t cork[CORK_CAP];
};

/* Count into ctx's totals: this loop thread is their only writer. */
static inline void st_add(_Atomic uint64_t *p, uint64_t n) {
  atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + n,
                        memory_order_relaxed);
}

static void teardown(hf_conn *c);

/* ---- batched references to shared frames -------------------------------
 * A sweep queues the same frame on thousands of connections, and one atomic
 * increment and one decrement per recipient were ~5 % of a fan-out's
 * server CPU (perf). The context takes references REF_BATCH at a time and
 * collects the ones segments give back per frame (drops[]), applying each
 * frame's count with one atomic
 * operation; both are settled at the end of the loop iteration (reap), so
 * a frame lives at most until then after its last send. */
#define REF_BATCH 4096u

/* The slot of sh in t: its own, else a free one of its two, else one of
 * them whose count is applied first (evicted). */
static struct ref_slot *ref_slot(hf_conn_ctx *ctx, struct ref_table *t, hf_shared *sh) {
  uint64_t h = ((uint64_t)(uintptr_t)sh >> 4) * 0x9E3779B97F4A7C15ull;
  uint32_t a = (uint32_t)(h >> (64 - REF_SLOT_BITS)), b = a ^ 1u;
  if (t->s[a].sh == sh)
    return &t->s[a];
  if (t->s[b].sh == sh)
    return &t->s[b];
  uint32_t i = !t->s[a].n ? a : !t->s[b].n ? b : a;
  struct ref_slot *r = &t->s[i];
  if (!r->sh) {
    t->used[t->nused++] = (uint16_t)i;
    if (!ctx->reaping)
      hf_loop_defer(ctx->loop, &ctx->reaper);
  }
  hf_shared_unref_n(r->sh, r->n);
  r->sh = sh;
  r->n = 0;
  return r;
}

static hf_shared *take_ref(hf_conn_ctx *ctx, hf_shared *sh) {
  struct ref_slot *r = ref_slot(ctx, &ctx->takes, sh);
  if (!r->n) {
    hf_shared_ref_n(sh, REF_BATCH);
    r->n = REF_BATCH;
  }
  r->n--;
  return sh;
}

static void drop_ref(hf_conn_ctx *ctx, hf_shared *sh) {
  ref_slot(ctx, &ctx->drops, sh)->n++;
}

static void settle_table(struct ref_table *t) {
  for (uint32_t k = 0; k < t->nused; k++) {
    struct ref_slot *r = &t->s[t->used[k]];
    hf_shared_unref_n(r->sh, r->n);
    r->sh = NULL;
    r->n = 0;
  }
  t->nused = 0;
}

static void settle_refs(hf_conn_ctx *ctx) {
  settle_table(&ctx->takes); /* first: a frame's last reference may be here */
  settle_table(&ctx->drops);
}
static void resume_pipelined(hf_loop *loop, hf_deferred *d);
static void conn_io(hf_loop *loop, hf_io *io, uint32_t ev);
static void conn_timer(hf_loop *loop, hf_timer *t);
static void transport_error(hf_conn *c, const char *reason, const char *detail);

/* ---- small helpers ---------------------------------------------------- */

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t s[4]) { /* xoshiro256** */
  uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return r;
}

/* The address and port of sa (AF_INET or AF_INET6; else unknown). */
static void addr_from_sockaddr(conn_addr *a, const struct sockaddr *sa, socklen_t salen) {
  memset(a, 0, sizeof *a);
  if (sa && sa->sa_family == AF_INET && salen >= sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    memcpy(a->ip, &s4->sin_addr, 4);
    a->port = ntohs(s4->sin_port);
    a->len = 4;
  } else if (sa && sa->sa_family == AF_INET6 && salen >= sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    memcpy(a->ip, &s6->sin6_addr, 16);
    a->port = ntohs(s6->sin6_port);
    a->len = 16;
  }
}

/* c's cold state, allocated on first use; NULL when out of memory. */
static struct conn_x *conn_x(hf_conn *c) {
  if (!c->x)
    c->x = calloc(1, sizeof *c->x);
  return c->x;
}

/* ---- the connection's one timer ------------------------------------------ */

/* The engine's own deadline and the application's (absolute loop ms, 0:
 * none), decoded from the timer, armed or just fired. */
static void timer_get(const hf_conn *c, uint64_t *own, uint64_t *app) {
  uint64_t lo = c->timer.due_ms, hi = lo + c->t_later;
  *own = !c->t_own ? 0 : c->t_own_first ? lo : hi;
  *app = !c->t_app ? 0 : c->t_own && c->t_own_first ? hi : lo;
}

/* Arm c's timer at the earlier of the engine's deadline own and the
 * application's app (absolute loop ms, 0: none; both 0: cancelled). */
static void timer_put(hf_conn *c, uint64_t own, uint64_t app) {
  hf_loop *loop = c->ctx->loop;
  c->t_own = own != 0;
  c->t_app = app != 0;
  c->t_later = 0;
  if (!own && !app) {
    hf_timer_cancel(loop, &c->timer);
    return;
  }
  c->t_own_first = own && (!app || own <= app);
  uint64_t lo = c->t_own_first ? own : app, hi = c->t_own_first ? app : own;
  uint64_t now = hf_loop_now(loop);
  hf_timer_set(loop, &c->timer, lo > now ? lo - now : 0);
  /* due_ms is now max(lo, now); the later deadline is kept as an offset
   * from it, clamped: one more than 49 days later comes early (only the
   * application's can: the engine's are uint32 ms from now) */
  uint64_t d = hi > c->timer.due_ms ? hi - c->timer.due_ms : 0;
  c->t_later = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

/* The engine's own deadline: delay_ms from now (the application's stays). */
static void own_timer(hf_conn *c, uint64_t delay_ms) {
  uint64_t own, app, due = hf_loop_now(c->ctx->loop) + delay_ms;
  timer_get(c, &own, &app);
  timer_put(c, due ? due : 1, app);
}

/* No engine deadline any more (the application's stays). */
static void own_timer_cancel(hf_conn *c) {
  uint64_t own, app;
  timer_get(c, &own, &app);
  timer_put(c, 0, app);
}

/* c's TLS session, NULL on a plain connection. */
static inline struct hf_tls *conn_tls(const hf_conn *c) { return c->x ? c->x->tls : NULL; }

/* Record the reason of our close (static text, or x->own_reason) for the
 * close report. It lives in the cold block: a connection closes once, and
 * an idle one should not carry the pointer. Out of memory: no reason. */
static void set_reason(hf_conn *c, const char *reason) {
  struct conn_x *x = reason ? conn_x(c) : c->x;
  if (x)
    x->reason = reason;
}

/* The reason set_reason recorded, "" if none. */
static const char *our_reason(const hf_conn *c) {
  return c->x && c->x->reason ? c->x->reason : "";
}

static void set_events(hf_conn *c) {
  uint32_t ev = 0;
  if (c->xport == X_TLS_HS) {
    ev = hf_tls_want(conn_tls(c)) == HF_TLS_WANT_WRITE ? EPOLLOUT : EPOLLIN | EPOLLRDHUP;
  } else {
    if (!(c->flags & F_NO_READ))
      ev |= EPOLLIN | EPOLLRDHUP;
    if (c->out_len || (c->xflags & XF_RD_WANTS_WR))
      ev |= EPOLLOUT;
  }
  if (hf_loop_mod(c->ctx->loop, &c->io, ev) < 0)
    teardown(c);
}

static void count_out(hf_conn *c, ssize_t w) {
  c->bytes_out += (uint64_t)w;
  if (c->upgraded)
    st_add(&c->ctx->stats.bytes_out, (uint64_t)w);
}

static ssize_t send_iov(hf_conn *c, struct iovec *iov, int n) {
  struct hf_tls *tls = conn_tls(c);
  if (tls) { /* encrypted; what OpenSSL holds back is retried as is */
    ssize_t t = hf_tls_writev(tls, iov, n);
    if (t == HF_EAGAIN)
      return 0;
    if (t < 0)
      return -1;
    c->bytes_out += (uint64_t)t;
    if (c->upgraded)
      st_add(&c->ctx->stats.bytes_out, (uint64_t)t);
    return t;
  }
  struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
  ssize_t w;
  do /* one buffer (the common, corked case): send(), which skips the
        kernel's copy-in of the msghdr and iovec */
    w = n == 1 ? send(c->io.fd, iov[0].iov_base, iov[0].iov_len,
                      MSG_NOSIGNAL | MSG_DONTWAIT)
               : sendmsg(c->io.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (w < 0 && errno == EINTR);
  if (w < 0)
    return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
  count_out(c, w);
  return w;
}

static void slow_consumer(hf_conn *c);

/* The slow-consumer rule judges draining, not size: a queue over max_queue
 * may stay over it for slow_grace_ms while the peer reads (one large
 * message to a fast reader is not slow); still over it after the grace, or
 * over the hard limit at any time, the peer is slow. Returns 1 if the
 * connection is (now) slow. */
static void over_tick(hf_loop *loop, hf_timer *t);

static void clear_over(hf_conn *c) {
  if (c->flags & F_OVER) {
    c->flags &= (uint16_t)~F_OVER;
    c->ctx->n_over--;
  }
}

static int queue_check(hf_conn *c) {
  if (c->flags & F_SLOW)
    return 1;
  hf_conn_ctx *ctx = c->ctx;
  const hf_conn_config *cfg = &ctx->cfg;
  if (c->out_len <= cfg->max_queue) {
    clear_over(c);
    return 0;
  }
  uint32_t now = (uint32_t)hf_loop_now(ctx->loop);
  struct conn_x *x = conn_x(c); /* over_since lives in the cold block */
  if (!x) { /* out of memory: judged slow at once */
    slow_consumer(c);
    return (c->flags & F_SLOW) != 0;
  }
  if (!(c->flags & F_OVER)) {
    c->flags |= F_OVER;
    x->over_since = now;
    /* a stuck queue gets no write events: a context timer re-checks it */
    if (!ctx->n_over++ && !hf_timer_armed(&ctx->over_timer))
      hf_timer_set(ctx->loop, &ctx->over_timer, 100);
  }
  if (c->out_len > cfg->max_queue_hard || now - x->over_since >= cfg->slow_grace_ms) {
    slow_consumer(c);
    return (c->flags & F_SLOW) != 0;
  }
  return 0;
}

/* Every 100 ms while some queue is over its limit: judge those queues. */
static void over_tick(hf_loop *loop, hf_timer *t) {
  hf_conn_ctx *ctx = (hf_conn_ctx *)((char *)t - offsetof(hf_conn_ctx, over_timer));
  for (hf_conn *c = ctx->head, *next; c && ctx->n_over; c = next) {
    next = c->next; /* a slow one is torn down (and leaves the list) */
    if ((c->flags & F_OVER) && c->state != ST_DEAD)
      queue_check(c);
  }
  if (ctx->n_over)
    hf_timer_set(loop, t, 100);
}

static int seg_push(hf_conn *c, hf_shared *sh, uint32_t off, uint32_t len) {
  if (c->seg_head + c->seg_n == c->seg_cap) {
    if (c->seg_head) { /* slide down before growing */
      memmove(c->segs, c->segs + c->seg_head, c->seg_n * sizeof *c->segs);
      c->seg_head = 0;
    }
    if (c->seg_n == c->seg_cap) {
      if (c->seg_cap >= 32768)
        return HF_ELIMIT;
      uint16_t cap = c->seg_cap ? (uint16_t)(c->seg_cap * 2) : 4;
      struct outseg *ns = realloc(c->segs, cap * sizeof *ns);
      if (!ns)
        return HF_ENOMEM;
      c->segs = ns;
      c->seg_cap = cap;
    }
  }
  c->segs[c->seg_head + c->seg_n++] = (struct outseg){sh, off, len};
  c->out_len += len;
  return 0;
}

/* Room for n more segments behind the queue, in one allocation: a run of
 * frames for one connection grows its array once, not 4 -> 8 -> ... */
static int seg_reserve(hf_conn *c, size_t n) {
  size_t need = (size_t)c->seg_n + n;
  if ((size_t)c->seg_head + need <= c->seg_cap)
    return 0;
  if (c->seg_head) { /* slide down before growing */
    memmove(c->segs, c->segs + c->seg_head, c->seg_n * sizeof *c->segs);
    c->seg_head = 0;
  }
  if (need <= c->seg_cap)
    return 0;
  if (need > 32768)
    return HF_ELIMIT;
  size_t cap = c->seg_cap ? c->seg_cap : 4;
  while (cap < need)
    cap *= 2;
  struct outseg *ns = realloc(c->segs, cap * sizeof *ns);
  if (!ns)
    return HF_ENOMEM;
  c->segs = ns;
  c->seg_cap = (uint16_t)cap;
  return 0;
}

/* Queue a copy of p[0..n), filling the tail buffer when it is ours alone. */
static int outq_append(hf_conn *c, const uint8_t *p, size_t n) {
  if (c->seg_n) {
    struct outseg *t = &c->segs[c->seg_head + c->seg_n - 1];
    if (atomic_load_explicit(&t->sh->refs, memory_order_relaxed) == 1 &&
        !(t->sh->flags & HF_SHARED_DROPPABLE) &&
        t->off + t->len == t->sh->len && t->sh->len + n <= t->sh->cap) {
      memcpy(t->sh->data + t->sh->len, p, n);
      t->sh->len += (uint32_t)n;
      t->len += (uint32_t)n;
      c->out_len += (uint32_t)n;
      return 0;
    }
  }
  hf_shared *sh = hf_shared_new(n > 4096 ? n : 4096);
  if (!sh)
    return HF_ENOMEM;
  memcpy(sh->data, p, n);
  sh->len = (uint32_t)n;
  int r = seg_push(c, sh, 0, (uint32_t)n);
  if (r < 0)
    hf_shared_unref(sh);
  return r;
}

static void outq_free(hf_conn *c) {
  for (uint16_t i = 0; i < c->seg_n; i++)
    drop_ref(c->ctx, c->segs[c->seg_head + i].sh);
  free(c->segs);
  c->segs = NULL;
  c->seg_head = c->seg_n = c->seg_cap = 0;
  c->out_len = 0;
}

/* The queue's head as at most max iovecs, where segments that lie back to
 * back in memory (frames carved one after another from a chunk,
 * hf_shared_new_frame) go as one buffer, so the kernel copies one run
 * instead of many small pieces. Returns the count; *total is their bytes. */
static int outq_iov(const hf_conn *c, struct iovec *iov, int max, size_t *total) {
  int n = 0;
  *total = 0;
  for (uint16_t k = 0; k < c->seg_n; k++) {
    const struct outseg *g = &c->segs[c->seg_head + k];
    uint8_t *p = g->sh->data + g->off;
    if (n && (uint8_t *)iov[n - 1].iov_base + iov[n - 1].iov_len == p) {
      iov[n - 1].iov_len += g->len;
    } else {
      if (n == max)
        break;
      iov[n].iov_base = p;
      iov[n].iov_len = g->len;
      n++;
    }
    *total += g->len;
  }
  return n;
}

/* The kernel took w bytes from the head of the queue: drop them. */
static void outq_sent(hf_conn *c, ssize_t w) {
  c->out_len -= (uint32_t)w;
  while (w > 0) {
    struct outseg *g = &c->segs[c->seg_head];
    if ((size_t)w >= g->len) {
      w -= g->len;
      drop_ref(c->ctx, g->sh);
      c->seg_head++;
      c->seg_n--;
    } else {
      g->off += (uint32_t)w;
      g->len -= (uint32_t)w;
      w = 0;
    }
  }
}

/* Write as much of the queue as the kernel takes: one sendmsg of up to 64
 * buffers (outq_iov) at a time. Returns 0, or -1 if the connection
 * failed. */
static int outq_write(hf_conn *c) {
  while (c->seg_n) {
    struct iovec iov[OUT_IOV];
    size_t total;
    int n = outq_iov(c, iov, OUT_IOV, &total);
    ssize_t w = send_iov(c, iov, n);
    if (w < 0)
      return -1;
    if (w == 0)
      return 0;
    outq_sent(c, w);
    if ((size_t)w < total)
      return 0; /* short write: the socket buffer is full */
  }
  outq_free(c); /* idle connections hold no output memory */
  return 0;
}

/* Write iov now if nothing is queued, queue whatever the kernel refuses. */
static int write_or_queue(hf_conn *c, struct iovec *iov, int n) {
  size_t total = 0;
  for (int i = 0; i < n; i++)
    total += iov[i].iov_len;
  size_t done = 0;
  if (!c->out_len) {
    ssize_t w = send_iov(c, iov, n);
    if (w < 0) {
      teardown(c);
      return HF_EIO;
    }
    done = (size_t)w;
  }
  if (done == total)
    return 0;
  for (int i = 0; i < n; i++) {
    size_t l = iov[i].iov_len;
    if (done >= l) {
      done -= l;
      continue;
    }
    if (outq_append(c, (uint8_t *)iov[i].iov_base + done, l - done) < 0) {
      teardown(c);
      return HF_ENOMEM;
    }
    done = 0;
  }
  set_events(c);
  return queue_check(c) ? HF_ELIMIT : 0;
}

static int flush_cork(hf_conn_ctx *ctx) {
  hf_conn *c = ctx->cork_owner;
  if (!c || !ctx->cork_len)
    return 0;
  struct iovec iov = {ctx->cork, ctx->cork_len};
  ctx->cork_len = 0;
  return write_or_queue(c, &iov, 1);
}

/* Frame and send; the common path for data, control and close frames. */
static int send_frame(hf_conn *c, int opcode, const uint8_t *data, size_t len) {
  hf_conn_ctx *ctx = c->ctx;
  uint8_t hdr[HF_FRAME_MAX_HEADER];
  size_t hl = hf_frame_header(hdr, 1, opcode, len, NULL);
  if (ctx->cork_owner == c && len < DIRECT_MIN) {
    if (ctx->cork_len + hl + len > CORK_CAP) {
      int r = flush_cork(ctx);
      if (r < 0)
        return r;
    }
    memcpy(ctx->cork + ctx->cork_len, hdr, hl);
    if (len)
      memcpy(ctx->cork + ctx->cork_len + hl, data, len);
    ctx->cork_len += (uint32_t)(hl + len);
    return 0;
  }
  if (ctx->cork_owner == c) {
    int r = flush_cork(ctx);
    if (r < 0)
      return r;
  }
  struct iovec iov[2] = {{hdr, hl}, {(void *)data, len}};
  return write_or_queue(c, iov, len ? 2 : 1);
}

static void send_close_frame(hf_conn *c, uint16_t code, const char *reason) {
  uint8_t pl[HF_FRAME_MAX_CONTROL];
  size_t n = hf_frame_close_payload(pl, code, reason);
  c->flags |= F_CLOSE_SENT;
  send_frame(c, HF_OP_CLOSE, pl, n);
}

/* What to do once everything queued has left: after both close frames,
 * close TCP (the server closes first, RFC 6455 7.1.1); after a plain HTTP
 * answer or a failure, shut the write side and wait for the peer's EOF. */
static void on_flushed(hf_conn *c) {
  if (c->state == ST_DEAD || c->out_len || c->ctx->cork_owner == c)
    return; /* the end of input processing flushes and checks again */
  if (c->state == ST_CLOSING && (c->flags & F_CLOSE_RCVD) &&
      (c->flags & F_CLOSE_SENT)) {
    teardown(c);
  } else if ((c->state == ST_RESPONDED || (c->flags & F_DISCARD)) &&
             !(c->flags & F_LINGER)) {
    c->flags |= F_LINGER;
    hf_tls_shutdown(conn_tls(c)); /* close_notify before the FIN */
    shutdown(c->io.fd, SHUT_WR);
  }
}

/* After a flush write: wait for room and judge the queue, or finish what
 * waited for the queue to empty. */
static void after_write(hf_conn *c) {
  if (c->out_len) {
    set_events(c);
    queue_check(c);
  } else {
    on_flushed(c);
  }
}

/* The flush's write with sendmsg, and what follows it. */
static void flush_plain(hf_conn *c) {
  if (outq_write(c) < 0)
    teardown(c);
  else
    after_write(c);
}

/* ---- the io_uring flush (send_uring) ----------------------------------------
 * The end-of-iteration flush queues one sendmsg per connection on the ring
 * and submits them together (hf_usend): the same writes as outq_write's
 * first sendmsg, one io_uring_enter per US_BATCH connections instead of one
 * syscall each. Results are applied in two passes: first every byte count
 * (bookkeeping only), then what may call the application (teardown, the
 * slow-consumer rule, close callbacks), so that a callback that queues to
 * another connection of the batch finds its queue already settled. */

static void us_result(void *arg, uint32_t i, int res) {
  hf_conn_ctx *ctx = arg;
  struct us_batch *b = ctx->usb;
  hf_conn *c = b->c[i];
  if (res == -EAGAIN || res == -EWOULDBLOCK || res == -EINTR)
    res = 0;
  b->res[i] = res;
  c->xflags &= (uint8_t)~XF_US_Q;
  if (res > 0) {
    count_out(c, res);
    outq_sent(c, res);
  }
}

static void us_run(hf_conn_ctx *ctx) {
  struct us_batch *b = ctx->usb;
  if (!b || !b->n)
    return;
  int r = hf_usend_run(ctx->us, us_result, ctx);
  if (r < 0) { /* the ring failed: sendmsg from now on */
    hf_usend_free(ctx->us);
    ctx->us = NULL;
    ctx->us_err = r;
  }
  unsigned n = b->n;
  b->n = b->niov_used = 0;
  for (unsigned i = 0; i < n; i++) {
    hf_conn *c = b->c[i];
    if (c->state == ST_DEAD)
      continue; /* a callback of an earlier one ended it */
    if (b->res[i] == -ECANCELED) { /* not sent: the ring could not start */
      flush_plain(c);
      continue;
    }
    if (b->res[i] < 0) {
      teardown(c);
      continue;
    }
    /* the whole write taken and more queued (over 64 segments, or queued
     * by a callback since): the rest now */
    if ((uint32_t)b->res[i] == b->len[i] && c->seg_n && outq_write(c) < 0) {
      teardown(c);
      continue;
    }
    if (!c->seg_n)
      outq_free(c); /* idle connections hold no output memory */
    after_write(c);
  }
}

/* c is torn down while its write waits in the batch: the entry becomes a
 * no-op (its fd is about to be closed, and the number may be reused by a
 * socket opened before the batch runs); us_run skips dead connections. */
static void us_forget(hf_conn_ctx *ctx, hf_conn *c) {
  struct us_batch *b = ctx->usb;
  for (unsigned i = 0; b && ctx->us && i < b->n; i++)
    if (b->c[i] == c) {
      hf_usend_forget(ctx->us, i);
      b->len[i] = 0;
      return;
    }
}

/* Queue c's first write on the ring (running the batch first if full). */
static void us_add(hf_conn_ctx *ctx, hf_conn *c) {
  struct us_batch *b = ctx->usb;
  if (b->n == US_BATCH || b->niov_used + OUT_IOV > US_IOV || !hf_usend_room(ctx->us)) {
    us_run(ctx);
    if (c->state == ST_DEAD || !c->out_len || (c->io.events & EPOLLOUT))
      return; /* ended, emptied or made to wait by a callback of that batch */
  }
  if (!ctx->us) { /* dropped by that run */
    flush_plain(c);
    return;
  }
  struct iovec *iov = b->iov + b->niov_used;
  size_t len;
  unsigned n = (unsigned)outq_iov(c, iov, OUT_IOV, &len);
  b->mh[b->n] = (struct msghdr){.msg_iov = iov, .msg_iovlen = n};
  b->len[b->n] = (uint32_t)len;
  b->c[b->n] = c;
  b->res[b->n] = 0;
  c->xflags |= XF_US_Q;
  hf_usend_queue(ctx->us, c->io.fd, &b->mh[b->n], b->n);
  b->n++;
  b->niov_used += n;
}

/* ---- lifecycle ---------------------------------------------------------- */

/* End of a loop iteration: write the broadcast output queued this
 * iteration (everything due to one connection leaves in one sendmsg, or
 * in one io_uring batch entry with send_uring), then free the connections
 * torn down during it. With a flush budget, at most that many connections
 * are written; the rest of the list waits for the next iteration (after
 * its input: hf_loop_defer_next), where new output for a connection still
 * waiting joins its one write. The order matters: a connection on the
 * flush list may be in the graveyard, which keeps it until it is off. */
static void reap(hf_loop *loop, hf_deferred *d) {
  hf_conn_ctx *ctx = (hf_conn_ctx *)((char *)d - offsetof(hf_conn_ctx, reaper));
  ctx->reaping = 1;
  uint32_t budget = ctx->cfg.flush_budget, written = 0;
  for (;;) {
    if (!ctx->flush || (budget && written >= budget)) {
      if (!ctx->usb || !ctx->usb->n)
        break;
      us_run(ctx); /* its callbacks may queue more */
      continue;
    }
    hf_conn *c = ctx->flush;
    ctx->flush = c->flush_next;
    if (!ctx->flush)
      ctx->flush_tail = NULL;
    c->flush_next = NULL;
    c->flags &= (uint16_t)~F_FLUSH_Q;
    if (c->state == ST_DEAD || !c->out_len)
      continue;
    if (c->io.events & EPOLLOUT)
      continue; /* already waiting for the kernel */
    if (c->xflags & XF_US_Q)
      continue; /* in the batch: its result writes the rest (us_run) */
    written++;
    if (ctx->us && !conn_tls(c))
      us_add(ctx, c);
    else
      flush_plain(c);
  }
  if (ctx->flush) { /* over budget: the rest after the next poll */
    st_add(&ctx->stats.flush_yields, 1);
    hf_loop_defer_next(loop, &ctx->reaper);
  }
  for (hf_conn **pp = &ctx->grave; *pp;) {
    hf_conn *c = *pp;
    if (c->flags & F_FLUSH_Q) { /* still on the flush list */
      pp = &c->next;
      continue;
    }
    *pp = c->next;
    free(c->in);
    free(c->ws);
    outq_free(c);
    if (c->x) {
      free(c->x->msg);
      hf_inflate_free(c->x->inf);
      free(c->x->peer_reason);
      free(c->x->own_reason);
      hf_tls_free(c->x->tls);
      free(c->x);
    }
    free(c);
  }
  settle_refs(ctx);
  ctx->reaping = 0;
}

static void teardown(hf_conn *c) {
  if (c->state == ST_DEAD)
    return;
  hf_conn_ctx *ctx = c->ctx;
  if (ctx->cork_owner == c) {
    ctx->cork_owner = NULL;
    ctx->cork_len = 0;
  }
  hf_conn_close_info info = {0};
  info.upgraded = c->upgraded;
  info.handshake_timeout = (c->flags & F_HS_TIMEOUT) != 0;
  info.duration_ms = hf_loop_now(ctx->loop) - c->t_accept;
  info.bytes_in = c->bytes_in;
  info.bytes_out = c->bytes_out;
  info.msgs_in = c->msgs_in;
  info.msgs_out = c->msgs_out;
  info.tls = c->xport == X_TLS ? 2 : conn_tls(c) ? 1 : 0;
  if (c->flags & (F_CLOSE_SENT | F_CLOSE_RCVD)) {
    info.code = c->close_code;
    info.who = (hf_conn_who)c->who;
    info.reason = c->who == HF_WHO_CLIENT
                      ? (c->x && c->x->peer_reason ? c->x->peer_reason : "")
                      : our_reason(c);
  } else {
    info.code = c->close_code ? c->close_code : HF_CLOSE_ABNORMAL;
    info.who = c->close_code ? (hf_conn_who)c->who : HF_WHO_ABNORMAL;
    info.reason = our_reason(c);
  }
  c->state = ST_DEAD;
  if (c->dfl)
    hf_shared_deflate_users(-1);
  clear_over(c);
  for (hf_conn **pp = &ctx->resume; *pp; pp = &(*pp)->flush_next)
    if (*pp == c) { /* its pipelined requests die with it */
      *pp = c->flush_next;
      c->flush_next = NULL;
      break;
    }
  timer_put(c, 0, 0);
  hf_loop_del(ctx->loop, &c->io);
  if (c->xport == X_TLS)
    hf_tls_shutdown(conn_tls(c));
  if (c->xflags & XF_US_Q) /* the io_uring batch names this fd: unname it */
    us_forget(ctx, c);
  close(c->io.fd);
  c->io.fd = -1;
  /* unlink from the live list */
  if (c->prev)
    c->prev->next = c->next;
  else
    ctx->head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  ctx->count--;
  if (ctx->h.on_close)
    ctx->h.on_close(c, &info);
  /* buffers are freed by reap(): a caller up the stack may still be
   * reading a message that lives in c->in */
  c->next = ctx->grave;
  ctx->grave = c;
  hf_loop_defer(ctx->loop, &ctx->reaper);
}

/* Drop without a close handshake, recording what we meant to say. */
static void abort_with(hf_conn *c, uint16_t code, const char *reason) {
  if (!(c->flags & (F_CLOSE_SENT | F_CLOSE_RCVD))) {
    c->close_code = code;
    set_reason(c, reason);
    c->who = HF_WHO_SERVER;
  }
  teardown(c);
}

static void stream_end(hf_conn *c, uint16_t code, const char *reason);

static void slow_consumer(hf_conn *c) {
  if (c->flags & F_IN_SLOW_CB)
    return; /* the application is making room right now */
  if (c->state == ST_OPEN && c->ctx->h.on_slow) {
    c->flags |= F_IN_SLOW_CB;
    int handled = c->ctx->h.on_slow(c, c->out_len);
    c->flags &= (uint16_t)~F_IN_SLOW_CB;
    if (c->state != ST_OPEN)
      return; /* it closed the connection itself */
    if (handled && c->out_len <= c->ctx->cfg.max_queue) {
      clear_over(c);
      return;
    }
  }
  c->flags |= F_SLOW | F_NO_READ;
  if (c->state == ST_OPEN && c->stream) {
    stream_end(c, HF_CLOSE_SLOW, "slow consumer: output queue limit exceeded");
    return;
  }
  if (c->state == ST_OPEN) {
    c->close_code = HF_CLOSE_SLOW;
    set_reason(c, "slow consumer: output queue limit exceeded");
    c->who = HF_WHO_SERVER;
    c->state = ST_CLOSING;
    send_close_frame(c, HF_CLOSE_SLOW, "slow consumer: output queue limit exceeded");
    if (c->state == ST_DEAD)
      return;
    own_timer(c, c->ctx->cfg.close_timeout_ms);
  }
  set_events(c);
}

/* Record our close code and a private copy of reason (it is logged at
 * close, and the caller's text may not live that long). */
static void set_own_reason(hf_conn *c, uint16_t code, const char *reason) {
  c->close_code = code;
  set_reason(c, hf_close_reason(code));
  if (reason && *reason) {
    char buf[HF_FRAME_MAX_CONTROL - 1];
    snprintf(buf, sizeof buf, "%s", reason);
    struct conn_x *x = conn_x(c);
    if (x) {
      free(x->own_reason);
      x->own_reason = strdup(buf);
    }
    set_reason(c, x && x->own_reason ? x->own_reason : reason);
  }
  c->who = HF_WHO_SERVER;
}

/* End a streaming response: the application's last words (on_stream_end),
 * the terminating chunk, then the write side is shut once it is flushed. */
static void stream_end(hf_conn *c, uint16_t code, const char *reason) {
  if (c->state != ST_OPEN)
    return;
  set_own_reason(c, code, reason);
  if (c->ctx->h.on_stream_end)
    c->ctx->h.on_stream_end(c, code, our_reason(c));
  if (c->state != ST_OPEN)
    return;
  c->state = ST_RESPONDED;
  own_timer(c, c->ctx->cfg.close_timeout_ms);
  struct iovec iov = {(void *)"0\r\n\r\n", 5};
  if (write_or_queue(c, &iov, 1) < 0)
    return;
  on_flushed(c);
}

void hf_conn_close(hf_conn *c, uint16_t code, const char *reason) {
  if (c->state == ST_HTTP) {
    abort_with(c, code, reason);
    return;
  }
  if (c->state != ST_OPEN)
    return;
  if (c->stream) {
    stream_end(c, code, reason);
    return;
  }
  c->state = ST_CLOSING;
  set_own_reason(c, code, reason);
  send_close_frame(c, code, our_reason(c));
  if (c->state == ST_DEAD)
    return;
  own_timer(c, c->ctx->cfg.close_timeout_ms);
}

/* Peer broke the protocol: close with the parser's code, stop reading. */
/* RFC 6455 7.1.7 "Fail the WebSocket Connection": send the close frame,
 * then shut the write side once it is flushed, without waiting for the
 * peer's answer; input is drained and dropped until EOF so that closing the
 * socket does not turn into a reset that could destroy our close frame. */
static void protocol_fail(hf_conn *c, uint16_t code, const char *reason) {
  if (c->state == ST_OPEN) {
    hf_conn_close(c, code, reason);
    if (c->state != ST_DEAD)
      c->flags |= F_DISCARD;
  } else {
    abort_with(c, code, reason);
  }
}

/* ---- WebSocket input ---------------------------------------------------- */

static int assemble(hf_conn *c, const uint8_t *p, size_t n) {
  struct conn_x *x = conn_x(c);
  if (!x)
    return HF_ENOMEM;
  if (!n)
    return 0; /* empty fragments are legal and add nothing */
  if (x->msg_len + n > x->msg_cap) {
    size_t cap = x->msg_cap ? x->msg_cap : 1024;
    while (cap < x->msg_len + n)
      cap *= 2;
    uint8_t *nb = realloc(x->msg, cap);
    if (!nb)
      return HF_ENOMEM;
    x->msg = nb;
    x->msg_cap = (uint32_t)cap;
  }
  memcpy(x->msg + x->msg_len, p, n);
  x->msg_len += (uint32_t)n;
  return 0;
}

/* Inflate a compressed frame: whole messages with the thread's inflater
 * into the context's buffer (no allocation once warm), fragmented ones or
 * context takeover with the connection's own. Delivers the message at fin. */
static void on_compressed(hf_conn *c, hf_ws_event *ev) {
  hf_conn_ctx *ctx = c->ctx;
  size_t limit = ctx->cfg.max_message ? (size_t)ctx->cfg.max_message : SIZE_MAX - 1;
  int whole = ev->first && ev->fin && !c->dfl_ctake;
  hf_inflate *z;
  uint8_t **buf;
  size_t len, cap;
  struct conn_x *x = NULL;
  if (!whole && !(x = conn_x(c))) {
    protocol_fail(c, HF_CLOSE_INTERNAL, "out of memory");
    return;
  }
  if (whole) {
    z = hf_inflate_thread();
    if (z)
      hf_inflate_reset(z);
    buf = &ctx->zbuf;
    len = 0;
    cap = ctx->zbuf_cap;
  } else {
    if (!x->inf)
      x->inf = hf_inflate_new(c->dfl_ctake && c->dfl_cbits > 9 ? c->dfl_cbits
                              : c->dfl_ctake ? 9 : 15);
    z = x->inf;
    if (z && ev->first && !c->dfl_ctake)
      hf_inflate_reset(z);
    buf = &x->msg;
    len = x->msg_len;
    cap = x->msg_cap;
  }
  int r = z ? hf_inflate_feed(z, ev->data, ev->len, ev->fin, buf, &len, &cap, limit)
            : HF_ENOMEM;
  if (whole)
    ctx->zbuf_cap = cap;
  else {
    x->msg_len = (uint32_t)len;
    x->msg_cap = (uint32_t)cap;
  }
  if (r < 0) {
    if (z && whole)
      hf_inflate_reset(z);
    if (r == HF_ETOOBIG)
      protocol_fail(c, HF_CLOSE_TOO_BIG, "message too big (after inflating)");
    else if (r == HF_EPROTO)
      protocol_fail(c, HF_CLOSE_INVALID_PAYLOAD, "invalid compressed data");
    else
      protocol_fail(c, HF_CLOSE_INTERNAL, "out of memory");
    return;
  }
  if (!ev->fin)
    return;
  uint8_t *m = *buf;
  if (!whole) { /* the message is ours now; no inflater kept without need */
    x->msg = NULL;
    x->msg_len = x->msg_cap = 0;
    if (!c->dfl_ctake) {
      hf_inflate_free(x->inf);
      x->inf = NULL;
    }
  }
  if (ev->opcode == HF_OP_TEXT && !hf_utf8_valid(m, len)) {
    if (!whole)
      free(m);
    protocol_fail(c, HF_CLOSE_INVALID_PAYLOAD, "invalid UTF-8 in text message");
    return;
  }
  c->msgs_in++;
  st_add(&ctx->stats.msgs_in, 1);
  st_add(&ctx->stats.msgs_inflated, 1);
  ctx->h.on_message(c, ev->opcode, m, len);
  if (!whole)
    free(m);
}

static void on_ws_event(hf_conn *c, hf_ws_event *ev) {
  hf_conn_ctx *ctx = c->ctx;
  switch (ev->type) {
  case HF_WS_EV_DATA:
    if (c->state != ST_OPEN)
      return; /* after our close frame: discard */
    c->io.bulk = 0; /* established: served before new-connection work */
    if (ev->compressed) {
      on_compressed(c, ev);
      return;
    }
    if (ev->first && ev->fin) {
      c->msgs_in++;
      st_add(&ctx->stats.msgs_in, 1);
      ctx->h.on_message(c, ev->opcode, ev->data, ev->len);
      return;
    }
    if (assemble(c, ev->data, ev->len) < 0) {
      protocol_fail(c, HF_CLOSE_INTERNAL, "out of memory");
      return;
    }
    if (ev->fin) {
      c->msgs_in++;
      st_add(&ctx->stats.msgs_in, 1);
      uint8_t *m = c->x->msg; /* assemble made c->x */
      size_t ml = c->x->msg_len;
      c->x->msg = NULL;
      c->x->msg_len = c->x->msg_cap = 0;
      ctx->h.on_message(c, ev->opcode, m, ml);
      free(m);
    }
    return;
  case HF_WS_EV_PING:
    if (c->state == ST_OPEN)
      send_frame(c, HF_OP_PONG, ev->data, ev->len);
    return;
  case HF_WS_EV_PONG:
    return; /* any input counts as liveness (heard) */
  case HF_WS_EV_CLOSE:
    c->flags |= F_CLOSE_RCVD;
    if (c->state == ST_OPEN) {
      /* the peer started the close: echo its code and close TCP */
      uint16_t code = ev->close_code == HF_CLOSE_NO_STATUS ? HF_CLOSE_NORMAL
                                                            : ev->close_code;
      c->who = HF_WHO_CLIENT;
      c->close_code = ev->close_code;
      struct conn_x *x = ev->close_reason_len ? conn_x(c) : NULL;
      if (x && !x->peer_reason) {
        x->peer_reason = malloc(ev->close_reason_len + 1);
        if (x->peer_reason) {
          memcpy(x->peer_reason, ev->close_reason, ev->close_reason_len);
          x->peer_reason[ev->close_reason_len] = 0;
        }
      }
      c->state = ST_CLOSING;
      send_close_frame(c, code, hf_close_reason(code));
      if (c->state == ST_DEAD)
        return;
      own_timer(c, ctx->cfg.close_timeout_ms);
    }
    c->flags |= F_NO_READ;
    set_events(c);
    on_flushed(c);
    return;
  }
}

/* Feed buf[0..len) (which is either the loop buffer or c->in) to the
 * parser; keep what is left of an incomplete frame in c->in. */
static void process_ws(hf_conn *c, uint8_t *buf, size_t len) {
  hf_conn_ctx *ctx = c->ctx;
  size_t off = 0;
  ctx->cork_owner = c;
  ctx->cork_len = 0;
  /* Between frames the parser holds only its options: a fresh one on the
   * stack reads the next frames, and only a frame or fragmented message
   * left incomplete keeps a parser of its own in c->ws. */
  hf_ws_parser fresh, *p = c->ws;
  if (!p) {
    memset(&fresh, 0, sizeof fresh);
    fresh.expect_mask = 1;
    fresh.max_message = ctx->cfg.max_message;
    fresh.allow_rsv1 = c->dfl;
    p = &fresh;
  }
  int failed = 0;
  while (off < len && c->state != ST_DEAD &&
         !(c->flags & (F_CLOSE_RCVD | F_DISCARD))) {
    hf_ws_event ev;
    size_t need = 0;
    ssize_t r = hf_ws_parse(p, buf + off, len - off, &ev, &need);
    if (r == HF_EAGAIN) {
      c->need = (uint32_t)need;
      break;
    }
    if (r < 0) {
      failed = 1;
      protocol_fail(c, p->err_code, p->err_reason);
      off = len;
      break;
    }
    off += (size_t)r;
    on_ws_event(c, &ev);
  }
  if (c->state == ST_DEAD)
    return;
  if (!failed && !hf_ws_parser_idle(p) && p == &fresh) {
    c->ws = malloc(sizeof *c->ws);
    if (!c->ws) {
      abort_with(c, HF_CLOSE_INTERNAL, "out of memory");
      return;
    }
    *c->ws = fresh;
  } else if (c->ws && (failed || hf_ws_parser_idle(c->ws))) {
    free(c->ws);
    c->ws = NULL;
  }
  size_t rest =
      (c->flags & (F_CLOSE_RCVD | F_NO_READ | F_DISCARD)) ? 0 : len - off;
  if (!rest) {
    free(c->in); /* idle connections hold no input buffer */
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    c->need = 0;
  } else if (buf == c->in) {
    memmove(c->in, c->in + off, rest);
    c->in_len = (uint32_t)rest;
  } else {
    size_t cap = rest > c->need ? rest : c->need;
    if (cap < 256)
      cap = 256;
    uint8_t *nb = malloc(cap);
    if (!nb) {
      abort_with(c, HF_CLOSE_INTERNAL, "out of memory");
      return;
    }
    memcpy(nb, buf + off, rest);
    free(c->in);
    c->in = nb;
    c->in_len = (uint32_t)rest;
    c->in_cap = (uint32_t)cap;
  }
  flush_cork(ctx);
  ctx->cork_owner = NULL;
  on_flushed(c);
}

/* ---- HTTP input --------------------------------------------------------- */

static void respond_error(hf_conn *c, int status, const char *why) {
  char body[256];
  int n = snprintf(body, sizeof body, "%s\n", why);
  hf_conn_respond(c, status, NULL, NULL, body, (size_t)n);
}

/* After a keep-alive answer: keep the bytes of the next request (already
 * read behind this one) in c->in for the caller to parse. */
static void keep_pipelined(hf_conn *c, uint8_t *buf, size_t len, size_t used) {
  size_t rest = len - used;
  if (!rest) {
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    return;
  }
  if (buf == c->in) {
    memmove(c->in, c->in + used, rest);
  } else {
    size_t cap = rest > c->ctx->cfg.max_head + 1 ? rest : c->ctx->cfg.max_head + 1;
    uint8_t *nb = malloc(cap);
    if (!nb) {
      abort_with(c, HF_CLOSE_INTERNAL, "out of memory");
      return;
    }
    memcpy(nb, buf + used, rest);
    free(c->in);
    c->in = nb;
    c->in_cap = (uint32_t)cap;
  }
  c->in_len = (uint32_t)rest;
  c->flags |= F_PIPELINED;
}

static void process_http(hf_conn *c, uint8_t *buf, size_t len, size_t last) {
  hf_conn_ctx *ctx = c->ctx;
  hf_http_header hdrs[MAX_HEADERS_CAP];
  hf_http_request req = {0};
  req.headers = hdrs;
  req.num_headers = ctx->cfg.max_headers < MAX_HEADERS_CAP
                        ? ctx->cfg.max_headers
                        : MAX_HEADERS_CAP;
  const char *why = NULL;
  if (!conn_tls(c) && !(c->flags & F_ANSWERED) && hf_tls_looks_like_hello(buf, len)) {
    /* not a garbage request: a TLS client on a plain port */
    transport_error(c, "tls_on_plain_port",
                    "a TLS ClientHello arrived on a plain (ws://, http://) port: "
                    "the client uses wss:// or https:// for this address");
    abort_with(c, 0, "TLS on a plain port");
    return;
  }
  ssize_t r = hf_http_parse_request((const char *)buf, len, last,
                                    ctx->cfg.max_head, &req, &why);
  if (r == HF_EAGAIN) {
    if (buf != c->in) {
      c->in = malloc(ctx->cfg.max_head + 1);
      if (!c->in) {
        abort_with(c, HF_CLOSE_INTERNAL, "out of memory");
        return;
      }
      c->in_cap = ctx->cfg.max_head + 1;
      memcpy(c->in, buf, len);
    }
    c->in_len = (uint32_t)len;
    return;
  }
  /* a new request: the previous one's keep-alive state is spent */
  c->flags &= (uint16_t)~(F_HEAD_REQ | F_KEEPALIVE | F_ANSWERED);
  if (r == HF_ETOOBIG) {
    if (ctx->h.on_bad_request)
      ctx->h.on_bad_request(c, 431, "head_too_large",
                            why ? why : "request head too large");
    respond_error(c, 431, "Request head too large: at most the configured "
                          "websocket.max_header_size bytes and "
                          "websocket.max_headers header fields are accepted.");
    return;
  }
  if (r < 0) {
    char m[200];
    int version = why && strstr(why, "HTTP version");
    snprintf(m, sizeof m, "%s: %s.",
             version ? "Unsupported HTTP version (use HTTP/1.1)"
                     : "Malformed HTTP request",
             why ? why : "bad syntax");
    if (ctx->h.on_bad_request)
      ctx->h.on_bad_request(c, version ? 505 : 400,
                            version ? "http_version" : "malformed_request",
                            why ? why : "bad syntax");
    respond_error(c, version ? 505 : 400, m);
    return;
  }
  size_t head = (size_t)r;
  if (req.method_len == 4 && memcmp(req.method, "HEAD", 4) == 0)
    c->flags |= F_HEAD_REQ;
  ctx->h.on_request(c, &req);
  if (c->state == ST_OPEN && c->stream) {
    free(c->in); /* a streaming response reads nothing more */
    c->in = NULL;
    c->in_len = c->in_cap = 0;
  } else if (c->state == ST_OPEN) {
    c->bytes_in = len - head; /* count WebSocket bytes only */
    st_add(&ctx->stats.bytes_in, len - head);
    if (len > head) {
      /* frames pipelined behind the head: move them out of the way first
       * if they live in c->in (process_ws keeps leftovers there) */
      if (buf == c->in) {
        memmove(c->in, c->in + head, len - head);
        process_ws(c, c->in, len - head);
      } else {
        process_ws(c, buf + head, len - head);
      }
    } else {
      free(c->in);
      c->in = NULL;
      c->in_len = c->in_cap = 0;
    }
  } else if (c->state == ST_BODY) {
    size_t have = len - head;
    if (have >= c->body_need) {
      uint8_t *body = buf + head; /* complete already: no copy */
      size_t used = head + c->body_need;
      c->state = ST_HTTP;         /* the handler answers from here */
      ctx->h.on_body(c, body, c->body_need);
      if (c->state == ST_HTTP && !(c->flags & (F_ANSWERED | F_DEFERRED)))
        respond_error(c, 500, "Internal error: the request was not answered.");
      if (c->state == ST_HTTP) /* kept alive */
        keep_pipelined(c, buf, len, used);
      else if (buf == c->in && c->state != ST_DEAD) {
        free(c->in);
        c->in = NULL;
        c->in_len = c->in_cap = 0;
      }
      return;
    }
    uint8_t *nb = malloc(c->body_need ? c->body_need : 1);
    if (!nb) {
      abort_with(c, HF_CLOSE_INTERNAL, "out of memory");
      return;
    }
    memcpy(nb, buf + head, have);
    free(c->in);
    c->in = nb;
    c->in_len = (uint32_t)have;
    c->in_cap = c->body_need;
  } else if (c->state == ST_HTTP && (c->flags & F_ANSWERED)) {
    keep_pipelined(c, buf, len, head); /* answered and kept alive */
  } else if (c->state != ST_DEAD) {
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
  }
}

/* More of a request body arrived (into c->in, sized for the whole body). */
static void process_body(hf_conn *c) {
  if (c->in_len < c->body_need)
    return;
  c->state = ST_HTTP;
  c->ctx->h.on_body(c, c->in, c->body_need);
  if (c->state == ST_HTTP && !(c->flags & (F_ANSWERED | F_DEFERRED)))
    respond_error(c, 500, "Internal error: the request was not answered.");
  if (c->state != ST_DEAD) { /* the body buffer held exactly the body */
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
  }
}

/* ---- transport: PROXY header, TLS ---------------------------------------- */

/* recv() or its TLS equivalent: > 0 bytes, 0 at EOF, -1 with errno
 * (EAGAIN: nothing now). */
static ssize_t conn_recv(hf_conn *c, void *buf, size_t cap) {
  if (!conn_tls(c))
    return recv(c->io.fd, buf, cap, 0);
  int waited = c->xflags & XF_RD_WANTS_WR;
  c->xflags &= (uint8_t)~XF_RD_WANTS_WR;
  ssize_t n = hf_tls_read(conn_tls(c), buf, cap);
  if (n >= 0) {
    if (waited)
      set_events(c);
    return n;
  }
  if (n == HF_EAGAIN) {
    if (hf_tls_want(conn_tls(c)) == HF_TLS_WANT_WRITE)
      c->xflags |= XF_RD_WANTS_WR;
    if ((c->xflags & XF_RD_WANTS_WR) != waited)
      set_events(c);
    errno = EAGAIN;
    return -1;
  }
  errno = EIO;
  return -1;
}

static void transport_error(hf_conn *c, const char *reason, const char *detail) {
  if (c->ctx->h.on_transport_error)
    c->ctx->h.on_transport_error(c, reason, detail);
}

static void set_client(hf_conn *c, const conn_addr *a) {
  struct conn_x *x = conn_x(c);
  if (!x)
    return; /* out of memory: the TCP peer stays the client */
  x->client = *a;
  x->has_client = 1;
}

/* Read the PROXY protocol header without reading past it: peek, parse,
 * then consume exactly the header's bytes (incomplete: every byte seen so
 * far belongs to it, so all of them are consumed and nothing is peeked
 * twice). Returns 1 when done (c->xport moved on), 0 to wait. */
static int read_proxy(hf_conn *c) {
  if (!c->in) {
    c->in = malloc(HF_PROXY_MAX_HEADER);
    if (!c->in) {
      abort_with(c, 0, "out of memory");
      return 0;
    }
    c->in_cap = HF_PROXY_MAX_HEADER;
    c->in_len = 0;
  }
  ssize_t n = recv(c->io.fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_PEEK);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return 0;
  if (n <= 0) {
    teardown(c); /* gone before saying anything: a probe or a reset */
    return 0;
  }
  hf_proxy_info pi;
  const char *why = NULL;
  size_t have = c->in_len, avail = have + (size_t)n;
  ssize_t r = hf_proxy_parse(c->in, avail, &pi, &why);
  if (r < 0 && r != HF_EAGAIN) {
    transport_error(c, "bad_proxy_header", why ? why : "no PROXY protocol header");
    if (!conn_tls(c) && c->in[0] >= 'A' && c->in[0] <= 'Z') {
      c->xport = X_PLAIN; /* an HTTP client sent straight to this port */
      free(c->in);
      c->in = NULL;
      c->in_len = c->in_cap = 0;
      respond_error(c, 400, "This port expects a PROXY protocol header from a "
                            "proxy (the listener is configured for it); "
                            "connect through the proxy.");
    } else {
      abort_with(c, 0, "bad PROXY protocol header");
    }
    return 0;
  }
  size_t upto = r == HF_EAGAIN ? avail : (size_t)r, want = upto - have;
  if (recv(c->io.fd, c->in + have, want, 0) != (ssize_t)want) {
    teardown(c);
    return 0;
  }
  c->in_len = (uint32_t)upto;
  if (r == HF_EAGAIN)
    return 0; /* the rest of the header is still coming */
  if (!pi.local) {
    conn_addr a = {.port = pi.src_port, .len = pi.family == 4 ? 4 : 16};
    memcpy(a.ip, pi.src, a.len);
    set_client(c, &a);
  }
  free(c->in);
  c->in = NULL;
  c->in_len = c->in_cap = 0;
  c->xport = conn_tls(c) ? X_TLS_HS : X_PLAIN;
  set_events(c);
  return c->state != ST_DEAD;
}

/* Drive the TLS handshake. Before the first byte reaches OpenSSL, a peek
 * tells plain HTTP (an ASCII method; no TLS record starts with a letter)
 * from TLS: plain HTTP gets an explained 400 in clear text. */
static void tls_step(hf_conn *c) {
  if (!(c->xflags & XF_PEEKED)) {
    uint8_t b[8];
    ssize_t n = recv(c->io.fd, b, sizeof b, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    if (n <= 0) {
      teardown(c); /* connected and left: a probe */
      return;
    }
    c->xflags |= XF_PEEKED;
    if (b[0] >= 'A' && b[0] <= 'Z') {
      hf_tls_free(c->x->tls); /* (a TLS connection has x) */
      c->x->tls = NULL;
      c->xport = X_PLAIN;
      transport_error(c, "plain_http_on_tls_port",
                      "plain HTTP was sent to this TLS port (the client used "
                      "http:// or ws:// instead of https:// or wss://)");
      respond_error(c, 400, "This port speaks TLS: use https:// or wss:// for "
                            "this address (the request was plain HTTP).");
      return;
    }
  }
  int r = hf_tls_handshake(conn_tls(c));
  if (r == 0) {
    set_events(c);
    return;
  }
  if (r < 0) {
    transport_error(c, "tls_handshake_failed", hf_tls_error(conn_tls(c)));
    abort_with(c, 0, "TLS handshake failed");
    return;
  }
  c->xport = X_TLS;
  set_events(c);
}

/* ---- I/O callbacks ------------------------------------------------------ */

static void on_eof(hf_conn *c) {
  if (c->state == ST_OPEN || c->state == ST_CLOSING) {
    teardown(c); /* abnormal unless a close frame went either way */
  } else if (c->state == ST_HTTP) {
    c->close_code = 0;
    teardown(c);
  } else {
    teardown(c);
  }
}

static void on_readable(hf_conn *c) {
  hf_conn_ctx *ctx = c->ctx;
  uint8_t *buf;
  size_t cap, len;
  int into_in = c->in_len > 0;
  if (c->state == ST_RESPONDED || (c->flags & F_DISCARD) || c->stream) {
    /* discard what the client still sends until EOF (lingering close);
     * a streaming response's client ends it by closing the connection */
    size_t rc;
    uint8_t *rb = hf_loop_rbuf(ctx->loop, &rc);
    ssize_t n = conn_recv(c, rb, rc);
    if (n > 0 && c->upgraded) {
      c->bytes_in += (uint64_t)n; /* dropped, but received: count it */
      c->heard = 1;
      st_add(&ctx->stats.bytes_in, (uint64_t)n);
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      if (c->state == ST_OPEN) { /* the normal end of a stream */
        c->close_code = HF_CLOSE_GOING_AWAY;
        set_reason(c, "client closed the stream");
        c->who = HF_WHO_CLIENT;
      }
      teardown(c);
    }
    return;
  }
  if (c->state == ST_BODY) {
    ssize_t n = conn_recv(c, c->in + c->in_len, c->body_need - c->in_len);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      on_eof(c);
      return;
    }
    if (n > 0) {
      c->in_len += (uint32_t)n;
      process_body(c);
    }
    return;
  }
  if (into_in) {
    if (c->state == ST_HTTP) {
      cap = c->in_cap - c->in_len;
    } else {
      size_t want = c->need > c->in_len + 16384 ? c->need : c->in_len + 16384;
      if (want > c->in_cap) {
        uint8_t *nb = realloc(c->in, want);
        if (!nb) {
          abort_with(c, HF_CLOSE_INTERNAL, "out of memory");
          return;
        }
        c->in = nb;
        c->in_cap = (uint32_t)want;
      }
      cap = c->in_cap - c->in_len;
    }
    buf = c->in;
  } else {
    buf = hf_loop_rbuf(ctx->loop, &cap);
  }
  ssize_t n = conn_recv(c, buf + (into_in ? c->in_len : 0), cap);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR)
      return;
    on_eof(c);
    return;
  }
  if (n == 0) {
    on_eof(c);
    return;
  }
  size_t last = into_in ? c->in_len : 0;
  len = last + (size_t)n;
  if (c->state == ST_HTTP) {
    process_http(c, buf, len, last);
    /* keep-alive: further requests that arrived in the same read */
    while (c->state == ST_HTTP && (c->flags & F_PIPELINED) &&
           !(c->flags & F_DEFERRED)) {
      c->flags &= (uint16_t)~F_PIPELINED;
      process_http(c, c->in, c->in_len, 0);
    }
  } else {
    c->bytes_in += (uint64_t)n;
    c->heard = 1;
    st_add(&ctx->stats.bytes_in, (uint64_t)n);
    process_ws(c, buf, len);
  }
}

static void on_writable(hf_conn *c) {
  if (outq_write(c) < 0) {
    teardown(c);
    return;
  }
  if (c->out_len) {
    queue_check(c); /* draining, but for how long over the limit? */
    return;
  }
  clear_over(c);
  set_events(c);
  on_flushed(c);
}

static void conn_io(hf_loop *loop, hf_io *io, uint32_t ev) {
  hf_conn *c = (hf_conn *)io;
  if (c->state == ST_DEAD)
    return;
  if (c->xport == X_PROXY || c->xport == X_TLS_HS) {
    if (c->xport == X_PROXY && !read_proxy(c))
      return;
    if (c->xport == X_TLS_HS)
      tls_step(c);
    if (c->state == ST_DEAD || c->xport == X_TLS_HS)
      return;
    ev = EPOLLIN; /* the request may be here already */
  }
  if ((ev & EPOLLOUT) && (c->xflags & XF_RD_WANTS_WR))
    ev |= EPOLLIN; /* a TLS read was waiting for this */
  if (ev & EPOLLOUT)
    on_writable(c);
  if (c->state == ST_DEAD)
    return;
  if (ev & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR)) {
    if (c->flags & F_NO_READ) {
      if (ev & (EPOLLHUP | EPOLLERR))
        teardown(c);
      return;
    }
    on_readable(c);
    /* bytes OpenSSL decrypted but did not hand over (a short buffer)
     * raise no event: take them now */
    for (int i = 0; i < 64 && conn_tls(c) && c->state != ST_DEAD &&
                    !(c->flags & F_NO_READ) && hf_tls_pending(conn_tls(c));
         i++)
      on_readable(c);
  }
}

/* The engine's own deadline came. */
static void own_expired(hf_conn *c) {
  hf_conn_ctx *ctx = c->ctx;
  switch (c->state) {
  case ST_HTTP:
  case ST_BODY:
    if (c->flags & F_DEFERRED) { /* the application never answered */
      c->who = HF_WHO_SERVER;
      set_reason(c, "response timeout");
      teardown(c);
      return;
    }
    if (c->state == ST_HTTP && (c->flags & F_ANSWERED) && !c->in_len) {
      teardown(c); /* an idle kept-alive connection: a normal end */
      return;
    }
    c->flags |= F_HS_TIMEOUT;
    c->who = HF_WHO_SERVER;
    set_reason(c, "handshake timeout");
    teardown(c);
    return;
  case ST_RESPONDED:
  case ST_CLOSING:
    teardown(c); /* peer did not answer the close / read the response */
    return;
  case ST_OPEN:
    if (c->flags & F_AWAIT_PONG) {
      if (!c->heard) {
        /* silent since the ping: half-open or dead peer */
        c->close_code = HF_CLOSE_NO_PONG;
        set_reason(c, "no pong: heartbeat timeout");
        st_add(&ctx->stats.pong_timeouts, 1);
        c->who = HF_WHO_SERVER;
        send_close_frame(c, HF_CLOSE_NO_PONG, "no pong: heartbeat timeout");
        teardown(c);
        return;
      }
      c->flags &= (uint16_t)~F_AWAIT_PONG;
      uint32_t rest = ctx->cfg.ping_interval_ms > ctx->cfg.pong_timeout_ms
                          ? ctx->cfg.ping_interval_ms - ctx->cfg.pong_timeout_ms
                          : 1;
      own_timer(c, rest);
      return;
    }
    c->flags |= F_AWAIT_PONG;
    c->heard = 0;
    send_frame(c, HF_OP_PING, (const uint8_t *)"hf", 2);
    if (c->state == ST_OPEN)
      own_timer(c, ctx->cfg.pong_timeout_ms);
    return;
  default:
    return;
  }
}

/* c's timer fired: the engine's deadline, the application's, or both. */
static void conn_timer(hf_loop *loop, hf_timer *t) {
  hf_conn *c = (hf_conn *)((char *)t - offsetof(hf_conn, timer));
  uint64_t own, app, now = hf_loop_now(loop);
  timer_get(c, &own, &app);
  int own_due = own && own <= now, app_due = app && app <= now;
  timer_put(c, own_due ? 0 : own, app_due ? 0 : app); /* what is not due stays */
  if (own_due)
    own_expired(c); /* may tear c down, or set the engine's next deadline */
  if (app_due && c->state != ST_DEAD && c->ctx->h.on_timer)
    c->ctx->h.on_timer(c);
}

/* ---- public API --------------------------------------------------------- */

hf_conn_ctx *hf_conn_ctx_new(hf_loop *loop, const hf_conn_config *cfg,
                             const hf_conn_handler *h) {
  hf_conn_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx)
    return NULL;
  ctx->loop = loop;
  ctx->cfg = *cfg;
  ctx->h = *h;
  ctx->reaper.cb = reap;
  ctx->over_timer.cb = over_tick;
  ctx->resumer.cb = resume_pipelined;
  memset(ctx->cork, 0, sizeof ctx->cork); /* fault in at start-up */
  if (cfg->send_uring) { /* io_uring if the kernel allows it, else sendmsg */
    ctx->usb = malloc(sizeof *ctx->usb);
    ctx->us = ctx->usb ? hf_usend_new(US_BATCH, &ctx->us_err) : NULL;
    if (!ctx->us) {
      ctx->us_err = ctx->usb ? ctx->us_err : -ENOMEM;
      free(ctx->usb);
      ctx->usb = NULL;
    } else {
      ctx->usb->n = ctx->usb->niov_used = 0;
    }
  }
  if (getrandom(ctx->rng, sizeof ctx->rng, 0) != (ssize_t)sizeof ctx->rng) {
    free(ctx);
    return NULL;
  }
  return ctx;
}

void hf_conn_ctx_free(hf_conn_ctx *ctx) {
  if (!ctx)
    return;
  while (ctx->head) {
    hf_conn *c = ctx->head;
    if (!(c->flags & (F_CLOSE_SENT | F_CLOSE_RCVD))) {
      c->close_code = HF_CLOSE_GOING_AWAY;
      set_reason(c, "server stopped");
      c->who = HF_WHO_SERVER;
    }
    teardown(c); /* a started close handshake keeps its own code/reason */
  }
  ctx->cfg.flush_budget = 0; /* all of it, now */
  reap(ctx->loop, &ctx->reaper);
  hf_timer_cancel(ctx->loop, &ctx->over_timer);
  hf_usend_free(ctx->us);
  free(ctx->usb);
  free(ctx->zbuf);
  free(ctx);
}

int hf_conn_ctx_send_uring(const hf_conn_ctx *ctx, int *err) {
  if (err)
    *err = ctx->us ? 0 : ctx->us_err;
  return ctx->us != NULL;
}

size_t hf_conn_ctx_count(const hf_conn_ctx *ctx) { return ctx->count; }

const hf_conn_stats *hf_conn_ctx_stats(const hf_conn_ctx *ctx) { return &ctx->stats; }

void hf_conn_ctx_each(hf_conn_ctx *ctx, void (*fn)(void *arg, hf_conn *c), void *arg) {
  for (hf_conn *c = ctx->head; c; c = c->next)
    fn(arg, c);
}

hf_conn *hf_conn_ctx_first(const hf_conn_ctx *ctx) { return ctx->head; }
/* teardown unlinks c and sets its next to the graveyard only after
 * on_close: until then c->next is the live one that followed it */
hf_conn *hf_conn_ctx_next(const hf_conn *c) { return c->next; }

void hf_conn_ctx_close_all(hf_conn_ctx *ctx, uint16_t code, const char *reason) {
  ctx->draining = 1;
  hf_conn *c = ctx->head;
  while (c) {
    hf_conn *n = c->next;
    /* connections still in the HTTP phase are left to finish it: the
     * application answers them (e.g. 503) or the handshake timeout ends them */
    if (c->state == ST_OPEN)
      hf_conn_close(c, code, reason);
    else if (c->state == ST_HTTP && (c->flags & F_ANSWERED) && !c->in_len)
      teardown(c); /* an idle kept-alive connection: nothing in flight */
    else if (c->state == ST_RESPONDED && !c->out_len)
      teardown(c); /* answer delivered; do not linger through a drain */
    c = n;
  }
}

hf_conn *hf_conn_accept(hf_conn_ctx *ctx, int fd, const struct sockaddr *sa,
                        socklen_t salen) {
  return hf_conn_accept_ex(ctx, fd, sa, salen, NULL);
}

hf_conn *hf_conn_accept_ex(hf_conn_ctx *ctx, int fd, const struct sockaddr *sa,
                           socklen_t salen, const hf_conn_accept_opts *o) {
  hf_conn *c = calloc(1, sizeof *c);
  if (!c) {
    close(fd);
    return NULL;
  }
  if (o && o->tls) { /* TLS connections keep their session in the cold block */
    struct conn_x *x = conn_x(c);
    if (!x || !(x->tls = hf_tls_accept(o->tls, fd))) {
      free(x);
      free(c);
      close(fd);
      return NULL;
    }
    c->xport = X_TLS_HS;
  }
  if (o && o->proxy_protocol)
    c->xport = X_PROXY;
  c->ctx = ctx;
  c->io.fd = fd;
  c->io.cb = conn_io;
  c->io.bulk = 1; /* new-connection work until its first message (loop.h) */
  c->timer.cb = conn_timer;
  c->t_accept = hf_loop_now(ctx->loop);
  c->state = ST_HTTP;
  addr_from_sockaddr(&c->peer, sa, salen);
  uint64_t a = rng_next(ctx->rng), b = rng_next(ctx->rng);
  memcpy(c->id, &a, 8);
  memcpy(c->id + 8, &b, 8);
  c->id[6] = (uint8_t)((c->id[6] & 0x0f) | 0x40); /* UUID version 4 */
  c->id[8] = (uint8_t)((c->id[8] & 0x3f) | 0x80); /* RFC 4122 variant */
  if (hf_loop_add(ctx->loop, &c->io, EPOLLIN | EPOLLRDHUP) < 0) {
    close(fd);
    if (c->x) {
      hf_tls_free(c->x->tls);
      free(c->x);
    }
    free(c);
    return NULL;
  }
  c->next = ctx->head;
  if (ctx->head)
    ctx->head->prev = c;
  ctx->head = c;
  ctx->count++;
  own_timer(c, ctx->cfg.handshake_timeout_ms);
  return c;
}

hf_hs_code hf_conn_upgrade(hf_conn *c, const hf_http_request *req,
                           const hf_handshake_policy *pol,
                           const char *extra_headers, hf_handshake_result *res) {
  hf_hs_code code = hf_handshake_check(req, pol, res);
  if (code != HF_HS_OK) {
    char body[1024];
    int n = snprintf(body, sizeof body, "%s", res->message);
    hf_conn_respond(c, res->status, res->extra_header, NULL, body,
                    (size_t)(n < (int)sizeof body ? n : (int)sizeof body - 1));
    return code;
  }
  char id[37], hdrs[1024];
  hf_conn_id(c, id);
  snprintf(hdrs, sizeof hdrs, "X-Holdfast-Connection-Id: %s\r\n%s", id,
           extra_headers ? extra_headers : "");
  char head[2048];
  int n = hf_handshake_write_101(head, sizeof head, res, hdrs);
  if (n < 0) {
    respond_error(c, 500, "Internal error: response head too large.");
    return HF_HS_OK;
  }
  c->state = ST_OPEN;
  c->upgraded = 1;
  c->need = 0; /* shares its place with body_need */
  if (res->deflate) {
    c->dfl = 1;
    c->dfl_sbits = res->deflate_params.server_max_window_bits;
    c->dfl_cbits = res->deflate_params.client_max_window_bits;
    c->dfl_ctake = !res->deflate_params.client_no_context_takeover;
    hf_shared_deflate_users(1);
  }
  own_timer_cancel(c);
  struct iovec iov = {head, (size_t)n};
  if (write_or_queue(c, &iov, 1) < 0)
    return code;
  c->bytes_out = 0; /* count WebSocket bytes only */
  if (c->state == ST_OPEN && c->ctx->cfg.ping_interval_ms)
    own_timer(c, c->ctx->cfg.ping_interval_ms);
  return code;
}

void hf_conn_keep_alive(hf_conn *c) {
  if (c->state == ST_HTTP || c->state == ST_BODY)
    c->flags |= F_KEEPALIVE;
}

static void resume_later(hf_conn *c);

void hf_conn_respond(hf_conn *c, int status, const char *extra_headers,
                     const char *content_type, const char *body,
                     size_t body_len) {
  if (c->state != ST_HTTP || (c->flags & F_ANSWERED))
    return;
  if (c->flags & F_DEFERRED) { /* reading resumes after this answer */
    c->flags &= (uint16_t)~(F_DEFERRED | F_NO_READ);
    set_events(c);
    if (c->state == ST_DEAD)
      return;
    if ((c->flags & F_PIPELINED) || (conn_tls(c) && hf_tls_pending(conn_tls(c))))
      resume_later(c);
  }
  int ka = (c->flags & F_KEEPALIVE) && !(c->ctx->draining);
  char stack[4096], *head = stack;
  int n = hf_http_write_response_ka(head, sizeof stack, status, ka,
                                    extra_headers, content_type, body, body_len);
  if (n < 0 && body_len < (1u << 30)) { /* a large body: build it on the heap */
    size_t cap = body_len + 2048;
    head = malloc(cap);
    n = head ? hf_http_write_response_ka(head, cap, status, ka, extra_headers,
                                         content_type, body, body_len)
             : -1;
  }
  if (n < 0) {
    if (head != stack)
      free(head);
    abort_with(c, 0, "response too large");
    return;
  }
  if (c->flags & F_HEAD_REQ)
    n -= (int)body_len; /* same head (Content-Length included), no body */
  c->flags |= F_ANSWERED;
  if (ka) { /* wait for the next request, bounded like the first one */
    c->state = ST_HTTP;
    own_timer(c, c->ctx->cfg.handshake_timeout_ms);
  } else {
    c->state = ST_RESPONDED;
    own_timer(c, c->ctx->cfg.close_timeout_ms);
  }
  struct iovec iov = {head, (size_t)n};
  int r = write_or_queue(c, &iov, 1);
  if (head != stack)
    free(head);
  if (r < 0)
    return;
  on_flushed(c);
}

static void flush_later(hf_conn *c);

int hf_conn_send_shared(hf_conn *c, hf_shared *sh, size_t off, size_t len) {
  if (c->state != ST_OPEN)
    return HF_ECLOSED;
  hf_conn_ctx *ctx = c->ctx;
  hf_shared *z;
  if (c->dfl && off == 0 && len == sh->len && c->dfl_sbits >= hf_shared_deflate_bits() &&
      (z = hf_shared_variant_find(sh, HF_SHARED_VARIANT_DEFLATE))) {
    sh = z; /* compressed once for every deflate recipient */
    len = sh->len;
  }
  if (ctx->cork_owner == c) {
    int r = flush_cork(ctx); /* keep the order of everything sent */
    if (r < 0)
      return r;
  }
  int r = seg_push(c, take_ref(ctx, sh), (uint32_t)off, (uint32_t)len);
  if (r < 0) {
    drop_ref(ctx, sh);
    slow_consumer(c);
    return r;
  }
  c->msgs_out++;
  st_add(&ctx->stats.msgs_out, 1);
  if (c->out_len > ctx->cfg.max_queue && queue_check(c))
    return HF_ELIMIT;
  flush_later(c);
  return 0;
}

static void flush_later(hf_conn *c) {
  hf_conn_ctx *ctx = c->ctx;
  if (!(c->flags & F_FLUSH_Q)) {
    c->flags |= F_FLUSH_Q;
    c->flush_next = NULL;
    if (ctx->flush_tail)
      ctx->flush_tail->flush_next = c;
    else
      ctx->flush = c;
    ctx->flush_tail = c;
    hf_loop_defer(ctx->loop, &ctx->reaper);
  }
}

int hf_conn_send_shared_v(hf_conn *c, struct hf_shared *const *sh, size_t n) {
  if (c->state != ST_OPEN)
    return HF_ECLOSED;
  hf_conn_ctx *ctx = c->ctx;
  if (ctx->cork_owner == c) {
    int r = flush_cork(ctx); /* keep the order of everything sent */
    if (r < 0)
      return r;
  }
  int r = seg_reserve(c, n);
  if (r < 0) {
    slow_consumer(c);
    return r;
  }
  int dfl = c->dfl && c->dfl_sbits >= hf_shared_deflate_bits();
  size_t i = 0;
  while (i < n) {
    hf_shared *f = sh[i++], *z;
    if (dfl && (z = hf_shared_variant_find(f, HF_SHARED_VARIANT_DEFLATE)))
      f = z; /* compressed once for every deflate recipient */
    c->segs[c->seg_head + c->seg_n++] = (struct outseg){take_ref(ctx, f), 0, f->len};
    c->out_len += f->len;
    if (c->out_len > ctx->cfg.max_queue)
      break; /* the caller looks again before sending the rest */
  }
  c->msgs_out += i;
  st_add(&ctx->stats.msgs_out, i);
  flush_later(c);
  if (c->out_len > ctx->cfg.max_queue && queue_check(c))
    return HF_ELIMIT;
  return (int)i;
}

/* End of iteration: parse the requests pipelined behind deferred answers
 * (not from inside the application's completion callback: no re-entry). */
static void resume_pipelined(hf_loop *loop, hf_deferred *d) {
  hf_conn_ctx *ctx = (hf_conn_ctx *)((char *)d - offsetof(hf_conn_ctx, resumer));
  while (ctx->resume) {
    hf_conn *c = ctx->resume;
    ctx->resume = c->flush_next;
    c->flush_next = NULL;
    while (c->state == ST_HTTP && (c->flags & F_PIPELINED) &&
           !(c->flags & F_DEFERRED)) {
      c->flags &= (uint16_t)~F_PIPELINED;
      process_http(c, c->in, c->in_len, 0);
    }
    /* requests OpenSSL already decrypted raise no event */
    if (conn_tls(c) && c->state == ST_HTTP && !(c->flags & (F_DEFERRED | F_NO_READ)) &&
        hf_tls_pending(conn_tls(c)))
      conn_io(loop, &c->io, EPOLLIN);
  }
}

static void resume_later(hf_conn *c) {
  hf_conn_ctx *ctx = c->ctx;
  for (hf_conn *x = ctx->resume; x; x = x->flush_next)
    if (x == c)
      return;
  c->flush_next = ctx->resume; /* free in the HTTP phase: see F_FLUSH_Q */
  ctx->resume = c;
  hf_loop_defer(ctx->loop, &ctx->resumer);
}

void hf_conn_defer(hf_conn *c) {
  if (c->state != ST_HTTP || (c->flags & F_ANSWERED))
    return;
  c->flags |= F_DEFERRED | F_NO_READ; /* one request at a time */
  set_events(c);
  if (c->state != ST_DEAD)
    own_timer(c, c->ctx->cfg.response_timeout_ms
                                              ? c->ctx->cfg.response_timeout_ms
                                              : 30000);
}

size_t hf_conn_drop_queued(hf_conn *c) {
  if (c->seg_n < 2)
    return 0; /* the head segment may be half written: it stays */
  size_t dropped = 0;
  uint16_t keep = 1;
  struct outseg *g = c->segs + c->seg_head;
  for (uint16_t i = 1; i < c->seg_n; i++) {
    if (g[i].sh->flags & HF_SHARED_DROPPABLE) {
      dropped += g[i].len;
      drop_ref(c->ctx, g[i].sh);
      c->msgs_out--;
    } else {
      g[keep++] = g[i];
    }
  }
  c->seg_n = keep;
  c->out_len -= (uint32_t)dropped;
  return dropped;
}

size_t hf_conn_queued(const hf_conn *c) { return c->out_len; }

int hf_conn_read_body(hf_conn *c, size_t len) {
  if (c->state != ST_HTTP || !c->ctx->h.on_body || len > UINT32_MAX - 1)
    return HF_EINVAL;
  c->state = ST_BODY;
  c->body_need = (uint32_t)len;
  return 0;
}

int hf_conn_stream_start(hf_conn *c, const char *extra_headers) {
  if (c->state != ST_HTTP || (c->flags & F_ANSWERED))
    return HF_EINVAL;
  char id[37], head[2048];
  hf_conn_id(c, id);
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                   "X-Holdfast-Connection-Id: %s\r\n%s\r\n",
                   id, extra_headers ? extra_headers : "");
  if (n < 0 || (size_t)n >= sizeof head)
    return HF_EINVAL;
  if (c->flags & F_DEFERRED) {
    c->flags &= (uint16_t)~(F_DEFERRED | F_NO_READ);
    set_events(c);
    if (c->state == ST_DEAD)
      return HF_ECLOSED;
  }
  c->flags |= F_ANSWERED;
  c->flags &= (uint16_t)~(F_KEEPALIVE | F_PIPELINED);
  c->state = ST_OPEN;
  c->upgraded = 1;
  c->stream = 1;
  own_timer_cancel(c);
  struct iovec iov = {head, (size_t)n};
  int r = write_or_queue(c, &iov, 1);
  if (r < 0)
    return r;
  c->bytes_out = 0; /* count the body only, as for WebSocket */
  return 0;
}

int hf_conn_send_chunk(hf_conn *c, const struct iovec *parts, int n) {
  if (c->state != ST_OPEN || !c->stream)
    return HF_ECLOSED;
  if (n < 1 || n > 6)
    return HF_EINVAL;
  size_t total = 0;
  for (int i = 0; i < n; i++)
    total += parts[i].iov_len;
  if (!total)
    return 0; /* an empty chunk would end the response */
  char hdr[20];
  int hl = snprintf(hdr, sizeof hdr, "%zx\r\n", total);
  struct iovec iov[8];
  iov[0] = (struct iovec){hdr, (size_t)hl};
  for (int i = 0; i < n; i++)
    iov[1 + i] = parts[i];
  iov[1 + n] = (struct iovec){(void *)"\r\n", 2};
  c->msgs_out++;
  st_add(&c->ctx->stats.msgs_out, 1);
  if (c->ctx->cork_owner == c) {
    int r = flush_cork(c->ctx);
    if (r < 0)
      return r;
  }
  return write_or_queue(c, iov, n + 2);
}

int hf_conn_send(hf_conn *c, int opcode, const uint8_t *data, size_t len) {
  if (c->state != ST_OPEN)
    return HF_ECLOSED;
  if (c->stream)
    return HF_EINVAL; /* streams take chunks (hf_conn_send_chunk) */
  if (opcode == HF_OP_TEXT || opcode == HF_OP_BINARY) {
    c->msgs_out++;
    st_add(&c->ctx->stats.msgs_out, 1);
    const hf_conn_config *cfg = &c->ctx->cfg;
    if (c->dfl && len >= cfg->deflate_min_size) {
      /* the thread's compressor, reset per message (we never keep context:
       * shared frames are compressed without it) */
      hf_deflate_enc *e = hf_deflate_thread_enc(cfg->deflate_level,
                                                cfg->deflate_mem_level, c->dfl_sbits);
      size_t bound = hf_deflate_bound(len);
      uint8_t *out = e ? hf_deflate_thread_buf(bound) : NULL;
      long n = out ? hf_deflate_compress(e, 1, data, len, out, bound) : -1;
      if (n >= 0 && (size_t)n < len) {
        st_add(&c->ctx->stats.msgs_deflated, 1);
        return send_frame(c, opcode | HF_FRAME_RSV1, out, (size_t)n);
      }
    }
  }
  return send_frame(c, opcode, data, len);
}

int hf_conn_deflate(const hf_conn *c) { return c->dfl; }

void hf_conn_id_format(const uint8_t id[16], char out[37]) {
  static const char hx[] = "0123456789abcdef";
  int j = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      out[j++] = '-';
    out[j++] = hx[id[i] >> 4];
    out[j++] = hx[id[i] & 15];
  }
  out[j] = 0;
}

void hf_conn_id(const hf_conn *c, char out[37]) { hf_conn_id_format(c->id, out); }

const uint8_t *hf_conn_id_raw(const hf_conn *c) { return c->id; }

uint64_t hf_conn_accept_ms(const hf_conn *c) { return c->t_accept; }

static void addr_text(const conn_addr *a, char *out, size_t cap);

void hf_conn_peer(const hf_conn *c, char *out, size_t cap) {
  addr_text(&c->peer, out, cap);
}

static void addr_text(const conn_addr *a, char *out, size_t cap) {
  char ip[INET6_ADDRSTRLEN] = "?";
  /* port 0: not known (a client named by a forwarding header) */
  if (a->len == 4 || a->len == 16) {
    inet_ntop(a->len == 4 ? AF_INET : AF_INET6, a->ip, ip, sizeof ip);
    if (a->port)
      snprintf(out, cap, a->len == 4 ? "%s:%u" : "[%s]:%u", ip, a->port);
    else
      snprintf(out, cap, "%s", ip);
  } else {
    snprintf(out, cap, "unknown");
  }
}

static size_t addr_ip(const conn_addr *a, uint8_t out[16]) {
  memcpy(out, a->ip, a->len);
  return a->len;
}

size_t hf_conn_peer_ip(const hf_conn *c, uint8_t out[16]) {
  return addr_ip(&c->peer, out);
}

void hf_conn_client(const hf_conn *c, char *out, size_t cap) {
  addr_text(hf_conn_has_client(c) ? &c->x->client : &c->peer, out, cap);
}

size_t hf_conn_client_ip(const hf_conn *c, uint8_t out[16]) {
  return addr_ip(hf_conn_has_client(c) ? &c->x->client : &c->peer, out);
}

int hf_conn_has_client(const hf_conn *c) { return c->x && c->x->has_client; }

void hf_conn_set_client(hf_conn *c, const uint8_t *ip, size_t len,
                        uint16_t port) {
  if (len != 4 && len != 16)
    return;
  conn_addr a = {.port = port, .len = (uint8_t)len};
  memcpy(a.ip, ip, len);
  set_client(c, &a);
}

struct hf_tls *hf_conn_tls(const hf_conn *c) {
  return c->xport == X_TLS ? conn_tls(c) : NULL;
}

int hf_conn_is_tls(const hf_conn *c) { return conn_tls(c) != NULL; }

struct hf_tls *hf_conn_tls_session(const hf_conn *c) { return conn_tls(c); }

void hf_conn_set_udata(hf_conn *c, void *udata) { c->udata = udata; }
void *hf_conn_udata(const hf_conn *c) { return c->udata; }
hf_conn_ctx *hf_conn_get_ctx(const hf_conn *c) { return c->ctx; }

void hf_conn_set_timer(hf_conn *c, uint64_t due) {
  if (c->state == ST_DEAD)
    return; /* gone: teardown cancelled the timer */
  uint64_t own, app;
  timer_get(c, &own, &app);
  timer_put(c, own, due == UINT64_MAX ? 0 : due);
}

hf_loop *hf_conn_loop(const hf_conn *c) { return c->ctx->loop; }
