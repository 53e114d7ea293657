/* SPDX-License-Identifier: MIT */
/* The Redis engine (see redis.c): configuration and set-up. */
#ifndef SRV_ENGINE_REDIS_H
#define SRV_ENGINE_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

typedef struct {
  const char *const *addresses; /* shards: host:port or redis://host:port */
  size_t naddresses;
  const char *user, *password, *client_name;
  int db;
  const char *prefix;             /* keys and channels start with it */
  uint32_t connect_timeout_ms, io_timeout_ms;
  uint64_t presence_ttl_ms;       /* presence entries live this long unrefreshed */
  uint64_t meta_ttl_ms;           /* stream positions when a namespace sets none */
  uint64_t idem_window_ms;        /* idempotency keys */
  /* Sentinel (instead of addresses): the master of sentinel_master is
   * asked from these and followed through failovers */
  const char *const *sentinels;
  size_t nsentinels;
  const char *sentinel_master, *sentinel_user, *sentinel_password;
  /* Redis Cluster (instead of addresses): seed nodes; the masters and
   * their slots are asked from them */
  const char *const *clusters;
  size_t nclusters;
} eng_redis_config;

/* The engine over nworkers workers; ctl is the control handler the server
 * API's targeted commands run on every worker of every node. The strings
 * of cfg must outlive the engine. NULL with a message in err. */
eng *eng_redis_new(const eng_redis_config *cfg, hub *h, size_t nworkers, hub_ctl_fn ctl,
                   char *err, size_t errcap);
/* Worker idx's connections, on its loop (before the loop runs). 0 or -1. */
int eng_redis_attach(eng *e, size_t idx, hf_loop *loop, hub_local *hl);
/* Stop worker idx's timers (after its loop stopped, before eng_free). */
void eng_redis_detach(eng *e, size_t idx);

#endif
