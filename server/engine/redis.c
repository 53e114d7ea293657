/* SPDX-License-Identifier: MIT */
/* The Redis engine (engine.type "redis"): several holdfast nodes share
 * streams, presence, PUB/SUB and control messages through Redis. Each
 * worker of each node has, per Redis shard, one command connection
 * (requests pipelined) and one PUB/SUB connection that carries the
 * channels its own subscribers need, so every worker receives a channel's
 * publications in the order Redis published them (the order the stream's
 * Lua script assigned offsets in), with no hop through another worker.
 *
 * Channels are spread over shards by jump consistent hashing of the
 * channel name. A worker whose PUB/SUB connection was lost resubscribes
 * when it is back and checks its positioned subscribers against each
 * stream's top: whoever missed a publication is told (insufficient state)
 * and recovers from the stream. An end-to-end ping through PUBLISH catches
 * a PUB/SUB connection that is silently dead. While Redis is away, every
 * operation fails at once with ENG_ETEMP: nothing queues. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/sha.h>

#include "engine/engine_impl.h"
#include "engine/redis.h"
#include "engine/redis_conn.h"
#include "engine/redis_scripts.h"
#include "log.h"

#define TICK_MS 500
#define PING_EVERY_MS 1000
#define PING_DEAD_MS 4000

typedef struct waiter {
  struct waiter *next;
  eng_done_cb fn;
  void *arg;
} waiter;

/* A channel this worker receives from Redis (SUBSCRIBE), counted. */
typedef struct rchan {
  struct rchan *next;
  uint32_t hash, refs;
  int sent;   /* SUBSCRIBE went out on the current PUB/SUB connection */
  int active; /* the subscription is confirmed */
  int check;  /* confirmed again after an outage: check positions */
  waiter *waiters;
  size_t len;
  char name[];
} rchan;

typedef struct rworker rworker;

typedef struct {
  rworker *w;
  size_t idx;
  rconn *cmd, *sub;
  uint64_t ping_seen_ms; /* the last end-to-end ping that came back */
  uint64_t ping_sent_ms;
  uint64_t seq;
} rshard;

struct rworker {
  struct reng *e;
  size_t idx;
  hub_local *hl;
  hf_loop *loop;
  rshard *sh;
  rchan **buckets;
  size_t nbuckets, nchans;
  hf_timer tick;
  uint64_t presence_ms;
  char ping_chan[160];
};

typedef struct reng {
  struct eng base;
  eng_redis_config cfg;
  size_t nshards;
  char **hosts;
  int *ports;
  size_t nw;
  rworker *w;
  char node[40];
  char sha_pub[41], sha_read[41], sha_pres[41];
  hub_ctl_fn ctl;
  atomic_int down; /* connections not up, over every worker */
  pthread_mutex_t why_mu;
  char why[256];
  uint64_t epoch_rng;
} reng;

static reng *R(eng *e) { return (reng *)e; }

/* ---- small helpers ---------------------------------------------------------- */

static void sha1_hex(const char *s, char out[41]) {
  unsigned char d[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)s, strlen(s), d);
  for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* Jump consistent hash (Lamping & Veach): the shard of a channel. */
static size_t shard_of(const reng *e, const char *ch, size_t len) {
  if (e->nshards == 1)
    return 0;
  uint64_t key = 14695981039346656037ull;
  for (size_t i = 0; i < len; i++)
    key = (key ^ (uint8_t)ch[i]) * 1099511628211ull;
  int64_t b = -1, j = 0;
  while (j < (int64_t)e->nshards) {
    b = j;
    key = key * 2862933555777941757ull + 1;
    j = (int64_t)((double)(b + 1) * ((double)(1ll << 31) / (double)((key >> 33) + 1)));
  }
  return (size_t)b;
}

static uint64_t new_epoch(reng *e) {
  uint64_t max = 1;
  for (int i = 0; i < STREAM_EPOCH_LEN; i++)
    max *= 52;
  uint64_t x = 0;
  while (!x) {
    if (getrandom(&x, sizeof x, GRND_NONBLOCK) != sizeof x)
      x = (e->epoch_rng += 0x9E3779B97F4A7C15ull);
    x %= max;
  }
  return x;
}

/* "<prefix>.<what>.{<ch>}": the keys of one channel share a hash tag. */
static int key(char *out, size_t cap, const reng *e, const char *what, const char *ch,
               size_t len) {
  int n = snprintf(out, cap, "%s.%s.{%.*s}", e->cfg.prefix, what, (int)len, ch);
  return n > 0 && (size_t)n < cap ? n : -1;
}

static rworker *worker_of(reng *e, hub_local *hl) { return &e->w[hub_index(hl)]; }

static void set_why(reng *e, const char *why) {
  pthread_mutex_lock(&e->why_mu);
  snprintf(e->why, sizeof e->why, "%s", why);
  pthread_mutex_unlock(&e->why_mu);
}

/* ---- per-worker channel table ------------------------------------------------------ */

static rchan *find_chan(rworker *w, const char *ch, size_t len, uint32_t h) {
  if (!w->nbuckets)
    return NULL;
  for (rchan *c = w->buckets[h & (w->nbuckets - 1)]; c; c = c->next)
    if (c->hash == h && c->len == len && memcmp(c->name, ch, len) == 0)
      return c;
  return NULL;
}

static rchan *add_chan(rworker *w, const char *ch, size_t len, uint32_t h) {
  if (w->nchans >= w->nbuckets) {
    size_t nb = w->nbuckets ? w->nbuckets * 2 : 64;
    rchan **b = calloc(nb, sizeof *b);
    if (!b)
      return NULL;
    for (size_t i = 0; i < w->nbuckets; i++)
      while (w->buckets[i]) {
        rchan *c = w->buckets[i];
        w->buckets[i] = c->next;
        c->next = b[c->hash & (nb - 1)];
        b[c->hash & (nb - 1)] = c;
      }
    free(w->buckets);
    w->buckets = b;
    w->nbuckets = nb;
  }
  rchan *c = calloc(1, sizeof *c + len + 1);
  if (!c)
    return NULL;
  c->hash = h;
  c->len = len;
  memcpy(c->name, ch, len);
  c->next = w->buckets[h & (w->nbuckets - 1)];
  w->buckets[h & (w->nbuckets - 1)] = c;
  w->nchans++;
  return c;
}

static void drop_chan(rworker *w, rchan *c) {
  rchan **pp = &w->buckets[c->hash & (w->nbuckets - 1)];
  while (*pp != c)
    pp = &(*pp)->next;
  *pp = c->next;
  w->nchans--;
  free(c);
}

static void wake(rchan *c, int status) {
  waiter *q = c->waiters;
  c->waiters = NULL;
  while (q) {
    waiter *n = q->next;
    q->fn(q->arg, status);
    free(q);
    q = n;
  }
}

/* SUBSCRIBE / UNSUBSCRIBE "<prefix>.pub.<ch>" on the channel's shard. */
static int pubsub_cmd(rworker *w, const char *verb, const char *ch, size_t len) {
  reng *e = w->e;
  char name[1400];
  int n = snprintf(name, sizeof name, "%s.pub.%.*s", e->cfg.prefix, (int)len, ch);
  if (n < 0 || (size_t)n >= sizeof name)
    return -1;
  const char *argv[2] = {verb, name};
  size_t lens[2] = {strlen(verb), (size_t)n};
  return rconn_command(w->sh[shard_of(e, ch, len)].sub, NULL, NULL, 2, argv, lens);
}

/* ---- messages from Redis ------------------------------------------------------------ */

/* "P <flags> <offset> <epoch> <dlen> <ilen> <tlen> <plen>\n<data><info><tags><prev>",
 * "J <info>" or "L <info>" on "<prefix>.pub.<ch>". */
static void on_pub(rworker *w, const char *ch, size_t len, const char *m, size_t n) {
  hub_remote r;
  memset(&r, 0, sizeof r);
  r.ch = ch;
  r.len = len;
  if (n >= 2 && (m[0] == 'J' || m[0] == 'L') && m[1] == ' ') {
    r.kind = m[0] == 'J' ? HUB_PUSH_JOIN : HUB_PUSH_LEAVE;
    r.info = m + 2;
    r.info_len = n - 2;
    hub_deliver_remote(w->hl, &r);
    return;
  }
  const char *nl = memchr(m, '\n', n);
  if (n < 2 || m[0] != 'P' || !nl)
    return;
  char head[160];
  size_t hl = (size_t)(nl - m);
  if (hl >= sizeof head)
    return;
  memcpy(head, m, hl);
  head[hl] = 0;
  unsigned flags;
  unsigned long long off, dl, il, tl, pl;
  char epoch[24];
  if (sscanf(head, "P %u %llu %23s %llu %llu %llu %llu", &flags, &off, epoch, &dl, &il, &tl,
             &pl) != 7)
    return;
  const char *body = nl + 1;
  size_t blen = n - hl - 1;
  if (dl + il + tl + pl != blen)
    return;
  r.kind = HUB_PUSH_PUB;
  r.offset = off;
  r.epoch = off ? stream_epoch_parse(epoch, strlen(epoch)) : 0;
  r.data = body;
  r.data_len = dl;
  r.info = body + dl;
  r.info_len = il;
  r.tags = body + dl + il;
  r.tags_len = tl;
  r.prev = body + dl + il + tl;
  r.prev_len = pl;
  r.delta = (flags & 1) != 0;
  r.delta_allowed = (flags & 2) != 0;
  hub_deliver_remote(w->hl, &r);
}

static void ctl_message(reng *e, const char *m, size_t n) {
  /* "C <node> <bytes>": run the control command on every worker here */
  const char *sp = n > 2 ? memchr(m + 2, ' ', n - 2) : NULL;
  if (n < 2 || m[0] != 'C' || !sp || !e->ctl)
    return;
  size_t off = (size_t)(sp - m) + 1;
  hub_broadcast_ctl(e->base.h, e->ctl, m + off, n - off);
}

typedef struct {
  rworker *w;
  size_t len;
  char name[];
} check_ctx;

static void on_read_positions(void *arg, redisReply *r);

static void on_message(void *arg, rconn *c, redisReply *r) {
  rshard *s = arg;
  rworker *w = s->w;
  reng *e = w->e;
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3)
    return;
  redisReply *kind = r->element[0], *name = r->element[1], *third = r->element[2];
  if (kind->type != REDIS_REPLY_STRING || name->type != REDIS_REPLY_STRING)
    return;
  size_t plen = strlen(e->cfg.prefix);
  if (strcmp(kind->str, "message") == 0 && third->type == REDIS_REPLY_STRING) {
    if ((size_t)name->len > plen + 5 && memcmp(name->str, e->cfg.prefix, plen) == 0 &&
        memcmp(name->str + plen, ".pub.", 5) == 0)
      on_pub(w, name->str + plen + 5, (size_t)name->len - plen - 5, third->str,
             (size_t)third->len);
    else if (strcmp(name->str, w->ping_chan) == 0)
      s->ping_seen_ms = hf_loop_now(w->loop);
    else if ((size_t)name->len == plen + 8 && memcmp(name->str + plen, ".control", 8) == 0)
      ctl_message(e, third->str, (size_t)third->len);
    return;
  }
  if (strcmp(kind->str, "subscribe") == 0 && (size_t)name->len > plen + 5 &&
      memcmp(name->str + plen, ".pub.", 5) == 0) {
    const char *ch = name->str + plen + 5;
    size_t len = (size_t)name->len - plen - 5;
    rchan *rc = find_chan(w, ch, len, hub_hash(ch, len));
    if (!rc || rc->active)
      return;
    rc->active = 1;
    wake(rc, ENG_OK);
    if (rc->check) { /* back after an outage: did anyone miss something? */
      rc->check = 0;
      char k1[1400], k2[1400];
      if (key(k1, sizeof k1, e, "stream", ch, len) < 0 || key(k2, sizeof k2, e, "meta", ch, len) < 0)
        return;
      const char *argv[11] = {"EVALSHA", e->sha_read, "2", k1, k2, "AAAAAAAA", "1", "0", "0", "0", "0"};
      size_t lens[11];
      for (int i = 0; i < 11; i++)
        lens[i] = strlen(argv[i]);
      /* a stream that does not exist yet gets no new epoch from a check */
      char ep[STREAM_EPOCH_LEN + 1];
      stream_epoch_text(new_epoch(e), ep);
      argv[5] = ep;
      lens[5] = strlen(ep);
      char mt[24];
      snprintf(mt, sizeof mt, "%llu", (unsigned long long)e->cfg.meta_ttl_ms);
      argv[6] = mt;
      lens[6] = strlen(mt);
      check_ctx *ctx = malloc(sizeof *ctx + len);
      if (!ctx)
        return;
      ctx->w = w;
      ctx->len = len;
      memcpy(ctx->name, ch, len);
      if (rconn_command(w->sh[shard_of(e, ch, len)].cmd, on_read_positions, ctx, 11, argv,
                        lens) < 0)
        free(ctx);
    }
  }
}

static void on_read_positions(void *arg, redisReply *r) {
  check_ctx *x = arg;
  if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
      r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_STRING) {
    uint64_t top = (uint64_t)r->element[0]->integer;
    uint64_t epoch = stream_epoch_parse(r->element[1]->str, (size_t)r->element[1]->len);
    hub_check_positions(x->w->hl, x->name, x->len, top, epoch);
  }
  free(x);
}

/* ---- connection states ------------------------------------------------------------------ */

static void load_scripts(rworker *w, rconn *c) {
  const char *scripts[3] = {REDIS_SCRIPT_PUBLISH, REDIS_SCRIPT_READ, REDIS_SCRIPT_PRESENCE};
  for (int i = 0; i < 3; i++) {
    const char *argv[3] = {"SCRIPT", "LOAD", scripts[i]};
    size_t lens[3] = {6, 4, strlen(scripts[i])};
    rconn_command(c, NULL, NULL, 3, argv, lens);
  }
}

/* Subscribe the worker's PUB/SUB connection of shard s to everything it
 * needs: its channels of that shard, its ping channel, the control channel. */
static void resubscribe(rshard *s) {
  rworker *w = s->w;
  reng *e = w->e;
  const char *argv[2] = {"SUBSCRIBE", w->ping_chan};
  size_t lens[2] = {9, strlen(w->ping_chan)};
  rconn_command(s->sub, NULL, NULL, 2, argv, lens);
  s->ping_seen_ms = hf_loop_now(w->loop);
  if (s->idx == 0 && w->idx == 0) {
    char ctl[200];
    snprintf(ctl, sizeof ctl, "%s.control", e->cfg.prefix);
    argv[1] = ctl;
    lens[1] = strlen(ctl);
    rconn_command(s->sub, NULL, NULL, 2, argv, lens);
  }
  for (size_t b = 0; b < w->nbuckets; b++)
    for (rchan *c = w->buckets[b]; c; c = c->next)
      if (shard_of(e, c->name, c->len) == s->idx && !c->sent)
        c->sent = pubsub_cmd(w, "SUBSCRIBE", c->name, c->len) == 0;
}

static void on_state(void *arg, rconn *c, int up, const char *why) {
  rshard *s = arg;
  rworker *w = s->w;
  reng *e = w->e;
  if (up) {
    atomic_fetch_sub(&e->down, 1);
  } else {
    atomic_fetch_add(&e->down, 1);
    set_why(e, why);
    srv_logline l;
    srv_log_begin(&l, LOG_WARN, "engine_redis_down");
    srv_log_str(&l, "connection", c == s->sub ? "pubsub" : "command");
    srv_log_str(&l, "reason", why);
    srv_log_int(&l, "worker", (long long)w->idx);
    srv_log_end(&l);
  }
  if (c == s->cmd) {
    if (up)
      load_scripts(w, c);
    return;
  }
  /* the PUB/SUB connection */
  if (up) {
    resubscribe(s);
    srv_logline l;
    srv_log_begin(&l, LOG_INFO, "engine_redis_up");
    srv_log_str(&l, "address", rconn_name(c));
    srv_log_int(&l, "worker", (long long)w->idx);
    srv_log_end(&l);
    return;
  }
  /* publications of this shard's channels may be lost from now on: when
   * back, check every positioned subscriber against the streams */
  for (size_t b = 0; b < w->nbuckets; b++)
    for (rchan *rc = w->buckets[b]; rc; rc = rc->next)
      if (shard_of(e, rc->name, rc->len) == s->idx) {
        rc->active = rc->sent = 0;
        rc->check = 1;
        wake(rc, ENG_ETEMP);
      }
}

static void refresh_presence_one(void *arg, const char *ch, size_t len, hub_sub *s);

static void tick(hf_loop *loop, hf_timer *t) {
  rworker *w = (rworker *)((char *)t - offsetof(rworker, tick));
  reng *e = w->e;
  uint64_t now = hf_loop_now(loop);
  for (size_t i = 0; i < e->nshards; i++) {
    rshard *s = &w->sh[i];
    if (!rconn_up(s->sub) || !rconn_up(s->cmd))
      continue;
    if (now - s->ping_seen_ms > PING_DEAD_MS) { /* up, yet nothing comes back */
      rconn_reset(s->sub, "PUB/SUB delivers nothing (end-to-end ping lost)");
      continue;
    }
    if (now - s->ping_sent_ms >= PING_EVERY_MS) {
      char seq[24];
      snprintf(seq, sizeof seq, "%llu", (unsigned long long)++s->seq);
      const char *argv[3] = {"PUBLISH", w->ping_chan, seq};
      size_t lens[3] = {7, strlen(w->ping_chan), strlen(seq)};
      if (rconn_command(s->cmd, NULL, NULL, 3, argv, lens) == 0)
        s->ping_sent_ms = now;
    }
  }
  if (now - w->presence_ms >= e->cfg.presence_ttl_ms / 3) {
    w->presence_ms = now;
    hub_each_local_sub(w->hl, HUB_SUB_PRESENCE, refresh_presence_one, w);
  }
  hf_timer_set(loop, t, TICK_MS);
}

/* ---- operations ---------------------------------------------------------------------- */

typedef struct {
  eng_publish_cb cb;
  void *arg;
} pub_ctx;

static void on_published(void *arg, redisReply *r) {
  pub_ctx *x = arg;
  stream_pos pos = {0, 0};
  int st = ENG_ETEMP;
  if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
      r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING) {
    unsigned long long off = 0;
    char ep[24] = "";
    sscanf(r->element[1]->str, "%llu %23s", &off, ep);
    pos.offset = off;
    pos.epoch = off ? stream_epoch_parse(ep, strlen(ep)) : 0;
    st = r->element[0]->str[0] == 'D' ? ENG_DUPLICATE : ENG_OK;
  } else if (r && r->type == REDIS_REPLY_INTEGER) { /* a plain PUBLISH */
    st = ENG_OK;
  } else if (r && r->type == REDIS_REPLY_ERROR) {
    srv_logline l;
    srv_log_begin(&l, LOG_ERROR, "engine_redis_error");
    srv_log_str(&l, "operation", "publish");
    srv_log_strn(&l, "error", r->str, (size_t)r->len);
    srv_log_end(&l);
  }
  x->cb(x->arg, st, &pos);
  free(x);
}

static int r_publish(eng *eg, hub_local *from, const hub_pub *p, eng_publish_cb cb, void *arg) {
  reng *e = R(eg);
  rworker *w = worker_of(e, from);
  rconn *c = w->sh[shard_of(e, p->ch, p->len)].cmd;
  pub_ctx *x = malloc(sizeof *x);
  char k1[1400], k2[1400], k3[1700], k4[1400];
  stream_pos none = {0, 0};
  if (!x || key(k1, sizeof k1, e, "stream", p->ch, p->len) < 0 ||
      key(k2, sizeof k2, e, "meta", p->ch, p->len) < 0 ||
      snprintf(k4, sizeof k4, "%s.pub.%.*s", e->cfg.prefix, (int)p->len, p->ch) >= (int)sizeof k4) {
    free(x);
    cb(arg, ENG_ENOMEM, &none);
    return 0;
  }
  x->cb = cb;
  x->arg = arg;
  unsigned flags = (p->delta ? 1u : 0u) | (p->delta_allowed ? 2u : 0u);
  int rc;
  if (!p->history && !p->idem_key) { /* no stream: a plain PUBLISH */
    char head[96];
    int hl = snprintf(head, sizeof head, "P %u 0 - %zu %zu %zu 0\n", flags, p->data_len,
                      p->info_len, p->tags_len);
    size_t n = (size_t)hl + p->data_len + p->info_len + p->tags_len;
    char *msg = malloc(n);
    if (!msg) {
      free(x);
      cb(arg, ENG_ENOMEM, &none);
      return 0;
    }
    memcpy(msg, head, (size_t)hl);
    memcpy(msg + hl, p->data, p->data_len);
    if (p->info_len)
      memcpy(msg + hl + p->data_len, p->info, p->info_len);
    if (p->tags_len)
      memcpy(msg + hl + p->data_len + p->info_len, p->tags, p->tags_len);
    const char *argv[3] = {"PUBLISH", k4, msg};
    size_t lens[3] = {7, strlen(k4), n};
    rc = rconn_command(c, on_published, x, 3, argv, lens);
    free(msg);
  } else {
    if (p->idem_key)
      snprintf(k3, sizeof k3, "%s.idem.{%.*s}.%.*s", e->cfg.prefix, (int)p->len, p->ch,
               (int)p->idem_len, p->idem_key);
    else
      k3[0] = 0;
    char size[24], ttl[24], mttl[24], iw[24], fl[8], ep[STREAM_EPOCH_LEN + 1];
    snprintf(size, sizeof size, "%u", p->history ? p->history->size : 0);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)(p->history ? p->history->ttl_ms : 0));
    snprintf(mttl, sizeof mttl, "%llu",
             (unsigned long long)(p->history ? p->history->meta_ttl_ms : e->cfg.meta_ttl_ms));
    snprintf(iw, sizeof iw, "%llu", (unsigned long long)e->cfg.idem_window_ms);
    snprintf(fl, sizeof fl, "%u", flags);
    stream_epoch_text(new_epoch(e), ep);
    const char *argv[18] = {"EVALSHA", e->sha_pub, "4", k1, k2, k3, k4,
                            p->data, p->info ? p->info : "", p->tags ? p->tags : "",
                            size, ttl, mttl, ep, iw,
                            p->delta && p->delta_allowed ? "1" : "0",
                            p->history ? "1" : "0", fl};
    size_t lens[18];
    for (int i = 0; i < 18; i++)
      lens[i] = strlen(argv[i]);
    lens[7] = p->data_len;
    lens[8] = p->info_len;
    lens[9] = p->tags_len;
    rc = rconn_command(c, on_published, x, 18, argv, lens);
  }
  if (rc < 0) { /* Redis is away: fail now, never queue */
    free(x);
    cb(arg, ENG_ETEMP, &none);
  }
  return 0;
}

static int r_join_leave(eng *eg, hub_local *from, const char *ch, size_t len,
                        const char *info, size_t info_len, int leave) {
  reng *e = R(eg);
  rworker *w = worker_of(e, from);
  char name[1400];
  int n = snprintf(name, sizeof name, "%s.pub.%.*s", e->cfg.prefix, (int)len, ch);
  char *msg = malloc(info_len + 2);
  if (!msg || n < 0 || (size_t)n >= sizeof name) {
    free(msg);
    return -1;
  }
  msg[0] = leave ? 'L' : 'J';
  msg[1] = ' ';
  memcpy(msg + 2, info, info_len);
  const char *argv[3] = {"PUBLISH", name, msg};
  size_t lens[3] = {7, (size_t)n, info_len + 2};
  int rc = rconn_command(w->sh[shard_of(e, ch, len)].cmd, NULL, NULL, 3, argv, lens);
  free(msg);
  return rc;
}

typedef struct {
  eng_read_cb cb;
  void *arg;
  eng_pubs_form form;
  size_t len;
  char ch[];
} read_ctx;

/* A stream entry {id "<offset>-1", {"d", data, "i", info, "g", tags}}. */
static int entry_pub(redisReply *en, stream_pub *p) {
  if (en->type != REDIS_REPLY_ARRAY || en->elements != 2 ||
      en->element[0]->type != REDIS_REPLY_STRING || en->element[1]->type != REDIS_REPLY_ARRAY)
    return -1;
  memset(p, 0, sizeof *p);
  p->offset = strtoull(en->element[0]->str, NULL, 10);
  redisReply *f = en->element[1];
  for (size_t i = 0; i + 1 < f->elements; i += 2) {
    redisReply *k = f->element[i], *v = f->element[i + 1];
    if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
      continue;
    if (k->str[0] == 'd') {
      p->data = v->str;
      p->data_len = (uint32_t)v->len;
    } else if (k->str[0] == 'i' && v->len) {
      p->info = v->str;
      p->info_len = (uint32_t)v->len;
    } else if (k->str[0] == 'g' && v->len) {
      p->tags = v->str;
      p->tags_len = (uint32_t)v->len;
    }
  }
  return p->data ? 0 : -1;
}

static void on_read(void *arg, redisReply *r) {
  read_ctx *x = arg;
  jw_buf pubs;
  jw_init(&pubs);
  eng_read_result res;
  memset(&res, 0, sizeof res);
  res.pubs = &pubs;
  int st = ENG_ETEMP;
  if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
      r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_STRING &&
      r->element[2]->type == REDIS_REPLY_INTEGER && r->element[3]->type == REDIS_REPLY_ARRAY) {
    res.top.offset = (uint64_t)r->element[0]->integer;
    res.top.epoch = stream_epoch_parse(r->element[1]->str, (size_t)r->element[1]->len);
    res.first = (uint64_t)r->element[2]->integer;
    redisReply *items = r->element[3];
    st = ENG_OK;
    for (size_t i = 0; i < items->elements; i++) {
      stream_pub p;
      if (entry_pub(items->element[i], &p) < 0)
        continue;
      if (!res.count)
        res.first_offset = p.offset;
      res.last_offset = p.offset;
      eng__encode_pub(&pubs, &p, x->form, x->ch, x->len, !res.count);
      res.count++;
    }
    if (!jw_ok(&pubs))
      st = ENG_ENOMEM;
  }
  x->cb(x->arg, st, &res);
  jw_free(&pubs);
  free(x);
}

static int r_read(eng *eg, hub_local *from, const char *ch, size_t len,
                  const stream_opts *opts, const eng_read_req *rq, eng_read_cb cb, void *arg) {
  reng *e = R(eg);
  rworker *w = worker_of(e, from);
  read_ctx *x = malloc(sizeof *x + len + 1);
  char k1[1400], k2[1400];
  if (!x || key(k1, sizeof k1, e, "stream", ch, len) < 0 ||
      key(k2, sizeof k2, e, "meta", ch, len) < 0) {
    free(x);
    return -1;
  }
  x->cb = cb;
  x->arg = arg;
  x->form = rq->form;
  x->len = len;
  memcpy(x->ch, ch, len);
  x->ch[len] = 0;
  char ep[STREAM_EPOCH_LEN + 1], mttl[24], bound[24], limit[24];
  stream_epoch_text(new_epoch(e), ep);
  snprintf(mttl, sizeof mttl, "%llu", (unsigned long long)opts->meta_ttl_ms);
  snprintf(bound, sizeof bound, "%llu", (unsigned long long)rq->bound);
  snprintf(limit, sizeof limit, "%llu",
           (unsigned long long)(rq->limit > 1000000 ? 1000000 : rq->limit));
  const char *argv[11] = {"EVALSHA", e->sha_read, "2", k1, k2, ep, mttl,
                          rq->reverse ? "1" : "0", rq->has_bound ? "1" : "0", bound, limit};
  size_t lens[11];
  for (int i = 0; i < 11; i++)
    lens[i] = strlen(argv[i]);
  if (rconn_command(w->sh[shard_of(e, ch, len)].cmd, on_read, x, 11, argv, lens) < 0) {
    eng_read_result res;
    memset(&res, 0, sizeof res);
    jw_buf none = {0};
    res.pubs = &none;
    free(x);
    cb(arg, ENG_ETEMP, &res);
  }
  return 0;
}

typedef struct {
  eng_done_cb cb;
  void *arg;
} done_ctx;

static void on_done(void *arg, redisReply *r) {
  done_ctx *x = arg;
  x->cb(x->arg, r && r->type != REDIS_REPLY_ERROR ? ENG_OK : ENG_ETEMP);
  free(x);
}

static int r_remove_history(eng *eg, hub_local *from, const char *ch, size_t len,
                            eng_done_cb cb, void *arg) {
  reng *e = R(eg);
  rworker *w = worker_of(e, from);
  char k1[1400];
  done_ctx *x = malloc(sizeof *x);
  if (!x || key(k1, sizeof k1, e, "stream", ch, len) < 0) {
    free(x);
    return -1;
  }
  x->cb = cb;
  x->arg = arg;
  const char *argv[2] = {"DEL", k1};
  size_t lens[2] = {3, strlen(k1)};
  if (rconn_command(w->sh[shard_of(e, ch, len)].cmd, on_done, x, 2, argv, lens) < 0) {
    free(x);
    cb(arg, ENG_ETEMP);
  }
  return 0;
}

typedef struct {
  eng_fields_cb cb;
  void *arg;
  int stats;
} pres_ctx;

static void on_presence(void *arg, redisReply *r) {
  pres_ctx *x = arg;
  jw_buf out;
  jw_init(&out);
  int st = ENG_ETEMP;
  if (r && r->type == REDIS_REPLY_ARRAY) {
    st = ENG_OK;
    if (x->stats) {
      long long clients = r->elements == 2 ? r->element[0]->integer : 0;
      long long users = r->elements == 2 ? r->element[1]->integer : 0;
      jw_lit(&out, "\"num_clients\":");
      jw_u64(&out, (uint64_t)clients);
      jw_lit(&out, ",\"num_users\":");
      jw_u64(&out, (uint64_t)users);
    } else {
      jw_lit(&out, "\"presence\":{");
      for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (i)
          jw_char(&out, ',');
        jw_str(&out, r->element[i]->str, (size_t)r->element[i]->len);
        jw_char(&out, ':');
        jw_raw(&out, r->element[i + 1]->str, (size_t)r->element[i + 1]->len);
      }
      jw_char(&out, '}');
    }
    if (!jw_ok(&out))
      st = ENG_ENOMEM;
  }
  x->cb(x->arg, st, &out);
  jw_free(&out);
  free(x);
}

static int presence_keys(const reng *e, const char *ch, size_t len, char *k1, char *k2) {
  return key(k1, 1400, e, "presence", ch, len) < 0 || key(k2, 1400, e, "presence.data", ch, len) < 0
             ? -1 : 0;
}

static int r_presence(eng *eg, hub_local *from, const char *ch, size_t len, int stats,
                      eng_fields_cb cb, void *arg) {
  reng *e = R(eg);
  rworker *w = worker_of(e, from);
  char k1[1400], k2[1400];
  pres_ctx *x = malloc(sizeof *x);
  if (!x || presence_keys(e, ch, len, k1, k2) < 0) {
    free(x);
    return -1;
  }
  x->cb = cb;
  x->arg = arg;
  x->stats = stats;
  const char *argv[6] = {"EVALSHA", e->sha_pres, "2", k1, k2, stats ? "1" : "0"};
  size_t lens[6];
  for (int i = 0; i < 6; i++)
    lens[i] = strlen(argv[i]);
  if (rconn_command(w->sh[shard_of(e, ch, len)].cmd, on_presence, x, 6, argv, lens) < 0) {
    jw_buf none = {0};
    free(x);
    cb(arg, ENG_ETEMP, &none);
  }
  return 0;
}

/* ZADD / HSET (add) or ZREM / HDEL (remove) for one subscriber. */
static void presence_write(rworker *w, const char *ch, size_t len, const hub_sub *s, int add) {
  reng *e = w->e;
  char k1[1400], k2[1400];
  if (!s->client || presence_keys(e, ch, len, k1, k2) < 0 || (add && !s->info))
    return;
  rconn *c = w->sh[shard_of(e, ch, len)].cmd;
  if (add) {
    char exp[24], ttl[24];
    snprintf(exp, sizeof exp, "%llu",
             (unsigned long long)((uint64_t)time(NULL) * 1000 + e->cfg.presence_ttl_ms));
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)e->cfg.presence_ttl_ms * 2);
    const char *a1[4] = {"ZADD", k1, exp, s->client};
    const char *a2[4] = {"HSET", k2, s->client, s->info};
    const char *a3[3] = {"PEXPIRE", k1, ttl};
    const char *a4[3] = {"PEXPIRE", k2, ttl};
    size_t l1[4], l2[4], l3[3], l4[3];
    for (int i = 0; i < 4; i++) {
      l1[i] = strlen(a1[i]);
      l2[i] = strlen(a2[i]);
    }
    for (int i = 0; i < 3; i++) {
      l3[i] = strlen(a3[i]);
      l4[i] = strlen(a4[i]);
    }
    rconn_command(c, NULL, NULL, 4, a1, l1);
    rconn_command(c, NULL, NULL, 4, a2, l2);
    rconn_command(c, NULL, NULL, 3, a3, l3);
    rconn_command(c, NULL, NULL, 3, a4, l4);
  } else {
    const char *a1[3] = {"ZREM", k1, s->client};
    const char *a2[3] = {"HDEL", k2, s->client};
    size_t l1[3], l2[3];
    for (int i = 0; i < 3; i++) {
      l1[i] = strlen(a1[i]);
      l2[i] = strlen(a2[i]);
    }
    rconn_command(c, NULL, NULL, 3, a1, l1);
    rconn_command(c, NULL, NULL, 3, a2, l2);
  }
}

static void refresh_presence_one(void *arg, const char *ch, size_t len, hub_sub *s) {
  presence_write(arg, ch, len, s, 1);
}

static void r_presence_update(eng *eg, hub_local *from, const char *ch, size_t len,
                              const hub_sub *s, int add) {
  presence_write(worker_of(R(eg), from), ch, len, s, add);
}

static int r_node_subscribe(eng *eg, hub_local *from, const char *ch, size_t len,
                            eng_done_cb ready, void *arg) {
  reng *e = R(eg);
  rworker *w = worker_of(e, from);
  uint32_t h = hub_hash(ch, len);
  rchan *c = find_chan(w, ch, len, h);
  if (!c && !(c = add_chan(w, ch, len, h)))
    return -1;
  c->refs++;
  if (c->active) {
    ready(arg, ENG_OK);
    return 0;
  }
  waiter *q = malloc(sizeof *q);
  if (!q) {
    if (!--c->refs)
      drop_chan(w, c);
    return -1;
  }
  q->fn = ready;
  q->arg = arg;
  q->next = c->waiters;
  c->waiters = q;
  if (!c->sent) {
    if (pubsub_cmd(w, "SUBSCRIBE", ch, len) < 0) { /* Redis away: fail fast */
      c->waiters = q->next;
      free(q);
      if (!--c->refs)
        drop_chan(w, c);
      ready(arg, ENG_ETEMP);
      return 0;
    }
    c->sent = 1;
  }
  return 0;
}

static void r_node_unsubscribe(eng *eg, hub_local *from, const char *ch, size_t len) {
  reng *e = R(eg);
  rworker *w = worker_of(e, from);
  rchan *c = find_chan(w, ch, len, hub_hash(ch, len));
  if (!c || --c->refs)
    return;
  if (c->sent)
    pubsub_cmd(w, "UNSUBSCRIBE", ch, len);
  wake(c, ENG_ETEMP);
  drop_chan(w, c);
}

static int r_broadcast_ctl(eng *eg, hub_local *from, hub_ctl_fn fn, const void *arg,
                           size_t len) {
  reng *e = R(eg);
  if (fn != e->ctl)
    return -1; /* only the registered control handler travels between nodes */
  rworker *w = worker_of(e, from);
  char ch[200];
  snprintf(ch, sizeof ch, "%s.control", e->cfg.prefix);
  size_t n = 2 + strlen(e->node) + 1 + len;
  char *msg = malloc(n);
  if (!msg)
    return -1;
  int hl = snprintf(msg, n, "C %s ", e->node);
  memcpy(msg + hl, arg, len);
  const char *argv[3] = {"PUBLISH", ch, msg};
  size_t lens[3] = {7, strlen(ch), (size_t)hl + len};
  int rc = rconn_command(w->sh[0].cmd, NULL, NULL, 3, argv, lens);
  free(msg);
  return rc;
}

static int r_healthy(eng *eg, char *why, size_t cap) {
  reng *e = R(eg);
  int down = atomic_load(&e->down);
  if (!down) {
    if (cap)
      why[0] = 0;
    return 1;
  }
  pthread_mutex_lock(&e->why_mu);
  snprintf(why, cap, "%d Redis connection(s) down; last: %s", down,
           e->why[0] ? e->why : "connecting");
  pthread_mutex_unlock(&e->why_mu);
  return 0;
}

static void r_free(eng *eg) {
  reng *e = R(eg);
  for (size_t i = 0; i < e->nw; i++) {
    rworker *w = &e->w[i];
    for (size_t s = 0; w->sh && s < e->nshards; s++) {
      rconn_free(w->sh[s].cmd);
      rconn_free(w->sh[s].sub);
    }
    free(w->sh);
    for (size_t b = 0; b < w->nbuckets; b++)
      while (w->buckets[b]) {
        rchan *c = w->buckets[b];
        w->buckets[b] = c->next;
        wake(c, ENG_ETEMP);
        free(c);
      }
    free(w->buckets);
  }
  for (size_t s = 0; s < e->nshards; s++)
    free(e->hosts[s]);
  free(e->hosts);
  free(e->ports);
  free(e->w);
  pthread_mutex_destroy(&e->why_mu);
  free(e);
}

static const eng_ops redis_ops = {
    "redis",           r_publish,          r_join_leave,     r_read,
    r_remove_history,  r_presence,         r_presence_update, r_node_subscribe,
    r_node_unsubscribe, r_broadcast_ctl,   r_healthy,        r_free,
};

/* ---- creation ----------------------------------------------------------------------- */

static int parse_address(const char *a, char **host, int *port) {
  if (strncmp(a, "redis://", 8) == 0)
    a += 8;
  const char *end = a + strlen(a);
  const char *slash = strchr(a, '/');
  if (slash)
    end = slash; /* a /db suffix is engine.redis.db's job */
  const char *colon = NULL;
  for (const char *p = a; p < end; p++)
    if (*p == ':')
      colon = p;
  if (a[0] == '[') {
    const char *rb = memchr(a, ']', (size_t)(end - a));
    if (!rb)
      return -1;
    *host = strndup(a + 1, (size_t)(rb - a - 1));
    colon = rb[1] == ':' ? rb + 1 : NULL;
  } else {
    *host = strndup(a, (size_t)((colon ? colon : end) - a));
  }
  *port = colon ? atoi(colon + 1) : 6379;
  if (!*host || !**host || *port <= 0 || *port > 65535) {
    free(*host);
    *host = NULL;
    return -1;
  }
  return 0;
}

eng *eng_redis_new(const eng_redis_config *cfg, hub *h, size_t nworkers, hub_ctl_fn ctl,
                   char *err, size_t errcap) {
  reng *e = calloc(1, sizeof *e);
  if (!e)
    return NULL;
  e->base.ops = &redis_ops;
  e->base.h = h;
  e->cfg = *cfg;
  e->ctl = ctl;
  e->nw = nworkers;
  e->nshards = cfg->naddresses;
  pthread_mutex_init(&e->why_mu, NULL);
  e->hosts = calloc(e->nshards ? e->nshards : 1, sizeof *e->hosts);
  e->ports = calloc(e->nshards ? e->nshards : 1, sizeof *e->ports);
  e->w = calloc(nworkers, sizeof *e->w);
  if (!e->hosts || !e->ports || !e->w) {
    r_free(&e->base);
    snprintf(err, errcap, "out of memory");
    return NULL;
  }
  for (size_t i = 0; i < e->nshards; i++)
    if (parse_address(cfg->addresses[i], &e->hosts[i], &e->ports[i]) < 0) {
      snprintf(err, errcap, "engine.redis.address \"%s\": expected host:port or redis://host:port",
               cfg->addresses[i]);
      r_free(&e->base);
      return NULL;
    }
  sha1_hex(REDIS_SCRIPT_PUBLISH, e->sha_pub);
  sha1_hex(REDIS_SCRIPT_READ, e->sha_read);
  sha1_hex(REDIS_SCRIPT_PRESENCE, e->sha_pres);
  uint8_t id[16];
  if (getrandom(id, sizeof id, 0) != sizeof id)
    memset(id, 7, sizeof id);
  for (int i = 0; i < 16; i++)
    snprintf(e->node + 2 * i, 3, "%02x", id[i]);
  /* every connection starts down until it is up */
  atomic_init(&e->down, (int)(nworkers * e->nshards * 2));
  set_why(e, "connecting to Redis");
  return &e->base;
}

const char *eng_redis_node(const eng *eg) { return ((const reng *)eg)->node; }

int eng_redis_attach(eng *eg, size_t idx, hf_loop *loop, hub_local *hl) {
  reng *e = R(eg);
  rworker *w = &e->w[idx];
  w->e = e;
  w->idx = idx;
  w->loop = loop;
  w->hl = hl;
  snprintf(w->ping_chan, sizeof w->ping_chan, "%s.ping.%s.%zu", e->cfg.prefix, e->node, idx);
  w->sh = calloc(e->nshards, sizeof *w->sh);
  if (!w->sh)
    return -1;
  for (size_t i = 0; i < e->nshards; i++) {
    rshard *s = &w->sh[i];
    s->w = w;
    s->idx = i;
    rconn_config rc = {loop, e->hosts[i], e->ports[i], e->cfg.user, e->cfg.password,
                       e->cfg.db, e->cfg.client_name, e->cfg.connect_timeout_ms,
                       e->cfg.io_timeout_ms, 0, on_state, on_message, s};
    s->cmd = rconn_new(&rc);
    rc.pubsub = 1;
    s->sub = rconn_new(&rc);
    if (!s->cmd || !s->sub)
      return -1;
  }
  w->tick.cb = tick;
  hf_timer_set(loop, &w->tick, TICK_MS);
  return 0;
}

void eng_redis_detach(eng *eg, size_t idx) {
  reng *e = R(eg);
  rworker *w = &e->w[idx];
  if (w->loop)
    hf_timer_cancel(w->loop, &w->tick);
}
