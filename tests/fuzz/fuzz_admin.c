/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the admin session parsers (server/admin/session.c),
 * which see input before any login: every input is
 *   1. checked as a session token at two times: the answer is 0, 401 or
 *      403 with a reason, 401 exactly for an empty token, and 0 only for
 *      the token adm_session_sign writes for the same expiry;
 *   2. read as a request target for the "token" parameter: a value found
 *      lies inside the target, right after "token=";
 *   3. made into a token by signing its first bytes as an expiry: that
 *      token passes before the expiry and is "expired" after it, and with
 *      its last character changed it is refused. */
// fuzz-sources: server/admin/session.c
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                          \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_admin: %s:%d: invariant failed: %s\n", __FILE__,   \
              __LINE__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static const char *const SECRET = "fuzz-admin-secret";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data;
  const char *reason = NULL;
  for (int i = 0; i < 2; i++) {
    int64_t now = i ? 4000000000 : 1700000000;
    int r = adm_session_check(SECRET, in, size, now, &reason);
    REQUIRE(r == 0 || r == 401 || r == 403);
    REQUIRE((r == 401) == (size == 0));
    REQUIRE(r == 0 || reason != NULL);
    if (r == 0) {
      char want[128];
      unsigned long long exp = strtoull(in, NULL, 10);
      REQUIRE(adm_session_sign(SECRET, exp, want, sizeof want) == 0);
      REQUIRE(strlen(want) == size && memcmp(want, in, size) == 0);
    }
  }
  size_t vl = 0;
  const char *v = adm_query_param(in, size, "token", &vl);
  if (v) {
    REQUIRE(v >= in + 6 && v + vl <= in + size);
    REQUIRE(memcmp(v - 6, "token=", 6) == 0);
  }
  unsigned long long exp = 0;
  for (size_t i = 0; i < size && i < 8; i++)
    exp = exp << 8 | data[i];
  exp %= 100000000000ull;
  char tok[128];
  REQUIRE(adm_session_sign(SECRET, exp, tok, sizeof tok) == 0);
  size_t tl = strlen(tok);
  REQUIRE(adm_session_check(SECRET, tok, tl, (int64_t)exp, &reason) == 0);
  REQUIRE(adm_session_check(SECRET, tok, tl, (int64_t)exp + 1, &reason) == 403);
  REQUIRE(strcmp(reason, "admin_token_expired") == 0);
  tok[tl - 1] = tok[tl - 1] == '0' ? '1' : '0';
  REQUIRE(adm_session_check(SECRET, tok, tl, 0, &reason) == 403);
  REQUIRE(strcmp(reason, "bad_admin_token") == 0);
  return 0;
}
