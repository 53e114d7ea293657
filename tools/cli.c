/* SPDX-License-Identifier: MIT */
/* Shared option parsing and exit statuses of the client tools. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hf/close.h"

int cli_is(const char *arg, const char *opt) {
  size_t n = strlen(opt);
  return strncmp(arg, opt, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

const char *cli_value(const char *prog, int argc, char **argv, int *i,
                      const char *opt) {
  const char *a = argv[*i], *eq = strchr(a, '=');
  if (eq && a[0] == '-' && a[1] == '-')
    return eq + 1;
  if (*i + 1 >= argc) {
    fprintf(stderr, "%s: %s needs a value\n", prog, opt);
    return NULL;
  }
  return argv[++*i];
}

int cli_duration(const char *prog, const char *opt, const char *v, uint64_t *ms) {
  char *end;
  double secs = strtod(v, &end);
  if (end != v && !*end && secs >= 0 && secs < 1e9) { /* plain seconds */
    *ms = (uint64_t)(secs * 1000 + 0.5);
    return 0;
  }
  if (srv_config_parse_duration(v, ms) == 0)
    return 0;
  fprintf(stderr, "%s: %s %s: want a duration like 500ms, 5s, 1m or 1.5 (seconds)\n",
          prog, opt, v);
  return -1;
}

int cli_size(const char *prog, const char *opt, const char *v, uint64_t *bytes) {
  if (srv_config_parse_size(v, bytes) == 0)
    return 0;
  fprintf(stderr, "%s: %s %s: want a size like 65536, 64KiB or 1MiB\n", prog,
          opt, v);
  return -1;
}

int cli_client_option(const char *prog, int argc, char **argv, int *i,
                      hf_client_config *cfg, cli_lists *l) {
  const char *a = argv[*i], *v;
  if (cli_is(a, "-H") || cli_is(a, "--header")) {
    if (!(v = cli_value(prog, argc, argv, i, "--header")))
      return -1;
    if (l->n_headers == CLI_MAX_LIST) {
      fprintf(stderr, "%s: at most %d headers\n", prog, CLI_MAX_LIST);
      return -1;
    }
    l->headers[l->n_headers++] = v;
    cfg->headers = l->headers;
    cfg->n_headers = l->n_headers;
    return 1;
  }
  if (cli_is(a, "--subprotocol")) {
    if (!(v = cli_value(prog, argc, argv, i, "--subprotocol")))
      return -1;
    if (l->n_protos == CLI_MAX_LIST) {
      fprintf(stderr, "%s: at most %d sub-protocols\n", prog, CLI_MAX_LIST);
      return -1;
    }
    l->protos[l->n_protos++] = v;
    cfg->subprotocols = l->protos;
    cfg->n_subprotocols = l->n_protos;
    return 1;
  }
  if (cli_is(a, "--origin")) {
    if (!(cfg->origin = cli_value(prog, argc, argv, i, "--origin")))
      return -1;
    return 1;
  }
  if (cli_is(a, "--ca")) {
    if (!(cfg->ca_file = cli_value(prog, argc, argv, i, "--ca")))
      return -1;
    return 1;
  }
  if (cli_is(a, "--deflate")) {
    cfg->deflate = 1;
    return 1;
  }
  if (cli_is(a, "-k") || cli_is(a, "--insecure")) {
    cfg->insecure = 1;
    return 1;
  }
  if (cli_is(a, "--dns-server")) {
    if (!(cfg->dns_servers = cli_value(prog, argc, argv, i, "--dns-server")))
      return -1;
    return 1;
  }
  if (cli_is(a, "--user-agent")) {
    if (!(cfg->user_agent = cli_value(prog, argc, argv, i, "--user-agent")))
      return -1;
    return 1;
  }
  if (cli_is(a, "--timeout")) {
    uint64_t ms;
    if (!(v = cli_value(prog, argc, argv, i, "--timeout")) ||
        cli_duration(prog, "--timeout", v, &ms) < 0)
      return -1;
    if (ms < 1 || ms > 3600000) {
      fprintf(stderr, "%s: --timeout must be from 1ms to 1h\n", prog);
      return -1;
    }
    cfg->dns_timeout_ms = cfg->tcp_timeout_ms = cfg->tls_timeout_ms =
        cfg->handshake_timeout_ms = (uint32_t)ms;
    return 1;
  }
  return 0;
}

void cli_client_usage(FILE *out) {
  fprintf(out,
          "  -H, --header 'Name: value'  extra request header (repeatable)\n"
          "  --origin ORIGIN             send Origin (what a browser page would)\n"
          "  --subprotocol NAME          offer a sub-protocol (repeatable)\n"
          "  --ca FILE                   wss: trust the CAs in FILE (PEM)\n"
          "  -k, --insecure              wss: do not verify the certificate\n"
          "  --deflate                   offer permessage-deflate compression\n"
          "  --timeout DUR               DNS, TCP, TLS and upgrade timeouts (default 5s)\n"
          "  --dns-server IP[:PORT],...  resolve through these servers\n"
          "  --user-agent UA             User-Agent header (default holdfast-client)\n");
}

int cli_exit_status(const hf_client_event *ev) {
  switch (ev->cause) {
  case HF_CAUSE_NONE:
  case HF_CAUSE_USER:
    return CLI_EXIT_OK;
  case HF_CAUSE_CLOSE_FRAME:
    switch (ev->close_code) {
    case HF_CLOSE_NORMAL:
    case HF_CLOSE_GOING_AWAY:
      return CLI_EXIT_OK;
    case HF_CLOSE_PROTOCOL_ERROR:
    case HF_CLOSE_UNSUPPORTED_DATA:
    case HF_CLOSE_INVALID_PAYLOAD:
    case HF_CLOSE_TOO_BIG:
    case 1010:
      return CLI_EXIT_PROTOCOL;
    default:
      return CLI_EXIT_CLOSED;
    }
  case HF_CAUSE_PROTOCOL:
    return CLI_EXIT_PROTOCOL;
  case HF_CAUSE_DNS:
    return CLI_EXIT_DNS;
  case HF_CAUSE_TLS:
  case HF_CAUSE_TLS_CERT:
    return CLI_EXIT_TLS;
  case HF_CAUSE_HTTP:
  case HF_CAUSE_HANDSHAKE:
    return CLI_EXIT_HTTP;
  case HF_CAUSE_TCP:
  case HF_CAUSE_ABNORMAL:
  case HF_CAUSE_HEARTBEAT:
  case HF_CAUSE_TIMEOUT:
    break;
  }
  switch (ev->layer) {
  case HF_LAYER_DNS: return CLI_EXIT_DNS;
  case HF_LAYER_TLS: return CLI_EXIT_TLS;
  case HF_LAYER_HTTP: return CLI_EXIT_HTTP;
  default: return CLI_EXIT_NETWORK;
  }
}

void cli_print_quoted(FILE *out, const char *s, size_t n) {
  fputc('"', out);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\')
      fprintf(out, "\\%c", ch);
    else if (ch < 0x20 || ch == 0x7f)
      fprintf(out, "\\x%02x", ch);
    else
      fputc(ch, out);
  }
  fputc('"', out);
}
