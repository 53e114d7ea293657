/* SPDX-License-Identifier: MIT */
/* Unit tests for permessage-deflate (RFC 7692): offer negotiation (first
 * acceptable offer, declined malformed ones, window bits, context
 * takeover), the client-side response check, the codec against the RFC's
 * section 7.2.3 examples byte for byte, the inflate size limit (bombs) and
 * the frame parser's RSV1 rules. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hf/deflate.h"
#include "hf/err.h"
#include "hf/frame.h"
#include "test.h"

static const hf_deflate_config strict = {0, 15, 15};
static const hf_deflate_config lenient = {1, 15, 15};

static int nego(const hf_deflate_config *cfg, const char *v, hf_deflate_params *p) {
  memset(p, 0xee, sizeof *p);
  return hf_deflate_negotiate_value(cfg, v, strlen(v), p);
}

static const char *resp(const hf_deflate_config *cfg, const char *v) {
  static char buf[256];
  hf_deflate_params p;
  if (!nego(cfg, v, &p))
    return "(declined)";
  if (hf_deflate_response(&p, buf, sizeof buf) < 0)
    return "(too big)";
  return buf;
}

static void negotiate_basic(void) {
  CHECK_STR(resp(&strict, "permessage-deflate"),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  CHECK_STR(resp(&lenient, "permessage-deflate"),
            "permessage-deflate; server_no_context_takeover");
  /* Chromium's offer */
  CHECK_STR(resp(&lenient, "permessage-deflate; client_max_window_bits"),
            "permessage-deflate; server_no_context_takeover");
  CHECK_STR(resp(&strict, "x-webkit-deflate-frame"), "(declined)");
  CHECK_STR(resp(&strict, ""), "(declined)");
  CHECK_STR(resp(&strict, "PerMessage-Deflate"),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  hf_deflate_params p;
  CHECK_INT(nego(&lenient, "permessage-deflate", &p), 1);
  CHECK_INT(p.server_no_context_takeover, 1);
  CHECK_INT(p.client_no_context_takeover, 0);
  CHECK_INT(p.server_max_window_bits, 15);
  CHECK_INT(p.client_max_window_bits, 15);
}

static void negotiate_window_bits(void) {
  hf_deflate_params p;
  CHECK_STR(resp(&strict, "permessage-deflate; server_max_window_bits=10"),
            "permessage-deflate; server_no_context_takeover; "
            "client_no_context_takeover; server_max_window_bits=10");
  CHECK_INT(nego(&strict, "permessage-deflate; server_max_window_bits=10", &p), 1);
  CHECK_INT(p.server_max_window_bits, 10);
  /* quoted values are unquoted first (RFC 7692 7.1.2.1 allows it) */
  CHECK_INT(nego(&strict, "permessage-deflate; server_max_window_bits=\"12\"", &p), 1);
  CHECK_INT(p.server_max_window_bits, 12);
  /* zlib cannot honour an 8-bit server window: declined */
  CHECK_STR(resp(&strict, "permessage-deflate; server_max_window_bits=8"), "(declined)");
  /* client bits: we may ask for a smaller window only if announced */
  hf_deflate_config small = {1, 11, 10};
  CHECK_STR(resp(&small, "permessage-deflate; client_max_window_bits"),
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=10");
  CHECK_STR(resp(&small, "permessage-deflate; client_max_window_bits=9"),
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=9");
  CHECK_INT(nego(&small, "permessage-deflate", &p), 1);
  CHECK_INT(p.client_max_window_bits, 15); /* not announced: the client's choice */
  CHECK_INT(p.server_max_window_bits, 11); /* we use less; no need to say */
  CHECK_STR(resp(&small, "permessage-deflate"),
            "permessage-deflate; server_no_context_takeover");
  /* every parameter at once: the longest response (128 characters) */
  hf_deflate_config all = {0, 12, 10};
  CHECK_STR(resp(&all, "permessage-deflate; server_max_window_bits=13; client_max_window_bits"),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=12; client_max_window_bits=10");
  CHECK_STR(resp(&small, "permessage-deflate; server_max_window_bits=15"),
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=11");
  /* client_max_window_bits=8 is fine: we inflate with any window */
  CHECK_INT(nego(&lenient, "permessage-deflate; client_max_window_bits=8", &p), 1);
  CHECK_INT(p.client_max_window_bits, 8);
}

static void negotiate_declines_malformed(void) {
  /* each of these is declined (RFC 7692 5.1 / 7.1) */
  static const char *bad[] = {
      "permessage-deflate; server_max_window_bits",      /* value required */
      "permessage-deflate; server_max_window_bits=16",
      "permessage-deflate; server_max_window_bits=7",
      "permessage-deflate; server_max_window_bits=010",  /* leading zero */
      "permessage-deflate; server_max_window_bits=abc",
      "permessage-deflate; client_max_window_bits=0",
      "permessage-deflate; client_max_window_bits=16",
      "permessage-deflate; server_no_context_takeover=1", /* no value allowed */
      "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
      "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
      "permessage-deflate; unknown_param",
      "permessage-deflate; x=1",
      "permessage-deflate;",                             /* syntax */
      "permessage-deflate; =1",
      "permessage-deflate; server_max_window_bits=\"10",  /* unterminated */
      "permessage-deflate server_no_context_takeover",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    hf_deflate_params p;
    if (nego(&lenient, bad[i], &p))
      HF_T_FAILF("accepted: %s", bad[i]);
  }
}

static void negotiate_first_acceptable(void) {
  hf_deflate_params p;
  /* the first offer is declined, the second accepted */
  CHECK_INT(nego(&lenient,
                 "permessage-deflate; server_max_window_bits=8, "
                 "permessage-deflate; server_max_window_bits=9",
                 &p), 1);
  CHECK_INT(p.server_max_window_bits, 9);
  CHECK_INT(nego(&lenient,
                 "foo; bar=\"a,b\", permessage-deflate; bogus, "
                 "permessage-deflate; client_no_context_takeover",
                 &p), 1);
  CHECK_INT(p.client_no_context_takeover, 1);
  /* the first acceptable wins even if a later one is "better" */
  CHECK_INT(nego(&lenient,
                 "permessage-deflate; server_max_window_bits=10, permessage-deflate",
                 &p), 1);
  CHECK_INT(p.server_max_window_bits, 10);
  /* several header fields: the request-level function walks them in order */
  hf_http_header h[3] = {
      {"Host", 4, "x", 1},
      {"Sec-WebSocket-Extensions", 24, "permessage-deflate; server_max_window_bits=8", 44},
      {"sec-websocket-extensions", 24, "permessage-deflate; server_max_window_bits=13", 45},
  };
  hf_http_request req = {0};
  req.headers = h;
  req.num_headers = 3;
  CHECK_INT(hf_deflate_negotiate(&lenient, &req, &p), 1);
  CHECK_INT(p.server_max_window_bits, 13);
  req.num_headers = 2;
  CHECK_INT(hf_deflate_negotiate(&lenient, &req, &p), 0);
}

static void client_offer_and_response(void) {
  char buf[128];
  hf_deflate_config c = {0, 15, 15};
  CHECK(hf_deflate_offer(&c, 0, buf, sizeof buf) > 0);
  CHECK_STR(buf, "permessage-deflate; client_max_window_bits");
  hf_deflate_config c10 = {0, 10, 15};
  CHECK(hf_deflate_offer(&c10, 1, buf, sizeof buf) > 0);
  CHECK_STR(buf, "permessage-deflate; client_no_context_takeover; "
                 "server_max_window_bits=10; client_max_window_bits");
  hf_deflate_params p;
  const char *ok = "permessage-deflate; server_no_context_takeover; client_max_window_bits=9";
  CHECK_INT(hf_deflate_check_response(&c, ok, strlen(ok), &p), 1);
  CHECK_INT(p.server_no_context_takeover, 1);
  CHECK_INT(p.client_max_window_bits, 9);
  const char *none = "x-other";
  CHECK_INT(hf_deflate_check_response(&c, none, strlen(none), &p), 0);
  const char *twice = "permessage-deflate, permessage-deflate";
  CHECK_INT(hf_deflate_check_response(&c, twice, strlen(twice), &p), HF_EPROTO);
  const char *bigger = "permessage-deflate; server_max_window_bits=12";
  CHECK_INT(hf_deflate_check_response(&c10, bigger, strlen(bigger), &p), HF_EPROTO);
  const char *novalue = "permessage-deflate; client_max_window_bits";
  CHECK_INT(hf_deflate_check_response(&c, novalue, strlen(novalue), &p), HF_EPROTO);
  /* the server's own response passes the client check */
  hf_deflate_params sp;
  CHECK_INT(nego(&strict, "permessage-deflate; client_max_window_bits", &sp), 1);
  CHECK(hf_deflate_response(&sp, buf, sizeof buf) > 0);
  CHECK_INT(hf_deflate_check_response(&c, buf, strlen(buf), &p), 1);
  CHECK_INT(p.client_no_context_takeover, 1);
}

/* Inflate one message made of frames; returns the text or NULL. */
static int inflate_msg(hf_inflate *z, const uint8_t *const *frames,
                       const size_t *lens, size_t n, size_t limit,
                       uint8_t **out, size_t *olen) {
  size_t cap = 0;
  *out = NULL;
  *olen = 0;
  for (size_t i = 0; i < n; i++) {
    int r = hf_inflate_feed(z, frames[i], lens[i], i + 1 == n, out, olen, &cap, limit);
    if (r < 0)
      return r;
  }
  return 0;
}

#define B(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static void check_inflate(hf_inflate *z, const uint8_t *p, size_t n, const char *want) {
  const uint8_t *f[1] = {p};
  size_t l[1] = {n};
  uint8_t *out;
  size_t olen;
  int r = inflate_msg(z, f, l, 1, 1 << 20, &out, &olen);
  CHECK_INT(r, 0);
  CHECK_MEM(out, olen, want);
  free(out);
}

static void rfc7692_examples(void) {
  hf_inflate *z = hf_inflate_new(15);
  CHECK(z != NULL);
  /* 7.2.3.1: "Hello" in one frame */
  check_inflate(z, B(0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00), "Hello");
  /* 7.2.3.1: the same in two fragments */
  hf_inflate_reset(z);
  {
    const uint8_t a[] = {0xf2, 0x48, 0xcd}, b[] = {0xc9, 0xc9, 0x07, 0x00};
    const uint8_t *f[2] = {a, b};
    size_t l[2] = {3, 4};
    uint8_t *out;
    size_t olen;
    CHECK_INT(inflate_msg(z, f, l, 2, 1 << 20, &out, &olen), 0);
    CHECK_MEM(out, olen, "Hello");
    free(out);
  }
  /* 7.2.3.2: the second "Hello" uses the first one's window */
  hf_inflate_reset(z);
  check_inflate(z, B(0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00), "Hello");
  check_inflate(z, B(0xf2, 0x00, 0x11, 0x00, 0x00), "Hello");
  /* 7.2.3.3: a stored (uncompressed) block */
  hf_inflate_reset(z);
  check_inflate(z, B(0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00),
                "Hello");
  /* 7.2.3.4: BFINAL set; the window survives for the next message */
  hf_inflate_reset(z);
  check_inflate(z, B(0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00), "Hello");
  check_inflate(z, B(0xf2, 0x00, 0x11, 0x00, 0x00), "Hello");
  /* 7.2.3.5: two DEFLATE blocks in one message */
  hf_inflate_reset(z);
  check_inflate(z, B(0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9,
                     0xc9, 0x07, 0x00),
                "Hello");
  /* 7.2.3.6: an empty message */
  hf_inflate_reset(z);
  check_inflate(z, B(0x00), "");
  hf_inflate_free(z);

  /* our compressor produces the RFC's bytes for "Hello" (tail removed) */
  for (int level = 1; level <= 9; level += 5) {
    hf_deflate_enc *e = hf_deflate_enc_new(level, 8, 15);
    uint8_t out[64];
    long n = hf_deflate_compress(e, 1, (const uint8_t *)"Hello", 5, out, sizeof out);
    CHECK_INT(n, 7);
    CHECK(n == 7 && memcmp(out, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7) == 0);
    n = hf_deflate_compress(e, 1, (const uint8_t *)"", 0, out, sizeof out);
    CHECK_INT(n, 1);
    CHECK_INT(out[0], 0);
    hf_deflate_enc_free(e);
  }
}

static void roundtrip_sizes_and_windows(void) {
  size_t sizes[] = {0, 1, 125, 126, 4096, 65535, 65536, 200000};
  uint8_t *src = malloc(200000);
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < 200000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    src[i] = (i / 1000) % 2 ? (uint8_t)x : (uint8_t)("holdfast "[i % 9]);
  }
  for (int bits = 9; bits <= 15; bits += 3) {
    hf_deflate_enc *e = hf_deflate_enc_new(6, 8, bits);
    hf_inflate *z = hf_inflate_new(bits);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
      size_t n = sizes[k], cap = hf_deflate_bound(n);
      uint8_t *c = malloc(cap);
      long cl = hf_deflate_compress(e, 1, src, n, c, cap);
      CHECK(cl >= 0);
      hf_inflate_reset(z);
      uint8_t *out = NULL;
      size_t olen = 0, ocap = 0;
      /* feed in 3 fragments to exercise the incremental path */
      size_t a = (size_t)cl / 3, b = 2 * (size_t)cl / 3;
      int r = hf_inflate_feed(z, c, a, 0, &out, &olen, &ocap, 1 << 20);
      if (!r)
        r = hf_inflate_feed(z, c + a, b - a, 0, &out, &olen, &ocap, 1 << 20);
      if (!r)
        r = hf_inflate_feed(z, c + b, (size_t)cl - b, 1, &out, &olen, &ocap, 1 << 20);
      CHECK_INT(r, 0);
      CHECK_INT(olen, n);
      CHECK(olen == n && (n == 0 || memcmp(out, src, n) == 0));
      free(out);
      free(c);
    }
    hf_deflate_enc_free(e);
    hf_inflate_free(z);
  }
  free(src);
}

/* hf_deflate_bound holds for every level and mem_level: with mem_level 1
 * zlib writes short blocks, so incompressible input grows by a stored-block
 * header every few hundred bytes (found by fuzz_deflate); a cap of len + 4
 * is refused with HF_ETOOBIG, never overrun. */
static void bound_holds_for_small_mem_levels(void) {
  size_t n = 70000;
  uint8_t *src = malloc(n);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    src[i] = (uint8_t)x;
  }
  for (int level = 0; level <= 9; level += 3) {
    for (int mem = 1; mem <= 9; mem += 4) {
      hf_deflate_enc *e = hf_deflate_enc_new(level, mem, 9 + mem % 7);
      size_t sizes[] = {1, 500, 3000, n};
      for (size_t k = 0; k < 4; k++) {
        size_t len = sizes[k], cap = hf_deflate_bound(len);
        uint8_t *c = malloc(cap + 1);
        c[cap] = 0xa5;
        long cl = hf_deflate_compress(e, 1, src, len, c, cap);
        CHECK(cl >= 0 && (size_t)cl <= cap);
        CHECK(c[cap] == 0xa5);
        hf_inflate *z = hf_inflate_thread();
        hf_inflate_reset(z);
        uint8_t *out = NULL;
        size_t olen = 0, ocap = 0;
        CHECK_INT(hf_inflate_feed(z, c, (size_t)cl, 1, &out, &olen, &ocap, len), 0);
        CHECK(olen == len && memcmp(out, src, len) == 0);
        free(out);
        if (len >= 500)
          CHECK_INT(hf_deflate_compress(e, 1, src, len, c, len + 4), HF_ETOOBIG);
        free(c);
      }
      hf_deflate_enc_free(e);
    }
  }
  free(src);
}

/* When the input of a feed ends just as the output buffer is full, zlib
 * may still hold output: it must come out (found by fuzz_deflate: 16,411
 * bytes inflated to 16,384). Every split of a message whose output crosses
 * the buffer's doubling points gives the whole message. */
static void inflate_drains_pending_output(void) {
  static const uint8_t found[] = {
      0xec, 0xc1, 0x31, 0x01, 0x00, 0x00, 0x00, 0xc2, 0xa0, 0xf5, 0x4f,
      0x6d, 0x06, 0x7f, 0xa0, 0x00, 0x00, 0x32, 0x00, 0x00, 0x00, 0x00,
      0xa8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00};
  hf_inflate *z = hf_inflate_new(15);
  size_t cuts[][2] = {{10, 20}, {31, 31}, {0, 31}, {15, 16}};
  for (size_t k = 0; k < 4; k++) {
    hf_inflate_reset(z);
    uint8_t *out = NULL;
    size_t olen = 0, ocap = 0, a = cuts[k][0], b = cuts[k][1];
    int r = hf_inflate_feed(z, found, a, 0, &out, &olen, &ocap, 1 << 20);
    if (!r)
      r = hf_inflate_feed(z, found + a, b - a, 0, &out, &olen, &ocap, 1 << 20);
    if (!r)
      r = hf_inflate_feed(z, found + b, sizeof found - b, 1, &out, &olen, &ocap, 1 << 20);
    CHECK_INT(r, 0);
    CHECK_INT(olen, 16411);
    free(out);
  }
  /* compressible messages around each doubling point, whole and split */
  uint8_t src[20000], c[21000];
  for (size_t i = 0; i < sizeof src; i++)
    src[i] = (uint8_t)("abcabd"[i % 6] + (i % 1031 == 0));
  hf_deflate_enc *e = hf_deflate_enc_new(9, 9, 15);
  size_t centres[] = {1024, 2048, 4096, 8192, 16384};
  for (size_t k = 0; k < 5; k++) {
    for (size_t n = centres[k] - 40; n <= centres[k] + 40; n++) {
      long cl = hf_deflate_compress(e, 1, src, n, c, sizeof c);
      CHECK(cl > 0);
      for (size_t cut = 0; cut <= (size_t)cl; cut += 1 + (size_t)cl / 8) {
        hf_inflate_reset(z);
        uint8_t *out = NULL;
        size_t olen = 0, ocap = 0;
        int r = hf_inflate_feed(z, c, cut, 0, &out, &olen, &ocap, n);
        if (!r)
          r = hf_inflate_feed(z, c + cut, (size_t)cl - cut, 1, &out, &olen, &ocap, n);
        CHECK_INT(r, 0);
        CHECK(olen == n && memcmp(out, src, n) == 0);
        free(out);
      }
    }
  }
  hf_deflate_enc_free(e);
  hf_inflate_free(z);
}

static void inflate_bomb_is_bounded(void) {
  /* 16 MiB of zeros compress to ~16 KiB; a 64 KiB limit stops it at once
   * and the output buffer never grows past limit + 1 */
  size_t big = 16u << 20;
  uint8_t *zeros = calloc(1, big);
  hf_deflate_enc *e = hf_deflate_enc_new(9, 9, 15);
  size_t cap = hf_deflate_bound(big);
  uint8_t *c = malloc(cap);
  long cl = hf_deflate_compress(e, 1, zeros, big, c, cap);
  CHECK(cl > 0 && cl < 32 * 1024);
  hf_inflate *z = hf_inflate_new(15);
  uint8_t *out = NULL;
  size_t olen = 0, ocap = 0;
  int r = hf_inflate_feed(z, c, (size_t)cl, 1, &out, &olen, &ocap, 65536);
  CHECK_INT(r, HF_ETOOBIG);
  CHECK(ocap <= 65537);
  free(out);
  /* exactly at the limit is fine */
  hf_inflate_reset(z);
  cl = hf_deflate_compress(e, 1, zeros, 65536, c, cap);
  out = NULL;
  olen = ocap = 0;
  CHECK_INT(hf_inflate_feed(z, c, (size_t)cl, 1, &out, &olen, &ocap, 65536), 0);
  CHECK_INT(olen, 65536);
  free(out);
  /* garbage is HF_EPROTO */
  hf_inflate_reset(z);
  out = NULL;
  olen = ocap = 0;
  CHECK_INT(hf_inflate_feed(z, (const uint8_t *)"\xff\xff\xff\xff", 4, 1, &out,
                            &olen, &ocap, 65536),
            HF_EPROTO);
  free(out);
  hf_inflate_free(z);
  hf_deflate_enc_free(e);
  free(c);
  free(zeros);
}

static ssize_t parse1(hf_ws_parser *p, const uint8_t *in, size_t n, hf_ws_event *ev) {
  uint8_t buf[64];
  memcpy(buf, in, n);
  return hf_ws_parse(p, buf, n, ev, NULL);
}

static void parser_rsv1_rules(void) {
  hf_ws_event ev;
  /* unmasked (client-side parser) frames keep the tests short */
  hf_ws_parser p = {0};
  CHECK_INT(parse1(&p, B(0xc1, 0x01, 0x00), &ev), HF_EPROTO); /* not negotiated */
  memset(&p, 0, sizeof p);
  p.allow_rsv1 = 1;
  CHECK_INT(parse1(&p, B(0xc1, 0x01, 0xff), &ev), 3); /* not UTF-8 checked */
  CHECK_INT(ev.compressed, 1);
  CHECK_INT(ev.opcode, HF_OP_TEXT);
  CHECK_INT(parse1(&p, B(0x81, 0x01, 'a'), &ev), 3);
  CHECK_INT(ev.compressed, 0);
  CHECK_INT(parse1(&p, B(0x81, 0x01, 0xff), &ev), HF_EUTF8); /* plain: checked */
  memset(&p, 0, sizeof p);
  p.allow_rsv1 = 1;
  /* fragmented: RSV1 on the first frame only */
  CHECK_INT(parse1(&p, B(0x42, 0x01, 0x00), &ev), 3);
  CHECK_INT(parse1(&p, B(0xc0, 0x01, 0x00), &ev), HF_EPROTO);
  memset(&p, 0, sizeof p);
  p.allow_rsv1 = 1;
  CHECK_INT(parse1(&p, B(0x42, 0x01, 0x00), &ev), 3);
  CHECK_INT(parse1(&p, B(0x80, 0x01, 0x00), &ev), 3);
  CHECK_INT(ev.compressed, 1);
  CHECK_INT(ev.fin, 1);
  /* control frames never carry RSV1; RSV2/RSV3 stay errors */
  CHECK_INT(parse1(&p, B(0xc9, 0x00), &ev), HF_EPROTO);
  memset(&p, 0, sizeof p);
  p.allow_rsv1 = 1;
  CHECK_INT(parse1(&p, B(0xa1, 0x00), &ev), HF_EPROTO);
  /* the writer sets RSV1 when asked */
  uint8_t h[HF_FRAME_MAX_HEADER];
  CHECK_INT(hf_frame_header(h, 1, HF_OP_TEXT | HF_FRAME_RSV1, 7, NULL), 2);
  CHECK_INT(h[0], 0xc1);
}

static void thread_instances(void) {
  hf_deflate_enc *a = hf_deflate_thread_enc(1, 8, 15);
  CHECK(a != NULL);
  CHECK(hf_deflate_thread_enc(1, 8, 15) == a);
  CHECK(hf_deflate_thread_enc(1, 8, 10) != a);
  CHECK(hf_deflate_thread_enc(1, 8, 8) == NULL);
  CHECK(hf_inflate_thread() != NULL);
  CHECK(hf_deflate_thread_buf(100000) != NULL);
}

int main(void) {
  hf_t_suite = "deflate";
  RUN_TEST(negotiate_basic);
  RUN_TEST(negotiate_window_bits);
  RUN_TEST(negotiate_declines_malformed);
  RUN_TEST(negotiate_first_acceptable);
  RUN_TEST(client_offer_and_response);
  RUN_TEST(rfc7692_examples);
  RUN_TEST(roundtrip_sizes_and_windows);
  RUN_TEST(bound_holds_for_small_mem_levels);
  RUN_TEST(inflate_drains_pending_output);
  RUN_TEST(inflate_bomb_is_bounded);
  RUN_TEST(parser_rsv1_rules);
  RUN_TEST(thread_instances);
  TEST_MAIN_END();
}
