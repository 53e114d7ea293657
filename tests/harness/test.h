/* SPDX-License-Identifier: MIT */
/* Minimal unit-test harness: typed checks that print both sides, one line
 * per test ("PASS suite/name" or "FAIL suite/name: file:line: detail"),
 * counted by tests/run.sh. A test function keeps running after a failed
 * check so one run shows every broken expectation. */
#ifndef HF_TEST_H
#define HF_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int hf_t_failed_checks;  /* in the current test */
static int hf_t_pass, hf_t_fail; /* totals */
static const char *hf_t_suite = "unit";

#define HF_T_FAILF(...)                                                        \
  do {                                                                         \
    if (hf_t_failed_checks++ < 8) {                                            \
      fprintf(stdout, "  check failed %s:%d: ", __FILE__, __LINE__);           \
      fprintf(stdout, __VA_ARGS__);                                            \
      fputc('\n', stdout);                                                     \
    }                                                                          \
  } while (0)

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      HF_T_FAILF("%s", #cond);                                                 \
  } while (0)

#define CHECK_INT(a, b)                                                        \
  do {                                                                         \
    long long hf_a_ = (long long)(a), hf_b_ = (long long)(b);                  \
    if (hf_a_ != hf_b_)                                                        \
      HF_T_FAILF("%s == %s: %lld != %lld", #a, #b, hf_a_, hf_b_);              \
  } while (0)

#define CHECK_STR(a, b)                                                        \
  do {                                                                         \
    const char *hf_a_ = (a), *hf_b_ = (b);                                     \
    if (!hf_a_ || !hf_b_ || strcmp(hf_a_, hf_b_) != 0)                         \
      HF_T_FAILF("%s == %s: \"%s\" != \"%s\"", #a, #b, hf_a_ ? hf_a_ : "(null)",\
                 hf_b_ ? hf_b_ : "(null)");                                    \
  } while (0)

/* Compare a (ptr,len) view with a C string. */
#define CHECK_MEM(p, n, s)                                                     \
  do {                                                                         \
    const char *hf_p_ = (const char *)(p);                                     \
    size_t hf_n_ = (size_t)(n);                                                \
    const char *hf_s_ = (s);                                                   \
    if (!hf_p_ || hf_n_ != strlen(hf_s_) || memcmp(hf_p_, hf_s_, hf_n_) != 0)  \
      HF_T_FAILF("%s == \"%s\": got \"%.*s\"", #p, hf_s_, (int)hf_n_,          \
                 hf_p_ ? hf_p_ : "(null)");                                    \
  } while (0)

#define RUN_TEST(fn)                                                           \
  do {                                                                         \
    hf_t_failed_checks = 0;                                                    \
    fn();                                                                      \
    if (hf_t_failed_checks) {                                                  \
      hf_t_fail++;                                                             \
      printf("FAIL %s/%s: %d check(s) failed\n", hf_t_suite, #fn,              \
             hf_t_failed_checks);                                              \
    } else {                                                                   \
      hf_t_pass++;                                                             \
      printf("PASS %s/%s\n", hf_t_suite, #fn);                                 \
    }                                                                          \
    fflush(stdout);                                                            \
  } while (0)

#define TEST_MAIN_END()                                                        \
  do {                                                                         \
    printf("# %s: %d passed, %d failed\n", hf_t_suite, hf_t_pass, hf_t_fail); \
    return hf_t_fail ? 1 : 0;                                                  \
  } while (0)

#endif
