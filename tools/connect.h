/* SPDX-License-Identifier: MIT */
/* `holdfast connect`: a terminal WebSocket client (tools/connect.c). */
#ifndef HF_TOOLS_CONNECT_H
#define HF_TOOLS_CONNECT_H

/* argv excludes "connect". Returns the process exit status (cli.h). */
int connect_main(int argc, char **argv);

#endif
