/* SPDX-License-Identifier: MIT */
/* Shared frames carved from per-thread chunks: frames built one after
 * another lie back to back, trimming gives unused bytes back, large frames
 * fall back to malloc, and a chunk outlives its thread while a frame in it
 * is referenced, then is freed by the last release on any thread (ASan
 * checks both: no use after free, no leak). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hf/shared.h"
#include "test.h"

static hf_shared *frame(const char *text, size_t extra) {
  size_t n = strlen(text);
  hf_shared *s = hf_shared_new_frame(n + extra);
  if (!s)
    return NULL;
  memcpy(s->data, text, n);
  s->len = (uint32_t)n;
  hf_shared_trim(s);
  return s;
}

static void consecutive_frames_are_contiguous(void) {
  hf_shared_thread_done(); /* start on a fresh chunk */
  hf_shared *a = frame("first", 0), *b = frame("second", 40), *c = frame("third", 0);
  CHECK(a && b && c);
  CHECK(a->chunk != NULL && a->chunk == b->chunk && b->chunk == c->chunk);
  CHECK(b->data == a->data + a->len); /* trimmed: the 40 spare bytes came back */
  CHECK(c->data == b->data + b->len);
  CHECK_INT(b->cap, 6);
  CHECK_MEM(a->data, 16, "firstsecondthird");
  hf_shared_unref(b); /* frames are freed in any order */
  hf_shared_unref(a);
  hf_shared_unref(c);
}

static void trim_only_gives_back_the_last_frame(void) {
  hf_shared_thread_done();
  hf_shared *a = hf_shared_new_frame(100);
  hf_shared *b = frame("b", 0);
  a->len = 10;
  hf_shared_trim(a); /* not the last one carved: its room stays reserved */
  CHECK_INT(a->cap, 10);
  CHECK(b->data == a->data + 100);
  hf_shared *c = frame("c", 0);
  CHECK(c->data == b->data + 1);
  hf_shared_unref(a);
  hf_shared_unref(b);
  hf_shared_unref(c);
}

static void large_frames_and_full_chunks(void) {
  hf_shared_thread_done();
  hf_shared *big = hf_shared_new_frame(HF_SHARED_CHUNK_MAX + 1);
  CHECK(big && big->chunk == NULL && big->cap == HF_SHARED_CHUNK_MAX + 1);
  hf_shared_unref(big);
  /* fill more than one chunk: every frame keeps its bytes, a new chunk
   * starts when the current one is full */
  enum { N = 40 };
  hf_shared *f[N];
  for (int i = 0; i < N; i++) {
    f[i] = hf_shared_new_frame(1000);
    CHECK(f[i] != NULL);
    memset(f[i]->data, 'a' + i % 26, 1000);
    f[i]->len = 1000;
  }
  CHECK(f[0]->chunk != f[N - 1]->chunk);
  int ok = 1;
  for (int i = 0; i < N; i++)
    for (int k = 0; k < 1000; k++)
      ok &= f[i]->data[k] == 'a' + i % 26;
  CHECK(ok);
  for (int i = 0; i < N; i++)
    hf_shared_unref(f[i]);
}

static void *build_and_exit(void *arg) {
  hf_shared **out = arg;
  out[0] = frame("made on another thread", 0);
  out[1] = frame("and its neighbour", 0);
  return NULL; /* the thread's chunk is released at exit; frames keep it */
}

static void chunk_outlives_its_thread(void) {
  hf_shared *got[2] = {0};
  pthread_t t;
  CHECK_INT(pthread_create(&t, NULL, build_and_exit, got), 0);
  pthread_join(t, NULL);
  CHECK(got[0] && got[1] && got[1]->data == got[0]->data + got[0]->len);
  CHECK_MEM(got[1]->data, got[1]->len, "and its neighbour");
  hf_shared_ref(got[1]);
  hf_shared_unref(got[0]);
  hf_shared_unref(got[1]);
  CHECK_MEM(got[1]->data, got[1]->len, "and its neighbour");
  hf_shared_unref(got[1]); /* the last release frees the chunk */
}

int main(void) {
  hf_t_suite = "shared";
  RUN_TEST(consecutive_frames_are_contiguous);
  RUN_TEST(trim_only_gives_back_the_last_frame);
  RUN_TEST(large_frames_and_full_chunks);
  RUN_TEST(chunk_outlives_its_thread);
  hf_shared_thread_done();
  TEST_MAIN_END();
}
