/* SPDX-License-Identifier: MIT */
/* The client's transports behind one small vtable (hf__tp_ops): plain TCP
 * here; TLS wraps hf_tls behind the same calls, so the WebSocket code above
 * never knows which one it talks through. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "client_impl.h"
#include "hf/err.h"

static int plain_handshake(hf__tp *t) { return 1; }

static ssize_t plain_read(hf__tp *t, void *buf, size_t cap) {
  ssize_t n = recv(t->fd, buf, cap, 0);
  if (n >= 0)
    return n;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
    t->want = HF__WANT_READ;
    return HF_EAGAIN;
  }
  t->errno_ = errno;
  return HF_EIO;
}

static ssize_t plain_writev(hf__tp *t, const struct iovec *iov, int n) {
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = (struct iovec *)iov;
  m.msg_iovlen = (size_t)n;
  ssize_t w = sendmsg(t->fd, &m, MSG_NOSIGNAL);
  if (w >= 0)
    return w;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
    t->want = HF__WANT_WRITE;
    return HF_EAGAIN;
  }
  t->errno_ = errno;
  return HF_EIO;
}

static int plain_want(const hf__tp *t) { return t->want; }
static size_t plain_pending(const hf__tp *t) { return 0; }
static void plain_free(hf__tp *t) { free(t); }
static const char *plain_error(const hf__tp *t) {
  return t->errno_ ? strerror(t->errno_) : "";
}

static const hf__tp_ops plain_ops = {plain_handshake, plain_read, plain_writev,
                                     plain_want, plain_pending, plain_free,
                                     plain_error};

hf__tp *hf__tp_plain(int fd) {
  hf__tp *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  t->ops = &plain_ops;
  t->fd = fd;
  return t;
}
