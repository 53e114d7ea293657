# SPDX-License-Identifier: MIT
"""RFC 6455 conformance against /echo, modelled on the Autobahn|Testsuite
fuzzing client sections 1-7, 9 and 10 (CI cannot fetch Autobahn), with its
strictness: the exact close code, a non-empty reason, nothing sent after the
server's close frame, and TCP closed promptly after the close handshake.

Covered: 1.x text/binary of lengths 0..65537 (7-, 16- and 64-bit length
forms) whole and in 1-byte chops; 2.x pings 0..125 bytes, binary payload,
126-byte ping, unsolicited pong, 10 pings; 3.x RSV bits; 4.x reserved
opcodes; 5.x fragmentation (control frames between fragments, fragmented
control frames, orphan continuations, new messages inside fragmented ones,
empty fragments); 6.x UTF-8 (valid texts split inside code points, invalid
sequences, fail-fast on incomplete frames); 7.x close (no payload, valid
and invalid codes, 1-byte payload, 123-byte and non-UTF-8 reasons, data after
close ignored); 9.x large and many messages, unmasked frames, 64-bit length
with the top bit set; 10.x websocket.message_size_limit (1009 from the
header alone). Valid data that precedes a violation in the same write is
echoed before the close frame. Test names carry the Autobahn case family."""
import functools
import os
import socket
import struct
import sys
import time

from harness import WS, Server, run_module

PROMPT = 2.0  # seconds: "promptly" for close frames and TCP EOF

_shared = {}


def srv(kind="default"):
    """A server shared by the tests of one kind; started on first use."""
    s = _shared.get(kind)
    if s is None:
        flags = {"default": (),
                 "limit1000": ("--websocket.message_size_limit=1000",)}[kind]
        s = _shared[kind] = Server(*flags)
    if s.proc.poll() is not None:
        raise AssertionError("shared %s server died: %s" % (kind, s.log()[-2000:]))
    return s


def case(fn):
    """Run a test against the shared servers; afterwards each must still be
    alive with a log free of sanitizer reports, else this test fails and
    the server is replaced, so one server bug does not fail every later
    test. On failure print the server logs."""
    @functools.wraps(fn)
    def wrapper():
        err = None
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - reported below
            err = e
        for k, s in list(_shared.items()):
            problem = None
            if s.proc.poll() is not None:
                problem = "server exited (status %s)" % s.proc.returncode
            else:
                try:
                    s.check_log_clean()
                except AssertionError as e:
                    problem = str(e).splitlines()[0]
            if problem or err:
                sys.stdout.write("  --- %s server log (last 2500 bytes) ---\n%s\n" % (k, s.log()[-2500:]))
            if problem:
                _shared.pop(k)
                s.kill()
                if err is None:
                    err = AssertionError("%s server: %s" % (k, problem))
        if err is not None:
            raise err
    return wrapper


def conn(kind="default"):
    return WS(srv(kind).port, timeout=5.0)


def frame(op, payload=b"", **kw):
    return WS.frame(op, payload, **kw)


def next_frame(ws, timeout=PROMPT):
    return ws.recv_frame(timeout)


def expect_frame(ws, op, payload, what=""):
    fin, got_op, p = ws.recv_frame(PROMPT)
    if not fin or got_op != op or p != payload:
        raise AssertionError("%s: expected fin op %d len %d, got fin=%s op %d len %d %r" % (
            what or "frame", op, len(payload), fin, got_op, len(p),
            p[:60] if got_op != op else p[:20]))


def close_next(ws, code, timeout=PROMPT):
    """The very next frame must be a close with this code and a non-empty
    reason; then answer it and require TCP EOF with nothing after it."""
    fin, op, p = ws.recv_frame(timeout)
    if op != 0x8:
        raise AssertionError("expected close %d, got opcode %d payload %r" % (code, op, p[:60]))
    ws.buf = WS.frame(0x8, p, mask=False) + ws.buf
    t0 = time.time()
    got, reason = ws.expect_close(code, timeout)
    assert time.time() - t0 < timeout
    ws.close()
    return reason


def fail_case(raw, code, before=(), kind="default", chop=None):
    """Send raw in one write (or in chops of 'chop' bytes); expect the echoes
    of 'before' (op, payload) first, then the close with code."""
    ws = conn(kind)
    if chop:
        for i in range(0, len(raw), chop):
            ws.send_raw(raw[i:i + chop])
    else:
        ws.send_raw(raw)
    for op, p in before:
        expect_frame(ws, op, p, "echo before the violation")
    return close_next(ws, code)


def closed_event(kind, ws_or_id, timeout=5.0):
    cid = ws_or_id if isinstance(ws_or_id, str) else ws_or_id.headers["x-holdfast-connection-id"]
    return srv(kind).wait_event("closed", lambda e: e["conn_id"] == cid, timeout)


def send_chopped(ws, data, size=1):
    for i in range(0, len(data), size):
        ws.send_raw(data[i:i + size])


def text_payload(n):
    return bytes((ord("a") + i % 26) for i in range(n))


def binary_payload(n):
    return bytes((i * 131 + (i >> 8)) & 0xFF for i in range(n))


LENGTHS = (0, 125, 126, 127, 128, 65535, 65536, 65537)

# ---- 1.x framing: text and binary messages ---------------------------------


def _echo_lengths(op, make, chopped):
    ws = conn()
    for n in LENGTHS:
        p = make(n)
        data = frame(op, p)
        if chopped:
            send_chopped(ws, data, 1)  # one send() per byte
        else:
            ws.send_raw(data)
        expect_frame(ws, op, p, "echo of %d bytes" % n)
    ws.send(0x8, struct.pack("!H", 1000))
    ws.expect_close(1000, PROMPT)
    ws.close()
    ev = closed_event("default", ws)
    assert ev["who"] == "client" and ev["code"] == 1000, ev
    assert ev["msgs_in"] == len(LENGTHS) and ev["msgs_out"] == len(LENGTHS), ev


@case
def test_1_1_text_lengths():
    _echo_lengths(0x1, text_payload, False)


@case
def test_1_1_text_lengths_1_byte_chops():
    _echo_lengths(0x1, text_payload, True)


@case
def test_1_2_binary_lengths():
    _echo_lengths(0x2, binary_payload, False)


@case
def test_1_2_binary_lengths_1_byte_chops():
    _echo_lengths(0x2, binary_payload, True)


@case
def test_1_x_non_minimal_length_forms():
    """Small payloads in the 16-bit and 64-bit length forms are echoed."""
    ws = conn()
    for n in (0, 5, 125):
        p = text_payload(n)
        key = os.urandom(4)
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(p))
        ws.send_raw(struct.pack("!BBH", 0x81, 0x80 | 126, n) + key + masked)
        expect_frame(ws, 0x1, p, "16-bit form %d" % n)
        ws.send_raw(struct.pack("!BBQ", 0x82, 0x80 | 127, n) + key + masked)
        expect_frame(ws, 0x2, p, "64-bit form %d" % n)
    ws.close()


@case
def test_1_x_echo_length_form_is_minimal():
    """The server's echo uses the shortest length form."""
    ws = conn()
    for n, hdr in ((125, b"\x82\x7d"), (126, b"\x82\x7e\x00\x7e"),
                   (65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00")):
        ws.send(0x2, b"\x00" * n)
        ws._fill(len(hdr) + n, PROMPT)
        assert ws.buf[:len(hdr)] == hdr, (n, ws.buf[:12])
        ws.buf = ws.buf[len(hdr) + n:]
    ws.close()


# ---- 2.x pings and pongs -------------------------------------------------


@case
def test_2_1_to_2_3_ping_payload_0_to_125():
    ws = conn()
    for n in range(126):
        p = bytes((0x41 + i % 26) for i in range(n))
        ws.send(0x9, p)
        expect_frame(ws, 0xA, p, "pong for a %d-byte ping" % n)
    ws.close()


@case
def test_2_4_binary_ping_payload():
    ws = conn()
    p = bytes(range(256))[:125]
    ws.send(0x9, p)
    expect_frame(ws, 0xA, p, "pong")
    p = b"\x00\xff\xfe\xfd\xfc\xfb\xfa\xf9"
    ws.send(0x9, p)
    expect_frame(ws, 0xA, p, "pong")
    ws.close()


@case
def test_2_5_ping_126_bytes_1002():
    fail_case(frame(0x1, "first") + frame(0x9, b"x" * 126), 1002, [(0x1, b"first")])


@case
def test_2_6_ping_125_in_chops():
    ws = conn()
    p = b"\xfe" * 125
    send_chopped(ws, frame(0x9, p), 1)
    expect_frame(ws, 0xA, p, "pong")
    ws.close()


@case
def test_2_7_unsolicited_pong_ignored():
    ws = conn()
    ws.send(0xA, b"")
    ws.send(0xA, b"unsolicited pong payload")
    ws.send(0x1, "after the pongs")
    expect_frame(ws, 0x1, b"after the pongs", "echo (nothing answers a pong)")
    ws.close()


@case
def test_2_8_unsolicited_pong_with_payload_then_ping():
    ws = conn()
    ws.send_raw(frame(0xA, b"pong") + frame(0x9, b"ping"))
    expect_frame(ws, 0xA, b"ping", "pong for the ping only")
    ws.close()


@case
def test_2_10_ten_pings_in_a_row():
    ws = conn()
    ws.send_raw(b"".join(frame(0x9, ("ping %d" % i).encode()) for i in range(10)))
    for i in range(10):
        expect_frame(ws, 0xA, ("ping %d" % i).encode(), "pong %d" % i)
    ws.close()


@case
def test_2_11_ten_pings_chopped():
    ws = conn()
    send_chopped(ws, b"".join(frame(0x9, ("p%d" % i).encode()) for i in range(10)), 1)
    for i in range(10):
        expect_frame(ws, 0xA, ("p%d" % i).encode(), "pong %d" % i)
    ws.close()


# ---- 3.x reserved bits -----------------------------------------------------


@case
def test_3_1_rsv1_text():
    fail_case(frame(0x1, "Hello, world!", rsv=4), 1002)


@case
def test_3_2_rsv2_text_after_echo():
    ws = conn()
    ws.send(0x1, "Hello, world!")
    expect_frame(ws, 0x1, b"Hello, world!", "echo")
    ws.send(0x1, "rsv", rsv=2)
    close_next(ws, 1002)


@case
def test_3_3_rsv3_text_in_one_write_with_valid_text_and_ping():
    """Valid text, RSV=3 text, ping in one write: the echo, then 1002, no pong."""
    fail_case(frame(0x1, "Hello, world!") + frame(0x1, "rsv", rsv=3) + frame(0x9, b""),
              1002, [(0x1, b"Hello, world!")])


@case
def test_3_4_rsv4_text_in_chops():
    fail_case(frame(0x1, "Hello, world!") + frame(0x1, "rsv", rsv=4) + frame(0x9, b""),
              1002, [(0x1, b"Hello, world!")], chop=1)


@case
def test_3_5_rsv5_binary():
    fail_case(frame(0x2, b"\x00\xff" * 4, rsv=5), 1002)


@case
def test_3_6_rsv6_ping():
    fail_case(frame(0x9, b"ping", rsv=6), 1002)


@case
def test_3_7_rsv7_close():
    fail_case(frame(0x8, struct.pack("!H", 1000), rsv=7), 1002)


@case
def test_3_x_every_rsv_on_every_opcode():
    for rsv in range(1, 8):
        for op, payload in ((0x1, b"t"), (0x2, b"b"), (0x9, b"p"), (0xA, b"q"),
                            (0x8, struct.pack("!H", 1000))):
            ws = conn()
            ws.send_raw(frame(0x1, "ok") + frame(op, payload, rsv=rsv))
            expect_frame(ws, 0x1, b"ok", "echo (rsv %d op %d)" % (rsv, op))
            close_next(ws, 1002)
    ev = closed_event("default", ws)
    assert ev["code"] == 1002 and ev["who"] == "server" and ev["reason"], ev


# ---- 4.x opcodes -----------------------------------------------------------


@case
def test_4_1_and_4_2_reserved_opcodes():
    for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
        for payload in (b"", b"reserved opcode payload"):
            fail_case(frame(0x1, "Hello") + frame(op, payload) + frame(0x9, b""),
                      1002, [(0x1, b"Hello")])


@case
def test_4_x_reserved_opcode_logged():
    ws = conn()
    ws.send(5, b"")
    reason = close_next(ws, 1002)
    ev = closed_event("default", ws)
    assert ev["code"] == 1002 and ev["who"] == "server", ev
    assert ev["reason"] == reason, (ev, reason)


# ---- 5.x fragmentation -----------------------------------------------------


@case
def test_5_1_fragmented_ping_1002():
    fail_case(frame(0x9, "frag1", fin=False) + frame(0x0, "frag2"), 1002)


@case
def test_5_2_fragmented_pong_1002():
    fail_case(frame(0xA, "frag1", fin=False) + frame(0x0, "frag2"), 1002)


@case
def test_5_x_fragmented_close_1002():
    fail_case(frame(0x8, struct.pack("!H", 1000), fin=False) + frame(0x0, "x"), 1002)


@case
def test_5_3_text_in_2_fragments():
    ws = conn()
    ws.send_raw(frame(0x1, "fragment1", fin=False) + frame(0x0, "fragment2"))
    expect_frame(ws, 0x1, b"fragment1fragment2", "reassembled echo")
    ws.close()


@case
def test_5_4_text_in_2_fragments_separate_writes():
    ws = conn()
    ws.send(0x1, "fragment1", fin=False)
    time.sleep(0.05)
    ws.send(0x0, "fragment2")
    expect_frame(ws, 0x1, b"fragment1fragment2", "reassembled echo")
    ws.close()


@case
def test_5_5_text_in_2_fragments_1_byte_chops():
    ws = conn()
    send_chopped(ws, frame(0x1, "fragment1", fin=False) + frame(0x0, "fragment2"), 1)
    expect_frame(ws, 0x1, b"fragment1fragment2", "reassembled echo")
    ws.close()


@case
def test_5_6_ping_between_fragments():
    ws = conn()
    ws.send_raw(frame(0x1, "fragment1", fin=False) + frame(0x9, "ping payload") +
                frame(0x0, "fragment2"))
    expect_frame(ws, 0xA, b"ping payload", "pong before the echo")
    expect_frame(ws, 0x1, b"fragment1fragment2", "reassembled echo")
    ws.close()


@case
def test_5_7_ping_between_fragments_chopped():
    ws = conn()
    send_chopped(ws, frame(0x1, "fragment1", fin=False) + frame(0x9, "ping payload") +
                 frame(0x0, "fragment2"), 1)
    expect_frame(ws, 0xA, b"ping payload", "pong before the echo")
    expect_frame(ws, 0x1, b"fragment1fragment2", "reassembled echo")
    ws.close()


@case
def test_5_8_pong_between_fragments_ignored():
    ws = conn()
    ws.send_raw(frame(0x2, b"\x01", fin=False) + frame(0xA, "pong") + frame(0x0, b"\x02"))
    expect_frame(ws, 0x2, b"\x01\x02", "reassembled echo")
    ws.close()


@case
def test_5_9_continuation_fin1_without_start():
    fail_case(frame(0x0, "non-continuation payload") + frame(0x1, "Hello, world!"), 1002)


@case
def test_5_10_continuation_without_start_chopped():
    fail_case(frame(0x0, "non-continuation payload") + frame(0x1, "Hello, world!"), 1002, chop=1)


@case
def test_5_12_continuation_fin0_without_start():
    fail_case(frame(0x0, "non-continuation payload", fin=False) + frame(0x1, "Hello"), 1002)


@case
def test_5_15_new_text_inside_fragmented_message():
    """frag1 (FIN=0), frag2 (FIN=1) make one message; then cont frag3 (FIN=0)
    continues nothing -> the echo of the first message, then 1002."""
    raw = (frame(0x1, "fragment1", fin=False) + frame(0x0, "fragment2") +
           frame(0x0, "fragment3", fin=False) + frame(0x1, "fragment4"))
    fail_case(raw, 1002, [(0x1, b"fragment1fragment2")])


@case
def test_5_17_text_frame_inside_fragmented_message():
    fail_case(frame(0x1, "ok") + frame(0x1, "fragment1", fin=False) + frame(0x1, "fragment2"),
              1002, [(0x1, b"ok")])


@case
def test_5_18_binary_frame_inside_fragmented_text():
    fail_case(frame(0x1, "fragment1", fin=False) + frame(0x9, b"p") + frame(0x2, b"new"),
              1002, [(0xA, b"p")])


@case
def test_5_19_fragments_with_pings_and_delays():
    ws = conn()
    parts = [b"fragment%d" % i for i in range(1, 6)]
    for i, p in enumerate(parts):
        ws.send(0x1 if i == 0 else 0x0, p, fin=(i == len(parts) - 1))
        ws.send(0x9, b"pongme %d" % i)
        if i == len(parts) - 1:  # the message completed before the ping
            expect_frame(ws, 0x1, b"".join(parts), "reassembled echo")
        expect_frame(ws, 0xA, b"pongme %d" % i, "pong %d" % i)
        time.sleep(0.02)
    ws.close()


@case
def test_5_x_many_1_byte_fragments():
    ws = conn()
    msg = b"a binary message in one-byte fragments \x00\xff"
    raw = b"".join(frame(0x2 if i == 0 else 0x0, msg[i:i + 1], fin=(i == len(msg) - 1))
                   for i in range(len(msg)))
    ws.send_raw(raw)
    expect_frame(ws, 0x2, msg, "reassembled echo")
    ws.close()


@case
def test_5_x_empty_middle_and_last_fragments():
    ws = conn()
    ws.send_raw(frame(0x1, "x", fin=False) + frame(0x0, "", fin=False) + frame(0x0, "y", fin=False) +
                frame(0x0, ""))
    expect_frame(ws, 0x1, b"xy", "echo of x + empty + y + empty")
    ws.send_raw(frame(0x2, b"\x00", fin=False) + frame(0x0, b""))
    expect_frame(ws, 0x2, b"\x00", "echo of a binary with an empty last fragment")
    ws.close()


@case
def test_5_x_empty_first_fragment():
    """An empty first fragment (text, FIN=0, length 0), then the data."""
    ws = conn()
    ws.send_raw(frame(0x1, "", fin=False) + frame(0x0, "", fin=False) + frame(0x0, "x"))
    expect_frame(ws, 0x1, b"x", "echo of empty fragments + x")
    ws.send_raw(frame(0x2, b"", fin=False) + frame(0x0, b"\x01\x02"))
    expect_frame(ws, 0x2, b"\x01\x02", "echo of an empty first binary fragment + data")
    ws.close()


# ---- 6.x UTF-8 ---------------------------------------------------------------

VALID_TEXTS = [
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",  # kosme
    "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!".encode(),
    b"\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xef\xbf\xbf\xed\x9f\xbf\xee\x80\x80",
    b"\xc2\x80\xdf\xbf\xe0\xa0\x80\xf0\x90\x80\x80\xef\xbb\xbf",
]

INVALID_TEXTS = [
    ("overlong 2-byte", b"\xc0\xaf"),
    ("overlong 3-byte", b"\xe0\x80\xaf"),
    ("overlong 4-byte", b"\xf0\x80\x80\xaf"),
    ("overlong U+007F", b"\xc1\xbf"),
    ("surrogate U+D800", b"\xed\xa0\x80"),
    ("surrogate U+DFFF", b"\xed\xbf\xbf"),
    ("surrogate pair", b"\xed\xa0\x80\xed\xb0\x80"),
    ("above U+10FFFF", b"\xf4\x90\x80\x80"),
    ("lead F5", b"\xf5\x80\x80\x80"),
    ("5-byte form", b"\xf8\x88\x80\x80\x80"),
    ("FE", b"\xfe"),
    ("FF", b"\xff"),
    ("lone continuation", b"\x80"),
    ("continuation after ASCII", b"abc\xbf"),
    ("kosme + surrogate + edited",
     b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"),
    ("truncated 2-byte at end", b"\xc2"),
    ("truncated 3-byte at end", b"\xe2\x82"),
    ("truncated 4-byte at end", b"kosme\xf0\x9f\x98"),
]


@case
def test_6_1_1_empty_text_message():
    ws = conn()
    ws.send(0x1, b"")
    expect_frame(ws, 0x1, b"", "empty text")
    ws.close()


@case
def test_6_1_2_empty_text_in_empty_fragments():
    ws = conn()
    ws.send_raw(frame(0x1, b"", fin=False) + frame(0x0, b"", fin=False) + frame(0x0, b""))
    expect_frame(ws, 0x1, b"", "empty fragmented text")
    ws.close()


@case
def test_6_2_valid_utf8_whole_and_per_byte_fragments():
    ws = conn()
    for t in VALID_TEXTS:
        ws.send(0x1, t)
        expect_frame(ws, 0x1, t, "whole")
        raw = b"".join(frame(0x1 if i == 0 else 0x0, t[i:i + 1], fin=(i == len(t) - 1))
                       for i in range(len(t)))
        ws.send_raw(raw)
        expect_frame(ws, 0x1, t, "one fragment per byte")
    ws.close()


@case
def test_6_2_valid_utf8_split_inside_code_points():
    ws = conn()
    for t in VALID_TEXTS:
        for cut in range(1, len(t) + 1):  # cut 0: test_5_x_empty_first_fragment
            ws.send_raw(frame(0x1, t[:cut], fin=False) + frame(0x0, t[cut:]))
            expect_frame(ws, 0x1, t, "split at %d" % cut)
    ws.close()


@case
def test_6_2_valid_utf8_1_byte_chops():
    ws = conn()
    t = VALID_TEXTS[1]
    send_chopped(ws, frame(0x1, t), 1)
    expect_frame(ws, 0x1, t, "chopped")
    ws.close()


@case
def test_6_3_invalid_utf8_whole_1007():
    for what, t in INVALID_TEXTS:
        try:
            fail_case(frame(0x1, "valid first") + frame(0x1, t) + frame(0x1, "never"),
                      1007, [(0x1, b"valid first")])
        except AssertionError as e:
            raise AssertionError("%s: %s" % (what, e))


@case
def test_6_3_invalid_utf8_fragmented_1007():
    for what, t in INVALID_TEXTS:
        for cut in sorted({1, len(t) // 2 or 1, len(t)}):
            try:
                fail_case(frame(0x1, t[:cut], fin=False) + frame(0x0, t[cut:]), 1007)
            except AssertionError as e:
                raise AssertionError("%s cut %d: %s" % (what, cut, e))


@case
def test_6_3_invalid_utf8_1007_logged():
    ws = conn()
    ws.send(0x1, b"\xed\xa0\x80")
    reason = close_next(ws, 1007)
    ev = closed_event("default", ws)
    assert ev["code"] == 1007 and ev["who"] == "server" and ev["reason"] == reason, ev


@case
def test_6_4_fail_fast_incomplete_frame():
    """A 65536-byte text frame: header + 10 payload bytes (invalid at byte 3)
    arrive; the rest is withheld. The server answers 1007 at once."""
    for n in (200, 65536, 100000):
        p = bytearray(text_payload(n))
        p[3:6] = b"\xed\xa0\x80"
        raw = frame(0x1, bytes(p))
        hl = len(raw) - n
        ws = conn()
        ws.send_raw(raw[:hl + 10])
        t0 = time.time()
        close_next(ws, 1007, timeout=PROMPT)
        assert time.time() - t0 < PROMPT


@case
def test_6_4_fail_fast_first_fragment():
    """Fragmented: the first fragment (FIN=0, 5000 bytes declared) carries an
    invalid byte; only its first part is sent."""
    p = b"ok \xf4\x90\x80\x80" + text_payload(4993)
    raw = frame(0x1, p, fin=False)
    hl = len(raw) - len(p)
    ws = conn()
    ws.send_raw(raw[:hl + 8])
    close_next(ws, 1007, timeout=PROMPT)


@case
def test_6_4_fail_fast_in_a_later_fragment():
    """6.4.1: frag1 valid, frag2 invalid (FIN=0) -> 1007 before frag3 is sent."""
    ws = conn()
    ws.send(0x1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", fin=False)
    ws.send(0x0, b"\xf4\x90\x80\x80", fin=False)
    close_next(ws, 1007, timeout=PROMPT)


@case
def test_6_4_fail_fast_chopped_frame():
    """6.4.3/6.4.4: one frame sent in 3 parts: valid, then an invalid byte,
    then (never) the rest."""
    p = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5" + b"\xf4\x90\x80\x80" + b"edited" * 100
    raw = frame(0x1, p)
    hl = len(raw) - len(p)
    ws = conn()
    ws.send_raw(raw[:hl + 11])
    time.sleep(0.1)
    # nothing yet: the prefix is valid
    ws.sock.settimeout(0.1)
    try:
        d = ws.sock.recv(100)
        raise AssertionError("server sent %r after a valid prefix" % d)
    except socket.timeout:
        pass
    ws.send_raw(raw[hl + 11:hl + 13])
    close_next(ws, 1007, timeout=PROMPT)


# ---- 7.x close handling ------------------------------------------------------


@case
def test_7_1_1_close_after_echo():
    ws = conn()
    ws.send(0x1, "Hello")
    expect_frame(ws, 0x1, b"Hello", "echo")
    ws.send(0x8, struct.pack("!H", 1000))
    close_next(ws, 1000)


@case
def test_7_1_2_close_twice():
    ws = conn()
    ws.send_raw(frame(0x8, struct.pack("!H", 1000)) + frame(0x8, struct.pack("!H", 1000)))
    close_next(ws, 1000)


@case
def test_7_1_3_ping_after_close_ignored():
    ws = conn()
    ws.send_raw(frame(0x8, struct.pack("!H", 1000)) + frame(0x9, b"ping"))
    close_next(ws, 1000)


@case
def test_7_1_4_text_after_close_ignored():
    ws = conn()
    ws.send_raw(frame(0x8, struct.pack("!H", 1000)) + frame(0x1, "after close"))
    close_next(ws, 1000)


@case
def test_7_1_5_close_between_fragments():
    ws = conn()
    ws.send_raw(frame(0x1, "fragment1", fin=False) + frame(0x8, struct.pack("!H", 1000)) +
                frame(0x0, "fragment2"))
    close_next(ws, 1000)


@case
def test_7_1_6_large_text_ping_close_in_one_write():
    ws = conn()
    big = text_payload(256 * 1024)
    ws.send_raw(frame(0x1, big) + frame(0x9, b"ping") + frame(0x8, struct.pack("!H", 1000)) +
                frame(0x1, "after close"))
    expect_frame(ws, 0x1, big, "large echo")
    expect_frame(ws, 0xA, b"ping", "pong")
    close_next(ws, 1000)


@case
def test_7_1_x_data_sent_after_close_received_ignored():
    """Frames sent after the server's close frame arrived are not echoed."""
    ws = conn()
    ws.send(0x8, struct.pack("!H", 1000) + b"bye")
    fin, op, p = ws.recv_frame(PROMPT)
    assert op == 0x8 and p[:2] == struct.pack("!H", 1000), (op, p)
    try:
        ws.send(0x1, "after the close handshake")
    except OSError:
        pass
    ws.expect_eof(PROMPT)


@case
def test_7_3_1_close_without_payload():
    ws = conn()
    ws.send(0x8, b"")
    t0 = time.time()
    reason = close_next(ws, 1000)
    assert reason, reason
    assert time.time() - t0 < PROMPT
    ev = closed_event("default", ws)
    assert ev["who"] == "client", ev
    assert ev["code"] in (1000, 1005), ev


@case
def test_7_3_2_close_1_byte_payload_1002():
    fail_case(frame(0x8, b"\x03"), 1002)


@case
def test_7_3_3_close_code_only():
    ws = conn()
    ws.send(0x8, struct.pack("!H", 1000))
    close_next(ws, 1000)


@case
def test_7_3_4_close_code_and_reason():
    ws = conn()
    ws.send(0x8, struct.pack("!H", 1000) + b"Hello World!")
    close_next(ws, 1000)
    ev = closed_event("default", ws)
    assert ev["who"] == "client" and ev["code"] == 1000 and ev["reason"] == "Hello World!", ev


@case
def test_7_3_5_close_reason_123_bytes():
    ws = conn()
    reason = ("*" * 119 + "\u00e9\u00e9").encode()
    assert len(reason) == 123
    ws.send(0x8, struct.pack("!H", 1000) + reason)
    close_next(ws, 1000)


@case
def test_7_3_6_close_reason_124_bytes_1002():
    fail_case(frame(0x8, struct.pack("!H", 1000) + b"*" * 124), 1002)


@case
def test_7_5_1_close_invalid_utf8_reason_1002():
    fail_case(frame(0x8, struct.pack("!H", 1000) +
                    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"),
              1002)


@case
def test_7_7_valid_close_codes_echoed():
    for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999):
        ws = conn()
        ws.send(0x8, struct.pack("!H", code))
        try:
            close_next(ws, code)
        except AssertionError as e:
            raise AssertionError("code %d: %s" % (code, e))
    ev = closed_event("default", ws)
    assert ev["code"] == 4999 and ev["who"] == "client", ev


@case
def test_7_9_invalid_close_codes_1002():
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535):
        try:
            fail_case(frame(0x8, struct.pack("!H", code)), 1002)
        except AssertionError as e:
            raise AssertionError("code %d: %s" % (code, e))


@case
def test_7_x_server_close_is_last_and_tcp_closes_promptly():
    """After the server's close frame nothing follows, even when the client
    keeps sending, and TCP ends within PROMPT seconds of the handshake."""
    ws = conn()
    ws.send_raw(frame(0x1, "one") + frame(0x8, struct.pack("!H", 1000)) +
                b"".join(frame(0x1, "more %d" % i) for i in range(20)))
    expect_frame(ws, 0x1, b"one", "echo before the close")
    fin, op, p = ws.recv_frame(PROMPT)
    assert op == 0x8, op
    t0 = time.time()
    ws.expect_eof(PROMPT)
    assert time.time() - t0 < PROMPT


# ---- 9.x limits and performance; masking -------------------------------------


@case
def test_9_1_text_and_binary_1mib_minus_1():
    ws = conn()
    p = text_payload((1 << 20) - 1)
    ws.send(0x1, p)
    expect_frame(ws, 0x1, p, "1 MiB - 1 text")
    b = binary_payload((1 << 20) - 1)
    ws.send(0x2, b)
    expect_frame(ws, 0x2, b, "1 MiB - 1 binary")
    ws.close()


@case
def test_9_2_binary_1mib_exactly_the_limit():
    ws = conn()
    p = binary_payload(1 << 20)
    ws.send(0x2, p)
    op, got = ws.recv_message(5.0)
    assert op == 0x2 and got == p, (op, len(got))
    ws.close()


@case
def test_9_2_binary_over_default_limit_1009():
    ws = conn()
    ws.send_raw(frame(0x2, b"", length=(1 << 20) + 1)[:14])
    close_next(ws, 1009)


@case
def test_9_3_fragmented_1mib_text_in_64kib_fragments():
    ws = conn()
    p = text_payload((1 << 20) - 16)
    step = 64 * 1024
    raw = b"".join(frame(0x1 if i == 0 else 0x0, p[i:i + step], fin=(i + step >= len(p)))
                   for i in range(0, len(p), step))
    ws.send_raw(raw)
    expect_frame(ws, 0x1, p, "reassembled 1 MiB")
    ws.close()


@case
def test_9_5_text_64kib_in_4kib_chops():
    ws = conn()
    p = text_payload(64 * 1024)
    send_chopped(ws, frame(0x1, p), 4096)
    expect_frame(ws, 0x1, p, "64 KiB chopped")
    ws.close()


@case
def test_9_7_1000_small_messages_pipelined():
    ws = conn()
    msgs = [("message %04d" % i).encode() * (1 + i % 4) for i in range(1000)]
    ws.send_raw(b"".join(frame(0x1 if i % 2 else 0x2, m) for i, m in enumerate(msgs)))
    for i, m in enumerate(msgs):
        expect_frame(ws, 0x1 if i % 2 else 0x2, m, "echo %d" % i)
    ws.send(0x8, struct.pack("!H", 1000))
    close_next(ws, 1000)
    ev = closed_event("default", ws)
    assert ev["msgs_in"] == 1000 and ev["msgs_out"] == 1000, ev


@case
def test_9_x_unmasked_client_frame_1002():
    fail_case(frame(0x1, "masked ok") + frame(0x1, "not masked", mask=False),
              1002, [(0x1, b"masked ok")])


@case
def test_9_x_unmasked_control_frame_1002():
    fail_case(frame(0x9, "x", mask=False), 1002)


@case
def test_9_x_64bit_length_top_bit_1002():
    hdr = struct.pack("!BBQ", 0x82, 0x80 | 127, (1 << 63) | 5) + b"\x01\x02\x03\x04"
    fail_case(frame(0x1, "before") + hdr, 1002, [(0x1, b"before")])


# ---- 10.x message size limit (websocket.message_size_limit=1000) ------------


@case
def test_10_1_header_declaring_1001_bytes_1009_immediately():
    for op in (0x1, 0x2):
        for form in (16, 64):
            ws = conn("limit1000")
            if form == 16:
                hdr = struct.pack("!BBH", 0x80 | op, 0x80 | 126, 1001)
            else:
                hdr = struct.pack("!BBQ", 0x80 | op, 0x80 | 127, 1001)
            ws.send_raw(hdr + b"\x00\x00\x00\x00")  # header only, no payload
            t0 = time.time()
            close_next(ws, 1009)
            assert time.time() - t0 < PROMPT
    ev = closed_event("limit1000", ws)
    assert ev["code"] == 1009 and ev["who"] == "server", ev


@case
def test_10_1_echo_before_the_oversized_header():
    fail_case(frame(0x1, "small") + frame(0x2, b"", length=1001)[:8], 1009,
              [(0x1, b"small")], kind="limit1000")


@case
def test_10_2_fragmented_total_over_limit_1009():
    raw = (frame(0x1, text_payload(400), fin=False) + frame(0x9, b"p") +
           frame(0x0, text_payload(400), fin=False) + frame(0x0, text_payload(201)))
    fail_case(raw, 1009, [(0xA, b"p")], kind="limit1000")


@case
def test_10_2_many_small_fragments_over_limit_1009():
    raw = b"".join(frame(0x2 if i == 0 else 0x0, b"x" * 100, fin=False) for i in range(11))
    fail_case(raw, 1009, kind="limit1000")


@case
def test_10_3_exactly_the_limit_is_fine():
    ws = conn("limit1000")
    p = text_payload(1000)
    ws.send(0x1, p)
    expect_frame(ws, 0x1, p, "1000-byte text")
    ws.send_raw(frame(0x2, p[:600], fin=False) + frame(0x0, p[600:]))
    expect_frame(ws, 0x2, p, "1000-byte fragmented binary")
    ws.send(0x1, p)  # the count restarts with each message
    expect_frame(ws, 0x1, p, "again")
    ws.send(0x9, b"x" * 125)  # control frames are not counted
    expect_frame(ws, 0xA, b"x" * 125, "pong")
    ws.send(0x8, struct.pack("!H", 1000))
    close_next(ws, 1000)


def test_zz_shared_servers_exit_cleanly():
    """SIGTERM each shared server: exit 0, log free of sanitizer reports."""
    errors = []
    for k in list(_shared):
        s = _shared.pop(k)
        try:
            s.stop()
        except AssertionError as e:
            errors.append("%s: %s" % (k, e))
    assert not errors, errors


if __name__ == "__main__":
    rc = run_module("conformance", globals())
    for s in _shared.values():
        s.kill()
    sys.exit(rc)
