/* SPDX-License-Identifier: MIT */
/* Unit tests for RFC 6455 framing (lib/frame.c, lib/close.c): the frame
 * header writer (every length form, masked and not), hf_frame_mask at every
 * phase and length against a byte-wise reference, close payloads (reason
 * truncation never cuts a UTF-8 sequence), close-code validity at every
 * boundary, and the incremental parser hf_ws_parse at the level of the
 * Autobahn|Testsuite sections 1-7, 9 and 10: valid frames, every violation's
 * return value and close code, each input fed whole, byte by byte and at
 * random splits (leftovers presented again, as modified, at the start of the
 * buffer) with identical events, fail-fast UTF-8 on incomplete frames,
 * control frames between fragments, *need reporting, and client mode; and
 * the observer's header decoder hf_frame_peek. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf/close.h"
#include "hf/err.h"
#include "hf/frame.h"
#include "hf/utf8.h"
#include "test.h"

/* ---- a frame builder that shares no code with lib/frame.c ------------- */

typedef struct {
  uint8_t *b;
  size_t len, cap;
} bytes;

static void b_put(bytes *s, const void *p, size_t n) {
  if (s->len + n > s->cap) {
    size_t cap = s->cap ? s->cap : 256;
    while (cap < s->len + n)
      cap *= 2;
    uint8_t *nb = realloc(s->b, cap);
    if (!nb)
      abort();
    s->b = nb;
    s->cap = cap;
  }
  if (n)
    memcpy(s->b + s->len, p, n);
  s->len += n;
}

static void b_byte(bytes *s, uint8_t c) { b_put(s, &c, 1); }

static void b_free(bytes *s) {
  free(s->b);
  s->b = NULL;
  s->len = s->cap = 0;
}

static unsigned key_counter;

/* Header with an explicit length form: form 7, 16 or 64. */
static void put_header(bytes *s, int fin, int rsv, int op, uint64_t len,
                       int form, const uint8_t *key) {
  b_byte(s, (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | (op & 0x0f)));
  uint8_t m = key ? 0x80 : 0;
  if (form == 7) {
    b_byte(s, (uint8_t)(m | len));
  } else if (form == 16) {
    b_byte(s, m | 126);
    b_byte(s, (uint8_t)(len >> 8));
    b_byte(s, (uint8_t)len);
  } else {
    b_byte(s, m | 127);
    for (int i = 7; i >= 0; i--)
      b_byte(s, (uint8_t)(len >> (8 * i)));
  }
  if (key)
    b_put(s, key, 4);
}

static int min_form(uint64_t n) { return n < 126 ? 7 : n <= 0xffff ? 16 : 64; }

/* One frame: masked with a fresh key unless unmasked is set. */
static void put_frame_x(bytes *s, int fin, int rsv, int op, const void *payload,
                        size_t n, int unmasked) {
  uint8_t key[4];
  unsigned k = ++key_counter * 2654435761u;
  key[0] = (uint8_t)(k >> 24);
  key[1] = (uint8_t)(k >> 16);
  key[2] = (uint8_t)(k >> 8);
  key[3] = (uint8_t)(k | 1); /* never an all-zero key */
  put_header(s, fin, rsv, op, n, min_form(n), unmasked ? NULL : key);
  const uint8_t *pp = payload;
  for (size_t i = 0; i < n; i++)
    b_byte(s, unmasked ? pp[i] : (uint8_t)(pp[i] ^ key[i & 3]));
}

static void put_frame(bytes *s, int fin, int op, const void *payload, size_t n) {
  put_frame_x(s, fin, 0, op, payload, n, 0);
}

static void put_str(bytes *s, int fin, int op, const char *str) {
  put_frame(s, fin, op, str, strlen(str));
}

static void put_close(bytes *s, unsigned code, const void *reason, size_t rl) {
  uint8_t pl[200];
  pl[0] = (uint8_t)(code >> 8);
  pl[1] = (uint8_t)code;
  if (rl)
    memcpy(pl + 2, reason, rl);
  put_frame(s, 1, HF_OP_CLOSE, pl, 2 + rl);
}

/* ---- recording driver --------------------------------------------------- */

typedef struct {
  int type, opcode, first, fin;
  size_t len;
  uint8_t *data;
  unsigned close_code;
  size_t reason_len;
  uint8_t reason[HF_FRAME_MAX_CONTROL];
} rec_ev;

typedef struct {
  rec_ev *ev;
  size_t n, cap;
  ssize_t result;       /* 0: stream ended between frames; HF_EAGAIN: it
                           ended inside a frame; else the error returned */
  unsigned err_code;
  size_t consumed;      /* bytes consumed by successful calls */
  size_t leftover;      /* unconsumed bytes at the end */
  int contract_errors;  /* r > len, views outside buf, bad *need */
} run_res;

enum { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM, SPLIT_SMALL };

static const char *label = "";

static void rr_free(run_res *r) {
  for (size_t i = 0; i < r->n; i++)
    free(r->ev[i].data);
  free(r->ev);
  memset(r, 0, sizeof *r);
}

static void rr_push(run_res *r, const hf_ws_event *e) {
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 16;
    r->ev = realloc(r->ev, r->cap * sizeof *r->ev);
    if (!r->ev)
      abort();
  }
  rec_ev *x = &r->ev[r->n++];
  memset(x, 0, sizeof *x);
  x->type = e->type;
  x->len = e->len;
  x->data = malloc(e->len ? e->len : 1);
  if (!x->data)
    abort();
  if (e->len)
    memcpy(x->data, e->data, e->len);
  if (e->type == HF_WS_EV_DATA) {
    x->opcode = e->opcode;
    x->first = e->first;
    x->fin = e->fin;
  }
  if (e->type == HF_WS_EV_CLOSE) {
    x->close_code = e->close_code;
    x->reason_len = e->close_reason_len;
    if (e->close_reason_len <= sizeof x->reason && e->close_reason)
      memcpy(x->reason, e->close_reason, e->close_reason_len);
  }
}

static uint32_t rng_state = 12345;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}

/* Feed stream[0..n) like a real caller: chunks are appended after the
 * unconsumed bytes, which stay (as the parser left them) at the start of a
 * work buffer. */
/* When set, run_stream replaces the parser by a fresh one with the same
 * options whenever hf_ws_parser_idle says it holds no state (as the
 * connection engine does between frames). */
static int reset_idle;

static void drop_if_idle(hf_ws_parser *p) {
  if (!reset_idle || !hf_ws_parser_idle(p))
    return;
  hf_ws_parser fresh;
  memset(&fresh, 0, sizeof fresh);
  fresh.max_message = p->max_message;
  fresh.expect_mask = p->expect_mask;
  fresh.allow_rsv1 = p->allow_rsv1;
  memset(p, 0x5A, sizeof *p); /* nothing of the old one may matter */
  *p = fresh;
}

static void run_stream(const uint8_t *stream, size_t n, uint64_t max_message,
                       int expect_mask, int mode, uint32_t seed, run_res *out) {
  memset(out, 0, sizeof *out);
  hf_ws_parser p;
  memset(&p, 0, sizeof p);
  p.max_message = max_message;
  p.expect_mask = (uint8_t)expect_mask;
  uint8_t *work = malloc(n + 1);
  if (!work)
    abort();
  size_t have = 0, pos = 0;
  uint32_t saved = rng_state;
  rng_state = seed ? seed : 1;
  for (;;) {
    for (;;) {
      hf_ws_event ev;
      size_t need = 4242;
      memset(&ev, 0xA5, sizeof ev);
      ssize_t r = hf_ws_parse(&p, work, have, &ev, &need);
      if (r == HF_EAGAIN) {
        if (need != 0 && need <= have)
          out->contract_errors++;
        drop_if_idle(&p);
        break;
      }
      if (r < 0) {
        out->result = r;
        out->err_code = p.err_code;
        if (!p.err_reason || !*p.err_reason)
          out->contract_errors++;
        goto done;
      }
      if (r == 0 || (size_t)r > have) {
        out->contract_errors++;
        goto done;
      }
      if (ev.len && (ev.data < work || ev.data + ev.len > work + r))
        out->contract_errors++;
      if (ev.type == HF_WS_EV_CLOSE && ev.close_reason_len &&
          (ev.close_reason < work || ev.close_reason + ev.close_reason_len > work + r))
        out->contract_errors++;
      rr_push(out, &ev);
      drop_if_idle(&p);
      memmove(work, work + r, have - (size_t)r);
      have -= (size_t)r;
      out->consumed += (size_t)r;
    }
    if (pos == n)
      break;
    size_t chunk;
    switch (mode) {
    case SPLIT_WHOLE: chunk = n - pos; break;
    case SPLIT_BYTES: chunk = 1; break;
    case SPLIT_SMALL: chunk = 1 + rnd() % 7; break;
    default: chunk = 1 + rnd() % (n / 3 + 2); break;
    }
    if (chunk > n - pos)
      chunk = n - pos;
    memcpy(work + have, stream + pos, chunk);
    have += chunk;
    pos += chunk;
  }
  out->result = have ? HF_EAGAIN : 0;
done:
  out->leftover = have;
  rng_state = saved;
  free(work);
}

static int ev_equal(const rec_ev *a, const rec_ev *b) {
  return a->type == b->type && a->opcode == b->opcode && a->first == b->first &&
         a->fin == b->fin && a->len == b->len &&
         memcmp(a->data, b->data, a->len) == 0 && a->close_code == b->close_code &&
         a->reason_len == b->reason_len &&
         memcmp(a->reason, b->reason, a->reason_len) == 0;
}

/* Same events and outcome? Reports the first difference. */
static int rr_same(const run_res *a, const run_res *b, const char *how) {
  if (a->n != b->n) {
    HF_T_FAILF("[%s] %s: %zu events, whole input gave %zu", label, how, b->n, a->n);
    return 0;
  }
  for (size_t i = 0; i < a->n; i++) {
    if (!ev_equal(&a->ev[i], &b->ev[i])) {
      HF_T_FAILF("[%s] %s: event %zu differs (type %d/%d len %zu/%zu)", label,
                 how, i, a->ev[i].type, b->ev[i].type, a->ev[i].len, b->ev[i].len);
      return 0;
    }
  }
  if (a->result != b->result || a->err_code != b->err_code) {
    HF_T_FAILF("[%s] %s: result %zd/%u, whole input gave %zd/%u", label, how,
               b->result, b->err_code, a->result, a->err_code);
    return 0;
  }
  if (b->contract_errors) {
    HF_T_FAILF("[%s] %s: %d contract violations", label, how, b->contract_errors);
    return 0;
  }
  return 1;
}

/* Parse whole, byte by byte, in small and in random chunks; every way must
 * give the same events and outcome. *out gets the whole-input run. */
static void parse_all_ways(const bytes *s, uint64_t max_message, int expect_mask,
                           run_res *out) {
  run_stream(s->b, s->len, max_message, expect_mask, SPLIT_WHOLE, 0, out);
  if (out->contract_errors)
    HF_T_FAILF("[%s] whole: %d contract violations", label, out->contract_errors);
  run_res o;
  run_stream(s->b, s->len, max_message, expect_mask, SPLIT_BYTES, 0, &o);
  rr_same(out, &o, "byte by byte");
  rr_free(&o);
  reset_idle = 1; /* a fresh parser between frames continues identically */
  run_stream(s->b, s->len, max_message, expect_mask, SPLIT_SMALL, 7, &o);
  reset_idle = 0;
  rr_same(out, &o, "fresh parser whenever idle");
  rr_free(&o);
  int tries = s->len > 200000 ? 2 : s->len > 20000 ? 4 : 12;
  for (int i = 0; i < tries; i++) {
    uint32_t seed = 0x9e3779b9u * (uint32_t)(i + 1) + (uint32_t)s->len;
    run_stream(s->b, s->len, max_message, expect_mask,
               i & 1 ? SPLIT_SMALL : SPLIT_RANDOM, seed, &o);
    rr_same(out, &o, i & 1 ? "small chunks" : "random chunks");
    rr_free(&o);
  }
}

#define EXPECT_DATA(r, i, op, fst, fn, ptr, cnt)                                 \
  do {                                                                         \
    if ((r)->n <= (size_t)(i)) {                                               \
      HF_T_FAILF("[%s] missing event %d", label, (int)(i));                    \
    } else {                                                                   \
      const rec_ev *e_ = &(r)->ev[i];                                          \
      CHECK_INT(e_->type, HF_WS_EV_DATA);                                      \
      CHECK_INT(e_->opcode, op);                                               \
      CHECK_INT(e_->first, fst);                                               \
      CHECK_INT(e_->fin, fn);                                                  \
      CHECK_INT(e_->len, cnt);                                                   \
      if (e_->len == (size_t)(cnt) && (cnt) && memcmp(e_->data, ptr, cnt) != 0)      \
        HF_T_FAILF("[%s] event %d payload differs", label, (int)(i));          \
    }                                                                          \
  } while (0)

#define EXPECT_CTRL(r, i, typ, ptr, cnt)                                         \
  do {                                                                         \
    if ((r)->n <= (size_t)(i)) {                                               \
      HF_T_FAILF("[%s] missing event %d", label, (int)(i));                    \
    } else {                                                                   \
      const rec_ev *e_ = &(r)->ev[i];                                          \
      CHECK_INT(e_->type, typ);                                                \
      CHECK_INT(e_->len, cnt);                                                   \
      if (e_->len == (size_t)(cnt) && (cnt) && memcmp(e_->data, ptr, cnt) != 0)      \
        HF_T_FAILF("[%s] event %d payload differs", label, (int)(i));          \
    }                                                                          \
  } while (0)

/* Outcome of a whole stream: clean end, or the error and its close code. */
#define EXPECT_OUTCOME(r, res, code)                                           \
  do {                                                                         \
    if ((r)->result != (res) || (r)->err_code != (unsigned)(code))             \
      HF_T_FAILF("[%s] outcome %s/%u, expected %s/%u", label,                  \
                 hf_err_name((int)(r)->result), (r)->err_code,                 \
                 hf_err_name(res), (unsigned)(code));                          \
  } while (0)

static uint8_t *pattern(size_t n, unsigned seed) {
  uint8_t *p = malloc(n ? n : 1);
  if (!p)
    abort();
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)((i * 131 + seed * 7 + (i >> 8)) & 0xff);
  return p;
}

static uint8_t *ascii_text(size_t n) {
  uint8_t *p = malloc(n ? n : 1);
  if (!p)
    abort();
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)('a' + i % 26);
  return p;
}

/* ---- hf_frame_header ---------------------------------------------------- */

static void frame_header_length_forms(void) {
  static const struct {
    uint64_t len;
    size_t hl;
  } cases[] = {{0, 2},       {1, 2},          {125, 2},
               {126, 4},     {127, 4},        {128, 4},
               {65535, 4},   {65536, 10},     {65537, 10},
               {1u << 20, 10}, {0xffffffffull, 10}, {0x100000000ull, 10},
               {0x7fffffffffffffffull, 10}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t h[HF_FRAME_MAX_HEADER], ref[HF_FRAME_MAX_HEADER + 2];
    memset(h, 0xEE, sizeof h);
    size_t n = hf_frame_header(h, 1, HF_OP_BINARY, cases[i].len, NULL);
    CHECK_INT(n, cases[i].hl);
    bytes b = {0};
    put_header(&b, 1, 0, HF_OP_BINARY, cases[i].len, min_form(cases[i].len), NULL);
    CHECK_INT(b.len, cases[i].hl);
    memcpy(ref, b.b, b.len);
    CHECK(n == b.len && memcmp(h, ref, n) == 0);
    CHECK_INT(h[0], 0x82);
    CHECK_INT(h[1] & 0x80, 0); /* server frames are not masked */
    b_free(&b);
  }
  /* fin and opcode bits */
  uint8_t h[HF_FRAME_MAX_HEADER];
  CHECK_INT(hf_frame_header(h, 0, HF_OP_TEXT, 5, NULL), 2);
  CHECK_INT(h[0], 0x01);
  CHECK_INT(h[1], 5);
  CHECK_INT(hf_frame_header(h, 0, HF_OP_CONT, 0, NULL), 2);
  CHECK_INT(h[0], 0x00);
  CHECK_INT(hf_frame_header(h, 1, HF_OP_CLOSE, 2, NULL), 2);
  CHECK_INT(h[0], 0x88);
  CHECK_INT(hf_frame_header(h, 1, HF_OP_PING, 125, NULL), 2);
  CHECK_INT(h[0], 0x89);
  CHECK_INT(h[1], 125);
  CHECK_INT(hf_frame_header(h, 1, HF_OP_PONG, 0, NULL), 2);
  CHECK_INT(h[0], 0x8A);
  CHECK_INT(h[1], 0);
  /* 16-bit and 64-bit forms are big-endian */
  hf_frame_header(h, 1, HF_OP_TEXT, 0x1234, NULL);
  CHECK(h[1] == 126 && h[2] == 0x12 && h[3] == 0x34);
  hf_frame_header(h, 1, HF_OP_TEXT, 0x0102030405060708ull, NULL);
  CHECK(h[1] == 127 && h[2] == 1 && h[3] == 2 && h[4] == 3 && h[5] == 4 &&
        h[6] == 5 && h[7] == 6 && h[8] == 7 && h[9] == 8);
}

static void frame_header_mask(void) {
  static const uint64_t lens[] = {0, 125, 126, 65535, 65536, 0x123456789ull};
  const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    uint8_t h[HF_FRAME_MAX_HEADER];
    size_t n = hf_frame_header(h, 1, HF_OP_TEXT, lens[i], key);
    bytes b = {0};
    put_header(&b, 1, 0, HF_OP_TEXT, lens[i], min_form(lens[i]), key);
    CHECK_INT(n, b.len);
    CHECK(n == b.len && memcmp(h, b.b, n) == 0);
    CHECK(h[1] & 0x80);
    CHECK(memcmp(h + n - 4, key, 4) == 0);
    b_free(&b);
  }
  uint8_t h[HF_FRAME_MAX_HEADER];
  CHECK_INT(hf_frame_header(h, 1, HF_OP_BINARY, 0x7fffffffffffffffull, key),
            HF_FRAME_MAX_HEADER);
  /* the parser reads back what the writer wrote */
  uint8_t f[64] = {0};
  size_t hl = hf_frame_header(f, 1, HF_OP_TEXT, 5, key);
  for (size_t i = 0; i < 5; i++)
    f[hl + i] = (uint8_t)("hello"[i] ^ key[i & 3]);
  hf_ws_parser p = {0};
  p.expect_mask = 1;
  hf_ws_event ev;
  CHECK_INT(hf_ws_parse(&p, f, hl + 5, &ev, NULL), hl + 5);
  CHECK_MEM(ev.data, ev.len, "hello");
}

/* ---- hf_frame_mask ------------------------------------------------------ */

static void frame_mask_phases_vs_reference(void) {
  const uint8_t key[4] = {0x01, 0x80, 0x7f, 0xfe};
  uint8_t src[64], a[80], ref[64];
  for (size_t i = 0; i < sizeof src; i++)
    src[i] = (uint8_t)(i * 37 + 11);
  for (size_t phase = 0; phase < 8; phase++) {
    for (size_t len = 0; len <= 40; len++) {
      for (size_t align = 0; align < 8; align++) {
        memset(a, 0x5c, sizeof a);
        memcpy(a + align, src, len);
        hf_frame_mask(a + align, len, key, phase);
        for (size_t i = 0; i < len; i++)
          ref[i] = (uint8_t)(src[i] ^ key[(phase + i) % 4]);
        if (memcmp(a + align, ref, len) != 0)
          HF_T_FAILF("mask phase %zu len %zu align %zu differs", phase, len, align);
        /* bytes around the range are untouched */
        for (size_t i = 0; i < align; i++)
          if (a[i] != 0x5c)
            HF_T_FAILF("mask wrote before the range (phase %zu len %zu)", phase, len);
        for (size_t i = align + len; i < sizeof a; i++)
          if (a[i] != 0x5c)
            HF_T_FAILF("mask wrote after the range (phase %zu len %zu)", phase, len);
      }
    }
  }
  /* masking twice restores; splitting a run at any point with the right
   * phase equals one call */
  uint8_t big[1000], one[1000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = one[i] = (uint8_t)(i ^ (i >> 3));
  hf_frame_mask(one, sizeof one, key, 0);
  for (size_t cut = 0; cut <= sizeof big; cut += 37) {
    uint8_t two[1000];
    memcpy(two, big, sizeof two);
    hf_frame_mask(two, cut, key, 0);
    hf_frame_mask(two + cut, sizeof two - cut, key, cut);
    CHECK(memcmp(one, two, sizeof one) == 0);
  }
  hf_frame_mask(one, sizeof one, key, 0);
  CHECK(memcmp(one, big, sizeof big) == 0);
}

/* The fused unmask + ASCII scan: same bytes as the reference XOR, and an
 * ASCII run length that is right (everything before it is ASCII, and a
 * byte with the high bit lies within the block after it). */
static void frame_mask_ascii_vs_reference(void) {
  const uint8_t key[4] = {0x3c, 0x5a, 0x11, 0x42};
  static uint8_t src[1200], a[1200], ref[1200];
  uint32_t seed = 7;
  for (size_t len = 0; len <= 1100; len += (len < 300 ? 1 : 23)) {
    for (int variant = 0; variant < 3; variant++) {
      /* plain ASCII text, with one high byte at a pseudo-random spot
       * (variant 1), or with a high byte only in the tail (variant 2) */
      for (size_t i = 0; i < len; i++)
        src[i] = (uint8_t)('a' + i % 26);
      size_t hi = len;
      if (len && variant == 1) {
        seed = seed * 1103515245u + 12345u;
        hi = (seed >> 8) % len;
      } else if (len && variant == 2) {
        hi = len - 1;
      }
      if (hi < len)
        src[hi] = 0xc3;
      size_t phase = len % 4;
      for (int impl = 0; impl < 2; impl++) { /* as dispatched, and 16-byte */
        for (size_t i = 0; i < len; i++)
          a[i] = (uint8_t)(src[i] ^ key[(phase + i) % 4]); /* masked on the wire */
        size_t r = impl ? hf__frame_mask_ascii16(a, len, key, phase)
                        : hf_frame_mask_ascii(a, len, key, phase);
        for (size_t i = 0; i < len; i++)
          ref[i] = src[i];
        if (memcmp(a, ref, len) != 0)
          HF_T_FAILF("mask_ascii %d len %zu variant %d: bytes differ", impl, len, variant);
        if (hi == len && r != len)
          HF_T_FAILF("mask_ascii %d len %zu: all ASCII but run %zu", impl, len, r);
        if (hi < len && (r > hi || hi - r >= 128))
          HF_T_FAILF("mask_ascii %d len %zu: high byte at %zu, run %zu", impl, len, hi, r);
      }
    }
  }
}

/* Long masked text frames: the validator starts where the ASCII run ends,
 * also when the payload arrives in pieces that cut a code point. */
static void parse_6_utf8_after_long_ascii(void) {
  static char txt[1400];
  run_res r;
  size_t n = 0;
  for (int i = 0; i < 600; i++)
    txt[n++] = (char)('a' + i % 26);
  memcpy(txt + n, "\xc3\xa9", 2); /* é */
  n += 2;
  for (int i = 0; i < 300; i++)
    txt[n++] = (char)('A' + i % 26);
  memcpy(txt + n, "\xe2\x82\xac", 3); /* € */
  n += 3;
  txt[n] = 0;
  bytes s = {0};
  put_str(&s, 1, HF_OP_TEXT, txt);
  label = "long ascii then multi-byte";
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, 0, 0);
  EXPECT_DATA(&r, 0, HF_OP_TEXT, 1, 1, txt, n);
  rr_free(&r);
  b_free(&s);
  /* a lone continuation byte after 700 ASCII bytes is refused */
  for (int i = 0; i < 700; i++)
    txt[i] = 'x';
  txt[700] = (char)0x80;
  txt[701] = 0;
  put_str(&s, 1, HF_OP_TEXT, txt);
  label = "long ascii then a bad byte";
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, HF_EUTF8, 1007);
  rr_free(&r);
  b_free(&s);
  /* a sequence begun in one fragment and ended after 300 ASCII bytes of
   * the next is refused (the ASCII run is not a code-point boundary) */
  bytes f = {0};
  put_frame(&f, 0, HF_OP_TEXT, "ab\xc3", 3);
  put_frame(&f, 0, HF_OP_CONT, txt, 300);
  put_frame(&f, 1, HF_OP_CONT, "\xa9", 1); /* would complete the é */
  label = "sequence cut by ascii";
  parse_all_ways(&f, 0, 1, &r);
  EXPECT_OUTCOME(&r, HF_EUTF8, 1007);
  rr_free(&r);
  b_free(&f);
  label = "";
}

/* ---- hf_frame_close_payload --------------------------------------------- */

static void frame_close_payload_truncation(void) {
  uint8_t out[HF_FRAME_MAX_CONTROL];
  CHECK_INT(hf_frame_close_payload(out, 1000, "bye"), 5);
  CHECK(out[0] == 0x03 && out[1] == 0xe8);
  CHECK_MEM(out + 2, 3, "bye");
  CHECK_INT(hf_frame_close_payload(out, 4999, ""), 2);
  CHECK(out[0] == 0x13 && out[1] == 0x87);
  /* ASCII: 123 fits exactly, longer is cut at 123 */
  char r[400];
  memset(r, 'x', sizeof r);
  r[123] = 0;
  CHECK_INT(hf_frame_close_payload(out, 1001, r), 125);
  r[123] = 'x';
  r[300] = 0;
  CHECK_INT(hf_frame_close_payload(out, 1001, r), 125);
  CHECK(memcmp(out + 2, r, 123) == 0);
  /* a 2, 3 or 4-byte sequence at every offset around the cut */
  static const char *seqs[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
  for (size_t s = 0; s < 3; s++) {
    size_t sl = strlen(seqs[s]);
    for (size_t at = 110; at <= 130; at++) {
      memset(r, 'y', sizeof r);
      memcpy(r + at, seqs[s], sl);
      r[140] = 0;
      memset(out, 0, sizeof out);
      size_t n = hf_frame_close_payload(out, 1000, r);
      size_t rl = n - 2;
      size_t expect = at < 123 && at + sl > 123 ? at : 123;
      if (rl != expect)
        HF_T_FAILF("seq %zu at %zu: reason %zu bytes, expected %zu", sl, at, rl, expect);
      CHECK(rl <= 123);
      CHECK(hf_utf8_valid(out + 2, rl));
      CHECK(memcmp(out + 2, r, rl) == 0);
    }
  }
  /* a reason made only of 4-byte sequences: 120 bytes (30 code points) */
  for (size_t i = 0; i < 35; i++)
    memcpy(r + 4 * i, "\xf0\x90\x80\x80", 4);
  r[140] = 0;
  CHECK_INT(hf_frame_close_payload(out, 1000, r), 2 + 120);
  CHECK(hf_utf8_valid(out + 2, 120));
  /* every prefix length of a mixed reason: result is the longest valid
   * prefix of at most 123 bytes */
  const char *mix = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
  size_t ml = strlen(mix);
  for (size_t lead = 100; lead < 124; lead++) {
    memset(r, 'q', lead);
    memcpy(r + lead, mix, ml);
    memcpy(r + lead + ml, mix, ml);
    r[lead + 2 * ml] = 0;
    size_t n = hf_frame_close_payload(out, 1000, r) - 2;
    size_t best = 0;
    for (size_t k = 0; k <= 123 && k <= strlen(r); k++)
      if (hf_utf8_valid((const uint8_t *)r, k))
        best = k;
    if (n != best)
      HF_T_FAILF("lead %zu: reason %zu bytes, longest valid prefix %zu", lead, n, best);
  }
}

/* ---- hf_close_code_valid ------------------------------------------------ */

static int ref_code_valid(unsigned c) {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
         (c >= 3000 && c <= 4999);
}

static void close_code_valid_boundaries(void) {
  static const unsigned ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                1010, 1011, 1012, 1013, 1014, 3000, 3999,
                                4000, 4999};
  static const unsigned bad[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                                 1016, 1100, 2000, 2999, 5000, 65535, 65536,
                                 100000};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (!hf_close_code_valid(ok[i]))
      HF_T_FAILF("code %u should be valid", ok[i]);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (hf_close_code_valid(bad[i]))
      HF_T_FAILF("code %u should be invalid", bad[i]);
  for (unsigned c = 0; c <= 70000; c++)
    if (!!hf_close_code_valid(c) != ref_code_valid(c))
      HF_T_FAILF("code %u: got %d", c, hf_close_code_valid(c));
  /* every code the server sends is a valid wire code with a reason */
  static const unsigned sent[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011,
                                  3001, 3004, 3008, 3009, 3012, 3013, 3501, 4321};
  for (size_t i = 0; i < sizeof sent / sizeof sent[0]; i++) {
    CHECK(hf_close_code_valid(sent[i]));
    const char *r = hf_close_reason(sent[i]);
    CHECK(r && *r);
  }
}

/* ---- parser: section 1 (data frames) ------------------------------------ */

static const size_t lens_1[] = {0, 1, 125, 126, 127, 128, 65535, 65536, 65537};

static void parse_1_text_binary_lengths(void) {
  for (int op = HF_OP_TEXT; op <= HF_OP_BINARY; op++) {
    for (size_t i = 0; i < sizeof lens_1 / sizeof lens_1[0]; i++) {
      size_t n = lens_1[i];
      uint8_t *pl = op == HF_OP_TEXT ? ascii_text(n) : pattern(n, (unsigned)i);
      bytes s = {0};
      put_frame(&s, 1, op, pl, n);
      char lb[64];
      snprintf(lb, sizeof lb, "1.x op %d len %zu", op, n);
      label = lb;
      run_res r;
      parse_all_ways(&s, 0, 1, &r);
      EXPECT_OUTCOME(&r, 0, 0);
      CHECK_INT(r.n, 1);
      EXPECT_DATA(&r, 0, op, 1, 1, pl, n);
      CHECK_INT(r.consumed, s.len);
      rr_free(&r);
      /* the same payload in the 64-bit length form (non-minimal) */
      b_free(&s);
      uint8_t key[4] = {1, 2, 3, 4};
      put_header(&s, 1, 0, op, n, 64, key);
      for (size_t k = 0; k < n; k++)
        b_byte(&s, (uint8_t)(pl[k] ^ key[k & 3]));
      run_stream(s.b, s.len, 0, 1, SPLIT_WHOLE, 0, &r);
      EXPECT_OUTCOME(&r, 0, 0);
      EXPECT_DATA(&r, 0, op, 1, 1, pl, n);
      rr_free(&r);
      b_free(&s);
      free(pl);
    }
  }
  label = "";
}

static void parse_1_pipelined_messages(void) {
  /* Many messages of varied sizes back to back in one buffer. */
  bytes s = {0};
  uint8_t *pl = pattern(70000, 3);
  uint8_t *tx = ascii_text(70000);
  size_t sizes[300];
  for (size_t i = 0; i < 300; i++) {
    sizes[i] = i % 50 == 7 ? 65536 + i : (i * 37) % 300;
    put_frame(&s, 1, i % 3 ? HF_OP_BINARY : HF_OP_TEXT, i % 3 ? pl : tx, sizes[i]);
  }
  label = "1.x pipelined";
  run_res r;
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, 0, 0);
  CHECK_INT(r.n, 300);
  for (size_t i = 0; i < 300 && i < r.n; i++)
    EXPECT_DATA(&r, i, i % 3 ? HF_OP_BINARY : HF_OP_TEXT, 1, 1,
                i % 3 ? pl : tx, sizes[i]);
  rr_free(&r);
  b_free(&s);
  free(pl);
  free(tx);
  label = "";
}

/* ---- parser: section 2 (ping/pong) -------------------------------------- */

static void parse_2_ping_pong(void) {
  uint8_t pl[126];
  for (size_t i = 0; i < sizeof pl; i++)
    pl[i] = (uint8_t)(0xff - i);
  char lb[64];
  for (size_t n = 0; n <= 125; n++) {
    bytes s = {0};
    put_frame(&s, 1, HF_OP_PING, pl, n);
    snprintf(lb, sizeof lb, "2.x ping %zu", n);
    label = lb;
    run_res r;
    parse_all_ways(&s, 0, 1, &r);
    EXPECT_OUTCOME(&r, 0, 0);
    CHECK_INT(r.n, 1);
    EXPECT_CTRL(&r, 0, HF_WS_EV_PING, pl, n);
    rr_free(&r);
    b_free(&s);
  }
  /* 126-byte ping: rejected from the first two header bytes */
  label = "2.5 ping 126";
  bytes s = {0};
  put_frame(&s, 1, HF_OP_PING, pl, 126);
  run_res r;
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, HF_EPROTO, 1002);
  CHECK_INT(r.n, 0);
  rr_free(&r);
  hf_ws_parser p = {0};
  p.expect_mask = 1;
  hf_ws_event ev;
  CHECK_INT(hf_ws_parse(&p, s.b, 2, &ev, NULL), HF_EPROTO);
  CHECK_INT(p.err_code, 1002);
  b_free(&s);
  /* unsolicited pong, pongs with payload; 10 pings in a row */
  label = "2.x pong and 10 pings";
  put_frame(&s, 1, HF_OP_PONG, NULL, 0);
  put_frame(&s, 1, HF_OP_PONG, "unsolicited", 11);
  for (int i = 0; i < 10; i++)
    put_frame(&s, 1, HF_OP_PING, "ping-payload", (size_t)i);
  put_str(&s, 1, HF_OP_TEXT, "after");
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, 0, 0);
  CHECK_INT(r.n, 13);
  EXPECT_CTRL(&r, 0, HF_WS_EV_PONG, "", 0);
  EXPECT_CTRL(&r, 1, HF_WS_EV_PONG, "unsolicited", 11);
  for (int i = 0; i < 10; i++)
    EXPECT_CTRL(&r, 2 + i, HF_WS_EV_PING, "ping-payload", (size_t)i);
  EXPECT_DATA(&r, 12, HF_OP_TEXT, 1, 1, "after", 5);
  rr_free(&r);
  b_free(&s);
  /* control frames are not subject to max_message */
  label = "2.x ping with a small max_message";
  put_frame(&s, 1, HF_OP_PING, pl, 125);
  parse_all_ways(&s, 10, 1, &r);
  EXPECT_OUTCOME(&r, 0, 0);
  EXPECT_CTRL(&r, 0, HF_WS_EV_PING, pl, 125);
  rr_free(&r);
  b_free(&s);
  label = "";
}

/* ---- parser: section 3 (reserved bits) ---------------------------------- */

static void parse_3_rsv_bits(void) {
  static const int ops[] = {HF_OP_TEXT, HF_OP_BINARY, HF_OP_PING, HF_OP_PONG,
                            HF_OP_CLOSE, HF_OP_CONT};
  char lb[64];
  for (int rsv = 1; rsv <= 7; rsv++) {
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
      bytes s = {0};
      put_str(&s, 1, HF_OP_TEXT, "valid first");
      if (ops[o] == HF_OP_CONT)
        put_str(&s, 0, HF_OP_TEXT, "frag");
      put_frame_x(&s, 1, rsv, ops[o], "\x03\xe8", 2, 0);
      put_str(&s, 1, HF_OP_TEXT, "never seen");
      snprintf(lb, sizeof lb, "3.x rsv %d op %d", rsv, ops[o]);
      label = lb;
      run_res r;
      parse_all_ways(&s, 0, 1, &r);
      EXPECT_OUTCOME(&r, HF_EPROTO, 1002);
      /* the valid message before the violation is delivered first */
      CHECK_INT(r.n, ops[o] == HF_OP_CONT ? 2 : 1);
      EXPECT_DATA(&r, 0, HF_OP_TEXT, 1, 1, "valid first", 11);
      rr_free(&r);
      b_free(&s);
    }
  }
  /* detected from the first two bytes alone */
  hf_ws_parser p = {0};
  p.expect_mask = 1;
  uint8_t hb[2] = {0xC1, 0x85};
  hf_ws_event ev;
  CHECK_INT(hf_ws_parse(&p, hb, 2, &ev, NULL), HF_EPROTO);
  CHECK_INT(p.err_code, 1002);
  label = "";
}

/* ---- parser: section 4 (opcodes) ---------------------------------------- */

static void parse_4_reserved_opcodes(void) {
  static const int ops[] = {3, 4, 5, 6, 7, 11, 12, 13, 14, 15};
  char lb[64];
  for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
    for (int with_payload = 0; with_payload < 2; with_payload++) {
      bytes s = {0};
      put_str(&s, 1, HF_OP_TEXT, "hello");
      put_frame(&s, 1, ops[o], "reserved", with_payload ? 8 : 0);
      put_frame(&s, 1, HF_OP_PING, NULL, 0);
      snprintf(lb, sizeof lb, "4.x opcode %d", ops[o]);
      label = lb;
      run_res r;
      parse_all_ways(&s, 0, 1, &r);
      EXPECT_OUTCOME(&r, HF_EPROTO, 1002);
      CHECK_INT(r.n, 1);
      EXPECT_DATA(&r, 0, HF_OP_TEXT, 1, 1, "hello", 5);
      rr_free(&r);
      b_free(&s);
    }
  }
  label = "";
}

/* ---- parser: section 5 (fragmentation) ---------------------------------- */

static void parse_5_fragmentation(void) {
  run_res r;
  bytes s = {0};
  /* 5.3/5.4: text in two fragments */
  label = "5.x two fragments";
  put_str(&s, 0, HF_OP_TEXT, "fragment1");
  put_str(&s, 1, HF_OP_CONT, "fragment2");
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, 0, 0);
  CHECK_INT(r.n, 2);
  EXPECT_DATA(&r, 0, HF_OP_TEXT, 1, 0, "fragment1", 9);
  EXPECT_DATA(&r, 1, HF_OP_TEXT, 0, 1, "fragment2", 9);
  rr_free(&r);
  b_free(&s);
  /* binary in many 1-byte fragments */
  label = "5.x many 1-byte fragments";
  const char *msg = "a binary message in one-byte fragments";
  size_t ml = strlen(msg);
  for (size_t i = 0; i < ml; i++)
    put_frame(&s, i == ml - 1, i ? HF_OP_CONT : HF_OP_BINARY, msg + i, 1);
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, 0, 0);
  CHECK_INT(r.n, ml);
  for (size_t i = 0; i < ml && i < r.n; i++)
    EXPECT_DATA(&r, i, HF_OP_BINARY, i == 0, i == ml - 1, msg + i, 1);
  rr_free(&r);
  b_free(&s);
  /* 5.6-5.8: ping (and pong) between fragments */
  label = "5.x ping between fragments";
  put_str(&s, 0, HF_OP_TEXT, "frag1");
  put_frame(&s, 1, HF_OP_PING, "ping", 4);
  put_frame(&s, 1, HF_OP_PONG, "pong", 4);
  put_str(&s, 1, HF_OP_CONT, "frag2");
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, 0, 0);
  CHECK_INT(r.n, 4);
  EXPECT_DATA(&r, 0, HF_OP_TEXT, 1, 0, "frag1", 5);
  EXPECT_CTRL(&r, 1, HF_WS_EV_PING, "ping", 4);
  EXPECT_CTRL(&r, 2, HF_WS_EV_PONG, "pong", 4);
  EXPECT_DATA(&r, 3, HF_OP_TEXT, 0, 1, "frag2", 5);
  rr_free(&r);
  b_free(&s);
  /* close between fragments is delivered too (the caller stops there) */
  label = "5.x close between fragments";
  put_str(&s, 0, HF_OP_TEXT, "frag1");
  put_close(&s, 1000, "", 0);
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, 0, 0);
  CHECK_INT(r.n, 2);
  if (r.n == 2)
    CHECK_INT(r.ev[1].close_code, 1000);
  rr_free(&r);
  b_free(&s);
  /* 5.18-5.20 style: empty fragments, empty final, empty message */
  label = "5.x empty fragments";
  put_frame(&s, 0, HF_OP_TEXT, NULL, 0);
  put_str(&s, 0, HF_OP_CONT, "x");
  put_frame(&s, 0, HF_OP_CONT, NULL, 0);
  put_frame(&s, 1, HF_OP_CONT, NULL, 0);
  put_frame(&s, 0, HF_OP_BINARY, NULL, 0);
  put_frame(&s, 1, HF_OP_CONT, NULL, 0);
  put_frame(&s, 1, HF_OP_TEXT, NULL, 0);
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, 0, 0);
  CHECK_INT(r.n, 7);
  EXPECT_DATA(&r, 0, HF_OP_TEXT, 1, 0, "", 0);
  EXPECT_DATA(&r, 1, HF_OP_TEXT, 0, 0, "x", 1);
  EXPECT_DATA(&r, 2, HF_OP_TEXT, 0, 0, "", 0);
  EXPECT_DATA(&r, 3, HF_OP_TEXT, 0, 1, "", 0);
  EXPECT_DATA(&r, 4, HF_OP_BINARY, 1, 0, "", 0);
  EXPECT_DATA(&r, 5, HF_OP_BINARY, 0, 1, "", 0);
  EXPECT_DATA(&r, 6, HF_OP_TEXT, 1, 1, "", 0);
  rr_free(&r);
  b_free(&s);
  /* a new message may start after the fragmented one ended */
  label = "5.x message after a fragmented one";
  put_str(&s, 0, HF_OP_BINARY, "a");
  put_str(&s, 1, HF_OP_CONT, "b");
  put_str(&s, 0, HF_OP_TEXT, "c");
  put_str(&s, 1, HF_OP_CONT, "d");
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, 0, 0);
  CHECK_INT(r.n, 4);
  EXPECT_DATA(&r, 2, HF_OP_TEXT, 1, 0, "c", 1);
  EXPECT_DATA(&r, 3, HF_OP_TEXT, 0, 1, "d", 1);
  rr_free(&r);
  b_free(&s);
  label = "";
}

static void parse_5_fragmentation_violations(void) {
  run_res r;
  bytes s = {0};
  static const int ctl[] = {HF_OP_PING, HF_OP_PONG, HF_OP_CLOSE};
  char lb[64];
  for (size_t i = 0; i < 3; i++) {
    /* 5.1/5.2 style: a control frame with FIN=0 (and its continuation) */
    put_str(&s, 1, HF_OP_TEXT, "before");
    put_frame(&s, 0, ctl[i], "\x03\xe8", 2);
    put_frame(&s, 1, HF_OP_CONT, "\x03\xe8", 2);
    snprintf(lb, sizeof lb, "5.x fragmented control op %d", ctl[i]);
    label = lb;
    parse_all_ways(&s, 0, 1, &r);
    EXPECT_OUTCOME(&r, HF_EPROTO, 1002);
    CHECK_INT(r.n, 1);
    rr_free(&r);
    b_free(&s);
  }
  /* 5.9-5.14: continuation with nothing to continue */
  for (int fin = 0; fin < 2; fin++) {
    label = fin ? "5.x continuation fin=1 without start" : "5.x continuation fin=0 without start";
    put_str(&s, fin, HF_OP_CONT, "orphan");
    put_str(&s, 1, HF_OP_TEXT, "never");
    parse_all_ways(&s, 0, 1, &r);
    EXPECT_OUTCOME(&r, HF_EPROTO, 1002);
    CHECK_INT(r.n, 0);
    rr_free(&r);
    b_free(&s);
  }
  /* continuation after a complete message */
  label = "5.x continuation after a complete message";
  put_str(&s, 1, HF_OP_TEXT, "done");
  put_str(&s, 1, HF_OP_CONT, "late");
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, HF_EPROTO, 1002);
  CHECK_INT(r.n, 1);
  rr_free(&r);
  b_free(&s);
  /* 5.17/5.18-like: a new text/binary frame inside a fragmented message */
  for (int op = HF_OP_TEXT; op <= HF_OP_BINARY; op++) {
    label = op == HF_OP_TEXT ? "5.x new text inside fragmented" : "5.x new binary inside fragmented";
    put_str(&s, 0, HF_OP_TEXT, "frag1");
    put_frame(&s, 1, HF_OP_PING, NULL, 0);
    put_str(&s, 1, op, "new");
    parse_all_ways(&s, 0, 1, &r);
    EXPECT_OUTCOME(&r, HF_EPROTO, 1002);
    CHECK_INT(r.n, 2);
    rr_free(&r);
    b_free(&s);
  }
  label = "";
}

/* ---- parser: section 6 (UTF-8) ------------------------------------------ */

static const char *valid_texts[] = {
    "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", /* kosme */
    "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!",
    "\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xef\xbf\xbf\xed\x9f\xbf\xee\x80\x80",
    "\xc2\x80\xdf\xbf\xe0\xa0\x80\xf0\x90\x80\x80",
};

static void parse_6_utf8_valid_split(void) {
  run_res r;
  char lb[64];
  for (size_t t = 0; t < sizeof valid_texts / sizeof valid_texts[0]; t++) {
    const char *txt = valid_texts[t];
    size_t n = strlen(txt);
    /* whole */
    bytes s = {0};
    put_str(&s, 1, HF_OP_TEXT, txt);
    snprintf(lb, sizeof lb, "6.x valid text %zu whole", t);
    label = lb;
    parse_all_ways(&s, 0, 1, &r);
    EXPECT_OUTCOME(&r, 0, 0);
    EXPECT_DATA(&r, 0, HF_OP_TEXT, 1, 1, txt, n);
    rr_free(&r);
    b_free(&s);
    /* two fragments cut at every byte, so also inside code points, with a
     * ping in between */
    for (size_t cut = 0; cut <= n; cut++) {
      put_frame(&s, 0, HF_OP_TEXT, txt, cut);
      put_frame(&s, 1, HF_OP_PING, "p", 1);
      put_frame(&s, 1, HF_OP_CONT, txt + cut, n - cut);
      snprintf(lb, sizeof lb, "6.x valid text %zu cut %zu", t, cut);
      label = lb;
      run_stream(s.b, s.len, 0, 1, SPLIT_WHOLE, 0, &r);
      EXPECT_OUTCOME(&r, 0, 0);
      CHECK_INT(r.n, 3);
      EXPECT_DATA(&r, 0, HF_OP_TEXT, 1, 0, txt, cut);
      EXPECT_DATA(&r, 2, HF_OP_TEXT, 0, 1, txt + cut, n - cut);
      rr_free(&r);
      run_stream(s.b, s.len, 0, 1, SPLIT_BYTES, 0, &r);
      EXPECT_OUTCOME(&r, 0, 0);
      CHECK_INT(r.n, 3);
      rr_free(&r);
      b_free(&s);
    }
    /* one fragment per byte */
    for (size_t i = 0; i < n; i++)
      put_frame(&s, i == n - 1, i ? HF_OP_CONT : HF_OP_TEXT, txt + i, 1);
    snprintf(lb, sizeof lb, "6.x valid text %zu per byte", t);
    label = lb;
    parse_all_ways(&s, 0, 1, &r);
    EXPECT_OUTCOME(&r, 0, 0);
    CHECK_INT(r.n, n);
    rr_free(&r);
    b_free(&s);
  }
  /* binary messages are not UTF-8 checked */
  label = "6.x binary is not validated";
  bytes s = {0};
  put_frame(&s, 1, HF_OP_BINARY, "\xff\xfe\xc0\x80", 4);
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, 0, 0);
  rr_free(&r);
  b_free(&s);
  label = "";
}

static const char *invalid_texts[] = {
    "\xc0\xaf",                 /* overlong '/' */
    "\xe0\x80\xaf",             /* overlong 3-byte */
    "\xf0\x80\x80\xaf",         /* overlong 4-byte */
    "\xc1\xbf",
    "\xed\xa0\x80",             /* U+D800 */
    "\xed\xbf\xbf",             /* U+DFFF */
    "\xed\xa0\x80\xed\xb0\x80", /* surrogate pair */
    "\xf4\x90\x80\x80",         /* U+110000 */
    "\xf5\x80\x80\x80",
    "\xf8\x88\x80\x80\x80",
    "\xfe",
    "\xff",
    "\x80",                     /* lone continuation */
    "abc\xbf",
    "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
    "\xc2",                     /* truncated at the end of the message */
    "\xe2\x82",
    "\xf0\x9f\x98",
    "kosme\xce",
};

static void parse_6_utf8_invalid(void) {
  run_res r;
  char lb[64];
  for (size_t t = 0; t < sizeof invalid_texts / sizeof invalid_texts[0]; t++) {
    const char *txt = invalid_texts[t];
    size_t n = strlen(txt);
    /* whole: the echo before it is delivered, nothing after */
    bytes s = {0};
    put_str(&s, 1, HF_OP_TEXT, "ok");
    put_str(&s, 1, HF_OP_TEXT, txt);
    put_str(&s, 1, HF_OP_TEXT, "never");
    snprintf(lb, sizeof lb, "6.x invalid %zu whole", t);
    label = lb;
    parse_all_ways(&s, 0, 1, &r);
    EXPECT_OUTCOME(&r, HF_EUTF8, 1007);
    CHECK_INT(r.n, 1);
    rr_free(&r);
    b_free(&s);
    /* fragmented at every cut (empty fragments included) */
    for (size_t cut = 0; cut <= n; cut++) {
      put_frame(&s, 0, HF_OP_TEXT, txt, cut);
      put_frame(&s, 1, HF_OP_CONT, txt + cut, n - cut);
      snprintf(lb, sizeof lb, "6.x invalid %zu cut %zu", t, cut);
      label = lb;
      parse_all_ways(&s, 0, 1, &r);
      EXPECT_OUTCOME(&r, HF_EUTF8, 1007);
      CHECK(r.n <= 1);
      rr_free(&r);
      b_free(&s);
    }
  }
  label = "";
}

static void parse_6_utf8_fail_fast(void) {
  /* 6.x fail-fast: a 1000-byte text frame whose bytes 3.. are invalid; only
   * the header and 8 payload bytes are present. */
  uint8_t pl[1000];
  memset(pl, 'a', sizeof pl);
  memcpy(pl + 3, "\xed\xa0\x80", 3); /* a surrogate */
  static const size_t forms[] = {7, 16, 64};
  for (size_t f = 0; f < 3; f++) {
    size_t n = forms[f] == 7 ? 100 : 1000;
    bytes s = {0};
    uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
    put_header(&s, 1, 0, HF_OP_TEXT, n, (int)forms[f], key);
    size_t hl = s.len;
    for (size_t i = 0; i < n; i++)
      b_byte(&s, (uint8_t)(pl[i] ^ key[i & 3]));
    /* the prefix alone fails */
    hf_ws_parser p = {0};
    p.expect_mask = 1;
    hf_ws_event ev;
    size_t need = 1;
    uint8_t *buf = malloc(s.len);
    memcpy(buf, s.b, s.len);
    ssize_t r = hf_ws_parse(&p, buf, hl + 8, &ev, &need);
    CHECK_INT(r, HF_EUTF8);
    CHECK_INT(p.err_code, 1007);
    /* fed byte by byte: fails on the byte after the surrogate lead */
    memcpy(buf, s.b, s.len);
    memset(&p, 0, sizeof p);
    p.expect_mask = 1;
    size_t len = 0;
    for (len = 1; len <= s.len; len++) {
      r = hf_ws_parse(&p, buf, len, &ev, &need);
      if (r != HF_EAGAIN)
        break;
    }
    CHECK_INT(r, HF_EUTF8);
    CHECK_INT(len, hl + 5); /* ED A0: A0 is the first impossible byte */
    CHECK_INT(p.err_code, 1007);
    free(buf);
    b_free(&s);
  }
  /* ... and in the first fragment of a fragmented message (FIN=0) */
  {
    bytes s = {0};
    uint8_t key[4] = {9, 8, 7, 6};
    put_header(&s, 0, 0, HF_OP_TEXT, 500, 16, key);
    size_t hl = s.len;
    const char *bad = "ab\xf4\x90";
    for (size_t i = 0; i < 4; i++)
      b_byte(&s, (uint8_t)(bad[i] ^ key[i & 3]));
    hf_ws_parser p = {0};
    p.expect_mask = 1;
    hf_ws_event ev;
    CHECK_INT(hf_ws_parse(&p, s.b, hl + 4, &ev, NULL), HF_EUTF8);
    CHECK_INT(p.err_code, 1007);
    b_free(&s);
  }
  /* ... and in a continuation frame whose start completes a bad sequence */
  {
    bytes s = {0};
    put_str(&s, 0, HF_OP_TEXT, "ok \xe2");
    uint8_t key[4] = {0, 0, 0, 1};
    put_header(&s, 0, 0, HF_OP_CONT, 300, 16, key);
    size_t pre = s.len;
    b_byte(&s, 0x28 ^ key[0]); /* E2 followed by '(' */
    hf_ws_parser p = {0};
    p.expect_mask = 1;
    hf_ws_event ev;
    ssize_t r = hf_ws_parse(&p, s.b, s.len, &ev, NULL);
    CHECK(r > 0);
    CHECK_INT(hf_ws_parse(&p, s.b + r, pre + 1 - (size_t)r, &ev, NULL), HF_EUTF8);
    CHECK_INT(p.err_code, 1007);
    b_free(&s);
  }
  /* a valid prefix of an incomplete frame is not an error */
  {
    bytes s = {0};
    uint8_t key[4] = {5, 5, 5, 5};
    put_header(&s, 1, 0, HF_OP_TEXT, 300, 16, key);
    const char *ok = "\xe2\x82"; /* incomplete sequence, more to come */
    for (size_t i = 0; i < 2; i++)
      b_byte(&s, (uint8_t)(ok[i] ^ key[i & 3]));
    hf_ws_parser p = {0};
    p.expect_mask = 1;
    hf_ws_event ev;
    size_t need = 0;
    CHECK_INT(hf_ws_parse(&p, s.b, s.len, &ev, &need), HF_EAGAIN);
    CHECK_INT(need, 4 + 4 + 300);
    b_free(&s);
  }
}

/* ---- parser: section 7 (close) ------------------------------------------ */

static void parse_7_close(void) {
  run_res r;
  bytes s = {0};
  char lb[64];
  /* 7.3.1: empty close -> 1005 */
  label = "7.3.1 empty close";
  put_frame(&s, 1, HF_OP_CLOSE, NULL, 0);
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, 0, 0);
  CHECK_INT(r.n, 1);
  if (r.n == 1) {
    CHECK_INT(r.ev[0].type, HF_WS_EV_CLOSE);
    CHECK_INT(r.ev[0].close_code, 1005);
    CHECK_INT(r.ev[0].reason_len, 0);
  }
  rr_free(&r);
  b_free(&s);
  /* 7.3.2: 1-byte payload */
  label = "7.3.2 one-byte close";
  put_frame(&s, 1, HF_OP_CLOSE, "\x03", 1);
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, HF_EPROTO, 1002);
  rr_free(&r);
  b_free(&s);
  /* ... also when the byte after it would make a valid code (0x0F81) */
  put_frame(&s, 1, HF_OP_CLOSE, "\x0f", 1);
  put_str(&s, 1, HF_OP_TEXT, "next");
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, HF_EPROTO, 1002);
  CHECK_INT(r.n, 0);
  rr_free(&r);
  b_free(&s);
  /* 7.7.x valid codes, with and without a reason */
  static const unsigned ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                1011, 3000, 3999, 4000, 4999};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    snprintf(lb, sizeof lb, "7.7 code %u", ok[i]);
    label = lb;
    put_close(&s, ok[i], NULL, 0);
    put_close(&s, ok[i], "why \xc3\xa9", 6);
    parse_all_ways(&s, 0, 1, &r);
    EXPECT_OUTCOME(&r, 0, 0);
    CHECK_INT(r.n, 2);
    if (r.n == 2) {
      CHECK_INT(r.ev[0].close_code, ok[i]);
      CHECK_INT(r.ev[0].reason_len, 0);
      CHECK_INT(r.ev[1].close_code, ok[i]);
      CHECK_MEM(r.ev[1].reason, r.ev[1].reason_len, "why \xc3\xa9");
    }
    rr_free(&r);
    b_free(&s);
  }
  /* 7.9.x invalid codes */
  static const unsigned bad[] = {0,    999,  1004, 1005, 1006, 1015, 1016,
                                 1100, 2000, 2999, 5000, 65535};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(lb, sizeof lb, "7.9 code %u", bad[i]);
    label = lb;
    put_close(&s, bad[i], "x", 1);
    parse_all_ways(&s, 0, 1, &r);
    EXPECT_OUTCOME(&r, HF_EPROTO, 1002);
    rr_free(&r);
    b_free(&s);
  }
  /* 7.5.1: invalid UTF-8 reason -> 1002 (frame.h: "a close reason that is
   * invalid UTF-8 gives 1002"; HF_EPROTO or HF_EUTF8 are both read as
   * conforming for the return value) */
  static const char *bad_reasons[] = {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
                                      "\xff", "ab\xc2"};
  for (size_t i = 0; i < 3; i++) {
    snprintf(lb, sizeof lb, "7.5.1 bad reason %zu", i);
    label = lb;
    put_close(&s, 1000, bad_reasons[i], strlen(bad_reasons[i]));
    parse_all_ways(&s, 0, 1, &r);
    CHECK(r.result == HF_EPROTO || r.result == HF_EUTF8);
    CHECK_INT(r.err_code, 1002);
    CHECK_INT(r.n, 0);
    rr_free(&r);
    b_free(&s);
  }
  /* 7.4.x: reason of 123 bytes (max), multi-byte */
  label = "7.4 123-byte reason";
  char reason[124];
  memset(reason, 'r', 123);
  memcpy(reason + 100, "\xf0\x9f\x98\x80", 4);
  reason[123] = 0;
  put_close(&s, 1000, reason, 123);
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, 0, 0);
  if (r.n == 1) {
    CHECK_INT(r.ev[0].close_code, 1000);
    CHECK_MEM(r.ev[0].reason, r.ev[0].reason_len, reason);
  } else {
    HF_T_FAILF("[%s] %zu events", label, r.n);
  }
  rr_free(&r);
  b_free(&s);
  /* 124-byte reason makes a 126-byte control frame */
  label = "7.4 124-byte reason";
  char r124[125];
  memset(r124, 'r', 124);
  put_close(&s, 1000, r124, 124);
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, HF_EPROTO, 1002);
  rr_free(&r);
  b_free(&s);
  /* frames after a close still parse (the caller decides to ignore them) */
  label = "7.x data after close";
  put_close(&s, 1000, NULL, 0);
  put_str(&s, 1, HF_OP_TEXT, "after");
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, 0, 0);
  CHECK_INT(r.n, 2);
  rr_free(&r);
  b_free(&s);
  label = "";
}

/* ---- parser: section 9 and masking -------------------------------------- */

static void parse_9_masks_and_lengths(void) {
  run_res r;
  bytes s = {0};
  /* an unmasked client frame */
  label = "unmasked client frame";
  put_str(&s, 1, HF_OP_TEXT, "ok");
  put_frame_x(&s, 1, 0, HF_OP_TEXT, "plain", 5, 1);
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, HF_EPROTO, 1002);
  CHECK_INT(r.n, 1);
  rr_free(&r);
  b_free(&s);
  label = "unmasked ping";
  put_frame_x(&s, 1, 0, HF_OP_PING, "", 0, 1);
  parse_all_ways(&s, 0, 1, &r);
  EXPECT_OUTCOME(&r, HF_EPROTO, 1002);
  rr_free(&r);
  b_free(&s);
  /* 64-bit length with the top bit set: rejected from the header alone,
   * also with a limit configured */
  for (int lim = 0; lim < 2; lim++) {
    label = lim ? "top bit with limit" : "top bit";
    uint8_t key[4] = {1, 1, 1, 1};
    put_header(&s, 1, 0, HF_OP_BINARY, 0x8000000000000001ull, 64, key);
    parse_all_ways(&s, lim ? 1000 : 0, 1, &r);
    EXPECT_OUTCOME(&r, HF_EPROTO, 1002);
    rr_free(&r);
    b_free(&s);
  }
  /* the largest legal length without a limit: header accepted, need set */
  {
    uint8_t key[4] = {1, 1, 1, 1};
    put_header(&s, 1, 0, HF_OP_BINARY, 0x7fffffffffffffffull, 64, key);
    hf_ws_parser p = {0};
    p.expect_mask = 1;
    hf_ws_event ev;
    size_t need = 0;
    CHECK_INT(hf_ws_parse(&p, s.b, s.len, &ev, &need), HF_EAGAIN);
    CHECK(need == (size_t)(14 + 0x7fffffffffffffffull));
    b_free(&s);
  }
  /* 9.x: a 1 MiB - 1 text and binary message with a 1 MiB limit */
  label = "9.x 1 MiB - 1";
  size_t n = (1u << 20) - 1;
  uint8_t *tx = ascii_text(n);
  tx[1000] = 0xc3;
  tx[1001] = 0xa9;
  put_frame(&s, 1, HF_OP_TEXT, tx, n);
  put_frame(&s, 1, HF_OP_BINARY, tx, n);
  parse_all_ways(&s, 1u << 20, 1, &r);
  EXPECT_OUTCOME(&r, 0, 0);
  CHECK_INT(r.n, 2);
  EXPECT_DATA(&r, 0, HF_OP_TEXT, 1, 1, tx, n);
  EXPECT_DATA(&r, 1, HF_OP_BINARY, 1, 1, tx, n);
  rr_free(&r);
  b_free(&s);
  free(tx);
  label = "";
}

/* ---- parser: section 10 (size limit) ------------------------------------ */

static void parse_10_max_message(void) {
  run_res r;
  bytes s = {0};
  uint8_t *pl = ascii_text(3000);
  char lb[64];
  /* exactly the limit is fine, whole and fragmented */
  label = "10.x exactly 1000";
  put_frame(&s, 1, HF_OP_TEXT, pl, 1000);
  put_frame(&s, 0, HF_OP_BINARY, pl, 400);
  put_frame(&s, 1, HF_OP_PING, NULL, 0);
  put_frame(&s, 0, HF_OP_CONT, pl, 600);
  put_frame(&s, 1, HF_OP_CONT, NULL, 0);
  put_frame(&s, 1, HF_OP_TEXT, pl, 1000); /* counters reset per message */
  parse_all_ways(&s, 1000, 1, &r);
  EXPECT_OUTCOME(&r, 0, 0);
  CHECK_INT(r.n, 6);
  rr_free(&r);
  b_free(&s);
  /* a header declaring 1001 bytes, no payload: 1009 at once, every form */
  static const int forms[] = {16, 64};
  for (int op = HF_OP_TEXT; op <= HF_OP_BINARY; op++) {
    for (size_t f = 0; f < 2; f++) {
      snprintf(lb, sizeof lb, "10.x header 1001 op %d form %d", op, forms[f]);
      label = lb;
      uint8_t key[4] = {1, 2, 3, 4};
      put_header(&s, 1, 0, op, 1001, forms[f], key);
      parse_all_ways(&s, 1000, 1, &r);
      EXPECT_OUTCOME(&r, HF_ETOOBIG, 1009);
      rr_free(&r);
      b_free(&s);
    }
  }
  /* a small limit in the 7-bit form */
  label = "10.x 7-bit form over limit";
  put_frame(&s, 1, HF_OP_BINARY, pl, 11);
  parse_all_ways(&s, 10, 1, &r);
  EXPECT_OUTCOME(&r, HF_ETOOBIG, 1009);
  rr_free(&r);
  b_free(&s);
  /* fragments totalling 1001: rejected at the header of the fragment that
   * goes over, before its payload */
  label = "10.x fragments over the limit";
  put_frame(&s, 0, HF_OP_TEXT, pl, 500);
  put_frame(&s, 0, HF_OP_CONT, pl, 500);
  uint8_t key[4] = {4, 3, 2, 1};
  put_header(&s, 1, 0, HF_OP_CONT, 1, 7, key);
  parse_all_ways(&s, 1000, 1, &r);
  EXPECT_OUTCOME(&r, HF_ETOOBIG, 1009);
  CHECK_INT(r.n, 2);
  rr_free(&r);
  b_free(&s);
  /* many small fragments going over */
  label = "10.x many fragments over the limit";
  for (int i = 0; i < 11; i++)
    put_frame(&s, 0, i ? HF_OP_CONT : HF_OP_BINARY, pl, 100);
  parse_all_ways(&s, 1000, 1, &r);
  EXPECT_OUTCOME(&r, HF_ETOOBIG, 1009);
  CHECK_INT(r.n, 10);
  rr_free(&r);
  b_free(&s);
  free(pl);
  label = "";
}

/* ---- *need, client mode, random streams --------------------------------- */

static void parse_need_reporting(void) {
  bytes s = {0};
  static const size_t lens[] = {0, 5, 125, 126, 300, 65535, 65536, 70000};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    uint8_t *pl = pattern(lens[i], 1);
    put_frame(&s, 1, HF_OP_BINARY, pl, lens[i]);
    size_t hl = s.len - lens[i];
    for (size_t len = 0; len < s.len; len = len < hl + 3 ? len + 1 : len + 997) {
      hf_ws_parser p = {0};
      p.expect_mask = 1;
      hf_ws_event ev;
      size_t need = 999;
      uint8_t *buf = malloc(s.len);
      memcpy(buf, s.b, s.len);
      ssize_t r = hf_ws_parse(&p, buf, len, &ev, &need);
      CHECK_INT(r, HF_EAGAIN);
      if (len < hl)
        CHECK_INT(need, 0);
      else
        CHECK_INT(need, s.len);
      free(buf);
    }
    /* need is reset on success, and NULL is accepted */
    hf_ws_parser p = {0};
    p.expect_mask = 1;
    hf_ws_event ev;
    size_t need = 999;
    uint8_t *buf = malloc(s.len);
    memcpy(buf, s.b, s.len);
    CHECK_INT(hf_ws_parse(&p, buf, s.len, &ev, &need), s.len);
    CHECK_INT(need, 0);
    memcpy(buf, s.b, s.len);
    memset(&p, 0, sizeof p);
    p.expect_mask = 1;
    CHECK_INT(hf_ws_parse(&p, buf, s.len - 1, &ev, NULL), HF_EAGAIN);
    CHECK_INT(hf_ws_parse(&p, buf, s.len, &ev, NULL), s.len);
    CHECK_INT(ev.len, lens[i]);
    CHECK(ev.len == 0 || memcmp(ev.data, pl, ev.len) == 0);
    free(buf);
    free(pl);
    b_free(&s);
  }
  /* an empty buffer */
  hf_ws_parser p = {0};
  p.expect_mask = 1;
  hf_ws_event ev;
  size_t need = 5;
  uint8_t dummy[1] = {0};
  CHECK_INT(hf_ws_parse(&p, dummy, 0, &ev, &need), HF_EAGAIN);
  CHECK_INT(need, 0);
}

static void parse_client_mode(void) {
  run_res r;
  bytes s = {0};
  label = "client mode unmasked";
  put_frame_x(&s, 1, 0, HF_OP_TEXT, "server says hi", 14, 1);
  put_frame_x(&s, 0, 0, HF_OP_BINARY, "\x00\x01", 2, 1);
  put_frame_x(&s, 1, 0, HF_OP_PING, "p", 1, 1);
  put_frame_x(&s, 1, 0, HF_OP_CONT, "\x02", 1, 1);
  put_frame_x(&s, 1, 0, HF_OP_CLOSE, "\x03\xe9going", 7, 1);
  parse_all_ways(&s, 0, 0, &r);
  EXPECT_OUTCOME(&r, 0, 0);
  CHECK_INT(r.n, 5);
  EXPECT_DATA(&r, 0, HF_OP_TEXT, 1, 1, "server says hi", 14);
  EXPECT_DATA(&r, 1, HF_OP_BINARY, 1, 0, "\x00\x01", 2);
  EXPECT_CTRL(&r, 2, HF_WS_EV_PING, "p", 1);
  EXPECT_DATA(&r, 3, HF_OP_BINARY, 0, 1, "\x02", 1);
  if (r.n == 5) {
    CHECK_INT(r.ev[4].close_code, 1001);
    CHECK_MEM(r.ev[4].reason, r.ev[4].reason_len, "going");
  }
  rr_free(&r);
  b_free(&s);
  /* a masked frame is a violation in client mode */
  label = "client mode masked";
  put_frame_x(&s, 1, 0, HF_OP_TEXT, "ok", 2, 1);
  put_frame(&s, 1, HF_OP_TEXT, "masked", 6);
  parse_all_ways(&s, 0, 0, &r);
  EXPECT_OUTCOME(&r, HF_EPROTO, 1002);
  CHECK_INT(r.n, 1);
  rr_free(&r);
  b_free(&s);
  /* invalid UTF-8 is still caught, fail-fast, without masks */
  label = "client mode utf8";
  put_header(&s, 1, 0, HF_OP_TEXT, 200, 16, NULL);
  b_put(&s, "ab\xc0", 3);
  hf_ws_parser p = {0};
  hf_ws_event ev;
  CHECK_INT(hf_ws_parse(&p, s.b, s.len, &ev, NULL), HF_EUTF8);
  CHECK_INT(p.err_code, 1007);
  b_free(&s);
  label = "";
}

/* A model-checked random stream: random messages (fragmented or not, text
 * with multi-byte characters or binary) with control frames interleaved;
 * events must match what was sent, at every split. */
static void parse_random_streams(void) {
  static const char *pieces[] = {"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "xyz"};
  for (int round = 0; round < 60; round++) {
    bytes s = {0}, expect = {0};
    rec_ev exp[400];
    size_t ne = 0;
    rng_state = 777u + (uint32_t)round * 7919u;
    int nmsg = 1 + (int)(rnd() % 12);
    for (int m = 0; m < nmsg; m++) {
      int op = rnd() % 2 ? HF_OP_TEXT : HF_OP_BINARY;
      bytes msg = {0};
      size_t target = rnd() % (round % 5 == 0 ? 3000 : 200);
      while (msg.len < target) {
        if (op == HF_OP_TEXT) {
          const char *pc = pieces[rnd() % 5];
          b_put(&msg, pc, strlen(pc));
        } else {
          b_byte(&msg, (uint8_t)rnd());
        }
      }
      int nfrag = 1 + (int)(rnd() % 4);
      size_t off = 0;
      for (int f = 0; f < nfrag; f++) {
        size_t len = f == nfrag - 1 ? msg.len - off : rnd() % (msg.len - off + 1);
        int fin = f == nfrag - 1;
        put_frame(&s, fin, f ? HF_OP_CONT : op, msg.b + off, len);
        rec_ev *e = &exp[ne++];
        memset(e, 0, sizeof *e);
        e->type = HF_WS_EV_DATA;
        e->opcode = op;
        e->first = f == 0;
        e->fin = fin;
        e->len = len;
        e->data = (uint8_t *)(uintptr_t)(expect.len);
        b_put(&expect, msg.b + off, len);
        off += len;
        if (rnd() % 3 == 0) {
          int cop = rnd() % 2 ? HF_OP_PING : HF_OP_PONG;
          size_t cl = rnd() % 126;
          uint8_t cp[125];
          for (size_t k = 0; k < cl; k++)
            cp[k] = (uint8_t)rnd();
          put_frame(&s, 1, cop, cp, cl);
          e = &exp[ne++];
          memset(e, 0, sizeof *e);
          e->type = cop == HF_OP_PING ? HF_WS_EV_PING : HF_WS_EV_PONG;
          e->len = cl;
          e->data = (uint8_t *)(uintptr_t)(expect.len);
          b_put(&expect, cp, cl);
        }
      }
      b_free(&msg);
    }
    char lb[64];
    snprintf(lb, sizeof lb, "random stream %d", round);
    label = lb;
    run_res r;
    parse_all_ways(&s, 0, 1, &r);
    EXPECT_OUTCOME(&r, 0, 0);
    if (r.n != ne) {
      HF_T_FAILF("[%s] %zu events, expected %zu", label, r.n, ne);
    } else {
      for (size_t i = 0; i < ne; i++) {
        rec_ev want = exp[i];
        want.data = expect.b ? expect.b + (uintptr_t)exp[i].data : NULL;
        const rec_ev *got = &r.ev[i];
        if (got->type != want.type || got->opcode != want.opcode ||
            got->first != want.first || got->fin != want.fin ||
            got->len != want.len || (want.len && memcmp(got->data, want.data, want.len))) {
          HF_T_FAILF("[%s] event %zu differs", label, i);
          break;
        }
      }
    }
    rr_free(&r);
    b_free(&s);
    b_free(&expect);
  }
  label = "";
}

/* hf_frame_close_payload accepts a NULL reason (it tests for it). The call
 * runs in a child process: under UBSan a bad call aborts, and this test
 * must report that as a failure instead of killing the whole binary. */
static void frame_close_payload_null_reason(void) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    uint8_t out[HF_FRAME_MAX_CONTROL];
    memset(out, 0, sizeof out);
    size_t n = hf_frame_close_payload(out, 3008, NULL);
    _exit(n == 2 && out[0] == 0x0b && out[1] == 0xc0 ? 0 : 1);
  }
  int st = 0;
  CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
  if (WIFSIGNALED(st) || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    HF_T_FAILF("hf_frame_close_payload(out, 3008, NULL) failed in a child "
               "(status %d; a sanitizer report above names the cause)", st);
}

/* hf_frame_peek: every length form, masked or not, reserved bits and
 * opcodes decoded as sent (no judgement), 0 for every incomplete prefix,
 * and the bytes left untouched. */
static void frame_peek_decodes_without_judging(void) {
  static const uint64_t lens[] = {0, 1, 125, 126, 65535, 65536, 1ull << 40};
  uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    for (int masked = 0; masked < 2; masked++) {
      static const int forms[] = {7, 16, 64};
      for (int fk = 0; fk < 3; fk++) {
        int form = forms[fk];
        if (form < min_form(lens[i])) /* too short a form for this length */
          continue;
        bytes s = {0};
        put_header(&s, i & 1, 5, 0x3 + (int)i, lens[i], form, masked ? key : NULL);
        uint8_t copy[16];
        memcpy(copy, s.b, s.len);
        hf_frame_info fi;
        for (size_t k = 0; k < s.len; k++)
          CHECK_INT(hf_frame_peek(s.b, k, &fi), 0);
        CHECK_INT(hf_frame_peek(s.b, s.len, &fi), s.len);
        CHECK_INT(fi.payload_len, lens[i]);
        CHECK_INT(fi.masked, masked);
        CHECK_INT(fi.fin, i & 1);
        CHECK_INT(fi.rsv, 5);
        CHECK_INT(fi.opcode, (0x3 + i) & 0x0f);
        if (masked)
          CHECK(memcmp(fi.mask, key, 4) == 0);
        CHECK(memcmp(copy, s.b, s.len) == 0);
        b_free(&s);
      }
    }
  }
  /* the top bit of the 64-bit form is reported, not refused */
  uint8_t top[10] = {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1};
  hf_frame_info fi;
  CHECK_INT(hf_frame_peek(top, sizeof top, &fi), 10);
  CHECK(fi.payload_len == 0x8000000000000001ull);
}

/* hf_ws_parser_idle: 1 only between frames outside a fragmented message. */
static void parser_idle_states(void) {
  hf_ws_parser p;
  memset(&p, 0, sizeof p);
  p.expect_mask = 1;
  CHECK_INT(hf_ws_parser_idle(&p), 1);
  bytes s = {0};
  put_str(&s, 0, HF_OP_TEXT, "frag");      /* first fragment */
  put_frame(&s, 1, HF_OP_PING, "p", 1);    /* control frame inside it */
  put_str(&s, 1, HF_OP_CONT, "ment");      /* last fragment */
  size_t f1 = s.len;
  put_str(&s, 1, HF_OP_TEXT, "whole");
  hf_ws_event ev;
  size_t off = 0;
  /* a partial header leaves no state */
  CHECK_INT(hf_ws_parse(&p, s.b, 1, &ev, NULL), HF_EAGAIN);
  CHECK_INT(hf_ws_parser_idle(&p), 1);
  /* a header without its payload does */
  CHECK_INT(hf_ws_parse(&p, s.b, 7, &ev, NULL), HF_EAGAIN);
  CHECK_INT(hf_ws_parser_idle(&p), 0);
  ssize_t r = hf_ws_parse(&p, s.b, s.len, &ev, NULL);
  CHECK(r > 0);
  off += (size_t)r;
  CHECK_INT(hf_ws_parser_idle(&p), 0); /* inside the fragmented message */
  r = hf_ws_parse(&p, s.b + off, s.len - off, &ev, NULL);
  CHECK_INT(ev.type, HF_WS_EV_PING);
  off += (size_t)r;
  CHECK_INT(hf_ws_parser_idle(&p), 0);
  r = hf_ws_parse(&p, s.b + off, s.len - off, &ev, NULL);
  off += (size_t)r;
  CHECK_INT(off, f1);
  CHECK_INT(hf_ws_parser_idle(&p), 1); /* the message ended */
  r = hf_ws_parse(&p, s.b + off, s.len - off, &ev, NULL);
  CHECK_INT(off + (size_t)r, s.len);
  CHECK_INT(hf_ws_parser_idle(&p), 1);
  b_free(&s);
}

int main(void) {
  hf_t_suite = "frame";
  RUN_TEST(parser_idle_states);
  RUN_TEST(frame_peek_decodes_without_judging);
  RUN_TEST(frame_header_length_forms);
  RUN_TEST(frame_header_mask);
  RUN_TEST(frame_mask_phases_vs_reference);
  RUN_TEST(frame_mask_ascii_vs_reference);
  RUN_TEST(frame_close_payload_truncation);
  RUN_TEST(close_code_valid_boundaries);
  RUN_TEST(parse_1_text_binary_lengths);
  RUN_TEST(parse_1_pipelined_messages);
  RUN_TEST(parse_2_ping_pong);
  RUN_TEST(parse_3_rsv_bits);
  RUN_TEST(parse_4_reserved_opcodes);
  RUN_TEST(parse_5_fragmentation);
  RUN_TEST(parse_5_fragmentation_violations);
  RUN_TEST(parse_6_utf8_valid_split);
  RUN_TEST(parse_6_utf8_invalid);
  RUN_TEST(parse_6_utf8_after_long_ascii);
  RUN_TEST(parse_6_utf8_fail_fast);
  RUN_TEST(parse_7_close);
  RUN_TEST(parse_9_masks_and_lengths);
  RUN_TEST(parse_10_max_message);
  RUN_TEST(parse_need_reporting);
  RUN_TEST(parse_client_mode);
  RUN_TEST(parse_random_streams);
  RUN_TEST(frame_close_payload_null_reason);
  TEST_MAIN_END();
}
