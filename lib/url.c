/* SPDX-License-Identifier: MIT */
/* ws:// and wss:// URL parser: splits scheme, host (name, IPv4 or
 * bracketed IPv6 literal), port and resource, and refuses what a WebSocket
 * client must not send (fragments, credentials, unencoded bytes). */
#include "hf/url.h"

#include <arpa/inet.h>
#include <string.h>

#include "hf/err.h"

static int fail(const char **why, const char *text) {
  if (why)
    *why = text;
  return HF_EINVAL;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

static int prefix_ci(const char *s, size_t len, const char *p) {
  size_t n = strlen(p);
  if (len < n)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)s[i]) != p[i])
      return 0;
  return 1;
}

static int is_name_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

/* 4 if h[0..n) is a dotted-quad IPv4 address, else 0. */
static int ipv4_literal(const char *h, size_t n) {
  char tmp[16];
  struct in_addr a;
  if (n == 0 || n >= sizeof tmp)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!((h[i] >= '0' && h[i] <= '9') || h[i] == '.'))
      return 0;
  memcpy(tmp, h, n);
  tmp[n] = '\0';
  return inet_pton(AF_INET, tmp, &a) == 1 ? 4 : 0;
}

int hf_url_parse(hf_url *u, const char *url, size_t len, const char **why) {
  size_t i;
  memset(u, 0, sizeof *u);
  if (!url)
    return fail(why, "no URL");
  if (prefix_ci(url, len, "wss:")) {
    u->secure = 1;
    i = 4;
  } else if (prefix_ci(url, len, "ws:")) {
    i = 3;
  } else if (prefix_ci(url, len, "https:")) {
    return fail(why, "https:// is a page URL; a WebSocket URL starts with wss://");
  } else if (prefix_ci(url, len, "http:")) {
    return fail(why, "http:// is a page URL; a WebSocket URL starts with ws://");
  } else {
    return fail(why, "the URL must start with ws:// or wss://");
  }
  if (len - i < 2 || url[i] != '/' || url[i + 1] != '/')
    return fail(why, "the scheme must be followed by \"//\" and a host");
  i += 2;

  /* authority: up to the first '/', '?' or '#' */
  size_t a0 = i;
  while (i < len && url[i] != '/' && url[i] != '?' && url[i] != '#')
    i++;
  size_t a1 = i;
  if (memchr(url + a0, '@', a1 - a0))
    return fail(why, "credentials in the URL (user@host) are not sent by "
                     "WebSocket clients; send them in a header instead");
  u->authority = url + a0;
  u->authority_len = a1 - a0;

  size_t h0 = a0, h1, p0 = 0;
  if (h0 < a1 && url[h0] == '[') {
    const char *rb = memchr(url + h0, ']', a1 - h0);
    if (!rb)
      return fail(why, "an IPv6 address must be closed with ']'");
    h1 = (size_t)(rb - url);
    char tmp[64];
    size_t n = h1 - h0 - 1;
    if (memchr(url + h0 + 1, '%', n))
      return fail(why, "IPv6 zone identifiers (%eth0) are not supported");
    struct in6_addr a6;
    if (n == 0 || n >= sizeof tmp)
      return fail(why, "malformed IPv6 address");
    memcpy(tmp, url + h0 + 1, n);
    tmp[n] = '\0';
    if (inet_pton(AF_INET6, tmp, &a6) != 1)
      return fail(why, "malformed IPv6 address");
    u->host = url + h0 + 1;
    u->host_len = n;
    u->host_ip = 6;
    if (h1 + 1 < a1) {
      if (url[h1 + 1] != ':')
        return fail(why, "unexpected characters after the IPv6 address");
      p0 = h1 + 2;
    }
  } else {
    const char *colon = memchr(url + h0, ':', a1 - h0);
    h1 = colon ? (size_t)(colon - url) : a1;
    if (h1 == h0)
      return fail(why, "the URL has no host");
    if (h1 - h0 > HF_URL_MAX_HOST)
      return fail(why, "the host name is longer than 253 characters");
    for (size_t j = h0; j < h1; j++)
      if (!is_name_char((unsigned char)url[j]))
        return fail(why, "the host name has a character other than letters, "
                         "digits, '-', '.' and '_'");
    u->host = url + h0;
    u->host_len = h1 - h0;
    u->host_ip = ipv4_literal(u->host, u->host_len);
    if (colon)
      p0 = h1 + 1;
  }

  u->port = u->secure ? 443 : 80;
  if (p0) {
    long port = 0;
    if (p0 >= a1)
      return fail(why, "empty port after ':'");
    for (size_t j = p0; j < a1; j++) {
      if (url[j] < '0' || url[j] > '9' || port > 65535)
        return fail(why, "the port must be a number from 1 to 65535");
      port = port * 10 + (url[j] - '0');
    }
    if (port < 1 || port > 65535)
      return fail(why, "the port must be a number from 1 to 65535");
    u->port = (int)port;
    u->port_explicit = 1;
  }

  /* resource: the rest, which must be printable ASCII without '#' */
  for (size_t j = a1; j < len; j++) {
    unsigned char c = (unsigned char)url[j];
    if (c == '#')
      return fail(why, "a WebSocket URL must not have a fragment ('#')");
    if (c <= 0x20 || c >= 0x7f)
      return fail(why, "the path has a space, control or non-ASCII byte; "
                       "percent-encode it");
  }
  if (a1 == len) {
    u->resource = "/";
    u->resource_len = 1;
  } else if (url[a1] == '?') {
    /* "ws://h?x" has an empty path: RFC 6455 3 makes the resource "/?x",
     * which cannot be a view; refuse it with the fix */
    return fail(why, "the query must follow a path: write \"/?...\"");
  } else {
    u->resource = url + a1;
    u->resource_len = len - a1;
  }
  return 0;
}
