/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the RFC 6455 frame parser (hf_ws_parse). The first
 * input byte picks the options (max_message, server or client mode) and how
 * the rest is split into reads; the rest is fed as a stream the way a real
 * caller does it: unconsumed bytes, as the parser left them, are presented
 * again at the start of an exactly-sized heap buffer (so ASan sees any read
 * past len) followed by the next read. Every run is compared with a run over
 * the whole input at once, and invariants are checked with __builtin_trap:
 *   - consumed <= len; *need is 0 or more than len on HF_EAGAIN, and once
 *     need bytes are present the call does not ask for more;
 *   - event views lie inside the consumed bytes;
 *   - fragments follow the message rules (first/fin/opcode), messages stay
 *     within max_message, control payloads within 125 bytes;
 *   - a text message completes only if the reassembled message is valid
 *     UTF-8 (hf_utf8_valid); close codes are valid, reasons valid UTF-8;
 *   - errors are HF_EPROTO/HF_EUTF8/HF_ETOOBIG with err_code 1002/1007/1009
 *     and a reason;
 *   - splitting the input never changes the events or the outcome;
 *   - every accepted frame, decoded independently from the original input
 *     bytes, has a legal header, the consumed size, matching event fields
 *     and exactly the unmasked payload;
 *   - a reference model (whole stream at once, no code shared with
 *     lib/frame.c) gives the same events, the same outcome, and for errors
 *     a close code the failing frame justifies (fail-fast UTF-8 and the
 *     size limit from the header included). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hf/close.h"
#include "hf/err.h"
#include "hf/frame.h"
#include "hf/utf8.h"

#define CHECK(c)                                                               \
  do {                                                                         \
    if (!(c))                                                                  \
      __builtin_trap();                                                        \
  } while (0)

typedef struct {
  uint64_t hash;    /* of every event */
  size_t events;
  ssize_t outcome;  /* 0, HF_EAGAIN (input ended mid-frame) or the error */
  unsigned err_code;
  unsigned codes;   /* model only: acceptable close codes (bit set) */
} summary;

#define ERR_ANY (-1000) /* model outcome: some error */
enum { C1002 = 1, C1007 = 2, C1009 = 4 };

static unsigned code_bit(unsigned code) {
  return code == 1002 ? C1002 : code == 1007 ? C1007 : code == 1009 ? C1009 : 0;
}

static void mix(uint64_t *h, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    *h = (*h ^ b[i]) * 0x100000001b3ull;
}

static void mix_u64(uint64_t *h, uint64_t v) { mix(h, &v, sizeof v); }

static const uint64_t limits[8] = {0, 1, 10, 125, 126, 1000, 65536, 1 << 20};

/* Chunk size for the next read. */
static size_t next_chunk(int mode, uint32_t *rng, size_t left) {
  size_t c;
  switch (mode) {
  case 0: c = left; break;
  case 1: c = 1; break;
  case 2: c = 3; break;
  default:
    *rng = *rng * 1103515245u + 12345u;
    c = 1 + (*rng >> 16) % 17;
    break;
  }
  return c < left ? c : left;
}


/* ---- independent decoding (shares no code with lib/frame.c) ----------- */

typedef struct {
  unsigned op, fin, rsv, masked, len7;
  size_t hl;     /* header length, when the header is complete */
  uint64_t plen; /* declared payload length */
} hdr;

/* Decode the header at f[0..rem): 0 if incomplete, else 1. */
static int decode(const uint8_t *f, size_t rem, hdr *h) {
  if (rem < 2)
    return 0;
  h->op = f[0] & 15;
  h->fin = f[0] >> 7;
  h->rsv = (f[0] >> 4) & 7;
  h->masked = f[1] >> 7;
  h->len7 = f[1] & 127;
  h->hl = 2 + (h->len7 == 126 ? 2 : h->len7 == 127 ? 8 : 0) + (h->masked ? 4 : 0);
  if (rem < h->hl)
    return 0;
  h->plen = h->len7;
  if (h->len7 >= 126) {
    size_t nb = h->len7 == 126 ? 2 : 8;
    h->plen = 0;
    for (size_t i = 0; i < nb; i++)
      h->plen = h->plen << 8 | f[2 + i];
  }
  return 1;
}

static int model_code_valid(unsigned c) {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
         (c >= 3000 && c <= 4999);
}

/* A frame the parser accepted, checked against the original input bytes:
 * legal header, consumed size, event fields, and the unmasked payload. */
static void check_frame(const uint8_t *orig, size_t r, const hf_ws_event *ev,
                        int expect_mask) {
  hdr h;
  CHECK(decode(orig, r, &h));
  CHECK(h.rsv == 0);
  CHECK(h.masked == (unsigned)expect_mask);
  CHECK(h.op <= 2 || (h.op >= 8 && h.op <= 10));
  CHECK(!(h.len7 == 127 && (h.plen >> 63)));
  CHECK(h.hl + h.plen == r);
  CHECK(ev->len == h.plen);
  if (h.op >= 8) {
    CHECK(h.fin && h.plen <= 125);
    CHECK(ev->type == (h.op == 8 ? HF_WS_EV_CLOSE
                       : h.op == 9 ? HF_WS_EV_PING : HF_WS_EV_PONG));
  } else {
    CHECK(ev->type == HF_WS_EV_DATA);
    CHECK(ev->fin == h.fin);
    CHECK(ev->first == (h.op != 0));
    if (h.op)
      CHECK(ev->opcode == h.op);
  }
  const uint8_t *key = orig + h.hl - 4;
  for (size_t i = 0; i < ev->len; i++)
    CHECK(ev->data[i] == (uint8_t)(orig[h.hl + i] ^ (h.masked ? key[i & 3] : 0)));
  /* the header writer reproduces a header in the shortest length form */
  int minimal = h.len7 < 126 ? 1 : h.len7 == 126 ? h.plen >= 126 : h.plen > 0xffff;
  if (minimal) {
    uint8_t hb[HF_FRAME_MAX_HEADER];
    size_t hn = hf_frame_header(hb, (int)h.fin, (int)h.op, h.plen, h.masked ? key : NULL);
    CHECK(hn == h.hl && memcmp(hb, orig, hn) == 0);
  }
}

/* hf_frame_close_payload on a valid UTF-8 text used as a reason: code
 * bytes, a prefix of at most 123 bytes that is valid UTF-8 and is cut at
 * most 3 bytes short of the limit. */
static void check_close_payload(const uint8_t *text, size_t len, unsigned code) {
  char *r = malloc(len + 1);
  CHECK(r);
  memcpy(r, text, len);
  r[len] = 0;
  size_t sl = strlen(r); /* the reason ends at a NUL, if any */
  uint8_t out[HF_FRAME_MAX_CONTROL];
  size_t n = hf_frame_close_payload(out, (uint16_t)code, r);
  CHECK(n >= 2 && n <= HF_FRAME_MAX_CONTROL);
  CHECK(out[0] == (uint8_t)(code >> 8) && out[1] == (uint8_t)code);
  size_t rl = n - 2;
  CHECK(rl <= sl && memcmp(out + 2, r, rl) == 0);
  CHECK(hf_utf8_valid(out + 2, rl));
  CHECK(rl == sl || (sl > 123 && rl + 3 >= 123));
  free(r);
}

/* Reference model: the whole stream decoded at once with the rules frame.h
 * states (header fields validated as soon as they are present, the size
 * limit from the header, text validated as bytes arrive), sharing no code
 * with lib/frame.c except the UTF-8 validator (tested on its own). Gives
 * the events (hashed like run() does) and the outcome; for an error, the
 * set of close codes that the failing frame justifies. */
static void model(const uint8_t *in, size_t n, uint64_t max_message,
                  int expect_mask, summary *out) {
  memset(out, 0, sizeof *out);
  out->hash = 0xcbf29ce484222325ull;
  uint8_t *pl = malloc(n + 1);
  CHECK(pl);
  size_t pos = 0;
  int in_msg = 0;
  unsigned msg_op = 0;
  uint64_t msg_len = 0;
  hf_utf8_state u = HF_UTF8_ACCEPT;
  for (;;) {
    size_t rem = n - pos;
    const uint8_t *f = in + pos;
    unsigned codes = 0;
    if (rem == 0) {
      out->outcome = 0;
      break;
    }
    if (rem < 2) {
      out->outcome = HF_EAGAIN;
      break;
    }
    unsigned op = f[0] & 15, fin = f[0] >> 7, masked = f[1] >> 7, len7 = f[1] & 127;
    int ctl = op >= 8;
    if (f[0] & 0x70)
      codes |= C1002;
    if (masked != (unsigned)expect_mask)
      codes |= C1002;
    if (!(op <= 2 || (op >= 8 && op <= 10)))
      codes |= C1002;
    if (op == 0 && !in_msg)
      codes |= C1002;
    if ((op == 1 || op == 2) && in_msg)
      codes |= C1002;
    if (ctl && (!fin || len7 > 125))
      codes |= C1002;
    hdr h = {0};
    if (!codes && !decode(f, rem, &h)) {
      out->outcome = HF_EAGAIN;
      break;
    }
    if (!codes) {
      if (len7 == 127 && (h.plen >> 63))
        codes |= C1002;
      uint64_t before = op == 0 ? msg_len : 0;
      if (!ctl && max_message && (h.plen > max_message || before + h.plen > max_message))
        codes |= C1009;
    }
    if (codes) {
      out->outcome = ERR_ANY;
      out->codes = codes;
      break;
    }
    size_t avail = rem - h.hl < h.plen ? rem - h.hl : (size_t)h.plen;
    const uint8_t *key = f + h.hl - 4;
    for (size_t i = 0; i < avail; i++)
      pl[i] = (uint8_t)(f[h.hl + i] ^ (masked ? key[i & 3] : 0));
    int text = op == 1 || (op == 0 && msg_op == 1);
    hf_utf8_state u2 = (op == 1 || op == 2) ? HF_UTF8_ACCEPT : u;
    if (text) {
      u2 = hf_utf8_feed(u2, pl, avail, NULL);
      if (u2 == HF_UTF8_REJECT) {
        out->outcome = ERR_ANY;
        out->codes = C1007;
        break;
      }
    }
    if (avail < h.plen) {
      out->outcome = HF_EAGAIN;
      break;
    }
    unsigned close_code = 0;
    if (op == 8) {
      if (h.plen == 1)
        codes |= C1002;
      if (h.plen >= 2) {
        close_code = (unsigned)pl[0] << 8 | pl[1];
        if (!model_code_valid(close_code))
          codes |= C1002;
        if (hf_utf8_feed(HF_UTF8_ACCEPT, pl + 2, avail - 2, NULL) != HF_UTF8_ACCEPT)
          codes |= C1002;
      } else {
        close_code = HF_CLOSE_NO_STATUS;
      }
    }
    if (!ctl && fin && text && u2 != HF_UTF8_ACCEPT)
      codes |= C1007;
    if (codes) {
      out->outcome = ERR_ANY;
      out->codes = codes;
      break;
    }
    int type = op == 8 ? HF_WS_EV_CLOSE : op == 9 ? HF_WS_EV_PING
               : op == 10 ? HF_WS_EV_PONG : HF_WS_EV_DATA;
    out->events++;
    mix_u64(&out->hash, (uint64_t)type);
    mix_u64(&out->hash, h.plen);
    if (avail)
      mix(&out->hash, pl, avail);
    if (type == HF_WS_EV_DATA) {
      if (op) {
        msg_op = op;
        msg_len = 0;
      }
      msg_len += h.plen;
      u = u2;
      in_msg = !fin;
      mix_u64(&out->hash, (uint64_t)msg_op << 16 | (uint64_t)(op != 0) << 8 | fin);
    } else if (type == HF_WS_EV_CLOSE) {
      mix_u64(&out->hash, close_code);
    }
    pos += h.hl + (size_t)h.plen;
  }
  free(pl);
}

static void run(const uint8_t *in, size_t n, uint64_t max_message,
                int expect_mask, int mode, uint32_t seed, summary *out) {
  hf_ws_parser p;
  memset(&p, 0, sizeof p);
  p.max_message = max_message;
  p.expect_mask = (uint8_t)expect_mask;
  memset(out, 0, sizeof *out);
  out->hash = 0xcbf29ce484222325ull;
  uint8_t *work = malloc(n + 1);
  uint8_t *msg = malloc(n + 1); /* reassembled current message */
  CHECK(work && msg);
  size_t have = 0, pos = 0, msg_len = 0, last_need = 0, consumed = 0;
  int in_msg = 0, msg_op = 0;
  uint32_t rng = seed;
  for (;;) {
    for (;;) {
      /* an exactly-sized copy: any read past len is a heap overflow */
      uint8_t *buf = malloc(have ? have : 1);
      CHECK(buf);
      if (have)
        memcpy(buf, work, have);
      hf_ws_event ev;
      memset(&ev, 0xA5, sizeof ev);
      size_t need = 12345;
      ssize_t r = hf_ws_parse(&p, buf, have, &ev, &need);
      if (r == HF_EAGAIN) {
        CHECK(need == 0 || need > have);
        /* once the announced total is present, it must not ask again */
        CHECK(!(last_need && have >= last_need));
        if (need)
          last_need = need;
        memcpy(work, buf, have); /* present the bytes again, as modified */
        free(buf);
        break;
      }
      if (r < 0) {
        switch (r) {
        case HF_EPROTO: CHECK(p.err_code == 1002); break;
        case HF_EUTF8: CHECK(p.err_code == 1007 || p.err_code == 1002); break;
        case HF_ETOOBIG: CHECK(p.err_code == 1009); break;
        default: CHECK(0);
        }
        CHECK(p.err_reason && p.err_reason[0]);
        out->outcome = r;
        out->err_code = p.err_code;
        free(buf);
        goto done;
      }
      CHECK(r > 0 && (size_t)r <= have);
      CHECK(r <= (ssize_t)(HF_FRAME_MAX_HEADER + ev.len) && (size_t)r >= 2 + ev.len);
      if (ev.len)
        CHECK(ev.data >= buf && ev.data + ev.len <= buf + r);
      last_need = 0;
      check_frame(in + consumed, (size_t)r, &ev, expect_mask);
      consumed += (size_t)r;
      out->events++;
      mix_u64(&out->hash, ev.type);
      mix_u64(&out->hash, ev.len);
      if (ev.len)
        mix(&out->hash, ev.data, ev.len);
      switch (ev.type) {
      case HF_WS_EV_DATA:
        CHECK(ev.opcode == HF_OP_TEXT || ev.opcode == HF_OP_BINARY);
        CHECK(ev.first == 0 || ev.first == 1);
        CHECK(ev.fin == 0 || ev.fin == 1);
        CHECK(ev.first == !in_msg);
        if (in_msg)
          CHECK(ev.opcode == msg_op);
        mix_u64(&out->hash, (uint64_t)ev.opcode << 16 | ev.first << 8 | ev.fin);
        if (ev.first) {
          msg_len = 0;
          msg_op = ev.opcode;
        }
        CHECK(msg_len + ev.len <= n);
        if (ev.len)
          memcpy(msg + msg_len, ev.data, ev.len);
        msg_len += ev.len;
        if (max_message)
          CHECK(msg_len <= max_message);
        /* a text message that is not finished is a valid prefix */
        if (msg_op == HF_OP_TEXT)
          CHECK(hf_utf8_feed(HF_UTF8_ACCEPT, msg, msg_len, NULL) != HF_UTF8_REJECT);
        if (ev.fin) {
          if (msg_op == HF_OP_TEXT) {
            CHECK(hf_utf8_valid(msg, msg_len));
            check_close_payload(msg, msg_len, 3000 + (unsigned)(msg_len % 2000));
          }
          in_msg = 0;
        } else {
          in_msg = 1;
        }
        break;
      case HF_WS_EV_PING:
      case HF_WS_EV_PONG:
        CHECK(ev.len <= HF_FRAME_MAX_CONTROL);
        break;
      case HF_WS_EV_CLOSE:
        CHECK(ev.len <= HF_FRAME_MAX_CONTROL);
        mix_u64(&out->hash, ev.close_code);
        if (ev.len == 0) {
          CHECK(ev.close_code == HF_CLOSE_NO_STATUS && ev.close_reason_len == 0);
        } else {
          CHECK(ev.len >= 2);
          CHECK(hf_close_code_valid(ev.close_code));
          CHECK(ev.close_code == ((unsigned)ev.data[0] << 8 | ev.data[1]));
          CHECK(ev.close_reason_len == ev.len - 2);
          if (ev.close_reason_len) {
            CHECK(ev.close_reason == ev.data + 2);
            CHECK(hf_utf8_valid(ev.close_reason, ev.close_reason_len));
          }
        }
        break;
      default:
        CHECK(0);
      }
      /* like a real caller: drop the consumed frame, keep the rest */
      memcpy(work, buf + r, have - (size_t)r);
      have -= (size_t)r;
      free(buf);
    }
    if (pos == n)
      break;
    size_t c = next_chunk(mode, &rng, n - pos);
    memcpy(work + have, in + pos, c);
    have += c;
    pos += c;
  }
  out->outcome = have ? HF_EAGAIN : 0;
done:
  free(work);
  free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t opt = data[0];
  uint64_t max_message = limits[opt & 7];
  int expect_mask = !(opt & 0x08); /* mostly server mode */
  int mode = (opt >> 4) & 3;
  uint32_t seed = (uint32_t)(opt >> 6) * 2654435761u + (uint32_t)size;
  const uint8_t *in = data + 1;
  size_t n = size - 1;
  summary whole, split, ref;
  run(in, n, max_message, expect_mask, 0, 0, &whole);
  model(in, n, max_message, expect_mask, &ref);
  CHECK(whole.events == ref.events);
  CHECK(whole.hash == ref.hash);
  if (ref.outcome == ERR_ANY) {
    CHECK(whole.outcome < 0 && whole.outcome != HF_EAGAIN);
    CHECK(ref.codes & code_bit(whole.err_code));
  } else {
    CHECK(whole.outcome == ref.outcome);
  }
  if (mode != 0) {
    run(in, n, max_message, expect_mask, mode, seed, &split);
    CHECK(split.events == whole.events);
    CHECK(split.outcome == whole.outcome);
    CHECK(split.err_code == whole.err_code);
    CHECK(split.hash == whole.hash);
  }
  return 0;
}
