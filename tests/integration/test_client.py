# SPDX-License-Identifier: MIT
"""The client library through `holdfast connect` and the example program of
docs/client.md, against servers we did not write (Python `websockets`, npm
`ws`), the real holdfast, and scripted raw servers for what those cannot do
(half-open connections, Retry-After, protocol violations, close codes):
messages both ways, sub-protocols, the exit status of every ending, the
reconnect table, Retry-After, the heartbeat, the bounded queue, DNS through
c-ares, and reconnection across a server restart."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, ROOT, Server, free_port, run_module, wait_until  # noqa: E402
from clientkit import (DnsServer, ScriptServer, accept_upgrade, close_frame,  # noqa: E402
                       drain, frame, node_ws_echo, python_websockets_echo,
                       read_frame, read_head, run_tool, serve_until_close)

EXAMPLE = os.path.join(os.path.dirname(BIN), "examples", "reconnect")


def connect(*args, stdin=b"", timeout=20):
    return run_tool("connect", args, stdin=stdin, timeout=timeout)


def replies(n):
    """Wait for the n replies (at most 10 s) instead of a fixed time."""
    return ("-w", "10s", "-n", str(n))


def check_echo(url, extra=()):
    rc, out, err, _ = connect(url, *replies(2), *extra, stdin=b"hello\nworld\n")
    assert rc == 0, "status %d: %s" % (rc, err)
    assert out.splitlines() == ["hello", "world"], out
    assert "closed by the client: 1000" in err, err
    rc, out, err, _ = connect(url, "-b", *replies(1), stdin=b"00ff10 20\n")
    assert rc == 0 and out.strip() == "00ff1020", (rc, out, err)
    return err


def test_echo_holdfast():
    srv = Server()
    try:
        url = "ws://127.0.0.1:%d/echo" % srv.port
        check_echo(url)
        rc, out, err, _ = connect(url, "-t", *replies(1), stdin=b"stamp\n")
        assert rc == 0 and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z stamp$",
                                    out.strip()), out
        # --count ends the wait at the Nth reply (the 60 s wait would
        # outlast the tool's 20 s timeout), with a normal close
        rc, out, err, secs = connect(url, "-w", "60s", "-n", "2", stdin=b"a\nb\n")
        assert rc == 0 and out.splitlines() == ["a", "b"], (rc, out, err)
        assert "closed by the client: 1000" in err, err
        rc, out, err, _ = connect(url, "-n", "0")
        assert rc == 2 and "--count" in err, (rc, err)
    finally:
        srv.stop()


def test_ipv6_literal():
    """ws://[::1]:port/ (skipped when the machine has no IPv6 loopback)."""
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        print("  (no IPv6 loopback here: not tested)")
        return

    def echo_once(s, idx):
        accept_upgrade(s)
        serve_until_close(s)

    with ScriptServer(echo_once, family=socket.AF_INET6) as ss:
        rc, out, err, _ = connect("ws://[::1]:%d/" % ss.port, *replies(1), stdin=b"six\n")
        assert rc == 0 and out.strip() == "six", (rc, err)
        assert "[::1]:%d" % ss.port in err, err


def test_python_websockets_peer():
    peer = python_websockets_echo()
    try:
        url = "ws://127.0.0.1:%d/" % peer.port
        check_echo(url)
        rc, out, err, _ = connect(url, "--subprotocol", "chat", *replies(1), stdin=b"x\n")
        assert rc == 0 and "sub-protocol chat" in err, err
        rc, out, err, _ = connect(url, "-w", "3s", stdin=b"close-me\n")
        assert rc == 1, (rc, err)
        assert "closed by the server: 4001 application code, reconnect range" in err, err
        assert '"bye"' in err, err
    finally:
        peer.close()


def test_node_ws_peer():
    peer = node_ws_echo()
    try:
        url = "ws://127.0.0.1:%d/" % peer.port
        check_echo(url)
        rc, out, err, _ = connect(url, "--subprotocol", "chat", "--subprotocol", "x",
                                  *replies(1), stdin=b"x\n")
        assert rc == 0 and "sub-protocol chat" in err, err
        big = b"y" * 200000
        rc, out, err, _ = connect(url, *replies(1), stdin=big + b"\n")
        assert rc == 0 and out.strip() == big.decode(), (rc, len(out), err)
        rc, out, err, _ = connect(url, "-w", "3s", stdin=b"close-me\n")
        assert rc == 1 and "4001" in err, (rc, err)
    finally:
        peer.close()


def test_deflate():
    """--deflate (permessage-deflate from lib/deflate.c in the client role)
    against holdfast, npm ws and Python websockets (all compress both ways),
    and a server that declines it."""
    big = ("compressible " * 40000).encode()
    peers = []
    srv = Server("--echo.compression=true")
    plain = Server()
    try:
        peers = [node_ws_echo(), python_websockets_echo()]
        urls = ["ws://127.0.0.1:%d/echo" % srv.port] + \
            ["ws://127.0.0.1:%d/" % p.port for p in peers]
        for url in urls:
            rc, out, err, _ = connect(url, "--deflate", *replies(3),
                                      stdin=b"small\n" + big + b"\n\xc3\xa9t\xc3\xa9\n")
            assert rc == 0, (url, rc, err)
            assert "permessage-deflate" in err, (url, err)
            assert out.split("\n")[:3] == ["small", big.decode(), "\u00e9t\u00e9"], (url, out[:80])
        rc, out, err, _ = connect("ws://127.0.0.1:%d/echo" % plain.port, "--deflate",
                                  *replies(1), stdin=b"no compression\n")
        assert rc == 0 and out.strip() == "no compression", (rc, err)
        assert "permessage-deflate" not in err, err
    finally:
        for p in peers:
            p.close()
        srv.stop()
        plain.stop()


def test_exit_statuses():
    srv = Server(config={"client": {"allowed_origins": ["https://good.example"]}})
    dns = DnsServer({"echo.test": "127.0.0.1"})
    try:
        base = "ws://127.0.0.1:%d" % srv.port
        # 0: through the c-ares resolver (our DNS server on loopback)
        rc, out, err, _ = connect("ws://echo.test:%d/echo" % srv.port, "--dns-server",
                                  "127.0.0.1:%d" % dns.port, *replies(1), stdin=b"via dns\n")
        assert rc == 0 and out.strip() == "via dns", (rc, err)
        assert ("echo.test", 1) in dns.queries, dns.queries
        # 3: the name does not exist
        rc, out, err, _ = connect("ws://missing.test:%d/echo" % srv.port, "--dns-server",
                                  "127.0.0.1:%d" % dns.port)
        assert rc == 3 and "cannot resolve missing.test" in err, (rc, err)
        # 4: nothing listening
        rc, out, err, _ = connect("ws://127.0.0.1:%d/" % free_port())
        assert rc == 4 and "refused" in err.lower(), (rc, err)
        # 6: handshake rejected, with the response printed and a diagnosis
        rc, out, err, _ = connect(base + "/nope")
        assert rc == 6 and "HTTP 404" in err and "< HTTP/1.1 404" in err, (rc, err)
        rc, out, err, _ = connect(base + "/echo", "--origin", "https://evil.example")
        assert rc == 6 and "403" in err and "allowed_origins" in err, (rc, err)
        rc, out, err, _ = connect(base + "/echo", "--origin", "https://good.example",
                                  *replies(1), stdin=b"ok\n")
        assert rc == 0 and out.strip() == "ok", (rc, err)
        # 1: the server closed with a code other than 1000/1001
        rc, out, err, _ = connect(base + "/connection/websocket", "-w", "3s",
                                  stdin=b'{"id":1,"connect":{}}\n')
        assert rc == 1 and "closed by the server: 3501" in err, (rc, err)
        assert "not reconnecting" in err, err
        # 2: usage
        rc, out, err, _ = connect("http://127.0.0.1/")
        assert rc == 2 and "ws://" in err, (rc, err)
        rc, out, err, _ = connect(base + "/echo", "-H", "Sec-WebSocket-Key: x")
        assert rc == 2, (rc, err)
    finally:
        dns.close()
        srv.stop()


def test_protocol_errors():
    """7: frames that break RFC 6455 are answered with a close code."""
    got = []

    def masked(s, idx):
        accept_upgrade(s)
        if idx == 0:
            s.sendall(frame(1, b"hi", mask=b"abcd"))  # servers must not mask
        else:
            s.sendall(frame(1, b"\xff\xfe"))  # text that is not UTF-8
        op, p, m = read_frame(s)
        got.append((op, p[:2], m))
        drain(s)

    with ScriptServer(masked) as ss:
        url = "ws://127.0.0.1:%d/" % ss.port
        rc, out, err, _ = connect(url, "-w", "3s")
        assert rc == 7 and "protocol error" in err, (rc, err)
        rc, out, err, _ = connect(url, "-w", "3s")
        assert rc == 7 and "1007" in err, (rc, err)
        wait_until(lambda: len(got) == 2, 5, "close frames")
        assert got[0] == (8, b"\x03\xea", True), got  # 1002, masked
        assert got[1] == (8, b"\x03\xef", True), got  # 1007, masked


def test_bad_accept_and_extension():
    def handler(s, idx):
        read_head(s)
        if idx == 0:
            s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n")
        else:
            s.close()
            return
        drain(s, 2)

    with ScriptServer(handler) as ss:
        rc, out, err, _ = connect("ws://127.0.0.1:%d/" % ss.port)
        assert rc == 6 and "bad_accept" in err, (rc, err)

    def ext(s, idx):
        accept_upgrade(s, b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
        drain(s, 2)

    with ScriptServer(ext) as ss:
        rc, out, err, _ = connect("ws://127.0.0.1:%d/" % ss.port)
        assert rc == 6 and "bad_extension" in err, (rc, err)


def test_connect_timeouts():
    """DNS and handshake timeouts: a DNS server that never answers (exit 3)
    and a server that accepts TCP and never answers the upgrade (exit 6)."""
    mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mute.bind(("127.0.0.1", 0))
    try:
        rc, out, err, secs = connect("ws://slow.test/", "--dns-server",
                                     "127.0.0.1:%d" % mute.getsockname()[1], "--timeout", "1s")
        assert rc == 3 and ("timed out" in err or "Timeout" in err), (rc, err)
        assert secs < 5, secs
    finally:
        mute.close()
    with ScriptServer(lambda s, idx: drain(s, 5)) as ss:
        rc, out, err, secs = connect("ws://127.0.0.1:%d/" % ss.port, "--timeout", "1s")
        assert rc == 6 and "no answer to the upgrade request within 1000 ms" in err, (rc, err)
        assert secs < 4, secs


def test_heartbeat_half_open():
    """A server that upgrades and then never answers again (a half-open
    connection) is noticed within ping interval + pong timeout."""
    def silent(s, idx):
        accept_upgrade(s)
        drain(s, 8)  # reads (and never answers) until the client gives up

    with ScriptServer(silent) as ss:
        rc, out, err, secs = _connect_open_stdin(
            ["ws://127.0.0.1:%d/" % ss.port, "--ping-interval", "300ms",
             "--pong-timeout", "700ms"])
        assert rc == 4 and "heartbeat timeout" in err, (rc, err)
        assert 0.9 <= secs < 6, secs


def _connect_open_stdin(args, timeout=20):
    """connect with a stdin that stays open (so only the connection ends it)."""
    r, w = os.pipe()
    e = dict(os.environ)
    t0 = time.time()
    p = subprocess.Popen([BIN, "connect"] + args, stdin=r, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=e)
    os.close(r)
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        os.close(w)
    return p.returncode, out.decode(), err.decode(), time.time() - t0


def test_reconnect_table():
    """1012 backs off and reconnects; a terminal code (3500) stops."""
    def restart_then_ok(s, idx):
        accept_upgrade(s)
        if idx == 0:
            s.sendall(close_frame(1012, b"restart"))
            op, p, _ = read_frame(s)  # the client's answer; then we close TCP
            assert op == 8 and p == b"\x03\xf4", (op, p)
        else:
            serve_until_close(s)

    with ScriptServer(restart_then_ok) as ss:
        rc, out, err, _ = connect("ws://127.0.0.1:%d/" % ss.port, "--reconnect",
                                  "--reconnect-min", "50ms", "-w", "1s")
        assert rc == 0, (rc, err)
        assert "closed by the server: 1012 service restart" in err, err
        assert re.search(r"reconnecting in \d+\.\d+ s \(attempt 1: backoff\)", err), err
        assert len(ss.conns) == 2, ss.conns

    def terminal(s, idx):
        accept_upgrade(s)
        s.sendall(close_frame(3500, b"invalid token"))
        read_frame(s)

    with ScriptServer(terminal) as ss:
        rc, out, err, _ = connect("ws://127.0.0.1:%d/" % ss.port, "--reconnect",
                                  "--reconnect-min", "50ms", "-w", "2s")
        assert rc == 1 and "not reconnecting: the close code says not to reconnect" in err, err
        time.sleep(0.3)
        assert len(ss.conns) == 1, ss.conns


def test_retry_after():
    """503 with Retry-After: 1 -> the next attempt comes at least 1 s later."""
    def busy_then_ok(s, idx):
        if idx == 0:
            read_head(s)
            s.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                      b"Content-Length: 4\r\n\r\nbusy")
            return
        accept_upgrade(s)
        serve_until_close(s)

    with ScriptServer(busy_then_ok) as ss:
        rc, out, err, _ = connect("ws://127.0.0.1:%d/" % ss.port, "--reconnect",
                                  "--reconnect-min", "50ms", "-w", "300ms")
        assert rc == 0, (rc, err)
        assert "Retry-After 1 s" in err and "the server's Retry-After" in err, err
        assert '(body) "busy"' in err, err
        assert len(ss.conns) == 2, ss.conns
        gap = ss.conns[1][1] - ss.conns[0][1]
        assert gap >= 1.0, gap


def test_max_attempts_and_queue():
    port = free_port()
    rc, out, err, secs = connect("ws://127.0.0.1:%d/" % port, "--reconnect",
                                 "--reconnect-min", "20ms", "--reconnect-max", "50ms",
                                 "--max-attempts", "3")
    assert rc == 4, (rc, err)
    assert err.count("reconnecting (attempt") == 3, err
    assert "gave up" in err, err
    # the bounded outgoing queue: a message larger than it is refused
    srv = Server()
    try:
        rc, out, err, _ = connect("ws://127.0.0.1:%d/echo" % srv.port, "--queue-max", "64",
                                  *replies(1), stdin=b"z" * 100 + b"\nsmall\n")
        assert rc == 0 and out.strip() == "small", (rc, out, err)
        assert "outgoing queue full" in err, err
    finally:
        srv.stop()


def _start_fixed(port):
    logf = open(os.devnull, "w")
    p = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:%d" % port, "--workers", "1"],
                         stdout=subprocess.DEVNULL, stderr=logf)
    logf.close()
    return p


def test_example_reconnects():
    """examples/reconnect.c (docs/client.md) on its own poll loop survives a
    server restart: one echo per connection, two connections."""
    assert os.path.exists(EXAMPLE), EXAMPLE
    port = free_port()
    srv = _start_fixed(port)
    ex = None
    try:
        wait_until(lambda: _can_connect(port), 10, "server up")
        ex = subprocess.Popen([EXAMPLE, "ws://127.0.0.1:%d/echo" % port, "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines = []
        deadline = time.time() + 10
        while time.time() < deadline:
            line = ex.stdout.readline().decode()
            if not line:
                break
            lines.append(line)
            if line.startswith("message: hello 1"):
                break
        assert any(l.startswith("message: hello 1") for l in lines), lines
        srv.send_signal(signal.SIGTERM)
        srv.wait(10)
        srv = _start_fixed(port)
        out, err = ex.communicate(timeout=20)
        text = "".join(lines) + out.decode()
        assert ex.returncode == 0, text + err.decode()
        assert "Sanitizer" not in err.decode() and "runtime error" not in err.decode(), err
        assert "-> waiting" in text and "message: hello 2" in text, text
        assert "done: 2 connections, 2 echoes" in text, text
        assert "[closed by the application]" in text, text
    finally:
        if ex and ex.poll() is None:
            ex.kill()
            ex.wait()
        srv.terminate()
        srv.wait(10)


def test_wss():
    """wss:// with a CA file, the system CAs (unknown issuer: exit 5),
    --insecure, and a host name through the resolver."""
    from tlsutil import CA, tls_args
    with CA() as ca:
        cert, key = ca.issue("localhost")
        srv = Server(*tls_args(cert, key))
        try:
            url = "wss://127.0.0.1:%d/echo" % srv.port
            big = b"t" * 300000
            rc, out, err, _ = connect(url, "--ca", ca.cert, *replies(2),
                                      stdin=b"over tls\n" + big + b"\n")
            assert rc == 0 and out.splitlines() == ["over tls", big.decode()], (rc, err)
            rc, out, err, _ = connect("wss://localhost:%d/echo" % srv.port, "--ca", ca.cert,
                                      *replies(1), stdin=b"by name\n")
            assert rc == 0 and out.strip() == "by name", (rc, err)
            rc, out, err, _ = connect(url)
            assert rc == 5 and "unknown issuer" in err and "--ca" in err, (rc, err)
            rc, out, err, _ = connect(url, "--insecure", *replies(1), stdin=b"k\n")
            assert rc == 0 and out.strip() == "k", (rc, err)
            rc, out, err, _ = connect(url, "--ca", "/nonexistent/ca.pem")
            assert rc == 2 and "/nonexistent/ca.pem" in err, (rc, err)
        finally:
            srv.stop()
        # the reconnect table: a certificate failure is not retried
        cert, key = ca.issue("other.example", sans=("DNS:other.example",))
        srv = Server(*tls_args(cert, key))
        try:
            rc, out, err, _ = connect("wss://127.0.0.1:%d/echo" % srv.port, "--ca", ca.cert,
                                      "--reconnect")
            assert rc == 5 and "not for 127.0.0.1" in err and "reconnecting in" not in err, err
        finally:
            srv.stop()


def test_credentials_refresh():
    """examples/credentials.c: 401 and close 3005 ask the application for new
    credentials (a new Authorization header), then the client reconnects."""
    seen = []

    def auth(s, idx):
        head = read_head(s)
        tok = re.search(rb"\r\nAuthorization: Bearer (\S+)\r\n", head)
        tok = tok.group(1).decode() if tok else ""
        seen.append(tok)
        if tok == "t1":
            s.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 13\r\n\r\nbad token t1\n")
            return
        accept_upgrade(s, head=head)
        if tok == "t2":
            s.sendall(close_frame(3005, b"token expired"))
            read_frame(s)
            return
        s.sendall(frame(1, b"welcome " + tok.encode()))
        serve_until_close(s)

    ex = os.path.join(os.path.dirname(BIN), "examples", "credentials")
    with ScriptServer(auth) as ss:
        url = "ws://127.0.0.1:%d/" % ss.port
        p = subprocess.run([ex, url, "t1", "t2", "t3"], capture_output=True, timeout=20)
        out = p.stdout.decode()
        assert p.returncode == 0, out + p.stderr.decode()
        assert seen == ["t1", "t2", "t3"], seen
        assert out.count("credentials refused") == 2 and "HTTP 401" in out, out
        assert "3005" in out and "message: welcome t3" in out, out
        assert "Sanitizer" not in p.stderr.decode(), p.stderr.decode()
        seen.clear()
        p = subprocess.run([ex, url, "t1"], capture_output=True, timeout=20)
        out = p.stdout.decode()
        assert p.returncode == 1 and "no more tokens" in out, out
        assert "-> stopped" in out and seen == ["t1"], (out, seen)


def test_docs_example_is_the_file():
    with open(os.path.join(ROOT, "docs", "client.md")) as f:
        doc = f.read()
    m = re.search(r"<!-- example:begin -->\n```c\n(.*)```\n<!-- example:end -->", doc, re.S)
    assert m, "example markers missing in docs/client.md"
    with open(os.path.join(ROOT, "examples", "reconnect.c")) as f:
        assert m.group(1) == f.read(), "docs/client.md's example differs from examples/reconnect.c"


def _can_connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(run_module("client", globals(), os.environ.get("ONLY")))
