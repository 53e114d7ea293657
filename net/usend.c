/* SPDX-License-Identifier: MIT */
/* Batched non-blocking sendmsg on io_uring (liburing): the connection
 * engine's optional send path (hf_conn_config.send_uring); sendmsg stays the
 * portable one. */
#include "hf/usend.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hf/err.h"

struct hf_usend {
  struct io_uring ring;
  unsigned queued; /* entries in the current batch */
  unsigned cap;
  int disabled;     /* created disabled: enabled by its first run */
  uint32_t *token;  /* the caller's token per batch slot */
  struct io_uring_sqe **sqe; /* the slot's entry, until the batch runs */
  uint8_t *done;    /* the slot's result was reported */
};

hf_usend *hf_usend_new(unsigned entries, int *err) {
  hf_usend *u = calloc(1, sizeof *u);
  if (!u) {
    *err = -ENOMEM;
    return NULL;
  }
  if (entries > 4096)
    entries = 4096;
  /* one issuer, completions reaped by it (6.1+); a plain ring before that.
   * The issuer is the thread that enables the ring: created disabled here
   * (often on the main thread), enabled by the first run on the loop's */
  struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                                       IORING_SETUP_R_DISABLED};
  int r = entries ? io_uring_queue_init_params(entries, &u->ring, &p) : -EINVAL;
  if (r == -EINVAL && entries) {
    memset(&p, 0, sizeof p);
    r = io_uring_queue_init_params(entries, &u->ring, &p);
  }
  if (r < 0) {
    *err = r;
    free(u);
    return NULL;
  }
  u->cap = p.sq_entries;
  u->disabled = (p.flags & IORING_SETUP_R_DISABLED) != 0;
  u->token = calloc(u->cap, sizeof *u->token);
  u->done = calloc(u->cap, 1);
  u->sqe = calloc(u->cap, sizeof *u->sqe);
  if (!u->token || !u->done || !u->sqe) {
    hf_usend_free(u);
    *err = -ENOMEM;
    return NULL;
  }
  *err = 0;
  return u;
}

void hf_usend_free(hf_usend *u) {
  if (!u)
    return;
  io_uring_queue_exit(&u->ring);
  free(u->token);
  free(u->done);
  free(u->sqe);
  free(u);
}

unsigned hf_usend_room(const hf_usend *u) { return u->cap - u->queued; }

int hf_usend_queue(hf_usend *u, int fd, const struct msghdr *mh, uint32_t token) {
  struct io_uring_sqe *sqe = u->queued < u->cap ? io_uring_get_sqe(&u->ring) : NULL;
  if (!sqe)
    return HF_ELIMIT;
  io_uring_prep_sendmsg(sqe, fd, mh, MSG_NOSIGNAL | MSG_DONTWAIT);
  io_uring_sqe_set_data64(sqe, u->queued);
  u->token[u->queued] = token;
  u->done[u->queued] = 0;
  u->sqe[u->queued] = sqe;
  u->queued++;
  return 0;
}

void hf_usend_forget(hf_usend *u, uint32_t token) {
  for (unsigned i = 0; i < u->queued; i++)
    if (u->token[i] == token) {
      io_uring_prep_nop(u->sqe[i]); /* clears the entry: fd, buffers, flags */
      io_uring_sqe_set_data64(u->sqe[i], i);
      return;
    }
}

int hf_usend_run(hf_usend *u, void (*done)(void *arg, uint32_t token, int res), void *arg) {
  unsigned want = u->queued;
  u->queued = 0;
  if (!want)
    return 0;
  int fail = 0, submitted = 0;
  if (u->disabled) {
    u->disabled = 0;
    /* liburing 2.3 has no io_uring_enable_rings(): the register call */
    int r = (int)syscall(__NR_io_uring_register, u->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS,
                         NULL, 0);
    r = r < 0 ? -errno : r;
    if (r < 0) { /* nothing ran */
      for (unsigned i = 0; i < want; i++)
        done(arg, u->token[i], -ECANCELED);
      return r;
    }
  }
  while ((unsigned)submitted < want) {
    int r = io_uring_submit_and_wait(&u->ring, want - (unsigned)submitted);
    if (r == -EINTR)
      continue;
    if (r < 0) {
      fail = r;
      break;
    }
    if (r == 0) { /* nothing taken: give up on this ring */
      fail = -EIO;
      break;
    }
    submitted += r;
  }
  unsigned got = 0;
  while (got < (unsigned)submitted) {
    struct io_uring_cqe *cqe;
    int r = io_uring_wait_cqe(&u->ring, &cqe);
    if (r == -EINTR)
      continue;
    if (r < 0) {
      fail = r;
      break;
    }
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&u->ring, head, cqe) {
      seen++;
      uint64_t slot = io_uring_cqe_get_data64(cqe);
      if (slot < want && !u->done[slot]) {
        u->done[slot] = 1;
        done(arg, u->token[slot], cqe->res);
      }
    }
    io_uring_cq_advance(&u->ring, seen);
    got += seen;
  }
  if (fail) /* whether these left is unknown: failed writes */
    for (unsigned i = 0; i < want; i++)
      if (!u->done[i])
        done(arg, u->token[i], -EIO);
  return fail;
}
