/* SPDX-License-Identifier: MIT */
/* Trusted-proxy CIDR lists and the forwarding headers (RFC 7239 Forwarded,
 * X-Forwarded-For/-Proto/-Host, X-Real-IP), walked right to left: the
 * right-most address that is not a trusted proxy is the client. Views into
 * the request only; no allocation. */
#include "hf/forwarded.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "hf/err.h"

/* At most this many list entries are looked at, the right-most ones (a
 * longer chain is someone padding the header). */
#define MAX_ENTRIES 64

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* ::ffff:a.b.c.d -> a.b.c.d in place; returns the resulting length. */
static size_t unmap(uint8_t *ip, size_t len) {
  if (len == 16 && memcmp(ip, v4mapped, 12) == 0) {
    memmove(ip, ip + 12, 4);
    return 4;
  }
  return len;
}

static int parse_ip(const char *s, size_t n, uint8_t out[16], size_t *len) {
  char b[64];
  if (n == 0 || n >= sizeof b)
    return 0;
  memcpy(b, s, n);
  b[n] = 0;
  if (memchr(b, ':', n)) {
    if (inet_pton(AF_INET6, b, out) != 1)
      return 0;
    *len = unmap(out, 16);
    return 1;
  }
  if (inet_pton(AF_INET, b, out) != 1)
    return 0;
  *len = 4;
  return 1;
}

int hf_cidr_parse(const char *s, hf_cidr *out) {
  if (!s)
    return HF_EINVAL;
  const char *slash = strchr(s, '/');
  size_t n = slash ? (size_t)(slash - s) : strlen(s);
  size_t len;
  memset(out, 0, sizeof *out);
  if (!parse_ip(s, n, out->addr, &len))
    return HF_EINVAL;
  unsigned bits = (unsigned)len * 8;
  if (slash) {
    const char *p = slash + 1;
    if (!*p || strlen(p) > 3)
      return HF_EINVAL;
    unsigned v = 0;
    for (; *p; p++) {
      if (*p < '0' || *p > '9')
        return HF_EINVAL;
      v = v * 10 + (unsigned)(*p - '0');
    }
    /* an IPv4-mapped network given in IPv6 form: its prefix counts the
     * 96 mapping bits */
    if (len == 4 && memchr(s, ':', n)) {
      if (v < 96)
        return HF_EINVAL;
      v -= 96;
    }
    if (v > bits)
      return HF_EINVAL;
    bits = v;
  }
  for (unsigned i = bits; i < len * 8; i++)
    if (out->addr[i / 8] & (0x80 >> (i % 8)))
      return HF_EINVAL; /* host bits set: say what you mean */
  out->len = (uint8_t)len;
  out->bits = (uint8_t)bits;
  return 0;
}

int hf_cidr_match(const hf_cidr *list, size_t n, const uint8_t *ip,
                  size_t len) {
  uint8_t a[16];
  if (len != 4 && len != 16)
    return 0;
  memcpy(a, ip, len);
  len = unmap(a, len);
  for (size_t i = 0; i < n; i++) {
    const hf_cidr *c = &list[i];
    if (c->len != len)
      continue;
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a, c->addr, full) != 0)
      continue;
    if (rest && ((a[full] ^ c->addr[full]) & (uint8_t)(0xff << (8 - rest))))
      continue;
    return 1;
  }
  return 0;
}

size_t hf_fwd_parse_addr(const char *s, size_t n, uint8_t out[16]) {
  while (n && (*s == ' ' || *s == '\t')) {
    s++;
    n--;
  }
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    n--;
  if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
    s++;
    n -= 2;
  }
  size_t len = 0;
  if (n && s[0] == '[') { /* [v6] or [v6]:port */
    const char *rb = memchr(s, ']', n);
    if (!rb)
      return 0;
    size_t rest = n - (size_t)(rb - s) - 1;
    if (rest && rb[1] != ':')
      return 0;
    for (size_t i = 2; i <= rest; i++)
      if (rb[i] < '0' || rb[i] > '9')
        return 0;
    if (!parse_ip(s + 1, (size_t)(rb - s) - 1, out, &len))
      return 0;
    return len;
  }
  const char *colon = memchr(s, ':', n);
  if (colon && !memchr(colon + 1, ':', n - (size_t)(colon - s) - 1)) {
    /* exactly one colon: IPv4 with a port */
    for (const char *p = colon + 1; p < s + n; p++)
      if (*p < '0' || *p > '9')
        return 0;
    n = (size_t)(colon - s);
    if (memchr(s, ':', n))
      return 0;
  }
  return parse_ip(s, n, out, &len) ? len : 0;
}

/* ---- header lists ------------------------------------------------------ */

typedef struct {
  const char *p;
  size_t n;
} span;

static int name_is(const hf_http_header *h, const char *name) {
  size_t n = strlen(name);
  if (h->name_len != n)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char a = h->name[i], b = name[i];
    if (a >= 'A' && a <= 'Z')
      a = (char)(a + 32);
    if (a != b)
      return 0;
  }
  return 1;
}

/* Append the comma-separated entries of every field line named name to
 * list (keeping the right-most MAX_ENTRIES in a ring). Commas inside
 * double quotes do not split. Returns the total number of entries seen. */
static size_t collect(const hf_http_request *req, const char *name,
                      span list[MAX_ENTRIES]) {
  size_t total = 0;
  for (size_t i = 0; i < req->num_headers; i++) {
    const hf_http_header *h = &req->headers[i];
    if (!name_is(h, name))
      continue;
    size_t s = 0, j = 0;
    int q = 0;
    for (; j <= h->value_len; j++) {
      if (j < h->value_len) {
        char c = h->value[j];
        if (c == '"')
          q = !q;
        else if (c == '\\' && q && j + 1 < h->value_len)
          j++;
        if (c != ',' || q)
          continue;
      }
      size_t a = s, b = j;
      while (a < b && (h->value[a] == ' ' || h->value[a] == '\t'))
        a++;
      while (b > a && (h->value[b - 1] == ' ' || h->value[b - 1] == '\t'))
        b--;
      if (b > a) { /* empty list elements are allowed and skipped */
        list[total % MAX_ENTRIES] = (span){h->value + a, b - a};
        total++;
      }
      s = j + 1;
    }
  }
  return total;
}

/* The value of parameter key in one Forwarded element ("for=...;proto=..."),
 * quotes kept (hf_fwd_parse_addr strips them). */
static int fwd_param(span el, const char *key, span *out) {
  size_t kl = strlen(key), i = 0;
  while (i < el.n) {
    size_t s = i;
    int q = 0;
    while (i < el.n && (q || el.p[i] != ';')) {
      if (el.p[i] == '"')
        q = !q;
      i++;
    }
    size_t a = s, b = i;
    while (a < b && (el.p[a] == ' ' || el.p[a] == '\t'))
      a++;
    while (b > a && (el.p[b - 1] == ' ' || el.p[b - 1] == '\t'))
      b--;
    if (b - a > kl && el.p[a + kl] == '=') {
      size_t j = 0;
      for (; j < kl; j++) {
        char c = el.p[a + j];
        if (c >= 'A' && c <= 'Z')
          c = (char)(c + 32);
        if (c != key[j])
          break;
      }
      if (j == kl) {
        out->p = el.p + a + kl + 1;
        out->n = b - a - kl - 1;
        return 1;
      }
    }
    i++;
  }
  return 0;
}

static span unquote(span v) {
  if (v.n >= 2 && v.p[0] == '"' && v.p[v.n - 1] == '"')
    return (span){v.p + 1, v.n - 2};
  return v;
}

/* The right-most value of a single-valued header that proxies append to. */
static int last_value(const hf_http_request *req, const char *name, span *out) {
  span l[MAX_ENTRIES];
  size_t n = collect(req, name, l);
  if (!n)
    return 0;
  *out = l[(n - 1) % MAX_ENTRIES];
  return 1;
}

int hf_fwd_present(const hf_http_request *req) {
  static const char *const names[] = {"forwarded", "x-forwarded-for",
                                      "x-real-ip", "x-forwarded-proto",
                                      "x-forwarded-host"};
  for (size_t i = 0; i < req->num_headers; i++)
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
      if (name_is(&req->headers[i], names[k]))
        return 1;
  return 0;
}

int hf_fwd_resolve(const hf_http_request *req, const hf_cidr *trusted,
                   size_t n_trusted, hf_fwd_result *out) {
  span l[MAX_ENTRIES];
  memset(out, 0, sizeof *out);
  int fwd = 1;
  size_t total = collect(req, "forwarded", l);
  if (!total) {
    fwd = 0;
    total = collect(req, "x-forwarded-for", l);
  }
  if (total) {
    size_t first = total > MAX_ENTRIES ? total - MAX_ENTRIES : 0;
    long pick = -1, last_trusted = -1;
    uint8_t ip[16], lt_ip[16];
    size_t ipl = 0, lt_len = 0;
    for (size_t i = total; i-- > first;) {
      span e = l[i % MAX_ENTRIES], v = e;
      if (fwd && !fwd_param(e, "for", &v)) {
        out->bad = 1;
        break;
      }
      ipl = hf_fwd_parse_addr(v.p, v.n, ip);
      if (!ipl) {
        out->bad = 1;
        break;
      }
      if (hf_cidr_match(trusted, n_trusted, ip, ipl)) {
        last_trusted = (long)i;
        memcpy(lt_ip, ip, ipl);
        lt_len = ipl;
        out->hops++;
        continue;
      }
      pick = (long)i;
      break;
    }
    if (pick < 0 && last_trusted >= 0) {
      pick = last_trusted; /* every address trusted, or the walk stopped */
      memcpy(ip, lt_ip, lt_len);
      ipl = lt_len;
      out->hops--;
    }
    if (pick >= 0) {
      memcpy(out->client, ip, ipl);
      out->client_len = ipl;
      out->source = fwd ? "forwarded" : "x-forwarded-for";
      span e = l[(size_t)pick % MAX_ENTRIES], v;
      if (fwd && fwd_param(e, "proto", &v)) {
        v = unquote(v);
        out->proto = v.p;
        out->proto_len = v.n;
      }
      if (fwd && fwd_param(e, "host", &v)) {
        v = unquote(v);
        out->host = v.p;
        out->host_len = v.n;
      }
    }
  } else {
    span v;
    if (last_value(req, "x-real-ip", &v)) {
      size_t n = hf_fwd_parse_addr(v.p, v.n, out->client);
      if (n) {
        out->client_len = n;
        out->source = "x-real-ip";
      } else {
        out->bad = 1;
      }
    }
  }
  span v;
  if (!out->proto && last_value(req, "x-forwarded-proto", &v)) {
    out->proto = v.p;
    out->proto_len = v.n;
  }
  if (!out->host && last_value(req, "x-forwarded-host", &v)) {
    out->host = v.p;
    out->host_len = v.n;
  }
  return 0;
}
