# SPDX-License-Identifier: MIT
"""Peers for the client-side tests (test_client.py, test_probe.py), all on
loopback and all stopped by the test: a scripted raw WebSocket/HTTP server
(one Python function per accepted connection), a tiny DNS server (A answers
from a table, NXDOMAIN for the rest), an echo server from the Python
`websockets` package and one from the npm `ws` package, and a runner for
`holdfast connect` / `holdfast probe` with a bounded time."""

import base64
import hashlib
import os
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, ROOT  # noqa: E402

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def run_tool(cmd, args, stdin=b"", timeout=20, env=None):
    """Run `holdfast cmd args...`; returns (status, stdout, stderr, seconds)."""
    e = dict(os.environ)
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    if env:
        e.update(env)
    t0 = time.time()
    p = subprocess.run([BIN, cmd] + list(args), input=stdin, capture_output=True,
                       timeout=timeout, env=e)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    for pat in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        if pat in err:
            raise AssertionError("sanitizer report from holdfast %s:\n%s" % (cmd, err))
    return p.returncode, out, err, time.time() - t0


# ---- a scripted raw server ------------------------------------------------------

def read_head(s, timeout=5.0):
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    return buf


def accept_upgrade(s, extra=b"", head=None):
    """Read the client's upgrade request (unless head was read already) and
    answer 101 with the right key. Returns the request head."""
    if head is None:
        head = read_head(s)
    key = b""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
    acc = base64.b64encode(hashlib.sha1(key + GUID).digest())
    s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n" + extra + b"\r\n")
    return head


def frame(op, payload=b"", fin=True, mask=None):
    """A server frame (unmasked unless mask is given)."""
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        h = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        h = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        h = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        h += mask
    return h + payload


def close_frame(code, reason=b""):
    return frame(8, struct.pack("!H", code) + reason)


def read_frame(s, timeout=5.0):
    """One client frame: (opcode, payload, masked)."""
    s.settimeout(timeout)

    def exact(n):
        b = b""
        while len(b) < n:
            d = s.recv(n - len(b))
            if not d:
                raise EOFError("connection closed")
            b += d
        return b

    b0, b1 = exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exact(8))[0]
    masked = bool(b1 & 0x80)
    key = exact(4) if masked else b"\0\0\0\0"
    p = exact(n)
    return b0 & 0x0F, bytes(c ^ key[i % 4] for i, c in enumerate(p)), masked


def drain(s, timeout=3.0):
    """Read until the peer closes (or timeout)."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass


def serve_until_close(s, timeout=10.0, echo=True):
    """Echo data frames and answer pings until the client's close frame,
    which is answered; returns the close payload (None if the connection
    ended without one)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            op, p, _ = read_frame(s, deadline - time.time())
        except (OSError, EOFError):
            return None
        if op == 8:
            s.sendall(frame(8, p[:2]))
            return p
        if op == 9:
            s.sendall(frame(10, p))
        elif op in (1, 2) and echo:
            s.sendall(frame(op, p))
    return None


class ScriptServer:
    """Listens on 127.0.0.1:0 (or [::1]:0); every accepted connection runs
    handler(sock, index) in its own thread. conns holds (index, time)."""

    def __init__(self, handler, family=socket.AF_INET):
        self.handler = handler
        self.lsock = socket.socket(family)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.errors = []
        self.stopping = False
        self.threads = []
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self):
        while not self.stopping:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            idx = len(self.conns)
            self.conns.append((idx, time.time()))
            th = threading.Thread(target=self._run, args=(s, idx), daemon=True)
            th.start()
            self.threads.append(th)

    def _run(self, s, idx):
        try:
            self.handler(s, idx)
        except (OSError, EOFError):
            pass
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))
        finally:
            s.close()

    def close(self):
        self.stopping = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        for th in self.threads:
            th.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# ---- a tiny DNS server ----------------------------------------------------------

class DnsServer:
    """UDP on 127.0.0.1:0. names maps a lower-case name to an IPv4 address:
    A queries for it get that answer, other types an empty NOERROR; every
    other name NXDOMAIN. queries counts what was asked."""

    def __init__(self, names):
        self.names = {k.lower(): v for k, v in names.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        while True:
            try:
                q, peer = self.sock.recvfrom(2048)
            except OSError:
                return
            if len(q) < 12:
                continue
            qid = q[:2]
            i, labels = 12, []
            while i < len(q) and q[i]:
                labels.append(q[i + 1:i + 1 + q[i]].decode(errors="replace"))
                i += 1 + q[i]
            qend = i + 5
            qtype = struct.unpack("!H", q[i + 1:i + 3])[0]
            name = ".".join(labels).lower()
            self.queries.append((name, qtype))
            question = q[12:qend]
            if name not in self.names:
                r = qid + struct.pack("!HHHHH", 0x8183, 1, 0, 0, 0) + question
            elif qtype == 1:
                ip = socket.inet_aton(self.names[name])
                ans = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + ip
                r = qid + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + question + ans
            else:
                r = qid + struct.pack("!HHHHH", 0x8180, 1, 0, 0, 0) + question
            self.sock.sendto(r, peer)

    def close(self):
        self.sock.close()


# ---- echo servers we did not write -------------------------------------------------

class PeerProcess:
    """A helper process that prints its port on the first stdout line."""

    def __init__(self, cmd, cwd=None, what="peer"):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=cwd)
        line = b""
        deadline = time.time() + 15
        import select
        while time.time() < deadline and not line.endswith(b"\n"):
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                c = os.read(self.proc.stdout.fileno(), 1)
                if not c:
                    break
                line += c
        if not line.strip().isdigit():
            self.close()
            raise AssertionError("%s did not start: %r %r" % (what, line, self.proc.stderr.read()))
        self.port = int(line)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


PY_WEBSOCKETS = r'''
import asyncio, sys, websockets
async def echo(ws, path=None):
    async for m in ws:
        if m == "close-me":
            await ws.close(4001, "bye")
            return
        await ws.send(m)
async def main():
    async with websockets.serve(echo, "127.0.0.1", 0, subprotocols=["chat"]) as srv:
        print(srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
'''

NODE_WS = r'''
const { WebSocketServer } = require("ws");
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0,
  perMessageDeflate: { threshold: 0 },
  handleProtocols: (ps) => ps.has("chat") ? "chat" : false });
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => {
    if (!isBinary && data.toString() === "close-me") { ws.close(4001, "bye"); return; }
    ws.send(data, { binary: isBinary });
  });
});
wss.on("listening", () => console.log(wss.address().port));
'''


def python_websockets_echo():
    return PeerProcess(["/usr/bin/python3", "-c", PY_WEBSOCKETS], what="python websockets")


def node_ws_echo():
    return PeerProcess(["/usr/bin/node", "-e", NODE_WS],
                       cwd=os.path.join(ROOT, "tests", "interop"), what="node ws")


# ---- a proxy that cuts idle connections ---------------------------------------------

class CuttingProxy:
    """TCP proxy on 127.0.0.1:0 to upstream_port. Each connection is passed
    through for `after` seconds; then, with mode "close", both sides are
    closed (a load balancer's idle timeout); with mode "blackhole", nothing
    is forwarded any more but the sockets stay open (a NAT that forgot the
    flow)."""

    def __init__(self, upstream_port, after, mode="close"):
        self.up, self.after, self.mode = upstream_port, after, mode
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.socks = []
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.up), 5)
            self.socks += [c, u]
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()

    def _pump(self, c, u):
        import select
        end = time.time() + self.after
        try:
            while not self.stopping:
                left = end - time.time()
                if left <= 0:
                    break
                r, _, _ = select.select([c, u], [], [], min(left, 0.2))
                for s in r:
                    d = s.recv(65536)
                    if not d:
                        return
                    (u if s is c else c).sendall(d)
            if self.mode == "close":
                return
            while not self.stopping:  # black hole: read and drop
                r, _, _ = select.select([c, u], [], [], 0.2)
                for s in r:
                    if not s.recv(65536):
                        return
        except OSError:
            pass
        finally:
            if self.mode == "close" or self.stopping:
                for s in (c, u):
                    try:
                        s.close()
                    except OSError:
                        pass

    def close(self):
        self.stopping = True
        self.lsock.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
