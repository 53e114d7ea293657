/* SPDX-License-Identifier: MIT */
/* Fossil delta codec: round trips over random edits (ASCII and multi-byte
 * UTF-8), patches stay valid UTF-8, patches are smaller than the target for
 * small edits, and the decoder refuses every kind of broken patch. */
#include <stdlib.h>
#include <string.h>

#include "hf/fossil.h"
#include "hf/utf8.h"
#include "test.h"

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return (uint32_t)rs;
}

static size_t encode(const uint8_t *s, size_t sl, const uint8_t *t, size_t tl,
                     uint8_t *out) {
  void *scratch = malloc(hf_fossil_scratch(sl));
  size_t n = hf_fossil_encode(s, sl, t, tl, out, scratch);
  free(scratch);
  return n;
}

static int roundtrip(const uint8_t *s, size_t sl, const uint8_t *t, size_t tl,
                     size_t *plen) {
  uint8_t *p = malloc(hf_fossil_bound(tl));
  size_t n = encode(s, sl, t, tl, p);
  *plen = n;
  uint8_t *o = malloc(tl + 1);
  ssize_t r = hf_fossil_apply(s, sl, p, n, o, tl);
  int ok = r == (ssize_t)tl && memcmp(o, t, tl) == 0 &&
           hf_fossil_target_len(p, n) == (ssize_t)tl;
  if (ok && hf_utf8_valid(s, sl) && hf_utf8_valid(t, tl))
    ok = hf_utf8_valid(p, n); /* literals never split a character */
  free(p);
  free(o);
  return ok;
}

static void test_empty_and_tiny(void) {
  size_t pl;
  CHECK(roundtrip((const uint8_t *)"", 0, (const uint8_t *)"", 0, &pl));
  CHECK(roundtrip((const uint8_t *)"abc", 3, (const uint8_t *)"", 0, &pl));
  CHECK(roundtrip((const uint8_t *)"", 0, (const uint8_t *)"hello", 5, &pl));
  CHECK(roundtrip((const uint8_t *)"hello", 5, (const uint8_t *)"hello", 5, &pl));
}

static void test_checksum_layout(void) {
  /* bytes at positions 0,1,2,3 weigh <<24, <<16, <<8, <<0 */
  const uint8_t a[] = {1, 2, 3, 4};
  CHECK_INT(hf_fossil_checksum(a, 4), 0x01020304);
  const uint8_t b[] = {1, 2, 3, 4, 5, 6};
  CHECK_INT(hf_fossil_checksum(b, 6), 0x01020304u + 0x05060000u);
}

static void make_doc(uint8_t *d, size_t n, int utf8) {
  static const char *words[] = {"alpha", "beta", "\"gamma\"", "d\xc3\xa9lta",
                                "\xe2\x82\xac", "\xf0\x9f\x98\x80", "{x:1}", ", "};
  size_t o = 0;
  while (o < n) {
    const char *w = words[rnd() % (utf8 ? 8 : 4)];
    if (!utf8 && w[0] & 0x80)
      w = "ascii";
    size_t l = strlen(w);
    if (o + l > n) {
      memset(d + o, 'z', n - o);
      break;
    }
    memcpy(d + o, w, l);
    o += l;
  }
}

/* Replace, insert or delete a run of whole words' worth of bytes. */
static size_t mutate(const uint8_t *s, size_t sl, uint8_t *t, int utf8) {
  size_t at = sl ? rnd() % sl : 0;
  while (at < sl && (s[at] & 0xC0) == 0x80)
    at++;
  uint8_t ins[64];
  make_doc(ins, 8 + rnd() % 40, utf8);
  size_t il = 8 + rnd() % 40;
  while (il && (ins[il - 1] & 0x80))
    il--; /* keep the insert whole characters (ends on ASCII) */
  size_t del = rnd() % 32, end = at + del > sl ? sl : at + del;
  while (end < sl && (s[end] & 0xC0) == 0x80)
    end++;
  memcpy(t, s, at);
  memcpy(t + at, ins, il);
  memcpy(t + at + il, s + end, sl - end);
  return at + il + sl - end;
}

static void test_random_edits(void) {
  for (int utf8 = 0; utf8 < 2; utf8++) {
    size_t sl = 10240;
    uint8_t *s = malloc(sl + 4096), *t = malloc(sl + 4096);
    make_doc(s, sl, utf8);
    size_t total_patch = 0, total_target = 0;
    for (int i = 0; i < 300; i++) {
      size_t tl = mutate(s, sl, t, utf8);
      size_t pl;
      if (!roundtrip(s, sl, t, tl, &pl)) {
        CHECK(!"round trip failed");
        break;
      }
      total_patch += pl;
      total_target += tl;
      memcpy(s, t, tl); /* the next edit applies to this version */
      sl = tl > 12000 ? 12000 : tl;
    }
    /* small edits of a 10 KiB document: patches are a few % of it */
    CHECK(total_patch * 10 < total_target);
    free(s);
    free(t);
  }
}

static void test_unrelated_inputs(void) {
  uint8_t s[4000], t[3000];
  for (size_t i = 0; i < sizeof s; i++)
    s[i] = (uint8_t)('a' + rnd() % 26);
  for (size_t i = 0; i < sizeof t; i++)
    t[i] = (uint8_t)('A' + rnd() % 26);
  size_t pl;
  CHECK(roundtrip(s, sizeof s, t, sizeof t, &pl));
  CHECK(pl <= hf_fossil_bound(sizeof t));
}

static void test_rejects_broken_patches(void) {
  const uint8_t *src = (const uint8_t *)"0123456789abcdefghij";
  uint8_t out[64];
  const char *bad[] = {
      "",                 /* nothing */
      "5",                /* no newline */
      "5\n5:hello",       /* unterminated */
      "5\n5:hello0;",     /* bad checksum */
      "5\n4:hell;",       /* no checksum number */
      "5\n9@0,",          /* copy beyond the announced size */
      "3\n3@19,",         /* copy past the end of the source */
      "3\n3#0,",          /* unknown operator */
      "3\n9:abc",         /* insert longer than the patch */
      "zzzzzzzzzzzz\n",   /* size overflows */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (hf_fossil_apply(src, 20, (const uint8_t *)bad[i], strlen(bad[i]), out,
                        sizeof out) >= 0)
      HF_T_FAILF("accepted \"%s\"", bad[i]);
  /* a good one, built by hand: copy 10 bytes from 10, insert "XY" */
  uint8_t want[12];
  memcpy(want, "abcdefghijXY", 12);
  char good[64];
  int n = snprintf(good, sizeof good, "C\nA@A,2:XY");
  uint32_t ck = hf_fossil_checksum(want, 12);
  uint8_t enc[16];
  size_t el = 0;
  do {
    enc[el++] = (uint8_t)"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"[ck & 63];
    ck >>= 6;
  } while (ck);
  for (size_t i = el; i > 0; i--)
    good[n++] = (char)enc[i - 1];
  good[n++] = ';';
  CHECK_INT(hf_fossil_apply(src, 20, (const uint8_t *)good, (size_t)n, out, sizeof out), 12);
  CHECK(memcmp(out, want, 12) == 0);
  /* the output cap is respected */
  CHECK_INT(hf_fossil_apply(src, 20, (const uint8_t *)good, (size_t)n, out, 11), -1);
}

int main(void) {
  hf_t_suite = "fossil";
  RUN_TEST(test_empty_and_tiny);
  RUN_TEST(test_checksum_layout);
  RUN_TEST(test_random_edits);
  RUN_TEST(test_unrelated_inputs);
  RUN_TEST(test_rejects_broken_patches);
  TEST_MAIN_END();
}
