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
 *   - splitting the input never changes the events or the outcome. */
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
  uint64_t hash;    /* of every event and the outcome */
  size_t events;
  ssize_t outcome;  /* 0, HF_EAGAIN (input ended mid-frame) or the error */
  unsigned err_code;
} summary;

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
  size_t have = 0, pos = 0, msg_len = 0, last_need = 0;
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
          if (msg_op == HF_OP_TEXT)
            CHECK(hf_utf8_valid(msg, msg_len));
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
  mix_u64(&out->hash, (uint64_t)out->outcome);
  mix_u64(&out->hash, out->err_code);
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
  summary whole, split;
  run(in, n, max_message, expect_mask, 0, 0, &whole);
  if (mode != 0) {
    run(in, n, max_message, expect_mask, mode, seed, &split);
    CHECK(split.events == whole.events);
    CHECK(split.outcome == whole.outcome);
    CHECK(split.err_code == whole.err_code);
    CHECK(split.hash == whole.hash);
  }
  return 0;
}
