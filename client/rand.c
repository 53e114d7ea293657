/* SPDX-License-Identifier: MIT */
/* The client's CSPRNG for masking keys and handshake nonces: a ChaCha20
 * keystream from OpenSSL, keyed from getrandom(2) and re-keyed regularly. */
#include <string.h>
#include <sys/random.h>

#include "client_impl.h"
#include "hf/err.h"

/* 2^19 refills of 512 bytes = 256 MiB of keystream per key. */
#define REKEY_AFTER (1u << 19)

static int seed(hf__rand *r) {
  uint8_t k[48]; /* 32-byte key, 16-byte counter + nonce */
  size_t got = 0;
  while (got < sizeof k) {
    ssize_t n = getrandom(k + got, sizeof k - got, 0);
    if (n <= 0)
      return HF_EIO;
    got += (size_t)n;
  }
  int ok = EVP_EncryptInit_ex(r->ctx, EVP_chacha20(), NULL, k, k + 32) == 1;
  memset(k, 0, sizeof k);
  r->refills = 0;
  return ok ? 0 : HF_EIO;
}

static void refill(hf__rand *r) {
  static const uint8_t zero[sizeof r->buf];
  int n = 0;
  if (++r->refills >= REKEY_AFTER)
    (void)seed(r); /* on failure the current key simply goes on */
  EVP_EncryptUpdate(r->ctx, r->buf, &n, zero, (int)sizeof zero);
  r->pos = 0;
}

int hf__rand_init(hf__rand *r) {
  memset(r, 0, sizeof *r);
  r->ctx = EVP_CIPHER_CTX_new();
  if (!r->ctx)
    return HF_ENOMEM;
  int rc = seed(r);
  if (rc < 0) {
    hf__rand_free(r);
    return rc;
  }
  r->pos = sizeof r->buf; /* empty: the first use refills */
  return 0;
}

void hf__rand_bytes(hf__rand *r, void *out, size_t n) {
  uint8_t *o = out;
  while (n) {
    if (r->pos == sizeof r->buf)
      refill(r);
    size_t k = sizeof r->buf - r->pos;
    if (k > n)
      k = n;
    memcpy(o, r->buf + r->pos, k);
    memset(r->buf + r->pos, 0, k); /* used bytes never linger */
    r->pos += k;
    o += k;
    n -= k;
  }
}

uint32_t hf__rand_u32(hf__rand *r) {
  uint32_t v;
  hf__rand_bytes(r, &v, sizeof v);
  return v;
}

void hf__rand_free(hf__rand *r) {
  EVP_CIPHER_CTX_free(r->ctx);
  memset(r, 0, sizeof *r);
}
