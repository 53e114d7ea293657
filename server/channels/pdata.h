/* SPDX-License-Identifier: MIT */
/* Publication data as holdfast carries it through streams, engines and the
 * hub: minified JSON text, or binary data (from a Protobuf client or the
 * server API's b64data) marked by a first byte no JSON text starts with,
 * followed by the bytes in base64. Keeping binary data as marked text lets
 * every layer (streams, Redis, proxies, idempotency) keep handling
 * payloads as NUL-free text; only the edges that write a payload look at
 * the mark. Pure: no I/O, no state; any thread. */
#ifndef SRV_PDATA_H
#define SRV_PDATA_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/jsonw.h"

/* The first byte of binary data; JSON text never starts with it. */
#define PD_BINARY_MARK '#'

/* Whether data[0..n) is marked binary data (else it is JSON text). */
static inline int pd_is_binary(const char *data, size_t n) {
  return n > 0 && data[0] == PD_BINARY_MARK;
}

/* Marked binary data (malloc'd, NUL-terminated) for the standard base64
 * text b64[0..n) (padded, as protobuf JSON and the server API use), or
 * NULL if it is not base64 (or empty, over 16 MiB, or out of memory). The
 * caller frees it. */
char *pd_from_b64(const char *b64, size_t n);

/* Marked binary data (malloc'd) for the raw bytes p[0..n), n > 0; NULL on
 * out of memory or n == 0. The caller frees it. */
char *pd_from_bytes(const uint8_t *p, size_t n);

/* The base64 text of marked binary data (a view into data; *n its
 * length). Only for pd_is_binary(data, len). */
static inline const char *pd_b64(const char *data, size_t len, size_t *n) {
  *n = len - 1;
  return data + 1;
}

/* Write the payload member of a JSON object: "data":<JSON text> for JSON
 * text (spliced as is, byte-identical to before), "b64data":"<base64>" for
 * binary data. Returns 1 when the data was binary, else 0. */
int pd_write_member(jw_buf *b, const char *data, size_t len);

#endif
