/* SPDX-License-Identifier: MIT */
/* Parsing of one client command line of the Centrifugo client protocol v2
 * (JSON): envelope checks only (object, id, which request), so that the
 * client state machine gets either a well-formed command or the exact
 * reason for a 3501 disconnect. Pure: no I/O, no server state. */
#ifndef SRV_PROTO_H
#define SRV_PROTO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Request kinds, in the order the Go server checks them. */
typedef enum {
  PROTO_PONG = -1, /* {} or a command with id 0 and no request */
  PROTO_CONNECT = 0,
  PROTO_PING,
  PROTO_SUBSCRIBE,
  PROTO_UNSUBSCRIBE,
  PROTO_PUBLISH,
  PROTO_PRESENCE,
  PROTO_PRESENCE_STATS,
  PROTO_HISTORY,
  PROTO_RPC,
  PROTO_SEND,
  PROTO_REFRESH,
  PROTO_SUB_REFRESH,
  PROTO_KINDS
} proto_kind;

typedef struct {
  json_t *root;    /* the parsed command (owned: proto_cmd_free) */
  json_t *req;     /* the request object inside root (borrowed) */
  proto_kind kind;
  uint32_t id;
  /* Protobuf only: a bytes field (data...) that is not JSON was left out;
   * the command is answered with error 107 and this reason (static). */
  const char *bad;
} proto_cmd;

/* Parse line[0..n) (no newline). Returns 0 and fills *cmd, or -1 with a
 * static plain-text reason for the 3501 close in *why. */
int proto_parse(const char *line, size_t n, proto_cmd *cmd, const char **why);
void proto_cmd_free(proto_cmd *cmd);
/* The envelope checks of proto_parse on an already decoded command object
 * root (taken: freed on failure, else owned by *cmd), shared by the JSON
 * and the Protobuf decoders. Returns 0 or -1 with the 3501 reason. */
int proto_envelope(json_t *root, proto_cmd *cmd, const char **why);
/* The request key of a kind ("connect", ...). */
const char *proto_kind_name(proto_kind k);

#endif
