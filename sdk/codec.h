/* SPDX-License-Identifier: MIT */
/* The SDK's seam between the protocol logic and the wire encoding: commands
 * and replies are handled as jansson trees shaped like the protocol's JSON
 * (section 2 of the reference); a codec turns a command tree into one
 * WebSocket message and a received message into reply trees: JSON
 * (codec_json.c) or Protobuf (codec_pb.c, the same trees mapped to
 * proto/client.proto). */
#ifndef HF_SDK_CODEC_H
#define HF_SDK_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char *name;        /* "json" */
  const char *subprotocol; /* offered in the handshake, NULL: none */
  int binary;              /* messages are binary frames */
  /* Encode one command (the object {"id":N,"<method>":{...}}). Returns a
   * malloc'ed message in *out / *len, or -1 (out of memory). */
  int (*encode)(const json_t *cmd, char **out, size_t *len);
  /* Decode one received message into replies, calling fn for each (a new
   * reference the callee owns) in order; stops when fn returns non-zero.
   * Returns 0, or -1 when the message is not valid for the codec. */
  int (*decode)(const uint8_t *data, size_t len,
                int (*fn)(void *arg, json_t *reply), void *arg);
} hfs_codec;

/* Newline-separated JSON objects (reference 1.2). */
extern const hfs_codec hfs_codec_json;
/* Varint length-delimited Protobuf Commands and Replies
 * (proto/client.proto; codec_pb.c). */
extern const hfs_codec hfs_codec_protobuf;

#endif
