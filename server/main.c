/* SPDX-License-Identifier: MIT */
/* The holdfast command: `holdfast serve` runs the server, `holdfast bench`
 * the load generator, `holdfast chaos` the fault-injecting proxy, `holdfast
 * connect` the terminal client, `holdfast probe` the connection diagnosis,
 * `holdfast version` prints the version. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "server.h"
#include "../tools/bench.h"
#include "../tools/chaos.h"
#include "../tools/connect.h"
#include "../tools/probe.h"
#include "../tools/pubsub.h"
#include "../tools/tokens.h"

#define HOLDFAST_VERSION "0.1.0"

static void usage(FILE *out) {
  fprintf(out,
          "holdfast %s: a real-time WebSocket server that is honest about failure\n\n"
          "usage:\n"
          "  holdfast serve [options]   run the server (holdfast serve --help)\n"
          "  holdfast bench [options]   load generator (holdfast bench --help)\n"
          "  holdfast chaos [options]   fault-injecting proxy (holdfast chaos --help)\n"
          "  holdfast connect URL       terminal WebSocket client (--help)\n"
          "  holdfast probe URL         diagnose a WebSocket endpoint layer by layer (--help)\n"
          "  holdfast sub URL CHANNEL   print a channel's publications, gap-free (--help)\n"
          "  holdfast pub URL CH JSON   publish one message (--help)\n"
          "  holdfast genconfig [-o F]  a starter configuration with fresh secrets\n"
          "  holdfast gentoken ...      a connection token (holdfast gentoken --help)\n"
          "  holdfast checktoken TOKEN  why the server would accept or refuse a token\n"
          "  holdfast config-doc        print the settings table (Markdown)\n"
          "  holdfast version           print the version\n",
          HOLDFAST_VERSION);
}

static int serve(int argc, char **argv) {
  srv_config cfg;
  srv_config_init(&cfg);
  int r = srv_config_load(&cfg, argc, argv, stderr);
  if (r != 0) {
    srv_config_free(&cfg);
    return r > 0 ? 0 : 2;
  }
  /* Logs go to stderr: pretty for a person at a terminal, JSON lines for
   * anything that collects them, unless the config says which. */
  int pretty = strcmp(cfg.log_format, "pretty") == 0 ||
               (strcmp(cfg.log_format, "auto") == 0 && isatty(2));
  srv_log_setup(pretty, srv_log_parse_level(cfg.log_level), 2);
  for (const char *const *w = srv_config_warnings(); *w; w++) {
    srv_logline l;
    srv_log_begin(&l, LOG_WARN, "config_warning");
    srv_log_str(&l, "message", *w);
    srv_log_end(&l);
  }
  srv_set_reload_args(argc, argv);
  int rc = srv_run(&cfg);
  srv_config_free(&cfg);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "serve") == 0)
    return serve(argc - 2, argv + 2);
  if (strcmp(cmd, "bench") == 0)
    return bench_main(argc - 2, argv + 2);
  if (strcmp(cmd, "chaos") == 0)
    return chaos_main(argc - 2, argv + 2);
  if (strcmp(cmd, "connect") == 0)
    return connect_main(argc - 2, argv + 2);
  if (strcmp(cmd, "probe") == 0)
    return probe_main(argc - 2, argv + 2);
  if (strcmp(cmd, "sub") == 0)
    return pubsub_sub_main(argc - 2, argv + 2);
  if (strcmp(cmd, "pub") == 0)
    return pubsub_pub_main(argc - 2, argv + 2);
  if (strcmp(cmd, "genconfig") == 0)
    return tok_genconfig_main(argc - 2, argv + 2);
  if (strcmp(cmd, "gentoken") == 0)
    return tok_gentoken_main(argc - 2, argv + 2);
  if (strcmp(cmd, "checktoken") == 0)
    return tok_checktoken_main(argc - 2, argv + 2);
  if (strcmp(cmd, "config-doc") == 0) {
    srv_config_markdown(stdout);
    return 0;
  }
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
    printf("holdfast %s\n", HOLDFAST_VERSION);
    return 0;
  }
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    usage(stdout);
    return 0;
  }
  fprintf(stderr, "holdfast: unknown command \"%s\"\n\n", cmd);
  usage(stderr);
  return 2;
}
