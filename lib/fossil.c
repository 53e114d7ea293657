/* SPDX-License-Identifier: MIT */
/* Fossil delta encoder and decoder (see hf/fossil.h). Written for holdfast
 * from the format description: the encoder indexes the source in 16-byte
 * blocks, slides a rolling hash over the target, extends every verified
 * block match both ways and keeps the longest, then trims matches to UTF-8
 * character boundaries so that literals never split a character. No Debian
 * library implements this format. */
#include "hf/fossil.h"

#include <limits.h>
#include <string.h>

#define NHASH 16
#define MAX_CHAIN 64
#define PRIME 0x01000193u

static const char digits[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";

static int digit_value(uint8_t c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'Z')
    return c - 'A' + 10;
  if (c == '_')
    return 36;
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 37;
  if (c == '~')
    return 63;
  return -1;
}

static size_t put_int(uint8_t *out, uint64_t v) {
  uint8_t tmp[12];
  size_t n = 0;
  do {
    tmp[n++] = (uint8_t)digits[v & 63];
    v >>= 6;
  } while (v);
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  return n;
}

static size_t int_len(uint64_t v) {
  size_t n = 1;
  while (v >>= 6)
    n++;
  return n;
}

uint32_t hf_fossil_checksum(const uint8_t *p, size_t n) {
  uint32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  while (n >= 4) {
    s0 += p[0];
    s1 += p[1];
    s2 += p[2];
    s3 += p[3];
    p += 4;
    n -= 4;
  }
  s3 += (s2 << 8) + (s1 << 16) + (s0 << 24);
  switch (n) {
  case 3:
    s3 += (uint32_t)p[2] << 8; /* fall through */
  case 2:
    s3 += (uint32_t)p[1] << 16; /* fall through */
  case 1:
    s3 += (uint32_t)p[0] << 24;
  }
  return s3;
}

/* ---- encoder ----------------------------------------------------------- */

static uint32_t table_size(size_t nblocks) {
  uint32_t t = 64;
  while (t < nblocks * 2 && t < (1u << 30))
    t <<= 1;
  return t;
}

size_t hf_fossil_scratch(size_t slen) {
  size_t nb = slen / NHASH;
  return ((size_t)table_size(nb) + nb) * sizeof(int32_t);
}

static uint32_t hash_block(const uint8_t *p) {
  uint32_t h = 0;
  for (int k = 0; k < NHASH; k++)
    h = h * PRIME + p[k];
  return h;
}

static int is_cont(uint8_t c) { return (c & 0xC0) == 0x80; }

static size_t emit_insert(uint8_t *out, const uint8_t *p, size_t n) {
  size_t o = put_int(out, n);
  out[o++] = ':';
  memcpy(out + o, p, n);
  return o + n;
}

size_t hf_fossil_encode(const uint8_t *src, size_t slen, const uint8_t *tgt,
                         size_t tlen, uint8_t *out, void *scratch) {
  size_t o = put_int(out, tlen);
  out[o++] = '\n';
  size_t nb = slen / NHASH;
  if (nb && tlen >= NHASH && scratch) {
    uint32_t tsize = table_size(nb), mask = tsize - 1;
    int32_t *head = scratch, *next = head + tsize;
    for (uint32_t i = 0; i < tsize; i++)
      head[i] = -1;
    for (size_t b = 0; b < nb; b++) {
      uint32_t h = hash_block(src + b * NHASH) & mask;
      next[b] = head[h];
      head[h] = (int32_t)b;
    }
    uint32_t pow = 1; /* PRIME^(NHASH-1), to roll the oldest byte out */
    for (int k = 1; k < NHASH; k++)
      pow *= PRIME;
    size_t base = 0, i = 0;
    uint32_t h = hash_block(tgt);
    size_t limit = hf_fossil_bound(tlen) - 16; /* room for the tail */
    while (i + NHASH <= tlen) {
      size_t best_len = 0, best_t = 0, best_s = 0;
      int chain = 0;
      for (int32_t b = head[h & mask]; b >= 0 && chain < MAX_CHAIN; b = next[b], chain++) {
        size_t s = (size_t)b * NHASH;
        if (memcmp(src + s, tgt + i, NHASH) != 0)
          continue;
        size_t back = 0;
        while (back < s && i - back > base && src[s - back - 1] == tgt[i - back - 1])
          back++;
        size_t fwd = NHASH;
        while (s + fwd < slen && i + fwd < tlen && src[s + fwd] == tgt[i + fwd])
          fwd++;
        size_t t0 = i - back, s0 = s - back, len = back + fwd;
        while (len && is_cont(tgt[t0])) { /* start on a character */
          t0++;
          s0++;
          len--;
        }
        while (len && t0 + len < tlen && is_cont(tgt[t0 + len]))
          len--; /* the next literal starts on a character */
        if (len > best_len) {
          best_len = len;
          best_t = t0;
          best_s = s0;
        }
      }
      /* a copy must be cheaper than the literal bytes it replaces, counting
       * the extra insert header the split costs */
      if (best_len > int_len(best_len) + int_len(best_s) + 2 + 12) {
        size_t lit = best_t - base;
        if (o + lit + 40 > limit)
          break; /* cannot win any more: finish with one literal */
        if (lit)
          o += emit_insert(out + o, tgt + base, lit);
        o += put_int(out + o, best_len);
        out[o++] = '@';
        o += put_int(out + o, best_s);
        out[o++] = ',';
        base = i = best_t + best_len;
        if (i + NHASH <= tlen)
          h = hash_block(tgt + i);
        continue;
      }
      if (i + NHASH < tlen)
        h = (h - tgt[i] * pow) * PRIME + tgt[i + NHASH];
      i++;
    }
    if (base < tlen)
      o += emit_insert(out + o, tgt + base, tlen - base);
  } else if (tlen) {
    o += emit_insert(out + o, tgt, tlen);
  }
  o += put_int(out + o, hf_fossil_checksum(tgt, tlen));
  out[o++] = ';';
  return o;
}

/* ---- decoder ------------------------------------------------------------ */

typedef struct {
  const uint8_t *p;
  size_t n, pos;
} rd;

static int get_int(rd *r, uint64_t *v) {
  uint64_t x = 0;
  size_t start = r->pos;
  int d;
  while (r->pos < r->n && (d = digit_value(r->p[r->pos])) >= 0) {
    if (x >> 57)
      return -1; /* overflow */
    x = (x << 6) | (uint64_t)d;
    r->pos++;
  }
  if (r->pos == start)
    return -1;
  *v = x;
  return 0;
}

ssize_t hf_fossil_target_len(const uint8_t *patch, size_t plen) {
  rd r = {patch, plen, 0};
  uint64_t v;
  if (get_int(&r, &v) < 0 || r.pos >= plen || patch[r.pos] != '\n' ||
      v > (uint64_t)SSIZE_MAX)
    return -1;
  return (ssize_t)v;
}

ssize_t hf_fossil_apply(const uint8_t *src, size_t slen, const uint8_t *patch,
                        size_t plen, uint8_t *out, size_t cap) {
  rd r = {patch, plen, 0};
  uint64_t limit;
  if (get_int(&r, &limit) < 0 || r.pos >= plen || patch[r.pos++] != '\n' ||
      limit > cap)
    return -1;
  size_t total = 0;
  while (r.pos < r.n) {
    uint64_t cnt, ofst;
    if (get_int(&r, &cnt) < 0 || r.pos >= r.n)
      return -1;
    switch (patch[r.pos++]) {
    case '@':
      if (get_int(&r, &ofst) < 0 || r.pos >= r.n || patch[r.pos++] != ',')
        return -1;
      if (cnt > limit - total || ofst > slen || cnt > slen - ofst)
        return -1;
      memcpy(out + total, src + ofst, cnt);
      total += cnt;
      break;
    case ':':
      if (cnt > limit - total || cnt > r.n - r.pos)
        return -1;
      memcpy(out + total, patch + r.pos, cnt);
      r.pos += cnt;
      total += cnt;
      break;
    case ';':
      if (total != limit || cnt != hf_fossil_checksum(out, total))
        return -1;
      return (ssize_t)total;
    default:
      return -1;
    }
  }
  return -1; /* unterminated */
}
