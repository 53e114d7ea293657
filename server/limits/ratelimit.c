/* SPDX-License-Identifier: MIT */
/* Token buckets (integer thousandths of a token, refilled from elapsed
 * monotonic milliseconds) and the striped per-user / per-channel table. */
#include "limits/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static uint64_t cap_of(const rl_rate *r) {
  return (r->burst ? r->burst : r->per_s) * 1000u;
}

static void refill(rl_bucket *b, const rl_rate *r, uint64_t now_ms) {
  uint64_t cap = cap_of(r);
  if (!b->init) {
    b->init = 1;
    b->level = cap;
    b->last_ms = now_ms;
    return;
  }
  if (now_ms > b->last_ms) {
    uint64_t dt = now_ms - b->last_ms;
    /* per_s tokens/s * dt ms = per_s * dt thousandths */
    uint64_t add = dt >= cap ? cap : dt * r->per_s;
    b->level = cap - b->level <= add ? cap : b->level + add;
    b->last_ms = now_ms;
  }
  if (b->level > cap) /* the rate was lowered */
    b->level = cap;
}

int rl_take(rl_bucket *b, const rl_rate *r, uint64_t now_ms, uint64_t cost) {
  if (!r->per_s)
    return 1;
  refill(b, r, now_ms);
  uint64_t cap = cap_of(r);
  uint64_t need = cost >= cap / 1000u ? cap : cost * 1000u;
  if (b->level < need)
    return 0;
  b->level -= need;
  return 1;
}

/* A full bucket after refill: the entry carries no state worth keeping. */
static int idle(rl_bucket *b, const rl_rate *r, uint64_t now_ms) {
  if (!r->per_s)
    return 1;
  refill(b, r, now_ms);
  return b->level >= cap_of(r);
}

#define SHARDS 64
#define SLOTS 256 /* chains per shard */

typedef struct rl_entry {
  struct rl_entry *next;
  rl_bucket b;
  uint64_t conns; /* users: connections held */
  uint32_t hash;
  size_t len;
  char name[];
} rl_entry;

struct rl_user {
  rl_entry e; /* a user entry is an rl_entry; the struct name is opaque */
};

typedef struct {
  pthread_mutex_t mu;
  rl_entry *slot[SLOTS];
  size_t n, sweep_at;
} shard;

struct rl_shared {
  const rl_limits *const *slot;
  shard users[SHARDS], chans[SHARDS], ips[SHARDS];
  pthread_mutex_t accept_mu;
  rl_bucket accept;
};

static uint32_t fnv(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

rl_shared *rl_shared_new(const rl_limits *const *slot) {
  rl_shared *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  t->slot = slot;
  pthread_mutex_init(&t->accept_mu, NULL);
  for (int i = 0; i < SHARDS; i++) {
    pthread_mutex_init(&t->users[i].mu, NULL);
    pthread_mutex_init(&t->chans[i].mu, NULL);
    pthread_mutex_init(&t->ips[i].mu, NULL);
    t->chans[i].sweep_at = t->ips[i].sweep_at = 64;
  }
  return t;
}

static void shard_free(shard *s) {
  for (int j = 0; j < SLOTS; j++)
    while (s->slot[j]) {
      rl_entry *e = s->slot[j];
      s->slot[j] = e->next;
      free(e);
    }
  pthread_mutex_destroy(&s->mu);
}

void rl_shared_free(rl_shared *t) {
  if (!t)
    return;
  for (int i = 0; i < SHARDS; i++) {
    shard_free(&t->users[i]);
    shard_free(&t->chans[i]);
    shard_free(&t->ips[i]);
  }
  pthread_mutex_destroy(&t->accept_mu);
  free(t);
}

static rl_entry **find(shard *s, uint32_t h, const char *name, size_t len) {
  rl_entry **pp = &s->slot[(h / SHARDS) % SLOTS];
  for (; *pp; pp = &(*pp)->next)
    if ((*pp)->hash == h && (*pp)->len == len && !memcmp((*pp)->name, name, len))
      return pp;
  return pp;
}

static rl_entry *entry_new(uint32_t h, const char *name, size_t len) {
  rl_entry *e = calloc(1, sizeof *e + len + 1);
  if (!e)
    return NULL;
  e->hash = h;
  e->len = len;
  memcpy(e->name, name, len);
  return e;
}

int rl_user_acquire(rl_shared *t, const char *user, uint64_t limit, rl_user **out) {
  size_t len = strlen(user);
  uint32_t h = fnv(user, len);
  shard *s = &t->users[h % SHARDS];
  pthread_mutex_lock(&s->mu);
  rl_entry **pp = find(s, h, user, len);
  int rc = 0;
  if (!*pp) {
    if (!(*pp = entry_new(h, user, len)))
      rc = -1;
    else
      s->n++;
  } else if (limit && (*pp)->conns >= limit) {
    rc = 1;
  }
  if (!rc) {
    (*pp)->conns++;
    *out = (rl_user *)*pp;
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

void rl_user_release(rl_shared *t, rl_user *u) {
  if (!u)
    return;
  shard *s = &t->users[u->e.hash % SHARDS];
  pthread_mutex_lock(&s->mu);
  if (--u->e.conns == 0) {
    rl_entry **pp = find(s, u->e.hash, u->e.name, u->e.len);
    *pp = u->e.next;
    s->n--;
    free(u);
  }
  pthread_mutex_unlock(&s->mu);
}

const char *rl_user_name(const rl_user *u) { return u->e.name; }

int rl_user_take(rl_shared *t, rl_user *u, uint64_t now_ms) {
  const rl_rate *r = &rl_limits_get(t->slot)->user;
  if (!r->per_s)
    return 1;
  shard *s = &t->users[u->e.hash % SHARDS];
  pthread_mutex_lock(&s->mu);
  int ok = rl_take(&u->e.b, r, now_ms, 1);
  pthread_mutex_unlock(&s->mu);
  return ok;
}

size_t rl_user_count(rl_shared *t, const char *user) {
  size_t len = strlen(user);
  uint32_t h = fnv(user, len);
  shard *s = &t->users[h % SHARDS];
  pthread_mutex_lock(&s->mu);
  rl_entry **pp = find(s, h, user, len);
  size_t n = *pp ? (size_t)(*pp)->conns : 0;
  pthread_mutex_unlock(&s->mu);
  return n;
}

/* Drop the shard's entries whose buckets are full again; the next sweep
 * waits until the shard has doubled what is left (amortised O(1)). */
static void sweep(const rl_rate *r, shard *s, uint64_t now_ms) {
  for (int j = 0; j < SLOTS; j++)
    for (rl_entry **pp = &s->slot[j]; *pp;) {
      rl_entry *e = *pp;
      if (idle(&e->b, r, now_ms)) {
        *pp = e->next;
        free(e);
        s->n--;
      } else {
        pp = &e->next;
      }
    }
  s->sweep_at = s->n * 2 > 64 ? s->n * 2 : 64;
}

/* One token from key's bucket in a swept table (1 as well on OOM). */
static int keyed_take(shard *tab, const rl_rate *r, const char *key, size_t len,
                      uint64_t now_ms) {
  if (!r->per_s)
    return 1;
  uint32_t h = fnv(key, len);
  shard *s = &tab[h % SHARDS];
  pthread_mutex_lock(&s->mu);
  rl_entry **pp = find(s, h, key, len);
  if (!*pp) {
    if (s->n >= s->sweep_at) {
      sweep(r, s, now_ms);
      pp = find(s, h, key, len);
    }
    if ((*pp = entry_new(h, key, len)))
      s->n++;
  }
  int ok = *pp ? rl_take(&(*pp)->b, r, now_ms, 1) : 1;
  pthread_mutex_unlock(&s->mu);
  return ok;
}

int rl_channel_take(rl_shared *t, const char *ch, size_t len, uint64_t now_ms) {
  return keyed_take(t->chans, &rl_limits_get(t->slot)->channel, ch, len, now_ms);
}

int rl_accept_take(rl_shared *t, const uint8_t *key, size_t len, uint64_t now_ms,
                   int *which) {
  const rl_limits *l = rl_limits_get(t->slot);
  if (l->accept.per_s) {
    pthread_mutex_lock(&t->accept_mu);
    int ok = rl_take(&t->accept, &l->accept, now_ms, 1);
    pthread_mutex_unlock(&t->accept_mu);
    if (!ok) {
      *which = 0;
      return 0;
    }
  }
  if (!keyed_take(t->ips, &l->ip, (const char *)key, len, now_ms)) {
    *which = 1;
    return 0;
  }
  return 1;
}

size_t rl_ip_key(const uint8_t *ip, size_t n, uint8_t out[16]) {
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (n == 16 && !memcmp(ip, mapped, 12)) {
    memcpy(out, ip + 12, 4);
    return 4;
  }
  if (n == 16) {
    memcpy(out, ip, 8);
    return 8;
  }
  memcpy(out, ip, n);
  return n;
}
