/* SPDX-License-Identifier: MIT */
/* The holdfast WebSocket client: connects to ws:// (and wss://) URLs through
 * a non-blocking resolver, TCP, TLS and the HTTP upgrade, each with its own
 * timeout; keeps the connection alive with a heartbeat that notices a dead
 * server or a half-open connection; and reconnects through an explicit
 * state machine (hf/reconnect.h) that reports every transition with its
 * reason. It never blocks and needs no thread: an application drives it
 * from its own loop through one file descriptor and a timeout
 * (poll/epoll/libuv), or attaches it to an hf_loop. Every failure of an
 * attempt is kept in a report (hf_client_report) with the status line,
 * headers and body of a refused upgrade and a diagnosis with the fix.
 *
 * Threading: a client belongs to one thread; nothing is shared between
 * clients except c-ares' one-time global initialisation (done under a
 * pthread_once). Callbacks run inside hf_client_process (or the hf_loop
 * callbacks that call it); they may call any function here except
 * hf_client_free. */
#ifndef HF_CLIENT_H
#define HF_CLIENT_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hf/http.h"
#include "hf/loop.h"
#include "hf/reconnect.h"
#include "hf/tls.h"
#include "hf/upgrade.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hf_client hf_client;

/* The layer where an attempt failed (or got to). */
typedef enum {
  HF_LAYER_NONE = 0,
  HF_LAYER_DNS,
  HF_LAYER_TCP,
  HF_LAYER_TLS,
  HF_LAYER_HTTP, /* the upgrade request and response */
  HF_LAYER_WS    /* after the upgrade: frames, close codes, heartbeat */
} hf_client_layer;

/* Who ended a connection. */
enum {
  HF_BY_NONE = 0,
  HF_BY_SERVER,  /* the server's close frame, or its HTTP answer */
  HF_BY_CLIENT,  /* this client (application close, protocol error,
                    heartbeat timeout) */
  HF_BY_NETWORK  /* TCP ended or failed without a close frame */
};

/* One transition, as the application sees it. Strings are valid during the
 * callback only. */
typedef struct {
  hf_client_state from, to;
  hf_cause cause;          /* why (HF_CAUSE_NONE for progress: connecting,
                              open) */
  hf_client_layer layer;   /* where a failure happened */
  const char *reason;      /* one line, never NULL, e.g. "connection refused
                              by 127.0.0.1:9 (nothing is listening)" */
  const char *diagnosis;   /* likely cause and fix; "" if none */
  int close_code;          /* close code received (or sent, when the client
                              ended it); 1006 when none; 0 if not opened */
  const char *close_reason; /* the close frame's reason, "" if none */
  int closed_by;           /* HF_BY_* */
  int http_status;         /* the upgrade response's status, 0 if none */
  int64_t retry_after_ms;  /* the server's Retry-After, -1 if none */
  uint64_t delay_ms;       /* to == WAITING: time until the next attempt */
  uint32_t attempt;        /* to == WAITING: number of the coming attempt;
                              to == CONNECTING: number of this attempt
                              (0 = the first connection) */
  const char *decision;    /* to == WAITING/STOPPED: why that state, e.g.
                              "backoff", "the server's Retry-After",
                              "the close code says not to reconnect" */
} hf_client_event;

/* What the credentials callback returns. */
enum {
  HF_CRED_READY = 0,   /* credentials updated (hf_client_set_header/_url):
                          reconnect when the backoff delay has passed */
  HF_CRED_PENDING = 1, /* being fetched: the client waits for
                          hf_client_credentials_ready() as well */
  HF_CRED_STOP = -1    /* no credentials: stop */
};

typedef struct {
  const char *url;            /* ws://host[:port]/path or wss://... */
  const char *origin;         /* Origin header; NULL: none (not a browser) */
  const char *const *headers; /* extra "Name: value" lines */
  size_t n_headers;
  const char *const *subprotocols; /* offered, in preference order */
  size_t n_subprotocols;
  const char *user_agent;     /* default "holdfast-client"; "" for none */
  const char *dns_servers;    /* "ip[:port],..." instead of /etc/resolv.conf */
  const char *ca_file;        /* wss: trusted CAs (PEM); NULL: the system's */
  int insecure;               /* wss: do not verify the certificate
                                 (testing only) */
  int deflate;                /* offer permessage-deflate (RFC 7692, with
                                 client_no_context_takeover); used when
                                 the server accepts it */
  uint32_t dns_timeout_ms;    /* default 5000 */
  uint32_t tcp_timeout_ms;    /* per address; default 5000 */
  uint32_t tls_timeout_ms;    /* default 5000 */
  uint32_t handshake_timeout_ms; /* request sent to 101 read; default 5000 */
  uint32_t close_timeout_ms;  /* closing handshake; default 3000 */
  uint32_t ping_interval_ms;  /* ping after this much silence; 0: no
                                 heartbeat (default 0) */
  uint32_t pong_timeout_ms;   /* then drop the connection if nothing arrives
                                 within this (default 10000 when pinging) */
  uint64_t max_message;       /* largest incoming message; default 16 MiB */
  size_t queue_max;           /* bytes of outgoing frames held while
                                 disconnected or unsent; default 1 MiB */
  hf_reconnect_config reconnect; /* hf_reconnect_config_init's defaults */

  /* Every state transition. */
  void (*on_state)(hf_client *c, const hf_client_event *ev, void *user);
  /* A whole message (fragments joined). data is valid during the call. */
  void (*on_message)(hf_client *c, int opcode, const uint8_t *data,
                     size_t len, void *user);
  /* The pong answering hf_client_ping or a heartbeat ping. */
  void (*on_pong)(hf_client *c, uint64_t rtt_us, void *user);
  /* Credentials were refused (HTTP 401, close code 3005) and the table says
   * "refresh": update them and return HF_CRED_*. When NULL, 401 stops. */
  int (*on_credentials)(hf_client *c, const hf_client_event *why, void *user);
  void *user;
} hf_client_config;

/* Fill cfg with the defaults above (url and callbacks NULL). */
void hf_client_config_init(hf_client_config *cfg);

#define HF_CLIENT_MAX_ADDRS 8

/* What the last (or current) attempt found, layer by layer; times in
 * microseconds, -1 when the layer was not reached. Valid until the next
 * attempt starts. */
typedef struct {
  uint32_t attempt;            /* 0 = the first connection */
  hf_client_layer reached;     /* the last layer that completed */
  hf_client_layer failed;      /* the layer that failed, or HF_LAYER_NONE */
  char error[256];             /* what failed, one line; "" if nothing */
  /* DNS */
  char host[256];
  int port;
  int literal;                 /* the host was an address: no lookup */
  int64_t dns_us;
  struct sockaddr_storage addrs[HF_CLIENT_MAX_ADDRS];
  size_t naddrs;
  /* TCP: the addresses tried, in order, and their errors (0 = connected) */
  int64_t tcp_us;              /* connect time of the address that worked */
  size_t ntried;
  int tcp_errno[HF_CLIENT_MAX_ADDRS];
  int connected;               /* index into addrs, -1 if none */
  /* TLS (wss://) */
  int tls;                     /* 1 when the URL is wss:// */
  int64_t tls_us;
  char tls_version[16];        /* "TLSv1.3"; "" before the handshake */
  char tls_cipher[64];
  char tls_alpn[32];
  long tls_verify;             /* X509_V_OK (0) or an X509_V_ERR_* code */
  char tls_verify_text[128];   /* "ok", "certificate has expired", ... */
  int tls_insecure;            /* verification was switched off */
  hf_tls_cert_info tls_chain[4]; /* the server's certificates, leaf first */
  size_t tls_chain_len;
  /* HTTP upgrade */
  int64_t http_us;             /* request written to response head read */
  const char *request;         /* the request head as sent */
  size_t request_len;
  const hf_http_response *response; /* NULL if no complete head arrived */
  const uint8_t *body;         /* first bytes of a refusal's body */
  size_t body_len;
  int body_truncated;          /* the body was longer */
  hf_upgrade_result check;     /* valid when response != NULL */
  int deflate;                 /* permessage-deflate was negotiated */
} hf_client_report;

/* Make a client from cfg (everything is copied). Returns NULL with a reason
 * in err[0..errcap) for an invalid URL, header or sub-protocol, an
 * unreadable CA file (wss://), or when out of memory. The client is STOPPED: call hf_client_start. */
hf_client *hf_client_new(const hf_client_config *cfg, char *err, size_t errcap);

/* Free the client: closes the connection at once (no close handshake; use
 * hf_client_close first for a graceful end). Not from a callback. */
void hf_client_free(hf_client *c);

/* STOPPED -> CONNECTING (the attempt count starts at 0). Returns 0, or
 * HF_EINVAL if the client is not stopped. */
int hf_client_start(hf_client *c);

/* Queue a whole message (HF_OP_TEXT or HF_OP_BINARY) and write what the
 * socket takes now. With permessage-deflate negotiated, a message sent
 * while open is compressed (each on its own: no context between
 * messages); one queued while disconnected leaves uncompressed. Accepted while connecting, open or waiting: queued
 * messages leave in order once a connection opens (compressed ones that
 * were not written when a connection ended are dropped). Returns 0, HF_EUTF8
 * (text that is not UTF-8), HF_ELIMIT (the queue would exceed queue_max:
 * nothing was queued), HF_ECLOSED (stopped, or closing by the application)
 * or HF_EINVAL (bad opcode). The data is copied. Delivery is at most once:
 * a message written to a connection that then fails may be lost. */
int hf_client_send(hf_client *c, int opcode, const void *data, size_t len);

/* Send a ping carrying the time; on_pong gets the round trip. Returns 0 or
 * HF_ECLOSED when not open. */
int hf_client_ping(hf_client *c);

/* Close gracefully: when open, the queued messages are written, then a
 * close frame with code (1000, or 3000-4999) and reason (<= 123 bytes), and
 * the client waits for the server's close (close_timeout_ms); then STOPPED,
 * without reconnecting. When not open: STOPPED at once and the queue is
 * dropped. Returns 0, or HF_EINVAL for a code a client may not send. */
int hf_client_close(hf_client *c, int code, const char *reason);

/* Stop at once: drop any connection (no close frame), cancel a pending
 * attempt, drop the queue. STOPPED. */
void hf_client_stop(hf_client *c);

/* Credentials: add, replace (same name, case-insensitive) or with value
 * NULL remove an extra header; or replace the URL (same scheme rules).
 * They apply from the next attempt. Returns 0 or HF_EINVAL / HF_ENOMEM. */
int hf_client_set_header(hf_client *c, const char *name, const char *value);
int hf_client_set_url(hf_client *c, const char *url);
/* After HF_CRED_PENDING: the credentials are ready (or not: ok = 0 stops). */
void hf_client_credentials_ready(hf_client *c, int ok);

/* ---- driving it from an application's loop ------------------------------- */

/* The one file descriptor to watch for readability (poll POLLIN, epoll
 * EPOLLIN, libuv UV_READABLE). It never changes during the client's life. */
int hf_client_fd(const hf_client *c);

/* Milliseconds until hf_client_process must run even if the descriptor
 * stays quiet; 0: now; -1: no deadline. Ask again after every call into
 * the library, before sleeping. */
int hf_client_timeout_ms(const hf_client *c);

/* Do what is due: I/O on ready sockets, timers, callbacks. Never blocks.
 * Returns the state afterwards. */
hf_client_state hf_client_process(hf_client *c);

/* ---- or on holdfast's own loop ------------------------------------------- */

/* Register the client with loop (its descriptor and a timer); from then on
 * the loop drives it. Returns 0 or -errno. hf_client_free detaches. */
int hf_client_attach(hf_client *c, hf_loop *loop);

/* ---- state and reports ---------------------------------------------------- */

hf_client_state hf_client_get_state(const hf_client *c);
const hf_client_report *hf_client_get_report(const hf_client *c);
/* After OPEN: the sub-protocol the server selected ("" if none). */
const char *hf_client_subprotocol(const hf_client *c);
/* Bytes of frames waiting to be written. */
size_t hf_client_queued(const hf_client *c);
/* "host:port" or "[v6]:port" of an address from the report. */
void hf_client_addr_text(const struct sockaddr_storage *a, char *out,
                         size_t cap);
const char *hf_client_layer_name(hf_client_layer l);

#ifdef __cplusplus
}
#endif
#endif
