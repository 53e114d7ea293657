/* SPDX-License-Identifier: MIT */
/* The rules of `holdfast chaos`: one table of rule names shared by the
 * command-line flags and the JSON documents (rules file, POST /rules), the
 * parsing of their values, and the JSON form the control endpoint reports. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h" /* srv_config_parse_duration: one duration syntax everywhere */

#include "chaos.h"

#define MAX_DURATION_MS (24ull * 3600 * 1000)
#define MAX_BYTES (1ull << 50)

typedef enum { K_DUR, K_BYTES, K_BOOL, K_CUTMODE, K_FROM, K_STATUS, K_TEXT } kind;

/* One rule: its name (the flag without "--", also the JSON key), how its
 * value reads, whether it is per direction, and where it lives. */
typedef struct {
  const char *name;
  kind k;
  int directional;
  size_t off; /* in chaos_dir_rules when directional, else in chaos_rules */
} rule_def;

#define DOFF(f) offsetof(chaos_dir_rules, f)
#define ROFF(f) offsetof(chaos_rules, f)

static const rule_def defs[] = {
    {"latency", K_DUR, 1, DOFF(latency_ms)},
    {"jitter", K_DUR, 1, DOFF(jitter_ms)},
    {"bandwidth", K_BYTES, 1, DOFF(bandwidth)},
    {"cut-after-bytes", K_BYTES, 1, DOFF(cut_after_bytes)},
    {"blackhole-after", K_DUR, 1, DOFF(blackhole_after_ms)},
    {"cut-after", K_DUR, 0, ROFF(cut_after_ms)},
    {"idle-kill", K_DUR, 0, ROFF(idle_kill_ms)},
    {"cut-mode", K_CUTMODE, 0, ROFF(cut_rst)},
    {"cut-mid-frame", K_BOOL, 0, ROFF(cut_mid_frame)},
    {"strip-upgrade", K_BOOL, 0, ROFF(strip_upgrade)},
    {"refuse", K_BOOL, 0, ROFF(refuse)},
    {"from", K_FROM, 0, ROFF(from_upgrade)},
    {"respond", K_STATUS, 0, ROFF(respond)},
    {"respond-body", K_TEXT, 0, ROFF(respond_body)},
};
#define NDEFS (sizeof defs / sizeof defs[0])

static const rule_def *find_def(const char *name) {
  for (size_t i = 0; i < NDEFS; i++)
    if (strcmp(defs[i].name, name) == 0)
      return &defs[i];
  return NULL;
}

void chaos_rules_init(chaos_rules *r) {
  memset(r, 0, sizeof *r);
  for (int d = 0; d < 2; d++) {
    r->dir[d].cut_after_bytes = CHAOS_OFF;
    r->dir[d].blackhole_after_ms = CHAOS_OFF;
  }
  r->cut_after_ms = CHAOS_OFF;
  r->idle_kill_ms = CHAOS_OFF;
}

void chaos_ruleset_init(chaos_ruleset *rs) {
  memset(rs, 0, sizeof *rs);
  chaos_rules_init(&rs->all);
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  if (!s || *s < '0' || *s > '9')
    return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

/* The value of one rule from its text into val (a u64, a flag or the
 * text); -1 with err set when it does not read. */
static int read_value(const rule_def *d, const char *value, uint64_t *val,
                      char *err, size_t errcap) {
  const char *v = value ? value : "true";
  const char *want = NULL;
  switch (d->k) {
  case K_DUR:
    if (srv_config_parse_duration(v, val) < 0 || *val > MAX_DURATION_MS)
      want = "a duration like \"500ms\", \"5s\" or \"1m\" (up to 24h)";
    break;
  case K_BYTES:
    if (parse_u64(v, 1, MAX_BYTES, val) < 0)
      want = "a positive whole number of bytes";
    break;
  case K_BOOL:
    if (strcmp(v, "true") == 0)
      *val = 1;
    else if (strcmp(v, "false") == 0)
      *val = 0;
    else
      want = "true or false";
    break;
  case K_CUTMODE:
    if (strcmp(v, "fin") == 0)
      *val = 0;
    else if (strcmp(v, "rst") == 0)
      *val = 1;
    else
      want = "fin or rst";
    break;
  case K_FROM:
    if (strcmp(v, "accept") == 0)
      *val = 0;
    else if (strcmp(v, "upgrade") == 0)
      *val = 1;
    else
      want = "accept or upgrade";
    break;
  case K_STATUS:
    if (parse_u64(v, 100, 599, val) < 0 || *val == 101)
      want = "an HTTP status from 100 to 599 other than 101";
    break;
  case K_TEXT:
    if (strlen(v) >= CHAOS_RESPOND_MAX)
      want = "a text shorter than 512 bytes";
    break;
  }
  if (want) {
    snprintf(err, errcap, "%s = \"%.64s\": expected %s", d->name, v, want);
    return -1;
  }
  return 0;
}

int chaos_rules_set(chaos_rules *r, const char *name, const char *value,
                    unsigned dirs, char *err, size_t errcap) {
  const rule_def *d = find_def(name);
  if (!d) {
    size_t o = (size_t)snprintf(err, errcap, "unknown rule \"%.64s\" (known:", name);
    for (size_t i = 0; i < NDEFS && o < errcap; i++)
      o += (size_t)snprintf(err + o, errcap - o, " %s", defs[i].name);
    if (o < errcap)
      snprintf(err + o, errcap - o, ")");
    return -1;
  }
  if (!d->directional && dirs != CHAOS_DIR_BOTH) {
    snprintf(err, errcap, "%s applies to the whole connection, not to one direction",
             d->name);
    return -1;
  }
  uint64_t val = 0;
  if (read_value(d, value, &val, err, errcap) < 0)
    return -1;
  if (d->directional) {
    for (int i = 0; i < 2; i++)
      if (dirs & (1u << i))
        *(uint64_t *)((char *)&r->dir[i] + d->off) = val;
    return 0;
  }
  char *f = (char *)r + d->off;
  switch (d->k) {
  case K_DUR:
    *(uint64_t *)f = val;
    break;
  case K_BOOL:
  case K_CUTMODE:
  case K_FROM:
    *(uint8_t *)f = (uint8_t)val;
    break;
  case K_STATUS:
    *(uint16_t *)f = (uint16_t)val;
    break;
  case K_TEXT:
    snprintf(f, CHAOS_RESPOND_MAX, "%s", value ? value : "");
    break;
  case K_BYTES: /* only directional rules are byte counts */
    break;
  }
  return 0;
}

/* A JSON value as the text a flag would carry; NULL if its type cannot be
 * a rule value. */
static const char *json_text(json_t *v, char *buf, size_t cap) {
  if (json_is_string(v))
    return json_string_value(v);
  if (json_is_integer(v)) {
    snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return buf;
  }
  if (json_is_boolean(v))
    return json_is_true(v) ? "true" : "false";
  return NULL;
}

static int dirs_of(const char *s, unsigned *dirs) {
  if (strcmp(s, "both") == 0)
    *dirs = CHAOS_DIR_BOTH;
  else if (strcmp(s, "up") == 0)
    *dirs = CHAOS_DIR_UP;
  else if (strcmp(s, "down") == 0)
    *dirs = CHAOS_DIR_DOWN;
  else
    return -1;
  return 0;
}

/* One rules object (top level or a "connections" entry) into r. where
 * prefixes error messages ("" or "connections.3: "). */
static int parse_rules_obj(json_t *o, chaos_rules *r, const char *where, char *err,
                           size_t errcap) {
  char e[400], num[32];
  unsigned dirs = CHAOS_DIR_BOTH;
  json_t *dv = json_object_get(o, "direction");
  if (dv && (!json_is_string(dv) || dirs_of(json_string_value(dv), &dirs) < 0)) {
    snprintf(err, errcap, "%sdirection: expected \"up\", \"down\" or \"both\"", where);
    return -1;
  }
  const char *key;
  json_t *v;
  json_object_foreach(o, key, v) {
    if (strcmp(key, "direction") == 0 || strcmp(key, "connections") == 0)
      continue;
    if (strcmp(key, "up") == 0 || strcmp(key, "down") == 0) {
      if (!json_is_object(v)) {
        snprintf(err, errcap, "%s%s: expected an object of per-direction rules", where, key);
        return -1;
      }
      const char *k2;
      json_t *v2;
      json_object_foreach(v, k2, v2) {
        const rule_def *d = find_def(k2);
        const char *t = json_text(v2, num, sizeof num);
        if (d && !d->directional) {
          snprintf(err, errcap, "%s%s.%s: %s applies to the whole connection, not to one direction",
                   where, key, k2, k2);
          return -1;
        }
        if (d && !t) {
          snprintf(err, errcap, "%s%s.%s: expected a string, an integer or a boolean", where, key, k2);
          return -1;
        }
        if (chaos_rules_set(r, k2, t, key[0] == 'u' ? CHAOS_DIR_UP : CHAOS_DIR_DOWN, e,
                            sizeof e) < 0) {
          snprintf(err, errcap, "%s%s: %s", where, key, e);
          return -1;
        }
      }
      continue;
    }
    const rule_def *d = find_def(key);
    const char *t = json_text(v, num, sizeof num);
    if (d && !t) {
      snprintf(err, errcap, "%s%s: expected a string, an integer or a boolean", where, key);
      return -1;
    }
    if (chaos_rules_set(r, key, t, d && d->directional ? dirs : CHAOS_DIR_BOTH, e,
                        sizeof e) < 0) {
      snprintf(err, errcap, "%s%s", where, e);
      return -1;
    }
  }
  return 0;
}

int chaos_ruleset_parse(chaos_ruleset *rs, const char *text, size_t len, char *err,
                        size_t errcap) {
  json_error_t je;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    snprintf(err, errcap, "not JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    return -1;
  }
  int rc = -1;
  chaos_ruleset *tmp = malloc(sizeof *tmp);
  if (!tmp) {
    snprintf(err, errcap, "out of memory");
    goto out;
  }
  chaos_ruleset_init(tmp);
  if (!json_is_object(root)) {
    snprintf(err, errcap, "expected a JSON object of rules, e.g. {\"latency\":\"100ms\"}");
    goto out;
  }
  if (parse_rules_obj(root, &tmp->all, "", err, errcap) < 0)
    goto out;
  json_t *conns = json_object_get(root, "connections");
  if (conns) {
    if (!json_is_object(conns)) {
      snprintf(err, errcap, "connections: expected an object {\"N\": {rules}, ...}");
      goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(conns, key, v) {
      uint64_t n;
      char where[64];
      snprintf(where, sizeof where, "connections.%.20s: ", key);
      if (parse_u64(key, 1, UINT64_MAX - 1, &n) < 0) {
        snprintf(err, errcap, "%sexpected a connection number (1, 2, ...)", where);
        goto out;
      }
      if (!json_is_object(v)) {
        snprintf(err, errcap, "%sexpected an object of rules", where);
        goto out;
      }
      if (json_object_get(v, "connections")) {
        snprintf(err, errcap, "%sconnections cannot nest", where);
        goto out;
      }
      if (tmp->nconn == CHAOS_MAX_CONN_RULES) {
        snprintf(err, errcap, "connections: at most %d entries", CHAOS_MAX_CONN_RULES);
        goto out;
      }
      tmp->conn[tmp->nconn].conn = n;
      chaos_rules_init(&tmp->conn[tmp->nconn].rules);
      if (parse_rules_obj(v, &tmp->conn[tmp->nconn].rules, where, err, errcap) < 0)
        goto out;
      tmp->nconn++;
    }
  }
  *rs = *tmp;
  rc = 0;
out:
  free(tmp);
  json_decref(root);
  return rc;
}

const chaos_rules *chaos_ruleset_for(const chaos_ruleset *rs, uint64_t conn) {
  for (size_t i = 0; i < rs->nconn; i++)
    if (rs->conn[i].conn == conn)
      return &rs->conn[i].rules;
  return &rs->all;
}

/* ---- JSON out ---------------------------------------------------------------- */

static json_t *dur_json(uint64_t ms) {
  char b[32];
  if (ms % 1000 == 0)
    snprintf(b, sizeof b, "%" PRIu64 "s", ms / 1000);
  else
    snprintf(b, sizeof b, "%" PRIu64 "ms", ms);
  return json_string(b);
}

/* Set the directional rules of d that differ from off into o. */
static void dir_json(json_t *o, const chaos_dir_rules *d) {
  if (d->latency_ms)
    json_object_set_new(o, "latency", dur_json(d->latency_ms));
  if (d->jitter_ms)
    json_object_set_new(o, "jitter", dur_json(d->jitter_ms));
  if (d->bandwidth)
    json_object_set_new(o, "bandwidth", json_integer((json_int_t)d->bandwidth));
  if (d->cut_after_bytes != CHAOS_OFF)
    json_object_set_new(o, "cut-after-bytes", json_integer((json_int_t)d->cut_after_bytes));
  if (d->blackhole_after_ms != CHAOS_OFF)
    json_object_set_new(o, "blackhole-after", dur_json(d->blackhole_after_ms));
}

json_t *chaos_rules_json(const chaos_rules *r) {
  json_t *o = json_object();
  if (!o)
    return NULL;
  if (memcmp(&r->dir[0], &r->dir[1], sizeof r->dir[0]) == 0) {
    dir_json(o, &r->dir[0]);
  } else {
    json_t *u = json_object(), *d = json_object();
    dir_json(u, &r->dir[CHAOS_UP]);
    dir_json(d, &r->dir[CHAOS_DOWN]);
    json_object_set_new(o, "up", u);
    json_object_set_new(o, "down", d);
  }
  if (r->cut_after_ms != CHAOS_OFF)
    json_object_set_new(o, "cut-after", dur_json(r->cut_after_ms));
  if (r->idle_kill_ms != CHAOS_OFF)
    json_object_set_new(o, "idle-kill", dur_json(r->idle_kill_ms));
  if (r->cut_rst)
    json_object_set_new(o, "cut-mode", json_string("rst"));
  if (r->cut_mid_frame)
    json_object_set_new(o, "cut-mid-frame", json_true());
  if (r->strip_upgrade)
    json_object_set_new(o, "strip-upgrade", json_true());
  if (r->refuse)
    json_object_set_new(o, "refuse", json_true());
  if (r->from_upgrade)
    json_object_set_new(o, "from", json_string("upgrade"));
  if (r->respond)
    json_object_set_new(o, "respond", json_integer(r->respond));
  if (r->respond_body[0])
    json_object_set_new(o, "respond-body", json_string(r->respond_body));
  return o;
}

json_t *chaos_ruleset_json(const chaos_ruleset *rs) {
  json_t *o = chaos_rules_json(&rs->all);
  if (!o || !rs->nconn)
    return o;
  json_t *c = json_object();
  for (size_t i = 0; i < rs->nconn; i++) {
    char k[32];
    snprintf(k, sizeof k, "%" PRIu64, rs->conn[i].conn);
    json_object_set_new(c, k, chaos_rules_json(&rs->conn[i].rules));
  }
  json_object_set_new(o, "connections", c);
  return o;
}
