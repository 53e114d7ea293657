/* SPDX-License-Identifier: MIT */
/* JSON-lines / pretty logger. Untrusted strings (origins, user agents,
 * reasons) are escaped and truncated so a peer cannot forge or flood lines. */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <stdatomic.h>
#include <unistd.h>

static int g_pretty;
static _Atomic int g_min = LOG_INFO; /* changed by a reload (main thread) */
static int g_fd = 2;

void srv_log_setup(int pretty, srv_log_level min_level, int fd) {
  g_pretty = pretty;
  g_min = min_level;
  g_fd = fd;
}

int srv_log_enabled(srv_log_level lvl) {
  return (int)lvl >= atomic_load_explicit(&g_min, memory_order_relaxed);
}

void srv_log_set_level(srv_log_level min_level) {
  atomic_store_explicit(&g_min, (int)min_level, memory_order_relaxed);
}

srv_log_level srv_log_parse_level(const char *s) {
  if (strcmp(s, "debug") == 0 || strcmp(s, "trace") == 0)
    return LOG_DEBUG;
  if (strcmp(s, "none") == 0)
    return LOG_OFF;
  if (strcmp(s, "warn") == 0)
    return LOG_WARN;
  if (strcmp(s, "error") == 0)
    return LOG_ERROR;
  return LOG_INFO;
}

static const char *lvl_name(srv_log_level l) {
  static const char *n[] = {"debug", "info", "warn", "error"};
  return n[l];
}

static void put(char *buf, size_t *len, size_t cap, const char *s, size_t n) {
  if (*len + n >= cap)
    n = *len < cap - 1 ? cap - 1 - *len : 0;
  memcpy(buf + *len, s, n);
  *len += n;
}

#define PUTJ(l, s, n) put((l)->json, &(l)->jl, sizeof(l)->json, s, n)
#define PUTT(l, s, n) put((l)->text, &(l)->tl, sizeof(l)->text, s, n)

/* JSON-escape into the JSON buffer; the pretty buffer gets the same text
 * with control characters escaped. */
static void put_escaped(srv_logline *l, const char *s, size_t n) {
  static const char hx[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      PUTJ(l, e, 2);
      PUTT(l, (char *)&c, 1);
    } else if (c < 0x20 || c == 0x7f) {
      char e[6] = {'\\', 'u', '0', '0', hx[c >> 4], hx[c & 15]};
      PUTJ(l, e, 6);
      PUTT(l, e, 6);
    } else {
      PUTJ(l, (char *)&c, 1);
      PUTT(l, (char *)&c, 1);
    }
  }
}

void srv_log_begin(srv_logline *l, srv_log_level lvl, const char *event) {
  l->on = srv_log_enabled(lvl);
  l->jl = l->tl = 0;
  if (!l->on)
    return;
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char ts[40];
  int n = snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000));
  char head[160];
  int hn = snprintf(head, sizeof head,
                    "{\"ts\":\"%.*s\",\"level\":\"%s\",\"event\":\"%s\"", n, ts,
                    lvl_name(lvl), event);
  PUTJ(l, head, (size_t)hn);
  hn = snprintf(head, sizeof head, "%.*s %-5s %-18s", n, ts, lvl_name(lvl),
                event);
  PUTT(l, head, (size_t)hn);
}

static void key(srv_logline *l, const char *k) {
  PUTJ(l, ",\"", 2);
  PUTJ(l, k, strlen(k));
  PUTJ(l, "\":", 2);
  PUTT(l, " ", 1);
  PUTT(l, k, strlen(k));
  PUTT(l, "=", 1);
}

void srv_log_strn(srv_logline *l, const char *k, const char *val, size_t n) {
  if (!l->on)
    return;
  key(l, k);
  if (!val) {
    PUTJ(l, "null", 4);
    PUTT(l, "-", 1);
    return;
  }
  if (n > 256)
    n = 256;
  PUTJ(l, "\"", 1);
  put_escaped(l, val, n);
  PUTJ(l, "\"", 1);
}

void srv_log_str(srv_logline *l, const char *k, const char *val) {
  srv_log_strn(l, k, val, val ? strlen(val) : 0);
}

void srv_log_int(srv_logline *l, const char *k, long long v) {
  if (!l->on)
    return;
  key(l, k);
  char b[32];
  int n = snprintf(b, sizeof b, "%lld", v);
  PUTJ(l, b, (size_t)n);
  PUTT(l, b, (size_t)n);
}

void srv_log_bool(srv_logline *l, const char *k, int v) {
  if (!l->on)
    return;
  key(l, k);
  PUTJ(l, v ? "true" : "false", v ? 4 : 5);
  PUTT(l, v ? "true" : "false", v ? 4 : 5);
}

void srv_log_end(srv_logline *l) {
  if (!l->on)
    return;
  char *buf = g_pretty ? l->text : l->json;
  size_t *len = g_pretty ? &l->tl : &l->jl;
  size_t cap = sizeof l->json;
  if (!g_pretty) {
    if (*len > cap - 3)
      *len = cap - 3;
    buf[(*len)++] = '}';
  } else if (*len > cap - 2) {
    *len = cap - 2;
  }
  buf[(*len)++] = '\n';
  ssize_t w = write(g_fd, buf, *len);
  (void)w;
}
