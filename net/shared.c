/* SPDX-License-Identifier: MIT */
/* Reference-counted byte buffers (see hf/shared.h), the per-thread chunks
 * small frames are carved from, and the compress-once variant of a shared
 * frame for permessage-deflate recipients. */
#include "hf/shared.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "hf/deflate.h"
#include "hf/err.h"
#include "hf/frame.h"

static void init_header(hf_shared *s, size_t cap) {
  atomic_init(&s->refs, 1);
  s->len = 0;
  s->cap = (uint32_t)cap;
  s->flags = 0;
  s->vkind = 0;
  atomic_init(&s->variants, NULL);
  s->vnext = NULL;
  s->chunk = NULL;
}

hf_shared *hf_shared_new(size_t cap) {
  if (cap > UINT32_MAX - sizeof(hf_shared))
    return NULL;
  hf_shared *s = malloc(sizeof *s + cap);
  if (!s)
    return NULL;
  init_header(s, cap);
  s->data = (uint8_t *)(s + 1);
  return s;
}

/* ---- per-thread chunks ------------------------------------------------------
 * Frame bytes are carved upwards from the start of a chunk (lo), frame
 * headers downwards from its end (hi), so the bytes of frames carved one
 * after another are contiguous. live counts the frames not yet freed plus
 * one while the chunk is its thread's current one; the last release frees
 * it (frames are released on any thread). */
struct hf_shared_chunk {
  atomic_uint live;
  uint32_t lo, hi; /* owner thread only */
  alignas(16) uint8_t mem[HF_SHARED_CHUNK];
};

static _Thread_local struct hf_shared_chunk *tl_chunk;
static pthread_key_t chunk_key;
static pthread_once_t chunk_once = PTHREAD_ONCE_INIT;

static void chunk_release(struct hf_shared_chunk *k) {
  if (atomic_fetch_sub_explicit(&k->live, 1, memory_order_acq_rel) == 1)
    free(k);
}

void hf_shared_thread_done(void) {
  if (tl_chunk) {
    chunk_release(tl_chunk);
    tl_chunk = NULL;
  }
}

static void chunk_key_done(void *unused) {
  (void)unused;
  hf_shared_thread_done();
}

static void chunk_key_init(void) { (void)pthread_key_create(&chunk_key, chunk_key_done); }

hf_shared *hf_shared_new_frame(size_t cap) {
  if (cap > HF_SHARED_CHUNK_MAX)
    return hf_shared_new(cap);
  struct hf_shared_chunk *k = tl_chunk;
  size_t hsz = (sizeof(hf_shared) + 15) & ~(size_t)15;
  if (!k || (size_t)k->hi < hsz || (size_t)k->hi - hsz < (size_t)k->lo + cap) {
    struct hf_shared_chunk *n = malloc(sizeof *n);
    if (!n)
      return hf_shared_new(cap);
    if (!k) { /* the thread's first chunk: release it when the thread ends */
      pthread_once(&chunk_once, chunk_key_init);
      (void)pthread_setspecific(chunk_key, &chunk_key); /* any non-NULL */
    } else {
      chunk_release(k); /* retired: its frames keep it alive */
    }
    atomic_init(&n->live, 1);
    n->lo = 0;
    n->hi = HF_SHARED_CHUNK;
    tl_chunk = k = n;
  }
  k->hi -= (uint32_t)hsz;
  hf_shared *s = (hf_shared *)(void *)(k->mem + k->hi);
  init_header(s, cap);
  s->chunk = k;
  s->data = k->mem + k->lo;
  k->lo += (uint32_t)cap;
  atomic_fetch_add_explicit(&k->live, 1, memory_order_relaxed);
  return s;
}

void hf_shared_trim(hf_shared *s) {
  struct hf_shared_chunk *k = s->chunk;
  if (k && k == tl_chunk && s->data + s->cap == k->mem + k->lo)
    k->lo -= s->cap - s->len;
  s->cap = s->len;
}

void hf_shared_unref(hf_shared *s) { hf_shared_unref_n(s, 1); }

void hf_shared_unref_n(hf_shared *s, uint32_t n) {
  if (!s || !n)
    return;
  /* release our writes; the last owner acquires everyone's before free */
  if (atomic_fetch_sub_explicit(&s->refs, n, memory_order_acq_rel) == n) {
    hf_shared *v = atomic_load_explicit(&s->variants, memory_order_acquire);
    while (v) {
      hf_shared *next = v->vnext;
      hf_shared_unref(v);
      v = next;
    }
    if (s->chunk)
      chunk_release(s->chunk);
    else
      free(s);
  }
}

static hf_shared_deflate_cfg dcfg; /* written once before threads start */
static _Atomic uint64_t n_compressed;
static atomic_long n_users;

void hf_shared_deflate_setup(const hf_shared_deflate_cfg *cfg) { dcfg = *cfg; }

int hf_shared_deflate_bits(void) { return dcfg.window_bits; }

uint64_t hf_shared_deflate_count(void) {
  return atomic_load_explicit(&n_compressed, memory_order_relaxed);
}

void hf_shared_deflate_users(int delta) {
  atomic_fetch_add_explicit(&n_users, delta, memory_order_relaxed);
}

/* hf_shared_variant's builder for a variant built beforehand (arg). */
static hf_shared *take_built(const hf_shared *s, void *arg) {
  (void)s;
  return arg;
}

int hf_shared_deflate(hf_shared *frame, size_t hdr_len) {
  if (!dcfg.enabled || !frame || hdr_len > frame->len ||
      hf_shared_variant_find(frame, HF_SHARED_VARIANT_DEFLATE) ||
      atomic_load_explicit(&n_users, memory_order_relaxed) <= 0)
    return 0;
  size_t plen = frame->len - hdr_len;
  if (plen < dcfg.min_size)
    return 0;
  int opcode = frame->data[0] & 0x0f;
  if (opcode != HF_OP_TEXT && opcode != HF_OP_BINARY)
    return 0; /* control frames are never compressed */
  hf_deflate_enc *e =
      hf_deflate_thread_enc(dcfg.level, dcfg.mem_level, dcfg.window_bits);
  /* only a frame that gets smaller is worth sending compressed: the
   * buffer holds up to plen bytes plus the 4-byte tail the codec strips,
   * and a larger result is HF_ETOOBIG (sent as it is) */
  size_t bound = plen + 4;
  hf_shared *alt = e ? hf_shared_new(HF_FRAME_MAX_HEADER + bound) : NULL;
  if (!alt)
    return HF_ENOMEM;
  /* compress behind the longest header, then slide it down behind the
   * real one: one buffer, one copy-free compression */
  long n = hf_deflate_compress(e, 1, frame->data + hdr_len, plen,
                               alt->data + HF_FRAME_MAX_HEADER, bound);
  atomic_fetch_add_explicit(&n_compressed, 1, memory_order_relaxed);
  if (n < 0 || (size_t)n >= plen) {
    hf_shared_unref(alt);
    return n < 0 && n != HF_ETOOBIG ? (int)n : 0;
  }
  uint8_t hdr[HF_FRAME_MAX_HEADER];
  size_t hl = hf_frame_header(hdr, 1, opcode | HF_FRAME_RSV1, (uint64_t)n, NULL);
  memmove(alt->data + hl, alt->data + HF_FRAME_MAX_HEADER, (size_t)n);
  memcpy(alt->data, hdr, hl);
  alt->len = (uint32_t)(hl + (size_t)n);
  alt->flags = frame->flags;
  /* built here, before sharing: the variant mechanism only keeps it */
  (void)hf_shared_variant(frame, HF_SHARED_VARIANT_DEFLATE, take_built, alt);
  return 1;
}

hf_shared *hf_shared_variant_find(const hf_shared *s, uint32_t kind) {
  for (hf_shared *v = atomic_load_explicit(&((hf_shared *)s)->variants, memory_order_acquire);
       v; v = v->vnext)
    if (v->vkind == kind)
      return v;
  return NULL;
}

hf_shared *hf_shared_variant(hf_shared *s, uint32_t kind,
                             hf_shared *(*build)(const hf_shared *s, void *arg),
                             void *arg) {
  hf_shared *mine = NULL;
  hf_shared *head = atomic_load_explicit(&s->variants, memory_order_acquire);
  for (;;) {
    for (hf_shared *v = head; v; v = v->vnext)
      if (v->vkind == kind) {
        hf_shared_unref(mine); /* another thread built it first */
        return v;
      }
    if (!mine) {
      mine = build(s, arg);
      if (!mine)
        return NULL;
      mine->vkind = kind;
    }
    mine->vnext = head;
    /* publish it; on failure head is reloaded and searched again */
    if (atomic_compare_exchange_weak_explicit(&s->variants, &head, mine,
                                              memory_order_acq_rel,
                                              memory_order_acquire))
      return mine;
  }
}
