/* SPDX-License-Identifier: MIT */
/* PROXY protocol v1/v2 header parser (haproxy's specification, "The PROXY
 * protocol", versions 1 and 2): strict about the parts it uses (signature,
 * command, family, addresses, ports), tolerant of TLVs it does not. */
#include "hf/proxy.h"

#include <arpa/inet.h>
#include <string.h>

#include "hf/err.h"

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static ssize_t fail(const char **why, ssize_t err, const char *text) {
  if (why)
    *why = text;
  return err;
}

/* One space-separated token of a v1 line: [*pos, end) up to the next space. */
static int v1_token(const char *l, size_t *pos, size_t end, const char **tok,
                    size_t *tl) {
  size_t s = *pos;
  while (*pos < end && l[*pos] != ' ')
    (*pos)++;
  *tok = l + s;
  *tl = *pos - s;
  if (*pos < end)
    (*pos)++; /* the single separating space */
  return *tl > 0;
}

static int v1_port(const char *t, size_t n, uint16_t *out) {
  if (n == 0 || n > 5 || (n > 1 && t[0] == '0'))
    return 0;
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (t[i] < '0' || t[i] > '9')
      return 0;
    v = v * 10 + (unsigned)(t[i] - '0');
  }
  if (v > 65535)
    return 0;
  *out = (uint16_t)v;
  return 1;
}

static int v1_addr(const char *t, size_t n, int family, uint8_t out[16]) {
  char s[64];
  if (n == 0 || n >= sizeof s)
    return 0;
  memcpy(s, t, n);
  s[n] = 0;
  return inet_pton(family == 4 ? AF_INET : AF_INET6, s, out) == 1;
}

static ssize_t parse_v1(const uint8_t *buf, size_t len, hf_proxy_info *out,
                        const char **why) {
  size_t lim = len < HF_PROXY_V1_MAX ? len : HF_PROXY_V1_MAX;
  const uint8_t *lf = memchr(buf, '\n', lim);
  if (!lf) {
    if (len >= HF_PROXY_V1_MAX)
      return fail(why, HF_EPROTO, "PROXY v1 line longer than 107 bytes");
    for (size_t i = 0; i < len; i++)
      if (buf[i] == 0 || (buf[i] == '\r' && i + 1 < len))
        return fail(why, HF_EPROTO, "PROXY v1 line with a control character");
    return HF_EAGAIN;
  }
  size_t total = (size_t)(lf - buf) + 1;
  if (total < 8 || buf[total - 2] != '\r')
    return fail(why, HF_EPROTO, "PROXY v1 line must end with CRLF");
  const char *l = (const char *)buf;
  size_t end = total - 2, pos = 6; /* after "PROXY " */
  for (size_t i = 0; i < end; i++)
    if (buf[i] < 0x20 || buf[i] > 0x7e)
      return fail(why, HF_EPROTO, "PROXY v1 line with a control character");
  const char *tok;
  size_t tl;
  if (!v1_token(l, &pos, end, &tok, &tl))
    return fail(why, HF_EPROTO, "PROXY v1 line without a protocol");
  memset(out, 0, sizeof *out);
  out->version = 1;
  if (tl == 7 && memcmp(tok, "UNKNOWN", 7) == 0) {
    out->local = 1; /* the rest of the line is to be ignored */
    return (ssize_t)total;
  }
  if (tl != 4 || memcmp(tok, "TCP", 3) != 0 || (tok[3] != '4' && tok[3] != '6'))
    return fail(why, HF_EPROTO, "PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN");
  out->family = tok[3] - '0';
  const char *a, *b, *p, *q;
  size_t al, bl, pl, ql;
  if (!v1_token(l, &pos, end, &a, &al) || !v1_token(l, &pos, end, &b, &bl) ||
      !v1_token(l, &pos, end, &p, &pl) || !v1_token(l, &pos, end, &q, &ql) ||
      pos != end || l[end - 1] == ' ')
    return fail(why, HF_EPROTO, "PROXY v1 line needs exactly: protocol, source, "
                                "destination, source port, destination port");
  if (!v1_addr(a, al, out->family, out->src) ||
      !v1_addr(b, bl, out->family, out->dst))
    return fail(why, HF_EPROTO, "PROXY v1 address does not match its protocol");
  if (!v1_port(p, pl, &out->src_port) || !v1_port(q, ql, &out->dst_port))
    return fail(why, HF_EPROTO, "PROXY v1 port is not a number from 0 to 65535");
  return (ssize_t)total;
}

static ssize_t parse_v2(const uint8_t *buf, size_t len, hf_proxy_info *out,
                        const char **why) {
  if (len < 16)
    return HF_EAGAIN;
  uint8_t ver = buf[12] >> 4, cmd = buf[12] & 15, fam = buf[13];
  size_t body = ((size_t)buf[14] << 8) | buf[15], total = 16 + body;
  if (ver != 2)
    return fail(why, HF_EPROTO, "PROXY v2 header with a version other than 2");
  if (cmd > 1)
    return fail(why, HF_EPROTO, "PROXY v2 command is neither LOCAL nor PROXY");
  if (total > HF_PROXY_MAX_HEADER)
    return fail(why, HF_ETOOBIG, "PROXY v2 header longer than 4096 bytes");
  if (len < total)
    return HF_EAGAIN;
  memset(out, 0, sizeof *out);
  out->version = 2;
  if (cmd == 0) { /* LOCAL: the proxy speaking for itself */
    out->local = 1;
    return (ssize_t)total;
  }
  const uint8_t *a = buf + 16;
  if (fam == 0x11) { /* TCP over IPv4 */
    if (body < 12)
      return fail(why, HF_EPROTO, "PROXY v2 IPv4 address block too short");
    out->family = 4;
    memcpy(out->src, a, 4);
    memcpy(out->dst, a + 4, 4);
    out->src_port = (uint16_t)((a[8] << 8) | a[9]);
    out->dst_port = (uint16_t)((a[10] << 8) | a[11]);
  } else if (fam == 0x21) { /* TCP over IPv6 */
    if (body < 36)
      return fail(why, HF_EPROTO, "PROXY v2 IPv6 address block too short");
    out->family = 6;
    memcpy(out->src, a, 16);
    memcpy(out->dst, a + 16, 16);
    out->src_port = (uint16_t)((a[32] << 8) | a[33]);
    out->dst_port = (uint16_t)((a[34] << 8) | a[35]);
  } else if ((fam >> 4) > 3 || (fam & 15) > 2) {
    return fail(why, HF_EPROTO, "PROXY v2 address family or transport unknown");
  } else {
    out->local = 1; /* UNSPEC, UNIX sockets, UDP: no TCP client address */
  }
  return (ssize_t)total;
}

ssize_t hf_proxy_parse(const uint8_t *buf, size_t len, hf_proxy_info *out,
                       const char **why) {
  static const char v1_sig[6] = {'P', 'R', 'O', 'X', 'Y', ' '};
  if (len == 0)
    return HF_EAGAIN;
  if (buf[0] == v2_sig[0]) {
    size_t n = len < sizeof v2_sig ? len : sizeof v2_sig;
    if (memcmp(buf, v2_sig, n) != 0)
      return fail(why, HF_EPROTO, "no PROXY protocol header (bad v2 signature)");
    return n < sizeof v2_sig ? HF_EAGAIN : parse_v2(buf, len, out, why);
  }
  size_t n = len < sizeof v1_sig ? len : sizeof v1_sig;
  if (memcmp(buf, v1_sig, n) != 0)
    return fail(why, HF_EPROTO, "no PROXY protocol header");
  return n < sizeof v1_sig ? HF_EAGAIN : parse_v1(buf, len, out, why);
}
