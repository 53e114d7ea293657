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
#include <stdio.h>

typedef struct {
  char *name; /* "" for channels without a namespace */
  bool allow_subscribe_for_client;
  bool allow_subscribe_for_anonymous;
  bool allow_publish_for_client;
  bool allow_publish_for_subscriber;
  bool allow_publish_for_anonymous;
  bool allow_user_limited_channels;
} chan_ns;

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

#endif
