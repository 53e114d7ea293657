/* SPDX-License-Identifier: MIT */
/* OpenSSL 3 glue for TLS on the event loop, server and client roles:
 * contexts (certificate pairs, SNI selection, ALPN, modern settings,
 * kernel TLS), start-up checks of certificates, non-blocking sessions
 * (handshake, read, gathered writes with OpenSSL's retry rules) and the
 * certificate details both roles report. No blocking call: every function
 * does what the socket allows now. */
#include "hf/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "hf/err.h"

/* TLS 1.2 suites: forward-secret AEADs only (Mozilla's "intermediate"
 * list); TLS 1.3 uses OpenSSL's defaults, which are all modern. */
#define CIPHERS_TLS12                                                          \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                 \
  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                 \
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* Writes gather small segments into records of this size (the TLS
 * maximum): fewer records, less overhead per byte. */
#define REC_MAX 16384

struct hf_tls_server {
  atomic_uint refs;
  size_t n;
  SSL_CTX **ctx; /* one per pair; ctx[0] is where sessions start */
};

struct hf_tls_client {
  SSL_CTX *ctx;
};

enum { ROLE_SERVER = 1, ROLE_CLIENT = 2 };

struct hf_tls {
  SSL *ssl;
  hf_tls_server *srv; /* server role: a reference (for the SNI callback) */
  char *name;         /* client role: the server name asked for */
  char *errtext;      /* the last failure, allocated when it happens */
  unsigned long errcode; /* OpenSSL's packed error of the last failure */
  uint8_t role, want, done, failed, eof, shut;
};

static _Thread_local uint8_t stage[REC_MAX]; /* gathering small segments */

/* ---- errors ---------------------------------------------------------------- */

static void put_err(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void put_err(char *err, size_t cap, const char *fmt, ...) {
  if (!err || !cap)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

/* OpenSSL's reason for the newest error in this thread's queue. */
static const char *ossl_reason(void) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  return r ? r : "no details";
}

/* An English sentence for a failed handshake or I/O, from OpenSSL's
 * reason code: what most likely happened, for the operator. */
static const char *hint_for(int role, unsigned long e) {
  if (ERR_GET_LIB(e) != ERR_LIB_SSL)
    return role == ROLE_SERVER ? "TLS handshake failed" : "TLS failed";
  switch (ERR_GET_REASON(e)) {
  case SSL_R_HTTP_REQUEST:
  case SSL_R_HTTPS_PROXY_REQUEST:
    return "plain HTTP was sent to this TLS port";
  case SSL_R_UNSUPPORTED_PROTOCOL:
  case SSL_R_VERSION_TOO_LOW:
  case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    return "the peer offered only a protocol version that is not accepted "
           "(TLS 1.2 is the minimum)";
  case SSL_R_WRONG_VERSION_NUMBER:
    return "the peer does not speak TLS (or an old version of it)";
  case SSL_R_NO_SHARED_CIPHER:
  case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
    return "no cipher suite or parameters in common with the peer";
  case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
  case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
  case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
  case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    return role == ROLE_SERVER
               ? "the client does not trust this server's certificate"
               : "the server refused our certificate";
  case SSL_R_CERTIFICATE_VERIFY_FAILED:
    return "certificate verify failed";
  case SSL_R_UNEXPECTED_EOF_WHILE_READING:
    return "the peer closed the connection during the handshake";
  case SSL_R_NO_APPLICATION_PROTOCOL:
  case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
    return "no application protocol (ALPN) in common";
  default:
    return role == ROLE_SERVER ? "TLS handshake failed" : "TLS failed";
  }
}

/* Record why the session failed (ssl_error: SSL_get_error's answer). */
static void fail_session(hf_tls *t, int ssl_error, int during_handshake) {
  t->failed = 1;
  unsigned long e = ERR_peek_last_error();
  t->errcode = e;
  char buf[512];
  if (ssl_error == SSL_ERROR_SYSCALL && !e) {
    int en = errno;
    snprintf(buf, sizeof buf, "%s",
             en && en != EAGAIN ? strerror(en)
             : during_handshake ? "the peer closed the connection during the handshake"
                                : "the peer closed the connection");
  } else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
             ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    snprintf(buf, sizeof buf, "certificate verify failed: %s",
             X509_verify_cert_error_string(SSL_get_verify_result(t->ssl)));
  } else {
    snprintf(buf, sizeof buf, "%s (OpenSSL: %s)", hint_for(t->role, e),
             ossl_reason());
  }
  free(t->errtext);
  t->errtext = strdup(buf);
  ERR_clear_error();
}

const char *hf_tls_error(const hf_tls *t) {
  return t && t->errtext ? t->errtext : "";
}

const char *hf_tls_error_reason(const hf_tls *t) {
  const char *r = t && t->errcode ? ERR_reason_error_string(t->errcode) : NULL;
  return r ? r : "";
}

/* ---- certificates ------------------------------------------------------------- */

void hf_tls_format_time(int64_t t, char out[32]) {
  time_t tt = (time_t)t;
  struct tm tm;
  if (!gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%d %H:%M:%S UTC", &tm))
    snprintf(out, 32, "@%lld", (long long)t);
}

static int64_t asn1_time(const ASN1_TIME *a) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  if (!a || !ASN1_TIME_to_tm(a, &tm))
    return 0;
  return (int64_t)timegm(&tm);
}

static void name_line(const X509_NAME *n, char *out, size_t cap) {
  out[0] = 0;
  BIO *b = BIO_new(BIO_s_mem());
  if (!b)
    return;
  if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) >= 0) {
    int len = BIO_read(b, out, (int)cap - 1);
    out[len > 0 ? len : 0] = 0;
  }
  BIO_free(b);
}

static void sans_line(X509 *x, char *out, size_t cap) {
  size_t used = 0;
  out[0] = 0;
  GENERAL_NAMES *g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  if (!g)
    return;
  for (int i = 0; i < sk_GENERAL_NAME_num(g) && used + 1 < cap; i++) {
    const GENERAL_NAME *gn = sk_GENERAL_NAME_value(g, i);
    char item[300] = "";
    if (gn->type == GEN_DNS || gn->type == GEN_URI || gn->type == GEN_EMAIL) {
      const ASN1_IA5STRING *s = gn->d.ia5;
      const char *kind = gn->type == GEN_DNS ? "DNS" : gn->type == GEN_URI ? "URI" : "email";
      snprintf(item, sizeof item, "%s:%.*s", kind,
               s->length > 256 ? 256 : s->length, (const char *)s->data);
    } else if (gn->type == GEN_IPADD) {
      char ip[INET6_ADDRSTRLEN] = "?";
      if (gn->d.ip->length == 4)
        inet_ntop(AF_INET, gn->d.ip->data, ip, sizeof ip);
      else if (gn->d.ip->length == 16)
        inet_ntop(AF_INET6, gn->d.ip->data, ip, sizeof ip);
      snprintf(item, sizeof item, "IP:%s", ip);
    } else {
      continue;
    }
    int n = snprintf(out + used, cap - used, "%s%s", used ? ", " : "", item);
    if (n < 0 || (size_t)n >= cap - used) {
      out[used] = 0;
      break;
    }
    used += (size_t)n;
  }
  GENERAL_NAMES_free(g);
}

static void cert_info(X509 *x, hf_tls_cert_info *out) {
  memset(out, 0, sizeof *out);
  name_line(X509_get_subject_name(x), out->subject, sizeof out->subject);
  name_line(X509_get_issuer_name(x), out->issuer, sizeof out->issuer);
  sans_line(x, out->sans, sizeof out->sans);
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
  char *hex = bn ? BN_bn2hex(bn) : NULL;
  if (hex)
    snprintf(out->serial, sizeof out->serial, "%s", hex);
  OPENSSL_free(hex);
  BN_free(bn);
  out->not_before = asn1_time(X509_get0_notBefore(x));
  out->not_after = asn1_time(X509_get0_notAfter(x));
  out->self_signed = X509_self_signed(x, 1) == 1;
  ERR_clear_error();
}

int hf_tls_cert_file_info(const char *path, hf_tls_cert_info *out, char *err,
                          size_t errcap) {
  FILE *f = fopen(path, "r");
  if (!f) {
    put_err(err, errcap, "cannot read certificate file %s: %s", path, strerror(errno));
    return HF_EIO;
  }
  X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  if (!x) {
    put_err(err, errcap, "certificate file %s holds no PEM certificate (OpenSSL: %s)",
            path, ossl_reason());
    ERR_clear_error();
    return HF_EPROTO;
  }
  cert_info(x, out);
  X509_free(x);
  return 0;
}

int hf_tls_looks_like_hello(const uint8_t *buf, size_t len) {
  return len >= 2 && buf[0] == 0x16 && buf[1] == 0x03 &&
         (len < 3 || buf[2] <= 0x04);
}

/* ---- contexts ---------------------------------------------------------------- */

/* Never prompt for a passphrase on a terminal: an encrypted key fails. */
static int no_password(char *buf, int size, int rwflag, void *u) {
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)u;
  return -1;
}

static void common_settings(SSL_CTX *ctx, int min_version) {
  SSL_CTX_set_min_proto_version(ctx, min_version == 13 ? TLS1_3_VERSION
                                                       : TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(ctx, CIPHERS_TLS12);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  /* release record buffers whenever they are empty (idle connections
   * hold none); partial writes and moving buffers: see hf_tls_writev */
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
                            SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  /* one read(2) takes every record that arrived, not two per record */
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_default_passwd_cb(ctx, no_password);
}

/* ALPN: pick http/1.1 when offered; otherwise carry on without ALPN
 * (clients that offer only h2 get HTTP/1.1 answers they can read). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  for (unsigned i = 0; i < inlen;) {
    unsigned l = in[i];
    if (i + 1 + l > inlen)
      break;
    if (l == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
      *out = in + i + 1;
      *outlen = (unsigned char)l;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + l;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

/* SNI: switch to the first pair whose certificate names the host. The
 * default pair is kept when it matches too, or when nothing does. */
static int sni_select(SSL *ssl, int *al, void *arg) {
  (void)al;
  hf_tls_server *s = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name || s->n < 2)
    return SSL_TLSEXT_ERR_OK;
  for (size_t i = 0; i < s->n; i++) {
    X509 *x = SSL_CTX_get0_certificate(s->ctx[i]);
    if (x && X509_check_host(x, name, 0, 0, NULL) == 1) {
      if (i)
        SSL_set_SSL_CTX(ssl, s->ctx[i]);
      break;
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *server_ctx(const hf_tls_server_config *cfg, const hf_tls_pair *p,
                           int64_t now, char *err, size_t errcap) {
  FILE *f = fopen(p->cert_file, "r");
  if (!f) {
    put_err(err, errcap, "cannot read certificate file %s: %s", p->cert_file,
            strerror(errno));
    return NULL;
  }
  fclose(f);
  if (!(f = fopen(p->key_file, "r"))) {
    put_err(err, errcap, "cannot read private key file %s: %s", p->key_file,
            strerror(errno));
    return NULL;
  }
  fclose(f);
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    put_err(err, errcap, "cannot create a TLS context: %s", ossl_reason());
    return NULL;
  }
  common_settings(ctx, cfg->min_version);
  if (cfg->ktls)
    SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
  /* resumption through stateless tickets only: no per-session memory */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 1);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
  if (SSL_CTX_use_certificate_chain_file(ctx, p->cert_file) != 1) {
    put_err(err, errcap, "certificate file %s holds no usable PEM certificate (OpenSSL: %s)",
            p->cert_file, ossl_reason());
    goto fail;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, p->key_file, SSL_FILETYPE_PEM) != 1) {
    unsigned long e = ERR_peek_last_error();
    int mismatch = ERR_GET_LIB(e) == ERR_LIB_X509 &&
                   ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH;
    if (mismatch)
      put_err(err, errcap, "private key %s does not match certificate %s",
              p->key_file, p->cert_file);
    else
      put_err(err, errcap, "private key file %s holds no usable PEM private key "
                           "(an encrypted key is not supported) (OpenSSL: %s)",
              p->key_file, ossl_reason());
    goto fail;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    put_err(err, errcap, "private key %s does not match certificate %s",
            p->key_file, p->cert_file);
    goto fail;
  }
  X509 *x = SSL_CTX_get0_certificate(ctx);
  int64_t nb = asn1_time(X509_get0_notBefore(x)), na = asn1_time(X509_get0_notAfter(x));
  char t1[32], t2[32];
  hf_tls_format_time(nb, t1);
  hf_tls_format_time(na, t2);
  if (na <= now) {
    put_err(err, errcap, "certificate %s expired on %s (valid from %s)", p->cert_file,
            t2, t1);
    goto fail;
  }
  if (nb > now) {
    put_err(err, errcap, "certificate %s is not valid yet: valid from %s to %s",
            p->cert_file, t1, t2);
    goto fail;
  }
  ERR_clear_error();
  return ctx;
fail:
  ERR_clear_error();
  SSL_CTX_free(ctx);
  return NULL;
}

hf_tls_server *hf_tls_server_new(const hf_tls_server_config *cfg, char *err,
                                 size_t errcap) {
  if (!cfg || !cfg->npairs || !cfg->pairs) {
    put_err(err, errcap, "no certificate configured");
    return NULL;
  }
  hf_tls_server *s = calloc(1, sizeof *s);
  if (s)
    s->ctx = calloc(cfg->npairs, sizeof *s->ctx);
  if (!s || !s->ctx) {
    free(s);
    put_err(err, errcap, "out of memory");
    return NULL;
  }
  atomic_init(&s->refs, 1);
  int64_t now = cfg->now ? cfg->now : (int64_t)time(NULL);
  for (size_t i = 0; i < cfg->npairs; i++) {
    const hf_tls_pair *p = &cfg->pairs[i];
    if (!p->cert_file || !*p->cert_file || !p->key_file || !*p->key_file) {
      put_err(err, errcap, "certificate pair %zu: both a certificate and a key file "
                           "are needed", i);
      hf_tls_server_unref(s);
      return NULL;
    }
    s->ctx[i] = server_ctx(cfg, p, now, err, errcap);
    if (!s->ctx[i]) {
      hf_tls_server_unref(s);
      return NULL;
    }
    s->n = i + 1;
  }
  SSL_CTX_set_tlsext_servername_callback(s->ctx[0], sni_select);
  SSL_CTX_set_tlsext_servername_arg(s->ctx[0], s);
  return s;
}

hf_tls_server *hf_tls_server_ref(hf_tls_server *s) {
  atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
  return s;
}

void hf_tls_server_unref(hf_tls_server *s) {
  if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (size_t i = 0; i < s->n; i++)
    SSL_CTX_free(s->ctx[i]);
  free(s->ctx);
  free(s);
}

size_t hf_tls_server_npairs(const hf_tls_server *s) { return s->n; }

int hf_tls_server_cert(const hf_tls_server *s, size_t i, hf_tls_cert_info *out) {
  if (i >= s->n)
    return HF_EINVAL;
  X509 *x = SSL_CTX_get0_certificate(s->ctx[i]);
  if (!x)
    return HF_EINVAL;
  cert_info(x, out);
  return 0;
}

hf_tls_client *hf_tls_client_new(const hf_tls_client_config *cfg, char *err,
                                 size_t errcap) {
  hf_tls_client *c = calloc(1, sizeof *c);
  if (!c || !(c->ctx = SSL_CTX_new(TLS_client_method()))) {
    put_err(err, errcap, "cannot create a TLS context: %s", ossl_reason());
    free(c);
    ERR_clear_error();
    return NULL;
  }
  common_settings(c->ctx, cfg ? cfg->min_version : 0);
  SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_OFF);
  int ok;
  if (cfg && cfg->ca_file && *cfg->ca_file) {
    FILE *f = fopen(cfg->ca_file, "r");
    if (!f) {
      put_err(err, errcap, "cannot read CA file %s: %s", cfg->ca_file, strerror(errno));
      hf_tls_client_free(c);
      return NULL;
    }
    fclose(f);
    ok = SSL_CTX_load_verify_locations(c->ctx, cfg->ca_file, NULL) == 1;
    if (!ok)
      put_err(err, errcap, "CA file %s holds no usable PEM certificate (OpenSSL: %s)",
              cfg->ca_file, ossl_reason());
  } else {
    ok = SSL_CTX_set_default_verify_paths(c->ctx) == 1;
    if (!ok)
      put_err(err, errcap, "cannot load the system's CA certificates (OpenSSL: %s)",
              ossl_reason());
  }
  if (ok && cfg && cfg->alpn_http11 &&
      SSL_CTX_set_alpn_protos(c->ctx, (const unsigned char *)"\x08http/1.1", 9) != 0) {
    put_err(err, errcap, "cannot set ALPN (OpenSSL: %s)", ossl_reason());
    ok = 0;
  }
  ERR_clear_error();
  if (!ok) {
    hf_tls_client_free(c);
    return NULL;
  }
  SSL_CTX_set_verify(c->ctx, cfg && cfg->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                     NULL);
  return c;
}

void hf_tls_client_free(hf_tls_client *c) {
  if (!c)
    return;
  SSL_CTX_free(c->ctx);
  free(c);
}

/* ---- sessions ----------------------------------------------------------------- */

hf_tls *hf_tls_accept(hf_tls_server *s, int fd) {
  hf_tls *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  t->role = ROLE_SERVER;
  t->ssl = SSL_new(s->ctx[0]);
  if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1) {
    SSL_free(t->ssl);
    free(t);
    ERR_clear_error();
    return NULL;
  }
  SSL_set_accept_state(t->ssl);
  t->srv = hf_tls_server_ref(s);
  return t;
}

hf_tls *hf_tls_connect(hf_tls_client *c, int fd, const char *server_name) {
  if (!server_name || !*server_name)
    return NULL;
  hf_tls *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  t->role = ROLE_CLIENT;
  size_t n = strlen(server_name);
  if (server_name[0] == '[' && n > 2 && server_name[n - 1] == ']')
    t->name = strndup(server_name + 1, n - 2);
  else
    t->name = strdup(server_name);
  t->ssl = t->name ? SSL_new(c->ctx) : NULL;
  if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1) {
    hf_tls_free(t);
    ERR_clear_error();
    return NULL;
  }
  SSL_set_connect_state(t->ssl);
  uint8_t ip[16];
  int ok;
  if (inet_pton(AF_INET, t->name, ip) == 1 || inet_pton(AF_INET6, t->name, ip) == 1)
    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), t->name) == 1;
  else
    ok = SSL_set_tlsext_host_name(t->ssl, t->name) == 1 &&
         SSL_set1_host(t->ssl, t->name) == 1;
  if (!ok) {
    hf_tls_free(t);
    ERR_clear_error();
    return NULL;
  }
  return t;
}

int hf_tls_handshake(hf_tls *t) {
  if (t->done)
    return 1;
  if (t->failed)
    return HF_EPROTO;
  ERR_clear_error();
  errno = 0;
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) {
    t->done = 1;
    t->want = 0;
    return 1;
  }
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    t->want = e == SSL_ERROR_WANT_READ ? HF_TLS_WANT_READ : HF_TLS_WANT_WRITE;
    return 0;
  }
  t->want = 0;
  fail_session(t, e, 1);
  return HF_EPROTO;
}

ssize_t hf_tls_read(hf_tls *t, void *buf, size_t cap) {
  size_t got = 0;
  t->want = 0;
  if (t->eof)
    return 0;
  if (t->failed)
    return HF_EIO;
  while (got < cap) {
    size_t room = cap - got;
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(t->ssl, (uint8_t *)buf + got, room > INT_MAX ? INT_MAX : (int)room);
    if (r > 0) {
      got += (size_t)r;
      /* what read-ahead already holds is decrypted now; the socket is
       * not asked again (epoll says when it has more) */
      if (!SSL_has_pending(t->ssl))
        break;
      continue;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
      t->want = HF_TLS_WANT_READ;
    } else if (e == SSL_ERROR_WANT_WRITE) {
      t->want = HF_TLS_WANT_WRITE;
    } else if (e == SSL_ERROR_ZERO_RETURN) {
      t->eof = 1; /* close_notify */
    } else if (e == SSL_ERROR_SYSCALL && !ERR_peek_error()) {
      t->eof = 1; /* TCP ended without close_notify (or reset) */
      t->failed = 1;
    } else {
      fail_session(t, e, 0);
    }
    break;
  }
  if (got)
    return (ssize_t)got;
  if (t->eof)
    return 0;
  if (t->failed)
    return HF_EIO;
  return HF_EAGAIN;
}

size_t hf_tls_pending(const hf_tls *t) {
  if (!t || t->failed || t->eof)
    return 0;
  int n = SSL_pending(t->ssl);
  if (n > 0)
    return (size_t)n;
  return SSL_has_pending(t->ssl) ? 1 : 0;
}

ssize_t hf_tls_writev(hf_tls *t, const struct iovec *iov, int n) {
  size_t done = 0, off = 0;
  int i = 0;
  t->want = 0;
  if (t->failed)
    return HF_EIO;
  while (i < n) {
    size_t rem = iov[i].iov_len - off;
    if (!rem) {
      i++;
      off = 0;
      continue;
    }
    const uint8_t *p = (const uint8_t *)iov[i].iov_base + off;
    size_t len = rem;
    if (rem < REC_MAX && i + 1 < n) {
      /* gather this and the following segments into one record; on a
       * retry the same bytes come back from the same position (the
       * caller's queue), so OpenSSL sees at least as many as before */
      size_t g = 0, k = (size_t)i, ko = off;
      while (k < (size_t)n && g < REC_MAX) {
        size_t take = iov[k].iov_len - ko;
        if (take > REC_MAX - g)
          take = REC_MAX - g;
        memcpy(stage + g, (const uint8_t *)iov[k].iov_base + ko, take);
        g += take;
        ko += take;
        if (ko == iov[k].iov_len) {
          k++;
          ko = 0;
        }
      }
      p = stage;
      len = g;
    }
    ERR_clear_error();
    errno = 0;
    int r = SSL_write(t->ssl, p, len > INT_MAX / 2 ? INT_MAX / 2 : (int)len);
    if (r > 0) {
      done += (size_t)r;
      size_t adv = (size_t)r; /* advance over what was taken */
      while (adv) {
        size_t left = iov[i].iov_len - off;
        if (adv < left) {
          off += adv;
          adv = 0;
        } else {
          adv -= left;
          i++;
          off = 0;
        }
      }
      continue;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
      t->want = e == SSL_ERROR_WANT_WRITE ? HF_TLS_WANT_WRITE : HF_TLS_WANT_READ;
      break;
    }
    if (e == SSL_ERROR_SYSCALL && !ERR_peek_error()) {
      int en = errno;
      t->failed = 1;
      free(t->errtext);
      t->errtext = strdup(en ? strerror(en) : "the peer closed the connection");
    } else {
      fail_session(t, e, 0);
    }
    return done ? (ssize_t)done : HF_EIO;
  }
  if (done)
    return (ssize_t)done;
  return t->want ? HF_EAGAIN : 0;
}

int hf_tls_want(const hf_tls *t) { return t ? t->want : 0; }

void hf_tls_shutdown(hf_tls *t) {
  if (!t || !t->done || t->failed || t->shut)
    return;
  t->shut = 1;
  ERR_clear_error();
  (void)SSL_shutdown(t->ssl); /* sends close_notify; does not wait */
  ERR_clear_error();
}

void hf_tls_free(hf_tls *t) {
  if (!t)
    return;
  SSL_free(t->ssl);
  if (t->srv)
    hf_tls_server_unref(t->srv);
  free(t->name);
  free(t->errtext);
  free(t);
}

const char *hf_tls_server_name(const hf_tls *t) {
  if (!t)
    return NULL;
  if (t->role == ROLE_CLIENT)
    return t->name;
  return SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
}

const char *hf_tls_version(const hf_tls *t) { return SSL_get_version(t->ssl); }

const char *hf_tls_cipher(const hf_tls *t) {
  const char *c = SSL_get_cipher_name(t->ssl);
  return c ? c : "";
}

const char *hf_tls_alpn(const hf_tls *t) {
  const unsigned char *p = NULL;
  unsigned int n = 0;
  SSL_get0_alpn_selected(t->ssl, &p, &n);
  if (!p || n != 8 || memcmp(p, "http/1.1", 8) != 0)
    return n ? "other" : "";
  return "http/1.1";
}

int hf_tls_ktls(const hf_tls *t) {
  int k = 0;
#ifndef OPENSSL_NO_KTLS
  if (t && t->done) {
    if (BIO_get_ktls_send(SSL_get_wbio(t->ssl)))
      k |= 1;
    if (BIO_get_ktls_recv(SSL_get_rbio(t->ssl)))
      k |= 2;
  }
#else
  (void)t;
#endif
  return k;
}

size_t hf_tls_peer_chain_len(const hf_tls *t) {
  STACK_OF(X509) *ch = SSL_get_peer_cert_chain(t->ssl);
  size_t n = ch ? (size_t)sk_X509_num(ch) : 0;
  if (t->role == ROLE_SERVER && SSL_get0_peer_certificate(t->ssl))
    n++; /* the server side's chain does not include the leaf */
  return n;
}

int hf_tls_peer_cert(const hf_tls *t, size_t depth, hf_tls_cert_info *out) {
  STACK_OF(X509) *ch = SSL_get_peer_cert_chain(t->ssl);
  X509 *x = NULL;
  if (t->role == ROLE_SERVER) {
    if (depth == 0)
      x = SSL_get0_peer_certificate(t->ssl);
    else if (ch && depth - 1 < (size_t)sk_X509_num(ch))
      x = sk_X509_value(ch, (int)(depth - 1));
  } else if (ch && depth < (size_t)sk_X509_num(ch)) {
    x = sk_X509_value(ch, (int)depth);
  }
  if (!x)
    return HF_EINVAL;
  cert_info(x, out);
  return 0;
}

long hf_tls_verify_result(const hf_tls *t) { return SSL_get_verify_result(t->ssl); }

const char *hf_tls_verify_text(const hf_tls *t) {
  return X509_verify_cert_error_string(SSL_get_verify_result(t->ssl));
}
