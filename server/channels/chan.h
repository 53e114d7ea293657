/* SPDX-License-Identifier: MIT */
/* Channel names and namespaces, configured like Centrifugo's
 * (`channel.without_namespace`, `channel.namespaces`): name validation,
 * namespace resolution, user-limited channels and the permission rules for
 * subscribe and publish. Pure functions over an immutable configuration. */
#ifndef SRV_CHAN_H
#define SRV_CHAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { CHAN_RECOVERY_STREAM, CHAN_RECOVERY_CACHE } chan_recovery_mode;
typedef enum { CHAN_SLOW_DISCONNECT, CHAN_SLOW_RECOVER } chan_slow_policy;

typedef struct {
  char *name; /* "" for channels without a namespace */
  bool allow_subscribe_for_client;
  bool allow_subscribe_for_anonymous;
  bool allow_publish_for_client;
  bool allow_publish_for_subscriber;
  bool allow_publish_for_anonymous;
  bool allow_user_limited_channels;
  /* streams (Centrifugo v6 meanings) */
  uint32_t history_size;      /* 0: no history */
  uint64_t history_ttl_ms;    /* 0: no history */
  uint64_t history_meta_ttl_ms; /* 0: the default (720h) */
  bool force_positioning, allow_positioning;
  bool force_recovery, allow_recovery;
  chan_recovery_mode recovery_mode; /* force_recovery_mode */
  bool allow_history_for_subscriber, allow_history_for_client;
  bool allow_history_for_anonymous;
  bool delta_fossil;  /* allowed_delta_types contains "fossil" */
  bool delta_publish; /* every publication is delta-encoded */
  /* presence */
  bool presence, join_leave, force_push_join_leave;
  bool allow_presence_for_subscriber, allow_presence_for_client;
  bool allow_presence_for_anonymous;
  /* holdfast: what to do with a slow consumer whose every subscription
   * can recover (slow_consumer_policy: "disconnect" or "recover") */
  chan_slow_policy slow_policy;
  /* proxy: events of this namespace asked of the backend (proxy/proxy.h);
   * a name selects one of `proxies` (NULL or "default": channel.proxy.*) */
  bool subscribe_proxy_enabled, publish_proxy_enabled, sub_refresh_proxy_enabled;
  char *subscribe_proxy_name, *publish_proxy_name, *sub_refresh_proxy_name;
} chan_ns;

/* Does the namespace keep history (both history_size and history_ttl)? */
static inline bool chan_has_history(const chan_ns *ns) {
  return ns->history_size && ns->history_ttl_ms;
}

typedef struct {
  chan_ns without_ns;
  chan_ns *ns;
  size_t n_ns;
  size_t max_length;  /* channel.max_length */
  bool insecure;      /* client.insecure: every permission granted */
} chan_config;

/* Build from the raw JSON of `channel.without_namespace` (object or NULL)
 * and `channel.namespaces` (array or NULL). Unknown options are reported
 * through warn(key) (ignored, not silently); bad types or names are errors
 * written to err naming the key. Returns 0 or -1. */
int chan_config_load(chan_config *cc, const json_t *without_ns,
                     const json_t *namespaces, size_t max_length,
                     bool insecure, void (*warn)(const char *key), FILE *err);
void chan_config_free(chan_config *cc);

/* Client error codes of the protocol (reference section 9.1). */
enum {
  CHAN_OK = 0,
  CHAN_E_UNKNOWN = 102,    /* unknown namespace */
  CHAN_E_PERMISSION = 103, /* permission denied */
  CHAN_E_BAD = 107         /* bad channel name */
};

/* Resolve ch[0..len): checks length, ASCII, the namespace. On success
 * *ns points at its options and CHAN_OK is returned; otherwise the code. */
int chan_resolve(const chan_config *cc, const char *ch, size_t len,
                 const chan_ns **ns);

/* May user (NUL-terminated, "" = anonymous) subscribe to ch? Returns
 * CHAN_OK or CHAN_E_PERMISSION. Private ("$") channels need a subscription
 * token, which is not supported yet: always 103 unless insecure. */
int chan_can_subscribe(const chan_config *cc, const chan_ns *ns,
                       const char *ch, size_t len, const char *user);

/* May user publish into ch (subscribed: is the client subscribed)? */
int chan_can_publish(const chan_config *cc, const chan_ns *ns,
                     const char *user, bool subscribed);

/* May user read history / presence of a channel of ns? CHAN_OK or
 * CHAN_E_PERMISSION (the caller checks the feature is on: 108). */
int chan_can_history(const chan_config *cc, const chan_ns *ns,
                     const char *user, bool subscribed);
int chan_can_presence(const chan_config *cc, const chan_ns *ns,
                      const char *user, bool subscribed);

#endif
