/* SPDX-License-Identifier: MIT */
/* Close-code rules (RFC 6455 7.4), the default reason texts and the
 * meaning of every code a client may meet. */
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

const char *hf_close_meaning(unsigned code) {
  switch (code) {
  case 1000: return "normal closure";
  case 1001: return "going away (server shutting down or restarting)";
  case 1002: return "protocol error";
  case 1003: return "unsupported data (a message type the endpoint refuses)";
  case 1005: return "no status code in the close frame";
  case 1006: return "abnormal closure: the connection ended without a close frame";
  case 1007: return "invalid payload (text that is not UTF-8)";
  case 1008: return "policy violation";
  case 1009: return "message too big";
  case 1010: return "a required extension was not negotiated";
  case 1011: return "internal server error";
  case 1012: return "service restart";
  case 1013: return "try again later (server overloaded)";
  case 1014: return "bad gateway (a proxy's upstream failed)";
  case 1015: return "TLS handshake failure";
  case 3000: return "connection closed";
  case 3001: return "shutdown (reconnect)";
  case 3004: return "internal server error (reconnect)";
  case 3005: return "connection expired: refresh the token (reconnect)";
  case 3006: return "subscription expired (reconnect)";
  case 3008: return "slow consumer: output queue limit exceeded (reconnect)";
  case 3009: return "write error (reconnect)";
  case 3010: return "insufficient state (reconnect and recover)";
  case 3011: return "force reconnect";
  case 3012: return "no pong: heartbeat timeout (reconnect)";
  case 3013: return "too many requests (reconnect)";
  case 3014: return "state invalidated (reconnect with a new token)";
  case 3500: return "invalid token (terminal)";
  case 3501: return "bad request (terminal)";
  case 3502: return "stale: no connect command in time (terminal)";
  case 3503: return "force disconnect (terminal)";
  case 3504: return "connection limit (terminal)";
  case 3505: return "channel limit (terminal)";
  case 3506: return "inappropriate protocol (terminal)";
  case 3507: return "permission denied (terminal)";
  case 3508: return "not available (terminal)";
  case 3509: return "too many errors (terminal)";
  default: break;
  }
  if (code >= 3000 && code <= 3499)
    return "library code, reconnect range";
  if (code >= 3500 && code <= 3999)
    return "library code, terminal range";
  if (code >= 4000 && code <= 4499)
    return "application code, reconnect range";
  if (code >= 4500 && code <= 4999)
    return "application code, terminal range";
  return "unknown code";
}
