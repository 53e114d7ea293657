/* SPDX-License-Identifier: MIT */
/* Unit tests for the event loop's inbox: messages run on the loop in posting
 * order, and a loop freed after it stopped releases the messages still
 * queued through their drop callback (ASan's leak check sees any it misses). */
#include <stdlib.h>

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

int main(void) {
  hf_t_suite = "loop";
  RUN_TEST(test_inbox_runs_fifo);
  RUN_TEST(test_free_drops_queued);
  RUN_TEST(test_free_unrun_loop);
  TEST_MAIN_END();
}
