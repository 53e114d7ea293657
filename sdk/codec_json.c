/* SPDX-License-Identifier: MIT */
/* The JSON codec of the SDK: one command per text message, and received
 * messages split on newlines into JSON objects (replies, pushes, pings). */
#include "codec.h"

#include <stdlib.h>
#include <string.h>

static int json_encode(const json_t *cmd, char **out, size_t *len) {
  char *s = json_dumps(cmd, JSON_COMPACT);
  if (!s)
    return -1;
  *out = s;
  *len = strlen(s);
  return 0;
}

static int json_decode(const uint8_t *data, size_t len,
                       int (*fn)(void *arg, json_t *reply), void *arg) {
  size_t i = 0;
  while (i < len) {
    const uint8_t *nl = memchr(data + i, '\n', len - i);
    size_t end = nl ? (size_t)(nl - data) : len;
    size_t a = i, b = end;
    while (a < b && (data[a] == ' ' || data[a] == '\r' || data[a] == '\t'))
      a++;
    while (b > a && (data[b - 1] == ' ' || data[b - 1] == '\r' || data[b - 1] == '\t'))
      b--;
    if (b > a) {
      json_error_t e;
      json_t *j = json_loadb((const char *)data + a, b - a, 0, &e);
      if (!j || !json_is_object(j)) {
        json_decref(j);
        return -1;
      }
      if (fn(arg, j))
        return 0;
    }
    i = end + 1;
  }
  return 0;
}

const hfs_codec hfs_codec_json = {"json", NULL, 0, json_encode, json_decode};
