/* SPDX-License-Identifier: MIT */
/* Helpers shared by the `holdfast bench` modes (bench.c: echo, storm, idle;
 * bench_rt.c: fanout, churn; bench_storm.c: reconnect, flood): clocks, the latency histogram, /proc readers,
 * loopback-only URL parsing, descriptor and source-address limits, and the
 * client side of the WebSocket handshake and framing. */
#ifndef HF_TOOLS_BENCH_UTIL_H
#define HF_TOOLS_BENCH_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#define BU_NS_PER_S 1000000000ull

static inline uint64_t bu_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * BU_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* ---- histogram ----------------------------------------------------------
 * Log-bucketed: exact below 32, then 32 sub-buckets per power of two, so a
 * bucket is at most 1/32 (~3%) of its value wide. Values in ns. */
#define BU_H_SUB_BITS 5
#define BU_H_SUB (1u << BU_H_SUB_BITS)
#define BU_H_BUCKETS (64 * BU_H_SUB)

typedef struct {
  uint64_t n, max;
  uint64_t count[BU_H_BUCKETS];
} bu_hist;

void bu_hist_add(bu_hist *h, uint64_t v);
/* Value at quantile q (0..1): the middle of the bucket holding the rank,
 * never above the exact maximum. 0 when empty. */
uint64_t bu_hist_quantile(const bu_hist *h, double q);

/* ---- /proc readers -------------------------------------------------------- */

double bu_self_cpu(void);     /* this process, user + system seconds */
double bu_proc_cpu(long pid); /* utime + stime of all threads; -1 if gone */
double bu_host_cpu(void);     /* busy seconds of all CPUs; -1 if unknown */
long bu_proc_rss_kb(long pid); /* VmRSS in kB; -1 if gone */
/* The PID owning the TCP listener on port (IPv4 or IPv6, via /proc), or 0
 * with the reason in why. */
long bu_find_listener(int family, int port, char *why, size_t why_len);

/* ---- targets ---------------------------------------------------------------- */

typedef struct {
  int allow_tls;      /* set by the caller before bu_parse_url: wss:// allowed */
  int tls;            /* the URL was wss:// (default port 443) */
  char host[64];      /* HOST without brackets or port (TLS server name) */
  char authority[80]; /* HOST[:PORT] as written, for the Host header */
  char path[1024];
  int port;
  struct sockaddr_storage dst;
  socklen_t dst_len;
} bu_target;

/* Parse SCHEME://HOST[:PORT][/PATH] where scheme is "ws" or "http" (given
 * without "://"); HOST must be loopback (127.0.0.0/8, ::1, localhost). The
 * default port is 80. With scheme "ws" and t->allow_tls set, "wss://" is
 * accepted too (t->tls = 1, default port 443). Prints the problem on stderr
 * and returns -1 if bad. */
int bu_parse_url(bu_target *t, const char *url, const char *scheme);

/* ---- process limits ------------------------------------------------------------ */

/* Raise RLIMIT_NOFILE to the hard limit; -1 (with a message) if conns
 * descriptors (plus a reserve) still do not fit. */
int bu_raise_nofile(long conns);
/* How many source addresses 127.0.0.x are needed so that conns sockets to
 * one destination fit the ephemeral port range (1..250; 1 for IPv6). */
int bu_source_addresses(int family, long conns);

/* ---- arguments ------------------------------------------------------------------- */

int bu_parse_long(const char *s, char opt, long lo, long hi, long *out);
int bu_parse_secs(const char *s, char opt, double lo, double hi, int lo_open,
                  double *out);

/* base64 of 16 bytes (a Sec-WebSocket-Key): 24 characters and a NUL. */
void bu_base64_16(const uint8_t in[16], char out[25]);

/* ---- WebSocket handshake (client side) ------------------------------------------ */

/* A non-blocking TCP socket to t->dst with TCP_NODELAY, bound to source
 * 127.0.0.(1 + src % nsrc) when nsrc > 1 and IPv4, connect() started and
 * added to epoll ep for EPOLLIN | EPOLLOUT with data.ptr = ptr. *fd is set as
 * soon as the socket exists (the caller closes it). 0, or -1 with the reason
 * in why. */
int bu_open_socket(const bu_target *t, int nsrc, long src, int ep, void *ptr,
                   int *fd, char *why, size_t why_len);
/* The same with SO_RCVBUF set to rcvbuf bytes before connect() (0: the
 * kernel's default and autotuning), for readers that must stay small. */
int bu_open_socket_rcvbuf(const bu_target *t, int nsrc, long src, int ep, void *ptr,
                          int rcvbuf, int *fd_out, char *why, size_t why_len);
/* The pending error of a non-blocking connect() (SO_ERROR); 0 if none. */
int bu_socket_error(int fd);
/* A fresh Sec-WebSocket-Key from four rnd() draws. */
void bu_ws_key(char key[25], uint32_t (*rnd)(void));
/* The upgrade request for t with key into req[0..cap): snprintf's result. */
int bu_upgrade_request(char *req, size_t cap, const bu_target *t,
                       const char *key);
/* The same with extra header lines (each ending "\r\n"; "" for none). */
int bu_upgrade_request_ext(char *req, size_t cap, const bu_target *t,
                           const char *key, const char *extra);
/* A counter or gauge from the server's Prometheus exposition: a blocking
 * GET /metrics on t's address (outside any measured window), the value of
 * the line "<series> <value>" (series with its labels, exactly). -1 if the
 * request failed or the series is missing. */
double bu_metric(const bu_target *t, const char *series);
/* One masked client frame (FIN set) of opcode with payload p[0..n) into dst
 * (room for n + HF_FRAME_MAX_HEADER); its length. */
size_t bu_client_frame(uint8_t *dst, int opcode, const void *p, size_t n,
                       uint32_t mask);

enum { BU_HEAD_MORE = 0, BU_HEAD_DONE = 1, BU_HEAD_ERROR = -1 };

/* recv() more of a response head into buf[*len..cap) and look for the blank
 * line. BU_HEAD_DONE with *head_len (through CRLFCRLF) set; BU_HEAD_MORE to
 * wait for more; BU_HEAD_ERROR with the reason in why (server closed, recv
 * failed, head over cap bytes). */
int bu_read_head(int fd, char *buf, uint32_t *len, uint32_t cap,
                 size_t *head_len, char *why, size_t why_len);
/* The same after the caller read r bytes into buf[*len..) itself (e.g.
 * from TLS): r > 0 bytes, 0 end of stream, < 0 a failure with errno set
 * (EAGAIN: BU_HEAD_MORE). */
int bu_head_feed(char *buf, uint32_t *len, uint32_t cap, ssize_t r,
                 size_t *head_len, char *why, size_t why_len);
/* Check the 101 response head[0..head_len) for the request with
 * Sec-WebSocket-Key key: HTTP/1.1 101, the right Sec-WebSocket-Accept,
 * "Upgrade: websocket" and, if need_connection, "Connection: Upgrade".
 * NULL if good, else why (a constant or written into why). */
const char *bu_check_101(const char *head, size_t head_len, const char *key,
                         int need_connection, char *why, size_t why_len);

/* An HS256 JWT for {"sub":"bench"} signed with secret into out[0..cap).
 * 0, or -1 if it does not fit. */
int bu_hs256_token(const char *secret, char *out, size_t cap);
/* The same for the claims JSON pay (at most 300 bytes). */
int bu_hs256_token_claims(const char *secret, const char *pay, char *out, size_t cap);

/* ---- output buffer ----------------------------------------------------------------- */

/* Bytes queued for one non-blocking socket: appended at len, sent from off.
 * Zero-initialised is empty. Not thread-safe (one connection's buffer). */
typedef struct {
  uint8_t *p;
  uint32_t len, off;
} bu_out;

enum { BU_OUT_DONE = 0, BU_OUT_AGAIN = 1 };

/* Append p[0..n) (a fully sent buffer starts over). 0, or -1 when out of
 * memory or over 2 GiB would be queued (nothing appended). */
int bu_out_add(bu_out *o, const void *p, size_t n);
/* send() what is pending to fd (MSG_NOSIGNAL | MSG_DONTWAIT, EINTR
 * retried). BU_OUT_DONE: all sent and the memory freed; BU_OUT_AGAIN: the
 * socket is full (wait for EPOLLOUT); -1: send failed, errno set. */
int bu_out_send(bu_out *o, int fd);
/* Bytes queued and not yet sent. */
static inline uint32_t bu_out_pending(const bu_out *o) { return o->len - o->off; }
/* Drop whatever is queued and free the memory; o is empty after. */
void bu_out_free(bu_out *o);

/* ---- reporting ------------------------------------------------------------------ */

/* Failures counted by description ("connect: Connection refused" x 12). */
#define BU_FAIL_KINDS 16
typedef struct {
  struct {
    char text[160];
    long n;
  } k[BU_FAIL_KINDS];
  int n;
  long other; /* kinds past the first BU_FAIL_KINDS */
} bu_fails;

__attribute__((format(printf, 2, 3))) void bu_fail(bu_fails *f, const char *fmt, ...);
/* The same with a va_list (for a mode's own printf-like wrapper). */
__attribute__((format(printf, 2, 0))) void bu_vfail(bu_fails *f, const char *fmt, va_list ap);
/* "holdfast bench: N x TEXT" lines on stderr. */
void bu_fail_print(const bu_fails *f);

/* The RESULT line (KEY=VALUE ...) and, with json, the same as one JSON
 * object. A value's kind: BU_NUM a number, BU_STR a string (quoted and
 * escaped in JSON), BU_PCT a percentage (a number; "%" appended on the
 * RESULT line only). A number that is not valid JSON (nan, inf) is null. */
enum { BU_NUM = 0, BU_STR = 1, BU_PCT = 2 };
typedef struct {
  struct {
    const char *key; /* a string literal */
    int str; /* the kind: BU_NUM, BU_STR, BU_PCT */
    char val[112];
  } r[64];
  int n;
} bu_results;

__attribute__((format(printf, 4, 5))) void bu_res(bu_results *rs, const char *key,
                                                  int str, const char *fmt, ...);
/* Prints to stdout and flushes it. */
void bu_res_print(const bu_results *rs, int json);

#endif
