/* SPDX-License-Identifier: MIT */
/* libFuzzer target for permessage-deflate (lib/deflate.c), the inflate path
 * a peer controls. The first input byte picks the size limit and how the
 * rest is split into frames; the rest is one compressed message. Checked
 * with __builtin_trap against a reference inflate of the whole message by
 * plain zlib calls (large buffer, no splitting):
 *   - the output buffer never grows past limit + 1 bytes;
 *   - success means the reference succeeded with the same bytes, within the
 *     limit; HF_ETOOBIG means the reference produced more than the limit;
 *     HF_EPROTO means the reference found the data invalid;
 *   - a reference success within the limit is a success for us;
 *   - after an error, a reset inflater decodes a known message;
 *   - the input bytes as an extension header: negotiation never reads out of
 *     bounds, and an accepted offer's response passes the client check;
 *   - compressing the input and inflating it gives the input back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "hf/deflate.h"
#include "hf/err.h"

#define CHECK(c)                                                               \
  do {                                                                         \
    if (!(c))                                                                  \
      __builtin_trap();                                                        \
  } while (0)

#define REF_CAP (1u << 20)

/* Reference: the whole message plus the tail, inflated at once. Returns 0
 * ok, -1 invalid data; *olen bytes produced (capped at REF_CAP: then *big). */
static int ref_inflate(const uint8_t *in, size_t len, uint8_t *out, size_t *olen,
                       int *big) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, -15) != Z_OK)
    __builtin_trap();
  uint8_t *msg = malloc(len + 4);
  memcpy(msg, in, len);
  memcpy(msg + len, "\x00\x00\xff\xff", 4);
  z.next_in = msg;
  z.avail_in = (uInt)(len + 4);
  z.next_out = out;
  z.avail_out = REF_CAP;
  int r = inflate(&z, Z_SYNC_FLUSH);
  *olen = REF_CAP - z.avail_out;
  *big = z.avail_out == 0;
  int rc = (r == Z_OK || r == Z_STREAM_END || (r == Z_BUF_ERROR && z.avail_out)) ? 0 : -1;
  inflateEnd(&z);
  free(msg);
  return rc;
}

static void negotiation(const uint8_t *data, size_t size) {
  char *v = malloc(size ? size : 1);
  memcpy(v, data, size);
  hf_deflate_config cfg = {size & 1, (uint8_t)(9 + size % 7), (uint8_t)(8 + size % 8)};
  hf_deflate_params p;
  if (hf_deflate_negotiate_value(&cfg, v, size, &p) == 1) {
    CHECK(p.server_no_context_takeover == 1);
    CHECK(p.server_max_window_bits >= 9 && p.server_max_window_bits <= 15);
    CHECK(p.client_max_window_bits >= 8 && p.client_max_window_bits <= 15);
    char resp[160];
    int n = hf_deflate_response(&p, resp, sizeof resp);
    CHECK(n > 0);
    hf_deflate_config client = {0, 15, 15};
    hf_deflate_params cp;
    CHECK(hf_deflate_check_response(&client, resp, (size_t)n, &cp) == 1);
    CHECK(cp.client_no_context_takeover == p.client_no_context_takeover);
  }
  hf_deflate_config client = {0, (uint8_t)(8 + size % 8), 15};
  hf_deflate_params cp;
  int r = hf_deflate_check_response(&client, v, size, &cp);
  CHECK(r == 0 || r == 1 || r == HF_EPROTO);
  free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t opt = data[0];
  const uint8_t *in = data + 1;
  size_t len = size - 1;
  size_t limit = (opt & 0x0f) == 0x0f ? REF_CAP - 1 : (size_t)(opt & 0x0f) * 517;
  size_t nfrag = 1 + ((opt >> 4) & 7);

  static uint8_t *ref;
  if (!ref)
    ref = malloc(REF_CAP);
  size_t rlen;
  int big;
  int rr = ref_inflate(in, len, ref, &rlen, &big);

  hf_inflate *z = hf_inflate_new(15);
  CHECK(z);
  uint8_t *out = NULL;
  size_t olen = 0, ocap = 0;
  int r = 0;
  size_t step = len / nfrag;
  for (size_t i = 0; i < nfrag && r == 0; i++) {
    size_t a = i * step, b = i + 1 == nfrag ? len : (i + 1) * step;
    r = hf_inflate_feed(z, in + a, b - a, i + 1 == nfrag, &out, &olen, &ocap, limit);
    CHECK(ocap <= limit + 1);
    CHECK(olen <= ocap);
  }
  if (r == 0) {
    CHECK(rr == 0 && !big && olen == rlen && olen <= limit);
    CHECK(olen == 0 || memcmp(out, ref, olen) == 0);
  } else if (r == HF_ETOOBIG) {
    CHECK(rlen > limit || big);
  } else {
    CHECK(r == HF_EPROTO);
    CHECK(rr < 0);
  }
  if (rr == 0 && !big && rlen <= limit)
    CHECK(r == 0);
  free(out);

  /* the inflater is usable again after a reset */
  hf_inflate_reset(z);
  out = NULL;
  olen = ocap = 0;
  static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  CHECK(hf_inflate_feed(z, hello, sizeof hello, 1, &out, &olen, &ocap, 64) == 0);
  CHECK(olen == 5 && memcmp(out, "Hello", 5) == 0);
  free(out);
  hf_inflate_free(z);

  negotiation(in, len);

  /* compress the input, inflate it back */
  hf_deflate_enc *e = hf_deflate_thread_enc(1 + opt % 9, 1 + (opt >> 4) % 9, 9 + opt % 7);
  CHECK(e);
  size_t bound = hf_deflate_bound(len);
  uint8_t *c = malloc(bound);
  long cl = hf_deflate_compress(e, 1, in, len, c, bound);
  CHECK(cl >= 0);
  hf_inflate *t = hf_inflate_thread();
  CHECK(t);
  hf_inflate_reset(t);
  out = NULL;
  olen = ocap = 0;
  CHECK(hf_inflate_feed(t, c, (size_t)cl, 1, &out, &olen, &ocap, len) == 0);
  CHECK(olen == len && (len == 0 || memcmp(out, in, len) == 0));
  free(out);
  free(c);
  return 0;
}
