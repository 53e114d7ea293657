/* SPDX-License-Identifier: MIT */
/* Unit tests for the incremental UTF-8 validator: RFC 3629 edge cases, state
 * carried across arbitrary splits, fail-fast offsets, and a cross-check of
 * the DFA against an independent decode-and-range-check reference. */
#include <stdint.h>
#include <stdlib.h>

#include "hf/utf8.h"
#include "test.h"

#define U8(s) ((const uint8_t *)(s)), (sizeof(s) - 1)

/* Reference answer for p[0..n): -1 if every byte extends a valid prefix
 * (then *complete says whether it ends on a code point boundary), else the
 * offset of the first byte after which no valid completion exists. Decodes
 * code points and compares intervals, sharing no logic with the DFA. */
static long ref_check(const uint8_t *p, size_t n, int *complete) {
  size_t i = 0;
  *complete = 1;
  while (i < n) {
    uint8_t c = p[i];
    unsigned len;
    uint32_t cp, min;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2, min = 0x80, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, min = 0x800, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, min = 0x10000, cp = c & 0x07;
    } else {
      return (long)i;
    }
    for (unsigned k = 1; k < len; k++) {
      if (i + k >= n) {
        *complete = 0;
        return -1;
      }
      uint8_t b = p[i + k];
      if ((b & 0xC0) != 0x80)
        return (long)(i + k);
      cp = (cp << 6) | (b & 0x3F);
      unsigned rem = 6 * (len - 1 - k);
      uint32_t lo = cp << rem, hi = lo | ((1u << rem) - 1);
      if (hi < min || lo > 0x10FFFF || (lo >= 0xD800 && hi <= 0xDFFF))
        return (long)(i + k);
    }
    i += len;
  }
  return -1;
}

/* Run the DFA on p[0..n) in one call and compare with the reference. */
static int agrees_with_ref(const uint8_t *p, size_t n) {
  int complete;
  long ref = ref_check(p, n, &complete);
  size_t off = (size_t)-1;
  hf_utf8_state st = hf_utf8_feed(HF_UTF8_ACCEPT, p, n, &off);
  if (ref >= 0)
    return st == HF_UTF8_REJECT && off == (size_t)ref;
  if (complete)
    return st == HF_UTF8_ACCEPT;
  return st != HF_UTF8_ACCEPT && st != HF_UTF8_REJECT;
}

static const struct {
  const char *s;
  size_t n;
} valid_samples[] = {
#define V(lit) {lit, sizeof(lit) - 1}
    V(""),
    V("a"),
    V("plain ASCII that is longer than one 8-byte word"),
    V("\x00\x01\x7f"),
    V("\xc2\x80"),             /* U+0080, smallest 2-byte */
    V("\xdf\xbf"),             /* U+07FF, largest 2-byte */
    V("\xe0\xa0\x80"),         /* U+0800, smallest 3-byte */
    V("\xed\x9f\xbf"),         /* U+D7FF, just below the surrogates */
    V("\xee\x80\x80"),         /* U+E000, just above the surrogates */
    V("\xef\xbf\xbf"),         /* U+FFFF */
    V("\xef\xbb\xbf"),         /* BOM is a valid code point */
    V("\xf0\x90\x80\x80"),     /* U+10000, smallest 4-byte */
    V("\xf1\x80\x80\x80"),     /* U+40000 */
    V("\xf3\xbf\xbf\xbf"),     /* U+FFFFF */
    V("\xf4\x8f\xbf\xbf"),     /* U+10FFFF, the largest code point */
    V("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), /* kosme */
    V("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"),
    V("mixed \xe2\x82\xac and \xf0\x9f\x98\x80 and \xd7\x90 after 8 bytes"),
#undef V
};

static void utf8_valid_samples(void) {
  for (size_t i = 0; i < sizeof valid_samples / sizeof valid_samples[0]; i++) {
    const uint8_t *p = (const uint8_t *)valid_samples[i].s;
    size_t n = valid_samples[i].n;
    size_t off = 12345;
    CHECK_INT(hf_utf8_feed(HF_UTF8_ACCEPT, p, n, &off), HF_UTF8_ACCEPT);
    CHECK_INT(off, 12345); /* untouched unless rejected */
    CHECK_INT(hf_utf8_valid(p, n), 1);
    CHECK(agrees_with_ref(p, n));
  }
}

static void utf8_ascii_fast_path(void) {
  /* Every length and alignment around the 8-byte word loop. */
  uint8_t buf[80];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (uint8_t)(0x20 + i % 90);
  for (size_t start = 0; start < 8; start++) {
    for (size_t n = 0; start + n <= sizeof buf; n++) {
      CHECK_INT(hf_utf8_valid(buf + start, n), 1);
    }
  }
  /* A bad byte at every position after an ASCII run is found exactly. */
  for (size_t bad = 0; bad < 40; bad++) {
    uint8_t b2[40];
    size_t off = 999;
    memset(b2, 'x', sizeof b2);
    b2[bad] = 0xFF;
    CHECK_INT(hf_utf8_feed(HF_UTF8_ACCEPT, b2, sizeof b2, &off),
              HF_UTF8_REJECT);
    CHECK_INT(off, bad);
  }
  /* A multi-byte sequence at every alignment in a long ASCII run. */
  for (size_t at = 0; at + 4 <= 40; at++) {
    uint8_t b3[40];
    memset(b3, 'y', sizeof b3);
    memcpy(b3 + at, "\xf0\x9f\x98\x80", 4);
    CHECK_INT(hf_utf8_valid(b3, sizeof b3), 1);
  }
}

static const struct {
  const char *s;
  size_t n;
  size_t off; /* expected offset of the offending byte */
} invalid_samples[] = {
#define I(lit, off) {lit, sizeof(lit) - 1, off}
    I("\x80", 0),                 /* lone continuation */
    I("\xbf", 0),
    I("ab\x80", 2),
    I("\xc2\x80\x80", 2),         /* one continuation too many */
    I("\xc0\x80", 0),             /* overlong NUL */
    I("\xc1\xbf", 0),             /* overlong U+007F */
    I("\xe0\x80\x80", 1),         /* overlong 3-byte */
    I("\xe0\x9f\xbf", 1),         /* overlong U+07FF */
    I("\xf0\x80\x80\x80", 1),     /* overlong 4-byte */
    I("\xf0\x8f\xbf\xbf", 1),     /* overlong U+FFFF */
    I("\xed\xa0\x80", 1),         /* U+D800, high surrogate */
    I("\xed\xad\xbf", 1),         /* U+DB7F */
    I("\xed\xb0\x80", 1),         /* U+DC00, low surrogate */
    I("\xed\xbf\xbf", 1),         /* U+DFFF */
    I("\xed\xa0\x80\xed\xb0\x80", 1), /* CESU-8 surrogate pair */
    I("\xf4\x90\x80\x80", 1),     /* U+110000 */
    I("\xf4\xbf\xbf\xbf", 1),
    I("\xf5\x80\x80\x80", 0),
    I("\xf7\xbf\xbf\xbf", 0),
    I("\xf8\x88\x80\x80\x80", 0), /* old 5-byte form */
    I("\xfc\x84\x80\x80\x80\x80", 0),
    I("\xfe", 0),
    I("\xff", 0),
    I("\xc2\x41", 1),             /* lead followed by ASCII */
    I("\xe1\x80\x41", 2),
    I("\xf1\x80\x80\xc2\x80", 3), /* new lead inside a sequence */
    /* Autobahn 6.3.1: kosme, then a surrogate, then "edited". */
    I("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69"
      "\x74\x65\x64", 12),
    /* Autobahn 6.4.x fail-fast: a code point above U+10FFFF mid-message. */
    I("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64"
      "\x69\x74\x65\x64", 12),
    I("0123456789abcdef0123456789\xc0", 26),
#undef I
};

static void utf8_invalid_samples(void) {
  for (size_t i = 0; i < sizeof invalid_samples / sizeof invalid_samples[0];
       i++) {
    const uint8_t *p = (const uint8_t *)invalid_samples[i].s;
    size_t n = invalid_samples[i].n;
    size_t off = 999;
    hf_utf8_state st = hf_utf8_feed(HF_UTF8_ACCEPT, p, n, &off);
    if (st != HF_UTF8_REJECT || off != invalid_samples[i].off)
      HF_T_FAILF("invalid sample %zu: state %u off %zu, want off %zu", i,
                 (unsigned)st, off, invalid_samples[i].off);
    CHECK_INT(hf_utf8_valid(p, n), 0);
    CHECK(agrees_with_ref(p, n));
    /* err_off is optional. */
    CHECK_INT(hf_utf8_feed(HF_UTF8_ACCEPT, p, n, NULL), HF_UTF8_REJECT);
  }
}

static void utf8_every_bad_lead_byte(void) {
  for (int b = 0; b < 256; b++) {
    uint8_t s[4] = {(uint8_t)b, 0x90, 0x90, 0x90};
    int bad_lead = (b >= 0x80 && b <= 0xC1) || b >= 0xF5;
    hf_utf8_state st = hf_utf8_feed(HF_UTF8_ACCEPT, s, 1, NULL);
    if (bad_lead)
      CHECK_INT(st, HF_UTF8_REJECT);
    else
      CHECK(st != HF_UTF8_REJECT);
  }
}

static void utf8_truncated_is_incomplete(void) {
  /* A sequence cut short is not an error until the message ends. */
  static const char *const prefixes[] = {"\xc2",         "\xe0\xa0",
                                         "\xed\x9f",     "\xf0\x90\x80",
                                         "\xf4\x8f\xbf", "abc\xe2\x82",
                                         "\xf3"};
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
    const uint8_t *p = (const uint8_t *)prefixes[i];
    size_t n = strlen(prefixes[i]);
    hf_utf8_state st = hf_utf8_feed(HF_UTF8_ACCEPT, p, n, NULL);
    CHECK(st != HF_UTF8_ACCEPT && st != HF_UTF8_REJECT);
    CHECK_INT(hf_utf8_valid(p, n), 0);
    /* Interrupting it with ASCII fails at that byte of the next call. */
    size_t off = 999;
    CHECK_INT(hf_utf8_feed(st, U8("xyz"), &off), HF_UTF8_REJECT);
    CHECK_INT(off, 0);
  }
}

static void utf8_split_every_position(void) {
  for (size_t i = 0; i < sizeof valid_samples / sizeof valid_samples[0]; i++) {
    const uint8_t *p = (const uint8_t *)valid_samples[i].s;
    size_t n = valid_samples[i].n;
    for (size_t a = 0; a <= n; a++) {
      hf_utf8_state st = hf_utf8_feed(HF_UTF8_ACCEPT, p, a, NULL);
      CHECK(st != HF_UTF8_REJECT);
      st = hf_utf8_feed(st, p + a, n - a, NULL);
      CHECK_INT(st, HF_UTF8_ACCEPT);
      /* And three pieces. */
      for (size_t b = a; b <= n; b++) {
        hf_utf8_state s3 = hf_utf8_feed(HF_UTF8_ACCEPT, p, a, NULL);
        s3 = hf_utf8_feed(s3, p + a, b - a, NULL);
        s3 = hf_utf8_feed(s3, p + b, n - b, NULL);
        if (s3 != HF_UTF8_ACCEPT)
          HF_T_FAILF("sample %zu split %zu/%zu: state %u", i, a, b,
                     (unsigned)s3);
      }
    }
    /* One byte per call. */
    hf_utf8_state st = HF_UTF8_ACCEPT;
    for (size_t k = 0; k < n; k++)
      st = hf_utf8_feed(st, p + k, 1, NULL);
    CHECK_INT(st, HF_UTF8_ACCEPT);
  }
}

static void utf8_split_invalid_offsets(void) {
  /* The offset is relative to the call that sees the offending byte. */
  for (size_t i = 0; i < sizeof invalid_samples / sizeof invalid_samples[0];
       i++) {
    const uint8_t *p = (const uint8_t *)invalid_samples[i].s;
    size_t n = invalid_samples[i].n, want = invalid_samples[i].off;
    for (size_t a = 0; a <= n; a++) {
      size_t off = 999;
      hf_utf8_state st = hf_utf8_feed(HF_UTF8_ACCEPT, p, a, &off);
      if (a > want) {
        CHECK_INT(st, HF_UTF8_REJECT);
        CHECK_INT(off, want);
        continue;
      }
      CHECK(st != HF_UTF8_REJECT);
      st = hf_utf8_feed(st, p + a, n - a, &off);
      CHECK_INT(st, HF_UTF8_REJECT);
      CHECK_INT(off, want - a);
    }
  }
}

static void utf8_reject_is_sticky(void) {
  size_t off = 999;
  CHECK_INT(hf_utf8_feed(HF_UTF8_REJECT, U8("fine"), &off), HF_UTF8_REJECT);
  CHECK_INT(off, 0);
  CHECK_INT(hf_utf8_feed(HF_UTF8_REJECT, U8(""), NULL), HF_UTF8_REJECT);
  /* Empty input leaves any state alone. */
  hf_utf8_state mid = hf_utf8_feed(HF_UTF8_ACCEPT, U8("\xe2\x82"), NULL);
  CHECK_INT(hf_utf8_feed(mid, U8(""), NULL), mid);
  CHECK_INT(hf_utf8_feed(HF_UTF8_ACCEPT, U8(""), NULL), HF_UTF8_ACCEPT);
  /* A corrupted state value is treated as rejected, not as an index. */
  CHECK_INT(hf_utf8_feed(0xdeadbeefu, U8("a"), NULL), HF_UTF8_REJECT);
}

static void utf8_exhaustive_two_bytes(void) {
  int bad = 0;
  for (int a = 0; a < 256; a++)
    for (int b = 0; b < 256; b++) {
      uint8_t s[2] = {(uint8_t)a, (uint8_t)b};
      if (!agrees_with_ref(s, 2) || !agrees_with_ref(s, 1))
        bad++;
    }
  CHECK_INT(bad, 0);
}

static void utf8_boundary_bytes_four_deep(void) {
  /* Every 4-byte string over the class-boundary byte values. */
  static const uint8_t v[] = {0x00, 0x41, 0x7f, 0x80, 0x81, 0x8f, 0x90,
                              0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf,
                              0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0,
                              0xf1, 0xf3, 0xf4, 0xf5, 0xf7, 0xf8, 0xff};
  const size_t nv = sizeof v;
  int bad = 0;
  for (size_t a = 0; a < nv; a++)
    for (size_t b = 0; b < nv; b++)
      for (size_t c = 0; c < nv; c++)
        for (size_t d = 0; d < nv; d++) {
          uint8_t s[4] = {v[a], v[b], v[c], v[d]};
          if (!agrees_with_ref(s, 4) || !agrees_with_ref(s, 3))
            bad++;
        }
  CHECK_INT(bad, 0);
}

static void utf8_random_vs_reference(void) {
  /* Random strings biased toward UTF-8-looking bytes, checked whole and
   * split in two. Fixed seed: reproducible. */
  static const uint8_t pool[] = {'a',  ' ',  0x7f, 0x80, 0x8f, 0x90, 0x9f,
                                 0xa0, 0xbf, 0xc2, 0xce, 0xdf, 0xe0, 0xe2,
                                 0xed, 0xef, 0xf0, 0xf3, 0xf4, 0xc0, 0xf5};
  uint32_t seed = 12345;
  int bad = 0;
  for (int iter = 0; iter < 200000; iter++) {
    uint8_t s[24];
    seed = seed * 1103515245u + 12345u;
    size_t n = (seed >> 16) % sizeof s;
    for (size_t i = 0; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      s[i] = pool[(seed >> 16) % sizeof pool];
    }
    if (!agrees_with_ref(s, n))
      bad++;
    size_t cut = n ? (seed >> 8) % (n + 1) : 0;
    hf_utf8_state st = hf_utf8_feed(HF_UTF8_ACCEPT, s, cut, NULL);
    st = hf_utf8_feed(st, s + cut, n - cut, NULL);
    int complete;
    long ref = ref_check(s, n, &complete);
    if ((st == HF_UTF8_REJECT) != (ref >= 0) ||
        (st == HF_UTF8_ACCEPT) != (ref < 0 && complete))
      bad++;
  }
  CHECK_INT(bad, 0);
}

int main(void) {
  hf_t_suite = "utf8";
  RUN_TEST(utf8_valid_samples);
  RUN_TEST(utf8_ascii_fast_path);
  RUN_TEST(utf8_invalid_samples);
  RUN_TEST(utf8_every_bad_lead_byte);
  RUN_TEST(utf8_truncated_is_incomplete);
  RUN_TEST(utf8_split_every_position);
  RUN_TEST(utf8_split_invalid_offsets);
  RUN_TEST(utf8_reject_is_sticky);
  RUN_TEST(utf8_exhaustive_two_bytes);
  RUN_TEST(utf8_boundary_bytes_four_deep);
  RUN_TEST(utf8_random_vs_reference);
  TEST_MAIN_END();
}
