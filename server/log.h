/* SPDX-License-Identifier: MIT */
/* Structured logging: one line per lifecycle event on stderr, as a JSON
 * object or as aligned text (--log-format pretty). A line is built in a
 * stack buffer and leaves in one write(2), so lines from worker threads never
 * interleave. Never pass secrets (tokens, keys) to it. */
#ifndef SRV_LOG_H
#define SRV_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF } srv_log_level;

/* Set once at start-up, before threads start. */
void srv_log_setup(int pretty, srv_log_level min_level, int fd);
int srv_log_enabled(srv_log_level lvl);
/* Change the lowest level logged (a SIGHUP reload); any thread. */
void srv_log_set_level(srv_log_level min_level);
/* "trace" (the same as debug here), "debug", "info", "warn", "error",
 * "none" (nothing is logged): the levels a Centrifugo config may name. */
srv_log_level srv_log_parse_level(const char *s);

typedef struct {
  char json[3072];
  size_t jl;
  char text[3072];
  size_t tl;
  int on;
} srv_logline;

/* Begin a line: {"ts":...,"level":...,"event":...}. Does nothing (cheaply)
 * if lvl is below the configured minimum. */
void srv_log_begin(srv_logline *l, srv_log_level lvl, const char *event);
void srv_log_str(srv_logline *l, const char *key, const char *val);
/* A byte string that may be untrusted: escaped, cut at 256 bytes. */
void srv_log_strn(srv_logline *l, const char *key, const char *val, size_t n);
void srv_log_int(srv_logline *l, const char *key, long long v);
void srv_log_bool(srv_logline *l, const char *key, int v);
void srv_log_end(srv_logline *l);

#endif
