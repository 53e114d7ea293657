/* SPDX-License-Identifier: MIT */
/* Subscriber-major delivery for the hub: consecutive pushes into one
 * channel that arrive in one loop iteration (an /api/batch, pipelined
 * /api/publish requests, a drained inbox) are held in a run and swept over
 * the channel's subscribers once at the end of the iteration, each
 * subscriber getting all of them in publication order before the next
 * subscriber is touched. Used by hub.c only. */
#ifndef SRV_HUBRUN_H
#define SRV_HUBRUN_H
#include <stddef.h>
#include <stdint.h>

#include "channels/hub.h"
#include "hf/loop.h"

/* Most pushes a run holds; the next one flushes it first. */
#define HUB_RUN_MAX 64u

typedef struct hub_run hub_run;

/* Sweeps n frames (in order) of channel name/len/hash over hl's
 * subscribers (hub.c's deliver_local). */
typedef void (*hub_run_sweep_fn)(hub_local *hl, const char *name, size_t len,
                                 uint32_t hash, const hub_frames *f, size_t n);

/* A run for worker hl on loop, swept with sweep. NULL on OOM (then every
 * push is delivered at once, as hub_run_push with a NULL run says). */
hub_run *hub_run_new(hub_local *hl, hf_loop *loop, hub_run_sweep_fn sweep);
/* Drop what is held (references released, nothing delivered) and free r.
 * r may be NULL. Loop thread, or after the loop stopped. */
void hub_run_free(hub_run *r);

/* Hold this worker's local pushes until the end of the current loop
 * iteration (called before publishing from the server API and when
 * running inbox messages: there, nothing waits for the push on this
 * thread). r may be NULL (no effect). Loop thread only. */
void hub_run_hold(hub_run *r);

/* Offer push f of channel name/len/hash. Returns 1 if it was held (the run
 * took its own references; it is swept at the latest at the end of the
 * iteration), 0 if the caller must sweep it now: no hold is active, r is
 * NULL, or the run is being swept (a push made from inside a delivery).
 * A push into another channel, or one past HUB_RUN_MAX, sweeps what is
 * held first, so every subscriber keeps the order of pushes as they were
 * offered. Loop thread only. */
int hub_run_push(hub_run *r, const char *name, size_t len, uint32_t hash,
                 const hub_frames *f);

/* Sweep what is held now (before a delivery that bypasses the run). r may
 * be NULL. Loop thread only; re-entrant calls from a sweep do nothing. */
void hub_run_flush(hub_run *r);
#endif
