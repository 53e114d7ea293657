/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the fossil delta codec: the decoder gets arbitrary
 * patches against a fixed source (it must refuse or apply within bounds,
 * never read or write outside them); and the input split in two is used as
 * (source, target) for the encoder, whose patch must apply back to exactly
 * the target and, for valid UTF-8 inputs, be valid UTF-8 itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf/fossil.h"
#include "hf/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                          \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_fossil: %s:%d: invariant failed: %s\n", __FILE__,  \
              __LINE__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static const uint8_t source[] =
    "{\"items\":[{\"id\":1,\"name\":\"alpha\"},{\"id\":2,\"name\":\"d\xc3\xa9lta\"}],"
    "\"text\":\"the quick brown fox jumps over the lazy dog\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* 1: decode an arbitrary patch */
  uint8_t out[4096];
  ssize_t announced = hf_fossil_target_len(data, size);
  ssize_t n = hf_fossil_apply(source, sizeof source - 1, data, size, out, sizeof out);
  REQUIRE(n < 0 || (announced == n && (size_t)n <= sizeof out));

  /* 2: encode (first byte picks the split) and apply back */
  if (size < 1 || size > 8192)
    return 0;
  size_t cut = size > 1 ? data[0] * (size - 1) / 255 : 0;
  const uint8_t *src = data + 1, *tgt = data + 1 + cut;
  size_t slen = cut, tlen = size - 1 - cut;
  uint8_t *patch = malloc(hf_fossil_bound(tlen));
  void *scratch = malloc(hf_fossil_scratch(slen));
  uint8_t *back = malloc(tlen + 1);
  REQUIRE(patch && scratch && back);
  size_t pl = hf_fossil_encode(src, slen, tgt, tlen, patch, scratch);
  REQUIRE(pl <= hf_fossil_bound(tlen));
  ssize_t m = hf_fossil_apply(src, slen, patch, pl, back, tlen);
  REQUIRE(m == (ssize_t)tlen && memcmp(back, tgt, tlen) == 0);
  if (hf_utf8_valid(src, slen) && hf_utf8_valid(tgt, tlen))
    REQUIRE(hf_utf8_valid(patch, pl));
  free(patch);
  free(scratch);
  free(back);
  return 0;
}
