/* SPDX-License-Identifier: MIT */
/* PROXY protocol v1 (text) and v2 (binary) header parser, as sent by
 * haproxy's send-proxy / send-proxy-v2, AWS NLB and others in front of a
 * listener configured for it. Sans-I/O: bytes in, the client and
 * destination addresses out; no allocation, no state. */
#ifndef HF_PROXY_H
#define HF_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest header accepted: v1 is at most 107 bytes by definition; v2 is 16
 * bytes plus addresses and TLVs, which we bound (haproxy's largest TLV sets
 * are well under this). */
#define HF_PROXY_MAX_HEADER 4096
#define HF_PROXY_V1_MAX 107

typedef struct {
  int version;   /* 1 or 2 */
  int local;     /* 1: no client address to take (v1 "UNKNOWN", v2 LOCAL
                    command such as the proxy's own health checks, or an
                    address family other than TCP over IPv4/IPv6): keep
                    the TCP peer */
  int family;    /* 4 or 6 when local is 0 */
  uint8_t src[16], dst[16]; /* addresses in network order (4 or 16 bytes) */
  uint16_t src_port, dst_port;
} hf_proxy_info;

/* Parse a PROXY protocol header at the start of buf[0..len).
 *
 * Returns:
 *   > 0        the header's length; *out is filled. Bytes after it belong
 *              to the next layer (TLS or HTTP).
 *   HF_EAGAIN  incomplete: every byte in buf belongs to the header so far
 *              (a caller may consume them all and read more).
 *   HF_EPROTO  not a PROXY header, or a malformed one; *why (if not NULL)
 *              is a short static English explanation.
 *   HF_ETOOBIG a v2 header longer than HF_PROXY_MAX_HEADER.
 * Never reads beyond buf[len - 1]. Thread-safe (pure). */
ssize_t hf_proxy_parse(const uint8_t *buf, size_t len, hf_proxy_info *out,
                       const char **why);

#ifdef __cplusplus
}
#endif
#endif
