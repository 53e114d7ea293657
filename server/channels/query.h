/* SPDX-License-Identifier: MIT */
/* Read-only channel queries shared by the client protocol and the server
 * API: history (reference 3.7 / 8.3) and presence, presence_stats (3.5,
 * 3.6). They write the result object's fields (no braces) and return a
 * protocol error code when there is none to write. Any worker thread. */
#ifndef SRV_QUERY_H
#define SRV_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "channels/chan.h"
#include "channels/hub.h"
#include "protocol/jsonw.h"

/* Positions outlive their publications this long unless configured
 * (history_meta_ttl 0). */
#define QUERY_DEFAULT_META_TTL_MS (720ull * 3600 * 1000)

/* The stream limits of a namespace with history. */
stream_opts query_stream_opts(const chan_ns *ns);

/* History of ch from a HistoryRequest-shaped object (limit, since
 * {offset, epoch}, reverse). max_limit caps limit (0: no cap; the client
 * protocol uses client.history_max_publication_limit, the server API none).
 * Writes "publications":[..],"epoch":"..","offset":N. Returns 0, 107 (bad
 * fields: reverse with since.offset 0, wrong types), 112 (since.epoch is
 * not the stream's) or 100. The namespace must keep history (108 is the
 * caller's check). */
unsigned query_history(hub *h, const char *ch, size_t len, const chan_ns *ns,
                       json_t *req, uint32_t max_limit, uint64_t now_ms,
                       jw_buf *out);

/* "presence":{"<client>":{ClientInfo},..} over every worker. */
void query_presence(hub *h, const char *ch, size_t len, jw_buf *out);
/* "num_clients":N,"num_users":M (anonymous "" counts as one user).
 * Returns 0 or 100 (OOM). */
unsigned query_presence_stats(hub *h, const char *ch, size_t len, jw_buf *out);

#endif
