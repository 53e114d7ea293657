/* SPDX-License-Identifier: MIT */
/* Operator tools, as Centrifugo users know them (prefix tok_):
 *   holdfast genconfig [-o FILE] [--force]
 *   holdfast gentoken --config FILE --user U [--ttl D] [--channels a,b] [--info JSON]
 *   holdfast checktoken [--config FILE] TOKEN
 * genconfig writes a starter configuration with fresh random secrets;
 * gentoken signs a connection token with the configured HMAC secret;
 * checktoken verifies a token with the configured keys exactly as the
 * server does and says why it would be refused. */
#include "../tools/tokens.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "auth/jwt.h"
#include "auth/tokenkeys.h"
#include "config.h"
#include "hf/loop.h"

static int random_hex(char *out, size_t bytes) {
  unsigned char b[64];
  if (bytes > sizeof b || getrandom(b, bytes, 0) != (ssize_t)bytes)
    return -1;
  for (size_t i = 0; i < bytes; i++)
    snprintf(out + 2 * i, 3, "%02x", b[i]);
  return 0;
}

/* argv of a tool with the program name first, for getopt. */
static char **with_prog(int argc, char **argv, const char *prog) {
  char **av = calloc((size_t)argc + 2, sizeof *av);
  if (!av)
    return NULL;
  av[0] = (char *)prog;
  for (int i = 0; i < argc; i++)
    av[i + 1] = argv[i];
  optind = 0;
  return av;
}

/* ---- genconfig -------------------------------------------------------------------- */

int tok_genconfig_main(int argc, char **argv) {
  const char *path = NULL;
  int force = 0, o;
  static const struct option lo[] = {{"output", required_argument, 0, 'o'},
                                     {"force", no_argument, 0, 'f'},
                                     {"help", no_argument, 0, 'h'},
                                     {0, 0, 0, 0}};
  char **av = with_prog(argc, argv, "holdfast genconfig");
  if (!av)
    return 1;
  while ((o = getopt_long(argc + 1, av, "o:fh", lo, NULL)) != -1) {
    switch (o) {
    case 'o': path = optarg; break;
    case 'f': force = 1; break;
    case 'h':
      printf("usage: holdfast genconfig [-o FILE] [--force]\n"
             "Print (or write to FILE) a starter configuration: a fresh HMAC token\n"
             "secret and server API key, the server API and metrics on an internal\n"
             "port, one namespace \"chat\" with history, recovery, presence and\n"
             "join/leave. Then: holdfast serve --config FILE, and\n"
             "holdfast gentoken --config FILE --user 42 for a connection token.\n");
      free(av);
      return 0;
    default: free(av); return 2;
    }
  }
  free(av);
  char secret[65], key[65];
  if (random_hex(secret, 32) < 0 || random_hex(key, 32) < 0) {
    fprintf(stderr, "holdfast genconfig: no randomness available\n");
    return 1;
  }
  char text[2048];
  int n = snprintf(
      text, sizeof text,
      "{\n"
      "  \"client\": {\n"
      "    \"token\": {\"hmac_secret_key\": \"%s\"},\n"
      "    \"allowed_origins\": [\"http://localhost:3000\"]\n"
      "  },\n"
      "  \"http_api\": {\"key\": \"%s\"},\n"
      "  \"http_server\": {\"port\": 8000, \"internal_port\": 9000},\n"
      "  \"channel\": {\n"
      "    \"without_namespace\": {\"allow_subscribe_for_client\": true},\n"
      "    \"namespaces\": [\n"
      "      {\"name\": \"chat\", \"history_size\": 100, \"history_ttl\": \"300s\",\n"
      "       \"force_recovery\": true, \"presence\": true, \"join_leave\": true,\n"
      "       \"allow_subscribe_for_client\": true, \"allow_publish_for_subscriber\": true,\n"
      "       \"allow_history_for_subscriber\": true, \"allow_presence_for_subscriber\": true}\n"
      "    ]\n"
      "  }\n"
      "}\n",
      secret, key);
  if (n <= 0 || (size_t)n >= sizeof text)
    return 1;
  if (!path) {
    fputs(text, stdout);
    return 0;
  }
  FILE *f = fopen(path, force ? "w" : "wx"); /* never overwrite secrets by accident */
  if (!f) {
    fprintf(stderr, "holdfast genconfig: cannot create %s: %s%s\n", path, strerror(errno),
            errno == EEXIST ? " (use --force to overwrite)" : "");
    return 1;
  }
  int ok = fputs(text, f) >= 0;
  ok = fclose(f) == 0 && ok;
  if (!ok) {
    fprintf(stderr, "holdfast genconfig: cannot write %s\n", path);
    return 1;
  }
  fprintf(stderr, "holdfast genconfig: wrote %s (keep it secret: it holds the token secret "
                  "and the API key)\n", path);
  return 0;
}

/* ---- loading a configuration ----------------------------------------------------- */

static int load(srv_config *cfg, const char *path) {
  srv_config_init(cfg);
  if (!path)
    return 0;
  char *args[2] = {"--config", (char *)path};
  int r = srv_config_load(cfg, 2, args, stderr);
  return r == 0 ? 0 : -1;
}

static int parse_secs(const char *s, long long *out) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || v < 0)
    return -1;
  double mul = 1;
  if (!strcmp(end, "ms"))
    mul = 0.001;
  else if (!strcmp(end, "s") || !*end)
    mul = 1;
  else if (!strcmp(end, "m"))
    mul = 60;
  else if (!strcmp(end, "h"))
    mul = 3600;
  else if (!strcmp(end, "d"))
    mul = 86400;
  else
    return -1;
  *out = (long long)(v * mul);
  return 0;
}

/* ---- gentoken ------------------------------------------------------------------------ */

int tok_gentoken_main(int argc, char **argv) {
  const char *path = NULL, *user = NULL, *channels = NULL, *info = NULL, *alg = "HS256";
  long long ttl = 3600;
  int o;
  static const struct option lo[] = {{"config", required_argument, 0, 'c'},
                                     {"user", required_argument, 0, 'u'},
                                     {"ttl", required_argument, 0, 't'},
                                     {"channels", required_argument, 0, 'C'},
                                     {"info", required_argument, 0, 'i'},
                                     {"alg", required_argument, 0, 'a'},
                                     {"help", no_argument, 0, 'h'},
                                     {0, 0, 0, 0}};
  char **av = with_prog(argc, argv, "holdfast gentoken");
  if (!av)
    return 1;
  while ((o = getopt_long(argc + 1, av, "c:u:t:C:i:a:h", lo, NULL)) != -1) {
    switch (o) {
    case 'c': path = optarg; break;
    case 'u': user = optarg; break;
    case 'C': channels = optarg; break;
    case 'i': info = optarg; break;
    case 'a': alg = optarg; break;
    case 't':
      if (parse_secs(optarg, &ttl) < 0) {
        fprintf(stderr, "holdfast gentoken: --ttl %s: want a duration like 3600, 90s, 15m, 24h, "
                        "7d (0: no expiry)\n", optarg);
        free(av);
        return 2;
      }
      break;
    case 'h':
      printf("usage: holdfast gentoken --config FILE --user USER [--ttl 1h] [--channels a,b]\n"
             "                         [--info JSON] [--alg HS256|HS384|HS512]\n"
             "Print a connection token signed with client.token.hmac_secret_key of FILE:\n"
             "sub = USER, exp = now + ttl (0: none), channels (server-side\n"
             "subscriptions) and info (conn_info) when given.\n");
      free(av);
      return 0;
    default: free(av); return 2;
    }
  }
  free(av);
  if (!user) {
    fprintf(stderr, "holdfast gentoken: --user is required (the token's sub; \"\" for an "
                    "anonymous user)\n");
    return 2;
  }
  srv_config cfg;
  if (load(&cfg, path) < 0) {
    srv_config_free(&cfg);
    return 2;
  }
  int rc = 1;
  if (!*cfg.token_hmac_secret) {
    fprintf(stderr, "holdfast gentoken: %s has no client.token.hmac_secret_key: gentoken signs "
                    "HMAC tokens (RSA, ECDSA and JWKS keys in a configuration are public "
                    "keys; sign such tokens where the private key is)\n",
            path ? path : "the configuration");
    goto out;
  }
  json_int_t now = (json_int_t)(hf_wall_ms() / 1000u); /* the server's clock */
  json_t *claims = json_pack("{s:s,s:I}", "sub", user, "iat", now);
  if (ttl > 0)
    json_object_set_new(claims, "exp", json_integer(now + ttl));
  if (*cfg.token_audience)
    json_object_set_new(claims, "aud", json_string(cfg.token_audience));
  if (*cfg.token_issuer)
    json_object_set_new(claims, "iss", json_string(cfg.token_issuer));
  if (channels) {
    json_t *a = json_array();
    for (const char *p = channels; *p;) {
      const char *comma = strchr(p, ',');
      size_t n = comma ? (size_t)(comma - p) : strlen(p);
      if (n)
        json_array_append_new(a, json_stringn(p, n));
      p += n + (comma ? 1 : 0);
    }
    json_object_set_new(claims, "channels", a);
  }
  if (info) {
    json_error_t je;
    json_t *v = json_loads(info, JSON_DECODE_ANY, &je);
    if (!v) {
      fprintf(stderr, "holdfast gentoken: --info is not JSON: %s\n", je.text);
      json_decref(claims);
      rc = 2;
      goto out;
    }
    json_object_set_new(claims, "info", v);
  }
  char *payload = json_dumps(claims, JSON_COMPACT);
  json_decref(claims);
  char tok[16384];
  if (!payload || tk_sign_hmac(alg, cfg.token_hmac_secret, payload, tok, sizeof tok) < 0) {
    fprintf(stderr, "holdfast gentoken: cannot sign (--alg must be HS256, HS384 or HS512)\n");
    free(payload);
    rc = 2;
    goto out;
  }
  free(payload);
  printf("%s\n", tok);
  rc = 0;
out:
  srv_config_free(&cfg);
  return rc;
}

/* ---- checktoken ---------------------------------------------------------------------- */

/* The payload of a token, decoded without verifying (for explanations). */
static json_t *peek(const char *tok, int part) {
  const char *p = tok;
  for (int i = 0; i < part && p; i++)
    if ((p = strchr(p, '.')))
      p++;
  if (!p)
    return NULL;
  const char *end = strchr(p, '.');
  size_t n = end ? (size_t)(end - p) : strlen(p);
  if (!n || n > 12000)
    return NULL;
  char b64[12004];
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    b64[m++] = p[i] == '-' ? '+' : p[i] == '_' ? '/' : p[i];
  while (m % 4)
    b64[m++] = '=';
  unsigned char raw[9100];
  int got = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)m);
  if (got < 0)
    return NULL;
  while (m && b64[m - 1] == '=') { /* DecodeBlock counts padding as zeros */
    got--;
    m--;
  }
  json_error_t je;
  return json_loadb((const char *)raw, (size_t)got, 0, &je);
}

int tok_checktoken_main(int argc, char **argv) {
  const char *path = NULL;
  int o;
  static const struct option lo[] = {{"config", required_argument, 0, 'c'},
                                     {"help", no_argument, 0, 'h'},
                                     {0, 0, 0, 0}};
  char **av = with_prog(argc, argv, "holdfast checktoken");
  if (!av)
    return 1;
  while ((o = getopt_long(argc + 1, av, "c:h", lo, NULL)) != -1) {
    switch (o) {
    case 'c': path = optarg; break;
    case 'h':
      printf("usage: holdfast checktoken [--config FILE] TOKEN\n"
             "Verify TOKEN with the keys, audience and issuer of FILE exactly as the\n"
             "server does. Exit 0 and print its claims when the server would accept\n"
             "it; exit 1 and say why not otherwise.\n");
      free(av);
      return 0;
    default: free(av); return 2;
    }
  }
  const char *tok = optind < argc + 1 ? av[optind] : NULL;
  free(av);
  if (!tok) {
    fprintf(stderr, "holdfast checktoken: give the token to check\n");
    return 2;
  }
  srv_config cfg;
  if (load(&cfg, path) < 0) {
    srv_config_free(&cfg);
    return 2;
  }
  int rc = 1;
  char err[300];
  srv_jwt_keys *keys = tk_keys(&cfg, err, sizeof err);
  if (!keys) {
    printf("cannot check: %s\n", *err ? err : "the configuration has no token key "
                                               "(client.token.hmac_secret_key, rsa_public_key, "
                                               "ecdsa_public_key or jwks_file)");
    goto out;
  }
  json_t *claims = NULL;
  int64_t now = (int64_t)(hf_wall_ms() / 1000u); /* as the server reads it */
  srv_jwt_status st =
      srv_jwt_verify(keys, tok, now, cfg.token_audience, cfg.token_issuer, &claims);
  json_t *head = peek(tok, 0), *body = claims ? json_incref(claims) : peek(tok, 1);
  const char *alg = json_string_value(json_object_get(head, "alg"));
  switch (st) {
  case SRV_JWT_OK:
    printf("valid: the server accepts this token\n");
    rc = 0;
    break;
  case SRV_JWT_MALFORMED:
    printf("refused: malformed (not header.payload.signature in base64url, not JSON, or a "
           "registered claim of the wrong type)\n");
    break;
  case SRV_JWT_ALG:
    printf("refused: algorithm %s%s%s has no configured key (HS* need "
           "client.token.hmac_secret_key; RS* rsa_public_key or a JWKS RSA key; ES* "
           "ecdsa_public_key or a JWKS EC key; EdDSA a JWKS OKP key; \"none\" is never "
           "accepted)\n",
           alg ? "\"" : "", alg ? alg : "(none given)", alg ? "\"" : "");
    break;
  case SRV_JWT_SIGNATURE:
    printf("refused: the %s signature does not verify with the configured key(s): signed "
           "with another secret or private key\n", alg ? alg : "");
    break;
  case SRV_JWT_EXPIRED: {
    json_t *exp = json_object_get(body, "exp"), *nbf = json_object_get(body, "nbf");
    if (json_is_number(nbf) && (int64_t)json_number_value(nbf) > now)
      printf("refused: not valid yet (nbf is %lld s in the future)\n",
             (long long)((int64_t)json_number_value(nbf) - now));
    else
      printf("refused: expired %lld s ago (exp %lld, now %lld); the server answers 109 to a "
             "connect with it, and the SDK asks for a new token\n",
             json_is_number(exp) ? (long long)(now - (int64_t)json_number_value(exp)) : 0LL,
             json_is_number(exp) ? (long long)json_number_value(exp) : 0LL, (long long)now);
    break;
  }
  case SRV_JWT_AUDIENCE: {
    char *aud = json_dumps(json_object_get(body, "aud"), JSON_ENCODE_ANY | JSON_COMPACT);
    printf("refused: audience %s does not include client.token.audience \"%s\"\n",
           aud ? aud : "(none)", cfg.token_audience);
    free(aud);
    break;
  }
  case SRV_JWT_ISSUER:
    printf("refused: issuer \"%s\" is not client.token.issuer \"%s\"\n",
           json_string_value(json_object_get(body, "iss")) ? json_string_value(json_object_get(body, "iss")) : "(none)",
           cfg.token_issuer);
    break;
  }
  if (body) {
    char *text = json_dumps(body, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (text)
      printf("claims%s:\n%s\n", st == SRV_JWT_OK ? "" : " (unverified)", text);
    free(text);
    json_t *exp = json_object_get(body, "exp");
    if (st == SRV_JWT_OK && json_is_number(exp))
      printf("expires in %lld s\n", (long long)((int64_t)json_number_value(exp) - now));
    else if (st == SRV_JWT_OK)
      printf("never expires (no exp claim)\n");
  }
  json_decref(head);
  json_decref(body);
  json_decref(claims);
  srv_jwt_keys_free(keys);
out:
  srv_config_free(&cfg);
  return rc;
}
