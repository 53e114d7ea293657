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
  return s;
}

void hf_shared_unref(hf_shared *s) {
  if (!s)
    return;
  /* release our writes; the last owner acquires everyone's before free */
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
    free(s);
}
