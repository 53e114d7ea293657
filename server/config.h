/* SPDX-License-Identifier: MIT */
/* Server configuration: one table of settings drives the JSON file reader
 * (Centrifugo v6 layout where a setting exists there), the HOLDFAST_* env
 * vars, the --key=value flags, validation and `holdfast serve --help`. */
#ifndef SRV_CONFIG_H
#define SRV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <stdio.h>

typedef struct {
  char **v;
  size_t n;
} srv_strlist;

typedef struct {
  /* listeners */
  char *http_address;
  uint64_t http_port;
  srv_strlist listen;       /* HOST:PORT entries; overrides the two above */
  uint64_t workers;         /* 0 = number of cores */
  /* TLS, trusted proxies, PROXY protocol */
  bool tls_enabled;             /* the main listeners speak TLS */
  char *tls_cert_file;
  char *tls_key_file;
  json_t *tls_sni;              /* [{"cert_pem_file":..,"key_pem_file":..}] */
  srv_strlist tls_listen;       /* more TLS listeners HOST:PORT */
  char *tls_min_version;        /* "1.2" | "1.3" */
  bool tls_ktls;
  uint64_t tls_expiry_warning_days;
  bool tls_proxy_protocol;      /* the tls_listen listeners expect PROXY */
  srv_strlist trusted_proxies;  /* CIDRs */
  bool proxy_protocol;          /* the main listeners expect PROXY */
  bool allow_same_origin;
  /* logging */
  char *log_format;         /* "auto" | "json" | "pretty" */
  char *log_level;          /* "debug" | "info" | "warn" | "error" */
  /* client */
  srv_strlist allowed_origins;
  bool allow_null_origin;
  bool allow_missing_origin;
  uint64_t connection_limit;        /* 0 = unlimited */
  uint64_t connection_limit_per_ip; /* 0 = unlimited */
  uint64_t queue_max_size;          /* output queue soft limit, bytes */
  uint64_t queue_grace_ms;          /* time over the soft limit allowed */
  uint64_t queue_hard_limit;        /* output queue hard limit, bytes */
  uint64_t retry_after;             /* seconds, in 503 answers */
  /* containment: rate limits and per-user connections (server/limits/) */
  uint64_t user_connection_limit;   /* 0 = unlimited */
  uint64_t accept_rate, accept_burst;               /* upgrades/s, all */
  uint64_t accept_rate_per_ip, accept_burst_per_ip; /* upgrades/s, one address */
  uint64_t rl_command_rate, rl_command_burst; /* per connection, per second */
  uint64_t rl_bytes_rate, rl_bytes_burst;
  uint64_t rl_publish_rate, rl_subscribe_rate;
  uint64_t rl_user_command_rate, rl_channel_publish_rate;
  uint64_t rl_disconnect_after;     /* refusals in one burst before 3013 */
  uint64_t shutdown_spread_ms;      /* drain: close clients over this window */
  /* websocket */
  uint64_t message_size_limit;
  uint64_t max_header_size;
  uint64_t max_headers;
  uint64_t handshake_timeout_ms;
  uint64_t ping_interval_ms;
  uint64_t pong_timeout_ms;
  uint64_t close_timeout_ms;
  /* permessage-deflate (branch deflateb) */
  bool compression;                 /* real-time endpoint */
  uint64_t compression_level;       /* zlib 0..9 */
  uint64_t compression_min_size;    /* bytes */
  bool compression_context_takeover;
  uint64_t compression_mem_level;   /* zlib 1..9 */
  uint64_t compression_window_bits; /* 9..15 */
  bool echo_compression;            /* echo endpoint */
  /* endpoints */
  bool echo_enabled;
  char *echo_path;
  srv_strlist echo_subprotocols;
  bool health_enabled;
  char *health_path;
  /* shutdown */
  uint64_t shutdown_timeout_ms;
  /* real-time protocol endpoint */
  bool ws_enabled;
  char *ws_path;
  /* transports: HTTP streaming, SSE, the emulation endpoint */
  bool http_stream_enabled;
  char *http_stream_path;
  uint64_t http_stream_max_body;
  bool sse_enabled;
  char *sse_path;
  uint64_t sse_max_body;
  char *emulation_path;
  uint64_t emulation_max_body;
  bool uni_ws_enabled;
  char *uni_ws_path;
  bool uni_http_stream_enabled;
  char *uni_http_stream_path;
  uint64_t uni_http_stream_max_body;
  bool uni_sse_enabled;
  char *uni_sse_path;
  uint64_t uni_sse_max_body;
  char *token_hmac_secret; /* secrets: never logged */
  char *token_rsa_pem;
  char *token_ecdsa_pem;
  char *token_jwks_file;
  char *token_audience;
  char *token_issuer;
  char *token_user_id_claim;
  bool allow_anonymous;
  bool insecure;
  uint64_t client_ping_ms;
  uint64_t client_pong_ms;
  uint64_t expired_close_delay_ms;
  uint64_t expired_sub_close_delay_ms;
  uint64_t stale_close_delay_ms;
  uint64_t channel_limit;
  uint64_t channel_max_length;
  json_t *channel_without_ns; /* raw JSON, validated by chan_config_load */
  json_t *channel_namespaces;
  /* streams: history, recovery, idempotency */
  uint64_t recovery_max_publication_limit;
  uint64_t history_max_publication_limit;
  uint64_t history_memory_limit;
  uint64_t idempotency_window_ms;
  uint64_t idempotency_max_keys;
  /* proxy: backend event proxy over HTTP (raw JSON, validated by px_config_load) */
  json_t *proxy_connect, *proxy_refresh;                      /* client.proxy.* */
  json_t *proxy_subscribe, *proxy_publish, *proxy_sub_refresh; /* channel.proxy.* */
  json_t *proxy_rpc, *rpc_without_ns, *rpc_namespaces;        /* rpc.* */
  char *rpc_ns_boundary;
  json_t *proxies; /* named proxies */
  uint64_t proxy_max_in_flight, proxy_max_in_flight_endpoint;
  uint64_t proxy_breaker_failures, proxy_breaker_open_ms;
  /* engine */
  bool prometheus_enabled;
  char *prometheus_path;
  char *node_name;             /* "" = host name */
  char *engine_type;           /* "memory" | "redis" */
  srv_strlist redis_address;
  char *redis_user, *redis_password, *redis_client_name, *redis_prefix;
  uint64_t redis_db;
  uint64_t redis_connect_timeout_ms, redis_io_timeout_ms, redis_presence_ttl_ms;
  srv_strlist redis_cluster_address, redis_sentinel_address;
  char *redis_sentinel_master, *redis_sentinel_user, *redis_sentinel_password;
  bool redis_tls;
  /* server HTTP API */
  char *api_key;
  bool api_insecure;
  char *api_path;
  uint64_t api_max_body;
  char *internal_address;
  uint64_t internal_port; /* 0: the API is served on the main listeners */
  /* admin: admin API and live dashboard (server/admin/) */
  bool admin_enabled;
  char *admin_password;
  char *admin_secret;
  bool admin_insecure;
  uint64_t admin_session_ttl_ms;
  /* reconnect storms: new-connection work per loop iteration (net/loop.c) */
  uint64_t handshake_budget_us;
  /* io_uring send path: the end-of-iteration flush as one batch (net/usend.c) */
  bool io_uring_send;
  uint64_t flush_budget; /* http_server.flush_budget */
} srv_config;

/* Defaults. */
void srv_config_init(srv_config *cfg);
void srv_config_free(srv_config *cfg);

/* Parse argv (after "serve"): --config FILE, --listen HOST:PORT (repeatable),
 * --workers N, --log-format F, --help, and --<key>=<value> / --<key> <value>
 * for every key. Applies defaults < file < HOLDFAST_* env < flags, then
 * validates. Returns 0 on success, 1 if --help was printed, -1 on error
 * (a message naming the key, the value and what is allowed went to err). */
int srv_config_load(srv_config *cfg, int argc, char **argv, FILE *err);

/* Print the reference of every setting (used by --help). */
void srv_config_help(FILE *out);

/* Print every setting as a Markdown table (for docs/configuration.md). */
void srv_config_markdown(FILE *out);

/* "25s", "500ms", "1m30s", "2h", "0" -> milliseconds. Returns 0 or -1. */
int srv_config_parse_duration(const char *s, uint64_t *out);
/* "1048576", "64KiB", "1MiB" (also KB/MB/GB) -> bytes. Returns 0 or -1. */
int srv_config_parse_size(const char *s, uint64_t *out);

/* Compare two loaded configurations setting by setting: fn(arg, key) for
 * each key whose value differs (fn may be NULL). Returns how many differ.
 * Reads only; any thread that owns both. */
size_t srv_config_diff(const srv_config *a, const srv_config *b,
                       void (*fn)(void *arg, const char *key), void *arg);

/* Record an "ignored key" warning (used by chan_config_load too). */
void srv_config_warn_unsupported(const char *key);

/* Warnings collected while loading (unknown or unsupported keys), to be
 * logged once the logger is up. NULL-terminated array, owned by cfg. */
const char *const *srv_config_warnings(void);

#endif
