/* SPDX-License-Identifier: MIT */
/* Channel namespaces and permissions (see chan.h). The rules follow
 * Centrifugo's: `ns:rest` names namespace ns, `$` marks private channels,
 * `#` user-limited ones (`chat#42,43` may be joined by users 42 and 43). */
#include "channels/chan.h"

#include "config.h"

#include <stdlib.h>
#include <string.h>

typedef enum { OPT_BOOL, OPT_UINT, OPT_DUR, OPT_RECOVERY_MODE, OPT_DELTA_TYPES,
               OPT_SLOW, OPT_STR } opt_type;

typedef struct {
  const char *key;
  opt_type type;
  size_t off;
} ns_opt;

#define NB(f) {#f, OPT_BOOL, offsetof(chan_ns, f)}
static const ns_opt opts[] = {
    NB(allow_subscribe_for_client),  NB(allow_subscribe_for_anonymous),
    NB(allow_publish_for_client),    NB(allow_publish_for_subscriber),
    NB(allow_publish_for_anonymous), NB(allow_user_limited_channels),
    {"history_size", OPT_UINT, offsetof(chan_ns, history_size)},
    {"history_ttl", OPT_DUR, offsetof(chan_ns, history_ttl_ms)},
    {"history_meta_ttl", OPT_DUR, offsetof(chan_ns, history_meta_ttl_ms)},
    NB(force_positioning),           NB(allow_positioning),
    NB(force_recovery),              NB(allow_recovery),
    {"force_recovery_mode", OPT_RECOVERY_MODE, offsetof(chan_ns, recovery_mode)},
    NB(allow_history_for_subscriber), NB(allow_history_for_client),
    NB(allow_history_for_anonymous),
    {"allowed_delta_types", OPT_DELTA_TYPES, offsetof(chan_ns, delta_fossil)},
    NB(delta_publish),
    NB(presence),                    NB(join_leave),
    NB(force_push_join_leave),       NB(allow_presence_for_subscriber),
    NB(allow_presence_for_client),   NB(allow_presence_for_anonymous),
    {"slow_consumer_policy", OPT_SLOW, offsetof(chan_ns, slow_policy)},
    NB(subscribe_proxy_enabled),     NB(publish_proxy_enabled),
    NB(sub_refresh_proxy_enabled),
    {"subscribe_proxy_name", OPT_STR, offsetof(chan_ns, subscribe_proxy_name)},
    {"publish_proxy_name", OPT_STR, offsetof(chan_ns, publish_proxy_name)},
    {"sub_refresh_proxy_name", OPT_STR, offsetof(chan_ns, sub_refresh_proxy_name)},
};

static int opt_error(FILE *err, const char *full, const char *expected) {
  fprintf(err, "holdfast: invalid configuration: %s: expected %s\n", full, expected);
  return -1;
}

static int load_opt(chan_ns *ns, const ns_opt *o, json_t *v, const char *full,
                    FILE *err) {
  char *p = (char *)ns + o->off;
  switch (o->type) {
  case OPT_BOOL:
    if (!json_is_boolean(v))
      return opt_error(err, full, "true or false");
    *(bool *)p = json_is_true(v);
    return 0;
  case OPT_UINT:
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > 1000000)
      return opt_error(err, full, "an integer from 0 to 1000000");
    *(uint32_t *)p = (uint32_t)json_integer_value(v);
    return 0;
  case OPT_DUR: {
    uint64_t ms;
    if (json_is_integer(v) && json_integer_value(v) == 0)
      ms = 0;
    else if (!json_is_string(v) || srv_config_parse_duration(json_string_value(v), &ms) < 0)
      return opt_error(err, full, "a duration like \"300s\", \"5m\" or \"720h\"");
    *(uint64_t *)p = ms;
    return 0;
  }
  case OPT_RECOVERY_MODE:
    if (json_is_string(v) && (strcmp(json_string_value(v), "stream") == 0 ||
                              !json_string_length(v)))
      *(chan_recovery_mode *)p = CHAN_RECOVERY_STREAM;
    else if (json_is_string(v) && strcmp(json_string_value(v), "cache") == 0)
      *(chan_recovery_mode *)p = CHAN_RECOVERY_CACHE;
    else
      return opt_error(err, full, "\"stream\" or \"cache\"");
    return 0;
  case OPT_SLOW:
    if (json_is_string(v) && strcmp(json_string_value(v), "disconnect") == 0)
      *(chan_slow_policy *)p = CHAN_SLOW_DISCONNECT;
    else if (json_is_string(v) && strcmp(json_string_value(v), "recover") == 0)
      *(chan_slow_policy *)p = CHAN_SLOW_RECOVER;
    else
      return opt_error(err, full, "\"disconnect\" or \"recover\"");
    return 0;
  case OPT_STR:
    if (!json_is_string(v))
      return opt_error(err, full, "a string");
    free(*(char **)p);
    if (!(*(char **)p = strdup(json_string_value(v))))
      return -1;
    return 0;
  case OPT_DELTA_TYPES: {
    if (!json_is_array(v))
      return opt_error(err, full, "a list of delta types: [] or [\"fossil\"]");
    bool fossil = false;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
      if (!json_is_string(e) || strcmp(json_string_value(e), "fossil") != 0)
        return opt_error(err, full, "a list of delta types: only \"fossil\" exists");
      fossil = true;
    }
    *(bool *)p = fossil;
    return 0;
  }
  }
  return -1;
}

/* Options that only make sense with history, named so the fix is clear. */
static int check_ns(const chan_ns *ns, const char *where, FILE *err) {
  struct {
    bool on;
    const char *key;
  } need[] = {{ns->force_recovery, "force_recovery"},
              {ns->allow_recovery, "allow_recovery"},
              {ns->force_positioning, "force_positioning"},
              {ns->allow_positioning, "allow_positioning"},
              {ns->delta_fossil, "allowed_delta_types"},
              {ns->delta_publish, "delta_publish"},
              {ns->slow_policy == CHAN_SLOW_RECOVER, "slow_consumer_policy \"recover\""}};
  if ((ns->history_size != 0) != (ns->history_ttl_ms != 0)) {
    fprintf(err, "holdfast: invalid configuration: %s: history_size and history_ttl "
                 "must both be set (history is on) or both be 0\n", where);
    return -1;
  }
  if (chan_has_history(ns))
    return 0;
  for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
    if (need[i].on) {
      fprintf(err, "holdfast: invalid configuration: %s.%s needs history: set "
                   "history_size and history_ttl in that namespace\n", where, need[i].key);
      return -1;
    }
  return 0;
}

static int load_ns(chan_ns *ns, const json_t *obj, const char *where,
                   void (*warn)(const char *), FILE *err) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)obj, k, v) {
    if (strcmp(k, "name") == 0)
      continue;
    size_t i;
    for (i = 0; i < sizeof opts / sizeof opts[0]; i++)
      if (strcmp(opts[i].key, k) == 0)
        break;
    char full[300];
    snprintf(full, sizeof full, "%s.%s", where, k);
    if (i == sizeof opts / sizeof opts[0]) {
      if (warn)
        warn(full);
      continue;
    }
    if (load_opt(ns, &opts[i], v, full, err) < 0)
      return -1;
  }
  return check_ns(ns, where, err);
}

static int valid_ns_name(const char *s) {
  if (!*s || strlen(s) > 64)
    return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
      return 0;
  return 1;
}

int chan_config_load(chan_config *cc, const json_t *without_ns,
                     const json_t *namespaces, size_t max_length,
                     bool insecure, void (*warn)(const char *key), FILE *err) {
  memset(cc, 0, sizeof *cc);
  cc->max_length = max_length;
  cc->insecure = insecure;
  cc->without_ns.name = strdup("");
  if (!cc->without_ns.name)
    return -1;
  if (without_ns && !json_is_object(without_ns)) {
    fprintf(err, "holdfast: invalid configuration: channel.without_namespace: "
                 "expected a JSON object of channel options\n");
    return -1;
  }
  if (without_ns &&
      load_ns(&cc->without_ns, without_ns, "channel.without_namespace", warn, err) < 0)
    return -1;
  if (!namespaces)
    return 0;
  if (!json_is_array(namespaces)) {
    fprintf(err, "holdfast: invalid configuration: channel.namespaces: expected "
                 "a JSON array of objects like {\"name\":\"chat\",...}\n");
    return -1;
  }
  size_t n = json_array_size(namespaces);
  cc->ns = calloc(n ? n : 1, sizeof *cc->ns);
  if (!cc->ns)
    return -1;
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_array_get(namespaces, i);
    json_t *name = json_is_object(o) ? json_object_get(o, "name") : NULL;
    if (!json_is_string(name) || !valid_ns_name(json_string_value(name))) {
      fprintf(err,
              "holdfast: invalid configuration: channel.namespaces[%zu]: expected "
              "an object with a \"name\" of 1-64 characters [A-Za-z0-9_.-]\n",
              i);
      return -1;
    }
    for (size_t j = 0; j < cc->n_ns; j++)
      if (strcmp(cc->ns[j].name, json_string_value(name)) == 0) {
        fprintf(err, "holdfast: invalid configuration: channel.namespaces: "
                     "namespace \"%s\" is defined twice\n",
                json_string_value(name));
        return -1;
      }
    chan_ns *ns = &cc->ns[cc->n_ns++];
    ns->name = strdup(json_string_value(name));
    if (!ns->name)
      return -1;
    char where[128];
    snprintf(where, sizeof where, "channel.namespaces[%s]", ns->name);
    if (load_ns(ns, o, where, warn, err) < 0)
      return -1;
  }
  return 0;
}

static void free_ns(chan_ns *ns) {
  free(ns->name);
  free(ns->subscribe_proxy_name);
  free(ns->publish_proxy_name);
  free(ns->sub_refresh_proxy_name);
}

void chan_config_free(chan_config *cc) {
  free_ns(&cc->without_ns);
  for (size_t i = 0; i < cc->n_ns; i++)
    free_ns(&cc->ns[i]);
  free(cc->ns);
  memset(cc, 0, sizeof *cc);
}

int chan_resolve(const chan_config *cc, const char *ch, size_t len,
                 const chan_ns **ns) {
  if (!len || len > cc->max_length)
    return CHAN_E_BAD;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)ch[i] < 0x21 || (unsigned char)ch[i] > 0x7e)
      return CHAN_E_BAD; /* printable ASCII, no spaces */
  const char *s = ch, *end = ch + len;
  if (*s == '$')
    s++;
  const char *colon = memchr(s, ':', (size_t)(end - s));
  if (!colon) {
    *ns = &cc->without_ns;
    return CHAN_OK;
  }
  size_t nl = (size_t)(colon - s);
  for (size_t i = 0; i < cc->n_ns; i++)
    if (strlen(cc->ns[i].name) == nl && memcmp(cc->ns[i].name, s, nl) == 0) {
      *ns = &cc->ns[i];
      return CHAN_OK;
    }
  return CHAN_E_UNKNOWN;
}

/* "name#u1,u2": is user among u1, u2? */
static int user_listed(const char *ch, size_t len, const char *user) {
  const char *hash = memchr(ch, '#', len);
  if (!hash || !*user)
    return 0;
  const char *p = hash + 1, *end = ch + len;
  size_t ul = strlen(user);
  while (p <= end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *e = comma ? comma : end;
    if ((size_t)(e - p) == ul && memcmp(p, user, ul) == 0)
      return 1;
    if (!comma)
      break;
    p = comma + 1;
  }
  return 0;
}

int chan_can_subscribe(const chan_config *cc, const chan_ns *ns,
                       const char *ch, size_t len, const char *user) {
  if (cc->insecure)
    return CHAN_OK;
  if (len && ch[0] == '$')
    return CHAN_E_PERMISSION; /* needs a subscription token */
  if (ns->allow_user_limited_channels && memchr(ch, '#', len))
    return user_listed(ch, len, user) ? CHAN_OK : CHAN_E_PERMISSION;
  if (*user ? ns->allow_subscribe_for_client : ns->allow_subscribe_for_anonymous)
    return CHAN_OK;
  return CHAN_E_PERMISSION;
}

int chan_can_publish(const chan_config *cc, const chan_ns *ns,
                     const char *user, bool subscribed) {
  if (cc->insecure)
    return CHAN_OK;
  if (!*user && !ns->allow_publish_for_anonymous)
    return CHAN_E_PERMISSION;
  if (ns->allow_publish_for_client)
    return CHAN_OK;
  if (ns->allow_publish_for_subscriber && subscribed)
    return CHAN_OK;
  return CHAN_E_PERMISSION;
}

/* Centrifugo's rule for history and presence access: the namespace option
 * for any client or for subscribers; anonymous users additionally need the
 * _for_anonymous option. */
static int can_read(const chan_config *cc, bool for_client, bool for_sub,
                    bool for_anon, const char *user, bool subscribed) {
  if (cc->insecure)
    return CHAN_OK;
  if ((*user || for_anon) && (for_client || (for_sub && subscribed)))
    return CHAN_OK;
  return CHAN_E_PERMISSION;
}

int chan_can_history(const chan_config *cc, const chan_ns *ns,
                     const char *user, bool subscribed) {
  return can_read(cc, ns->allow_history_for_client, ns->allow_history_for_subscriber,
                  ns->allow_history_for_anonymous, user, subscribed);
}

int chan_can_presence(const chan_config *cc, const chan_ns *ns,
                      const char *user, bool subscribed) {
  return can_read(cc, ns->allow_presence_for_client, ns->allow_presence_for_subscriber,
                  ns->allow_presence_for_anonymous, user, subscribed);
}
