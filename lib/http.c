/* SPDX-License-Identifier: MIT */
/* Bounded HTTP/1.x head parser (requests for the server, responses for the
 * client): finds the end of the head, then validates the first line and
 * the header fields strictly (RFC 9110/9112), returning views into the
 * caller's buffer. No allocation, no state. */
#include "hf/http.h"

#include <string.h>

#include "hf/err.h"

/* RFC 9110 5.6.2 tchar: the characters allowed in methods and field names. */
static int is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= '0' && c <= '9'))
    return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field-value bytes: HTAB, SP, VCHAR and obs-text. Everything else (CTLs,
 * DEL, a stray CR) could be used to smuggle or split headers. */
static int is_field_char(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

static unsigned char to_lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static int case_eq(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (to_lower((unsigned char)a[i]) != to_lower((unsigned char)b[i]))
      return 0;
  return 1;
}

static ssize_t fail(const char **why, ssize_t err, const char *text) {
  if (why)
    *why = text;
  return err;
}

/* Offset just past the empty line ending the head, or 0 if none ends
 * within buf[0..limit). The head ends at the first LF followed by either LF
 * or CR LF; scanning starts at 'from' because the caller has already
 * searched the earlier bytes. */
static size_t find_head_end(const char *buf, size_t from, size_t limit) {
  for (size_t e = from; e + 1 < limit; e++) {
    const char *nl = memchr(buf + e, '\n', limit - e - 1);
    if (!nl)
      return 0;
    e = (size_t)(nl - buf);
    if (buf[e + 1] == '\n')
      return e + 2;
    if (buf[e + 1] == '\r' && e + 2 < limit && buf[e + 2] == '\n')
      return e + 3;
  }
  return 0;
}

/* One line of the head, without its LF and the optional CR before it. */
typedef struct {
  const char *p;
  size_t len;
} line_view;

/* Cut the line starting at *pos (which is < end and known to be followed
 * by an LF before end) and advance *pos past its LF. */
static line_view next_line(const char *buf, size_t *pos, size_t end) {
  line_view l;
  const char *start = buf + *pos;
  const char *nl = memchr(start, '\n', end - *pos);
  size_t n = (size_t)(nl - start);
  *pos += n + 1;
  if (n > 0 && start[n - 1] == '\r')
    n--;
  l.p = start;
  l.len = n;
  return l;
}

/* Request line: method SP request-target SP HTTP-version, single spaces. */
static ssize_t parse_request_line(line_view l, hf_http_request *req,
                                  const char **why) {
  static const char bad[] = "malformed request line";
  size_t i = 0;

  while (i < l.len && is_tchar((unsigned char)l.p[i]))
    i++;
  if (i == 0 || i >= l.len || l.p[i] != ' ')
    return fail(why, HF_EPROTO, bad);
  req->method = l.p;
  req->method_len = i;
  i++;

  size_t t0 = i;
  while (i < l.len && (unsigned char)l.p[i] > 0x20 &&
         (unsigned char)l.p[i] != 0x7f)
    i++;
  if (i == t0 || i >= l.len || l.p[i] != ' ')
    return fail(why, HF_EPROTO, bad);
  req->target = l.p + t0;
  req->target_len = i - t0;
  i++;

  /* HTTP-version = "HTTP/" DIGIT "." DIGIT, exactly 8 bytes to line end. */
  const char *v = l.p + i;
  if (l.len - i != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' ||
      v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
    return fail(why, HF_EPROTO, bad);
  req->version_major = v[5] - '0';
  req->version_minor = v[7] - '0';
  if (req->version_major != 1)
    return fail(why, HF_EPROTO, "unsupported HTTP version");
  return 0;
}

/* field-line = field-name ":" OWS field-value OWS */
static ssize_t parse_header_line(line_view l, hf_http_header *h,
                                 const char **why) {
  size_t i = 0;

  /* Control bytes anywhere in the line are checked first: a stray CR or NUL
   * is the classic request-smuggling vector, whatever else is wrong. */
  for (size_t j = 0; j < l.len; j++)
    if (!is_field_char((unsigned char)l.p[j]))
      return fail(why, HF_EPROTO, "control character in header");
  if (is_ows((unsigned char)l.p[0]))
    return fail(why, HF_EPROTO, "obsolete line folding");
  while (i < l.len && is_tchar((unsigned char)l.p[i]))
    i++;
  if (i == l.len || !memchr(l.p + i, ':', l.len - i))
    return fail(why, HF_EPROTO, "header line without a colon");
  if (l.p[i] != ':') {
    /* RFC 9112 5.1: "Host : x" must be rejected, since intermediaries
     * disagree on whether the space belongs to the name. */
    size_t j = i;
    while (j < l.len && is_ows((unsigned char)l.p[j]))
      j++;
    if (j > i && l.p[j] == ':')
      return fail(why, HF_EPROTO, "whitespace before colon");
    return fail(why, HF_EPROTO, "invalid character in header name");
  }
  if (i == 0)
    return fail(why, HF_EPROTO, "empty header name");

  h->name = l.p;
  h->name_len = i;
  i++;
  size_t end = l.len;
  while (i < end && is_ows((unsigned char)l.p[i]))
    i++;
  while (end > i && is_ows((unsigned char)l.p[end - 1]))
    end--;
  h->value = l.p + i;
  h->value_len = end - i;
  return 0;
}

/* The header fields after the first line, up to the empty line ending the
 * head at head_len; *count gets the number parsed into h[0..cap). */
static ssize_t parse_fields(const char *buf, size_t *pos, size_t head_len,
                            hf_http_header *h, size_t cap, size_t *count,
                            const char **why) {
  for (;;) {
    line_view l = next_line(buf, pos, head_len);
    if (l.len == 0)
      return 0;
    if (*count == cap)
      return fail(why, HF_ETOOBIG, "too many header fields");
    ssize_t rc = parse_header_line(l, &h[*count], why);
    if (rc < 0)
      return rc;
    (*count)++;
  }
}

ssize_t hf_http_parse_request(const char *buf, size_t len, size_t last_len,
                              size_t max_head, hf_http_request *req,
                              const char **why) {
  size_t cap = req->num_headers;
  size_t limit = len < max_head ? len : max_head;
  size_t from, head_len;

  /* A terminator is at most 3 bytes, so one completed by the new bytes
   * starts at or after last_len - 2. A stale last_len (> len) is ignored. */
  from = (last_len <= len && last_len > 2) ? last_len - 2 : 0;
  head_len = find_head_end(buf, from, limit);
  if (head_len == 0) {
    if (len >= max_head)
      return fail(why, HF_ETOOBIG, "request head too large");
    return HF_EAGAIN;
  }

  /* Only now overwrite the capacity with the count: a caller that gets
   * HF_EAGAIN can retry with the same request struct. */
  req->num_headers = 0;
  size_t pos = 0;
  ssize_t rc = parse_request_line(next_line(buf, &pos, head_len), req, why);
  if (rc < 0)
    return rc;
  rc = parse_fields(buf, &pos, head_len, req->headers, cap, &req->num_headers,
                    why);
  return rc < 0 ? rc : (ssize_t)head_len;
}

/* Status line: HTTP-version SP 3DIGIT [SP reason-phrase]. */
static ssize_t parse_status_line(line_view l, hf_http_response *res,
                                 const char **why) {
  static const char bad[] = "malformed status line";
  const char *v = l.p;
  if (l.len < 12 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' ||
      v[5] > '9' || v[7] < '0' || v[7] > '9' || v[8] != ' ')
    return fail(why, HF_EPROTO, bad);
  res->version_major = v[5] - '0';
  res->version_minor = v[7] - '0';
  int st = 0;
  for (int i = 9; i < 12; i++) {
    if (v[i] < '0' || v[i] > '9')
      return fail(why, HF_EPROTO, bad);
    st = st * 10 + (v[i] - '0');
  }
  if (st < 100)
    return fail(why, HF_EPROTO, bad);
  res->status = st;
  res->reason = v + 12;
  res->reason_len = 0;
  if (l.len > 12) {
    if (v[12] != ' ')
      return fail(why, HF_EPROTO, bad);
    res->reason = v + 13;
    res->reason_len = l.len - 13;
    for (size_t i = 0; i < res->reason_len; i++)
      if (!is_field_char((unsigned char)res->reason[i]))
        return fail(why, HF_EPROTO, "control character in the reason phrase");
  }
  if (res->version_major != 1)
    return fail(why, HF_EPROTO, "unsupported HTTP version");
  return 0;
}

ssize_t hf_http_parse_response(const char *buf, size_t len, size_t last_len,
                               size_t max_head, hf_http_response *res,
                               const char **why) {
  size_t cap = res->num_headers;
  size_t limit = len < max_head ? len : max_head;
  size_t from = (last_len <= len && last_len > 2) ? last_len - 2 : 0;
  size_t head_len = find_head_end(buf, from, limit);
  if (head_len == 0) {
    if (len >= max_head)
      return fail(why, HF_ETOOBIG, "response head too large");
    return HF_EAGAIN;
  }
  res->num_headers = 0;
  size_t pos = 0;
  ssize_t rc = parse_status_line(next_line(buf, &pos, head_len), res, why);
  if (rc < 0)
    return rc;
  rc = parse_fields(buf, &pos, head_len, res->headers, cap, &res->num_headers,
                    why);
  return rc < 0 ? rc : (ssize_t)head_len;
}

const hf_http_header *hf_http_header_find(const hf_http_header *h, size_t n,
                                          const char *name) {
  size_t nl = strlen(name);
  for (size_t i = 0; i < n; i++)
    if (h[i].name_len == nl && case_eq(h[i].name, name, nl))
      return &h[i];
  return NULL;
}

const hf_http_header *hf_http_find(const hf_http_request *req,
                                   const char *name) {
  return hf_http_header_find(req->headers, req->num_headers, name);
}

int hf_http_has_token(const char *value, size_t len, const char *token) {
  size_t tlen = strlen(token);
  size_t i = 0;

  if (tlen == 0)
    return 0;
  while (i < len) {
    size_t start = i, end;
    while (i < len && value[i] != ',')
      i++;
    end = i;
    while (start < end && is_ows((unsigned char)value[start]))
      start++;
    while (end > start && is_ows((unsigned char)value[end - 1]))
      end--;
    if (end - start == tlen && case_eq(value + start, token, tlen))
      return 1;
    i++; /* skip the comma */
  }
  return 0;
}

const char *hf_http_status_text(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 411: return "Length Required";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 426: return "Upgrade Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}
