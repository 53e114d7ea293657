/* SPDX-License-Identifier: MIT */
/* Internals of the client library shared by its files (hf__ prefix): the
 * mask/key generator, the c-ares resolver on the client's epoll set, and the
 * transport seam (plain TCP today; TLS plugs in behind the same calls).
 * Not installed, not part of the API. */
#ifndef HF_CLIENT_IMPL_H
#define HF_CLIENT_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <openssl/evp.h>

/* epoll_data tags on the client's epoll set: the kind in the high half,
 * the descriptor in the low half. */
#define HF__TAG_SOCK 1u
#define HF__TAG_DNS 2u
#define HF__TAG(kind, fd) (((uint64_t)(kind) << 32) | (uint32_t)(fd))

/* ---- random: ChaCha20 keystream (OpenSSL) seeded from getrandom --------- */

/* Masking keys and handshake nonces must be unpredictable (RFC 6455 5.3,
 * 10.3), and a busy client needs four bytes per frame: a ChaCha20
 * keystream, refilled 512 bytes at a time and re-seeded from the kernel
 * every 256 MiB, gives both without a syscall per frame. */
typedef struct {
  EVP_CIPHER_CTX *ctx;
  uint8_t buf[512];
  size_t pos;
  uint32_t refills;
} hf__rand;

/* Seed from getrandom(2). 0, or HF_EIO / HF_ENOMEM. */
int hf__rand_init(hf__rand *r);
void hf__rand_bytes(hf__rand *r, void *out, size_t n);
uint32_t hf__rand_u32(hf__rand *r);
void hf__rand_free(hf__rand *r);

/* ---- DNS: c-ares driven by the client's epoll set and timeouts ----------- */

typedef struct hf__dns hf__dns;

/* A resolver whose sockets are added to epfd (tag HF__TAG_DNS). servers:
 * "ip[:port],..." or NULL for /etc/resolv.conf. NULL with a reason in err
 * on failure. */
hf__dns *hf__dns_new(int epfd, const char *servers, uint32_t timeout_ms,
                     char *err, size_t errcap);
void hf__dns_free(hf__dns *d);

/* Start resolving host (A and AAAA) for port; one query at a time (a new
 * one cancels the old). 0 or HF_ENOMEM. The answer is collected with
 * hf__dns_result, never through a callback into the client. */
int hf__dns_resolve(hf__dns *d, const char *host, int port);
void hf__dns_cancel(hf__dns *d);

/* After a query finished: 1 and the result (status 0 = ok with n addresses
 * copied to addrs, else an error text in err); 0 while still running. The
 * result is consumed. */
int hf__dns_result(hf__dns *d, int *status, const char **err,
                   struct sockaddr_storage *addrs, size_t cap, size_t *n);

/* Events on one of its sockets (fd), or timeouts (fd -1). */
void hf__dns_process(hf__dns *d, int fd, uint32_t events);
/* Milliseconds until c-ares needs hf__dns_process(d, -1, 0); -1 if idle. */
int hf__dns_timeout_ms(hf__dns *d);
/* 1 if the error status means "the name does not exist". */
int hf__dns_notfound(int status);

/* ---- transports ---------------------------------------------------------- */

enum { HF__WANT_READ = 1, HF__WANT_WRITE = 2 };

typedef struct hf__tp hf__tp;
typedef struct {
  /* 1 when the transport is ready for HTTP, 0 to call again when the
   * socket is ready for want(), < 0 on failure (error() says why). */
  int (*handshake)(hf__tp *t);
  /* > 0 bytes, 0 end of stream, HF_EAGAIN, HF_EIO (errno_ / error()). */
  ssize_t (*read)(hf__tp *t, void *buf, size_t cap);
  /* bytes accepted, HF_EAGAIN, HF_EIO. */
  ssize_t (*writev)(hf__tp *t, const struct iovec *iov, int n);
  /* HF__WANT_* the last call that could not finish waits for. */
  int (*want)(const hf__tp *t);
  /* decrypted bytes buffered inside (readable without the socket). */
  size_t (*pending)(const hf__tp *t);
  void (*free)(hf__tp *t);
  const char *(*error)(const hf__tp *t);
} hf__tp_ops;

struct hf__tp {
  const hf__tp_ops *ops;
  int fd;     /* borrowed: the client closes it */
  int errno_; /* the last system error */
  int want;
};

/* Plain TCP on a connected non-blocking socket. NULL on out-of-memory. */
hf__tp *hf__tp_plain(int fd);

#endif
