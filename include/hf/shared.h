/* SPDX-License-Identifier: MIT */
/* Reference-counted byte buffers. A broadcast frame is built once into an
 * hf_shared and queued, by reference, on every recipient connection (on any
 * worker thread): no copy per recipient. The count is atomic; the bytes are
 * immutable once shared. */
#ifndef HF_SHARED_H
#define HF_SHARED_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hf_shared {
  atomic_uint refs;
  uint32_t len;   /* bytes used in data[] */
  uint32_t cap;   /* bytes allocated in data[] */
  uint32_t flags; /* HF_SHARED_*; set before the buffer is shared */
  uint8_t data[];
} hf_shared;

/* The buffer holds whole frames that a connection may drop from its output
 * queue without sending (publications the client can recover from a
 * stream); see hf_conn_drop_queued(). */
#define HF_SHARED_DROPPABLE 1u

/* A buffer with room for cap bytes, len 0, one reference. NULL on OOM. */
hf_shared *hf_shared_new(size_t cap);

static inline hf_shared *hf_shared_ref(hf_shared *s) {
  atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
  return s;
}

/* Drop a reference; the last one frees the buffer. Any thread. */
void hf_shared_unref(hf_shared *s);

#ifdef __cplusplus
}
#endif
#endif
