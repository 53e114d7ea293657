/* SPDX-License-Identifier: MIT */
/* Publication data: JSON text or marked binary (see pdata.h). Base64 is
 * OpenSSL's (EVP_EncodeBlock / EVP_DecodeBlock). */
#include "channels/pdata.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define PD_MAX_B64 (16u << 20) /* as jw_b64_decode */

static int b64_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '/';
}

char *pd_from_b64(const char *b64, size_t n) {
  if (!n || n >= PD_MAX_B64 || n % 4)
    return NULL;
  /* strict: the alphabet, then at most two '=' at the very end */
  size_t pad = (b64[n - 1] == '=') + (b64[n - 1] == '=' && b64[n - 2] == '=');
  for (size_t i = 0; i < n - pad; i++)
    if (!b64_char((unsigned char)b64[i]))
      return NULL;
  char *out = malloc(n + 2);
  if (!out)
    return NULL;
  out[0] = PD_BINARY_MARK;
  memcpy(out + 1, b64, n);
  out[n + 1] = '\0';
  return out;
}

char *pd_from_bytes(const uint8_t *p, size_t n) {
  if (!n || n >= PD_MAX_B64 / 4 * 3)
    return NULL;
  char *out = malloc(4 * ((n + 2) / 3) + 2);
  if (!out)
    return NULL;
  out[0] = PD_BINARY_MARK;
  EVP_EncodeBlock((unsigned char *)out + 1, p, (int)n); /* NUL-terminates */
  return out;
}

int pd_write_member(jw_buf *b, const char *data, size_t len) {
  if (!pd_is_binary(data, len)) {
    jw_lit(b, "\"data\":");
    jw_raw(b, data, len);
    return 0;
  }
  size_t n;
  const char *t = pd_b64(data, len, &n);
  jw_lit(b, "\"b64data\":\"");
  jw_raw(b, t, n); /* the base64 alphabet needs no escaping */
  jw_char(b, '"');
  return 1;
}
