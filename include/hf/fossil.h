/* SPDX-License-Identifier: MIT */
/* Fossil delta format (the one the Centrifugo protocol uses for
 * `delta: "fossil"` subscriptions): an encoder that turns (source, target)
 * into a compact patch, and a strict decoder that applies one. Sans-I/O,
 * no allocation inside: callers pass output buffers.
 *
 * Format: "<target length>\n", then commands "<n>@<offset>," (copy n bytes
 * of the source from offset) and "<n>:<n bytes>" (insert literal bytes),
 * and a final "<checksum>;". Integers are base-64 with the digits
 * 0-9 A-Z _ a-z ~, most significant first.
 *
 * UTF-8: when both inputs are valid UTF-8, every literal the encoder emits
 * starts and ends on a character boundary, so the patch itself is valid
 * UTF-8 and can travel inside a JSON string (the JSON protocol sends the
 * patch as a string; the SDK re-encodes that string to bytes before
 * applying it, which is only lossless for valid UTF-8). */
#ifndef HF_FOSSIL_H
#define HF_FOSSIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Worst-case patch size for a target of tlen bytes (one insert of it all
 * plus the header and checksum). */
static inline size_t hf_fossil_bound(size_t tlen) { return tlen + 64; }

/* Encode the patch that turns src[0..slen) into tgt[0..tlen). out must hold
 * hf_fossil_bound(tlen) bytes. Returns the patch length. Deterministic. The
 * hash index of the source lives in caller-owned scratch memory of
 * hf_fossil_scratch(slen) bytes (4-byte aligned); with scratch NULL the
 * patch is one literal insert of the whole target. */
size_t hf_fossil_scratch(size_t slen);
size_t hf_fossil_encode(const uint8_t *src, size_t slen, const uint8_t *tgt,
                         size_t tlen, uint8_t *out, void *scratch);

/* The target length a patch announces (its first line), or -1 if the
 * patch does not start with a valid length line. Use it to size the output
 * of hf_fossil_apply (and to refuse patches larger than a limit). */
ssize_t hf_fossil_target_len(const uint8_t *patch, size_t plen);

/* Apply patch to src; writes exactly the announced target length into out
 * (cap bytes available). Returns the target length, or -1 if the patch is
 * malformed, refers outside src, overflows cap or fails its checksum. */
ssize_t hf_fossil_apply(const uint8_t *src, size_t slen, const uint8_t *patch,
                        size_t plen, uint8_t *out, size_t cap);

/* The format's 32-bit checksum of p[0..n). */
uint32_t hf_fossil_checksum(const uint8_t *p, size_t n);

#ifdef __cplusplus
}
#endif
#endif
