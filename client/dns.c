/* SPDX-License-Identifier: MIT */
/* Non-blocking name resolution with c-ares: its sockets join the client's
 * epoll set through the socket-state callback and its timeouts join the
 * client's, so a lookup never blocks the application's loop. Answers are
 * stored and collected by the client (no callback into it). */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <ares.h>

#include "client_impl.h"
#include "hf/err.h"

struct hf__dns {
  ares_channel ch;
  int epfd;
  int active;  /* a query is running and its answer is wanted */
  int done;    /* an answer is stored */
  int status;
  int port;
  struct sockaddr_storage addrs[8];
  size_t n;
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_status;

static void lib_init(void) { lib_status = ares_library_init(ARES_LIB_INIT_ALL); }

static void sock_state(void *data, ares_socket_t fd, int readable, int writable) {
  hf__dns *d = data;
  if (!readable && !writable) {
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, fd, NULL);
    return;
  }
  struct epoll_event ev = {
      .events = (readable ? EPOLLIN : 0u) | (writable ? EPOLLOUT : 0u),
      .data.u64 = HF__TAG(HF__TAG_DNS, fd)};
  if (epoll_ctl(d->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 && errno == ENOENT)
    epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev);
}

hf__dns *hf__dns_new(int epfd, const char *servers, uint32_t timeout_ms,
                     char *err, size_t errcap) {
  pthread_once(&lib_once, lib_init);
  if (lib_status != ARES_SUCCESS) {
    snprintf(err, errcap, "c-ares: %s", ares_strerror(lib_status));
    return NULL;
  }
  hf__dns *d = calloc(1, sizeof *d);
  if (!d) {
    snprintf(err, errcap, "out of memory");
    return NULL;
  }
  d->epfd = epfd;
  struct ares_options o;
  memset(&o, 0, sizeof o);
  o.sock_state_cb = sock_state;
  o.sock_state_cb_data = d;
  /* two tries per server within the client's DNS timeout */
  o.timeout = (int)(timeout_ms / 2 > 0 ? timeout_ms / 2 : 1);
  o.tries = 2;
  int rc = ares_init_options(&d->ch, &o,
                             ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
                                 ARES_OPT_TRIES);
  if (rc == ARES_SUCCESS && servers && *servers)
    rc = ares_set_servers_ports_csv(d->ch, servers);
  if (rc != ARES_SUCCESS) {
    snprintf(err, errcap, "c-ares: %s%s%s", ares_strerror(rc),
             servers ? " in DNS servers " : "", servers ? servers : "");
    if (d->ch)
      ares_destroy(d->ch);
    free(d);
    return NULL;
  }
  return d;
}

void hf__dns_free(hf__dns *d) {
  if (!d)
    return;
  d->active = 0;
  ares_destroy(d->ch); /* pending callbacks run now and are ignored */
  free(d);
}

static void on_answer(void *arg, int status, int timeouts,
                      struct ares_addrinfo *res) {
  hf__dns *d = arg;
  if (d->active) {
    d->active = 0;
    d->done = 1;
    d->status = status;
    d->n = 0;
    for (struct ares_addrinfo_node *n = res ? res->nodes : NULL;
         n && d->n < sizeof d->addrs / sizeof d->addrs[0]; n = n->ai_next) {
      struct sockaddr_storage *a = &d->addrs[d->n];
      memset(a, 0, sizeof *a);
      if (n->ai_family == AF_INET && n->ai_addrlen >= sizeof(struct sockaddr_in)) {
        memcpy(a, n->ai_addr, sizeof(struct sockaddr_in));
        ((struct sockaddr_in *)a)->sin_port = htons((uint16_t)d->port);
      } else if (n->ai_family == AF_INET6 &&
                 n->ai_addrlen >= sizeof(struct sockaddr_in6)) {
        memcpy(a, n->ai_addr, sizeof(struct sockaddr_in6));
        ((struct sockaddr_in6 *)a)->sin6_port = htons((uint16_t)d->port);
      } else {
        continue;
      }
      d->n++;
    }
    if (status == ARES_SUCCESS && d->n == 0)
      d->status = ARES_ENODATA;
  }
  if (res)
    ares_freeaddrinfo(res);
}

int hf__dns_resolve(hf__dns *d, const char *host, int port) {
  hf__dns_cancel(d);
  d->done = 0;
  d->port = port;
  d->active = 1;
  struct ares_addrinfo_hints h;
  memset(&h, 0, sizeof h);
  h.ai_family = AF_UNSPEC;
  h.ai_socktype = SOCK_STREAM;
  /* may answer at once (from /etc/hosts): on_answer only stores it */
  ares_getaddrinfo(d->ch, host, NULL, &h, on_answer, d);
  return 0;
}

void hf__dns_cancel(hf__dns *d) {
  if (!d || !d->active)
    return;
  d->active = 0;
  ares_cancel(d->ch);
}

int hf__dns_result(hf__dns *d, int *status, const char **err,
                   struct sockaddr_storage *addrs, size_t cap, size_t *n) {
  if (!d->done)
    return 0;
  d->done = 0;
  *status = d->status;
  *err = d->status == ARES_SUCCESS ? "" : ares_strerror(d->status);
  *n = d->n < cap ? d->n : cap;
  memcpy(addrs, d->addrs, *n * sizeof *addrs);
  return 1;
}

void hf__dns_process(hf__dns *d, int fd, uint32_t events) {
  ares_socket_t r = ARES_SOCKET_BAD, w = ARES_SOCKET_BAD;
  if (fd >= 0) {
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
      r = fd;
    if (events & EPOLLOUT)
      w = fd;
  }
  ares_process_fd(d->ch, r, w);
}

int hf__dns_timeout_ms(hf__dns *d) {
  struct timeval tv;
  if (!d || !ares_timeout(d->ch, NULL, &tv))
    return -1;
  long ms = (long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
  return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

int hf__dns_notfound(int status) {
  return status == ARES_ENOTFOUND || status == ARES_ENODATA;
}
