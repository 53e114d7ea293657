/* SPDX-License-Identifier: MIT */
/* One event loop per thread: level-triggered epoll with the object pointer in
 * epoll_data, a coarse timer wheel (intrusive, O(1) set/cancel), an
 * end-of-iteration "flush" list, a lock-free inbox through which other
 * threads post work, and the loop-wide scratch buffers (one receive buffer
 * and one cork buffer per loop, none per connection). */
#ifndef HF_LOOP_H
#define HF_LOOP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hf_loop hf_loop;
typedef struct hf_io hf_io;

/* An fd registered with the loop. Embed it in your object (zeroed); the
 * callback gets it back and recovers the object (container_of).
 *
 * bulk: the io carries new-connection work (a listener, a connection still
 * in its handshake). With a bulk budget (hf_loop_set_bulk_budget), each
 * iteration serves the other ios first, then bulk events (and every hang-up
 * or error event) for at most the budget; the rest are parked (taken out of
 * epoll) and served first in the next iterations. So a burst of new
 * connections delays an established connection's event by about one budget,
 * not by a whole batch of handshakes. Without a budget, bulk is ignored. */
struct hf_io {
  int fd;
  uint32_t events; /* EPOLLIN/EPOLLOUT currently registered */
  void (*cb)(hf_loop *loop, hf_io *io, uint32_t revents);
  uint8_t bulk;
  /* loop-private: parked while over the bulk budget */
  uint8_t _parked;
  uint32_t _revents;
  hf_io *_pnext, *_pprev;
};

typedef struct hf_timer hf_timer;
struct hf_timer {
  hf_timer *_next, *_prev; /* wheel slot list; _prev NULL when not armed */
  uint64_t due_ms;         /* absolute time on the loop's clock */
  void (*cb)(hf_loop *loop, hf_timer *t);
};

/* A message posted to a loop from any thread. */
typedef struct hf_msg hf_msg;
struct hf_msg {
  hf_msg *_Atomic _next;
  /* Called on the loop's thread when the message is taken from the inbox;
   * takes ownership of m. */
  void (*run)(hf_loop *loop, hf_msg *m);
  /* Called by hf_loop_free for a message still queued (posted to a loop
   * that was stopped before it ran): releases m and what it holds. NULL
   * when the inbox does not own m (memory embedded in a longer-lived
   * object that frees it). Set it on every message posted. */
  void (*drop)(hf_msg *m);
};

/* Create a loop. tick_ms is the timer granularity (timers fire up to one
 * tick late). rbuf_size is the size of the shared receive buffer. Returns
 * NULL on failure (errno set). */
hf_loop *hf_loop_new(unsigned tick_ms, size_t rbuf_size);
/* Free a loop that is not running (after hf_loop_run returned, or never
 * run). Messages still in its inbox are released with their drop callback,
 * in posting order; nothing may post to the loop any more. NULL is a no-op. */
void hf_loop_free(hf_loop *loop);

/* Register / change / remove an fd. events: EPOLLIN|EPOLLOUT|EPOLLRDHUP.
 * Return 0 or -errno. hf_loop_mod is a no-op if events are unchanged. */
int hf_loop_add(hf_loop *loop, hf_io *io, uint32_t events);
int hf_loop_mod(hf_loop *loop, hf_io *io, uint32_t events);
int hf_loop_del(hf_loop *loop, hf_io *io);

/* Run until hf_loop_stop(). Returns 0. */
int hf_loop_run(hf_loop *loop);
/* Stop the loop after the current iteration (call from the loop thread). */
void hf_loop_stop(hf_loop *loop);

/* Milliseconds on CLOCK_MONOTONIC, cached once per iteration. */
uint64_t hf_loop_now(const hf_loop *loop);

/* Milliseconds since the Unix epoch on CLOCK_REALTIME, read now (not
 * cached). For times compared with other clocks: token expiry, entries in a
 * broker shared with other nodes. Not time(): glibc reads the kernel's
 * coarse clock for it, which still shows the previous second for up to a
 * tick after a boundary. */
uint64_t hf_wall_ms(void);

/* Arm (or re-arm) t to fire after delay_ms. O(1). */
void hf_timer_set(hf_loop *loop, hf_timer *t, uint64_t delay_ms);
void hf_timer_cancel(hf_loop *loop, hf_timer *t);
static inline int hf_timer_armed(const hf_timer *t) { return t->_prev != 0; }

/* Serve bulk ios (see hf_io) for at most budget_us microseconds per
 * iteration, after the others; 0 (the default) = no budget, every event in
 * arrival order. Loop thread (or before the loop runs). */
void hf_loop_set_bulk_budget(hf_loop *loop, unsigned budget_us);
/* Inside a bulk callback: is this iteration's bulk budget spent? A callback
 * doing many units of work (an accept loop) stops there; a level-triggered
 * fd is reported again. 0 without a budget. */
int hf_loop_bulk_over(hf_loop *loop);

/* Post m to loop from any thread; m->run is called on the loop's thread.
 * Lock-free (multi-producer, single-consumer); one eventfd write wakes the
 * loop only when its inbox was empty. */
void hf_loop_post(hf_loop *loop, hf_msg *m);

/* Call cb(loop, arg) once at the end of the current iteration (before the
 * loop sleeps). Used to flush corked output. The node is caller-owned. */
typedef struct hf_deferred hf_deferred;
struct hf_deferred {
  hf_deferred *_next;
  uint8_t _queued;
  void (*cb)(hf_loop *loop, hf_deferred *d);
};
void hf_loop_defer(hf_loop *loop, hf_deferred *d);

/* Call d->cb in the NEXT iteration, after that iteration's I/O events (the
 * loop polls without sleeping meanwhile). For work done in portions, so
 * that input is read between them: a long flush that re-queues itself here
 * lets a publication that arrives meanwhile join the rest of it. A node
 * already queued (either way) stays where it is. */
void hf_loop_defer_next(hf_loop *loop, hf_deferred *d);

/* Shared per-loop buffers: only valid within one callback. */
uint8_t *hf_loop_rbuf(hf_loop *loop, size_t *cap);

/* Opaque per-loop user pointer (the server's worker). */
void hf_loop_set_data(hf_loop *loop, void *data);
void *hf_loop_data(const hf_loop *loop);

#ifdef __cplusplus
}
#endif
#endif
