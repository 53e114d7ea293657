/* SPDX-License-Identifier: MIT */
/* The WebSocket client: one connection at a time through the phases
 * resolve -> TCP -> TLS -> upgrade -> open -> closing, driven by one epoll
 * set (its descriptor is what the application watches) and a handful of
 * deadlines; frames parsed in the client role by lib/frame.c; the
 * connection state machine and reconnection policy in reconnect.c. */
#include "hf/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "client_impl.h"
#include "hf/close.h"
#include "hf/deflate.h"
#include "hf/err.h"
#include "hf/frame.h"
#include "hf/tls.h"
#include "hf/url.h"
#include "hf/utf8.h"

#define MAX_HEAD 16384    /* longest upgrade response head */
#define MAX_HEADERS 64
#define BODY_KEEP 1024    /* bytes of a refusal's body kept for the report */
#define BODY_WAIT_MS 1000 /* how long to wait for those bytes */
#define CTL_MAX 16384     /* connection-bound output: request, pongs, close */
#define RBUF_MIN 16384
#define READS_PER_EVENT 16

/* Internal phases; each maps to one public state. */
enum {
  PH_STOPPED,
  PH_RESOLVE,
  PH_TCP,
  PH_TLS,
  PH_HS,   /* request written / response head awaited */
  PH_BODY, /* a refusal's body is being read */
  PH_OPEN,
  PH_CLOSING,
  PH_WAIT
};

struct hf_client {
  hf_client_config cfg; /* strings point to the copies below */
  char *url_s;
  hf_url url;
  char host[HF_URL_MAX_HOST + 1];
  char **hdrs;
  size_t n_hdrs;
  char **protos;
  char *origin, *user_agent, *dns_servers, *ca_file;

  int epfd;
  hf__rand rnd;
  hf_reconnect rc;
  int phase;
  uint64_t deadline; /* ms; the current phase's */
  uint64_t phase_t0; /* us; when the current phase started */
  uint32_t attempt_no;
  unsigned gen;      /* bumped at every teardown: stale views die */
  int cred_pending;

  hf__dns *dns;
  hf_tls_client *tlsc; /* wss: the client-role TLS configuration */
  int fd;
  hf__tp *tp;
  uint32_t ep_events;
  size_t tcp_idx;

  /* output: connection-bound bytes first (at frame boundaries), then the
   * data frames, which survive a reconnect unless half-written */
  uint8_t *ctl;
  size_t ctl_len, ctl_off, ctl_cap;
  uint8_t *q;
  size_t q_len, q_off, q_cap, frame_rem;
  uint8_t close_frame[HF_FRAME_MAX_HEADER + HF_FRAME_MAX_CONTROL];
  size_t close_frame_len;
  int close_queued, close_sent, close_rcvd, user_closing;
  uint16_t code_sent, code_rcvd;
  char reason_rcvd[HF_FRAME_MAX_CONTROL];

  /* input */
  uint8_t *rbuf;
  size_t rlen, rcap, head_seen;
  hf_ws_parser parser;
  uint8_t *msg;
  size_t msg_len, msg_cap;
  int msg_op;

  /* permessage-deflate */
  hf_deflate_config dcfg;
  char doffer[128];
  int dfl_on;
  hf_deflate_params dparams;
  hf_deflate_enc *enc;
  hf_inflate *inf;

  /* heartbeat (ms) */
  uint64_t last_rx, ping_sent;

  /* handshake and the report */
  char key[25];
  char *req;
  size_t req_len;
  char *resp_raw;
  hf_http_header resp_hdrs[MAX_HEADERS];
  hf_http_response resp;
  uint8_t body[BODY_KEEP];
  size_t body_want;
  char subprotocol[128];
  hf_client_report rep;

  /* hf_loop attachment */
  hf_loop *loop;
  hf_io lio;
  hf_timer ltimer;
};

/* ---- small helpers -------------------------------------------------------- */

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t now_ms(void) { return now_us() / 1000u; }

static int ensure(uint8_t **buf, size_t *cap, size_t need, size_t limit) {
  if (need <= *cap)
    return 0;
  if (need > limit)
    return HF_ELIMIT;
  size_t n = *cap ? *cap : 256;
  while (n < need)
    n = n > limit / 2 ? limit : n * 2;
  uint8_t *p = realloc(*buf, n);
  if (!p)
    return HF_ENOMEM;
  *buf = p;
  *cap = n;
  return 0;
}

void hf_client_addr_text(const struct sockaddr_storage *a, char *out, size_t cap) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;
    inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
    snprintf(out, cap, "[%s]:%u", ip, ntohs(s->sin6_port));
  } else {
    const struct sockaddr_in *s = (const struct sockaddr_in *)a;
    inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
    snprintf(out, cap, "%s:%u", ip, ntohs(s->sin_port));
  }
}

const char *hf_client_layer_name(hf_client_layer l) {
  switch (l) {
  case HF_LAYER_NONE: return "none";
  case HF_LAYER_DNS: return "dns";
  case HF_LAYER_TCP: return "tcp";
  case HF_LAYER_TLS: return "tls";
  case HF_LAYER_HTTP: return "http";
  case HF_LAYER_WS: return "websocket";
  }
  return "unknown";
}

static hf_client_state public_state(int phase) {
  switch (phase) {
  case PH_RESOLVE:
  case PH_TCP:
  case PH_TLS:
  case PH_HS:
  case PH_BODY:
    return HF_CLIENT_CONNECTING;
  case PH_OPEN: return HF_CLIENT_OPEN;
  case PH_CLOSING: return HF_CLIENT_CLOSING;
  case PH_WAIT: return HF_CLIENT_WAITING;
  default: return HF_CLIENT_STOPPED;
  }
}

static void event_init(hf_client_event *ev, hf_client_state from,
                       hf_client_state to) {
  memset(ev, 0, sizeof *ev);
  ev->from = from;
  ev->to = to;
  ev->reason = "";
  ev->diagnosis = "";
  ev->close_reason = "";
  ev->decision = "";
  ev->retry_after_ms = -1;
}

static void emit(hf_client *c, const hf_client_event *ev) {
  if (c->cfg.on_state)
    c->cfg.on_state(c, ev, c->cfg.user);
}

/* Keep the hf_loop timer in step with the client's deadlines. */
static void rearm(hf_client *c) {
  if (!c->loop)
    return;
  int t = hf_client_timeout_ms(c);
  if (t < 0)
    hf_timer_cancel(c->loop, &c->ltimer);
  else
    hf_timer_set(c->loop, &c->ltimer, (uint64_t)t);
}

static void set_interest(hf_client *c, uint32_t events) {
  if (c->fd < 0 || events == c->ep_events)
    return;
  struct epoll_event ev = {.events = events,
                           .data.u64 = HF__TAG(HF__TAG_SOCK, c->fd)};
  epoll_ctl(c->epfd, EPOLL_CTL_MOD, c->fd, &ev);
  c->ep_events = events;
}

/* ---- output ----------------------------------------------------------------- */

/* Total length of the client frame starting at f (header, mask, payload). */
static size_t frame_len(const uint8_t *f) {
  size_t plen = f[1] & 0x7f, h = 2;
  if (plen == 126) {
    plen = ((size_t)f[2] << 8) | f[3];
    h = 4;
  } else if (plen == 127) {
    plen = 0;
    for (int i = 0; i < 8; i++)
      plen = (plen << 8) | f[2 + i];
    h = 10;
  }
  return h + 4 + plen;
}

/* Write a masked frame into dst (room for HF_FRAME_MAX_HEADER + len). */
static size_t build_frame(hf_client *c, uint8_t *dst, int op, const void *p,
                          size_t len) {
  uint8_t key[4];
  hf__rand_bytes(&c->rnd, key, 4);
  size_t h = hf_frame_header(dst, 1, op, len, key);
  if (len)
    memcpy(dst + h, p, len);
  hf_frame_mask(dst + h, len, key, 0);
  return h + len;
}

static int ctl_append(hf_client *c, const void *p, size_t n) {
  if (c->ctl_off == c->ctl_len)
    c->ctl_off = c->ctl_len = 0;
  int rc = ensure(&c->ctl, &c->ctl_cap, c->ctl_len + n, CTL_MAX);
  if (rc < 0)
    return rc;
  memcpy(c->ctl + c->ctl_len, p, n);
  c->ctl_len += n;
  return 0;
}

static int ctl_frame(hf_client *c, int op, const void *p, size_t len) {
  uint8_t f[HF_FRAME_MAX_HEADER + HF_FRAME_MAX_CONTROL];
  return ctl_append(c, f, build_frame(c, f, op, p, len));
}

static void q_consume(hf_client *c, size_t k) {
  while (k) {
    if (!c->frame_rem)
      c->frame_rem = frame_len(c->q + c->q_off);
    size_t t = k < c->frame_rem ? k : c->frame_rem;
    c->q_off += t;
    c->frame_rem -= t;
    k -= t;
  }
  if (c->q_off == c->q_len)
    c->q_off = c->q_len = 0;
}

static int may_write_data(const hf_client *c) {
  return c->phase == PH_OPEN ||
         (c->phase == PH_CLOSING && c->close_queued && !c->close_sent);
}

static int has_output(const hf_client *c) {
  if (c->ctl_off < c->ctl_len || c->frame_rem)
    return 1;
  if (c->phase == PH_HS || !may_write_data(c))
    return 0;
  return c->q_off < c->q_len || (c->close_queued && !c->close_sent);
}

static void fail_io(hf_client *c, const char *what);

/* Write what the socket takes. Returns 0, or -1 after the connection
 * failed (and was torn down). */
static int flush(hf_client *c) {
  while (c->tp && (c->phase == PH_HS || c->phase == PH_OPEN ||
                   c->phase == PH_CLOSING)) {
    struct iovec iov[2];
    int n = 0;
    size_t ctl_n = 0;
    if (c->frame_rem && c->phase != PH_HS) {
      iov[n].iov_base = c->q + c->q_off;
      iov[n++].iov_len = c->frame_rem; /* finish the frame first */
    } else {
      if (c->phase != PH_HS && may_write_data(c) && c->close_queued &&
          !c->close_sent && c->q_off == c->q_len &&
          ctl_append(c, c->close_frame, c->close_frame_len) == 0)
        c->close_sent = 1;
      if (c->ctl_off < c->ctl_len) {
        ctl_n = c->ctl_len - c->ctl_off;
        iov[n].iov_base = c->ctl + c->ctl_off;
        iov[n++].iov_len = ctl_n;
      }
      if (c->phase != PH_HS && may_write_data(c) && c->q_off < c->q_len) {
        iov[n].iov_base = c->q + c->q_off;
        iov[n++].iov_len = c->q_len - c->q_off;
      }
    }
    if (!n)
      break;
    ssize_t w = c->tp->ops->writev(c->tp, iov, n);
    if (w == HF_EAGAIN)
      break;
    if (w < 0) {
      fail_io(c, "write");
      return -1;
    }
    size_t k = (size_t)w;
    if (!c->frame_rem || c->phase == PH_HS) {
      size_t t = k < ctl_n ? k : ctl_n;
      c->ctl_off += t;
      k -= t;
    }
    if (k)
      q_consume(c, k);
  }
  if (c->tp) {
    uint32_t ev = c->phase == PH_BODY || c->phase == PH_HS || c->phase == PH_OPEN ||
                          c->phase == PH_CLOSING
                      ? EPOLLIN
                      : 0;
    if (has_output(c) || c->tp->ops->want(c->tp) == HF__WANT_WRITE)
      ev |= EPOLLOUT;
    set_interest(c, ev);
  }
  return 0;
}

/* ---- teardown and the end of a connection ----------------------------------- */

/* Remove the compressed (RSV1) frames from the queue: they were made for a
 * connection that negotiated permessage-deflate, and the next one may not. */
static void drop_compressed(hf_client *c) {
  size_t r = c->q_off, w = c->q_off;
  while (r < c->q_len) {
    size_t n = frame_len(c->q + r);
    if (!(c->q[r] & HF_FRAME_RSV1)) {
      if (w != r)
        memmove(c->q + w, c->q + r, n);
      w += n;
    }
    r += n;
  }
  c->q_len = w;
  if (c->q_off == c->q_len)
    c->q_off = c->q_len = 0;
}

static void teardown(hf_client *c) {
  c->gen++;
  if (c->dns)
    hf__dns_cancel(c->dns);
  if (c->tp) {
    c->tp->ops->free(c->tp);
    c->tp = NULL;
  }
  if (c->fd >= 0) {
    epoll_ctl(c->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
  }
  c->ep_events = 0;
  c->ctl_len = c->ctl_off = 0;
  if (c->frame_rem) { /* a half-written frame cannot be resumed elsewhere */
    c->q_off += c->frame_rem;
    c->frame_rem = 0;
    if (c->q_off == c->q_len)
      c->q_off = c->q_len = 0;
  }
  if (c->dfl_on)
    drop_compressed(c);
  c->dfl_on = 0;
  c->rlen = c->head_seen = 0;
  c->msg_len = 0;
  c->close_queued = c->close_sent = c->close_rcvd = 0;
  c->code_sent = c->code_rcvd = 0;
  c->reason_rcvd[0] = '\0';
  c->deadline = 0;
}

static void drop_queue(hf_client *c) { c->q_len = c->q_off = c->frame_rem = 0; }

static void start_attempt(hf_client *c);

/* The connection or attempt ended: tear it down, ask the state machine what
 * next, tell the application. ev carries the cause-specific fields. */
static void ended(hf_client *c, hf_client_event *ev, hf_cause cause, int code) {
  hf_client_state from = public_state(c->phase);
  int user = c->user_closing;
  teardown(c);
  if (user)
    cause = HF_CAUSE_USER;
  if (ev->layer != HF_LAYER_NONE && c->rep.failed == HF_LAYER_NONE &&
      cause != HF_CAUSE_USER) {
    c->rep.failed = ev->layer;
    snprintf(c->rep.error, sizeof c->rep.error, "%s", ev->reason);
  }
  uint64_t now = now_ms();
  hf_reconnect_decision d = hf_reconnect_ended(&c->rc, now, cause, code,
                                               ev->retry_after_ms,
                                               hf__rand_u32(&c->rnd));
  c->user_closing = 0;
  ev->from = from;
  ev->to = d.to;
  ev->cause = cause;
  ev->delay_ms = d.delay_ms;
  ev->attempt = d.attempt;
  ev->decision = d.why;
  if (d.to == HF_CLIENT_WAITING) {
    c->phase = PH_WAIT;
    c->deadline = now + d.delay_ms;
    c->attempt_no = d.attempt;
    c->cred_pending = 0;
  } else {
    c->phase = PH_STOPPED;
    drop_queue(c);
  }
  unsigned g = c->gen;
  emit(c, ev);
  if (g != c->gen || c->phase != PH_WAIT || d.action != HF_RC_REFRESH ||
      !c->cfg.on_credentials)
    return;
  int r = c->cfg.on_credentials(c, ev, c->cfg.user);
  if (g != c->gen || c->phase != PH_WAIT)
    return;
  if (r == HF_CRED_PENDING) {
    c->cred_pending = 1;
  } else if (r != HF_CRED_READY) {
    hf_client_event e;
    event_init(&e, HF_CLIENT_WAITING, HF_CLIENT_STOPPED);
    e.cause = HF_CAUSE_USER;
    e.reason = "the application has no credentials to retry with";
    e.decision = "credentials refused";
    hf_reconnect_stop(&c->rc);
    c->phase = PH_STOPPED;
    drop_queue(c);
    emit(c, &e);
  }
}

/* A failure with a reason built here (copied into the report). */
static void failf(hf_client *c, hf_cause cause, int code, hf_client_layer layer,
                  int closed_by, const char *diagnosis, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static void failf(hf_client *c, hf_cause cause, int code, hf_client_layer layer,
                  int closed_by, const char *diagnosis, const char *fmt, ...) {
  char reason[sizeof c->rep.error];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  hf_client_event ev;
  event_init(&ev, 0, 0);
  ev.layer = layer;
  ev.reason = reason;
  ev.diagnosis = diagnosis ? diagnosis : "";
  ev.closed_by = closed_by;
  if (layer == HF_LAYER_WS)
    ev.close_code = code ? code : HF_CLOSE_ABNORMAL;
  ended(c, &ev, cause, code);
}

static void fail_io(hf_client *c, const char *what) {
  const char *e = c->tp ? c->tp->ops->error(c->tp) : "";
  switch (c->phase) {
  case PH_OPEN:
    failf(c, HF_CAUSE_ABNORMAL, HF_CLOSE_ABNORMAL, HF_LAYER_WS, HF_BY_NETWORK,
          "the network, a proxy or the server's host dropped the connection "
          "without a WebSocket close; reconnecting with backoff is right",
          "the connection failed on %s: %s (1006, no close frame)", what, e);
    break;
  case PH_CLOSING:
    failf(c, c->close_rcvd ? HF_CAUSE_CLOSE_FRAME : HF_CAUSE_ABNORMAL,
          c->close_rcvd ? c->code_rcvd : HF_CLOSE_ABNORMAL, HF_LAYER_WS,
          c->close_rcvd ? HF_BY_SERVER : HF_BY_NETWORK, NULL,
          "the connection failed on %s while closing: %s", what, e);
    break;
  default:
    failf(c, HF_CAUSE_ABNORMAL, 0,
          c->phase == PH_TLS ? HF_LAYER_TLS : HF_LAYER_HTTP, HF_BY_NETWORK,
          "the server (or something in front of it) accepted the TCP "
          "connection and then reset it; look at the server's log, and "
          "check that the URL's scheme matches the port (ws:// vs wss://)",
          "the connection failed on %s during the handshake: %s", what, e);
  }
}

/* ---- connect phases ---------------------------------------------------------- */

static void tcp_begin(hf_client *c, size_t idx);
static void hs_begin(hf_client *c);
static void tls_step(hf_client *c);

static const char *dns_diagnosis(int status) {
  return hf__dns_notfound(status)
             ? "the name does not exist or has no address; check the host in "
               "the URL and its DNS records"
             : "the DNS servers did not answer; check /etc/resolv.conf and the "
               "network path to them";
}

static void dns_collect(hf_client *c) {
  int status;
  const char *err;
  size_t n = 0;
  if (c->phase != PH_RESOLVE ||
      !hf__dns_result(c->dns, &status, &err, c->rep.addrs, HF_CLIENT_MAX_ADDRS, &n))
    return;
  c->rep.dns_us = (int64_t)(now_us() - c->phase_t0);
  if (status != 0) {
    failf(c, HF_CAUSE_DNS, 0, HF_LAYER_DNS, HF_BY_NONE, dns_diagnosis(status),
          "cannot resolve %s: %s", c->host, err);
    return;
  }
  c->rep.naddrs = n;
  c->rep.reached = HF_LAYER_DNS;
  tcp_begin(c, 0);
}

static void resolve_begin(hf_client *c) {
  c->phase_t0 = now_us();
  struct sockaddr_in *a4 = (struct sockaddr_in *)&c->rep.addrs[0];
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&c->rep.addrs[0];
  memset(&c->rep.addrs[0], 0, sizeof c->rep.addrs[0]);
  if (c->url.host_ip == 4 && inet_pton(AF_INET, c->host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)c->url.port);
  } else if (c->url.host_ip == 6 &&
             inet_pton(AF_INET6, c->host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)c->url.port);
  }
  if (c->url.host_ip) {
    c->rep.literal = 1;
    c->rep.naddrs = 1;
    c->rep.dns_us = 0;
    c->rep.reached = HF_LAYER_DNS;
    tcp_begin(c, 0);
    return;
  }
  if (!c->dns) {
    char err[160];
    c->dns = hf__dns_new(c->epfd, c->dns_servers, c->cfg.dns_timeout_ms, err,
                         sizeof err);
    if (!c->dns) {
      failf(c, HF_CAUSE_DNS, 0, HF_LAYER_DNS, HF_BY_NONE, NULL,
            "cannot set up the resolver: %s", err);
      return;
    }
  }
  c->phase = PH_RESOLVE;
  c->deadline = now_ms() + c->cfg.dns_timeout_ms;
  hf__dns_resolve(c->dns, c->host, c->url.port);
  dns_collect(c); /* /etc/hosts answers at once */
}

static const char *tcp_diagnosis(int err) {
  switch (err) {
  case ECONNREFUSED:
    return "nothing is listening on that address and port (or a firewall "
           "rejects the connection); start the server, or check the host and "
           "port in the URL and the server's listen address";
  case ETIMEDOUT:
    return "no answer to the TCP connection request: a firewall drops the "
           "packets, or the host is down";
  case EHOSTUNREACH:
  case ENETUNREACH:
    return "there is no route to that address from this machine";
  default:
    return "";
  }
}

static void tcp_fail_all(hf_client *c, int err, int timed_out) {
  char addr[64];
  hf_client_addr_text(&c->rep.addrs[c->rep.ntried ? c->rep.ntried - 1 : 0],
                      addr, sizeof addr);
  failf(c, timed_out ? HF_CAUSE_TIMEOUT : HF_CAUSE_TCP, 0, HF_LAYER_TCP,
        HF_BY_NETWORK, tcp_diagnosis(err), "cannot connect to %s%s: %s", addr,
        c->rep.naddrs > 1 ? " (nor the other addresses)" : "",
        timed_out ? "timed out" : strerror(err));
}

/* Try addresses from idx on; the first that starts connecting wins. */
static void tcp_begin(hf_client *c, size_t idx) {
  int last = 0;
  c->phase = PH_TCP;
  for (; idx < c->rep.naddrs; idx++) {
    const struct sockaddr_storage *a = &c->rep.addrs[idx];
    socklen_t alen = a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
    c->rep.ntried = idx + 1;
    c->phase_t0 = now_us();
    int fd = socket(a->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last = c->rep.tcp_errno[idx] = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)a, alen) < 0 && errno != EINPROGRESS) {
      last = c->rep.tcp_errno[idx] = errno;
      close(fd);
      continue;
    }
    struct epoll_event ev = {.events = EPOLLOUT,
                             .data.u64 = HF__TAG(HF__TAG_SOCK, fd)};
    if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
      last = c->rep.tcp_errno[idx] = errno;
      close(fd);
      continue;
    }
    c->fd = fd;
    c->ep_events = EPOLLOUT;
    c->tcp_idx = idx;
    c->deadline = now_ms() + c->cfg.tcp_timeout_ms;
    return;
  }
  tcp_fail_all(c, last ? last : ECONNREFUSED, 0);
}

static void tcp_next(hf_client *c, int err) {
  c->rep.tcp_errno[c->tcp_idx] = err;
  epoll_ctl(c->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  c->ep_events = 0;
  if (c->tcp_idx + 1 < c->rep.naddrs)
    tcp_begin(c, c->tcp_idx + 1);
  else
    tcp_fail_all(c, err, err == ETIMEDOUT);
}

static void tcp_ready(hf_client *c) {
  int err = 0;
  socklen_t el = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
    err = errno;
  if (err) {
    tcp_next(c, err);
    return;
  }
  c->rep.tcp_us = (int64_t)(now_us() - c->phase_t0);
  c->rep.connected = (int)c->tcp_idx;
  c->rep.tcp_errno[c->tcp_idx] = 0;
  c->rep.reached = HF_LAYER_TCP;
  if (c->url.secure) {
    hf_tls *t = hf_tls_connect(c->tlsc, c->fd, c->host);
    c->tp = t ? hf__tp_tls(c->fd, t) : NULL;
  } else {
    c->tp = hf__tp_plain(c->fd);
  }
  if (!c->tp) {
    failf(c, HF_CAUSE_TCP, 0, HF_LAYER_TCP, HF_BY_CLIENT, NULL, "out of memory");
    return;
  }
  if (!c->url.secure) {
    hs_begin(c);
    return;
  }
  c->phase = PH_TLS;
  c->phase_t0 = now_us();
  c->deadline = now_ms() + c->cfg.tls_timeout_ms;
  c->rep.tls_insecure = c->cfg.insecure;
  tls_step(c);
}

/* What the TLS session says about itself, into the report. */
static void tls_report(hf_client *c) {
  hf_tls *t = c->tp->tls;
  snprintf(c->rep.tls_version, sizeof c->rep.tls_version, "%s", hf_tls_version(t));
  snprintf(c->rep.tls_cipher, sizeof c->rep.tls_cipher, "%s", hf_tls_cipher(t));
  snprintf(c->rep.tls_alpn, sizeof c->rep.tls_alpn, "%s", hf_tls_alpn(t));
  c->rep.tls_verify = hf_tls_verify_result(t);
  snprintf(c->rep.tls_verify_text, sizeof c->rep.tls_verify_text, "%s",
           hf_tls_verify_text(t));
  size_t n = hf_tls_peer_chain_len(t);
  if (n > sizeof c->rep.tls_chain / sizeof c->rep.tls_chain[0])
    n = sizeof c->rep.tls_chain / sizeof c->rep.tls_chain[0];
  c->rep.tls_chain_len = 0;
  for (size_t i = 0; i < n; i++)
    if (hf_tls_peer_cert(t, i, &c->rep.tls_chain[c->rep.tls_chain_len]) == 0)
      c->rep.tls_chain_len++;
}

static void tls_step(hf_client *c) {
  int rc = c->tp->ops->handshake(c->tp);
  if (rc == 1) {
    c->rep.tls_us = (int64_t)(now_us() - c->phase_t0);
    c->rep.reached = HF_LAYER_TLS;
    tls_report(c);
    hs_begin(c);
    return;
  }
  if (rc == 0) {
    set_interest(c, c->tp->ops->want(c->tp) == HF__WANT_WRITE ? EPOLLOUT : EPOLLIN);
    return;
  }
  c->rep.tls_us = (int64_t)(now_us() - c->phase_t0);
  tls_report(c);
  char reason[sizeof c->rep.error], diag[768];
  int cert = hf__tls_diagnose(c->tp->tls, c->host, reason, sizeof reason, diag, sizeof diag);
  failf(c, cert ? HF_CAUSE_TLS_CERT : HF_CAUSE_TLS, 0, HF_LAYER_TLS, HF_BY_CLIENT, diag,
        "%s", reason);
}

static void hs_begin(hf_client *c) {
  uint8_t nonce[16];
  hf__rand_bytes(&c->rnd, nonce, sizeof nonce);
  hf_upgrade_key(nonce, c->key);
  hf_upgrade_request r;
  memset(&r, 0, sizeof r);
  r.host = c->url.authority;
  r.host_len = c->url.authority_len;
  r.resource = c->url.resource;
  r.resource_len = c->url.resource_len;
  r.key = c->key;
  r.origin = c->origin;
  r.subprotocols = (const char *const *)c->protos;
  r.n_subprotocols = c->cfg.n_subprotocols;
  r.headers = (const char *const *)c->hdrs;
  r.n_headers = c->n_hdrs;
  r.user_agent = c->user_agent && *c->user_agent ? c->user_agent : NULL;
  if (c->cfg.deflate) {
    c->dcfg.server_max_window_bits = 15;
    c->dcfg.client_max_window_bits = 15;
    if (hf_deflate_offer(&c->dcfg, 1, c->doffer, sizeof c->doffer) > 0)
      r.extensions = c->doffer;
  }
  char buf[CTL_MAX];
  const char *why = "request too large";
  int n = hf_upgrade_write_request(buf, sizeof buf, &r, &why);
  if (n < 0) {
    failf(c, HF_CAUSE_HANDSHAKE, 0, HF_LAYER_HTTP, HF_BY_CLIENT, NULL,
          "cannot write the upgrade request: %s", why);
    return;
  }
  char *copy = realloc(c->req, (size_t)n + 1);
  if (!copy || ctl_append(c, buf, (size_t)n) < 0) {
    if (copy)
      c->req = copy;
    failf(c, HF_CAUSE_HANDSHAKE, 0, HF_LAYER_HTTP, HF_BY_CLIENT, NULL,
          "out of memory");
    return;
  }
  c->req = copy;
  memcpy(c->req, buf, (size_t)n + 1);
  c->req_len = (size_t)n;
  c->rep.request = c->req;
  c->rep.request_len = c->req_len;
  c->phase = PH_HS;
  c->phase_t0 = now_us();
  c->deadline = now_ms() + c->cfg.handshake_timeout_ms;
  flush(c);
}

static void on_open(hf_client *c, size_t head_len);

static void http_refused(hf_client *c) {
  const hf_upgrade_result *k = &c->rep.check;
  hf_client_event ev;
  event_init(&ev, 0, 0);
  char reason[sizeof c->rep.error];
  snprintf(reason, sizeof reason, "the upgrade was refused: HTTP %d %.*s (%s)",
           c->resp.status, (int)(c->resp.reason_len > 60 ? 60 : c->resp.reason_len),
           c->resp.reason, k->reason);
  char diag[1024];
  snprintf(diag, sizeof diag, "%s%s%s", k->diagnosis, *k->fix ? "; fix: " : "",
           k->fix);
  ev.layer = HF_LAYER_HTTP;
  ev.reason = reason;
  ev.diagnosis = diag;
  ev.closed_by = HF_BY_SERVER;
  ev.http_status = c->resp.status;
  if (k->retry_after_s >= 0)
    ev.retry_after_ms = k->retry_after_s * 1000;
  ended(c, &ev, HF_CAUSE_HTTP, c->resp.status);
}

static void body_add(hf_client *c, const uint8_t *p, size_t n) {
  size_t room = BODY_KEEP - c->rep.body_len;
  if (n > room) {
    c->rep.body_truncated = 1;
    n = room;
  }
  memcpy(c->body + c->rep.body_len, p, n);
  c->rep.body_len += n;
  if (c->body_want != (size_t)-1 && c->rep.body_len < c->body_want &&
      c->rep.body_len == BODY_KEEP)
    c->rep.body_truncated = 1;
}

static int body_done(const hf_client *c) {
  return c->rep.body_len >= BODY_KEEP ||
         (c->body_want != (size_t)-1 && c->rep.body_len >= c->body_want);
}

/* A complete response head sits in rbuf[0..head_len). */
static void hs_response(hf_client *c, size_t head_len) {
  c->rep.http_us = (int64_t)(now_us() - c->phase_t0);
  char *raw = realloc(c->resp_raw, head_len);
  if (!raw) {
    failf(c, HF_CAUSE_HANDSHAKE, 0, HF_LAYER_HTTP, HF_BY_CLIENT, NULL,
          "out of memory");
    return;
  }
  c->resp_raw = raw;
  memcpy(raw, c->rbuf, head_len);
  memset(&c->resp, 0, sizeof c->resp);
  c->resp.headers = c->resp_hdrs;
  c->resp.num_headers = MAX_HEADERS;
  hf_http_parse_response(raw, head_len, 0, head_len + 1, &c->resp, NULL);
  c->rep.response = &c->resp;
  const char *exts[1] = {"permessage-deflate"};
  hf_upgrade_expect x = {c->key, c->origin, (const char *const *)c->protos,
                         c->cfg.n_subprotocols, exts, c->cfg.deflate ? 1u : 0u};
  hf_upgrade_code code =
      hf_upgrade_check(&c->resp, &x, (int64_t)time(NULL), &c->rep.check);
  if (c->resp.status == 101) {
    if (code != HF_UPG_OK) {
      char diag[1024];
      snprintf(diag, sizeof diag, "%s; fix: %s", c->rep.check.diagnosis,
               c->rep.check.fix);
      failf(c, HF_CAUSE_HANDSHAKE, 0, HF_LAYER_HTTP, HF_BY_CLIENT, diag,
            "the 101 response is not a valid WebSocket upgrade (%s)",
            c->rep.check.reason);
      return;
    }
    c->dfl_on = 0;
    if (c->cfg.deflate && c->rep.check.extensions) {
      int d = hf_deflate_check_response(&c->dcfg, c->rep.check.extensions,
                                        c->rep.check.extensions_len, &c->dparams);
      if (d < 0) {
        failf(c, HF_CAUSE_HANDSHAKE, 0, HF_LAYER_HTTP, HF_BY_CLIENT,
              "the server answered the permessage-deflate offer with parameters "
              "RFC 7692 does not allow; fix the server (or connect without "
              "compression)",
              "invalid permessage-deflate response: %.*s",
              (int)(c->rep.check.extensions_len > 100 ? 100 : c->rep.check.extensions_len),
              c->rep.check.extensions);
        return;
      }
      c->dfl_on = d == 1;
    }
    c->rep.deflate = c->dfl_on;
    c->rep.reached = HF_LAYER_HTTP;
    on_open(c, head_len);
    return;
  }
  /* a refusal: keep the first bytes of its body for the report */
  c->body_want = (size_t)-1;
  const hf_http_header *cl = hf_http_header_find(c->resp.headers,
                                                 c->resp.num_headers,
                                                 "Content-Length");
  if (cl) {
    size_t v = 0;
    for (size_t i = 0; i < cl->value_len && cl->value[i] >= '0' &&
                       cl->value[i] <= '9' && v < ((size_t)1 << 40);
         i++)
      v = v * 10 + (size_t)(cl->value[i] - '0');
    c->body_want = v;
  }
  c->rep.body = c->body;
  c->rep.body_len = 0;
  body_add(c, c->rbuf + head_len, c->rlen - head_len);
  c->rlen = 0;
  if (body_done(c)) {
    http_refused(c);
    return;
  }
  c->phase = PH_BODY;
  uint64_t t = now_ms() + BODY_WAIT_MS;
  if (t < c->deadline)
    c->deadline = t;
  flush(c);
}

static void hs_input(hf_client *c) {
  const char *why = "malformed";
  memset(&c->resp, 0, sizeof c->resp);
  c->resp.headers = c->resp_hdrs;
  c->resp.num_headers = MAX_HEADERS;
  ssize_t n = hf_http_parse_response((const char *)c->rbuf, c->rlen,
                                     c->head_seen, MAX_HEAD, &c->resp, &why);
  if (n == HF_EAGAIN) {
    c->head_seen = c->rlen;
    return;
  }
  if (n < 0) {
    int tls = c->rlen > 0 && (c->rbuf[0] == 0x15 || c->rbuf[0] == 0x16);
    char first[25];
    size_t k = c->rlen < 24 ? c->rlen : 24;
    for (size_t i = 0; i < k; i++)
      first[i] = c->rbuf[i] >= 0x20 && c->rbuf[i] < 0x7f ? (char)c->rbuf[i] : '.';
    first[k] = '\0';
    failf(c, HF_CAUSE_HANDSHAKE, 0, HF_LAYER_HTTP, HF_BY_SERVER,
          tls ? "the server answered with TLS: use a wss:// URL for this port"
              : "something that is not an HTTP server answered on this port; "
                "check the port in the URL",
          "the response to the upgrade is not HTTP (%s; first bytes: \"%s\")",
          why, first);
    return;
  }
  hs_response(c, (size_t)n);
}

/* ---- open connection: frames ----------------------------------------------- */

static void protocol_fail(hf_client *c, uint16_t code, const char *why) {
  if (!c->close_sent && !c->frame_rem) {
    uint8_t p[HF_FRAME_MAX_CONTROL];
    size_t n = hf_frame_close_payload(p, code, why);
    if (ctl_frame(c, HF_OP_CLOSE, p, n) == 0) {
      c->close_sent = 1;
      c->code_sent = code;
      flush(c); /* best effort; the connection ends now either way */
    }
  }
  if (c->phase != PH_OPEN && c->phase != PH_CLOSING)
    return; /* the flush failed and already ended it */
  c->user_closing = 0;
  char diag[256];
  snprintf(diag, sizeof diag,
           "the server sent frames that break RFC 6455 (%s); this is a bug in "
           "the server or in something rewriting the stream between",
           why);
  failf(c, HF_CAUSE_PROTOCOL, code, HF_LAYER_WS, HF_BY_CLIENT, diag,
        "protocol error: %s (the client closed with %u)", why, code);
}

static void finish_close(hf_client *c, const char *note) {
  hf_client_event ev;
  event_init(&ev, 0, 0);
  char reason[sizeof c->rep.error];
  hf_cause cause;
  int code;
  if (c->user_closing) {
    cause = HF_CAUSE_USER;
    code = c->close_rcvd ? c->code_rcvd : c->code_sent;
    snprintf(reason, sizeof reason, "closed by the client (%u)%s", c->code_sent,
             note);
    ev.closed_by = HF_BY_CLIENT;
  } else {
    cause = HF_CAUSE_CLOSE_FRAME;
    code = c->code_rcvd;
    snprintf(reason, sizeof reason, "closed by the server: %d (%s)%s%s%s", code,
             hf_close_meaning((unsigned)code), *c->reason_rcvd ? ": " : "",
             c->reason_rcvd, note);
    ev.closed_by = HF_BY_SERVER;
  }
  ev.layer = HF_LAYER_WS;
  ev.reason = reason;
  ev.close_code = code;
  ev.close_reason = c->reason_rcvd;
  char rbuf[sizeof c->reason_rcvd];
  memcpy(rbuf, c->reason_rcvd, sizeof rbuf);
  ev.close_reason = rbuf; /* teardown clears the original */
  ended(c, &ev, cause, code);
}

static void on_close_frame(hf_client *c, const hf_ws_event *e) {
  c->close_rcvd = 1;
  c->code_rcvd = e->close_code;
  size_t n = e->close_reason_len < sizeof c->reason_rcvd - 1
                 ? e->close_reason_len
                 : sizeof c->reason_rcvd - 1;
  memcpy(c->reason_rcvd, e->close_reason ? (const char *)e->close_reason : "", n);
  c->reason_rcvd[n] = '\0';
  uint64_t now = now_ms();
  if (c->phase == PH_OPEN) {
    /* the server closes: answer with its code, then wait for its TCP close */
    if (!c->frame_rem) {
      uint8_t p[2] = {(uint8_t)(e->close_code >> 8), (uint8_t)e->close_code};
      if (ctl_frame(c, HF_OP_CLOSE, p, e->close_code == HF_CLOSE_NO_STATUS ? 0 : 2) == 0) {
        c->close_sent = 1;
        c->code_sent = e->close_code;
      }
    }
    hf_reconnect_closing(&c->rc);
    c->phase = PH_CLOSING;
    c->deadline = now + c->cfg.close_timeout_ms;
    hf_client_event ev;
    event_init(&ev, HF_CLIENT_OPEN, HF_CLIENT_CLOSING);
    ev.cause = HF_CAUSE_CLOSE_FRAME;
    ev.layer = HF_LAYER_WS;
    char reason[256];
    snprintf(reason, sizeof reason, "the server sent close %u (%s)%s%s",
             e->close_code, hf_close_meaning(e->close_code), n ? ": " : "",
             c->reason_rcvd);
    ev.reason = reason;
    ev.close_code = e->close_code;
    ev.close_reason = c->reason_rcvd;
    ev.closed_by = HF_BY_SERVER;
    flush(c);
    if (c->phase == PH_CLOSING)
      emit(c, &ev);
  } else {
    /* the answer to our close: the server closes TCP next */
    uint64_t t = now + 1000;
    if (t < c->deadline)
      c->deadline = t;
  }
}

static void deliver(hf_client *c, int op, const uint8_t *p, size_t n) {
  if (c->cfg.on_message)
    c->cfg.on_message(c, op, p, n, c->cfg.user);
}

/* Handle one parsed frame. Returns 0 to go on, -1 when the connection
 * state changed under us (stop parsing). */
static int on_frame(hf_client *c, const hf_ws_event *e) {
  unsigned g = c->gen;
  switch (e->type) {
  case HF_WS_EV_DATA:
    if (e->compressed) {
      if (e->first) {
        c->msg_len = 0;
        c->msg_op = e->opcode;
        if (c->dparams.server_no_context_takeover)
          hf_inflate_reset(c->inf);
      }
      int rc = hf_inflate_feed(c->inf, e->data, e->len, e->fin, &c->msg, &c->msg_len,
                               &c->msg_cap, (size_t)c->cfg.max_message);
      if (rc < 0) {
        protocol_fail(c, rc == HF_EPROTO ? HF_CLOSE_INVALID_PAYLOAD : HF_CLOSE_TOO_BIG,
                      rc == HF_EPROTO ? "compressed message is not valid DEFLATE data"
                                      : "message too big for this client (inflated)");
        return -1;
      }
      if (e->fin) {
        if (c->msg_op == HF_OP_TEXT && !hf_utf8_valid(c->msg, c->msg_len)) {
          protocol_fail(c, HF_CLOSE_INVALID_PAYLOAD, "inflated text is not UTF-8");
          return -1;
        }
        deliver(c, c->msg_op, c->msg, c->msg_len);
        c->msg_len = 0;
      }
    } else if (e->first && e->fin) {
      deliver(c, e->opcode, e->data, e->len);
    } else {
      if (e->first) {
        c->msg_len = 0;
        c->msg_op = e->opcode;
      }
      if (ensure(&c->msg, &c->msg_cap, c->msg_len + e->len,
                 (size_t)c->cfg.max_message + 1) < 0) {
        protocol_fail(c, HF_CLOSE_TOO_BIG, "message too big for this client");
        return -1;
      }
      if (e->len)
        memcpy(c->msg + c->msg_len, e->data, e->len);
      c->msg_len += e->len;
      if (e->fin) {
        deliver(c, c->msg_op, c->msg, c->msg_len);
        c->msg_len = 0;
      }
    }
    break;
  case HF_WS_EV_PING:
    if (!c->close_sent)
      (void)ctl_frame(c, HF_OP_PONG, e->data, e->len); /* dropped if ctl is
                                                          full: RFC 6455 5.5.3
                                                          lets a pong answer
                                                          only the latest */
    break;
  case HF_WS_EV_PONG:
    if (e->len == 8 && c->cfg.on_pong) {
      uint64_t t = 0;
      for (int i = 0; i < 8; i++)
        t = (t << 8) | e->data[i];
      uint64_t n = now_us();
      if (t <= n)
        c->cfg.on_pong(c, n - t, c->cfg.user);
    }
    break;
  case HF_WS_EV_CLOSE:
    on_close_frame(c, e);
    return c->gen == g ? 0 : -1;
  }
  return (c->gen == g && (c->phase == PH_OPEN || c->phase == PH_CLOSING)) ? 0 : -1;
}

/* Parse what rbuf holds. Returns 0, or -1 when the connection ended. */
static int parse_frames(hf_client *c) {
  size_t off = 0, need = 0;
  unsigned g = c->gen;
  while (off < c->rlen) {
    hf_ws_event e;
    ssize_t n = hf_ws_parse(&c->parser, c->rbuf + off, c->rlen - off, &e, &need);
    if (n == HF_EAGAIN)
      break;
    if (n < 0) {
      protocol_fail(c, c->parser.err_code, c->parser.err_reason);
      return -1;
    }
    off += (size_t)n;
    if (on_frame(c, &e) < 0) {
      if (c->gen != g)
        return -1;
      break; /* still connected (closing); leftovers are dropped below */
    }
  }
  if (c->gen != g)
    return -1;
  if (off) {
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
  }
  if (need > c->rcap &&
      ensure(&c->rbuf, &c->rcap, need, (size_t)c->cfg.max_message + 64) < 0) {
    protocol_fail(c, HF_CLOSE_TOO_BIG, "message too big for this client");
    return -1;
  }
  return 0;
}

static void on_open(hf_client *c, size_t head_len) {
  memmove(c->rbuf, c->rbuf + head_len, c->rlen - head_len);
  c->rlen -= head_len;
  memset(&c->parser, 0, sizeof c->parser);
  c->parser.expect_mask = 0;
  c->parser.max_message = c->cfg.max_message;
  c->parser.allow_rsv1 = (uint8_t)c->dfl_on;
  if (c->dfl_on) {
    hf_deflate_enc_free(c->enc);
    hf_inflate_free(c->inf);
    int cb = c->dparams.client_max_window_bits < 9 ? 9 : c->dparams.client_max_window_bits;
    c->enc = hf_deflate_enc_new(6, 8, cb);
    c->inf = hf_inflate_new(c->dparams.server_max_window_bits ? c->dparams.server_max_window_bits
                                                              : 15);
    if (!c->enc || !c->inf) {
      failf(c, HF_CAUSE_HANDSHAKE, 0, HF_LAYER_HTTP, HF_BY_CLIENT, NULL, "out of memory");
      return;
    }
  }
  c->subprotocol[0] = '\0';
  if (c->rep.check.subprotocol)
    snprintf(c->subprotocol, sizeof c->subprotocol, "%.*s",
             (int)c->rep.check.subprotocol_len, c->rep.check.subprotocol);
  uint64_t now = now_ms();
  c->last_rx = now;
  c->ping_sent = 0;
  c->phase = PH_OPEN;
  c->deadline = 0;
  hf_reconnect_opened(&c->rc, now);
  c->rep.reached = HF_LAYER_HTTP;
  hf_client_event ev;
  event_init(&ev, HF_CLIENT_CONNECTING, HF_CLIENT_OPEN);
  char reason[200];
  snprintf(reason, sizeof reason, "upgraded%s%s", *c->subprotocol ? ", sub-protocol " : "",
           c->subprotocol);
  ev.reason = reason;
  ev.http_status = 101;
  ev.attempt = c->attempt_no;
  unsigned g = c->gen;
  emit(c, &ev);
  if (g != c->gen || c->phase != PH_OPEN)
    return;
  if (flush(c) < 0)
    return;
  if (c->rlen)
    parse_frames(c);
}

/* ---- socket events -------------------------------------------------------------- */

static void read_ready(hf_client *c) {
  unsigned g = c->gen;
  for (int i = 0; i < READS_PER_EVENT && c->gen == g && c->tp; i++) {
    size_t cap = c->phase == PH_HS ? MAX_HEAD : c->rcap;
    if (c->phase == PH_BODY) {
      uint8_t sink[4096];
      ssize_t n = c->tp->ops->read(c->tp, sink, sizeof sink);
      if (n == HF_EAGAIN)
        return;
      if (n <= 0) {
        http_refused(c); /* EOF or error: the body is what we have */
        return;
      }
      body_add(c, sink, (size_t)n);
      if (body_done(c)) {
        http_refused(c);
        return;
      }
      continue;
    }
    if (c->rlen == c->rcap &&
        ensure(&c->rbuf, &c->rcap, c->rcap * 2,
               c->phase == PH_HS ? MAX_HEAD : (size_t)c->cfg.max_message + 64) < 0) {
      if (c->phase == PH_HS)
        failf(c, HF_CAUSE_HANDSHAKE, 0, HF_LAYER_HTTP, HF_BY_SERVER, NULL,
              "the response head is longer than %d bytes", MAX_HEAD);
      else
        protocol_fail(c, HF_CLOSE_TOO_BIG, "message too big for this client");
      return;
    }
    if (cap > c->rcap)
      cap = c->rcap;
    if (cap <= c->rlen) { /* cannot happen: the parsers bound rlen */
      failf(c, HF_CAUSE_HANDSHAKE, 0, HF_LAYER_HTTP, HF_BY_CLIENT, NULL,
            "input buffer exhausted");
      return;
    }
    ssize_t n = c->tp->ops->read(c->tp, c->rbuf + c->rlen, cap - c->rlen);
    if (n == HF_EAGAIN)
      return;
    if (n == 0 || n < 0) {
      if (n < 0 && c->phase != PH_CLOSING) {
        fail_io(c, "read");
        return;
      }
      if (c->phase == PH_CLOSING) {
        finish_close(c, "");
      } else if (c->phase == PH_OPEN) {
        failf(c, HF_CAUSE_ABNORMAL, HF_CLOSE_ABNORMAL, HF_LAYER_WS, HF_BY_NETWORK,
              "the server, a proxy or a load balancer closed the TCP "
              "connection without a WebSocket close; reconnecting with "
              "backoff is right",
              "the connection ended without a close frame (1006)");
      } else {
        failf(c, HF_CAUSE_ABNORMAL, 0, HF_LAYER_HTTP, HF_BY_SERVER,
              "the server (or something in front of it) closed the TCP "
              "connection without answering: it may not be an HTTP server, "
              "it may expect TLS (wss://), or it is out of connections",
              "the server closed the connection before answering the upgrade");
      }
      return;
    }
    c->rlen += (size_t)n;
    c->last_rx = now_ms();
    if (c->phase == PH_HS)
      hs_input(c);
    else if (parse_frames(c) < 0)
      return;
  }
}

static void sock_event(hf_client *c, uint32_t events) {
  unsigned g = c->gen;
  if (c->phase == PH_TCP) {
    tcp_ready(c);
    return;
  }
  if (c->phase == PH_TLS) {
    tls_step(c);
    return;
  }
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
    read_ready(c);
  /* also after a read: a TLS read may have to write (and then waits for
   * writability), and the interest set follows what is queued */
  if (c->gen == g && c->tp)
    flush(c);
}

/* ---- timers ------------------------------------------------------------------- */

static void heartbeat(hf_client *c, uint64_t now) {
  uint32_t iv = c->cfg.ping_interval_ms, to = c->cfg.pong_timeout_ms;
  if (!iv || c->phase != PH_OPEN)
    return;
  if (now >= c->last_rx + iv + to) {
    char diag[256];
    snprintf(diag, sizeof diag,
             "the server stopped answering but the connection was not closed: "
             "a half-open connection (a NAT or proxy dropped it silently), a "
             "hung server, or a dead host");
    failf(c, HF_CAUSE_HEARTBEAT, HF_CLOSE_ABNORMAL, HF_LAYER_WS, HF_BY_CLIENT, diag,
          "heartbeat timeout: nothing from the server for %llu ms (ping after "
          "%u ms, no answer within %u ms)",
          (unsigned long long)(now - c->last_rx), iv, to);
    return;
  }
  if (now >= c->last_rx + iv && c->ping_sent <= c->last_rx) {
    c->ping_sent = now;
    hf_client_ping(c);
  }
}

static void check_timers(hf_client *c) {
  uint64_t now = now_ms();
  if (c->dns) {
    int t = hf__dns_timeout_ms(c->dns);
    if (t == 0)
      hf__dns_process(c->dns, -1, 0);
    dns_collect(c);
  }
  if (c->deadline && now >= c->deadline) {
    switch (c->phase) {
    case PH_RESOLVE:
      failf(c, HF_CAUSE_TIMEOUT, 0, HF_LAYER_DNS, HF_BY_NONE,
            "the DNS servers did not answer in time; check /etc/resolv.conf "
            "and the network path to them",
            "resolving %s timed out after %u ms", c->host, c->cfg.dns_timeout_ms);
      return;
    case PH_TCP:
      tcp_next(c, ETIMEDOUT);
      return;
    case PH_TLS:
      failf(c, HF_CAUSE_TIMEOUT, 0, HF_LAYER_TLS, HF_BY_NONE,
            "the server accepted TCP but did not complete the TLS handshake; "
            "it may not speak TLS on this port (try ws://)",
            "the TLS handshake timed out after %u ms", c->cfg.tls_timeout_ms);
      return;
    case PH_HS:
      failf(c, HF_CAUSE_TIMEOUT, 0, HF_LAYER_HTTP, HF_BY_NONE,
            "the server accepted the TCP connection but sent no HTTP answer: "
            "it may not be an HTTP server, it may expect TLS (wss://), or it "
            "is overloaded",
            "no answer to the upgrade request within %u ms",
            c->cfg.handshake_timeout_ms);
      return;
    case PH_BODY:
      http_refused(c);
      return;
    case PH_CLOSING:
      finish_close(c, " (the server did not close the connection in time)");
      return;
    case PH_WAIT:
      if (!c->cred_pending)
        start_attempt(c);
      return;
    default:
      break;
    }
  }
  heartbeat(c, now);
}

static void start_attempt(hf_client *c) {
  hf_client_state from = public_state(c->phase);
  if (hf_reconnect_connect(&c->rc) < 0)
    return;
  teardown(c);
  memset(&c->rep, 0, sizeof c->rep);
  c->rep.attempt = c->attempt_no;
  c->rep.connected = -1;
  c->rep.dns_us = c->rep.tcp_us = c->rep.tls_us = c->rep.http_us = -1;
  snprintf(c->rep.host, sizeof c->rep.host, "%s", c->host);
  c->rep.port = c->url.port;
  c->rep.tls = c->url.secure;
  c->phase = PH_RESOLVE;
  hf_client_event ev;
  event_init(&ev, from, HF_CLIENT_CONNECTING);
  char reason[320];
  snprintf(reason, sizeof reason, "connecting to %s (attempt %u)", c->url_s,
           c->attempt_no);
  ev.reason = reason;
  ev.attempt = c->attempt_no;
  unsigned g = c->gen;
  emit(c, &ev);
  if (g != c->gen || c->phase != PH_RESOLVE)
    return;
  resolve_begin(c);
}

/* ---- public API ------------------------------------------------------------------ */

void hf_client_config_init(hf_client_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->user_agent = "holdfast-client";
  cfg->dns_timeout_ms = 5000;
  cfg->tcp_timeout_ms = 5000;
  cfg->tls_timeout_ms = 5000;
  cfg->handshake_timeout_ms = 5000;
  cfg->close_timeout_ms = 3000;
  cfg->pong_timeout_ms = 10000;
  cfg->max_message = 16u << 20;
  cfg->queue_max = 1u << 20;
  hf_reconnect_config_init(&cfg->reconnect);
}

static int set_url(hf_client *c, const char *url, char *err, size_t errcap) {
  const char *why = "";
  hf_url u;
  if (hf_url_parse(&u, url, strlen(url), &why) < 0) {
    snprintf(err, errcap, "%s: %s", url, why);
    return HF_EINVAL;
  }
  if (u.secure && !c->tlsc) {
    hf_tls_client_config tc = {c->cfg.ca_file, c->cfg.insecure, 0, 1};
    c->tlsc = hf_tls_client_new(&tc, err, errcap);
    if (!c->tlsc)
      return HF_EINVAL;
  }
  char *s = strdup(url);
  if (!s) {
    snprintf(err, errcap, "out of memory");
    return HF_ENOMEM;
  }
  hf_url_parse(&u, s, strlen(s), NULL);
  free(c->url_s);
  c->url_s = s;
  c->url = u;
  snprintf(c->host, sizeof c->host, "%.*s", (int)u.host_len, u.host);
  return 0;
}

hf_client *hf_client_new(const hf_client_config *cfg, char *err, size_t errcap) {
  char dummy[8];
  if (!err) {
    err = dummy;
    errcap = sizeof dummy;
  }
  hf_client *c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(err, errcap, "out of memory");
    return NULL;
  }
  c->fd = -1;
  c->epfd = -1;
  c->cfg = *cfg;
  if (!c->cfg.max_message)
    c->cfg.max_message = 16u << 20;
  if (!c->cfg.queue_max)
    c->cfg.queue_max = 1u << 20;
  if (!c->cfg.pong_timeout_ms)
    c->cfg.pong_timeout_ms = 10000;
  if (!c->cfg.close_timeout_ms)
    c->cfg.close_timeout_ms = 3000;
  if (hf__rand_init(&c->rnd) < 0) {
    snprintf(err, errcap, "cannot seed the random generator");
    goto fail;
  }
  c->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (c->epfd < 0) {
    snprintf(err, errcap, "epoll_create1: %s", strerror(errno));
    goto fail;
  }
  if (!cfg->url || set_url(c, cfg->url, err, errcap) < 0) {
    if (!cfg->url)
      snprintf(err, errcap, "no URL");
    goto fail;
  }
  c->hdrs = calloc(cfg->n_headers + 1, sizeof *c->hdrs);
  c->protos = calloc(cfg->n_subprotocols + 1, sizeof *c->protos);
  if (!c->hdrs || !c->protos)
    goto oom;
  for (size_t i = 0; i < cfg->n_headers; i++) {
    const char *why = "";
    if (hf_upgrade_header_ok(cfg->headers[i], &why) < 0) {
      snprintf(err, errcap, "header \"%s\": %s", cfg->headers[i], why);
      goto fail;
    }
    if (!(c->hdrs[i] = strdup(cfg->headers[i])))
      goto oom;
    c->n_hdrs++;
  }
  for (size_t i = 0; i < cfg->n_subprotocols; i++)
    if (!(c->protos[i] = strdup(cfg->subprotocols[i])))
      goto oom;
  if ((cfg->origin && !(c->origin = strdup(cfg->origin))) ||
      (cfg->user_agent && !(c->user_agent = strdup(cfg->user_agent))) ||
      (cfg->dns_servers && !(c->dns_servers = strdup(cfg->dns_servers))) ||
      (cfg->ca_file && !(c->ca_file = strdup(cfg->ca_file))))
    goto oom;
  if (c->origin && strpbrk(c->origin, "\r\n")) {
    snprintf(err, errcap, "the origin has a line break");
    goto fail;
  }
  /* validate the request once now, so a bad option fails here */
  {
    char buf[CTL_MAX];
    const char *why = "request too large";
    hf_upgrade_request r = {c->url.authority, c->url.authority_len, c->url.resource,
                            c->url.resource_len, "AAAAAAAAAAAAAAAAAAAAAA==",
                            c->origin, (const char *const *)c->protos,
                            cfg->n_subprotocols, NULL,
                            (const char *const *)c->hdrs, c->n_hdrs, NULL};
    if (hf_upgrade_write_request(buf, sizeof buf, &r, &why) < 0) {
      snprintf(err, errcap, "%s", why);
      goto fail;
    }
  }
  c->cfg.url = c->url_s;
  c->cfg.headers = (const char *const *)c->hdrs;
  c->cfg.subprotocols = (const char *const *)c->protos;
  c->cfg.origin = c->origin;
  c->cfg.user_agent = c->user_agent;
  c->cfg.dns_servers = c->dns_servers;
  c->cfg.ca_file = c->ca_file;
  hf_reconnect_config rcfg = cfg->reconnect;
  rcfg.can_refresh = cfg->on_credentials != NULL;
  hf_reconnect_init(&c->rc, &rcfg);
  if (ensure(&c->rbuf, &c->rcap, RBUF_MIN, RBUF_MIN) < 0)
    goto oom;
  c->phase = PH_STOPPED;
  return c;
oom:
  snprintf(err, errcap, "out of memory");
fail:
  hf_client_free(c);
  return NULL;
}

void hf_client_free(hf_client *c) {
  if (!c)
    return;
  teardown(c);
  if (c->loop) {
    hf_loop_del(c->loop, &c->lio);
    hf_timer_cancel(c->loop, &c->ltimer);
  }
  hf__dns_free(c->dns);
  hf_tls_client_free(c->tlsc);
  hf_deflate_enc_free(c->enc);
  hf_inflate_free(c->inf);
  if (c->epfd >= 0)
    close(c->epfd);
  hf__rand_free(&c->rnd);
  for (size_t i = 0; c->hdrs && c->hdrs[i]; i++)
    free(c->hdrs[i]);
  for (size_t i = 0; c->protos && c->protos[i]; i++)
    free(c->protos[i]);
  free(c->hdrs);
  free(c->protos);
  free(c->url_s);
  free(c->origin);
  free(c->user_agent);
  free(c->dns_servers);
  free(c->ca_file);
  free(c->ctl);
  free(c->q);
  free(c->rbuf);
  free(c->msg);
  free(c->req);
  free(c->resp_raw);
  free(c);
}

int hf_client_start(hf_client *c) {
  if (c->phase != PH_STOPPED)
    return HF_EINVAL;
  c->attempt_no = 0;
  c->user_closing = 0;
  start_attempt(c);
  rearm(c);
  return 0;
}

int hf_client_send(hf_client *c, int op, const void *data, size_t len) {
  if (op != HF_OP_TEXT && op != HF_OP_BINARY)
    return HF_EINVAL;
  if (c->phase == PH_STOPPED || c->user_closing)
    return HF_ECLOSED;
  if (op == HF_OP_TEXT && !hf_utf8_valid(data, len))
    return HF_EUTF8;
  if (c->dfl_on && c->phase == PH_OPEN && len > 0) {
    uint8_t *z = hf_deflate_thread_buf(hf_deflate_bound(len));
    long zn = z ? hf_deflate_compress(c->enc, 1, data, len, z, hf_deflate_bound(len)) : HF_ENOMEM;
    if (zn < 0)
      return (int)zn;
    data = z;
    len = (size_t)zn;
    op |= HF_FRAME_RSV1;
  }
  size_t need = HF_FRAME_MAX_HEADER + len;
  if (c->q_len - c->q_off + need > c->cfg.queue_max)
    return HF_ELIMIT;
  if (c->q_off && c->q_len + need > c->q_cap) { /* compact before growing */
    memmove(c->q, c->q + c->q_off, c->q_len - c->q_off);
    c->q_len -= c->q_off;
    c->q_off = 0;
  }
  int rc = ensure(&c->q, &c->q_cap, c->q_len + need,
                  c->cfg.queue_max + HF_FRAME_MAX_HEADER);
  if (rc < 0)
    return rc;
  c->q_len += build_frame(c, c->q + c->q_len, op, data, len);
  if (c->phase == PH_OPEN)
    flush(c);
  rearm(c);
  return 0;
}

int hf_client_ping(hf_client *c) {
  if (c->phase != PH_OPEN)
    return HF_ECLOSED;
  uint8_t p[8];
  uint64_t t = now_us();
  for (int i = 7; i >= 0; i--, t >>= 8)
    p[i] = (uint8_t)t;
  int rc = ctl_frame(c, HF_OP_PING, p, sizeof p);
  if (rc < 0)
    return rc;
  flush(c);
  rearm(c);
  return 0;
}

static void stop_now(hf_client *c, const char *reason) {
  if (c->phase == PH_STOPPED)
    return;
  hf_client_state from = public_state(c->phase);
  teardown(c);
  hf_reconnect_stop(&c->rc);
  c->phase = PH_STOPPED;
  c->user_closing = 0;
  c->cred_pending = 0;
  drop_queue(c);
  hf_client_event ev;
  event_init(&ev, from, HF_CLIENT_STOPPED);
  ev.cause = HF_CAUSE_USER;
  ev.reason = reason;
  ev.decision = "closed by the application";
  emit(c, &ev);
}

int hf_client_close(hf_client *c, int code, const char *reason) {
  if (code != HF_CLOSE_NORMAL && !(code >= 3000 && code <= 4999))
    return HF_EINVAL;
  if (reason && strlen(reason) > HF_FRAME_MAX_CONTROL - 2)
    return HF_EINVAL;
  if (c->phase == PH_OPEN) {
    uint8_t p[HF_FRAME_MAX_CONTROL];
    size_t n = hf_frame_close_payload(p, (uint16_t)code, reason);
    c->close_frame_len = build_frame(c, c->close_frame, HF_OP_CLOSE, p, n);
    c->close_queued = 1;
    c->user_closing = 1;
    c->code_sent = (uint16_t)code;
    hf_reconnect_closing(&c->rc);
    c->phase = PH_CLOSING;
    c->deadline = now_ms() + c->cfg.close_timeout_ms;
    hf_client_event ev;
    event_init(&ev, HF_CLIENT_OPEN, HF_CLIENT_CLOSING);
    ev.cause = HF_CAUSE_USER;
    ev.layer = HF_LAYER_WS;
    ev.reason = "closing: the application asked";
    ev.close_code = code;
    ev.closed_by = HF_BY_CLIENT;
    unsigned g = c->gen;
    emit(c, &ev);
    if (g == c->gen && c->phase == PH_CLOSING)
      flush(c);
  } else if (c->phase == PH_CLOSING) {
    c->user_closing = 1; /* the server is closing: just do not come back */
  } else {
    stop_now(c, "closed by the application");
  }
  rearm(c);
  return 0;
}

void hf_client_stop(hf_client *c) {
  stop_now(c, "stopped by the application");
  rearm(c);
}

int hf_client_set_header(hf_client *c, const char *name, const char *value) {
  size_t nl = strlen(name);
  char *line = NULL;
  if (value) {
    size_t n = nl + 2 + strlen(value) + 1;
    line = malloc(n);
    if (!line)
      return HF_ENOMEM;
    snprintf(line, n, "%s: %s", name, value);
    if (hf_upgrade_header_ok(line, NULL) < 0) {
      free(line);
      return HF_EINVAL;
    }
  }
  for (size_t i = 0; i < c->n_hdrs; i++) {
    if (strncasecmp(c->hdrs[i], name, nl) == 0 && c->hdrs[i][nl] == ':') {
      free(c->hdrs[i]);
      if (line) {
        c->hdrs[i] = line;
      } else {
        memmove(&c->hdrs[i], &c->hdrs[i + 1], (c->n_hdrs - i) * sizeof *c->hdrs);
        c->n_hdrs--;
        c->cfg.n_headers = c->n_hdrs;
      }
      return 0;
    }
  }
  if (!line)
    return 0;
  char **h = realloc(c->hdrs, (c->n_hdrs + 2) * sizeof *h);
  if (!h) {
    free(line);
    return HF_ENOMEM;
  }
  c->hdrs = h;
  h[c->n_hdrs++] = line;
  h[c->n_hdrs] = NULL;
  c->cfg.headers = (const char *const *)c->hdrs;
  c->cfg.n_headers = c->n_hdrs;
  return 0;
}

int hf_client_set_url(hf_client *c, const char *url) {
  char err[8];
  int rc = set_url(c, url, err, sizeof err);
  if (rc == 0)
    c->cfg.url = c->url_s;
  return rc;
}

void hf_client_credentials_ready(hf_client *c, int ok) {
  if (c->phase != PH_WAIT || !c->cred_pending)
    return;
  c->cred_pending = 0;
  if (!ok)
    stop_now(c, "the application has no credentials to retry with");
  rearm(c);
}

int hf_client_fd(const hf_client *c) { return c->epfd; }

int hf_client_timeout_ms(const hf_client *c) {
  uint64_t now = now_ms(), due = 0;
  if (c->deadline && !(c->phase == PH_WAIT && c->cred_pending))
    due = c->deadline;
  if (c->phase == PH_OPEN && c->cfg.ping_interval_ms) {
    uint64_t hb = c->last_rx + c->cfg.ping_interval_ms;
    if (c->ping_sent > c->last_rx)
      hb += c->cfg.pong_timeout_ms;
    if (!due || hb < due)
      due = hb;
  }
  if (c->tp && c->tp->ops->pending(c->tp) && c->phase != PH_TLS)
    return 0; /* decrypted bytes wait inside the TLS session */
  int t = -1;
  if (due)
    t = due <= now ? 0 : (due - now > 0x7fffffff ? 0x7fffffff : (int)(due - now));
  if (c->dns) {
    int d = hf__dns_timeout_ms(c->dns);
    if (d >= 0 && (t < 0 || d < t))
      t = d;
  }
  return t;
}

hf_client_state hf_client_process(hf_client *c) {
  struct epoll_event evs[16];
  int n = epoll_wait(c->epfd, evs, 16, 0);
  for (int i = 0; i < n; i++) {
    uint32_t kind = (uint32_t)(evs[i].data.u64 >> 32);
    int fd = (int)(uint32_t)evs[i].data.u64;
    if (kind == HF__TAG_DNS) {
      if (c->dns)
        hf__dns_process(c->dns, fd, evs[i].events);
      dns_collect(c);
    } else if (kind == HF__TAG_SOCK && fd == c->fd) {
      sock_event(c, evs[i].events);
    }
  }
  if (c->tp && c->phase != PH_TLS && c->tp->ops->pending(c->tp))
    read_ready(c);
  check_timers(c);
  rearm(c);
  return public_state(c->phase);
}

static void loop_io(hf_loop *loop, hf_io *io, uint32_t revents) {
  hf_client *c = (hf_client *)((char *)io - offsetof(hf_client, lio));
  hf_client_process(c);
}

static void loop_timer(hf_loop *loop, hf_timer *t) {
  hf_client *c = (hf_client *)((char *)t - offsetof(hf_client, ltimer));
  hf_client_process(c);
}

int hf_client_attach(hf_client *c, hf_loop *loop) {
  if (c->loop)
    return -EINVAL;
  c->lio.fd = c->epfd;
  c->lio.cb = loop_io;
  c->ltimer.cb = loop_timer;
  int rc = hf_loop_add(loop, &c->lio, EPOLLIN);
  if (rc < 0)
    return rc;
  c->loop = loop;
  rearm(c);
  return 0;
}

hf_client_state hf_client_get_state(const hf_client *c) {
  return public_state(c->phase);
}

const hf_client_report *hf_client_get_report(const hf_client *c) { return &c->rep; }

const char *hf_client_subprotocol(const hf_client *c) { return c->subprotocol; }

size_t hf_client_queued(const hf_client *c) {
  return (c->q_len - c->q_off) + (c->ctl_len - c->ctl_off);
}
