/* SPDX-License-Identifier: MIT */
/* Unit tests of the event proxy's configuration (evproxy/evproxy.h): v6 keys to
 * endpoints, named proxies, namespace and RPC namespace resolution, header
 * capture (only the names some proxy asks for, never CR/LF), base64. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

#include "evproxy/evproxy.h"

/* Load cfg JSON (file-style) into px through the real configuration path. */
static int load(px_config *px, chan_config *cc, const char *file_json, char *err, size_t cap) {
  char path[] = "/tmp/hf-px-unit-XXXXXX";
  int fd = mkstemp(path);
  FILE *f = fdopen(fd, "w");
  fputs(file_json, f);
  fclose(f);
  srv_config cfg;
  srv_config_init(&cfg);
  char *argv[] = {"--config", path};
  memset(px, 0, sizeof *px);
  memset(cc, 0, sizeof *cc);
  FILE *ef = fmemopen(err, cap, "w");
  int r = srv_config_load(&cfg, 2, argv, ef);
  if (r == 0) {
    r = chan_config_load(cc, cfg.channel_without_ns, cfg.channel_namespaces, 255, false,
                         NULL, ef);
    if (r == 0)
      r = px_config_load(px, &cfg, cc, ef);
  }
  fclose(ef);
  srv_config_free(&cfg);
  unlink(path);
  return r;
}

static void proxy_config_defaults_and_named(void) {
  px_config px;
  chan_config cc;
  char err[512] = "";
  int r = load(&px, &cc,
               "{\"client\":{\"proxy\":{\"connect\":{\"enabled\":true,\"endpoint\":\"http://a/c\","
               "\"http_headers\":[\"Cookie\"],\"http\":{\"static_headers\":{\"X-A\":\"1\"}}},"
               "\"refresh\":{\"enabled\":false,\"endpoint\":\"http://a/r\"}}},"
               "\"channel\":{\"proxy\":{\"subscribe\":{\"endpoint\":\"http://a/s\",\"timeout\":\"250ms\"}},"
               "\"namespaces\":[{\"name\":\"x\",\"subscribe_proxy_enabled\":true},"
               "{\"name\":\"y\",\"publish_proxy_enabled\":true,\"publish_proxy_name\":\"pub1\"}]},"
               "\"proxies\":[{\"name\":\"pub1\",\"endpoint\":\"https://b/p\"},"
               "{\"name\":\"rpc1\",\"endpoint\":\"http://b/rpc\",\"binary_encoding\":true}],"
               "\"rpc\":{\"namespaces\":[{\"name\":\"app\",\"proxy_enabled\":true,\"proxy_name\":\"rpc1\"}]}}",
               err, sizeof err);
  CHECK_INT(r, 1);
  if (r != 1) {
    fprintf(stderr, "%s\n", err);
    return;
  }
  CHECK(px.connect_enabled);
  CHECK(!px.refresh_enabled); /* enabled:false: configured but off */
  const px_endpoint *c = &px.ep[px.ev_ep[PX_CONNECT]];
  CHECK_STR(c->endpoint, "http://a/c");
  CHECK_INT(c->timeout_ms, 1000); /* the v6 default */
  CHECK_INT(c->n_http_headers, 1);
  CHECK_STR(c->static_headers[0], "X-A: 1");
  CHECK_INT(px.ep[px.ev_ep[PX_SUBSCRIBE]].timeout_ms, 250);
  const chan_ns *x = &cc.ns[0], *y = &cc.ns[1];
  CHECK_INT(px_channel_endpoint(&px, PX_SUBSCRIBE, x), px.ev_ep[PX_SUBSCRIBE]);
  CHECK_INT(px_channel_endpoint(&px, PX_PUBLISH, x), -1);
  int pub = px_channel_endpoint(&px, PX_PUBLISH, y);
  CHECK(pub >= 0 && strcmp(px.ep[pub].name, "pub1") == 0);
  CHECK_INT(px_channel_endpoint(&px, PX_SUBSCRIBE, &cc.without_ns), -1);
  int rpc = px_rpc_endpoint(&px, "app:do", 6);
  CHECK(rpc >= 0 && px.ep[rpc].binary);
  CHECK_INT(px_rpc_endpoint(&px, "do", 2), -1);      /* no without_namespace proxy */
  CHECK_INT(px_rpc_endpoint(&px, "other:do", 8), -1); /* unknown RPC namespace */
  px_config_free(&px);
  chan_config_free(&cc);
}

static void proxy_config_errors(void) {
  static const struct {
    const char *cfg, *want;
  } cases[] = {
      {"{\"channel\":{\"without_namespace\":{\"sub_refresh_proxy_enabled\":true}}}",
       "channel.without_namespace.sub_refresh_proxy_enabled"},
      {"{\"rpc\":{\"without_namespace\":{\"proxy_enabled\":true,\"proxy_name\":\"zz\"}}}",
       "rpc.without_namespace"},
      {"{\"proxies\":[{\"name\":\"default\",\"endpoint\":\"http://a/\"}]}", "not \"default\""},
      {"{\"rpc\":{\"proxy\":{\"endpoint\":\"ftp://a/\"}}}", "http:// or https://"},
      {"{\"client\":{\"proxy\":{\"connect\":{\"enabled\":true,\"endpoint\":\"http://a/\","
       "\"http_headers\":[\"Bad: header\"]}}}}", "http_headers"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    px_config px;
    chan_config cc;
    char err[512] = "";
    int r = load(&px, &cc, cases[i].cfg, err, sizeof err);
    CHECK_INT(r, -1);
    if (!strstr(err, cases[i].want))
      HF_T_FAILF("case %zu: error %s lacks %s", i, err, cases[i].want);
    px_config_free(&px);
    chan_config_free(&cc);
  }
}

static void proxy_header_capture(void) {
  px_config px;
  chan_config cc;
  char err[512] = "";
  CHECK_INT(load(&px, &cc,
                 "{\"rpc\":{\"proxy\":{\"endpoint\":\"http://a/\",\"http_headers\":"
                 "[\"cookie\",\"X-Real-Ip\"]}}}",
                 err, sizeof err),
            1);
  hf_http_header h[] = {{"Host", 4, "x", 1},
                        {"Cookie", 6, "s=1", 3},
                        {"X-Other", 7, "no", 2},
                        {"X-REAL-IP", 9, "1.2.3.4", 7}};
  hf_http_request req = {0};
  req.headers = h;
  req.num_headers = 4;
  char *got = px_capture_headers(&px, &req);
  CHECK_STR(got, "Cookie: s=1\nX-REAL-IP: 1.2.3.4\n");
  free(got);
  req.num_headers = 1; /* nothing wanted */
  CHECK(px_capture_headers(&px, &req) == NULL);
  jw_buf b;
  jw_init(&b);
  px_b64_str(&b, "{\"x\":1}", 7);
  CHECK_MEM(b.p, b.len, "\"eyJ4IjoxfQ==\"");
  jw_free(&b);
  px_config_free(&px);
  chan_config_free(&cc);
}

int main(void) {
  hf_t_suite = "unit/evproxy";
  RUN_TEST(proxy_config_defaults_and_named);
  RUN_TEST(proxy_config_errors);
  RUN_TEST(proxy_header_capture);
  TEST_MAIN_END();
}
