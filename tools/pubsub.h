/* SPDX-License-Identifier: MIT */
/* `holdfast sub` and `holdfast pub` (pubsub.c), the command-line tools on
 * the SDK. Each takes the arguments after its command name and returns the
 * exit status (docs/sdk.md). */
#ifndef HF_TOOLS_PUBSUB_H
#define HF_TOOLS_PUBSUB_H

int pubsub_sub_main(int argc, char **argv);
int pubsub_pub_main(int argc, char **argv);

#endif
