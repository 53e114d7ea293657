/* SPDX-License-Identifier: MIT */
/* `holdfast bench`: a bounded, loopback-only WebSocket load generator. */
#ifndef HF_TOOLS_BENCH_H
#define HF_TOOLS_BENCH_H

/* argv excludes "bench". Returns the process exit code. */
int bench_main(int argc, char **argv);

/* -m fanout and -m churn (bench_rt.c): the real-time endpoint and the
 * server API. Same argv convention. */
int bench_rt_main(int argc, char **argv);

/* -m recover (bench_recover.c): a reconnect storm with recovery, or with
 * --refetch the same storm catching up through the server API. */
int bench_recover_main(int argc, char **argv);

/* -m reconnect and -m flood (bench_storm.c): a reconnect storm (all clients
 * dropped at once, reconnecting with or without full-jitter backoff) and one
 * client flooding while observers measure their round trips. */
int bench_storm_main(int argc, char **argv);

/* -m sendpath (bench_send.c): the sender's CPU per send over N loopback
 * connections, send/sendmsg vs io_uring vs MSG_ZEROCOPY; no server. */
int bench_send_main(int argc, char **argv);

#endif
