/* SPDX-License-Identifier: MIT */
/* Unit tests for net/tls.c: the client role against the server role over a
 * non-blocking socketpair, both driven from this thread. Certificates are
 * made at test time with the openssl command in a temporary directory.
 * Covers the handshake (TLS 1.3 and 1.2, ALPN, SNI), verification (CA
 * file, system CAs, host name and IP checks, insecure mode), the peer
 * chain details, gathered and partial writes retried from moved buffers,
 * EOF after close_notify, start-up checks (expired, not yet valid,
 * mismatched key) and the helpers. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hf/err.h"
#include "hf/tls.h"
#include "test.h"

static char dir[256];
static char ca_pem[300], leaf_pem[300], leaf_key[300], other_key[300], self_pem[300],
    self_key[300];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...) {
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int r = system(cmd);
  if (r != 0)
    fprintf(stdout, "  command failed (%d): %s\n", r, cmd);
  return r;
}

/* A CA, a leaf for localhost/127.0.0.1 signed by it, an unrelated key and
 * a self-signed certificate. */
static int make_certs(void) {
  snprintf(dir, sizeof dir, "/tmp/hf-unit-tls-XXXXXX");
  if (!mkdtemp(dir))
    return -1;
  snprintf(ca_pem, sizeof ca_pem, "%s/ca.pem", dir);
  snprintf(leaf_pem, sizeof leaf_pem, "%s/leaf.pem", dir);
  snprintf(leaf_key, sizeof leaf_key, "%s/leaf.key", dir);
  snprintf(other_key, sizeof other_key, "%s/other.key", dir);
  snprintf(self_pem, sizeof self_pem, "%s/self.pem", dir);
  snprintf(self_key, sizeof self_key, "%s/self.key", dir);
  const char *q = "2>/dev/null >/dev/null";
  if (sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
         "-keyout %s/ca.key -out %s -days 30 -subj '/CN=hf unit CA' "
         "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign %s",
         dir, ca_pem, q) ||
      sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %s "
         "-out %s/leaf.csr -subj /CN=localhost %s", leaf_key, dir, q) ||
      sh("printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' "
         "> %s/ext", dir) ||
      sh("openssl x509 -req -in %s/leaf.csr -CA %s -CAkey %s/ca.key -CAcreateserial "
         "-days 10 -extfile %s/ext -out %s %s", dir, ca_pem, dir, dir, leaf_pem, q) ||
      sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s %s",
         other_key, q) ||
      sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
         "-keyout %s -out %s -days 5 -subj /CN=selfie -addext subjectAltName=DNS:selfie %s",
         self_key, self_pem, q))
    return -1;
  return 0;
}

static hf_tls_server *server(const char *cert, const char *key, int64_t now, char *err) {
  hf_tls_pair p = {cert, key};
  hf_tls_server_config sc = {&p, 1, 0, 1, now};
  return hf_tls_server_new(&sc, err, 300);
}

static int pair_fds[2];

static void new_pair(int small_buffers) {
  socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair_fds);
  if (small_buffers) {
    int sz = 4096;
    setsockopt(pair_fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(pair_fds[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  }
}

static void close_pair(void) {
  close(pair_fds[0]);
  close(pair_fds[1]);
}

/* Run both handshakes until both finish or one fails (then give the other
 * a few more turns to read the alert). *rc, *rs: last results. */
static void pump(hf_tls *c, hf_tls *s, int *rc, int *rs) {
  *rc = *rs = 0;
  for (int i = 0; i < 50; i++) {
    if (*rc == 0)
      *rc = hf_tls_handshake(c);
    if (*rs == 0)
      *rs = hf_tls_handshake(s);
    if ((*rc == 1 && *rs == 1) || (*rc < 0 && *rs != 0) || (*rs < 0 && *rc != 0))
      return;
  }
}

static hf_tls_client *client(const char *ca, int insecure) {
  hf_tls_client_config cc = {ca, insecure, 0, 1};
  char err[300] = "";
  hf_tls_client *c = hf_tls_client_new(&cc, err, sizeof err);
  if (!c)
    HF_T_FAILF("client: %s", err);
  return c;
}

static void handshake_and_peer_chain(void) {
  char err[300] = "";
  hf_tls_server *srv = server(leaf_pem, leaf_key, 0, err);
  CHECK(srv != NULL);
  hf_tls_client *cl = client(ca_pem, 0);
  if (!srv || !cl)
    return;
  new_pair(0);
  hf_tls *c = hf_tls_connect(cl, pair_fds[0], "localhost");
  hf_tls *s = hf_tls_accept(srv, pair_fds[1]);
  int rc, rs;
  pump(c, s, &rc, &rs);
  CHECK_INT(rc, 1);
  CHECK_INT(rs, 1);
  CHECK_STR(hf_tls_version(c), "TLSv1.3");
  CHECK_STR(hf_tls_alpn(s), "http/1.1");
  CHECK_STR(hf_tls_alpn(c), "http/1.1");
  CHECK_STR(hf_tls_server_name(s), "localhost"); /* SNI as received */
  CHECK_STR(hf_tls_server_name(c), "localhost");
  CHECK(strlen(hf_tls_cipher(c)) > 0);
  CHECK_INT(hf_tls_ktls(s), 0); /* a socketpair has no kernel TLS */
  CHECK_INT(hf_tls_verify_result(c), 0);
  CHECK_STR(hf_tls_verify_text(c), "ok");
  CHECK(hf_tls_peer_chain_len(c) >= 1);
  hf_tls_cert_info ci;
  CHECK_INT(hf_tls_peer_cert(c, 0, &ci), 0);
  CHECK_STR(ci.subject, "CN=localhost");
  CHECK_STR(ci.issuer, "CN=hf unit CA");
  CHECK_STR(ci.sans, "DNS:localhost, IP:127.0.0.1");
  CHECK(strlen(ci.serial) > 0);
  CHECK_INT(ci.self_signed, 0);
  int64_t now = (int64_t)time(NULL);
  CHECK(ci.not_before <= now && ci.not_after > now + 9 * 86400);
  CHECK_INT(hf_tls_peer_cert(c, 5, &ci), HF_EINVAL);
  CHECK_INT(hf_tls_peer_chain_len(s), 0); /* no client certificate asked */
  CHECK_INT(hf_tls_server_npairs(srv), 1);
  CHECK_INT(hf_tls_server_cert(srv, 0, &ci), 0);
  CHECK_STR(ci.subject, "CN=localhost");
  hf_tls_free(c);
  hf_tls_free(s);
  close_pair();
  /* the IP literal is checked against IP SANs */
  new_pair(0);
  c = hf_tls_connect(cl, pair_fds[0], "127.0.0.1");
  s = hf_tls_accept(srv, pair_fds[1]);
  pump(c, s, &rc, &rs);
  CHECK_INT(rc, 1);
  CHECK(hf_tls_server_name(s) == NULL); /* no SNI for an IP */
  hf_tls_free(c);
  hf_tls_free(s);
  close_pair();
  hf_tls_client_free(cl);
  hf_tls_server_unref(srv); /* sessions held their own references */
}

static void verification_failures(void) {
  char err[300] = "";
  hf_tls_server *srv = server(leaf_pem, leaf_key, 0, err);
  hf_tls_client *cl = client(ca_pem, 0);
  hf_tls_client *sys = client(NULL, 0); /* the system's CAs do not know ours */
  if (!srv || !cl || !sys)
    return;
  struct {
    hf_tls_client *c;
    const char *name, *want;
  } cases[] = {{cl, "other.test", "hostname mismatch"},
               {cl, "[::1]", "IP address mismatch"},
               {sys, "localhost", "unable to get local issuer certificate"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    new_pair(0);
    hf_tls *c = hf_tls_connect(cases[i].c, pair_fds[0], cases[i].name);
    hf_tls *s = hf_tls_accept(srv, pair_fds[1]);
    int rc, rs;
    pump(c, s, &rc, &rs);
    CHECK_INT(rc, HF_EPROTO);
    if (!strstr(hf_tls_error(c), "certificate verify failed") ||
        !strstr(hf_tls_error(c), cases[i].want))
      HF_T_FAILF("case %zu: client error \"%s\"", i, hf_tls_error(c));
    CHECK(hf_tls_verify_result(c) != 0);
    CHECK_INT(rs, HF_EPROTO); /* the client's alert */
    if (!strstr(hf_tls_error(s), "does not trust"))
      HF_T_FAILF("case %zu: server error \"%s\" (%s)", i, hf_tls_error(s),
                 hf_tls_error_reason(s));
    hf_tls_free(c);
    hf_tls_free(s);
    close_pair();
  }
  hf_tls_client_free(cl);
  hf_tls_client_free(sys);
  hf_tls_server_unref(srv);
}

static void insecure_mode_reports(void) {
  char err[300] = "";
  hf_tls_server *srv = server(self_pem, self_key, 0, err);
  hf_tls_client *cl = client(NULL, 1);
  if (!srv || !cl)
    return;
  new_pair(0);
  hf_tls *c = hf_tls_connect(cl, pair_fds[0], "wrong.name");
  hf_tls *s = hf_tls_accept(srv, pair_fds[1]);
  int rc, rs;
  pump(c, s, &rc, &rs);
  CHECK_INT(rc, 1); /* not enforced ... */
  CHECK(hf_tls_verify_result(c) != 0); /* ... but reported */
  CHECK(strstr(hf_tls_verify_text(c), "self-signed") != NULL);
  hf_tls_cert_info ci;
  CHECK_INT(hf_tls_peer_cert(c, 0, &ci), 0);
  CHECK_INT(ci.self_signed, 1);
  CHECK_STR(ci.sans, "DNS:selfie");
  hf_tls_free(c);
  hf_tls_free(s);
  close_pair();
  hf_tls_client_free(cl);
  hf_tls_server_unref(srv);
}

/* Write total bytes through small socket buffers: gathered segments,
 * partial writes, HF_EAGAIN retried from a moved copy of the same bytes;
 * the reader sees every byte in order, then EOF after close_notify. */
static void writes_partial_and_moved(void) {
  char err[300] = "";
  hf_tls_server *srv = server(leaf_pem, leaf_key, 0, err);
  hf_tls_client *cl = client(ca_pem, 0);
  if (!srv || !cl)
    return;
  new_pair(1);
  hf_tls *c = hf_tls_connect(cl, pair_fds[0], "localhost");
  hf_tls *s = hf_tls_accept(srv, pair_fds[1]);
  int rc, rs;
  pump(c, s, &rc, &rs);
  CHECK_INT(rc, 1);
  size_t total = 700000;
  uint8_t *data = malloc(total), *got = malloc(total);
  for (size_t i = 0; i < total; i++)
    data[i] = (uint8_t)(i * 7 + (i >> 9));
  size_t pos = 0, have = 0;
  int eagains = 0, moved = 0;
  for (int guard = 0; guard < 200000 && have < total; guard++) {
    if (pos < total) {
      struct iovec iov[64];
      int n = 0;
      uint8_t *copy = NULL;
      if (eagains & 1) { /* the caller's queue moved the same bytes */
        copy = malloc(total - pos);
        memcpy(copy, data + pos, total - pos);
        iov[n++] = (struct iovec){copy, total - pos};
        moved++;
      } else { /* small segments, then the rest in one */
        size_t p = pos;
        while (n < 63 && p < total) {
          size_t l = 1 + (p * 31) % 700;
          if (l > total - p)
            l = total - p;
          iov[n++] = (struct iovec){data + p, l};
          p += l;
        }
        if (p < total)
          iov[n++] = (struct iovec){data + p, total - p};
      }
      ssize_t w = hf_tls_writev(c, iov, n);
      free(copy);
      if (w == HF_EAGAIN) {
        CHECK_INT(hf_tls_want(c), HF_TLS_WANT_WRITE);
        eagains++;
      } else if (w < 0) {
        HF_T_FAILF("writev: %zd %s", w, hf_tls_error(c));
        break;
      } else {
        pos += (size_t)w;
      }
      if (pos == total)
        hf_tls_shutdown(c);
    }
    uint8_t buf[65536];
    ssize_t r = hf_tls_read(s, buf, sizeof buf);
    if (r > 0) {
      if (have + (size_t)r > total) {
        HF_T_FAILF("more bytes than sent");
        break;
      }
      memcpy(got + have, buf, (size_t)r);
      have += (size_t)r;
    } else if (r != HF_EAGAIN) {
      HF_T_FAILF("read: %zd %s", r, hf_tls_error(s));
      break;
    }
  }
  CHECK_INT(have, total);
  CHECK(memcmp(got, data, total) == 0);
  CHECK(eagains > 0);
  CHECK(moved > 0);
  uint8_t b[16];
  ssize_t r = HF_EAGAIN;
  for (int i = 0; i < 10 && r == HF_EAGAIN; i++)
    r = hf_tls_read(s, b, sizeof b);
  CHECK_INT(r, 0); /* close_notify: the end */
  CHECK_INT(hf_tls_pending(s), 0);
  free(data);
  free(got);
  hf_tls_free(c);
  hf_tls_free(s);
  close_pair();
  hf_tls_client_free(cl);
  hf_tls_server_unref(srv);
}

static void server_checks(void) {
  char err[300] = "";
  int64_t now = (int64_t)time(NULL);
  CHECK(server(leaf_pem, leaf_key, now + 20 * 86400, err) == NULL);
  CHECK(strstr(err, leaf_pem) && strstr(err, "expired on"));
  CHECK(server(leaf_pem, leaf_key, now - 5 * 86400, err) == NULL);
  CHECK(strstr(err, leaf_pem) && strstr(err, "not valid yet"));
  CHECK(server(leaf_pem, other_key, 0, err) == NULL);
  CHECK(strstr(err, other_key) && strstr(err, "does not match"));
  CHECK(server(leaf_pem, "/nonexistent/k.pem", 0, err) == NULL);
  CHECK(strstr(err, "/nonexistent/k.pem") && strstr(err, "No such file"));
  CHECK(server(leaf_key, leaf_key, 0, err) == NULL);
  CHECK(strstr(err, "no usable PEM certificate") != NULL);
  hf_tls_server_config none = {NULL, 0, 0, 0, 0};
  CHECK(hf_tls_server_new(&none, err, sizeof err) == NULL);
  hf_tls_client_config cc = {"/nonexistent/ca.pem", 0, 0, 0};
  CHECK(hf_tls_client_new(&cc, err, sizeof err) == NULL);
  CHECK(strstr(err, "cannot read CA file /nonexistent/ca.pem") != NULL);
  cc.ca_file = leaf_key; /* not a certificate */
  CHECK(hf_tls_client_new(&cc, err, sizeof err) == NULL);
  CHECK(strstr(err, "no usable PEM certificate") != NULL);
}

static void helpers(void) {
  hf_tls_cert_info ci;
  char err[300] = "";
  CHECK_INT(hf_tls_cert_file_info(self_pem, &ci, err, sizeof err), 0);
  CHECK_STR(ci.subject, "CN=selfie");
  CHECK_INT(ci.self_signed, 1);
  CHECK_INT(hf_tls_cert_file_info(self_key, &ci, err, sizeof err), HF_EPROTO);
  CHECK_INT(hf_tls_cert_file_info("/nonexistent", &ci, err, sizeof err), HF_EIO);
  char t[32];
  hf_tls_format_time(0, t);
  CHECK_STR(t, "1970-01-01 00:00:00 UTC");
  CHECK(hf_tls_looks_like_hello((const uint8_t *)"\x16\x03\x01\x02\x00", 5));
  CHECK(hf_tls_looks_like_hello((const uint8_t *)"\x16\x03", 2));
  CHECK(!hf_tls_looks_like_hello((const uint8_t *)"GET /", 5));
  CHECK(!hf_tls_looks_like_hello((const uint8_t *)"\x16\x03\x09", 3));
  CHECK(!hf_tls_looks_like_hello((const uint8_t *)"\x16", 1));
}

int main(void) {
  hf_t_suite = "tls";
  if (make_certs() < 0) {
    printf("FAIL tls/make_certs: the openssl command failed\n");
    return 1;
  }
  RUN_TEST(handshake_and_peer_chain);
  RUN_TEST(verification_failures);
  RUN_TEST(insecure_mode_reports);
  RUN_TEST(writes_partial_and_moved);
  RUN_TEST(server_checks);
  RUN_TEST(helpers);
  sh("rm -rf %s", dir);
  TEST_MAIN_END();
}
