/* SPDX-License-Identifier: MIT */
/* Configuration loading. Every setting is one row of a table; the JSON file
 * (via jansson), HOLDFAST_* environment variables and --flags all go through
 * the same typed parsers, so a bad value is reported the same way wherever it
 * came from: key, value, source and what is allowed. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "hf/forwarded.h"

typedef enum { T_STR, T_BOOL, T_UINT, T_SIZE, T_DUR, T_LIST, T_ENUM, T_JSON } stype;

typedef struct {
  const char *key;
  stype type;
  size_t off;
  const char *def;
  uint64_t min, max;   /* T_UINT/T_SIZE/T_DUR (ms) bounds */
  const char *choices; /* T_ENUM: "a|b|c" */
  const char *origin;  /* "centrifugo" if the key exists there too */
  const char *help;
} setting;

#define O(f) offsetof(srv_config, f)
#define CF "centrifugo"
#define HF "holdfast"
#define MiB (1024ull * 1024ull)

static const setting settings[] = {
    {"http_server.address", T_STR, O(http_address), "127.0.0.1", 0, 0, NULL, CF,
     "IP address to listen on when no --listen is given"},
    {"http_server.port", T_UINT, O(http_port), "8000", 0, 65535, NULL, CF,
     "TCP port to listen on when no --listen is given (0 = any free port)"},
    /* TLS, trusted proxies, PROXY protocol (tls) */
    {"http_server.tls.enabled", T_BOOL, O(tls_enabled), "false", 0, 0, NULL, CF,
     "the main listeners (http_server.port or every --listen) speak TLS: wss:// "
     "and https://"},
    {"http_server.tls.cert_pem_file", T_STR, O(tls_cert_file), "", 0, 0, NULL, CF,
     "PEM certificate chain (leaf first) of the default certificate; reloaded on SIGHUP"},
    {"http_server.tls.key_pem_file", T_STR, O(tls_key_file), "", 0, 0, NULL, CF,
     "PEM private key (unencrypted) of the default certificate; reloaded on SIGHUP"},
    {"http_server.tls.sni", T_JSON, O(tls_sni), "[]", 0, 0, NULL, HF,
     "more certificates, chosen when the client's SNI name matches one of their "
     "names: [{\"cert_pem_file\":\"b.pem\",\"key_pem_file\":\"b.key\"}]"},
    {"http_server.tls.listen", T_LIST, O(tls_listen), "", 0, 0, NULL, HF,
     "more listeners HOST:PORT that speak TLS, beside the main (plain or TLS) ones"},
    {"http_server.tls.min_version", T_ENUM, O(tls_min_version), "1.2", 0, 0, "1.2|1.3",
     HF, "oldest TLS version accepted"},
    {"http_server.tls.ktls", T_BOOL, O(tls_ktls), "true", 0, 0, NULL, HF,
     "use kernel TLS offload where the kernel (module \"tls\") and OpenSSL allow "
     "it; otherwise TLS stays in user space"},
    {"http_server.tls.expiry_warning_days", T_UINT, O(tls_expiry_warning_days), "14", 0,
     3650, NULL, HF,
     "warn (at start, on SIGHUP and daily) when a certificate expires within this "
     "many days; /health shows the days left"},
    {"http_server.tls.proxy_protocol", T_BOOL, O(tls_proxy_protocol), "false", 0, 0,
     NULL, HF,
     "the http_server.tls.listen listeners expect a PROXY protocol v1/v2 header "
     "before the TLS handshake"},
    {"http_server.trusted_proxies", T_LIST, O(trusted_proxies), "", 0, 0, NULL, HF,
     "proxies (CIDRs, e.g. 10.0.0.0/8, ::1) whose X-Forwarded-For, X-Real-IP, "
     "Forwarded, X-Forwarded-Proto and X-Forwarded-Host are believed: the client is "
     "the right-most address that is not one of them; from other peers these headers "
     "are ignored. Non-empty: PROXY headers are accepted only from these peers"},
    {"http_server.proxy_protocol", T_BOOL, O(proxy_protocol), "false", 0, 0, NULL, HF,
     "the main listeners expect a PROXY protocol v1/v2 header (haproxy send-proxy) "
     "on every connection; its source address is the client"},
    {"client.allow_same_origin", T_BOOL, O(allow_same_origin), "true", 0, 0, NULL, HF,
     "allow browser pages of the same origin: an Origin whose host[:port] equals the "
     "request's Host (or the host forwarded by a trusted proxy); other origins need "
     "client.allowed_origins"},
    {"listen", T_LIST, O(listen), "", 0, 0, NULL, HF,
     "listen addresses HOST:PORT (IPv6 as [::1]:PORT); overrides http_server.*"},
    {"workers", T_UINT, O(workers), "0", 0, 256, NULL, HF,
     "event-loop threads, one per core; 0 = number of online cores"},
    {"log.level", T_ENUM, O(log_level), "info", 0, 0, "trace|debug|info|warn|error|none",
     CF, "lowest level logged"},
    {"log.format", T_ENUM, O(log_format), "auto", 0, 0, "auto|json|pretty", HF,
     "json: one JSON object per line; pretty: aligned text for terminals; "
     "auto: pretty when the log goes to a terminal, json otherwise"},
    {"client.allowed_origins", T_LIST, O(allowed_origins), "", 0, 0, NULL, CF,
     "browser origins allowed to upgrade: exact origins, \"*\", or patterns "
     "like https://*.example.com; empty = no browser origin is allowed"},
    {"client.allow_null_origin", T_BOOL, O(allow_null_origin), "false", 0, 0,
     NULL, HF, "accept \"Origin: null\" (sandboxed iframes, file:// pages)"},
    {"client.allow_missing_origin", T_BOOL, O(allow_missing_origin), "true", 0,
     0, NULL, HF, "accept upgrades without Origin (non-browser clients)"},
    {"client.connection_limit", T_UINT, O(connection_limit), "0", 0,
     100000000, NULL, CF,
     "most simultaneous connections per process; over it: 503 (0 = none)"},
    {"client.connection_limit_per_ip", T_UINT, O(connection_limit_per_ip), "0",
     0, 100000000, NULL, HF,
     "most simultaneous connections from one IP address (IPv6: one /64 "
     "network); over it: 503 (0 = none)"},
    {"client.queue_max_size", T_SIZE, O(queue_max_size), "1048576", 1024,
     1024 * MiB, NULL, CF,
     "output queue soft limit per connection in bytes: a queue may stay over "
     "it for client.queue_grace while the peer reads; still over it after "
     "that, the peer is closed with 3008 (or, when every subscription can "
     "recover and its namespace says slow_consumer_policy \"recover\", its "
     "queued publications are dropped and it recovers them)"},
    {"client.queue_grace", T_DUR, O(queue_grace_ms), "5s", 0, 600000, NULL, HF,
     "how long an output queue may stay over client.queue_max_size while "
     "draining (one large message to a fast reader is not slow)"},
    {"client.queue_hard_limit", T_SIZE, O(queue_hard_limit), "67108864", 1024,
     4095 * MiB, NULL, HF,
     "output queue hard limit per connection in bytes: over it the peer is "
     "slow at once"},
    {"client.retry_after", T_UINT, O(retry_after), "5", 0, 3600, NULL, HF,
     "seconds sent in Retry-After with 503 answers"},
    /* containment: rate limits, per-user connections, accept rates
     * (server/limits/), drain spread (server.c) */
    {"client.user_connection_limit", T_UINT, O(user_connection_limit), "0", 0,
     100000000, NULL, CF,
     "most simultaneous connections of one user (anonymous ones not counted) "
     "across the process; over it: disconnect 3504 (0 = none)"},
    {"client.accept_rate", T_UINT, O(accept_rate), "0", 0, 10000000, NULL, HF,
     "new WebSocket upgrades a second, all addresses together (token bucket; "
     "0 = no limit); over it: 503 with a jittered Retry-After (between "
     "client.retry_after and twice that)"},
    {"client.accept_burst", T_UINT, O(accept_burst), "0", 0, 10000000, NULL, HF,
     "upgrades that may arrive at once before client.accept_rate applies (0 = "
     "one second's worth)"},
    {"client.accept_rate_per_ip", T_UINT, O(accept_rate_per_ip), "0", 0,
     10000000, NULL, HF,
     "new WebSocket upgrades a second from one address (IPv6: one /64); 0 = "
     "no limit; over it: 503 with a jittered Retry-After"},
    {"client.accept_burst_per_ip", T_UINT, O(accept_burst_per_ip), "0", 0,
     10000000, NULL, HF,
     "upgrades one address may make at once (0 = one second's worth)"},
    /* reconnect storms: new-connection work per loop iteration (net/loop.c) */
    {"client.handshake_budget_us", T_UINT, O(handshake_budget_us), "50", 0, 1000000, NULL,
     HF,
     "microseconds per event-loop iteration spent on new-connection work (accepts, "
     "handshakes, a connection's first message, hang-ups) after established "
     "connections were served; the rest waits for the next iteration, so a reconnect "
     "storm delays established connections by about this much (0 = no budget)"},
    /* io_uring send path: the end-of-iteration flush as one batch (net/usend.c) */
    {"http_server.io_uring_send", T_BOOL, O(io_uring_send), "true", 0, 0, NULL, HF,
     "write each worker's end-of-iteration output (fan-out deliveries: one write per "
     "connection) as one io_uring batch instead of one sendmsg per connection; "
     "falls back to sendmsg, with a warning, where the kernel refuses io_uring; "
     "false: sendmsg always (docs/benchmarks.md: Send path)"},
    {"http_server.flush_budget", T_UINT, O(flush_budget), "1024", 0, 1000000, NULL, HF,
     "connections a worker's end-of-iteration flush writes before it reads input "
     "again; the rest of a long fan-out sweep is written after that input, so a "
     "publication arriving meanwhile joins the subscribers not yet written instead "
     "of waiting for the sweep to end (0 = the whole sweep in one go)"},
    {"client.rate_limit.command_rate", T_UINT, O(rl_command_rate), "0", 0,
     10000000, NULL, HF,
     "commands a second per connection (token bucket; 0 = no limit); over it "
     "a command gets error 111 \"too many requests\""},
    {"client.rate_limit.command_burst", T_UINT, O(rl_command_burst), "0", 0,
     10000000, NULL, HF,
     "commands a connection may save up (0 = one second's worth)"},
    {"client.rate_limit.bytes_rate", T_SIZE, O(rl_bytes_rate), "0", 0,
     10000000, NULL, HF,
     "command bytes a second per connection (0 = no limit); over it: 111"},
    {"client.rate_limit.bytes_burst", T_SIZE, O(rl_bytes_burst), "0", 0,
     10000000, NULL, HF,
     "command bytes a connection may save up (0 = one second's worth); a "
     "larger command waits for a full bucket"},
    {"client.rate_limit.publish_rate", T_UINT, O(rl_publish_rate), "0", 0,
     10000000, NULL, HF,
     "publish commands a second per connection (0 = no limit); over it: 111"},
    {"client.rate_limit.subscribe_rate", T_UINT, O(rl_subscribe_rate), "0", 0,
     10000000, NULL, HF,
     "subscribe commands a second per connection (0 = no limit); over it: 111"},
    {"client.rate_limit.user_command_rate", T_UINT, O(rl_user_command_rate), "0",
     0, 10000000, NULL, HF,
     "commands a second of all of one user's connections together (0 = no "
     "limit; anonymous connections are not counted); over it: 111"},
    {"client.rate_limit.channel_publish_rate", T_UINT,
     O(rl_channel_publish_rate), "0", 0, 10000000, NULL, HF,
     "client publications a second into one channel, all clients together "
     "(0 = no limit); over it: 111"},
    {"client.rate_limit.disconnect_after", T_UINT, O(rl_disconnect_after), "100",
     0, 10000000, NULL, HF,
     "commands refused in one burst of abuse (no second without a refusal) "
     "before the connection is closed with 3013 \"too many requests\" "
     "(0 = never close)"},
    {"shutdown.spread", T_DUR, O(shutdown_spread_ms), "0s", 0, 3600000, NULL, HF,
     "on SIGTERM (or the admin drain), close real-time clients with 3001 "
     "spread evenly, with jitter, over this window instead of all at once, so "
     "they do not all reconnect to the other instances in the same second "
     "(0 = all at once); shutdown.timeout starts after it"},
    {"websocket.message_size_limit", T_SIZE, O(message_size_limit), "1048576",
     125, 1024 * MiB, NULL, CF,
     "largest incoming message in bytes (all fragments); over it: close 1009"},
    {"websocket.max_header_size", T_SIZE, O(max_header_size), "8192", 512,
     1 * MiB, NULL, HF, "largest HTTP request head in bytes; over it: 431"},
    {"websocket.max_headers", T_UINT, O(max_headers), "64", 8, 256, NULL, HF,
     "most header fields in a request head; over it: 431"},
    {"websocket.handshake_timeout", T_DUR, O(handshake_timeout_ms), "5s", 100,
     3600000, NULL, HF,
     "time from TCP accept to a complete request head; then the connection is dropped"},
    {"websocket.ping_interval", T_DUR, O(ping_interval_ms), "25s", 0, 3600000,
     NULL, HF, "WebSocket ping frame interval; 0 disables heartbeats"},
    {"websocket.pong_timeout", T_DUR, O(pong_timeout_ms), "10s", 100, 3600000,
     NULL, HF,
     "how long a peer may stay silent after a ping before close 3012"},
    {"websocket.close_timeout", T_DUR, O(close_timeout_ms), "5s", 100, 600000,
     NULL, HF,
     "how long to wait for the peer's close frame (or a lingering HTTP reader)"},
    /* permessage-deflate (RFC 7692; branch deflateb) */
    {"websocket.compression", T_BOOL, O(compression), "false", 0, 0, NULL, CF,
     "offer permessage-deflate on the real-time endpoint (clients that offer "
     "it get compressed messages; others are unaffected)"},
    {"websocket.compression_level", T_UINT, O(compression_level), "1", 0, 9,
     NULL, CF, "zlib compression level of outgoing messages (0 = stored, 1 = "
     "fastest, 9 = smallest)"},
    {"websocket.compression_min_size", T_SIZE, O(compression_min_size), "0", 0,
     1024 * MiB, NULL, CF,
     "outgoing messages shorter than this many bytes are sent uncompressed"},
    {"websocket.compression_context_takeover", T_BOOL,
     O(compression_context_takeover), "false", 0, 0, NULL, HF,
     "let clients keep their compression context between messages (better "
     "ratio for small messages, but one inflater per connection: about 7 KiB "
     "+ 2^window_bits bytes each); false answers client_no_context_takeover"},
    {"websocket.compression_memory_level", T_UINT, O(compression_mem_level),
     "8", 1, 9, NULL, HF,
     "zlib memLevel of the compressors (one per worker thread and window "
     "size; 2^(memory_level+9) bytes each, plus the window)"},
    {"websocket.compression_window_bits", T_UINT, O(compression_window_bits),
     "15", 9, 15, NULL, HF,
     "LZ77 window of the server's compressor and the largest window asked of "
     "clients that let the server choose (2^bits bytes)"},
    {"echo.compression", T_BOOL, O(echo_compression), "false", 0, 0, NULL, HF,
     "offer permessage-deflate on the echo endpoint too"},
    {"echo.enabled", T_BOOL, O(echo_enabled), "true", 0, 0, NULL, HF,
     "serve the raw RFC 6455 echo endpoint"},
    {"echo.handler_prefix", T_STR, O(echo_path), "/echo", 0, 0, NULL, HF,
     "path of the echo endpoint"},
    {"echo.subprotocols", T_LIST, O(echo_subprotocols), "", 0, 0, NULL, HF,
     "sub-protocols the echo endpoint selects, in preference order"},
    {"health.enabled", T_BOOL, O(health_enabled), "true", 0, 0, NULL, CF,
     "serve the health endpoint"},
    {"health.handler_prefix", T_STR, O(health_path), "/health", 0, 0, NULL, CF,
     "path of the health endpoint"},
    {"shutdown.timeout", T_DUR, O(shutdown_timeout_ms), "10s", 0, 3600000,
     NULL, CF,
     "on SIGTERM/SIGINT, how long to wait for connections to finish the close "
     "handshake before exiting"},
    {"websocket.enabled", T_BOOL, O(ws_enabled), "true", 0, 0, NULL, HF,
     "serve the real-time protocol endpoint (Centrifugo client protocol v2, JSON)"},
    {"websocket.handler_prefix", T_STR, O(ws_path), "/connection/websocket", 0,
     0, NULL, CF, "path of the real-time protocol endpoint"},
    /* transports: HTTP streaming, SSE, the emulation endpoint */
    {"http_stream.enabled", T_BOOL, O(http_stream_enabled), "false", 0, 0, NULL,
     CF, "serve the HTTP streaming transport (and the emulation endpoint)"},
    {"http_stream.handler_prefix", T_STR, O(http_stream_path),
     "/connection/http_stream", 0, 0, NULL, CF, "path of the HTTP streaming endpoint"},
    {"http_stream.max_request_body_size", T_SIZE, O(http_stream_max_body), "65536",
     16, 16 * MiB, NULL, CF, "largest HTTP streaming request body in bytes; over it: 413"},
    {"sse.enabled", T_BOOL, O(sse_enabled), "false", 0, 0, NULL, CF,
     "serve the Server-Sent Events transport (and the emulation endpoint)"},
    {"sse.handler_prefix", T_STR, O(sse_path), "/connection/sse", 0, 0, NULL, CF,
     "path of the SSE endpoint"},
    {"sse.max_request_body_size", T_SIZE, O(sse_max_body), "65536", 16, 16 * MiB,
     NULL, CF, "largest SSE POST body (and cf_connect value) in bytes; over it: 413"},
    {"emulation.handler_prefix", T_STR, O(emulation_path), "/emulation", 0, 0,
     NULL, CF, "path of the emulation endpoint (commands of http_stream and SSE sessions)"},
    {"emulation.max_request_body_size", T_SIZE, O(emulation_max_body), "65536",
     16, 16 * MiB, NULL, CF, "largest emulation request body in bytes; over it: 413"},
    {"uni_websocket.enabled", T_BOOL, O(uni_ws_enabled), "false", 0, 0, NULL, CF,
     "serve the unidirectional WebSocket transport (connect request in the first message)"},
    {"uni_websocket.handler_prefix", T_STR, O(uni_ws_path), "/connection/uni_websocket", 0,
     0, NULL, CF, "path of the unidirectional WebSocket endpoint"},
    {"uni_http_stream.enabled", T_BOOL, O(uni_http_stream_enabled), "false", 0, 0, NULL,
     CF, "serve the unidirectional HTTP streaming transport (connect request in the POST body)"},
    {"uni_http_stream.handler_prefix", T_STR, O(uni_http_stream_path),
     "/connection/uni_http_stream", 0, 0, NULL, CF,
     "path of the unidirectional HTTP streaming endpoint"},
    {"uni_http_stream.max_request_body_size", T_SIZE, O(uni_http_stream_max_body), "65536",
     16, 16 * MiB, NULL, CF, "largest unidirectional HTTP streaming body in bytes; over it: 413"},
    {"uni_sse.enabled", T_BOOL, O(uni_sse_enabled), "false", 0, 0, NULL, CF,
     "serve the unidirectional SSE transport (connect request in cf_connect)"},
    {"uni_sse.handler_prefix", T_STR, O(uni_sse_path), "/connection/uni_sse", 0, 0, NULL,
     CF, "path of the unidirectional SSE endpoint"},
    {"uni_sse.max_request_body_size", T_SIZE, O(uni_sse_max_body), "65536", 16, 16 * MiB,
     NULL, CF, "largest unidirectional SSE POST body (and cf_connect value) in bytes; over it: 413"},
    {"client.token.hmac_secret_key", T_STR, O(token_hmac_secret), "", 0, 0,
     NULL, CF, "secret for HS256/HS384/HS512 connection and subscription tokens"},
    {"client.token.rsa_public_key", T_STR, O(token_rsa_pem), "", 0, 0, NULL, CF,
     "PEM public key for RS256/RS384/RS512 tokens"},
    {"client.token.ecdsa_public_key", T_STR, O(token_ecdsa_pem), "", 0, 0, NULL,
     CF, "PEM public key for ES256/ES384 tokens"},
    {"client.token.jwks_file", T_STR, O(token_jwks_file), "", 0, 0, NULL, HF,
     "path of a JWKS document (RSA, EC and Ed25519 keys, selected by kid)"},
    {"client.token.audience", T_STR, O(token_audience), "", 0, 0, NULL, CF,
     "required aud claim (checked only when set)"},
    {"client.token.issuer", T_STR, O(token_issuer), "", 0, 0, NULL, CF,
     "required iss claim (checked only when set)"},
    {"client.token.user_id_claim", T_STR, O(token_user_id_claim), "", 0, 0,
     NULL, CF, "claim holding the user id (default sub)"},
    {"client.allow_anonymous_connect_without_token", T_BOOL,
     O(allow_anonymous), "false", 0, 0, NULL, CF,
     "accept connect commands without a token (user \"\")"},
    {"client.insecure", T_BOOL, O(insecure), "false", 0, 0, NULL, CF,
     "testing only: anonymous connects, every channel permission, no expiry"},
    {"client.ping_interval", T_DUR, O(client_ping_ms), "25s", 0, 3600000, NULL,
     CF, "application ping ({}) interval announced in the connect result; 0 disables"},
    {"client.pong_timeout", T_DUR, O(client_pong_ms), "8s", 0, 3600000, NULL,
     CF, "how long after an application ping the pong may take before 3012; 0 = no pong asked"},
    {"client.expired_close_delay", T_DUR, O(expired_close_delay_ms), "25s", 0,
     3600000, NULL, CF,
     "grace after connection expiry before an unrefreshed connection is closed with 3005"},
    {"client.expired_sub_close_delay", T_DUR, O(expired_sub_close_delay_ms),
     "25s", 0, 3600000, NULL, CF,
     "grace after a subscription token's expiry before the subscription ends "
     "(unsubscribe 2501; server-side: disconnect 3006)"},
    {"client.stale_close_delay", T_DUR, O(stale_close_delay_ms), "10s", 100,
     3600000, NULL, CF,
     "time from upgrade to the connect command; then close 3502"},
    {"client.channel_limit", T_UINT, O(channel_limit), "128", 0, 1000000, NULL,
     CF, "most channels one connection may subscribe to (106 over it; 0 = none)"},
    {"channel.max_length", T_UINT, O(channel_max_length), "255", 1, 65535,
     NULL, CF, "longest channel name (107 over it)"},
    {"channel.without_namespace", T_JSON, O(channel_without_ns), "{}", 0, 0,
     NULL, CF,
     "options of channels without a namespace, e.g. {\"allow_subscribe_for_client\":true}"},
    {"channel.namespaces", T_JSON, O(channel_namespaces), "[]", 0, 0, NULL, CF,
     "namespaces: [{\"name\":\"chat\",\"allow_subscribe_for_client\":true,...}]"},
    /* streams: history, recovery, idempotency */
    {"client.recovery_max_publication_limit", T_UINT,
     O(recovery_max_publication_limit), "300", 0, 1000000, NULL, CF,
     "most missed publications a recovering subscribe returns; more means "
     "\"not recovered\" (0 = no limit)"},
    {"client.history_max_publication_limit", T_UINT,
     O(history_max_publication_limit), "300", 1, 1000000, NULL, CF,
     "most publications one history command returns (limit -1 or larger is capped)"},
    {"channel.history_memory_limit", T_SIZE, O(history_memory_limit),
     "268435456", 0, 1024 * 1024 * MiB, NULL, HF,
     "memory for all channels' history together (split evenly over workers); "
     "over it the oldest publications are evicted first (0 = no limit)"},
    {"channel.idempotency_window", T_DUR, O(idempotency_window_ms), "5m", 1000,
     86400000, NULL, HF,
     "how long a publication's idempotency_key is remembered: a retry within "
     "it returns the first result and is not delivered again"},
    {"channel.idempotency_max_keys", T_UINT, O(idempotency_max_keys), "100000",
     0, 100000000, NULL, HF,
     "most idempotency keys remembered at once (the oldest are forgotten first)"},
    /* proxy: connect, refresh, subscribe, publish, sub_refresh and rpc
     * proxied to the application backend over HTTP (Centrifugo v6 keys) */
    {"client.proxy.connect", T_JSON, O(proxy_connect), "{}", 0, 0, NULL, CF,
     "connect proxy: {\"enabled\":true,\"endpoint\":\"http://app/centrifugo/connect\","
     "\"timeout\":\"1s\",\"http_headers\":[\"Cookie\"],\"http\":{\"static_headers\":{..}},"
     "\"include_connection_meta\":false}; connects without a token go to it"},
    {"client.proxy.refresh", T_JSON, O(proxy_refresh), "{}", 0, 0, NULL, CF,
     "refresh proxy (same object with \"enabled\"): asked to prolong a connection "
     "when its expire_at comes"},
    {"channel.proxy.subscribe", T_JSON, O(proxy_subscribe), "{}", 0, 0, NULL, CF,
     "default subscribe proxy object (endpoint, timeout, http_headers, ...); used by "
     "namespaces with subscribe_proxy_enabled"},
    {"channel.proxy.publish", T_JSON, O(proxy_publish), "{}", 0, 0, NULL, CF,
     "default publish proxy object; used by namespaces with publish_proxy_enabled"},
    {"channel.proxy.sub_refresh", T_JSON, O(proxy_sub_refresh), "{}", 0, 0, NULL, CF,
     "default sub_refresh proxy object; used by namespaces with sub_refresh_proxy_enabled"},
    {"rpc.proxy", T_JSON, O(proxy_rpc), "{}", 0, 0, NULL, CF,
     "default RPC proxy object; used where rpc.without_namespace / rpc.namespaces "
     "say proxy_enabled"},
    {"rpc.without_namespace", T_JSON, O(rpc_without_ns), "{}", 0, 0, NULL, CF,
     "RPC methods without a namespace: {\"proxy_enabled\":true,\"proxy_name\":\"default\"}"},
    {"rpc.namespaces", T_JSON, O(rpc_namespaces), "[]", 0, 0, NULL, CF,
     "RPC namespaces: [{\"name\":\"ns\",\"proxy_enabled\":true,\"proxy_name\":\"rpc1\"}]"},
    {"rpc.namespace_boundary", T_STR, O(rpc_ns_boundary), ":", 0, 0, NULL, CF,
     "separator between an RPC method's namespace and the rest"},
    {"proxies", T_JSON, O(proxies), "[]", 0, 0, NULL, CF,
     "named proxies: [{\"name\":\"sub1\",\"endpoint\":\"http://...\",...}] referenced by "
     "subscribe_proxy_name, publish_proxy_name, sub_refresh_proxy_name, rpc proxy_name"},
    {"proxy.max_in_flight", T_UINT, O(proxy_max_in_flight), "4096", 1, 1000000, NULL, HF,
     "most proxy requests in flight per worker; over it the client gets a temporary error"},
    {"proxy.max_in_flight_per_endpoint", T_UINT, O(proxy_max_in_flight_endpoint), "1024",
     1, 1000000, NULL, HF,
     "most proxy requests in flight per worker to one endpoint; over it: temporary error"},
    {"proxy.breaker_failures", T_UINT, O(proxy_breaker_failures), "5", 0, 1000000, NULL, HF,
     "consecutive failures (refused, timeout, 5xx, invalid answer) that open an "
     "endpoint's circuit breaker on a worker (0 = no breaker)"},
    {"proxy.breaker_open", T_DUR, O(proxy_breaker_open_ms), "2s", 100, 600000, NULL, HF,
     "how long an open breaker fails requests at once before one probe request "
     "is let through"},
    /* engine: memory (embedded) or Redis (several nodes) */
    {"node.name", T_STR, O(node_name), "", 0, 0, NULL, HF,
     "this node's name in the info API and the node registry (default: the host name)"},
    {"engine.type", T_ENUM, O(engine_type), "memory", 0, 0, "memory|redis", CF,
     "memory: everything in this process; redis: several holdfast nodes share "
     "streams, presence, publications and control commands through Redis"},
    {"engine.redis.address", T_LIST, O(redis_address), "127.0.0.1:6379", 0, 0, NULL, CF,
     "Redis shards (host:port or redis://host:port); channels are spread over "
     "them by consistent hashing"},
    {"engine.redis.user", T_STR, O(redis_user), "", 0, 0, NULL, CF, "Redis ACL user"},
    {"engine.redis.password", T_STR, O(redis_password), "", 0, 0, NULL, CF,
     "Redis password (never logged)"},
    {"engine.redis.db", T_UINT, O(redis_db), "0", 0, 15, NULL, CF,
     "Redis database number (PUB/SUB ignores it: use distinct prefixes)"},
    {"engine.redis.client_name", T_STR, O(redis_client_name), "holdfast", 0, 0, NULL, CF,
     "client name holdfast's connections present to Redis (CLIENT SETNAME)"},
    {"engine.redis.prefix", T_STR, O(redis_prefix), "holdfast", 0, 0, NULL, CF,
     "prefix of every Redis key and channel holdfast uses"},
    {"engine.redis.connect_timeout", T_DUR, O(redis_connect_timeout_ms), "1s", 10, 60000,
     NULL, CF, "timeout for connecting to Redis"},
    {"engine.redis.io_timeout", T_DUR, O(redis_io_timeout_ms), "4s", 10, 600000, NULL, CF,
     "how long a request to Redis may take; then the connection is reset and "
     "its requests fail (temporary errors to clients)"},
    {"engine.redis.presence_ttl", T_DUR, O(redis_presence_ttl_ms), "60s", 3000,
     3600000, NULL, CF,
     "how long a presence entry lives unless its node refreshes it (every third of this)"},
    {"engine.redis.tls.enabled", T_BOOL, O(redis_tls), "false", 0, 0, NULL, CF,
     "TLS to Redis: not supported by this version (Debian's hiredis 0.14 has no "
     "TLS; start-up refuses it rather than connect in the clear)"},
    {"engine.redis.cluster_address", T_LIST, O(redis_cluster_address), "", 0, 0, NULL, CF,
     "Redis Cluster seed nodes (host:port): the masters and their hash slots are asked from "
     "them and followed through failovers and resharding (instead of engine.redis.address)"},
    {"engine.redis.sentinel_address", T_LIST, O(redis_sentinel_address), "", 0, 0, NULL, CF,
     "Sentinel addresses (host:port): the master of engine.redis.sentinel_master_name is "
     "asked from them and followed through failovers (instead of engine.redis.address)"},
    {"engine.redis.sentinel_master_name", T_STR, O(redis_sentinel_master), "", 0, 0, NULL, CF,
     "the master name the sentinels monitor (required with sentinel_address)"},
    {"engine.redis.sentinel_user", T_STR, O(redis_sentinel_user), "", 0, 0, NULL, CF,
     "ACL user for the sentinels"},
    {"engine.redis.sentinel_password", T_STR, O(redis_sentinel_password), "", 0, 0, NULL, CF,
     "password for the sentinels (never logged)"},
    {"prometheus.enabled", T_BOOL, O(prometheus_enabled), "true", 0, 0, NULL, CF,
     "serve Prometheus metrics (on the internal listener when http_server.internal_port "
     "is set, else on the main one)"},
    {"prometheus.handler_prefix", T_STR, O(prometheus_path), "/metrics", 0, 0, NULL, HF,
     "path of the metrics endpoint"},
    {"http_api.key", T_STR, O(api_key), "", 0, 0, NULL, CF,
     "server API key (X-API-Key or Authorization: apikey KEY); empty: every call gets 401"},
    {"http_api.insecure", T_BOOL, O(api_insecure), "false", 0, 0, NULL, CF,
     "serve the server API without a key (only behind a trusted network)"},
    {"http_api.handler_prefix", T_STR, O(api_path), "/api", 0, 0, NULL, CF,
     "path prefix of the server API (POST PREFIX/METHOD)"},
    {"http_api.max_body", T_SIZE, O(api_max_body), "1048576", 64, 64 * MiB,
     NULL, HF, "largest server API request body in bytes (413 over it)"},
    {"http_server.internal_address", T_STR, O(internal_address), "127.0.0.1",
     0, 0, NULL, CF, "address of the internal listener (server API only)"},
    {"http_server.internal_port", T_UINT, O(internal_port), "0", 0, 65535, NULL,
     CF,
     "when set, the server API is served only on this port (not to browsers)"},
    /* admin: admin API and live dashboard (server/admin/) */
    {"admin.enabled", T_BOOL, O(admin_enabled), "false", 0, 0, NULL, CF,
     "serve the admin API (POST /admin/api/METHOD) and the live dashboard (/admin/) on the "
     "internal listener when http_server.internal_port is set, else on the main one"},
    {"admin.password", T_STR, O(admin_password), "", 0, 0, NULL, CF,
     "password of the admin login (POST /admin/auth); never logged"},
    {"admin.secret", T_STR, O(admin_secret), "", 0, 0, NULL, CF,
     "key that signs admin session tokens (HMAC-SHA256); changing it ends every session"},
    {"admin.insecure", T_BOOL, O(admin_insecure), "false", 0, 0, NULL, CF,
     "admin API and dashboard without a login (only behind a trusted network)"},
    {"admin.session_ttl", T_DUR, O(admin_session_ttl_ms), "12h", 60000, 30ull * 86400000, NULL,
     HF, "how long an admin session token from POST /admin/auth stays valid"},
};
#define NSETTINGS (sizeof settings / sizeof settings[0])

static const char *warnings[64];
static size_t nwarnings;

void srv_config_warn_unsupported(const char *key) {
  if (nwarnings + 1 >= sizeof warnings / sizeof warnings[0])
    return;
  char m[400];
  snprintf(m, sizeof m,
           "configuration key %s is not supported by this holdfast version "
           "and is ignored",
           key);
  warnings[nwarnings++] = strdup(m);
}

const char *const *srv_config_warnings(void) { return warnings; }

static const setting *find(const char *key) {
  for (size_t i = 0; i < NSETTINGS; i++)
    if (strcmp(settings[i].key, key) == 0)
      return &settings[i];
  return NULL;
}

static void list_free(srv_strlist *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

static int list_push(srv_strlist *l, const char *s, size_t n) {
  char **nv = realloc(l->v, (l->n + 1) * sizeof *nv);
  if (!nv)
    return -1;
  l->v = nv;
  l->v[l->n] = strndup(s, n);
  if (!l->v[l->n])
    return -1;
  l->n++;
  return 0;
}

/* "25s", "500ms", "1m30s", "2h", "0" -> milliseconds. */
int srv_config_parse_duration(const char *s, uint64_t *out) {
  uint64_t total = 0;
  if (strcmp(s, "0") == 0) {
    *out = 0;
    return 0;
  }
  if (!*s)
    return -1;
  while (*s) {
    if (!isdigit((unsigned char)*s))
      return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s)
      return -1;
    s = end;
    double mult;
    if (strncmp(s, "ms", 2) == 0) {
      mult = 1;
      s += 2;
    } else if (*s == 's') {
      mult = 1000;
      s++;
    } else if (*s == 'm') {
      mult = 60000;
      s++;
    } else if (*s == 'h') {
      mult = 3600000;
      s++;
    } else {
      return -1;
    }
    double ms = v * mult;
    if (ms > 1e15)
      return -1;
    total += (uint64_t)(ms + 0.5);
  }
  *out = total;
  return 0;
}

/* "1048576", "64KiB", "1MiB", "1GiB" (also KB/MB/GB as powers of 1000). */
int srv_config_parse_size(const char *s, uint64_t *out) {
  if (!isdigit((unsigned char)*s))
    return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno)
    return -1;
  uint64_t m = 1;
  if (!*end || strcmp(end, "B") == 0)
    m = 1;
  else if (strcmp(end, "KiB") == 0)
    m = 1024;
  else if (strcmp(end, "MiB") == 0)
    m = MiB;
  else if (strcmp(end, "GiB") == 0)
    m = 1024 * MiB;
  else if (strcmp(end, "KB") == 0)
    m = 1000;
  else if (strcmp(end, "MB") == 0)
    m = 1000000;
  else if (strcmp(end, "GB") == 0)
    m = 1000000000;
  else
    return -1;
  if (v > UINT64_MAX / m)
    return -1;
  *out = v * m;
  return 0;
}

static int parse_uint(const char *s, uint64_t *out) {
  if (!isdigit((unsigned char)*s))
    return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end)
    return -1;
  *out = v;
  return 0;
}

static const char *allowed_text(const setting *st, char *buf, size_t cap) {
  switch (st->type) {
  case T_BOOL:
    return "true or false";
  case T_UINT:
    snprintf(buf, cap, "an integer from %llu to %llu",
             (unsigned long long)st->min, (unsigned long long)st->max);
    return buf;
  case T_SIZE:
    snprintf(buf, cap,
             "a byte count from %llu to %llu (suffixes KiB, MiB, GiB allowed)",
             (unsigned long long)st->min, (unsigned long long)st->max);
    return buf;
  case T_DUR:
    snprintf(buf, cap,
             "a duration like \"500ms\", \"25s\", \"1m\" from %llums to %llums",
             (unsigned long long)st->min, (unsigned long long)st->max);
    return buf;
  case T_ENUM:
    snprintf(buf, cap, "one of %s", st->choices);
    return buf;
  case T_LIST:
    return "a list of strings (comma-separated in flags and env)";
  case T_JSON:
    return "JSON (an object or array; JSON text in flags and env)";
  default:
    return "a string";
  }
}

static int bad_as(FILE *err, const setting *st, const char *val, int quote,
                  const char *src, const char *extra) {
  char buf[160];
  fprintf(err,
          "holdfast: invalid configuration: %s = %s%s%s (from %s): expected %s%s%s\n",
          st->key, quote ? "\"" : "", val, quote ? "\"" : "", src,
          allowed_text(st, buf, sizeof buf), extra ? "; " : "",
          extra ? extra : "");
  return -1;
}

/* A textual value (flag, env, default): shown in quotes. */
static int bad(FILE *err, const setting *st, const char *val, const char *src,
               const char *extra) {
  return bad_as(err, st, val, 1, src, extra);
}

/* A JSON value from the file: shown as JSON. */
static int bad_json(FILE *err, const setting *st, json_t *v, const char *src,
                    const char *extra) {
  char *d = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
  int r = bad_as(err, st, d ? d : "?", 0, src, extra);
  free(d);
  return r;
}

/* Apply a textual value (default, env, flag, or a JSON scalar rendered). */
static int apply_text(srv_config *cfg, const setting *st, const char *val,
                      const char *src, FILE *err) {
  void *p = (char *)cfg + st->off;
  uint64_t u;
  switch (st->type) {
  case T_STR:
    free(*(char **)p);
    *(char **)p = strdup(val);
    return *(char **)p ? 0 : -1;
  case T_ENUM: {
    size_t vl = strlen(val);
    const char *c = st->choices;
    int ok = 0;
    while (*c) {
      const char *bar = strchr(c, '|');
      size_t cl = bar ? (size_t)(bar - c) : strlen(c);
      if (cl == vl && strncmp(c, val, vl) == 0)
        ok = 1;
      c += cl + (bar ? 1 : 0);
    }
    if (!ok)
      return bad(err, st, val, src, NULL);
    free(*(char **)p);
    *(char **)p = strdup(val);
    return 0;
  }
  case T_BOOL:
    if (strcmp(val, "true") == 0 || strcmp(val, "1") == 0)
      *(bool *)p = true;
    else if (strcmp(val, "false") == 0 || strcmp(val, "0") == 0)
      *(bool *)p = false;
    else
      return bad(err, st, val, src, NULL);
    return 0;
  case T_UINT:
  case T_SIZE:
  case T_DUR: {
    int r = st->type == T_UINT   ? parse_uint(val, &u)
            : st->type == T_SIZE ? srv_config_parse_size(val, &u)
                                 : srv_config_parse_duration(val, &u);
    if (r < 0 || u < st->min || u > st->max)
      return bad(err, st, val, src, NULL);
    *(uint64_t *)p = u;
    return 0;
  }
  case T_JSON: {
    json_error_t je;
    json_t *v = json_loads(val, JSON_DECODE_ANY, &je);
    if (!v)
      return bad(err, st, val, src, je.text);
    json_decref(*(json_t **)p);
    *(json_t **)p = v;
    return 0;
  }
  case T_LIST: {
    srv_strlist *l = p;
    list_free(l);
    const char *s = val;
    while (*s) {
      const char *comma = strchr(s, ',');
      size_t n = comma ? (size_t)(comma - s) : strlen(s);
      while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
      }
      size_t m = n;
      while (m && isspace((unsigned char)s[m - 1]))
        m--;
      if (m && list_push(l, s, m) < 0)
        return -1;
      s += n + (comma ? 1 : 0);
      if (!comma)
        break;
    }
    return 0;
  }
  }
  return -1;
}

static int apply_json(srv_config *cfg, const setting *st, json_t *v,
                      const char *src, FILE *err) {
  char buf[64];
  switch (st->type) {
  case T_JSON: {
    json_t **p = (json_t **)((char *)cfg + st->off);
    json_decref(*p);
    *p = json_incref(v);
    return 0;
  }
  case T_LIST: {
    if (!json_is_array(v))
      return bad_json(err, st, v, src, "a JSON array of strings");
    srv_strlist *l = (srv_strlist *)((char *)cfg + st->off);
    list_free(l);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
      if (!json_is_string(e))
        return bad_json(err, st, v, src, "every element must be a string");
      if (list_push(l, json_string_value(e), json_string_length(e)) < 0)
        return -1;
    }
    return 0;
  }
  case T_BOOL:
    if (!json_is_boolean(v))
      break;
    return apply_text(cfg, st, json_is_true(v) ? "true" : "false", src, err);
  case T_UINT:
  case T_SIZE:
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
      snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
      return apply_text(cfg, st, buf, src, err);
    }
    if (st->type == T_SIZE && json_is_string(v))
      return apply_text(cfg, st, json_string_value(v), src, err);
    break;
  case T_DUR:
    if (json_is_string(v))
      return apply_text(cfg, st, json_string_value(v), src, err);
    if (json_is_integer(v) && json_integer_value(v) == 0)
      return apply_text(cfg, st, "0", src, err);
    break;
  default:
    if (json_is_string(v))
      return apply_text(cfg, st, json_string_value(v), src, err);
    break;
  }
  return bad_json(err, st, v, src, "wrong JSON type");
}

/* 1 if key names a section (a prefix of some setting's key). */
static int is_section(const char *key) {
  size_t n = strlen(key);
  for (size_t i = 0; i < NSETTINGS; i++)
    if (strncmp(settings[i].key, key, n) == 0 && settings[i].key[n] == '.')
      return 1;
  return 0;
}

static int walk_json(srv_config *cfg, json_t *obj, const char *prefix,
                     const char *src, FILE *err) {
  const char *k;
  json_t *v;
  json_object_foreach(obj, k, v) {
    char key[256];
    snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", k);
    const setting *st = find(key);
    if (st) {
      if (apply_json(cfg, st, v, src, err) < 0)
        return -1;
    } else if (json_is_object(v) && is_section(key)) {
      if (walk_json(cfg, v, key, src, err) < 0)
        return -1;
    } else if (is_section(key)) {
      char *d = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
      fprintf(err,
              "holdfast: invalid configuration: %s = %s (from %s): expected a "
              "JSON object (a section of settings such as %s.*)\n",
              key, d ? d : "?", src, key);
      free(d);
      return -1;
    } else {
      srv_config_warn_unsupported(key);
    }
  }
  return 0;
}

void srv_config_init(srv_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  for (size_t i = 0; i < NSETTINGS; i++)
    apply_text(cfg, &settings[i], settings[i].def, "default", stderr);
}

void srv_config_free(srv_config *cfg) {
  for (size_t i = 0; i < NSETTINGS; i++) {
    void *p = (char *)cfg + settings[i].off;
    if (settings[i].type == T_STR || settings[i].type == T_ENUM)
      free(*(char **)p);
    else if (settings[i].type == T_LIST)
      list_free(p);
    else if (settings[i].type == T_JSON)
      json_decref(*(json_t **)p);
  }
  memset(cfg, 0, sizeof *cfg);
}

size_t srv_config_diff(const srv_config *a, const srv_config *b,
                       void (*fn)(void *arg, const char *key), void *arg) {
  size_t n = 0;
  for (size_t i = 0; i < NSETTINGS; i++) {
    const void *pa = (const char *)a + settings[i].off;
    const void *pb = (const char *)b + settings[i].off;
    int same = 1;
    switch (settings[i].type) {
    case T_STR:
    case T_ENUM: {
      const char *x = *(char *const *)pa, *y = *(char *const *)pb;
      same = strcmp(x ? x : "", y ? y : "") == 0;
      break;
    }
    case T_BOOL:
      same = *(const bool *)pa == *(const bool *)pb;
      break;
    case T_UINT:
    case T_SIZE:
    case T_DUR:
      same = *(const uint64_t *)pa == *(const uint64_t *)pb;
      break;
    case T_LIST: {
      const srv_strlist *x = pa, *y = pb;
      same = x->n == y->n;
      for (size_t j = 0; same && j < x->n; j++)
        same = strcmp(x->v[j], y->v[j]) == 0;
      break;
    }
    case T_JSON: {
      json_t *x = *(json_t *const *)pa, *y = *(json_t *const *)pb;
      same = (!x && !y) || (x && y && json_equal(x, y));
      break;
    }
    }
    if (!same) {
      n++;
      if (fn)
        fn(arg, settings[i].key);
    }
  }
  return n;
}

static void env_name(const char *key, char *out, size_t cap) {
  size_t j = snprintf(out, cap, "HOLDFAST_");
  for (const char *k = key; *k && j + 1 < cap; k++)
    out[j++] = *k == '.' ? '_' : (char)toupper((unsigned char)*k);
  out[j] = 0;
}

static int validate_tls(srv_config *cfg, FILE *err) {
  for (size_t i = 0; i < cfg->trusted_proxies.n; i++) {
    hf_cidr c;
    if (hf_cidr_parse(cfg->trusted_proxies.v[i], &c) < 0) {
      fprintf(err,
              "holdfast: invalid configuration: http_server.trusted_proxies entry "
              "\"%s\": expected an IP address or a CIDR like 10.0.0.0/8 or fd00::/8 "
              "(no host bits set after the prefix)\n",
              cfg->trusted_proxies.v[i]);
      return -1;
    }
  }
  if ((cfg->tls_enabled || cfg->tls_listen.n) &&
      (!*cfg->tls_cert_file || !*cfg->tls_key_file)) {
    fprintf(err, "holdfast: invalid configuration: %s needs "
                 "http_server.tls.cert_pem_file and http_server.tls.key_pem_file\n",
            cfg->tls_enabled ? "http_server.tls.enabled" : "http_server.tls.listen");
    return -1;
  }
  if (!json_is_array(cfg->tls_sni)) {
    fprintf(err, "holdfast: invalid configuration: http_server.tls.sni: expected a JSON "
                 "array of {\"cert_pem_file\":...,\"key_pem_file\":...}\n");
    return -1;
  }
  size_t i;
  json_t *e;
  json_array_foreach(cfg->tls_sni, i, e) {
    if (!json_is_string(json_object_get(e, "cert_pem_file")) ||
        !json_is_string(json_object_get(e, "key_pem_file")) || json_object_size(e) != 2) {
      fprintf(err, "holdfast: invalid configuration: http_server.tls.sni[%zu]: expected "
                   "{\"cert_pem_file\":\"FILE\",\"key_pem_file\":\"FILE\"} and "
                   "nothing else\n", i);
      return -1;
    }
  }
  return 0;
}

static int validate(srv_config *cfg, FILE *err) {
  if (validate_tls(cfg, err) < 0)
    return -1;
  if (cfg->redis_cluster_address.n && cfg->redis_sentinel_address.n) {
    fprintf(err, "holdfast: invalid configuration: engine.redis.cluster_address and "
                 "engine.redis.sentinel_address exclude each other (a cluster fails over "
                 "by itself)\n");
    return -1;
  }
  if (cfg->redis_sentinel_address.n && !*cfg->redis_sentinel_master) {
    fprintf(err, "holdfast: invalid configuration: engine.redis.sentinel_address is set "
                 "but engine.redis.sentinel_master_name is empty\n");
    return -1;
  }
  if (cfg->admin_enabled && !cfg->admin_insecure &&
      (!*cfg->admin_password || !*cfg->admin_secret)) {
    fprintf(err, "holdfast: invalid configuration: admin.enabled needs admin.password (the "
                 "login) and admin.secret (signs sessions), or admin.insecure on a trusted "
                 "network\n");
    return -1;
  }
  if (cfg->redis_tls) {
    fprintf(err, "holdfast: invalid configuration: engine.redis.tls.enabled: TLS to "
                 "Redis is not supported by this holdfast version (Debian's hiredis 0.14 "
                 "has no TLS); put Redis on a private network or a local TLS tunnel\n");
    return -1;
  }
  if (strcmp(cfg->engine_type, "redis") == 0 && !cfg->redis_address.n &&
      !cfg->redis_sentinel_address.n && !cfg->redis_cluster_address.n) {
    fprintf(err, "holdfast: invalid configuration: engine.type is redis but "
                 "engine.redis.address is empty\n");
    return -1;
  }
  if (cfg->queue_hard_limit < cfg->queue_max_size) {
    fprintf(err,
            "holdfast: invalid configuration: client.queue_hard_limit (%llu) "
            "must be at least client.queue_max_size (%llu)\n",
            (unsigned long long)cfg->queue_hard_limit,
            (unsigned long long)cfg->queue_max_size);
    return -1;
  }
  if (cfg->ping_interval_ms && cfg->pong_timeout_ms >= cfg->ping_interval_ms) {
    fprintf(err,
            "holdfast: invalid configuration: websocket.pong_timeout (%llums) "
            "must be shorter than websocket.ping_interval (%llums)\n",
            (unsigned long long)cfg->pong_timeout_ms,
            (unsigned long long)cfg->ping_interval_ms);
    return -1;
  }
  if (cfg->client_ping_ms && cfg->client_pong_ms >= cfg->client_ping_ms) {
    fprintf(err,
            "holdfast: invalid configuration: client.pong_timeout (%llums) "
            "must be shorter than client.ping_interval (%llums)\n",
            (unsigned long long)cfg->client_pong_ms,
            (unsigned long long)cfg->client_ping_ms);
    return -1;
  }
  const char *paths[10] = {cfg->echo_path, cfg->health_path, cfg->ws_path,
                           cfg->api_path,
                           /* transports */
                           cfg->http_stream_path, cfg->sse_path, cfg->emulation_path,
                           cfg->uni_ws_path, cfg->uni_http_stream_path, cfg->uni_sse_path};
  const char *names[10] = {"echo.handler_prefix", "health.handler_prefix",
                           "websocket.handler_prefix", "http_api.handler_prefix",
                           "http_stream.handler_prefix", "sse.handler_prefix",
                           "emulation.handler_prefix", "uni_websocket.handler_prefix",
                           "uni_http_stream.handler_prefix", "uni_sse.handler_prefix"};
  for (int i = 0; i < 10; i++)
    if (paths[i][0] != '/') {
      fprintf(err,
              "holdfast: invalid configuration: %s = \"%s\": expected a path "
              "starting with '/'\n",
              names[i], paths[i]);
      return -1;
    }
  for (size_t i = 0; i < cfg->allowed_origins.n; i++) {
    const char *o = cfg->allowed_origins.v[i];
    if (strcmp(o, "*") != 0 && !strstr(o, "://")) {
      fprintf(err,
              "holdfast: invalid configuration: client.allowed_origins entry "
              "\"%s\": expected \"*\" or an origin like https://app.example.com "
              "(scheme://host[:port], '*' wildcards allowed)\n",
              o);
      return -1;
    }
  }
  return 0;
}

int srv_config_load(srv_config *cfg, int argc, char **argv, FILE *err) {
  const char *file = getenv("HOLDFAST_CONFIG");
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      srv_config_help(stdout);
      return 1;
    }
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
      file = argv[i + 1];
    else if (strncmp(argv[i], "--config=", 9) == 0)
      file = argv[i] + 9;
  }
  if (file && *file) {
    json_error_t je;
    json_t *root = json_load_file(file, 0, &je);
    if (!root) {
      fprintf(err, "holdfast: cannot read config file %s: %s (line %d, column %d)\n",
              file, je.text, je.line, je.column);
      return -1;
    }
    if (!json_is_object(root)) {
      fprintf(err, "holdfast: config file %s: expected a JSON object at the top\n",
              file);
      json_decref(root);
      return -1;
    }
    char src[300];
    snprintf(src, sizeof src, "config file %s", file);
    int r = walk_json(cfg, root, "", src, err);
    json_decref(root);
    if (r < 0)
      return -1;
  }
  for (size_t i = 0; i < NSETTINGS; i++) {
    char name[128];
    env_name(settings[i].key, name, sizeof name);
    const char *v = getenv(name);
    if (v && apply_text(cfg, &settings[i], v, name, err) < 0)
      return -1;
  }
  int listen_from_flags = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0) {
      fprintf(err, "holdfast: unexpected argument \"%s\" (see holdfast serve --help)\n", a);
      return -1;
    }
    a += 2;
    const char *eq = strchr(a, '=');
    char key[128];
    size_t kl = eq ? (size_t)(eq - a) : strlen(a);
    if (kl >= sizeof key) {
      fprintf(err, "holdfast: unknown option --%s\n", a);
      return -1;
    }
    memcpy(key, a, kl);
    key[kl] = 0;
    const char *val = eq ? eq + 1 : NULL;
    if (!val) {
      if (i + 1 >= argc) {
        fprintf(err, "holdfast: option --%s needs a value\n", key);
        return -1;
      }
      val = argv[++i];
    }
    if (strcmp(key, "config") == 0)
      continue;
    if (strcmp(key, "log-format") == 0)
      strcpy(key, "log.format");
    else if (strcmp(key, "log-level") == 0)
      strcpy(key, "log.level");
    if (strcmp(key, "listen") == 0) {
      if (!listen_from_flags++)
        list_free(&cfg->listen);
      if (list_push(&cfg->listen, val, strlen(val)) < 0)
        return -1;
      continue;
    }
    const setting *st = find(key);
    if (!st) {
      fprintf(err, "holdfast: unknown option --%s (see holdfast serve --help)\n", key);
      return -1;
    }
    char src[160];
    snprintf(src, sizeof src, "flag --%s", key);
    if (apply_text(cfg, st, val, src, err) < 0)
      return -1;
  }
  return validate(cfg, err);
}

static const char *type_name(stype t) {
  switch (t) {
  case T_STR: return "string";
  case T_BOOL: return "bool";
  case T_UINT: return "integer";
  case T_SIZE: return "bytes";
  case T_DUR: return "duration";
  case T_LIST: return "list";
  case T_ENUM: return "enum";
  case T_JSON: return "json";
  }
  return "?";
}

void srv_config_help(FILE *out) {
  fprintf(out,
          "usage: holdfast serve [--config FILE] [--listen HOST:PORT]... "
          "[--workers N] [--log-format auto|json|pretty] [--KEY VALUE]...\n\n"
          "Runs the holdfast WebSocket server. Settings come from defaults, then\n"
          "the JSON config file (Centrifugo v6 layout, nested objects), then\n"
          "HOLDFAST_* environment variables, then flags. Every key below can be\n"
          "given as --KEY=VALUE or --KEY VALUE; lists are comma-separated there.\n"
          "--listen may be repeated; port 0 picks a free port (the 'listening'\n"
          "log line names it). --log-level is an alias of --log.level.\n\n");
  for (size_t i = 0; i < NSETTINGS; i++) {
    const setting *st = &settings[i];
    char env[128], buf[160];
    env_name(st->key, env, sizeof env);
    fprintf(out, "  --%s (%s, default \"%s\", env %s)\n      %s.\n      Allowed: %s.%s\n",
            st->key, type_name(st->type), st->def, env, st->help,
            allowed_text(st, buf, sizeof buf),
            strcmp(st->origin, CF) == 0 ? " Same key in Centrifugo v6." : "");
  }
}

void srv_config_markdown(FILE *out) {
  fprintf(out, "| key | type | default | env | allowed | meaning |\n"
               "|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < NSETTINGS; i++) {
    const setting *st = &settings[i];
    char env[128], buf[160];
    env_name(st->key, env, sizeof env);
    fprintf(out, "| `%s`%s | %s | `%s` | `%s` | %s | %s |\n", st->key,
            strcmp(st->origin, CF) == 0 ? " (C)" : "", type_name(st->type),
            st->def, env, allowed_text(st, buf, sizeof buf), st->help);
  }
}
