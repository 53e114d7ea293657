/* SPDX-License-Identifier: MIT */
/* After a SIGHUP reload, the connections and subscriptions of one worker
 * are checked against the policy now in force (cl_policy_get): what it no
 * longer allows ends with the protocol's codes (unsubscribe 2000, close
 * 3501). Runs on the worker's own loop (server.c posts it to its inbox). */
#include "protocol/client_impl.h"
#include "metrics/metrics.h"

#include <string.h>

/* Does the policy p still allow subscription s of cl? Returns NULL, or
 * the reason it does not. */
static const char *sub_refused(const cl_client *cl, const cl_sub *s, const cl_policy *p) {
  size_t len;
  const char *ch = hub_chan_name(s->hs.ch, &len);
  const chan_ns *ns;
  if (chan_resolve(p->chans, ch, len, &ns) != CHAN_OK)
    return "unknown channel"; /* namespace removed, or the name is no longer valid */
  if (!cl__sub_has(s, CLS_GRANTED) && chan_can_subscribe(p->chans, ns, ch, len, cl->user) != CHAN_OK)
    return "permission denied"; /* the client-side permission was revoked */
  return NULL;
}

static void log_action(cl_client *cl, const char *what, const char *ch, size_t len,
                       const char *why) {
  if (!srv_log_enabled(LOG_DEBUG))
    return;
  srv_logline l;
  cl__log_begin(cl, LOG_DEBUG, what, &l);
  if (ch)
    srv_log_strn(&l, "channel", ch, len);
  srv_log_str(&l, "reason", why);
  srv_log_end(&l);
}

/* One client: 1 if it was closed. */
static int recheck_client(cl_client *cl, const cl_policy *p, cl_recheck_counts *n) {
  if (cl->state != CS_CONNECTED)
    return 0; /* a connect still to come is checked with the new policy */
  if (cl->anonymous && !p->allow_anonymous && !p->insecure) {
    log_action(cl, "reload_disconnect", NULL, 0, "anonymous connections are no longer allowed");
    cl_disconnect(cl, 3501, "bad request: client credentials not found");
    MET_INC(MET_RELOAD_DISCONNECTED);
    n->conns_closed++;
    return 1;
  }
  for (uint32_t i = cl->nsubs; i-- > 0 && cl->state == CS_CONNECTED;) {
    if (i >= cl->nsubs)
      continue; /* an earlier removal shrank the list */
    cl_sub *s = cl__subs(cl)[i];
    if (cl__sub_op(s))
      continue; /* still being established: its reply has not left yet */
    const char *why = sub_refused(cl, s, p);
    if (!why)
      continue;
    size_t len;
    const char *ch = hub_chan_name(s->hs.ch, &len);
    log_action(cl, "reload_unsubscribe", ch, len, why);
    cl__unsubscribe_push(cl, s, 2000, why);
    MET_INC(MET_RELOAD_UNSUBSCRIBED);
    n->subs_removed++;
  }
  return 0;
}

void cl_list_recheck(cl_list *l, const cl_config *cfg, cl_recheck_counts *n) {
  const cl_policy *p = cl_policy_get(cfg);
  for (cl_client *cl = cl_list_first(l), *next; cl; cl = next) {
    next = cl_next(cl); /* before a close, which may free cl */
    n->checked++;
    recheck_client(cl, p, n);
  }
}
