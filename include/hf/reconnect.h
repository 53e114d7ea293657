/* SPDX-License-Identifier: MIT */
/* The client's connection state machine (stopped, connecting, open,
 * closing, waiting) and its reconnection policy: what each way a
 * connection can end means (the close-code table, HTTP statuses, network
 * and TLS failures), exponential backoff with full jitter, Retry-After,
 * maximum attempts and the "healthy for a while" reset. Sans-I/O: the
 * caller passes the time and the random numbers, so every decision can be
 * tested with a fake clock. hf_client (hf/client.h) drives one. */
#ifndef HF_RECONNECT_H
#define HF_RECONNECT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The states every transition reported to the application moves between. */
typedef enum {
  HF_CLIENT_STOPPED = 0, /* not connected and not going to (initial, final) */
  HF_CLIENT_CONNECTING,  /* DNS, TCP, TLS, HTTP upgrade in progress */
  HF_CLIENT_OPEN,        /* WebSocket open: messages flow */
  HF_CLIENT_CLOSING,     /* close frame sent or received, waiting for the end */
  HF_CLIENT_WAITING      /* disconnected, the next attempt is scheduled */
} hf_client_state;

/* Why a connection (or an attempt) ended. */
typedef enum {
  HF_CAUSE_NONE = 0,
  HF_CAUSE_USER,        /* the application closed or stopped the client */
  HF_CAUSE_CLOSE_FRAME, /* the server sent a close frame (code) */
  HF_CAUSE_PROTOCOL,    /* the server broke RFC 6455; the client closed with
                           code (1002, 1007, 1009) */
  HF_CAUSE_ABNORMAL,    /* the connection ended without a close frame (1006) */
  HF_CAUSE_HEARTBEAT,   /* nothing arrived within ping interval + timeout */
  HF_CAUSE_DNS,         /* the name did not resolve */
  HF_CAUSE_TCP,         /* TCP connect failed (refused, unreachable...) */
  HF_CAUSE_TLS,         /* the TLS handshake or TLS I/O failed */
  HF_CAUSE_TLS_CERT,    /* the server's certificate did not verify */
  HF_CAUSE_HTTP,        /* the upgrade got a status other than 101 (code) */
  HF_CAUSE_HANDSHAKE,   /* a 101 that fails RFC 6455 checks */
  HF_CAUSE_TIMEOUT      /* a connect phase took longer than its timeout */
} hf_cause;

/* What to do about it. */
typedef enum {
  HF_RC_STOP = 0, /* do not reconnect: terminal, or needs a person */
  HF_RC_BACKOFF,  /* reconnect after a backoff delay */
  HF_RC_REFRESH   /* refresh the credentials, then reconnect with backoff */
} hf_rc_action;

typedef struct {
  int enabled;           /* 0: every ending stops (no reconnection) */
  uint32_t min_ms;       /* first backoff ceiling and the floor, e.g. 500 */
  uint32_t max_ms;       /* ceiling of any backoff delay, e.g. 20000 */
  double factor;         /* ceiling growth per attempt, e.g. 2 */
  uint32_t max_attempts; /* consecutive reconnect attempts before giving up;
                            0: unlimited */
  uint32_t healthy_ms;   /* a connection open at least this long resets the
                            attempt count when it ends, e.g. 10000 */
  int can_refresh;       /* the application refreshes credentials: 401 and
                            3005 become HF_RC_REFRESH */
} hf_reconnect_config;

/* The defaults above: enabled, 500 ms, 20 s, x2, unlimited, 10 s. */
void hf_reconnect_config_init(hf_reconnect_config *cfg);

typedef struct {
  hf_reconnect_config cfg;
  hf_client_state state;
  uint32_t attempts;   /* consecutive failed attempts (0 after a healthy
                          connection) */
  uint64_t opened_at;  /* when the current connection opened */
  uint64_t due;        /* WAITING: when the next attempt may start */
} hf_reconnect;

typedef struct {
  hf_client_state to;  /* HF_CLIENT_WAITING or HF_CLIENT_STOPPED */
  hf_rc_action action; /* the table's answer (before max attempts and
                          "enabled" are applied) */
  uint64_t delay_ms;   /* WAITING: time until the next attempt */
  uint32_t attempt;    /* WAITING: number of the attempt to come (1 = the
                          first reconnect after a healthy connection) */
  const char *why;     /* short English reason for the decision, e.g.
                          "terminal close code", "gave up after 5 attempts",
                          "Retry-After" */
} hf_reconnect_decision;

/* Start in HF_CLIENT_STOPPED with cfg (copied). */
void hf_reconnect_init(hf_reconnect *r, const hf_reconnect_config *cfg);

/* STOPPED or WAITING -> CONNECTING. From STOPPED the attempt count starts
 * again at 0. Returns 0, or HF_EINVAL from another state. */
int hf_reconnect_connect(hf_reconnect *r);

/* CONNECTING -> OPEN at time now (ms, any monotonic clock). HF_EINVAL from
 * another state. */
int hf_reconnect_opened(hf_reconnect *r, uint64_t now);

/* OPEN -> CLOSING (a close frame was sent or received). HF_EINVAL from
 * another state. */
int hf_reconnect_closing(hf_reconnect *r);

/* The connection or attempt ended (from CONNECTING, OPEN or CLOSING) at
 * time now, for cause with code (the close code, or the HTTP status for
 * HF_CAUSE_HTTP, else 0). retry_after_ms is the server's Retry-After (-1
 * if none): the delay is then at least that long (up to one hour) plus a
 * jitter of up to min_ms. rnd is a uniformly random 32-bit number for the
 * jitter. Moves to WAITING or STOPPED and says why. */
hf_reconnect_decision hf_reconnect_ended(hf_reconnect *r, uint64_t now,
                                         hf_cause cause, int code,
                                         int64_t retry_after_ms, uint32_t rnd);

/* 1 if WAITING and now >= due. */
int hf_reconnect_due(const hf_reconnect *r, uint64_t now);

/* Any state -> STOPPED. */
void hf_reconnect_stop(hf_reconnect *r);

/* The reaction table alone (no state): how cause/code should be handled.
 * Close codes: 1000 stop; 1001, 1005, 1006, 1011-1014 backoff; 1002,
 * 1003, 1007-1010, 1015 stop; 3005 refresh (backoff if !can_refresh);
 * 3000-3499 and 4000-4499 backoff; 3500-3999 and 4500-4999 stop; others
 * backoff. HTTP: 401 refresh (stop if !can_refresh); 408, 429, 5xx
 * backoff; every other status stop. Protocol violations, failed
 * certificate checks and invalid 101 responses stop; network failures,
 * timeouts and heartbeat losses back off. */
hf_rc_action hf_reconnect_classify(const hf_reconnect_config *cfg,
                                   hf_cause cause, int code);

/* Backoff delay before attempt number n (0-based) with full jitter above
 * the floor: min(max, min + u * min(max, min * factor^n)), u = rnd / 2^32.
 * Always within [min_ms, max_ms]. */
uint64_t hf_reconnect_backoff(const hf_reconnect_config *cfg, uint32_t n,
                              uint32_t rnd);

/* "stopped", "connecting", "open", "closing", "waiting". */
const char *hf_client_state_name(hf_client_state s);
/* "user", "close_frame", "protocol", ... (the enum name in lower case). */
const char *hf_cause_name(hf_cause c);

#ifdef __cplusplus
}
#endif
#endif
