/* SPDX-License-Identifier: MIT */
/* Internals shared by the protocol state machine's files: client.c
 * (lifecycle, dispatch, connect, refresh, pings, timers), subscribe.c
 * (subscriptions, positions, recovery, join/leave, slow consumers) and
 * commands.c (publish, history, presence). Not a public interface: only
 * files of server/protocol/ include it. Names are cl__*. */
#ifndef SRV_CLIENT_IMPL_H
#define SRV_CLIENT_IMPL_H

#include <jansson.h>

#include "log.h"
#include "protocol/client.h"
#include "protocol/proto.h"
#include "transport/transport.h"

typedef enum { CS_NEW, CS_CONNECTED, CS_FAILED, CS_CLOSED } cl_state;

/* A push that arrived while a subscription's position was being set. */
typedef struct {
  hub_frames f;
} cl_pending;

/* The pushes held while a subscription's position is being set (allocated
 * with the first of them). */
typedef struct {
  uint32_t n, cap;
  cl_pending f[];
} cl_pendq;

/* A subscription's own bits, kept in the owner's part of its hub_sub's
 * flags (HUB_SUB_OWNER_BITS). */
enum {
  CLS_SERVER_SIDE = 1u << 16, /* from the token's channels/subs or the API */
  CLS_GRANTED = 1u << 17,     /* a subscription token, the subscribe proxy or
                                 server-side: not re-checked against the
                                 namespace's permissions on reload */
  CLS_EMIT_JOIN_LEAVE = 1u << 18, /* join/leave pushes are sent for this client */
  CLS_RECOVERABLE = 1u << 19,     /* the client keeps a position to recover from */
  CLS_NODE_REF = 1u << 20         /* holds an eng_node_subscribe reference */
};
_Static_assert(((CLS_SERVER_SIDE | CLS_GRANTED | CLS_EMIT_JOIN_LEAVE | CLS_RECOVERABLE |
                 CLS_NODE_REF) & ~HUB_SUB_OWNER_BITS) == 0,
               "cl_sub bits live in the owner's part of hub_sub.flags");

/* What a subscription token or the sub_refresh proxy gives a subscription
 * (all zero: none). */
typedef struct {
  char *chan_info;      /* the subscription token's info, or NULL */
  int64_t expire_at;    /* subscription token expiry (Unix s); 0 = none */
  uint64_t deadline;    /* mono ms: expire_at + expired_sub_close_delay */
  uint64_t refresh_due; /* mono ms: ask the sub_refresh proxy (0: no) */
  uint8_t px_refresh;   /* expiry is prolonged by the sub_refresh proxy */
} cl_sub_tok;

/* A subscription's cold state: what it has only while it is being
 * established, or when a token or the sub_refresh proxy gave it state.
 * Allocated with the first of it (cl__sub_x) and freed once all of it is
 * gone (cl__sub_x_trim): an idle subscription without a token has none.
 * Never read on the delivery path (held pushes only while
 * HUB_SUB_PENDING). */
typedef struct {
  struct cl_op *op; /* the subscribe being established, or NULL */
  cl_pendq *pq;     /* pushes held while HUB_SUB_PENDING, or NULL */
  cl_sub_tok tok;
} cl_sub_x;

/* One subscription. Its hub_sub comes first and the whole struct stays at
 * one address while subscribed (the hub holds a pointer to it). Its own
 * bits (CLS_*) are in hs.flags. What delivery reads (hs, cl) is here; the
 * rest is behind x. */
typedef struct cl_sub {
  hub_sub hs;
  cl_client *cl;
  cl_sub_x *x; /* NULL: not being established, no token state */
} cl_sub;
/* Every subscription holds one: 56 bytes is a 64-byte glibc chunk (size +
 * 8 rounded up to 16); docs/benchmarks.md, "Memory per connection (issue
 * 14)", has the byte table. */
_Static_assert(sizeof(cl_sub) <= 56, "cl_sub crosses a malloc step");

static inline int cl__sub_has(const cl_sub *s, uint32_t bit) { return (s->hs.flags & bit) != 0; }

/* s's cold state, allocated on first use; NULL when out of memory. */
cl_sub_x *cl__sub_x(cl_sub *s);
/* Free s's cold state if nothing is left in it. */
void cl__sub_x_trim(cl_sub *s);

/* Cold state of s, NULL-safe reads. */
static inline struct cl_op *cl__sub_op(const cl_sub *s) { return s->x ? s->x->op : NULL; }
static inline cl_pendq *cl__sub_pq(const cl_sub *s) { return s->x ? s->x->pq : NULL; }
static inline const char *cl__sub_chan_info(const cl_sub *s) {
  return s->x ? s->x->tok.chan_info : NULL;
}
static inline int64_t cl__sub_expire_at(const cl_sub *s) {
  return s->x ? s->x->tok.expire_at : 0;
}
static inline uint64_t cl__sub_deadline(const cl_sub *s) {
  return s->x ? s->x->tok.deadline : 0;
}
static inline uint64_t cl__sub_refresh_due(const cl_sub *s) {
  return s->x ? s->x->tok.refresh_due : 0;
}

/* Per-connection buckets of the per-connection rate limits and the current
 * burst of refusals, allocated at the first command checked while any of
 * those limits is set, or at the first refusal. */
typedef struct {
  rl_bucket command, bytes, publish, subscribe;
  uint64_t last_refusal; /* mono ms of the last refused command */
  uint32_t strikes;      /* refusals in the current burst */
} cl_buckets;

/* What few connections have, allocated with the first of it (the
 * transport session of emulation, the Origin of browsers, what the event
 * proxy needs, the buckets of per-connection rate limits); freed with the
 * client. */
typedef struct {
  const char *session, *node; /* emulation transports: for the connect result */
  char *origin;     /* the upgrade's Origin header, or NULL (admin list) */
  char *px_headers; /* upgrade request headers proxies ask for, or NULL */
  char *meta;       /* connection meta from the connect proxy (JSON), or NULL */
  cl_buckets *rb; /* per-connection limits: NULL until one applies (or
                     the first refusal); also holds the refusal burst */
  uint64_t refresh_due; /* mono ms: ask the refresh proxy (0: no) */
} cl_extra;


/* The extras of cl, allocated on first use; NULL when out of memory. */
cl_extra *cl__extra(cl_client *cl);
/* cl's rate-limit buckets: made (with the extras) when make is nonzero and
 * there are none yet; NULL when none (or out of memory). */
cl_buckets *cl__buckets(cl_client *cl, int make);

/* Laid out for size (every idle connection holds one): pointers, then
 * 64-bit, 32-bit and byte fields, without holes; what most connections
 * never use is a NULL pointer. What every client of a worker shares (the
 * hub, the configuration) is reached through list; the connection id is
 * kept once, in the hf_conn (hf_conn_id / hf_conn_id_raw), and so is the
 * accept time (cl_created_ms). */
struct cl_client {
  hf_conn *conn;
  cl_list *list; /* the worker's clients (walked through their
                    connections); also its hub_local and cl_config */
  cl_extra *ex;      /* NULL until one of its strings is set */
  char *user;        /* "" when anonymous; the shared limits entry's name
                        (rl_user_name) when user_shared, else owned */
  char *conn_info;   /* minified JSON of the token's info claim, or NULL */
  char *client_info; /* {"user":..,"client":..,"conn_info":..} for pubs and
                        presence, made when first needed (cl__client_info) */
  union {
    cl_sub *sub0;  /* the subscription while there is no array (at most one) */
    cl_sub **subv; /* the array once a second one came (subs_arr) */
  };
  /* asynchronous commands (engines that answer later): while any is in
   * flight, later commands wait in `queued` (in order, bounded; allocated
   * for the first one that waits, NULL when none does) */
  struct cl_op *ops;
  jw_buf *queued;
  /* containment (client.c, rate_check): the user's shared entry (held
   * while connected; the shared table is on by default); own buckets and
   * the refusal burst are in ex (cl__buckets) */
  rl_user *rl_user;
  int64_t expire_at; /* Unix seconds; 0 = never */
  uint64_t next_ping, expire_deadline; /* mono ms */
  union { /* mono ms: CS_NEW closes at the first, CS_CONNECTED at the second */
    uint64_t stale_deadline; /* no connect command by then */
    uint64_t pong_deadline;  /* while await_pong */
  };
  uint32_t ping_sent_us; /* low bits of cl__now_us() when the awaited ping left */
  uint32_t rtt_us;       /* the last ping's round trip (0: none yet) */
  uint32_t nsubs;        /* the array holds the next power of two (&sub0: 1) */
  uint32_t inflight;
  uint32_t tag; /* the server's per-connection bits (cl_set_tag) */
  uint8_t state;
  uint8_t transport; /* tr_kind: how replies and pushes are framed */
  uint8_t pb;        /* Protobuf encoding (centrifuge-protobuf): binary
                        frames, length-delimited (pbcodec.h) */
  uint8_t await_pong : 1;
  uint8_t anonymous : 1;  /* connected without a token (nor the connect proxy) */
  uint8_t busy : 1;       /* inside cl_on_message: a teardown must not free yet */
  uint8_t zombie : 1;     /* cl_free was called while busy */
  uint8_t px_session : 1; /* authenticated by the connect proxy (proxied.c) */
  uint8_t subs_arr : 1;   /* the subscriptions are in subv, not sub0 */
  uint8_t user_shared : 1; /* user is rl_user's name: not freed here */
};
/* Every real-time connection holds one: 136 bytes is a 144-byte glibc chunk
 * (size + 8 rounded up to 16); docs/benchmarks.md, "Memory per connection
 * (issue 14)", has the byte table. */
_Static_assert(sizeof(struct cl_client) <= 136, "cl_client crosses a malloc step");

/* cl's subscriptions, cl->nsubs of them. */
static inline cl_sub **cl__subs(const cl_client *cl) {
  return cl->subs_arr ? cl->subv : (cl_sub **)&cl->sub0;
}

/* NULL-safe reads of the extras. */
static inline uint64_t cl__refresh_due(const cl_client *cl) {
  return cl->ex ? cl->ex->refresh_due : 0;
}

/* An asynchronous operation of a client (a command waiting for the
 * engine). Embed it first in the operation's own struct. */
typedef struct cl_op {
  struct cl_op *next, *prev;
  cl_client *cl; /* NULL once the client is gone: the completion only frees */
  uint32_t id;   /* the command to answer (0: none, e.g. a server API push) */
  struct cl_op *parent; /* an operation waiting for this one, or NULL */
  uint32_t children;    /* operations waiting to report to this one */
  uint8_t done;         /* cl__op_done ran (children may still hold it) */
  uint8_t background;   /* not a command: later commands do not wait for it */
} cl_op;

/* Start an operation of size bytes (a struct beginning with cl_op);
 * counts as a command in flight. NULL on OOM. */
cl_op *cl__op_new(cl_client *cl, size_t size, uint32_t id);
/* The same for work of the server's own (a proxied refresh) that later
 * commands need not wait for. */
cl_op *cl__op_new_bg(cl_client *cl, size_t size);
/* A child operation reports to parent (the parent is kept until then). */
void cl__op_adopt(cl_op *parent, cl_op *child);
/* At the start of a completion: the client if it is still there (replies
 * may be written with cl__out), else NULL (the operation is freed and the
 * completion must return). *token is passed to cl__op_exit. */
cl_client *cl__op_enter(cl_op *op, int *token);
/* The operation is over: it stops counting as in flight and is freed
 * (once no child holds it). Inside an enter/exit bracket. */
void cl__op_done(cl_op *op);
/* At the end of a completion: send the replies written and go on with
 * the commands that waited. */
void cl__op_exit(cl_client *cl, int token);

/* connect with server-side subscriptions: the result waits for them. */
typedef struct {
  cl_op op;
  int64_t exp;
  uint32_t pending; /* server-side subscriptions not settled yet (+1 held
                       while they are being started) */
  unsigned err;  /* the first error of a server-side subscription */
  int first;
  jw_buf subs;   /* entries of the result's "subs" */
  char *data;    /* the result's "data" (JSON text, from the connect proxy) */
} cl_connect_op;
/* Authenticated: user (copied), info and data (JSON text or NULL; taken),
 * expiry exp (Unix s, 0 = none). Starts the server-side subscriptions that
 * src names ("channels"/"subs", token claims or a connect proxy result;
 * may be NULL) and answers connect command id when they settled. */
void cl__begin_session(cl_client *cl, uint32_t id, const char *user, char *info,
                       int64_t exp, json_t *src, json_t *req, char *data);
/* A server-side subscription of connect op c settled (err 0: its result
 * fields). The last one finishes the connect. */
void cl__connect_sub_done(cl_client *cl, cl_connect_op *c, unsigned err,
                          const char *ch, size_t len, const jw_buf *fields);

/* ---- replies (client.c) ---------------------------------------------------- */

/* The reply buffer of the frame being processed (replies leave together). */
static inline jw_buf *cl__out(cl_client *cl) { return &cl->list->out; }
void cl__flush_replies(cl_client *cl);
/* Send one protocol message now: JSON Replies joined by '\n', framed for
 * the client's transport, or transcoded to Protobuf for a Protobuf client. */
void cl__send(cl_client *cl, const char *json, size_t len);
/* CLOCK_MONOTONIC in microseconds. */
uint64_t cl__now_us(void);
/* Deliver what s held while its subscription was being established (after
 * the reply that establishes it left). May end the subscription or, for a
 * server-side one, the connection (insufficient state). */
void cl__replay_pending(cl_client *cl, cl_sub *s);
void cl__error_reply(cl_client *cl, uint32_t id, unsigned code,
                     const char *message, int temporary);
/* {"id":N,"<key>":{ ... the caller writes fields, then cl__end_result(). */
void cl__begin_result(cl_client *cl, uint32_t id, const char *key);
void cl__end_result(cl_client *cl);
/* Binary (non-JSON) data was to reach JSON client cl (what: "publication",
 * "history", "recovery", "rpc"; channel ch[0..len) or NULL): log it, count
 * it and close the connection with 3506, leaving its subscriptions to the
 * connection's end (safe inside a hub sweep). Loop thread (bindata.c). */
void cl__binary_for_json(cl_client *cl, const char *what, const char *ch, size_t len);

void cl__log_begin(cl_client *cl, srv_log_level lvl, const char *event,
                   srv_logline *l);
void cl__log_denied(cl_client *cl, const char *action, const char *ch,
                    size_t len, unsigned code);
void cl__arm_timer(cl_client *cl);
int64_t cl__wall_s(void);
/* The connection expires at expire_at (Unix s; 0 = never); with a refresh
 * proxy the backend is asked first. */
void cl__set_expiry(cl_client *cl, int64_t expire_at);
/* The ClientInfo JSON of cl ({"user":..,"client":..[,"conn_info":..]}),
 * made at first use and kept (owned by cl); NULL when out of memory. */
const char *cl__client_info(cl_client *cl);
/* Forget it after user or conn_info changed (made again when needed). */
void cl__reset_client_info(cl_client *cl);
/* The request's channel; a missing or empty one closes 3501 (NULL). */
const char *cl__require_channel(cl_client *cl, json_t *req, const char *cmd,
                                size_t *len);
/* Reply with the error of a chan_resolve / chan_can_* result code. */
void cl__channel_error(cl_client *cl, uint32_t id, int code);
/* Token helpers shared with subscriptions. */
srv_jwt_status cl__verify(cl_client *cl, const char *token, json_t **claims);
const char *cl__claim_user(const cl_client *cl, json_t *claims);
int64_t cl__claim_expiry(json_t *claims);
char *cl__claim_info(json_t *claims, const char *key, const char *b64key);

/* ---- subscriptions (subscribe.c) ------------------------------------------- */

cl_sub *cl__find_sub(cl_client *cl, const char *ch, size_t len);
void cl__remove_sub(cl_client *cl, cl_sub *s);
/* Leave s and tell the client with an unsubscribe push. */
void cl__unsubscribe_push(cl_client *cl, cl_sub *s, unsigned code,
                          const char *reason);
void cl__cmd_subscribe(cl_client *cl, uint32_t id, json_t *req);
void cl__cmd_unsubscribe(cl_client *cl, uint32_t id, json_t *req);
void cl__cmd_sub_refresh(cl_client *cl, uint32_t id, json_t *req);
/* Subscribe the client to ch[0..len) in ns for command id once allowed
 * (a token, the rules or the subscribe proxy): override, chan_info and
 * data (JSON text, malloc'd or NULL; taken) as a token would give them.
 * Returns 0 or an error code with nothing started. */
unsigned cl__subscribe_allowed(cl_client *cl, uint32_t id, const char *ch, size_t len,
                               const chan_ns *ns, json_t *req, json_t *override,
                               char *chan_info, char *data, int64_t expire_at);
void cl__set_sub_expiry(cl_client *cl, cl_sub *s, int64_t expire_at);
/* Subscribe to the token's server-side channels at connect, recovering
 * from the positions in the connect request's subs. Writes the entries of
 * the connect result's "subs" into out. Returns 0 or a client error code. */
/* Start the token's server-side subscriptions for connect op c (each
 * reports with cl__connect_sub_done). Returns 0 or a client error code
 * (102 unknown channel) with nothing started. */
unsigned cl__server_side_subs(cl_client *cl, cl_connect_op *c, json_t *claims,
                              json_t *req_subs);
/* After the connect reply left: join pushes of the server-side subs. */
void cl__announce_joins(cl_client *cl);
/* Subscription expiry check from the timer; returns 0, or -1 if the
 * connection was closed. */
int cl__check_sub_deadlines(cl_client *cl, uint64_t now);
/* ClientInfo JSON of cl with s's chan_info (malloc'd), or NULL on OOM. */
char *cl__sub_info(cl_client *cl, const cl_sub *s);
/* conn_info changed: rebuild each subscription's presence info. */
void cl__refresh_sub_infos(cl_client *cl);

/* ---- publish, history, presence (commands.c) ---------------------------------- */

void cl__cmd_publish(cl_client *cl, uint32_t id, json_t *req);
/* Publish text (minified JSON) into ch for command id once allowed. */
void cl__publish_allowed(cl_client *cl, uint32_t id, const char *ch, size_t len,
                         const chan_ns *ns, const char *text, bool skip_history);
void cl__cmd_history(cl_client *cl, uint32_t id, json_t *req);
void cl__cmd_presence(cl_client *cl, uint32_t id, json_t *req, int stats);

/* ---- backend event proxy (proxied.c) ------------------------------------------ */

/* Is the connect proxy on (a connect without a token goes to it)? */
bool cl__proxy_connect_enabled(const cl_client *cl);
void cl__proxy_connect(cl_client *cl, uint32_t id, json_t *req);
/* The session's expire time came: ask the refresh proxy. */
void cl__proxy_refresh(cl_client *cl);
/* Subscribe / publish through the namespace's proxy when it has one:
 * returns 1 when the proxy took the command, 0 when it is not proxied. */
int cl__proxy_subscribe(cl_client *cl, uint32_t id, json_t *req, const char *ch,
                        size_t len, const chan_ns *ns);
int cl__proxy_publish(cl_client *cl, uint32_t id, json_t *req, const char *ch, size_t len,
                      const chan_ns *ns);
/* s's expire time came: ask the sub_refresh proxy. */
void cl__proxy_sub_refresh(cl_client *cl, cl_sub *s);
/* Does ns prolong subscriptions through the sub_refresh proxy? */
bool cl__proxy_sub_refresh_enabled(const cl_client *cl, const chan_ns *ns);
void cl__cmd_rpc(cl_client *cl, uint32_t id, json_t *req);

#endif
