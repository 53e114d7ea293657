/* SPDX-License-Identifier: MIT */
/* `holdfast chaos`: a WebSocket-aware fault-injecting TCP proxy for tests
 * and failure drills. This header holds its three parts: the rules (what to
 * do to a connection, from flags or JSON: chaos_rules.c), the observe-only
 * stream tracker (where the HTTP head ends and each frame begins, through
 * libhf's HTTP and frame code: chaos_track.c) and the command
 * (chaos.c, the proxy and its control endpoint on an hf_loop). */
#ifndef HF_TOOLS_CHAOS_H
#define HF_TOOLS_CHAOS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* ---- rules (chaos_rules.c) ------------------------------------------------- */

enum { CHAOS_UP = 0, CHAOS_DOWN = 1 }; /* client -> upstream, upstream -> client */
#define CHAOS_DIR_UP 1u
#define CHAOS_DIR_DOWN 2u
#define CHAOS_DIR_BOTH 3u
#define CHAOS_OFF UINT64_MAX /* a threshold that never triggers */
#define CHAOS_MAX_CONN_RULES 64
#define CHAOS_RESPOND_MAX 512

/* What happens to the bytes of one direction. */
typedef struct {
  uint64_t latency_ms;         /* added to every chunk; 0 = none */
  uint64_t jitter_ms;          /* +- uniformly around latency (order kept) */
  uint64_t bandwidth;          /* bytes per second; 0 = unlimited */
  uint64_t cut_after_bytes;    /* cut once this many bytes were forwarded */
  uint64_t blackhole_after_ms; /* then discard without closing (half-open) */
} chaos_dir_rules;

/* The rules one connection follows. A plain value (no pointers): copied into
 * each connection, replaced whole when the rules change. Durations count
 * from the accept, or from the 101 with from_upgrade. */
typedef struct {
  chaos_dir_rules dir[2];
  uint64_t cut_after_ms; /* cut (both sides) this long after the anchor */
  uint64_t idle_kill_ms; /* cut when no byte moved either way this long */
  uint8_t cut_rst;       /* cuts end TCP with RST (else FIN) */
  uint8_t cut_mid_frame; /* a cut waits for a WebSocket frame and lands in
                            the middle of its payload; alone: the first
                            frame after the handshake */
  uint8_t strip_upgrade; /* remove Upgrade and Connection from the request */
  uint8_t refuse;        /* new connections are reset at once */
  uint8_t from_upgrade;  /* durations count from the 101, not the accept */
  uint16_t respond;      /* answer every request with this status, no upstream */
  char respond_body[CHAOS_RESPOND_MAX];
} chaos_rules;

/* Rules for every connection plus overrides for some connection numbers
 * (connections are numbered 1, 2, ... in accept order). */
typedef struct {
  chaos_rules all;
  size_t nconn;
  struct {
    uint64_t conn;
    chaos_rules rules;
  } conn[CHAOS_MAX_CONN_RULES];
} chaos_ruleset;

/* Every rule off: bytes pass unchanged and undelayed. */
void chaos_rules_init(chaos_rules *r);
void chaos_ruleset_init(chaos_ruleset *rs);

/* Set one rule by its flag name without the dashes ("latency",
 * "cut-after-bytes", "strip-upgrade", ...) from its text value: durations
 * like "500ms" or "5s", byte counts as integers, booleans as "true" or
 * "false" (NULL means "true"), "cut-mode" fin|rst, "from" accept|upgrade,
 * "respond" an HTTP status. Directional rules (latency, jitter, bandwidth,
 * cut-after-bytes, blackhole-after) apply to the directions in dirs
 * (CHAOS_DIR_*). Returns 0, or -1 with a sentence in err (name and value
 * included). Pure function of its arguments; thread-safe. */
int chaos_rules_set(chaos_rules *r, const char *name, const char *value,
                    unsigned dirs, char *err, size_t errcap);

/* Replace *rs with the rules in the JSON document text[0..len): an object
 * whose keys are the flag names (same values, as JSON strings, integers or
 * booleans), optionally "direction": "up"|"down"|"both" (for its
 * directional keys), "up" and "down" objects of directional keys, and
 * "connections": {"N": {rules}} whose rules replace the top-level ones for
 * connection N. On error *rs is unchanged, -1 is returned and err says what
 * and where. Thread-safe. */
int chaos_ruleset_parse(chaos_ruleset *rs, const char *text, size_t len,
                        char *err, size_t errcap);

/* The rules for connection number conn (an override or rs->all). */
const chaos_rules *chaos_ruleset_for(const chaos_ruleset *rs, uint64_t conn);

/* The rules as a JSON object in the same form chaos_ruleset_parse reads
 * (only the rules that are on; directional ones under "up"/"down"). New
 * reference, NULL when out of memory. */
json_t *chaos_rules_json(const chaos_rules *r);
json_t *chaos_ruleset_json(const chaos_ruleset *rs);

/* ---- the stream tracker (chaos_track.c) ------------------------------------- */

enum { CHAOS_TRACK_HEAD = 0, CHAOS_TRACK_FRAMES, CHAOS_TRACK_RAW };
#define CHAOS_HEAD_MAX 16384 /* longer heads are not observed (raw) */

/* Events chaos_track_feed reports (a bit mask). */
#define CHAOS_EV_HEAD 1u  /* the HTTP head just completed (see head_len) */
#define CHAOS_EV_CLOSE 2u /* a close frame's code is known (close_code) */

/* Observes one direction of a connection without changing a byte: the
 * HTTP head (a request for CHAOS_UP, a response for CHAOS_DOWN), then, after
 * a request head or a 101 response, the WebSocket frame boundaries. Zero it
 * and set `request`. One per direction; not thread-safe. */
typedef struct {
  uint8_t request; /* set by the caller: 1 for the client's direction */
  uint8_t phase;   /* CHAOS_TRACK_* */
  char *head;      /* the head so far (malloc'd while in the head phase) */
  uint32_t head_have;
  uint32_t head_len; /* length of the complete head, 0 until known */
  int status;        /* response head: its status code */
  /* the frame in progress */
  uint8_t hb[14], hb_len; /* its header, while incomplete */
  uint8_t in_payload, opcode, masked;
  uint8_t mask[4];
  uint64_t plen, done; /* payload length and bytes of it seen */
  uint8_t close_b[2];
  /* counts */
  uint64_t frames, bytes;
  uint16_t close_code; /* last close frame's code (1005 if empty) */
} chaos_track;

/* Observe n more bytes. Returns CHAOS_EV_* bits for what completed in them.
 * In the head phase the head is copied (at most CHAOS_HEAD_MAX bytes; a
 * longer head switches to CHAOS_TRACK_RAW). Never fails. */
unsigned chaos_track_feed(chaos_track *t, const uint8_t *p, size_t n);

/* 1 when the stream position is inside a frame (part of its header or
 * payload seen, not all of it), else 0. */
int chaos_track_inside_frame(const chaos_track *t);

/* Where to stop forwarding p[0..n) (the next bytes of t's stream) so that
 * the stream ends in the middle of a frame's payload: the middle of the
 * first frame with at least 2 payload bytes, or n if that frame's payload
 * starts in p and its middle lies beyond, or 0 if t is already inside a
 * payload. SIZE_MAX when no such point is in p (or t is not in the frame
 * phase). t is not changed. */
size_t chaos_track_mid_frame(const chaos_track *t, const uint8_t *p, size_t n);

/* Free the head copy (t may be fed again afterwards, as raw). */
void chaos_track_free(chaos_track *t);

/* Copy the request head head[0..len) to out[0..cap) without its Upgrade
 * and Connection header fields. Returns the new length, or -1 if it does
 * not fit. How many fields were removed is stored in *removed. */
long chaos_strip_upgrade(const char *head, size_t len, char *out, size_t cap,
                         int *removed);

/* ---- the command (chaos.c) --------------------------------------------------- */

/* argv excludes "chaos". Returns the process exit code. */
int chaos_main(int argc, char **argv);

#endif
