/* SPDX-License-Identifier: MIT */
/* Unit tests for the io_uring send batch (net/usend.c): every queued
 * sendmsg is reported once with its byte count and token, and the bytes
 * arrive in order; a full socket completes with -EAGAIN instead of blocking;
 * a failed socket with its own errno while the others in the batch succeed;
 * a full batch refuses more entries; a forgotten entry (its socket closed
 * before the batch ran) sends nothing, even where a new socket got its
 * descriptor number; a ring created on one thread runs on
 * another (the loop's); an impossible ring size is refused with an errno.
 * Where the kernel refuses io_uring altogether each test says so and checks
 * the refusal instead (the connection engine then uses sendmsg). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "hf/err.h"
#include "hf/usend.h"
#include "test.h"

#define NS 8

typedef struct {
  int res[64];
  int calls[64];
  int n;
} results;

static void note(void *arg, uint32_t token, int res) {
  results *r = arg;
  r->res[token] = res;
  r->calls[token]++;
  r->n++;
}

static hf_usend *ring_or_skip(unsigned entries) {
  int err = 1;
  hf_usend *u = hf_usend_new(entries, &err);
  if (!u) {
    printf("  (io_uring refused here: %s; checking the refusal only)\n", strerror(-err));
    CHECK(err < 0);
  } else {
    CHECK_INT(err, 0);
  }
  return u;
}

static void pairs(int sv[NS][2]) {
  for (int i = 0; i < NS; i++) {
    CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv[i]), 0);
  }
}

static void close_pairs(int sv[NS][2]) {
  for (int i = 0; i < NS; i++) {
    close(sv[i][0]);
    if (sv[i][1] >= 0)
      close(sv[i][1]);
  }
}

static void every_send_reported_once_bytes_in_order(void) {
  hf_usend *u = ring_or_skip(16);
  if (!u)
    return;
  int sv[NS][2];
  pairs(sv);
  char a[NS][32], b[NS][32];
  struct iovec iov[NS][2];
  struct msghdr mh[NS];
  for (int i = 0; i < NS; i++) {
    snprintf(a[i], sizeof a[i], "head-%d|", i);
    snprintf(b[i], sizeof b[i], "tail-%d", i);
    iov[i][0] = (struct iovec){a[i], strlen(a[i])};
    iov[i][1] = (struct iovec){b[i], strlen(b[i])};
    mh[i] = (struct msghdr){.msg_iov = iov[i], .msg_iovlen = 2};
    CHECK_INT(hf_usend_queue(u, sv[i][0], &mh[i], (uint32_t)i), 0);
  }
  CHECK_INT(hf_usend_room(u), 16 - NS);
  results r = {0};
  CHECK_INT(hf_usend_run(u, note, &r), 0);
  CHECK_INT(r.n, NS);
  CHECK_INT(hf_usend_room(u), 16);
  for (int i = 0; i < NS; i++) {
    char want[256], got[256] = {0};
    snprintf(want, sizeof want, "%s%s", a[i], b[i]);
    CHECK_INT(r.calls[i], 1);
    CHECK_INT(r.res[i], (int)strlen(want));
    CHECK_INT(read(sv[i][1], got, sizeof got - 1), (int)strlen(want));
    CHECK_STR(got, want);
  }
  /* an empty batch is a no-op */
  CHECK_INT(hf_usend_run(u, note, &r), 0);
  CHECK_INT(r.n, NS);
  close_pairs(sv);
  hf_usend_free(u);
}

static void full_socket_again_failed_socket_errno(void) {
  hf_usend *u = ring_or_skip(8);
  if (!u)
    return;
  int sv[NS][2];
  pairs(sv);
  /* fill socket 0: nothing more fits */
  static char big[65536];
  while (send(sv[0][0], big, sizeof big, MSG_DONTWAIT) > 0) {
  }
  close(sv[1][1]); /* socket 1: the peer is gone */
  sv[1][1] = -1;
  struct iovec iov = {(void *)"hello", 5};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  for (int i = 0; i < 3; i++)
    CHECK_INT(hf_usend_queue(u, sv[i][0], &mh, (uint32_t)i), 0);
  results r = {0};
  CHECK_INT(hf_usend_run(u, note, &r), 0);
  CHECK_INT(r.n, 3);
  CHECK_INT(r.res[0], -EAGAIN); /* did not block */
  CHECK_INT(r.res[1], -EPIPE);  /* MSG_NOSIGNAL: no SIGPIPE either */
  CHECK_INT(r.res[2], 5);
  close_pairs(sv);
  hf_usend_free(u);
}

static void a_forgotten_entry_sends_nothing(void) {
  hf_usend *u = ring_or_skip(8);
  if (!u)
    return;
  int sv[NS][2];
  pairs(sv);
  struct iovec iov = {(void *)"hello", 5};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  for (int i = 0; i < 3; i++)
    CHECK_INT(hf_usend_queue(u, sv[i][0], &mh, (uint32_t)i), 0);
  /* socket 1 is closed before the batch runs and its number reused */
  hf_usend_forget(u, 1);
  int fd1 = sv[1][0];
  close(fd1);
  int re[2];
  CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, re), 0);
  CHECK_INT(re[0], fd1); /* the lowest free number: the closed one */
  sv[1][0] = re[0];
  hf_usend_forget(u, 7); /* no such entry: nothing happens */
  results r = {0};
  CHECK_INT(hf_usend_run(u, note, &r), 0);
  CHECK_INT(r.n, 3);
  CHECK_INT(r.res[0], 5);
  CHECK_INT(r.res[1], 0);
  CHECK_INT(r.res[2], 5);
  char got[16];
  CHECK_INT(read(re[1], got, sizeof got), -1); /* the new socket got nothing */
  CHECK_INT(errno, EAGAIN);
  close(re[1]);
  close_pairs(sv);
  hf_usend_free(u);
}

static void a_full_batch_refuses_more(void) {
  hf_usend *u = ring_or_skip(4);
  if (!u)
    return;
  int sv[NS][2];
  pairs(sv);
  struct iovec iov = {(void *)"x", 1};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  unsigned cap = hf_usend_room(u);
  CHECK(cap >= 4 && cap <= NS);
  for (unsigned i = 0; i < cap; i++)
    CHECK_INT(hf_usend_queue(u, sv[i][0], &mh, i), 0);
  CHECK_INT(hf_usend_room(u), 0);
  CHECK_INT(hf_usend_queue(u, sv[0][0], &mh, 99), HF_ELIMIT);
  results r = {0};
  CHECK_INT(hf_usend_run(u, note, &r), 0);
  CHECK_INT(r.n, (int)cap);
  for (unsigned i = 0; i < cap; i++)
    CHECK_INT(r.res[i], 1);
  close_pairs(sv);
  hf_usend_free(u);
}

typedef struct {
  hf_usend *u;
  int fd;
  results r;
  int rc;
} thread_arg;

static void *run_on_thread(void *p) {
  thread_arg *t = p;
  struct iovec iov = {(void *)"loop", 4};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  for (int round = 0; round < 3; round++) { /* the ring stays bound to it */
    hf_usend_queue(t->u, t->fd, &mh, (uint32_t)round);
    t->rc |= hf_usend_run(t->u, note, &t->r);
  }
  return NULL;
}

static void created_on_one_thread_run_on_another(void) {
  hf_usend *u = ring_or_skip(8);
  if (!u)
    return;
  int sv[2];
  CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  thread_arg t = {.u = u, .fd = sv[0]};
  pthread_t th;
  CHECK_INT(pthread_create(&th, NULL, run_on_thread, &t), 0);
  pthread_join(th, NULL);
  CHECK_INT(t.rc, 0);
  CHECK_INT(t.r.n, 3);
  for (int i = 0; i < 3; i++)
    CHECK_INT(t.r.res[i], 4);
  char got[16] = {0};
  CHECK_INT(read(sv[1], got, sizeof got - 1), 12);
  CHECK_STR(got, "looplooploop");
  close(sv[0]);
  close(sv[1]);
  hf_usend_free(u);
}

static void an_impossible_ring_is_refused(void) {
  int err = 0;
  CHECK(hf_usend_new(0, &err) == NULL);
  CHECK_INT(err, -EINVAL);
}

int main(void) {
  hf_t_suite = "usend";
  RUN_TEST(every_send_reported_once_bytes_in_order);
  RUN_TEST(full_socket_again_failed_socket_errno);
  RUN_TEST(a_forgotten_entry_sends_nothing);
  RUN_TEST(a_full_batch_refuses_more);
  RUN_TEST(created_on_one_thread_run_on_another);
  RUN_TEST(an_impossible_ring_is_refused);
  TEST_MAIN_END();
}
