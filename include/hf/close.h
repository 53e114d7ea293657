/* SPDX-License-Identifier: MIT */
/* Close codes: the RFC 6455 codes holdfast uses and its own application
 * codes, which follow the Centrifugo disconnect table (3000-3499 reconnect,
 * 3500-3999 terminal). docs/close-codes.md is the table for humans. */
#ifndef HF_CLOSE_H
#define HF_CLOSE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  HF_CLOSE_NORMAL = 1000,
  HF_CLOSE_GOING_AWAY = 1001,
  HF_CLOSE_PROTOCOL_ERROR = 1002,
  HF_CLOSE_UNSUPPORTED_DATA = 1003,
  HF_CLOSE_NO_STATUS = 1005,   /* never sent: "no code in the close frame" */
  HF_CLOSE_ABNORMAL = 1006,    /* never sent: "TCP dropped without close" */
  HF_CLOSE_INVALID_PAYLOAD = 1007,
  HF_CLOSE_POLICY = 1008,
  HF_CLOSE_TOO_BIG = 1009,
  HF_CLOSE_INTERNAL = 1011,
  HF_CLOSE_SHUTDOWN = 3001,      /* reconnect with backoff */
  HF_CLOSE_SERVER_ERROR = 3004,  /* reconnect */
  HF_CLOSE_SLOW = 3008,          /* output queue over limit; reconnect */
  HF_CLOSE_WRITE_ERROR = 3009,
  HF_CLOSE_NO_PONG = 3012,       /* heartbeat timeout; reconnect */
  HF_CLOSE_TOO_MANY_REQUESTS = 3013,
  HF_CLOSE_BAD_REQUEST = 3501    /* terminal */
};

/* 1 if code may legally appear in a received close frame (RFC 6455 7.4):
 * 1000-1003, 1007-1011 (and 1012-1014, registered by IANA), 3000-4999.
 * 0-999, 1004-1006, 1015, 1016-2999 and >= 5000 are invalid. */
int hf_close_code_valid(unsigned code);

/* Default plain-text reason for a code holdfast sends ("normal closure",
 * "shutdown", ...); a generic text for others. Never empty. */
const char *hf_close_reason(unsigned code);

/* What a received (or reported) close code means, for people: the RFC 6455
 * and IANA codes, the Centrifugo disconnect codes and, outside those, the
 * range ("application code, reconnect range"), e.g. 1001 -> "going away
 * (server shutting down or restarting)", 1006 -> "abnormal closure: the
 * connection ended without a close frame". Never NULL or empty. */
const char *hf_close_meaning(unsigned code);

#ifdef __cplusplus
}
#endif
#endif
