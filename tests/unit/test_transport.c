/* SPDX-License-Identifier: MIT */
/* Transport helpers: shared-buffer variants (built once, also when threads
 * race for them, freed with their parent), the cf_connect decoder, session
 * ids and their table, and the list of requests waiting for a body. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "hf/shared.h"
#include "test.h"
#include "transport/transport.h"

static atomic_int builds;

static hf_shared *build_upper(const hf_shared *s, void *arg) {
  atomic_fetch_add(&builds, 1);
  hf_shared *v = hf_shared_new(s->len + 1);
  if (!v)
    return NULL;
  for (uint32_t i = 0; i < s->len; i++)
    v->data[i] = (uint8_t)(s->data[i] >= 'a' && s->data[i] <= 'z' ? s->data[i] - 32 : s->data[i]);
  v->len = s->len;
  v->flags = (uint32_t)(uintptr_t)arg;
  return v;
}

static hf_shared *make(const char *text) {
  hf_shared *s = hf_shared_new(strlen(text));
  memcpy(s->data, text, strlen(text));
  s->len = (uint32_t)strlen(text);
  return s;
}

static void variant_built_once_and_owned(void) {
  atomic_store(&builds, 0);
  hf_shared *s = make("hello");
  hf_shared *a = hf_shared_variant(s, 1, build_upper, (void *)7);
  hf_shared *b = hf_shared_variant(s, 1, build_upper, (void *)7);
  hf_shared *c = hf_shared_variant(s, 2, build_upper, (void *)9);
  CHECK(a && a == b && c && c != a);
  CHECK_MEM(a->data, a->len, "HELLO");
  CHECK_INT(a->flags, 7);
  CHECK_INT(c->flags, 9);
  CHECK_INT(atomic_load(&builds), 2);
  hf_shared_ref(a); /* a queue keeps the variant beyond its parent */
  hf_shared_unref(s);
  CHECK_MEM(a->data, a->len, "HELLO");
  hf_shared_unref(a); /* ASan: nothing leaks, nothing is freed twice */
}

typedef struct {
  hf_shared *s;
  hf_shared *got[200];
} race_arg;

static void *racer(void *p) {
  race_arg *r = p;
  for (int k = 0; k < 200; k++)
    r->got[k] = hf_shared_variant(r->s, (uint32_t)(1 + k % 3), build_upper, NULL);
  return NULL;
}

static void variant_race_agrees_on_one_copy(void) {
  for (int round = 0; round < 50; round++) {
    hf_shared *s = make("race");
    race_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
      args[i].s = s;
      pthread_create(&th[i], NULL, racer, &args[i]);
    }
    for (int i = 0; i < 4; i++)
      pthread_join(th[i], NULL);
    for (int i = 1; i < 4; i++)
      for (int k = 0; k < 200; k++)
        CHECK(args[i].got[k] == args[0].got[k] && args[0].got[k]);
    CHECK(args[0].got[0] != args[0].got[1] && args[0].got[1] != args[0].got[2]);
    hf_shared_unref(s); /* frees the three kept variants and no others */
  }
}

static void query_connect_decoding(void) {
  uint8_t *out = NULL;
  size_t len = 0;
  const char *t = "/connection/sse?x=1&cf_connect=%7B%22connect%22%3A%7B%7D%2C%22id%22%3A1%7D&y";
  CHECK_INT(tr_query_connect(t, strlen(t), 100, &out, &len), 0);
  CHECK_MEM(out, len, "{\"connect\":{},\"id\":1}");
  free(out);
  t = "/connection/sse?cf_connect=a+b";
  CHECK_INT(tr_query_connect(t, strlen(t), 100, &out, &len), 0);
  CHECK_MEM(out, len, "a b");
  free(out);
  t = "/connection/sse";
  CHECK_INT(tr_query_connect(t, strlen(t), 100, &out, &len), 1);
  t = "/connection/sse?cf_connectx=1";
  CHECK_INT(tr_query_connect(t, strlen(t), 100, &out, &len), 1);
  t = "/connection/sse?cf_connect=%7";
  CHECK_INT(tr_query_connect(t, strlen(t), 100, &out, &len), -1);
  t = "/connection/sse?cf_connect=%zz";
  CHECK_INT(tr_query_connect(t, strlen(t), 100, &out, &len), -1);
  t = "/connection/sse?cf_connect="; /* empty: malformed */
  CHECK_INT(tr_query_connect(t, strlen(t), 100, &out, &len), -1);
  t = "/connection/sse?cf_connect=abcdef";
  CHECK_INT(tr_query_connect(t, strlen(t), 5, &out, &len), -1); /* over max */
}

static void sessions_table(void) {
  tr_sessions *t = tr_sessions_new();
  int owners[300];
  const char *ids[300];
  for (int i = 0; i < 300; i++) {
    tr_session *s = tr_session_add(t, (unsigned)(i % 3), &owners[i]);
    CHECK(s != NULL);
    ids[i] = tr_session_id(s);
    CHECK_INT(strlen(ids[i]), 34);
    CHECK_INT(tr_session_worker(ids[i], strlen(ids[i])), i % 3);
  }
  for (int i = 0; i < 300; i++)
    CHECK(tr_session_find(t, ids[i], strlen(ids[i])) == &owners[i]);
  CHECK(tr_session_deliver(t, ids[5], strlen(ids[5])) == &owners[5]);
  CHECK(tr_session_deliver(t, ids[5], strlen(ids[5])) == &owners[5]);
  CHECK(tr_session_find(t, ids[5], strlen(ids[5]) - 1) == NULL);
  CHECK(tr_session_find(t, "0.nosuch", 8) == NULL);
  char copy[48];
  strcpy(copy, ids[5]);
  CHECK_INT(tr_session_remove_id(t, copy), 2);
  CHECK(tr_session_find(t, copy, strlen(copy)) == NULL);
  CHECK_INT(tr_session_remove_id(t, copy), 0);
  for (int i = 0; i < 300; i++)
    if (i != 5)
      tr_session_remove_id(t, ids[i]);
  tr_sessions_free(t);
  CHECK_INT(tr_session_worker("12.ab", 5), 12);
  CHECK_INT(tr_session_worker("x.ab", 4), -1);
  CHECK_INT(tr_session_worker("12", 2), -1);
  CHECK_INT(tr_session_worker("123456.ab", 9), -1);
}

static void pending_bodies(void) {
  tr_pending *list = NULL;
  hf_conn *a = (hf_conn *)(uintptr_t)0x10, *b = (hf_conn *)(uintptr_t)0x20;
  CHECK_INT(tr_pending_add(&list, a, 1, "A: 1\r\n", strdup("Cookie: s=1\n")), 0);
  CHECK_INT(tr_pending_add(&list, b, 2, "", NULL), 0);
  tr_pending *p = tr_pending_take(&list, a);
  CHECK(p && p->what == 1);
  CHECK_STR(p->headers, "A: 1\r\n");
  CHECK_STR(p->px_headers, "Cookie: s=1\n");
  tr_pending_free(p); /* frees the proxy headers too (ASan) */
  CHECK(tr_pending_take(&list, a) == NULL);
  p = tr_pending_take(&list, b);
  CHECK(p && p->what == 2 && list == NULL && !p->px_headers);
  tr_pending_free(p);
}

int main(void) {
  hf_t_suite = "transport";
  RUN_TEST(variant_built_once_and_owned);
  RUN_TEST(variant_race_agrees_on_one_copy);
  RUN_TEST(query_connect_decoding);
  RUN_TEST(sessions_table);
  RUN_TEST(pending_bodies);
  TEST_MAIN_END();
}
