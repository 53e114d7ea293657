/* SPDX-License-Identifier: MIT */
/* The held run of subscriber-major delivery (see hubrun.h): pushes of one
 * channel with their references, the channel name copied (the caller's
 * message is freed once it returns), swept by a deferred end-of-iteration
 * callback. */
#include "channels/hubrun.h"

#include <stdlib.h>
#include <string.h>

struct hub_run {
  hub_local *hl;
  hf_loop *loop;
  hub_run_sweep_fn sweep;
  hf_deferred end;  /* end of the iteration: sweep and stop holding */
  uint8_t hold;     /* pushes are held until end runs */
  uint8_t sweeping; /* inside sweep: pushes made now go out at once */
  uint32_t n;       /* pushes held */
  uint32_t hash;
  size_t len, cap;  /* the channel name and its buffer */
  char *name;
  hub_frames f[HUB_RUN_MAX];
};

static void end_of_iteration(hf_loop *loop, hf_deferred *d) {
  hub_run *r = (hub_run *)((char *)d - offsetof(hub_run, end));
  hub_run_flush(r);
  r->hold = 0;
}

hub_run *hub_run_new(hub_local *hl, hf_loop *loop, hub_run_sweep_fn sweep) {
  hub_run *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->hl = hl;
  r->loop = loop;
  r->sweep = sweep;
  r->end.cb = end_of_iteration;
  return r;
}

void hub_run_free(hub_run *r) {
  if (!r)
    return;
  for (uint32_t i = 0; i < r->n; i++)
    hub_frames_unref(&r->f[i]);
  free(r->name);
  free(r);
}

void hub_run_hold(hub_run *r) {
  if (!r || r->hold)
    return;
  r->hold = 1;
  hf_loop_defer(r->loop, &r->end);
}

void hub_run_flush(hub_run *r) {
  if (!r || !r->n || r->sweeping)
    return;
  /* the sweep may re-enter the hub (a slow subscriber's teardown, a gap's
   * unsubscribe): it works on a copy, and the run is empty meanwhile */
  hub_frames f[HUB_RUN_MAX];
  uint32_t n = r->n;
  memcpy(f, r->f, n * sizeof *f);
  r->n = 0;
  r->sweeping = 1;
  r->sweep(r->hl, r->name, r->len, r->hash, f, n);
  r->sweeping = 0;
  for (uint32_t i = 0; i < n; i++)
    hub_frames_unref(&f[i]);
}

int hub_run_push(hub_run *r, const char *name, size_t len, uint32_t hash,
                 const hub_frames *f) {
  if (!r || r->sweeping)
    return 0;
  if (r->n && (r->n == HUB_RUN_MAX || r->hash != hash || r->len != len ||
               memcmp(r->name, name, len) != 0))
    hub_run_flush(r);
  if (!r->hold)
    return 0; /* nothing is held without a hold: the caller sweeps now */
  if (!r->n) {
    if (len + 1 > r->cap) { /* kept between runs: no allocation per run */
      char *nn = realloc(r->name, len + 1);
      if (!nn)
        return 0; /* out of memory: delivered at once instead */
      r->name = nn;
      r->cap = len + 1;
    }
    memcpy(r->name, name, len);
    r->len = len;
    r->hash = hash;
  }
  r->f[r->n++] = *f;
  hub_frames_ref(f);
  return 1;
}
