/* SPDX-License-Identifier: MIT */
/* Incremental UTF-8 validator (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF). The state survives across calls, so a text message can be
 * validated fragment by fragment and fail at the first invalid byte. */
#ifndef HF_UTF8_H
#define HF_UTF8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* State of a validation in progress. HF_UTF8_ACCEPT: at a code point
 * boundary. HF_UTF8_REJECT: invalid, sticky. Any other value: inside a
 * multi-byte sequence. Start with HF_UTF8_ACCEPT. */
typedef uint32_t hf_utf8_state;
#define HF_UTF8_ACCEPT 0u
#define HF_UTF8_REJECT 1u

/* Feed len bytes. Returns the new state; HF_UTF8_REJECT as soon as an invalid
 * byte is seen (the rest is not read). If err_off is not NULL and the result
 * is HF_UTF8_REJECT, *err_off gets the offset of the offending byte within
 * this call's input. Fast path for ASCII runs. Never fails otherwise. */
hf_utf8_state hf_utf8_feed(hf_utf8_state st, const uint8_t *p, size_t len,
                           size_t *err_off);

/* Convenience: 1 if p[0..len) is complete valid UTF-8, else 0. */
int hf_utf8_valid(const uint8_t *p, size_t len);

#ifdef __cplusplus
}
#endif
#endif
