/* SPDX-License-Identifier: MIT */
/* Unit tests for the event loop (net/loop.c): the inbox (messages run on
 * the loop in posting order, and a loop freed after it stopped releases the
 * messages still queued through their drop callback; ASan's leak check sees
 * any it misses), and the bulk budget (established (urgent) ios are served
 * before new-connection (bulk) work, bulk work beyond the per-iteration
 * budget is parked and served in later iterations in order, and removing or
 * changing a parked io is safe), and the wall clock (hf_wall_ms) is the
 * precise one. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "hf/loop.h"
#include "test.h"

typedef struct {
  hf_msg m;
  int id;
  int *log; /* ids in the order run or dropped */
  int *nlog;
} id_msg;

static void note(id_msg *x) { x->log[(*x->nlog)++] = x->id; }

static void run_note(hf_loop *loop, hf_msg *m) {
  note((id_msg *)m);
  free(m);
}

static void run_note_stop(hf_loop *loop, hf_msg *m) {
  run_note(loop, m);
  hf_loop_stop(loop);
}

static void drop_note(hf_msg *m) {
  note((id_msg *)m);
  free(m);
}

static void post_id(hf_loop *loop, int id, int *log, int *nlog,
                    void (*run)(hf_loop *, hf_msg *)) {
  id_msg *x = calloc(1, sizeof *x);
  if (!x)
    abort();
  x->m.run = run;
  x->m.drop = drop_note;
  x->id = id;
  x->log = log;
  x->nlog = nlog;
  hf_loop_post(loop, &x->m);
}

/* posted before the loop runs: run in posting order, none dropped */
static void test_inbox_runs_fifo(void) {
  hf_loop *loop = hf_loop_new(10, 4096);
  CHECK(loop != NULL);
  if (!loop)
    return;
  int log[8], n = 0;
  post_id(loop, 1, log, &n, run_note);
  post_id(loop, 2, log, &n, run_note);
  post_id(loop, 3, log, &n, run_note_stop);
  CHECK_INT(hf_loop_run(loop), 0);
  CHECK_INT(n, 3);
  for (int i = 0; i < n && i < 3; i++)
    CHECK_INT(log[i], i + 1);
  hf_loop_free(loop);
  CHECK_INT(n, 3); /* nothing left to drop */
}

static int embedded_runs;
static void run_embedded(hf_loop *loop, hf_msg *m) { embedded_runs++; }

/* posted to a stopped loop: hf_loop_free drops them, in posting order, and
 * leaves a message with no drop callback (not owned by the inbox) alone */
static void test_free_drops_queued(void) {
  hf_loop *loop = hf_loop_new(10, 4096);
  CHECK(loop != NULL);
  if (!loop)
    return;
  int log[8], n = 0;
  post_id(loop, 1, log, &n, run_note_stop);
  CHECK_INT(hf_loop_run(loop), 0);
  CHECK_INT(n, 1);
  post_id(loop, 4, log, &n, run_note);
  hf_msg embedded = {.run = run_embedded, .drop = NULL};
  hf_loop_post(loop, &embedded);
  post_id(loop, 5, log, &n, run_note);
  post_id(loop, 6, log, &n, run_note);
  hf_loop_free(loop);
  CHECK_INT(n, 4);
  for (int i = 1; i < n && i < 4; i++)
    CHECK_INT(log[i], i + 3);
  CHECK_INT(embedded_runs, 0);
}

/* never run at all */
static void test_free_unrun_loop(void) {
  hf_loop *loop = hf_loop_new(10, 4096);
  CHECK(loop != NULL);
  if (!loop)
    return;
  int log[4], n = 0;
  post_id(loop, 7, log, &n, run_note);
  hf_loop_free(loop);
  CHECK_INT(n, 1);
  CHECK_INT(log[0], 7);
  hf_loop_free(NULL);
}

#define NB 8

typedef struct {
  hf_io io;
  int wfd;
  int id;
} pio;

static int order[64], norder, stop_after;
static pio bulk[NB], urgent;
static int delete_id = -1; /* a bulk callback removes this io */

static void spin_us(unsigned us) {
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  do
    clock_gettime(CLOCK_MONOTONIC, &b);
  while ((uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)(b.tv_nsec - a.tv_nsec) <
         (uint64_t)us * 1000u);
}

static void on_io(hf_loop *loop, hf_io *io, uint32_t revents) {
  pio *p = (pio *)io;
  char c;
  if (read(io->fd, &c, 1) != 1)
    return;
  order[norder++] = p->id;
  if (p->id == 0) /* the first bulk callback makes the urgent io ready */
    CHECK(write(urgent.wfd, "u", 1) == 1);
  if (p->id == -1 && delete_id >= 0) { /* the next iteration: it is parked */
    hf_loop_del(loop, &bulk[delete_id].io);
    delete_id = -1;
  }
  if (p->id >= 0)
    spin_us(200);
  if (norder == stop_after)
    hf_loop_stop(loop);
}

static int make(hf_loop *loop, pio *p, int id, int is_bulk) {
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
    return -1;
  memset(p, 0, sizeof *p);
  p->io.fd = fds[0];
  p->io.cb = on_io;
  p->io.bulk = (uint8_t)is_bulk;
  p->wfd = fds[1];
  p->id = id;
  return hf_loop_add(loop, &p->io, EPOLLIN);
}

static void close_all(void) {
  for (int i = 0; i < NB; i++) {
    close(bulk[i].io.fd);
    close(bulk[i].wfd);
  }
  close(urgent.io.fd);
  close(urgent.wfd);
}

/* Runs the loop over NB ready bulk ios (each 200 us of work) and an urgent
 * io that becomes ready during the first one. */
static void run(unsigned budget_us, int expect) {
  hf_loop *loop = hf_loop_new(10, 4096);
  CHECK(loop != NULL);
  if (!loop)
    return;
  hf_loop_set_bulk_budget(loop, budget_us);
  norder = 0;
  stop_after = expect;
  for (int i = 0; i < NB; i++) {
    CHECK_INT(make(loop, &bulk[i], i, 1), 0);
    CHECK(write(bulk[i].wfd, "b", 1) == 1);
  }
  CHECK_INT(make(loop, &urgent, -1, 0), 0);
  hf_loop_run(loop);
  hf_loop_free(loop);
  close_all();
}

static void urgent_io_overtakes_bulk_work(void) {
  run(300, NB + 1);
  CHECK_INT(norder, NB + 1);
  int upos = -1;
  for (int i = 0; i < norder; i++)
    if (order[i] == -1)
      upos = i;
  /* 300 us of budget: one or two bulk callbacks (200 us each; one when this
   * thread was preempted), then the urgent one (ready since the first)
   * before the parked rest */
  CHECK(upos == 1 || upos == 2);
  for (int i = 0, want = 0; i < norder; i++) /* bulk work keeps its order */
    if (order[i] >= 0)
      CHECK_INT(order[i], want++);
}

static void without_a_budget_the_batch_comes_first(void) {
  run(0, NB + 1);
  CHECK_INT(norder, NB + 1);
  CHECK_INT(order[NB], -1); /* served only after the whole batch */
}

static void a_parked_io_can_be_removed(void) {
  delete_id = NB - 1; /* parked when the urgent callback removes it */
  run(300, NB);        /* never served */
  CHECK_INT(norder, NB);
  for (int i = 0; i < norder; i++)
    CHECK(order[i] != NB - 1);
  delete_id = -1;
}

static int mod_rc = -1;
static void mod_parked(hf_loop *loop, hf_io *io, uint32_t revents) {
  pio *p = (pio *)io;
  char c;
  if (read(io->fd, &c, 1) == 1) {
    order[norder++] = p->id;
    if (p->id == 1) /* served from the park list; bulk[2] is still parked */
      mod_rc = hf_loop_mod(loop, &bulk[2].io, EPOLLIN | EPOLLRDHUP);
    spin_us(400);
  }
  if (norder == 3)
    hf_loop_stop(loop);
}

static void a_parked_io_can_change_its_events(void) {
  hf_loop *loop = hf_loop_new(10, 4096);
  CHECK(loop != NULL);
  if (!loop)
    return;
  hf_loop_set_bulk_budget(loop, 100);
  norder = 0;
  for (int i = 0; i < 3; i++) {
    CHECK_INT(make(loop, &bulk[i], i, 1), 0);
    bulk[i].io.cb = mod_parked;
    CHECK(write(bulk[i].wfd, "b", 1) == 1);
  }
  hf_loop_run(loop);
  CHECK_INT(mod_rc, 0);
  CHECK_INT(norder, 3);
  CHECK_INT(order[2], 2); /* unparked with its new events and served */
  CHECK_INT(bulk[2].io.events, EPOLLIN | EPOLLRDHUP);
  hf_loop_free(loop);
  for (int i = 0; i < 3; i++) {
    close(bulk[i].io.fd);
    close(bulk[i].wfd);
  }
}

/* hf_loop_defer_next: work done in portions. A portion that puts the rest
 * off to the next iteration lets that iteration's I/O run first (here: a
 * byte written to a pipe by the first portion is read before the second
 * portion), and the loop does not sleep in between (no timers armed, so a
 * sleeping loop would block forever). A node queued with hf_loop_defer while
 * it waits for the next iteration runs once, not twice. */
static struct {
  hf_deferred d;
  hf_io io;
  int wfd;
  int portions, left;
  char log[16];
  int nlog;
} por;

static void portion(hf_loop *loop, hf_deferred *d) {
  por.log[por.nlog++] = (char)('0' + por.portions++);
  if (por.portions == 1) {
    CHECK(write(por.wfd, "x", 1) == 1); /* input arrives during the work */
    hf_loop_defer_next(loop, d);
    hf_loop_defer(loop, d); /* already queued: stays where it is */
  } else if (--por.left > 0) {
    hf_loop_defer_next(loop, d);
  } else {
    hf_loop_stop(loop);
  }
}

static void por_read(hf_loop *loop, hf_io *io, uint32_t revents) {
  (void)loop;
  (void)revents;
  char c;
  if (read(io->fd, &c, 1) == 1)
    por.log[por.nlog++] = c;
}

static void work_in_portions_reads_input_between(void) {
  hf_loop *loop = hf_loop_new(10, 4096);
  CHECK(loop != NULL);
  if (!loop)
    return;
  int p[2];
  CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
  memset(&por, 0, sizeof por);
  por.d.cb = portion;
  por.io.fd = p[0];
  por.io.cb = por_read;
  por.wfd = p[1];
  por.left = 3;
  CHECK(hf_loop_add(loop, &por.io, EPOLLIN) == 0);
  hf_loop_defer(loop, &por.d);
  hf_loop_run(loop);
  por.log[por.nlog] = 0;
  CHECK_STR(por.log, "0x123");
  hf_loop_del(loop, &por.io);
  close(p[0]);
  close(p[1]);
  hf_loop_free(loop);
}

static uint64_t realtime_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* hf_wall_ms is never behind the precise wall clock, not even in the
 * milliseconds after a second boundary, where time() still shows the
 * previous second (it reads the coarse clock). Reads until one boundary has
 * passed (at most a second). */
static void wall_clock_is_not_behind_across_a_second(void) {
  uint64_t start = realtime_ms(), behind = 0, reads = 0;
  for (;;) {
    uint64_t before = realtime_ms();
    uint64_t w = hf_wall_ms();
    uint64_t after = realtime_ms();
    reads++;
    if (w < before || w > after)
      behind++;
    if (before / 1000 != start / 1000 && before % 1000 >= 20)
      break;
  }
  CHECK(behind == 0);
  CHECK(reads > 100);
}

int main(void) {
  hf_t_suite = "loop";
  RUN_TEST(test_inbox_runs_fifo);
  RUN_TEST(test_free_drops_queued);
  RUN_TEST(test_free_unrun_loop);
  RUN_TEST(urgent_io_overtakes_bulk_work);
  RUN_TEST(without_a_budget_the_batch_comes_first);
  RUN_TEST(a_parked_io_can_be_removed);
  RUN_TEST(a_parked_io_can_change_its_events);
  RUN_TEST(work_in_portions_reads_input_between);
  RUN_TEST(wall_clock_is_not_behind_across_a_second);
  TEST_MAIN_END();
}
