/* SPDX-License-Identifier: MIT */
/* Unit tests for JWT verification: keys are generated at test time (RSA
 * 2048, EC P-256/P-384, Ed25519), exported as PEM, certificates and JWKS,
 * and tokens are signed here with OpenSSL, so every algorithm, key source,
 * kid selection, claim check, algorithm-confusion attempt and malformed
 * input is exercised against an independent signer. Fixed vectors from
 * other implementations pin the HS256 encoding. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "auth/jwt.h"
#include "test.h"

static EVP_PKEY *rsa_a, *rsa_b, *ec256, *ec384, *ed_a, *ed_b;
static int64_t now;

/* ---- helpers: encoding, key export, signing ----------------------------- */

static char *b64url(const unsigned char *p, size_t n) {
  static const char al[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  char *out = malloc(n * 4 / 3 + 4), *o = out;
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    *o++ = al[v >> 18];
    *o++ = al[(v >> 12) & 63];
    *o++ = al[(v >> 6) & 63];
    *o++ = al[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)p[i] << 16;
    *o++ = al[v >> 18];
    *o++ = al[(v >> 12) & 63];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
    *o++ = al[v >> 18];
    *o++ = al[(v >> 12) & 63];
    *o++ = al[(v >> 6) & 63];
  }
  *o = '\0';
  return out;
}

static char *b64url_str(const char *s) {
  return b64url((const unsigned char *)s, strlen(s));
}

static char *bio_text(BIO *b) {
  char *data;
  long n = BIO_get_mem_data(b, &data);
  char *s = malloc((size_t)n + 1);
  memcpy(s, data, (size_t)n);
  s[n] = '\0';
  BIO_free(b);
  return s;
}

static char *pub_pem(EVP_PKEY *pk) {
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(b, pk);
  return bio_text(b);
}

/* PKCS#1 "RSA PUBLIC KEY" PEM. */
static char *rsa_pkcs1_pem(EVP_PKEY *pk) {
  BIO *b = BIO_new(BIO_s_mem());
  OSSL_ENCODER_CTX *ec = OSSL_ENCODER_CTX_new_for_pkey(
      pk, EVP_PKEY_PUBLIC_KEY, "PEM", "type-specific", NULL);
  OSSL_ENCODER_to_bio(ec, b);
  OSSL_ENCODER_CTX_free(ec);
  return bio_text(b);
}

/* A self-signed certificate for pk, as PEM. */
static char *cert_pem(EVP_PKEY *pk) {
  X509 *x = X509_new();
  BIO *b = BIO_new(BIO_s_mem());
  X509_NAME *name;
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, pk);
  name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             (const unsigned char *)"holdfast test", -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_sign(x, pk, EVP_sha256());
  PEM_write_bio_X509(b, x);
  X509_free(x);
  return bio_text(b);
}

static char *bn_b64(EVP_PKEY *pk, const char *param, int pad) {
  BIGNUM *bn = NULL;
  unsigned char buf[1024];
  int n;
  EVP_PKEY_get_bn_param(pk, param, &bn);
  n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
  BN_free(bn);
  return b64url(buf, (size_t)n);
}

/* One JWK object (JSON text) for pk; kid may be NULL, extra is spliced in
 * (e.g. ",\"alg\":\"RS256\""). */
static char *jwk(EVP_PKEY *pk, const char *kid, const char *extra) {
  char *out = malloc(4096), kidbuf[128] = "";
  if (kid)
    snprintf(kidbuf, sizeof kidbuf, ",\"kid\":\"%s\"", kid);
  if (EVP_PKEY_is_a(pk, "RSA")) {
    char *n = bn_b64(pk, OSSL_PKEY_PARAM_RSA_N, 0);
    char *e = bn_b64(pk, OSSL_PKEY_PARAM_RSA_E, 0);
    snprintf(out, 4096, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"%s%s}", n, e,
             kidbuf, extra ? extra : "");
    free(n);
    free(e);
  } else if (EVP_PKEY_is_a(pk, "EC")) {
    int sz = EVP_PKEY_get_bits(pk) / 8;
    char *x = bn_b64(pk, OSSL_PKEY_PARAM_EC_PUB_X, sz);
    char *y = bn_b64(pk, OSSL_PKEY_PARAM_EC_PUB_Y, sz);
    snprintf(out, 4096,
             "{\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s%s}",
             sz == 32 ? "P-256" : "P-384", x, y, kidbuf, extra ? extra : "");
    free(x);
    free(y);
  } else {
    unsigned char raw[32];
    size_t len = sizeof raw;
    EVP_PKEY_get_raw_public_key(pk, raw, &len);
    char *x = b64url(raw, len);
    snprintf(out, 4096,
             "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"%s%s}", x,
             kidbuf, extra ? extra : "");
    free(x);
  }
  return out;
}

/* {"keys":[a,b,...]} from up to four JWK texts (NULL-terminated list);
 * frees them. */
static char *jwks(char *a, char *b, char *c, char *d) {
  char *parts[4] = {a, b, c, d};
  char *out = malloc(16384);
  strcpy(out, "{\"keys\":[");
  for (int i = 0; i < 4 && parts[i]; i++) {
    if (i)
      strcat(out, ",");
    strcat(out, parts[i]);
    free(parts[i]);
  }
  strcat(out, "]}");
  return out;
}

static const char *md_of(const char *alg) {
  if (strstr(alg, "256"))
    return "SHA256";
  if (strstr(alg, "384"))
    return "SHA384";
  if (strstr(alg, "512"))
    return "SHA512";
  return NULL;
}

/* Signature over input for alg (JOSE form), base64url; NULL for "none". */
static char *sign_b64(const char *alg, const char *input, EVP_PKEY *pk,
                      const char *secret) {
  unsigned char sig[1024];
  size_t slen = sizeof sig;
  const unsigned char *data = (const unsigned char *)input;
  size_t dlen = strlen(input);
  if (alg[0] == 'H') {
    EVP_Q_mac(NULL, "HMAC", NULL, md_of(alg), NULL, secret, strlen(secret),
              data, dlen, sig, sizeof sig, &slen);
  } else if (pk) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    const char *md = strcmp(alg, "EdDSA") == 0 ? NULL : md_of(alg);
    EVP_DigestSignInit_ex(c, NULL, md, NULL, NULL, pk, NULL);
    EVP_DigestSign(c, sig, &slen, data, dlen);
    EVP_MD_CTX_free(c);
    if (alg[0] == 'E' && alg[1] == 'S') {
      /* DER ECDSA-Sig-Value to raw R||S. */
      const unsigned char *p = sig;
      ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)slen);
      int sz = strcmp(alg, "ES256") == 0 ? 32 : 48;
      BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, sz);
      BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + sz, sz);
      slen = (size_t)(2 * sz);
      ECDSA_SIG_free(es);
    }
  } else {
    slen = 0;
  }
  return b64url(sig, slen);
}

/* A compact token with the given header and payload JSON texts. */
static char *token_hdr(const char *hdr, const char *payload, const char *alg,
                       EVP_PKEY *pk, const char *secret) {
  char *h = b64url_str(hdr), *p = b64url_str(payload);
  size_t n = strlen(h) + strlen(p) + 2;
  char *input = malloc(n), *sig, *tok;
  snprintf(input, n, "%s.%s", h, p);
  sig = sign_b64(alg, input, pk, secret);
  tok = malloc(n + strlen(sig) + 1);
  sprintf(tok, "%s.%s", input, sig);
  free(h);
  free(p);
  free(input);
  free(sig);
  return tok;
}

/* Token with header {"alg":alg,"typ":"JWT"[,"kid":kid]}. */
static char *token(const char *alg, const char *kid, const char *payload,
                   EVP_PKEY *pk, const char *secret) {
  char hdr[256];
  if (kid)
    snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
             alg, kid);
  else
    snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
  return token_hdr(hdr, payload, alg, pk, secret);
}

static srv_jwt_keys *keys(const char *secret, const char *rsa, const char *ec,
                          const char *jwks_text) {
  char err[256];
  srv_jwt_keys *k =
      srv_jwt_keys_new(secret, rsa, ec, jwks_text, err, sizeof err);
  if (!k)
    printf("  keys_new failed: %s\n", err);
  return k;
}

/* Verify and drop the claims; also checks the claims contract. */
static srv_jwt_status vfy(const srv_jwt_keys *k, const char *tok,
                          const char *aud, const char *iss) {
  json_t *claims = (json_t *)1;
  srv_jwt_status st = srv_jwt_verify(k, tok, now, aud, iss, &claims);
  if ((st == SRV_JWT_OK || st == SRV_JWT_EXPIRED) != json_is_object(claims))
    HF_T_FAILF("claims contract broken for status %d", (int)st);
  if (st != SRV_JWT_OK && st != SRV_JWT_EXPIRED && claims != NULL)
    HF_T_FAILF("claims not NULL for status %d", (int)st);
  json_decref(claims);
  return st;
}

static char *payload_sub(const char *sub) {
  char *p = malloc(128);
  snprintf(p, 128, "{\"sub\":\"%s\",\"exp\":%lld}", sub, (long long)now + 3600);
  return p;
}

/* Replace the payload part of tok with base64url(payload), keeping the
 * header and signature. */
static char *swap_payload(const char *tok, const char *payload) {
  const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
  char *p = b64url_str(payload);
  char *out = malloc(strlen(tok) + strlen(p) + 1);
  sprintf(out, "%.*s.%s%s", (int)(d1 - tok), tok, p, d2);
  free(p);
  return out;
}

/* Change the first signature character (keeps base64url canonical). */
static void flip_sig(char *tok) {
  char *s = strrchr(tok, '.') + 1;
  *s = *s == 'A' ? 'B' : 'A';
}

/* ---- tests --------------------------------------------------------------- */

static void jwt_hmac_algorithms(void) {
  static const char *const algs[] = {"HS256", "HS384", "HS512"};
  srv_jwt_keys *k = keys("s3cr3t-key", NULL, NULL, NULL);
  char *pl = payload_sub("u1");
  for (int i = 0; i < 3; i++) {
    char *t = token(algs[i], NULL, pl, NULL, "s3cr3t-key");
    json_t *claims = NULL;
    CHECK_INT(srv_jwt_verify(k, t, now, NULL, NULL, &claims), SRV_JWT_OK);
    CHECK_STR(json_string_value(json_object_get(claims, "sub")), "u1");
    json_decref(claims);
    char *w = token(algs[i], NULL, pl, NULL, "other-key");
    CHECK_INT(vfy(k, w, NULL, NULL), SRV_JWT_SIGNATURE);
    /* claims may be NULL */
    CHECK_INT(srv_jwt_verify(k, t, now, NULL, NULL, NULL), SRV_JWT_OK);
    free(t);
    free(w);
  }
  free(pl);
  srv_jwt_keys_free(k);
}

static void jwt_centrifugo_hs256_example(void) {
  srv_jwt_keys *k = keys("secret", NULL, NULL, NULL);
  char pl[128];
  snprintf(pl, sizeof pl, "{\"sub\":\"42\",\"exp\":%lld}",
           (long long)now + 600);
  char *t = token("HS256", NULL, pl, NULL, "secret");
  json_t *claims = NULL;
  CHECK_INT(srv_jwt_verify(k, t, now, NULL, NULL, &claims), SRV_JWT_OK);
  CHECK_STR(json_string_value(json_object_get(claims, "sub")), "42");
  json_decref(claims);
  free(t);
  /* Signed by Python's hmac (not this file's encoder): secret "secret",
   * {"sub":"42","exp":4102444800}. */
  CHECK_INT(vfy(k,
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MiIsImV4cCI6"
                "NDEwMjQ0NDgwMH0.M_VfhGMqfmyf4VDriS4dpLAF_Loc8gummQeWZ_frmiQ",
                NULL, NULL),
            SRV_JWT_OK);
  srv_jwt_keys_free(k);
  /* The well-known jwt.io example token. */
  k = keys("your-256-bit-secret", NULL, NULL, NULL);
  CHECK_INT(vfy(k,
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkw"
                "IiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMe"
                "KKF2QT4fwpMeJf36POk6yJV_adQssw5c",
                NULL, NULL),
            SRV_JWT_OK);
  srv_jwt_keys_free(k);
}

static void jwt_rsa_pem_and_cert(void) {
  static const char *const algs[] = {"RS256", "RS384", "RS512"};
  char *pems[3] = {pub_pem(rsa_a), cert_pem(rsa_a), rsa_pkcs1_pem(rsa_a)};
  char *pl = payload_sub("r");
  for (int j = 0; j < 3; j++) {
    srv_jwt_keys *k = keys(NULL, pems[j], NULL, NULL);
    CHECK(k != NULL);
    for (int i = 0; i < 3; i++) {
      char *t = token(algs[i], NULL, pl, rsa_a, NULL);
      CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_OK);
      char *w = token(algs[i], NULL, pl, rsa_b, NULL);
      CHECK_INT(vfy(k, w, NULL, NULL), SRV_JWT_SIGNATURE);
      free(t);
      free(w);
    }
    /* Without a JWKS a kid carries no meaning and the PEM key is used. */
    char *t = token("RS256", "some-kid", pl, rsa_a, NULL);
    CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_OK);
    /* Signature four characters (three bytes) short. */
    char *sig = strrchr(t, '.') + 1;
    memmove(sig + 10, sig + 14, strlen(sig + 14) + 1);
    CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_SIGNATURE);
    free(t);
    srv_jwt_keys_free(k);
    free(pems[j]);
  }
  free(pl);
}

static void jwt_ecdsa_pem(void) {
  char *p256 = pub_pem(ec256), *p384 = pub_pem(ec384), *c384 = cert_pem(ec384);
  char *pl = payload_sub("e");
  srv_jwt_keys *k256 = keys(NULL, NULL, p256, NULL);
  srv_jwt_keys *k384 = keys(NULL, NULL, c384, NULL);
  char *t256 = token("ES256", NULL, pl, ec256, NULL);
  char *t384 = token("ES384", NULL, pl, ec384, NULL);
  CHECK_INT(vfy(k256, t256, NULL, NULL), SRV_JWT_OK);
  CHECK_INT(vfy(k384, t384, NULL, NULL), SRV_JWT_OK);
  /* The curve must match the algorithm. */
  CHECK_INT(vfy(k256, t384, NULL, NULL), SRV_JWT_ALG);
  CHECK_INT(vfy(k384, t256, NULL, NULL), SRV_JWT_ALG);
  /* Tampering. */
  char *sw = swap_payload(t256, "{\"sub\":\"admin\"}");
  CHECK_INT(vfy(k256, sw, NULL, NULL), SRV_JWT_SIGNATURE);
  flip_sig(t384);
  CHECK_INT(vfy(k384, t384, NULL, NULL), SRV_JWT_SIGNATURE);
  /* A DER signature instead of R||S is refused. */
  {
    char *h = b64url_str("{\"alg\":\"ES256\"}"), *p = b64url_str(pl);
    char input[512], tok[1024];
    unsigned char der[128];
    size_t dlen = sizeof der;
    snprintf(input, sizeof input, "%s.%s", h, p);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_DigestSignInit_ex(c, NULL, "SHA256", NULL, NULL, ec256, NULL);
    EVP_DigestSign(c, der, &dlen, (unsigned char *)input, strlen(input));
    EVP_MD_CTX_free(c);
    char *s = b64url(der, dlen);
    snprintf(tok, sizeof tok, "%s.%s", input, s);
    CHECK_INT(vfy(k256, tok, NULL, NULL), SRV_JWT_SIGNATURE);
    free(h);
    free(p);
    free(s);
  }
  /* A P-384 key given as the ECDSA key is fine; an RSA key is not. */
  char err[256] = "";
  char *rp = pub_pem(rsa_a);
  CHECK(srv_jwt_keys_new(NULL, NULL, rp, NULL, err, sizeof err) == NULL);
  CHECK(strstr(err, "ECDSA") != NULL);
  CHECK(srv_jwt_keys_new(NULL, p256, NULL, NULL, err, sizeof err) == NULL);
  CHECK(strstr(err, "RSA") != NULL);
  srv_jwt_keys *k384b = keys(NULL, NULL, p384, NULL);
  free(t384);
  t384 = token("ES384", NULL, pl, ec384, NULL);
  CHECK_INT(vfy(k384b, t384, NULL, NULL), SRV_JWT_OK);
  srv_jwt_keys_free(k384b);
  free(rp);
  free(sw);
  free(t256);
  free(t384);
  free(pl);
  free(p256);
  free(p384);
  free(c384);
  srv_jwt_keys_free(k256);
  srv_jwt_keys_free(k384);
}

static void jwt_jwks_every_algorithm(void) {
  char *doc = jwks(jwk(rsa_a, "r1", NULL), jwk(ec256, "e1", NULL),
                   jwk(ec384, "e2", ",\"use\":\"sig\",\"alg\":\"ES384\""),
                   jwk(ed_a, "d1", NULL));
  srv_jwt_keys *k = keys(NULL, NULL, NULL, doc);
  char *pl = payload_sub("j");
  struct {
    const char *alg, *kid;
    EVP_PKEY *pk;
  } cases[] = {{"RS256", "r1", rsa_a}, {"RS512", NULL, rsa_a},
               {"ES256", "e1", ec256}, {"ES384", "e2", ec384},
               {"ES384", NULL, ec384}, {"EdDSA", "d1", ed_a},
               {"EdDSA", NULL, ed_a}};
  CHECK(k != NULL);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *t = token(cases[i].alg, cases[i].kid, pl, cases[i].pk, NULL);
    CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_OK);
    char *sw = swap_payload(t, "{\"sub\":\"x\"}");
    CHECK_INT(vfy(k, sw, NULL, NULL), SRV_JWT_SIGNATURE);
    flip_sig(t);
    CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_SIGNATURE);
    free(t);
    free(sw);
  }
  /* Wrong Ed25519 key, and an algorithm with no key (HS256). */
  char *t = token("EdDSA", NULL, pl, ed_b, NULL);
  CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_SIGNATURE);
  free(t);
  t = token("HS256", NULL, pl, NULL, "x");
  CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_ALG);
  free(t);
  free(pl);
  free(doc);
  srv_jwt_keys_free(k);
}

static void jwt_jwks_kid_selection(void) {
  char *pem = pub_pem(rsa_a);
  char *doc = jwks(jwk(rsa_a, "a", NULL), jwk(rsa_b, "b", NULL),
                   jwk(ed_a, "a", NULL), jwk(ed_b, NULL, NULL));
  srv_jwt_keys *k = keys(NULL, NULL, NULL, doc);
  char *pl = payload_sub("kid");
  char *t;
  t = token("RS256", "b", pl, rsa_b, NULL);
  CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_OK);
  free(t);
  t = token("RS256", "a", pl, rsa_b, NULL); /* kid names the other key */
  CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_SIGNATURE);
  free(t);
  t = token("RS256", "zzz", pl, rsa_b, NULL); /* unknown kid */
  CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_SIGNATURE);
  free(t);
  t = token("RS256", NULL, pl, rsa_b, NULL); /* no kid: all RSA keys */
  CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_OK);
  free(t);
  t = token("EdDSA", "a", pl, ed_a, NULL); /* kid shared across kty */
  CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_OK);
  free(t);
  t = token("EdDSA", NULL, pl, ed_b, NULL); /* kid-less key, no kid */
  CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_OK);
  free(t);
  t = token("EdDSA", "a", pl, ed_b, NULL);
  CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_SIGNATURE);
  free(t);
  srv_jwt_keys_free(k);

  /* PEM plus JWKS: a kid restricts to JWKS keys, no kid tries PEM first. */
  char *doc2 = jwks(jwk(rsa_b, "b", NULL), NULL, NULL, NULL);
  k = keys(NULL, pem, NULL, doc2);
  t = token("RS256", NULL, pl, rsa_a, NULL);
  CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_OK);
  free(t);
  t = token("RS256", "b", pl, rsa_a, NULL);
  CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_SIGNATURE);
  free(t);
  t = token("RS256", NULL, pl, rsa_b, NULL);
  CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_OK);
  free(t);
  srv_jwt_keys_free(k);

  /* A JWK "alg" restricts the key to that algorithm. */
  char *doc3 = jwks(jwk(rsa_a, "a", ",\"alg\":\"RS512\""), NULL, NULL, NULL);
  k = keys(NULL, NULL, NULL, doc3);
  t = token("RS256", "a", pl, rsa_a, NULL);
  CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_ALG);
  free(t);
  t = token("RS512", "a", pl, rsa_a, NULL);
  CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_OK);
  free(t);
  srv_jwt_keys_free(k);

  /* Keys published for encryption are skipped. */
  char *doc4 = jwks(jwk(rsa_a, "enc", ",\"use\":\"enc\""),
                    jwk(rsa_b, "sig", ",\"use\":\"sig\""), NULL, NULL);
  k = keys(NULL, NULL, NULL, doc4);
  CHECK(k != NULL);
  t = token("RS256", "enc", pl, rsa_a, NULL);
  CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_SIGNATURE);
  free(t);
  srv_jwt_keys_free(k);
  free(doc);
  free(doc2);
  free(doc3);
  free(doc4);
  free(pem);
  free(pl);
}

static void jwt_alg_rejections(void) {
  char *pem = pub_pem(rsa_a);
  srv_jwt_keys *rsa_only = keys(NULL, pem, NULL, NULL);
  srv_jwt_keys *all = keys("secret", pem, NULL, NULL);
  char *pl = payload_sub("a");
  char *t;
  /* alg none, with and without a signature part. */
  t = token_hdr("{\"alg\":\"none\",\"typ\":\"JWT\"}", pl, "none", NULL, NULL);
  CHECK_INT(vfy(all, t, NULL, NULL), SRV_JWT_ALG);
  free(t);
  t = token_hdr("{\"alg\":\"None\"}", pl, "none", NULL, NULL);
  CHECK_INT(vfy(all, t, NULL, NULL), SRV_JWT_ALG);
  free(t);
  /* Unknown and unsupported algorithms, a missing alg. */
  static const char *const bad[] = {
      "{\"alg\":\"HS1024\"}", "{\"alg\":\"ES512\"}", "{\"alg\":\"PS256\"}",
      "{\"alg\":\"hs256\"}",  "{\"alg\":\"\"}",      "{\"typ\":\"JWT\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    t = token_hdr(bad[i], pl, "HS256", NULL, "secret");
    CHECK_INT(vfy(all, t, NULL, NULL), SRV_JWT_ALG);
    free(t);
  }
  /* HS256 with only an RSA key, RS256 with only a secret, and nothing. */
  t = token("HS256", NULL, pl, NULL, "secret");
  CHECK_INT(vfy(rsa_only, t, NULL, NULL), SRV_JWT_ALG);
  CHECK_INT(vfy(NULL, t, NULL, NULL), SRV_JWT_ALG);
  srv_jwt_keys *empty = keys(NULL, "", "", "");
  CHECK(empty != NULL);
  CHECK_INT(vfy(empty, t, NULL, NULL), SRV_JWT_ALG);
  srv_jwt_keys_free(empty);
  free(t);
  srv_jwt_keys *hs = keys("secret", NULL, NULL, NULL);
  t = token("RS256", NULL, pl, rsa_a, NULL);
  CHECK_INT(vfy(hs, t, NULL, NULL), SRV_JWT_ALG);
  CHECK_INT(vfy(all, t, NULL, NULL), SRV_JWT_OK);
  free(t);
  t = token("ES256", NULL, pl, ec256, NULL);
  CHECK_INT(vfy(all, t, NULL, NULL), SRV_JWT_ALG);
  free(t);
  srv_jwt_keys_free(hs);

  /* Key confusion: HMAC keyed with the RSA public key text (and its DER). */
  t = token("HS256", NULL, pl, NULL, pem);
  CHECK_INT(vfy(rsa_only, t, NULL, NULL), SRV_JWT_ALG);
  CHECK_INT(vfy(all, t, NULL, NULL), SRV_JWT_SIGNATURE);
  free(t);
  t = token("HS512", NULL, pl, NULL, pem);
  CHECK_INT(vfy(rsa_only, t, NULL, NULL), SRV_JWT_ALG);
  free(t);
  free(pl);
  free(pem);
  srv_jwt_keys_free(rsa_only);
  srv_jwt_keys_free(all);
}

static srv_jwt_status hs_claims(const char *payload, int64_t at,
                                const char *aud, const char *iss,
                                json_t **claims) {
  srv_jwt_keys *k = keys("k", NULL, NULL, NULL);
  char *t = token("HS256", NULL, payload, NULL, "k");
  srv_jwt_status st = srv_jwt_verify(k, t, at, aud, iss, claims);
  free(t);
  srv_jwt_keys_free(k);
  return st;
}

static srv_jwt_status hs(const char *payload, const char *aud,
                         const char *iss) {
  json_t *claims = NULL;
  srv_jwt_status st = hs_claims(payload, 1000, aud, iss, &claims);
  if ((st == SRV_JWT_OK || st == SRV_JWT_EXPIRED) != json_is_object(claims))
    HF_T_FAILF("claims contract broken for status %d", (int)st);
  json_decref(claims);
  return st;
}

static void jwt_time_claims(void) {
  json_t *claims = NULL;
  /* now is 1000 for these. */
  CHECK_INT(hs("{\"exp\":1001}", NULL, NULL), SRV_JWT_OK);
  CHECK_INT(hs("{\"exp\":1000}", NULL, NULL), SRV_JWT_EXPIRED);
  CHECK_INT(hs("{\"exp\":999}", NULL, NULL), SRV_JWT_EXPIRED);
  CHECK_INT(hs("{\"exp\":1000.5}", NULL, NULL), SRV_JWT_OK);
  CHECK_INT(hs("{\"exp\":999.5}", NULL, NULL), SRV_JWT_EXPIRED);
  CHECK_INT(hs("{\"exp\":1e300}", NULL, NULL), SRV_JWT_OK);
  CHECK_INT(hs("{\"exp\":-5}", NULL, NULL), SRV_JWT_EXPIRED);
  CHECK_INT(hs("{\"nbf\":1000}", NULL, NULL), SRV_JWT_OK);
  CHECK_INT(hs("{\"nbf\":1001}", NULL, NULL), SRV_JWT_EXPIRED);
  CHECK_INT(hs("{\"nbf\":999,\"exp\":2000}", NULL, NULL), SRV_JWT_OK);
  CHECK_INT(hs("{}", NULL, NULL), SRV_JWT_OK);
  /* Expired tokens still hand back their (verified) claims. */
  CHECK_INT(hs_claims("{\"sub\":\"9\",\"exp\":5}", 1000, NULL, NULL, &claims),
            SRV_JWT_EXPIRED);
  CHECK_STR(json_string_value(json_object_get(claims, "sub")), "9");
  json_decref(claims);
  /* Expiry wins over audience and issuer mismatches. */
  CHECK_INT(hs("{\"exp\":5,\"aud\":\"x\",\"iss\":\"y\"}", "a", "i"),
            SRV_JWT_EXPIRED);
  /* Wrong types. */
  CHECK_INT(hs("{\"exp\":\"2000\"}", NULL, NULL), SRV_JWT_MALFORMED);
  CHECK_INT(hs("{\"exp\":null}", NULL, NULL), SRV_JWT_MALFORMED);
  CHECK_INT(hs("{\"nbf\":true}", NULL, NULL), SRV_JWT_MALFORMED);
  CHECK_INT(hs("{\"iat\":[]}", NULL, NULL), SRV_JWT_MALFORMED);
  CHECK_INT(hs("{\"sub\":42}", NULL, NULL), SRV_JWT_MALFORMED);
}

static void jwt_audience_issuer(void) {
  CHECK_INT(hs("{\"aud\":\"app\"}", "app", NULL), SRV_JWT_OK);
  CHECK_INT(hs("{\"aud\":\"other\"}", "app", NULL), SRV_JWT_AUDIENCE);
  CHECK_INT(hs("{\"aud\":[\"x\",\"app\"]}", "app", NULL), SRV_JWT_OK);
  CHECK_INT(hs("{\"aud\":[\"x\",\"y\"]}", "app", NULL), SRV_JWT_AUDIENCE);
  CHECK_INT(hs("{\"aud\":[]}", "app", NULL), SRV_JWT_AUDIENCE);
  CHECK_INT(hs("{}", "app", NULL), SRV_JWT_AUDIENCE);
  CHECK_INT(hs("{\"aud\":\"appx\"}", "app", NULL), SRV_JWT_AUDIENCE);
  CHECK_INT(hs("{\"aud\":\"anything\"}", NULL, NULL), SRV_JWT_OK);
  CHECK_INT(hs("{\"aud\":\"anything\"}", "", NULL), SRV_JWT_OK);
  CHECK_INT(hs("{\"aud\":5}", NULL, NULL), SRV_JWT_MALFORMED);
  CHECK_INT(hs("{\"aud\":[\"app\",5]}", "app", NULL), SRV_JWT_MALFORMED);
  CHECK_INT(hs("{\"iss\":\"me\"}", NULL, "me"), SRV_JWT_OK);
  CHECK_INT(hs("{\"iss\":\"you\"}", NULL, "me"), SRV_JWT_ISSUER);
  CHECK_INT(hs("{}", NULL, "me"), SRV_JWT_ISSUER);
  CHECK_INT(hs("{\"iss\":\"you\"}", NULL, ""), SRV_JWT_OK);
  CHECK_INT(hs("{\"iss\":[\"me\"]}", NULL, "me"), SRV_JWT_MALFORMED);
  CHECK_INT(hs("{\"aud\":\"app\",\"iss\":\"me\"}", "app", "me"), SRV_JWT_OK);
}

static void jwt_malformed_inputs(void) {
  srv_jwt_keys *k = keys("secret", NULL, NULL, NULL);
  char *pl = payload_sub("m");
  char *good = token("HS256", NULL, pl, NULL, "secret");
  char buf[20000];
  const char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
  char *t;
  CHECK_INT(vfy(k, good, NULL, NULL), SRV_JWT_OK);

  CHECK_INT(vfy(k, NULL, NULL, NULL), SRV_JWT_MALFORMED);
  CHECK_INT(vfy(k, "", NULL, NULL), SRV_JWT_MALFORMED);
  CHECK_INT(vfy(k, "..", NULL, NULL), SRV_JWT_MALFORMED);
  CHECK_INT(vfy(k, "abc", NULL, NULL), SRV_JWT_MALFORMED);
  /* Two parts and four parts. */
  snprintf(buf, sizeof buf, "%.*s", (int)(d2 - good), good);
  CHECK_INT(vfy(k, buf, NULL, NULL), SRV_JWT_MALFORMED);
  snprintf(buf, sizeof buf, "%s.%s", good, d2 + 1);
  CHECK_INT(vfy(k, buf, NULL, NULL), SRV_JWT_MALFORMED);
  snprintf(buf, sizeof buf, "%s.", good);
  CHECK_INT(vfy(k, buf, NULL, NULL), SRV_JWT_MALFORMED);
  /* Bad base64url: standard-alphabet characters, padding, junk, a stray
   * length, non-canonical trailing bits, whitespace. */
  static const char *const inserts[] = {"+", "/", "=", "*", " ", "\n", "%"};
  for (size_t i = 0; i < sizeof inserts / sizeof inserts[0]; i++) {
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(d1 - good + 3), good,
             inserts[i], d1 + 3);
    CHECK_INT(vfy(k, buf, NULL, NULL), SRV_JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s%s", good, inserts[i]);
    CHECK_INT(vfy(k, buf, NULL, NULL), SRV_JWT_MALFORMED);
  }
  snprintf(buf, sizeof buf, "%s==", good); /* padded signature */
  CHECK_INT(vfy(k, buf, NULL, NULL), SRV_JWT_MALFORMED);
  snprintf(buf, sizeof buf, "%sAA", good); /* 1 mod 4 characters */
  CHECK_INT(vfy(k, buf, NULL, NULL), SRV_JWT_MALFORMED);
  snprintf(buf, sizeof buf, "%sA", good); /* decodes, one byte too long */
  CHECK_INT(vfy(k, buf, NULL, NULL), SRV_JWT_SIGNATURE);
  /* HS256 signatures are 43 characters with 2 trailing zero bits: make the
   * last character carry a set trailing bit. */
  snprintf(buf, sizeof buf, "%s", good);
  {
    char *last = buf + strlen(buf) - 1;
    const char *al =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(al, *last) - al);
    *last = al[v | 1];
  }
  CHECK_INT(vfy(k, buf, NULL, NULL), SRV_JWT_MALFORMED);
  free(good);

  /* Headers: not an object, not JSON, duplicate members, bad types, crit. */
  static const char *const hdrs[] = {"[\"HS256\"]",
                                     "\"HS256\"",
                                     "{\"alg\":\"HS256\"",
                                     "",
                                     "{\"alg\":\"HS256\",\"alg\":\"HS256\"}",
                                     "{\"alg\":256}",
                                     "{\"alg\":\"HS256\",\"kid\":7}",
                                     "{\"alg\":\"HS256\",\"typ\":{}}",
                                     "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
                                     "{\"alg\":\"HS\\u0000256\"}"};
  for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
    t = token_hdr(hdrs[i], pl, "HS256", NULL, "secret");
    if (vfy(k, t, NULL, NULL) != SRV_JWT_MALFORMED)
      HF_T_FAILF("header %s not MALFORMED", hdrs[i]);
    free(t);
  }
  /* Payloads (correctly signed): not JSON, not an object, duplicates. */
  static const char *const pls[] = {"not json",
                                    "[1,2]",
                                    "\"s\"",
                                    "",
                                    "{\"sub\":\"1\",\"sub\":\"2\"}",
                                    "{\"exp\":\"tomorrow\"}",
                                    "{\"a\":1} x"};
  for (size_t i = 0; i < sizeof pls / sizeof pls[0]; i++) {
    t = token("HS256", NULL, pls[i], NULL, "secret");
    if (vfy(k, t, NULL, NULL) != SRV_JWT_MALFORMED)
      HF_T_FAILF("payload %s not MALFORMED", pls[i]);
    free(t);
  }
  /* Deeply nested JSON stays within jansson's depth limit. */
  {
    static char deep[6100];
    size_t n = 0;
    n += (size_t)sprintf(deep, "{\"x\":");
    for (int i = 0; i < 3000; i++)
      deep[n++] = '[';
    for (int i = 0; i < 3000; i++)
      deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    t = token("HS256", NULL, deep, NULL, "secret");
    CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_MALFORMED);
    free(t);
    t = token_hdr(deep, pl, "HS256", NULL, "secret");
    CHECK_INT(vfy(k, t, NULL, NULL), SRV_JWT_MALFORMED);
    free(t);
  }
  /* The 16 KiB limit: valid tokens up to it pass, the first one over it
   * fails before decoding. */
  {
    static char big[13000];
    int seen_ok = 0;
    for (size_t plen = 12100; plen < sizeof big - 1; plen++) {
      memcpy(big, "{\"pad\":\"", 8);
      memset(big + 8, 'a', plen - 10);
      memcpy(big + plen - 2, "\"}", 3);
      char *tk = token("HS256", NULL, big, NULL, "secret");
      size_t len = strlen(tk);
      srv_jwt_status st = vfy(k, tk, NULL, NULL);
      free(tk);
      if (len <= 16384) {
        CHECK_INT(st, SRV_JWT_OK);
        seen_ok += len > 16380;
      } else {
        CHECK_INT(st, SRV_JWT_MALFORMED);
        break;
      }
    }
    CHECK(seen_ok > 0);
    memset(buf, 'A', 16385);
    buf[16385] = '\0';
    CHECK_INT(vfy(k, buf, NULL, NULL), SRV_JWT_MALFORMED);
  }
  free(pl);
  srv_jwt_keys_free(k);
}

static void jwt_key_loading_errors(void) {
  char err[256];
  char *rsa_jwk = jwk(rsa_a, "k-rsa", NULL);
  char *doc;
  srv_jwt_keys *k;

  err[0] = '\0';
  CHECK(srv_jwt_keys_new(NULL,
                         "-----BEGIN PUBLIC KEY-----\nAAAA\n"
                         "-----END PUBLIC KEY-----\n",
                         NULL, NULL, err, sizeof err) == NULL);
  CHECK(strstr(err, "RSA public key") != NULL);
  CHECK(srv_jwt_keys_new(NULL, "not a pem", NULL, NULL, err, sizeof err) ==
        NULL);
  CHECK(err[0] != '\0');
  CHECK(srv_jwt_keys_new(NULL, NULL, "garbage", NULL, err, sizeof err) == NULL);
  CHECK(strstr(err, "ECDSA public key") != NULL);

  /* A small buffer truncates without overflow; errcap 0 is allowed. */
  char tiny[8];
  CHECK(srv_jwt_keys_new(NULL, "x", NULL, NULL, tiny, sizeof tiny) == NULL);
  CHECK(strlen(tiny) == 7);
  CHECK(srv_jwt_keys_new(NULL, "x", NULL, NULL, NULL, 0) == NULL);

  /* JWKS: unknown kty names the index and kid, never the key material. */
  doc = malloc(8192);
  snprintf(doc, 8192,
           "{\"keys\":[%s,{\"kty\":\"oct\",\"kid\":\"k-oct\",\"k\":"
           "\"c2VjcmV0LWtleS1tYXRlcmlhbA\"}]}",
           rsa_jwk);
  CHECK(srv_jwt_keys_new(NULL, NULL, NULL, doc, err, sizeof err) == NULL);
  CHECK(strstr(err, "key 1") != NULL);
  CHECK(strstr(err, "k-oct") != NULL);
  CHECK(strstr(err, "kty") != NULL);
  CHECK(strstr(err, "c2VjcmV0") == NULL);

  static const char *const bad_docs[] = {
      "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\"}]"
      "}",
      "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":"
      "\"AAAA\"}]}",
      "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed448\",\"x\":\"AAAA\"}]}",
      "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}]}",
      "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
      "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"not base64!\",\"e\":\"AQAB\"}]}",
      "{\"keys\":[{\"n\":\"AQAB\"}]}",
      "{\"keys\":[7]}",
      "{\"keys\":{}}",
      "{\"kty\":\"RSA\"}",
      "[1,2,3]",
      "{\"keys\":[{\"kty\":\"RSA\",\"kid\":5}]}",
      "{\"keys\":[],\"keys\":[]}",
      "{\"keys\":[{\"kty\":\"AQAB-secret-looking\"",
  };
  for (size_t i = 0; i < sizeof bad_docs / sizeof bad_docs[0]; i++) {
    err[0] = '\0';
    k = srv_jwt_keys_new(NULL, NULL, NULL, bad_docs[i], err, sizeof err);
    if (k || err[0] == '\0')
      HF_T_FAILF("JWKS %zu accepted or no message", i);
    if (strstr(err, "AQAB") || strstr(err, "AAAA"))
      HF_T_FAILF("JWKS %zu error echoes key material: %s", i, err);
    srv_jwt_keys_free(k);
  }
  /* An off-curve EC point (valid sizes) is refused. */
  {
    char *good = jwk(ec256, "p", NULL);
    char *y = strstr(good, "\"y\":\"") + 5;
    y[0] = y[0] == 'A' ? 'B' : 'A';
    snprintf(doc, 8192, "{\"keys\":[%s]}", good);
    CHECK(srv_jwt_keys_new(NULL, NULL, NULL, doc, err, sizeof err) == NULL);
    CHECK(strstr(err, "kid \"p\"") != NULL);
    free(good);
  }
  /* An alg that does not fit the key. */
  {
    char *j = jwk(ec256, "q", ",\"alg\":\"ES384\"");
    snprintf(doc, 8192, "{\"keys\":[%s]}", j);
    CHECK(srv_jwt_keys_new(NULL, NULL, NULL, doc, err, sizeof err) == NULL);
    CHECK(strstr(err, "alg") != NULL);
    free(j);
  }
  /* Empty key list is a valid (if useless) JWKS. */
  k = keys(NULL, NULL, NULL, "{\"keys\":[]}");
  CHECK(k != NULL);
  srv_jwt_keys_free(k);
  srv_jwt_keys_free(NULL);
  free(doc);
  free(rsa_jwk);
}

static void jwt_strerror_texts(void) {
  CHECK_STR(srv_jwt_strerror(SRV_JWT_EXPIRED), "token expired");
  for (int i = SRV_JWT_OK; i <= SRV_JWT_ISSUER; i++) {
    const char *s = srv_jwt_strerror((srv_jwt_status)i);
    CHECK(s != NULL && s[0] != '\0');
    for (int j = SRV_JWT_OK; j < i; j++)
      CHECK(strcmp(s, srv_jwt_strerror((srv_jwt_status)j)) != 0);
  }
}

int main(void) {
  hf_t_suite = "jwt";
  now = (int64_t)time(NULL);
  rsa_a = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  rsa_b = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  ec256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
  ed_a = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  ed_b = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  if (!rsa_a || !rsa_b || !ec256 || !ec384 || !ed_a || !ed_b) {
    printf("FAIL jwt/keygen: EVP_PKEY_Q_keygen failed\n");
    return 1;
  }
  RUN_TEST(jwt_hmac_algorithms);
  RUN_TEST(jwt_centrifugo_hs256_example);
  RUN_TEST(jwt_rsa_pem_and_cert);
  RUN_TEST(jwt_ecdsa_pem);
  RUN_TEST(jwt_jwks_every_algorithm);
  RUN_TEST(jwt_jwks_kid_selection);
  RUN_TEST(jwt_alg_rejections);
  RUN_TEST(jwt_time_claims);
  RUN_TEST(jwt_audience_issuer);
  RUN_TEST(jwt_malformed_inputs);
  RUN_TEST(jwt_key_loading_errors);
  RUN_TEST(jwt_strerror_texts);
  EVP_PKEY_free(rsa_a);
  EVP_PKEY_free(rsa_b);
  EVP_PKEY_free(ec256);
  EVP_PKEY_free(ec384);
  EVP_PKEY_free(ed_a);
  EVP_PKEY_free(ed_b);
  TEST_MAIN_END();
}
