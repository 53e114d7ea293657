/* SPDX-License-Identifier: MIT */
/* The holdfast server process: one worker thread per core, each with its own
 * event loop and SO_REUSEPORT listeners (connections never migrate), HTTP
 * routing (/echo, /health, 404), connection limits, lifecycle logging and
 * graceful drain on SIGTERM/SIGINT. */
#ifndef SRV_SERVER_H
#define SRV_SERVER_H

#include "config.h"

/* Run the server until SIGTERM/SIGINT and the drain complete. Returns the
 * process exit code (0 after a clean drain). */
int srv_run(const srv_config *cfg);

/* The command line srv_run's configuration came from, re-read on SIGHUP
 * (the strings must live until srv_run returns). Call before srv_run;
 * without it a reload only re-reads the TLS material. */
void srv_set_reload_args(int argc, char **argv);

/* Start the graceful drain of the running server, exactly as SIGTERM does
 * (it raises SIGTERM for the process; srv_run's signal wait picks it up):
 * stop accepting, answer new upgrades 503, close real-time clients with
 * 3001 "shutdown" spread over shutdown.spread (jittered), then the other
 * connections, wait up to shutdown.timeout for the close handshakes, and
 * return from srv_run with 0. For the admin API's "drain". Any thread;
 * idempotent (a second call while draining changes nothing). */
void srv_drain(void);

#endif
