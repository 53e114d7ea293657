/* SPDX-License-Identifier: MIT */
/* Memory per SDK connection (docs/sdk.md): N clients in this process, each
 * connected with one subscription, driven by one epoll set; prints the
 * resident-set growth divided by N once every subscription is subscribed.
 *
 *   sdk_memory URL CHANNEL-PREFIX N TOKEN
 *
 * Output: one line "sdk_memory clients=N rss_before_kib=A rss_after_kib=B
 * per_client_bytes=C". Exit 1 if they were not all subscribed within 60 s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
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

static int subscribed;

static void on_event(hfs_client *c, const hfs_event *ev, void *user) {
  if (ev->type == HFS_EV_SUBSCRIBED && ev->sub)
    subscribed++;
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
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (!cs || ep < 0)
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
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = cs[i]};
    epoll_ctl(ep, EPOLL_CTL_ADD, hfs_client_fd(cs[i]), &ev);
    hfs_client_connect(cs[i]);
  }
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (subscribed < n) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (t.tv_sec - t0.tv_sec > 60) {
      fprintf(stderr, "only %d of %d subscribed\n", subscribed, n);
      return 1;
    }
    struct epoll_event evs[64];
    int k = epoll_wait(ep, evs, 64, 50);
    for (int i = 0; i < k; i++)
      hfs_client_process(evs[i].data.ptr);
    for (int i = 0; i < n && k == 0; i++) /* timers (connect attempts) */
      hfs_client_process(cs[i]);
  }
  long after = rss_kib();
  printf("sdk_memory clients=%d rss_before_kib=%ld rss_after_kib=%ld per_client_bytes=%ld\n", n,
         before, after, (after - before) * 1024 / n);
  for (int i = 0; i < n; i++)
    hfs_client_free(cs[i]);
  free(cs);
  close(ep);
  return 0;
}
