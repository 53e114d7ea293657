# SPDX-License-Identifier: MIT
"""`holdfast chaos` itself: every rule made observable with a raw client
through the proxy to holdfast's echo endpoint. Pass-through is byte-exact
(frames counted, close codes seen, the upstream-side address matches the
server's log); latency, jitter (order kept), bandwidth; cuts after a time,
after N bytes and in the middle of a frame, with FIN or RST; the blackhole
(a half-open path the server's heartbeat detects, 3012); the idle kill of a
middlebox; Upgrade stripped (holdfast's 426 explains it); refused
connections; canned responses; the control endpoint changing the rules of
live connections; per-connection rules from a file; start-up checks
(loopback-only upstream, bad rules)."""
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

from chaosproc import Chaos
from harness import (BIN, WS, Server, connect, read_http_response, run_module,
                     upgrade_request)

HB = ("--websocket.ping_interval=500ms", "--websocket.pong_timeout=300ms")


def cid(ws):
    return ws.headers["x-holdfast-connection-id"]


def echo_rtt(ws, payload="ping", timeout=5.0):
    t0 = time.time()
    ws.send(0x1, payload)
    op, data = ws.recv_message(timeout)
    assert data == (payload.encode() if isinstance(payload, str) else payload), "echo differs"
    return time.time() - t0


def expect_gone(ws, timeout=3.0, rst=None):
    """The proxy ends the client's TCP: EOF (FIN) or a reset. Returns
    'fin' or 'rst' and how long it took."""
    t0 = time.time()
    ws.sock.settimeout(timeout)
    try:
        while True:
            chunk = ws.sock.recv(65536)
            if not chunk:
                how = "fin"
                break
    except ConnectionResetError:
        how = "rst"
    except socket.timeout:
        raise AssertionError("TCP still open after %.1fs" % timeout)
    if rst is not None:
        assert how == ("rst" if rst else "fin"), "ended with %s" % how
    return how, time.time() - t0


def expect_silence(ws, secs):
    """Nothing at all arrives for secs (no data, no FIN, no reset)."""
    ws.sock.settimeout(secs)
    try:
        chunk = ws.sock.recv(65536)
    except socket.timeout:
        return
    raise AssertionError("expected silence, got %r" % (chunk[:60],))


def refused(port):
    """True when the proxy resets (or closes) a new connection before any
    answer: at connect, at the request or at the first read."""
    try:
        s = connect(port)
    except ConnectionResetError:
        return True
    try:
        s.sendall(upgrade_request("/echo")[0])
        return not s.recv(100)
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        s.close()


def upstream_of(srv, ch, ws):
    """The server's upgrade_accepted line for the chaos connection of ws."""
    ev = srv.wait_event("upgrade_accepted", lambda e: e["conn_id"] == cid(ws))
    up = ch.wait_event("chaos_upstream", lambda e: e["up_local"] == ev["remote"])
    return ev, up


# ---- pass-through ------------------------------------------------------------


def test_passthrough_is_byte_exact_and_observed():
    with Server() as srv, Chaos(srv.port) as ch:
        ws = WS(ch.port)
        ev, up = upstream_of(srv, ch, ws)
        assert up["conn"] == 1
        assert echo_rtt(ws, "hello") < 2
        big = os.urandom(70000)  # the 64-bit length form
        ws.send(0x2, big)
        assert ws.recv_message() == (0x2, big)
        ws.send(0x1, "frag", fin=False)
        ws.send(0x0, "mented")
        assert ws.recv_message() == (0x1, b"fragmented")
        ws.send(0x8, struct.pack("!H", 1000) + b"bye")
        fin, op, p = ws.recv_frame()
        assert op == 0x8 and struct.unpack("!H", p[:2])[0] == 1000
        expect_gone(ws, rst=False)  # the server's FIN passed on...
        ws.close()  # ...and the client's ends the connection
        ev = ch.wait_event("chaos_closed", lambda e: e["conn"] == 1)
        assert ev["how"] == "upstream closed" and ev["bytes_up"] > 70000, ev
        st = ch.stats()
        assert st["upgrades"] == 1 and st["frames_up"] == 5, st  # text, binary, 2 fragments, close
        assert st["close_frames_up"] == 1 and st["close_frames_down"] == 1, st
        codes = {(e["dir"], e["code"]) for e in ch.events("chaos_close_frame")}
        assert codes == {("up", 1000), ("down", 1000)}, codes
        closed = srv.wait_event("closed", lambda e: e["conn_id"] == cid(ws))
        assert closed["who"] == "client" and closed["code"] == 1000, closed
        assert st["cut_after"] == st["idle_kill"] == st["cut_control"] == 0


# ---- timing ------------------------------------------------------------------


def test_latency_delays_both_directions():
    with Server() as srv, Chaos(srv.port, "--latency", "100ms") as ch:
        ws = WS(ch.port)
        rtts = [echo_rtt(ws) for _ in range(3)]
        assert min(rtts) >= 0.19, "round trips %r under 2 x 100 ms" % rtts
        assert max(rtts) < 1.5, "round trips %r" % rtts
        assert ch.stats()["delayed_chunks"] >= 6
        ws.close()


def test_jitter_varies_delay_but_keeps_order():
    with Server() as srv, Chaos(srv.port, "--latency", "30ms", "--jitter", "25ms",
                                "--direction", "up") as ch:
        ws = WS(ch.port)
        sent = {}
        for i in range(30):
            sent[i] = time.time()
            ws.send(0x1, "m%02d" % i)
            time.sleep(0.004)
        rtts = []
        for i in range(30):
            op, data = ws.recv_message()
            assert data == ("m%02d" % i).encode(), "message %d came as %r: order broken" % (i, data)
            rtts.append(time.time() - sent[i])
        assert min(rtts) >= 0.004, rtts
        assert max(rtts) - min(rtts) >= 0.010, "no jitter visible: %r" % rtts
        assert max(rtts) < 2.0, rtts
        ws.close()


def test_bandwidth_limits_one_direction():
    with Server() as srv, Chaos(srv.port, "--bandwidth", "20000", "--direction", "down") as ch:
        ws = WS(ch.port)
        payload = os.urandom(30000)
        t0 = time.time()
        ws.send(0x2, payload)
        assert ws.recv_message(timeout=10) == (0x2, payload)
        took = time.time() - t0
        assert took >= 1.2, "30,000 bytes at 20,000 B/s took %.2fs" % took
        assert took < 6, "took %.2fs" % took
        assert ch.stats()["throttled_waits"] > 0
        ws.close()


# ---- cuts ----------------------------------------------------------------------


def test_cut_after_time_with_fin_and_with_rst():
    for mode in ("fin", "rst"):
        with Server() as srv, Chaos(srv.port, "--cut-after", "300ms", "--cut-mode", mode) as ch:
            t0 = time.time()
            ws = WS(ch.port)
            assert echo_rtt(ws) < 1
            how, _ = expect_gone(ws, rst=(mode == "rst"))
            took = time.time() - t0
            assert 0.25 <= took < 2.5, "%s cut after %.2fs" % (mode, took)
            cut = ch.wait_event("chaos_cut")
            assert cut["why"] == "cut-after" and cut["mode"] == mode and cut["upgraded"], cut
            closed = srv.wait_event("closed", lambda e: e["conn_id"] == cid(ws))
            assert closed["code"] == 1006 and closed["who"] == "abnormal", closed
            assert ch.stats()["cut_after"] == 1


def test_cut_after_bytes_lands_exactly():
    with Server() as srv:
        req, key = upgrade_request("/echo")
        with Chaos(srv.port, "--cut-after-bytes", str(len(req) + 50), "--direction", "up") as ch:
            s = connect(ch.port)
            s.sendall(req)
            status, headers, _, extra = read_http_response(s)
            assert status == 101
            s.sendall(WS.frame(0x1, b"x" * 100))  # 106 bytes on the wire
            try:
                while s.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            closed = srv.wait_event("closed", lambda e: e["conn_id"] == headers["x-holdfast-connection-id"])
            assert closed["bytes_in"] == 50 and closed["msgs_in"] == 0, closed
            assert closed["code"] == 1006, closed
            cut = ch.wait_event("chaos_cut")
            assert cut["why"] == "cut-after-bytes" and cut["mid_frame"], cut
            s.close()


def test_cut_mid_frame_after_the_handshake():
    with Server() as srv, Chaos(srv.port, "--cut-mid-frame") as ch:
        ws = WS(ch.port)
        ws.send(0x1, "y" * 1000)  # header 2 + 2 + 4 mask: cut after 8 + 500 bytes
        expect_gone(ws, rst=False)
        closed = srv.wait_event("closed", lambda e: e["conn_id"] == cid(ws))
        assert closed["bytes_in"] == 508 and closed["msgs_in"] == 0, closed
        cut = ch.wait_event("chaos_cut")
        assert cut["why"] == "cut-mid-frame" and cut["mid_frame"], cut
        assert ch.stats()["cut_mid_frame"] == 1


# ---- blackhole and idle kill ------------------------------------------------------


def test_blackhole_is_half_open_and_heartbeat_finds_it():
    with Server(*HB) as srv, Chaos(srv.port, "--blackhole-after", "300ms") as ch:
        ws = WS(ch.port)
        assert echo_rtt(ws) < 0.3
        ch.wait_event("chaos_blackhole", lambda e: e["dir"] == "down", timeout=3)
        ws.send(0x1, "into the void")
        # the server pings, hears nothing, gives up with 3012...
        closed = srv.wait_event("closed", lambda e: e["conn_id"] == cid(ws), timeout=5)
        assert closed["code"] == 3012 and closed["who"] == "server", closed
        # ...while the client sees nothing at all: no echo, no close, no FIN
        expect_silence(ws, 0.5)
        st = ch.stats()
        assert st["blackholed_connections"] == 1 and st["blackholed_bytes"] > 0, st
        ws.close()
        ch.wait_event("chaos_closed", lambda e: e["conn"] == 1)


def test_idle_kill_spares_busy_connections():
    with Server() as srv, Chaos(srv.port, "--idle-kill", "400ms") as ch:
        busy, idle = WS(ch.port), WS(ch.port)
        t0 = time.time()
        while time.time() - t0 < 1.2:
            assert echo_rtt(busy, "tick") < 0.5
            time.sleep(0.1)
        how, _ = expect_gone(idle, timeout=1.0, rst=False)
        assert echo_rtt(busy) < 0.5
        cut = ch.wait_event("chaos_cut")
        assert cut["why"] == "idle-kill" and cut["conn"] == 2, cut
        assert 350 <= cut["age_ms"] < 1200, cut
        assert ch.stats()["idle_kill"] == 1
        busy.close()


# ---- heads ----------------------------------------------------------------------


def test_strip_upgrade_gets_explained_426():
    with Server() as srv, Chaos(srv.port, "--strip-upgrade") as ch:
        s = connect(ch.port)
        req, _ = upgrade_request("/echo")
        s.sendall(req)
        status, headers, body, _ = read_http_response(s)
        assert status == 426, status
        assert b"proxy_set_header Upgrade" in body, body[:300]
        ev = srv.wait_event("upgrade_rejected")
        assert ev["reason"] == "missing_upgrade", ev
        strip = ch.wait_event("chaos_strip_upgrade")
        assert strip["removed"] == 2, strip
        assert ch.wait_event("chaos_response")["status"] == 426
        s.close()


def test_refuse_resets_without_reaching_the_server():
    with Server() as srv, Chaos(srv.port, "--refuse") as ch:
        assert refused(ch.port)
        ch.wait_event("chaos_refused")
        st = ch.stats()
        assert st["refused"] == 1 and st["accepted"] == 0, st
        assert not srv.events("upgrade_accepted") and not srv.events("upgrade_rejected")


def test_canned_response():
    with Server() as srv, Chaos(srv.port, "--respond", "503", "--respond-body",
                                "down for maintenance\n") as ch:
        s = connect(ch.port)
        s.sendall(upgrade_request("/echo")[0])
        status, headers, body, _ = read_http_response(s)
        assert status == 503 and body == b"down for maintenance\n", (status, body)
        assert headers.get("connection") == "close"
        assert s.recv(10) == b""
        ev = ch.wait_event("chaos_responded")
        assert ev["status"] == 503 and ev["path"] == "/echo", ev
        assert not srv.events("upgrade_accepted")
        s.close()


def test_upstream_down_resets_client():
    with Server() as srv:
        dead = srv.port
    with Chaos(dead) as ch:
        assert refused(ch.port)
        ev = ch.wait_event("chaos_upstream_failed")
        assert "refused" in ev["error"], ev
        assert ch.stats()["upstream_failed"] == 1


# ---- control endpoint ------------------------------------------------------------


def test_control_changes_rules_of_live_connections():
    with Server() as srv, Chaos(srv.port) as ch:
        a = WS(ch.port)
        ev, up = upstream_of(srv, ch, a)
        st, conns = ch.call("GET", "/connections")
        assert st == 200 and conns[0]["conn"] == 1 and conns[0]["up_local"] == ev["remote"], conns
        assert echo_rtt(a) < 0.15
        ch.rules({"latency": "150ms"})
        assert echo_rtt(a) >= 0.29, "new latency not applied to a live connection"
        ch.rules({"cut-after": "0s"}, conn=1)  # only connection 1, at once
        expect_gone(a, rst=False)
        b = WS(ch.port)  # connection 2 follows the global rules
        assert echo_rtt(b) >= 0.29
        ch.rules({})
        assert echo_rtt(b) < 0.15
        st, j = ch.call("POST", "/cut?conn=2&mode=rst")
        assert st == 200 and j == {"cut": 1}, (st, j)
        expect_gone(b, rst=True)
        st, j = ch.call("POST", "/rules", b"{nope")
        assert st == 400 and "not JSON" in j["error"], j
        st, j = ch.call("POST", "/rules", {"latency": 5})
        assert st == 400 and "latency" in j["error"] and "duration" in j["error"], j
        st, j = ch.call("POST", "/rules", {"laggy": "1s"})
        assert st == 400 and "unknown rule" in j["error"] and "blackhole-after" in j["error"], j
        st, j = ch.call("POST", "/cut?conn=99")
        assert st == 404, st
        st, j = ch.call("GET", "/nope")
        assert st == 404 and "/stats" in j["error"], j
        st, j = ch.call("GET", "/rules")
        assert st == 200 and j == {}, j  # POST /rules without conn= replaced everything
        s = ch.stats()
        assert s["cut_after"] == 1 and s["cut_control"] == 1 and s["rules_changes"] == 3, s
        assert len(ch.events("chaos_rules_rejected")) == 3
        assert [e["source"] for e in ch.events("chaos_rules")] == ["flags", "control", "control", "control"]


def test_rules_file_with_per_connection_rules():
    fd, path = tempfile.mkstemp(suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump({"down": {"latency": "50ms"}, "connections": {"2": {"refuse": True}}}, f)
    try:
        with Server() as srv, Chaos(srv.port, "--rules", path) as ch:
            a = WS(ch.port)
            assert 0.05 <= echo_rtt(a) < 1
            assert refused(ch.port)
            c = WS(ch.port)
            assert echo_rtt(c) >= 0.05
            assert ch.wait_event("chaos_refused")["conn"] == 2
            st, j = ch.call("GET", "/rules")
            assert j == {"up": {}, "down": {"latency": "50ms"},
                         "connections": {"2": {"refuse": True}}}, j
            for w in (a, c):
                w.close()
    finally:
        os.unlink(path)


def test_start_up_checks():
    def run(*args):
        p = subprocess.run([BIN, "chaos"] + list(args), capture_output=True, text=True, timeout=10)
        return p.returncode, p.stderr

    rc, err = run("--listen", "127.0.0.1:0", "--upstream", "10.1.2.3:80")
    assert rc == 2 and "loopback" in err and "--allow-remote-upstream" in err, err
    rc, err = run("--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9", "--control", "0.0.0.0:0")
    assert rc == 2 and "loopback only" in err, err
    rc, err = run("--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9", "--latency", "abc")
    assert rc == 2 and "latency" in err and "duration" in err, err
    rc, err = run("--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9", "--cut-mode", "boom")
    assert rc == 2 and "fin or rst" in err, err
    rc, err = run("--upstream", "127.0.0.1:9")
    assert rc == 2 and "--listen" in err, err
    rc, err = run("--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9", "--what")
    assert rc == 2 and "unknown argument" in err, err
    fd, path = tempfile.mkstemp(suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write('{"up": {"cut-after": "1s"}}')
    try:
        rc, err = run("--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9", "--rules", path)
        assert rc == 2 and "up.cut-after" in err and "whole connection" in err, err
    finally:
        os.unlink(path)
    rc, err = run("--listen", "127.0.0.1:0", "--upstream", "192.0.2.1:9",
                  "--allow-remote-upstream", "--exit-after", "200ms")
    assert rc == 0, err
    assert '"event":"chaos_stopped"' in err and '"why":"exit-after"' in err, err
    rc, out = subprocess.run([BIN, "chaos", "--help"], capture_output=True, text=True).returncode, ""
    assert rc == 0


if __name__ == "__main__":
    sys.exit(run_module("chaos", globals(), os.environ.get("ONLY")))
