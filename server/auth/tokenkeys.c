/* SPDX-License-Identifier: MIT */
/* Token keys from the configuration; HMAC signing (tokenkeys.h). */
#include "auth/tokenkeys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

static char *read_file(const char *path, size_t max) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *buf = malloc(max + 1);
  size_t n = buf ? fread(buf, 1, max, f) : 0;
  fclose(f);
  if (!buf)
    return NULL;
  buf[n] = 0;
  return buf;
}

srv_jwt_keys *tk_keys(const srv_config *cfg, char *err, size_t errcap) {
  if (errcap)
    err[0] = 0;
  if (!*cfg->token_hmac_secret && !*cfg->token_rsa_pem && !*cfg->token_ecdsa_pem &&
      !*cfg->token_jwks_file)
    return NULL;
  char *jwks = NULL;
  if (*cfg->token_jwks_file && !(jwks = read_file(cfg->token_jwks_file, 1 << 20))) {
    snprintf(err, errcap, "client.token.jwks_file = \"%s\": cannot read it: %s",
             cfg->token_jwks_file, strerror(errno));
    return NULL;
  }
  char why[256] = "";
  srv_jwt_keys *k = srv_jwt_keys_new(cfg->token_hmac_secret, cfg->token_rsa_pem,
                                     cfg->token_ecdsa_pem, jwks, why, sizeof why);
  free(jwks);
  if (!k)
    snprintf(err, errcap, "client.token: %s", why);
  return k;
}

static size_t b64url(const unsigned char *in, size_t n, char *out) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                 (i + 2 < n ? in[i + 2] : 0);
    out[o++] = t[v >> 18 & 63];
    out[o++] = t[v >> 12 & 63];
    if (i + 1 < n)
      out[o++] = t[v >> 6 & 63];
    if (i + 2 < n)
      out[o++] = t[v & 63];
  }
  out[o] = 0;
  return o;
}

int tk_sign_hmac(const char *alg, const char *secret, const char *payload, char *out,
                 size_t cap) {
  const EVP_MD *md = strcmp(alg, "HS256") == 0   ? EVP_sha256()
                     : strcmp(alg, "HS384") == 0 ? EVP_sha384()
                     : strcmp(alg, "HS512") == 0 ? EVP_sha512()
                                                 : NULL;
  if (!md)
    return -1;
  char head[64];
  int hn = snprintf(head, sizeof head, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
  size_t pl = strlen(payload);
  /* header.payload.signature, each base64url (4/3 of the bytes) */
  size_t need = ((size_t)hn + pl + EVP_MAX_MD_SIZE) * 4 / 3 + 16;
  if (need > cap)
    return -1;
  size_t n = b64url((const unsigned char *)head, (size_t)hn, out);
  out[n++] = '.';
  n += b64url((const unsigned char *)payload, pl, out + n);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned ml = 0;
  if (!HMAC(md, secret, (int)strlen(secret), (const unsigned char *)out, n, mac, &ml))
    return -1;
  out[n++] = '.';
  b64url(mac, ml, out + n);
  return 0;
}
