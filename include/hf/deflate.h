/* SPDX-License-Identifier: MIT */
/* permessage-deflate (RFC 7692) over zlib, sans-I/O, for both roles:
 * extension negotiation (server: pick the first acceptable offer and write
 * the response; client: write an offer and check the response), a message
 * compressor (raw DEFLATE, sync flush, the 00 00 ff ff tail removed) and an
 * incremental, size-bounded message inflater. */
#ifndef HF_DEFLATE_H
#define HF_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "hf/http.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What one endpoint is willing to do (server role) or offers (client). */
typedef struct {
  /* Server: accept offers whose client keeps its LZ77 window between
   * messages (then we keep a per-connection inflater: 2^bits + ~7 KiB).
   * When 0 we answer client_no_context_takeover, which every conforming
   * client must honour, and hold no inflate state between messages. */
  uint8_t allow_client_takeover;
  /* Largest window we compress with (9..15; zlib cannot do 8). */
  uint8_t server_max_window_bits;
  /* Largest window we ask the client to compress with (8..15); only sent
   * when the client announced client_max_window_bits. */
  uint8_t client_max_window_bits;
} hf_deflate_config;

/* The negotiated parameters of one connection. Bits are 8..15; a side
 * without context takeover resets its (de)compressor per message. */
typedef struct {
  uint8_t server_no_context_takeover;
  uint8_t client_no_context_takeover;
  uint8_t server_max_window_bits;
  uint8_t client_max_window_bits;
  /* server role: which bits parameters go into the response (the offer
   * named them); client role: which ones the response carried */
  uint8_t server_bits_named, client_bits_named;
} hf_deflate_params;

/* Server: look at every Sec-WebSocket-Extensions field of req, in order,
 * and accept the first permessage-deflate offer that cfg can honour. An
 * offer with an unknown, repeated or invalid parameter (RFC 7692 section
 * 7.1) is declined and the next one considered. The server never keeps
 * its own context (shared broadcast frames need that), so the response
 * always carries server_no_context_takeover. Returns 1 and fills *out if
 * an offer was accepted, else 0. Pure; no allocation. */
int hf_deflate_negotiate(const hf_deflate_config *cfg,
                         const hf_http_request *req, hf_deflate_params *out);

/* Same for one header value (a comma-separated extension list). */
int hf_deflate_negotiate_value(const hf_deflate_config *cfg, const char *v,
                               size_t len, hf_deflate_params *out);

/* Write the extension (value only, e.g. "permessage-deflate;
 * server_no_context_takeover") of an accepted offer into buf[0..cap),
 * NUL-terminated. A bits parameter is written only when *_bits_named.
 * Returns the length or HF_ETOOBIG. */
int hf_deflate_response(const hf_deflate_params *p, char *buf, size_t cap);

/* Client: write an offer for cfg into buf (server_max_window_bits only if
 * cfg's is below 15; client_max_window_bits always announced). Returns the
 * length or HF_ETOOBIG. */
int hf_deflate_offer(const hf_deflate_config *cfg, int no_client_takeover,
                     char *buf, size_t cap);

/* Client: check the server's response value against what was offered.
 * Returns 1 (valid, *out filled), 0 (no permessage-deflate in it) or
 * HF_EPROTO (a response the client must fail the connection for). */
int hf_deflate_check_response(const hf_deflate_config *offered, const char *v,
                              size_t len, hf_deflate_params *out);

/* ---- codec -------------------------------------------------------------- */

/* A compressor. Not thread-safe; one user at a time. */
typedef struct hf_deflate_enc hf_deflate_enc;

/* level 0..9 (zlib), mem_level 1..9, window_bits 9..15. NULL on OOM or bad
 * arguments. Memory: about 2^(bits+2) + 2^(mem_level+9) bytes. */
hf_deflate_enc *hf_deflate_enc_new(int level, int mem_level, int window_bits);
void hf_deflate_enc_free(hf_deflate_enc *e);

/* Upper bound of hf_deflate_compress's output for len input bytes, for
 * every level and mem_level. */
size_t hf_deflate_bound(size_t len);

/* Compress one whole message in[0..len) into out[0..cap) (cap at least
 * hf_deflate_bound(len) for the call to always succeed; a caller that only
 * wants a message that got smaller may pass len + 4 and treat HF_ETOOBIG as
 * "send it uncompressed"). With reset (no context takeover) the window is
 * forgotten first. The 0x00 0x00 0xff 0xff tail of the sync flush is
 * removed (RFC 7692 7.2.1). Returns the length, HF_ETOOBIG when the output
 * does not fit cap, or another negative HF_E*. */
long hf_deflate_compress(hf_deflate_enc *e, int reset, const uint8_t *in,
                         size_t len, uint8_t *out, size_t cap);

/* A per-thread compressor for these settings, created on first use and
 * freed when the thread exits; NULL on OOM. For callers without a context
 * of their own (shared broadcast frames, replies on an event loop). */
hf_deflate_enc *hf_deflate_thread_enc(int level, int mem_level, int window_bits);

/* A per-thread scratch buffer of at least cap bytes (grown and kept);
 * NULL on OOM. Valid until the next call on this thread. */
uint8_t *hf_deflate_thread_buf(size_t cap);

/* An inflater. Not thread-safe. */
typedef struct hf_inflate hf_inflate;

/* window_bits 8..15. NULL on OOM. Memory: ~7 KiB + 2^bits. */
hf_inflate *hf_inflate_new(int window_bits);
void hf_inflate_free(hf_inflate *z);
/* A per-thread inflater with a 15-bit window (decodes any peer window),
 * for a whole compressed message at once; NULL on OOM. */
hf_inflate *hf_inflate_thread(void);
/* Forget the window (start of a message without context takeover). */
void hf_inflate_reset(hf_inflate *z);

/* Inflate in[0..len), one frame of a compressed message, appending to
 * *buf (len *blen, capacity *bcap, grown with realloc by doubling, never
 * beyond limit + 1 bytes). With fin, the 00 00 ff ff tail is fed after it.
 * Returns 0, HF_ETOOBIG (the message would exceed limit: stop, nothing
 * more is inflated), HF_EPROTO (not valid DEFLATE data) or HF_ENOMEM. On
 * error the inflater must be reset before reuse. */
int hf_inflate_feed(hf_inflate *z, const uint8_t *in, size_t len, int fin,
                    uint8_t **buf, size_t *blen, size_t *bcap, size_t limit);

#ifdef __cplusplus
}
#endif
#endif
