/* SPDX-License-Identifier: MIT */
/* `holdfast probe URL`: walks DNS, TCP, TLS, the HTTP upgrade and the
 * WebSocket layer of one URL with the client library and reports each step
 * with its timing and verdict (text, or the same report as JSON), ending a
 * failure with the most likely cause and the fix; the exit status names the
 * failing layer (docs/probe.md). Sequential code over the library's
 * descriptor + timeout interface and poll(2). */
#include "probe.h"

#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "hf/close.h"
#include "hf/err.h"
#include "hf/frame.h"

#define PROG "holdfast probe"
#define MAX_LINES 96
#define MSG_KEEP 4096

enum { ST_SKIP = 0, ST_OK, ST_WARN, ST_FAIL };

typedef struct {
  const char *name; /* "dns", "tcp", "tls", "http", "websocket", "idle" */
  const char *title;
  int status;
  double ms; /* < 0: no timing */
  char summary[512];
  char *lines[MAX_LINES];
  size_t n_lines;
  json_t *obj; /* structured fields for --json */
} layer;

enum { L_DNS, L_TCP, L_TLS, L_HTTP, L_WS, L_IDLE, L_COUNT };

typedef struct {
  hf_client *c;
  hf_client_config cfg;
  const char *url;
  const char *token;
  int json, centrifugo, samples;
  uint64_t idle_ms, max_size;
  layer L[L_COUNT];
  /* what the callbacks saw */
  int opened, ended;
  hf_client_event end; /* copies of the strings below */
  char end_reason[512], end_diag[1024], end_close_reason[128];
  uint64_t end_at;
  int got_msg, msg_op;
  uint8_t msg[MSG_KEEP];
  size_t msg_len;
  int got_pong;
  uint64_t rtt_us;
  /* the verdict */
  int exit_status;
  int fail_layer;
  char cause[1024], fix[1024];
} probe;

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static double mono_ms_f(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: holdfast probe URL [options]\n"
          "Walks DNS, TCP, TLS, the HTTP upgrade and the WebSocket layer of URL,\n"
          "reports each step with its timing and verdict, and ends a failure with\n"
          "the most likely cause and the fix.\n\n");
  cli_client_usage(out);
  fprintf(out,
          "  --token JWT                 Centrifugo-protocol connect with this token\n"
          "  --centrifugo                treat the endpoint as Centrifugo-protocol (the\n"
          "                              default for paths ending /connection/websocket)\n"
          "  --samples N                 ping/pong round trips to measure (default 5)\n"
          "  --idle DUR                  stay idle DUR and report whether something\n"
          "                              cut the connection (e.g. --idle 90s)\n"
          "  --max-size SIZE             find the largest message (up to SIZE) the\n"
          "                              endpoint echoes back\n"
          "  --json                      the same report as one JSON object\n\n"
          "exit status: 0 ok, 2 usage, 3 DNS, 4 TCP, 5 TLS, 6 HTTP upgrade,\n"
          "7 WebSocket/protocol, 8 idle cut (docs/probe.md)\n");
}

/* ---- report building ------------------------------------------------------ */

static void lset(layer *l, int status, double ms, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void lset(layer *l, int status, double ms, const char *fmt, ...) {
  l->status = status;
  l->ms = ms;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(l->summary, sizeof l->summary, fmt, ap);
  va_end(ap);
}

static void lline(layer *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lline(layer *l, const char *fmt, ...) {
  if (l->n_lines == MAX_LINES)
    return;
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) >= 0)
    l->lines[l->n_lines++] = s;
  va_end(ap);
}

/* A printable copy of bytes (escapes for the rest), for reports. */
static void printable(char *out, size_t cap, const void *p, size_t n) {
  const unsigned char *s = p;
  size_t o = 0;
  for (size_t i = 0; i < n && o + 5 < cap; i++) {
    if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\')
      out[o++] = (char)s[i];
    else
      o += (size_t)snprintf(out + o, cap - o, "\\x%02x", s[i]);
  }
  out[o] = '\0';
}

static void fail(probe *p, int lay, int status, const char *cause, const char *fix) {
  if (p->fail_layer >= 0)
    return;
  p->fail_layer = lay;
  p->exit_status = status;
  snprintf(p->cause, sizeof p->cause, "%s", cause ? cause : "");
  snprintf(p->fix, sizeof p->fix, "%s", fix ? fix : "");
  char *f = strstr(p->cause, "; fix: "); /* the library's "cause; fix: ..." */
  if (f) {
    if (!*p->fix)
      snprintf(p->fix, sizeof p->fix, "%s", f + 7);
    *f = '\0';
  }
}

/* ---- the client's callbacks -------------------------------------------------- */

static void on_state(hf_client *c, const hf_client_event *ev, void *user) {
  probe *p = user;
  if (ev->to == HF_CLIENT_OPEN)
    p->opened = 1;
  if (ev->to != HF_CLIENT_STOPPED && ev->to != HF_CLIENT_WAITING)
    return;
  p->ended = 1;
  p->end_at = mono_ms();
  p->end = *ev;
  snprintf(p->end_reason, sizeof p->end_reason, "%s", ev->reason);
  snprintf(p->end_diag, sizeof p->end_diag, "%s", ev->diagnosis);
  snprintf(p->end_close_reason, sizeof p->end_close_reason, "%s", ev->close_reason);
  p->end.reason = p->end_reason;
  p->end.diagnosis = p->end_diag;
  p->end.close_reason = p->end_close_reason;
}

static void on_message(hf_client *c, int op, const uint8_t *d, size_t n, void *user) {
  probe *p = user;
  p->got_msg = 1;
  p->msg_op = op;
  p->msg_len = n;
  memcpy(p->msg, d, n < MSG_KEEP ? n : MSG_KEEP);
}

static void on_pong(hf_client *c, uint64_t rtt_us, void *user) {
  probe *p = user;
  p->got_pong = 1;
  p->rtt_us = rtt_us;
}

/* Drive the client until done(p) or ended or the deadline (ms). Returns 1
 * if done, 0 on timeout, -1 if the connection ended. */
static int pump(probe *p, uint64_t deadline, int (*done)(const probe *)) {
  for (;;) {
    if (done && done(p))
      return 1;
    if (p->ended)
      return -1;
    uint64_t now = mono_ms();
    if (now >= deadline)
      return 0;
    int t = hf_client_timeout_ms(p->c);
    int left = (int)(deadline - now);
    if (t < 0 || t > left)
      t = left;
    struct pollfd pf = {.fd = hf_client_fd(p->c), .events = POLLIN};
    poll(&pf, 1, t);
    hf_client_process(p->c);
  }
}

static int is_open(const probe *p) { return p->opened; }
static int has_msg(const probe *p) { return p->got_msg; }
static int has_pong(const probe *p) { return p->got_pong; }

/* ---- layers from the connection report ------------------------------------------ */

static double us_ms(int64_t us) { return us < 0 ? -1 : (double)us / 1000.0; }

static void report_dns(probe *p, const hf_client_report *r) {
  layer *l = &p->L[L_DNS];
  json_t *addrs = json_array();
  char a[64], list[512] = "";
  size_t o = 0;
  for (size_t i = 0; i < r->naddrs; i++) {
    hf_client_addr_text(&r->addrs[i], a, sizeof a);
    json_array_append_new(addrs, json_string(a));
    o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", a);
    if (o >= sizeof list)
      o = sizeof list - 1;
  }
  json_object_set_new(l->obj, "host", json_string(r->host));
  json_object_set_new(l->obj, "addresses", addrs);
  json_object_set_new(l->obj, "literal", json_boolean(r->literal));
  if (r->failed == HF_LAYER_DNS) {
    lset(l, ST_FAIL, us_ms(r->dns_us), "%s", r->error);
    return;
  }
  if (r->reached < HF_LAYER_DNS)
    return;
  if (r->literal)
    lset(l, ST_OK, 0, "%s (an address: no lookup)", list);
  else
    lset(l, ST_OK, us_ms(r->dns_us), "%s -> %s", r->host, list);
}

static void report_tcp(probe *p, const hf_client_report *r) {
  layer *l = &p->L[L_TCP];
  char a[64];
  json_t *tried = json_array();
  for (size_t i = 0; i < r->ntried; i++) {
    hf_client_addr_text(&r->addrs[i], a, sizeof a);
    json_array_append_new(
        tried, json_pack("{s:s,s:s}", "address", a, "result",
                         r->tcp_errno[i] ? strerror(r->tcp_errno[i]) : "connected"));
    if (r->tcp_errno[i] && r->ntried > 1)
      lline(l, "%s: %s", a, strerror(r->tcp_errno[i]));
  }
  json_object_set_new(l->obj, "tried", tried);
  if (r->failed == HF_LAYER_TCP) {
    lset(l, ST_FAIL, -1, "%s", r->error);
    return;
  }
  if (r->reached < HF_LAYER_TCP || r->connected < 0)
    return;
  hf_client_addr_text(&r->addrs[r->connected], a, sizeof a);
  json_object_set_new(l->obj, "connected", json_string(a));
  lset(l, ST_OK, us_ms(r->tcp_us), "connected to %s", a);
}

static const char *accept_text(int a) {
  return a > 0 ? "valid" : a < 0 ? "WRONG" : "missing";
}

static const char *acao_text(hf_upgrade_acao a) {
  switch (a) {
  case HF_UPG_ACAO_NO_ORIGIN: return "no Origin sent";
  case HF_UPG_ACAO_ABSENT: return "no Access-Control-Allow-Origin (browsers do not need it for WebSockets)";
  case HF_UPG_ACAO_MATCH: return "matches the Origin sent";
  case HF_UPG_ACAO_ANY: return "* (any origin)";
  case HF_UPG_ACAO_MISMATCH: return "DIFFERENT from the Origin sent";
  }
  return "?";
}

static void report_http(probe *p, const hf_client_report *r) {
  layer *l = &p->L[L_HTTP];
  if (!r->request)
    return;
  /* the request as sent */
  json_object_set_new(l->obj, "request", json_stringn(r->request, r->request_len));
  const char *s = r->request, *end = r->request + r->request_len;
  while (s < end) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
    if (n && s[n - 1] == '\r')
      n--;
    if (n)
      lline(l, "> %.*s", (int)n, s);
    s = nl ? nl + 1 : end;
  }
  const hf_http_response *h = r->response;
  if (!h) {
    if (r->failed == HF_LAYER_HTTP)
      lset(l, ST_FAIL, us_ms(r->http_us), "%s", r->error);
    return;
  }
  json_t *hdrs = json_array();
  lline(l, "< HTTP/%d.%d %d %.*s", h->version_major, h->version_minor, h->status,
        (int)h->reason_len, h->reason);
  for (size_t i = 0; i < h->num_headers; i++) {
    lline(l, "< %.*s: %.*s", (int)h->headers[i].name_len, h->headers[i].name,
          (int)h->headers[i].value_len, h->headers[i].value);
    json_array_append_new(hdrs, json_pack("[s%s%]", h->headers[i].name,
                                          h->headers[i].name_len, h->headers[i].value,
                                          h->headers[i].value_len));
  }
  json_object_set_new(l->obj, "http_status", json_integer(h->status));
  json_object_set_new(l->obj, "reason", json_stringn(h->reason, h->reason_len));
  json_object_set_new(l->obj, "headers", hdrs);
  if (r->body_len) {
    char b[4 * 1024 + 8];
    printable(b, sizeof b, r->body, r->body_len);
    lline(l, "< (body%s) %s", r->body_truncated ? ", first bytes" : "", b);
    json_object_set_new(l->obj, "body", json_stringn((const char *)r->body, r->body_len));
  }
  const hf_upgrade_result *k = &r->check;
  json_object_set_new(l->obj, "check", json_string(k->reason));
  if (h->status == 101) {
    json_object_set_new(l->obj, "accept_key", json_string(accept_text(k->accept)));
    lline(l, "accept key: %s", accept_text(k->accept));
  }
  if (p->cfg.origin) {
    char v[256] = "";
    if (k->acao_value)
      snprintf(v, sizeof v, " (%.*s)", (int)k->acao_len, k->acao_value);
    lline(l, "Access-Control-Allow-Origin vs Origin %s: %s%s", p->cfg.origin,
          acao_text(k->acao), v);
    json_object_set_new(l->obj, "acao", json_string(acao_text(k->acao)));
    if (strncmp(p->cfg.origin, "https://", 8) == 0 && !r->tls)
      lline(l, "note: a page served over https:// cannot open ws:// (mixed content): "
               "browsers need wss:// there");
  }
  if (r->failed == HF_LAYER_HTTP || k->code != HF_UPG_OK) {
    lset(l, ST_FAIL, us_ms(r->http_us), "%d %.*s: %s", h->status,
         (int)h->reason_len, h->reason, k->reason);
    return;
  }
  if (p->cfg.deflate)
    lline(l, "permessage-deflate: %s", r->deflate ? "negotiated" : "declined by the server");
  json_object_set_new(l->obj, "deflate", json_boolean(r->deflate));
  lset(l, ST_OK, us_ms(r->http_us), "101 Switching Protocols, accept key valid%s%s",
       *hf_client_subprotocol(p->c) ? ", sub-protocol " : "",
       hf_client_subprotocol(p->c));
}

static void cert_json_lines(layer *l, json_t *arr, const hf_tls_cert_info *ci, size_t depth) {
  char nb[32], na[32];
  hf_tls_format_time(ci->not_before, nb);
  hf_tls_format_time(ci->not_after, na);
  json_array_append_new(
      arr, json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:b}", "depth", (int)depth, "subject",
                     ci->subject, "issuer", ci->issuer, "sans", ci->sans, "not_before",
                     nb, "not_after", na, "self_signed", ci->self_signed));
  int64_t left = (ci->not_after - (int64_t)time(NULL)) / 86400;
  lline(l, "certificate %zu: %s", depth, ci->subject);
  if (*ci->sans)
    lline(l, "  names: %s", ci->sans);
  lline(l, "  issuer: %s%s", ci->issuer, ci->self_signed ? " (self-signed)" : "");
  if (ci->not_after < (int64_t)time(NULL))
    lline(l, "  valid: %s .. %s (EXPIRED)", nb, na);
  else if (ci->not_before > (int64_t)time(NULL))
    lline(l, "  valid: %s .. %s (NOT YET VALID)", nb, na);
  else
    lline(l, "  valid: %s .. %s (%lld days left)", nb, na, (long long)left);
}

static void report_tls(probe *p, const hf_client_report *r) {
  layer *l = &p->L[L_TLS];
  if (!r->tls) {
    lset(l, ST_SKIP, -1, "not used (ws://)");
    return;
  }
  if (r->reached < HF_LAYER_TCP)
    return;
  json_t *chain = json_array();
  for (size_t i = 0; i < r->tls_chain_len; i++)
    cert_json_lines(l, chain, &r->tls_chain[i], i);
  json_object_set_new(l->obj, "certificates", chain);
  json_object_set_new(l->obj, "verify", json_string(r->tls_verify_text));
  json_object_set_new(l->obj, "verified", json_boolean(r->tls_verify == 0));
  if (r->failed == HF_LAYER_TLS) {
    lset(l, ST_FAIL, us_ms(r->tls_us), "%s", r->error);
    return;
  }
  if (r->reached < HF_LAYER_TLS)
    return;
  json_object_set_new(l->obj, "version", json_string(r->tls_version));
  json_object_set_new(l->obj, "cipher", json_string(r->tls_cipher));
  json_object_set_new(l->obj, "alpn", json_string(r->tls_alpn));
  lline(l, "chain: %s", r->tls_verify == 0 ? "verified (trusted CA, host name matches)"
                        : r->tls_insecure ? "NOT verified (--insecure)"
                                          : r->tls_verify_text);
  if (r->tls_verify != 0) {
    lline(l, "verification would fail: %s", r->tls_verify_text);
    lset(l, ST_WARN, us_ms(r->tls_us), "%s, %s, ALPN %s; certificate NOT verified (--insecure)",
         r->tls_version, r->tls_cipher, *r->tls_alpn ? r->tls_alpn : "none");
    return;
  }
  lset(l, ST_OK, us_ms(r->tls_us), "%s, %s, ALPN %s", r->tls_version, r->tls_cipher,
       *r->tls_alpn ? r->tls_alpn : "none");
}

/* The connect phase failed: say where, why and what to do. */
static void connect_failed(probe *p, const hf_client_report *r) {
  const hf_client_event *e = &p->end;
  char fix[1024] = "";
  switch (r->failed) {
  case HF_LAYER_DNS:
    snprintf(fix, sizeof fix,
             "check the host name in the URL; `getent hosts %s` shows what the "
             "system resolver answers", r->host);
    fail(p, L_DNS, CLI_EXIT_DNS, e->diagnosis, fix);
    break;
  case HF_LAYER_TCP:
    snprintf(fix, sizeof fix,
             "start the server, or correct the host and port (%d) in the URL; "
             "the server must listen on an address this machine can reach "
             "(holdfast: --listen); check firewalls for port %d",
             r->port, r->port);
    fail(p, L_TCP, CLI_EXIT_NETWORK, e->diagnosis, fix);
    break;
  case HF_LAYER_TLS:
    fail(p, L_TLS, CLI_EXIT_TLS, e->diagnosis, "");
    break;
  case HF_LAYER_HTTP:
    if (r->response)
      fail(p, L_HTTP, CLI_EXIT_HTTP, r->check.diagnosis, r->check.fix);
    else
      fail(p, L_HTTP, CLI_EXIT_HTTP, e->diagnosis, "");
    break;
  default:
    fail(p, L_WS, CLI_EXIT_PROTOCOL, e->diagnosis, "");
  }
  if (!*p->cause)
    snprintf(p->cause, sizeof p->cause, "%s", e->reason);
}

/* ---- the WebSocket layer --------------------------------------------------------- */

static void ended_in(probe *p, int lay, const char *what) {
  const hf_client_event *e = &p->end;
  layer *l = &p->L[lay];
  const char *who = e->closed_by == HF_BY_SERVER    ? "the server closed"
                    : e->closed_by == HF_BY_NETWORK ? "the connection was lost"
                                                    : "the client closed";
  lset(l, ST_FAIL, -1, "%s: %s with %d (%s)%s%s", what, who, e->close_code,
       hf_close_meaning((unsigned)e->close_code), *e->close_reason ? ": " : "",
       e->close_reason);
}

static int ws_pings(probe *p) {
  layer *l = &p->L[L_WS];
  double min = 1e18, max = 0, sum = 0;
  int got = 0;
  for (int i = 0; i < p->samples; i++) {
    p->got_pong = 0;
    if (hf_client_ping(p->c) < 0)
      break;
    int r = pump(p, mono_ms() + 5000, has_pong);
    if (r < 0) {
      ended_in(p, L_WS, "ping");
      fail(p, L_WS, CLI_EXIT_PROTOCOL, p->end.diagnosis, "");
      return -1;
    }
    if (r == 0) {
      lset(l, ST_FAIL, -1, "no pong within 5 s (RFC 6455 requires an answer to a ping)");
      fail(p, L_WS, CLI_EXIT_PROTOCOL,
           "the endpoint (or a proxy in front of it) does not answer WebSocket pings",
           "fix the server; a proxy must pass control frames through");
      return -1;
    }
    double ms = (double)p->rtt_us / 1000.0;
    min = ms < min ? ms : min;
    max = ms > max ? ms : max;
    sum += ms;
    got++;
  }
  if (got) {
    json_object_set_new(l->obj, "rtt_ms",
                        json_pack("{s:f,s:f,s:f,s:i}", "min", min, "avg", sum / got,
                                  "max", max, "samples", got));
    lline(l, "ping/pong RTT: min %.3f / avg %.3f / max %.3f ms over %d samples", min,
          sum / got, max, got);
  }
  return 0;
}

static int ws_echo(probe *p) {
  layer *l = &p->L[L_WS];
  uint8_t nonce[8];
  if (getrandom(nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
    memset(nonce, 7, sizeof nonce);
  char text[64];
  int n = snprintf(text, sizeof text, "holdfast-probe %02x%02x%02x%02x%02x%02x%02x%02x",
                   nonce[0], nonce[1], nonce[2], nonce[3], nonce[4], nonce[5],
                   nonce[6], nonce[7]);
  p->got_msg = 0;
  hf_client_send(p->c, HF_OP_TEXT, text, (size_t)n);
  int r = pump(p, mono_ms() + 2000, has_msg);
  int echo = r > 0 && p->msg_len == (size_t)n && memcmp(p->msg, text, (size_t)n) == 0;
  json_object_set_new(l->obj, "echo", json_boolean(echo));
  if (echo) {
    lline(l, "echo: yes (a text message came back unchanged)");
  } else if (r > 0) {
    char b[200];
    printable(b, sizeof b, p->msg, p->msg_len < 60 ? p->msg_len : 60);
    lline(l, "echo: no (the endpoint answered with something else: %s)", b);
  } else if (r == 0) {
    lline(l, "echo: no (nothing came back within 2 s)");
  } else {
    lline(l, "echo: no (the server closed with %d, %s, after a text message: not "
             "an echo endpoint)",
          p->end.close_code, hf_close_meaning((unsigned)p->end.close_code));
  }
  return echo;
}

/* Centrifugo protocol: connect (with --token) and the reply or error. */
static int ws_centrifugo(probe *p) {
  layer *l = &p->L[L_WS];
  json_t *cmd = json_pack("{s:i,s:{s:s}}", "id", 1, "connect", "name", "holdfast-probe");
  if (p->token)
    json_object_set_new(json_object_get(cmd, "connect"), "token", json_string(p->token));
  char *s = json_dumps(cmd, JSON_COMPACT);
  json_decref(cmd);
  p->got_msg = 0;
  hf_client_send(p->c, HF_OP_TEXT, s, strlen(s));
  free(s);
  json_t *cj = json_object();
  json_object_set_new(l->obj, "centrifugo_connect", cj);
  uint64_t deadline = mono_ms() + 5000;
  for (;;) {
    int r = pump(p, deadline, has_msg);
    if (r < 0) {
      ended_in(p, L_WS, "connect");
      json_object_set_new(cj, "close_code", json_integer(p->end.close_code));
      fail(p, L_WS, CLI_EXIT_PROTOCOL,
           p->end.close_code == 3500 || p->end.close_code == 3501
               ? "the server refused the connect command: no valid token was sent"
               : "the server closed the connection at connect",
           "pass a valid connection token with --token (holdfast gentoken makes one "
           "for a holdfast server)");
      return -1;
    }
    if (r == 0) {
      lset(l, ST_FAIL, -1, "no reply to the connect command within 5 s");
      fail(p, L_WS, CLI_EXIT_PROTOCOL,
           "the endpoint does not speak the Centrifugo protocol, or it is stuck",
           "check the path (holdfast: /connection/websocket)");
      return -1;
    }
    p->got_msg = 0;
    size_t n = p->msg_len < MSG_KEEP ? p->msg_len : MSG_KEEP;
    const char *nl = memchr(p->msg, '\n', n);
    json_error_t je;
    json_t *reply = json_loadb((const char *)p->msg, nl ? (size_t)(nl - (char *)p->msg) : n,
                               0, &je);
    if (!reply)
      continue;
    json_t *id = json_object_get(reply, "id");
    if (!json_is_integer(id) || json_integer_value(id) != 1) {
      json_decref(reply);
      continue;
    }
    json_t *err = json_object_get(reply, "error"), *ok = json_object_get(reply, "connect");
    if (err) {
      int code = (int)json_integer_value(json_object_get(err, "code"));
      const char *m = json_string_value(json_object_get(err, "message"));
      json_object_set_new(cj, "error_code", json_integer(code));
      json_object_set_new(cj, "error_message", json_string(m ? m : ""));
      lset(l, ST_FAIL, -1, "connect refused: error %d %s", code, m ? m : "");
      fail(p, L_WS, CLI_EXIT_PROTOCOL, "the server answered the connect command with an error",
           code == 109 ? "the token expired: make a new one"
                       : "check the token and the server's log");
      json_decref(reply);
      return -1;
    }
    const char *client = ok ? json_string_value(json_object_get(ok, "client")) : NULL;
    const char *ver = ok ? json_string_value(json_object_get(ok, "version")) : NULL;
    lline(l, "centrifugo connect: ok, client %s%s%s", client ? client : "?",
          ver ? ", server version " : "", ver ? ver : "");
    json_object_set_new(cj, "client", json_string(client ? client : ""));
    json_decref(reply);
    return 0;
  }
}

/* Stay idle; report whether (and when) something cut the connection. */
static void ws_idle(probe *p) {
  layer *l = &p->L[L_IDLE];
  uint64_t t0 = mono_ms();
  json_object_set_new(l->obj, "seconds", json_real((double)p->idle_ms / 1000.0));
  int r = pump(p, t0 + p->idle_ms, NULL);
  if (r < 0) {
    double after = (double)(p->end_at - t0) / 1000.0;
    const hf_client_event *e = &p->end;
    json_object_set_new(l->obj, "cut_after_s", json_real(after));
    json_object_set_new(l->obj, "close_code", json_integer(e->close_code));
    lset(l, ST_FAIL, after * 1000.0, "the connection was cut after %.1f s idle: %s", after,
         e->reason);
    char cause[512], fix[512];
    snprintf(cause, sizeof cause,
             "%s after %.1f s without traffic: an idle timeout on the way (load "
             "balancer, NAT, proxy such as nginx's proxy_read_timeout, 60 s by "
             "default) or the server's own",
             e->closed_by == HF_BY_SERVER ? "the server side closed" : "the connection dropped",
             after);
    snprintf(fix, sizeof fix,
             "keep traffic flowing more often than every %.0f s (client or server "
             "heartbeat, e.g. holdfast websocket.ping_interval), or raise the idle "
             "timeout (nginx: proxy_read_timeout 3600s;)",
             after > 2 ? after - 1 : 1);
    fail(p, L_IDLE, CLI_EXIT_IDLE, cause, fix);
    return;
  }
  /* still there? a silent drop (NAT) only shows when something is sent */
  p->got_pong = 0;
  hf_client_ping(p->c);
  r = pump(p, mono_ms() + 5000, has_pong);
  if (r > 0) {
    json_object_set_new(l->obj, "cut", json_false());
    lset(l, ST_OK, (double)p->idle_ms, "still open after %.1f s idle (ping answered)",
         (double)p->idle_ms / 1000.0);
    return;
  }
  json_object_set_new(l->obj, "cut", json_true());
  lset(l, ST_FAIL, (double)p->idle_ms,
       "after %.1f s idle the connection no longer carries traffic: %s",
       (double)p->idle_ms / 1000.0,
       r < 0 ? p->end.reason : "no pong within 5 s");
  fail(p, L_IDLE, CLI_EXIT_IDLE,
       "something on the way dropped the idle connection silently (a NAT or "
       "proxy idle timeout shorter than the idle time, without a reset)",
       "send heartbeats more often than that timeout (client ping interval or "
       "holdfast websocket.ping_interval), or raise the timeout on the proxy/NAT");
}

/* Largest message (powers of two from 1 KiB, then the limit) echoed back. */
static void ws_max_size(probe *p, int echo) {
  layer *l = &p->L[L_WS];
  if (!echo) {
    lline(l, "max size: not measured (needs an echo endpoint)");
    return;
  }
  uint8_t *buf = malloc(p->max_size);
  if (!buf)
    return;
  for (size_t i = 0; i < p->max_size; i++)
    buf[i] = (uint8_t)(i * 31 + 7);
  size_t passed = 0, failed = 0, s = 1024;
  const char *why = "";
  char whyb[256] = "";
  for (;;) {
    if (s > p->max_size)
      s = p->max_size;
    p->got_msg = 0;
    if (hf_client_send(p->c, HF_OP_BINARY, buf, s) < 0) {
      failed = s;
      why = "cannot queue it";
      break;
    }
    int r = pump(p, mono_ms() + 5000 + s / 100000, has_msg);
    if (r > 0 && p->msg_len == s &&
        memcmp(p->msg, buf, s < MSG_KEEP ? s : MSG_KEEP) == 0) {
      passed = s;
      if (s == p->max_size)
        break;
      s *= 2;
      continue;
    }
    failed = s;
    if (r < 0) {
      snprintf(whyb, sizeof whyb, "the connection ended with %d (%s)", p->end.close_code,
               hf_close_meaning((unsigned)p->end.close_code));
      why = whyb;
    } else {
      why = r == 0 ? "no echo within the time allowed" : "a different answer came back";
    }
    break;
  }
  free(buf);
  json_t *m = json_pack("{s:I,s:I}", "limit", (json_int_t)p->max_size, "passed",
                        (json_int_t)passed);
  if (failed)
    json_object_set_new(m, "failed_at", json_integer((json_int_t)failed));
  json_object_set_new(l->obj, "max_size", m);
  if (failed)
    lline(l, "max size: %zu bytes passed; %zu bytes did not (%s)", passed, failed, why);
  else
    lline(l, "max size: every size up to %zu bytes passed", passed);
}

/* ---- output --------------------------------------------------------------------- */

static const char *status_name(int s) {
  switch (s) {
  case ST_OK: return "ok";
  case ST_WARN: return "warn";
  case ST_FAIL: return "FAIL";
  default: return "-";
  }
}

static void print_text(probe *p) {
  printf("holdfast probe %s\n", p->url);
  for (int i = 0; i < L_COUNT; i++) {
    layer *l = &p->L[i];
    if (i == L_IDLE && !p->idle_ms)
      continue;
    char t[32] = "";
    if (l->ms >= 0 && l->status != ST_SKIP)
      snprintf(t, sizeof t, "%.1f ms", l->ms);
    printf("  %-10s %-5s %10s  %s\n", l->title, status_name(l->status), t,
           l->status == ST_SKIP && !*l->summary ? "not reached" : l->summary);
    for (size_t k = 0; k < l->n_lines; k++)
      printf("  %-10s %-5s %10s    %s\n", "", "", "", l->lines[k]);
  }
  if (p->fail_layer >= 0) {
    printf("cause: %s\n", *p->cause ? p->cause : "unknown");
    if (*p->fix)
      printf("fix: %s\n", p->fix);
    printf("result: %s failed (exit %d)\n", p->L[p->fail_layer].title, p->exit_status);
  } else {
    printf("result: ok\n");
  }
}

static void print_json(probe *p) {
  json_t *root = json_object(), *layers = json_array();
  json_object_set_new(root, "url", json_string(p->url));
  for (int i = 0; i < L_COUNT; i++) {
    layer *l = &p->L[i];
    if (i == L_IDLE && !p->idle_ms)
      continue;
    json_t *o = json_deep_copy(l->obj);
    json_object_set_new(o, "layer", json_string(l->name));
    json_object_set_new(o, "status",
                        json_string(l->status == ST_SKIP ? "skipped"
                                    : l->status == ST_OK ? "ok"
                                    : l->status == ST_WARN ? "warn" : "fail"));
    if (l->ms >= 0 && l->status != ST_SKIP)
      json_object_set_new(o, "ms", json_real(l->ms));
    json_object_set_new(o, "summary", json_string(l->summary));
    json_t *lines = json_array();
    for (size_t k = 0; k < l->n_lines; k++)
      json_array_append_new(lines, json_string(l->lines[k]));
    json_object_set_new(o, "details", lines);
    json_array_append_new(layers, o);
  }
  json_object_set_new(root, "layers", layers);
  json_object_set_new(root, "ok", json_boolean(p->fail_layer < 0));
  json_object_set_new(root, "exit", json_integer(p->exit_status));
  if (p->fail_layer >= 0) {
    json_object_set_new(root, "failed_layer", json_string(p->L[p->fail_layer].name));
    json_object_set_new(root, "cause", json_string(p->cause));
    json_object_set_new(root, "fix", json_string(p->fix));
  }
  char *s = json_dumps(root, JSON_INDENT(2) | JSON_ENSURE_ASCII);
  if (s)
    puts(s);
  free(s);
  json_decref(root);
}

/* ---- main ----------------------------------------------------------------------- */

static int parse_args(probe *p, cli_lists *lists, int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i], *v;
    uint64_t u;
    int r = cli_client_option(PROG, argc, argv, &i, &p->cfg, lists);
    if (r < 0)
      return -1;
    if (r > 0)
      continue;
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      usage(stdout);
      return 1;
    } else if (cli_is(arg, "--json")) {
      p->json = 1;
    } else if (cli_is(arg, "--centrifugo")) {
      p->centrifugo = 1;
    } else if (cli_is(arg, "--token")) {
      if (!(p->token = cli_value(PROG, argc, argv, &i, arg)))
        return -1;
      p->centrifugo = 1;
    } else if (cli_is(arg, "--samples")) {
      if (!(v = cli_value(PROG, argc, argv, &i, arg)))
        return -1;
      p->samples = atoi(v);
      if (p->samples < 0 || p->samples > 1000) {
        fprintf(stderr, PROG ": --samples %s: want 0..1000\n", v);
        return -1;
      }
    } else if (cli_is(arg, "--idle")) {
      if (!(v = cli_value(PROG, argc, argv, &i, arg)) ||
          cli_duration(PROG, "--idle", v, &p->idle_ms) < 0)
        return -1;
    } else if (cli_is(arg, "--max-size")) {
      if (!(v = cli_value(PROG, argc, argv, &i, arg)) ||
          cli_size(PROG, "--max-size", v, &u) < 0)
        return -1;
      if (u < 1 || u > (1u << 30)) {
        fprintf(stderr, PROG ": --max-size must be from 1 byte to 1GiB\n");
        return -1;
      }
      p->max_size = u;
    } else if (arg[0] == '-' && arg[1]) {
      fprintf(stderr, PROG ": unknown option %s (see --help)\n", arg);
      return -1;
    } else if (!p->url) {
      p->url = arg;
    } else {
      fprintf(stderr, PROG ": one URL only (got %s and %s)\n", p->url, arg);
      return -1;
    }
  }
  if (!p->url) {
    usage(stderr);
    return -1;
  }
  return 0;
}

static void layers_init(probe *p) {
  static const char *names[L_COUNT] = {"dns", "tcp", "tls", "http", "websocket", "idle"};
  static const char *titles[L_COUNT] = {"DNS", "TCP", "TLS", "HTTP", "WebSocket", "Idle"};
  for (int i = 0; i < L_COUNT; i++) {
    p->L[i].name = names[i];
    p->L[i].title = titles[i];
    p->L[i].ms = -1;
    p->L[i].obj = json_object();
  }
}

static void layers_free(probe *p) {
  for (int i = 0; i < L_COUNT; i++) {
    for (size_t k = 0; k < p->L[i].n_lines; k++)
      free(p->L[i].lines[k]);
    json_decref(p->L[i].obj);
  }
}

int probe_main(int argc, char **argv) {
  probe *p = calloc(1, sizeof *p);
  if (!p)
    return CLI_EXIT_USAGE;
  cli_lists lists;
  memset(&lists, 0, sizeof lists);
  hf_client_config_init(&p->cfg);
  p->cfg.reconnect.enabled = 0;
  p->samples = 5;
  p->fail_layer = -1;
  p->end.reason = p->end_reason;
  p->end.diagnosis = p->end_diag;
  p->end.close_reason = p->end_close_reason;
  layers_init(p);
  int rc = parse_args(p, &lists, argc, argv);
  if (rc != 0) {
    layers_free(p);
    free(p);
    return rc > 0 ? 0 : CLI_EXIT_USAGE;
  }
  {
    const char *q = strchr(p->url, '?');
    size_t n = q ? (size_t)(q - p->url) : strlen(p->url);
    static const char cp[] = "/connection/websocket";
    if (n >= sizeof cp - 1 && memcmp(p->url + n - (sizeof cp - 1), cp, sizeof cp - 1) == 0)
      p->centrifugo = 1;
  }
  p->cfg.url = p->url;
  p->cfg.on_state = on_state;
  p->cfg.on_message = on_message;
  p->cfg.on_pong = on_pong;
  p->cfg.user = p;
  if (p->max_size) {
    if (p->cfg.max_message < p->max_size)
      p->cfg.max_message = p->max_size;
    p->cfg.queue_max = p->max_size + 1024;
  }
  char err[512];
  p->c = hf_client_new(&p->cfg, err, sizeof err);
  if (!p->c) {
    fprintf(stderr, PROG ": %s\n", err);
    layers_free(p);
    free(p);
    return CLI_EXIT_USAGE;
  }
  signal(SIGPIPE, SIG_IGN);
  hf_client_start(p->c);
  uint32_t total = p->cfg.dns_timeout_ms + p->cfg.tcp_timeout_ms * HF_CLIENT_MAX_ADDRS +
                   p->cfg.tls_timeout_ms + p->cfg.handshake_timeout_ms + 2000;
  int r = pump(p, mono_ms() + total, is_open);
  const hf_client_report *rep = hf_client_get_report(p->c);
  report_dns(p, rep);
  report_tcp(p, rep);
  report_tls(p, rep);
  report_http(p, rep);
  if (r <= 0) {
    if (r == 0 && !p->ended)
      snprintf(p->end_reason, sizeof p->end_reason, "the connect phases took too long");
    connect_failed(p, rep);
  } else {
    layer *l = &p->L[L_WS];
    double t0 = mono_ms_f();
    int echo = 0;
    lset(l, ST_OK, -1, "open");
    if (ws_pings(p) == 0) {
      if (p->centrifugo)
        ws_centrifugo(p);
      else
        echo = ws_echo(p);
    }
    double ws_ms = mono_ms_f() - t0;
    if (p->fail_layer < 0 && !p->ended && p->max_size)
      ws_max_size(p, echo);
    if (l->status == ST_OK)
      lset(l, ST_OK, ws_ms, "open; %s", p->centrifugo ? "Centrifugo-protocol endpoint"
                                        : echo        ? "echo endpoint"
                                                      : "not an echo endpoint");
    if (p->fail_layer < 0 && !p->ended && p->idle_ms)
      ws_idle(p);
    if (p->fail_layer < 0 && p->idle_ms && p->ended && p->L[L_IDLE].status == ST_SKIP)
      lset(&p->L[L_IDLE], ST_SKIP, -1, "not measured: the connection had ended");
    if (!p->ended && p->fail_layer == L_IDLE)
      hf_client_stop(p->c); /* nothing gets through any more */
    else if (!p->ended)
      hf_client_close(p->c, 1000, "probe done");
    pump(p, mono_ms() + 3000, NULL);
  }
  if (p->json)
    print_json(p);
  else
    print_text(p);
  fflush(stdout);
  rc = p->exit_status;
  hf_client_free(p->c);
  layers_free(p);
  free(p);
  return rc;
}
