/* SPDX-License-Identifier: MIT */
/* Reference-counted byte buffers. A broadcast frame is built once into an
 * hf_shared and queued, by reference, on every recipient connection (on any
 * worker thread): no copy per recipient. The count is atomic; the bytes are
 * immutable once shared. Small frames can be carved from a per-thread
 * chunk (hf_shared_new_frame), so that frames built one after another lie
 * back to back in memory and a connection sends a run of them as one
 * contiguous buffer. */
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
  uint32_t vkind; /* as a variant: its kind (hf_shared_variant) */
  /* Re-encodings of these bytes, owned by this buffer, NULL if none: the
   * frame compressed for permessage-deflate recipients
   * (HF_SHARED_VARIANT_DEFLATE, attached before sharing), and other
   * framings built on first use (another transport's or encoding's). */
  struct hf_shared *_Atomic variants;
  struct hf_shared *vnext; /* as a variant: the next of its parent's */
  struct hf_shared_chunk *chunk; /* NULL: data follows this header */
  uint8_t *data;
} hf_shared;

/* The buffer holds whole frames that a connection may drop from its output
 * queue without sending (publications the client can recover from a
 * stream); see hf_conn_drop_queued(). */
#define HF_SHARED_DROPPABLE 1u
/* The buffer carries a payload that only recipients of a binary-capable
 * encoding may get (holdfast: binary publication data, which JSON
 * recipients cannot represent; the server disconnects them instead). */
#define HF_SHARED_BINARY 2u

/* A buffer with room for cap bytes, len 0, one reference. NULL on OOM. */
hf_shared *hf_shared_new(size_t cap);

/* As hf_shared_new, for a frame about to be shared: a small one (cap up to
 * HF_SHARED_CHUNK_MAX) is carved, header and bytes, from the calling
 * thread's current chunk (no malloc), right behind the previous frame this
 * thread carved, unless something else was carved in between; larger ones
 * are malloc'd. Call hf_shared_trim() once len is final, so the next frame
 * starts right after this one. A chunk is freed when its last frame is,
 * on any thread; a chunk holds at most HF_SHARED_CHUNK bytes. */
hf_shared *hf_shared_new_frame(size_t cap);
#define HF_SHARED_CHUNK 16384u
#define HF_SHARED_CHUNK_MAX 2048u
/* Give the bytes from len to cap back to the chunk when s is the last frame
 * carved from it (else nothing changes); cap becomes len. Call before s is
 * shared, on the thread that made it. */
void hf_shared_trim(hf_shared *s);
/* Release the calling thread's current chunk (the thread is done building
 * frames; frames still referenced keep it alive). Called automatically
 * when a thread exits; safe to call any time. */
void hf_shared_thread_done(void);

static inline hf_shared *hf_shared_ref(hf_shared *s) {
  atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
  return s;
}

/* Take n references at once (one atomic operation for a whole sweep's
 * worth of recipients). Any thread. */
static inline hf_shared *hf_shared_ref_n(hf_shared *s, uint32_t n) {
  atomic_fetch_add_explicit(&s->refs, n, memory_order_relaxed);
  return s;
}

/* Drop a reference; the last one frees the buffer (and its variants).
 * Any thread. */
void hf_shared_unref(hf_shared *s);
/* Drop n references held by the caller at once; the last frees. n may be
 * 0 (no-op); s may be NULL. Any thread. */
void hf_shared_unref_n(hf_shared *s, uint32_t n);

/* Shared-frame compression settings, set once before worker threads start
 * (zlib level 0..9, mem_level 1..9, window_bits 9..15; frames with a payload
 * under min_size are not compressed). enabled 0 turns it off. */
typedef struct {
  int enabled, level, mem_level, window_bits;
  size_t min_size;
} hf_shared_deflate_cfg;
void hf_shared_deflate_setup(const hf_shared_deflate_cfg *cfg);
/* The window bits shared frames are compressed with (a recipient that
 * negotiated a smaller server window gets the plain frame). */
int hf_shared_deflate_bits(void);

/* The variant kind of a frame's compressed form (hf_shared_deflate). */
#define HF_SHARED_VARIANT_DEFLATE 0x80000000u

/* Attach the HF_SHARED_VARIANT_DEFLATE variant: the single frame in
 * frame->data (header of hdr_len bytes, then the payload) compressed once
 * with this thread's compressor and RSV1 set, for every permessage-deflate
 * recipient. Does nothing
 * (returns 0) when compression is off, the payload is under min_size, no
 * connection has deflate right now, or compressing does not make it
 * smaller. Returns 1 when attached, a negative HF_E* on failure (the frame stays
 * usable, uncompressed). Call before the frame is shared. */
int hf_shared_deflate(hf_shared *frame, size_t hdr_len);

/* Number of shared-frame compressions since start (any thread). */
uint64_t hf_shared_deflate_count(void);
/* Live connections with permessage-deflate (maintained by hf_conn). */
void hf_shared_deflate_users(int delta);
/* The variant of s of kind (nonzero, the caller's numbering): the same
 * message framed another way, built by build(s, arg) the first time any
 * thread asks and kept with s (freed with it), so that a broadcast costs
 * one encoding per framing, not one per recipient. Threads racing to build
 * it agree on one copy. The result is borrowed: take a reference to keep
 * it beyond s. NULL if build failed (out of memory). Any thread. */
hf_shared *hf_shared_variant(hf_shared *s, uint32_t kind,
                             hf_shared *(*build)(const hf_shared *s, void *arg),
                             void *arg);
/* The variant of s of kind if one was built, else NULL (nothing is built).
 * Borrowed, as above. Any thread. */
hf_shared *hf_shared_variant_find(const hf_shared *s, uint32_t kind);

#ifdef __cplusplus
}
#endif
#endif
