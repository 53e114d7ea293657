/* SPDX-License-Identifier: MIT */
/* Internal structures of the SDK (sdk.c, sdk_sub.c): the client, its
 * subscriptions, server-side subscriptions and pending calls. */
#ifndef HF_SDK_IMPL_H
#define HF_SDK_IMPL_H

#include <jansson.h>

#include "codec.h"
#include "hf/sdk.h"

/* A call waiting for a connection, a retry or its reply. */
typedef struct hfs_call hfs_call;
struct hfs_call {
  hfs_call *next;
  const char *method;   /* "publish", "presence", ..., "send" */
  json_t *req;          /* the request body */
  uint32_t id;          /* != 0 while sent on the current connection */
  int idempotent;       /* retried through disconnections */
  uint32_t tries;
  uint64_t deadline;    /* give up (timeout) */
  uint64_t reply_due;   /* sent: the reply's timeout */
  uint64_t not_before;  /* retry after a temporary error */
  hfs_reply_cb cb;
  void *arg;
};

/* A server-side subscription (from the token or the connect proxy). */
typedef struct hfs_ssub hfs_ssub;
struct hfs_ssub {
  hfs_ssub *next;
  char *channel;
  int recoverable;
  int subscribed;       /* emitted SUBSCRIBED in this connected period */
  int seen;             /* scratch: present in the last connect reply */
  hfs_position pos;
};

struct hfs_sub {
  hfs_sub *next;
  hfs_client *c;
  char *channel, *token, *data;
  int (*get_token)(hfs_sub *s, void *user);
  int recoverable, positioned, join_leave;
  void *user;
  hfs_sub_state state;
  int dead;             /* removed during a callback: freed later */
  int has_pos;          /* pos is valid: recover from it */
  hfs_position pos;
  uint64_t dups;
  uint32_t sub_id;      /* subscribe in flight */
  uint64_t sub_due;     /* its timeout */
  uint64_t resub_due;   /* resubscribe after an error (backoff) */
  uint32_t resub_attempts;
  int token_wait;       /* get_token asked, waiting for hfs_sub_set_token */
  int in_get_token;
  int refresh_required; /* the token expired: get a new one first */
  uint64_t refresh_due; /* sub_refresh timer */
  uint32_t refresh_id;  /* sub_refresh in flight */
  int refreshing;       /* token asked for a sub_refresh */
};

struct hfs_client {
  hfs_config cfg;       /* strings below are owned copies */
  char *url, *token, *name, *version, *data;
  const hfs_codec *codec;
  hf_client *tc;
  int transport_active; /* events of tc belong to the current attempt */
  int transport_open;
  hfs_state state;
  uint32_t next_id;
  uint32_t attempts;
  uint64_t reconnect_due;
  uint32_t connect_id;
  uint64_t connect_due;
  int token_wait;       /* get_token asked before an attempt */
  int in_get_token;     /* inside that get_token call */
  int refresh_required;
  char client_id[64];
  uint32_t ping_s;
  int pong;
  uint64_t ping_due;    /* server-ping watchdog */
  uint64_t refresh_due; /* connection token refresh */
  uint32_t refresh_id;
  int refreshing;       /* token asked for a refresh command */
  hfs_sub *subs;
  hfs_ssub *ssubs;
  hfs_call *calls, **calls_tail;
  size_t ncalls;
  uint64_t rnd;
  int depth;            /* inside hfs_client_process */
  hf_loop *loop;
  hf_io lio;
  hf_timer ltimer;
};

uint64_t hfs__now(void);
uint32_t hfs__rand(hfs_client *c);
void hfs__emit(hfs_client *c, hfs_event *ev);
/* Emit an HFS_EV_ERROR of error_type type (sub: a subscription's, else
 * NULL). */
void hfs__emit_error(hfs_client *c, hfs_sub *sub, const char *type, int code,
                     const char *reason, int temporary);
int hfs__send(hfs_client *c, uint32_t id, const char *method, json_t *body);
uint32_t hfs__id(hfs_client *c);
void hfs__enter(hfs_client *c);
void hfs__leave(hfs_client *c);
void hfs__disconnect(hfs_client *c, uint32_t code, const char *reason,
                     int reconnect);
/* A JSON text into a tree (NULL: invalid). */
json_t *hfs__parse(const char *text);

/* sdk_sub.c */
void hfs__sub_send_subscribe(hfs_sub *s);
void hfs__sub_connected(hfs_client *c);
void hfs__sub_transport_closed(hfs_client *c);
int hfs__sub_reply(hfs_client *c, uint32_t id, json_t *reply);
void hfs__sub_push(hfs_client *c, json_t *push);
void hfs__sub_timers(hfs_client *c, uint64_t now);
uint64_t hfs__sub_next_due(hfs_client *c);
void hfs__sub_invalidate(hfs_client *c);
void hfs__sub_free(hfs_sub *s);
void hfs__ssub_connect_subs(hfs_client *c, json_t *subs);
json_t *hfs__ssub_request(hfs_client *c);
void hfs__publication(hfs_client *c, hfs_sub *s, hfs_ssub *ss,
                      const char *channel, json_t *pub);

#endif
