/* SPDX-License-Identifier: MIT */
/* Batched non-blocking sends on io_uring (hf_usend): many sendmsg() calls,
 * one per socket, queued as IORING_OP_SENDMSG entries and submitted with one
 * io_uring_enter, for the connection engine's end-of-iteration flush. Every
 * entry carries MSG_DONTWAIT, so a submit never blocks: a full socket
 * completes with -EAGAIN exactly as sendmsg() would return it.
 *
 * Threading: one hf_usend belongs to one loop thread. */
#ifndef HF_USEND_H
#define HF_USEND_H

#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hf_usend hf_usend;

/* A ring for up to entries sends per batch (rounded up to a power of two by
 * the kernel, at most 4096). NULL if io_uring is unavailable (old kernel,
 * io_uring_disabled, a seccomp filter, no memory): *err is then the
 * negative errno of io_uring_setup (or -ENOMEM); the caller uses sendmsg. */
hf_usend *hf_usend_new(unsigned entries, int *err);
void hf_usend_free(hf_usend *u);

/* Room for more entries in the current batch. */
unsigned hf_usend_room(const hf_usend *u);

/* Queue sendmsg(fd, mh, MSG_NOSIGNAL | MSG_DONTWAIT). mh and its iovecs
 * are borrowed and must stay valid until hf_usend_run returns. token comes
 * back with the result. 0, or HF_ELIMIT if the batch is full (run it). */
int hf_usend_queue(hf_usend *u, int fd, const struct msghdr *mh, uint32_t token);

/* Turn the queued entry with this token into a no-op before the batch runs
 * (its socket is being closed: the descriptor number must not be used by
 * the batch, where a new socket may get it). Its result is 0. Nothing
 * happens if no queued entry has the token. */
void hf_usend_forget(hf_usend *u, uint32_t token);

/* Submit the batch, wait for all of its results (immediate: nothing in it
 * blocks) and call done(arg, token, res) once per queued entry, in
 * completion order: res is the byte count or a negative errno (-EAGAIN:
 * the socket is full). The first run binds the ring to its thread (the
 * single issuer); if the kernel refuses to enable it, every entry completes
 * with -ECANCELED (nothing was sent: send it another way) and the negative
 * errno is returned. If the ring itself fails later (not seen on a healthy
 * kernel: every entry is non-blocking and the completion queue has room for
 * a whole batch), the entries it did not report complete with -EIO (whether
 * their bytes left is unknown: the caller must treat the socket as failed)
 * and hf_usend_run returns the negative errno: drop the ring then and use
 * sendmsg. Otherwise 0. */
int hf_usend_run(hf_usend *u, void (*done)(void *arg, uint32_t token, int res), void *arg);

#ifdef __cplusplus
}
#endif
#endif
