/* SPDX-License-Identifier: MIT */
/* The observe-only stream tracker of `holdfast chaos`: it follows one
 * direction of a proxied connection through its HTTP head (requests with
 * libhf's hf_http_parse_request) and then its WebSocket frames (headers
 * decoded with hf_frame_peek), so rules can act "after the handshake" or
 * "in the middle of a frame". It never changes a byte it is shown. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hf/err.h"
#include "hf/frame.h"
#include "hf/http.h"

#include "chaos.h"

/* Status code of a response head "HTTP/1.x NNN ...", or 0. */
static int response_status(const char *h, size_t n) {
  if (n < 12 || memcmp(h, "HTTP/1.", 7) != 0 || h[8] != ' ')
    return 0;
  int s = 0;
  for (int i = 9; i < 12; i++) {
    if (h[i] < '0' || h[i] > '9')
      return 0;
    s = s * 10 + (h[i] - '0');
  }
  return s;
}

/* Length of the head in t->head[0..have) if it is complete, 0 if more is
 * needed, -1 if it cannot be observed (malformed or too long). */
static long head_end(chaos_track *t, uint32_t before) {
  if (t->request) {
    hf_http_header hs[64];
    hf_http_request req = {.headers = hs, .num_headers = 64};
    ssize_t r = hf_http_parse_request(t->head, t->head_have, before, CHAOS_HEAD_MAX, &req, NULL);
    if (r > 0)
      return (long)r;
    return r == HF_EAGAIN ? 0 : -1;
  }
  /* responses: the blank line (CRLF or bare LF, as the request parser) */
  for (uint32_t i = before > 3 ? before - 3 : 0; i < t->head_have; i++) {
    if (t->head[i] != '\n')
      continue;
    if (i + 2 < t->head_have + 0u && t->head[i + 1] == '\r' && t->head[i + 2] == '\n')
      return (long)i + 3;
    if (i + 1 < t->head_have && t->head[i + 1] == '\n')
      return (long)i + 2;
  }
  return t->head_have >= CHAOS_HEAD_MAX ? -1 : 0;
}

/* The head phase: copy, look for the end. Returns how many of p's bytes
 * belonged to the head (all of them while it is incomplete). */
static size_t feed_head(chaos_track *t, const uint8_t *p, size_t n, unsigned *ev) {
  if (!t->head) {
    t->head = malloc(CHAOS_HEAD_MAX);
    if (!t->head) { /* cannot observe: forwarding is unaffected */
      t->phase = CHAOS_TRACK_RAW;
      return n;
    }
  }
  uint32_t before = t->head_have;
  size_t take = n < CHAOS_HEAD_MAX - before ? n : CHAOS_HEAD_MAX - before;
  memcpy(t->head + before, p, take);
  t->head_have += (uint32_t)take;
  long end = head_end(t, before);
  if (end < 0) {
    t->phase = CHAOS_TRACK_RAW;
    return n;
  }
  if (end == 0)
    return n;
  t->head_len = (uint32_t)end;
  *ev |= CHAOS_EV_HEAD;
  if (t->request) {
    t->phase = CHAOS_TRACK_FRAMES;
  } else {
    t->status = response_status(t->head, (size_t)end);
    t->phase = t->status == 101 ? CHAOS_TRACK_FRAMES : CHAOS_TRACK_RAW;
  }
  return (size_t)end - before;
}

static void frame_done(chaos_track *t, unsigned *ev) {
  t->frames++;
  if (t->opcode == HF_OP_CLOSE) {
    t->close_code = t->plen >= 2 ? (uint16_t)(t->close_b[0] << 8 | t->close_b[1]) : 1005;
    *ev |= CHAOS_EV_CLOSE;
  }
  t->in_payload = 0;
  t->hb_len = 0;
}

unsigned chaos_track_feed(chaos_track *t, const uint8_t *p, size_t n) {
  unsigned ev = 0;
  t->bytes += n;
  if (t->phase == CHAOS_TRACK_HEAD) {
    size_t used = feed_head(t, p, n, &ev);
    p += used;
    n -= used;
  }
  if (t->phase != CHAOS_TRACK_FRAMES)
    return ev;
  while (n) {
    if (!t->in_payload) {
      size_t room = sizeof t->hb - t->hb_len, take = n < room ? n : room;
      memcpy(t->hb + t->hb_len, p, take);
      hf_frame_info fi;
      size_t hl = hf_frame_peek(t->hb, t->hb_len + take, &fi);
      if (!hl) { /* still incomplete: everything taken was header */
        t->hb_len = (uint8_t)(t->hb_len + take);
        return ev;
      }
      size_t used = hl - t->hb_len;
      p += used;
      n -= used;
      t->hb_len = 0;
      t->in_payload = 1;
      t->opcode = fi.opcode;
      t->masked = fi.masked;
      memcpy(t->mask, fi.mask, 4);
      t->plen = fi.payload_len;
      t->done = 0;
      if (!t->plen)
        frame_done(t, &ev);
      continue;
    }
    uint64_t left = t->plen - t->done;
    size_t take = left < n ? (size_t)left : n;
    if (t->opcode == HF_OP_CLOSE)
      for (size_t i = 0; i < take && t->done + i < 2; i++)
        t->close_b[t->done + i] =
            p[i] ^ (t->masked ? t->mask[(t->done + i) & 3] : 0);
    t->done += take;
    p += take;
    n -= take;
    if (t->done == t->plen)
      frame_done(t, &ev);
  }
  return ev;
}

int chaos_track_inside_frame(const chaos_track *t) {
  return t->phase == CHAOS_TRACK_FRAMES && (t->hb_len > 0 || t->in_payload);
}

size_t chaos_track_mid_frame(const chaos_track *t, const uint8_t *p, size_t n) {
  if (t->phase != CHAOS_TRACK_FRAMES)
    return SIZE_MAX;
  uint8_t hb[14];
  size_t hb_len = t->hb_len, pos = 0;
  memcpy(hb, t->hb, sizeof hb);
  int in_payload = t->in_payload;
  uint64_t plen = t->plen, done = t->done;
  if (in_payload && done >= 1 && done < plen)
    return 0;
  for (;;) {
    if (!in_payload) {
      size_t room = sizeof hb - hb_len, take = n - pos < room ? n - pos : room;
      memcpy(hb + hb_len, p + pos, take);
      hf_frame_info fi;
      size_t hl = hf_frame_peek(hb, hb_len + take, &fi);
      if (!hl)
        return SIZE_MAX;
      pos += hl - hb_len;
      hb_len = 0;
      in_payload = 1;
      plen = fi.payload_len;
      done = 0;
    }
    /* in a payload at byte `done`, stream position pos */
    if (plen >= 2 && done + 1 <= plen - 1) {
      uint64_t target = plen / 2 > done + 1 ? plen / 2 : done + 1;
      uint64_t k = pos + (target - done);
      if (k <= n)
        return (size_t)k;
      return done + (n - pos) >= 1 ? n : SIZE_MAX;
    }
    uint64_t rem = plen - done;
    if (rem > n - pos)
      return SIZE_MAX;
    pos += (size_t)rem;
    in_payload = 0;
    if (pos == n)
      return SIZE_MAX;
  }
}

void chaos_track_free(chaos_track *t) {
  free(t->head);
  t->head = NULL;
  if (t->phase == CHAOS_TRACK_HEAD)
    t->phase = CHAOS_TRACK_RAW;
}

long chaos_strip_upgrade(const char *head, size_t len, char *out, size_t cap,
                         int *removed) {
  size_t o = 0, i = 0;
  int first = 1;
  *removed = 0;
  while (i < len) {
    const char *nl = memchr(head + i, '\n', len - i);
    size_t end = nl ? (size_t)(nl - head) + 1 : len;
    const char *line = head + i;
    size_t ll = end - i;
    int drop = 0;
    if (!first) {
      const char *colon = memchr(line, ':', ll);
      size_t nlen = colon ? (size_t)(colon - line) : 0;
      drop = (nlen == 7 && strncasecmp(line, "upgrade", 7) == 0) ||
             (nlen == 10 && strncasecmp(line, "connection", 10) == 0);
    }
    first = 0;
    if (drop) {
      (*removed)++;
    } else {
      if (o + ll > cap)
        return -1;
      memcpy(out + o, line, ll);
      o += ll;
    }
    i = end;
  }
  return (long)o;
}
