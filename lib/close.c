/* SPDX-License-Identifier: MIT */
/* Close-code rules (RFC 6455 7.4) and the default reason texts. */
#include "hf/close.h"

int hf_close_code_valid(unsigned code) {
  if (code >= 1000 && code <= 1003)
    return 1;
  if (code >= 1007 && code <= 1014)
    return 1;
  return code >= 3000 && code <= 4999;
}

const char *hf_close_reason(unsigned code) {
  switch (code) {
  case HF_CLOSE_NORMAL: return "normal closure";
  case HF_CLOSE_GOING_AWAY: return "server shutting down";
  case HF_CLOSE_PROTOCOL_ERROR: return "protocol error";
  case HF_CLOSE_UNSUPPORTED_DATA: return "unsupported data";
  case HF_CLOSE_INVALID_PAYLOAD: return "invalid payload";
  case HF_CLOSE_POLICY: return "policy violation";
  case HF_CLOSE_TOO_BIG: return "message too big";
  case HF_CLOSE_INTERNAL: return "internal error";
  case HF_CLOSE_SHUTDOWN: return "shutdown";
  case HF_CLOSE_SERVER_ERROR: return "internal server error";
  case HF_CLOSE_SLOW: return "slow";
  case HF_CLOSE_WRITE_ERROR: return "write error";
  case HF_CLOSE_NO_PONG: return "no pong";
  case HF_CLOSE_TOO_MANY_REQUESTS: return "too many requests";
  case HF_CLOSE_BAD_REQUEST: return "bad request";
  default: return "closed";
  }
}
