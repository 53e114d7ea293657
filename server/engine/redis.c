/* SPDX-License-Identifier: MIT */
/* The Redis engine (engine.type "redis"): several holdfast nodes share
 * streams, presence, PUB/SUB and control messages through Redis. Each
 * worker of each node has, per Redis shard, one command connection
 * (requests pipelined) and one PUB/SUB connection that carries the
 * channels its own subscribers need, so every worker receives a channel's
 * publications in the order Redis published them (the order the stream's
 * Lua script assigned offsets in), with no hop through another worker.
 *
 * Channels are spread over standalone shards by jump consistent hashing
 * of the channel name's hash; with Sentinel the one shard is the master the
 * sentinels name (followed through failovers); with Redis Cluster the
 * shards are the masters of CLUSTER SLOTS and a channel goes to its hash
 * tag's slot (the layout is followed through failovers and resharding). A worker whose PUB/SUB connection was lost resubscribes
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
#include <time.h>

#include <openssl/sha.h>

#include "engine/engine_impl.h"
#include "hf/conn.h"
#include "metrics/metrics.h"
#include "engine/redis.h"
#include "engine/redis_conn.h"
#include "engine/redis_scripts.h"
#include "log.h"

#define TICK_MS 500
#define PING_EVERY_MS 1000
#define PING_DEAD_MS 4000
#define NODE_EVERY_MS 2000
#define NODE_DEAD_MS 7000
#define SURVEY_MS 1000
#define SENTINEL_EVERY_MS 1000
#define TOPO_EVERY_MS 5000

/* KEYS: 1 node info hash, 2 node last-seen zset. ARGV: 1 cutoff ms.
 * Forgets nodes not seen since the cutoff; returns the others' info. */
#define NODES_SCRIPT                                                           \
  "local old = redis.call('zrangebyscore', KEYS[2], '-inf', '(' .. ARGV[1])\n" \
  "for _, id in ipairs(old) do redis.call('hdel', KEYS[1], id) end\n"          \
  "redis.call('zremrangebyscore', KEYS[2], '-inf', '(' .. ARGV[1])\n"          \
  "local ids = redis.call('zrangebyscore', KEYS[2], ARGV[1], '+inf')\n"        \
  "if #ids == 0 then return {} end\n"                                          \
  "return redis.call('hmget', KEYS[1], unpack(ids))\n"

/* A channels request to every node, answered on this worker's reply
 * channel ("<id> <json>"), finished when every live node answered or after
 * SURVEY_MS. */
typedef struct rsurvey {
  struct rsurvey *next;
  uint64_t id, deadline;
  int expect, got;
  json_t *map;
  eng_json_cb cb;
  void *arg;
  char pattern[256];
} rsurvey;

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
  int check;  /* confirmed again after an outage: check positions (2: a
                 failover, subscribers ahead of the stream are told too) */
  struct rshard *sh; /* the shard its SUBSCRIBE went to (sent) */
  waiter *waiters;
  size_t len;
  char name[];
} rchan;

typedef struct rworker rworker;

typedef struct rshard {
  rworker *w;
  size_t id;  /* unique in its worker: names its ping channel */
  char *host; /* its address (a cluster shard is known by it) */
  int port;
  rconn *cmd, *sub;
  uint64_t ping_seen_ms; /* the last end-to-end ping that came back */
  uint64_t ping_sent_ms;
  uint64_t seq;
  char ping_chan[200];
} rshard;

struct rworker {
  struct reng *e;
  size_t idx;
  hub_local *hl;
  hf_loop *loop;
  rshard **sh;  /* the shards (standalone: as configured; cluster: the masters) */
  size_t nsh;
  size_t shard_ids;
  rshard *bus;  /* whose PUB/SUB connection carries the control and reply channels */
  /* Cluster: the shard (index into sh) of every hash slot (0xFFFF: none), the
   * connection that asks for the slots, and when it last did */
  uint16_t *slot_shard;
  rconn *topo;
  size_t topo_idx;
  uint64_t topo_ms;
  int topo_asking, topo_want;
  rchan **buckets;
  size_t nbuckets, nchans;
  hf_timer tick;
  uint64_t presence_ms, node_ms;
  char reply_chan[160];
  rsurvey *surveys;
  uint64_t survey_seq;
  int recheck; /* some channel's position check is still to be made */
  /* Sentinel mode: the connection to one sentinel (the next one is tried
   * when it fails), and when the master was last asked for */
  rconn *sentinel;
  size_t sentinel_idx;
  uint64_t sentinel_ms;
  int asking;
};

typedef struct reng {
  struct eng base;
  eng_redis_config cfg;
  int cluster;      /* Redis Cluster: shards and slots come from CLUSTER SLOTS */
  size_t nshards;   /* standalone: the configured shards */
  char **hosts;
  int *ports;
  char **s_hosts; /* sentinels, or the cluster's seed nodes */
  int *s_ports;
  size_t nseeds;
  size_t nw;
  rworker *w;
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

/* 64-bit FNV-1a of a channel name: its keys' hash tag (hex) and the seed
 * of its standalone shard. */
static uint64_t chan_hash(const char *ch, size_t len) {
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < len; i++)
    h = (h ^ (uint8_t)ch[i]) * 1099511628211ull;
  return h;
}

/* Jump consistent hash (Lamping & Veach): the standalone shard of a channel. */
static size_t jump(uint64_t key, size_t n) {
  int64_t b = -1, j = 0;
  while (j < (int64_t)n) {
    b = j;
    key = key * 2862933555777941757ull + 1;
    j = (int64_t)((double)(b + 1) * ((double)(1ll << 31) / (double)((key >> 33) + 1)));
  }
  return (size_t)b;
}

/* Redis Cluster's key hash (CRC16-CCITT, XMODEM) of a hash tag, mod 16384. */
static uint16_t slot_of(const char *tag, size_t len) {
  uint16_t crc = 0;
  for (size_t i = 0; i < len; i++) {
    crc ^= (uint16_t)((uint8_t)tag[i] << 8);
    for (int k = 0; k < 8; k++)
      crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
  }
  return crc & 16383;
}

static void hex16(uint64_t h, char out[16]) {
  static const char d[] = "0123456789abcdef";
  for (int i = 15; i >= 0; i--, h >>= 4)
    out[i] = d[h & 15];
}

/* The shard of a channel hash: its slot's master (cluster) or its jump
 * hash (standalone); NULL while the cluster's layout is not known. */
static rshard *shard_by_hash(rworker *w, uint64_t h) {
  if (w->e->cluster) {
    if (!w->slot_shard)
      return NULL;
    char tag[16];
    hex16(h, tag);
    uint16_t i = w->slot_shard[slot_of(tag, 16)];
    return i < w->nsh ? w->sh[i] : NULL;
  }
  return w->nsh ? w->sh[w->nsh == 1 ? 0 : jump(h, w->nsh)] : NULL;
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

/* "<prefix>.<what>.{<16 hex digits>}<ch>": the keys (and the PUB/SUB
 * channel) of one channel share a hash tag made of its hash, so they sit in
 * one cluster slot whatever characters the name holds. */
static int key(char *out, size_t cap, const reng *e, const char *what, const char *ch,
               size_t len) {
  int n = snprintf(out, cap, "%s.%s.{%016llx}%.*s", e->cfg.prefix, what,
                   (unsigned long long)chan_hash(ch, len), (int)len, ch);
  return n > 0 && (size_t)n < cap ? n : -1;
}

#define TAG_LEN 18 /* "{" 16 hex digits "}" */

static struct rshard *shard_for(rworker *w, const char *ch, size_t len) {
  return shard_by_hash(w, chan_hash(ch, len));
}

static rconn *cmd_for(rworker *w, const char *ch, size_t len) {
  struct rshard *s = shard_for(w, ch, len);
  return s ? s->cmd : NULL;
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

/* A channel's waiters are taken off it first and run afterwards, once
 * nothing points at the channel any more: a waiter's callback may end its
 * subscription, and so drop the channel (or others of its bucket). */
static waiter *take_waiters(rchan *c) {
  waiter *q = c->waiters;
  c->waiters = NULL;
  return q;
}

static waiter *join_waiters(waiter *a, waiter *b) {
  if (!a)
    return b;
  waiter *t = a;
  while (t->next)
    t = t->next;
  t->next = b;
  return a;
}

static void run_waiters(waiter *q, int status) {
  while (q) {
    waiter *n = q->next;
    q->fn(q->arg, status);
    free(q);
    q = n;
  }
}

/* SUBSCRIBE (1) or UNSUBSCRIBE (0) "<prefix>.pub.{tag}<ch>" on shard s's
 * PUB/SUB connection. In a cluster this is classic PUB/SUB too (a message
 * reaches every node over the cluster bus; the channel's slot master is
 * where we listen): sharded PUB/SUB (SSUBSCRIBE) pushes replies that
 * Debian's hiredis 0.14 cannot route. */
static int pubsub_cmd(rshard *s, int subscribe, const char *ch, size_t len) {
  reng *e = s->w->e;
  char name[1400];
  int n = key(name, sizeof name, e, "pub", ch, len);
  if (n < 0)
    return -1;
  const char *verb = subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE";
  const char *argv[2] = {verb, name};
  size_t lens[2] = {strlen(verb), (size_t)n};
  return rconn_command(s->sub, NULL, NULL, 2, argv, lens);
}

/* Send rc's SUBSCRIBE to its shard if it is not out yet (and the shard's
 * PUB/SUB connection is up). */
static void subscribe_chan(rworker *w, rchan *rc) {
  if (rc->sent)
    return;
  rshard *s = shard_for(w, rc->name, rc->len);
  if (s && pubsub_cmd(s, 1, rc->name, rc->len) == 0) {
    rc->sent = 1;
    rc->sh = s;
  }
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

static void survey_finish(rworker *w, rsurvey *q) {
  for (rsurvey **pp = &w->surveys; *pp; pp = &(*pp)->next)
    if (*pp == q) {
      *pp = q->next;
      break;
    }
  q->cb(q->arg, ENG_OK, q->map);
  json_decref(q->map);
  free(q);
}

/* "<id> <json>": one node's channels for survey id. */
static void survey_reply(rworker *w, const char *m, size_t n) {
  char *end;
  uint64_t id = strtoull(m, &end, 10);
  if (end == m || (size_t)(end - m) >= n)
    return;
  for (rsurvey *q = w->surveys; q; q = q->next) {
    if (q->id != id)
      continue;
    json_error_t je;
    json_t *v = json_loadb(end + 1, n - (size_t)(end + 1 - m), 0, &je);
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e) {
      json_t *cur = json_object_get(q->map, k);
      json_int_t prev = cur ? json_integer_value(json_object_get(cur, "num_clients")) : 0;
      json_int_t add = json_integer_value(json_object_get(e, "num_clients"));
      json_object_set_new(q->map, k, json_pack("{s:I}", "num_clients", prev + add));
    }
    json_decref(v);
    if (++q->got >= q->expect)
      survey_finish(w, q);
    return;
  }
}

/* "Q <node> <worker> <id> <pattern>": answer with this node's channels. */
static void answer_survey(reng *e, const char *m, size_t n) {
  char node[64], pattern[256] = "";
  unsigned worker;
  unsigned long long id;
  char buf[512];
  if (n >= sizeof buf)
    return;
  memcpy(buf, m, n);
  buf[n] = 0;
  if (sscanf(buf, "Q %63s %u %llu %255[^\n]", node, &worker, &id, pattern) < 3)
    return;
  json_t *map = eng__local_channels(&e->base, pattern);
  char *text = map ? json_dumps(map, JSON_COMPACT) : NULL;
  json_decref(map);
  if (!text)
    return;
  char ch[200], head[32];
  snprintf(ch, sizeof ch, "%s.reply.%s.%u", e->cfg.prefix, node, worker);
  int hl = snprintf(head, sizeof head, "%llu ", id);
  size_t tl = strlen(text);
  char *msg = malloc((size_t)hl + tl);
  if (msg) {
    memcpy(msg, head, (size_t)hl);
    memcpy(msg + hl, text, tl);
    const char *argv[3] = {"PUBLISH", ch, msg};
    size_t lens[3] = {7, strlen(ch), (size_t)hl + tl};
    rconn_command(e->w[0].bus ? e->w[0].bus->cmd : NULL, NULL, NULL, 3, argv, lens);
  }
  free(msg);
  free(text);
}

static void ctl_message(reng *e, const char *m, size_t n) {
  if (n > 2 && m[0] == 'Q') {
    answer_survey(e, m, n);
    return;
  }
  /* "C <node> <bytes>": run the control command on every worker here */
  const char *sp = n > 2 ? memchr(m + 2, ' ', n - 2) : NULL;
  if (n < 2 || m[0] != 'C' || !sp || !e->ctl)
    return;
  size_t off = (size_t)(sp - m) + 1;
  hub_broadcast_ctl(e->base.h, e->ctl, m + off, n - off);
}

typedef struct {
  rworker *w;
  int ahead_too;
  size_t len;
  char name[];
} check_ctx;

static void on_read_positions(void *arg, redisReply *r);
static int script_missing(rworker *w, const redisReply *r);
static int master_moved(rworker *w, const redisReply *r);
static int cluster_moved(rworker *w, const redisReply *r);
static void ask_master(rworker *w);
static void ask_slots(rworker *w);
static void on_slots(void *arg, redisReply *r);
static void subscribe_bus(struct rshard *s);

/* Compare the positioned subscribers of rc with its stream in Redis (after
 * an outage of its PUB/SUB connection). If the request cannot go out or
 * fails, rc->check stays set and the worker's tick tries again. */
static void send_check(rworker *w, rchan *rc) {
  reng *e = w->e;
  char k1[1400], k2[1400];
  if (key(k1, sizeof k1, e, "stream", rc->name, rc->len) < 0 ||
      key(k2, sizeof k2, e, "meta", rc->name, rc->len) < 0) {
    rc->check = 0; /* a name too long for a key has no stream */
    return;
  }
  /* a stream Redis lost gets a new epoch here: its subscribers see it differ */
  char ep[STREAM_EPOCH_LEN + 1], mt[24];
  stream_epoch_text(new_epoch(e), ep);
  snprintf(mt, sizeof mt, "%llu", (unsigned long long)e->cfg.meta_ttl_ms);
  const char *argv[11] = {"EVALSHA", e->sha_read, "2", k1, k2, ep, mt, "0", "0", "0", "0"};
  size_t lens[11];
  for (int i = 0; i < 11; i++)
    lens[i] = strlen(argv[i]);
  check_ctx *ctx = malloc(sizeof *ctx + rc->len);
  if (!ctx) {
    w->recheck = 1;
    return;
  }
  ctx->w = w;
  ctx->ahead_too = rc->check == 2;
  ctx->len = rc->len;
  memcpy(ctx->name, rc->name, rc->len);
  if (rconn_command(cmd_for(w, rc->name, rc->len), on_read_positions, ctx, 11, argv,
                    lens) < 0) {
    free(ctx);
    w->recheck = 1;
    return;
  }
  rc->check = 0;
}

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
  /* "<prefix>.pub.{tag}<ch>": a channel's publications */
  const char *ch = NULL;
  size_t len = 0;
  if ((size_t)name->len > plen + 5 + TAG_LEN && memcmp(name->str, e->cfg.prefix, plen) == 0 &&
      memcmp(name->str + plen, ".pub.{", 6) == 0) {
    ch = name->str + plen + 5 + TAG_LEN;
    len = (size_t)name->len - plen - 5 - TAG_LEN;
  }
  if (strcmp(kind->str, "message") == 0 && third->type == REDIS_REPLY_STRING) {
    if (ch)
      on_pub(w, ch, len, third->str, (size_t)third->len);
    else if (strcmp(name->str, s->ping_chan) == 0)
      s->ping_seen_ms = hf_loop_now(w->loop);
    else if (strcmp(name->str, w->reply_chan) == 0)
      survey_reply(w, third->str, (size_t)third->len);
    else if ((size_t)name->len == plen + 8 && memcmp(name->str + plen, ".control", 8) == 0)
      ctl_message(e, third->str, (size_t)third->len);
    return;
  }
  if (ch && strcmp(kind->str, "subscribe") == 0) {
    rchan *rc = find_chan(w, ch, len, hub_hash(ch, len));
    if (!rc || rc->active || rc->sh != s)
      return;
    rc->active = 1;
    waiter *q = take_waiters(rc);
    if (rc->check) /* back after an outage: did anyone miss something? */
      send_check(w, rc);
    run_waiters(q, ENG_OK);
  }
}

static void on_read_positions(void *arg, redisReply *r) {
  check_ctx *x = arg;
  if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
      r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_STRING) {
    uint64_t top = (uint64_t)r->element[0]->integer;
    uint64_t epoch = stream_epoch_parse(r->element[1]->str, (size_t)r->element[1]->len);
    hub_check_positions(x->w->hl, x->name, x->len, top, epoch, x->ahead_too);
  } else { /* not checked: again from the tick */
    script_missing(x->w, r);
    rchan *rc = find_chan(x->w, x->name, x->len, hub_hash(x->name, x->len));
    if (rc) {
      rc->check = x->ahead_too ? 2 : 1;
      x->w->recheck = 1;
    }
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

/* A Redis that lost its scripts (SCRIPT FLUSH, a restarted or promoted
 * replica behind the same address): this request fails as temporary and
 * the worker loads them again on every shard. 1 if r was that error. */
static int script_missing(rworker *w, const redisReply *r) {
  if (master_moved(w, r) || cluster_moved(w, r))
    return 1;
  if (!r || r->type != REDIS_REPLY_ERROR || strncmp(r->str, "NOSCRIPT", 8) != 0)
    return 0;
  for (size_t i = 0; i < w->nsh; i++)
    if (rconn_up(w->sh[i]->cmd))
      load_scripts(w, w->sh[i]->cmd);
  return 1;
}

/* The control channel (worker 0 of each node) and the worker's reply
 * channel, on the bus shard's PUB/SUB connection. Classic PUB/SUB: in a
 * cluster it reaches every node whichever master it is published on. */
static void subscribe_bus(rshard *s) {
  rworker *w = s->w;
  const char *argv[2] = {"SUBSCRIBE", w->reply_chan};
  size_t lens[2] = {9, strlen(w->reply_chan)};
  rconn_command(s->sub, NULL, NULL, 2, argv, lens);
  if (w->idx == 0) {
    char ctl[200];
    snprintf(ctl, sizeof ctl, "%s.control", w->e->cfg.prefix);
    argv[1] = ctl;
    lens[1] = strlen(ctl);
    rconn_command(s->sub, NULL, NULL, 2, argv, lens);
  }
}

/* Subscribe the PUB/SUB connection of shard s to everything it needs: the
 * worker's channels of that shard, its ping channel, and (the bus shard)
 * the control and reply channels. */
static void resubscribe(rshard *s) {
  rworker *w = s->w;
  const char *argv[2] = {"SUBSCRIBE", s->ping_chan};
  size_t lens[2] = {9, strlen(s->ping_chan)};
  rconn_command(s->sub, NULL, NULL, 2, argv, lens);
  s->ping_seen_ms = hf_loop_now(w->loop);
  if (s == w->bus)
    subscribe_bus(s);
  for (size_t b = 0; b < w->nbuckets; b++)
    for (rchan *c = w->buckets[b]; c; c = c->next)
      if (!c->sent && shard_for(w, c->name, c->len) == s)
        subscribe_chan(w, c);
}

static void on_state(void *arg, rconn *c, int up, const char *why) {
  rshard *s = arg;
  rworker *w = s->w;
  reng *e = w->e;
  if (up) {
    atomic_fetch_sub(&e->down, 1);
  } else {
    atomic_fetch_add(&e->down, 1);
    MET_INC(MET_ENGINE_DISCONNECTS);
    set_why(e, why);
    ask_master(w);
    w->topo_want = 1; /* a cluster master that failed over */
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
  waiter *failed = NULL;
  for (size_t b = 0; b < w->nbuckets; b++)
    for (rchan *rc = w->buckets[b]; rc; rc = rc->next)
      if (rc->sh == s || (!rc->sent && shard_for(w, rc->name, rc->len) == s)) {
        rc->active = rc->sent = 0;
        rc->sh = NULL;
        if (!rc->check)
          rc->check = 1;
        failed = join_waiters(take_waiters(rc), failed);
      }
  run_waiters(failed, ENG_ETEMP);
}

static void refresh_presence_one(void *arg, const char *ch, size_t len, hub_sub *s);

/* The command connection of the shard holding the node registry (keys
 * tagged {nodes}). */
static rconn *nodes_conn(rworker *w) {
  if (!w->e->cluster)
    return w->nsh ? w->sh[0]->cmd : NULL;
  if (!w->slot_shard)
    return NULL;
  uint16_t i = w->slot_shard[slot_of("nodes", 5)];
  return i < w->nsh ? w->sh[i]->cmd : NULL;
}

/* This node's entry in the registry (info across nodes). */
static void register_node(rworker *w, uint64_t now) {
  reng *e = w->e;
  if (!e->base.local.node)
    return;
  jw_buf b;
  jw_init(&b);
  e->base.local.node(e->base.local.arg, &b);
  if (jw_ok(&b)) {
    char k1[200], k2[200], ms[24];
    snprintf(k1, sizeof k1, "%s.{nodes}", e->cfg.prefix);
    snprintf(k2, sizeof k2, "%s.{nodes}.seen", e->cfg.prefix);
    snprintf(ms, sizeof ms, "%llu", (unsigned long long)hf_wall_ms());
    const char *a1[4] = {"HSET", k1, e->base.node, b.p};
    size_t l1[4] = {4, strlen(k1), strlen(e->base.node), b.len};
    const char *a2[4] = {"ZADD", k2, ms, e->base.node};
    size_t l2[4] = {4, strlen(k2), strlen(ms), strlen(e->base.node)};
    rconn *c = nodes_conn(w);
    rconn_command(c, NULL, NULL, 4, a1, l1);
    rconn_command(c, NULL, NULL, 4, a2, l2);
    w->node_ms = now;
  }
  jw_free(&b);
}

/* ---- Sentinel ------------------------------------------------------------------------ */

static void log_master(rworker *w, const char *host, int port) {
  srv_logline l;
  srv_log_begin(&l, LOG_INFO, "engine_redis_master");
  srv_log_str(&l, "master", w->e->cfg.sentinel_master);
  char addr[300];
  snprintf(addr, sizeof addr, "%s:%d", host, port);
  srv_log_str(&l, "address", addr);
  srv_log_int(&l, "worker", (long long)w->idx);
  srv_log_end(&l);
}

/* SENTINEL get-master-addr-by-name: {ip, port}, or nil for an unknown name. */
static void on_master_addr(void *arg, redisReply *r) {
  rworker *w = arg;
  w->asking = 0;
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
      r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
    if (r && r->type == REDIS_REPLY_NIL)
      set_why(w->e, "the sentinels do not know engine.redis.sentinel_master_name");
    return;
  }
  const char *host = r->element[0]->str;
  int port = atoi(r->element[1]->str);
  if (port <= 0 || port > 65535)
    return;
  int first = !*rconn_host(w->sh[0]->cmd);
  int changed = rconn_set_address(w->sh[0]->cmd, host, port);
  if (rconn_set_address(w->sh[0]->sub, host, port) > 0 || changed > 0) {
    log_master(w, host, port);
    /* a failover: the new master may lack what the old one acknowledged
     * last; subscribers already past its streams' tops are told too */
    for (size_t b = 0; !first && b < w->nbuckets; b++)
      for (rchan *rc = w->buckets[b]; rc; rc = rc->next)
        rc->check = 2; /* the PUB/SUB connection was just reset: confirmed again soon */
  }
}

static void ask_master(rworker *w) {
  if (!w->sentinel || w->asking || !rconn_up(w->sentinel))
    return;
  const char *m = w->e->cfg.sentinel_master;
  const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", m};
  size_t lens[3] = {8, 23, strlen(m)};
  if (rconn_command(w->sentinel, on_master_addr, w, 3, argv, lens) == 0) {
    w->asking = 1;
    w->sentinel_ms = hf_loop_now(w->loop);
  }
}

static void on_sentinel_state(void *arg, rconn *c, int up, const char *why) {
  rworker *w = arg;
  reng *e = w->e;
  if (up) {
    ask_master(w);
    return;
  }
  w->asking = 0;
  srv_logline l;
  srv_log_begin(&l, LOG_WARN, "engine_redis_sentinel_down");
  srv_log_str(&l, "reason", why);
  srv_log_int(&l, "worker", (long long)w->idx);
  srv_log_end(&l);
  if (e->nseeds > 1) { /* the next one */
    w->sentinel_idx = (w->sentinel_idx + 1) % e->nseeds;
    rconn_set_address(c, e->s_hosts[w->sentinel_idx], e->s_ports[w->sentinel_idx]);
  }
}

/* A reply that says the master moved: READONLY (it was demoted) makes the
 * worker drop its command connections and ask the sentinels again. */
static int master_moved(rworker *w, const redisReply *r) {
  if (!r || r->type != REDIS_REPLY_ERROR || strncmp(r->str, "READONLY", 8) != 0)
    return 0;
  for (size_t i = 0; i < w->nsh; i++)
    if (rconn_up(w->sh[i]->cmd))
      rconn_reset(w->sh[i]->cmd, "READONLY: the master became a replica");
  ask_master(w);
  return 1;
}

/* ---- shards ---------------------------------------------------------------------- */

/* A shard's two connections; host "" waits for Sentinel to name the master.
 * Both start down (counted in e->down until they come up). */
static rshard *new_shard(rworker *w, const char *host, int port) {
  reng *e = w->e;
  rshard *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->w = w;
  s->id = w->shard_ids++;
  s->host = strdup(host);
  s->port = port;
  snprintf(s->ping_chan, sizeof s->ping_chan, "%s.ping.%s.%zu.%zu", e->cfg.prefix, e->base.node,
           w->idx, s->id);
  rconn_config rc = {.loop = w->loop,
                     .host = host,
                     .port = port,
                     .user = e->cfg.user,
                     .password = e->cfg.password,
                     .db = e->cfg.db,
                     .client_name = e->cfg.client_name,
                     .connect_timeout_ms = e->cfg.connect_timeout_ms,
                     .io_timeout_ms = e->cfg.io_timeout_ms,
                     .require_master = e->cfg.nsentinels > 0,
                     .on_state = on_state,
                     .on_message = on_message,
                     .arg = s};
  atomic_fetch_add(&e->down, 2);
  if (s->host)
    s->cmd = rconn_new(&rc);
  rc.pubsub = 1;
  if (s->cmd)
    s->sub = rconn_new(&rc);
  return s;
}

static int shard_ok(const rshard *s) { return s->host && s->cmd && s->sub; }

/* Close a shard's connections (their pending requests fail) and free it. */
static void free_shard(rworker *w, rshard *s) {
  int down = (!s->cmd || !rconn_up(s->cmd)) + (!s->sub || !rconn_up(s->sub));
  atomic_fetch_sub(&w->e->down, down);
  rconn_free(s->cmd);
  rconn_free(s->sub);
  free(s->host);
  free(s);
}

/* ---- Redis Cluster: the layout ------------------------------------------------------ */

static void ask_slots(rworker *w) {
  if (!w->topo || w->topo_asking || !rconn_up(w->topo))
    return;
  const char *argv[2] = {"CLUSTER", "SLOTS"};
  size_t lens[2] = {7, 5};
  if (rconn_command(w->topo, on_slots, w, 2, argv, lens) == 0) {
    w->topo_asking = 1;
    w->topo_want = 0;
    w->topo_ms = hf_loop_now(w->loop);
  }
}

static void log_layout(rworker *w) {
  srv_logline l;
  srv_log_begin(&l, LOG_INFO, "engine_redis_cluster_layout");
  char masters[512] = "";
  size_t n = 0;
  for (size_t i = 0; i < w->nsh && n < sizeof masters; i++)
    n += (size_t)snprintf(masters + n, sizeof masters - n, "%s%s:%d", i ? "," : "",
                          w->sh[i]->host, w->sh[i]->port);
  srv_log_str(&l, "masters", masters);
  srv_log_int(&l, "worker", (long long)w->idx);
  srv_log_end(&l);
}

/* CLUSTER SLOTS: {{start, end, {host, port, id}, replicas...}, ...}. The
 * masters become the shards (connections to masters that stay are kept),
 * every slot maps to its master's shard, and every channel whose master
 * changed is subscribed again there and its subscribers' positions are
 * checked (publications may have been lost in the move). */
static void on_slots(void *arg, redisReply *r) {
  rworker *w = arg;
  reng *e = w->e;
  w->topo_asking = 0;
  if (!r || r->type != REDIS_REPLY_ARRAY || !r->elements) {
    if (r && r->type == REDIS_REPLY_ERROR)
      set_why(e, r->str);
    return; /* asked again by the tick */
  }
  uint16_t *slots = malloc(16384 * sizeof *slots);
  rshard **nsh = calloc(r->elements + w->nsh, sizeof *nsh);
  char *reused = calloc(w->nsh + 1, 1);
  if (!slots || !nsh || !reused) {
    free(slots);
    free(nsh);
    free(reused);
    return;
  }
  memset(slots, 0xFF, 16384 * sizeof *slots);
  size_t n = 0;
  for (size_t i = 0; i < r->elements; i++) {
    redisReply *g = r->element[i];
    if (g->type != REDIS_REPLY_ARRAY || g->elements < 3 ||
        g->element[0]->type != REDIS_REPLY_INTEGER || g->element[1]->type != REDIS_REPLY_INTEGER ||
        g->element[2]->type != REDIS_REPLY_ARRAY || g->element[2]->elements < 2 ||
        g->element[2]->element[0]->type != REDIS_REPLY_STRING ||
        g->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
      continue;
    long long lo = g->element[0]->integer, hi = g->element[1]->integer;
    const char *host = g->element[2]->element[0]->str;
    int port = (int)g->element[2]->element[1]->integer;
    if (!*host || strcmp(host, "?") == 0) /* unknown endpoint: the one we asked */
      host = rconn_host(w->topo);
    if (lo < 0 || hi > 16383 || lo > hi || port <= 0 || port > 65535)
      continue;
    size_t k = 0;
    while (k < n && !(nsh[k]->port == port && strcmp(nsh[k]->host, host) == 0))
      k++;
    if (k == n) {
      rshard *old = NULL;
      for (size_t j = 0; j < w->nsh && !old; j++)
        if (!reused[j] && w->sh[j]->port == port && strcmp(w->sh[j]->host, host) == 0) {
          old = w->sh[j];
          reused[j] = 1;
        }
      rshard *ns = old ? old : new_shard(w, host, port);
      if (!ns)
        continue;
      if (!shard_ok(ns)) {
        free_shard(w, ns);
        continue;
      }
      nsh[n++] = ns;
    }
    for (long long sl = lo; sl <= hi; sl++)
      slots[sl] = (uint16_t)k;
  }
  int same = n == w->nsh && w->slot_shard && memcmp(slots, w->slot_shard, 16384 * 2) == 0;
  for (size_t k = 0; same && k < n; k++)
    same = nsh[k] == w->sh[k];
  if (same) {
    free(slots);
    free(nsh);
    free(reused);
    return;
  }
  int first = !w->slot_shard;
  rshard **old = w->sh;
  size_t nold = w->nsh;
  free(w->slot_shard);
  w->slot_shard = slots;
  w->sh = nsh;
  w->nsh = n;
  /* the bus stays where it is if its master stays */
  rshard *bus = NULL;
  for (size_t k = 0; k < n && !bus; k++)
    if (nsh[k] == w->bus)
      bus = w->bus;
  if (!bus) {
    w->bus = n ? nsh[0] : NULL;
    if (w->bus && rconn_up(w->bus->sub))
      subscribe_bus(w->bus);
  }
  /* channels whose master changed: to the new one, positions checked */
  for (size_t b = 0; b < w->nbuckets; b++)
    for (rchan *rc = w->buckets[b]; rc; rc = rc->next) {
      rshard *to = shard_for(w, rc->name, rc->len);
      if (rc->sent && rc->sh == to)
        continue;
      if (rc->sent && rc->sh) {
        int alive = 0;
        for (size_t k = 0; k < n; k++)
          alive |= nsh[k] == rc->sh;
        if (alive)
          pubsub_cmd(rc->sh, 0, rc->name, rc->len);
      }
      rc->sent = rc->active = 0;
      rc->sh = NULL;
      if (!rc->check && !first)
        rc->check = 1;
      subscribe_chan(w, rc);
    }
  /* masters that are gone: their pending requests fail now */
  for (size_t j = 0; j < nold; j++)
    if (!reused[j])
      free_shard(w, old[j]);
  free(old);
  free(reused);
  if (first)
    atomic_fetch_sub(&e->down, 1); /* the layout is known */
  log_layout(w);
}

static void on_topo_state(void *arg, rconn *c, int up, const char *why) {
  rworker *w = arg;
  reng *e = w->e;
  if (up) {
    ask_slots(w);
    return;
  }
  w->topo_asking = 0;
  if (e->nseeds > 1) { /* the next seed */
    w->topo_idx = (w->topo_idx + 1) % e->nseeds;
    rconn_set_address(c, e->s_hosts[w->topo_idx], e->s_ports[w->topo_idx]);
  }
}

/* A reply that says the slot lives elsewhere (MOVED, ASK) or the cluster is
 * not serving it right now: the request fails as temporary and the layout
 * is asked for again. */
static int cluster_moved(rworker *w, const redisReply *r) {
  if (!w->e->cluster || !r || r->type != REDIS_REPLY_ERROR)
    return 0;
  if (strncmp(r->str, "MOVED", 5) && strncmp(r->str, "ASK", 3) &&
      strncmp(r->str, "CLUSTERDOWN", 11) && strncmp(r->str, "TRYAGAIN", 8))
    return 0;
  w->topo_want = 1;
  return 1;
}

static void tick(hf_loop *loop, hf_timer *t) {
  rworker *w = (rworker *)((char *)t - offsetof(rworker, tick));
  reng *e = w->e;
  uint64_t now = hf_loop_now(loop);
  for (size_t i = 0; i < w->nsh; i++) {
    rshard *s = w->sh[i];
    if (!rconn_up(s->sub) || !rconn_up(s->cmd))
      continue;
    if (now - s->ping_seen_ms > PING_DEAD_MS) { /* up, yet nothing comes back */
      rconn_reset(s->sub, "PUB/SUB delivers nothing (end-to-end ping lost)");
      continue;
    }
    if (now - s->ping_sent_ms >= PING_EVERY_MS) {
      char seq[24];
      snprintf(seq, sizeof seq, "%llu", (unsigned long long)++s->seq);
      const char *argv[3] = {"PUBLISH", s->ping_chan, seq};
      size_t lens[3] = {7, strlen(s->ping_chan), strlen(seq)};
      if (rconn_command(s->cmd, NULL, NULL, 3, argv, lens) == 0)
        s->ping_sent_ms = now;
    }
  }
  for (rsurvey *q = w->surveys, *next; q; q = next) {
    next = q->next;
    if (now >= q->deadline) /* some node did not answer: what we have */
      survey_finish(w, q);
  }
  /* position checks that could not be made yet (or failed) */
  if (w->recheck) {
    w->recheck = 0;
    for (size_t b = 0; b < w->nbuckets; b++)
      for (rchan *rc = w->buckets[b]; rc; rc = rc->next)
        if (rc->check && rc->active && rconn_up(cmd_for(w, rc->name, rc->len)))
          send_check(w, rc);
  }
  if (w->idx == 0 && now - w->node_ms >= NODE_EVERY_MS && rconn_up(nodes_conn(w)))
    register_node(w, now);
  /* Cluster: the slots again now and then, and at once after a redirection
   * or a lost connection */
  if (w->topo && (w->topo_want || now - w->topo_ms >= TOPO_EVERY_MS))
    ask_slots(w);
  /* Sentinel: ask again now and then (a failover that left the old master
   * alive), and at once while the master cannot be reached */
  if (w->sentinel && (now - w->sentinel_ms >= SENTINEL_EVERY_MS ||
                      !rconn_up(w->sh[0]->cmd) || !rconn_up(w->sh[0]->sub)))
    ask_master(w);
  if (now - w->presence_ms >= e->cfg.presence_ttl_ms / 3) {
    w->presence_ms = now;
    hub_each_local_sub(w->hl, HUB_SUB_PRESENCE, refresh_presence_one, w);
  }
  hf_timer_set(loop, t, TICK_MS);
}

/* ---- operations ---------------------------------------------------------------------- */

typedef struct {
  rworker *w;
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
  } else if (r && r->type == REDIS_REPLY_ERROR && !script_missing(x->w, r)) {
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
  rconn *c = cmd_for(w, p->ch, p->len);
  pub_ctx *x = malloc(sizeof *x);
  if (x)
    x->w = w;
  char k1[1400], k2[1400], k3[1700], k4[1400];
  stream_pos none = {0, 0};
  if (!x || key(k1, sizeof k1, e, "stream", p->ch, p->len) < 0 ||
      key(k2, sizeof k2, e, "meta", p->ch, p->len) < 0 ||
      key(k4, sizeof k4, e, "pub", p->ch, p->len) < 0) {
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
      snprintf(k3, sizeof k3, "%s.idem.{%016llx}%.*s.%.*s", e->cfg.prefix,
               (unsigned long long)chan_hash(p->ch, p->len), (int)p->len, p->ch,
               (int)p->idem_len, p->idem_key);
    else /* a key of the same slot, never written */
      snprintf(k3, sizeof k3, "%s.idem.{%016llx}", e->cfg.prefix,
               (unsigned long long)chan_hash(p->ch, p->len));
    char size[24], ttl[24], mttl[24], iw[24], fl[8], ep[STREAM_EPOCH_LEN + 1];
    snprintf(size, sizeof size, "%u", p->history ? p->history->size : 0);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)(p->history ? p->history->ttl_ms : 0));
    snprintf(mttl, sizeof mttl, "%llu",
             (unsigned long long)(p->history ? p->history->meta_ttl_ms : e->cfg.meta_ttl_ms));
    snprintf(iw, sizeof iw, "%llu", (unsigned long long)e->cfg.idem_window_ms);
    snprintf(fl, sizeof fl, "%u", flags);
    stream_epoch_text(new_epoch(e), ep);
    const char *argv[19] = {"EVALSHA", e->sha_pub, "4", k1, k2, k3, k4,
                            p->data, p->info ? p->info : "", p->tags ? p->tags : "",
                            size, ttl, mttl, ep, iw,
                            p->delta && p->delta_allowed ? "1" : "0",
                            p->history ? "1" : "0", fl, p->idem_key ? "1" : "0"};
    size_t lens[19];
    for (int i = 0; i < 19; i++)
      lens[i] = strlen(argv[i]);
    lens[7] = p->data_len;
    lens[8] = p->info_len;
    lens[9] = p->tags_len;
    rc = rconn_command(c, on_published, x, 19, argv, lens);
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
  int n = key(name, sizeof name, e, "pub", ch, len);
  char *msg = malloc(info_len + 2);
  if (!msg || n < 0) {
    free(msg);
    return -1;
  }
  msg[0] = leave ? 'L' : 'J';
  msg[1] = ' ';
  memcpy(msg + 2, info, info_len);
  const char *argv[3] = {"PUBLISH", name, msg};
  size_t lens[3] = {7, (size_t)n, info_len + 2};
  int rc = rconn_command(cmd_for(w, ch, len), NULL, NULL, 3, argv, lens);
  free(msg);
  return rc;
}

typedef struct {
  rworker *w;
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
      res.binary += eng__encode_pub(&pubs, &p, x->form, x->ch, x->len, !res.count);
      res.count++;
    }
    if (!jw_ok(&pubs))
      st = ENG_ENOMEM;
  } else {
    script_missing(x->w, r);
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
  x->w = w;
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
  if (rconn_command(cmd_for(w, ch, len), on_read, x, 11, argv, lens) < 0) {
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
  if (rconn_command(cmd_for(w, ch, len), on_done, x, 2, argv, lens) < 0) {
    free(x);
    cb(arg, ENG_ETEMP);
  }
  return 0;
}

typedef struct {
  rworker *w;
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
      int ok = r->elements == 2 && r->element[0]->type == REDIS_REPLY_INTEGER &&
               r->element[1]->type == REDIS_REPLY_INTEGER;
      long long clients = ok ? r->element[0]->integer : 0;
      long long users = ok ? r->element[1]->integer : 0;
      jw_lit(&out, "\"num_clients\":");
      jw_u64(&out, (uint64_t)clients);
      jw_lit(&out, ",\"num_users\":");
      jw_u64(&out, (uint64_t)users);
    } else {
      jw_lit(&out, "\"presence\":{");
      int first = 1;
      for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (r->element[i]->type != REDIS_REPLY_STRING ||
            r->element[i + 1]->type != REDIS_REPLY_STRING)
          continue;
        if (!first)
          jw_char(&out, ',');
        first = 0;
        jw_str(&out, r->element[i]->str, (size_t)r->element[i]->len);
        jw_char(&out, ':');
        jw_raw(&out, r->element[i + 1]->str, (size_t)r->element[i + 1]->len);
      }
      jw_char(&out, '}');
    }
    if (!jw_ok(&out))
      st = ENG_ENOMEM;
  } else {
    script_missing(x->w, r);
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
  x->w = w;
  x->cb = cb;
  x->arg = arg;
  x->stats = stats;
  const char *argv[6] = {"EVALSHA", e->sha_pres, "2", k1, k2, stats ? "1" : "0"};
  size_t lens[6];
  for (int i = 0; i < 6; i++)
    lens[i] = strlen(argv[i]);
  if (rconn_command(cmd_for(w, ch, len), on_presence, x, 6, argv, lens) < 0) {
    jw_buf none = {0};
    free(x);
    cb(arg, ENG_ETEMP, &none);
  }
  return 0;
}

/* ZADD / HSET (add) or ZREM / HDEL (remove) for one subscriber. */
static void presence_write(rworker *w, const char *ch, size_t len, const hub_sub *s, int add) {
  reng *e = w->e;
  char k1[1400], k2[1400], id[37];
  if (presence_keys(e, ch, len, k1, k2) < 0 || (add && !s->info))
    return;
  const char *user;
  const uint8_t *client;
  hub_sub_member(hub_of(w->hl), s, &user, &client);
  hf_conn_id_format(client, id);
  rconn *c = cmd_for(w, ch, len);
  if (add) {
    char exp[24], ttl[24];
    snprintf(exp, sizeof exp, "%llu",
             (unsigned long long)(hf_wall_ms() + e->cfg.presence_ttl_ms));
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)e->cfg.presence_ttl_ms * 2);
    const char *a1[4] = {"ZADD", k1, exp, id};
    const char *a2[4] = {"HSET", k2, id, s->info};
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
    const char *a1[3] = {"ZREM", k1, id};
    const char *a2[3] = {"HDEL", k2, id};
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
  if (!q) { /* -1: the caller releases nothing */
    if (!--c->refs)
      drop_chan(w, c);
    return -1;
  }
  /* from here on the reference stays until the caller's node_unsubscribe,
   * whatever ready reports */
  q->fn = ready;
  q->arg = arg;
  q->next = c->waiters;
  c->waiters = q;
  if (!c->sent) {
    subscribe_chan(w, c);
    if (!c->sent) { /* Redis away: fail fast */
      c->waiters = q->next;
      free(q);
      ready(arg, ENG_ETEMP);
      return 0;
    }
  }
  return 0;
}

static void r_node_unsubscribe(eng *eg, hub_local *from, const char *ch, size_t len) {
  reng *e = R(eg);
  rworker *w = worker_of(e, from);
  rchan *c = find_chan(w, ch, len, hub_hash(ch, len));
  if (!c || --c->refs)
    return;
  if (c->sent && c->sh)
    pubsub_cmd(c->sh, 0, ch, len);
  waiter *q = take_waiters(c);
  drop_chan(w, c);
  run_waiters(q, ENG_ETEMP);
}

static int r_broadcast_ctl(eng *eg, hub_local *from, hub_ctl_fn fn, const void *arg,
                           size_t len) {
  reng *e = R(eg);
  if (fn != e->ctl)
    return -1; /* only the registered control handler travels between nodes */
  rworker *w = worker_of(e, from);
  char ch[200];
  snprintf(ch, sizeof ch, "%s.control", e->cfg.prefix);
  size_t n = 2 + strlen(e->base.node) + 1 + len;
  char *msg = malloc(n);
  if (!msg)
    return -1;
  int hl = snprintf(msg, n, "C %s ", e->base.node);
  memcpy(msg + hl, arg, len);
  const char *argv[3] = {"PUBLISH", ch, msg};
  size_t lens[3] = {7, strlen(ch), (size_t)hl + len};
  int rc = rconn_command(w->bus ? w->bus->cmd : NULL, NULL, NULL, 3, argv, lens);
  free(msg);
  return rc;
}

typedef struct {
  rworker *w;
  eng_json_cb cb;
  void *arg;
  int survey; /* channels: the node list is only the first step */
  char pattern[256];
} nodes_ctx;

static int send_nodes(rworker *w, rconn_reply_fn fn, void *arg) {
  reng *e = w->e;
  char k1[200], k2[200], cut[24];
  snprintf(k1, sizeof k1, "%s.{nodes}", e->cfg.prefix);
  snprintf(k2, sizeof k2, "%s.{nodes}.seen", e->cfg.prefix);
  snprintf(cut, sizeof cut, "%llu", (unsigned long long)(hf_wall_ms() - NODE_DEAD_MS));
  const char *argv[6] = {"EVAL", NODES_SCRIPT, "2", k1, k2, cut};
  size_t lens[6];
  for (int i = 0; i < 6; i++)
    lens[i] = strlen(argv[i]);
  return rconn_command(nodes_conn(w), fn, arg, 6, argv, lens);
}

static void on_nodes(void *arg, redisReply *r) {
  nodes_ctx *x = arg;
  rworker *w = x->w;
  reng *e = w->e;
  if (!r || r->type != REDIS_REPLY_ARRAY) {
    x->cb(x->arg, ENG_ETEMP, NULL);
    free(x);
    return;
  }
  json_t *arr = json_array();
  for (size_t i = 0; arr && i < r->elements; i++)
    if (r->element[i]->type == REDIS_REPLY_STRING) {
      json_error_t je;
      json_t *n = json_loadb(r->element[i]->str, (size_t)r->element[i]->len, 0, &je);
      if (n)
        json_array_append_new(arr, n);
    }
  if (!x->survey) {
    if (arr && !json_array_size(arr)) { /* not registered yet: at least this node */
      json_decref(arr);
      arr = eng__local_nodes(&e->base);
    }
    x->cb(x->arg, arr ? ENG_OK : ENG_ENOMEM, arr);
    json_decref(arr);
    free(x);
    return;
  }
  /* channels: ask every live node, wait for as many answers */
  int expect = arr && json_array_size(arr) ? (int)json_array_size(arr) : 1;
  json_decref(arr);
  rsurvey *q = calloc(1, sizeof *q);
  if (!q || !(q->map = json_object())) {
    free(q);
    x->cb(x->arg, ENG_ENOMEM, NULL);
    free(x);
    return;
  }
  q->id = ++w->survey_seq;
  q->expect = expect;
  q->cb = x->cb;
  q->arg = x->arg;
  q->deadline = hf_loop_now(w->loop) + SURVEY_MS;
  snprintf(q->pattern, sizeof q->pattern, "%s", x->pattern);
  free(x);
  char ch[200], msg[512];
  snprintf(ch, sizeof ch, "%s.control", e->cfg.prefix);
  int n = snprintf(msg, sizeof msg, "Q %s %zu %llu %s", e->base.node, w->idx,
                   (unsigned long long)q->id, q->pattern);
  const char *argv[3] = {"PUBLISH", ch, msg};
  size_t lens[3] = {7, strlen(ch), (size_t)n};
  q->next = w->surveys;
  w->surveys = q;
  if (rconn_command(w->bus ? w->bus->cmd : NULL, NULL, NULL, 3, argv, lens) < 0) {
    w->surveys = q->next;
    q->cb(q->arg, ENG_ETEMP, NULL);
    json_decref(q->map);
    free(q);
  }
}

static int r_nodes_or_channels(eng *eg, hub_local *from, const char *pattern, eng_json_cb cb,
                               void *arg, int survey) {
  reng *e = R(eg);
  nodes_ctx *x = calloc(1, sizeof *x);
  if (!x)
    return -1;
  x->w = worker_of(e, from);
  x->cb = cb;
  x->arg = arg;
  x->survey = survey;
  snprintf(x->pattern, sizeof x->pattern, "%s", pattern ? pattern : "");
  if (send_nodes(x->w, on_nodes, x) < 0) {
    free(x);
    cb(arg, ENG_ETEMP, NULL);
  }
  return 0;
}

static int r_nodes(eng *eg, hub_local *from, eng_json_cb cb, void *arg) {
  return r_nodes_or_channels(eg, from, NULL, cb, arg, 0);
}

static int r_channels(eng *eg, hub_local *from, const char *pattern, eng_json_cb cb, void *arg) {
  return r_nodes_or_channels(eg, from, pattern, cb, arg, 1);
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
    rconn_free(w->sentinel);
    rconn_free(w->topo);
    for (size_t s = 0; s < w->nsh; s++)
      free_shard(w, w->sh[s]);
    free(w->sh);
    free(w->slot_shard);
    while (w->surveys) {
      rsurvey *q = w->surveys;
      w->surveys = q->next;
      q->cb(q->arg, ENG_ETEMP, NULL);
      json_decref(q->map);
      free(q);
    }
    for (size_t b = 0; b < w->nbuckets; b++)
      while (w->buckets[b]) {
        rchan *c = w->buckets[b];
        w->buckets[b] = c->next;
        waiter *q = take_waiters(c);
        free(c);
        run_waiters(q, ENG_ETEMP);
      }
    free(w->buckets);
  }
  for (size_t s = 0; e->hosts && s < e->nshards; s++)
    free(e->hosts[s]);
  free(e->hosts);
  free(e->ports);
  for (size_t s = 0; e->s_hosts && s < e->nseeds; s++)
    free(e->s_hosts[s]);
  free(e->s_hosts);
  free(e->s_ports);
  free(e->w);
  pthread_mutex_destroy(&e->why_mu);
  free(e);
}

static const eng_ops redis_ops = {
    .name = "redis",
    .publish = r_publish,
    .join_leave = r_join_leave,
    .read = r_read,
    .remove_history = r_remove_history,
    .presence = r_presence,
    .presence_update = r_presence_update,
    .node_subscribe = r_node_subscribe,
    .node_unsubscribe = r_node_unsubscribe,
    .broadcast_ctl = r_broadcast_ctl,
    .nodes = r_nodes,
    .channels = r_channels,
    .healthy = r_healthy,
    .free = r_free,
};

/* ---- creation ----------------------------------------------------------------------- */

static int parse_address(const char *a, char **host, int *port, int default_port) {
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
  *port = colon ? atoi(colon + 1) : default_port;
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
  eng__init(&e->base, &redis_ops, h);
  e->cfg = *cfg;
  e->ctl = ctl;
  e->nw = nworkers;
  e->cluster = cfg->nclusters > 0;
  /* Sentinel: one master; cluster: the masters it names */
  e->nshards = cfg->nsentinels ? 1 : e->cluster ? 0 : cfg->naddresses;
  pthread_mutex_init(&e->why_mu, NULL);
  e->hosts = calloc(e->nshards ? e->nshards : 1, sizeof *e->hosts);
  e->ports = calloc(e->nshards ? e->nshards : 1, sizeof *e->ports);
  e->w = calloc(nworkers, sizeof *e->w);
  if (!e->hosts || !e->ports || !e->w) {
    r_free(&e->base);
    snprintf(err, errcap, "out of memory");
    return NULL;
  }
  for (size_t i = 0; !cfg->nsentinels && !e->cluster && i < e->nshards; i++)
    if (parse_address(cfg->addresses[i], &e->hosts[i], &e->ports[i], 6379) < 0) {
      snprintf(err, errcap, "engine.redis.address \"%s\": expected host:port or redis://host:port",
               cfg->addresses[i]);
      r_free(&e->base);
      return NULL;
    }
  if (cfg->nsentinels || e->cluster) { /* where to ask for the data's address */
    size_t n = cfg->nsentinels ? cfg->nsentinels : cfg->nclusters;
    const char *const *a = cfg->nsentinels ? cfg->sentinels : cfg->clusters;
    e->s_hosts = calloc(n, sizeof *e->s_hosts);
    e->s_ports = calloc(n, sizeof *e->s_ports);
    if (!e->s_hosts || !e->s_ports) {
      r_free(&e->base);
      snprintf(err, errcap, "out of memory");
      return NULL;
    }
    for (; e->nseeds < n; e->nseeds++)
      if (parse_address(a[e->nseeds], &e->s_hosts[e->nseeds], &e->s_ports[e->nseeds],
                        cfg->nsentinels ? 26379 : 6379) < 0) {
        snprintf(err, errcap, "engine.redis.%s \"%s\": expected host:port",
                 cfg->nsentinels ? "sentinel_address" : "cluster_address", a[e->nseeds]);
        r_free(&e->base);
        return NULL;
      }
  }
  sha1_hex(REDIS_SCRIPT_PUBLISH, e->sha_pub);
  sha1_hex(REDIS_SCRIPT_READ, e->sha_read);
  sha1_hex(REDIS_SCRIPT_PRESENCE, e->sha_pres);
  /* every connection counts as down until it is up (new_shard adds them);
   * in a cluster, each worker's unknown layout counts too */
  atomic_init(&e->down, e->cluster ? (int)nworkers : 0);
  set_why(e, cfg->nsentinels ? "asking the sentinels for the master"
             : e->cluster    ? "asking the cluster for its slots"
                             : "connecting to Redis");
  return &e->base;
}

int eng_redis_attach(eng *eg, size_t idx, hf_loop *loop, hub_local *hl) {
  reng *e = R(eg);
  rworker *w = &e->w[idx];
  w->e = e;
  w->idx = idx;
  w->loop = loop;
  w->hl = hl;
  snprintf(w->reply_chan, sizeof w->reply_chan, "%s.reply.%s.%zu", e->cfg.prefix, e->base.node, idx);
  int sentinel = e->cfg.nsentinels > 0;
  if (!e->cluster) {
    w->sh = calloc(e->nshards, sizeof *w->sh);
    if (!w->sh)
      return -1;
    for (size_t i = 0; i < e->nshards; i++) {
      rshard *s = new_shard(w, sentinel ? "" : e->hosts[i], /* "": Sentinel tells */
                            sentinel ? 0 : e->ports[i]);
      if (s)
        w->sh[w->nsh++] = s;
      if (!s || !shard_ok(s))
        return -1;
    }
    w->bus = w->sh[0];
  }
  if (sentinel || e->cluster) { /* a connection that asks where the data is */
    size_t i = idx % e->nseeds; /* spread the workers */
    rconn_config rc = {.loop = loop,
                       .host = e->s_hosts[i],
                       .port = e->s_ports[i],
                       .user = sentinel ? e->cfg.sentinel_user : e->cfg.user,
                       .password = sentinel ? e->cfg.sentinel_password : e->cfg.password,
                       .client_name = e->cfg.client_name,
                       .connect_timeout_ms = e->cfg.connect_timeout_ms,
                       .io_timeout_ms = e->cfg.io_timeout_ms,
                       .on_state = sentinel ? on_sentinel_state : on_topo_state,
                       .arg = w};
    rconn *c = rconn_new(&rc);
    if (!c)
      return -1;
    if (sentinel) {
      w->sentinel = c;
      w->sentinel_idx = i;
    } else {
      w->topo = c;
      w->topo_idx = i;
    }
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
