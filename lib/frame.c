/* SPDX-License-Identifier: MIT */
/* RFC 6455 frame writer, masking and the incremental frame parser. The
 * parser validates each header field as soon as it is decoded and unmasks
 * and UTF-8-checks payload bytes as they arrive, so a violation is reported
 * at the first bad byte, not when the frame completes. */
#include "hf/frame.h"

#include <string.h>

#include "hf/close.h"
#include "hf/err.h"

size_t hf_frame_header(uint8_t out[HF_FRAME_MAX_HEADER], int fin, int opcode,
                       uint64_t len, const uint8_t *mask) {
  size_t n;
  out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & (0x0f | HF_FRAME_RSV1)));
  uint8_t mbit = mask ? 0x80 : 0;
  if (len < 126) {
    out[1] = (uint8_t)(mbit | len);
    n = 2;
  } else if (len <= 0xffff) {
    out[1] = mbit | 126;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    n = 4;
  } else {
    out[1] = mbit | 127;
    for (int i = 0; i < 8; i++)
      out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    n = 10;
  }
  if (mask) {
    memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

/* 16 bytes as a GCC vector: one SSE2 register on x86-64, NEON on arm64
 * (wider vectors are split by the compiler and spilled to the stack);
 * memcpy in and out keeps unaligned access defined. */
typedef uint8_t v16 __attribute__((vector_size(16)));

static inline int any_high(v16 v) {
  uint64_t h[2];
  memcpy(h, &v, sizeof h);
  return ((h[0] | h[1]) & 0x8080808080808080ull) != 0;
}

static inline v16 xor_at(uint8_t *p, v16 k) {
  v16 w;
  memcpy(&w, p, 16);
  w ^= k;
  memcpy(p, &w, 16);
  return w;
}

/* The key rotated so that k[0] applies to the first byte (phase), four
 * times over: built as one 32-bit word and broadcast (no byte loop: small
 * messages are the common case). */
typedef uint32_t u4 __attribute__((vector_size(16)));
static inline uint32_t key_word(const uint8_t key[4], size_t phase) {
  uint8_t r[4] = {key[phase & 3], key[(phase + 1) & 3], key[(phase + 2) & 3],
                  key[(phase + 3) & 3]};
  uint32_t w;
  memcpy(&w, r, 4);
  return w;
}

static inline v16 key16(const uint8_t key[4], size_t phase) {
  uint32_t w = key_word(key, phase);
  u4 kk = {w, w, w, w};
  v16 k;
  memcpy(&k, &kk, sizeof k);
  return k;
}

size_t hf__frame_mask_ascii16(uint8_t *p, size_t len, const uint8_t key[4],
                               size_t phase) {
  v16 k = key16(key, phase);
  size_t i = 0, ascii = len;
  /* 128 bytes per step; the high bits are OR-ed up and looked at once */
  for (; i + 128 <= len; i += 128) {
    v16 acc = xor_at(p + i, k);
    for (int b = 16; b < 128; b += 16)
      acc |= xor_at(p + i + b, k);
    if (ascii == len && any_high(acc))
      ascii = i;
  }
  for (; i + 16 <= len; i += 16) {
    v16 w = xor_at(p + i, k);
    if (ascii == len && any_high(w))
      ascii = i;
  }
  for (; i < len; i++) {
    p[i] ^= k[i & 15];
    if ((p[i] & 0x80) && ascii == len)
      ascii = i;
  }
  return ascii;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The same with 32-byte AVX2 registers, chosen at run time on CPUs that
 * have them (64 KiB text messages: this pass is most of the server's own
 * time in an echo; the rest is the kernel's copies). */
typedef uint8_t v32 __attribute__((vector_size(32)));

__attribute__((target("avx2"))) static size_t
mask_ascii_32(uint8_t *p, size_t len, const uint8_t key[4], size_t phase) {
  typedef uint32_t u8v __attribute__((vector_size(32)));
  uint32_t kw = key_word(key, phase);
  u8v kk = {kw, kw, kw, kw, kw, kw, kw, kw};
  v32 k;
  memcpy(&k, &kk, sizeof k);
  size_t i = 0, ascii = len;
  for (; i + 128 <= len; i += 128) {
    v32 acc = {0};
    for (int b = 0; b < 128; b += 32) {
      v32 w;
      memcpy(&w, p + i + b, 32);
      w ^= k;
      memcpy(p + i + b, &w, 32);
      acc |= w;
    }
    uint64_t h[4];
    memcpy(h, &acc, sizeof h);
    if (ascii == len && ((h[0] | h[1] | h[2] | h[3]) & 0x8080808080808080ull))
      ascii = i;
  }
  /* the rest (under 128 bytes) with the 16-byte code, in phase */
  size_t r = hf__frame_mask_ascii16(p + i, len - i, key, phase + i);
  return ascii != len ? ascii : i + r;
}

static int have_avx2(void) {
  static int known; /* 0 unknown, 1 no, 2 yes; the same answer in every thread */
  int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
  if (!k) {
    __builtin_cpu_init();
    k = __builtin_cpu_supports("avx2") ? 2 : 1;
    __atomic_store_n(&known, k, __ATOMIC_RELAXED);
  }
  return k == 2;
}
#endif

size_t hf_frame_mask_ascii(uint8_t *p, size_t len, const uint8_t key[4],
                           size_t phase) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (len >= 128 && have_avx2())
    return mask_ascii_32(p, len, key, phase);
#endif
  return hf__frame_mask_ascii16(p, len, key, phase);
}

void hf_frame_mask(uint8_t *p, size_t len, const uint8_t key[4], size_t phase) {
  v16 k = key16(key, phase);
  size_t i = 0;
  for (; i + 64 <= len; i += 64) {
    xor_at(p + i, k);
    xor_at(p + i + 16, k);
    xor_at(p + i + 32, k);
    xor_at(p + i + 48, k);
  }
  for (; i + 16 <= len; i += 16)
    xor_at(p + i, k);
  for (; i < len; i++)
    p[i] ^= k[i & 15];
}

size_t hf_frame_close_payload(uint8_t out[HF_FRAME_MAX_CONTROL], uint16_t code,
                              const char *reason) {
  out[0] = (uint8_t)(code >> 8);
  out[1] = (uint8_t)code;
  size_t rl = reason ? strlen(reason) : 0;
  if (rl > HF_FRAME_MAX_CONTROL - 2) {
    rl = HF_FRAME_MAX_CONTROL - 2;
    /* back off to a code point boundary: never cut a UTF-8 sequence */
    while (rl > 0 && ((uint8_t)reason[rl] & 0xc0) == 0x80)
      rl--;
  }
  if (rl)
    memcpy(out + 2, reason, rl);
  return 2 + rl;
}

size_t hf_frame_peek(const uint8_t *buf, size_t len, hf_frame_info *fi) {
  if (len < 2)
    return 0;
  uint8_t b1 = buf[1];
  size_t need = 2 + ((b1 & 0x80) ? 4 : 0);
  uint64_t plen = b1 & 0x7f;
  if (plen == 126)
    need += 2;
  else if (plen == 127)
    need += 8;
  if (len < need)
    return 0;
  const uint8_t *q = buf + 2;
  if (plen == 126) {
    plen = ((uint64_t)q[0] << 8) | q[1];
    q += 2;
  } else if (plen == 127) {
    plen = 0;
    for (int i = 0; i < 8; i++)
      plen = (plen << 8) | q[i];
    q += 8;
  }
  fi->fin = buf[0] >> 7;
  fi->rsv = (buf[0] >> 4) & 7;
  fi->opcode = buf[0] & 0x0f;
  fi->masked = b1 >> 7;
  if (fi->masked)
    memcpy(fi->mask, q, 4);
  else
    memset(fi->mask, 0, 4);
  fi->payload_len = plen;
  return need;
}

static ssize_t fail(hf_ws_parser *p, int err, uint16_t code, const char *why) {
  p->err_code = code;
  p->err_reason = why;
  return err;
}

/* Decode and validate the header at buf. Returns header length, 0 if more
 * bytes are needed, or a negative error. */
static ssize_t parse_header(hf_ws_parser *p, const uint8_t *buf, size_t len) {
  if (len < 2)
    return 0;
  uint8_t b0 = buf[0], b1 = buf[1];
  uint8_t op = b0 & 0x0f, fin = b0 >> 7;
  if (b0 & 0x30)
    return fail(p, HF_EPROTO, HF_CLOSE_PROTOCOL_ERROR,
                "reserved bits set without a negotiated extension");
  if (b0 & 0x40) {
    if (!p->allow_rsv1)
      return fail(p, HF_EPROTO, HF_CLOSE_PROTOCOL_ERROR,
                  "reserved bits set without a negotiated extension");
    if (op != HF_OP_TEXT && op != HF_OP_BINARY)
      return fail(p, HF_EPROTO, HF_CLOSE_PROTOCOL_ERROR,
                  op == HF_OP_CONT ? "RSV1 set on a continuation frame"
                                   : "RSV1 set on a control frame");
  }
  int masked = b1 >> 7;
  if (masked != p->expect_mask)
    return fail(p, HF_EPROTO, HF_CLOSE_PROTOCOL_ERROR,
                p->expect_mask ? "client frame is not masked"
                               : "server frame is masked");
  size_t need = 2 + (masked ? 4 : 0);
  uint64_t plen = b1 & 0x7f;
  if (plen == 126)
    need += 2;
  else if (plen == 127)
    need += 8;
  switch (op) {
  case HF_OP_CONT:
    if (!p->_in_msg)
      return fail(p, HF_EPROTO, HF_CLOSE_PROTOCOL_ERROR,
                  "continuation frame without a message to continue");
    break;
  case HF_OP_TEXT:
  case HF_OP_BINARY:
    if (p->_in_msg)
      return fail(p, HF_EPROTO, HF_CLOSE_PROTOCOL_ERROR,
                  "new data frame inside a fragmented message");
    break;
  case HF_OP_CLOSE:
  case HF_OP_PING:
  case HF_OP_PONG:
    if (!fin)
      return fail(p, HF_EPROTO, HF_CLOSE_PROTOCOL_ERROR,
                  "fragmented control frame");
    if (plen > HF_FRAME_MAX_CONTROL)
      return fail(p, HF_EPROTO, HF_CLOSE_PROTOCOL_ERROR,
                  "control frame payload over 125 bytes");
    break;
  default:
    return fail(p, HF_EPROTO, HF_CLOSE_PROTOCOL_ERROR, "reserved opcode");
  }
  hf_frame_info fi;
  if (hf_frame_peek(buf, len, &fi) == 0)
    return 0;
  plen = fi.payload_len;
  if (plen >> 63)
    return fail(p, HF_EPROTO, HF_CLOSE_PROTOCOL_ERROR,
                "64-bit payload length with the top bit set");
  if (op < HF_OP_CLOSE && p->max_message) {
    uint64_t total = (op == HF_OP_CONT ? p->_msg_len : 0) + plen;
    if (plen > p->max_message || total > p->max_message)
      return fail(p, HF_ETOOBIG, HF_CLOSE_TOO_BIG, "message too big");
  }
  if (masked)
    memcpy(p->_key, fi.mask, 4);
  p->_opcode = op;
  p->_fin = fin;
  p->_plen = plen;
  p->_done = 0;
  p->_hdr_len = (uint8_t)need;
  if (op == HF_OP_TEXT || op == HF_OP_BINARY) {
    p->_msg_opcode = op;
    p->_msg_rsv1 = (b0 & 0x40) != 0;
    p->_msg_len = 0;
    p->_utf8 = HF_UTF8_ACCEPT;
  }
  return (ssize_t)need;
}

/* Unmask and (for text) validate payload bytes [p->_done, upto). */
static int advance_payload(hf_ws_parser *p, uint8_t *pay, uint64_t upto) {
  uint64_t from = p->_done;
  if (upto <= from)
    return 0;
  size_t n = (size_t)(upto - from);
  int text = p->_opcode < HF_OP_CLOSE && p->_msg_opcode == HF_OP_TEXT && !p->_msg_rsv1;
  size_t skip = 0; /* leading bytes known to be ASCII */
  if (p->expect_mask) {
    /* one pass: unmask, and find where the ASCII run ends */
    if (text)
      skip = hf_frame_mask_ascii(pay + from, n, p->_key, (size_t)from);
    else
      hf_frame_mask(pay + from, n, p->_key, (size_t)from);
  }
  if (text) {
    /* ASCII keeps a code-point boundary where one is; inside a sequence
     * every byte must go through the validator */
    if (p->_utf8 != HF_UTF8_ACCEPT)
      skip = 0;
    if (skip < n)
      p->_utf8 = hf_utf8_feed(p->_utf8, pay + from + skip, n - skip, NULL);
    if (p->_utf8 == HF_UTF8_REJECT)
      return (int)fail(p, HF_EUTF8, HF_CLOSE_INVALID_PAYLOAD,
                       "invalid UTF-8 in text message");
  }
  p->_done = upto;
  return 0;
}

ssize_t hf_ws_parse(hf_ws_parser *p, uint8_t *buf, size_t len, hf_ws_event *ev,
                    size_t *need) {
  if (need)
    *need = 0;
  if (!p->_hdr_len) {
    ssize_t h = parse_header(p, buf, len);
    if (h <= 0)
      return h == 0 ? HF_EAGAIN : h;
  }
  size_t hl = p->_hdr_len;
  uint64_t total = hl + p->_plen;
  uint8_t *pay = buf + hl;
  uint64_t have = len >= total ? p->_plen : (uint64_t)(len - hl);
  if (advance_payload(p, pay, have) < 0)
    return p->err_code == HF_CLOSE_INVALID_PAYLOAD ? HF_EUTF8 : HF_EPROTO;
  if (len < total) {
    if (need)
      *need = (size_t)total;
    return HF_EAGAIN;
  }
  /* the frame is complete */
  p->_hdr_len = 0;
  memset(ev, 0, sizeof *ev);
  ev->data = pay;
  ev->len = (size_t)p->_plen;
  switch (p->_opcode) {
  case HF_OP_PING:
    ev->type = HF_WS_EV_PING;
    break;
  case HF_OP_PONG:
    ev->type = HF_WS_EV_PONG;
    break;
  case HF_OP_CLOSE:
    ev->type = HF_WS_EV_CLOSE;
    if (ev->len == 0) {
      ev->close_code = HF_CLOSE_NO_STATUS;
    } else if (ev->len == 1) {
      return fail(p, HF_EPROTO, HF_CLOSE_PROTOCOL_ERROR,
                  "close frame with a 1-byte payload");
    } else {
      unsigned code = ((unsigned)pay[0] << 8) | pay[1];
      if (!hf_close_code_valid(code))
        return fail(p, HF_EPROTO, HF_CLOSE_PROTOCOL_ERROR,
                    "invalid close code");
      if (!hf_utf8_valid(pay + 2, ev->len - 2))
        return fail(p, HF_EPROTO, HF_CLOSE_PROTOCOL_ERROR,
                    "close reason is not valid UTF-8");
      ev->close_code = (uint16_t)code;
      ev->close_reason = pay + 2;
      ev->close_reason_len = ev->len - 2;
    }
    break;
  default: /* data */
    ev->type = HF_WS_EV_DATA;
    ev->opcode = p->_msg_opcode;
    ev->first = p->_opcode != HF_OP_CONT;
    ev->fin = p->_fin;
    ev->compressed = p->_msg_rsv1;
    p->_msg_len += p->_plen;
    if (p->_fin) {
      if (p->_msg_opcode == HF_OP_TEXT && !p->_msg_rsv1 &&
          p->_utf8 != HF_UTF8_ACCEPT)
        return fail(p, HF_EUTF8, HF_CLOSE_INVALID_PAYLOAD,
                    "text message ends inside a UTF-8 sequence");
      p->_in_msg = 0;
    } else {
      p->_in_msg = 1;
    }
    break;
  }
  return (ssize_t)total;
}

int hf_ws_parser_idle(const hf_ws_parser *p) { return !p->_hdr_len && !p->_in_msg; }
