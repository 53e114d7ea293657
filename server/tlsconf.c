/* SPDX-License-Identifier: MIT */
/* TLS material of the server: configuration -> hf_tls_server, start-up
 * refusal with the file and the problem, reload (SIGHUP) by swapping a
 * reference under a mutex (accepts compare one atomic generation), and
 * expiry warnings. */
#include "tlsconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

struct srv_tls {
  hf_tls_pair *pairs; /* paths copied from the configuration */
  size_t npairs;
  int min_version, ktls;
  uint64_t warn_days;
  pthread_mutex_t mu;
  hf_tls_server *cur; /* under mu */
  atomic_uint gen;
  /* the earliest expiry over all certificates, for /health */
  _Atomic int64_t min_not_after;
};

static int64_t now_s(void) { return (int64_t)time(NULL); }

static hf_tls_server *build(const srv_tls *t, char *err, size_t cap) {
  hf_tls_server_config sc = {t->pairs, t->npairs, t->min_version, t->ktls, 0};
  return hf_tls_server_new(&sc, err, cap);
}

static int64_t earliest_expiry(const hf_tls_server *s) {
  int64_t m = INT64_MAX;
  for (size_t i = 0; i < hf_tls_server_npairs(s); i++) {
    hf_tls_cert_info ci;
    if (hf_tls_server_cert(s, i, &ci) == 0 && ci.not_after < m)
      m = ci.not_after;
  }
  return m;
}

/* 1 if the running kernel offers the "tls" upper-layer protocol. */
static int kernel_has_tls(void) {
  FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
  char line[256] = "";
  if (!f)
    return 0;
  if (!fgets(line, sizeof line, f))
    line[0] = 0;
  fclose(f);
  char *save = NULL;
  for (char *p = strtok_r(line, " \n", &save); p; p = strtok_r(NULL, " \n", &save))
    if (strcmp(p, "tls") == 0)
      return 1;
  return 0;
}

static long long days_until(int64_t when, int64_t now) {
  int64_t d = when - now;
  return (long long)(d >= 0 ? d / 86400 : -((-d + 86399) / 86400));
}

static void log_certs(const srv_tls *t, const hf_tls_server *s, const char *event) {
  int64_t now = now_s();
  for (size_t i = 0; i < hf_tls_server_npairs(s); i++) {
    hf_tls_cert_info ci;
    if (hf_tls_server_cert(s, i, &ci) < 0)
      continue;
    char na[32];
    hf_tls_format_time(ci.not_after, na);
    srv_logline l;
    srv_log_begin(&l, LOG_INFO, event);
    srv_log_str(&l, "cert_file", t->pairs[i].cert_file);
    srv_log_str(&l, "subject", ci.subject);
    srv_log_str(&l, "sans", ci.sans);
    srv_log_str(&l, "issuer", ci.issuer);
    srv_log_str(&l, "not_after", na);
    srv_log_int(&l, "days_left", days_until(ci.not_after, now));
    srv_log_bool(&l, "sni_default", i == 0);
    if (i == 0) {
      srv_log_str(&l, "min_version", t->min_version == 13 ? "TLSv1.3" : "TLSv1.2");
      srv_log_str(&l, "ktls", !t->ktls            ? "off"
                              : kernel_has_tls() ? "on where OpenSSL can"
                                                 : "requested, but the kernel has no tls "
                                                   "module: TLS in user space");
    }
    srv_log_end(&l);
  }
}

int srv_tls_setup(srv_tls **out, const srv_config *cfg, FILE *err) {
  *out = NULL;
  if (!cfg->tls_enabled && !cfg->tls_listen.n)
    return 0;
  srv_tls *t = calloc(1, sizeof *t);
  size_t n = 1 + json_array_size(cfg->tls_sni);
  if (t)
    t->pairs = calloc(n, sizeof *t->pairs);
  if (!t || !t->pairs) {
    free(t);
    fprintf(err, "holdfast: out of memory\n");
    return -1;
  }
  pthread_mutex_init(&t->mu, NULL);
  t->npairs = n;
  t->pairs[0].cert_file = strdup(cfg->tls_cert_file);
  t->pairs[0].key_file = strdup(cfg->tls_key_file);
  for (size_t i = 1; i < n; i++) {
    json_t *e = json_array_get(cfg->tls_sni, i - 1);
    t->pairs[i].cert_file = strdup(json_string_value(json_object_get(e, "cert_pem_file")));
    t->pairs[i].key_file = strdup(json_string_value(json_object_get(e, "key_pem_file")));
  }
  t->min_version = strcmp(cfg->tls_min_version, "1.3") == 0 ? 13 : 12;
  t->ktls = cfg->tls_ktls;
  t->warn_days = cfg->tls_expiry_warning_days;
  char why[600] = "";
  t->cur = build(t, why, sizeof why);
  if (!t->cur) {
    fprintf(err, "holdfast: cannot start TLS: %s\n", why);
    srv_tls_free(t);
    return -1;
  }
  atomic_store(&t->min_not_after, earliest_expiry(t->cur));
  log_certs(t, t->cur, "tls_ready");
  *out = t;
  return 0;
}

void srv_tls_free(srv_tls *t) {
  if (!t)
    return;
  hf_tls_server_unref(t->cur);
  for (size_t i = 0; i < t->npairs; i++) {
    free((char *)t->pairs[i].cert_file);
    free((char *)t->pairs[i].key_file);
  }
  free(t->pairs);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

hf_tls_server *srv_tls_current(srv_tls *t, unsigned *gen) {
  pthread_mutex_lock(&t->mu);
  hf_tls_server *s = hf_tls_server_ref(t->cur);
  *gen = atomic_load(&t->gen);
  pthread_mutex_unlock(&t->mu);
  return s;
}

unsigned srv_tls_generation(const srv_tls *t) {
  return atomic_load_explicit(&t->gen, memory_order_acquire);
}

int srv_tls_reload(srv_tls *t) {
  char why[600] = "";
  hf_tls_server *s = build(t, why, sizeof why);
  srv_logline l;
  if (!s) {
    srv_log_begin(&l, LOG_ERROR, "tls_reload_failed");
    srv_log_str(&l, "reason", why);
    srv_log_str(&l, "action", "kept the certificates loaded before; fix the file and "
                              "send SIGHUP again");
    srv_log_end(&l);
    srv_tls_check_expiry(t, "reload");
    return -1;
  }
  pthread_mutex_lock(&t->mu);
  hf_tls_server *old = t->cur;
  t->cur = s;
  atomic_fetch_add_explicit(&t->gen, 1, memory_order_release);
  pthread_mutex_unlock(&t->mu);
  hf_tls_server_unref(old); /* live sessions hold their own references */
  atomic_store(&t->min_not_after, earliest_expiry(s));
  log_certs(t, s, "tls_reloaded");
  srv_tls_check_expiry(t, "reload");
  return 0;
}

void srv_tls_check_expiry(srv_tls *t, const char *when) {
  if (!t || !t->warn_days)
    return;
  unsigned g;
  hf_tls_server *s = srv_tls_current(t, &g);
  int64_t now = now_s();
  for (size_t i = 0; i < hf_tls_server_npairs(s); i++) {
    hf_tls_cert_info ci;
    if (hf_tls_server_cert(s, i, &ci) < 0)
      continue;
    long long d = days_until(ci.not_after, now);
    if (ci.not_after - now > (int64_t)t->warn_days * 86400)
      continue;
    char na[32];
    hf_tls_format_time(ci.not_after, na);
    srv_logline l;
    srv_log_begin(&l, LOG_WARN, "tls_certificate_expiring");
    srv_log_str(&l, "cert_file", t->pairs[i].cert_file);
    srv_log_str(&l, "subject", ci.subject);
    srv_log_str(&l, "not_after", na);
    srv_log_int(&l, "days_left", d);
    srv_log_int(&l, "warning_days", (long long)t->warn_days);
    srv_log_str(&l, "when", when);
    srv_log_str(&l, "action", "renew the certificate, replace the file, send SIGHUP");
    srv_log_end(&l);
  }
  hf_tls_server_unref(s);
}

int srv_tls_days_left(srv_tls *t, int64_t *days, int64_t *not_after) {
  if (!t)
    return -1;
  int64_t na = atomic_load(&t->min_not_after);
  *not_after = na;
  *days = days_until(na, now_s());
  return 0;
}
