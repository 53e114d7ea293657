/* SPDX-License-Identifier: MIT */
/* The Protobuf encoding of the client protocol (proto/client.proto) at the
 * edges of the one JSON-speaking state machine: Protobuf Commands are
 * decoded (protobuf-c) into the same command objects the JSON parser gives,
 * and the JSON replies and pushes the protocol writes are transcoded into
 * Protobuf Replies, varint length-delimited, several per binary frame.
 * Payloads (bytes fields: data, info, conn_info, chan_info) are JSON text
 * inside holdfast and travel as those bytes; binary publication data
 * (channels/pdata.h) is "b64data" in the JSON form and raw bytes here. Pure: no I/O, no server
 * state; any thread. */
#ifndef SRV_PBCODEC_H
#define SRV_PBCODEC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "hf/shared.h"
#include "protocol/jsonw.h"
#include "protocol/proto.h"

/* Split the next length-delimited message off data[*off..len): returns 1
 * with msg/mlen set and *off advanced, 0 when data is used up, -1 when the
 * prefix is malformed: *code is the close code (3501 truncated prefix or a
 * length beyond the frame; 1009 a length over max bytes) and *why its
 * static reason. */
int pb_next(const uint8_t *data, size_t len, size_t *off, uint64_t max,
            const uint8_t **msg, size_t *mlen, uint16_t *code, const char **why);

/* Decode one Protobuf Command (data[0..n), without its length prefix) into
 * *cmd, exactly as proto_parse would give the JSON form: zero values are
 * left out, strings must be UTF-8, bytes fields are parsed as JSON. A
 * "data" field that is not JSON is binary data: given as "b64data" (its
 * base64) in publish and rpc; elsewhere (and any other bytes field that is
 * not JSON) cmd->bad says why it is refused. Returns 0, or -1
 * with the static reason for a 3501 close (not a Command, bad UTF-8, or
 * the envelope checks). */
int pb_parse(const uint8_t *data, size_t n, proto_cmd *cmd, const char **why);

/* Transcode the protocol's JSON messages json[0..len) (Reply objects joined
 * by '\n', as cl__out holds them) into Protobuf Replies, each prefixed with
 * its varint length, appended to out. Keys the schema does not know are
 * skipped. Returns 0, or -1 on malformed input (a bug upstream) or out of
 * memory (out may hold a partial result: reset it). */
int pb_from_json(jw_buf *out, const char *json, size_t len);

/* The Protobuf form of a fan-out push frame (a server WebSocket text frame
 * holding JSON Replies): one binary frame (chunked: one HTTP chunk of the
 * delimited Replies, for http_stream) built the first time any
 * Protobuf recipient on any worker asks, kept with frame
 * (hf_shared_variant) and shared by every Protobuf recipient, with its
 * compressed form for permessage-deflate recipients when shared-frame
 * compression applies (hf_shared_deflate). Borrowed;
 * NULL on failure (out of memory, or a payload that cannot be transcoded).
 */
hf_shared *pb_shared_variant(hf_shared *frame, int chunked);

/* The variant kinds pb_shared_variant uses (above the transports' kinds):
 * this one for WebSocket, the next for http_stream chunks. */
#define PB_VARIANT_KIND 0x100u

/* A Protobuf EmulationRequest body as {"session":S,"node":N,"data":D}, the
 * shape of the JSON body, where D holds the Protobuf commands' bytes
 * unchecked (read it with json_string_value/json_string_length only).
 * NULL if body is not an EmulationRequest (or out of memory). */
json_t *pb_emulation_json(const uint8_t *body, size_t len);

#endif
