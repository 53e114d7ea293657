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

#endif
