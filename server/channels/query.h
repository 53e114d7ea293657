/* SPDX-License-Identifier: MIT */
/* Read-only channel queries of the memory engine: presence and
 * presence_stats (reference 3.5, 3.6) read from the subscriber tables of
 * every worker, and the stream limits of a namespace. They write the result
 * object's fields (no braces). Any worker thread. */
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

/* "presence":{"<client>":{ClientInfo},..} over every worker. */
void query_presence(hub *h, const char *ch, size_t len, jw_buf *out);
/* "num_clients":N,"num_users":M (anonymous "" counts as one user).
 * Returns 0 or 100 (OOM). */
unsigned query_presence_stats(hub *h, const char *ch, size_t len, jw_buf *out);

#endif
