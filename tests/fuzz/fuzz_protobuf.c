// fuzz-sources: server/protocol/pbcodec.c server/protocol/proto.c server/protocol/jsonw.c net/shared.c build/gen/client.pb-c.c
/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the Protobuf edges of the client protocol
 * (server/protocol/pbcodec.c). Each input is read two ways:
 *  - as the payload of a binary frame from a Protobuf client: split by
 *    pb_next into length-delimited messages, each decoded by pb_parse, whose
 *    result must be as consistent as the JSON parser's (a request object iff
 *    a request kind, id 0 only for pongs and send; a failure has a reason
 *    and leaves nothing allocated); a malformed prefix must stop the split
 *    with 3501 or 1009;
 *    (binary "data" that is not JSON comes out as base64 "b64data", in
 *    publish and rpc only);
 *  - as the JSON text the protocol writes: whatever pb_from_json accepts
 *    must be a sequence of delimited messages that protobuf-c unpacks as
 *    Replies ("b64data" becoming the raw bytes of "data");
 *  - as an /emulation body: pb_emulation_json gives the three members or
 *    NULL. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "client.pb-c.h"
#include "protocol/pbcodec.h"
#include "protocol/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_frame(const uint8_t *data, size_t size) {
  size_t off = 0;
  for (;;) {
    const uint8_t *m;
    size_t n;
    uint16_t code = 0;
    const char *why = NULL;
    int r = pb_next(data, size, &off, 4096, &m, &n, &code, &why);
    if (r == 0)
      return;
    if (r < 0) {
      if ((code != 3501 && code != 1009) || !why || !why[0])
        __builtin_trap();
      return;
    }
    if (m < data || m + n > data + size || n > 4096)
      __builtin_trap();
    proto_cmd cmd;
    if (pb_parse(m, n, &cmd, &why) == 0) {
      if (!json_is_object(cmd.root))
        __builtin_trap();
      if (cmd.kind == PROTO_PONG) {
        if (cmd.req || cmd.id != 0)
          __builtin_trap();
      } else if (!json_is_object(cmd.req) || (cmd.id == 0 && cmd.kind != PROTO_SEND)) {
        __builtin_trap();
      }
      /* binary data (not JSON) is base64 text, accepted in publish and
       * rpc only; anywhere else the command is refused (cmd.bad) */
      json_t *b64 = cmd.req ? json_object_get(cmd.req, "b64data") : NULL;
      if (b64 && (!json_is_string(b64) || json_string_length(b64) % 4 ||
                  (!cmd.bad && cmd.kind != PROTO_PUBLISH && cmd.kind != PROTO_RPC)))
        __builtin_trap();
      proto_cmd_free(&cmd);
    } else if (!why || !why[0] || cmd.root) {
      __builtin_trap();
    }
  }
}

static void check_json(const uint8_t *data, size_t size) {
  jw_buf out;
  jw_init(&out);
  if (pb_from_json(&out, (const char *)data, size) == 0) {
    size_t off = 0;
    const uint8_t *m;
    size_t n;
    uint16_t code;
    const char *why;
    int r;
    while ((r = pb_next((const uint8_t *)out.p, out.len, &off, 0, &m, &n, &code, &why)) == 1) {
      Hfpb__Reply *rep = hfpb__reply__unpack(NULL, n, m);
      if (!rep)
        __builtin_trap(); /* the transcoder wrote something that is not a Reply */
      hfpb__reply__free_unpacked(rep, NULL);
    }
    if (r != 0)
      __builtin_trap();
  }
  jw_free(&out);
}

static void check_emulation(const uint8_t *data, size_t size) {
  json_t *e = pb_emulation_json(data, size);
  if (!e)
    return;
  if (!json_is_string(json_object_get(e, "session")) ||
      !json_is_string(json_object_get(e, "node")) || !json_is_string(json_object_get(e, "data")))
    __builtin_trap();
  json_decref(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_frame(data, size);
  check_json(data, size);
  check_emulation(data, size);
  return 0;
}
