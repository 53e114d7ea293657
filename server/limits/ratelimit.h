/* SPDX-License-Identifier: MIT */
/* Token buckets for message rate limits (prefix rl_): a bucket type that a
 * connection embeds and uses from its own worker without locks, and a
 * process-wide table of per-user and per-channel buckets shared by every
 * worker (striped: one small mutex per shard, held for a few instructions;
 * the per-user entry also counts the user's connections for
 * client.user_connection_limit). */
#ifndef SRV_RATELIMIT_H
#define SRV_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/* A rate: `per_s` tokens a second, at most `burst` saved up (0: per_s).
 * per_s == 0 means unlimited. */
typedef struct {
  uint64_t per_s;
  uint64_t burst;
} rl_rate;

/* A bucket, zero-initialised = full. Level in thousandths of a token. */
typedef struct {
  uint64_t level;
  uint64_t last_ms;
  uint8_t init;
} rl_bucket;

/* Take `cost` tokens from b at monotonic time now_ms (a cost over the
 * burst counts as the burst: such a command needs a full bucket).
 * Returns 1 if they were there (and takes them), 0 if not (b keeps its
 * level). Not thread-safe: the caller owns b. */
int rl_take(rl_bucket *b, const rl_rate *r, uint64_t now_ms, uint64_t cost);

/* Every containment value, as one immutable snapshot: a reload builds a
 * new one and publishes its pointer (rl_limits_get reads it); snapshots
 * are never changed in place. */
typedef struct {
  rl_rate command, bytes, publish, subscribe; /* per connection */
  rl_rate user;                               /* per user, all connections */
  rl_rate channel;                            /* client publications per channel */
  rl_rate ip, accept;                         /* new upgrades: per address, all */
  uint64_t user_connection_limit;             /* 0 = none */
  uint32_t disconnect_after;                  /* refusals in a burst before 3013 */
} rl_limits;

/* The current snapshot behind *slot (an acquire load; any thread). */
static inline const rl_limits *rl_limits_get(const rl_limits *const *slot) {
  return __atomic_load_n(slot, __ATOMIC_ACQUIRE);
}
/* Publish a new snapshot into *slot (a release store). The old one must
 * stay readable: holdfast keeps retired snapshots until exit. */
static inline void rl_limits_publish(const rl_limits **slot, const rl_limits *l) {
  __atomic_store_n(slot, l, __ATOMIC_RELEASE);
}

/* The process-wide per-user and per-channel buckets. */
typedef struct rl_shared rl_shared;
typedef struct rl_user rl_user;

/* A table whose buckets follow the user, channel, ip and accept rates of
 * the snapshot behind *slot (read at each take, so a reload applies at
 * once; the caller keeps slot alive). NULL on OOM. */
rl_shared *rl_shared_new(const rl_limits *const *slot);
/* Free the table (every rl_user must have been released). */
void rl_shared_free(rl_shared *t);

/* A connection of user (non-empty, NUL-terminated) starts: its entry,
 * holding one connection, in *out. limit: most connections of one user
 * (0 = none). Returns 0, 1 when the user already has `limit` connections
 * (nothing is held), -1 on OOM. Thread-safe. */
int rl_user_acquire(rl_shared *t, const char *user, uint64_t limit, rl_user **out);
/* The connection holding u ends. Thread-safe; NULL is ignored. */
void rl_user_release(rl_shared *t, rl_user *u);
/* The user's name as given to rl_user_acquire (NUL-terminated): one copy
 * shared by the user's connections, valid while u is held. Any thread. */
const char *rl_user_name(const rl_user *u);
/* Take one command from the user's bucket; 1 ok, 0 over the rate.
 * Thread-safe (the entry's shard lock). */
int rl_user_take(rl_shared *t, rl_user *u, uint64_t now_ms);
/* Take one publication from channel ch[0..len)'s bucket; 1 ok, 0 over the
 * rate, 1 as well when memory is short (a limit never fails a publish on
 * OOM). Idle entries (full buckets) are swept as new ones are added, so the
 * table holds only channels published to within about a burst's refill
 * time. Thread-safe. */
int rl_channel_take(rl_shared *t, const char *ch, size_t len, uint64_t now_ms);
/* Take one upgrade from the process-wide accept bucket and then from the
 * bucket of address key[0..len) (see rl_ip_key); 1 ok, 0 over a rate
 * (*which: 0 = the global one, 1 = the address's). Thread-safe. */
int rl_accept_take(rl_shared *t, const uint8_t *key, size_t len, uint64_t now_ms,
                   int *which);
/* The limit key of a peer address ip[0..n) (4 or 16 bytes): IPv4 as is
 * (also when IPv4-mapped), IPv6 aggregated by its /64 prefix (one host
 * usually owns a whole /64). Writes out and returns its length. */
size_t rl_ip_key(const uint8_t *ip, size_t n, uint8_t out[16]);
/* Connections of users currently held (for tests and gauges). */
size_t rl_user_count(rl_shared *t, const char *user);

#endif
