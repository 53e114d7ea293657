/* SPDX-License-Identifier: MIT */
/* Admin session tokens and the query parameter the dashboard WebSocket
 * carries its token in (prefix adm_): small parsers of untrusted input,
 * kept apart from the rest of the admin module so they can be fuzzed alone
 * (tests/fuzz/fuzz_admin.c). */
#ifndef SRV_ADMIN_SESSION_H
#define SRV_ADMIN_SESSION_H

#include <stddef.h>
#include <stdint.h>

/* Write the token for expiry exp (Unix seconds): "EXP.HEX" with HEX the
 * HMAC-SHA256 of "holdfast-admin:EXP" under secret, NUL-terminated, into
 * out (at least 90 bytes). Returns 0, or -1 if OpenSSL failed. Thread-safe. */
int adm_session_sign(const char *secret, unsigned long long exp, char *out, size_t cap);

/* Check tok[0..len) (NULL or empty: none given) at time now (Unix
 * seconds). Returns 0 if valid, 401 if none was given, 403 if it is not
 * one of ours or expired; *reason gets "admin_login_required",
 * "bad_admin_token" or "admin_token_expired". Constant-time compare. */
int adm_session_check(const char *secret, const char *tok, size_t len, int64_t now,
                      const char **reason);

/* The raw value of query parameter name in a request target ("/p?a=1&b=2"),
 * or NULL; *len gets its length. The value points into target. */
const char *adm_query_param(const char *target, size_t tlen, const char *name, size_t *len);

#endif
