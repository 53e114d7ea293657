/* SPDX-License-Identifier: MIT */
/* Channel namespaces and permissions (see chan.h). The rules follow
 * Centrifugo's: `ns:rest` names namespace ns, `$` marks private channels,
 * `#` user-limited ones (`chat#42,43` may be joined by users 42 and 43). */
#include "channels/chan.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *key;
  size_t off;
} ns_opt;

#define NO(f) {#f, offsetof(chan_ns, f)}
static const ns_opt opts[] = {
    NO(allow_subscribe_for_client),  NO(allow_subscribe_for_anonymous),
    NO(allow_publish_for_client),    NO(allow_publish_for_subscriber),
    NO(allow_publish_for_anonymous), NO(allow_user_limited_channels),
};

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
    if (!json_is_boolean(v)) {
      fprintf(err, "holdfast: invalid configuration: %s: expected true or false\n", full);
      return -1;
    }
    *(bool *)((char *)ns + opts[i].off) = json_is_true(v);
  }
  return 0;
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

void chan_config_free(chan_config *cc) {
  free(cc->without_ns.name);
  for (size_t i = 0; i < cc->n_ns; i++)
    free(cc->ns[i].name);
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
