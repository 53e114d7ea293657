/* SPDX-License-Identifier: MIT */
/* The client's transports behind one small vtable (hf__tp_ops): plain TCP,
 * and TLS (hf_tls, client role) behind the same calls, so the WebSocket
 * code above never knows which one it talks through; plus the diagnosis
 * of a certificate the client refused. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <stdio.h>

#include <openssl/x509_vfy.h>

#include "client_impl.h"
#include "hf/err.h"
#include "hf/tls.h"

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

/* ---- TLS ------------------------------------------------------------------ */

static int tls_handshake(hf__tp *t) {
  int rc = hf_tls_handshake(t->tls);
  t->want = hf_tls_want(t->tls);
  return rc;
}

static ssize_t tls_read(hf__tp *t, void *buf, size_t cap) {
  ssize_t n = hf_tls_read(t->tls, buf, cap);
  t->want = hf_tls_want(t->tls);
  return n;
}

static ssize_t tls_writev(hf__tp *t, const struct iovec *iov, int n) {
  ssize_t w = hf_tls_writev(t->tls, iov, n);
  t->want = hf_tls_want(t->tls);
  return w;
}

static size_t tls_pending(const hf__tp *t) { return hf_tls_pending(t->tls); }

static void tls_free(hf__tp *t) {
  hf_tls_shutdown(t->tls); /* close_notify, best effort */
  hf_tls_free(t->tls);
  free(t);
}

static const char *tls_error(const hf__tp *t) { return hf_tls_error(t->tls); }

static const hf__tp_ops tls_ops = {tls_handshake, tls_read,    tls_writev, plain_want,
                                   tls_pending,   tls_free,    tls_error};

hf__tp *hf__tp_tls(int fd, struct hf_tls *tls) {
  hf__tp *t = calloc(1, sizeof *t);
  if (!t) {
    hf_tls_free(tls);
    return NULL;
  }
  t->ops = &tls_ops;
  t->fd = fd;
  t->tls = tls;
  return t;
}

/* ---- certificate diagnoses ---------------------------------------------------- */

int hf__tls_diagnose(struct hf_tls *tls, const char *host, char *reason,
                     size_t rcap, char *diag, size_t dcap) {
  long v = hf_tls_verify_result(tls);
  hf_tls_cert_info leaf;
  int have = hf_tls_peer_chain_len(tls) > 0 && hf_tls_peer_cert(tls, 0, &leaf) == 0;
  char when[32] = "";
  if (v == X509_V_OK || !have) {
    snprintf(reason, rcap, "the TLS handshake failed: %s", hf_tls_error(tls));
    snprintf(diag, dcap,
             "%s", *hf_tls_error_reason(tls) && strstr(hf_tls_error_reason(tls), "wrong version")
                       ? "the server does not speak TLS on this port: use ws:// (or the TLS port)"
                       : "the server and the client found no common TLS version or cipher, "
                         "or the server refused the handshake; its log says why");
    return 0;
  }
  const char *names = *leaf.sans ? leaf.sans : leaf.subject;
  switch (v) {
  case X509_V_ERR_CERT_HAS_EXPIRED:
    hf_tls_format_time(leaf.not_after, when);
    snprintf(reason, rcap, "the server's certificate (%s) expired on %s", leaf.subject, when);
    snprintf(diag, dcap, "the certificate expired; fix: renew it on the server (and reload "
                         "the server: holdfast reloads certificates on SIGHUP)");
    break;
  case X509_V_ERR_CERT_NOT_YET_VALID:
    hf_tls_format_time(leaf.not_before, when);
    snprintf(reason, rcap, "the server's certificate (%s) is not valid before %s",
             leaf.subject, when);
    snprintf(diag, dcap, "the certificate is not valid yet; fix: check the clock of this "
                         "machine and of the server, or the certificate's start date");
    break;
  case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
  case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    snprintf(reason, rcap, "the server's certificate (%s) is self-signed", leaf.subject);
    snprintf(diag, dcap, "a self-signed certificate is trusted by nobody by default; fix: "
                         "use a certificate from a CA the clients trust, or give this "
                         "certificate to the client as a CA (--ca FILE; --insecure only "
                         "for testing)");
    break;
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
  case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    snprintf(reason, rcap, "the server's certificate (%s) has an unknown issuer (%s)",
             leaf.subject, leaf.issuer);
    snprintf(diag, dcap, "the client does not trust the CA that issued the certificate, or "
                         "the server does not send its intermediate certificates; fix: "
                         "pass the CA's certificate with --ca FILE, or configure the server "
                         "with the full chain (leaf first, then intermediates)");
    break;
  case X509_V_ERR_HOSTNAME_MISMATCH:
  case X509_V_ERR_IP_ADDRESS_MISMATCH:
    snprintf(reason, rcap, "the server's certificate is not for %s: it names %s", host,
             names);
    snprintf(diag, dcap, "wrong host: the certificate does not include the host of the "
                         "URL; fix: connect with one of the names it has (%s), or get a "
                         "certificate that includes %s",
             names, host);
    break;
  default:
    snprintf(reason, rcap, "the server's certificate (%s) was not accepted: %s",
             leaf.subject, hf_tls_verify_text(tls));
    snprintf(diag, dcap, "fix the server's certificate, or trust its CA with --ca FILE");
  }
  return 1;
}
