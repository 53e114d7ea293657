/* SPDX-License-Identifier: MIT */
/* Unit tests for the token buckets of server/limits/: burst, refill by
 * elapsed time, costs over the burst, lowered rates, the per-user
 * connection count and the per-channel table sweeping idle entries. */
#include <stdio.h>
#include <string.h>

#include "limits/ratelimit.h"
#include "test.h"

static void bucket_burst_then_refill(void) {
  rl_rate r = {10, 5};
  rl_bucket b = {0};
  for (int i = 0; i < 5; i++)
    CHECK(rl_take(&b, &r, 1000, 1));
  CHECK(!rl_take(&b, &r, 1000, 1));
  CHECK(!rl_take(&b, &r, 1099, 1)); /* 0.99 token */
  CHECK(rl_take(&b, &r, 1100, 1));  /* 10/s: one token per 100 ms */
  CHECK(!rl_take(&b, &r, 1100, 1));
  CHECK(rl_take(&b, &r, 100000, 5)); /* a long pause refills to the burst only */
  CHECK(!rl_take(&b, &r, 100000, 1));
}

static void bucket_unlimited_and_default_burst(void) {
  rl_rate off = {0, 0};
  rl_bucket b = {0};
  for (int i = 0; i < 1000; i++)
    CHECK(rl_take(&b, &off, 0, 1000000));
  rl_rate r = {3, 0}; /* burst 0 = one second's worth */
  rl_bucket c = {0};
  CHECK(rl_take(&c, &r, 50, 3));
  CHECK(!rl_take(&c, &r, 50, 1));
}

static void bucket_cost_over_burst_needs_a_full_bucket(void) {
  rl_rate r = {1000, 1000};
  rl_bucket b = {0};
  CHECK(rl_take(&b, &r, 0, 5000)); /* counts as 1000 */
  CHECK(!rl_take(&b, &r, 500, 5000));
  CHECK(rl_take(&b, &r, 1000, 5000));
}

static void bucket_lowered_rate_caps_the_level(void) {
  rl_rate r = {100, 100};
  rl_bucket b = {0};
  CHECK(rl_take(&b, &r, 0, 1));
  r.per_s = 2;
  r.burst = 2;
  CHECK(rl_take(&b, &r, 0, 2));
  CHECK(!rl_take(&b, &r, 0, 1));
}

static void users_count_connections_and_share_a_bucket(void) {
  rl_limits l = {.user = {2, 0}};
  const rl_limits *lp = &l;
  rl_shared *t = rl_shared_new(&lp);
  CHECK(t != NULL);
  rl_user *a = NULL, *b = NULL, *c = NULL;
  CHECK_INT(rl_user_acquire(t, "alice", 2, &a), 0);
  CHECK_INT(rl_user_acquire(t, "alice", 2, &b), 0);
  CHECK(a == b);
  CHECK_INT(rl_user_acquire(t, "alice", 2, &c), 1);
  CHECK(c == NULL);
  CHECK_INT((int)rl_user_count(t, "alice"), 2);
  CHECK(rl_user_take(t, a, 0));
  CHECK(rl_user_take(t, b, 0));
  CHECK(!rl_user_take(t, a, 0));
  rl_user_release(t, a);
  CHECK_INT(rl_user_acquire(t, "alice", 2, &c), 0);
  rl_user_release(t, b);
  rl_user_release(t, c);
  CHECK_INT((int)rl_user_count(t, "alice"), 0);
  rl_shared_free(t);
}

static void channels_share_a_bucket_and_idle_ones_are_swept(void) {
  rl_limits l = {.channel = {1, 0}};
  const rl_limits *lp = &l;
  rl_shared *t = rl_shared_new(&lp);
  CHECK(t != NULL);
  CHECK(rl_channel_take(t, "room", 4, 0));
  CHECK(!rl_channel_take(t, "room", 4, 10));
  CHECK(rl_channel_take(t, "other", 5, 10));
  CHECK(rl_channel_take(t, "room", 4, 1000));
  /* many channels over time: idle entries go, busy ones keep their state */
  char name[32];
  for (int i = 0; i < 100000; i++) {
    int n = snprintf(name, sizeof name, "ch%d", i);
    CHECK(rl_channel_take(t, name, (size_t)n, 2000 + (uint64_t)i * 10));
  }
  CHECK(!rl_channel_take(t, "ch99999", 7, 2000 + 99999 * 10));
  rl_shared_free(t);
}

static void ip_keys_aggregate_ipv6_by_64(void) {
  uint8_t out[16];
  const uint8_t v4[4] = {10, 1, 2, 3};
  CHECK_INT((int)rl_ip_key(v4, 4, out), 4);
  CHECK(!memcmp(out, v4, 4));
  const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3};
  CHECK_INT((int)rl_ip_key(mapped, 16, out), 4);
  CHECK(!memcmp(out, v4, 4));
  uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8};
  uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 9, 9, 9, 9, 9, 9, 9, 9};
  uint8_t ka[16], kb[16];
  CHECK_INT((int)rl_ip_key(a, 16, ka), 8);
  CHECK_INT((int)rl_ip_key(b, 16, kb), 8);
  CHECK(!memcmp(ka, kb, 8)); /* same /64 */
  b[7] = 3;
  rl_ip_key(b, 16, kb);
  CHECK(memcmp(ka, kb, 8) != 0); /* another /64 */
}

static void accept_rates_global_then_per_address(void) {
  rl_limits l = {.ip = {2, 0}, .accept = {3, 0}};
  const rl_limits *lp = &l;
  rl_shared *t = rl_shared_new(&lp);
  const uint8_t a[4] = {10, 0, 0, 1}, b[4] = {10, 0, 0, 2};
  int which = -1;
  CHECK(rl_accept_take(t, a, 4, 0, &which));
  CHECK(rl_accept_take(t, a, 4, 0, &which));
  CHECK(!rl_accept_take(t, a, 4, 0, &which));
  CHECK_INT(which, 1); /* a's own bucket (the global one had a token) */
  CHECK(!rl_accept_take(t, b, 4, 0, &which));
  CHECK_INT(which, 0); /* three taken from the global one: empty */
  CHECK(rl_accept_take(t, b, 4, 1000, &which));
  /* a new snapshot applies at once */
  rl_limits l2 = {0};
  rl_limits_publish(&lp, &l2);
  for (int i = 0; i < 100; i++)
    CHECK(rl_accept_take(t, a, 4, 1000, &which));
  rl_shared_free(t);
}

int main(void) {
  hf_t_suite = "ratelimit";
  RUN_TEST(bucket_burst_then_refill);
  RUN_TEST(bucket_unlimited_and_default_burst);
  RUN_TEST(bucket_cost_over_burst_needs_a_full_bucket);
  RUN_TEST(bucket_lowered_rate_caps_the_level);
  RUN_TEST(users_count_connections_and_share_a_bucket);
  RUN_TEST(channels_share_a_bucket_and_idle_ones_are_swept);
  RUN_TEST(ip_keys_aggregate_ipv6_by_64);
  RUN_TEST(accept_rates_global_then_per_address);
  TEST_MAIN_END();
}
