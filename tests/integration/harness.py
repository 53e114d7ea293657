# SPDX-License-Identifier: MIT
"""Integration-test harness: starts the real holdfast binary on a loopback
port, gives tests raw sockets and a tiny RFC 6455 client, and fails a test
when the server log shows a crash, a sanitizer report or a leak.

Test modules define functions named test_*; run_module() runs each in
order, printing "PASS suite/name" or "FAIL suite/name: reason" (counted by
tests/run.sh). Every socket operation has a timeout, so nothing can hang."""

import base64
import hashlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("HOLDFAST_BIN", os.path.join(ROOT, "build", "holdfast"))
# The ASan+UBSan build (build/asan/): load-style tests run it with smaller
# counts; leaks there are LeakSanitizer's to find, at the server's exit.
SANITIZED = "/asan/" in BIN
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SAN_PATTERNS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                "UndefinedBehaviorSanitizer", "Segmentation fault", "SUMMARY:")


class LogEvents:
    """The JSON log lines of a process this test started: events(name) and
    wait_event(name, pred). The class provides log() (the whole log text);
    log_label prefixes the failure message."""
    log_label = ""

    def events(self, name=None):
        out = []
        for line in self.log().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if name is None or ev.get("event") == name:
                out.append(ev)
        return out

    def wait_event(self, name, pred=lambda ev: True, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for ev in self.events(name):
                if pred(ev):
                    return ev
            time.sleep(0.02)
        raise AssertionError("%sno %s event matching within %.1fs; log:\n%s"
                             % (self.log_label, name, timeout, self.log()[-3000:]))


class Server(LogEvents):
    """A holdfast process on 127.0.0.1 with an ephemeral port."""

    def __init__(self, *args, config=None, env=None, workers=1, timeout=10, preexec_fn=None):
        self.logf = tempfile.NamedTemporaryFile(prefix="hf-log-", suffix=".log", delete=False)
        self.cfgpath = None
        cmd = [BIN, "serve", "--listen", "127.0.0.1:0", "--workers", str(workers)]
        if config is not None:
            fd, self.cfgpath = tempfile.mkstemp(prefix="hf-cfg-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump(config, f)
            cmd += ["--config", self.cfgpath]
        cmd += list(args)
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        if env:
            e.update(env)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.logf, env=e,
                                     preexec_fn=preexec_fn)
        self.port = None
        deadline = time.time() + timeout
        while time.time() < deadline:
            for ev in self.events():
                if ev.get("event") == "listening":
                    self.port = ev["port"]
                    break
            if self.port:
                break
            if self.proc.poll() is not None:
                raise AssertionError("server exited at start-up: " + self.log())
            time.sleep(0.02)
        if not self.port:
            self.kill()
            raise AssertionError("server did not report listening: " + self.log())

    def log(self):
        with open(self.logf.name, "r", errors="replace") as f:
            return f.read()

    def listening(self):
        """Every "listening" event (one per listen address), in order."""
        return self.events("listening")

    def port_of(self, tls=False, proxy_protocol=False, internal=False):
        """The port of the first listener of that kind (the listening lines
        follow each other at start-up: waits a little for them)."""
        ev = self.wait_event("listening", lambda e: (
            bool(e.get("tls")) == tls and bool(e.get("proxy_protocol")) == proxy_protocol
            and bool(e.get("internal")) == internal))
        return ev["port"]


    def check_log_clean(self):
        log = self.log()
        for pat in SAN_PATTERNS:
            if pat in log:
                raise AssertionError("server log shows %r:\n%s" % (pat, log[-4000:]))

    def stop(self, timeout=15):
        """SIGTERM, expect a clean exit 0 and a clean log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("server did not exit after SIGTERM")
        self.check_log_clean()
        rc = self.proc.returncode
        self.cleanup()
        if rc != 0:
            raise AssertionError("server exit code %d" % rc)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.cleanup()

    def cleanup(self):
        for p in (self.logf.name, self.cfgpath):
            if p and os.path.exists(p) and not os.environ.get("HF_KEEP_LOGS"):
                os.unlink(p)

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            self.stop()
        else:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            sys.stdout.write("  --- server log (last 3000 bytes) ---\n" + self.log()[-3000:] + "\n")
            self.cleanup()
        return False


def connect(port, timeout=5.0, tls=None, server_hostname="localhost", source=None):
    """A TCP connection to 127.0.0.1:port; tls: an ssl.SSLContext to speak
    TLS with (SNI/verification name server_hostname); source: a local
    address to bind (e.g. "127.0.0.2", to look like another client)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    s.settimeout(timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls is not None:
        s = tls.wrap_socket(s, server_hostname=server_hostname)
        s.settimeout(timeout)
    return s


def remote_of(s):
    """The client socket's address as the server logs it ("ip:port")."""
    host, port = s.getsockname()[:2]
    return "%s:%d" % (host, port)


def read_to_eof(s, timeout=3.0):
    """Everything until the server closes TCP (EOF or RST); fails on timeout."""
    deadline = time.time() + timeout
    data = b""
    while True:
        left = deadline - time.time()
        if left <= 0:
            raise AssertionError("server did not close TCP within %.1fs (got %r)" % (timeout, data[:80]))
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data
        except socket.timeout:
            raise AssertionError("server did not close TCP within %.1fs (got %r)" % (timeout, data[:80]))
        if not chunk:
            return data
        data += chunk


def make_key():
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def upgrade_request(path="/echo", key=None, headers=None, omit=(), method="GET", version="HTTP/1.1"):
    key = key or make_key()
    h = {"Host": "127.0.0.1", "Upgrade": "websocket", "Connection": "Upgrade",
         "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
    for k in omit:
        h.pop(k, None)
    if headers:
        h.update(headers)
    lines = ["%s %s %s" % (method, path, version)] + ["%s: %s" % kv for kv in h.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


def read_http_response(s, timeout=5.0):
    """Read a full HTTP response head (+ body by Content-Length). Returns
    (status, headers-dict-lowercase, body, extra_bytes_after)."""
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError("connection closed before response head; got %r" % buf)
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    body = b""
    if "content-length" in hdrs:
        n = int(hdrs["content-length"])
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        body, rest = rest[:n], rest[n:]
    return status, hdrs, body, rest


class WS:
    """A minimal, deliberately permissive RFC 6455 client over a raw socket,
    so tests can send anything (bad frames included) and see exactly what
    the server sends back."""

    def __init__(self, port, path="/echo", headers=None, timeout=5.0, **conn):
        self.sock = connect(port, timeout, **conn)
        req, key = upgrade_request(path, headers=headers)
        self.sock.sendall(req)
        self.status, self.headers, _, self.buf = read_http_response(self.sock, timeout)
        if self.status != 101:
            raise AssertionError("upgrade failed: %d %r" % (self.status, self.headers))
        if self.headers.get("sec-websocket-accept") != accept_for(key):
            raise AssertionError("bad Sec-WebSocket-Accept")

    @staticmethod
    def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None, key=None):
        if isinstance(payload, str):
            payload = payload.encode()
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload) if length is None else length
        mbit = 0x80 if mask else 0
        if n < 126:
            hdr = struct.pack("!BB", b0, mbit | n)
        elif n <= 0xFFFF:
            hdr = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, mbit | 127, n)
        if not mask:
            return hdr + payload
        key = key if key is not None else os.urandom(4)
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return hdr + key + masked

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, opcode, payload=b"", **kw):
        self.sock.sendall(self.frame(opcode, payload, **kw))

    def _fill(self, n, timeout):
        deadline = time.time() + timeout
        while len(self.buf) < n:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("timed out waiting for %d bytes" % n)
            self.sock.settimeout(left)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("server closed TCP")
            self.buf += chunk

    def recv_frame(self, timeout=5.0):
        """Returns (fin, opcode, payload). Server frames must be unmasked."""
        self._fill(2, timeout)
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise AssertionError("server frame is masked")
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._fill(4, timeout)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._fill(10, timeout)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        self._fill(off + n, timeout)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        if b0 & 0x70:
            raise AssertionError("server frame has RSV bits")
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_message(self, timeout=5.0, skip_pings=True):
        """Reassemble one data message; returns (opcode, payload). Control
        frames: pings are skipped (answered), a close raises Closed."""
        op0, data = None, b""
        while True:
            fin, op, p = self.recv_frame(timeout)
            if op == 0x9 and skip_pings:
                self.send(0xA, p)
                continue
            if op == 0xA:
                continue
            if op == 0x8:
                raise Closed(p)
            if op0 is None:
                op0 = op
            data += p
            if fin:
                return op0, data

    def expect_close(self, code=None, timeout=5.0):
        """Read until a close frame; check its code; answer it; then expect
        the server to close TCP promptly. Returns (code, reason)."""
        while True:
            fin, op, p = self.recv_frame(timeout)
            if op == 0x8:
                break
            if op not in (0x1, 0x2, 0x0, 0x9, 0xA):
                raise AssertionError("unexpected opcode %d" % op)
        got = struct.unpack("!H", p[:2])[0] if len(p) >= 2 else None
        reason = p[2:].decode("utf-8")
        if code is not None and got != code:
            raise AssertionError("close code %r (reason %r), expected %r" % (got, reason, code))
        if len(p) >= 2 and not reason:
            raise AssertionError("close frame without a reason")
        try:
            self.send(0x8, p[:2])
        except OSError:
            pass
        self.expect_eof(timeout)
        return got, reason

    def expect_eof(self, timeout=5.0):
        """Nothing more may arrive: the server must close TCP."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("server did not close TCP within %.1fs" % timeout)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return
            except socket.timeout:
                raise AssertionError("server did not close TCP within %.1fs" % timeout)
            if not chunk:
                if self.buf:
                    raise AssertionError("data after close frame: %r" % self.buf[:64])
                return
            self.buf += chunk
            raise AssertionError("data after close frame: %r" % self.buf[:64])

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Closed(Exception):
    def __init__(self, payload):
        self.code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        self.reason = payload[2:].decode("utf-8", "replace")
        super().__init__("closed %r %r" % (self.code, self.reason))


def wait_until(pred, timeout=5.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def run_module(suite, namespace, only=None):
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    tests.sort(key=lambda nf: nf[1].__code__.co_firstlineno)
    passed = failed = 0
    for name, fn in tests:
        if only and not any(o and o in name for o in only.split(",")):
            continue
        t0 = time.time()
        try:
            fn()
            passed += 1
            print("PASS %s/%s (%.2fs)" % (suite, name[5:], time.time() - t0), flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure kind
            failed += 1
            print("FAIL %s/%s: %s" % (suite, name[5:], str(e).splitlines()[0] if str(e) else type(e).__name__), flush=True)
            traceback.print_exc(file=sys.stdout)
    print("# %s: %d passed, %d failed" % (suite, passed, failed), flush=True)
    return 1 if failed else 0


# ---- real-time protocol (Centrifugo JSON) and server API helpers ------------

class ApiKit:
    """The helpers a test file needs around one HMAC token secret and one
    server API key: tokens, API calls and connected real-time clients."""

    def __init__(self, secret, api_key):
        self.secret, self.api_key = secret, api_key

    def token(self, sub="42", **claims):
        claims = dict(claims)
        claims["sub"] = sub
        return jwt_hs(claims, self.secret)

    def api(self, srv, method, body):
        """POST /api/METHOD on srv: the decoded answer (HTTP 200 asserted)."""
        st, _, data = http_call(srv.port, "POST", "/api/" + method, json.dumps(body).encode(),
                                {"X-API-Key": self.api_key})
        assert st == 200, (st, data)
        return json.loads(data)

    def result(self, srv, method, body):
        """The result of an API call that must succeed."""
        r = self.api(srv, method, body)
        assert "result" in r, r
        return r["result"]

    def client(self, srv, user="42"):
        """A real-time client connected to srv with a token for user."""
        c = RT(srv.port)
        c.connect(self.token(user))
        return c


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_hs(claims, secret, alg="HS256", header=None):
    """A JWT signed with HMAC (HS256/384/512); alg "none" gives an unsigned
    token with an empty signature. header replaces the default header."""
    import hmac
    hdr = header if header is not None else {"alg": alg, "typ": "JWT"}
    signing = b64url(json.dumps(hdr, separators=(",", ":"))) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")))
    digests = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    if alg not in digests:
        return signing + "."
    sig = hmac.new(secret.encode(), signing.encode(), digests[alg]).digest()
    return signing + "." + b64url(sig)


def rt_send(ws, *commands):
    """One text frame carrying the commands (dicts or raw strings) joined by
    '\\n', as centrifuge-js batches them."""
    text = "\n".join(c if isinstance(c, str) else json.dumps(c, separators=(",", ":"))
                     for c in commands)
    ws.send(0x1, text.encode())


def rt_recv(ws, timeout=3.0, raw=False):
    """One server message split on '\\n' into JSON objects. Fails on a binary
    message or an empty line (a single trailing newline is tolerated, as the
    SDK trims). raw=True returns (objects, text)."""
    op, data = ws.recv_message(timeout)
    if op != 0x1:
        raise AssertionError("expected a text message, got opcode %d: %r" % (op, data[:80]))
    text = data.decode("utf-8")
    lines = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
    if any(not ln for ln in lines):
        raise AssertionError("empty line in server message %r" % text[:200])
    objs = [json.loads(ln) for ln in lines]
    return (objs, text) if raw else objs


def metric(srv, sample):
    """The value of one sample of srv's /metrics, named exactly as exposed
    (with its labels, e.g. 'holdfast_closes_total{code="1000",side="client"}');
    AssertionError if the scrape fails or the sample is absent."""
    st, _, body = http_call(srv.port, "GET", "/metrics")
    assert st == 200, st
    for line in body.decode().splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    raise AssertionError("no sample " + sample)


def http_call(port, method, path, body=None, headers=None, timeout=5.0):
    """One HTTP/1.1 request on a fresh connection; returns (status,
    headers-dict-lowercase, body bytes). body: bytes, str or a JSON value."""
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    h = {"Host": "127.0.0.1"}
    if body is not None:
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    head = "%s %s HTTP/1.1\r\n" % (method, path) + \
        "".join("%s: %s\r\n" % kv for kv in h.items() if kv[1] is not None) + "\r\n"
    s = connect(port, timeout)
    try:
        s.sendall(head.encode() + (body or b""))
        status, hdrs, rbody, _ = read_http_response(s, timeout)
    finally:
        s.close()
    return status, hdrs, rbody


class RT:
    """A raw WebSocket real-time client that keeps command ids and the
    objects (pushes) that arrived while it waited for a reply."""

    def __init__(self, port, path="/connection/websocket", autopong=True, **conn):
        self.ws = WS(port, path, **conn)
        self.cid = self.ws.headers.get("x-holdfast-connection-id")
        self.next_id = 1
        self.pending = []
        self.autopong = autopong
        self.pings = 0

    def _fill(self, timeout):
        """Read what arrives within timeout into pending; application pings
        ({}) are answered with a pong when autopong is set."""
        try:
            objs = rt_recv(self.ws, timeout)
        except (TimeoutError, socket.timeout):
            return
        for o in objs:
            if o == {} and self.autopong:
                self.pings += 1
                rt_send(self.ws, {})
            else:
                self.pending.append(o)

    def send(self, *cmds):
        rt_send(self.ws, *cmds)

    def new_id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def reply(self, cid, timeout=3.0):
        deadline = time.time() + timeout
        while True:
            for i, o in enumerate(self.pending):
                if o.get("id") == cid:
                    return self.pending.pop(i)
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("no reply with id %d; got %r" % (cid, self.pending[:5]))
            self._fill(left)

    def call(self, key, body, timeout=3.0):
        i = self.new_id()
        self.send({"id": i, key: body})
        return self.reply(i, timeout)

    def ok(self, key, body):
        r = self.call(key, body)
        assert key in r and "error" not in r, r
        return r[key]

    def connect(self, tok=None):
        res = self.ok("connect", {"token": tok} if tok else {})
        assert res["client"] == self.cid, (res, self.cid)
        return res

    def push(self, pred=lambda p: True, timeout=3.0):
        """The next push satisfying pred (others stay pending)."""
        deadline = time.time() + timeout
        while True:
            for i, o in enumerate(self.pending):
                if "push" in o and pred(o["push"]):
                    return self.pending.pop(i)["push"]
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("no matching push within %.1fs; got %r" % (timeout, self.pending[:5]))
            self._fill(left)

    def pubs(self, channel, n, timeout=5.0):
        return [self.push(lambda p: p.get("channel") == channel and "pub" in p, timeout)["pub"]
                for _ in range(n)]

    def silent(self, secs=0.3):
        """Nothing (no push, no message) arrives within secs."""
        assert not self.pending, self.pending
        try:
            op, data = self.ws.recv_message(secs)
        except (TimeoutError, socket.timeout):
            return
        raise AssertionError("unexpected message %r" % data[:200])

    def expect_close(self, code):
        return self.ws.expect_close(code)

    def close(self):
        self.ws.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class RedisServer:
    """A Debian redis-server on a loopback port, without persistence, that a
    test can stop, restart (same port, empty) and pause (SIGSTOP)."""

    BIN = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")

    def __init__(self, port=None, args=()):
        if not os.path.exists(self.BIN):
            raise AssertionError("redis-server not installed (scripts/deps.sh installs it)")
        self.port = port or free_port()
        self.args = list(args)
        self.proc = None
        self.paused = False
        self.start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        self.logf = tempfile.NamedTemporaryFile(prefix="hf-redis-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [self.BIN, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
             "--loglevel", "warning"] + self.args,
            stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if self.cmd("PING") == "PONG":
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited: " + open(self.logf.name).read())
            time.sleep(0.02)
        raise AssertionError("redis-server did not answer PING")

    def cmd(self, *args, timeout=3.0):
        """One command over RESP; returns str, int, list or None."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")

            def read():
                line = f.readline()
                if not line:
                    raise OSError("redis closed the connection")
                t, rest = line[:1], line[1:-2]
                if t == b"+":
                    return rest.decode()
                if t == b"-":
                    raise AssertionError("redis error: " + rest.decode())
                if t == b":":
                    return int(rest)
                if t == b"$":
                    n = int(rest)
                    if n < 0:
                        return None
                    data = f.read(n + 2)[:-2]
                    return data.decode(errors="replace")
                if t == b"*":
                    n = int(rest)
                    return None if n < 0 else [read() for _ in range(n)]
                raise AssertionError("bad RESP %r" % line)
            return read()
        finally:
            s.close()

    def stop(self):
        if self.paused:
            self.resume()
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def close(self):
        self.stop()
        if os.path.exists(self.logf.name):
            os.unlink(self.logf.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class RedisSentinelSet:
    """A master, a replica and one sentinel (quorum 1, 500 ms down-after)
    monitoring them as "hfmaster": kill the master and the sentinel
    promotes the replica within a few seconds."""

    def __init__(self):
        self.master = RedisServer()
        self.replica = RedisServer(args=["--replicaof", "127.0.0.1", str(self.master.port)])
        self.dir = tempfile.mkdtemp(prefix="hf-sentinel-")
        self.port = free_port()
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\n"
                    "sentinel monitor hfmaster 127.0.0.1 %d 1\n"
                    "sentinel down-after-milliseconds hfmaster 500\n"
                    "sentinel failover-timeout hfmaster 3000\n" % (self.port, self.dir, self.master.port))
        self.logf = open(os.path.join(self.dir, "sentinel.log"), "w")
        self.proc = subprocess.Popen([RedisServer.BIN, conf, "--sentinel"],
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        wait_until(lambda: self.master_port() == self.master.port, 10, "sentinel knows the master")
        wait_until(lambda: self.master.cmd("INFO", "replication").find("connected_slaves:1") >= 0,
                   10, "replica in sync")

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def master_port(self):
        try:
            r = RedisServer.cmd(self, "SENTINEL", "get-master-addr-by-name", "hfmaster")
        except (OSError, AssertionError):
            return None
        return int(r[1]) if r else None

    def close(self):
        for p in (self.proc,):
            if p.poll() is None:
                p.kill()
                p.wait()
        self.master.close()
        self.replica.close()
        self.logf.close()
        if not os.environ.get("HF_KEEP_LOGS"):
            subprocess.run(["rm", "-rf", self.dir])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def free_cluster_port():
    """A free port P below 55536 whose cluster bus port P + 10000 is free too."""
    import random
    for _ in range(200):
        p = random.randint(20000, 45000)
        socks = []
        try:
            for q in (p, p + 10000):
                so = socket.socket()
                socks.append(so)
                so.bind(("127.0.0.1", q))
            return p
        except OSError:
            continue
        finally:
            for so in socks:
                so.close()
    raise AssertionError("no free port pair for a cluster node")


class RedisCluster:
    """A Redis Cluster on loopback: `masters` masters, each with `replicas`
    replicas (cluster-node-timeout 1 s, so a dead master's replica takes
    over in about two seconds), created with redis-cli --cluster create."""

    def __init__(self, masters=3, replicas=0):
        self.dir = tempfile.mkdtemp(prefix="hf-cluster-")
        self.nodes = []
        for i in range(masters * (1 + replicas)):
            port = free_cluster_port()
            self.nodes.append(RedisServer(port=port, args=[
                "--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
                "--repl-diskless-sync-delay", "0",
                "--cluster-config-file", os.path.join(self.dir, "nodes-%d.conf" % port),
                "--dir", self.dir]))
        r = subprocess.run(["/usr/bin/redis-cli", "--cluster", "create"] +
                           [n.address for n in self.nodes] +
                           ["--cluster-replicas", str(replicas), "--cluster-yes"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            self.close()
            raise AssertionError("redis-cli --cluster create failed: " + r.stdout[-2000:] + r.stderr)
        wait_until(lambda: all("cluster_state:ok" in (n.cmd("CLUSTER", "INFO") or "")
                               for n in self.nodes), 20, "cluster state ok")
        # a replica can take over only once it has synced
        wait_until(lambda: all("role:master" in info or "master_link_status:up" in info
                               for info in (n.cmd("INFO", "replication") for n in self.nodes)),
                   20, "replicas in sync")

    @property
    def seeds(self):
        return [n.address for n in self.nodes]

    def masters(self):
        """The nodes that are masters now (by asking a live one)."""
        for n in self.nodes:
            try:
                slots = n.cmd("CLUSTER", "SLOTS")
            except (OSError, AssertionError):
                continue
            ports = {int(g[2][1]) for g in slots}
            return [m for m in self.nodes if m.port in ports]
        return []

    def node_of(self, key):
        """The master serving key's slot."""
        slot = self.nodes[0].cmd("CLUSTER", "KEYSLOT", key)
        for n in self.nodes:
            try:
                for g in n.cmd("CLUSTER", "SLOTS"):
                    if int(g[0]) <= slot <= int(g[1]):
                        port = int(g[2][1])
                        return next(m for m in self.nodes if m.port == port)
            except (OSError, AssertionError):
                continue
        raise AssertionError("no master for " + key)

    def close(self):
        for n in self.nodes:
            n.close()
        if not os.environ.get("HF_KEEP_LOGS"):
            subprocess.run(["rm", "-rf", self.dir])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
