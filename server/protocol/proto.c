/* SPDX-License-Identifier: MIT */
/* Client command envelope parsing (see proto.h). */
#include "protocol/proto.h"

static const char *const keys[PROTO_KINDS] = {
    "connect", "ping",    "subscribe", "unsubscribe", "publish",     "presence",
    "presence_stats", "history", "rpc", "send", "refresh", "sub_refresh"};

const char *proto_kind_name(proto_kind k) {
  return k >= 0 && k < PROTO_KINDS ? keys[k] : "pong";
}

void proto_cmd_free(proto_cmd *cmd) {
  json_decref(cmd->root);
  cmd->root = cmd->req = NULL;
}

int proto_parse(const char *line, size_t n, proto_cmd *cmd, const char **why) {
  json_error_t je;
  /* jansson limits nesting depth, so hostile input cannot exhaust the stack */
  json_t *root = json_loadb(line, n, 0, &je);
  if (!root || !json_is_object(root)) {
    json_decref(root);
    cmd->root = cmd->req = NULL;
    cmd->bad = NULL;
    *why = "bad request: invalid JSON command";
    return -1;
  }
  return proto_envelope(root, cmd, why);
}

int proto_envelope(json_t *root, proto_cmd *cmd, const char **why) {
  cmd->root = cmd->req = NULL;
  cmd->id = 0;
  cmd->kind = PROTO_PONG;
  cmd->bad = NULL;
  json_t *jid = json_object_get(root, "id");
  if (jid && (!json_is_integer(jid) || json_integer_value(jid) < 0 ||
              json_integer_value(jid) > UINT32_MAX)) {
    json_decref(root);
    *why = "bad request: id must be a uint32";
    return -1;
  }
  cmd->root = root;
  cmd->id = jid ? (uint32_t)json_integer_value(jid) : 0;
  for (int k = 0; k < PROTO_KINDS; k++) {
    json_t *req = json_object_get(root, keys[k]);
    if (!req)
      continue;
    if (!json_is_object(req)) {
      proto_cmd_free(cmd);
      *why = "bad request: command body must be an object";
      return -1;
    }
    cmd->kind = (proto_kind)k;
    cmd->req = req;
    if (cmd->id == 0 && k != PROTO_SEND) {
      proto_cmd_free(cmd);
      *why = "bad request: command without id";
      return -1;
    }
    return 0;
  }
  if (cmd->id != 0) {
    proto_cmd_free(cmd);
    *why = "bad request: unknown command";
    return -1;
  }
  return 0; /* a pong */
}
