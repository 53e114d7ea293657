/* SPDX-License-Identifier: MIT */
/* Publication streams in memory (see stream.h). Per shard: a hash table of
 * streams; each stream a ring of pointers to its publications, oldest
 * first (offsets are contiguous, so only the top is stored); a binary heap
 * of the streams that hold publications, keyed by their oldest
 * publication's time, for the memory cap (evict the oldest first); a
 * table of recent idempotency keys with a FIFO for their expiry. */
#include "channels/stream.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

typedef struct item {
  uint64_t time_ms; /* CLOCK_MONOTONIC ms, for the TTL */
  uint32_t data_len, info_len, tags_len;
  char bytes[]; /* data, info, tags */
} item;

typedef struct stream {
  struct stream *next; /* bucket chain */
  uint32_t hash;
  uint32_t heap_idx; /* position in the shard's heap; UINT32_MAX if absent */
  uint64_t epoch, top;
  item **ring;
  uint32_t cap, head, n;
  uint32_t size_limit;
  uint64_t ttl_ms, meta_ttl_ms;
  uint64_t touched_ms; /* last publication (or creation), for the meta TTL */
  uint64_t bytes;      /* accounted memory of this stream */
  uint32_t len;
  char name[];
} stream;

typedef struct idem {
  struct idem *next;  /* bucket chain */
  struct idem *fnext; /* FIFO (expiry order) */
  uint64_t expires_ms;
  stream_pos pos;
  uint32_t hash;
  uint32_t ch_len, key_len;
  char bytes[]; /* channel, key */
} idem;

typedef struct {
  pthread_mutex_t mu;
  stream **buckets;
  size_t nbuckets, nstreams, npubs;
  size_t sweep_cursor;
  uint64_t bytes;
  uint64_t evicted, expired;
  stream **heap;
  size_t heap_n, heap_cap;
  idem **ibuckets;
  size_t nibuckets, nidem;
  idem *fhead, *ftail;
  uint64_t rng;
} shard;

struct stream_set {
  size_t n;
  stream_limits lim;
  shard *s;
};

/* ---- epochs --------------------------------------------------------------- */

static const char letters[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

void stream_epoch_text(uint64_t epoch, char out[STREAM_EPOCH_LEN + 1]) {
  for (int i = STREAM_EPOCH_LEN - 1; i >= 0; i--) {
    out[i] = letters[epoch % 52];
    epoch /= 52;
  }
  out[STREAM_EPOCH_LEN] = 0;
}

uint64_t stream_epoch_parse(const char *s, size_t n) {
  if (n != STREAM_EPOCH_LEN)
    return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    const char *p = s[i] ? memchr(letters, s[i], 52) : NULL;
    if (!p)
      return 0;
    v = v * 52 + (uint64_t)(p - letters);
  }
  return v;
}

static uint64_t new_epoch(shard *sh) {
  uint64_t max = 1; /* 52^8 */
  for (int i = 0; i < STREAM_EPOCH_LEN; i++)
    max *= 52;
  uint64_t x; /* splitmix64 over a getrandom seed */
  do {
    x = (sh->rng += 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    x %= max;
  } while (!x);
  return x;
}

/* ---- set ------------------------------------------------------------------- */

stream_set *stream_set_new(size_t nshards, const stream_limits *lim) {
  stream_set *ss = calloc(1, sizeof *ss);
  if (!ss)
    return NULL;
  ss->n = nshards ? nshards : 1;
  ss->lim = *lim;
  ss->s = calloc(ss->n, sizeof *ss->s);
  if (!ss->s) {
    free(ss);
    return NULL;
  }
  for (size_t i = 0; i < ss->n; i++) {
    pthread_mutex_init(&ss->s[i].mu, NULL);
    if (getrandom(&ss->s[i].rng, sizeof ss->s[i].rng, 0) != sizeof ss->s[i].rng)
      ss->s[i].rng = (uint64_t)(uintptr_t)&ss->s[i] ^ 0x5DEECE66Dull;
  }
  return ss;
}

static void free_stream(stream *st) {
  for (uint32_t i = 0; i < st->n; i++)
    free(st->ring[(st->head + i) % st->cap]);
  free(st->ring);
  free(st);
}

void stream_set_free(stream_set *ss) {
  if (!ss)
    return;
  for (size_t i = 0; i < ss->n; i++) {
    shard *sh = &ss->s[i];
    for (size_t b = 0; b < sh->nbuckets; b++)
      while (sh->buckets[b]) {
        stream *st = sh->buckets[b];
        sh->buckets[b] = st->next;
        free_stream(st);
      }
    free(sh->buckets);
    free(sh->heap);
    while (sh->fhead) {
      idem *e = sh->fhead;
      sh->fhead = e->fnext;
      free(e);
    }
    free(sh->ibuckets);
    pthread_mutex_destroy(&sh->mu);
  }
  free(ss->s);
  free(ss);
}

size_t stream_shard_of(const stream_set *ss, uint32_t hash) { return hash % ss->n; }

void stream_set_limits(stream_set *ss, const stream_limits *lim) {
  for (size_t i = 0; i < ss->n; i++)
    pthread_mutex_lock(&ss->s[i].mu);
  ss->lim = *lim;
  for (size_t i = 0; i < ss->n; i++)
    pthread_mutex_unlock(&ss->s[i].mu);
}

/* ---- eviction heap (min-heap on the oldest publication's time) ------------ */

static uint64_t heap_key(const stream *st) {
  return st->ring[st->head]->time_ms;
}

static void heap_set(shard *sh, size_t i, stream *st) {
  sh->heap[i] = st;
  st->heap_idx = (uint32_t)i;
}

static void heap_up(shard *sh, size_t i) {
  stream *st = sh->heap[i];
  while (i) {
    size_t p = (i - 1) / 2;
    if (heap_key(sh->heap[p]) <= heap_key(st))
      break;
    heap_set(sh, i, sh->heap[p]);
    i = p;
  }
  heap_set(sh, i, st);
}

static void heap_down(shard *sh, size_t i) {
  stream *st = sh->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= sh->heap_n)
      break;
    if (c + 1 < sh->heap_n && heap_key(sh->heap[c + 1]) < heap_key(sh->heap[c]))
      c++;
    if (heap_key(sh->heap[c]) >= heap_key(st))
      break;
    heap_set(sh, i, sh->heap[c]);
    i = c;
  }
  heap_set(sh, i, st);
}

static int heap_add(shard *sh, stream *st) {
  if (sh->heap_n == sh->heap_cap) {
    size_t cap = sh->heap_cap ? sh->heap_cap * 2 : 64;
    stream **h = realloc(sh->heap, cap * sizeof *h);
    if (!h)
      return -1;
    sh->heap = h;
    sh->heap_cap = cap;
  }
  heap_set(sh, sh->heap_n++, st);
  heap_up(sh, sh->heap_n - 1);
  return 0;
}

static void heap_remove(shard *sh, stream *st) {
  size_t i = st->heap_idx;
  if (i == UINT32_MAX)
    return;
  st->heap_idx = UINT32_MAX;
  stream *last = sh->heap[--sh->heap_n];
  if (i == sh->heap_n)
    return;
  heap_set(sh, i, last);
  heap_up(sh, i);
  heap_down(sh, last->heap_idx);
}

/* The oldest publication of st changed (a trim, or the first append). */
static void heap_fix(shard *sh, stream *st) {
  if (!st->n) {
    heap_remove(sh, st);
    return;
  }
  if (st->heap_idx == UINT32_MAX) {
    if (heap_add(sh, st) < 0)
      return; /* not evictable by the cap; TTLs still apply */
    return;
  }
  heap_down(sh, st->heap_idx);
}

/* ---- streams ------------------------------------------------------------------ */

static size_t item_bytes(const item *it) {
  return sizeof *it + it->data_len + it->info_len + it->tags_len + 16;
}

static stream *find(shard *sh, uint32_t h, const char *ch, size_t len) {
  if (!sh->nbuckets)
    return NULL;
  for (stream *st = sh->buckets[h & (sh->nbuckets - 1)]; st; st = st->next)
    if (st->hash == h && st->len == len && memcmp(st->name, ch, len) == 0)
      return st;
  return NULL;
}

static int grow_buckets(shard *sh) {
  size_t nb = sh->nbuckets ? sh->nbuckets * 2 : 64;
  stream **b = calloc(nb, sizeof *b);
  if (!b)
    return -1;
  for (size_t i = 0; i < sh->nbuckets; i++)
    while (sh->buckets[i]) {
      stream *st = sh->buckets[i];
      sh->buckets[i] = st->next;
      st->next = b[st->hash & (nb - 1)];
      b[st->hash & (nb - 1)] = st;
    }
  free(sh->buckets);
  sh->buckets = b;
  sh->nbuckets = nb;
  sh->sweep_cursor = 0;
  return 0;
}

static void apply_opts(stream *st, const stream_opts *o) {
  st->size_limit = o->size;
  st->ttl_ms = o->ttl_ms;
  st->meta_ttl_ms = o->meta_ttl_ms;
}

static stream *create(shard *sh, uint32_t h, const char *ch, size_t len,
                      const stream_opts *o, uint64_t now) {
  if (sh->nstreams >= sh->nbuckets && grow_buckets(sh) < 0)
    return NULL;
  stream *st = calloc(1, sizeof *st + len + 1);
  if (!st)
    return NULL;
  st->hash = h;
  st->len = (uint32_t)len;
  memcpy(st->name, ch, len);
  st->heap_idx = UINT32_MAX;
  st->epoch = new_epoch(sh);
  st->touched_ms = now;
  st->bytes = sizeof *st + len + 16;
  apply_opts(st, o);
  st->next = sh->buckets[h & (sh->nbuckets - 1)];
  sh->buckets[h & (sh->nbuckets - 1)] = st;
  sh->nstreams++;
  sh->bytes += st->bytes;
  return st;
}

static void unlink_stream(shard *sh, stream *st) {
  stream **pp = &sh->buckets[st->hash & (sh->nbuckets - 1)];
  while (*pp != st)
    pp = &(*pp)->next;
  *pp = st->next;
  heap_remove(sh, st);
  sh->nstreams--;
  sh->npubs -= st->n;
  sh->bytes -= st->bytes;
  free_stream(st);
}

/* Drop the oldest publication of st. */
static void pop_front(shard *sh, stream *st) {
  item *it = st->ring[st->head];
  size_t b = item_bytes(it);
  st->bytes -= b;
  sh->bytes -= b;
  free(it);
  st->head = (st->head + 1) % st->cap;
  st->n--;
  sh->npubs--;
}

/* Apply size and TTL limits to the front of st; keeps the heap right. */
static void trim(shard *sh, stream *st, uint64_t now) {
  int changed = 0;
  while (st->n && (st->n > st->size_limit ||
                   st->ring[st->head]->time_ms + st->ttl_ms <= now)) {
    if (st->n <= st->size_limit)
      sh->expired++;
    pop_front(sh, st);
    changed = 1;
  }
  if (changed)
    heap_fix(sh, st);
}

static int meta_expired(const stream *st, uint64_t now) {
  return !st->n && st->touched_ms + st->meta_ttl_ms <= now;
}

/* The memory cap: evict the oldest publications of the shard. */
static uint64_t enforce_cap(stream_set *ss, shard *sh) {
  uint64_t cap = ss->lim.max_bytes / ss->n, n = 0;
  if (!ss->lim.max_bytes)
    return 0;
  while (sh->bytes > cap && sh->heap_n) {
    stream *st = sh->heap[0];
    pop_front(sh, st);
    heap_fix(sh, st);
    n++;
  }
  sh->evicted += n;
  return n;
}

static int append(shard *sh, stream *st, const stream_pub *p, uint64_t now) {
  if (st->n == st->cap) {
    /* history_size + 1: the append comes before the trim to the size */
    uint32_t cap = st->cap ? st->cap * 2 : 4;
    if (cap > st->size_limit + 1)
      cap = st->size_limit + 1;
    if (cap <= st->cap)
      cap = st->cap + 1;
    item **r = malloc(cap * sizeof *r);
    if (!r)
      return -1;
    for (uint32_t i = 0; i < st->n; i++)
      r[i] = st->ring[(st->head + i) % st->cap];
    free(st->ring);
    st->bytes += (uint64_t)(cap - st->cap) * sizeof *r;
    sh->bytes += (uint64_t)(cap - st->cap) * sizeof *r;
    st->ring = r;
    st->cap = cap;
    st->head = 0;
  }
  item *it = malloc(sizeof *it + p->data_len + p->info_len + p->tags_len);
  if (!it)
    return -1;
  it->time_ms = now;
  it->data_len = p->data_len;
  it->info_len = p->info_len;
  it->tags_len = p->tags_len;
  memcpy(it->bytes, p->data, p->data_len);
  if (p->info_len)
    memcpy(it->bytes + p->data_len, p->info, p->info_len);
  if (p->tags_len)
    memcpy(it->bytes + p->data_len + p->info_len, p->tags, p->tags_len);
  st->ring[(st->head + st->n) % st->cap] = it;
  st->n++;
  sh->npubs++;
  size_t b = item_bytes(it);
  st->bytes += b;
  sh->bytes += b;
  if (st->n == 1)
    heap_fix(sh, st);
  return 0;
}

/* Undo the last append (the accept callback refused it). */
static void pop_back(shard *sh, stream *st) {
  uint32_t last = (st->head + st->n - 1) % st->cap;
  item *it = st->ring[last];
  size_t b = item_bytes(it);
  st->bytes -= b;
  sh->bytes -= b;
  free(it);
  st->n--;
  sh->npubs--;
  if (!st->n)
    heap_remove(sh, st);
}

static void view(const stream *st, uint32_t k, stream_pub *out) {
  const item *it = st->ring[(st->head + k) % st->cap];
  out->offset = st->top - st->n + 1 + k;
  out->data = it->bytes;
  out->data_len = it->data_len;
  out->info = it->info_len ? it->bytes + it->data_len : NULL;
  out->info_len = it->info_len;
  out->tags = it->tags_len ? it->bytes + it->data_len + it->info_len : NULL;
  out->tags_len = it->tags_len;
}

/* ---- idempotency keys ------------------------------------------------------ */

static uint32_t idem_hash(uint32_t ch_hash, const char *k, size_t n) {
  uint32_t h = ch_hash ^ 2166136261u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (uint8_t)k[i]) * 16777619u;
  return h;
}

static void idem_unlink(shard *sh, idem *e) {
  idem **pp = &sh->ibuckets[e->hash & (sh->nibuckets - 1)];
  while (*pp != e)
    pp = &(*pp)->next;
  *pp = e->next;
  sh->nidem--;
}

/* Forget expired keys, and the oldest ones over the bound. */
static void idem_expire(stream_set *ss, shard *sh, uint64_t now) {
  size_t max = ss->lim.idem_max / ss->n + 1;
  while (sh->fhead && (sh->fhead->expires_ms <= now || sh->nidem > max)) {
    idem *e = sh->fhead;
    sh->fhead = e->fnext;
    if (!sh->fhead)
      sh->ftail = NULL;
    idem_unlink(sh, e);
    free(e);
  }
}

static idem *idem_find(shard *sh, uint32_t h, const char *ch, size_t len,
                       const char *k, size_t kl, uint64_t now) {
  if (!sh->nibuckets)
    return NULL;
  for (idem *e = sh->ibuckets[h & (sh->nibuckets - 1)]; e; e = e->next)
    if (e->hash == h && e->ch_len == len && e->key_len == kl &&
        e->expires_ms > now && memcmp(e->bytes, ch, len) == 0 &&
        memcmp(e->bytes + len, k, kl) == 0)
      return e;
  return NULL;
}

static void idem_store(stream_set *ss, shard *sh, uint32_t h, const char *ch,
                       size_t len, const char *k, size_t kl, uint64_t now,
                       const stream_pos *pos) {
  if (!ss->lim.idem_max)
    return;
  if (sh->nidem >= sh->nibuckets) {
    size_t nb = sh->nibuckets ? sh->nibuckets * 2 : 64;
    idem **b = calloc(nb, sizeof *b);
    if (!b)
      return; /* remembering is best effort under OOM */
    for (size_t i = 0; i < sh->nibuckets; i++)
      while (sh->ibuckets[i]) {
        idem *e = sh->ibuckets[i];
        sh->ibuckets[i] = e->next;
        e->next = b[e->hash & (nb - 1)];
        b[e->hash & (nb - 1)] = e;
      }
    free(sh->ibuckets);
    sh->ibuckets = b;
    sh->nibuckets = nb;
  }
  idem *e = malloc(sizeof *e + len + kl);
  if (!e)
    return;
  e->hash = h;
  e->ch_len = (uint32_t)len;
  e->key_len = (uint32_t)kl;
  memcpy(e->bytes, ch, len);
  memcpy(e->bytes + len, k, kl);
  e->expires_ms = now + ss->lim.idem_window_ms;
  e->pos = *pos;
  e->fnext = NULL;
  e->next = sh->ibuckets[h & (sh->nibuckets - 1)];
  sh->ibuckets[h & (sh->nibuckets - 1)] = e;
  if (sh->ftail)
    sh->ftail->fnext = e;
  else
    sh->fhead = e;
  sh->ftail = e;
  sh->nidem++;
  idem_expire(ss, sh, now);
}

/* ---- public operations ------------------------------------------------------- */

stream_status stream_publish(stream_set *ss, uint32_t h, const char *ch,
                             size_t len, const stream_pub *p,
                             const stream_publish_req *rq, stream_pos *pos,
                             stream_accept_fn accept, void *arg,
                             uint64_t *evicted) {
  shard *sh = &ss->s[h % ss->n];
  stream_status res = STREAM_OK;
  *evicted = 0;
  pos->offset = pos->epoch = 0;
  pthread_mutex_lock(&sh->mu);
  uint32_t ih = 0;
  if (rq->idem_key) {
    idem_expire(ss, sh, rq->now_ms);
    ih = idem_hash(h, rq->idem_key, rq->idem_len);
    idem *e = idem_find(sh, ih, ch, len, rq->idem_key, rq->idem_len, rq->now_ms);
    if (e) {
      *pos = e->pos;
      res = STREAM_DUPLICATE;
      goto out;
    }
  }
  if (!rq->opts) {
    if (accept(arg, pos, NULL) < 0) {
      res = STREAM_ENOMEM;
      goto out;
    }
  } else {
    stream *st = find(sh, h, ch, len);
    if (st && meta_expired(st, rq->now_ms)) {
      unlink_stream(sh, st); /* a new incarnation: new epoch */
      st = NULL;
    }
    if (!st && !(st = create(sh, h, ch, len, rq->opts, rq->now_ms))) {
      res = STREAM_ENOMEM;
      goto out;
    }
    apply_opts(st, rq->opts);
    trim(sh, st, rq->now_ms);
    stream_pub prev, *pp = NULL;
    if (st->n) {
      view(st, st->n - 1, &prev);
      pp = &prev;
    }
    if (append(sh, st, p, rq->now_ms) < 0) {
      res = STREAM_ENOMEM;
      goto out;
    }
    st->top++;
    st->touched_ms = rq->now_ms;
    pos->offset = st->top;
    pos->epoch = st->epoch;
    if (accept(arg, pos, pp) < 0) {
      pop_back(sh, st);
      st->top--;
      pos->offset = pos->epoch = 0;
      res = STREAM_ENOMEM;
      goto out;
    }
    trim(sh, st, rq->now_ms); /* history_size */
    *evicted = enforce_cap(ss, sh);
  }
  if (rq->idem_key)
    idem_store(ss, sh, ih, ch, len, rq->idem_key, rq->idem_len, rq->now_ms, pos);
out:
  pthread_mutex_unlock(&sh->mu);
  return res;
}

long stream_read(stream_set *ss, uint32_t h, const char *ch, size_t len,
                 const stream_opts *opts, const stream_read_req *rq,
                 stream_pos *top, uint64_t *first, stream_each_fn each,
                 void *arg) {
  shard *sh = &ss->s[h % ss->n];
  long count = 0;
  pthread_mutex_lock(&sh->mu);
  stream *st = find(sh, h, ch, len);
  if (st && meta_expired(st, rq->now_ms)) {
    unlink_stream(sh, st);
    st = NULL;
  }
  if (!st && !(st = create(sh, h, ch, len, opts, rq->now_ms))) {
    pthread_mutex_unlock(&sh->mu);
    return -1;
  }
  apply_opts(st, opts);
  trim(sh, st, rq->now_ms);
  top->offset = st->top;
  top->epoch = st->epoch;
  uint64_t lo = st->top - st->n + 1; /* oldest stored offset */
  *first = lo;
  if (rq->limit && st->n) {
    if (!rq->reverse) {
      uint64_t from = lo;
      if (rq->has_bound && rq->bound + 1 > from)
        from = rq->bound + 1;
      for (uint64_t o = from; o <= st->top && (size_t)count < rq->limit; o++) {
        stream_pub v;
        view(st, (uint32_t)(o - lo), &v);
        if (each(arg, &v)) {
          count = -1;
          break;
        }
        count++;
      }
    } else {
      uint64_t from = st->top;
      if (rq->has_bound && rq->bound <= from)
        from = rq->bound ? rq->bound - 1 : 0;
      for (uint64_t o = from; o >= lo && o && (size_t)count < rq->limit; o--) {
        stream_pub v;
        view(st, (uint32_t)(o - lo), &v);
        if (each(arg, &v)) {
          count = -1;
          break;
        }
        count++;
      }
    }
  }
  pthread_mutex_unlock(&sh->mu);
  return count;
}

int stream_remove_history(stream_set *ss, uint32_t h, const char *ch,
                          size_t len) {
  shard *sh = &ss->s[h % ss->n];
  pthread_mutex_lock(&sh->mu);
  stream *st = find(sh, h, ch, len);
  if (st) {
    while (st->n)
      pop_front(sh, st);
    heap_remove(sh, st);
  }
  pthread_mutex_unlock(&sh->mu);
  return st ? 0 : 1;
}

size_t stream_sweep(stream_set *ss, size_t idx, uint64_t now_ms, size_t budget) {
  shard *sh = &ss->s[idx];
  size_t dropped = 0;
  pthread_mutex_lock(&sh->mu);
  idem_expire(ss, sh, now_ms);
  size_t visited = 0;
  while (sh->nbuckets && visited < budget && sh->nstreams) {
    if (sh->sweep_cursor >= sh->nbuckets)
      sh->sweep_cursor = 0;
    stream **pp = &sh->buckets[sh->sweep_cursor];
    while (*pp) {
      stream *st = *pp;
      visited++;
      trim(sh, st, now_ms);
      if (meta_expired(st, now_ms)) {
        unlink_stream(sh, st); /* *pp now holds the next one */
        dropped++;
        continue;
      }
      pp = &st->next;
    }
    sh->sweep_cursor++;
    if (visited >= budget || sh->sweep_cursor >= sh->nbuckets)
      break;
  }
  pthread_mutex_unlock(&sh->mu);
  return dropped;
}

void stream_get_stats(stream_set *ss, stream_stats *st) {
  memset(st, 0, sizeof *st);
  for (size_t i = 0; i < ss->n; i++) {
    shard *sh = &ss->s[i];
    pthread_mutex_lock(&sh->mu);
    st->streams += sh->nstreams;
    st->publications += sh->npubs;
    st->bytes += sh->bytes;
    st->evicted += sh->evicted;
    st->expired += sh->expired;
    st->idem_keys += sh->nidem;
    pthread_mutex_unlock(&sh->mu);
  }
}
