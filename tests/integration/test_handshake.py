# SPDX-License-Identifier: MIT
"""RFC 6455 section 4 opening handshake against the real binary, strictly:
every rejection (method, HTTP version, Host, Upgrade, Connection, key,
Sec-WebSocket-Version, unknown path, malformed or oversized heads) is checked
for its exact status, Connection: close, a plain-text body that explains the
cause, its special headers (Allow, Sec-WebSocket-Version, Upgrade) and the
upgrade_rejected log line (reason, status, remote, path, origin, user_agent,
conn_id). Also: heads split into tiny or random writes, frames pipelined
behind the head, the handshake timeout (slowloris, idle), the origin policy
(exact, case, wildcard patterns, "*", null, missing), sub-protocol selection,
the connection-id header, /health and the endpoint switches."""
import json
import random
import re
import select
import socket
import sys
import time

from harness import (read_to_eof, remote_of, WS, Server, accept_for, connect, read_http_response,
                     run_module, upgrade_request, wait_until)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
APP = "https://app.example.com"
# Handshake-rejection tests run with APP allowed, so the request carries an
# allowed Origin (to check it is logged) and only the one defect under test.
ALLOW_APP = "--client.allowed_origins=" + APP
NGINX_LINE = "proxy_set_header Upgrade $http_upgrade;"


# ---- helpers ---------------------------------------------------------------





def exchange(port, data):
    """Send raw bytes, read one response and the server's close.
    Returns (remote, status, headers, body, bytes_after_body)."""
    s = connect(port)
    try:
        remote = remote_of(s)
        s.sendall(data)
        status, hdrs, body, rest = read_http_response(s)
        rest += read_to_eof(s)
        return remote, status, hdrs, body, rest
    finally:
        s.close()


def ua_for(tag):
    return "hf-test/" + tag


def req(tag, origin=APP, headers=None, **kw):
    """An upgrade request carrying a unique User-Agent and an Origin."""
    h = {"User-Agent": ua_for(tag)}
    if origin is not None:
        h["Origin"] = origin
    if headers:
        h.update(headers)
    return upgrade_request(headers=h, **kw)[0]


def check_plain_rejection(status, hdrs, body, rest, want_status, body_has=()):
    assert status == want_status, (status, hdrs, body)
    assert hdrs.get("connection", "").lower() == "close", hdrs
    assert hdrs.get("content-type", "").startswith("text/plain"), hdrs
    assert "sec-websocket-accept" not in hdrs, hdrs
    text = body.decode("utf-8")
    assert len(text.strip()) >= 20, "body does not explain the cause: %r" % body
    for needle in body_has:
        assert needle.lower() in text.lower(), "body lacks %r: %r" % (needle, text)
    assert rest == b"", "bytes after the response body: %r" % rest[:80]
    return text


def check_logged(srv, remote, reason, status, path="/echo", origin=APP, ua=None,
                 event="upgrade_rejected"):
    ev = srv.wait_event(event, lambda e: e.get("remote") == remote)
    assert ev.get("reason") == reason, ev
    assert ev.get("status") == status, ev
    assert ev.get("path") == path, ev
    assert ev.get("origin") == origin, ev
    assert ev.get("user_agent") == ua, ev
    assert UUID_RE.match(ev.get("conn_id") or ""), ev
    return ev


def reject_case(srv, data, status, reason, tag, body_has=(), path="/echo",
                origin=APP, extra=None, event="upgrade_rejected"):
    remote, st, hdrs, body, rest = exchange(srv.port, data)
    text = check_plain_rejection(st, hdrs, body, rest, status, body_has)
    for k, v in (extra or {}).items():
        assert hdrs.get(k.lower()) == v, "header %s: %r, want %r (%r)" % (k, hdrs.get(k.lower()), v, hdrs)
    ev = check_logged(srv, remote, reason, status, path, origin, ua_for(tag), event)
    return hdrs, text, ev


def check_parse_logged(srv, remote, reason, status):
    """Heads that could not be parsed are logged without request fields."""
    ev = srv.wait_event("upgrade_rejected", lambda e: e.get("remote") == remote)
    assert ev.get("reason") == reason and ev.get("status") == status, ev
    assert ev.get("detail"), ev
    assert UUID_RE.match(ev.get("conn_id") or ""), ev
    return ev


def upgrade_ok(port, data, key=None):
    """Send an upgrade, expect 101 with the right accept; return a WS over it."""
    s = connect(port)
    s.sendall(data)
    status, hdrs, body, rest = read_http_response(s)
    assert status == 101, (status, hdrs, body)
    if key is not None:
        assert hdrs.get("sec-websocket-accept") == accept_for(key), hdrs
    ws = WS.__new__(WS)
    ws.sock, ws.status, ws.headers, ws.buf = s, status, hdrs, rest
    return ws


def echo_roundtrip(ws, text="ping"):
    ws.send(0x1, text)
    assert ws.recv_message() == (0x1, text.encode())


def raw_request(lines):
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# ---- method / version / Host ----------------------------------------------

def test_post_405_allow_get():
    with Server(ALLOW_APP) as srv:
        reject_case(srv, req("post", method="POST"), 405, "bad_method", "post",
                    body_has=("GET",), extra={"Allow": "GET"})


def test_put_405_allow_get():
    with Server(ALLOW_APP) as srv:
        reject_case(srv, req("put", method="PUT"), 405, "bad_method", "put",
                    body_has=("GET",), extra={"Allow": "GET"})


def test_head_405_allow_get():
    # Status, headers and log only; the body question is the next test.
    with Server(ALLOW_APP) as srv:
        s = connect(srv.port)
        remote = remote_of(s)
        s.sendall(req("head", method="HEAD"))
        status, hdrs, _, _ = read_http_response(s)
        s.close()
        assert status == 405, status
        assert hdrs.get("allow") == "GET", hdrs
        assert hdrs.get("connection", "").lower() == "close", hdrs
        check_logged(srv, remote, "bad_method", 405, ua=ua_for("head"))


def test_head_response_carries_no_body():
    # RFC 9110 9.3.2: "the server MUST NOT send content in the response" to
    # HEAD; RFC 9112 6.3: such a response ends at the empty line.
    with Server(ALLOW_APP) as srv:
        s = connect(srv.port)
        s.sendall(req("headbody", method="HEAD"))
        s.settimeout(5)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, "closed before response head: %r" % buf
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        rest += read_to_eof(s)
        s.close()
        assert head.startswith(b"HTTP/1.1 405 "), head
        assert rest == b"", "HEAD response carries %d body bytes: %r" % (len(rest), rest[:80])


def test_http10_505():
    with Server(ALLOW_APP) as srv:
        _, text, _ = reject_case(srv, req("http10", version="HTTP/1.0"), 505,
                                 "http_version", "http10", body_has=("HTTP/1.1",))


def test_missing_host_400():
    with Server(ALLOW_APP) as srv:
        reject_case(srv, req("nohost", omit=("Host",)), 400, "missing_host", "nohost",
                    body_has=("Host",))


def test_duplicate_host_400():
    with Server(ALLOW_APP) as srv:
        data = raw_request(["GET /echo HTTP/1.1", "Host: a.example", "Host: b.example",
                            "Upgrade: websocket", "Connection: Upgrade",
                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                            "Sec-WebSocket-Version: 13", "Origin: " + APP,
                            "User-Agent: " + ua_for("duphost")])
        reject_case(srv, data, 400, "missing_host", "duphost", body_has=("Host",))


# ---- Upgrade / Connection ---------------------------------------------------

def test_plain_get_426_explains_proxy():
    # A browser visiting the URL: no Upgrade, no WebSocket headers at all.
    with Server(ALLOW_APP) as srv:
        data = raw_request(["GET /echo HTTP/1.1", "Host: 127.0.0.1",
                            "User-Agent: " + ua_for("browser"),
                            "Accept: text/html,application/xhtml+xml",
                            "Accept-Language: en"])
        hdrs, text, _ = reject_case(srv, data, 426, "missing_upgrade", "browser",
                                    body_has=("proxy",), origin=None,
                                    extra={"Upgrade": "websocket"})
        assert NGINX_LINE in text, text


def test_proxy_stripped_upgrade_426():
    # A full WebSocket request whose Upgrade header a proxy removed.
    with Server(ALLOW_APP) as srv:
        hdrs, text, _ = reject_case(srv, req("stripped", omit=("Upgrade",)), 426,
                                    "missing_upgrade", "stripped", body_has=("proxy",),
                                    extra={"Upgrade": "websocket"})
        assert NGINX_LINE in text, text


def test_upgrade_h2c_400():
    with Server(ALLOW_APP) as srv:
        reject_case(srv, req("h2c", headers={"Upgrade": "h2c"}), 400, "bad_upgrade",
                    "h2c", body_has=("websocket",))


def test_connection_keep_alive_400():
    with Server(ALLOW_APP) as srv:
        reject_case(srv, req("keepalive", headers={"Connection": "keep-alive"}), 400,
                    "missing_connection_upgrade", "keepalive", body_has=("Connection",))


def test_connection_keep_alive_upgrade_accepted():
    with Server(ALLOW_APP) as srv:
        ws = upgrade_ok(srv.port, req("kaup", headers={"Connection": "keep-alive, Upgrade"}))
        echo_roundtrip(ws)
        ws.close()


def test_upgrade_mixed_case_accepted():
    with Server(ALLOW_APP) as srv:
        ws = upgrade_ok(srv.port, req("mixed", headers={"Upgrade": "WebSocket"}))
        echo_roundtrip(ws)
        ws.close()


# ---- Sec-WebSocket-Key / Version -------------------------------------------

def test_missing_key_400():
    with Server(ALLOW_APP) as srv:
        reject_case(srv, req("nokey", omit=("Sec-WebSocket-Key",)), 400, "bad_key",
                    "nokey", body_has=("Sec-WebSocket-Key",))


def test_key_15_bytes_400():
    import base64
    key = base64.b64encode(b"k" * 15).decode()  # 20 characters, no padding
    with Server(ALLOW_APP) as srv:
        reject_case(srv, req("key15", key=key), 400, "bad_key", "key15",
                    body_has=("Sec-WebSocket-Key",))


def test_key_17_bytes_400():
    import base64
    key = base64.b64encode(b"k" * 17).decode()  # 24 characters, one "="
    assert len(key) == 24
    with Server(ALLOW_APP) as srv:
        reject_case(srv, req("key17", key=key), 400, "bad_key", "key17",
                    body_has=("Sec-WebSocket-Key",))


def test_key_not_base64_400():
    with Server(ALLOW_APP) as srv:
        reject_case(srv, req("keyb64", key="!!!!not*base64:at~all!=="), 400, "bad_key",
                    "keyb64", body_has=("Sec-WebSocket-Key",))


def test_version_8_426():
    with Server(ALLOW_APP) as srv:
        reject_case(srv, req("v8", headers={"Sec-WebSocket-Version": "8"}), 426,
                    "unsupported_version", "v8", body_has=("13",),
                    extra={"Sec-WebSocket-Version": "13"})


def test_missing_version_426():
    with Server(ALLOW_APP) as srv:
        reject_case(srv, req("nover", omit=("Sec-WebSocket-Version",)), 426,
                    "unsupported_version", "nover", body_has=("13",),
                    extra={"Sec-WebSocket-Version": "13"})


# ---- unknown path -----------------------------------------------------------

def test_unknown_path_404_plain():
    with Server(ALLOW_APP) as srv:
        data = raw_request(["GET /nope HTTP/1.1", "Host: 127.0.0.1",
                            "User-Agent: " + ua_for("404plain")])
        reject_case(srv, data, 404, "not_found", "404plain", body_has=("/echo",),
                    path="/nope", origin=None, event="http_not_found")


def test_unknown_path_404_upgrade():
    with Server(ALLOW_APP) as srv:
        reject_case(srv, req("404up", path="/chat"), 404, "not_found", "404up",
                    body_has=("/echo",), path="/chat")


# ---- how the head arrives ---------------------------------------------------

def test_head_in_one_byte_writes():
    with Server(ALLOW_APP) as srv:
        data = req("bytes")
        s = connect(srv.port)
        for i in range(len(data)):
            s.send(data[i:i + 1])
            time.sleep(0.001)
        status, hdrs, _, rest = read_http_response(s)
        assert status == 101, (status, hdrs)
        ws = WS.__new__(WS)
        ws.sock, ws.buf = s, rest
        echo_roundtrip(ws, "after one-byte head")
        ws.close()


def test_head_split_at_random_points():
    rng = random.Random(6455)
    with Server(ALLOW_APP) as srv:
        for trial in range(12):
            data = req("split%d" % trial)
            n = len(data)
            if trial < 4:
                # splits inside the terminating CRLFCRLF
                cuts = [n - 1 - trial]
            else:
                cuts = sorted(rng.sample(range(1, n), rng.randint(1, 5)))
            s = connect(srv.port)
            prev = 0
            for c in cuts + [n]:
                s.sendall(data[prev:c])
                prev = c
                time.sleep(0.005)
            status, hdrs, _, rest = read_http_response(s)
            assert status == 101, (trial, cuts, status, hdrs)
            ws = WS.__new__(WS)
            ws.sock, ws.buf = s, rest
            echo_roundtrip(ws, "trial %d" % trial)
            ws.close()


def test_frame_pipelined_with_head():
    with Server(ALLOW_APP) as srv:
        data, key = upgrade_request(headers={"Origin": APP})
        s = connect(srv.port)
        s.sendall(data + WS.frame(0x1, "early bird") + WS.frame(0x2, b"\x01\x02"))
        status, hdrs, _, rest = read_http_response(s)
        assert status == 101 and hdrs.get("sec-websocket-accept") == accept_for(key), hdrs
        ws = WS.__new__(WS)
        ws.sock, ws.buf = s, rest
        assert ws.recv_message() == (0x1, b"early bird")
        assert ws.recv_message() == (0x2, b"\x01\x02")
        ws.close()


def test_frame_pipelined_with_second_half_of_head():
    # The first part of the head is buffered; the rest arrives with a frame.
    with Server(ALLOW_APP) as srv:
        data = req("halfpipe")
        s = connect(srv.port)
        s.sendall(data[:40])
        time.sleep(0.05)
        s.sendall(data[40:] + WS.frame(0x1, "behind the head"))
        status, hdrs, _, rest = read_http_response(s)
        assert status == 101, (status, hdrs)
        ws = WS.__new__(WS)
        ws.sock, ws.buf = s, rest
        assert ws.recv_message() == (0x1, b"behind the head")
        ws.close()


# ---- size limits and malformed heads ---------------------------------------

def pad_to(data, size):
    """Grow an upgrade request to exactly size bytes with an X-Pad header."""
    base = len(data) + len(b"X-Pad: \r\n")
    assert size >= base, (size, base)
    head = data[:-2]  # drop the final CRLF
    return head + b"X-Pad: " + b"p" * (size - base) + b"\r\n\r\n"


def test_head_exactly_max_header_size_accepted():
    with Server(ALLOW_APP, "--websocket.max_header_size=1024") as srv:
        data = pad_to(req("max1024"), 1024)
        assert len(data) == 1024
        ws = upgrade_ok(srv.port, data)
        echo_roundtrip(ws)
        ws.close()


def test_head_over_max_header_size_431():
    with Server(ALLOW_APP, "--websocket.max_header_size=1024") as srv:
        data = pad_to(req("max1025"), 1025)
        remote, st, hdrs, body, rest = exchange(srv.port, data)
        check_plain_rejection(st, hdrs, body, rest, 431, body_has=("websocket.max_header_size",))
        check_parse_logged(srv, remote, "head_too_large", 431)


def test_head_never_ending_431():
    # No terminator at all, streamed in pieces past the limit.
    with Server(ALLOW_APP, "--websocket.max_header_size=1024") as srv:
        s = connect(srv.port)
        remote = remote_of(s)
        s.sendall(b"GET /echo HTTP/1.1\r\nX-Long: ")
        try:
            for _ in range(8):
                s.sendall(b"a" * 200)
                time.sleep(0.01)
        except OSError:
            pass  # the server may already have answered and closed
        status, hdrs, body, _ = read_http_response(s)
        s.close()
        check_plain_rejection(status, hdrs, body, b"", 431, body_has=("websocket.max_header_size",))
        check_parse_logged(srv, remote, "head_too_large", 431)


def test_max_headers_boundary():
    with Server(ALLOW_APP, "--websocket.max_headers=8") as srv:
        # 5 handshake fields + User-Agent + Origin = 7; one more is 8.
        ok = req("hdr8", headers={"X-One": "1"})
        assert ok.count(b"\r\n") - 2 == 8
        ws = upgrade_ok(srv.port, ok)
        echo_roundtrip(ws)
        ws.close()
        over = req("hdr9", headers={"X-One": "1", "X-Two": "2"})
        remote, st, hdrs, body, rest = exchange(srv.port, over)
        check_plain_rejection(st, hdrs, body, rest, 431, body_has=("websocket.max_headers",))
        check_parse_logged(srv, remote, "head_too_large", 431)


def test_malformed_request_line_400():
    with Server(ALLOW_APP) as srv:
        for line in ("GET /echo", "GET  /echo HTTP/1.1", "GET /echo HTTP/1.1 extra",
                     "GET /echo HTTX/1.1"):
            data = raw_request([line, "Host: 127.0.0.1", "Upgrade: websocket"])
            remote, st, hdrs, body, rest = exchange(srv.port, data)
            text = check_plain_rejection(st, hdrs, body, rest, 400, body_has=("malformed",))
            assert "request line" in text, (line, text)
            check_parse_logged(srv, remote, "malformed_request", 400)


def test_header_without_colon_400():
    with Server(ALLOW_APP) as srv:
        data = raw_request(["GET /echo HTTP/1.1", "Host: 127.0.0.1", "Upgrade websocket",
                            "Connection: Upgrade"])
        remote, st, hdrs, body, rest = exchange(srv.port, data)
        text = check_plain_rejection(st, hdrs, body, rest, 400, body_has=("malformed",))
        assert "colon" in text, text
        check_parse_logged(srv, remote, "malformed_request", 400)


def test_http2_request_line_505():
    with Server(ALLOW_APP) as srv:
        remote, st, hdrs, body, rest = exchange(srv.port, req("http2", version="HTTP/2.0"))
        check_plain_rejection(st, hdrs, body, rest, 505, body_has=("HTTP/1.1",))
        check_parse_logged(srv, remote, "http_version", 505)


# ---- handshake timeout ------------------------------------------------------

def wait_dropped(s, t0, limit):
    data = read_to_eof(s, timeout=limit + 1.0)
    took = time.time() - t0
    assert data == b"", "server sent %r instead of dropping" % data[:80]
    assert took <= limit, "dropped after %.2fs, want <= %.1fs" % (took, limit)
    return took


def test_slowloris_half_head_dropped():
    with Server(ALLOW_APP, "--websocket.handshake_timeout=500ms") as srv:
        data = req("slow")
        t0 = time.time()
        s = connect(srv.port)
        remote = remote_of(s)
        s.sendall(data[:len(data) // 2])
        took = wait_dropped(s, t0, 1.5)
        s.close()
        assert took >= 0.4, "dropped too early: %.2fs" % took
        ev = srv.wait_event("handshake_timeout", lambda e: e.get("remote") == remote)
        assert UUID_RE.match(ev.get("conn_id") or ""), ev
        assert ev.get("timeout_ms") == 500, ev


def test_trickled_head_not_extended_by_activity():
    # One byte every 100 ms keeps the connection busy but never completes
    # the head: the timeout runs from accept, not from the last byte.
    with Server(ALLOW_APP, "--websocket.handshake_timeout=500ms") as srv:
        data = req("trickle")
        t0 = time.time()
        s = connect(srv.port)
        remote = remote_of(s)
        dropped = False
        for i in range(15):
            try:
                s.send(data[i:i + 1])
            except OSError:
                dropped = True
                break
            time.sleep(0.1)
            r, _, _ = select.select([s], [], [], 0)
            if r:
                dropped = True
                break
        assert dropped, "still connected after %.2fs" % (time.time() - t0)
        wait_dropped(s, t0, 1.5)
        s.close()
        srv.wait_event("handshake_timeout", lambda e: e.get("remote") == remote)


def test_silent_connection_dropped():
    with Server(ALLOW_APP, "--websocket.handshake_timeout=500ms") as srv:
        t0 = time.time()
        s = connect(srv.port)
        remote = remote_of(s)
        wait_dropped(s, t0, 1.5)
        s.close()
        ev = srv.wait_event("handshake_timeout", lambda e: e.get("remote") == remote)
        assert UUID_RE.match(ev.get("conn_id") or ""), ev


# ---- origin policy ----------------------------------------------------------

def test_default_rejects_browser_origin():
    with Server() as srv:
        _, _, ev = reject_case(srv, req("deforigin", origin="https://app.example.com"), 403,
                               "origin_rejected", "deforigin", body_has=("origin",),
                               origin="https://app.example.com")
        assert "client.allowed_origins" in (ev.get("hint") or ""), ev


def test_origin_exact_match_allowed():
    with Server(ALLOW_APP) as srv:
        ws = upgrade_ok(srv.port, req("exact"))
        assert ws.headers.get("access-control-allow-origin") == APP, ws.headers
        assert ws.headers.get("vary") == "Origin", ws.headers
        echo_roundtrip(ws)
        ws.close()


def test_origin_match_is_case_insensitive():
    with Server(ALLOW_APP) as srv:
        ws = upgrade_ok(srv.port, req("case", origin="HTTPS://App.Example.COM"))
        assert ws.headers.get("access-control-allow-origin") == "HTTPS://App.Example.COM", ws.headers
        ws.close()


def test_origin_not_in_list_rejected():
    with Server(ALLOW_APP) as srv:
        _, _, ev = reject_case(srv, req("other", origin="https://evil.com"), 403,
                               "origin_rejected", "other", origin="https://evil.com")
        assert "client.allowed_origins" in (ev.get("hint") or ""), ev


def test_origin_wildcard_pattern():
    cases = [("https://a.example.com", True), ("https://a.b.example.com", True),
             ("https://example.com", False), ("https://evil.com", False),
             ("http://a.example.com", False), ("https://evil.com/.example.com", False),
             ("https://a.example.com.evil.com", False)]
    with Server("--client.allowed_origins=https://*.example.com") as srv:
        for origin, allowed in cases:
            tag = "wild-" + origin.replace("/", "_")
            if allowed:
                ws = upgrade_ok(srv.port, req(tag, origin=origin))
                assert ws.headers.get("access-control-allow-origin") == origin, (origin, ws.headers)
                ws.close()
            else:
                reject_case(srv, req(tag, origin=origin), 403, "origin_rejected", tag,
                            origin=origin)


def test_origin_star_allows_any():
    with Server("--client.allowed_origins=*") as srv:
        for origin in ("https://evil.com", "http://localhost:3000", "chrome-extension://abcdef"):
            ws = upgrade_ok(srv.port, req("star", origin=origin))
            assert ws.headers.get("access-control-allow-origin") == origin, ws.headers
            ws.close()


def test_two_origin_headers_rejected():
    with Server(ALLOW_APP) as srv:
        data = req("twoorigins")[:-2] + b"Origin: https://evil.com\r\n\r\n"
        reject_case(srv, data, 403, "origin_rejected", "twoorigins")


def test_null_origin_rejected_by_default():
    with Server(ALLOW_APP) as srv:
        _, _, ev = reject_case(srv, req("null", origin="null"), 403, "null_origin", "null",
                               origin="null")
        assert "client.allow_null_origin" in (ev.get("hint") or ""), ev


def test_null_origin_allowed_when_configured():
    with Server(ALLOW_APP, "--client.allow_null_origin=true") as srv:
        ws = upgrade_ok(srv.port, req("nullok", origin="null"))
        echo_roundtrip(ws)
        ws.close()
        ev = srv.wait_event("upgrade_accepted", lambda e: e.get("user_agent") == ua_for("nullok"))
        assert ev.get("origin") == "null", ev


def test_missing_origin_allowed_by_default():
    with Server() as srv:
        ws = upgrade_ok(srv.port, req("noorigin", origin=None))
        assert "access-control-allow-origin" not in ws.headers, ws.headers
        echo_roundtrip(ws)
        ws.close()
        ev = srv.wait_event("upgrade_accepted", lambda e: e.get("user_agent") == ua_for("noorigin"))
        assert ev.get("origin") is None, ev


def test_missing_origin_rejected_when_configured():
    with Server("--client.allow_missing_origin=false") as srv:
        _, _, ev = reject_case(srv, req("noorigin403", origin=None), 403, "missing_origin",
                               "noorigin403", origin=None)
        assert "client.allow_missing_origin" in (ev.get("hint") or ""), ev


def test_origin_logged_on_accept():
    with Server(ALLOW_APP) as srv:
        ws = upgrade_ok(srv.port, req("acceptlog"))
        remote = remote_of(ws.sock)
        cid = ws.headers.get("x-holdfast-connection-id")
        ev = srv.wait_event("upgrade_accepted", lambda e: e.get("remote") == remote)
        assert ev.get("origin") == APP and ev.get("path") == "/echo", ev
        assert ev.get("user_agent") == ua_for("acceptlog") and ev.get("conn_id") == cid, ev
        ws.close()


# ---- sub-protocols ----------------------------------------------------------

def accepted_event(srv, ws):
    remote = remote_of(ws.sock)
    return srv.wait_event("upgrade_accepted", lambda e: e.get("remote") == remote)


def test_no_subprotocol_by_default():
    with Server(ALLOW_APP) as srv:
        ws = upgrade_ok(srv.port, req("sp0", headers={"Sec-WebSocket-Protocol": "chat, superchat"}))
        assert "sec-websocket-protocol" not in ws.headers, ws.headers
        assert accepted_event(srv, ws).get("subprotocol") is None
        ws.close()


def test_subprotocol_server_preference():
    with Server(ALLOW_APP, "--echo.subprotocols=chat,superchat") as srv:
        ws = upgrade_ok(srv.port, req("sp1", headers={"Sec-WebSocket-Protocol": "superchat, chat"}))
        assert ws.headers.get("sec-websocket-protocol") == "chat", ws.headers
        assert accepted_event(srv, ws).get("subprotocol") == "chat"
        echo_roundtrip(ws)
        ws.close()


def test_subprotocol_unknown_offer_gets_none():
    with Server(ALLOW_APP, "--echo.subprotocols=chat,superchat") as srv:
        ws = upgrade_ok(srv.port, req("sp2", headers={"Sec-WebSocket-Protocol": "mqtt, wamp"}))
        assert "sec-websocket-protocol" not in ws.headers, ws.headers
        assert accepted_event(srv, ws).get("subprotocol") is None
        ws.close()


# ---- connection id ----------------------------------------------------------

def test_connection_id_header_is_uuid_and_logged():
    with Server(ALLOW_APP) as srv:
        data, key = upgrade_request(headers={"Origin": APP})
        ws = upgrade_ok(srv.port, data, key)
        cid = ws.headers.get("x-holdfast-connection-id", "")
        assert UUID_RE.match(cid), ws.headers
        assert accepted_event(srv, ws).get("conn_id") == cid
        ws2 = upgrade_ok(srv.port, req("cid2"))
        assert ws2.headers.get("x-holdfast-connection-id") != cid
        ws.close()
        ws2.close()


# ---- /health and endpoint switches -----------------------------------------

def http_get(port, target, method="GET"):
    data = raw_request(["%s %s HTTP/1.1" % (method, target), "Host: 127.0.0.1"])
    _, status, hdrs, body, _ = exchange(port, data)
    return status, hdrs, body


def test_health_counts_websocket_connections():
    with Server() as srv:
        a, b = WS(srv.port), WS(srv.port)
        status, hdrs, body = http_get(srv.port, "/health")
        assert status == 200, status
        assert hdrs.get("content-type", "").startswith("application/json"), hdrs
        doc = json.loads(body)
        assert doc["status"] == "ok", doc
        assert isinstance(doc["uptime_s"], int) and doc["uptime_s"] >= 0, doc
        assert doc["connections"] == 2, doc
        assert doc["workers"] == 1, doc
        a.send(0x8, b"\x03\xe8bye")
        a.expect_close(1000)
        a.close()
        cid = a.headers["x-holdfast-connection-id"]
        srv.wait_event("closed", lambda e: e.get("conn_id") == cid)
        doc = json.loads(http_get(srv.port, "/health")[2])
        assert doc["connections"] == 1, doc
        b.close()


def test_health_post_405():
    with Server() as srv:
        status, hdrs, body = http_get(srv.port, "/health", method="POST")
        assert status == 405, status
        assert "GET" in hdrs.get("allow", ""), hdrs
        assert hdrs.get("connection", "").lower() == "close", hdrs
        assert body.strip(), body


def test_health_with_query_string():
    with Server() as srv:
        status, _, body = http_get(srv.port, "/health?x=1")
        assert status == 200 and json.loads(body)["status"] == "ok", (status, body)


def test_health_head_has_no_body():
    # HEAD /health is allowed (200); RFC 9110 9.3.2: no content with it.
    with Server() as srv:
        s = connect(srv.port)
        s.sendall(raw_request(["HEAD /health HTTP/1.1", "Host: 127.0.0.1"]))
        s.settimeout(5)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, "closed before response head: %r" % buf
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        rest += read_to_eof(s)
        s.close()
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert rest == b"", "HEAD response carries %d body bytes: %r" % (len(rest), rest[:80])


def test_health_disabled_404():
    with Server("--health.enabled=false") as srv:
        status, hdrs, body = http_get(srv.port, "/health")
        assert status == 404, status
        assert hdrs.get("connection", "").lower() == "close" and body.strip(), (hdrs, body)


def test_echo_disabled_404():
    with Server("--echo.enabled=false") as srv:
        reject_case(srv, req("echooff", origin=None), 404, "not_found", "echooff", origin=None)


def test_echo_handler_prefix_moves_endpoint():
    with Server("--echo.handler_prefix=/ws") as srv:
        ws = upgrade_ok(srv.port, req("movedws", origin=None, path="/ws"))
        echo_roundtrip(ws)
        ws.close()
        reject_case(srv, req("movedecho", origin=None), 404, "not_found", "movedecho",
                    origin=None, body_has=("/ws",))


# ---- request bodies and absolute-form targets ------------------------------

def test_upgrade_with_content_length_body_400():
    # a body's bytes would otherwise be read as WebSocket frames (smuggling)
    with Server(ALLOW_APP) as srv:
        data = req("cl-body", headers={"Content-Length": "5"}) + b"hello"
        reject_case(srv, data, 400, "request_body", "cl-body", body_has=("body",))


def test_upgrade_with_transfer_encoding_400():
    with Server(ALLOW_APP) as srv:
        data = req("te-body", headers={"Transfer-Encoding": "chunked"}) + b"0\r\n\r\n"
        reject_case(srv, data, 400, "request_body", "te-body", body_has=("body",))


def test_upgrade_with_content_length_zero_accepted():
    with Server(ALLOW_APP) as srv:
        ws = upgrade_ok(srv.port, req("cl-zero", headers={"Content-Length": "0"}))
        echo_roundtrip(ws)
        ws.close()


def test_absolute_form_target_routed():
    # RFC 9112 3.2.2: a server must accept the absolute form
    with Server(ALLOW_APP) as srv:
        ws = upgrade_ok(srv.port, req("abs-form", path="http://127.0.0.1/echo?x=1"))
        echo_roundtrip(ws)
        ws.close()
        ev = srv.wait_event("upgrade_accepted", lambda e: e.get("user_agent") == ua_for("abs-form"))
        assert ev["path"] == "/echo", ev
        s = connect(srv.port)
        s.sendall(b"GET http://127.0.0.1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, hdrs, body, _ = read_http_response(s)
        s.close()
        assert status == 200 and json.loads(body)["status"] == "ok", (status, body)


if __name__ == "__main__":
    sys.exit(run_module("handshake", globals()))
