/* SPDX-License-Identifier: MIT */
/* `holdfast bench -m sendpath`: the sender's CPU per send for one "sweep"
 * (one message to each of N loopback TCP connections, as the server's
 * end-of-iteration flush does) with plain send/sendmsg, io_uring SEND/SENDMSG
 * SQEs submitted once per sweep, and MSG_ZEROCOPY / IORING_OP_SEND_ZC for
 * large messages. A forked reader process drains the connections, so the
 * figures (getrusage of the sender) hold the sender's work only. */
#include "bench.h"
#include "bench_util.h"

#include <errno.h>
#include <getopt.h>
#include <liburing.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif
#ifndef SO_EE_CODE_ZEROCOPY_COPIED
#define SO_EE_CODE_ZEROCOPY_COPIED 1
#endif

#define LARGE_MIN 16384 /* from this size on: every message delivered whole */
#define RING_ENTRIES 4096

typedef enum { V_SENDMSG, V_URING, V_URING_REG, V_ZEROCOPY, V_URING_ZC, V_COUNT } variant;
static const char *const vnames[V_COUNT] = {"sendmsg", "uring", "uring-reg", "zerocopy",
                                            "uring-zc"};

typedef struct {
  long conns, size, k, sweeps, repeats;
  int vars[V_COUNT];
  int nvars;
} send_cfg;

typedef struct {
  uint64_t sends;    /* send operations issued (one per connection per sweep) */
  uint64_t bytes;    /* bytes the kernel took */
  uint64_t again;    /* EAGAIN or short (small messages: not retried) */
  uint64_t errors;   /* other failures */
  uint64_t notifs;   /* zero-copy completion notifications read */
  uint64_t copied;   /* ... of which said the kernel copied after all */
  uint64_t syscalls; /* send/sendmsg/io_uring_enter/recvmsg/poll calls */
} tally;

static struct {
  send_cfg cfg;
  int *fds;
  uint8_t *buf;       /* one message (k x size bytes, the frames back to back) */
  struct iovec *iov;  /* k per connection (sendmsg, SENDMSG SQEs) */
  struct msghdr *mh;  /* one per connection */
  struct io_uring ring;
  int ring_ok, ring_flags, reg_ok;
  uint32_t *zc_pending; /* MSG_ZEROCOPY: sends awaiting their notification */
} S;

/* ---- reader process ------------------------------------------------------ */

/* Connect conns sockets to port and read them until each reaches EOF. */
static void reader(int port, long conns) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int ep = epoll_create1(0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  for (long i = 0; i < conns; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
      perror("holdfast bench: sendpath reader: connect");
      _exit(1);
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
      _exit(1);
  }
  static uint8_t rb[1 << 18];
  long open = conns;
  struct epoll_event evs[256];
  while (open > 0) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      ssize_t r = recv(evs[i].data.fd, rb, sizeof rb, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        close(evs[i].data.fd);
        open--;
      }
    }
  }
  _exit(0);
}

/* ---- variants -------------------------------------------------------------- */

static int large(void) { return S.cfg.size * S.cfg.k >= LARGE_MIN; }
static size_t msg_len(void) { return (size_t)(S.cfg.size * S.cfg.k); }

/* Read what MSG_ZEROCOPY notifications fd has (non-blocking). */
static void zc_drain(int i, tally *t) {
  while (S.zc_pending[i]) {
    char ctl[128];
    struct msghdr m = {.msg_control = ctl, .msg_controllen = sizeof ctl};
    t->syscalls++;
    if (recvmsg(S.fds[i], &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
      return;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      struct sock_extended_err *e = (struct sock_extended_err *)CMSG_DATA(c);
      if (e->ee_origin != SO_EE_ORIGIN_ZEROCOPY)
        continue;
      uint32_t n = e->ee_data - e->ee_info + 1; /* a range of sends */
      S.zc_pending[i] -= n > S.zc_pending[i] ? S.zc_pending[i] : n;
      t->notifs++;
      if (e->ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
        t->copied++;
    }
  }
}

/* One message to connection i with send()/sendmsg() (MSG_ZEROCOPY with zc).
 * Small messages: one attempt, as the server's flush makes it. Large
 * messages: until all of it has left (waiting for room with poll). */
static void sweep_one_plain(long i, int zc, tally *t) {
  int fd = S.fds[i];
  int flags = MSG_NOSIGNAL | MSG_DONTWAIT | (zc ? MSG_ZEROCOPY : 0);
  size_t want = msg_len(), done = 0;
  t->sends++;
  for (;;) {
    ssize_t w;
    t->syscalls++;
    if (S.cfg.k == 1 || done)
      w = send(fd, S.buf + done, want - done, flags);
    else
      w = sendmsg(fd, &S.mh[i], flags);
    if (w > 0) {
      t->bytes += (uint64_t)w;
      done += (size_t)w;
      if (zc)
        S.zc_pending[i]++;
      if (done == want)
        return;
      if (!large()) {
        t->again++;
        return;
      }
      continue;
    }
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
      if (!large()) {
        t->again++;
        return;
      }
      if (zc)
        zc_drain((int)i, t); /* ENOBUFS: too many notifications unread */
      struct pollfd p = {fd, POLLOUT, 0};
      t->syscalls++;
      poll(&p, 1, 1000);
      continue;
    }
    t->errors++;
    return;
  }
}

/* Reap every completion of a submitted batch: inflight SQEs plus, for
 * SEND_ZC, one notification CQE for each completion flagged F_MORE. */
static void ring_reap(long inflight, tally *t) {
  long want = inflight;
  while (want > 0) {
    struct io_uring_cqe *cqe;
    t->syscalls++;
    if (io_uring_wait_cqe(&S.ring, &cqe) < 0) {
      t->errors++;
      return;
    }
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&S.ring, head, cqe) {
      seen++;
      want--;
      if (cqe->flags & IORING_CQE_F_NOTIF) {
        t->notifs++;
        continue;
      }
      if (cqe->flags & IORING_CQE_F_MORE)
        want++; /* its notification follows */
      if (cqe->res > 0) {
        t->bytes += (uint64_t)cqe->res;
        if ((size_t)cqe->res < msg_len())
          t->again++;
      } else if (cqe->res == -EAGAIN) {
        t->again++;
      } else {
        t->errors++;
      }
    }
    io_uring_cq_advance(&S.ring, seen);
  }
}

/* One sweep through io_uring: an SQE per connection, one submit per
 * RING_ENTRIES connections, then all completions reaped. Small messages
 * carry MSG_DONTWAIT (an EAGAIN completes as such, as the server's flush
 * would see it); large ones MSG_WAITALL (the ring waits for room). */
static void sweep_ring(variant v, tally *t) {
  long inflight = 0;
  int flags = MSG_NOSIGNAL | (large() ? MSG_WAITALL : MSG_DONTWAIT);
  for (long i = 0; i < S.cfg.conns; i++) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&S.ring);
    if (!sqe) {
      t->syscalls++;
      io_uring_submit(&S.ring);
      ring_reap(inflight, t);
      inflight = 0;
      sqe = io_uring_get_sqe(&S.ring);
    }
    int fd = v == V_URING_REG ? (int)i : S.fds[i];
    if (v == V_URING_ZC)
      io_uring_prep_send_zc(sqe, fd, S.buf, msg_len(), flags, 0);
    else if (S.cfg.k == 1 || large())
      io_uring_prep_send(sqe, fd, S.buf, msg_len(), flags);
    else
      io_uring_prep_sendmsg(sqe, fd, &S.mh[i], (unsigned)flags);
    if (v == V_URING_REG)
      sqe->flags |= IOSQE_FIXED_FILE;
    inflight++;
    t->sends++;
  }
  t->syscalls++;
  io_uring_submit(&S.ring);
  ring_reap(inflight, t);
}

static void sweep(variant v, tally *t) {
  switch (v) {
  case V_SENDMSG:
  case V_ZEROCOPY:
    for (long i = 0; i < S.cfg.conns; i++)
      sweep_one_plain(i, v == V_ZEROCOPY, t);
    if (v == V_ZEROCOPY) /* the notifications are part of the cost */
      for (long i = 0; i < S.cfg.conns; i++)
        zc_drain((int)i, t);
    break;
  default:
    sweep_ring(v, t);
  }
}

/* After MSG_ZEROCOPY sends: wait (bounded, sleeping) for the notifications
 * still due and read them. Returns how many sends are still unacknowledged
 * after a second (0 normally). */
static long zc_settle(tally *t) {
  long left = 0;
  for (int round = 0; round < 100; round++) {
    left = 0;
    for (long i = 0; i < S.cfg.conns; i++) {
      zc_drain((int)i, t);
      left += S.zc_pending[i];
    }
    if (!left)
      return 0;
    usleep(10000);
  }
  return left;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double cpu_s(struct rusage *u, double *sys) {
  *sys = (double)u->ru_stime.tv_sec + (double)u->ru_stime.tv_usec / 1e6;
  return *sys + (double)u->ru_utime.tv_sec + (double)u->ru_utime.tv_usec / 1e6;
}

/* ---- setup and main ---------------------------------------------------------- */

static void usage(FILE *out) {
  fprintf(out,
      "usage: holdfast bench -m sendpath [options]\n"
      "The sender's CPU per send for sweeps over N loopback TCP connections (a\n"
      "forked reader drains them): one message per connection per sweep, CPU\n"
      "from getrusage of the sender only, variants alternated in each repeat.\n"
      "\n"
      "variants:\n"
      "  sendmsg    send() (k = 1) or sendmsg() of k iovecs per connection\n"
      "  uring      io_uring SEND / SENDMSG SQEs, one submit per sweep\n"
      "  uring-reg  the same with registered (fixed) files\n"
      "  zerocopy   send() with MSG_ZEROCOPY, notifications read from the\n"
      "             error queue inside the measured window (waiting for the\n"
      "             last ones at its end)\n"
      "  uring-zc   io_uring SEND_ZC (notification CQEs reaped)\n"
      "Messages under 16 KiB get one non-blocking attempt per connection (the\n"
      "server's flush); larger ones are sent whole (waiting for room).\n"
      "\n"
      "options [default]:\n"
      "  -c N      connections, 1..16000                              [10000]\n"
      "  -s BYTES  frame size, 1..1048576                              [100]\n"
      "  -k K      frames per connection per sweep (one iovec each) 1..64 [1]\n"
      "  -n N      sweeps per measurement                              [100]\n"
      "  -r N      repeats (each runs every variant, alternating)      [3]\n"
      "  -V LIST   variants, comma-separated   [sendmsg,uring,uring-reg; from\n"
      "            16 KiB: sendmsg,zerocopy,uring,uring-zc]\n");
}

static int parse_variants(const char *s) {
  S.cfg.nvars = 0;
  char tmp[128];
  snprintf(tmp, sizeof tmp, "%s", s);
  for (char *save, *p = strtok_r(tmp, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
    int found = -1;
    for (int v = 0; v < V_COUNT; v++)
      if (strcmp(p, vnames[v]) == 0)
        found = v;
    if (found < 0 || S.cfg.nvars == V_COUNT) {
      fprintf(stderr, "holdfast bench: -V %s: unknown variant (sendmsg, uring, "
                      "uring-reg, zerocopy, uring-zc)\n", p);
      return -1;
    }
    S.cfg.vars[S.cfg.nvars++] = found;
  }
  return S.cfg.nvars ? 0 : -1;
}

static int parse(int argc, char **argv) {
  send_cfg *c = &S.cfg;
  c->conns = 10000, c->size = 100, c->k = 1, c->sweeps = 100, c->repeats = 3;
  const char *vl = NULL;
  int o;
  /* getopt expects argv[0] to be the program; ours starts with an option */
  static char prog[] = "holdfast bench";
  char *av[argc + 2];
  av[0] = prog;
  memcpy(av + 1, argv, (size_t)argc * sizeof *av);
  av[argc + 1] = NULL;
  optind = 0; /* full re-initialisation (glibc) */
  while ((o = getopt(argc + 1, av, "m:c:s:k:n:r:V:h")) != -1) {
    switch (o) {
    case 'm':
      break;
    case 'c':
      if (bu_parse_long(optarg, 'c', 1, 16000, &c->conns) < 0)
        return -1;
      break;
    case 's':
      if (bu_parse_long(optarg, 's', 1, 1 << 20, &c->size) < 0)
        return -1;
      break;
    case 'k':
      if (bu_parse_long(optarg, 'k', 1, 64, &c->k) < 0)
        return -1;
      break;
    case 'n':
      if (bu_parse_long(optarg, 'n', 1, 1000000, &c->sweeps) < 0)
        return -1;
      break;
    case 'r':
      if (bu_parse_long(optarg, 'r', 1, 100, &c->repeats) < 0)
        return -1;
      break;
    case 'V':
      vl = optarg;
      break;
    case 'h':
      usage(stdout);
      return 1;
    default:
      usage(stderr);
      return -1;
    }
  }
  if (optind < argc + 1) {
    fprintf(stderr, "holdfast bench: sendpath: unexpected argument %s\n", av[optind]);
    return -1;
  }
  if (c->size * c->k > (1 << 20)) {
    fprintf(stderr, "holdfast bench: sendpath: -s x -k is at most 1 MiB\n");
    return -1;
  }
  if (!vl)
    vl = c->size * c->k >= LARGE_MIN ? "sendmsg,zerocopy,uring,uring-zc"
                                      : "sendmsg,uring,uring-reg";
  return parse_variants(vl);
}

/* The listener, the reader child and the accepted sockets. */
static int setup(pid_t *child) {
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0 ||
      getsockname(ls, (struct sockaddr *)&a, &al) < 0) {
    perror("holdfast bench: sendpath: listen");
    return -1;
  }
  fflush(NULL);
  *child = fork();
  if (*child < 0)
    return -1;
  if (*child == 0) {
    close(ls);
    reader(ntohs(a.sin_port), S.cfg.conns);
  }
  int one = 1;
  for (long i = 0; i < S.cfg.conns; i++) {
    struct pollfd p = {ls, POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0) {
      fprintf(stderr, "holdfast bench: sendpath: %ld of %ld connections after 10 s\n",
              i, S.cfg.conns);
      close(ls);
      return -1;
    }
    int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      perror("holdfast bench: sendpath: accept");
      close(ls);
      return -1;
    }
    S.fds[i] = fd;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one);
  }
  close(ls);
  return 0;
}

/* The ring: single issuer with deferred task work where the kernel has them
 * (6.1+), else a plain ring; registered files for uring-reg. */
static void ring_setup(void) {
  struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
  int r = io_uring_queue_init_params(RING_ENTRIES, &S.ring, &p);
  if (r < 0) {
    memset(&p, 0, sizeof p);
    r = io_uring_queue_init_params(RING_ENTRIES, &S.ring, &p);
  }
  if (r < 0) {
    fprintf(stderr, "holdfast bench: sendpath: io_uring unavailable (%s): io_uring "
                    "variants skipped\n", strerror(-r));
    return;
  }
  S.ring_ok = 1;
  S.ring_flags = (int)p.flags;
  S.reg_ok = io_uring_register_files(&S.ring, S.fds, (unsigned)S.cfg.conns) == 0;
  if (!S.reg_ok)
    fprintf(stderr, "holdfast bench: sendpath: io_uring_register_files failed: "
                    "uring-reg skipped\n");
}

static int runnable(variant v) {
  if (v == V_URING || v == V_URING_ZC)
    return S.ring_ok;
  if (v == V_URING_REG)
    return S.ring_ok && S.reg_ok;
  return 1;
}

int bench_send_main(int argc, char **argv) {
  memset(&S, 0, sizeof S);
  int pr = parse(argc, argv);
  if (pr)
    return pr > 0 ? 0 : 2;
  send_cfg *c = &S.cfg;
  if (bu_raise_nofile(c->conns + 64) < 0)
    return 1;
  signal(SIGPIPE, SIG_IGN);
  S.fds = calloc((size_t)c->conns, sizeof *S.fds);
  S.buf = malloc(msg_len());
  S.iov = calloc((size_t)(c->conns * c->k), sizeof *S.iov);
  S.mh = calloc((size_t)c->conns, sizeof *S.mh);
  S.zc_pending = calloc((size_t)c->conns, sizeof *S.zc_pending);
  int rc = 1;
  pid_t child = -1;
  if (!S.fds || !S.buf || !S.iov || !S.mh || !S.zc_pending)
    goto out;
  for (size_t i = 0; i < msg_len(); i++)
    S.buf[i] = (uint8_t)('a' + i % 26);
  for (long i = 0; i < c->conns; i++) {
    for (long j = 0; j < c->k; j++)
      S.iov[i * c->k + j] = (struct iovec){S.buf + j * c->size, (size_t)c->size};
    S.mh[i] = (struct msghdr){.msg_iov = &S.iov[i * c->k], .msg_iovlen = (size_t)c->k};
  }
  if (setup(&child) < 0)
    goto out;
  ring_setup();
  printf("holdfast bench: sendpath, %ld connections, %ld frame%s of %ld B per "
         "connection per sweep, %ld sweeps x %ld repeats%s; io_uring %s\n",
         c->conns, c->k, c->k == 1 ? "" : "s", c->size, c->sweeps, c->repeats,
         large() ? " (messages sent whole)" : " (one non-blocking attempt each)",
         !S.ring_ok ? "unavailable"
         : (S.ring_flags & IORING_SETUP_DEFER_TASKRUN) ? "single-issuer, deferred task work"
                                                       : "plain ring");
  tally warm = {0};
  for (int i = 0; i < c->nvars; i++) /* one unmeasured sweep each */
    if (runnable(c->vars[i]))
      sweep(c->vars[i], &warm);
  zc_settle(&warm);
  double best[V_COUNT], worst[V_COUNT];
  double *per_rep = calloc((size_t)(c->repeats * V_COUNT), sizeof *per_rep);
  if (!per_rep)
    goto out;
  for (int v = 0; v < V_COUNT; v++)
    best[v] = 1e300, worst[v] = 0;
  for (long rep = 0; rep < c->repeats; rep++) {
    for (int i = 0; i < c->nvars; i++) {
      /* alternate the order between repeats: no variant always runs first */
      variant v = c->vars[rep % 2 ? c->nvars - 1 - i : i];
      if (!runnable(v))
        continue;
      tally t = {0};
      struct rusage u0, u1;
      getrusage(RUSAGE_SELF, &u0);
      uint64_t w0 = bu_now_ns();
      for (long s = 0; s < c->sweeps; s++)
        sweep(v, &t);
      long unacked = 0;
      if (v == V_ZEROCOPY) /* the notifications still due count too */
        unacked = zc_settle(&t);
      uint64_t w1 = bu_now_ns();
      getrusage(RUSAGE_SELF, &u1);
      double s0, s1;
      double cpu = cpu_s(&u1, &s1) - cpu_s(&u0, &s0), sys = s1 - s0;
      double per = t.sends ? cpu * 1e9 / (double)t.sends : 0;
      if (per < best[v])
        best[v] = per;
      if (per > worst[v])
        worst[v] = per;
      per_rep[rep * V_COUNT + v] = per;
      printf("RESULT mode=sendpath variant=%s repeat=%ld conns=%ld size=%ld k=%ld "
             "sends=%llu cpu_ns_per_send=%.0f sys_pct=%.0f ns_per_kib=%.0f "
             "wall_ms=%.0f again=%llu errors=%llu syscalls_per_send=%.3f "
             "notifs=%llu copied=%llu unacked=%ld\n",
             vnames[v], rep + 1, c->conns, c->size, c->k, (unsigned long long)t.sends, per,
             cpu > 0 ? 100 * sys / cpu : 0,
             t.bytes ? cpu * 1e9 / ((double)t.bytes / 1024) : 0, (double)(w1 - w0) / 1e6,
             (unsigned long long)t.again, (unsigned long long)t.errors,
             t.sends ? (double)t.syscalls / (double)t.sends : 0,
             (unsigned long long)t.notifs, (unsigned long long)t.copied, unacked);
      fflush(stdout);
    }
  }
  variant base = c->vars[0];
  printf("summary: CPU ns per send (range over %ld repeats) and the ratio to %s "
         "within each repeat (median, min..max):\n", c->repeats, vnames[base]);
  for (int i = 0; i < c->nvars; i++) {
    variant v = c->vars[i];
    if (!runnable(v))
      continue;
    double r[100];
    long n = 0;
    for (long rep = 0; rep < c->repeats; rep++) {
      double b = per_rep[rep * V_COUNT + base];
      if (b > 0)
        r[n++] = per_rep[rep * V_COUNT + v] / b;
    }
    qsort(r, (size_t)n, sizeof *r, cmp_double);
    double med = !n ? 0 : n % 2 ? r[n / 2] : (r[n / 2 - 1] + r[n / 2]) / 2;
    printf("  %-10s %7.0f .. %7.0f   %.2fx (%.2f..%.2f)\n", vnames[v], best[v], worst[v],
           med, n ? r[0] : 0, n ? r[n - 1] : 0);
  }
  free(per_rep);
  rc = 0;
out:
  if (S.ring_ok)
    io_uring_queue_exit(&S.ring);
  for (long i = 0; S.fds && i < c->conns; i++)
    if (S.fds[i] > 0)
      close(S.fds[i]);
  if (child > 0) {
    int st;
    if (rc)
      kill(child, SIGKILL);
    waitpid(child, &st, 0);
  }
  free(S.fds);
  free(S.buf);
  free(S.iov);
  free(S.mh);
  free(S.zc_pending);
  return rc;
}
