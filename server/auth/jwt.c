/* SPDX-License-Identifier: MIT */
/* JSON Web Token verification for connection and subscription tokens:
 * strict compact-JWS parsing (three unpadded base64url parts with canonical
 * trailing bits, JSON objects without duplicate members), signature checks
 * through OpenSSL 3 (HMAC via EVP_Q_mac and CRYPTO_memcmp; RSA PKCS#1 v1.5,
 * ECDSA over P-256/P-384 and Ed25519 via EVP_DigestVerify), key loading from
 * PEM (SubjectPublicKeyInfo, PKCS#1 RSA public keys, X.509 certificates) and
 * JWKS documents (EVP_PKEY_fromdata), and the registered time, audience
 * and issuer claims. The signature is verified before the payload is even
 * parsed. */
#include "auth/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longer tokens are rejected before any decoding. */
#define JWT_MAX_TOKEN 16384
/* RSA moduli accepted for verification keys (bits). */
#define JWT_RSA_MIN_BITS 1024
#define JWT_RSA_MAX_BITS 16384
/* Longest kid echoed in a key-loading error. */
#define JWT_KID_ECHO 64

typedef enum { FAM_HMAC, FAM_RSA, FAM_EC, FAM_ED } jwt_family;

typedef struct {
  const char *name; /* JOSE "alg" */
  jwt_family fam;
  const char *md;  /* digest name; NULL for EdDSA */
  size_t ec_bytes; /* ECDSA: size of R and of S (the curve's size) */
} jwt_alg;

static const jwt_alg jwt_algs[] = {
    {"HS256", FAM_HMAC, "SHA256", 0}, {"HS384", FAM_HMAC, "SHA384", 0},
    {"HS512", FAM_HMAC, "SHA512", 0}, {"RS256", FAM_RSA, "SHA256", 0},
    {"RS384", FAM_RSA, "SHA384", 0},  {"RS512", FAM_RSA, "SHA512", 0},
    {"ES256", FAM_EC, "SHA256", 32},  {"ES384", FAM_EC, "SHA384", 48},
    {"EdDSA", FAM_ED, NULL, 0},
};

typedef struct {
  EVP_PKEY *pkey;
  jwt_family fam;
  size_t ec_bytes; /* FAM_EC: 32 (P-256) or 48 (P-384) */
  char *kid;           /* JWKS "kid", or NULL */
  const jwt_alg *only; /* JWKS "alg": the one algorithm allowed, or NULL */
} jwt_key;

struct srv_jwt_keys {
  unsigned char *secret; /* HMAC secret, NULL when not configured */
  size_t secret_len;
  jwt_key *keys; /* PEM keys first, then JWKS keys in order */
  size_t nkeys, cap;
  int have_jwks; /* a JWKS document was given */
};

__attribute__((format(printf, 3, 4))) static void
set_err(char *err, size_t cap, const char *fmt, ...) {
  va_list ap;
  if (!err || !cap)
    return;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

static int is_blank(const char *s) {
  if (!s)
    return 1;
  for (; *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
      return 0;
  return 1;
}

static const jwt_alg *find_alg(const char *name) {
  for (size_t i = 0; i < sizeof jwt_algs / sizeof jwt_algs[0]; i++)
    if (strcmp(jwt_algs[i].name, name) == 0)
      return &jwt_algs[i];
  return NULL;
}

/* ---- base64url ---------------------------------------------------------- */

static int b64url_val(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '-')
    return 62;
  if (c == '_')
    return 63;
  return -1;
}

/* Decode n characters of unpadded base64url into out (room for n * 3 / 4
 * bytes). Rejects characters outside the alphabet (padding included), a
 * length of 1 mod 4 and non-zero trailing bits, so every byte string has
 * exactly one accepted encoding. Returns 0 on success. */
static int b64url_decode(const char *s, size_t n, unsigned char *out,
                         size_t *outlen) {
  uint32_t acc = 0;
  unsigned bits = 0;
  size_t o = 0;
  if (n % 4 == 1)
    return -1;
  for (size_t i = 0; i < n; i++) {
    int v = b64url_val((unsigned char)s[i]);
    if (v < 0)
      return -1;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0)
    return -1;
  *outlen = o;
  return 0;
}

/* Decode a JWK member that must be a base64url string; *out is malloc'd. */
static int jwk_b64(json_t *jwk, const char *member, unsigned char **out,
                   size_t *outlen) {
  json_t *v = json_object_get(jwk, member);
  const char *s;
  size_t n;
  *out = NULL;
  if (!json_is_string(v))
    return -1;
  s = json_string_value(v);
  n = json_string_length(v);
  *out = malloc(n * 3 / 4 + 1);
  if (!*out)
    return -1;
  if (b64url_decode(s, n, *out, outlen) != 0) {
    free(*out);
    *out = NULL;
    return -1;
  }
  return 0;
}

/* ---- key set ------------------------------------------------------------- */

static int add_key(srv_jwt_keys *k, const jwt_key *key) {
  if (k->nkeys == k->cap) {
    size_t cap = k->cap ? k->cap * 2 : 4;
    jwt_key *p = realloc(k->keys, cap * sizeof *p);
    if (!p)
      return -1;
    k->keys = p;
    k->cap = cap;
  }
  k->keys[k->nkeys++] = *key;
  return 0;
}

static int pem_no_password(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return -1;
}

/* A public key from PEM text: any public key block OpenSSL 3 decodes
 * (SubjectPublicKeyInfo "PUBLIC KEY", PKCS#1 "RSA PUBLIC KEY"), else the
 * public key of the first certificate. Private keys are not accepted and no
 * password is ever asked for. */
static EVP_PKEY *load_pem_pubkey(const char *pem) {
  EVP_PKEY *pk = NULL;
  X509 *x;
  BIO *b = BIO_new_mem_buf(pem, -1);
  if (!b)
    return NULL;
  pk = PEM_read_bio_PUBKEY(b, NULL, pem_no_password, NULL);
  BIO_free(b);
  if (pk)
    return pk;
  b = BIO_new_mem_buf(pem, -1);
  if (!b)
    return NULL;
  x = PEM_read_bio_X509(b, NULL, pem_no_password, NULL);
  BIO_free(b);
  if (!x)
    return NULL;
  pk = X509_get_pubkey(x);
  X509_free(x);
  return pk;
}

static int rsa_bits_ok(const EVP_PKEY *pk) {
  int bits = EVP_PKEY_get_bits(pk);
  return bits >= JWT_RSA_MIN_BITS && bits <= JWT_RSA_MAX_BITS;
}

/* The ECDSA coordinate size of pk's named curve: 32 for P-256, 48 for P-384,
 * 0 for anything else (other curves, explicit parameters). */
static size_t ec_curve_bytes(const EVP_PKEY *pk) {
  char name[64];
  size_t len = 0;
  if (EVP_PKEY_get_group_name(pk, name, sizeof name, &len) != 1)
    return 0;
  if (strcmp(name, "prime256v1") == 0 || strcmp(name, "P-256") == 0 ||
      strcmp(name, "secp256r1") == 0)
    return 32;
  if (strcmp(name, "secp384r1") == 0 || strcmp(name, "P-384") == 0)
    return 48;
  return 0;
}

static int load_rsa_pem(srv_jwt_keys *k, const char *pem, char *err,
                        size_t errcap) {
  jwt_key key = {0};
  EVP_PKEY *pk = load_pem_pubkey(pem);
  if (!pk) {
    set_err(err, errcap,
            "RSA public key: no PEM public key or certificate found");
    return -1;
  }
  if (!EVP_PKEY_is_a(pk, "RSA")) {
    set_err(err, errcap, "RSA public key: not an RSA key");
    goto fail;
  }
  if (!rsa_bits_ok(pk)) {
    set_err(err, errcap, "RSA public key: modulus must have %d to %d bits",
            JWT_RSA_MIN_BITS, JWT_RSA_MAX_BITS);
    goto fail;
  }
  key.pkey = pk;
  key.fam = FAM_RSA;
  if (add_key(k, &key) == 0)
    return 0;
  set_err(err, errcap, "RSA public key: out of memory");
fail:
  EVP_PKEY_free(pk);
  return -1;
}

static int load_ec_pem(srv_jwt_keys *k, const char *pem, char *err,
                       size_t errcap) {
  jwt_key key = {0};
  EVP_PKEY *pk = load_pem_pubkey(pem);
  if (!pk) {
    set_err(err, errcap,
            "ECDSA public key: no PEM public key or certificate found");
    return -1;
  }
  if (!EVP_PKEY_is_a(pk, "EC")) {
    set_err(err, errcap, "ECDSA public key: not an EC key");
    goto fail;
  }
  key.ec_bytes = ec_curve_bytes(pk);
  if (!key.ec_bytes) {
    set_err(err, errcap, "ECDSA public key: curve must be P-256 or P-384");
    goto fail;
  }
  key.pkey = pk;
  key.fam = FAM_EC;
  if (add_key(k, &key) == 0)
    return 0;
  set_err(err, errcap, "ECDSA public key: out of memory");
fail:
  EVP_PKEY_free(pk);
  return -1;
}

/* EVP_PKEY_fromdata for a public key of the given type; frees bld. */
static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld) {
  EVP_PKEY *pk = NULL;
  OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
  if (!params || !pc || EVP_PKEY_fromdata_init(pc) != 1 ||
      EVP_PKEY_fromdata(pc, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    EVP_PKEY_free(pk);
    pk = NULL;
  }
  EVP_PKEY_CTX_free(pc);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  return pk;
}

/* RSA JWK: n and e, big-endian base64url. Returns NULL with *why set. */
static EVP_PKEY *jwk_rsa(json_t *jwk, const char **why) {
  unsigned char *n = NULL, *e = NULL;
  size_t nlen = 0, elen = 0;
  BIGNUM *bn = NULL, *be = NULL;
  OSSL_PARAM_BLD *bld = NULL;
  EVP_PKEY *pk = NULL;
  if (jwk_b64(jwk, "n", &n, &nlen) != 0 || jwk_b64(jwk, "e", &e, &elen) != 0) {
    *why = "\"n\" and \"e\" must be base64url strings";
    goto out;
  }
  bn = BN_bin2bn(n, (int)nlen, NULL);
  be = BN_bin2bn(e, (int)elen, NULL);
  if (!bn || !be) {
    *why = "out of memory";
    goto out;
  }
  if (BN_num_bits(bn) < JWT_RSA_MIN_BITS ||
      BN_num_bits(bn) > JWT_RSA_MAX_BITS || !BN_is_odd(bn)) {
    *why = "unusable RSA modulus (must be odd, 1024 to 16384 bits)";
    goto out;
  }
  if (!BN_is_odd(be) || BN_is_one(be) || BN_num_bits(be) > 31) {
    *why = "unusable RSA exponent";
    goto out;
  }
  bld = OSSL_PARAM_BLD_new();
  if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
      !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be)) {
    OSSL_PARAM_BLD_free(bld);
    *why = "out of memory";
    goto out;
  }
  pk = pkey_from_params("RSA", bld);
  if (!pk)
    *why = "unusable RSA key";
out:
  BN_free(bn);
  BN_free(be);
  free(n);
  free(e);
  return pk;
}

/* EC JWK: crv P-256 or P-384, x and y of exactly the curve's size. */
static EVP_PKEY *jwk_ec(json_t *jwk, size_t *ec_bytes, const char **why) {
  const char *crv = json_string_value(json_object_get(jwk, "crv"));
  const char *group;
  unsigned char *x = NULL, *y = NULL, pub[1 + 2 * 48];
  size_t xlen = 0, ylen = 0, sz;
  OSSL_PARAM_BLD *bld = NULL;
  EVP_PKEY *pk = NULL;
  if (crv && strcmp(crv, "P-256") == 0) {
    sz = 32, group = "prime256v1";
  } else if (crv && strcmp(crv, "P-384") == 0) {
    sz = 48, group = "secp384r1";
  } else {
    *why = "EC key \"crv\" must be P-256 or P-384";
    return NULL;
  }
  if (jwk_b64(jwk, "x", &x, &xlen) != 0 || jwk_b64(jwk, "y", &y, &ylen) != 0 ||
      xlen != sz || ylen != sz) {
    *why = "EC key \"x\" and \"y\" must be base64url of the curve's size";
    goto out;
  }
  pub[0] = 0x04;
  memcpy(pub + 1, x, sz);
  memcpy(pub + 1 + sz, y, sz);
  bld = OSSL_PARAM_BLD_new();
  if (!bld ||
      !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                       0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                        1 + 2 * sz)) {
    OSSL_PARAM_BLD_free(bld);
    *why = "out of memory";
    goto out;
  }
  pk = pkey_from_params("EC", bld);
  if (pk) {
    /* The point must lie on the curve and in the prime-order subgroup. */
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    if (!pc || EVP_PKEY_public_check(pc) != 1) {
      EVP_PKEY_free(pk);
      pk = NULL;
    }
    EVP_PKEY_CTX_free(pc);
  }
  if (!pk)
    *why = "EC public point is not valid for the curve";
  *ec_bytes = sz;
out:
  free(x);
  free(y);
  return pk;
}

/* OKP JWK: crv Ed25519 and a 32-byte x. */
static EVP_PKEY *jwk_okp(json_t *jwk, const char **why) {
  const char *crv = json_string_value(json_object_get(jwk, "crv"));
  unsigned char *x = NULL;
  size_t xlen = 0;
  EVP_PKEY *pk = NULL;
  if (!crv || strcmp(crv, "Ed25519") != 0) {
    *why = "OKP key \"crv\" must be Ed25519";
    return NULL;
  }
  if (jwk_b64(jwk, "x", &x, &xlen) != 0 || xlen != 32) {
    *why = "OKP key \"x\" must be 32 bytes of base64url";
    free(x);
    return NULL;
  }
  pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xlen);
  if (!pk)
    *why = "unusable Ed25519 key";
  free(x);
  return pk;
}

/* The algorithm a JWK "alg" names, if it fits the key; NULL otherwise. */
static const jwt_alg *jwk_alg_for(const char *name, const jwt_key *key) {
  const jwt_alg *a;
  if (strcmp(name, "Ed25519") == 0) /* RFC 9864 fully specified name */
    name = "EdDSA";
  a = find_alg(name);
  if (!a || a->fam != key->fam ||
      (a->fam == FAM_EC && a->ec_bytes != key->ec_bytes))
    return NULL;
  return a;
}

/* Describe JWK number i for error messages: its index and, if it has a
 * printable kid, the kid (truncated; a kid names a key, it is no secret). */
static void jwk_label(char *out, size_t cap, size_t i, const char *kid) {
  char safe[JWT_KID_ECHO + 4];
  size_t n = 0;
  if (!kid) {
    snprintf(out, cap, "JWKS key %zu", i);
    return;
  }
  for (; kid[n] && n < JWT_KID_ECHO; n++)
    safe[n] = (kid[n] >= 0x20 && kid[n] < 0x7f && kid[n] != '"') ? kid[n] : '?';
  safe[n] = '\0';
  if (kid[n])
    memcpy(safe + n, "...", 4);
  snprintf(out, cap, "JWKS key %zu (kid \"%s\")", i, safe);
}

static int load_jwk(srv_jwt_keys *k, json_t *jwk, size_t i, char *err,
                    size_t errcap) {
  char label[JWT_KID_ECHO + 64];
  const char *why = NULL;
  jwt_key key = {0};
  json_t *kidv = json_object_get(jwk, "kid");
  json_t *usev = json_object_get(jwk, "use");
  json_t *algv = json_object_get(jwk, "alg");
  json_t *ktyv = json_object_get(jwk, "kty");
  const char *kty;

  jwk_label(label, sizeof label, i, json_string_value(kidv));
  if (!json_is_object(jwk)) {
    set_err(err, errcap, "%s: not a JSON object", label);
    return -1;
  }
  if ((kidv && !json_is_string(kidv)) || (usev && !json_is_string(usev)) ||
      (algv && !json_is_string(algv))) {
    set_err(err, errcap, "%s: \"kid\", \"use\" and \"alg\" must be strings",
            label);
    return -1;
  }
  /* Keys published for encryption are not ours to use. */
  if (usev && strcmp(json_string_value(usev), "sig") != 0)
    return 0;
  if (!json_is_string(ktyv)) {
    set_err(err, errcap, "%s: missing \"kty\"", label);
    return -1;
  }
  kty = json_string_value(ktyv);
  if (strcmp(kty, "RSA") == 0) {
    key.fam = FAM_RSA;
    key.pkey = jwk_rsa(jwk, &why);
  } else if (strcmp(kty, "EC") == 0) {
    key.fam = FAM_EC;
    key.pkey = jwk_ec(jwk, &key.ec_bytes, &why);
  } else if (strcmp(kty, "OKP") == 0) {
    key.fam = FAM_ED;
    key.pkey = jwk_okp(jwk, &why);
  } else {
    set_err(err, errcap, "%s: unsupported \"kty\" (RSA, EC or OKP)", label);
    return -1;
  }
  if (!key.pkey) {
    set_err(err, errcap, "%s: %s", label, why ? why : "unusable key");
    return -1;
  }
  if (algv) {
    key.only = jwk_alg_for(json_string_value(algv), &key);
    if (!key.only) {
      set_err(err, errcap, "%s: \"alg\" is not supported for this key", label);
      EVP_PKEY_free(key.pkey);
      return -1;
    }
  }
  if (kidv && !(key.kid = strdup(json_string_value(kidv)))) {
    EVP_PKEY_free(key.pkey);
    set_err(err, errcap, "%s: out of memory", label);
    return -1;
  }
  if (add_key(k, &key) != 0) {
    EVP_PKEY_free(key.pkey);
    free(key.kid);
    set_err(err, errcap, "%s: out of memory", label);
    return -1;
  }
  return 0;
}

static int load_jwks(srv_jwt_keys *k, const char *text, char *err,
                     size_t errcap) {
  json_error_t jerr;
  json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
  json_t *arr;
  int rc = 0;
  if (!doc) {
    /* jerr.text may quote the input (key material): report only where. */
    set_err(err, errcap, "JWKS: invalid JSON at line %d column %d", jerr.line,
            jerr.column);
    return -1;
  }
  arr = json_object_get(doc, "keys");
  if (!json_is_array(arr)) {
    set_err(err, errcap, "JWKS: expected an object with a \"keys\" array");
    json_decref(doc);
    return -1;
  }
  for (size_t i = 0; i < json_array_size(arr) && rc == 0; i++)
    rc = load_jwk(k, json_array_get(arr, i), i, err, errcap);
  json_decref(doc);
  k->have_jwks = 1;
  return rc;
}

srv_jwt_keys *srv_jwt_keys_new(const char *hmac_secret, const char *rsa_pem,
                               const char *ecdsa_pem, const char *jwks_json,
                               char *err, size_t errcap) {
  srv_jwt_keys *k = calloc(1, sizeof *k);
  int rc = 0;
  set_err(err, errcap, "%s", "");
  if (!k) {
    set_err(err, errcap, "out of memory");
    return NULL;
  }
  ERR_set_mark();
  if (hmac_secret && *hmac_secret) {
    k->secret_len = strlen(hmac_secret);
    k->secret = malloc(k->secret_len);
    if (!k->secret) {
      set_err(err, errcap, "HMAC secret: out of memory");
      rc = -1;
    } else {
      memcpy(k->secret, hmac_secret, k->secret_len);
    }
  }
  if (rc == 0 && !is_blank(rsa_pem))
    rc = load_rsa_pem(k, rsa_pem, err, errcap);
  if (rc == 0 && !is_blank(ecdsa_pem))
    rc = load_ec_pem(k, ecdsa_pem, err, errcap);
  if (rc == 0 && !is_blank(jwks_json))
    rc = load_jwks(k, jwks_json, err, errcap);
  ERR_pop_to_mark();
  if (rc != 0) {
    srv_jwt_keys_free(k);
    return NULL;
  }
  return k;
}

void srv_jwt_keys_free(srv_jwt_keys *k) {
  if (!k)
    return;
  if (k->secret) {
    OPENSSL_cleanse(k->secret, k->secret_len);
    free(k->secret);
  }
  for (size_t i = 0; i < k->nkeys; i++) {
    EVP_PKEY_free(k->keys[i].pkey);
    free(k->keys[i].kid);
  }
  free(k->keys);
  free(k);
}

/* ---- verification -------------------------------------------------------- */

static srv_jwt_status verify_hmac(const srv_jwt_keys *k, const jwt_alg *a,
                                  const unsigned char *data, size_t dlen,
                                  const unsigned char *sig, size_t slen) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t maclen = 0;
  srv_jwt_status st = SRV_JWT_SIGNATURE;
  if (!k || !k->secret)
    return SRV_JWT_ALG;
  if (EVP_Q_mac(NULL, "HMAC", NULL, a->md, NULL, k->secret, k->secret_len, data,
                dlen, mac, sizeof mac, &maclen) &&
      slen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0)
    st = SRV_JWT_OK;
  OPENSSL_cleanse(mac, sizeof mac);
  return st;
}

static int key_fits(const jwt_key *key, const jwt_alg *a) {
  if (key->fam != a->fam)
    return 0;
  if (a->fam == FAM_EC && key->ec_bytes != a->ec_bytes)
    return 0;
  return !key->only || key->only == a;
}

static int digest_verify(EVP_PKEY *pk, const jwt_alg *a,
                         const unsigned char *sig, size_t slen,
                         const unsigned char *data, size_t dlen) {
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pc = NULL;
  int ok = 0;
  if (c && EVP_DigestVerifyInit_ex(c, &pc, a->md, NULL, NULL, pk, NULL) == 1 &&
      (a->fam != FAM_RSA ||
       EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0))
    ok = EVP_DigestVerify(c, sig, slen, data, dlen) == 1;
  EVP_MD_CTX_free(c);
  return ok;
}

/* JOSE ECDSA signatures are R||S, fixed width; OpenSSL wants DER. */
static unsigned char *ecdsa_raw_to_der(const unsigned char *sig, size_t n,
                                       size_t *derlen) {
  ECDSA_SIG *es = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(sig, (int)n, NULL),
         *s = BN_bin2bn(sig + n, (int)n, NULL);
  unsigned char *der = NULL;
  int len;
  if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return NULL;
  }
  len = i2d_ECDSA_SIG(es, &der);
  ECDSA_SIG_free(es);
  if (len <= 0) {
    OPENSSL_free(der);
    return NULL;
  }
  *derlen = (size_t)len;
  return der;
}

static srv_jwt_status verify_pubkey(const srv_jwt_keys *k, const jwt_alg *a,
                                    const char *kid, const unsigned char *data,
                                    size_t dlen, const unsigned char *sig,
                                    size_t slen) {
  const unsigned char *vsig = sig;
  unsigned char *der = NULL;
  size_t vlen = slen, fitting = 0;
  srv_jwt_status st = SRV_JWT_SIGNATURE;
  /* A kid selects among JWKS keys; without a JWKS it carries no meaning
   * for the configured PEM keys and is ignored. */
  int by_kid = kid && k && k->have_jwks;

  for (size_t i = 0; k && i < k->nkeys; i++)
    fitting += key_fits(&k->keys[i], a);
  if (!fitting)
    return SRV_JWT_ALG;

  if (a->fam == FAM_EC) {
    if (slen != 2 * a->ec_bytes)
      return SRV_JWT_SIGNATURE;
    der = ecdsa_raw_to_der(sig, a->ec_bytes, &vlen);
    if (!der)
      return SRV_JWT_SIGNATURE;
    vsig = der;
  } else if (a->fam == FAM_ED && slen != 64) {
    return SRV_JWT_SIGNATURE;
  }

  for (size_t i = 0; i < k->nkeys && st != SRV_JWT_OK; i++) {
    const jwt_key *key = &k->keys[i];
    if (!key_fits(key, a))
      continue;
    if (by_kid && (!key->kid || strcmp(key->kid, kid) != 0))
      continue;
    /* RFC 7518 3.3: the signature is exactly as long as the modulus. */
    if (a->fam == FAM_RSA && slen != (size_t)EVP_PKEY_get_size(key->pkey))
      continue;
    if (digest_verify(key->pkey, a, vsig, vlen, data, dlen))
      st = SRV_JWT_OK;
  }
  OPENSSL_free(der);
  return st;
}

/* Type of a registered claim: 0 fine, -1 wrong type. */
static int claim_types_ok(json_t *pl) {
  static const char *const strings[] = {"iss", "sub", "jti"};
  static const char *const numbers[] = {"exp", "nbf", "iat"};
  json_t *v;
  for (size_t i = 0; i < 3; i++) {
    v = json_object_get(pl, strings[i]);
    if (v && !json_is_string(v))
      return -1;
    v = json_object_get(pl, numbers[i]);
    if (v && !json_is_number(v))
      return -1;
  }
  v = json_object_get(pl, "aud");
  if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++)
      if (!json_is_string(json_array_get(v, i)))
        return -1;
  } else if (v && !json_is_string(v)) {
    return -1;
  }
  return 0;
}

/* Compare a JSON number with now: -1 below, 0 equal, 1 above. */
static int cmp_time(json_t *v, int64_t now) {
  if (json_is_integer(v)) {
    json_int_t t = json_integer_value(v);
    return t < now ? -1 : t > now;
  }
  double t = json_real_value(v), n = (double)now;
  return t < n ? -1 : t > n;
}

static int aud_contains(json_t *aud, const char *want) {
  if (json_is_string(aud))
    return strcmp(json_string_value(aud), want) == 0;
  for (size_t i = 0; i < json_array_size(aud); i++)
    if (strcmp(json_string_value(json_array_get(aud, i)), want) == 0)
      return 1;
  return 0;
}

static srv_jwt_status check_claims(json_t *pl, int64_t now,
                                   const char *audience, const char *issuer) {
  json_t *exp = json_object_get(pl, "exp"), *nbf = json_object_get(pl, "nbf");
  if (claim_types_ok(pl) != 0)
    return SRV_JWT_MALFORMED;
  if ((exp && cmp_time(exp, now) <= 0) || (nbf && cmp_time(nbf, now) > 0))
    return SRV_JWT_EXPIRED;
  if (audience && *audience &&
      !aud_contains(json_object_get(pl, "aud"), audience))
    return SRV_JWT_AUDIENCE;
  if (issuer && *issuer) {
    const char *iss = json_string_value(json_object_get(pl, "iss"));
    if (!iss || strcmp(iss, issuer) != 0)
      return SRV_JWT_ISSUER;
  }
  return SRV_JWT_OK;
}

/* Parse the header; on success *alg is set (NULL status ALG). */
static srv_jwt_status parse_header(const unsigned char *h, size_t hlen,
                                   const jwt_alg **alg, char **kid) {
  json_t *hdr = json_loadb((const char *)h, hlen, JSON_REJECT_DUPLICATES, NULL);
  json_t *algv, *kidv, *typv;
  srv_jwt_status st = SRV_JWT_OK;
  *alg = NULL;
  *kid = NULL;
  if (!json_is_object(hdr)) {
    json_decref(hdr);
    return SRV_JWT_MALFORMED;
  }
  algv = json_object_get(hdr, "alg");
  kidv = json_object_get(hdr, "kid");
  typv = json_object_get(hdr, "typ");
  if ((algv && !json_is_string(algv)) || (kidv && !json_is_string(kidv)) ||
      (typv && !json_is_string(typv)) ||
      /* No critical extension is understood (RFC 7515 4.1.11). */
      json_object_get(hdr, "crit")) {
    st = SRV_JWT_MALFORMED;
  } else if (!algv || !(*alg = find_alg(json_string_value(algv)))) {
    st = SRV_JWT_ALG;
  } else if (kidv && !(*kid = strdup(json_string_value(kidv)))) {
    st = SRV_JWT_MALFORMED;
  }
  json_decref(hdr);
  return st;
}

srv_jwt_status srv_jwt_verify(const srv_jwt_keys *k, const char *token,
                              int64_t now, const char *audience,
                              const char *issuer, json_t **claims) {
  const char *d1, *d2;
  size_t len, hlen = 0, plen = 0, slen = 0;
  unsigned char *buf, *h, *p, *s;
  const jwt_alg *alg;
  char *kid = NULL;
  json_t *pl = NULL;
  srv_jwt_status st;

  if (claims)
    *claims = NULL;
  if (!token)
    return SRV_JWT_MALFORMED;
  len = strnlen(token, JWT_MAX_TOKEN + 1);
  if (len > JWT_MAX_TOKEN)
    return SRV_JWT_MALFORMED;
  d1 = memchr(token, '.', len);
  d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
  if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
    return SRV_JWT_MALFORMED;

  /* One buffer holds all three decoded parts (each at most 3/4 of its
   * text). */
  buf = malloc(len + 3);
  if (!buf)
    return SRV_JWT_MALFORMED;
  h = buf;
  if (b64url_decode(token, (size_t)(d1 - token), h, &hlen) != 0)
    goto malformed;
  p = h + hlen + 1;
  if (b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), p, &plen) != 0)
    goto malformed;
  s = p + plen + 1;
  if (b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - token), s, &slen) != 0)
    goto malformed;

  st = parse_header(h, hlen, &alg, &kid);
  if (st != SRV_JWT_OK)
    goto out;

  ERR_set_mark();
  if (alg->fam == FAM_HMAC)
    st = verify_hmac(k, alg, (const unsigned char *)token, (size_t)(d2 - token),
                     s, slen);
  else
    st = verify_pubkey(k, alg, kid, (const unsigned char *)token,
                       (size_t)(d2 - token), s, slen);
  ERR_pop_to_mark();
  if (st != SRV_JWT_OK)
    goto out;

  pl = json_loadb((const char *)p, plen, JSON_REJECT_DUPLICATES, NULL);
  if (!json_is_object(pl))
    goto malformed;
  st = check_claims(pl, now, audience, issuer);
  if (st == SRV_JWT_OK || st == SRV_JWT_EXPIRED) {
    if (claims) {
      *claims = pl;
      pl = NULL;
    }
  }
  goto out;

malformed:
  st = SRV_JWT_MALFORMED;
out:
  json_decref(pl);
  free(kid);
  free(buf);
  return st;
}

const char *srv_jwt_strerror(srv_jwt_status st) {
  switch (st) {
  case SRV_JWT_OK:
    return "ok";
  case SRV_JWT_MALFORMED:
    return "malformed token";
  case SRV_JWT_ALG:
    return "unsupported token algorithm";
  case SRV_JWT_SIGNATURE:
    return "invalid token signature";
  case SRV_JWT_EXPIRED:
    return "token expired";
  case SRV_JWT_AUDIENCE:
    return "invalid token audience";
  case SRV_JWT_ISSUER:
    return "invalid token issuer";
  }
  return "invalid token";
}
