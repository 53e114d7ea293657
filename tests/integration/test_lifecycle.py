# SPDX-License-Identifier: MIT
"""Connection lifecycle on /echo: the close handshake (client-initiated with
a code and reason, abnormal drops, TCP half-close), server heartbeats (a
client that answers pings stays, a silent half-open client is closed with
3012, data counts as liveness, pongs carry the ping payload), the slow
reader (closed with 3008 while a second connection on the same worker keeps
echoing with low latency), SIGTERM drain (1001 to every client, exit 0), and
the byte/message counters of the 'closed' log event."""
import signal
import socket
import struct
import sys
import time

from harness import WS, Server, connect, http_call, upgrade_request, read_http_response, run_module

HB = ("--websocket.ping_interval=500ms", "--websocket.pong_timeout=300ms")


def cid(ws):
    return ws.headers["x-holdfast-connection-id"]


def closed_of(srv, ws_or_id, timeout=5.0):
    c = ws_or_id if isinstance(ws_or_id, str) else cid(ws_or_id)
    return srv.wait_event("closed", lambda e: e["conn_id"] == c, timeout)


def read_close_no_reply(ws, timeout=3.0):
    """Read frames up to the server's close frame without answering
    anything; return (code, reason, frames seen before)."""
    seen = []
    while True:
        fin, op, p = ws.recv_frame(timeout)
        if op == 0x8:
            code = struct.unpack("!H", p[:2])[0] if len(p) >= 2 else None
            return code, p[2:].decode("utf-8"), seen
        seen.append((op, p))


# ---- heartbeats ----------------------------------------------------------------


def test_heartbeat_client_answering_pings_stays_open():
    with Server(*HB) as srv:
        ws = WS(srv.port)
        pings = []
        deadline = time.time() + 3.0
        while time.time() < deadline:
            try:
                fin, op, p = ws.recv_frame(min(0.5, max(0.01, deadline - time.time())))
            except TimeoutError:
                continue
            assert op == 0x9, "unexpected frame op %d %r" % (op, p[:60])
            pings.append(p)
            ws.send(0xA, p)  # pong with the ping's payload
        assert len(pings) >= 3, "only %d pings in 3 s at a 500 ms interval" % len(pings)
        assert len(pings) <= 8, "%d pings in 3 s at a 500 ms interval" % len(pings)
        # still open and echoing
        ws.send(0x1, "still here")
        assert ws.recv_message() == (0x1, b"still here")
        ws.send(0x8, struct.pack("!H", 1000))
        ws.expect_close(1000)
        ws.close()
        ev = closed_of(srv, ws)
        assert ev["who"] == "client" and ev["code"] == 1000, ev


def test_heartbeat_silent_client_closed_3012():
    """A client that sends nothing after the upgrade (a half-open or zombie
    peer) is closed with 3012 after interval + pong_timeout (+ a tick)."""
    with Server(*HB) as srv:
        ws = WS(srv.port)
        t0 = time.time()
        code, reason, seen = read_close_no_reply(ws, timeout=3.0)
        dt = time.time() - t0
        assert code == 3012, (code, reason)
        assert reason, "3012 without a reason"
        assert [op for op, _ in seen] == [0x9], "expected exactly one ping before the close: %r" % seen
        assert 0.7 <= dt <= 1.5, "closed after %.2fs; expected about 0.8 s (500 ms + 300 ms + tick)" % dt
        ws.expect_eof(2.0)  # TCP dropped at once: no close handshake with a dead peer
        ws.close()
        ev = closed_of(srv, ws)
        assert ev["code"] == 3012 and ev["who"] == "server" and ev["reason"] == reason, ev
        assert 700 <= ev["duration_ms"] <= 1500, ev
        # counted once, at the level that noticed: the WebSocket ping
        st, _, body = http_call(srv.port, "GET", "/metrics")
        lines = body.decode().splitlines()
        assert st == 200 and 'holdfast_heartbeat_timeouts_total{level="websocket"} 1' in lines, lines
        assert 'holdfast_heartbeat_timeouts_total{level="protocol"} 0' in lines


def test_heartbeat_data_counts_as_liveness():
    """No pong ever, but a data message every 150 ms: the client stays."""
    with Server(*HB) as srv:
        ws = WS(srv.port)
        pings = echoes = 0
        deadline = time.time() + 2.5
        n = 0
        while time.time() < deadline:
            ws.send(0x1, "tick %d" % n)
            n += 1
            end = time.time() + 0.15
            while time.time() < end:
                try:
                    fin, op, p = ws.recv_frame(max(0.01, end - time.time()))
                except TimeoutError:
                    break
                if op == 0x9:
                    pings += 1  # deliberately not answered
                elif op == 0x1:
                    echoes += 1
                else:
                    raise AssertionError("unexpected frame op %d %r" % (op, p[:80]))
        assert pings >= 3, "only %d pings" % pings
        assert echoes >= n - 2, (echoes, n)
        assert not srv.events("closed"), srv.events("closed")
        ws.send(0x8, struct.pack("!H", 1000))
        ws.expect_close(1000)
        ws.close()


def test_heartbeat_pong_carries_ping_payload():
    """The server's pings carry a payload; a client ping sent while the
    heartbeat runs gets a pong with exactly its own payload."""
    with Server(*HB) as srv:
        ws = WS(srv.port)
        fin, op, p = ws.recv_frame(2.0)
        assert op == 0x9 and 0 < len(p) <= 125, (op, p)
        ws.send(0xA, p)
        for payload in (b"", b"x", bytes(range(125))):
            ws.send(0x9, payload)
            while True:
                fin, op, got = ws.recv_frame(2.0)
                if op == 0x9:
                    ws.send(0xA, got)
                    continue
                assert op == 0xA and got == payload, (op, got, payload)
                break
        ws.close()


# ---- slow reader ------------------------------------------------------------------


def test_slow_reader_closed_3008_other_client_unaffected():
    with Server("--client.queue_max_size=65536", "--websocket.close_timeout=500ms") as srv:
        # the slow client: tiny receive buffer, never reads
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(5)
        s.connect(("127.0.0.1", srv.port))
        req, _ = upgrade_request("/echo")
        s.sendall(req)
        status, hdrs, _, _ = read_http_response(s)
        assert status == 101, status
        slow_id = hdrs["x-holdfast-connection-id"]
        s.setblocking(False)
        good = WS(srv.port)
        msg = WS.frame(0x2, b"\xab" * 16384)
        pending = b""
        sent_msgs = 0
        latencies = []
        t0 = time.time()
        closed = None
        while time.time() - t0 < 8:
            # push as much as the kernel takes to the slow client
            try:
                while True:
                    if not pending:
                        pending = msg
                        sent_msgs += 1
                    n = s.send(pending)
                    pending = pending[n:]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                pass  # reset after the server dropped it
            # one round trip on the good connection
            t = time.time()
            good.send(0x1, "ping %d" % len(latencies))
            assert good.recv_message(2.0) == (0x1, ("ping %d" % len(latencies)).encode())
            latencies.append(time.time() - t)
            closed = [e for e in srv.events("closed") if e["conn_id"] == slow_id]
            if closed:
                break
            time.sleep(0.01)
        assert closed, "slow client not closed within 8 s (%d messages sent)" % sent_msgs
        ev = closed[0]
        assert ev["code"] == 3008 and ev["who"] == "server" and ev["reason"], ev
        assert ev["duration_ms"] < 5000, ev
        assert len(latencies) >= 3, latencies
        assert max(latencies) < 0.5, "good client's echo took %.3fs" % max(latencies)
        # the good client still works afterwards
        for i in range(20):
            t = time.time()
            good.send(0x2, b"after %d" % i)
            assert good.recv_message(2.0) == (0x2, b"after %d" % i)
            assert time.time() - t < 0.5
        good.send(0x8, struct.pack("!H", 1000))
        good.expect_close(1000)
        good.close()
        s.close()


def test_large_message_to_a_fast_reader_is_not_slow():
    """The slow-consumer rule judges draining, not size: the echo of an
    8 MiB message (message_size_limit 16 MiB) goes over the 1 MiB queue
    limit for an instant and must not be closed 3008; a reader that stops
    is closed once the grace is over."""
    with Server("--websocket.message_size_limit=16MiB", "--client.queue_grace=1s",
                "--websocket.close_timeout=500ms") as srv:
        ws = WS(srv.port)
        big = bytes(range(256)) * (8 * 4096)
        for _ in range(3):
            ws.send(0x2, big)
            op, data = ws.recv_message(20.0)
            assert op == 0x2 and data == big
        assert not [e for e in srv.events("closed") if e.get("code") == 3008]
        # a reader that never reads: closed 3008 after the grace
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", srv.port))
        req, _ = upgrade_request("/echo")
        s.sendall(req)
        status, hdrs, _, _ = read_http_response(s)
        assert status == 101, status
        stalled = hdrs["x-holdfast-connection-id"]
        s.settimeout(10)
        s.sendall(WS.frame(0x2, big))
        ev = srv.wait_event("closed", lambda e: e["conn_id"] == stalled, timeout=10)
        assert ev["code"] == 3008 and ev["duration_ms"] >= 1000, ev
        ws.send(0x8, struct.pack("!H", 1000))
        ws.expect_close(1000)
        ws.close()
        s.close()


# ---- close handshakes ---------------------------------------------------------------


def test_abnormal_close_tcp_drop():
    with Server() as srv:
        ws = WS(srv.port)
        ws.send(0x1, "hello")
        assert ws.recv_message() == (0x1, b"hello")
        ws.close()
        ev = closed_of(srv, ws)
        assert ev["code"] == 1006 and ev["who"] == "abnormal" and ev["reason"] == "", ev
        assert ev["msgs_in"] == 1 and ev["msgs_out"] == 1, ev


def test_abnormal_close_tcp_reset():
    with Server() as srv:
        ws = WS(srv.port)
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.close()  # RST
        ev = closed_of(srv, ws)
        assert ev["code"] == 1006 and ev["who"] == "abnormal", ev


def test_abnormal_close_mid_frame():
    with Server() as srv:
        ws = WS(srv.port)
        ws.send_raw(WS.frame(0x1, "x" * 1000)[:500])
        time.sleep(0.05)
        ws.close()
        ev = closed_of(srv, ws)
        assert ev["code"] == 1006 and ev["who"] == "abnormal", ev
        assert ev["bytes_in"] == 500 and ev["msgs_in"] == 0, ev


def test_client_close_4000_bye():
    with Server() as srv:
        ws = WS(srv.port)
        ws.send(0x8, struct.pack("!H", 4000) + b"bye")
        t0 = time.time()
        code, reason = ws.expect_close(4000, timeout=2.0)
        assert reason, reason
        assert time.time() - t0 < 2.0
        ws.close()
        ev = closed_of(srv, ws)
        assert ev["code"] == 4000 and ev["who"] == "client" and ev["reason"] == "bye", ev


def test_client_close_server_closes_tcp_first():
    """After echoing the client's close the server closes TCP at once,
    without waiting for the client to close (RFC 6455 7.1.1)."""
    with Server("--websocket.close_timeout=5s") as srv:
        ws = WS(srv.port)
        ws.send(0x8, struct.pack("!H", 1000))
        t0 = time.time()
        code, reason, seen = read_close_no_reply(ws, 2.0)
        assert code == 1000 and reason and not seen, (code, reason, seen)
        ws.expect_eof(1.0)
        assert time.time() - t0 < 1.0
        ws.close()
        ev = closed_of(srv, ws)
        assert ev["who"] == "client" and ev["code"] == 1000, ev


def test_server_close_then_client_silent_dropped_after_close_timeout():
    """Server-initiated close (a violation) to a client that never answers
    and never closes: TCP is gone after about websocket.close_timeout."""
    with Server("--websocket.close_timeout=500ms") as srv:
        ws = WS(srv.port)
        ws.send(0x1, "x", rsv=1)
        code, reason, _ = read_close_no_reply(ws, 2.0)
        assert code == 1002 and reason, (code, reason)
        t0 = time.time()
        ev = closed_of(srv, ws, timeout=3.0)
        assert time.time() - t0 < 2.0, "torn down after %.2fs" % (time.time() - t0)
        assert ev["code"] == 1002 and ev["who"] == "server", ev
        ws.close()


def test_tcp_half_close_by_client():
    """shutdown(SHUT_WR) after the upgrade: the server tears down (abnormal,
    no close frame was exchanged) and closes its side."""
    with Server() as srv:
        ws = WS(srv.port)
        ws.send(0x1, "before")
        assert ws.recv_message() == (0x1, b"before")
        ws.sock.shutdown(socket.SHUT_WR)
        ws.expect_eof(2.0)
        ev = closed_of(srv, ws)
        assert ev["code"] == 1006 and ev["who"] == "abnormal", ev
        ws.close()


# ---- SIGTERM drain ---------------------------------------------------------------------


def test_sigterm_drain_three_clients():
    with Server("--shutdown.timeout=5s") as srv:
        clients = [WS(srv.port) for _ in range(3)]
        for i, ws in enumerate(clients):
            ws.send(0x1, "hi %d" % i)
            assert ws.recv_message() == (0x1, ("hi %d" % i).encode())
        t0 = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        reasons = []
        for ws in clients:
            code, reason = ws.expect_close(1001, timeout=3.0)
            reasons.append(reason)
            ws.close()
        assert all(reasons), reasons
        rc = srv.proc.wait(timeout=5)
        assert rc == 0, rc
        assert time.time() - t0 < 3.0, "drain took %.2fs" % (time.time() - t0)
        evs = srv.events("closed")
        assert len(evs) == 3, evs
        for ev in evs:
            assert ev["code"] == 1001 and ev["who"] == "server" and ev["reason"], ev
        done = srv.events("shutdown_complete")
        assert done and done[0]["forced_closed"] == 0, done
        assert srv.events("shutdown_started"), srv.log()[-2000:]


def test_sigterm_drain_client_that_does_not_answer():
    """A client that ignores the 1001 is dropped at the close_timeout and the
    server still exits 0 before shutdown.timeout."""
    with Server("--websocket.close_timeout=300ms", "--shutdown.timeout=3s") as srv:
        ws = WS(srv.port)
        t0 = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        code, reason, _ = read_close_no_reply(ws, 2.0)
        assert code == 1001 and reason, (code, reason)
        rc = srv.proc.wait(timeout=5)
        assert rc == 0, rc
        assert time.time() - t0 < 2.5, time.time() - t0
        ev = closed_of(srv, ws, 1.0)
        assert ev["code"] == 1001 and ev["who"] == "server", ev
        ws.close()


# ---- counters ------------------------------------------------------------------------------


def test_closed_event_byte_and_message_counters():
    """3 messages of known sizes and a client close: bytes_in counts every
    frame byte after the upgrade (headers and masks included), bytes_out
    the unmasked echoes and the close frame."""
    with Server() as srv:
        ws = WS(srv.port)
        sizes = [(0x1, b"hello"), (0x2, b"\x00" * 200), (0x1, b"t" * 70000)]
        bytes_in = bytes_out = 0
        for op, p in sizes:
            f = WS.frame(op, p)
            ws.send_raw(f)
            bytes_in += len(f)
            assert ws.recv_message() == (op, p)
            bytes_out += len(WS.frame(op, p, mask=False))
        close = WS.frame(0x8, struct.pack("!H", 1000))
        ws.send_raw(close)
        bytes_in += len(close)
        code, reason, _ = read_close_no_reply(ws, 2.0)
        assert code == 1000
        bytes_out += 2 + 2 + len(reason.encode())
        ws.expect_eof(2.0)
        ws.close()
        ev = closed_of(srv, ws)
        assert bytes_in == 11 + 208 + 70014 + 8 and bytes_out == 7 + 204 + 70010 + 4 + len(reason.encode())
        assert ev["bytes_in"] == bytes_in, (ev, bytes_in)
        assert ev["bytes_out"] == bytes_out, (ev, bytes_out)
        assert ev["msgs_in"] == 3 and ev["msgs_out"] == 3, ev
        assert ev["code"] == 1000 and ev["who"] == "client", ev


def test_counters_with_frames_pipelined_behind_the_upgrade():
    """Frames sent in the same write as the request head are counted too."""
    with Server() as srv:
        s = connect(srv.port)
        req, _ = upgrade_request("/echo")
        f1 = WS.frame(0x1, "pipelined")
        f2 = WS.frame(0x8, struct.pack("!H", 1000) + b"done")
        s.sendall(req + f1 + f2)
        status, hdrs, _, rest = read_http_response(s)
        assert status == 101, status
        buf = rest
        deadline = time.time() + 2
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            buf += chunk
        # echo of "pipelined" then the close frame (1000 + reason)
        assert buf.startswith(b"\x81\x09pipelined\x88"), buf[:40]
        ev = closed_of(srv, hdrs["x-holdfast-connection-id"])
        assert ev["bytes_in"] == len(f1) + len(f2), (ev, len(f1) + len(f2))
        assert ev["bytes_out"] == len(buf), (ev, len(buf))
        assert ev["msgs_in"] == 1 and ev["msgs_out"] == 1, ev
        assert ev["who"] == "client" and ev["code"] == 1000 and ev["reason"] == "done", ev
        s.close()


def test_counters_include_bytes_read_after_a_violation():
    """conn.h: bytes_in is every TCP payload byte after the upgrade. After a
    violation the server keeps reading (and dropping) input until EOF; those
    bytes were received too and must be counted."""
    with Server("--websocket.close_timeout=2s") as srv:
        ws = WS(srv.port)
        bad = WS.frame(0x1, "x", rsv=1)
        ws.send_raw(bad)
        code, reason, _ = read_close_no_reply(ws, 2.0)
        assert code == 1002
        ws.expect_eof(2.0)  # write side shut: the server failed the connection
        late = WS.frame(0x1, "sent after the close frame") + WS.frame(0x8, struct.pack("!H", 1002))
        ws.send_raw(late)
        time.sleep(0.1)
        ws.close()
        ev = closed_of(srv, ws)
        assert ev["code"] == 1002 and ev["who"] == "server", ev
        assert ev["bytes_out"] == 2 + 2 + len(reason.encode()), ev
        assert ev["bytes_in"] == len(bad) + len(late), (ev, len(bad) + len(late))


if __name__ == "__main__":
    sys.exit(run_module("lifecycle", globals()))
