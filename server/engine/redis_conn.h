/* SPDX-License-Identifier: MIT */
/* One Redis connection driven by a worker's event loop: hiredis's
 * asynchronous context attached to an hf_loop (its fd on the loop's epoll,
 * no thread, no blocking call), with what hiredis 0.14 does not have:
 * a connect timeout, a per-request timeout (a paused or hung Redis fails
 * the requests instead of queueing them forever), AUTH/SELECT/CLIENT
 * SETNAME at every (re)connect, and reconnects with jittered backoff.
 * Requests are pipelined by hiredis: everything issued in one loop
 * iteration leaves in one write. Prefix rconn_. Loop thread only. */
#ifndef SRV_REDIS_CONN_H
#define SRV_REDIS_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "hf/loop.h"

typedef struct rconn rconn;

/* A reply (NULL: the request failed: not connected, timed out or the
 * connection was lost). The reply is freed after the callback. */
typedef void (*rconn_reply_fn)(void *arg, redisReply *r);

typedef struct {
  hf_loop *loop;
  const char *host;
  int port;
  const char *user, *password; /* "" for none */
  int db;
  const char *client_name;     /* "" for none */
  uint32_t connect_timeout_ms;
  uint32_t io_timeout_ms;
  int pubsub; /* a subscriber connection: on_message gets every pushed
                 message (and subscribe confirmations) */
  int require_master; /* set-up asks ROLE and refuses a replica (a master
                         found through Sentinel that was since demoted) */
  /* The connection became usable (up = 1) or was lost (0, why). */
  void (*on_state)(void *arg, rconn *c, int up, const char *why);
  void (*on_message)(void *arg, rconn *c, redisReply *r);
  void *arg;
} rconn_config;

/* Create and start connecting (host "": wait for rconn_set_address).
 * NULL on OOM. The strings are copied. */
rconn *rconn_new(const rconn_config *cfg);
/* Close; pending requests fail (their callbacks run with NULL first). */
void rconn_free(rconn *c);

/* 1 when connected and set up. */
int rconn_up(const rconn *c);
/* The last problem, for health reports ("" if none). */
const char *rconn_why(const rconn *c);
/* host:port. */
const char *rconn_name(const rconn *c);
/* The host ("" while waiting for rconn_set_address). */
const char *rconn_host(const rconn *c);

/* Send a request; fn(arg, reply) runs once. Returns 0, or -1 without
 * calling fn when the connection is not up (fail fast: nothing queues
 * while Redis is away). On a pubsub connection use it for SUBSCRIBE /
 * UNSUBSCRIBE only (fn may be NULL: the confirmations reach on_message). */
int rconn_command(rconn *c, rconn_reply_fn fn, void *arg, int argc,
                  const char **argv, const size_t *lens);

/* Drop the connection now (for example a pubsub connection that stopped
 * delivering) and reconnect after the backoff. */
void rconn_reset(rconn *c, const char *why);

/* Use another address from now on (Sentinel named a new master, or the
 * next sentinel is tried). A connection to the old one is dropped and the
 * new one is tried at once. 1 if the address changed, 0 if it was the
 * same, -1 on OOM. */
int rconn_set_address(rconn *c, const char *host, int port);

#endif
