/* SPDX-License-Identifier: MIT */
/* Admin session tokens (HMAC-SHA256 through OpenSSL 3's EVP_Q_mac, compared
 * with CRYPTO_memcmp) and the request-target query parameter reader. */
#include "admin/session.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int adm_session_sign(const char *secret, unsigned long long exp, char *out, size_t cap) {
  char msg[64];
  int n = snprintf(msg, sizeof msg, "holdfast-admin:%llu", exp);
  unsigned char mac[32];
  size_t maclen = 0;
  if (cap < 90 ||
      !EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, strlen(secret),
                 (const unsigned char *)msg, (size_t)n, mac, sizeof mac, &maclen) ||
      maclen != 32)
    return -1;
  int k = snprintf(out, cap, "%llu.", exp);
  for (size_t i = 0; i < 32; i++)
    k += snprintf(out + k, cap - (size_t)k, "%02x", mac[i]);
  return 0;
}

int adm_session_check(const char *secret, const char *tok, size_t len, int64_t now,
                      const char **reason) {
  if (!tok || !len) {
    *reason = "admin_login_required";
    return 401;
  }
  *reason = "bad_admin_token";
  char buf[128], want[128];
  if (len >= sizeof buf || memchr(tok, 0, len))
    return 403;
  memcpy(buf, tok, len);
  buf[len] = 0;
  if (buf[0] < '0' || buf[0] > '9')
    return 403;
  char *end;
  unsigned long long exp = strtoull(buf, &end, 10);
  if (*end != '.' || adm_session_sign(secret, exp, want, sizeof want) < 0 ||
      strlen(want) != len || CRYPTO_memcmp(want, buf, len) != 0)
    return 403;
  if ((int64_t)exp < now || (int64_t)exp < 0) {
    *reason = "admin_token_expired";
    return 403;
  }
  return 0;
}

const char *adm_query_param(const char *target, size_t tlen, const char *name, size_t *len) {
  const char *end = target + tlen;
  const char *q = memchr(target, '?', tlen);
  size_t nl = strlen(name);
  for (const char *p = q ? q + 1 : end; p < end;) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *e = amp ? amp : end;
    if ((size_t)(e - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
      *len = (size_t)(e - p - nl - 1);
      return p + nl + 1;
    }
    p = e + 1;
  }
  return NULL;
}
