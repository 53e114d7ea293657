/* SPDX-License-Identifier: MIT */
/* Channel tables, ordered cross-worker fan-out and position checks (see
 * hub.h). Only the owning worker mutates its table, under its mutex so
 * that the server API may read counts and presence from another thread;
 * the owner itself reads without locking. */
#include "channels/hub.h"
#include "channels/hubrun.h"
#include "channels/pdata.h"
#include "metrics/metrics.h"

#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "hf/conn.h"
#include "hf/fossil.h"
#include "hf/frame.h"
#include "log.h"
#include "protocol/jsonw.h"

struct hub_chan {
  hub_chan *next; /* bucket chain */
  uint32_t hash;
  uint32_t n, cap;
  hub_sub **subs;
  uint64_t pubs, pubs_mark; /* publications delivered here; at the last stats call */
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
  jw_buf scratch;    /* owner-side encoding buffer */
  hf_timer sweep;
  uint64_t evicted_unlogged, evict_logged_ms; /* once per burst */
  uint64_t stats_mark_ms; /* the last hub_local_stats call */
  hub_run *run;           /* held pushes of one channel (hubrun.c), or NULL */
};

struct hub {
  size_t nw;
  hub_local *w;
  hub_callbacks cb;
  hub_options opt;
  stream_set *streams;
};

enum { K_PUB = HUB_PUSH_PUB, K_JOIN = HUB_PUSH_JOIN, K_LEAVE = HUB_PUSH_LEAVE };

typedef hub_frames frames;

/* owner -> every other worker */
typedef struct {
  hf_msg m;
  hub_local *to;
  frames f;
  uint32_t hash;
  size_t len;
  char name[];
} deliver_msg;

/* A publication (or join/leave) to encode: views of its parts. */
typedef struct {
  const char *name, *data, *info, *tags, *prev;
  size_t len, data_len, info_len, tags_len, prev_len;
  uint64_t offset, epoch;
  uint64_t t_us; /* accepted at (CLOCK_MONOTONIC us; 0: now) */
  uint8_t kind, delta, delta_allowed;
} pub_view;

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* any worker -> owner: a publication to encode and fan out */
typedef struct {
  hf_msg m;
  hub_local *to;
  pub_view v; /* pointing into bytes */
  char bytes[];
} pub_msg;

typedef struct {
  hf_msg m;
  hub_local *to;
  hub_ctl_fn fn;
  char arg[];
} ctl_msg;

uint32_t hub_hash(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

static void sweep_tick(hf_loop *loop, hf_timer *t);
static void deliver_local(hub_local *hl, const char *name, size_t len,
                          uint32_t hash, const hub_frames *d, size_t n);

hub *hub_new(size_t nw, const hub_callbacks *cb, const hub_options *opt) {
  hub *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  h->nw = nw;
  h->cb = *cb;
  h->opt = *opt;
  h->w = calloc(nw, sizeof *h->w);
  h->streams = stream_set_new(nw, &opt->limits);
  if (!h->w || !h->streams) {
    free(h->w);
    stream_set_free(h->streams);
    free(h);
    return NULL;
  }
  for (size_t i = 0; i < nw; i++) {
    h->w[i].h = h;
    h->w[i].idx = i;
    pthread_mutex_init(&h->w[i].mu, NULL);
    jw_init(&h->w[i].scratch);
    h->w[i].sweep.cb = sweep_tick;
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
    hub_run_free(hl->run); /* attached but never detached (start-up failed) */
    jw_free(&hl->scratch);
    pthread_mutex_destroy(&hl->mu);
  }
  stream_set_free(h->streams);
  free(h->w);
  free(h);
}

hub_local *hub_attach(hub *h, size_t idx, hf_loop *loop) {
  hub_local *hl = &h->w[idx];
  hl->loop = loop;
  hl->run = hub_run_new(hl, loop, deliver_local); /* NULL: no holding */
  if (h->opt.sweep_interval_ms)
    hf_timer_set(loop, &hl->sweep, h->opt.sweep_interval_ms);
  return hl;
}

void hub_detach(hub_local *hl) {
  hf_timer_cancel(hl->loop, &hl->sweep);
  hub_run_free(hl->run); /* the loop stopped: what is held goes nowhere */
  hl->run = NULL;
}

void hub_hold(hub_local *hl) { hub_run_hold(hl->run); }

stream_set *hub_streams(hub *h) { return h->streams; }
hub *hub_of(const hub_local *hl) { return hl->h; }
hf_loop *hub_loop(const hub_local *hl) { return hl->loop; }
void hub_set_data(hub_local *hl, void *data) { hl->data = data; }
void *hub_data(const hub_local *hl) { return hl->data; }

const char *hub_chan_name(const hub_chan *c, size_t *len) {
  *len = c->len;
  return c->name;
}

static void sweep_tick(hf_loop *loop, hf_timer *t) {
  hub_local *hl = (hub_local *)((char *)t - offsetof(hub_local, sweep));
  hub *h = hl->h;
  stream_sweep(h->streams, hl->idx, hf_loop_now(loop), h->opt.sweep_budget);
  hf_timer_set(loop, t, h->opt.sweep_interval_ms);
}

/* ---- subscriptions -------------------------------------------------------- */

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

static void drop_chan(hub_local *hl, hub_chan *c) {
  hub_chan **pp = &hl->buckets[c->hash & (hl->nbuckets - 1)];
  while (*pp != c)
    pp = &(*pp)->next;
  *pp = c->next;
  hl->nchans--;
  free(c->subs);
  free(c);
}

int hub_subscribe(hub_local *hl, const char *ch, size_t len, hub_sub *s) {
  uint32_t hash = hub_hash(ch, len);
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
    hub_sub **ns = realloc(c->subs, cap * sizeof *ns);
    if (!ns) {
      if (!c->n)
        drop_chan(hl, c); /* just created: take it out again */
      goto oom;
    }
    c->subs = ns;
    c->cap = cap;
  }
  c->subs[c->n++] = s;
  s->ch = c;
  hl->nsubs++;
  pthread_mutex_unlock(&hl->mu);
  return 0;
oom:
  pthread_mutex_unlock(&hl->mu);
  return -1;
}

void hub_unsubscribe(hub_local *hl, hub_sub *s) {
  hub_chan *c = s->ch;
  if (!c)
    return;
  pthread_mutex_lock(&hl->mu);
  hl->removals++;
  for (uint32_t i = 0; i < c->n; i++)
    if (c->subs[i] == s) {
      c->subs[i] = c->subs[--c->n]; /* order of subscribers is irrelevant */
      hl->nsubs--;
      break;
    }
  if (!c->n) /* the last subscriber left: free the channel state */
    drop_chan(hl, c);
  s->ch = NULL;
  pthread_mutex_unlock(&hl->mu);
}

void hub_sub_set_info(hub_local *hl, hub_sub *s, char *info) {
  pthread_mutex_lock(&hl->mu);
  char *old = s->info;
  s->info = info;
  pthread_mutex_unlock(&hl->mu);
  free(old);
}

/* ---- fan-out ------------------------------------------------------------ */

hf_shared *hub_frame_for(hub_sub *s, const frames *d, int *gap) {
  uint32_t f = s->flags;
  if (f & HUB_SUB_PAUSED)
    return NULL;
  if (d->kind != K_PUB)
    return (f & HUB_SUB_JOIN_LEAVE) ? d->plain : NULL;
  if ((f & HUB_SUB_POSITIONED) && d->offset) {
    if (!s->epoch)
      s->epoch = d->epoch;
    if (s->epoch != d->epoch || d->offset > s->offset + 1) {
      *gap = 1;
      return NULL;
    }
    if (d->offset <= s->offset)
      return NULL; /* already has it (delivered with its recovery) */
    s->offset = d->offset;
  }
  if (!(f & HUB_SUB_DELTA))
    return d->plain;
  if (!d->str) { /* the namespace no longer allows delta: renegotiate */
    *gap = 1;
    return NULL;
  }
  if (d->patch && (f & HUB_SUB_DELTA_BASE) && d->offset)
    return d->patch;
  /* a full payload; it is the base of the next patch only if it is the
   * stream's (a publication without offset is not) */
  s->flags = d->offset ? f | HUB_SUB_DELTA_BASE : f & ~(uint32_t)HUB_SUB_DELTA_BASE;
  return d->str;
}

/* Sweep the n pushes d[0..n) of one channel over this worker's
 * subscribers, subscriber-major: each subscriber gets all of them (in
 * order, each through its position check) before the next one is touched,
 * so a run of publications costs one visit per subscriber, not n. */
static void deliver_local(hub_local *hl, const char *name, size_t len,
                          uint32_t hash, const frames *d, size_t n) {
  hub_chan *c = find(hl, name, len, hash);
  if (!c)
    return;
  hub *h = hl->h;
  for (size_t j = 0; j < n; j++)
    if (d[j].kind == K_PUB)
      c->pubs++; /* the admin dashboard's publication rate */
  hf_shared *out[HUB_RUN_MAX];
  /* A send may close a slow subscriber, and a gap unsubscribes one; either
   * teardown removes it from c (moving the last subscriber into its slot,
   * or freeing c with the last one). Walk from the end, so a moved
   * subscriber was already served, and look c up again only when
   * something was removed. */
  uint64_t seen = hl->removals;
  for (uint32_t i = c->n; i > 0; i--) {
    if (hl->removals != seen) {
      seen = hl->removals;
      if (!(c = find(hl, name, len, hash)))
        return; /* the channel went away with its last subscriber */
      if (i > c->n)
        i = c->n;
      if (!i)
        return;
    }
    hub_sub *s = c->subs[i - 1];
    if (i > 1)
      __builtin_prefetch(c->subs[i - 2]); /* the next one's flags and position */
    if (s->flags & HUB_SUB_PENDING) {
      for (size_t j = 0; j < n; j++)
        h->cb.pending(s, &d[j]);
      continue;
    }
    int gap = 0;
    size_t m = 0;
    for (size_t j = 0; j < n && !gap; j++) {
      hf_shared *f = hub_frame_for(s, &d[j], &gap);
      if (f)
        out[m++] = f;
    }
    /* a delivery that removed a subscriber (s may be gone) ends s's turn */
    for (size_t k = 0; k < m && hl->removals == seen;) {
      if (m - k == 1 || !h->cb.deliver_n)
        h->cb.deliver(s, out[k++]);
      else
        k += h->cb.deliver_n(s, out + k, m - k);
    }
    /* what came before the gap is delivered; then it is told, unless a
     * delivery already closed it (s may be gone) */
    if (gap && hl->removals == seen)
      h->cb.gap(s);
  }
  uint64_t now = 0;
  for (size_t j = 0; j < n; j++)
    if (d[j].kind == K_PUB) { /* queued on every subscriber of this worker */
      if (!now)
        now = now_us();
      met_observe_fanout(now > d[j].t_us ? now - d[j].t_us : 0);
    }
}

/* Deliver push d here: held in the run (swept at the end of the
 * iteration) while a hold is active, else now, after what is held. */
static void local_push(hub_local *hl, const char *name, size_t len,
                       uint32_t hash, const frames *d) {
  if (hub_run_push(hl->run, name, len, hash, d))
    return;
  hub_run_flush(hl->run);
  deliver_local(hl, name, len, hash, d, 1);
}

void hub_frames_ref(const hub_frames *f) {
  hf_shared_ref(f->plain);
  if (f->str)
    hf_shared_ref(f->str);
  if (f->patch)
    hf_shared_ref(f->patch);
}

void hub_frames_unref(const hub_frames *f) {
  hf_shared_unref(f->plain);
  hf_shared_unref(f->str);
  hf_shared_unref(f->patch);
}

static void drop_deliver(hf_msg *m) {
  deliver_msg *d = (deliver_msg *)m;
  hub_frames_unref(&d->f);
  free(d);
}

static void run_deliver(hf_loop *loop, hf_msg *m) {
  deliver_msg *d = (deliver_msg *)m;
  hub_run_hold(d->to->run); /* posted: nothing here waits for it */
  local_push(d->to, d->name, d->len, d->hash, &d->f);
  drop_deliver(m);
}

/* pub_msg and ctl_msg hold nothing beyond their own allocation */
static void drop_free(hf_msg *m) { free(m); }

/* Wrap the JSON text in b as one text frame in a new shared buffer. */
static hf_shared *frame_of(jw_buf *b, uint32_t flags) {
  if (!jw_ok(b))
    return NULL;
  uint8_t hdr[HF_FRAME_MAX_HEADER];
  size_t hl_len = hf_frame_header(hdr, 1, HF_OP_TEXT, b->len, NULL);
  /* carved from this worker's chunk: a run of publications lies back to
   * back, and a subscriber's queue of them leaves as one buffer */
  hf_shared *frame = hf_shared_new_frame(hl_len + b->len);
  if (!frame)
    return NULL;
  memcpy(frame->data, hdr, hl_len);
  memcpy(frame->data + hl_len, b->p, b->len);
  frame->len = (uint32_t)(hl_len + b->len);
  frame->flags = flags;
  hf_shared_deflate(frame, hl_len); /* once, for every deflate recipient */
  MET_INC(MET_PUSH_FRAMES);
  return frame;
}

/* {"data":<data>,"info":..,"offset":..,"tags":..[,"delta":true]} of p with
 * data[0..len) spliced as JSON, or as a JSON string of it (as_string). */
static int pub_object(jw_buf *b, const stream_pub *p, const char *data,
                      size_t len, int as_string, int delta) {
  int bin = 0;
  if (as_string && (delta || !pd_is_binary(data, len))) { /* a patch is text */
    jw_lit(b, "{\"data\":");
    jw_str(b, data, len);
  } else { /* binary data: "b64data" (pdata.h), whatever the form */
    jw_char(b, '{');
    bin = pd_write_member(b, data, len);
  }
  if (p->info_len) {
    jw_lit(b, ",\"info\":");
    jw_raw(b, p->info, p->info_len);
  }
  if (p->offset) {
    jw_lit(b, ",\"offset\":");
    jw_u64(b, p->offset);
  }
  if (p->tags_len) {
    jw_lit(b, ",\"tags\":");
    jw_raw(b, p->tags, p->tags_len);
  }
  if (delta)
    jw_lit(b, ",\"delta\":true");
  jw_char(b, '}');
  return bin;
}

int hub_encode_pub(jw_buf *b, const stream_pub *p, int data_as_string) {
  return pub_object(b, p, p->data, p->data_len, data_as_string, 0);
}

/* {"push":{"channel":CH,"pub":{..}}} with data spliced as JSON (mode 0), or
 * as a JSON string of data (mode 1) or of patch (mode 2, a delta). */
static void encode_pub(jw_buf *b, const pub_view *p, int mode,
                       const uint8_t *patch, size_t patch_len) {
  stream_pub sp = {p->offset, p->data, p->info, p->tags, (uint32_t)p->data_len,
                   (uint32_t)p->info_len, (uint32_t)p->tags_len};
  jw_reset(b);
  jw_lit(b, "{\"push\":{\"channel\":");
  jw_str(b, p->name, p->len);
  jw_lit(b, ",\"pub\":");
  if (mode == 2)
    pub_object(b, &sp, (const char *)patch, patch_len, 1, 1);
  else
    pub_object(b, &sp, p->data, p->data_len, mode == 1, 0);
  jw_lit(b, "}}");
}

/* The fossil delta from the previous payload, if it is smaller than the
 * payload itself (else delta subscribers get the full string form). */
static hf_shared *patch_frame(hub_local *hl, const pub_view *p) {
  const char *data = p->data, *prev = p->prev;
  uint8_t *patch = malloc(hf_fossil_bound(p->data_len));
  void *scratch = malloc(hf_fossil_scratch(p->prev_len));
  hf_shared *f = NULL;
  if (patch && scratch) {
    size_t n = hf_fossil_encode((const uint8_t *)prev, p->prev_len,
                                (const uint8_t *)data, p->data_len, patch, scratch);
    if (n < p->data_len) {
      encode_pub(&hl->scratch, p, 2, patch, n);
      f = frame_of(&hl->scratch, HF_SHARED_DROPPABLE);
    }
  }
  free(patch);
  free(scratch);
  return f;
}

/* The frames of push p, encoded once (with hl's scratch buffer). */
static int encode_frames(hub_local *hl, const pub_view *p, frames *out) {
  jw_buf *b = &hl->scratch;
  frames f = {0};
  if (p->kind == K_PUB) {
    uint32_t fl = p->offset ? HF_SHARED_DROPPABLE : 0;
    int bin = pd_is_binary(p->data, p->data_len);
    if (bin) /* JSON recipients cannot take it (cl_send_shared) */
      fl |= HF_SHARED_BINARY;
    encode_pub(b, p, 0, NULL, 0);
    f.plain = frame_of(b, fl);
    if (p->delta_allowed) {
      encode_pub(b, p, 1, NULL, 0);
      f.str = frame_of(b, fl);
      if (p->delta && p->prev_len && p->offset && !bin && !pd_is_binary(p->prev, p->prev_len))
        f.patch = patch_frame(hl, p);
    }
  } else {
    jw_reset(b);
    jw_lit(b, "{\"push\":{\"channel\":");
    jw_str(b, p->name, p->len);
    jw_lit(b, p->kind == K_JOIN ? ",\"join\":{\"info\":" : ",\"leave\":{\"info\":");
    jw_raw(b, p->info, p->info_len);
    jw_lit(b, "}}}");
    f.plain = frame_of(b, 0);
  }
  if (!f.plain || (p->delta_allowed && p->kind == K_PUB && !f.str)) {
    hub_frames_unref(&f);
    return -1;
  }
  f.offset = p->offset;
  f.epoch = p->epoch;
  f.t_us = p->t_us ? p->t_us : now_us();
  f.kind = p->kind;
  *out = f;
  return 0;
}

/* On the owner: encode once, deliver here, post to every other worker. */
static int fan_out(hub_local *hl, const pub_view *p) {
  frames f;
  if (encode_frames(hl, p, &f) < 0)
    return -1; /* positioned subscribers will see the gap */
  uint32_t hash = hub_hash(p->name, p->len);
  hub *h = hl->h;
  for (size_t i = 0; i < h->nw; i++) {
    if (i == hl->idx)
      continue;
    deliver_msg *d = malloc(sizeof *d + p->len);
    if (!d)
      continue; /* out of memory: positioned subscribers there see a gap */
    d->m.run = run_deliver;
    d->m.drop = drop_deliver;
    d->to = &h->w[i];
    d->f = f;
    hub_frames_ref(&f);
    d->hash = hash;
    d->len = p->len;
    memcpy(d->name, p->name, p->len);
    hf_loop_post(h->w[i].loop, &d->m);
  }
  local_push(hl, p->name, p->len, hash, &f);
  hub_frames_unref(&f);
  return 0;
}

static void run_pub(hf_loop *loop, hf_msg *m) {
  pub_msg *p = (pub_msg *)m;
  hub_run_hold(p->to->run); /* posted: nothing here waits for it */
  fan_out(p->to, &p->v);
  free(p);
}

/* A copy of v that owns its bytes, to post to the owner. */
static pub_msg *new_pub_msg(hub_local *to, const pub_view *v) {
  pub_msg *p = malloc(sizeof *p + v->len + v->data_len + v->info_len +
                      v->tags_len + v->prev_len);
  if (!p)
    return NULL;
  p->m.run = run_pub;
  p->m.drop = drop_free;
  p->to = to;
  p->v = *v;
  char *o = p->bytes;
  const char **dst[5] = {&p->v.name, &p->v.data, &p->v.info, &p->v.tags, &p->v.prev};
  const char *src[5] = {v->name, v->data, v->info, v->tags, v->prev};
  size_t lens[5] = {v->len, v->data_len, v->info_len, v->tags_len, v->prev_len};
  for (int i = 0; i < 5; i++) {
    if (lens[i])
      memcpy(o, src[i], lens[i]);
    *dst[i] = o;
    o += lens[i];
  }
  return p;
}

/* Encode here if this worker owns the channel, else post it to the owner. */
static int route(hub_local *from, hub_local *owner, const pub_view *v) {
  if (owner == from)
    return fan_out(from, v);
  pub_msg *m = new_pub_msg(owner, v);
  if (!m)
    return -1;
  hf_loop_post(owner->loop, &m->m);
  return 0;
}

static pub_view view_of(const hub_pub *p) {
  pub_view v = {0};
  v.name = p->ch;
  v.len = p->len;
  v.data = p->data;
  v.data_len = p->data_len;
  v.info = p->info;
  v.info_len = p->info_len;
  v.tags = p->tags;
  v.tags_len = p->tags_len;
  v.kind = K_PUB;
  v.delta = (uint8_t)p->delta;
  v.delta_allowed = (uint8_t)p->delta_allowed;
  v.t_us = now_us();
  return v;
}

typedef struct {
  hub_local *owner;
  const hub_pub *pub;
} accept_ctx;

/* Under the stream's lock: post the publication to its owner, so that the
 * owner's inbox receives a channel's publications in offset order. */
static int accept_pub(void *arg, const stream_pos *pos, const stream_pub *prev) {
  accept_ctx *a = arg;
  pub_view v = view_of(a->pub);
  if (v.delta && v.delta_allowed && prev) {
    v.prev = prev->data;
    v.prev_len = prev->data_len;
  }
  v.offset = pos->offset;
  v.epoch = pos->epoch;
  pub_msg *m = new_pub_msg(a->owner, &v);
  if (!m)
    return -1;
  hf_loop_post(a->owner->loop, &m->m);
  return 0;
}

static void log_evictions(hub_local *from, uint64_t evicted) {
  MET_ADD(MET_HISTORY_EVICTIONS, evicted);
  from->evicted_unlogged += evicted;
  uint64_t now = hf_loop_now(from->loop);
  if (!from->evicted_unlogged || now - from->evict_logged_ms < 10000)
    return;
  stream_stats st;
  stream_get_stats(from->h->streams, &st);
  srv_logline l;
  srv_log_begin(&l, LOG_WARN, "history_evicted");
  srv_log_int(&l, "publications", (long long)from->evicted_unlogged);
  srv_log_int(&l, "history_bytes", (long long)st.bytes);
  srv_log_int(&l, "history_max_bytes", (long long)from->h->opt.limits.max_bytes);
  srv_log_str(&l, "hint", "the history memory cap (channel.history_max_memory) is "
                          "reached: the oldest publications were dropped");
  srv_log_end(&l);
  from->evicted_unlogged = 0;
  from->evict_logged_ms = now;
}

hub_status hub_publish(hub_local *from, const hub_pub *p, stream_pos *pos) {
  hub *h = from->h;
  uint32_t hash = hub_hash(p->ch, p->len);
  hub_local *owner = &h->w[hash % h->nw];
  pos->offset = pos->epoch = 0;
  if (!p->history && !p->idem_key) {
    /* no stream position: the owner's processing order is the order */
    pub_view v = view_of(p);
    return route(from, owner, &v) < 0 ? HUB_ENOMEM : HUB_OK;
  }
  stream_pub sp = {0, p->data, p->info, p->tags, (uint32_t)p->data_len,
                   (uint32_t)p->info_len, (uint32_t)p->tags_len};
  stream_publish_req rq = {p->history, p->idem_key, p->idem_len,
                           hf_loop_now(from->loop)};
  accept_ctx a = {owner, p};
  uint64_t evicted = 0;
  stream_status st = stream_publish(h->streams, hash, p->ch, p->len, &sp, &rq,
                                    pos, accept_pub, &a, &evicted);
  if (evicted)
    log_evictions(from, evicted);
  return st == STREAM_OK ? HUB_OK : st == STREAM_DUPLICATE ? HUB_DUPLICATE : HUB_ENOMEM;
}

int hub_join_leave(hub_local *from, const char *ch, size_t len,
                   const char *info, size_t info_len, int leave) {
  hub *h = from->h;
  hub_local *owner = &h->w[hub_hash(ch, len) % h->nw];
  pub_view v = {0};
  v.name = ch;
  v.len = len;
  v.info = info;
  v.info_len = info_len;
  v.kind = leave ? K_LEAVE : K_JOIN;
  /* always through the inbox, even to this worker: a leave is emitted
   * while a subscriber is removed, possibly from inside a delivery */
  pub_msg *m = new_pub_msg(owner, &v);
  if (!m)
    return -1;
  hf_loop_post(owner->loop, &m->m);
  return 0;
}

void hub_deliver_remote(hub_local *hl, const hub_remote *r) {
  pub_view v = {0};
  v.name = r->ch;
  v.len = r->len;
  v.data = r->data;
  v.data_len = r->data_len;
  v.info = r->info;
  v.info_len = r->info_len;
  v.tags = r->tags;
  v.tags_len = r->tags_len;
  v.prev = r->prev;
  v.prev_len = r->prev_len;
  v.offset = r->offset;
  v.epoch = r->epoch;
  v.kind = (uint8_t)r->kind;
  v.delta = (uint8_t)r->delta;
  v.delta_allowed = (uint8_t)r->delta_allowed;
  frames f = {0};
  if (encode_frames(hl, &v, &f) < 0)
    return; /* positioned subscribers will see the gap */
  hub_run_flush(hl->run); /* the broker's order: after what is held */
  deliver_local(hl, r->ch, r->len, hub_hash(r->ch, r->len), &f, 1);
  hub_frames_unref(&f);
}

void hub_check_positions(hub_local *hl, const char *ch, size_t len, uint64_t top,
                         uint64_t epoch, int ahead_too) {
  uint32_t hash = hub_hash(ch, len);
  hub_run_flush(hl->run); /* judge positions after what is held */
  hub_chan *c = find(hl, ch, len, hash);
  uint64_t seen = hl->removals;
  for (uint32_t i = c ? c->n : 0; i > 0; i--) {
    if (hl->removals != seen) { /* a gap unsubscribed someone: look again */
      seen = hl->removals;
      if (!(c = find(hl, ch, len, hash)))
        return;
      if (i > c->n)
        i = c->n;
      if (!i)
        return;
    }
    hub_sub *s = c->subs[i - 1];
    if ((s->flags & HUB_SUB_POSITIONED) && !(s->flags & HUB_SUB_PENDING) &&
        (s->epoch != epoch || s->offset < top || (ahead_too && s->offset > top)))
      hl->h->cb.gap(s);
  }
}

size_t hub_index(const hub_local *hl) { return hl->idx; }

void hub_each_local_sub(hub_local *hl, uint32_t flags, hub_sub_fn fn, void *arg) {
  for (size_t b = 0; b < hl->nbuckets; b++)
    for (hub_chan *c = hl->buckets[b]; c; c = c->next)
      for (uint32_t i = 0; i < c->n; i++)
        if (c->subs[i]->flags & flags)
          fn(arg, c->name, c->len, c->subs[i]);
}

/* ---- presence, control and counts ---------------------------------------- */

void hub_sub_member(const hub *h, const hub_sub *s, const char **user,
                    const uint8_t **client) {
  h->cb.member(s, user, client);
}

void hub_presence(hub *h, const char *ch, size_t len, hub_presence_fn each,
                  void *arg) {
  uint32_t hash = hub_hash(ch, len);
  for (size_t i = 0; i < h->nw; i++) {
    hub_local *hl = &h->w[i];
    pthread_mutex_lock(&hl->mu);
    hub_chan *c = find(hl, ch, len, hash);
    for (uint32_t k = 0; c && k < c->n; k++) {
      hub_sub *s = c->subs[k];
      if ((s->flags & HUB_SUB_PRESENCE) && s->info) {
        const char *user;
        const uint8_t *client;
        h->cb.member(s, &user, &client);
        each(arg, s, user, client);
      }
    }
    pthread_mutex_unlock(&hl->mu);
  }
}

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
    c->m.drop = drop_free;
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

void hub_local_stats(hub_local *hl, uint64_t now_ms, hub_stat_fn fn, void *arg) {
  uint64_t dt = now_ms > hl->stats_mark_ms ? now_ms - hl->stats_mark_ms : 0;
  int first = hl->stats_mark_ms == 0;
  hl->stats_mark_ms = now_ms;
  for (size_t b = 0; b < hl->nbuckets; b++)
    for (hub_chan *c = hl->buckets[b]; c; c = c->next) {
      uint64_t d = c->pubs - c->pubs_mark;
      c->pubs_mark = c->pubs;
      fn(arg, c->name, c->len, c->n, first || !dt ? 0.0 : (double)d * 1000.0 / (double)dt);
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
