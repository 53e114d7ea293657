/* SPDX-License-Identifier: MIT */
/* Option parsing shared by the client tools (`holdfast connect`, `holdfast
 * probe`): the connection options both take, durations and sizes in the
 * configuration's syntax, and the exit status of a failed connection. */
#ifndef HF_TOOLS_CLI_H
#define HF_TOOLS_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "hf/client.h"

#define CLI_MAX_LIST 32

typedef struct {
  const char *headers[CLI_MAX_LIST];
  size_t n_headers;
  const char *protos[CLI_MAX_LIST];
  size_t n_protos;
} cli_lists;

/* The value of option argv[*i]: "--opt=value" or "--opt value" (advancing
 * *i). NULL, after printing "prog: opt needs a value", when missing. */
const char *cli_value(const char *prog, int argc, char **argv, int *i,
                      const char *opt);

/* 1 if argv[*i] is opt ("--opt" or "--opt=..."; short names alike). */
int cli_is(const char *arg, const char *opt);

/* Durations ("500ms", "5s", "1m", "1.5s"; a plain number is seconds) and
 * sizes ("65536", "64KiB", "1MiB"). 0, or -1 after printing why. */
int cli_duration(const char *prog, const char *opt, const char *v, uint64_t *ms);
int cli_size(const char *prog, const char *opt, const char *v, uint64_t *bytes);

/* The options connect and probe share, applied to cfg (lists kept in l):
 *   -H/--header "Name: value", --origin O, --subprotocol P, --ca FILE,
 *   -k/--insecure, --deflate, --dns-server IP[:PORT][,...], --timeout DUR (every
 *   connect phase), --user-agent UA.
 * Returns 1 if argv[*i] was one of them (advanced past its value), 0 if
 * not, -1 on a bad value (message printed). */
int cli_client_option(const char *prog, int argc, char **argv, int *i,
                      hf_client_config *cfg, cli_lists *l);

/* The help lines of those options. */
void cli_client_usage(FILE *out);

/* Exit statuses, shared by connect and probe (docs/client.md, probe.md). */
enum {
  CLI_EXIT_OK = 0,
  CLI_EXIT_CLOSED = 1,   /* connect: the server closed with another code */
  CLI_EXIT_USAGE = 2,
  CLI_EXIT_DNS = 3,
  CLI_EXIT_NETWORK = 4,  /* TCP, or the connection was lost */
  CLI_EXIT_TLS = 5,
  CLI_EXIT_HTTP = 6,     /* the upgrade was refused or invalid */
  CLI_EXIT_PROTOCOL = 7, /* WebSocket protocol error (either side) */
  CLI_EXIT_IDLE = 8      /* probe --idle: something cut the connection */
};

/* The exit status a connection ending described by ev maps to. */
int cli_exit_status(const hf_client_event *ev);

/* Print s as a C-like quoted string with non-printable bytes escaped. */
void cli_print_quoted(FILE *out, const char *s, size_t n);

#endif
