// fuzz-sources: tools/chaos_track.c tools/chaos_rules.c server/config.c
/* SPDX-License-Identifier: MIT */
/* libFuzzer target for `holdfast chaos`'s parsers of untrusted input: the
 * observe-only stream tracker (tools/chaos_track.c: HTTP heads, frame
 * boundaries, the mid-frame cut point, the Upgrade stripper) and the rules
 * documents of POST /rules (tools/chaos_rules.c). The first byte picks the
 * part and the chunking. Invariants: the tracker never changes its input,
 * counts every byte, and the cut point it gives leaves the stream inside a
 * payload; the stripper only removes whole Upgrade/Connection lines; a rules
 * document that parses reads back to the same rules from its JSON form. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../tools/chaos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_track(const uint8_t *p, size_t n, int request, unsigned step) {
  uint8_t *copy = malloc(n ? n : 1);
  memcpy(copy, p, n);
  chaos_track t = {.request = (uint8_t)request};
  size_t off = 0;
  while (off < n) {
    size_t k = step ? step : 1;
    if (k > n - off)
      k = n - off;
    size_t mid = chaos_track_mid_frame(&t, p + off, n - off);
    if (mid != SIZE_MAX) {
      if (mid > n - off)
        __builtin_trap();
      chaos_track probe = t;
      probe.head = NULL; /* not in the head phase here: nothing to share */
      chaos_track_feed(&probe, p + off, mid);
      if (!chaos_track_inside_frame(&probe) || !probe.in_payload || probe.done < 1 ||
          probe.done >= probe.plen)
        __builtin_trap();
    }
    chaos_track_feed(&t, p + off, k);
    off += k;
  }
  if (t.bytes != n || t.frames > n)
    __builtin_trap();
  if (memcmp(copy, p, n) != 0)
    __builtin_trap();
  chaos_track_free(&t);
  free(copy);
}

static void check_strip(const uint8_t *p, size_t n) {
  char *out = malloc(n + 1);
  int removed = 0;
  long m = chaos_strip_upgrade((const char *)p, n, out, n + 1, &removed);
  if (m < 0 || (size_t)m > n || (removed == 0 && (size_t)m != n))
    __builtin_trap();
  /* no line after the first is an Upgrade or Connection field any more */
  const char *q = memchr(out, '\n', (size_t)m);
  while (q && q + 1 < out + m) {
    const char *line = q + 1;
    size_t rest = (size_t)(out + m - line);
    if ((rest >= 8 && strncasecmp(line, "upgrade:", 8) == 0) ||
        (rest >= 11 && strncasecmp(line, "connection:", 11) == 0))
      __builtin_trap();
    q = memchr(line, '\n', rest);
  }
  free(out);
}

static void check_rules(const uint8_t *p, size_t n) {
  chaos_ruleset *rs = malloc(sizeof *rs), *back = malloc(sizeof *back);
  char err[512];
  chaos_ruleset_init(rs);
  if (chaos_ruleset_parse(rs, (const char *)p, n, err, sizeof err) == 0) {
    json_t *j = chaos_ruleset_json(rs);
    char *a = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    if (!a || chaos_ruleset_parse(back, a, strlen(a), err, sizeof err) != 0)
      __builtin_trap();
    json_t *j2 = chaos_ruleset_json(back);
    char *b = json_dumps(j2, JSON_COMPACT | JSON_SORT_KEYS);
    if (!b || strcmp(a, b) != 0)
      __builtin_trap();
    free(a);
    free(b);
    json_decref(j);
    json_decref(j2);
  } else if (!err[0]) {
    __builtin_trap(); /* every refusal says why */
  }
  free(rs);
  free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t sel = data[0];
  data++;
  size--;
  switch (sel & 3) {
  case 0:
  case 1:
    check_track(data, size, sel & 1, sel >> 2);
    break;
  case 2:
    check_strip(data, size);
    break;
  default:
    check_rules(data, size);
    break;
  }
  return 0;
}
