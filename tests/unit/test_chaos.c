/* SPDX-License-Identifier: MIT */
/* Unit tests for `holdfast chaos`'s rules and stream tracker
 * (tools/chaos_rules.c, tools/chaos_track.c): every rule from its flag text
 * and every refusal with its message; JSON documents (direction, up/down,
 * per-connection rules) and their errors, a failed parse leaving the rules
 * unchanged, the JSON form read back to the same rules; the tracker on
 * request and response heads (101, other statuses, too long, malformed),
 * frame boundaries and close codes fed whole, byte by byte and at every
 * split, the mid-frame cut point, and the Upgrade stripper. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tools/chaos.h"
#include "hf/frame.h"
#include "test.h"

/* ---- rules --------------------------------------------------------------- */

static void rules_default_is_all_off(void) {
  chaos_rules r;
  chaos_rules_init(&r);
  for (int d = 0; d < 2; d++) {
    CHECK(r.dir[d].latency_ms == 0 && r.dir[d].jitter_ms == 0 && r.dir[d].bandwidth == 0);
    CHECK(r.dir[d].cut_after_bytes == CHAOS_OFF && r.dir[d].blackhole_after_ms == CHAOS_OFF);
  }
  CHECK(r.cut_after_ms == CHAOS_OFF && r.idle_kill_ms == CHAOS_OFF);
  CHECK(!r.cut_rst && !r.cut_mid_frame && !r.strip_upgrade && !r.refuse && !r.respond);
  json_t *j = chaos_rules_json(&r);
  CHECK_INT(json_object_size(j), 0);
  json_decref(j);
}

static void rules_set_every_rule(void) {
  chaos_rules r;
  char err[512];
  chaos_rules_init(&r);
  CHECK_INT(chaos_rules_set(&r, "latency", "100ms", CHAOS_DIR_BOTH, err, sizeof err), 0);
  CHECK_INT(chaos_rules_set(&r, "jitter", "1s", CHAOS_DIR_UP, err, sizeof err), 0);
  CHECK_INT(chaos_rules_set(&r, "bandwidth", "1000", CHAOS_DIR_DOWN, err, sizeof err), 0);
  CHECK_INT(chaos_rules_set(&r, "cut-after-bytes", "4096", CHAOS_DIR_UP, err, sizeof err), 0);
  CHECK_INT(chaos_rules_set(&r, "blackhole-after", "1m30s", CHAOS_DIR_DOWN, err, sizeof err), 0);
  CHECK_INT(chaos_rules_set(&r, "cut-after", "5s", CHAOS_DIR_BOTH, err, sizeof err), 0);
  CHECK_INT(chaos_rules_set(&r, "idle-kill", "250ms", CHAOS_DIR_BOTH, err, sizeof err), 0);
  CHECK_INT(chaos_rules_set(&r, "cut-mode", "rst", CHAOS_DIR_BOTH, err, sizeof err), 0);
  CHECK_INT(chaos_rules_set(&r, "cut-mid-frame", NULL, CHAOS_DIR_BOTH, err, sizeof err), 0);
  CHECK_INT(chaos_rules_set(&r, "strip-upgrade", "true", CHAOS_DIR_BOTH, err, sizeof err), 0);
  CHECK_INT(chaos_rules_set(&r, "refuse", "false", CHAOS_DIR_BOTH, err, sizeof err), 0);
  CHECK_INT(chaos_rules_set(&r, "from", "upgrade", CHAOS_DIR_BOTH, err, sizeof err), 0);
  CHECK_INT(chaos_rules_set(&r, "respond", "503", CHAOS_DIR_BOTH, err, sizeof err), 0);
  CHECK_INT(chaos_rules_set(&r, "respond-body", "bye\n", CHAOS_DIR_BOTH, err, sizeof err), 0);
  CHECK_INT(r.dir[CHAOS_UP].latency_ms, 100);
  CHECK_INT(r.dir[CHAOS_DOWN].latency_ms, 100);
  CHECK_INT(r.dir[CHAOS_UP].jitter_ms, 1000);
  CHECK_INT(r.dir[CHAOS_DOWN].jitter_ms, 0);
  CHECK_INT(r.dir[CHAOS_DOWN].bandwidth, 1000);
  CHECK_INT(r.dir[CHAOS_UP].bandwidth, 0);
  CHECK_INT(r.dir[CHAOS_UP].cut_after_bytes, 4096);
  CHECK(r.dir[CHAOS_DOWN].cut_after_bytes == CHAOS_OFF);
  CHECK_INT(r.dir[CHAOS_DOWN].blackhole_after_ms, 90000);
  CHECK_INT(r.cut_after_ms, 5000);
  CHECK_INT(r.idle_kill_ms, 250);
  CHECK_INT(r.cut_rst, 1);
  CHECK_INT(r.cut_mid_frame, 1);
  CHECK_INT(r.strip_upgrade, 1);
  CHECK_INT(r.refuse, 0);
  CHECK_INT(r.from_upgrade, 1);
  CHECK_INT(r.respond, 503);
  CHECK_STR(r.respond_body, "bye\n");
  CHECK_INT(chaos_rules_set(&r, "cut-mode", "fin", CHAOS_DIR_BOTH, err, sizeof err), 0);
  CHECK_INT(r.cut_rst, 0);
  CHECK_INT(chaos_rules_set(&r, "cut-after", "0", CHAOS_DIR_BOTH, err, sizeof err), 0);
  CHECK_INT(r.cut_after_ms, 0);
}

/* set NAME=VALUE must fail with a message containing every `want` part */
static void expect_set_error(const char *name, const char *value, unsigned dirs,
                             const char *want1, const char *want2) {
  chaos_rules r, before;
  char err[512] = "";
  chaos_rules_init(&r);
  before = r;
  CHECK_INT(chaos_rules_set(&r, name, value, dirs, err, sizeof err), -1);
  if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
    HF_T_FAILF("%s=%s: message \"%s\" lacks \"%s\"/\"%s\"", name, value ? value : "(null)",
               err, want1, want2 ? want2 : "");
  CHECK(memcmp(&r, &before, sizeof r) == 0);
}

static void rules_set_refusals(void) {
  expect_set_error("latency", "abc", CHAOS_DIR_BOTH, "latency = \"abc\"", "duration");
  expect_set_error("latency", "5", CHAOS_DIR_BOTH, "duration", NULL);
  expect_set_error("latency", "25h", CHAOS_DIR_BOTH, "up to 24h", NULL);
  expect_set_error("jitter", "-1ms", CHAOS_DIR_BOTH, "jitter", "duration");
  expect_set_error("bandwidth", "0", CHAOS_DIR_BOTH, "positive whole number", NULL);
  expect_set_error("bandwidth", "1k", CHAOS_DIR_BOTH, "bandwidth = \"1k\"", NULL);
  expect_set_error("cut-after-bytes", "-3", CHAOS_DIR_BOTH, "positive", NULL);
  expect_set_error("refuse", "yes", CHAOS_DIR_BOTH, "true or false", NULL);
  expect_set_error("cut-mode", "kill", CHAOS_DIR_BOTH, "fin or rst", NULL);
  expect_set_error("from", "connect", CHAOS_DIR_BOTH, "accept or upgrade", NULL);
  expect_set_error("respond", "101", CHAOS_DIR_BOTH, "other than 101", NULL);
  expect_set_error("respond", "99", CHAOS_DIR_BOTH, "HTTP status", NULL);
  expect_set_error("respond", "600", CHAOS_DIR_BOTH, "HTTP status", NULL);
  expect_set_error("nonsense", "1", CHAOS_DIR_BOTH, "unknown rule \"nonsense\"", "idle-kill");
  expect_set_error("cut-after", "1s", CHAOS_DIR_UP, "whole connection", NULL);
  char big[600];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  expect_set_error("respond-body", big, CHAOS_DIR_BOTH, "shorter than 512", NULL);
}

static void ruleset_parse_document(void) {
  const char *doc = "{\"direction\":\"down\",\"latency\":\"20ms\",\"cut-after\":\"3s\","
                    "\"up\":{\"bandwidth\":500,\"blackhole-after\":\"2s\"},"
                    "\"down\":{\"jitter\":\"5ms\"},\"strip-upgrade\":true,"
                    "\"connections\":{\"3\":{\"refuse\":true},\"7\":{\"respond\":502}}}";
  chaos_ruleset rs;
  char err[512];
  chaos_ruleset_init(&rs);
  CHECK_INT(chaos_ruleset_parse(&rs, doc, strlen(doc), err, sizeof err), 0);
  CHECK_INT(rs.all.dir[CHAOS_DOWN].latency_ms, 20);
  CHECK_INT(rs.all.dir[CHAOS_UP].latency_ms, 0);
  CHECK_INT(rs.all.dir[CHAOS_DOWN].jitter_ms, 5);
  CHECK_INT(rs.all.dir[CHAOS_UP].bandwidth, 500);
  CHECK_INT(rs.all.dir[CHAOS_UP].blackhole_after_ms, 2000);
  CHECK_INT(rs.all.cut_after_ms, 3000);
  CHECK_INT(rs.all.strip_upgrade, 1);
  CHECK_INT(rs.nconn, 2);
  CHECK_INT(chaos_ruleset_for(&rs, 3)->refuse, 1);
  CHECK_INT(chaos_ruleset_for(&rs, 3)->strip_upgrade, 0); /* replaces, not merges */
  CHECK_INT(chaos_ruleset_for(&rs, 7)->respond, 502);
  CHECK(chaos_ruleset_for(&rs, 4) == &rs.all);
  /* the JSON form reads back to the same rules */
  json_t *j = chaos_ruleset_json(&rs);
  char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
  chaos_ruleset back;
  CHECK_INT(chaos_ruleset_parse(&back, text, strlen(text), err, sizeof err), 0);
  json_t *j2 = chaos_ruleset_json(&back);
  char *text2 = json_dumps(j2, JSON_COMPACT | JSON_SORT_KEYS);
  CHECK_STR(text2, text);
  free(text);
  free(text2);
  json_decref(j);
  json_decref(j2);
  /* an empty document clears everything */
  CHECK_INT(chaos_ruleset_parse(&rs, "{}", 2, err, sizeof err), 0);
  CHECK_INT(rs.nconn, 0);
  CHECK(rs.all.cut_after_ms == CHAOS_OFF && rs.all.dir[CHAOS_DOWN].latency_ms == 0);
}

static void expect_parse_error(const char *doc, const char *want) {
  chaos_ruleset rs;
  char err[512] = "";
  chaos_ruleset_init(&rs);
  rs.all.cut_after_ms = 42; /* must survive a failed parse */
  CHECK_INT(chaos_ruleset_parse(&rs, doc, strlen(doc), err, sizeof err), -1);
  if (!strstr(err, want))
    HF_T_FAILF("%s: message \"%s\" lacks \"%s\"", doc, err, want);
  CHECK_INT(rs.all.cut_after_ms, 42);
}

static void ruleset_parse_refusals(void) {
  expect_parse_error("{nope", "not JSON");
  expect_parse_error("", "not JSON");
  expect_parse_error("[1]", "expected a JSON object");
  expect_parse_error("{\"latency\":\"1s\",\"latency\":\"2s\"}", "not JSON");
  expect_parse_error("{\"latency\":5}", "latency = \"5\"");
  expect_parse_error("{\"latency\":[1]}", "latency: expected a string");
  expect_parse_error("{\"refuse\":\"maybe\"}", "true or false");
  expect_parse_error("{\"what\":1}", "unknown rule \"what\"");
  expect_parse_error("{\"direction\":\"sideways\"}", "direction");
  expect_parse_error("{\"up\":5}", "up: expected an object");
  expect_parse_error("{\"down\":{\"refuse\":true}}", "down.refuse");
  expect_parse_error("{\"down\":{\"lag\":\"1s\"}}", "unknown rule \"lag\"");
  expect_parse_error("{\"connections\":[]}", "connections: expected an object");
  expect_parse_error("{\"connections\":{\"x\":{}}}", "connections.x: expected a connection number");
  expect_parse_error("{\"connections\":{\"0\":{}}}", "connections.0");
  expect_parse_error("{\"connections\":{\"2\":1}}", "connections.2: expected an object");
  expect_parse_error("{\"connections\":{\"2\":{\"connections\":{}}}}", "cannot nest");
  expect_parse_error("{\"connections\":{\"2\":{\"idle-kill\":\"soon\"}}}",
                     "connections.2: idle-kill");
  char doc[4096];
  size_t o = (size_t)snprintf(doc, sizeof doc, "{\"connections\":{");
  for (int i = 1; i <= CHAOS_MAX_CONN_RULES + 1; i++)
    o += (size_t)snprintf(doc + o, sizeof doc - o, "%s\"%d\":{}", i > 1 ? "," : "", i);
  snprintf(doc + o, sizeof doc - o, "}}");
  expect_parse_error(doc, "at most 64");
}

/* ---- tracker --------------------------------------------------------------- */

static const char REQ[] = "GET /connection/websocket HTTP/1.1\r\nHost: x\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n";
static const char RESP101[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\n\r\n";

/* Append a frame (header by hf_frame_header) with payload n bytes of c. */
static size_t put(uint8_t *out, int fin, int op, size_t n, int masked, uint8_t c) {
  uint8_t key[4] = {1, 2, 3, 4};
  size_t h = hf_frame_header(out, fin, op, n, masked ? key : NULL);
  memset(out + h, c, n);
  if (masked)
    hf_frame_mask(out + h, n, key, 0);
  return h + n;
}

static size_t put_close(uint8_t *out, unsigned code, int masked) {
  uint8_t key[4] = {9, 8, 7, 6}, pl[2] = {(uint8_t)(code >> 8), (uint8_t)code};
  size_t h = hf_frame_header(out, 1, HF_OP_CLOSE, 2, masked ? key : NULL);
  memcpy(out + h, pl, 2);
  if (masked)
    hf_frame_mask(out + h, 2, key, 0);
  return h + 2;
}

/* A request head, then masked frames: text 5, binary 300 (16-bit form),
 * 2 fragments, ping, 70000 (64-bit form), close 1001. */
static size_t client_stream(uint8_t *buf, size_t *head_len) {
  size_t n = strlen(REQ);
  memcpy(buf, REQ, n);
  *head_len = n;
  n += put(buf + n, 1, HF_OP_TEXT, 5, 1, 'a');
  n += put(buf + n, 1, HF_OP_BINARY, 300, 1, 'b');
  n += put(buf + n, 0, HF_OP_TEXT, 3, 1, 'c');
  n += put(buf + n, 1, HF_OP_CONT, 3, 1, 'd');
  n += put(buf + n, 1, HF_OP_PING, 0, 1, 0);
  n += put(buf + n, 1, HF_OP_BINARY, 70000, 1, 'e');
  n += put_close(buf + n, 1001, 1);
  return n;
}

static void track_client_stream_any_split(void) {
  uint8_t *buf = malloc(80000);
  size_t head_len, n = client_stream(buf, &head_len);
  uint8_t *copy = malloc(n);
  memcpy(copy, buf, n);
  /* whole, byte by byte, and cut at every point of the first 400 bytes
   * and some later ones */
  for (size_t step = 0; step < 2; step++) {
    for (size_t cut = 0; cut <= n; cut += cut < 400 ? 1 : 997) {
      chaos_track t = {.request = 1};
      unsigned ev = 0;
      if (step == 0) {
        ev |= chaos_track_feed(&t, buf, cut);
        ev |= chaos_track_feed(&t, buf + cut, n - cut);
      } else {
        if (cut > 0)
          break; /* byte by byte once */
        for (size_t i = 0; i < n; i++)
          ev |= chaos_track_feed(&t, buf + i, 1);
      }
      CHECK_INT(t.head_len, head_len);
      CHECK_INT(t.phase, CHAOS_TRACK_FRAMES);
      CHECK_INT(t.frames, 7);
      CHECK_INT(t.close_code, 1001);
      CHECK_INT(t.bytes, n);
      CHECK_INT(ev, CHAOS_EV_HEAD | CHAOS_EV_CLOSE);
      CHECK_INT(chaos_track_inside_frame(&t), 0);
      chaos_track_free(&t);
      if (hf_t_failed_checks)
        break;
    }
  }
  CHECK(memcmp(copy, buf, n) == 0); /* observe only */
  free(copy);
  free(buf);
}

static void track_response_heads(void) {
  uint8_t buf[512];
  size_t n = strlen(RESP101);
  memcpy(buf, RESP101, n);
  n += put(buf + n, 1, HF_OP_TEXT, 10, 0, 'x');
  n += put_close(buf + n, 3012, 0);
  chaos_track t = {.request = 0};
  unsigned ev = chaos_track_feed(&t, buf, 20);
  CHECK_INT(ev, 0);
  ev = chaos_track_feed(&t, buf + 20, n - 20);
  CHECK_INT(ev, CHAOS_EV_HEAD | CHAOS_EV_CLOSE);
  CHECK_INT(t.status, 101);
  CHECK_INT(t.frames, 2);
  CHECK_INT(t.close_code, 3012);
  chaos_track_free(&t);
  /* any other status: plain HTTP, the body is not read as frames */
  const char *r426 = "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 4\r\n\r\n\x88\x02\x03\xe8";
  chaos_track u = {.request = 0};
  ev = chaos_track_feed(&u, (const uint8_t *)r426, strlen(r426));
  CHECK_INT(ev, CHAOS_EV_HEAD);
  CHECK_INT(u.status, 426);
  CHECK_INT(u.phase, CHAOS_TRACK_RAW);
  CHECK_INT(u.frames, 0);
  chaos_track_free(&u);
  /* bare LF line ends */
  const char *lf = "HTTP/1.1 101 OK\nUpgrade: websocket\n\n";
  chaos_track v = {.request = 0};
  CHECK_INT(chaos_track_feed(&v, (const uint8_t *)lf, strlen(lf)), CHAOS_EV_HEAD);
  CHECK_INT(v.head_len, strlen(lf));
  chaos_track_free(&v);
}

static void track_unobservable_heads_go_raw(void) {
  chaos_track t = {.request = 1};
  const char *bad = "GET / HTTP/1.1\r\nNo colon here\r\n\r\n";
  CHECK_INT(chaos_track_feed(&t, (const uint8_t *)bad, strlen(bad)), 0);
  CHECK_INT(t.phase, CHAOS_TRACK_RAW);
  chaos_track_free(&t);
  chaos_track u = {.request = 1};
  char *big = malloc(CHAOS_HEAD_MAX + 100);
  memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
  memset(big + 19, 'a', CHAOS_HEAD_MAX + 81);
  CHECK_INT(chaos_track_feed(&u, (const uint8_t *)big, CHAOS_HEAD_MAX + 100), 0);
  CHECK_INT(u.phase, CHAOS_TRACK_RAW);
  CHECK_INT(chaos_track_feed(&u, (const uint8_t *)"\r\n\r\n", 4), 0);
  CHECK_INT(u.frames, 0);
  chaos_track_free(&u);
  free(big);
}

/* Feeding exactly the bytes before the mid-frame point leaves the tracker
 * inside a payload with at least one byte on each side. */
static void track_mid_frame_points(void) {
  uint8_t buf[80000];
  size_t head_len, n = client_stream(buf, &head_len);
  chaos_track t = {.request = 1};
  /* in the head phase: never */
  CHECK(chaos_track_mid_frame(&t, buf, n) == SIZE_MAX);
  chaos_track_feed(&t, buf, head_len);
  /* text frame of 5 (header 6): the middle is 6 + 2 */
  CHECK_INT(chaos_track_mid_frame(&t, buf + head_len, n - head_len), 8);
  /* only its header in view: no point yet */
  CHECK(chaos_track_mid_frame(&t, buf + head_len, 6) == SIZE_MAX);
  /* header + 1 payload byte in view: that byte is the point (n) */
  CHECK_INT(chaos_track_mid_frame(&t, buf + head_len, 7), 7);
  /* for every position, the point is inside a payload */
  for (size_t pos = head_len; pos < n; pos += 1 + pos / 500) {
    chaos_track a = {.request = 1};
    chaos_track_feed(&a, buf, pos);
    size_t k = chaos_track_mid_frame(&a, buf + pos, n - pos);
    if (k == SIZE_MAX) { /* only on the close frame's last byte */
      CHECK_INT(pos, n - 1);
    } else {
      CHECK(k <= n - pos);
      chaos_track_feed(&a, buf + pos, k);
      CHECK_INT(chaos_track_inside_frame(&a), 1);
      CHECK(a.in_payload && a.done >= 1 && a.done < a.plen);
    }
    chaos_track_free(&a);
    if (hf_t_failed_checks)
      break;
  }
  /* already inside a payload: the point is now (0) */
  chaos_track b = {.request = 1};
  chaos_track_feed(&b, buf, head_len + 6 + 1);
  CHECK_INT(chaos_track_mid_frame(&b, buf + head_len + 7, 10), 0);
  chaos_track_free(&b);
  chaos_track_free(&t);
  /* a raw stream has no frames */
  chaos_track r = {.request = 0, .phase = CHAOS_TRACK_RAW};
  CHECK(chaos_track_mid_frame(&r, buf, 100) == SIZE_MAX);
}

static void strip_upgrade_fields(void) {
  const char *req = "GET /Upgrade HTTP/1.1\r\nHost: x\r\nupgrade: websocket\r\n"
                    "Upgrade-Insecure-Requests: 1\r\nCONNECTION: keep-alive, Upgrade\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n";
  char out[512];
  int removed = -1;
  long n = chaos_strip_upgrade(req, strlen(req), out, sizeof out, &removed);
  CHECK_INT(removed, 2);
  CHECK_MEM(out, n, "GET /Upgrade HTTP/1.1\r\nHost: x\r\nUpgrade-Insecure-Requests: 1\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n");
  const char *lf = "GET / HTTP/1.1\nUpgrade: websocket\nConnection: Upgrade\n\n";
  n = chaos_strip_upgrade(lf, strlen(lf), out, sizeof out, &removed);
  CHECK_INT(removed, 2);
  CHECK_MEM(out, n, "GET / HTTP/1.1\n\n");
  CHECK_INT(chaos_strip_upgrade(req, strlen(req), out, 10, &removed), -1);
}

int main(void) {
  hf_t_suite = "chaos";
  RUN_TEST(rules_default_is_all_off);
  RUN_TEST(rules_set_every_rule);
  RUN_TEST(rules_set_refusals);
  RUN_TEST(ruleset_parse_document);
  RUN_TEST(ruleset_parse_refusals);
  RUN_TEST(track_client_stream_any_split);
  RUN_TEST(track_response_heads);
  RUN_TEST(track_unobservable_heads_go_raw);
  RUN_TEST(track_mid_frame_points);
  RUN_TEST(strip_upgrade_fields);
  TEST_MAIN_END();
}
