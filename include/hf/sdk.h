/* SPDX-License-Identifier: MIT */
/* holdfast SDK: a client of the real-time (Centrifugo v2) protocol in C, on
 * top of the WebSocket client (hf/client.h). It adds the protocol's own
 * state machines with the behaviour of the official JavaScript SDK
 * (centrifuge-js): a client that is disconnected, connecting, connected
 * (or closed), subscriptions that are unsubscribed, subscribing or
 * subscribed, connection and subscription tokens with refresh before expiry
 * and the 109 "token expired" path, recovery from a stream position the
 * application can persist (hfs_position) with deduplication by offset,
 * idempotent publishes retried across reconnects, presence, history, RPC,
 * the server-ping watchdog, the disconnect-code table, backoff with full
 * jitter and a bounded offline queue; JSON or Protobuf. docs/sdk.md is the
 * guide.
 *
 * Threading: a client and its subscriptions belong to one thread; no
 * threads are started. Drive it from an application's loop through one
 * descriptor and a timeout (hfs_client_fd, hfs_client_timeout_ms,
 * hfs_client_process) or attach it to an hf_loop (hfs_client_attach).
 * Callbacks run inside hfs_client_process; they may call any function here
 * except hfs_client_free. */
#ifndef HF_SDK_H
#define HF_SDK_H

#include <stddef.h>
#include <stdint.h>

#include "hf/client.h"
#include "hf/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hfs_client hfs_client;
typedef struct hfs_sub hfs_sub;

/* The client's states (centrifuge-js's, plus CLOSED after hfs_client_close:
 * nothing happens any more, only hfs_client_free). */
typedef enum {
  HFS_DISCONNECTED = 0, /* initial; after hfs_client_disconnect or a
                           terminal code */
  HFS_CONNECTING,       /* transport, connect command, or waiting to retry */
  HFS_CONNECTED,        /* connect reply received */
  HFS_CLOSED            /* hfs_client_close: final */
} hfs_state;

/* A subscription's states. */
typedef enum {
  HFS_SUB_UNSUBSCRIBED = 0,
  HFS_SUB_SUBSCRIBING,
  HFS_SUB_SUBSCRIBED
} hfs_sub_state;

/* A stream position: what the application persists to resume without gaps
 * (offset of the last publication seen, and the stream's epoch). */
#define HFS_EPOCH_MAX 64
typedef struct {
  uint64_t offset;
  char epoch[HFS_EPOCH_MAX];
} hfs_position;

/* Parse "OFFSET:EPOCH" (the form `holdfast sub --since` takes and
 * hfs_position_format writes). Returns 0 or HF_EINVAL. */
int hfs_position_parse(const char *text, hfs_position *out);
/* Write "OFFSET:EPOCH" into out (cap >= 24 + HFS_EPOCH_MAX). */
void hfs_position_format(const hfs_position *p, char *out, size_t cap);

/* Event types. Client-level: CONNECTING, CONNECTED, DISCONNECTED, ERROR,
 * MESSAGE, and for server-side subscriptions (ev->sub == NULL with a
 * channel) SUBSCRIBING, SUBSCRIBED, UNSUBSCRIBED, PUBLICATION, JOIN, LEAVE.
 * Subscription-level (ev->sub set): SUBSCRIBING, SUBSCRIBED, UNSUBSCRIBED,
 * ERROR, PUBLICATION, JOIN, LEAVE. */
typedef enum {
  HFS_EV_CONNECTING = 0,
  HFS_EV_CONNECTED,
  HFS_EV_DISCONNECTED,
  HFS_EV_ERROR,
  HFS_EV_SUBSCRIBING,
  HFS_EV_SUBSCRIBED,
  HFS_EV_UNSUBSCRIBED,
  HFS_EV_PUBLICATION,
  HFS_EV_JOIN,
  HFS_EV_LEAVE,
  HFS_EV_MESSAGE
} hfs_event_type;

/* One event. Strings and JSON texts are valid during the callback only;
 * JSON texts are minified JSON values (NULL when absent). */
typedef struct {
  hfs_event_type type;
  hfs_sub *sub;          /* the subscription, NULL for client-level events */
  const char *channel;   /* subscription events and server-side ones; "" */
  /* CONNECTING, DISCONNECTED, SUBSCRIBING, UNSUBSCRIBED, ERROR: the code and
   * reason (docs/sdk.md lists them: the server's, or the SDK's own below
   * 100 as in centrifuge-js) */
  uint32_t code;
  const char *reason;
  /* ERROR: what failed: "transport", "connect", "refresh", "connectToken",
   * "subscribe", "subscribeToken", "subRefresh" */
  const char *error_type;
  int temporary;         /* ERROR: the server marked the error temporary */
  /* CONNECTED */
  const char *client_id;
  /* SUBSCRIBED */
  int recoverable, positioned, was_recovering, recovered;
  hfs_position position; /* SUBSCRIBED (when positioned) and PUBLICATION
                            (the subscription's position after it) */
  /* PUBLICATION, MESSAGE, SUBSCRIBED (subscription data), CONNECTED */
  const char *data;      /* JSON text; PUBLICATION with binary set: the
                            raw bytes (data_len of them, NUL after) */
  size_t data_len;       /* PUBLICATION: the length of data */
  int binary;            /* PUBLICATION: binary (non-JSON) data, which only
                            the Protobuf encoding carries (hfs_publish_bytes) */
  uint64_t offset;       /* PUBLICATION: 0 if the channel keeps no history */
  const char *info;      /* PUBLICATION, JOIN, LEAVE: ClientInfo JSON */
  const char *tags;      /* PUBLICATION: JSON object or NULL */
} hfs_event;

/* What a token callback returns. */
enum {
  HFS_TOKEN_OK = 0,            /* hfs_*_set_token was (or will be) called */
  HFS_TOKEN_UNAUTHORIZED = -1, /* no token for this user: stop (code 1) */
  HFS_TOKEN_RETRY = -2         /* could not get one now: retry with backoff */
};

typedef struct {
  const char *url;         /* ws://host:port/connection/websocket */
  const char *token;       /* connection JWT; NULL/"": none (or get_token) */
  /* Called for a (new) connection token: before the first connect when
   * token is empty, after a 109 reply, and before the connection expires.
   * Call hfs_client_set_token (now or later), then return HFS_TOKEN_OK. */
  int (*get_token)(hfs_client *c, void *user);
  const char *name;        /* connect "name"; default "holdfast-c" */
  const char *version;     /* connect "version"; NULL: none */
  const char *data;        /* connect "data" (JSON text); NULL: none */
  uint32_t timeout_ms;     /* per-call reply timeout; default 5000 */
  uint32_t min_reconnect_ms, max_reconnect_ms; /* default 500, 20000 */
  uint32_t max_server_ping_delay_ms; /* added to the server's ping interval
                                        for the watchdog; default 10000 */
  uint32_t min_resubscribe_ms, max_resubscribe_ms; /* default 500, 20000 */
  size_t offline_max;      /* calls waiting for a connection (or for a retry);
                              default 1000; more fail with HF_ELIMIT */
  uint32_t publish_retry_ms; /* how long an idempotent publish is retried
                                across reconnects; default 60000 */
  int protobuf;            /* 1: the Protobuf encoding (sub-protocol
                              centrifuge-protobuf, binary frames); 0: JSON */
  const hf_client_config *transport; /* optional: headers, TLS, DNS, deflate...
                                        (url, callbacks, heartbeat and
                                        reconnect are the SDK's) */
  void (*on_event)(hfs_client *c, const hfs_event *ev, void *user);
  void *user;
} hfs_config;

/* Fill cfg with the defaults above. */
void hfs_config_init(hfs_config *cfg);

/* Make a client (DISCONNECTED; everything copied). NULL with a reason in
 * err for a bad URL or configuration, or out of memory. */
hfs_client *hfs_client_new(const hfs_config *cfg, char *err, size_t errcap);
/* Free the client and its subscriptions (no events; pending calls are
 * dropped without their callbacks). Not from a callback. */
void hfs_client_free(hfs_client *c);

/* DISCONNECTED -> CONNECTING. Returns 0 or HF_EINVAL (closed, or already
 * connecting/connected). */
int hfs_client_connect(hfs_client *c);
/* -> DISCONNECTED (code 0 "disconnect called"); pending calls fail with
 * code 3 "client disconnected". */
void hfs_client_disconnect(hfs_client *c);
/* Disconnect, then CLOSED: no more events. */
void hfs_client_close(hfs_client *c);
/* Replace the connection token (from get_token, or at any time). Returns
 * 0 or HF_ENOMEM. An empty token after get_token means unauthorized. */
int hfs_client_set_token(hfs_client *c, const char *token);

hfs_state hfs_client_state(const hfs_client *c);
const char *hfs_state_name(hfs_state s);
const char *hfs_sub_state_name(hfs_sub_state s);
const char *hfs_event_name(hfs_event_type t);
/* The server's client id of the current connection ("" if none). */
const char *hfs_client_id(const hfs_client *c);
/* Calls waiting for a connection or a reply. */
size_t hfs_client_pending(const hfs_client *c);

/* ---- the loop ------------------------------------------------------------ */

/* The descriptor to watch for readability; never changes. */
int hfs_client_fd(const hfs_client *c);
/* Milliseconds until hfs_client_process must run; -1 none. */
int hfs_client_timeout_ms(const hfs_client *c);
/* Do what is due (I/O, timers, callbacks). Never blocks. */
hfs_state hfs_client_process(hfs_client *c);
/* Let loop drive the client. Returns 0 or -errno. */
int hfs_client_attach(hfs_client *c, hf_loop *loop);

/* ---- calls ----------------------------------------------------------------- */

/* The answer to a call. error_code 0: result holds the reply's result
 * object as JSON text (e.g. {"presence":{...}}, {"publications":[...],
 * "epoch":"..","offset":N}, {"data":..}); else error_code is the server's
 * (100-1999) or the SDK's (centrifuge-js's numbers): 1 timeout, 3 client
 * disconnected, 4 client closed, 10 transport write error, 11 connection
 * closed (a call without an idempotency key that was written to a
 * connection that then ended: it may or may not have been applied). */
typedef struct {
  uint32_t error_code;
  const char *error_message; /* "" when none */
  int temporary;
  const char *result;        /* JSON text; NULL on error */
  uint32_t attempts;         /* times the call was written (> 1: retried
                                across reconnects or temporary errors) */
} hfs_reply;
typedef void (*hfs_reply_cb)(hfs_client *c, const hfs_reply *r, void *arg);

/* Publish data (a JSON text) into channel. With idem_key (<= 256 bytes)
 * the server applies the publication once per key within its idempotency
 * window, and the SDK retries it through disconnections and temporary
 * errors for publish_retry_ms. Calls wait in the offline queue while not
 * connected. cb may be NULL. Returns 0, HF_EINVAL (bad JSON or argument),
 * HF_ELIMIT (offline queue full), HF_ECLOSED (closed) or HF_ENOMEM. */
int hfs_publish(hfs_client *c, const char *channel, const char *data,
                const char *idem_key, hfs_reply_cb cb, void *arg);
/* Publish binary (non-JSON) data p[0..len) into channel, as the Protobuf
 * SDKs' publish(Uint8Array) does: Protobuf subscribers get the bytes, JSON
 * subscribers are closed by the server with 3506. Only over the Protobuf
 * encoding (cfg.protobuf): HF_EINVAL on a JSON client, or for len 0.
 * Bytes that are JSON text are published as JSON. Otherwise as
 * hfs_publish. */
int hfs_publish_bytes(hfs_client *c, const char *channel, const void *p, size_t len,
                      const char *idem_key, hfs_reply_cb cb, void *arg);
int hfs_presence(hfs_client *c, const char *channel, hfs_reply_cb cb,
                 void *arg);
int hfs_presence_stats(hfs_client *c, const char *channel, hfs_reply_cb cb,
                       void *arg);
/* limit 0: only the position; -1: all (server-capped); since NULL: from the
 * oldest retained (or newest with reverse). */
int hfs_history(hfs_client *c, const char *channel, int32_t limit,
                const hfs_position *since, int reverse, hfs_reply_cb cb,
                void *arg);
/* data: JSON text or NULL. */
int hfs_rpc(hfs_client *c, const char *method, const char *data,
            hfs_reply_cb cb, void *arg);
/* The asynchronous message (no reply). Returns as hfs_publish. */
int hfs_send(hfs_client *c, const char *data);

/* ---- subscriptions --------------------------------------------------------- */

typedef struct {
  const char *channel;
  const char *token;     /* subscription JWT; NULL: none (or get_token) */
  /* Called for a (new) subscription token: before subscribing when token
   * is empty and get_token is set, after a 109, before expiry. Call
   * hfs_sub_set_token, return HFS_TOKEN_*. */
  int (*get_token)(hfs_sub *s, void *user);
  int recoverable;       /* ask for recovery (the namespace may force it) */
  int positioned;
  int join_leave;        /* ask for join/leave events */
  const hfs_position *since; /* resume after this position (persisted by
                                the application); NULL: from now */
  const char *data;      /* subscribe "data" (JSON text) or NULL */
  void *user;
} hfs_sub_config;

/* A subscription (UNSUBSCRIBED) to cfg->channel; one per channel. NULL
 * with a reason in err (duplicate channel, bad data, out of memory). */
hfs_sub *hfs_sub_new(hfs_client *c, const hfs_sub_config *cfg, char *err,
                     size_t errcap);
/* -> SUBSCRIBING (and SUBSCRIBED once the client is connected and the
 * server agrees). Returns 0 or HF_EINVAL when not unsubscribed. */
int hfs_sub_subscribe(hfs_sub *s);
/* -> UNSUBSCRIBED (code 0 "unsubscribe called"); the position is kept. */
int hfs_sub_unsubscribe(hfs_sub *s);
/* Unsubscribe and free it (no event). */
void hfs_sub_remove(hfs_sub *s);
int hfs_sub_set_token(hfs_sub *s, const char *token);
hfs_sub_state hfs_sub_get_state(const hfs_sub *s);
const char *hfs_sub_channel(const hfs_sub *s);
void *hfs_sub_user(const hfs_sub *s);
/* The last position seen (what to persist). Returns 1 when the
 * subscription has one (recoverable or resumed), else 0. */
int hfs_sub_position(const hfs_sub *s, hfs_position *out);
/* Publications dropped because their offset was already seen. */
uint64_t hfs_sub_duplicates(const hfs_sub *s);
hfs_sub *hfs_client_sub(hfs_client *c, const char *channel);

#ifdef __cplusplus
}
#endif
#endif
