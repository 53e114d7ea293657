/* SPDX-License-Identifier: MIT */
/* The event loop: epoll (level-triggered), a hashed timer wheel with coarse
 * ticks, deferred end-of-iteration callbacks and a lock-free inbox (a Treiber
 * stack taken whole and reversed, woken through an eventfd). */
#include "hf/loop.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define WHEEL_SLOTS 512 /* power of two */
#define MAX_EVENTS 512
#define MAX_EVENTS_BUDGETED 128 /* with a bulk budget: a shorter batch, so that
                                   one batch of urgent events is short too */

struct hf_loop {
  int epfd;
  int stop;
  unsigned tick_ms;
  uint64_t now;      /* cached ms */
  uint64_t tick;     /* last processed tick number */
  size_t armed;      /* timers in the wheel */
  hf_timer wheel[WHEEL_SLOTS]; /* list heads (sentinels) */
  hf_deferred *deferred;
  hf_deferred *next_iter; /* hf_loop_defer_next: run after the next poll */
  hf_io wake;        /* eventfd */
  hf_msg *_Atomic inbox;
  uint8_t *rbuf;
  size_t rbuf_size;
  void *data;
  /* bulk budget (hf_io.bulk) */
  uint64_t bulk_budget_ns; /* 0: none */
  uint64_t bulk_t0;        /* when this iteration's bulk pass began (ns) */
  int in_bulk;             /* inside the bulk pass */
  hf_io *park_head, *park_tail;
};

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t clock_ms(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

uint64_t hf_wall_ms(void) { return clock_ms(CLOCK_REALTIME); }

/* Take the whole inbox, in posting order (the stack is LIFO: reversed). */
static hf_msg *take_inbox(hf_loop *loop) {
  hf_msg *m = atomic_exchange(&loop->inbox, NULL);
  hf_msg *rev = NULL;
  while (m) {
    hf_msg *n = atomic_load_explicit(&m->_next, memory_order_relaxed);
    atomic_store_explicit(&m->_next, rev, memory_order_relaxed);
    rev = m;
    m = n;
  }
  return rev;
}

static void drain_inbox(hf_loop *loop, hf_io *io, uint32_t revents) {
  uint64_t v;
  while (read(io->fd, &v, sizeof v) > 0) {
  }
  for (hf_msg *m = take_inbox(loop); m;) {
    hf_msg *n = atomic_load_explicit(&m->_next, memory_order_relaxed);
    m->run(loop, m);
    m = n;
  }
}

hf_loop *hf_loop_new(unsigned tick_ms, size_t rbuf_size) {
  hf_loop *loop = calloc(1, sizeof *loop);
  if (!loop)
    return NULL;
  loop->epfd = -1;
  loop->wake.fd = -1;
  loop->tick_ms = tick_ms ? tick_ms : 100;
  loop->rbuf_size = rbuf_size;
  loop->rbuf = malloc(rbuf_size + 64); /* slack for word-wide tail loops */
  if (!loop->rbuf)
    goto fail;
  /* fault the pages in now: a fixed per-loop cost, paid at start-up rather
   * than by whichever connection first needs a large read */
  memset(loop->rbuf, 0, rbuf_size + 64);
  loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (loop->epfd < 0)
    goto fail;
  loop->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (loop->wake.fd < 0)
    goto fail;
  loop->wake.cb = drain_inbox;
  if (hf_loop_add(loop, &loop->wake, EPOLLIN) < 0)
    goto fail;
  for (int i = 0; i < WHEEL_SLOTS; i++)
    loop->wheel[i]._next = loop->wheel[i]._prev = &loop->wheel[i];
  loop->now = mono_ms();
  loop->tick = loop->now / loop->tick_ms;
  return loop;
fail:
  hf_loop_free(loop);
  return NULL;
}

void hf_loop_free(hf_loop *loop) {
  if (!loop)
    return;
  for (hf_msg *m = take_inbox(loop); m;) { /* posted, never run */
    hf_msg *n = atomic_load_explicit(&m->_next, memory_order_relaxed);
    if (m->drop)
      m->drop(m);
    m = n;
  }
  if (loop->wake.fd >= 0)
    close(loop->wake.fd);
  if (loop->epfd >= 0)
    close(loop->epfd);
  free(loop->rbuf);
  free(loop);
}

int hf_loop_add(hf_loop *loop, hf_io *io, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = io};
  io->_parked = 0;
  io->_pnext = io->_pprev = NULL;
  if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0)
    return -errno;
  io->events = events;
  return 0;
}

/* Take io out of epoll until unpark (its events wait in io->_revents). */
static void park(hf_loop *loop, hf_io *io, uint32_t revents) {
  if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0) {
    io->cb(loop, io, revents); /* cannot park it: serve it now */
    return;
  }
  io->_parked = 1;
  io->_revents = revents;
  io->_pnext = NULL;
  io->_pprev = loop->park_tail;
  if (loop->park_tail)
    loop->park_tail->_pnext = io;
  else
    loop->park_head = io;
  loop->park_tail = io;
}

static void unlink_parked(hf_loop *loop, hf_io *io) {
  if (io->_pprev)
    io->_pprev->_pnext = io->_pnext;
  else
    loop->park_head = io->_pnext;
  if (io->_pnext)
    io->_pnext->_pprev = io->_pprev;
  else
    loop->park_tail = io->_pprev;
  io->_pnext = io->_pprev = NULL;
  io->_parked = 0;
}

/* Back into epoll with its current events; 0 or -errno. */
static int unpark(hf_loop *loop, hf_io *io) {
  unlink_parked(loop, io);
  struct epoll_event ev = {.events = io->events, .data.ptr = io};
  return epoll_ctl(loop->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0 ? -errno : 0;
}

void hf_loop_set_bulk_budget(hf_loop *loop, unsigned budget_us) {
  loop->bulk_budget_ns = (uint64_t)budget_us * 1000u;
}

int hf_loop_bulk_over(hf_loop *loop) {
  return loop->in_bulk && mono_ns() - loop->bulk_t0 >= loop->bulk_budget_ns;
}

int hf_loop_mod(hf_loop *loop, hf_io *io, uint32_t events) {
  if (io->events == events)
    return 0;
  if (io->_parked) { /* registered again when it is unparked */
    io->events = events;
    return 0;
  }
  struct epoll_event ev = {.events = events, .data.ptr = io};
  if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
    return -errno;
  io->events = events;
  return 0;
}

int hf_loop_del(hf_loop *loop, hf_io *io) {
  if (io->_parked) { /* not in epoll */
    unlink_parked(loop, io);
    io->events = 0;
    return 0;
  }
  if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0)
    return -errno;
  io->events = 0;
  return 0;
}

uint64_t hf_loop_now(const hf_loop *loop) { return loop->now; }

static void timer_link(hf_loop *loop, hf_timer *t) {
  uint64_t tk = (t->due_ms + loop->tick_ms - 1) / loop->tick_ms;
  if (tk <= loop->tick)
    tk = loop->tick + 1;
  hf_timer *head = &loop->wheel[tk & (WHEEL_SLOTS - 1)];
  t->_next = head->_next;
  t->_prev = head;
  head->_next->_prev = t;
  head->_next = t;
}

void hf_timer_set(hf_loop *loop, hf_timer *t, uint64_t delay_ms) {
  if (t->_prev)
    hf_timer_cancel(loop, t);
  loop->armed++;
  t->due_ms = loop->now + delay_ms;
  timer_link(loop, t);
}

void hf_timer_cancel(hf_loop *loop, hf_timer *t) {
  if (!t->_prev)
    return;
  t->_prev->_next = t->_next;
  t->_next->_prev = t->_prev;
  t->_next = t->_prev = NULL;
  loop->armed--;
}

static void run_timers(hf_loop *loop) {
  uint64_t target = loop->now / loop->tick_ms;
  /* After a long stall, one lap of the wheel visits every slot. */
  if (target - loop->tick > WHEEL_SLOTS)
    loop->tick = target - WHEEL_SLOTS;
  while (loop->tick < target) {
    loop->tick++;
    hf_timer *slot = &loop->wheel[loop->tick & (WHEEL_SLOTS - 1)];
    if (slot->_next == slot)
      continue;
    /* Move the slot's timers to a local list so callbacks may set or
     * cancel any timer (including ones still waiting here) safely, and a
     * timer re-armed a full lap ahead is not seen twice. */
    hf_timer local;
    local._next = slot->_next;
    local._prev = slot->_prev;
    local._next->_prev = &local;
    local._prev->_next = &local;
    slot->_next = slot->_prev = slot;
    while (local._next != &local) {
      hf_timer *t = local._next;
      t->_prev->_next = t->_next;
      t->_next->_prev = t->_prev;
      if (t->due_ms <= loop->now) {
        t->_next = t->_prev = NULL;
        loop->armed--;
        t->cb(loop, t);
      } else {
        timer_link(loop, t); /* due in a later lap */
      }
    }
  }
}

/* Put d on the list at *head unless it is on one already. */
static void queue_on(hf_deferred **head, hf_deferred *d) {
  if (d->_queued)
    return;
  d->_queued = 1;
  d->_next = *head;
  *head = d;
}

void hf_loop_defer(hf_loop *loop, hf_deferred *d) { queue_on(&loop->deferred, d); }

void hf_loop_defer_next(hf_loop *loop, hf_deferred *d) { queue_on(&loop->next_iter, d); }

/* The nodes put off to this iteration join its deferred work. */
static void take_next_iter(hf_loop *loop) {
  while (loop->next_iter) {
    hf_deferred *d = loop->next_iter;
    loop->next_iter = d->_next;
    d->_next = loop->deferred;
    loop->deferred = d;
  }
}

static void run_deferred(hf_loop *loop) {
  while (loop->deferred) {
    hf_deferred *d = loop->deferred;
    loop->deferred = d->_next;
    d->_queued = 0;
    d->cb(loop, d);
  }
}

void hf_loop_post(hf_loop *loop, hf_msg *m) {
  hf_msg *old = atomic_load_explicit(&loop->inbox, memory_order_relaxed);
  do {
    atomic_store_explicit(&m->_next, old, memory_order_relaxed);
  } while (!atomic_compare_exchange_weak_explicit(
      &loop->inbox, &old, m, memory_order_release, memory_order_relaxed));
  if (!old) {
    uint64_t one = 1;
    ssize_t r = write(loop->wake.fd, &one, sizeof one);
    (void)r; /* EAGAIN means a wake-up is already pending */
  }
}

/* The bulk pass of one iteration: parked ios first (oldest work first),
 * then this batch's bulk events evs[0..n), while the budget lasts; the rest
 * are parked. At least one is served per iteration. */
static void run_bulk(hf_loop *loop, struct epoll_event *evs, int n) {
  loop->in_bulk = 1;
  loop->bulk_t0 = mono_ns();
  int served = 0;
  while (loop->park_head) {
    if (served && mono_ns() - loop->bulk_t0 >= loop->bulk_budget_ns)
      break;
    hf_io *io = loop->park_head;
    uint32_t e = io->_revents;
    if (unpark(loop, io) < 0)
      e |= EPOLLERR; /* the callback finds out what is wrong */
    io->cb(loop, io, e);
    served++;
  }
  for (int i = 0; i < n; i++) {
    hf_io *io = evs[i].data.ptr;
    if (io->_parked) { /* parked earlier in this pass */
      io->_revents |= evs[i].events;
      continue;
    }
    if (served && mono_ns() - loop->bulk_t0 >= loop->bulk_budget_ns) {
      park(loop, io, evs[i].events);
      continue;
    }
    io->cb(loop, io, evs[i].events);
    served++;
  }
  loop->in_bulk = 0;
}

int hf_loop_run(hf_loop *loop) {
  struct epoll_event evs[MAX_EVENTS];
  while (!loop->stop) {
    int timeout = loop->deferred || loop->next_iter || loop->park_head
                      ? 0
                      : (loop->armed ? (int)loop->tick_ms : -1);
    int budgeted = loop->bulk_budget_ns != 0;
    int n = epoll_wait(loop->epfd, evs, budgeted ? MAX_EVENTS_BUDGETED : MAX_EVENTS, timeout);
    loop->now = mono_ms();
    int nbulk = 0;
    for (int i = 0; i < n; i++) {
      hf_io *io = evs[i].data.ptr;
      if (budgeted &&
          (io->bulk || (evs[i].events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)))) {
        evs[nbulk++] = evs[i]; /* nbulk <= i: entries not read yet stay */
        continue;
      }
      io->cb(loop, io, evs[i].events);
    }
    if (nbulk || loop->park_head)
      run_bulk(loop, evs, nbulk);
    take_next_iter(loop);
    run_deferred(loop);
    run_timers(loop);
    run_deferred(loop);
  }
  return 0;
}

void hf_loop_stop(hf_loop *loop) { loop->stop = 1; }

uint8_t *hf_loop_rbuf(hf_loop *loop, size_t *cap) {
  *cap = loop->rbuf_size;
  return loop->rbuf;
}

void hf_loop_set_data(hf_loop *loop, void *data) { loop->data = data; }
void *hf_loop_data(const hf_loop *loop) { return loop->data; }
