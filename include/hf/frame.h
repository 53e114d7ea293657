/* SPDX-License-Identifier: MIT */
/* RFC 6455 section 5 framing: frame-header writer, masking, and the
 * incremental receive-side parser (hf_ws_parser) that turns bytes into
 * message fragments and control frames with strict validation. Sans-I/O: it
 * works in place on the caller's buffer and never allocates. */
#ifndef HF_FRAME_H
#define HF_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hf/utf8.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
  HF_OP_CONT = 0x0,
  HF_OP_TEXT = 0x1,
  HF_OP_BINARY = 0x2,
  HF_OP_CLOSE = 0x8,
  HF_OP_PING = 0x9,
  HF_OP_PONG = 0xA
};

/* Longest frame header: 2 + 8 (length) + 4 (mask). */
#define HF_FRAME_MAX_HEADER 14
/* Largest control-frame payload, and so the longest close reason (123). */
#define HF_FRAME_MAX_CONTROL 125

/* RSV1: or-ed into the opcode given to hf_frame_header, it marks the first
 * frame of a compressed message (permessage-deflate, RFC 7692). */
#define HF_FRAME_RSV1 0x40

/* Write a frame header for a payload of len bytes into out. If mask is not
 * NULL the MASK bit is set and the 4 key bytes follow (client frames).
 * opcode may carry HF_FRAME_RSV1.
 * Returns the header length (2 to 14). */
size_t hf_frame_header(uint8_t out[HF_FRAME_MAX_HEADER], int fin, int opcode,
                       uint64_t len, const uint8_t *mask);

/* XOR p[0..len) with key, where p[0] is payload byte number 'phase' of the
 * frame (so only phase & 3 matters). Works 16 bytes at a time. */
void hf_frame_mask(uint8_t *p, size_t len, const uint8_t key[4], size_t phase);
/* hf_frame_mask, and in the same pass: the length of the run of ASCII
 * bytes (high bit clear, after unmasking) at the start of p, rounded down
 * to a multiple of 16 (or of 128 within the first len & ~127 bytes) when it
 * ends inside a block; len when every byte is ASCII. The text-frame parser validates UTF-8 only from
 * there. */
size_t hf_frame_mask_ascii(uint8_t *p, size_t len, const uint8_t key[4],
                           size_t phase);
/* Internal, for the unit tests: the 16-byte (SSE2 / NEON) version that
 * hf_frame_mask_ascii uses where AVX2 is missing, and for short inputs. */
size_t hf__frame_mask_ascii16(uint8_t *p, size_t len, const uint8_t key[4],
                              size_t phase);

/* Build a close frame payload: 2-byte code + reason truncated to what fits
 * in 123 bytes (never cutting a UTF-8 sequence). Returns the payload length
 * written to out (at least 2). */
size_t hf_frame_close_payload(uint8_t out[HF_FRAME_MAX_CONTROL], uint16_t code,
                              const char *reason);

/* A frame header as sent, decoded without judging it (for observers such
 * as a proxy that must forward bytes unchanged). */
typedef struct {
  uint8_t fin;      /* FIN bit */
  uint8_t rsv;      /* RSV1-3 as bits 0x4, 0x2, 0x1 */
  uint8_t opcode;   /* 0x0-0xF, reserved values included */
  uint8_t masked;   /* MASK bit */
  uint8_t mask[4];  /* the masking key when masked */
  uint64_t payload_len; /* as encoded (the 64-bit form may have its top bit set) */
} hf_frame_info;

/* Decode the frame header at buf[0..len) without modifying any byte and
 * without validation or state: every byte sequence decodes. Returns the
 * header length (2 to 14) with *fi filled, or 0 if buf holds only part of
 * the header (nothing is written to *fi then). Thread-safe, no allocation. */
size_t hf_frame_peek(const uint8_t *buf, size_t len, hf_frame_info *fi);

typedef enum {
  HF_WS_EV_DATA = 1, /* a text/binary message fragment (or whole message) */
  HF_WS_EV_PING,
  HF_WS_EV_PONG,
  HF_WS_EV_CLOSE
} hf_ws_ev_type;

typedef struct {
  hf_ws_ev_type type;
  uint8_t opcode; /* DATA: HF_OP_TEXT or HF_OP_BINARY (of the whole message) */
  uint8_t first;  /* DATA: this is the first fragment of the message */
  uint8_t fin;    /* DATA: this is the last fragment of the message */
  uint8_t compressed; /* DATA: the message had RSV1 (permessage-deflate):
                         data is DEFLATE bytes, not yet UTF-8 checked */
  uint8_t *data;  /* unmasked payload, a view into the caller's buffer */
  size_t len;
  uint16_t close_code; /* CLOSE: received code, 1005 if the payload was empty */
  const uint8_t *close_reason; /* CLOSE: reason text (valid UTF-8) */
  size_t close_reason_len;
} hf_ws_event;

/* Receive-side parser state. Zero it, then set the two options. */
typedef struct {
  /* options */
  uint64_t max_message; /* largest message (sum of fragments); 0 = no limit */
  uint8_t expect_mask;  /* 1: peer frames must be masked (server side);
                           0: peer frames must not be masked (client side) */
  uint8_t allow_rsv1;   /* permessage-deflate was negotiated: RSV1 is
                           allowed on the first frame of a data message */
  /* state: the current frame (when its header has been seen) */
  uint8_t _hdr_len;     /* 0 until a frame header is decoded */
  uint8_t _opcode, _fin;
  uint8_t _key[4];
  uint64_t _plen;       /* payload length of the current frame */
  uint64_t _done;       /* payload bytes already unmasked and validated */
  /* state: the message in progress */
  uint8_t _in_msg;      /* a fragmented message has started and not ended */
  uint8_t _msg_opcode;
  uint8_t _msg_rsv1;    /* the message in progress is compressed */
  hf_utf8_state _utf8;
  uint64_t _msg_len;
  /* error detail after a negative return */
  uint16_t err_code;    /* close code to send: 1002, 1007 or 1009 */
  const char *err_reason; /* short English reason for the close frame/log */
} hf_ws_parser;

/* Parse the next frame from buf[0..len), which must start at the first
 * byte not yet consumed by an earlier call. Bytes of an incomplete frame
 * may be modified (unmasked in place, validated) and must be presented
 * again, unchanged, at the start of buf on the next call.
 *
 * Returns:
 *   > 0        bytes consumed; *ev describes one complete frame. Views in
 *              *ev point into buf and are valid until the caller reuses it.
 *   HF_EAGAIN  incomplete frame; if need is not NULL, *need is the total
 *              number of bytes the frame needs from buf[0] (0 if the header
 *              itself is incomplete), so the caller can size its buffer.
 *   HF_EPROTO  framing violation: err_code 1002.
 *   HF_EUTF8   invalid UTF-8 in a text message: err_code 1007. (A close
 *              reason that is not UTF-8 is HF_EPROTO with 1002.)
 *   HF_ETOOBIG message longer than max_message (checked from the header,
 *              before any payload is buffered): err_code 1009.
 * After an error the parser must not be used again. Text is validated as
 * bytes arrive, so an invalid byte fails before the frame is complete;
 * compressed text (ev->compressed) is left to the caller to validate once
 * inflated, and max_message then bounds the compressed size. */
ssize_t hf_ws_parse(hf_ws_parser *p, uint8_t *buf, size_t len, hf_ws_event *ev,
                    size_t *need);

/* 1 if p is between frames and outside a fragmented message: it then holds
 * nothing but its options, and a freshly zeroed parser with the same
 * options would continue identically (callers may drop it until the next
 * frame starts). 0 while a frame or a fragmented message is incomplete.
 * Thread-safe for distinct parsers; no allocation. */
int hf_ws_parser_idle(const hf_ws_parser *p);

#ifdef __cplusplus
}
#endif
#endif
