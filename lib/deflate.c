/* SPDX-License-Identifier: MIT */
/* permessage-deflate (RFC 7692): the extension-header grammar and the
 * negotiation rules are hand-written (they are the protocol); DEFLATE itself
 * is zlib's. The inflater grows its output only up to the caller's limit,
 * so a small bomb can never make us allocate what it would expand to. */
#include "hf/deflate.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "hf/err.h"

/* ---- extension header grammar (RFC 6455 9.1, RFC 7230 3.2.6) ----------- */

static int is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
    return 1;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int ieq(const char *a, size_t n, const char *lit) {
  if (strlen(lit) != n)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char x = a[i], y = lit[i];
    if (x >= 'A' && x <= 'Z')
      x = (char)(x + 32);
    if (x != y)
      return 0;
  }
  return 1;
}

typedef struct {
  const char *p, *end;
} cur;

static void skip_ows(cur *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
    c->p++;
}

static size_t token(cur *c, const char **start) {
  *start = c->p;
  while (c->p < c->end && is_tchar((unsigned char)*c->p))
    c->p++;
  return (size_t)(c->p - *start);
}

/* One parameter value: a token or a quoted-string (unquoted into out,
 * which holds up to 15 characters; longer values are reported as 16). */
static int value(cur *c, char out[16], size_t *n) {
  *n = 0;
  if (c->p < c->end && *c->p == '"') {
    c->p++;
    while (c->p < c->end && *c->p != '"') {
      char ch = *c->p++;
      if (ch == '\\') {
        if (c->p >= c->end)
          return -1;
        ch = *c->p++;
      }
      if (*n < 15)
        out[*n] = ch;
      if (*n < 16)
        (*n)++;
    }
    if (c->p >= c->end)
      return -1; /* unterminated */
    c->p++;
    return 0;
  }
  const char *s;
  size_t l = token(c, &s);
  if (!l)
    return -1;
  for (size_t i = 0; i < l && i < 15; i++)
    out[i] = s[i];
  *n = l > 15 ? 16 : l;
  return 0;
}

/* Window bits value: 1*DIGIT without leading zero, 8..15. */
static int bits_of(const char *v, size_t n) {
  if (n == 1 && v[0] >= '8' && v[0] <= '9')
    return v[0] - '0';
  if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
    return 10 + v[1] - '0';
  return -1;
}

enum { P_SNCT = 1, P_CNCT = 2, P_SMWB = 4, P_CMWB = 8 };

typedef struct {
  unsigned seen;
  int smwb, cmwb; /* -1: named without a value (client_max_window_bits) */
} ext_params;

/* Parse one extension (at c->p, after OWS) up to the next top-level ',' or
 * the end. Returns 1 for a well-formed permessage-deflate with only known,
 * unrepeated, valid parameters (*ep filled); 0 for another extension or a
 * declinable offer; -1 for a syntax error (the rest of the value is
 * unreliable). Leaves c->p after the ',' or at the end. */
static int one_extension(cur *c, ext_params *ep) {
  const char *name;
  size_t nl = token(c, &name);
  if (!nl)
    return -1;
  int ours = ieq(name, nl, "permessage-deflate"), ok = ours;
  memset(ep, 0, sizeof *ep);
  for (;;) {
    skip_ows(c);
    if (c->p >= c->end)
      return ok;
    if (*c->p == ',') {
      c->p++;
      return ok;
    }
    if (*c->p != ';')
      return -1;
    c->p++;
    skip_ows(c);
    const char *pn;
    size_t pl = token(c, &pn);
    if (!pl)
      return -1;
    skip_ows(c);
    char v[16];
    size_t vl = 0;
    int has_v = 0;
    if (c->p < c->end && *c->p == '=') {
      c->p++;
      skip_ows(c);
      if (value(c, v, &vl) < 0)
        return -1;
      has_v = 1;
    }
    if (!ours)
      continue;
    unsigned bit = 0;
    if (ieq(pn, pl, "server_no_context_takeover"))
      bit = P_SNCT;
    else if (ieq(pn, pl, "client_no_context_takeover"))
      bit = P_CNCT;
    else if (ieq(pn, pl, "server_max_window_bits"))
      bit = P_SMWB;
    else if (ieq(pn, pl, "client_max_window_bits"))
      bit = P_CMWB;
    if (!bit || (ep->seen & bit)) {
      ok = 0; /* unknown or repeated: decline this offer */
      continue;
    }
    ep->seen |= bit;
    if (bit == P_SNCT || bit == P_CNCT) {
      if (has_v)
        ok = 0;
    } else if (bit == P_SMWB) {
      ep->smwb = has_v ? bits_of(v, vl) : -1;
      if (ep->smwb < 0)
        ok = 0;
    } else {
      ep->cmwb = has_v ? bits_of(v, vl) : -1;
      if (has_v && ep->cmwb < 0)
        ok = 0;
    }
  }
}

static int accept_offer(const hf_deflate_config *cfg, const ext_params *ep,
                        hf_deflate_params *out) {
  int sbits = cfg->server_max_window_bits;
  if (sbits < 9 || sbits > 15)
    sbits = 15;
  if (ep->seen & P_SMWB) {
    if (ep->smwb < 9)
      return 0; /* zlib cannot compress with a 256-byte window */
    if (ep->smwb < sbits)
      sbits = ep->smwb;
  }
  int cbits = 15;
  if (ep->seen & P_CMWB) {
    cbits = cfg->client_max_window_bits >= 8 && cfg->client_max_window_bits <= 15
                ? cfg->client_max_window_bits
                : 15;
    if (ep->cmwb > 0 && ep->cmwb < cbits)
      cbits = ep->cmwb;
  }
  memset(out, 0, sizeof *out);
  out->server_no_context_takeover = 1; /* shared frames: see the header */
  out->client_no_context_takeover =
      (ep->seen & P_CNCT) || !cfg->allow_client_takeover;
  out->server_max_window_bits = (uint8_t)sbits;
  out->client_max_window_bits = (uint8_t)cbits;
  out->server_bits_named = (ep->seen & P_SMWB) != 0;
  out->client_bits_named = (ep->seen & P_CMWB) && cbits < 15;
  return 1;
}

int hf_deflate_negotiate_value(const hf_deflate_config *cfg, const char *v,
                               size_t len, hf_deflate_params *out) {
  cur c = {v, v + len};
  while (c.p < c.end) {
    skip_ows(&c);
    if (c.p < c.end && *c.p == ',') { /* empty list element */
      c.p++;
      continue;
    }
    if (c.p >= c.end)
      break;
    ext_params ep;
    int r = one_extension(&c, &ep);
    if (r < 0)
      return 0; /* malformed: decline everything after it in this field */
    if (r == 1 && accept_offer(cfg, &ep, out))
      return 1;
  }
  return 0;
}

int hf_deflate_negotiate(const hf_deflate_config *cfg,
                         const hf_http_request *req, hf_deflate_params *out) {
  for (size_t i = 0; i < req->num_headers; i++) {
    const hf_http_header *h = &req->headers[i];
    if (ieq(h->name, h->name_len, "sec-websocket-extensions") &&
        hf_deflate_negotiate_value(cfg, h->value, h->value_len, out))
      return 1;
  }
  return 0;
}

int hf_deflate_response(const hf_deflate_params *p, char *buf, size_t cap) {
  char sb[32] = "", cb[32] = "";
  if (p->server_bits_named)
    snprintf(sb, sizeof sb, "; server_max_window_bits=%u", p->server_max_window_bits);
  if (p->client_bits_named)
    snprintf(cb, sizeof cb, "; client_max_window_bits=%u", p->client_max_window_bits);
  int n = snprintf(buf, cap, "permessage-deflate%s%s%s%s",
                   p->server_no_context_takeover ? "; server_no_context_takeover" : "",
                   p->client_no_context_takeover ? "; client_no_context_takeover" : "",
                   sb, cb);
  return n < 0 || (size_t)n >= cap ? HF_ETOOBIG : n;
}

int hf_deflate_offer(const hf_deflate_config *cfg, int no_client_takeover,
                     char *buf, size_t cap) {
  char sb[32] = "";
  if (cfg->server_max_window_bits >= 8 && cfg->server_max_window_bits < 15)
    snprintf(sb, sizeof sb, "; server_max_window_bits=%u", cfg->server_max_window_bits);
  int n = snprintf(buf, cap, "permessage-deflate%s%s; client_max_window_bits",
                   no_client_takeover ? "; client_no_context_takeover" : "", sb);
  return n < 0 || (size_t)n >= cap ? HF_ETOOBIG : n;
}

int hf_deflate_check_response(const hf_deflate_config *offered, const char *v,
                              size_t len, hf_deflate_params *out) {
  cur c = {v, v + len};
  int found = 0;
  while (c.p < c.end) {
    skip_ows(&c);
    if (c.p >= c.end)
      break;
    const char *save = c.p;
    ext_params ep;
    int r = one_extension(&c, &ep);
    if (r < 0)
      return HF_EPROTO;
    const char *name;
    cur nc = {save, c.end};
    size_t nl = token(&nc, &name);
    if (!ieq(name, nl, "permessage-deflate"))
      continue; /* another extension: not ours to judge */
    if (r == 0 || found)
      return HF_EPROTO; /* invalid parameters, or accepted twice */
    int offered_s = offered->server_max_window_bits >= 8 &&
                            offered->server_max_window_bits < 15
                        ? offered->server_max_window_bits
                        : 15;
    if ((ep.seen & P_SMWB) && ep.smwb > offered_s)
      return HF_EPROTO;
    if ((ep.seen & P_CMWB) && ep.cmwb < 0)
      return HF_EPROTO; /* the response must carry a value */
    memset(out, 0, sizeof *out);
    out->server_no_context_takeover = (ep.seen & P_SNCT) != 0;
    out->client_no_context_takeover = (ep.seen & P_CNCT) != 0;
    out->server_max_window_bits = (uint8_t)((ep.seen & P_SMWB) ? ep.smwb : offered_s);
    out->client_max_window_bits = (uint8_t)((ep.seen & P_CMWB) ? ep.cmwb : 15);
    out->server_bits_named = (ep.seen & P_SMWB) != 0;
    out->client_bits_named = (ep.seen & P_CMWB) != 0;
    found = 1;
  }
  return found;
}

/* ---- codec ---------------------------------------------------------------- */

struct hf_deflate_enc {
  z_stream z;
  int level, mem_level, bits;
};

struct hf_inflate {
  z_stream z;
  int bits;
  int ended; /* a final block was seen: the rest of the message is ignored */
};

hf_deflate_enc *hf_deflate_enc_new(int level, int mem_level, int window_bits) {
  if (level < 0 || level > 9 || mem_level < 1 || mem_level > 9 ||
      window_bits < 9 || window_bits > 15)
    return NULL;
  hf_deflate_enc *e = calloc(1, sizeof *e);
  if (!e)
    return NULL;
  if (deflateInit2(&e->z, level, Z_DEFLATED, -window_bits, mem_level,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    free(e);
    return NULL;
  }
  e->level = level;
  e->mem_level = mem_level;
  e->bits = window_bits;
  return e;
}

void hf_deflate_enc_free(hf_deflate_enc *e) {
  if (!e)
    return;
  deflateEnd(&e->z);
  free(e);
}

size_t hf_deflate_bound(size_t len) {
  /* zlib's own bound for non-default parameters: with a small mem_level
   * its blocks are short (2^(mem_level+6) symbols), so incompressible data
   * costs a 5-byte stored-block header every few hundred bytes, and a
   * fixed-code block can grow 1/8; plus the sync-flush marker */
  return len + (len >> 3) + (len >> 7) + 64;
}

long hf_deflate_compress(hf_deflate_enc *e, int reset, const uint8_t *in,
                         size_t len, uint8_t *out, size_t cap) {
  if (reset && deflateReset(&e->z) != Z_OK)
    return HF_EINVAL;
  e->z.next_in = (Bytef *)(uintptr_t)in;
  e->z.next_out = out;
  size_t done = 0;
  /* avail_in/avail_out are 32-bit: feed large messages in slices */
  for (;;) {
    size_t in_left = len - (size_t)((const uint8_t *)e->z.next_in - in);
    size_t out_left = cap - (size_t)(e->z.next_out - out);
    e->z.avail_in = (uInt)(in_left > 0x40000000u ? 0x40000000u : in_left);
    e->z.avail_out = (uInt)(out_left > 0x40000000u ? 0x40000000u : out_left);
    int last = in_left <= 0x40000000u;
    int r = deflate(&e->z, last ? Z_SYNC_FLUSH : Z_NO_FLUSH);
    if (r != Z_OK && r != Z_BUF_ERROR)
      return HF_EINVAL;
    done = (size_t)(e->z.next_out - out);
    if (last && e->z.avail_in == 0 && e->z.avail_out > 0)
      break;
    if (done >= cap)
      return HF_ETOOBIG;
  }
  if (done < 4 || memcmp(out + done - 4, "\x00\x00\xff\xff", 4) != 0)
    return HF_EINVAL;
  return (long)(done - 4);
}

hf_inflate *hf_inflate_new(int window_bits) {
  if (window_bits < 8 || window_bits > 15)
    return NULL;
  hf_inflate *z = calloc(1, sizeof *z);
  if (!z)
    return NULL;
  /* zlib's raw inflate takes 8..15; a larger window than the peer's is
   * always enough */
  if (inflateInit2(&z->z, -window_bits) != Z_OK) {
    free(z);
    return NULL;
  }
  z->bits = window_bits;
  return z;
}

void hf_inflate_free(hf_inflate *z) {
  if (!z)
    return;
  inflateEnd(&z->z);
  free(z);
}

void hf_inflate_reset(hf_inflate *z) {
  inflateReset(&z->z);
  z->ended = 0;
}

/* A final (BFINAL) block ended the DEFLATE stream inside a message: restart
 * the stream but keep the window, so context takeover still works. */
static int restart_keep_window(hf_inflate *z) {
  uint8_t dict[32768];
  uInt n = sizeof dict;
  if (inflateGetDictionary(&z->z, dict, &n) != Z_OK)
    return HF_EPROTO;
  inflateReset(&z->z);
  if (n && inflateSetDictionary(&z->z, dict, n) != Z_OK)
    return HF_EPROTO;
  return 0;
}

static int feed(hf_inflate *z, const uint8_t *in, size_t len, uint8_t **buf,
                size_t *blen, size_t *bcap, size_t limit) {
  z->z.next_in = (Bytef *)(uintptr_t)in;
  z->z.avail_in = 0;
  size_t left = len;
  for (;;) {
    if (z->ended) { /* bytes after a final block are not DEFLATE data */
      z->z.avail_in = 0;
      return 0;
    }
    if (!z->z.avail_in && left) {
      z->z.avail_in = (uInt)(left > 0x40000000u ? 0x40000000u : left);
      left -= z->z.avail_in;
    }
    if (*blen == *bcap) {
      if (*bcap > limit)
        return HF_ETOOBIG;
      size_t ncap = *bcap ? *bcap * 2 : (len * 4 > 1024 ? len * 4 : 1024);
      if (ncap > limit + 1 || ncap < *bcap)
        ncap = limit + 1;
      uint8_t *nb = realloc(*buf, ncap);
      if (!nb)
        return HF_ENOMEM;
      *buf = nb;
      *bcap = ncap;
    }
    size_t room = *bcap - *blen;
    z->z.next_out = *buf + *blen;
    z->z.avail_out = (uInt)(room > 0x40000000u ? 0x40000000u : room);
    uInt before = z->z.avail_out;
    int r = inflate(&z->z, Z_SYNC_FLUSH);
    *blen += before - z->z.avail_out;
    if (*blen > limit)
      return HF_ETOOBIG;
    if (r == Z_STREAM_END) {
      if (restart_keep_window(z) < 0)
        return HF_EPROTO;
      z->ended = 1;
      continue;
    }
    if (r == Z_MEM_ERROR)
      return HF_ENOMEM;
    if (r == Z_BUF_ERROR) {
      if (z->z.avail_out == 0)
        continue; /* output full: grow and go on */
      if (!z->z.avail_in && !left)
        break; /* all input used */
      return HF_EPROTO;
    }
    if (r != Z_OK)
      return HF_EPROTO;
    /* a full output buffer may leave output pending inside zlib even when
     * all input is used: grow and call again until it has room to spare */
    if (!z->z.avail_in && z->z.avail_out && !left)
      break;
  }
  return 0;
}

int hf_inflate_feed(hf_inflate *z, const uint8_t *in, size_t len, int fin,
                    uint8_t **buf, size_t *blen, size_t *bcap, size_t limit) {
  int r = len ? feed(z, in, len, buf, blen, bcap, limit) : 0;
  if (r < 0 || !fin)
    return r;
  static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
  r = feed(z, tail, 4, buf, blen, bcap, limit);
  z->ended = 0; /* the next message continues the stream (or is reset) */
  return r;
}

/* ---- per-thread instances ------------------------------------------------ */

typedef struct {
  hf_deflate_enc *enc[16]; /* by window bits */
  hf_inflate *inf;
  uint8_t *buf;
  size_t cap;
} tls_state;

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static __thread tls_state *tls;

static void tls_free(void *p) {
  tls_state *t = p;
  for (int i = 0; i < 16; i++)
    hf_deflate_enc_free(t->enc[i]);
  hf_inflate_free(t->inf);
  free(t->buf);
  free(t);
}

static void tls_init(void) { pthread_key_create(&tls_key, tls_free); }

static tls_state *tls_get(void) {
  if (tls)
    return tls;
  pthread_once(&tls_once, tls_init);
  tls_state *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  if (pthread_setspecific(tls_key, t) != 0) {
    free(t);
    return NULL;
  }
  tls = t;
  return t;
}

hf_deflate_enc *hf_deflate_thread_enc(int level, int mem_level, int window_bits) {
  tls_state *t = tls_get();
  if (!t || window_bits < 9 || window_bits > 15)
    return NULL;
  hf_deflate_enc *e = t->enc[window_bits];
  if (e && (e->level != level || e->mem_level != mem_level)) {
    hf_deflate_enc_free(e);
    e = t->enc[window_bits] = NULL;
  }
  if (!e)
    e = t->enc[window_bits] = hf_deflate_enc_new(level, mem_level, window_bits);
  return e;
}

uint8_t *hf_deflate_thread_buf(size_t cap) {
  tls_state *t = tls_get();
  if (!t)
    return NULL;
  if (t->cap < cap) {
    size_t n = t->cap ? t->cap : 4096;
    while (n < cap)
      n *= 2;
    uint8_t *nb = realloc(t->buf, n);
    if (!nb)
      return NULL;
    t->buf = nb;
    t->cap = n;
  }
  return t->buf;
}

hf_inflate *hf_inflate_thread(void) {
  tls_state *t = tls_get();
  if (!t)
    return NULL;
  if (!t->inf)
    t->inf = hf_inflate_new(15);
  return t->inf;
}
