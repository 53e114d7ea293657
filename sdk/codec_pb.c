/* SPDX-License-Identifier: MIT */
/* The Protobuf codec of the SDK (sub-protocol centrifuge-protobuf): command
 * trees become Command messages and received Reply messages become the
 * same trees the JSON codec gives, both by walking the descriptors protoc-c
 * generates from proto/client.proto, so no message needs code of its own.
 * bytes fields (data, info, ...) carry the JSON text of the value, as the
 * server does; binary (non-JSON) "data" is "b64data" (its base64) in the
 * trees, as in the server's JSON form. Messages are varint length-delimited, several per frame. */
#include <limits.h>
#include <openssl/evp.h>
#include <protobuf-c/protobuf-c.h>
#include <stdlib.h>
#include <string.h>

#include "client.pb-c.h"
#include "codec.h"

/* ---- tree -> message ---------------------------------------------------------------- */

static int is_map_entry(const ProtobufCMessageDescriptor *d) {
  return d && d->n_fields == 2 && strcmp(d->fields[0].name, "key") == 0 &&
         strcmp(d->fields[1].name, "value") == 0;
}

static ProtobufCMessage *from_tree(const ProtobufCMessageDescriptor *d, json_t *obj);

/* The descriptor of a message field. */
static const ProtobufCMessageDescriptor *desc_of(const ProtobufCFieldDescriptor *f) {
  return (const ProtobufCMessageDescriptor *)f->descriptor;
}

/* Set one value of field f at p (a scalar slot, or an array element). */
static int set_value(const ProtobufCFieldDescriptor *f, void *p, json_t *v) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_ENUM:
    *(int32_t *)p = (int32_t)json_integer_value(v);
    return 0;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    *(uint32_t *)p = (uint32_t)json_integer_value(v);
    return 0;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    *(int64_t *)p = (int64_t)json_integer_value(v);
    return 0;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    *(uint64_t *)p = (uint64_t)json_integer_value(v);
    return 0;
  case PROTOBUF_C_TYPE_BOOL:
    *(protobuf_c_boolean *)p = json_is_true(v);
    return 0;
  case PROTOBUF_C_TYPE_FLOAT:
    *(float *)p = (float)json_number_value(v);
    return 0;
  case PROTOBUF_C_TYPE_DOUBLE:
    *(double *)p = json_number_value(v);
    return 0;
  case PROTOBUF_C_TYPE_STRING: {
    char *s = strdup(json_is_string(v) ? json_string_value(v) : "");
    if (!s)
      return -1;
    *(char **)p = s;
    return 0;
  }
  case PROTOBUF_C_TYPE_BYTES: { /* the JSON text of the value */
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
      return -1;
    ((ProtobufCBinaryData *)p)->data = (uint8_t *)s;
    ((ProtobufCBinaryData *)p)->len = strlen(s);
    return 0;
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    ProtobufCMessage *m = from_tree(desc_of(f), v);
    if (!m)
      return -1;
    *(ProtobufCMessage **)p = m;
    return 0;
  }
  }
  return -1;
}

static size_t slot_size(const ProtobufCFieldDescriptor *f) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE:
    return 8;
  case PROTOBUF_C_TYPE_BOOL:
    return sizeof(protobuf_c_boolean);
  case PROTOBUF_C_TYPE_STRING:
  case PROTOBUF_C_TYPE_MESSAGE:
    return sizeof(void *);
  case PROTOBUF_C_TYPE_BYTES:
    return sizeof(ProtobufCBinaryData);
  default:
    return 4;
  }
}

/* A repeated field from a JSON array, or a map field from a JSON object. */
static int set_repeated(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, json_t *v) {
  size_t *n = (size_t *)((char *)m + f->quantifier_offset);
  void **arr = (void **)((char *)m + f->offset);
  int map = f->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(desc_of(f));
  size_t count = map ? json_object_size(v) : json_array_size(v);
  if (!count || (map && !json_is_object(v)) || (!map && !json_is_array(v)))
    return 0;
  *arr = calloc(count, slot_size(f));
  if (!*arr)
    return -1;
  if (!map) {
    for (size_t i = 0; i < count; i++, ++*n)
      if (set_value(f, (char *)*arr + i * slot_size(f), json_array_get(v, i)) < 0)
        return -1;
    return 0;
  }
  const char *key;
  json_t *val;
  json_object_foreach(v, key, val) {
    json_t *entry = json_pack("{s:s,s:O}", "key", key, "value", val);
    ProtobufCMessage *e = entry ? from_tree(desc_of(f), entry) : NULL;
    json_decref(entry);
    if (!e)
      return -1;
    ((ProtobufCMessage **)*arr)[(*n)++] = e;
  }
  return 0;
}

/* "b64data" (binary data as base64) into the bytes field f: the raw bytes. */
static int set_b64(const ProtobufCFieldDescriptor *f, void *p, json_t *v) {
  size_t n = json_string_length(v);
  if (!json_is_string(v) || !n || n % 4 || n > INT_MAX)
    return -1;
  const char *s = json_string_value(v);
  uint8_t *raw = malloc(n / 4 * 3 + 1);
  if (!raw)
    return -1;
  int len = EVP_DecodeBlock(raw, (const unsigned char *)s, (int)n);
  if (len < 0) {
    free(raw);
    return -1;
  }
  len -= (s[n - 1] == '=') + (s[n - 2] == '=');
  ((ProtobufCBinaryData *)p)->data = raw;
  ((ProtobufCBinaryData *)p)->len = (size_t)len;
  (void)f;
  return 0;
}

static ProtobufCMessage *from_tree(const ProtobufCMessageDescriptor *d, json_t *obj) {
  ProtobufCMessage *m = calloc(1, d->sizeof_message);
  if (!m)
    return NULL;
  d->message_init(m);
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    int b64 = strcmp(key, "b64data") == 0;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(d, b64 ? "data" : key);
    if (!f || json_is_null(v) || (b64 && f->type != PROTOBUF_C_TYPE_BYTES))
      continue; /* keys the schema does not know are left out */
    int rc;
    if (b64) {
      rc = set_b64(f, (char *)m + f->offset, v);
    } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      rc = set_repeated(m, f, v);
    } else {
      if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
        *(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = 1;
      rc = set_value(f, (char *)m + f->offset, v);
    }
    if (rc < 0) {
      protobuf_c_message_free_unpacked(m, NULL);
      return NULL;
    }
  }
  return m;
}

static size_t varint(uint64_t v, uint8_t *out) {
  size_t n = 0;
  do {
    out[n] = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v)
      out[n] |= 0x80;
    n++;
  } while (v);
  return n;
}

static int pb_encode(const json_t *cmd, char **out, size_t *len) {
  ProtobufCMessage *m = from_tree(&hfpb__command__descriptor, (json_t *)cmd);
  if (!m)
    return -1;
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n + 10);
  if (!buf) {
    protobuf_c_message_free_unpacked(m, NULL);
    return -1;
  }
  size_t h = varint(n, buf);
  protobuf_c_message_pack(m, buf + h);
  protobuf_c_message_free_unpacked(m, NULL);
  *out = (char *)buf;
  *len = h + n;
  return 0;
}

/* ---- message -> tree ---------------------------------------------------------------- */

static json_t *to_tree(const ProtobufCMessage *m);

/* The value at p of field f, or NULL when it holds the zero value (left
 * out, as the JSON encoding does). */
static json_t *get_value(const ProtobufCFieldDescriptor *f, const void *p, int keep_zero) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_ENUM:
    return *(const int32_t *)p || keep_zero ? json_integer(*(const int32_t *)p) : NULL;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    return *(const uint32_t *)p || keep_zero ? json_integer(*(const uint32_t *)p) : NULL;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    return *(const int64_t *)p || keep_zero ? json_integer(*(const int64_t *)p) : NULL;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    return *(const uint64_t *)p || keep_zero ? json_integer((json_int_t) * (const uint64_t *)p)
                                             : NULL;
  case PROTOBUF_C_TYPE_BOOL:
    return *(const protobuf_c_boolean *)p ? json_true() : keep_zero ? json_false() : NULL;
  case PROTOBUF_C_TYPE_FLOAT:
    return json_real(*(const float *)p);
  case PROTOBUF_C_TYPE_DOUBLE:
    return json_real(*(const double *)p);
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(char *const *)p;
    return s && (*s || keep_zero) ? json_string(s) : NULL;
  }
  case PROTOBUF_C_TYPE_BYTES: { /* JSON text; anything else: see to_tree */
    const ProtobufCBinaryData *b = p;
    if (!b->len)
      return NULL;
    json_error_t e;
    json_t *j = json_loadb((const char *)b->data, b->len, JSON_DECODE_ANY, &e);
    return j ? j : json_stringn((const char *)b->data, b->len);
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
    return sub ? to_tree(sub) : NULL;
  }
  }
  return NULL;
}

/* The JSON value of the bytes at p, or NULL if empty or not JSON text. */
static json_t *json_value(const void *p) {
  const ProtobufCBinaryData *b = p;
  json_error_t e;
  return b->len ? json_loadb((const char *)b->data, b->len, JSON_DECODE_ANY, &e) : NULL;
}

/* Binary (non-JSON) bytes at p as a base64 JSON string, or NULL. */
static json_t *b64_value(const void *p) {
  const ProtobufCBinaryData *b = p;
  if (b->len > INT_MAX / 2)
    return NULL;
  char *t = malloc(4 * ((b->len + 2) / 3) + 1);
  if (!t)
    return NULL;
  int n = EVP_EncodeBlock((unsigned char *)t, b->data, (int)b->len);
  json_t *j = json_stringn_nocheck(t, (size_t)n);
  free(t);
  return j;
}

static json_t *to_tree(const ProtobufCMessage *m) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  json_t *obj = json_object();
  if (!obj)
    return NULL;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    const char *p = (const char *)m + f->offset;
    json_t *v = NULL;
    int bin = 0;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
      const char *arr = *(char *const *)p;
      if (!n)
        continue;
      int map = f->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(desc_of(f));
      v = map ? json_object() : json_array();
      for (size_t k = 0; v && k < n; k++) {
        if (map) {
          const ProtobufCMessage *e = ((ProtobufCMessage *const *)arr)[k];
          const ProtobufCFieldDescriptor *kf = &desc_of(f)->fields[0],
                                         *vf = &desc_of(f)->fields[1];
          const char *key = *(char *const *)((const char *)e + kf->offset);
          json_t *val = get_value(vf, (const char *)e + vf->offset, 1);
          if (key && val)
            json_object_set_new(v, key, val);
          else
            json_decref(val);
        } else {
          json_t *el = get_value(f, arr + k * slot_size(f), 1);
          if (el)
            json_array_append_new(v, el);
        }
      }
    } else {
      if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
          !*(const protobuf_c_boolean *)((const char *)m + f->quantifier_offset))
        continue;
      if (f->type == PROTOBUF_C_TYPE_BYTES && strcmp(f->name, "data") == 0) {
        /* "data" that is not JSON text: binary data, as "b64data" */
        v = json_value(p);
        if (!v && ((const ProtobufCBinaryData *)p)->len)
          bin = (v = b64_value(p)) != NULL;
      } else {
        v = get_value(f, p, 0);
      }
    }
    if (v)
      json_object_set_new(obj, bin ? "b64data" : f->name, v);
  }
  return obj;
}

static int pb_decode(const uint8_t *data, size_t len, int (*fn)(void *arg, json_t *reply),
                     void *arg) {
  size_t off = 0;
  while (off < len) {
    uint64_t n = 0;
    int shift = 0;
    for (;;) {
      if (off >= len || shift > 63)
        return -1;
      uint8_t b = data[off++];
      n |= (uint64_t)(b & 0x7f) << shift;
      shift += 7;
      if (!(b & 0x80))
        break;
    }
    if (n > len - off)
      return -1;
    ProtobufCMessage *m = protobuf_c_message_unpack(&hfpb__reply__descriptor, NULL, n, data + off);
    off += n;
    if (!m)
      return -1;
    json_t *reply = to_tree(m);
    protobuf_c_message_free_unpacked(m, NULL);
    if (!reply)
      return -1;
    if (fn(arg, reply))
      return 0;
  }
  return 0;
}

const hfs_codec hfs_codec_protobuf = {"protobuf", "centrifuge-protobuf", 1, pb_encode,
                                      pb_decode};
