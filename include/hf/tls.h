/* SPDX-License-Identifier: MIT */
/* TLS on non-blocking sockets with OpenSSL 3, in both roles: the server
 * role (certificate pairs chosen by SNI, TLS 1.2 minimum, ALPN http/1.1,
 * kernel TLS offload when available, start-up checks of every certificate)
 * and the client role (SNI, host-name verification against the system CAs
 * or a CA file, an explicit insecure mode, and the peer's certificate
 * chain). An hf_tls session never blocks: every call does what the socket
 * allows now and says what it waits for (readable or writable), so it
 * runs on an event loop. The engine (hf_conn) uses it under its read and
 * write paths; the client library uses the client role for wss://.
 *
 * Threading: hf_tls_server and hf_tls_client are immutable once made and
 * may be shared by threads (reference counted / freed by their owner). An
 * hf_tls session belongs to one thread at a time. OpenSSL writes to the
 * socket with write(2): the process must ignore SIGPIPE. */
#ifndef HF_TLS_H
#define HF_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hf_tls_server hf_tls_server;
typedef struct hf_tls_client hf_tls_client;
typedef struct hf_tls hf_tls;

/* ---- certificates ---------------------------------------------------------- */

/* What a certificate says about itself (the server's own, or a peer's). */
typedef struct {
  char subject[256];  /* one-line RFC 2253 form, e.g. "CN=example.com,O=Example" */
  char issuer[256];
  char sans[512];     /* subject alternative names, "DNS:a.example, IP:127.0.0.1";
                         cut at 511 bytes */
  char serial[80];    /* hex */
  int64_t not_before; /* Unix seconds */
  int64_t not_after;
  int self_signed;    /* issuer == subject and it verifies with its own key */
} hf_tls_cert_info;

/* One certificate chain and its private key, both PEM files. */
typedef struct {
  const char *cert_file; /* leaf first, then intermediates */
  const char *key_file;
} hf_tls_pair;

/* ---- server role -------------------------------------------------------- */

typedef struct {
  const hf_tls_pair *pairs; /* pairs[0] is the default certificate; the
                               others are chosen when the client's SNI name
                               matches one of their names (SAN, else CN) */
  size_t npairs;            /* >= 1 */
  int min_version;          /* 0 or 12: TLS 1.2; 13: TLS 1.3 only */
  int ktls;                 /* nonzero: ask OpenSSL for kernel TLS offload
                               (used where the kernel has the "tls" module;
                               otherwise TLS stays in user space) */
  int64_t now;              /* Unix time for the validity checks; 0 = now */
} hf_tls_server_config;

/* Load and check every pair: the files are readable PEM, the key is not
 * encrypted and matches the certificate, and the certificate is valid now
 * (not expired, not yet valid). On failure returns NULL and writes one
 * sentence naming the file and the problem into err[0..errcap), e.g.
 * "certificate /etc/x.pem expired on 2026-01-02 03:04:05 UTC". The result
 * has one reference. Thread-safe. */
hf_tls_server *hf_tls_server_new(const hf_tls_server_config *cfg, char *err,
                                 size_t errcap);
/* Take / drop a reference (any thread). Sessions made from a server hold
 * their own reference, so a server can be replaced (certificate reload)
 * while its sessions live on. */
hf_tls_server *hf_tls_server_ref(hf_tls_server *s);
void hf_tls_server_unref(hf_tls_server *s);
/* Number of certificate pairs, and what the leaf of pair i says. Returns 0,
 * or HF_EINVAL for a bad index. */
size_t hf_tls_server_npairs(const hf_tls_server *s);
int hf_tls_server_cert(const hf_tls_server *s, size_t i, hf_tls_cert_info *out);

/* Start the server side of a session on a connected non-blocking socket
 * (the caller keeps owning fd; hf_tls_free does not close it). NULL on
 * out-of-memory. Drive it with hf_tls_handshake. */
hf_tls *hf_tls_accept(hf_tls_server *s, int fd);

/* ---- client role -------------------------------------------------------- */

typedef struct {
  const char *ca_file; /* PEM bundle of trusted CAs; NULL: the system's
                          (OpenSSL's default paths, /etc/ssl/certs) */
  int insecure;        /* nonzero: no verification at all (testing only:
                          anyone in the path can read and change the
                          traffic); the verify result is still reported */
  int min_version;     /* 0 or 12: TLS 1.2; 13: TLS 1.3 only */
  int alpn_http11;     /* nonzero: offer ALPN "http/1.1" (what browsers
                          offer for WebSockets) */
} hf_tls_client_config;

/* A client configuration; NULL with the reason in err (e.g. an unreadable
 * CA file). Free it with hf_tls_client_free, at any time: sessions keep
 * what they need. */
hf_tls_client *hf_tls_client_new(const hf_tls_client_config *cfg, char *err,
                                 size_t errcap);
void hf_tls_client_free(hf_tls_client *c);

/* Start the client side of a session on a connected (or connecting)
 * non-blocking socket. server_name is the host from the URL: a DNS name is
 * sent as SNI and checked against the certificate's names; an IP literal
 * ("127.0.0.1", "::1", brackets allowed) is checked against its IP SANs
 * and not sent as SNI. NULL on out-of-memory or an empty name. */
hf_tls *hf_tls_connect(hf_tls_client *c, int fd, const char *server_name);

/* ---- sessions (both roles) ---------------------------------------------- */

/* What a call that could not finish waits for. */
enum { HF_TLS_WANT_READ = 1, HF_TLS_WANT_WRITE = 2 };

/* Advance the handshake. Returns 1 when it is complete, 0 when it waits
 * (hf_tls_want() says for what: call again when the socket is ready), or
 * HF_EPROTO when it failed (hf_tls_error() says why, in English, with
 * OpenSSL's reason: "the client does not trust this server's certificate
 * (tlsv1 alert unknown ca)"; a client also gets the verify result, e.g.
 * "certificate verify failed: hostname mismatch"). */
int hf_tls_handshake(hf_tls *t);

/* Read decrypted bytes into buf[0..cap). Reads records until cap is nearly
 * full or the socket has no more. Returns the byte count (> 0), 0 at the
 * end of the stream (close_notify or TCP EOF), HF_EAGAIN when nothing can
 * be read now (see hf_tls_want: a read may wait for the socket to be
 * writable), or HF_EIO on a failure (hf_tls_error says why). */
ssize_t hf_tls_read(hf_tls *t, void *buf, size_t cap);

/* Bytes already decrypted and buffered inside the session: a later
 * hf_tls_read returns them without the socket becoming readable. */
size_t hf_tls_pending(const hf_tls *t);

/* Encrypt and write iov[0..n). Returns the bytes of plaintext accepted
 * (possibly fewer than offered: the rest must be offered again later,
 * first byte first), HF_EAGAIN when nothing could be written now (wait for
 * writable, then offer the same bytes again: OpenSSL may already hold
 * them in a record and needs at least as many bytes, from the same
 * position, as before; moving them to another buffer is allowed), or
 * HF_EIO. Small segments are gathered into records of up to 16 KiB. */
ssize_t hf_tls_writev(hf_tls *t, const struct iovec *iov, int n);

/* HF_TLS_WANT_* of the last call that could not finish (0 if none). */
int hf_tls_want(const hf_tls *t);

/* Send close_notify if the session is established and healthy. Best
 * effort, never waits. */
void hf_tls_shutdown(hf_tls *t);

/* Free the session (not the socket). NULL is ignored. */
void hf_tls_free(hf_tls *t);

/* The last failure in English (never NULL; "" if none). */
const char *hf_tls_error(const hf_tls *t);
/* OpenSSL's short reason of the last failure ("tlsv1 alert unknown ca"),
 * or "" if none. */
const char *hf_tls_error_reason(const hf_tls *t);
/* Server: the SNI name the client sent (NULL if none). Client: the name
 * given to hf_tls_connect. */
const char *hf_tls_server_name(const hf_tls *t);
/* After the handshake: "TLSv1.3", the cipher suite name, the ALPN
 * protocol ("" if none). */
const char *hf_tls_version(const hf_tls *t);
const char *hf_tls_cipher(const hf_tls *t);
const char *hf_tls_alpn(const hf_tls *t);
/* Kernel TLS in use after the handshake: bit 0 send, bit 1 receive. */
int hf_tls_ktls(const hf_tls *t);

/* Peer certificates (client role: the server's chain as sent, leaf at
 * depth 0; server role: only a client certificate, which holdfast does not
 * ask for). */
size_t hf_tls_peer_chain_len(const hf_tls *t);
int hf_tls_peer_cert(const hf_tls *t, size_t depth, hf_tls_cert_info *out);
/* The X.509 verification result: 0 is OK (X509_V_OK); otherwise an
 * X509_V_ERR_* code whose text hf_tls_verify_text gives ("certificate has
 * expired", "self-signed certificate", "hostname mismatch", ...). In the
 * insecure client mode the result is computed and reported but not
 * enforced. */
long hf_tls_verify_result(const hf_tls *t);
const char *hf_tls_verify_text(const hf_tls *t);

/* ---- helpers ------------------------------------------------------------------ */

/* Read the first certificate of a PEM file into *out. 0, or HF_EIO /
 * HF_EPROTO with the reason in err. */
int hf_tls_cert_file_info(const char *path, hf_tls_cert_info *out, char *err,
                          size_t errcap);
/* "2026-01-02 03:04:05 UTC" for t (Unix seconds). */
void hf_tls_format_time(int64_t t, char out[32]);
/* 1 if buf[0..len) starts like a TLS record carrying a handshake (a
 * ClientHello sent to a plain port): 0x16 0x03 0x00..0x04. */
int hf_tls_looks_like_hello(const uint8_t *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
