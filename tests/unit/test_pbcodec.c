/* SPDX-License-Identifier: MIT */
/* The Protobuf edges (server/protocol/pbcodec.c) checked against
 * protobuf-c's generated code: length prefixes, Commands packed by
 * protobuf-c decoded into the JSON command objects, and the hand-written
 * JSON-to-Reply transcoder unpacked by protobuf-c (a publication push
 * byte-identical to protobuf-c's own packing). */
#include "test.h"

#include <stdlib.h>
#include <string.h>

#include "client.pb-c.h"
#include "hf/frame.h"
#include "channels/pdata.h"
#include "protocol/pbcodec.h"

static void pb_prefixes(void) {
  const uint8_t *m;
  size_t n, off = 0;
  uint16_t code;
  const char *why;
  /* two messages, then the end; a zero-length one is a message (a pong) */
  const uint8_t two[] = {2, 'a', 'b', 0};
  CHECK_INT(pb_next(two, sizeof two, &off, 100, &m, &n, &code, &why), 1);
  CHECK_MEM(m, n, "ab");
  CHECK_INT(pb_next(two, sizeof two, &off, 100, &m, &n, &code, &why), 1);
  CHECK_INT((int)n, 0);
  CHECK_INT(pb_next(two, sizeof two, &off, 100, &m, &n, &code, &why), 0);
  /* truncated varint */
  const uint8_t trunc[] = {0x80, 0x80};
  off = 0;
  CHECK_INT(pb_next(trunc, sizeof trunc, &off, 100, &m, &n, &code, &why), -1);
  CHECK_INT(code, 3501);
  CHECK(strstr(why, "truncated") != NULL);
  /* a length beyond the frame */
  const uint8_t beyond[] = {5, 'a'};
  off = 0;
  CHECK_INT(pb_next(beyond, sizeof beyond, &off, 100, &m, &n, &code, &why), -1);
  CHECK_INT(code, 3501);
  CHECK(strstr(why, "beyond") != NULL);
  /* over the message size limit (checked before the frame's extent) */
  const uint8_t big[] = {0xe5, 0x8e, 0x26}; /* 624485 */
  off = 0;
  CHECK_INT(pb_next(big, sizeof big, &off, 65536, &m, &n, &code, &why), -1);
  CHECK_INT(code, 1009);
  /* eleven continuation bytes: longer than any varint */
  const uint8_t longv[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  off = 0;
  CHECK_INT(pb_next(longv, sizeof longv, &off, 0, &m, &n, &code, &why), -1);
  CHECK_INT(code, 3501);
}

/* Pack a protobuf-c message into a malloc'd buffer. */
static uint8_t *pack(const ProtobufCMessage *msg, size_t *n) {
  *n = protobuf_c_message_get_packed_size(msg);
  uint8_t *b = malloc(*n ? *n : 1);
  protobuf_c_message_pack(msg, b);
  return b;
}

static void pb_commands(void) {
  /* connect with token, JSON data and a subs map, as the SDK sends it */
  Hfpb__ConnectRequest cr = HFPB__CONNECT_REQUEST__INIT;
  cr.token = "tok";
  cr.data.data = (uint8_t *)"{\"a\":[1,2]}";
  cr.data.len = strlen((char *)cr.data.data);
  cr.name = "js";
  Hfpb__SubscribeRequest sr = HFPB__SUBSCRIBE_REQUEST__INIT;
  sr.recover = 1;
  sr.epoch = "ep";
  sr.offset = 7;
  Hfpb__ConnectRequest__SubsEntry ent = HFPB__CONNECT_REQUEST__SUBS_ENTRY__INIT;
  ent.key = "news";
  ent.value = &sr;
  Hfpb__ConnectRequest__SubsEntry *ents[] = {&ent};
  cr.n_subs = 1;
  cr.subs = ents;
  Hfpb__Command c = HFPB__COMMAND__INIT;
  c.id = 1;
  c.connect = &cr;
  size_t n;
  uint8_t *b = pack(&c.base, &n);
  proto_cmd cmd;
  const char *why = NULL;
  CHECK_INT(pb_parse(b, n, &cmd, &why), 0);
  free(b);
  CHECK_INT(cmd.kind, PROTO_CONNECT);
  CHECK_INT((int)cmd.id, 1);
  CHECK(cmd.bad == NULL);
  char *s = json_dumps(cmd.req, JSON_COMPACT | JSON_SORT_KEYS);
  CHECK_STR(s, "{\"data\":{\"a\":[1,2]},\"name\":\"js\",\"subs\":{\"news\":{\"epoch\":\"ep\","
               "\"offset\":7,\"recover\":true}},\"token\":\"tok\"}");
  free(s);
  proto_cmd_free(&cmd);

  /* an empty Command is a pong; an empty request is still its kind */
  CHECK_INT(pb_parse((const uint8_t *)"", 0, &cmd, &why), 0);
  CHECK_INT(cmd.kind, PROTO_PONG);
  proto_cmd_free(&cmd);
  Hfpb__UnsubscribeRequest ur = HFPB__UNSUBSCRIBE_REQUEST__INIT;
  Hfpb__Command c2 = HFPB__COMMAND__INIT;
  c2.id = 9;
  c2.unsubscribe = &ur;
  b = pack(&c2.base, &n);
  CHECK_INT(pb_parse(b, n, &cmd, &why), 0);
  CHECK_INT(cmd.kind, PROTO_UNSUBSCRIBE);
  proto_cmd_free(&cmd);
  free(b);
  /* a request without id: the envelope refuses it, as for JSON */
  c2.id = 0;
  b = pack(&c2.base, &n);
  CHECK_INT(pb_parse(b, n, &cmd, &why), -1);
  CHECK(strstr(why, "without id") != NULL);
  free(b);

  /* publish of bytes that are not JSON: binary data, given as b64data */
  Hfpb__PublishRequest pr = HFPB__PUBLISH_REQUEST__INIT;
  pr.channel = "news";
  pr.data.data = (uint8_t *)"\xff\x00";
  pr.data.len = 2;
  Hfpb__Command c3 = HFPB__COMMAND__INIT;
  c3.id = 3;
  c3.publish = &pr;
  b = pack(&c3.base, &n);
  CHECK_INT(pb_parse(b, n, &cmd, &why), 0);
  CHECK(cmd.bad == NULL);
  CHECK(json_object_get(cmd.req, "data") == NULL);
  CHECK_STR(json_string_value(json_object_get(cmd.req, "b64data")), "/wA=");
  proto_cmd_free(&cmd);
  free(b);

  /* the same bytes in a subscribe: refused with a reason (107) */
  Hfpb__SubscribeRequest bsr = HFPB__SUBSCRIBE_REQUEST__INIT;
  bsr.channel = "news";
  bsr.data = pr.data;
  Hfpb__Command bc = HFPB__COMMAND__INIT;
  bc.id = 4;
  bc.subscribe = &bsr;
  b = pack(&bc.base, &n);
  CHECK_INT(pb_parse(b, n, &cmd, &why), 0);
  CHECK(cmd.bad != NULL && strstr(cmd.bad, "only accepted in publish and rpc") != NULL);
  proto_cmd_free(&cmd);
  free(b);

  /* a string that is not UTF-8: refused */
  pr.channel = "n\xc3";
  pr.data.len = 0;
  b = pack(&c3.base, &n);
  CHECK_INT(pb_parse(b, n, &cmd, &why), -1);
  CHECK(strstr(why, "UTF-8") != NULL);
  free(b);

  /* garbage: a field with a wire type that cannot be */
  const uint8_t junk[] = {0x0f, 0x01, 0x02};
  CHECK_INT(pb_parse(junk, sizeof junk, &cmd, &why), -1);
  CHECK(strstr(why, "invalid Protobuf") != NULL);

  /* a filter (field 13 of SubscribeRequest) is skipped, not decoded */
  Hfpb__SubscribeRequest sr2 = HFPB__SUBSCRIBE_REQUEST__INIT;
  sr2.channel = "news";
  sr2.tf.data = (uint8_t *)"\x32\x00";
  sr2.tf.len = 2;
  Hfpb__Command c4 = HFPB__COMMAND__INIT;
  c4.id = 4;
  c4.subscribe = &sr2;
  b = pack(&c4.base, &n);
  CHECK_INT(pb_parse(b, n, &cmd, &why), 0);
  CHECK(cmd.bad == NULL && json_object_get(cmd.req, "tf") == NULL);
  proto_cmd_free(&cmd);
  free(b);
}

/* The next delimited Reply of out at *off, unpacked by protobuf-c. */
static Hfpb__Reply *next_reply(const jw_buf *out, size_t *off) {
  const uint8_t *m;
  size_t n;
  uint16_t code;
  const char *why;
  if (pb_next((const uint8_t *)out->p, out->len, off, 0, &m, &n, &code, &why) != 1)
    return NULL;
  return hfpb__reply__unpack(NULL, n, m);
}

static void pb_replies(void) {
  static const char json[] =
      "{\"id\":1,\"connect\":{\"client\":\"c1\",\"version\":\"0.1\",\"expires\":true,\"ttl\":30,"
      "\"data\":[1,{\"z\":null}],\"subs\":{\"news\":{\"recoverable\":true,\"epoch\":\"ep\","
      "\"offset\":5,\"publications\":[{\"data\":{\"a\":1},\"offset\":5,\"tags\":{\"k\":\"v\"}}],"
      "\"recovered\":true}},\"ping\":25,\"pong\":true,\"unknown\":{\"x\":[1]}}}\n"
      "{\"id\":2,\"error\":{\"code\":107,\"message\":\"bad \\\"q\\\" \\u00e9 \\ud83d\\ude00\","
      "\"temporary\":true}}\n"
      "{}\n"
      "{\"push\":{\"channel\":\"news\",\"pub\":{\"data\":\"s\",\"offset\":18446744073709551615}}}\n"
      "{\"id\":3,\"presence\":{\"presence\":{\"c1\":{\"user\":\"u\",\"client\":\"c1\","
      "\"conn_info\":{\"n\":1}}}}}\n"
      "{\"id\":4,\"publish\":{}}";
  jw_buf out;
  jw_init(&out);
  CHECK_INT(pb_from_json(&out, json, sizeof json - 1), 0);
  size_t off = 0;
  Hfpb__Reply *r = next_reply(&out, &off);
  CHECK(r && r->id == 1 && r->connect);
  if (r && r->connect) {
    Hfpb__ConnectResult *c = r->connect;
    CHECK_STR(c->client, "c1");
    CHECK_STR(c->version, "0.1");
    CHECK(c->expires && c->ttl == 30 && c->ping == 25 && c->pong);
    CHECK_MEM(c->data.data, c->data.len, "[1,{\"z\":null}]");
    CHECK_INT((int)c->n_subs, 1);
    if (c->n_subs == 1) {
      CHECK_STR(c->subs[0]->key, "news");
      Hfpb__SubscribeResult *s = c->subs[0]->value;
      CHECK(s->recoverable && s->recovered && s->offset == 5);
      CHECK_STR(s->epoch, "ep");
      CHECK_INT((int)s->n_publications, 1);
      if (s->n_publications == 1) {
        Hfpb__Publication *p = s->publications[0];
        CHECK_MEM(p->data.data, p->data.len, "{\"a\":1}");
        CHECK(p->offset == 5 && p->n_tags == 1);
        if (p->n_tags == 1) {
          CHECK_STR(p->tags[0]->key, "k");
          CHECK_STR(p->tags[0]->value, "v");
        }
      }
    }
  }
  hfpb__reply__free_unpacked(r, NULL);
  r = next_reply(&out, &off);
  CHECK(r && r->id == 2 && r->error);
  if (r && r->error) {
    CHECK(r->error->code == 107 && r->error->temporary);
    CHECK_STR(r->error->message, "bad \"q\" \xc3\xa9 \xf0\x9f\x98\x80");
  }
  hfpb__reply__free_unpacked(r, NULL);
  /* the ping: an empty Reply */
  CHECK_INT(((const uint8_t *)out.p)[off], 0);
  r = next_reply(&out, &off);
  CHECK(r && r->id == 0 && !r->push && !r->connect);
  hfpb__reply__free_unpacked(r, NULL);
  r = next_reply(&out, &off);
  CHECK(r && r->push && r->push->pub);
  if (r && r->push && r->push->pub) {
    CHECK_STR(r->push->channel, "news");
    CHECK_MEM(r->push->pub->data.data, r->push->pub->data.len, "\"s\"");
    CHECK(r->push->pub->offset == UINT64_MAX);
  }
  hfpb__reply__free_unpacked(r, NULL);
  r = next_reply(&out, &off);
  CHECK(r && r->id == 3 && r->presence && r->presence->n_presence == 1);
  if (r && r->presence && r->presence->n_presence == 1) {
    Hfpb__ClientInfo *ci = r->presence->presence[0]->value;
    CHECK_STR(ci->user, "u");
    CHECK_MEM(ci->conn_info.data, ci->conn_info.len, "{\"n\":1}");
  }
  hfpb__reply__free_unpacked(r, NULL);
  r = next_reply(&out, &off);
  CHECK(r && r->id == 4 && r->publish);
  hfpb__reply__free_unpacked(r, NULL);
  CHECK(off == out.len);

  /* malformed input is refused, not guessed */
  static const char *const bad[] = {"{\"id\":", "{\"id\":-1}", "{\"id\":\"x\"}",
                                    "{\"push\":{\"channel\":\"\\uD800\"}}", "[1]",
                                    "{\"error\":{\"temporary\":1}}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    jw_reset(&out);
    if (pb_from_json(&out, bad[i], strlen(bad[i])) != -1)
      HF_T_FAILF("accepted %s", bad[i]);
  }
  jw_free(&out);
}

/* The fan-out path: a hub push frame's Protobuf variant is a binary frame
 * holding exactly what protobuf-c packs for the same Reply. */
static void pb_variant_matches_protobuf_c(void) {
  static const char json[] =
      "{\"push\":{\"channel\":\"news\",\"pub\":{\"data\":{\"n\":1},\"info\":{\"user\":\"u\","
      "\"client\":\"c\",\"conn_info\":{\"i\":2}},\"offset\":42,\"tags\":{\"t\":\"1\"}}}}";
  size_t jl = sizeof json - 1;
  hf_shared *f = hf_shared_new(jl + HF_FRAME_MAX_HEADER);
  size_t hl = hf_frame_header(f->data, 1, HF_OP_TEXT, jl, NULL);
  memcpy(f->data + hl, json, jl);
  f->len = (uint32_t)(hl + jl);
  f->flags = HF_SHARED_DROPPABLE;

  Hfpb__ClientInfo ci = HFPB__CLIENT_INFO__INIT;
  ci.user = "u";
  ci.client = "c";
  ci.conn_info.data = (uint8_t *)"{\"i\":2}";
  ci.conn_info.len = 7;
  Hfpb__Publication__TagsEntry te = HFPB__PUBLICATION__TAGS_ENTRY__INIT;
  te.key = "t";
  te.value = "1";
  Hfpb__Publication__TagsEntry *tes[] = {&te};
  Hfpb__Publication pub = HFPB__PUBLICATION__INIT;
  pub.data.data = (uint8_t *)"{\"n\":1}";
  pub.data.len = 7;
  pub.info = &ci;
  pub.offset = 42;
  pub.n_tags = 1;
  pub.tags = tes;
  Hfpb__Push push = HFPB__PUSH__INIT;
  push.channel = "news";
  push.pub = &pub;
  Hfpb__Reply rep = HFPB__REPLY__INIT;
  rep.push = &push;
  size_t n;
  uint8_t *want = pack(&rep.base, &n);

  hf_shared *v = pb_shared_variant(f, 0);
  CHECK(v != NULL);
  if (v) {
    CHECK_INT(v->data[0], 0x82); /* FIN + binary */
    CHECK(v->flags == HF_SHARED_DROPPABLE);
    size_t off = (v->data[1] & 0x7f) < 126 ? 2 : 4;
    CHECK_INT(v->data[off], (int)n); /* the length prefix (one byte here) */
    CHECK(v->len == off + 1 + n && memcmp(v->data + off + 1, want, n) == 0);
    CHECK(pb_shared_variant(f, 0) == v); /* built once, then shared */
  }
  free(want);
  hf_shared_unref(f);

  /* with shared-frame compression on and deflate users, the variant is
   * compressed once as well */
  hf_shared_deflate_cfg dc = {1, 6, 8, 15, 16};
  hf_shared_deflate_setup(&dc);
  hf_shared_deflate_users(1);
  char big[600];
  int bn = snprintf(big, sizeof big, "{\"push\":{\"channel\":\"news\",\"pub\":{\"data\":\"");
  memset(big + bn, 'a', 400);
  bn += 400;
  bn += snprintf(big + bn, sizeof big - (size_t)bn, "\"}}}");
  f = hf_shared_new((size_t)bn + HF_FRAME_MAX_HEADER);
  hl = hf_frame_header(f->data, 1, HF_OP_TEXT, (size_t)bn, NULL);
  memcpy(f->data + hl, big, (size_t)bn);
  f->len = (uint32_t)(hl + (size_t)bn);
  v = pb_shared_variant(f, 0);
  hf_shared *z = v ? hf_shared_variant_find(v, HF_SHARED_VARIANT_DEFLATE) : NULL;
  CHECK(z && z->len < v->len);
  if (z)
    CHECK_INT(z->data[0], 0xc2); /* FIN + RSV1 + binary */
  hf_shared_unref(f);
  hf_shared_deflate_users(-1);
  dc.enabled = 0;
  hf_shared_deflate_setup(&dc);
}

/* Binary publication data (channels/pdata.h): marked text, written as
 * "b64data" in JSON, transcoded back to the raw bytes of Publication.data
 * (and RPCResult.data); JSON data stays byte-identical. */
static void pb_binary_data(void) {
  static const uint8_t raw[] = {0x00, 0xff, 0x10, '"', '\\', 0x80};
  char *d = pd_from_bytes(raw, sizeof raw);
  CHECK(d && pd_is_binary(d, strlen(d)));
  char *d2 = pd_from_b64(d + 1, strlen(d) - 1);
  CHECK(d2 && strcmp(d, d2) == 0);
  free(d2);
  static const char *const notb64[] = {"", "AAE", "AA*=", "=AAA", "A===", "AAAA\n"};
  for (size_t i = 0; i < sizeof notb64 / sizeof notb64[0]; i++)
    if (pd_from_b64(notb64[i], strlen(notb64[i])))
      HF_T_FAILF("accepted base64 %s", notb64[i]);
  CHECK(!pd_is_binary("{\"a\":1}", 7) && !pd_is_binary("", 0));

  jw_buf j, out;
  jw_init(&j);
  jw_init(&out);
  jw_lit(&j, "{\"push\":{\"channel\":\"c\",\"pub\":{");
  CHECK_INT(pd_write_member(&j, d, strlen(d)), 1);
  jw_lit(&j, ",\"offset\":3}}}\n{\"id\":2,\"rpc\":{");
  CHECK_INT(pd_write_member(&j, d, strlen(d)), 1);
  jw_lit(&j, "}}\n{\"id\":3,\"rpc\":{");
  CHECK_INT(pd_write_member(&j, "[1]", 3), 0);
  jw_lit(&j, "}}");
  CHECK(strstr(j.p, "\"b64data\":\"AP8QIlyA\"") != NULL);
  CHECK(strstr(j.p, "\"data\":[1]") != NULL);
  CHECK_INT(pb_from_json(&out, j.p, j.len), 0);
  size_t off = 0, n;
  const uint8_t *m;
  uint16_t code;
  const char *why;
  CHECK_INT(pb_next((const uint8_t *)out.p, out.len, &off, 1 << 20, &m, &n, &code, &why), 1);
  Hfpb__Reply *r = hfpb__reply__unpack(NULL, n, m);
  CHECK(r && r->push && r->push->pub);
  if (r && r->push && r->push->pub) {
    CHECK(r->push->pub->data.len == sizeof raw &&
          memcmp(r->push->pub->data.data, raw, sizeof raw) == 0);
    CHECK(r->push->pub->offset == 3);
  }
  hfpb__reply__free_unpacked(r, NULL);
  CHECK_INT(pb_next((const uint8_t *)out.p, out.len, &off, 1 << 20, &m, &n, &code, &why), 1);
  r = hfpb__reply__unpack(NULL, n, m);
  CHECK(r && r->rpc && r->rpc->data.len == sizeof raw &&
        memcmp(r->rpc->data.data, raw, sizeof raw) == 0);
  hfpb__reply__free_unpacked(r, NULL);
  CHECK_INT(pb_next((const uint8_t *)out.p, out.len, &off, 1 << 20, &m, &n, &code, &why), 1);
  r = hfpb__reply__unpack(NULL, n, m);
  CHECK(r && r->rpc);
  if (r && r->rpc)
    CHECK_MEM(r->rpc->data.data, r->rpc->data.len, "[1]");
  hfpb__reply__free_unpacked(r, NULL);

  /* b64data that is not base64, or where the message has no bytes data */
  static const char *const bad[] = {"{\"push\":{\"pub\":{\"b64data\":\"A*==\"}}}",
                                    "{\"push\":{\"pub\":{\"b64data\":1}}}",
                                    "{\"push\":{\"b64data\":\"AAAA\"}}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    jw_reset(&out);
    if (pb_from_json(&out, bad[i], strlen(bad[i])) != -1)
      HF_T_FAILF("accepted %s", bad[i]);
  }
  jw_free(&j);
  jw_free(&out);
  free(d);
}

int main(void) {
  hf_t_suite = "pbcodec";
  RUN_TEST(pb_binary_data);
  RUN_TEST(pb_prefixes);
  RUN_TEST(pb_commands);
  RUN_TEST(pb_replies);
  RUN_TEST(pb_variant_matches_protobuf_c);
  TEST_MAIN_END();
}
