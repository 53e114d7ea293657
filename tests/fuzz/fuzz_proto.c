// fuzz-sources: server/protocol/proto.c server/protocol/jsonw.c
/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the client command parser (server/protocol/proto.c) and the
 * JSON writer used for replies (server/protocol/jsonw.c). Each input is split into
 * lines like a WebSocket message of the protocol; every line goes through
 * proto_parse, whose result must be consistent (a request object iff a
 * request kind, id 0 only for pongs and send). Each line is also written as
 * a JSON string with jw_str and must parse back to exactly the same bytes
 * (when it is valid UTF-8 without NUL, which jansson requires). */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "protocol/jsonw.h"
#include "protocol/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_line(const char *p, size_t n) {
  proto_cmd cmd;
  const char *why = NULL;
  if (proto_parse(p, n, &cmd, &why) == 0) {
    if (!json_is_object(cmd.root))
      __builtin_trap();
    if (cmd.kind == PROTO_PONG) {
      if (cmd.req || cmd.id != 0)
        __builtin_trap();
    } else {
      if (!json_is_object(cmd.req))
        __builtin_trap();
      if (cmd.id == 0 && cmd.kind != PROTO_SEND)
        __builtin_trap();
      if (!proto_kind_name(cmd.kind)[0])
        __builtin_trap();
    }
    proto_cmd_free(&cmd);
  } else if (!why || !why[0] || cmd.root) {
    __builtin_trap();
  }
  /* the string writer: escaping round-trips */
  jw_buf b;
  jw_init(&b);
  jw_str(&b, p, n);
  if (!jw_ok(&b))
    __builtin_trap();
  if (memchr(b.p, '\n', b.len))
    __builtin_trap(); /* a raw newline would split the protocol message */
  json_error_t je;
  json_t *v = json_loadb(b.p, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
  if (v) {
    if (!json_is_string(v) || json_string_length(v) != n ||
        memcmp(json_string_value(v), p, n) != 0)
      __builtin_trap();
    json_decref(v);
  }
  jw_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  size_t off = 0;
  while (off <= size) {
    const char *nl = memchr(s + off, '\n', size - off);
    size_t end = nl ? (size_t)(nl - s) : size;
    check_line(s + off, end - off);
    if (!nl)
      break;
    off = end + 1;
  }
  return 0;
}
