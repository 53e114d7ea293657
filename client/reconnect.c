/* SPDX-License-Identifier: MIT */
/* The client's connection state machine and reconnection policy: the
 * reaction table (close codes, HTTP statuses, failures), full-jitter
 * exponential backoff, Retry-After and attempt counting. No clock and no
 * randomness of its own, so tests drive it with fake ones. */
#include "hf/reconnect.h"

#include <math.h>
#include <string.h>

#include "hf/err.h"

/* A server asking for more than this in Retry-After is capped: a client
 * that waits longer is indistinguishable from a stopped one. */
#define RETRY_AFTER_CAP_MS 3600000u

void hf_reconnect_config_init(hf_reconnect_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->enabled = 1;
  cfg->min_ms = 500;
  cfg->max_ms = 20000;
  cfg->factor = 2.0;
  cfg->max_attempts = 0;
  cfg->healthy_ms = 10000;
}

void hf_reconnect_init(hf_reconnect *r, const hf_reconnect_config *cfg) {
  memset(r, 0, sizeof *r);
  r->cfg = *cfg;
  if (r->cfg.min_ms == 0)
    r->cfg.min_ms = 1;
  if (r->cfg.max_ms < r->cfg.min_ms)
    r->cfg.max_ms = r->cfg.min_ms;
  if (!(r->cfg.factor >= 1.0))
    r->cfg.factor = 1.0;
  r->state = HF_CLIENT_STOPPED;
}

int hf_reconnect_connect(hf_reconnect *r) {
  if (r->state == HF_CLIENT_STOPPED)
    r->attempts = 0;
  else if (r->state != HF_CLIENT_WAITING)
    return HF_EINVAL;
  r->state = HF_CLIENT_CONNECTING;
  return 0;
}

int hf_reconnect_opened(hf_reconnect *r, uint64_t now) {
  if (r->state != HF_CLIENT_CONNECTING)
    return HF_EINVAL;
  r->state = HF_CLIENT_OPEN;
  r->opened_at = now;
  return 0;
}

int hf_reconnect_closing(hf_reconnect *r) {
  if (r->state != HF_CLIENT_OPEN)
    return HF_EINVAL;
  r->state = HF_CLIENT_CLOSING;
  return 0;
}

void hf_reconnect_stop(hf_reconnect *r) { r->state = HF_CLIENT_STOPPED; }

int hf_reconnect_due(const hf_reconnect *r, uint64_t now) {
  return r->state == HF_CLIENT_WAITING && now >= r->due;
}

static hf_rc_action close_code_action(const hf_reconnect_config *cfg, int code) {
  switch (code) {
  case 1000: /* the server meant it */
    return HF_RC_STOP;
  case 1001: /* going away: restarting, draining */
  case 1005: /* closed without saying why */
  case 1006:
  case 1011:
  case 1012:
  case 1013:
  case 1014:
    return HF_RC_BACKOFF;
  case 1002: /* the same bytes would be refused again */
  case 1003:
  case 1007:
  case 1008:
  case 1009:
  case 1010:
  case 1015:
    return HF_RC_STOP;
  case 3005: /* connection expired: new credentials, then reconnect */
    return cfg->can_refresh ? HF_RC_REFRESH : HF_RC_BACKOFF;
  default:
    break;
  }
  if ((code >= 3500 && code <= 3999) || (code >= 4500 && code <= 4999))
    return HF_RC_STOP;
  return HF_RC_BACKOFF; /* 3000-3499, 4000-4499, and unknown codes */
}

static hf_rc_action status_action(const hf_reconnect_config *cfg, int st) {
  if (st == 401)
    return cfg->can_refresh ? HF_RC_REFRESH : HF_RC_STOP;
  if (st == 408 || st == 429 || st >= 500)
    return HF_RC_BACKOFF;
  return HF_RC_STOP;
}

hf_rc_action hf_reconnect_classify(const hf_reconnect_config *cfg,
                                   hf_cause cause, int code) {
  switch (cause) {
  case HF_CAUSE_CLOSE_FRAME:
    return close_code_action(cfg, code);
  case HF_CAUSE_HTTP:
    return status_action(cfg, code);
  case HF_CAUSE_ABNORMAL:
  case HF_CAUSE_HEARTBEAT:
  case HF_CAUSE_DNS:
  case HF_CAUSE_TCP:
  case HF_CAUSE_TLS:
  case HF_CAUSE_TIMEOUT:
    return HF_RC_BACKOFF;
  case HF_CAUSE_NONE:
  case HF_CAUSE_USER:
  case HF_CAUSE_PROTOCOL:
  case HF_CAUSE_TLS_CERT:
  case HF_CAUSE_HANDSHAKE:
    break;
  }
  return HF_RC_STOP;
}

uint64_t hf_reconnect_backoff(const hf_reconnect_config *cfg, uint32_t n,
                              uint32_t rnd) {
  double lo = cfg->min_ms, hi = cfg->max_ms < cfg->min_ms ? lo : cfg->max_ms;
  double f = cfg->factor >= 1.0 ? cfg->factor : 1.0;
  /* the ceiling grows as min * factor^n until it reaches max; pow is
   * bounded by capping the exponent where it can no longer matter */
  double ceil_ = lo * pow(f, n > 64 ? 64 : n);
  if (!(ceil_ <= hi))
    ceil_ = hi;
  double d = lo + ((double)rnd / 4294967296.0) * ceil_;
  if (d > hi)
    d = hi;
  return (uint64_t)d;
}

hf_reconnect_decision hf_reconnect_ended(hf_reconnect *r, uint64_t now,
                                         hf_cause cause, int code,
                                         int64_t retry_after_ms, uint32_t rnd) {
  hf_reconnect_decision d;
  memset(&d, 0, sizeof d);
  d.action = hf_reconnect_classify(&r->cfg, cause, code);
  d.to = HF_CLIENT_STOPPED;

  int was_connected = r->state == HF_CLIENT_OPEN || r->state == HF_CLIENT_CLOSING;
  if (was_connected && now - r->opened_at >= r->cfg.healthy_ms)
    r->attempts = 0; /* it was healthy: start the backoff over */

  if (cause == HF_CAUSE_USER) {
    d.why = "closed by the application";
  } else if (d.action == HF_RC_STOP) {
    d.why = cause == HF_CAUSE_CLOSE_FRAME ? "the close code says not to reconnect"
            : cause == HF_CAUSE_HTTP      ? "the HTTP status says not to reconnect"
                                          : "not a failure that retrying can fix";
  } else if (!r->cfg.enabled) {
    d.why = "reconnection is disabled";
  } else if (r->cfg.max_attempts && r->attempts >= r->cfg.max_attempts) {
    d.why = "gave up: maximum reconnect attempts reached";
  } else {
    d.delay_ms = hf_reconnect_backoff(&r->cfg, r->attempts, rnd);
    d.why = d.action == HF_RC_REFRESH ? "refresh credentials, then reconnect"
                                      : "backoff";
    if (retry_after_ms >= 0) {
      uint64_t ra = (uint64_t)retry_after_ms;
      if (ra > RETRY_AFTER_CAP_MS)
        ra = RETRY_AFTER_CAP_MS;
      /* at least Retry-After, spread over one minimum delay so that the
       * clients refused together do not come back together */
      ra += (uint64_t)(((double)rnd / 4294967296.0) * r->cfg.min_ms);
      if (ra > d.delay_ms) {
        d.delay_ms = ra;
        d.why = "the server's Retry-After";
      }
    }
    r->attempts++;
    d.attempt = r->attempts;
    d.to = HF_CLIENT_WAITING;
    r->due = now + d.delay_ms;
  }
  r->state = d.to;
  return d;
}

const char *hf_client_state_name(hf_client_state s) {
  switch (s) {
  case HF_CLIENT_STOPPED: return "stopped";
  case HF_CLIENT_CONNECTING: return "connecting";
  case HF_CLIENT_OPEN: return "open";
  case HF_CLIENT_CLOSING: return "closing";
  case HF_CLIENT_WAITING: return "waiting";
  }
  return "unknown";
}

const char *hf_cause_name(hf_cause c) {
  switch (c) {
  case HF_CAUSE_NONE: return "none";
  case HF_CAUSE_USER: return "user";
  case HF_CAUSE_CLOSE_FRAME: return "close_frame";
  case HF_CAUSE_PROTOCOL: return "protocol";
  case HF_CAUSE_ABNORMAL: return "abnormal";
  case HF_CAUSE_HEARTBEAT: return "heartbeat";
  case HF_CAUSE_DNS: return "dns";
  case HF_CAUSE_TCP: return "tcp";
  case HF_CAUSE_TLS: return "tls";
  case HF_CAUSE_TLS_CERT: return "tls_cert";
  case HF_CAUSE_HTTP: return "http";
  case HF_CAUSE_HANDSHAKE: return "handshake";
  case HF_CAUSE_TIMEOUT: return "timeout";
  }
  return "unknown";
}
