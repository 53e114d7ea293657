/* SPDX-License-Identifier: MIT */
/* A hiredis asynchronous context on an hf_loop (see redis_conn.h). hiredis
 * owns the socket and the RESP parser; this file owns the event
 * registration, the timeouts, the set-up commands and the reconnects. */
#include "engine/redis_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/random.h>

enum { RC_DOWN, RC_CONNECTING, RC_SETUP, RC_UP };

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 3000

/* A request in flight, in send order (hiredis answers in order). */
typedef struct rreq {
  struct rreq *next;
  rconn *c;
  rconn_reply_fn fn;
  void *arg;
  uint64_t deadline;
} rreq;

struct rconn {
  rconn_config cfg;
  char *host, *user, *password, *client_name;
  char name[96];
  hf_io io;
  int registered;
  hf_timer timer;
  redisAsyncContext *ac;
  int state;
  int setup_pending;
  uint32_t backoff_ms;
  rreq *head, *tail;
  char why[192];
};

static void start_connect(rconn *c);
static void schedule_reconnect(rconn *c);

static uint64_t now_ms(const rconn *c) { return hf_loop_now(c->cfg.loop); }

/* ---- the event hooks hiredis calls --------------------------------------- */

static void set_events(rconn *c, uint32_t ev) {
  if (!c->ac)
    return;
  if (!c->registered) {
    c->io.fd = c->ac->c.fd;
    if (hf_loop_add(c->cfg.loop, &c->io, ev) == 0)
      c->registered = 1;
    return;
  }
  hf_loop_mod(c->cfg.loop, &c->io, ev);
}

static void ev_add_read(void *p) {
  rconn *c = p;
  set_events(c, c->io.events | EPOLLIN);
}
static void ev_del_read(void *p) {
  rconn *c = p;
  set_events(c, c->io.events & ~(uint32_t)EPOLLIN);
}
static void ev_add_write(void *p) {
  rconn *c = p;
  set_events(c, c->io.events | EPOLLOUT);
}
static void ev_del_write(void *p) {
  rconn *c = p;
  set_events(c, c->io.events & ~(uint32_t)EPOLLOUT);
}
static void ev_cleanup(void *p) { /* the context is being freed */
  rconn *c = p;
  if (c->registered)
    hf_loop_del(c->cfg.loop, &c->io);
  c->registered = 0;
  c->io.events = 0;
  c->ac = NULL;
}

/* Most bytes one readiness event reads (hiredis reads 16 KiB at a time). */
#define READ_BUDGET (1024 * 1024)

static void on_io(hf_loop *loop, hf_io *io, uint32_t ev) {
  rconn *c = (rconn *)((char *)io - offsetof(rconn, io));
  if (c->ac && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
    /* Keep reading while the socket holds more (up to a budget): replies
     * and PUB/SUB messages must not fall behind what this loop publishes,
     * or Redis's output buffer for us grows until Redis drops us. */
    size_t budget = READ_BUDGET;
    for (;;) {
      redisAsyncHandleRead(c->ac);
      int avail = 0;
      if (!c->ac || c->ac->c.fd < 0 || ioctl(c->ac->c.fd, FIONREAD, &avail) < 0 || avail <= 0)
        break;
      if ((size_t)avail >= budget)
        break;
      budget -= (size_t)avail;
    }
  }
  if (c->ac && (ev & EPOLLOUT))
    redisAsyncHandleWrite(c->ac); /* also completes a pending connect */
}

/* ---- state ------------------------------------------------------------------ */

/* While up: the timer watches the oldest request's deadline. */
static void arm(rconn *c) {
  if (c->state != RC_UP)
    return;
  if (!c->head) {
    hf_timer_cancel(c->cfg.loop, &c->timer);
    return;
  }
  uint64_t now = now_ms(c), due = c->head->deadline;
  hf_timer_set(c->cfg.loop, &c->timer, due > now ? due - now : 0);
}

static void went_down(rconn *c, const char *why) {
  int was_up = c->state == RC_UP;
  c->state = RC_DOWN;
  snprintf(c->why, sizeof c->why, "%s: %s", c->name, why && *why ? why : "connection lost");
  if (was_up && c->cfg.on_state)
    c->cfg.on_state(c->cfg.arg, c, 0, c->why);
  schedule_reconnect(c);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  rconn *c = ac->data;
  if (c->state != RC_DOWN)
    went_down(c, ac->errstr[0] ? ac->errstr : "closed by the server");
}

static void became_up(rconn *c) {
  c->state = RC_UP;
  c->backoff_ms = 0;
  c->why[0] = 0;
  hf_timer_cancel(c->cfg.loop, &c->timer);
  if (c->cfg.on_state)
    c->cfg.on_state(c->cfg.arg, c, 1, "");
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv) {
  rreq *q = priv;
  rconn *c = q->c;
  /* replies come in order: q is the head */
  if (c->head == q) {
    c->head = q->next;
    if (!c->head)
      c->tail = NULL;
  } else { /* defensive: unlink wherever it is */
    for (rreq *p = c->head; p; p = p->next)
      if (p->next == q) {
        p->next = q->next;
        if (c->tail == q)
          c->tail = p;
        break;
      }
  }
  if (q->fn)
    q->fn(q->arg, reply);
  free(q);
  if (c->state == RC_UP)
    arm(c);
}

static void on_setup_reply(void *arg, redisReply *r) {
  rconn *c = arg;
  if (c->state != RC_SETUP)
    return;
  if (!r || r->type == REDIS_REPLY_ERROR) {
    char why[160];
    snprintf(why, sizeof why, "set-up failed: %s", r ? r->str : "no answer");
    rconn_reset(c, why);
    return;
  }
  if (!--c->setup_pending)
    became_up(c);
}

/* ROLE during set-up: a connection meant for a master refuses a replica. */
static void on_role_reply(void *arg, redisReply *r) {
  rconn *c = arg;
  if (c->state != RC_SETUP)
    return;
  if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
      r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") != 0) {
    char why[160];
    snprintf(why, sizeof why, "not a master (role %s): a failover is under way",
             r->element[0]->str);
    rconn_reset(c, why);
    return;
  }
  on_setup_reply(arg, r);
}

static int send_req(rconn *c, rconn_reply_fn fn, void *arg, int argc, const char **argv,
                    const size_t *lens) {
  rreq *q = malloc(sizeof *q);
  if (!q)
    return -1;
  q->next = NULL;
  q->c = c;
  q->fn = fn;
  q->arg = arg;
  q->deadline = now_ms(c) + c->cfg.io_timeout_ms;
  if (redisAsyncCommandArgv(c->ac, on_reply, q, argc, argv, lens) != REDIS_OK) {
    free(q);
    return -1;
  }
  if (c->tail)
    c->tail->next = q;
  else
    c->head = q;
  c->tail = q;
  return 0;
}

static void on_connect(const redisAsyncContext *ac, int status) {
  rconn *c = ac->data;
  if (status != REDIS_OK) { /* hiredis frees the context after this */
    went_down(c, ac->errstr[0] ? ac->errstr : "connect failed");
    return;
  }
  c->state = RC_SETUP;
  c->setup_pending = 0;
  const char *argv[3];
  size_t lens[3];
  int ok = 1;
  if (*c->password) {
    int n = 0;
    argv[n++] = "AUTH";
    if (*c->user)
      argv[n++] = c->user;
    argv[n++] = c->password;
    for (int i = 0; i < n; i++)
      lens[i] = strlen(argv[i]);
    ok = ok && send_req(c, on_setup_reply, c, n, argv, lens) == 0;
    c->setup_pending++;
  }
  if (c->cfg.db) {
    char db[16];
    snprintf(db, sizeof db, "%d", c->cfg.db);
    argv[0] = "SELECT";
    argv[1] = db;
    lens[0] = 6;
    lens[1] = strlen(db);
    ok = ok && send_req(c, on_setup_reply, c, 2, argv, lens) == 0;
    c->setup_pending++;
  }
  if (c->cfg.require_master) {
    argv[0] = "ROLE";
    lens[0] = 4;
    ok = ok && send_req(c, on_role_reply, c, 1, argv, lens) == 0;
    c->setup_pending++;
  }
  if (*c->client_name) {
    argv[0] = "CLIENT";
    argv[1] = "SETNAME";
    argv[2] = c->client_name;
    for (int i = 0; i < 3; i++)
      lens[i] = strlen(argv[i]);
    ok = ok && send_req(c, on_setup_reply, c, 3, argv, lens) == 0;
    c->setup_pending++;
  }
  if (!ok) {
    rconn_reset(c, "out of memory during set-up");
    return;
  }
  if (!c->setup_pending)
    became_up(c);
  else
    hf_timer_set(c->cfg.loop, &c->timer, c->cfg.io_timeout_ms);
}

/* Subscription confirmations and messages (pubsub connections). */
static void on_pushed(redisAsyncContext *ac, void *reply, void *priv) {
  rconn *c = priv;
  if (reply && c->cfg.on_message)
    c->cfg.on_message(c->cfg.arg, c, reply);
}

static void start_connect(rconn *c) {
  if (!*c->host) { /* waiting for rconn_set_address */
    c->state = RC_DOWN;
    return;
  }
  c->state = RC_CONNECTING;
  redisAsyncContext *ac = redisAsyncConnect(c->host, c->cfg.port);
  if (!ac) {
    went_down(c, "out of memory");
    return;
  }
  if (ac->err) {
    char why[160];
    snprintf(why, sizeof why, "%s", ac->errstr);
    redisAsyncFree(ac);
    went_down(c, why);
    return;
  }
  c->ac = ac;
  ac->data = c;
  ac->ev.data = c;
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  ev_add_write(c); /* the connect completes as the socket becomes writable */
  hf_timer_set(c->cfg.loop, &c->timer, c->cfg.connect_timeout_ms);
}

static void schedule_reconnect(rconn *c) {
  uint32_t r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r)
    r = (uint32_t)(uintptr_t)c;
  c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
  if (c->backoff_ms > BACKOFF_MAX_MS)
    c->backoff_ms = BACKOFF_MAX_MS;
  /* full jitter over the upper half: never a storm of simultaneous
   * reconnects from every worker of every node */
  hf_timer_set(c->cfg.loop, &c->timer, c->backoff_ms / 2 + r % (c->backoff_ms / 2 + 1));
}

static void on_timer(hf_loop *loop, hf_timer *t) {
  rconn *c = (rconn *)((char *)t - offsetof(rconn, timer));
  switch (c->state) {
  case RC_DOWN:
    start_connect(c);
    return;
  case RC_CONNECTING:
    rconn_reset(c, "connect timeout");
    return;
  case RC_SETUP:
    rconn_reset(c, "set-up timeout");
    return;
  case RC_UP:
    if (c->head && c->head->deadline <= now_ms(c))
      rconn_reset(c, "request timeout (Redis did not answer in engine.redis.io_timeout)");
    else
      arm(c);
    return;
  }
}

void rconn_reset(rconn *c, const char *why) {
  redisAsyncContext *ac = c->ac;
  int was_up = c->state == RC_UP;
  c->state = RC_DOWN; /* before the failed callbacks run: nothing new is sent */
  snprintf(c->why, sizeof c->why, "%s: %s", c->name, why);
  if (ac)
    redisAsyncFree(ac); /* pending callbacks run with NULL; cleanup clears c->ac */
  c->ac = NULL;
  if (was_up && c->cfg.on_state)
    c->cfg.on_state(c->cfg.arg, c, 0, c->why);
  schedule_reconnect(c);
}

/* ---- public -------------------------------------------------------------------- */

static void set_name(rconn *c) {
  snprintf(c->name, sizeof c->name, strchr(c->host, ':') ? "[%s]:%d" : "%s:%d", c->host,
           c->cfg.port);
}

int rconn_set_address(rconn *c, const char *host, int port) {
  if (strcmp(host, c->host) == 0 && port == c->cfg.port)
    return 0;
  char *h = strdup(host);
  if (!h)
    return -1;
  free(c->host);
  c->host = h;
  c->cfg.host = NULL;
  c->cfg.port = port;
  set_name(c);
  if (c->state != RC_DOWN)
    rconn_reset(c, "address changed");
  /* try the new address now, not after the backoff */
  c->backoff_ms = 0;
  hf_timer_set(c->cfg.loop, &c->timer, 0);
  return 1;
}

rconn *rconn_new(const rconn_config *cfg) {
  rconn *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->cfg = *cfg;
  c->host = strdup(cfg->host);
  c->user = strdup(cfg->user ? cfg->user : "");
  c->password = strdup(cfg->password ? cfg->password : "");
  c->client_name = strdup(cfg->client_name ? cfg->client_name : "");
  if (!c->host || !c->user || !c->password || !c->client_name) {
    free(c->host);
    free(c->user);
    free(c->password);
    free(c->client_name);
    free(c);
    return NULL;
  }
  c->cfg.host = NULL; /* c->host is the copy */
  set_name(c);
  c->io.cb = on_io;
  c->io.fd = -1;
  c->timer.cb = on_timer;
  if (*c->host)
    start_connect(c);
  else
    snprintf(c->why, sizeof c->why, "no address yet");
  return c;
}

void rconn_free(rconn *c) {
  if (!c)
    return;
  hf_timer_cancel(c->cfg.loop, &c->timer);
  c->cfg.on_state = NULL; /* nobody to tell any more */
  c->state = RC_DOWN;
  if (c->ac)
    redisAsyncFree(c->ac);
  hf_timer_cancel(c->cfg.loop, &c->timer);
  free(c->host);
  free(c->user);
  free(c->password);
  free(c->client_name);
  free(c);
}

int rconn_up(const rconn *c) { return c->state == RC_UP; }
const char *rconn_why(const rconn *c) { return c->why; }
const char *rconn_name(const rconn *c) { return c->name; }
const char *rconn_host(const rconn *c) { return c->host; }

int rconn_command(rconn *c, rconn_reply_fn fn, void *arg, int argc,
                  const char **argv, const size_t *lens) {
  if (c->state != RC_UP || !c->ac)
    return -1;
  if (c->cfg.pubsub) { /* confirmations and messages go to on_message */
    return redisAsyncCommandArgv(c->ac, on_pushed, c, argc, argv, lens) == REDIS_OK ? 0 : -1;
  }
  int first = !c->head;
  if (send_req(c, fn, arg, argc, argv, lens) < 0)
    return -1;
  if (first)
    arm(c);
  return 0;
}
