/* SPDX-License-Identifier: MIT */
/* The server's TLS material: builds the hf_tls_server from the
 * configuration (default pair + SNI pairs), refuses to start on a bad
 * certificate, swaps it on reload without touching live connections, and
 * watches expiry (warnings at start, on reload and daily; days left for
 * /health). */
#ifndef SRV_TLSCONF_H
#define SRV_TLSCONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "hf/tls.h"

typedef struct srv_tls srv_tls;

/* NULL in *out when no listener speaks TLS. Returns 0, or -1 after
 * writing "holdfast: ..." (naming the file and the problem) to err.
 * Logs one tls_ready line per certificate. Main thread, at start-up. */
int srv_tls_setup(srv_tls **out, const srv_config *cfg, FILE *err);
void srv_tls_free(srv_tls *t);

/* The current server material as a new reference (the caller unrefs),
 * for the accept path of worker threads. *gen is set to the generation it
 * belongs to; srv_tls_generation() changes when a reload swapped it, so a
 * worker can keep its reference and compare one atomic integer per
 * accept. Thread-safe. */
hf_tls_server *srv_tls_current(srv_tls *t, unsigned *gen);
unsigned srv_tls_generation(const srv_tls *t);

/* Reload every certificate and key file. On success the new material
 * serves new connections (established ones keep theirs), a tls_reloaded
 * line is logged and 0 returned; on failure the old material stays, a
 * tls_reload_failed line says why (file and problem) and -1 is returned.
 * Then checks expiry. Main thread. */
int srv_tls_reload(srv_tls *t);

/* Log a warning for every certificate that expires within the configured
 * window (when: "start", "reload", "daily"). Main thread. */
void srv_tls_check_expiry(srv_tls *t, const char *when);

/* For /health: the fewest whole days left over all certificates (negative
 * once expired) and that certificate's expiry time. 0, or -1 if t is NULL.
 * Thread-safe. */
int srv_tls_days_left(srv_tls *t, int64_t *days, int64_t *not_after);

#endif
