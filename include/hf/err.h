/* SPDX-License-Identifier: MIT */
/* holdfast error codes: every libhf function returns 0 (or a byte count) on
 * success and a negative HF_E* value on failure. One X-macro table generates
 * the enum, hf_strerror() and hf_err_name(). */
#ifndef HF_ERR_H
#define HF_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

#define HF_ERRNO_MAP(X)                                                        \
  X(AGAIN, 1, "need more input")                                             \
  X(NOMEM, 2, "out of memory")                                               \
  X(INVAL, 3, "invalid argument")                                            \
  X(PROTO, 4, "protocol violation")                                          \
  X(TOOBIG, 5, "size limit exceeded")                                        \
  X(UTF8, 6, "invalid UTF-8")                                                \
  X(CLOSED, 7, "connection closed")                                          \
  X(TIMEOUT, 8, "timed out")                                                 \
  X(LIMIT, 9, "limit reached")                                               \
  X(IO, 10, "I/O error")

typedef enum {
#define HF__ERR_ENUM(name, num, text) HF_E##name = -(num),
  HF_ERRNO_MAP(HF__ERR_ENUM)
#undef HF__ERR_ENUM
} hf_err_t;

/* Human-readable text for an HF_E* code ("unknown error" otherwise). */
const char *hf_strerror(int err);
/* The symbolic name, e.g. "HF_EPROTO". */
const char *hf_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif
