/* SPDX-License-Identifier: MIT */
/* The engine's table of functions (see engine.h): each implementation
 * starts its own struct with `struct eng`. Only server/engine/ includes
 * this. */
#ifndef SRV_ENGINE_IMPL_H
#define SRV_ENGINE_IMPL_H

#include "engine/engine.h"

typedef struct {
  const char *name;
  int (*publish)(eng *e, hub_local *from, const hub_pub *p, eng_publish_cb cb, void *arg);
  int (*join_leave)(eng *e, hub_local *from, const char *ch, size_t len,
                    const char *info, size_t info_len, int leave);
  int (*read)(eng *e, hub_local *from, const char *ch, size_t len,
              const stream_opts *opts, const eng_read_req *rq, eng_read_cb cb, void *arg);
  int (*remove_history)(eng *e, hub_local *from, const char *ch, size_t len,
                        eng_done_cb cb, void *arg);
  int (*presence)(eng *e, hub_local *from, const char *ch, size_t len, int stats,
                  eng_fields_cb cb, void *arg);
  void (*presence_update)(eng *e, hub_local *from, const char *ch, size_t len,
                          const hub_sub *s, int add);
  int (*node_subscribe)(eng *e, hub_local *from, const char *ch, size_t len,
                        eng_done_cb ready, void *arg);
  void (*node_unsubscribe)(eng *e, hub_local *from, const char *ch, size_t len);
  int (*broadcast_ctl)(eng *e, hub_local *from, hub_ctl_fn fn, const void *arg,
                       size_t len);
  int (*nodes)(eng *e, hub_local *from, eng_json_cb cb, void *arg);
  int (*channels)(eng *e, hub_local *from, const char *pattern, eng_json_cb cb, void *arg);
  int (*healthy)(eng *e, char *why, size_t cap);
  void (*free)(eng *e);
} eng_ops;

struct eng {
  const eng_ops *ops;
  hub *h;
  eng_local local;
  char node[33]; /* random per process: this node's id */
};

/* Fill the common part (ops, hub, a fresh node id). */
void eng__init(eng *e, const eng_ops *ops, hub *h);

/* This node's contribution alone (the memory engine's whole answer). */
json_t *eng__local_nodes(eng *e);
json_t *eng__local_channels(eng *e, const char *pattern);

/* Encode one stored publication in the requested form (shared by the
 * engines' read results). Returns 1 if its data is binary (pdata.h: written
 * as "b64data"; add it to eng_read_result.binary), else 0. */
int eng__encode_pub(jw_buf *b, const stream_pub *p, eng_pubs_form form,
                     const char *ch, size_t len, int first);

#endif
