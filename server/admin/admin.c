/* SPDX-License-Identifier: MIT */
/* Admin API and dashboard data (admin.h): session tokens, surveys over every
 * worker through its inbox (scatter on the asking loop, each worker answers
 * on its own loop, the last one posts the merge back), and the per-worker
 * one-second ticker that pushes snapshots to dashboard WebSockets. */
#include "admin/admin.h"
#include "admin/session.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hf/frame.h"
#include "log.h"
#include "metrics/metrics.h"
#include "transport/transport.h"

#define TOPK 10       /* top channels per worker and in the snapshot */
#define SLOWK 5       /* largest output queues per worker and in the snapshot */
#define PAGE_DEF 100  /* connections per page by default */
#define PAGE_MAX 1000 /* the most a page may ask for */
#define NAME_MAX_ 128 /* channel names shown (longer ones are cut) */

enum { S_CONNS, S_DISC, S_STATS };

typedef struct {
  char name[NAME_MAX_];
  uint64_t subs;
  double rate;
} top_ent;

typedef struct {
  char id[37];
  char user[64];
  uint64_t queued;
} slow_ent;

typedef struct {
  char id[37];
  size_t off, len;
} row;

struct survey;

/* One worker's share of a survey (posted to that worker's inbox). */
typedef struct {
  hf_msg m;
  struct survey *s;
  size_t idx;
  jw_buf out;  /* S_CONNS: the rows' JSON, back to back */
  row *rows;   /* S_CONNS: where each row is in out, sorted by id */
  size_t nrows;
  uint64_t matched; /* S_CONNS: matching connections; S_DISC: disconnected */
  /* S_STATS */
  uint64_t clients, slow_now, rtt_n, rtt_sum_us, rtt_max_us;
  top_ent topsub[TOPK], toprate[TOPK];
  size_t nsub, nrate;
  slow_ent slow[SLOWK];
  size_t nslow;
} part;

typedef struct survey {
  adm *a;
  int kind;
  size_t origin;
  atomic_size_t left;
  hf_msg done_msg;
  struct survey *next, *prev; /* a->surveys, under a->mu */
  /* the question */
  char user[256], channel[256], remote[64], client[37], after[37];
  size_t limit;
  uint16_t code;
  char reason[124];
  adm_done_fn done;
  void *arg;
  part parts[];
} survey;

/* Per worker: its dashboard WebSockets and their ticker. */
typedef struct {
  adm *a;
  size_t idx;
  hf_conn **dash;
  size_t ndash, cap;
  hf_timer tick;
  int busy; /* a snapshot survey is in flight */
} adm_local;

struct adm {
  adm_env env;
  adm_local *loc;
  pthread_mutex_t mu;
  survey *surveys;
  uint64_t fail_start_ms; /* failed logins: the window's start (under mu) */
  unsigned fails;         /* failed logins in that window */
};

static const char *const method_names[ADM_NMETHODS] = {"auth", "connections", "disconnect",
                                                       "drain"};

int adm_method(const char *name, size_t len) {
  for (int i = ADM_CONNECTIONS; i < ADM_NMETHODS; i++)
    if (strlen(method_names[i]) == len && memcmp(method_names[i], name, len) == 0)
      return i;
  return -1;
}

const char *adm_method_list(void) { return "connections, disconnect, drain"; }

adm *adm_new(const adm_env *env) {
  adm *a = calloc(1, sizeof *a);
  if (!a)
    return NULL;
  a->env = *env;
  a->loc = calloc(env->nw, sizeof *a->loc);
  if (!a->loc) {
    free(a);
    return NULL;
  }
  for (size_t i = 0; i < env->nw; i++) {
    a->loc[i].a = a;
    a->loc[i].idx = i;
  }
  pthread_mutex_init(&a->mu, NULL);
  return a;
}

static void survey_free(survey *s) {
  for (size_t i = 0; i < s->a->env.nw; i++) {
    jw_free(&s->parts[i].out);
    free(s->parts[i].rows);
  }
  free(s);
}

void adm_free(adm *a) {
  if (!a)
    return;
  while (a->surveys) {
    survey *s = a->surveys;
    a->surveys = s->next;
    survey_free(s);
  }
  for (size_t i = 0; i < a->env.nw; i++)
    free(a->loc[i].dash);
  free(a->loc);
  pthread_mutex_destroy(&a->mu);
  free(a);
}

/* ---- session tokens ---------------------------------------------------------- */

static int64_t wall_s(void) { return (int64_t)(hf_wall_ms() / 1000u); }

int adm_check_token(const adm *a, const char *tok, size_t len, const char **reason) {
  if (a->env.cfg->admin_insecure)
    return 0;
  return adm_session_check(a->env.cfg->admin_secret, tok, len, wall_s(), reason);
}

const char *adm_token_of(const hf_http_request *req, size_t *len) {
  const hf_http_header *h = hf_http_find(req, "Authorization");
  if (!h || h->value_len < 7 || strncasecmp(h->value, "token ", 6) != 0)
    return NULL;
  const char *v = h->value + 6;
  size_t n = h->value_len - 6;
  while (n && (*v == ' ' || *v == '\t')) {
    v++;
    n--;
  }
  *len = n;
  return v;
}

/* ---- answers ----------------------------------------------------------------- */

static void answer(adm_done_fn done, void *arg, int status, const char *msg_or_json, int is_json) {
  jw_buf b;
  jw_init(&b);
  if (is_json) {
    jw_lit(&b, msg_or_json);
  } else {
    jw_lit(&b, "{\"error\":");
    jw_cstr(&b, msg_or_json);
    jw_lit(&b, "}");
  }
  jw_char(&b, '\n');
  done(arg, jw_ok(&b) ? status : 500, "application/json", &b);
  jw_free(&b);
}

#define LOGIN_FAILS 5          /* failed logins allowed per window ... */
#define LOGIN_WINDOW_MS 10000 /* ... of this length; then 429 until it ends */

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Whether a login may be tried now (guessing the password is slowed to
 * LOGIN_FAILS tries per window for the whole process); failed: count one. */
static int login_allowed(adm *a, int failed) {
  uint64_t now = mono_ms();
  pthread_mutex_lock(&a->mu);
  if (now - a->fail_start_ms >= LOGIN_WINDOW_MS) {
    a->fail_start_ms = now;
    a->fails = 0;
  }
  a->fails += failed ? 1u : 0u;
  int ok = a->fails < LOGIN_FAILS || failed;
  pthread_mutex_unlock(&a->mu);
  return ok;
}

static void login(adm *a, json_t *req, adm_done_fn done, void *arg) {
  const srv_config *cfg = a->env.cfg;
  if (!login_allowed(a, 0)) {
    srv_logline l;
    srv_log_begin(&l, LOG_WARN, "admin_login_throttled");
    srv_log_end(&l);
    answer(done, arg, 429, "too many failed admin logins: retry in 10 s", 0);
    return;
  }
  json_t *pw = json_object_get(req, "password");
  if (!json_is_string(pw)) {
    answer(done, arg, 400, "bad request: send {\"password\":\"...\"}", 0);
    return;
  }
  const char *p = json_string_value(pw);
  size_t pl = json_string_length(pw), kl = strlen(cfg->admin_password);
  int ok = cfg->admin_insecure ||
           (kl && pl == kl && CRYPTO_memcmp(p, cfg->admin_password, kl) == 0);
  srv_logline l;
  srv_log_begin(&l, ok ? LOG_INFO : LOG_WARN, ok ? "admin_login" : "admin_login_failed");
  srv_log_end(&l);
  if (!ok) {
    login_allowed(a, 1);
    answer(done, arg, 403, "wrong admin password (admin.password)", 0);
    return;
  }
  unsigned long long exp =
      (unsigned long long)wall_s() + (unsigned long long)(cfg->admin_session_ttl_ms / 1000);
  char tok[128], body[200];
  if (cfg->admin_insecure && !*cfg->admin_secret)
    snprintf(tok, sizeof tok, "insecure");
  else if (adm_session_sign(cfg->admin_secret, exp, tok, sizeof tok) < 0) {
    answer(done, arg, 500, "internal error", 0);
    return;
  }
  snprintf(body, sizeof body, "{\"token\":\"%s\",\"expires_at\":%llu}", tok, exp);
  answer(done, arg, 200, body, 1);
}

/* ---- surveys ----------------------------------------------------------------- */

static void run_part(hf_loop *loop, hf_msg *m);
static void run_done(hf_loop *loop, hf_msg *m);

static survey *survey_new(adm *a, int kind, size_t origin) {
  survey *s = calloc(1, sizeof *s + a->env.nw * sizeof(part));
  if (!s)
    return NULL;
  s->a = a;
  s->kind = kind;
  s->origin = origin;
  s->done_msg.run = run_done;
  for (size_t i = 0; i < a->env.nw; i++) {
    s->parts[i].m.run = run_part;
    s->parts[i].s = s;
    s->parts[i].idx = i;
    jw_init(&s->parts[i].out);
  }
  return s;
}

static void survey_start(survey *s) {
  adm *a = s->a;
  atomic_store(&s->left, a->env.nw);
  pthread_mutex_lock(&a->mu);
  s->next = a->surveys;
  if (s->next)
    s->next->prev = s;
  a->surveys = s;
  pthread_mutex_unlock(&a->mu);
  for (size_t i = 0; i < a->env.nw; i++)
    hf_loop_post(a->env.loops[i], &s->parts[i].m);
}

static int matches(const survey *s, cl_client *cl, const char *id) {
  hf_conn *c = cl_conn(cl);
  if (s->client[0] && strcmp(s->client, id) != 0)
    return 0;
  if (s->user[0] && strcmp(s->user, cl_user(cl)) != 0)
    return 0;
  if (s->after[0] && strcmp(id, s->after) <= 0)
    return 0;
  if (s->remote[0]) {
    char peer[64];
    hf_conn_client(c, peer, sizeof peer); /* behind a trusted proxy: the client it names */
    if (strncmp(peer, s->remote, strlen(s->remote)) != 0)
      return 0;
  }
  if (s->channel[0]) {
    size_t want = strlen(s->channel), n = cl_num_channels(cl), i;
    for (i = 0; i < n; i++) {
      size_t len;
      const char *ch = cl_channel_at(cl, i, &len);
      if (len == want && memcmp(ch, s->channel, len) == 0)
        break;
    }
    if (i == n)
      return 0;
  }
  return 1;
}

/* Header text as a JSON string: bytes outside printable ASCII become '?'
 * (a header is not validated UTF-8). */
static void safe_str(jw_buf *b, const char *s) {
  char tmp[256];
  size_t n = 0;
  for (; s[n] && n < sizeof tmp - 1; n++)
    tmp[n] = (s[n] >= 0x20 && s[n] < 0x7f) ? s[n] : '?';
  jw_str(b, tmp, n);
}

typedef struct {
  char id[37];
  cl_client *cl;
} cand;

static int cand_cmp(const void *x, const void *y) {
  return strcmp(((const cand *)x)->id, ((const cand *)y)->id);
}

static void write_row(jw_buf *b, cl_client *cl, const char *id, uint64_t now_ms) {
  hf_conn *c = cl_conn(cl);
  char peer[64];
  hf_conn_client(c, peer, sizeof peer); /* behind a trusted proxy: the client it names */
  jw_lit(b, "{\"id\":");
  jw_cstr(b, id);
  jw_lit(b, ",\"user\":");
  jw_cstr(b, cl_user(cl));
  jw_lit(b, ",\"remote\":");
  jw_cstr(b, peer);
  jw_lit(b, ",\"origin\":");
  if (cl_origin(cl))
    safe_str(b, cl_origin(cl));
  else
    jw_lit(b, "null");
  jw_lit(b, ",\"transport\":");
  jw_cstr(b, tr_name((tr_kind)cl_transport(cl)));
  jw_lit(b, ",\"age_s\":");
  uint64_t t0 = cl_created_ms(cl);
  jw_u64(b, now_ms > t0 ? (now_ms - t0) / 1000 : 0);
  jw_lit(b, ",\"channels\":[");
  for (size_t i = 0, n = cl_num_channels(cl); i < n; i++) {
    size_t len;
    const char *ch = cl_channel_at(cl, i, &len);
    if (i)
      jw_char(b, ',');
    jw_str(b, ch, len);
  }
  jw_lit(b, "],\"queue_bytes\":");
  jw_u64(b, hf_conn_queued(c));
  jw_lit(b, ",\"rtt_ms\":");
  uint64_t rtt = cl_rtt_us(cl);
  if (rtt) {
    char num[32];
    snprintf(num, sizeof num, "%.3f", (double)rtt / 1000.0);
    jw_lit(b, num);
  } else {
    jw_lit(b, "null");
  }
  jw_char(b, '}');
}

static void part_conns(part *p, cl_list *L, uint64_t now_ms) {
  survey *s = p->s;
  size_t cap = 0, n = 0;
  cand *v = NULL;
  for (cl_client *cl = cl_list_first(L); cl; cl = cl_next(cl)) {
    char id[37];
    hf_conn_id(cl_conn(cl), id);
    if (!matches(s, cl, id))
      continue;
    p->matched++;
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 64;
      cand *nv = realloc(v, nc * sizeof *nv);
      if (!nv)
        break;
      v = nv;
      cap = nc;
    }
    memcpy(v[n].id, id, sizeof id);
    v[n++].cl = cl;
  }
  if (n)
    qsort(v, n, sizeof *v, cand_cmp);
  if (n > s->limit)
    n = s->limit;
  p->rows = n ? calloc(n, sizeof *p->rows) : NULL;
  for (size_t i = 0; p->rows && i < n; i++) {
    memcpy(p->rows[i].id, v[i].id, sizeof v[i].id);
    p->rows[i].off = p->out.len;
    write_row(&p->out, v[i].cl, v[i].id, now_ms);
    p->rows[i].len = p->out.len - p->rows[i].off;
    p->nrows++;
  }
  free(v);
}

static void part_disconnect(part *p, cl_list *L) {
  survey *s = p->s;
  for (cl_client *cl = cl_list_first(L), *next; cl; cl = next) {
    next = cl_next(cl); /* a disconnect may free cl */
    char id[37];
    hf_conn_id(cl_conn(cl), id);
    if (matches(s, cl, id)) {
      p->matched++;
      cl_disconnect(cl, s->code, s->reason);
    }
  }
}

/* Keep the k largest by key (subs or rate) in a small array. */
static void top_add(top_ent *t, size_t *n, const char *ch, size_t len, uint64_t subs, double rate,
                    int by_rate) {
  double key = by_rate ? rate : (double)subs;
  if (key <= 0)
    return;
  size_t at = *n;
  if (at == TOPK) {
    double last = by_rate ? t[TOPK - 1].rate : (double)t[TOPK - 1].subs;
    if (key <= last)
      return;
    at = TOPK - 1;
  } else {
    (*n)++;
  }
  while (at > 0 && (by_rate ? t[at - 1].rate : (double)t[at - 1].subs) < key) {
    t[at] = t[at - 1];
    at--;
  }
  size_t m = len < NAME_MAX_ - 1 ? len : NAME_MAX_ - 1;
  memcpy(t[at].name, ch, m);
  t[at].name[m] = 0;
  t[at].subs = subs;
  t[at].rate = rate;
}

static void on_chan_stat(void *arg, const char *ch, size_t len, uint32_t subs, double rate) {
  part *p = arg;
  top_add(p->topsub, &p->nsub, ch, len, subs, rate, 0);
  top_add(p->toprate, &p->nrate, ch, len, subs, rate, 1);
}

static void slow_add(slow_ent *t, size_t *n, const char *id, const char *user, uint64_t q) {
  if (!q)
    return;
  size_t at = *n;
  if (at == SLOWK) {
    if (q <= t[SLOWK - 1].queued)
      return;
    at = SLOWK - 1;
  } else {
    (*n)++;
  }
  while (at > 0 && t[at - 1].queued < q) {
    t[at] = t[at - 1];
    at--;
  }
  snprintf(t[at].id, sizeof t[at].id, "%s", id);
  snprintf(t[at].user, sizeof t[at].user, "%s", user);
  t[at].queued = q;
}

static void part_stats(part *p, cl_list *L, hub_local *hl, uint64_t now_ms) {
  uint64_t soft = p->s->a->env.cfg->queue_max_size;
  for (cl_client *cl = cl_list_first(L); cl; cl = cl_next(cl)) {
    hf_conn *c = cl_conn(cl);
    p->clients++;
    uint64_t q = hf_conn_queued(c);
    if (q > soft)
      p->slow_now++;
    uint64_t rtt = cl_rtt_us(cl);
    if (rtt) {
      p->rtt_n++;
      p->rtt_sum_us += rtt;
      if (rtt > p->rtt_max_us)
        p->rtt_max_us = rtt;
    }
    if (q && (p->nslow < SLOWK || q > p->slow[SLOWK - 1].queued)) {
      char id[37];
      hf_conn_id(c, id);
      slow_add(p->slow, &p->nslow, id, cl_user(cl), q);
    }
  }
  hub_local_stats(hl, now_ms, on_chan_stat, p);
}

static void run_part(hf_loop *loop, hf_msg *m) {
  part *p = (part *)m;
  survey *s = p->s;
  adm *a = s->a;
  cl_list *L = a->env.clients[p->idx];
  uint64_t now = hf_loop_now(loop);
  if (s->kind == S_CONNS)
    part_conns(p, L, now);
  else if (s->kind == S_DISC)
    part_disconnect(p, L);
  else
    part_stats(p, L, a->env.hubs[p->idx], now);
  if (atomic_fetch_sub(&s->left, 1) == 1) /* the last worker: merge at the origin */
    hf_loop_post(a->env.loops[s->origin], &s->done_msg);
}

static int row_cmp(const void *x, const void *y) {
  return strcmp((*(const row *const *)x)->id, (*(const row *const *)y)->id);
}

static void finish_conns(survey *s) {
  adm *a = s->a;
  size_t total = 0;
  uint64_t matched = 0;
  for (size_t i = 0; i < a->env.nw; i++) {
    total += s->parts[i].nrows;
    matched += s->parts[i].matched;
  }
  /* rows point into their part's rows array (and text buffer) */
  const row **all = calloc(total ? total : 1, sizeof *all);
  if (!all) {
    answer(s->done, s->arg, 500, "out of memory", 0);
    return;
  }
  size_t k = 0;
  for (size_t i = 0; i < a->env.nw; i++)
    for (size_t j = 0; j < s->parts[i].nrows; j++)
      all[k++] = &s->parts[i].rows[j];
  qsort(all, total, sizeof *all, row_cmp);
  size_t n = total < s->limit ? total : s->limit;
  jw_buf b;
  jw_init(&b);
  jw_lit(&b, "{\"result\":{\"connections\":[");
  for (size_t i = 0; i < n; i++) {
    const row *r = all[i];
    /* find its part: the row lies inside that part's rows array */
    for (size_t w = 0; w < a->env.nw; w++) {
      const part *p = &s->parts[w];
      if (p->nrows && r >= p->rows && r < p->rows + p->nrows) {
        if (i)
          jw_char(&b, ',');
        jw_raw(&b, p->out.p + r->off, r->len);
        break;
      }
    }
  }
  jw_lit(&b, "],\"total\":");
  jw_u64(&b, matched);
  jw_lit(&b, ",\"next_cursor\":");
  if (matched > n && n)
    jw_cstr(&b, all[n - 1]->id);
  else
    jw_lit(&b, "\"\"");
  jw_lit(&b, "}}\n");
  free(all);
  s->done(s->arg, jw_ok(&b) ? 200 : 500, "application/json", &b);
  jw_free(&b);
}

static void finish_disconnect(survey *s) {
  uint64_t n = 0;
  for (size_t i = 0; i < s->a->env.nw; i++)
    n += s->parts[i].matched;
  srv_logline l;
  srv_log_begin(&l, LOG_INFO, "admin_disconnect");
  srv_log_str(&l, "user", s->user[0] ? s->user : NULL);
  srv_log_str(&l, "client", s->client[0] ? s->client : NULL);
  srv_log_int(&l, "code", s->code);
  srv_log_int(&l, "disconnected", (long long)n);
  srv_log_end(&l);
  char body[96];
  snprintf(body, sizeof body, "{\"result\":{\"disconnected\":%llu}}", (unsigned long long)n);
  answer(s->done, s->arg, 200, body, 1);
}

static void finish_stats(survey *s);

static void run_done(hf_loop *loop, hf_msg *m) {
  survey *s = (survey *)((char *)m - offsetof(survey, done_msg));
  adm *a = s->a;
  pthread_mutex_lock(&a->mu);
  if (s->prev)
    s->prev->next = s->next;
  else
    a->surveys = s->next;
  if (s->next)
    s->next->prev = s->prev;
  pthread_mutex_unlock(&a->mu);
  if (s->kind == S_CONNS)
    finish_conns(s);
  else if (s->kind == S_DISC)
    finish_disconnect(s);
  else
    finish_stats(s);
  survey_free(s);
}

/* ---- calls -------------------------------------------------------------------- */

static int copy_str(char *dst, size_t cap, json_t *req, const char *k) {
  json_t *v = json_object_get(req, k);
  dst[0] = 0;
  if (!v)
    return 0;
  if (!json_is_string(v) || json_string_length(v) >= cap ||
      memchr(json_string_value(v), 0, json_string_length(v)))
    return -1;
  memcpy(dst, json_string_value(v), json_string_length(v) + 1);
  return 0;
}

void adm_call(adm *a, size_t w, int method, const uint8_t *body, size_t len, adm_done_fn done,
              void *arg) {
  json_error_t je;
  json_t *req = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &je);
  if (!json_is_object(req)) {
    json_decref(req);
    answer(done, arg, 400, "bad request: the body must be a JSON object", 0);
    return;
  }
  if (method == ADM_LOGIN) {
    login(a, req, done, arg);
    json_decref(req);
    return;
  }
  if (method == ADM_DRAIN) {
    json_decref(req);
    srv_logline l;
    srv_log_begin(&l, LOG_WARN, "admin_drain");
    srv_log_end(&l);
    answer(done, arg, 200, "{\"result\":{\"draining\":true}}", 1);
    a->env.drain(a->env.arg);
    return;
  }
  survey *s = survey_new(a, method == ADM_CONNECTIONS ? S_CONNS : S_DISC, w);
  if (!s) {
    json_decref(req);
    answer(done, arg, 500, "out of memory", 0);
    return;
  }
  s->done = done;
  s->arg = arg;
  const char *bad = NULL;
  if (copy_str(s->user, sizeof s->user, req, "user") < 0 ||
      copy_str(s->client, sizeof s->client, req, "client") < 0)
    bad = "bad request: user and client must be short strings";
  if (method == ADM_CONNECTIONS && !bad) {
    json_t *lim = json_object_get(req, "limit");
    s->limit = PAGE_DEF;
    if (lim && (!json_is_integer(lim) || json_integer_value(lim) < 1 ||
                json_integer_value(lim) > PAGE_MAX))
      bad = "bad request: limit must be an integer from 1 to 1000";
    else if (lim)
      s->limit = (size_t)json_integer_value(lim);
    if (copy_str(s->channel, sizeof s->channel, req, "channel") < 0 ||
        copy_str(s->remote, sizeof s->remote, req, "remote") < 0 ||
        copy_str(s->after, sizeof s->after, req, "cursor") < 0)
      bad = bad ? bad : "bad request: channel, remote and cursor must be short strings";
  }
  if (method == ADM_DISCONNECT && !bad) {
    s->code = 3503;
    snprintf(s->reason, sizeof s->reason, "force disconnect");
    json_t *c = json_object_get(req, "code"), *r = json_object_get(req, "reason");
    if (!s->user[0] && !s->client[0])
      bad = "bad request: user or client required";
    else if (c && (!json_is_integer(c) || json_integer_value(c) < 3000 ||
                   json_integer_value(c) > 4999))
      bad = "bad request: code must be an integer from 3000 to 4999";
    else if (r && (!json_is_string(r) || !json_string_length(r) ||
                   json_string_length(r) >= sizeof s->reason))
      bad = "bad request: reason must be a non-empty string of at most 123 bytes";
    else {
      if (c)
        s->code = (uint16_t)json_integer_value(c);
      if (r)
        snprintf(s->reason, sizeof s->reason, "%s", json_string_value(r));
    }
  }
  json_decref(req);
  if (bad) {
    survey_free(s);
    answer(done, arg, 400, bad, 0);
    return;
  }
  survey_start(s);
}

/* ---- dashboard ---------------------------------------------------------------- */

static void tick(hf_loop *loop, hf_timer *t);

int adm_ws_open(adm *a, size_t w, hf_conn *c) {
  adm_local *L = &a->loc[w];
  if (L->ndash == L->cap) {
    size_t nc = L->cap ? L->cap * 2 : 4;
    hf_conn **nv = realloc(L->dash, nc * sizeof *nv);
    if (!nv)
      return -1;
    L->dash = nv;
    L->cap = nc;
  }
  L->dash[L->ndash++] = c;
  if (!hf_timer_armed(&L->tick)) {
    L->tick.cb = tick;
    hf_timer_set(a->env.loops[w], &L->tick, 0); /* a first snapshot at once */
  }
  return 0;
}

void adm_ws_closed(adm *a, size_t w, hf_conn *c) {
  adm_local *L = &a->loc[w];
  for (size_t i = 0; i < L->ndash; i++)
    if (L->dash[i] == c) {
      L->dash[i] = L->dash[--L->ndash];
      break;
    }
  if (!L->ndash)
    hf_timer_cancel(a->env.loops[w], &L->tick);
}

static void tick(hf_loop *loop, hf_timer *t) {
  adm_local *L = (adm_local *)((char *)t - offsetof(adm_local, tick));
  if (!L->ndash)
    return;
  hf_timer_set(loop, t, 1000);
  if (L->busy) /* the last one has not come back yet (a busy worker) */
    return;
  survey *s = survey_new(L->a, S_STATS, L->idx);
  if (!s)
    return;
  L->busy = 1;
  survey_start(s);
}

static void write_top(jw_buf *b, const top_ent *t, size_t n, int rate) {
  jw_char(b, '[');
  for (size_t i = 0; i < n; i++) {
    if (i)
      jw_char(b, ',');
    jw_lit(b, "{\"channel\":");
    safe_str(b, t[i].name);
    if (rate) {
      char num[48];
      snprintf(num, sizeof num, ",\"per_s\":%.2f}", t[i].rate);
      jw_lit(b, num);
    } else {
      jw_lit(b, ",\"subscribers\":");
      jw_u64(b, t[i].subs);
      jw_char(b, '}');
    }
  }
  jw_char(b, ']');
}

static double ms(uint64_t us) { return (double)us / 1000.0; }

static void finish_stats(survey *s) {
  adm *a = s->a;
  adm_local *L = &a->loc[s->origin];
  L->busy = 0;
  if (!L->ndash)
    return;
  /* merge the workers: subscribers add up, a publication reaches every
   * worker with subscribers (the largest rate is the channel's) */
  slow_ent slow[SLOWK];
  size_t nslow = 0;
  uint64_t clients = 0, slow_now = 0, rtt_n = 0, rtt_sum = 0, rtt_max = 0;
  top_ent msubs[TOPK], mrate[TOPK];
  size_t nms = 0, nmr = 0;
  for (size_t w = 0; w < a->env.nw; w++) {
    const part *p = &s->parts[w];
    clients += p->clients;
    slow_now += p->slow_now;
    rtt_n += p->rtt_n;
    rtt_sum += p->rtt_sum_us;
    if (p->rtt_max_us > rtt_max)
      rtt_max = p->rtt_max_us;
    for (size_t i = 0; i < p->nslow; i++)
      slow_add(slow, &nslow, p->slow[i].id, p->slow[i].user, p->slow[i].queued);
  }
  /* every channel named in some worker's lists, once */
  top_ent pool[TOPK * 8];
  size_t npool = 0;
  for (size_t w = 0; w < a->env.nw; w++) {
    const part *p = &s->parts[w];
    const top_ent *lists[2] = {p->topsub, p->toprate};
    size_t lens[2] = {p->nsub, p->nrate};
    for (int li = 0; li < 2; li++)
      for (size_t i = 0; i < lens[li]; i++) {
        size_t j;
        for (j = 0; j < npool; j++)
          if (strcmp(pool[j].name, lists[li][i].name) == 0)
            break;
        if (j == npool && npool < sizeof pool / sizeof pool[0])
          pool[npool++] = lists[li][i];
      }
  }
  /* add each worker's figures once per channel */
  for (size_t j = 0; j < npool; j++) {
    uint64_t sum = 0;
    double best = 0;
    for (size_t w = 0; w < a->env.nw; w++) {
      const part *p = &s->parts[w];
      int found = 0;
      for (size_t i = 0; i < p->nsub && !found; i++)
        if (strcmp(p->topsub[i].name, pool[j].name) == 0) {
          sum += p->topsub[i].subs;
          if (p->topsub[i].rate > best)
            best = p->topsub[i].rate;
          found = 1;
        }
      for (size_t i = 0; i < p->nrate && !found; i++)
        if (strcmp(p->toprate[i].name, pool[j].name) == 0) {
          sum += p->toprate[i].subs;
          if (p->toprate[i].rate > best)
            best = p->toprate[i].rate;
          found = 1;
        }
    }
    top_add(msubs, &nms, pool[j].name, strlen(pool[j].name), sum, best, 0);
    top_add(mrate, &nmr, pool[j].name, strlen(pool[j].name), sum, best, 1);
  }
  /* counters from the metrics registry */
  uint64_t upgrades = 0, closes = 0, slow_disc = 0, slow_rec = 0;
  uint64_t codes[MET_CODES] = {0}, rejects[MET_REJ_N] = {0}, limited[MET_RL_N] = {0};
  uint64_t tr_open[TR_KINDS] = {0}, tr_closed[TR_KINDS] = {0}; /* sessions by transport */
  jw_buf b;
  jw_init(&b);
  jw_lit(&b, "{\"lag_ms\":[");
  int firstlag = 1;
  for (const met_worker *m = met_workers(); m; m = m->next) {
#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)
    upgrades += LD(m->n[MET_UPGRADES_REALTIME]) + LD(m->n[MET_UPGRADES_ECHO]);
    slow_disc += LD(m->n[MET_SLOW_DISCONNECT]);
    slow_rec += LD(m->n[MET_SLOW_RECOVER]);
    for (int c = 0; c < MET_CODES; c++)
      for (int side = 0; side < MET_SIDES; side++) {
        uint64_t v = LD(m->closes[c][side]);
        codes[c] += v;
        closes += v;
      }
    for (int r = 0; r < MET_REJ_N; r++)
      rejects[r] += LD(m->rejects[r]);
    for (int r = 0; r < MET_RL_N; r++)
      limited[r] += LD(m->rate_limited[r]);
    for (int k = 0; k < TR_KINDS; k++) {
      tr_open[k] += LD(m->n[MET_TR_OPEN_WS + k]);
      tr_closed[k] += LD(m->n[MET_TR_CLOSE_WS + k]);
    }
    if (m->idx >= 0) {
      char num[40];
      snprintf(num, sizeof num, "%s%.3f", firstlag ? "" : ",", ms(LD(m->lag_max_us)));
      jw_lit(&b, num);
      firstlag = 0;
    }
#undef LD
  }
  uint64_t ws = 0, tcp = 0;
  a->env.gauges(a->env.arg, &ws, &tcp);
  jw_lit(&b, "],\"t\":");
  jw_u64(&b, hf_wall_ms());
  jw_lit(&b, ",\"node\":");
  safe_str(&b, a->env.node_name);
  jw_lit(&b, ",\"connections\":");
  jw_u64(&b, ws);
  jw_lit(&b, ",\"tcp_connections\":");
  jw_u64(&b, tcp);
  jw_lit(&b, ",\"clients\":");
  jw_u64(&b, clients);
  jw_lit(&b, ",\"upgrades_total\":");
  jw_u64(&b, upgrades);
  jw_lit(&b, ",\"closes_total\":");
  jw_u64(&b, closes);
  jw_lit(&b, ",\"close_codes\":{");
  int first = 1;
  for (int c = 0; c < MET_CODES; c++)
    if (codes[c]) {
      unsigned code = met_code_of(c);
      char k[48];
      snprintf(k, sizeof k, "%s\"%s\":", first ? "" : ",",
               code == 4000 ? "4xxx" : code == 0 ? "other" : "");
      if (code && code != 4000)
        snprintf(k, sizeof k, "%s\"%u\":", first ? "" : ",", code);
      jw_lit(&b, k);
      jw_u64(&b, codes[c]);
      first = 0;
    }
  /* the transport mix: open sessions by transport (a rising fallback share
   * means something between clients and holdfast blocks WebSocket) */
  jw_lit(&b, "},\"transports\":{");
  for (int k = 0; k < TR_KINDS; k++) {
    if (k)
      jw_char(&b, ',');
    jw_cstr(&b, tr_name((tr_kind)k));
    jw_char(&b, ':');
    jw_u64(&b, tr_open[k] > tr_closed[k] ? tr_open[k] - tr_closed[k] : 0);
  }
  jw_lit(&b, "},\"rejections\":{");
  first = 1;
  for (int r = 0; r < MET_REJ_N; r++)
    if (rejects[r]) {
      if (!first)
        jw_char(&b, ',');
      jw_cstr(&b, met_reject_name((met_reject)r));
      jw_char(&b, ':');
      jw_u64(&b, rejects[r]);
      first = 0;
    }
  jw_lit(&b, "},\"rate_limited\":{");
  first = 1;
  for (int r = 0; r < MET_RL_N; r++)
    if (limited[r]) {
      if (!first)
        jw_char(&b, ',');
      jw_cstr(&b, met_ratelimit_name((met_ratelimit)r));
      jw_char(&b, ':');
      jw_u64(&b, limited[r]);
      first = 0;
    }
  jw_lit(&b, "},\"slow\":{\"disconnected_total\":");
  jw_u64(&b, slow_disc);
  jw_lit(&b, ",\"recovered_total\":");
  jw_u64(&b, slow_rec);
  jw_lit(&b, ",\"over_limit_now\":");
  jw_u64(&b, slow_now);
  jw_lit(&b, ",\"largest_queues\":[");
  for (size_t i = 0; i < nslow; i++) {
    if (i)
      jw_char(&b, ',');
    jw_lit(&b, "{\"id\":");
    jw_cstr(&b, slow[i].id);
    jw_lit(&b, ",\"user\":");
    safe_str(&b, slow[i].user);
    jw_lit(&b, ",\"queue_bytes\":");
    jw_u64(&b, slow[i].queued);
    jw_char(&b, '}');
  }
  char rtt[96];
  snprintf(rtt, sizeof rtt, "]},\"rtt_ms\":{\"avg\":%.3f,\"max\":%.3f,\"n\":%llu}",
           rtt_n ? ms(rtt_sum / rtt_n) : 0.0, ms(rtt_max), (unsigned long long)rtt_n);
  jw_lit(&b, rtt);
  jw_lit(&b, ",\"top_subscribers\":");
  write_top(&b, msubs, nms, 0);
  jw_lit(&b, ",\"top_publications\":");
  write_top(&b, mrate, nmr, 1);
  jw_char(&b, '}');
  /* from the end: a send over the queue limit may end a dashboard */
  if (jw_ok(&b))
    for (size_t i = L->ndash; i > 0; i--)
      if (i <= L->ndash)
        hf_conn_send(L->dash[i - 1], HF_OP_TEXT, (const uint8_t *)b.p, b.len);
  jw_free(&b);
}
