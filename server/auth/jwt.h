/* SPDX-License-Identifier: MIT */
/* JSON Web Token verification (RFC 7519/7515, compact form) for connection
 * and subscription tokens: HS256/384/512 (HMAC), RS256/384/512 (RSA
 * PKCS#1 v1.5), ES256/384 (ECDSA, raw R||S signatures), EdDSA (Ed25519),
 * keys from configuration (secret, PEM public keys) or a JWKS document.
 * All cryptography is OpenSSL's; secrets are compared in constant time.
 * Tokens and keys are never logged by this module. */
#ifndef SRV_JWT_H
#define SRV_JWT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct srv_jwt_keys srv_jwt_keys;

/* Build a key set. Every argument may be NULL/empty (that family of
 * algorithms is then rejected): hmac_secret (raw bytes of the shared
 * secret, used as is), rsa_pem (a PEM public key or certificate), ecdsa_pem
 * (a PEM EC public key, P-256 or P-384), jwks_json (a JWKS document text:
 * {"keys":[{kty:RSA,n,e}|{kty:EC,crv,x,y}|{kty:OKP,crv:Ed25519,x}, with
 * optional kid/alg/use]}; keys with a "use" other than "sig" are skipped, an
 * "alg" restricts the key to that algorithm). On error returns NULL and
 * writes a short English reason (naming which key is bad by index and kid,
 * never its content) to err. The key set is immutable and may be shared by
 * threads. */
srv_jwt_keys *srv_jwt_keys_new(const char *hmac_secret, const char *rsa_pem,
                             const char *ecdsa_pem, const char *jwks_json,
                             char *err, size_t errcap);
void srv_jwt_keys_free(srv_jwt_keys *k);

typedef enum {
  SRV_JWT_OK = 0,
  SRV_JWT_MALFORMED,  /* not three base64url parts, bad JSON, bad types */
  SRV_JWT_ALG,        /* alg missing, "none", unknown, or no key for it */
  SRV_JWT_SIGNATURE,  /* signature does not verify with any matching key */
  SRV_JWT_EXPIRED,    /* exp <= now, or nbf > now (Centrifugo: "expired") */
  SRV_JWT_AUDIENCE,   /* aud does not contain the configured audience */
  SRV_JWT_ISSUER      /* iss differs from the configured issuer */
} srv_jwt_status;

/* Verify token (NUL-terminated, at most 16 KiB) at time now (Unix
 * seconds). audience and issuer are checked only when not NULL/empty. On
 * SRV_JWT_OK (and also on SRV_JWT_EXPIRED, so the caller can tell who it
 * was), *claims receives the decoded payload object (caller must
 * json_decref); otherwise *claims is set to NULL. claims may be NULL.
 * Key choice: HS* use the secret; for the other algorithms, when a JWKS was
 * configured and the header has a kid, only JWKS keys with that kid are
 * tried, otherwise every key of the algorithm's family (and curve) is tried,
 * PEM keys first. The signature is always verified before the payload is
 * parsed; registered claims of the wrong type (exp/nbf/iat not numbers,
 * iss/sub/jti not strings, aud not a string or array of strings) give
 * SRV_JWT_MALFORMED. */
srv_jwt_status srv_jwt_verify(const srv_jwt_keys *k, const char *token,
                            int64_t now, const char *audience,
                            const char *issuer, json_t **claims);

/* Short English text for a status ("token expired", ...). */
const char *srv_jwt_strerror(srv_jwt_status st);

#endif
