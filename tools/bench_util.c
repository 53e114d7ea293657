/* SPDX-License-Identifier: MIT */
/* Helpers shared by the `holdfast bench` modes (see bench_util.h). */
#include "bench_util.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/tokenkeys.h"
#include "hf/frame.h"
#include "hf/handshake.h"
#include "hf/http.h"

/* ------------------------------------------------------------ histogram */

static unsigned hist_index(uint64_t v) {
  if (v < BU_H_SUB)
    return (unsigned)v;
  unsigned msb = 63u - (unsigned)__builtin_clzll(v);
  unsigned shift = msb - BU_H_SUB_BITS;
  return (shift + 1) * BU_H_SUB + (unsigned)((v >> shift) & (BU_H_SUB - 1));
}

static uint64_t hist_mid(unsigned i) {
  if (i < BU_H_SUB)
    return i;
  unsigned shift = i / BU_H_SUB - 1, sub = i % BU_H_SUB;
  uint64_t low = (uint64_t)(BU_H_SUB + sub) << shift;
  return low + (((uint64_t)1 << shift) >> 1);
}

void bu_hist_add(bu_hist *h, uint64_t v) {
  h->count[hist_index(v)]++;
  h->n++;
  if (v > h->max)
    h->max = v;
}

uint64_t bu_hist_quantile(const bu_hist *h, double q) {
  if (!h->n)
    return 0;
  uint64_t rank = (uint64_t)ceil(q * (double)h->n), acc = 0;
  if (rank < 1)
    rank = 1;
  for (unsigned i = 0; i < BU_H_BUCKETS; i++) {
    acc += h->count[i];
    if (acc >= rank) {
      uint64_t v = hist_mid(i);
      return v > h->max ? h->max : v;
    }
  }
  return h->max;
}

/* ------------------------------------------------------------ /proc readers */

double bu_self_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of the whole process (all threads), seconds; -1 if gone. */
double bu_proc_cpu(long pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *s = strrchr(buf, ')');
  unsigned long long ut, st;
  /* after "comm)" come field 3 (state) .. 13, then utime (14), stime (15) */
  if (!s || sscanf(s + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                   &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Busy time of all CPUs (user nice system irq softirq steal), seconds. */
double bu_host_cpu(void) {
  FILE *f = fopen("/proc/stat", "r");
  if (!f)
    return -1;
  unsigned long long v[8] = {0};
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                 &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
  fclose(f);
  if (n < 8)
    return -1;
  return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) /
         (double)sysconf(_SC_CLK_TCK);
}

long bu_proc_rss_kb(long pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) {
      kb = strtol(line + 6, NULL, 10);
      break;
    }
  fclose(f);
  return kb;
}

/* The PID owning the TCP socket listening on port (IPv4 or IPv6), found by
 * matching /proc/net/tcp{,6} inodes against /proc/PID/fd links. Returns the
 * PID, or 0 and a reason in why. */
long bu_find_listener(int family, int port, char *why, size_t why_len) {
  unsigned long inodes[32];
  int ni = 0;
  static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
  /* an IPv4 target may be served by an IPv6 (dual-stack) listener */
  for (size_t t = family == AF_INET ? 0 : 1; t < 2; t++) {
    FILE *f = fopen(tables[t], "r");
    if (!f)
      continue;
    char line[512];
    if (!fgets(line, sizeof line, f)) { /* header */
      fclose(f);
      continue;
    }
    while (fgets(line, sizeof line, f) && ni < 32) {
      unsigned lport, st;
      unsigned long inode;
      if (sscanf(line,
                 " %*u: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x %*x:%*x %*x:%*x "
                 "%*x %*u %*u %lu",
                 &lport, &st, &inode) == 3 &&
          st == 0x0A && (int)lport == port && inode)
        inodes[ni++] = inode;
    }
    fclose(f);
  }
  if (!ni) {
    snprintf(why, why_len, "no listening socket on port %d in /proc/net/tcp", port);
    return 0;
  }
  DIR *proc = opendir("/proc");
  if (!proc) {
    snprintf(why, why_len, "cannot read /proc");
    return 0;
  }
  long found = 0, self = (long)getpid();
  int ambiguous = 0;
  struct dirent *d;
  while ((d = readdir(proc)) && !ambiguous) {
    char *end;
    long pid = strtol(d->d_name, &end, 10);
    if (*end || pid <= 0 || pid == self || pid == found)
      continue;
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/fd", pid);
    DIR *fds = opendir(path);
    if (!fds)
      continue;
    struct dirent *e;
    while ((e = readdir(fds))) {
      char link[64];
      ssize_t n = readlinkat(dirfd(fds), e->d_name, link, sizeof link - 1);
      if (n <= 0)
        continue;
      link[n] = '\0';
      unsigned long ino;
      if (sscanf(link, "socket:[%lu]", &ino) != 1)
        continue;
      int hit = 0;
      for (int i = 0; i < ni; i++)
        hit |= inodes[i] == ino;
      if (hit) {
        if (found && found != pid)
          ambiguous = 1;
        found = pid;
        break;
      }
    }
    closedir(fds);
  }
  closedir(proc);
  if (ambiguous) {
    snprintf(why, why_len,
             "several processes listen on port %d (SO_REUSEPORT?); give -R", port);
    return 0;
  }
  if (!found)
    snprintf(why, why_len,
             "the listener of port %d belongs to no process we may inspect", port);
  return found;
}

/* ------------------------------------------------------------ targets */

static int is_loopback4(const struct in_addr *a) {
  return (ntohl(a->s_addr) >> 24) == 127;
}

int bu_parse_url(bu_target *t, const char *url, const char *scheme) {
  size_t sl = strlen(scheme);
  t->tls = 0;
  if (t->allow_tls && strcasecmp(scheme, "ws") == 0 && strncasecmp(url, "wss://", 6) == 0) {
    t->tls = 1;
    scheme = "wss";
    sl = 3;
  } else if (strcasecmp(scheme, "ws") == 0 && strncasecmp(url, "wss://", 6) == 0) {
    fprintf(stderr, "holdfast bench: %s: wss:// (TLS) is not supported; use ws://\n",
            url);
    return -1;
  }
  if (strncasecmp(url, scheme, sl) != 0 || strncmp(url + sl, "://", 3) != 0) {
    fprintf(stderr, "holdfast bench: %s: the URL must start with %s://\n", url,
            scheme);
    return -1;
  }
  const char *a = url + sl + 3, *slash = strchr(a, '/');
  size_t alen = slash ? (size_t)(slash - a) : strlen(a);
  if (alen == 0 || alen >= sizeof t->authority) {
    fprintf(stderr, "holdfast bench: %s: missing or overlong host\n", url);
    return -1;
  }
  memcpy(t->authority, a, alen);
  t->authority[alen] = '\0';
  const char *path = slash ? slash : "/";
  if (strlen(path) >= sizeof t->path) {
    fprintf(stderr, "holdfast bench: the URL path is too long\n");
    return -1;
  }
  for (const char *p = path; *p; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#') {
      fprintf(stderr, "holdfast bench: %s: the path has a character that must be "
                      "percent-encoded\n", url);
      return -1;
    }
  snprintf(t->path, sizeof t->path, "%s", path);

  char host[64];
  const char *port_s = NULL;
  if (t->authority[0] == '[') {
    char *rb = strchr(t->authority, ']');
    if (!rb || (size_t)(rb - t->authority - 1) >= sizeof host ||
        (rb[1] && rb[1] != ':')) {
      fprintf(stderr, "holdfast bench: %s: bad [IPv6] host\n", url);
      return -1;
    }
    snprintf(host, sizeof host, "%.*s", (int)(rb - t->authority - 1),
             t->authority + 1);
    port_s = rb[1] ? rb + 2 : NULL;
  } else {
    char *colon = strchr(t->authority, ':');
    size_t hl = colon ? (size_t)(colon - t->authority) : alen;
    if (hl == 0 || hl >= sizeof host) {
      fprintf(stderr, "holdfast bench: %s: bad host\n", url);
      return -1;
    }
    snprintf(host, sizeof host, "%.*s", (int)hl, t->authority);
    port_s = colon ? colon + 1 : NULL;
  }
  snprintf(t->host, sizeof t->host, "%s", host);
  long port = t->tls ? 443 : 80;
  if (port_s) {
    char *end;
    errno = 0;
    port = strtol(port_s, &end, 10);
    if (errno || end == port_s || *end || port < 1 || port > 65535) {
      fprintf(stderr, "holdfast bench: %s: the port must be 1..65535\n", url);
      return -1;
    }
  }
  t->port = (int)port;

  memset(&t->dst, 0, sizeof t->dst);
  struct sockaddr_in *d4 = (struct sockaddr_in *)&t->dst;
  struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)&t->dst;
  int loop = 0;
  if (strcasecmp(host, "localhost") == 0) {
    d4->sin_addr.s_addr = htonl(0x7f000001u);
    d4->sin_family = AF_INET;
    loop = 1;
  } else if (inet_pton(AF_INET, host, &d4->sin_addr) == 1) {
    d4->sin_family = AF_INET;
    loop = is_loopback4(&d4->sin_addr);
  } else if (inet_pton(AF_INET6, host, &d6->sin6_addr) == 1) {
    d6->sin6_family = AF_INET6;
    loop = IN6_IS_ADDR_LOOPBACK(&d6->sin6_addr);
    if (IN6_IS_ADDR_V4MAPPED(&d6->sin6_addr)) {
      struct in_addr v4;
      memcpy(&v4, &d6->sin6_addr.s6_addr[12], 4);
      loop = is_loopback4(&v4);
    }
  }
  if (!loop) {
    fprintf(stderr,
            "holdfast bench: refusing host \"%s\": only loopback targets are "
            "allowed (127.0.0.0/8, ::1, localhost)\n",
            host);
    return -1;
  }
  if (d4->sin_family == AF_INET) {
    d4->sin_port = htons((uint16_t)port);
    t->dst_len = sizeof *d4;
  } else {
    d6->sin6_port = htons((uint16_t)port);
    t->dst_len = sizeof *d6;
  }
  return 0;
}

/* ------------------------------------------------------------ limits */

int bu_raise_nofile(long conns) {
  struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)conns + 32 > rl.rlim_cur) {
    fprintf(stderr,
            "holdfast bench: %ld connections need %ld file descriptors, the "
            "limit is %llu (hard limit; raise it with ulimit -Hn as root)\n",
            conns, conns + 32, (unsigned long long)rl.rlim_cur);
    return -1;
  }
  return 0;
}

int bu_source_addresses(int family, long conns) {
  long lo = 32768, hi = 60999;
  FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &lo, &hi) != 2)
      lo = 32768, hi = 60999;
    fclose(f);
  }
  long usable = (hi - lo + 1) * 3 / 4;
  if (usable < 1)
    usable = 1;
  long n = (conns + usable - 1) / usable;
  if (n > 1 && family != AF_INET) {
    fprintf(stderr, "holdfast bench: warning: %ld connections to [::1] may exhaust "
                    "the %ld ephemeral ports; use an IPv4 URL\n",
            conns, hi - lo + 1);
    return 1;
  }
  return n > 250 ? 250 : n < 1 ? 1 : (int)n;
}

/* ------------------------------------------------------------ arguments */

int bu_parse_long(const char *s, char opt, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) {
    fprintf(stderr, "holdfast bench: -%c %s: want an integer in %ld..%ld\n", opt, s,
            lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

int bu_parse_secs(const char *s, char opt, double lo, double hi, int lo_open,
                  double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v) || v < lo || (lo_open && v <= lo) ||
      v > hi) {
    fprintf(stderr, "holdfast bench: -%c %s: want seconds, %s %g and at most %g\n",
            opt, s, lo_open ? "more than" : "at least", lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

void bu_base64_16(const uint8_t in[16], char out[25]) {
  static const char t[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0, i = 0;
  for (; i + 3 <= 15; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = t[v >> 18];
    out[o++] = t[(v >> 12) & 63];
    out[o++] = t[(v >> 6) & 63];
    out[o++] = t[v & 63];
  }
  uint32_t v = (uint32_t)in[15] << 16; /* one byte left: "xx==" */
  out[o++] = t[v >> 18];
  out[o++] = t[(v >> 12) & 63];
  out[o++] = '=';
  out[o++] = '=';
  out[o] = '\0';
}

/* ---- WebSocket handshake (client side) ------------------------------------------ */

int bu_open_socket(const bu_target *t, int nsrc, long src, int ep, void *ptr,
                   int *fd_out, char *why, size_t why_len) {
  return bu_open_socket_rcvbuf(t, nsrc, src, ep, ptr, 0, fd_out, why, why_len);
}

int bu_open_socket_rcvbuf(const bu_target *t, int nsrc, long src, int ep, void *ptr,
                          int rcvbuf, int *fd_out, char *why, size_t why_len) {
  int fd = socket(t->dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(why, why_len, "socket: %s", strerror(errno));
    return -1;
  }
  *fd_out = fd;
  if (rcvbuf > 0) /* before connect(): the window scale is chosen at SYN */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (nsrc > 1 && t->dst.ss_family == AF_INET) { /* spread over 127.0.0.x */
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(src % nsrc));
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
      snprintf(why, why_len, "bind 127.0.0.%ld: %s", 1 + src % nsrc,
               strerror(errno));
      return -1;
    }
  }
  if (connect(fd, (const struct sockaddr *)&t->dst, t->dst_len) < 0 &&
      errno != EINPROGRESS) {
    snprintf(why, why_len, "connect: %s", strerror(errno));
    return -1;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = ptr};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
    snprintf(why, why_len, "epoll_ctl: %s", strerror(errno));
    return -1;
  }
  return 0;
}

int bu_socket_error(int fd) {
  int err = 0;
  socklen_t el = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
    err = errno;
  return err;
}

void bu_ws_key(char key[25], uint32_t (*rnd)(void)) {
  uint8_t raw[16];
  for (int i = 0; i < 16; i += 4) {
    uint32_t r = rnd();
    memcpy(raw + i, &r, 4);
  }
  bu_base64_16(raw, key);
}

int bu_upgrade_request(char *req, size_t cap, const bu_target *t,
                       const char *key) {
  return bu_upgrade_request_ext(req, cap, t, key, "");
}

int bu_upgrade_request_ext(char *req, size_t cap, const bu_target *t,
                           const char *key, const char *extra) {
  return snprintf(req, cap,
                  "GET %s HTTP/1.1\r\n"
                  "Host: %s\r\n"
                  "Upgrade: websocket\r\n"
                  "Connection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\n"
                  "Sec-WebSocket-Version: 13\r\n"
                  "%s"
                  "User-Agent: holdfast-bench\r\n\r\n",
                  t->path, t->authority, key, extra);
}

double bu_metric(const bu_target *t, const char *series) {
  int fd = socket(t->dst.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct timeval tv = {5, 0}; /* bounded: never hang the report */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  socklen_t sl = t->dst.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
  char req[512];
  int n = snprintf(req, sizeof req,
                   "GET /metrics HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                   t->authority);
  size_t cap = 4 << 20, len = 0;
  char *buf = malloc(cap + 1);
  if (!buf || connect(fd, (const struct sockaddr *)&t->dst, sl) < 0 ||
      send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
    free(buf);
    close(fd);
    return -1;
  }
  ssize_t r;
  while (len < cap && (r = recv(fd, buf + len, cap - len, 0)) > 0)
    len += (size_t)r;
  close(fd);
  buf[len] = 0;
  double v = -1;
  size_t sn = strlen(series);
  for (char *p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    if (strncmp(p, series, sn) == 0 && p[sn] == ' ') {
      v = strtod(p + sn + 1, NULL);
      break;
    }
  free(buf);
  return v;
}

size_t bu_client_frame(uint8_t *dst, int opcode, const void *p, size_t n,
                       uint32_t mask) {
  size_t h = hf_frame_header(dst, 1, opcode, n, (const uint8_t *)&mask);
  memcpy(dst + h, p, n);
  hf_frame_mask(dst + h, n, (const uint8_t *)&mask, 0);
  return h + n;
}

int bu_read_head(int fd, char *buf, uint32_t *len, uint32_t cap,
                 size_t *head_len, char *why, size_t why_len) {
  ssize_t r = recv(fd, buf + *len, cap - *len, 0);
  return bu_head_feed(buf, len, cap, r, head_len, why, why_len);
}

int bu_head_feed(char *buf, uint32_t *len, uint32_t cap, ssize_t r,
                 size_t *head_len, char *why, size_t why_len) {
  if (r == 0) {
    snprintf(why, why_len, "handshake: server closed the connection");
    return BU_HEAD_ERROR;
  }
  if (r < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      snprintf(why, why_len, "handshake: recv: %s", strerror(errno));
      return BU_HEAD_ERROR;
    }
    return BU_HEAD_MORE;
  }
  uint32_t from = *len > 3 ? *len - 3 : 0;
  *len += (uint32_t)r;
  char *eoh = memmem(buf + from, *len - from, "\r\n\r\n", 4);
  if (!eoh) {
    if (*len == cap) {
      snprintf(why, why_len, "handshake: response head over %u bytes", cap);
      return BU_HEAD_ERROR;
    }
    return BU_HEAD_MORE;
  }
  *head_len = (size_t)(eoh - buf) + 4;
  return BU_HEAD_DONE;
}

const char *bu_check_101(const char *head, size_t head_len, const char *key,
                         int need_connection, char *why, size_t why_len) {
  const char *p = head, *end = head + head_len;
  if (head_len < 12 || strncmp(p, "HTTP/1.1 ", 9) != 0)
    return "handshake: the response is not HTTP/1.1";
  if (atoi(p + 9) != 101) {
    const char *eol = memchr(p, '\r', head_len);
    int n = (int)((eol ? eol : end) - p);
    snprintf(why, why_len, "handshake: %.*s", n > 60 ? 60 : n, p);
    return why;
  }
  char want[29];
  hf_handshake_accept(key, strlen(key), want);
  int up = 0, conn_up = 0, accept_ok = 0;
  const char *line = memchr(p, '\n', head_len);
  while (line && ++line < end) {
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    if (!eol)
      break;
    const char *le = eol > line && eol[-1] == '\r' ? eol - 1 : eol;
    const char *colon = memchr(line, ':', (size_t)(le - line));
    if (colon) {
      size_t nl = (size_t)(colon - line);
      const char *v = colon + 1;
      while (v < le && (*v == ' ' || *v == '\t'))
        v++;
      size_t vl = (size_t)(le - v);
      while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
      if (nl == 7 && strncasecmp(line, "upgrade", 7) == 0)
        up = vl == 9 && strncasecmp(v, "websocket", 9) == 0;
      else if (nl == 10 && strncasecmp(line, "connection", 10) == 0)
        conn_up = hf_http_has_token(v, vl, "upgrade");
      else if (nl == 20 && strncasecmp(line, "sec-websocket-accept", 20) == 0)
        accept_ok = vl == 28 && memcmp(v, want, 28) == 0;
    }
    line = eol;
  }
  if (!accept_ok)
    return "handshake: missing or wrong Sec-WebSocket-Accept";
  if (!up)
    return "handshake: no \"Upgrade: websocket\" in the 101";
  if (need_connection && !conn_up)
    return "handshake: no \"Connection: Upgrade\" in the 101";
  return NULL;
}

/* ---- tokens ------------------------------------------------------------------- */

/* HS256 JWT for {"sub":"bench"} signed with secret. */
int bu_hs256_token(const char *secret, char *out, size_t cap) {
  return bu_hs256_token_claims(secret, "{\"sub\":\"bench\"}", out, cap);
}

int bu_hs256_token_claims(const char *secret, const char *pay, char *out, size_t cap) {
  if (strlen(pay) > 300)
    return -1;
  return tk_sign_hmac("HS256", secret, pay, out, cap); /* as holdfast gentoken signs */
}

/* ---- reporting ------------------------------------------------------------------ */

void bu_fail(bu_fails *f, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  bu_vfail(f, fmt, ap);
  va_end(ap);
}

void bu_vfail(bu_fails *f, const char *fmt, va_list ap) {
  char text[160];
  vsnprintf(text, sizeof text, fmt, ap);
  for (int i = 0; i < f->n; i++)
    if (strcmp(f->k[i].text, text) == 0) {
      f->k[i].n++;
      return;
    }
  if (f->n == BU_FAIL_KINDS) {
    f->other++;
    return;
  }
  memcpy(f->k[f->n].text, text, sizeof text);
  f->k[f->n++].n = 1;
}

void bu_fail_print(const bu_fails *f) {
  for (int i = 0; i < f->n; i++)
    fprintf(stderr, "holdfast bench: %ld x %s\n", f->k[i].n, f->k[i].text);
  if (f->other)
    fprintf(stderr, "holdfast bench: %ld x other failures\n", f->other);
}

int bu_out_add(bu_out *o, const void *p, size_t n) {
  if (o->off == o->len)
    o->off = o->len = 0;
  if ((size_t)o->len + n > UINT32_MAX / 2)
    return -1;
  uint8_t *b = realloc(o->p, o->len + n);
  if (!b)
    return -1;
  memcpy(b + o->len, p, n);
  o->p = b;
  o->len += (uint32_t)n;
  return 0;
}

int bu_out_send(bu_out *o, int fd) {
  while (o->off < o->len) {
    ssize_t w = send(fd, o->p + o->off, o->len - o->off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return BU_OUT_AGAIN;
      return -1;
    }
    o->off += (uint32_t)w;
  }
  bu_out_free(o);
  return BU_OUT_DONE;
}

void bu_out_free(bu_out *o) {
  free(o->p);
  o->p = NULL;
  o->len = o->off = 0;
}

void bu_res(bu_results *rs, const char *key, int str, const char *fmt, ...) {
  if (rs->n == (int)(sizeof rs->r / sizeof rs->r[0]))
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rs->r[rs->n].val, sizeof rs->r[rs->n].val, fmt, ap);
  va_end(ap);
  rs->r[rs->n].key = key;
  rs->r[rs->n].str = str;
  rs->n++;
}

/* Whether v is a JSON number (RFC 8259: -?int frac? exp?). */
static int json_number(const char *v) {
  const char *p = v;
  if (*p == '-')
    p++;
  if (*p == '0')
    p++;
  else if (*p >= '1' && *p <= '9')
    while (*p >= '0' && *p <= '9')
      p++;
  else
    return 0;
  if (*p == '.') {
    if (!(*++p >= '0' && *p <= '9'))
      return 0;
    while (*p >= '0' && *p <= '9')
      p++;
  }
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-')
      p++;
    if (!(*p >= '0' && *p <= '9'))
      return 0;
    while (*p >= '0' && *p <= '9')
      p++;
  }
  return *p == 0;
}

void bu_res_print(const bu_results *rs, int json) {
  printf("RESULT");
  for (int i = 0; i < rs->n; i++)
    printf(" %s=%s%s", rs->r[i].key, rs->r[i].val, rs->r[i].str == BU_PCT ? "%" : "");
  printf("\n");
  if (json) {
    printf("{");
    for (int i = 0; i < rs->n; i++) {
      printf("%s\"%s\":", i ? "," : "", rs->r[i].key);
      if (rs->r[i].str != BU_STR) {
        printf("%s", json_number(rs->r[i].val) ? rs->r[i].val : "null");
        continue;
      }
      putchar('"');
      for (const char *c = rs->r[i].val; *c; c++) {
        if ((unsigned char)*c < 0x20) {
          printf("\\u%04x", (unsigned char)*c);
          continue;
        }
        if (*c == '"' || *c == '\\')
          putchar('\\');
        putchar(*c);
      }
      putchar('"');
    }
    printf("}\n");
  }
  fflush(stdout);
}
