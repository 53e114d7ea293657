/* SPDX-License-Identifier: MIT */
/* Memory per SDK connection (docs/sdk.md): N clients in this process, each
 * connected with one subscription, all attached to one hf_loop
 * (hfs_client_attach); prints the resident-set growth divided by N once
 * every subscription is subscribed.
 *
 *   sdk_memory URL CHANNEL-PREFIX N TOKEN
 *
 * Output: one line "sdk_memory clients=N rss_before_kib=A rss_after_kib=B
 * per_client_bytes=C". Exit 1 if they were not all subscribed within 60 s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf/sdk.h"

static long rss_kib(void) {
  long pages = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f)
    return 0;
  if (fscanf(f, "%ld %ld", &pages, &res) != 2)
    res = 0;
  fclose(f);
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static int subscribed, want, timed_out;
static hf_loop *loop;

static void on_event(hfs_client *c, const hfs_event *ev, void *user) {
  if (ev->type == HFS_EV_SUBSCRIBED && ev->sub && ++subscribed == want)
    hf_loop_stop(loop);
}

static void on_deadline(hf_loop *l, hf_timer *t) {
  timed_out = 1;
  hf_loop_stop(l);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s URL CHANNEL-PREFIX N TOKEN\n", argv[0]);
    return 2;
  }
  int n = atoi(argv[3]);
  if (n <= 0 || n > 100000)
    return 2;
  hfs_client **cs = calloc((size_t)n, sizeof *cs);
  want = n;
  loop = hf_loop_new(10, 65536);
  if (!cs || !loop)
    return 2;
  long before = rss_kib();
  for (int i = 0; i < n; i++) {
    hfs_config cfg;
    hfs_config_init(&cfg);
    cfg.url = argv[1];
    cfg.token = argv[4];
    cfg.on_event = on_event;
    char err[256], ch[256];
    if (!(cs[i] = hfs_client_new(&cfg, err, sizeof err))) {
      fprintf(stderr, "%s\n", err);
      return 2;
    }
    snprintf(ch, sizeof ch, "%s%d", argv[2], i);
    hfs_sub_config sc = {0};
    sc.channel = ch;
    sc.recoverable = 1;
    hfs_sub *s = hfs_sub_new(cs[i], &sc, err, sizeof err);
    if (!s)
      return 2;
    hfs_sub_subscribe(s);
    if (hfs_client_attach(cs[i], loop) < 0)
      return 2;
    hfs_client_connect(cs[i]);
  }
  hf_timer deadline = {.cb = on_deadline};
  hf_timer_set(loop, &deadline, 60000);
  hf_loop_run(loop);
  hf_timer_cancel(loop, &deadline);
  if (timed_out) {
    fprintf(stderr, "only %d of %d subscribed\n", subscribed, n);
    return 1;
  }
  long after = rss_kib();
  printf("sdk_memory clients=%d rss_before_kib=%ld rss_after_kib=%ld per_client_bytes=%ld\n", n,
         before, after, (after - before) * 1024 / n);
  for (int i = 0; i < n; i++)
    hfs_client_free(cs[i]);
  free(cs);
  hf_loop_free(loop);
  return 0;
}
