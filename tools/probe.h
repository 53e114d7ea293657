/* SPDX-License-Identifier: MIT */
/* `holdfast probe`: walks DNS, TCP, TLS, the HTTP upgrade and the WebSocket
 * layer of one URL and reports each with its timing and verdict
 * (tools/probe.c). */
#ifndef HF_TOOLS_PROBE_H
#define HF_TOOLS_PROBE_H

/* argv excludes "probe". Returns the process exit status (docs/probe.md). */
int probe_main(int argc, char **argv);

#endif
