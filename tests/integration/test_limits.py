# SPDX-License-Identifier: MIT
"""Connection limits and the SIGTERM drain, against the real binary:
client.connection_limit and client.connection_limit_per_ip answer 503 with
Retry-After (client.retry_after), an explaining body and an upgrade_rejected
log line (reason connection_limit), free their slot when a connection ends,
and count per source address (127.0.0.1 vs 127.0.0.2). On SIGTERM the server
sends 1001 with a reason, stops accepting, and exits 0: after
shutdown.timeout with forced_closed=1 when the peer never answers the close,
promptly with forced_closed=0 when it does. These tests drive the process
themselves (srv.proc.wait); Server.__exit__ then finds it gone and only
checks the exit code."""
import json
import re
import signal
import socket
import struct
import sys
import time

from harness import (read_to_eof, remote_of, WS, Server, connect, read_http_response, run_module,
                     upgrade_request)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def connect_from(ip, port, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.bind((ip, 0))
    s.connect(("127.0.0.1", port))
    return s






def upgrade_on(s):
    """Upgrade on an already connected socket; returns a WS (101 expected)."""
    data, _ = upgrade_request()
    s.sendall(data)
    status, hdrs, body, rest = read_http_response(s)
    assert status == 101, (status, hdrs, body)
    ws = WS.__new__(WS)
    ws.sock, ws.status, ws.headers, ws.buf = s, status, hdrs, rest
    return ws


def expect_limit_503(srv, s, retry_after="5"):
    """Send an upgrade on s; expect the explained 503 and its log line."""
    remote = remote_of(s)
    data, _ = upgrade_request(headers={"User-Agent": "hf-limits"})
    s.sendall(data)
    status, hdrs, body, rest = read_http_response(s)
    rest += read_to_eof(s)
    assert status == 503, (status, hdrs, body)
    assert hdrs.get("retry-after") == retry_after, hdrs
    assert hdrs.get("connection", "").lower() == "close", hdrs
    assert hdrs.get("content-type", "").startswith("text/plain"), hdrs
    text = body.decode("utf-8")
    assert "client.connection_limit" in text, text
    assert rest == b"", rest
    ev = srv.wait_event("upgrade_rejected", lambda e: e.get("remote") == remote)
    assert ev.get("reason") == "connection_limit" and ev.get("status") == 503, ev
    assert ev.get("path") == "/echo" and ev.get("user_agent") == "hf-limits", ev
    assert UUID_RE.match(ev.get("conn_id") or ""), ev
    return ev


def close_ws(srv, ws):
    """Client-initiated close handshake; wait until the server logged it."""
    cid = ws.headers["x-holdfast-connection-id"]
    ws.send(0x8, b"\x03\xe8done")
    ws.expect_close(1000)
    ws.close()
    srv.wait_event("closed", lambda e: e.get("conn_id") == cid)


def echo(ws, text="hi"):
    ws.send(0x1, text)
    assert ws.recv_message() == (0x1, text.encode())


# ---- client.connection_limit -----------------------------------------------

def test_connection_limit_third_gets_503():
    with Server("--client.connection_limit=2") as srv:
        a, b = WS(srv.port), WS(srv.port)
        s = connect(srv.port)
        expect_limit_503(srv, s)
        s.close()
        echo(a)
        echo(b)
        a.close()
        b.close()


def test_connection_limit_slot_freed_after_close():
    with Server("--client.connection_limit=2") as srv:
        a, b = WS(srv.port), WS(srv.port)
        s = connect(srv.port)
        expect_limit_503(srv, s)
        s.close()  # the rejected connection must give its slot back too
        close_ws(srv, a)
        c = WS(srv.port)
        echo(c, "third time lucky")
        # and the limit still holds with b and c open
        s = connect(srv.port)
        expect_limit_503(srv, s)
        s.close()
        b.close()
        c.close()


def test_connection_limit_retry_after_configured():
    with Server("--client.connection_limit=1", "--client.retry_after=7") as srv:
        a = WS(srv.port)
        s = connect(srv.port)
        expect_limit_503(srv, s, retry_after="7")
        s.close()
        a.close()


def test_health_answers_at_connection_limit():
    # /health is for load balancers: it must answer even when full.
    with Server("--client.connection_limit=1") as srv:
        a = WS(srv.port)
        s = connect(srv.port)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, body, _ = read_http_response(s)
        s.close()
        assert status == 200 and b'"connections":1' in body, (status, body)
        a.close()


# ---- client.connection_limit_per_ip ----------------------------------------

def test_per_ip_limit_counts_each_address():
    with Server("--client.connection_limit_per_ip=1") as srv:
        a = upgrade_on(connect_from("127.0.0.1", srv.port))
        s = connect_from("127.0.0.1", srv.port)
        ev = expect_limit_503(srv, s)
        assert ev["remote"].startswith("127.0.0.1:"), ev
        s.close()
        other = upgrade_on(connect_from("127.0.0.2", srv.port))
        echo(other, "from 127.0.0.2")
        acc = srv.wait_event("upgrade_accepted", lambda e: e.get("remote") == remote_of(other.sock))
        assert acc["remote"].startswith("127.0.0.2:"), acc
        echo(a)
        a.close()
        other.close()


def test_per_ip_slot_freed_after_close():
    with Server("--client.connection_limit_per_ip=1") as srv:
        a = upgrade_on(connect_from("127.0.0.1", srv.port))
        s = connect_from("127.0.0.1", srv.port)
        expect_limit_503(srv, s)
        s.close()
        close_ws(srv, a)
        b = upgrade_on(connect_from("127.0.0.1", srv.port))
        echo(b)
        b.close()


# ---- SIGTERM drain ----------------------------------------------------------

def assert_not_accepting(port):
    """A new connection must fail: refused, reset, or closed without a 101."""
    try:
        s = connect(port, timeout=2.0)
    except (ConnectionRefusedError, ConnectionResetError):
        return
    try:
        data, _ = upgrade_request()
        try:
            s.sendall(data)
            got = read_to_eof(s, timeout=2.0)
        except (ConnectionResetError, BrokenPipeError):
            return
        assert not got.startswith(b"HTTP/1.1 101"), "server still upgrades during drain: %r" % got[:80]
    finally:
        s.close()


def test_drain_unanswered_close_forced_after_timeout():
    with Server("--shutdown.timeout=1s") as srv:
        ws = WS(srv.port)
        t0 = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        fin, op, p = ws.recv_frame(timeout=3.0)
        assert op == 0x8 and fin, (op, p)
        code = struct.unpack("!H", p[:2])[0]
        reason = p[2:].decode("utf-8")
        assert code == 1001 and reason, (code, reason)
        # deliberately no close frame back
        assert_not_accepting(srv.port)
        assert srv.proc.poll() is None, "exited before shutdown.timeout"
        rc = srv.proc.wait(timeout=5)
        took = time.time() - t0
        assert rc == 0, rc
        assert 0.9 <= took <= 2.5, "exit %.2fs after SIGTERM, want ~1s" % took
        ws.expect_eof(timeout=2.0)
        ws.close()
        srv.wait_event("shutdown_started", timeout=1)
        ev = srv.wait_event("shutdown_complete", timeout=1)
        assert ev.get("forced_closed") == 1, ev
        srv.check_log_clean()


def test_drain_answered_close_exits_promptly():
    with Server("--shutdown.timeout=5s") as srv:
        ws = WS(srv.port)
        cid = ws.headers["x-holdfast-connection-id"]
        echo(ws)
        t0 = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        code, reason = ws.expect_close(1001, timeout=3.0)  # answers, then EOF
        assert reason, reason
        ws.close()
        rc = srv.proc.wait(timeout=5)
        took = time.time() - t0
        assert rc == 0, rc
        assert took < 1.0, "exit %.2fs after SIGTERM despite the answered close" % took
        ev = srv.wait_event("closed", lambda e: e.get("conn_id") == cid, timeout=1)
        assert ev.get("who") == "server" and ev.get("code") == 1001, ev
        assert ev.get("reason"), ev
        ev = srv.wait_event("shutdown_complete", timeout=1)
        assert ev.get("forced_closed") == 0, ev
        srv.check_log_clean()


def start_drain_with_pending_request(srv, first_part):
    """Hold a WebSocket that never answers the close (so the drain lasts
    shutdown.timeout), open a second connection and send first_part of a
    request head, then SIGTERM and wait for the 1001 on the WebSocket, so
    the worker is certainly draining. Returns (ws, pending_socket)."""
    ws = WS(srv.port)
    s = connect(srv.port)
    s.sendall(first_part)
    time.sleep(0.1)  # the partial head is read before the signal
    srv.proc.send_signal(signal.SIGTERM)
    fin, op, p = ws.recv_frame(timeout=3.0)
    assert op == 0x8 and struct.unpack("!H", p[:2])[0] == 1001, (op, p)
    return ws, s


def finish_drain(srv, ws):
    rc = srv.proc.wait(timeout=5)
    ws.close()
    assert rc == 0, rc
    srv.check_log_clean()


def test_health_during_drain_reports_draining():
    # The documented /health answer during the drain: 503 {"status":"draining"}.
    with Server("--shutdown.timeout=1s") as srv:
        ws, s = start_drain_with_pending_request(srv, b"GET /health HTTP/1.1\r\nHost: x\r\n")
        try:
            s.sendall(b"\r\n")
            status, hdrs, body, _ = read_http_response(s, timeout=2.0)
        except (AssertionError, OSError) as e:
            finish_drain(srv, ws)
            raise AssertionError("request in flight at SIGTERM got no answer (%s)" % e)
        s.close()
        finish_drain(srv, ws)
        assert status == 503, (status, body)
        assert json.loads(body).get("status") == "draining", body


def test_upgrade_during_drain_gets_503_shutting_down():
    # An upgrade whose head completes during the drain: 503 shutting_down.
    with Server("--shutdown.timeout=1s") as srv:
        data, _ = upgrade_request(headers={"User-Agent": "hf-drain"})
        ws, s = start_drain_with_pending_request(srv, data[:30])
        remote = remote_of(s)
        try:
            s.sendall(data[30:])
            status, hdrs, body, _ = read_http_response(s, timeout=2.0)
        except (AssertionError, OSError) as e:
            finish_drain(srv, ws)
            raise AssertionError("upgrade in flight at SIGTERM got no answer (%s)" % e)
        s.close()
        ev = srv.wait_event("upgrade_rejected", lambda e: e.get("remote") == remote, timeout=1)
        finish_drain(srv, ws)
        assert status == 503 and hdrs.get("retry-after") == "1", (status, hdrs, body)
        assert hdrs.get("connection", "").lower() == "close" and body.strip(), (hdrs, body)
        assert ev.get("reason") == "shutting_down" and ev.get("status") == 503, ev
        assert ev.get("user_agent") == "hf-drain" and ev.get("path") == "/echo", ev


def test_drain_with_no_connections_exits_promptly():
    with Server("--shutdown.timeout=5s") as srv:
        t0 = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        rc = srv.proc.wait(timeout=5)
        assert rc == 0 and time.time() - t0 < 1.0, (rc, time.time() - t0)
        ev = srv.wait_event("shutdown_complete", timeout=1)
        assert ev.get("forced_closed") == 0, ev
        srv.check_log_clean()


if __name__ == "__main__":
    sys.exit(run_module("limits", globals()))
