/* SPDX-License-Identifier: MIT */
/* In-memory streams: offsets and epochs, history limits (size, TTL, meta
 * TTL, the memory cap with oldest-first eviction), reads in both
 * directions, history_remove, idempotency keys and the sweeper. Time is
 * passed in, so every expiry is tested exactly. */
#include <stdlib.h>
#include <string.h>

#include "channels/stream.h"
#include "test.h"

static uint32_t hash_of(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

typedef struct {
  int calls;
  uint64_t prev_offset; /* offset of prev passed to accept, 0 if none */
  int refuse;
} acc;

static int on_accept(void *arg, const stream_pos *pos, const stream_pub *prev) {
  acc *a = arg;
  a->calls++;
  a->prev_offset = prev ? prev->offset : 0;
  return a->refuse ? -1 : 0;
}

static stream_status pub(stream_set *ss, const char *ch, const char *data,
                         const stream_opts *o, uint64_t now, const char *key,
                         stream_pos *pos, acc *a) {
  stream_pub p = {0};
  p.data = data;
  p.data_len = (uint32_t)strlen(data);
  stream_publish_req rq = {o, key, key ? strlen(key) : 0, now};
  uint64_t ev;
  acc dummy = {0};
  return stream_publish(ss, hash_of(ch), ch, strlen(ch), &p, &rq, pos,
                        on_accept, a ? a : &dummy, &ev);
}

typedef struct {
  uint64_t offs[64];
  char data[64][16];
  int n;
} coll;

static int collect(void *arg, const stream_pub *p) {
  coll *c = arg;
  c->offs[c->n] = p->offset;
  snprintf(c->data[c->n], sizeof c->data[0], "%.*s", (int)p->data_len, p->data);
  c->n++;
  return 0;
}

static long rd(stream_set *ss, const char *ch, const stream_opts *o, uint64_t now,
               int reverse, int has, uint64_t bound, size_t limit, stream_pos *top,
               uint64_t *first, coll *c) {
  memset(c, 0, sizeof *c);
  stream_read_req rq = {reverse, has, bound, limit, now};
  return stream_read(ss, hash_of(ch), ch, strlen(ch), o, &rq, top, first, collect, c);
}

static stream_limits lim(uint64_t max_bytes) {
  stream_limits l = {max_bytes, 300000, 1000};
  return l;
}

static void test_epoch_text(void) {
  char t[STREAM_EPOCH_LEN + 1];
  stream_epoch_text(123456789, t);
  CHECK_INT(strlen(t), 8);
  CHECK_INT(stream_epoch_parse(t, 8), 123456789);
  CHECK_INT(stream_epoch_parse("abc", 3), 0);
  CHECK_INT(stream_epoch_parse("abcdefg1", 8), 0);
}

static void test_offsets_and_epoch(void) {
  stream_limits l = lim(0);
  stream_set *ss = stream_set_new(2, &l);
  stream_opts o = {10, 60000, 3600000};
  stream_pos p1, p2, top;
  uint64_t first;
  coll c;
  /* reading first creates the stream: offset 0 and an epoch that stays */
  CHECK_INT(rd(ss, "a", &o, 0, 0, 0, 0, 10, &top, &first, &c), 0);
  CHECK_INT(top.offset, 0);
  CHECK(top.epoch != 0);
  acc a = {0};
  CHECK_INT(pub(ss, "a", "1", &o, 1, NULL, &p1, &a), STREAM_OK);
  CHECK_INT(a.prev_offset, 0);
  CHECK_INT(pub(ss, "a", "2", &o, 2, NULL, &p2, &a), STREAM_OK);
  CHECK_INT(a.prev_offset, 1);
  CHECK_INT(p1.offset, 1);
  CHECK_INT(p2.offset, 2);
  CHECK(p1.epoch == top.epoch && p2.epoch == top.epoch);
  /* another channel has its own stream */
  stream_pos q;
  pub(ss, "b", "x", &o, 3, NULL, &q, NULL);
  CHECK_INT(q.offset, 1);
  CHECK(q.epoch != p1.epoch);
  /* without history: no position, but accept still runs */
  a.calls = 0;
  CHECK_INT(pub(ss, "c", "x", NULL, 3, NULL, &q, &a), STREAM_OK);
  CHECK_INT(q.offset, 0);
  CHECK_INT(a.calls, 1);
  stream_set_free(ss);
}

static void test_size_limit_and_reads(void) {
  stream_limits l = lim(0);
  stream_set *ss = stream_set_new(1, &l);
  stream_opts o = {5, 60000, 3600000};
  stream_pos p, top;
  for (int i = 1; i <= 12; i++) {
    char d[16];
    snprintf(d, sizeof d, "%d", i);
    pub(ss, "ch", d, &o, (uint64_t)i, NULL, &p, NULL);
  }
  uint64_t first;
  coll c;
  CHECK_INT(rd(ss, "ch", &o, 20, 0, 0, 0, 100, &top, &first, &c), 5);
  CHECK_INT(top.offset, 12);
  CHECK_INT(first, 8);
  CHECK_INT(c.offs[0], 8);
  CHECK_STR(c.data[4], "12");
  /* forward after 9, limit 2 */
  CHECK_INT(rd(ss, "ch", &o, 20, 0, 1, 9, 2, &top, &first, &c), 2);
  CHECK_INT(c.offs[0], 10);
  CHECK_INT(c.offs[1], 11);
  /* forward after a trimmed position starts at the oldest stored */
  CHECK_INT(rd(ss, "ch", &o, 20, 0, 1, 3, 100, &top, &first, &c), 5);
  CHECK_INT(c.offs[0], 8);
  /* reverse: newest first; before 11 */
  CHECK_INT(rd(ss, "ch", &o, 20, 1, 0, 0, 3, &top, &first, &c), 3);
  CHECK_INT(c.offs[0], 12);
  CHECK_INT(c.offs[2], 10);
  CHECK_INT(rd(ss, "ch", &o, 20, 1, 1, 11, 100, &top, &first, &c), 3);
  CHECK_INT(c.offs[0], 10);
  CHECK_INT(c.offs[2], 8);
  /* limit 0: position only */
  CHECK_INT(rd(ss, "ch", &o, 20, 0, 0, 0, 0, &top, &first, &c), 0);
  CHECK_INT(top.offset, 12);
  /* history_remove keeps offset and epoch */
  uint64_t epoch = top.epoch;
  CHECK_INT(stream_remove_history(ss, hash_of("ch"), "ch", 2), 0);
  CHECK_INT(rd(ss, "ch", &o, 20, 0, 0, 0, 100, &top, &first, &c), 0);
  CHECK_INT(top.offset, 12);
  CHECK(top.epoch == epoch);
  CHECK_INT(first, 13);
  pub(ss, "ch", "13", &o, 21, NULL, &p, NULL);
  CHECK_INT(p.offset, 13);
  CHECK_INT(stream_remove_history(ss, hash_of("none"), "none", 4), 1);
  stream_set_free(ss);
}

static void test_ttls(void) {
  stream_limits l = lim(0);
  stream_set *ss = stream_set_new(1, &l);
  stream_opts o = {100, 1000, 5000}; /* 1 s items, 5 s position */
  stream_pos p, top;
  uint64_t first;
  coll c;
  pub(ss, "t", "a", &o, 0, NULL, &p, NULL);
  pub(ss, "t", "b", &o, 500, NULL, &p, NULL);
  CHECK_INT(rd(ss, "t", &o, 999, 0, 0, 0, 100, &top, &first, &c), 2);
  CHECK_INT(rd(ss, "t", &o, 1000, 0, 0, 0, 100, &top, &first, &c), 1);
  CHECK_INT(c.offs[0], 2);
  CHECK_INT(rd(ss, "t", &o, 1500, 0, 0, 0, 100, &top, &first, &c), 0);
  CHECK_INT(top.offset, 2); /* the position outlives the items */
  uint64_t epoch = top.epoch;
  CHECK_INT(rd(ss, "t", &o, 5499, 0, 0, 0, 100, &top, &first, &c), 0);
  CHECK(top.epoch == epoch);
  /* meta TTL after the last publication (at 500): a new incarnation */
  CHECK_INT(rd(ss, "t", &o, 5500, 0, 0, 0, 100, &top, &first, &c), 0);
  CHECK_INT(top.offset, 0);
  CHECK(top.epoch != epoch);
  /* the sweeper drops idle streams without being asked */
  pub(ss, "s1", "a", &o, 10000, NULL, &p, NULL);
  pub(ss, "s2", "a", &o, 10000, NULL, &p, NULL);
  stream_stats st;
  stream_get_stats(ss, &st);
  CHECK_INT(st.streams, 3);
  CHECK_INT(st.publications, 2);
  /* at 12 s the items of s1/s2 expired (their positions stay); the
   * recreated "t" (touched at 5.5 s) is past its 5 s meta TTL */
  CHECK_INT(stream_sweep(ss, 0, 12000, 1000), 1);
  stream_get_stats(ss, &st);
  CHECK_INT(st.publications, 0);
  CHECK_INT(stream_sweep(ss, 0, 20000, 1000), 2);
  stream_get_stats(ss, &st);
  CHECK_INT(st.streams, 0);
  CHECK_INT(st.bytes, 0);
  stream_set_free(ss);
}

static void test_memory_cap_evicts_oldest(void) {
  stream_limits l = lim(4000);
  stream_set *ss = stream_set_new(1, &l);
  stream_opts o = {1000, 3600000, 3600000};
  stream_pos p, top;
  char data[101];
  memset(data, 'x', 100);
  data[100] = 0;
  uint64_t t = 1;
  /* "old" gets the first publications, then "new" fills the cap */
  for (int i = 0; i < 10; i++)
    pub(ss, "old", data, &o, t++, NULL, &p, NULL);
  for (int i = 0; i < 40; i++)
    pub(ss, "new", data, &o, t++, NULL, &p, NULL);
  stream_stats st;
  stream_get_stats(ss, &st);
  CHECK(st.bytes <= 4000);
  CHECK(st.evicted > 0);
  uint64_t first;
  coll c;
  /* the oldest went first: "old" lost everything before "new" lost any */
  CHECK_INT(rd(ss, "old", &o, t, 0, 0, 0, 100, &top, &first, &c), 0);
  CHECK_INT(top.offset, 10);
  long left = rd(ss, "new", &o, t, 0, 0, 0, 100, &top, &first, &c);
  CHECK(left > 5);
  CHECK_INT(c.offs[left - 1], 40);
  CHECK_INT(first, 40 - left + 1);
  stream_set_free(ss);
}

static void test_idempotency(void) {
  stream_limits l = {0, 1000, 3};
  stream_set *ss = stream_set_new(1, &l);
  stream_opts o = {100, 60000, 60000};
  stream_pos p1, p2;
  acc a = {0};
  CHECK_INT(pub(ss, "i", "a", &o, 0, "k1", &p1, &a), STREAM_OK);
  CHECK_INT(pub(ss, "i", "a", &o, 500, "k1", &p2, &a), STREAM_DUPLICATE);
  CHECK_INT(a.calls, 1); /* not delivered again */
  CHECK(p2.offset == p1.offset && p2.epoch == p1.epoch);
  /* the same key in another channel is another publication */
  CHECK_INT(pub(ss, "j", "a", &o, 500, "k1", &p2, &a), STREAM_OK);
  /* after the window the key is new again */
  CHECK_INT(pub(ss, "i", "a", &o, 1000, "k1", &p2, &a), STREAM_OK);
  CHECK_INT(p2.offset, 2);
  /* without history keys still work (offset 0) */
  CHECK_INT(pub(ss, "n", "a", NULL, 1000, "x", &p2, &a), STREAM_OK);
  CHECK_INT(pub(ss, "n", "a", NULL, 1001, "x", &p2, &a), STREAM_DUPLICATE);
  /* bounded: the oldest keys are forgotten over the limit */
  for (int i = 0; i < 10; i++) {
    char k[16];
    snprintf(k, sizeof k, "b%d", i);
    pub(ss, "n", "a", NULL, 1002, k, &p2, &a);
  }
  stream_stats st;
  stream_get_stats(ss, &st);
  CHECK(st.idem_keys <= 4);
  CHECK_INT(pub(ss, "n", "a", NULL, 1003, "b9", &p2, &a), STREAM_DUPLICATE);
  CHECK_INT(pub(ss, "n", "a", NULL, 1003, "b0", &p2, &a), STREAM_OK);
  stream_set_free(ss);
}

static void test_refused_accept_rolls_back(void) {
  stream_limits l = lim(0);
  stream_set *ss = stream_set_new(1, &l);
  stream_opts o = {10, 60000, 60000};
  stream_pos p, top;
  acc a = {0};
  pub(ss, "r", "1", &o, 0, NULL, &p, &a);
  a.refuse = 1;
  CHECK_INT(pub(ss, "r", "2", &o, 1, NULL, &p, &a), STREAM_ENOMEM);
  a.refuse = 0;
  CHECK_INT(pub(ss, "r", "3", &o, 2, NULL, &p, &a), STREAM_OK);
  CHECK_INT(p.offset, 2);
  uint64_t first;
  coll c;
  CHECK_INT(rd(ss, "r", &o, 3, 0, 0, 0, 10, &top, &first, &c), 2);
  CHECK_STR(c.data[1], "3");
  stream_set_free(ss);
}

static void test_many_channels_within_cap(void) {
  stream_limits l = lim(8u << 20);
  stream_set *ss = stream_set_new(2, &l);
  stream_opts o = {100, 3600000, 3600000};
  char data[65];
  memset(data, 'd', 64);
  data[64] = 0;
  stream_pos p;
  uint64_t t = 0;
  for (int round = 0; round < 100; round++)
    for (int i = 0; i < 2000; i++) {
      char ch[16];
      snprintf(ch, sizeof ch, "c%d", i);
      pub(ss, ch, data, &o, t++, NULL, &p, NULL);
    }
  stream_stats st;
  stream_get_stats(ss, &st);
  CHECK(st.bytes <= (8u << 20));
  CHECK_INT(st.streams, 2000);
  /* per channel with 100 x 64 B: under 2x the payload bytes */
  stream_limits nocap = lim(0);
  stream_set *one = stream_set_new(1, &nocap);
  for (int i = 0; i < 100; i++)
    pub(one, "m", data, &o, (uint64_t)i, NULL, &p, NULL);
  stream_get_stats(one, &st);
  CHECK(st.bytes < 2 * 100 * 64);
  printf("  memory per channel, 100 x 64 B history: %llu B accounted\n",
         (unsigned long long)st.bytes);
  stream_set_free(one);
  stream_set_free(ss);
}

int main(void) {
  hf_t_suite = "stream";
  RUN_TEST(test_epoch_text);
  RUN_TEST(test_offsets_and_epoch);
  RUN_TEST(test_size_limit_and_reads);
  RUN_TEST(test_ttls);
  RUN_TEST(test_memory_cap_evicts_oldest);
  RUN_TEST(test_idempotency);
  RUN_TEST(test_refused_accept_rolls_back);
  RUN_TEST(test_many_channels_within_cap);
  TEST_MAIN_END();
}
