/* SPDX-License-Identifier: MIT */
/* Token keys from the configuration, and HMAC token signing for the
 * operator tools (prefix tk_). The server and `holdfast checktoken` build
 * the same key set from the same settings. */
#ifndef SRV_TOKENKEYS_H
#define SRV_TOKENKEYS_H

#include <stddef.h>

#include "auth/jwt.h"
#include "config.h"

/* The key set of client.token.* (hmac_secret_key, rsa_public_key,
 * ecdsa_public_key, jwks_file). NULL with err "" when no key is configured;
 * NULL with a reason in err when one is unusable. */
srv_jwt_keys *tk_keys(const srv_config *cfg, char *err, size_t errcap);

/* A compact JWT: header {"alg":alg,"typ":"JWT"}, the payload JSON as is,
 * HMAC with secret. alg: HS256, HS384 or HS512. 0, or -1 (bad alg, too
 * long for cap). */
int tk_sign_hmac(const char *alg, const char *secret, const char *payload, char *out,
                 size_t cap);

#endif
