/* SPDX-License-Identifier: MIT */
/* Protobuf edges of the client protocol (see pbcodec.h): length prefixes,
 * Command decoding through protobuf-c's generated code, and the JSON to
 * Protobuf Reply transcoder driven by the same generated descriptors. */
#include "protocol/pbcodec.h"

#include <ctype.h>
#include <limits.h>
#include <openssl/evp.h>
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.pb-c.h"
#include "hf/frame.h"

/* ---- length prefixes -------------------------------------------------------- */

int pb_next(const uint8_t *data, size_t len, size_t *off, uint64_t max,
            const uint8_t **msg, size_t *mlen, uint16_t *code, const char **why) {
  size_t i = *off;
  if (i >= len)
    return 0;
  uint64_t v = 0;
  for (unsigned shift = 0;; shift += 7) {
    if (shift > 63) {
      *code = 3501;
      *why = "bad request: length prefix longer than 10 bytes";
      return -1;
    }
    if (i >= len) {
      *code = 3501;
      *why = "bad request: truncated length prefix";
      return -1;
    }
    uint8_t b = data[i++];
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80))
      break;
  }
  if (max && v > max) {
    *code = 1009;
    *why = "message too big: command length over the message size limit";
    return -1;
  }
  if (v > len - i) {
    *code = 3501;
    *why = "bad request: command length beyond the frame";
    return -1;
  }
  *msg = data + i;
  *mlen = (size_t)v;
  *off = i + (size_t)v;
  return 1;
}

/* ---- Command -> JSON ---------------------------------------------------------- */

static int is_map_entry(const ProtobufCMessageDescriptor *d) {
  size_t n = strlen(d->name);
  return d->n_fields == 2 && n > 5 && strcmp(d->name + n - 5, "Entry") == 0;
}

static size_t elem_size(ProtobufCType t) {
  switch (t) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
  case PROTOBUF_C_TYPE_FLOAT:
  case PROTOBUF_C_TYPE_ENUM:
    return 4;
  case PROTOBUF_C_TYPE_BOOL:
    return sizeof(protobuf_c_boolean);
  case PROTOBUF_C_TYPE_STRING:
    return sizeof(char *);
  case PROTOBUF_C_TYPE_BYTES:
    return sizeof(ProtobufCBinaryData);
  case PROTOBUF_C_TYPE_MESSAGE:
    return sizeof(ProtobufCMessage *);
  default:
    return 8;
  }
}

typedef struct {
  const char *bad; /* a bytes field that is not JSON was left out */
  const char *err; /* a 3501 reason */
  int binary;      /* a "data" field was not JSON: given as "b64data" */
  int as_b64;      /* the value just made is that base64 (msg_json) */
} dec_state;

static json_t *msg_json(const ProtobufCMessage *m, dec_state *st);

/* The JSON form of one value of field f at p; NULL when it is left out
 * (a zero value and omit_zero, an ignored field) or on error (st->err). */
static json_t *value_json(const ProtobufCFieldDescriptor *f, const void *p, int omit_zero,
                          dec_state *st) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_ENUM: {
    int32_t v = *(const int32_t *)p;
    return v || !omit_zero ? json_integer(v) : NULL;
  }
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32: {
    uint32_t v = *(const uint32_t *)p;
    return v || !omit_zero ? json_integer(v) : NULL;
  }
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64: {
    int64_t v = *(const int64_t *)p;
    return v || !omit_zero ? json_integer(v) : NULL;
  }
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64: {
    uint64_t v = *(const uint64_t *)p;
    if (v > INT64_MAX) {
      st->err = "bad request: integer out of range";
      return NULL;
    }
    return v || !omit_zero ? json_integer((json_int_t)v) : NULL;
  }
  case PROTOBUF_C_TYPE_BOOL:
    return *(const protobuf_c_boolean *)p ? json_true() : omit_zero ? NULL : json_false();
  case PROTOBUF_C_TYPE_FLOAT:
    return json_real(*(const float *)p);
  case PROTOBUF_C_TYPE_DOUBLE:
    return json_real(*(const double *)p);
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(char *const *)p;
    if (!s || (!*s && omit_zero))
      return NULL;
    json_t *j = json_string(s); /* NULL: not UTF-8 */
    if (!j)
      st->err = "bad request: string field is not valid UTF-8";
    return j;
  }
  case PROTOBUF_C_TYPE_BYTES: {
    const ProtobufCBinaryData *b = p;
    if (!b->len || strcmp(f->name, "tf") == 0) /* no tag filters here */
      return NULL;
    json_error_t je;
    json_t *j = json_loadb((const char *)b->data, b->len, JSON_DECODE_ANY, &je);
    if (j)
      return j;
    if (strcmp(f->name, "data") != 0 || f->label == PROTOBUF_C_LABEL_REPEATED ||
        b->len > (16u << 20) / 4 * 3) {
      st->bad = "bad request: binary (non-JSON) data is not supported here";
      return NULL;
    }
    /* binary data: travels as base64 under "b64data" (channels/pdata.h) */
    char *t = malloc(4 * ((b->len + 2) / 3) + 1);
    if (!t) {
      st->err = "bad request: out of memory";
      return NULL;
    }
    int n = EVP_EncodeBlock((unsigned char *)t, b->data, (int)b->len);
    j = json_stringn_nocheck(t, (size_t)n);
    free(t);
    if (!j) {
      st->err = "bad request: out of memory";
      return NULL;
    }
    st->binary = st->as_b64 = 1;
    return j;
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
    if (!sub)
      return omit_zero ? NULL : json_object();
    return msg_json(sub, st); /* present, even empty: the request kind */
  }
  }
  return NULL;
}

/* A map field's entries as a JSON object. */
static json_t *map_json(const ProtobufCFieldDescriptor *f, ProtobufCMessage *const *ents,
                        size_t n, dec_state *st) {
  const ProtobufCMessageDescriptor *ed = f->descriptor;
  const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
  if (kf->type != PROTOBUF_C_TYPE_STRING) {
    st->err = "bad request: unsupported map key";
    return NULL;
  }
  json_t *o = json_object();
  for (size_t i = 0; o && i < n && !st->err; i++) {
    const char *base = (const char *)ents[i];
    const char *k = *(char *const *)(base + kf->offset);
    json_t *v = value_json(vf, base + vf->offset, 0, st);
    if (!v)
      continue;
    if (!k || json_object_set_new(o, k, v) < 0) { /* a key that is not UTF-8 */
      st->err = "bad request: map key is not valid UTF-8";
      if (!k)
        json_decref(v);
    }
  }
  return o;
}

static json_t *msg_json(const ProtobufCMessage *m, dec_state *st) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  json_t *o = json_object();
  if (!o) {
    st->err = "bad request: out of memory";
    return NULL;
  }
  for (unsigned i = 0; i < d->n_fields && !st->err; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    const char *at = (const char *)m + f->offset;
    json_t *v = NULL;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
      const char *arr = *(char *const *)at;
      if (!n)
        continue;
      if (f->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(f->descriptor)) {
        v = map_json(f, (ProtobufCMessage *const *)arr, n, st);
      } else {
        v = json_array();
        for (size_t k = 0; v && k < n && !st->err; k++) {
          json_t *e = value_json(f, arr + k * elem_size(f->type), 0, st);
          if (e)
            json_array_append_new(v, e);
        }
      }
    } else {
      st->as_b64 = 0;
      v = value_json(f, at, 1, st);
    }
    if (v)
      json_object_set_new(o, st->as_b64 ? "b64data" : f->name, v);
    st->as_b64 = 0;
  }
  if (st->err) {
    json_decref(o);
    return NULL;
  }
  return o;
}

int pb_parse(const uint8_t *data, size_t n, proto_cmd *cmd, const char **why) {
  cmd->root = cmd->req = NULL;
  cmd->bad = NULL;
  Hfpb__Command *c = hfpb__command__unpack(NULL, n, data);
  if (!c) {
    *why = "bad request: invalid Protobuf command";
    return -1;
  }
  dec_state st = {NULL, NULL, 0, 0};
  json_t *root = msg_json(&c->base, &st);
  hfpb__command__free_unpacked(c, NULL);
  if (!root) {
    *why = st.err ? st.err : "bad request: invalid Protobuf command";
    return -1;
  }
  if (proto_envelope(root, cmd, why) < 0)
    return -1;
  cmd->bad = st.bad;
  /* binary data is accepted where it can go somewhere: a publication or
   * an rpc (to the backend); elsewhere it is refused as before */
  if (st.binary && !cmd->bad && cmd->kind != PROTO_PUBLISH && cmd->kind != PROTO_RPC)
    cmd->bad = "bad request: binary (non-JSON) data is only accepted in publish and rpc";
  return 0;
}

/* ---- JSON -> Reply ------------------------------------------------------------ */

static size_t varint(uint8_t *t, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    t[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  t[n++] = (uint8_t)v;
  return n;
}

static void put_varint(jw_buf *b, uint64_t v) {
  uint8_t t[10];
  jw_raw(b, (const char *)t, varint(t, v));
}

static void put_tag(jw_buf *b, uint32_t num, unsigned wt) {
  put_varint(b, ((uint64_t)num << 3) | wt);
}

/* A length-delimited value whose size is known once written: reserve the
 * longest prefix we allow (5 bytes, < 4 GiB), write, then close it up. */
static size_t begin_len(jw_buf *b) {
  size_t at = b->len;
  jw_raw(b, "\0\0\0\0\0", 5);
  return at;
}

static void end_len(jw_buf *b, size_t at) {
  if (b->oom)
    return;
  size_t n = b->len - at - 5;
  uint8_t t[10];
  size_t k = varint(t, n);
  memcpy(b->p + at, t, k);
  memmove(b->p + at + k, b->p + at + 5, n);
  b->len -= 5 - k;
}

static const char *skip_ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
    p++;
  return p;
}

/* p at '"': the byte after the closing quote, or NULL. */
static const char *skip_string(const char *p, const char *e) {
  for (p++; p < e; p++) {
    if (*p == '\\')
      p++;
    else if (*p == '"')
      return p + 1;
  }
  return NULL;
}

/* The end of the JSON value at p (not validated beyond its extent), or
 * NULL. Nesting is counted, not recursed. */
static const char *skip_value(const char *p, const char *e) {
  if (p >= e)
    return NULL;
  if (*p == '"')
    return skip_string(p, e);
  if (*p == '{' || *p == '[') {
    size_t depth = 0;
    while (p < e) {
      char c = *p;
      if (c == '"') {
        if (!(p = skip_string(p, e)))
          return NULL;
        continue;
      }
      if (c == '{' || c == '[')
        depth++;
      else if ((c == '}' || c == ']') && --depth == 0)
        return p + 1;
      p++;
    }
    return NULL;
  }
  const char *s = p;
  while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n')
    p++;
  return p > s ? p : NULL;
}

/* Four hex digits at p as a code unit. */
static int hex4(const char *p, const char *e, unsigned *out) {
  char t[5];
  if (e - p < 4)
    return -1;
  memcpy(t, p, 4);
  t[4] = '\0';
  for (int i = 0; i < 4; i++)
    if (!isxdigit((unsigned char)t[i]))
      return -1;
  *out = (unsigned)strtoul(t, NULL, 16);
  return 0;
}

/* The text of the JSON string s[0..e) (quotes included) appended to b. */
static int put_unescaped(jw_buf *b, const char *s, const char *e) {
  if (e - s < 2 || *s != '"' || e[-1] != '"')
    return -1;
  const char *p = s + 1, *end = e - 1;
  while (p < end) {
    const char *q = p;
    while (q < end && *q != '\\')
      q++;
    jw_raw(b, p, (size_t)(q - p));
    if (q >= end)
      break;
    if (end - q < 2)
      return -1;
    char c = q[1];
    p = q + 2;
    switch (c) {
    case '"': case '\\': case '/':
      jw_char(b, c);
      break;
    case 'b': jw_char(b, '\b'); break;
    case 'f': jw_char(b, '\f'); break;
    case 'n': jw_char(b, '\n'); break;
    case 'r': jw_char(b, '\r'); break;
    case 't': jw_char(b, '\t'); break;
    case 'u': {
      unsigned cp;
      if (hex4(p, end, &cp) < 0)
        return -1;
      p += 4;
      if (cp >= 0xD800 && cp < 0xDC00) { /* a surrogate pair */
        unsigned lo;
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, end, &lo) < 0 ||
            lo < 0xDC00 || lo > 0xDFFF)
          return -1;
        p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return -1;
      }
      char u[4];
      size_t n;
      if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
      } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
      } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
      } else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
      }
      jw_raw(b, u, n);
      break;
    }
    default:
      return -1;
    }
  }
  return 0;
}

/* An integer JSON value v[0..e) as a 64-bit pattern (signed: two's
 * complement). */
static int parse_int(const char *v, const char *e, int is_signed, uint64_t *out) {
  char t[32];
  size_t n = (size_t)(e - v);
  if (!n || n >= sizeof t)
    return -1;
  memcpy(t, v, n);
  t[n] = '\0';
  char *end;
  if (is_signed) {
    long long x = strtoll(t, &end, 10);
    *out = (uint64_t)x;
  } else {
    if (t[0] == '-')
      return -1;
    *out = strtoull(t, &end, 10);
  }
  return *end ? -1 : 0;
}

static int encode_obj(jw_buf *b, const ProtobufCMessageDescriptor *d, const char *p,
                      const char *e, int depth);

/* One value of field f (not a list, not a map) from JSON v[0..e). */
static int encode_one(jw_buf *b, const ProtobufCFieldDescriptor *f, const char *v,
                      const char *e, int depth) {
  uint64_t x;
  switch (f->type) {
  case PROTOBUF_C_TYPE_MESSAGE: {
    put_tag(b, f->id, 2);
    size_t at = begin_len(b);
    if (encode_obj(b, f->descriptor, v, e, depth + 1) < 0)
      return -1;
    end_len(b, at);
    return 0;
  }
  case PROTOBUF_C_TYPE_STRING: {
    put_tag(b, f->id, 2);
    size_t at = begin_len(b);
    if (put_unescaped(b, v, e) < 0)
      return -1;
    end_len(b, at);
    return 0;
  }
  case PROTOBUF_C_TYPE_BYTES: /* payloads are JSON text: the bytes as written */
    put_tag(b, f->id, 2);
    put_varint(b, (uint64_t)(e - v));
    jw_raw(b, v, (size_t)(e - v));
    return 0;
  case PROTOBUF_C_TYPE_BOOL:
    if (e - v == 4 && memcmp(v, "true", 4) == 0)
      x = 1;
    else if (e - v == 5 && memcmp(v, "false", 5) == 0)
      x = 0;
    else
      return -1;
    put_tag(b, f->id, 0);
    put_varint(b, x);
    return 0;
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_ENUM:
    if (parse_int(v, e, 1, &x) < 0)
      return -1;
    put_tag(b, f->id, 0);
    put_varint(b, x); /* negative: ten bytes, sign-extended */
    return 0;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_UINT64:
    if (parse_int(v, e, 0, &x) < 0)
      return -1;
    if (f->type == PROTOBUF_C_TYPE_UINT32 && x > UINT32_MAX)
      return -1;
    put_tag(b, f->id, 0);
    put_varint(b, x);
    return 0;
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SINT64: {
    if (parse_int(v, e, 1, &x) < 0)
      return -1;
    int64_t s = (int64_t)x;
    put_tag(b, f->id, 0);
    put_varint(b, ((uint64_t)s << 1) ^ (uint64_t)(s >> 63)); /* zigzag */
    return 0;
  }
  default: /* fixed-width and floating types: not in the schema's replies */
    return -1;
  }
}

/* Iterate the members of the JSON object or array at p[0..e): calls
 * fn(key span or NULL, value span) for each. */
typedef int (*member_fn)(void *arg, const char *k, const char *ke, const char *v,
                         const char *ve);

static int each_member(const char *p, const char *e, int object, member_fn fn, void *arg) {
  p = skip_ws(p, e);
  if (p >= e || *p != (object ? '{' : '['))
    return -1;
  p = skip_ws(p + 1, e);
  if (p < e && *p == (object ? '}' : ']'))
    return skip_ws(p + 1, e) == e ? 0 : -1;
  for (;;) {
    const char *k = NULL, *ke = NULL;
    if (object) {
      if (p >= e || *p != '"' || !(ke = skip_string(p, e)))
        return -1;
      k = p;
      p = skip_ws(ke, e);
      if (p >= e || *p != ':')
        return -1;
      p = skip_ws(p + 1, e);
    }
    const char *ve = skip_value(p, e);
    if (!ve || fn(arg, k, ke, p, ve) < 0)
      return -1;
    p = skip_ws(ve, e);
    if (p < e && *p == ',') {
      p = skip_ws(p + 1, e);
      continue;
    }
    if (p < e && *p == (object ? '}' : ']'))
      return skip_ws(p + 1, e) == e ? 0 : -1;
    return -1;
  }
}

typedef struct {
  jw_buf *b;
  const ProtobufCMessageDescriptor *d;
  const ProtobufCFieldDescriptor *f;
  int depth;
} enc_ctx;

static int is_null(const char *v, const char *e) { return e - v == 4 && memcmp(v, "null", 4) == 0; }

static int list_elem(void *arg, const char *k, const char *ke, const char *v, const char *ve) {
  enc_ctx *c = arg;
  return is_null(v, ve) ? 0 : encode_one(c->b, c->f, v, ve, c->depth);
}

/* A map entry: key (field 1, a string) and value (field 2). */
static int map_elem(void *arg, const char *k, const char *ke, const char *v, const char *ve) {
  enc_ctx *c = arg;
  const ProtobufCMessageDescriptor *ed = c->f->descriptor;
  put_tag(c->b, c->f->id, 2);
  size_t at = begin_len(c->b);
  put_tag(c->b, ed->fields[0].id, 2);
  size_t kat = begin_len(c->b);
  if (put_unescaped(c->b, k, ke) < 0)
    return -1;
  end_len(c->b, kat);
  if (!is_null(v, ve) && encode_one(c->b, &ed->fields[1], v, ve, c->depth + 1) < 0)
    return -1;
  end_len(c->b, at);
  return 0;
}

/* "b64data":"<base64>" (binary data, which the JSON form can only carry
 * as base64) becomes the raw bytes of the message's bytes field "data". */
static int encode_b64data(enc_ctx *c, const char *v, const char *ve) {
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(c->d, "data");
  size_t n = (size_t)(ve - v);
  if (!f || f->type != PROTOBUF_C_TYPE_BYTES || n < 2 || v[0] != '"' || v[n - 1] != '"')
    return -1;
  size_t len;
  uint8_t *raw = jw_b64_decode(v + 1, n - 2, &len);
  if (!raw)
    return -1;
  put_tag(c->b, f->id, 2);
  put_varint(c->b, (uint64_t)len);
  jw_raw(c->b, (const char *)raw, len);
  free(raw);
  return 0;
}

static int obj_member(void *arg, const char *k, const char *ke, const char *v, const char *ve) {
  enc_ctx *c = arg;
  char name[48];
  size_t n = (size_t)(ke - k) - 2;
  if (n >= sizeof name || memchr(k + 1, '\\', n) || is_null(v, ve))
    return 0; /* not a field name of the schema */
  memcpy(name, k + 1, n);
  name[n] = '\0';
  if (strcmp(name, "b64data") == 0) /* binary data (channels/pdata.h) */
    return encode_b64data(c, v, ve);
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(c->d, name);
  if (!f)
    return 0; /* unknown to the schema: left out, as readers ignore it */
  enc_ctx sub = {c->b, c->d, f, c->depth};
  if (f->label != PROTOBUF_C_LABEL_REPEATED)
    return encode_one(c->b, f, v, ve, c->depth);
  if (f->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(f->descriptor))
    return each_member(v, ve, 1, map_elem, &sub);
  return each_member(v, ve, 0, list_elem, &sub);
}

static int encode_obj(jw_buf *b, const ProtobufCMessageDescriptor *d, const char *p,
                      const char *e, int depth) {
  if (depth > 16) /* the schema nests less deep than this */
    return -1;
  enc_ctx c = {b, d, NULL, depth};
  return each_member(p, e, 1, obj_member, &c);
}

int pb_from_json(jw_buf *out, const char *json, size_t len) {
  const char *p = json, *e = json + len;
  while (p < e) {
    const char *nl = memchr(p, '\n', (size_t)(e - p));
    const char *le = nl ? nl : e;
    if (skip_ws(p, le) < le) {
      size_t at = begin_len(out);
      if (encode_obj(out, &hfpb__reply__descriptor, p, le, 0) < 0)
        return -1;
      end_len(out, at);
    }
    p = le + 1;
  }
  return jw_ok(out) ? 0 : -1;
}

/* ---- the fan-out variant ----------------------------------------------------- */

static hf_shared *build_variant(const hf_shared *f, void *arg) {
  int chunked = arg != NULL;
  if (f->len < 2)
    return NULL;
  uint8_t l = f->data[1] & 0x7f;
  size_t off = l < 126 ? 2 : l == 126 ? 4 : 10;
  if (off > f->len)
    return NULL;
  jw_buf b;
  jw_init(&b);
  hf_shared *v = NULL;
  if (chunked) { /* http_stream: one chunk "<hex>\r\n<replies>\r\n" */
    if (pb_from_json(&b, (const char *)f->data + off, f->len - off) == 0 &&
        (v = hf_shared_new_frame(b.len + 24))) {
      int hl = snprintf((char *)v->data, 20, "%zx\r\n", b.len);
      memcpy(v->data + hl, b.p, b.len);
      memcpy(v->data + (size_t)hl + b.len, "\r\n", 2);
      v->len = (uint32_t)((size_t)hl + b.len + 2);
      hf_shared_trim(v);
      v->flags = f->flags;
    }
  } else if (pb_from_json(&b, (const char *)f->data + off, f->len - off) == 0 &&
             (v = hf_shared_new_frame(b.len + HF_FRAME_MAX_HEADER))) {
    size_t hl = hf_frame_header(v->data, 1, HF_OP_BINARY, b.len, NULL);
    memcpy(v->data + hl, b.p, b.len);
    v->len = (uint32_t)(hl + b.len);
    hf_shared_trim(v); /* the next variant this thread builds follows it */
    v->flags = f->flags; /* droppable publications stay droppable */
    /* permessage-deflate recipients: compressed once too, if worth it (a
     * failure leaves the plain frame, still correct) */
    (void)hf_shared_deflate(v, hl);
  }
  jw_free(&b);
  return v;
}

hf_shared *pb_shared_variant(hf_shared *frame, int chunked) {
  static int tag; /* any non-NULL argument means chunked */
  return hf_shared_variant(frame, chunked ? PB_VARIANT_KIND + 1 : PB_VARIANT_KIND,
                           build_variant, chunked ? &tag : NULL);
}

json_t *pb_emulation_json(const uint8_t *body, size_t len) {
  Hfpb__EmulationRequest *e = hfpb__emulation_request__unpack(NULL, len, body);
  if (!e)
    return NULL;
  json_t *o = json_object();
  json_t *s = json_string(e->session ? e->session : "");
  json_t *n = json_string(e->node ? e->node : "");
  json_t *d = json_stringn_nocheck((const char *)e->data.data, e->data.len);
  if (!o || !s || !n || !d) {
    json_decref(o);
    json_decref(s);
    json_decref(n);
    json_decref(d);
    o = NULL;
  } else {
    json_object_set_new(o, "session", s);
    json_object_set_new(o, "node", n);
    json_object_set_new(o, "data", d);
  }
  hfpb__emulation_request__free_unpacked(e, NULL);
  return o;
}
