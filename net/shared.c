/* SPDX-License-Identifier: MIT */
/* Reference-counted byte buffers (see hf/shared.h). */
#include "hf/shared.h"

#include <stdlib.h>

hf_shared *hf_shared_new(size_t cap) {
  if (cap > UINT32_MAX)
    return NULL;
  hf_shared *s = malloc(sizeof *s + cap);
  if (!s)
    return NULL;
  atomic_init(&s->refs, 1);
  s->len = 0;
  s->cap = (uint32_t)cap;
  s->flags = 0;
  s->vkind = 0;
  atomic_init(&s->variants, NULL);
  s->vnext = NULL;
  return s;
}

void hf_shared_unref(hf_shared *s) {
  if (!s)
    return;
  /* release our writes; the last owner acquires everyone's before free */
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
    hf_shared *v = atomic_load_explicit(&s->variants, memory_order_acquire);
    while (v) {
      hf_shared *next = v->vnext;
      hf_shared_unref(v);
      v = next;
    }
    free(s);
  }
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
