/* SPDX-License-Identifier: MIT */
/* Channel tables and cross-worker fan-out (see hub.h). Only the owning
 * worker mutates its table, under its mutex so that the server API may read
 * counts from another thread; the owner itself reads without locking. */
#include "channels/hub.h"

#include <stdlib.h>
#include <string.h>

#include "protocol/client.h"
#include "hf/conn.h"
#include "hf/frame.h"
#include "hf/shared.h"
#include "protocol/jsonw.h"

struct hub_chan {
  hub_chan *next; /* bucket chain */
  uint32_t hash;
  uint32_t n, cap;
  struct cl_client **subs;
  size_t len;
  char name[];
};

struct hub_local {
  hub *h;
  size_t idx;
  hf_loop *loop;
  void *data;
  pthread_mutex_t mu; /* guards the table for readers on other threads */
  hub_chan **buckets;
  size_t nbuckets, nchans, nsubs;
  uint64_t removals; /* bumped by every unsubscribe (see deliver_local) */
  jw_buf scratch; /* owner-side encoding buffer */
};

struct hub {
  size_t nw;
  hub_local *w;
};

typedef struct {
  hf_msg m;
  hub_local *to;
  hf_shared *frame;
  uint32_t hash;
  size_t len;
  char name[];
} deliver_msg;

typedef struct {
  hf_msg m;
  hub_local *to;
  size_t len, data_len, info_len;
  char bytes[]; /* name, data, info */
} pub_msg;

typedef struct {
  hf_msg m;
  hub_local *to;
  hub_ctl_fn fn;
  char arg[];
} ctl_msg;

static uint32_t name_hash(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

hub *hub_new(size_t nw) {
  hub *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  h->nw = nw;
  h->w = calloc(nw, sizeof *h->w);
  if (!h->w) {
    free(h);
    return NULL;
  }
  for (size_t i = 0; i < nw; i++) {
    h->w[i].h = h;
    h->w[i].idx = i;
    pthread_mutex_init(&h->w[i].mu, NULL);
    jw_init(&h->w[i].scratch);
  }
  return h;
}

void hub_free(hub *h) {
  if (!h)
    return;
  for (size_t i = 0; i < h->nw; i++) {
    hub_local *hl = &h->w[i];
    for (size_t b = 0; b < hl->nbuckets; b++)
      while (hl->buckets[b]) {
        hub_chan *c = hl->buckets[b];
        hl->buckets[b] = c->next;
        free(c->subs);
        free(c);
      }
    free(hl->buckets);
    jw_free(&hl->scratch);
    pthread_mutex_destroy(&hl->mu);
  }
  free(h->w);
  free(h);
}

hub_local *hub_attach(hub *h, size_t idx, hf_loop *loop) {
  h->w[idx].loop = loop;
  return &h->w[idx];
}

hf_loop *hub_loop(const hub_local *hl) { return hl->loop; }
void hub_set_data(hub_local *hl, void *data) { hl->data = data; }
void *hub_data(const hub_local *hl) { return hl->data; }

const char *hub_chan_name(const hub_chan *c, size_t *len) {
  *len = c->len;
  return c->name;
}

static hub_chan *find(const hub_local *hl, const char *ch, size_t len,
                      uint32_t hash) {
  if (!hl->nbuckets)
    return NULL;
  for (hub_chan *c = hl->buckets[hash & (hl->nbuckets - 1)]; c; c = c->next)
    if (c->hash == hash && c->len == len && memcmp(c->name, ch, len) == 0)
      return c;
  return NULL;
}

static int grow_table(hub_local *hl) {
  size_t nb = hl->nbuckets ? hl->nbuckets * 2 : 64;
  hub_chan **b = calloc(nb, sizeof *b);
  if (!b)
    return -1;
  for (size_t i = 0; i < hl->nbuckets; i++)
    while (hl->buckets[i]) {
      hub_chan *c = hl->buckets[i];
      hl->buckets[i] = c->next;
      c->next = b[c->hash & (nb - 1)];
      b[c->hash & (nb - 1)] = c;
    }
  free(hl->buckets);
  hl->buckets = b;
  hl->nbuckets = nb;
  return 0;
}

hub_chan *hub_subscribe(hub_local *hl, const char *ch, size_t len,
                        struct cl_client *cl) {
  uint32_t hash = name_hash(ch, len);
  pthread_mutex_lock(&hl->mu);
  hub_chan *c = find(hl, ch, len, hash);
  if (!c) {
    if (hl->nchans >= hl->nbuckets && grow_table(hl) < 0)
      goto oom;
    c = calloc(1, sizeof *c + len + 1);
    if (!c)
      goto oom;
    c->hash = hash;
    c->len = len;
    memcpy(c->name, ch, len);
    c->next = hl->buckets[hash & (hl->nbuckets - 1)];
    hl->buckets[hash & (hl->nbuckets - 1)] = c;
    hl->nchans++;
  }
  if (c->n == c->cap) {
    uint32_t cap = c->cap ? c->cap * 2 : 4;
    struct cl_client **ns = realloc(c->subs, cap * sizeof *ns);
    if (!ns) {
      if (!c->n) { /* just created: take it out again */
        hub_chan **pp = &hl->buckets[hash & (hl->nbuckets - 1)];
        while (*pp != c)
          pp = &(*pp)->next;
        *pp = c->next;
        hl->nchans--;
        free(c);
      }
      goto oom;
    }
    c->subs = ns;
    c->cap = cap;
  }
  c->subs[c->n++] = cl;
  hl->nsubs++;
  pthread_mutex_unlock(&hl->mu);
  return c;
oom:
  pthread_mutex_unlock(&hl->mu);
  return NULL;
}

void hub_unsubscribe(hub_local *hl, hub_chan *c, struct cl_client *cl) {
  pthread_mutex_lock(&hl->mu);
  hl->removals++;
  for (uint32_t i = 0; i < c->n; i++)
    if (c->subs[i] == cl) {
      c->subs[i] = c->subs[--c->n]; /* order of subscribers is irrelevant */
      hl->nsubs--;
      break;
    }
  if (!c->n) { /* the last subscriber left: free the channel state */
    hub_chan **pp = &hl->buckets[c->hash & (hl->nbuckets - 1)];
    while (*pp != c)
      pp = &(*pp)->next;
    *pp = c->next;
    hl->nchans--;
    free(c->subs);
    free(c);
  }
  pthread_mutex_unlock(&hl->mu);
}

/* ---- fan-out ------------------------------------------------------------ */

static void deliver_local(hub_local *hl, const char *ch, size_t len,
                          uint32_t hash, hf_shared *frame) {
  hub_chan *c = find(hl, ch, len, hash);
  if (!c)
    return;
  /* A send may close a slow subscriber, whose teardown unsubscribes it
   * from c (moving the last subscriber into its slot, or freeing c with
   * the last one). Walk from the end, so a moved subscriber was already
   * served, and look c up again only when something was removed. */
  uint64_t seen = hl->removals;
  for (uint32_t i = c->n; i > 0; i--) {
    if (hl->removals != seen) {
      seen = hl->removals;
      if (!(c = find(hl, ch, len, hash)))
        return; /* the channel went away with its last subscriber */
      if (i > c->n)
        i = c->n;
      if (!i)
        return;
    }
    cl_send_shared(c->subs[i - 1], frame);
  }
}

static void run_deliver(hf_loop *loop, hf_msg *m) {
  deliver_msg *d = (deliver_msg *)m;
  deliver_local(d->to, d->name, d->len, d->hash, d->frame);
  hf_shared_unref(d->frame);
  free(d);
}

/* On the owner: encode once, deliver here, post to every other worker. */
static int fan_out(hub_local *hl, const char *ch, size_t len, const char *data,
                   size_t data_len, const char *info, size_t info_len) {
  jw_buf *b = &hl->scratch;
  jw_reset(b);
  jw_lit(b, "{\"push\":{\"channel\":");
  jw_str(b, ch, len);
  jw_lit(b, ",\"pub\":{\"data\":");
  jw_raw(b, data, data_len);
  if (info_len) {
    jw_lit(b, ",\"info\":");
    jw_raw(b, info, info_len);
  }
  jw_lit(b, "}}}");
  if (!jw_ok(b))
    return -1;
  uint8_t hdr[HF_FRAME_MAX_HEADER];
  size_t hl_len = hf_frame_header(hdr, 1, HF_OP_TEXT, b->len, NULL);
  hf_shared *frame = hf_shared_new(hl_len + b->len);
  if (!frame)
    return -1;
  memcpy(frame->data, hdr, hl_len);
  memcpy(frame->data + hl_len, b->p, b->len);
  frame->len = (uint32_t)(hl_len + b->len);
  uint32_t hash = name_hash(ch, len);
  hub *h = hl->h;
  for (size_t i = 0; i < h->nw; i++) {
    if (i == hl->idx)
      continue;
    deliver_msg *d = malloc(sizeof *d + len);
    if (!d)
      continue; /* out of memory: that worker's subscribers miss it */
    d->m.run = run_deliver;
    d->to = &h->w[i];
    d->frame = hf_shared_ref(frame);
    d->hash = hash;
    d->len = len;
    memcpy(d->name, ch, len);
    hf_loop_post(h->w[i].loop, &d->m);
  }
  deliver_local(hl, ch, len, hash, frame);
  hf_shared_unref(frame);
  return 0;
}

static void run_pub(hf_loop *loop, hf_msg *m) {
  pub_msg *p = (pub_msg *)m;
  fan_out(p->to, p->bytes, p->len, p->bytes + p->len, p->data_len,
          p->bytes + p->len + p->data_len, p->info_len);
  free(p);
}

int hub_publish(hub_local *from, const char *ch, size_t len, const char *data,
                size_t data_len, const char *info, size_t info_len) {
  hub *h = from->h;
  size_t owner = name_hash(ch, len) % h->nw;
  if (owner == from->idx)
    return fan_out(from, ch, len, data, data_len, info, info_len);
  pub_msg *p = malloc(sizeof *p + len + data_len + info_len);
  if (!p)
    return -1;
  p->m.run = run_pub;
  p->to = &h->w[owner];
  p->len = len;
  p->data_len = data_len;
  p->info_len = info_len;
  memcpy(p->bytes, ch, len);
  memcpy(p->bytes + len, data, data_len);
  if (info_len)
    memcpy(p->bytes + len + data_len, info, info_len);
  hf_loop_post(h->w[owner].loop, &p->m);
  return 0;
}

/* ---- control and counts ------------------------------------------------- */

static void run_ctl(hf_loop *loop, hf_msg *m) {
  ctl_msg *c = (ctl_msg *)m;
  c->fn(c->to, c->arg);
  free(c);
}

int hub_broadcast_ctl(hub *h, hub_ctl_fn fn, const void *arg, size_t len) {
  for (size_t i = 0; i < h->nw; i++) {
    ctl_msg *c = malloc(sizeof *c + len);
    if (!c)
      return -1;
    c->m.run = run_ctl;
    c->to = &h->w[i];
    c->fn = fn;
    memcpy(c->arg, arg, len);
    hf_loop_post(h->w[i].loop, &c->m);
  }
  return 0;
}

void hub_each_channel(hub *h, hub_chan_cb cb, void *arg) {
  for (size_t i = 0; i < h->nw; i++) {
    hub_local *hl = &h->w[i];
    pthread_mutex_lock(&hl->mu);
    for (size_t b = 0; b < hl->nbuckets; b++)
      for (hub_chan *c = hl->buckets[b]; c; c = c->next)
        cb(arg, c->name, c->len, c->n);
    pthread_mutex_unlock(&hl->mu);
  }
}

void hub_totals(hub *h, uint64_t *channels, uint64_t *subscriptions) {
  *channels = *subscriptions = 0;
  for (size_t i = 0; i < h->nw; i++) {
    pthread_mutex_lock(&h->w[i].mu);
    *channels += h->w[i].nchans;
    *subscriptions += h->w[i].nsubs;
    pthread_mutex_unlock(&h->w[i].mu);
  }
}
