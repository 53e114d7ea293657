/* SPDX-License-Identifier: MIT */
/* libFuzzer target for JWT verification (server/auth/jwt.c). One key set is
 * built at first use: an HMAC secret and a JWKS holding a fixed Ed25519 key
 * (kid "fz-ed", private half known here) plus fixed public RSA-2048
 * ("fz-rsa") and P-256 ("fz-ec") keys. Every input is
 *   1. verified as a token (NUL-terminated copy) at several times, with and
 *      without audience/issuer, checking that the status is in range and
 *      that claims is an object exactly for OK and EXPIRED;
 *   2. loaded as a JWKS document (must either succeed or explain why);
 *   3. if it holds a newline, taken as "header JSON\npayload JSON": both are
 *      base64url-encoded and signed here (HMAC with the digest the header's
 *      alg names, and Ed25519), so the claim and header checks behind the
 *      signature are reached. A header this file's own check finds
 *      well-formed and matching the signer must never give SIGNATURE or
 *      ALG; an EdDSA header naming another kid must give SIGNATURE. The
 *      same parts with a junk signature of the length the alg calls for
 *      must give SIGNATURE for every configured algorithm and ALG for any
 *      other (ES384 has no key here). */
// fuzz-sources: server/auth/jwt.c
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "auth/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                          \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_jwt: %s:%d: invariant failed: %s\n", __FILE__,     \
              __LINE__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#define SECRET "fuzz-secret"
#define MAX_TOKEN 16384

/* Public halves only: these keys never sign here. */
#define RSA_N                                                                  \
  "mwL80UrdsuhsykgH8grEVXpcL1NVLhD5ZCaoCav2Pth2DMM_mx6g24-tJIe5cHqDyaZ3mqbtv"  \
  "CR_2MOlfLaDqnROeDrLZD-t28gNKGbh3GuwrjBs-1duGOEQvK_bEyvz0BBkggaDh5MUG6bLXp"  \
  "vNcj1u_fwz37-LL1afy_AZrV53R0_zkkWRCOvrESsnTxwEsUKjtOSkHnkncX_ItArb47ly3dJ"  \
  "RMZefWAbTvtDE7BExuSIZkrJ9FN7OcDtEcdzVsuu_nAUwe0p10_BUr710lQJ_vCOyVX87LUSL"  \
  "6KJLvYufDN_eWzyq_DweKpCtSl-UYLb0zOXEOlQFIQHhz--_Bw"
#define EC_X "L7eWwUdN0FfF8d0LXZTLdXDACEV08Y3Y4MJmdul579U"
#define EC_Y "NaHX6f5pQVfJ035pOYE58vfyuHKsEtzaZzPMUyXk0Cs"

static srv_jwt_keys *keys;
static EVP_PKEY *ed;

static const int64_t nows[] = {0, 1700000000, -1, INT64_MAX, INT64_MIN};

static char *b64url(const unsigned char *p, size_t n) {
  static const char al[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  char *out = malloc(n / 3 * 4 + 4), *o = out;
  size_t i = 0;
  REQUIRE(out);
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    *o++ = al[v >> 18];
    *o++ = al[(v >> 12) & 63];
    *o++ = al[(v >> 6) & 63];
    *o++ = al[v & 63];
  }
  if (n - i >= 1) {
    uint32_t v =
        (uint32_t)p[i] << 16 | (n - i == 2 ? (uint32_t)p[i + 1] << 8 : 0);
    *o++ = al[v >> 18];
    *o++ = al[(v >> 12) & 63];
    if (n - i == 2)
      *o++ = al[(v >> 6) & 63];
  }
  *o = '\0';
  return out;
}

static void init(void) {
  static const unsigned char seed[32] = {
      0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a,
      0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32,
      0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60};
  unsigned char pub[32];
  size_t publen = sizeof pub;
  char jwks[1024], err[256];
  char *x;
  ed = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof seed);
  REQUIRE(ed);
  REQUIRE(EVP_PKEY_get_raw_public_key(ed, pub, &publen) == 1);
  x = b64url(pub, publen);
  snprintf(jwks, sizeof jwks,
           "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"fz-ed\","
           "\"use\":\"sig\",\"x\":\"%s\"},"
           "{\"kty\":\"RSA\",\"kid\":\"fz-rsa\",\"n\":\"" RSA_N
           "\",\"e\":\"AQAB\"},"
           "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"fz-ec\",\"x\":\"" EC_X
           "\",\"y\":\"" EC_Y "\"}]}",
           x);
  free(x);
  keys = srv_jwt_keys_new(SECRET, NULL, NULL, jwks, err, sizeof err);
  if (!keys)
    fprintf(stderr, "fuzz_jwt: key set: %s\n", err);
  REQUIRE(keys);
}

static srv_jwt_status check(const char *tok, int64_t now, const char *aud,
                            const char *iss) {
  json_t *claims = (json_t *)&claims; /* must be overwritten */
  srv_jwt_status st = srv_jwt_verify(keys, tok, now, aud, iss, &claims);
  REQUIRE(st >= SRV_JWT_OK && st <= SRV_JWT_ISSUER);
  if (st == SRV_JWT_OK || st == SRV_JWT_EXPIRED) {
    REQUIRE(json_is_object(claims));
    json_decref(claims);
  } else {
    REQUIRE(claims == NULL);
  }
  REQUIRE(srv_jwt_strerror(st)[0] != '\0');
  return st;
}

/* All verifications of one token; returns the status at now = 0 with no
 * audience/issuer (the one the signing oracle looks at). */
static srv_jwt_status check_all(const char *tok) {
  srv_jwt_status first = check(tok, nows[0], NULL, NULL);
  for (size_t i = 1; i < sizeof nows / sizeof nows[0]; i++)
    check(tok, nows[i], NULL, NULL);
  check(tok, 1700000000, "app", "me");
  REQUIRE(srv_jwt_verify(keys, tok, 0, NULL, NULL, NULL) == first);
  return first;
}

/* The header as this file reads it: 1 when well-formed (object, alg a
 * string, kid/typ absent or strings, no crit), with the alg and kid. */
static int header_ok(const char *h, size_t n, char *alg, size_t algcap,
                     char *kid, size_t kidcap, int *has_kid) {
  json_t *j = json_loadb(h, n, JSON_REJECT_DUPLICATES, NULL);
  json_t *a = json_object_get(j, "alg"), *k = json_object_get(j, "kid"),
         *t = json_object_get(j, "typ");
  int ok = json_is_object(j) && json_is_string(a) &&
           (!k || json_is_string(k)) && (!t || json_is_string(t)) &&
           !json_object_get(j, "crit");
  if (ok) {
    snprintf(alg, algcap, "%s", json_string_value(a));
    *has_kid = k != NULL;
    snprintf(kid, kidcap, "%s", k ? json_string_value(k) : "");
    /* A kid longer than the buffer cannot equal "fz-ed". */
    if (k && json_string_length(k) >= kidcap)
      snprintf(kid, kidcap, "%s", "(long)");
  }
  json_decref(j);
  return ok;
}

static void signing_oracle(const uint8_t *data, size_t size) {
  const uint8_t *nl = memchr(data, '\n', size);
  char alg[16] = "", kid[16] = "";
  int has_kid = 0, ok;
  const char *md = "SHA256";
  unsigned char sig[512];
  size_t hlen, slen = 0;
  char *h, *p, *input, *s, *tok;
  srv_jwt_status st;

  if (!nl || size > 3 * MAX_TOKEN)
    return;
  hlen = (size_t)(nl - data);
  ok = header_ok((const char *)data, hlen, alg, sizeof alg, kid, sizeof kid,
                 &has_kid);
  if (ok && strcmp(alg, "HS384") == 0)
    md = "SHA384";
  else if (ok && strcmp(alg, "HS512") == 0)
    md = "SHA512";
  h = b64url(data, hlen);
  p = b64url(nl + 1, size - hlen - 1);
  input = malloc(strlen(h) + strlen(p) + 2);
  REQUIRE(input);
  sprintf(input, "%s.%s", h, p);
  tok = malloc(strlen(input) + 2 * sizeof sig);
  REQUIRE(tok);

  /* HMAC */
  REQUIRE(EVP_Q_mac(NULL, "HMAC", NULL, md, NULL, SECRET, strlen(SECRET),
                    (const unsigned char *)input, strlen(input), sig,
                    sizeof sig, &slen));
  s = b64url(sig, slen);
  sprintf(tok, "%s.%s", input, s);
  free(s);
  st = check_all(tok);
  if (strlen(tok) > MAX_TOKEN)
    REQUIRE(st == SRV_JWT_MALFORMED);
  else if (ok && (strcmp(alg, "HS256") == 0 || strcmp(alg, "HS384") == 0 ||
                  strcmp(alg, "HS512") == 0))
    REQUIRE(st != SRV_JWT_SIGNATURE && st != SRV_JWT_ALG);

  /* Ed25519 */
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  slen = sizeof sig;
  REQUIRE(c && EVP_DigestSignInit_ex(c, NULL, NULL, NULL, NULL, ed, NULL) == 1);
  REQUIRE(EVP_DigestSign(c, sig, &slen, (const unsigned char *)input,
                         strlen(input)) == 1);
  EVP_MD_CTX_free(c);
  s = b64url(sig, slen);
  sprintf(tok, "%s.%s", input, s);
  free(s);
  st = check_all(tok);
  if (strlen(tok) > MAX_TOKEN)
    REQUIRE(st == SRV_JWT_MALFORMED);
  else if (ok && strcmp(alg, "EdDSA") == 0)
    REQUIRE(has_kid && strcmp(kid, "fz-ed") != 0
                ? st == SRV_JWT_SIGNATURE
                : st != SRV_JWT_SIGNATURE && st != SRV_JWT_ALG);

  /* Junk signature of the expected length: never valid. */
  slen = strncmp(alg, "RS", 2) == 0   ? 256
         : strcmp(alg, "ES384") == 0  ? 96
         : strncmp(alg, "HS", 2) == 0 ? 32
                                      : 64;
  for (size_t i = 0; i < slen; i++)
    sig[i] = (unsigned char)(0xA5 ^ (i * 31) ^
                             (hlen + i < size ? data[hlen + i] : 0));
  s = b64url(sig, slen);
  tok = realloc(tok, strlen(input) + strlen(s) + 2);
  REQUIRE(tok);
  sprintf(tok, "%s.%s", input, s);
  free(s);
  st = check_all(tok);
  if (strlen(tok) > MAX_TOKEN) {
    REQUIRE(st == SRV_JWT_MALFORMED);
  } else if (ok) {
    static const char *const configured[] = {
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "EdDSA"};
    int known = 0;
    for (size_t i = 0; i < sizeof configured / sizeof configured[0]; i++)
      known |= strcmp(alg, configured[i]) == 0;
    REQUIRE(st == (known ? SRV_JWT_SIGNATURE : SRV_JWT_ALG));
  }

  free(tok);
  free(input);
  free(h);
  free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text, err[128];
  srv_jwt_keys *k;
  if (!keys)
    init();
  text = malloc(size + 1);
  REQUIRE(text);
  memcpy(text, data, size);
  text[size] = '\0';

  check_all(text);

  err[0] = '\0';
  k = srv_jwt_keys_new(NULL, NULL, NULL, text, err, sizeof err);
  REQUIRE(k || (err[0] != '\0' && memchr(err, '\0', sizeof err)));
  srv_jwt_keys_free(k);

  signing_oracle(data, size);
  free(text);
  return 0;
}
