# SPDX-License-Identifier: MIT
"""The C SDK (sdk/, hf/sdk.h) against the real binary, compared with the
official `centrifuge` npm SDK: the same scenarios (connect and calls,
expired token + refresh, token refresh before expiry, invalid token,
permission error, subscription token + sub_refresh, reconnect vs terminal
disconnect codes through the server API, recovery after a cut through
`holdfast chaos`, server drain and restart) are run by tests/sdk/driver.c and
tests/interop/sdk_driver.mjs; each prints its events as normalised JSON
lines and the sequences must be identical. Then `holdfast sub` through
cuts while the API publishes a numbered sequence (exactly 1..N once each,
in order), `holdfast pub` (idempotency keys, exit statuses) and the
example pair (examples/sensor.c, examples/subscriber.c)."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

from harness import (BIN, ROOT, RT, RedisServer, Server, free_port, http_call, jwt_hs, run_module,
                     wait_until)
from chaosproc import Chaos
from clientkit import ScriptServer, accept_upgrade, close_frame, frame, read_frame

SECRET = "sdk-secret-0123456789-0123456789"
API_KEY = "sdk-api-key"
BUILD = os.path.dirname(BIN)
C_DRIVER = os.path.join(BUILD, "tests", "sdk_driver")
NODE = "/usr/bin/node"
JS_DRIVER = os.path.join(ROOT, "tests", "interop", "sdk_driver.mjs")
HAVE_NODE = os.path.exists(NODE) and os.path.isdir(
    os.path.join(ROOT, "tests", "interop", "node_modules", "centrifuge"))
WS = "ws://127.0.0.1:%d/connection/websocket"

CONFIG = {
    "client": {"token": {"hmac_secret_key": SECRET}},
    "http_api": {"key": API_KEY},
    "websocket": {"close_timeout": "300ms"},
    "shutdown": {"timeout": "2s"},
    "channel": {"namespaces": [
        {"name": "p", "presence": True, "allow_presence_for_client": True, "join_leave": True,
         "history_size": 100, "history_ttl": "300s", "allow_history_for_client": True,
         "allow_subscribe_for_client": True, "allow_publish_for_client": True},
        {"name": "r", "history_size": 1000, "history_ttl": "300s", "force_recovery": True,
         "allow_subscribe_for_client": True, "allow_publish_for_client": True},
        {"name": "closed"},
        {"name": "priv", "allow_publish_for_client": True},
    ]},
}


def token(sub, ttl=600, **claims):
    c = dict(claims)
    c["sub"] = sub
    if ttl is not None:
        c["exp"] = int(time.time()) + ttl
    return jwt_hs(c, SECRET)


def api(port, method, body):
    st, _, data = http_call(port, "POST", "/api/" + method, json.dumps(body).encode(),
                            {"X-API-Key": API_KEY})
    assert st == 200, (st, data)
    j = json.loads(data)
    assert "result" in j, j
    return j["result"]


class Driver:
    """One SDK client process (C or JS) driven by stdin commands; its JSON
    event lines are collected by a reader thread."""

    def __init__(self, kind, url, *args):
        cmd = ([C_DRIVER] if kind[0] == "c" else [NODE, JS_DRIVER]) + [url] + list(args)
        if kind.endswith("pb"):  # the Protobuf encoding
            cmd.append("--protobuf")
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.kind = kind
        self.errf = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.errf, env=e, text=True, bufsize=1,
                                     cwd=os.path.join(ROOT, "tests", "interop"))
        self.events = []
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                with self.lock:
                    self.events.append(json.loads(line))

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def count(self, ev, **fields):
        with self.lock:
            return sum(1 for e in self.events
                       if e["ev"] == ev and all(e.get(k) == v for k, v in fields.items()))

    def wait(self, ev, n=1, timeout=15.0, **fields):
        wait_until(lambda: self.count(ev, **fields) >= n, timeout,
                   "%s driver: %d x %s %r; events: %s" % (self.kind, n, ev, fields,
                                                         self.events[-12:]))

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.cmd("quit")
                self.proc.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.errf.seek(0)
        err = self.errf.read().decode(errors="replace")
        for pat in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert pat not in err, "%s driver: %s" % (self.kind, err[-3000:])
        return self.normalised()

    def normalised(self):
        """The events with consecutive repeats collapsed (the number of
        refused attempts during an outage depends on timing)."""
        out = []
        with self.lock:
            for e in self.events:
                if not out or out[-1] != e:
                    out.append(e)
        return out


def compare(name, scenario, protobuf=True, js_protobuf=True):
    """Run scenario(kind, tag) with the C SDK and with centrifuge-js (and,
    against holdfast, both speaking Protobuf too); the normalised event
    sequences must be equal (the per-run tag in channel and user names is
    replaced by T)."""
    seqs = {}
    kinds = ["c"] + (["cpb"] if protobuf else []) + (["js"] if HAVE_NODE else []) + \
        (["jspb"] if HAVE_NODE and protobuf and js_protobuf else [])
    for kind in kinds:
        ch_tag = "%s-%s-%d" % (name, kind, int(time.time() * 1000) % 100000)
        seqs[kind] = scenario(kind, ch_tag)
    if "js" not in seqs:
        print("  (node or the centrifuge SDK missing: no JS side)")
    a = seqs["c"]
    for other in kinds[1:]:
        b = seqs[other]
        if a != b:
            lines = ["C and %s differ in %s:" % (other, name)]
            for i in range(max(len(a), len(b))):
                x = a[i] if i < len(a) else None
                y = b[i] if i < len(b) else None
                lines.append("%s %-60s | %s" % ("  " if x == y else "!!", json.dumps(x),
                                                json.dumps(y)))
            raise AssertionError("\n".join(lines))
    return a


def norm(events, ch_tag):
    """Replace the per-run channel suffix."""
    out = []
    for e in events:
        e = dict(e)
        for k in ("ch", "user"):
            if k in e:
                e[k] = e[k].replace(ch_tag, "T")
        out.append(e)
    return out


SRV = None


def srv():
    global SRV
    if SRV is None:
        SRV = Server(config=CONFIG)
    return SRV


def expect(seq, want):
    assert seq == want, "unexpected sequence:\n%s" % "\n".join(json.dumps(e) for e in seq)


# ---- the comparison scenarios ---------------------------------------------------------

def test_connect_subscribe_calls():
    s = srv()

    def run(kind, tag):
        ch, other = "p:" + tag, "p:other-" + tag
        d = Driver(kind, WS % s.port, "--token", token("u-" + tag))
        d.cmd("connect")
        d.wait("connected")
        d.cmd("sub %s joinleave" % ch)
        d.wait("join")  # its own join follows the subscribe reply
        other_client = Driver("c", WS % s.port, "--token", token("v-" + tag))
        other_client.cmd("connect")
        other_client.cmd("sub " + ch)
        d.wait("join", n=2)
        other_client.cmd("disconnect")
        d.wait("leave")
        other_client.stop()
        api(s.port, "publish", {"channel": ch, "data": {"n": 1}})
        d.wait("publication")
        d.cmd('publish %s {"n":2}' % other)
        d.wait("reply", op="publish")
        d.cmd("presence " + ch)
        d.wait("reply", op="presence")
        d.cmd("presence_stats " + ch)
        d.wait("reply", op="presence_stats")
        d.cmd("history " + ch)
        d.wait("reply", op="history")
        d.cmd("rpc nothing")
        d.wait("reply", op="rpc")
        d.cmd("unsub " + ch)
        d.wait("unsubscribed")
        d.cmd("disconnect")
        d.wait("disconnected")
        return norm(d.stop(), tag)

    seq = compare("basic", run)
    expect(seq, [
        {"ev": "connecting", "code": 0, "reason": "connect called"},
        {"ev": "connected"},
        {"ev": "subscribing", "ch": "p:T", "code": 0, "reason": "subscribe called"},
        {"ev": "subscribed", "ch": "p:T", "wasRecovering": False, "recovered": False},
        {"ev": "join", "ch": "p:T", "user": "u-T"},
        {"ev": "join", "ch": "p:T", "user": "v-T"},
        {"ev": "leave", "ch": "p:T", "user": "v-T"},
        {"ev": "publication", "ch": "p:T", "data": {"n": 1}, "offset": 1},
        {"ev": "reply", "op": "publish", "code": 0},
        {"ev": "reply", "op": "presence", "code": 0},
        {"ev": "reply", "op": "presence_stats", "code": 0,
         "result": {"num_clients": 1, "num_users": 1}},
        {"ev": "reply", "op": "history", "code": 0},
        {"ev": "reply", "op": "rpc", "code": 108},  # no RPC backend: not available
        {"ev": "unsubscribed", "ch": "p:T", "code": 0, "reason": "unsubscribe called"},
        {"ev": "disconnected", "code": 0, "reason": "disconnect called"},
    ])


def test_expired_token_then_refresh():
    s = srv()

    def run(kind, tag):
        d = Driver(kind, WS % s.port, "--get-token", "--token", token("u", ttl=-60),
                   "--min-delay", "50", "--max-delay", "200")
        d.cmd("connect")
        d.wait("get_token")
        d.cmd("token " + token("u"))
        d.wait("connected")
        d.cmd("disconnect")
        d.wait("disconnected")
        return d.stop()

    seq = compare("expired", run)
    expect(seq, [
        {"ev": "connecting", "code": 0, "reason": "connect called"},
        {"ev": "error", "type": "connect", "code": 109},
        {"ev": "get_token"},
        {"ev": "connected"},
        {"ev": "disconnected", "code": 0, "reason": "disconnect called"},
    ])


def test_token_refresh_before_expiry():
    s = srv()

    def run(kind, tag):
        d = Driver(kind, WS % s.port, "--get-token", "--token", token("u", ttl=3))
        d.cmd("connect")
        d.wait("connected")
        d.wait("get_token", timeout=10)  # ttl 2-3 s: refresh before expiry
        d.cmd("token " + token("u"))
        d.cmd('publish p:refresh-%s {"x":1}' % tag)
        d.wait("reply", op="publish")  # after the refresh reply on the wire
        d.cmd("disconnect")
        d.wait("disconnected")
        return d.stop()

    seq = compare("refresh", run, js_protobuf=False)  # waits for expiry: 3 runs are enough
    expect(seq, [
        {"ev": "connecting", "code": 0, "reason": "connect called"},
        {"ev": "connected"},
        {"ev": "get_token"},
        {"ev": "reply", "op": "publish", "code": 0},
        {"ev": "disconnected", "code": 0, "reason": "disconnect called"},
    ])


def test_invalid_token_is_terminal():
    s = srv()

    def run(kind, tag):
        d = Driver(kind, WS % s.port, "--token", "not-a-token")
        d.cmd("connect")
        d.wait("disconnected")
        return d.stop()

    seq = compare("invalid", run)
    expect(seq, [
        {"ev": "connecting", "code": 0, "reason": "connect called"},
        {"ev": "disconnected", "code": 3500, "reason": "invalid token"},
    ])


def test_permission_error_and_subscription_token():
    s = srv()

    def run(kind, tag):
        user = "u-" + tag
        d = Driver(kind, WS % s.port, "--token", token(user))
        d.cmd("connect")
        d.wait("connected")
        d.cmd("sub closed:" + tag)
        d.wait("unsubscribed")
        ch = "priv:" + tag
        d.cmd("sub %s token" % ch)
        d.wait("get_sub_token")
        d.cmd("subtoken %s %s" % (ch, token(user, ttl=3, channel=ch)))
        d.wait("subscribed")
        d.wait("get_sub_token", n=2, timeout=10)  # sub_refresh before expiry
        d.cmd("subtoken %s %s" % (ch, token(user, channel=ch)))
        d.cmd('publish %s {"after":"refresh"}' % ch)
        d.wait("publication")
        d.cmd("disconnect")
        d.wait("disconnected")
        return norm(d.stop(), tag)

    seq = compare("perm", run, js_protobuf=False)
    expect(seq, [
        {"ev": "connecting", "code": 0, "reason": "connect called"},
        {"ev": "connected"},
        {"ev": "subscribing", "ch": "closed:T", "code": 0, "reason": "subscribe called"},
        {"ev": "unsubscribed", "ch": "closed:T", "code": 103, "reason": "permission denied"},
        {"ev": "subscribing", "ch": "priv:T", "code": 0, "reason": "subscribe called"},
        {"ev": "get_sub_token", "ch": "priv:T"},
        {"ev": "subscribed", "ch": "priv:T", "wasRecovering": False, "recovered": False},
        {"ev": "get_sub_token", "ch": "priv:T"},
        {"ev": "publication", "ch": "priv:T", "data": {"after": "refresh"}, "offset": 0},
        {"ev": "reply", "op": "publish", "code": 0},
        {"ev": "subscribing", "ch": "priv:T", "code": 1, "reason": "transport closed"},
        {"ev": "disconnected", "code": 0, "reason": "disconnect called"},
    ])


def test_reconnect_and_terminal_disconnect_codes():
    s = srv()

    def run(kind, tag):
        user = "u-" + tag
        d = Driver(kind, WS % s.port, "--token", token(user), "--min-delay", "50",
                   "--max-delay", "200")
        d.cmd("connect")
        d.cmd("sub p:" + tag)
        d.wait("subscribed")
        api(s.port, "disconnect", {"user": user, "disconnect": {"code": 4000, "reason": "app reconnect"}})
        d.wait("subscribed", n=2)
        api(s.port, "disconnect", {"user": user, "disconnect": {"code": 3011, "reason": "force reconnect"}})
        d.wait("subscribed", n=3)
        api(s.port, "disconnect", {"user": user, "disconnect": {"code": 4500, "reason": "app stop"}})
        d.wait("disconnected")
        return norm(d.stop(), tag)

    seq = compare("codes", run)
    sub = {"ev": "subscribed", "ch": "p:T", "wasRecovering": False, "recovered": False}
    closed = {"ev": "subscribing", "ch": "p:T", "code": 1, "reason": "transport closed"}
    expect(seq, [
        {"ev": "connecting", "code": 0, "reason": "connect called"},
        {"ev": "subscribing", "ch": "p:T", "code": 0, "reason": "subscribe called"},
        {"ev": "connected"}, sub,
        closed, {"ev": "connecting", "code": 4000, "reason": "app reconnect"},
        {"ev": "connected"}, sub,
        closed, {"ev": "connecting", "code": 3011, "reason": "force reconnect"},
        {"ev": "connected"}, sub,
        closed, {"ev": "disconnected", "code": 4500, "reason": "app stop"},
    ])


def test_recovery_after_a_cut():
    s = srv()
    with Chaos(s.port) as chaos:
        def run(kind, tag):
            ch = "r:" + tag
            d = Driver(kind, WS % chaos.port, "--token", token("u"), "--min-delay", "100",
                       "--max-delay", "300")
            d.cmd("connect")
            d.cmd("sub %s recoverable" % ch)
            d.wait("subscribed")
            for i in range(1, 4):
                api(s.port, "publish", {"channel": ch, "data": {"n": i}})
            d.wait("publication", n=3)
            chaos.rules({"refuse": True})
            chaos.call("POST", "/cut?mode=rst")
            d.wait("connecting", code=1)
            for i in range(4, 7):
                api(s.port, "publish", {"channel": ch, "data": {"n": i}})
            d.wait("error", type="transport")  # an attempt while refused
            chaos.rules({})
            d.wait("publication", n=6)
            d.cmd("disconnect")
            d.wait("disconnected")
            return norm(d.stop(), tag)

        seq = compare("recovery", run)
    pubs = [e for e in seq if e["ev"] == "publication"]
    assert [p["data"]["n"] for p in pubs] == [1, 2, 3, 4, 5, 6], pubs
    assert [p["offset"] for p in pubs] == [1, 2, 3, 4, 5, 6], pubs
    i = seq.index({"ev": "subscribed", "ch": "r:T", "wasRecovering": True, "recovered": True})
    assert seq[i - 1] == {"ev": "connected"}, seq
    assert {"ev": "connecting", "code": 1, "reason": "transport closed"} in seq


def test_server_side_subscription_from_the_token_recovers():
    s = srv()
    with Chaos(s.port) as chaos:
        def run(kind, tag):
            ch = "r:ss-" + tag
            d = Driver(kind, WS % chaos.port, "--token", token("u", channels=[ch]),
                       "--min-delay", "100", "--max-delay", "300")
            d.cmd("connect")
            d.wait("server_subscribed")
            for i in (1, 2):
                api(s.port, "publish", {"channel": ch, "data": {"n": i}})
            d.wait("server_publication", n=2)
            chaos.rules({"refuse": True})
            chaos.call("POST", "/cut?mode=rst")
            d.wait("connecting", code=1)
            for i in (3, 4):
                api(s.port, "publish", {"channel": ch, "data": {"n": i}})
            d.wait("error", type="transport")
            chaos.rules({})
            d.wait("server_publication", n=4)
            d.cmd("disconnect")
            d.wait("disconnected")
            return norm(d.stop(), tag)

        seq = compare("serverside", run)
    pub = lambda n: {"ev": "server_publication", "ch": "r:ss-T", "data": {"n": n}, "offset": n}
    expect(seq, [
        {"ev": "connecting", "code": 0, "reason": "connect called"},
        {"ev": "connected"},
        {"ev": "server_subscribed", "ch": "r:ss-T", "wasRecovering": False, "recovered": False},
        pub(1), pub(2),
        {"ev": "server_subscribing", "ch": "r:ss-T"},
        {"ev": "connecting", "code": 1, "reason": "transport closed"},
        {"ev": "error", "type": "transport", "code": 2},
        {"ev": "connected"},
        {"ev": "server_subscribed", "ch": "r:ss-T", "wasRecovering": True, "recovered": True},
        pub(3), pub(4),
        {"ev": "server_subscribing", "ch": "r:ss-T"},
        {"ev": "disconnected", "code": 0, "reason": "disconnect called"},
    ])


def test_server_drain_and_restart():
    port = free_port()
    cfg = dict(CONFIG)

    def run(kind, tag):
        a = Server("--listen", "127.0.0.1:%d" % port, config=cfg)
        d = Driver(kind, WS % port, "--token", token("u"), "--min-delay", "100",
                   "--max-delay", "300")
        d.cmd("connect")
        d.cmd("sub p:" + tag)
        d.wait("subscribed")
        a.stop()  # SIGTERM: drain, 3001 shutdown
        d.wait("connecting", code=3001)
        b = Server("--listen", "127.0.0.1:%d" % port, config=cfg)
        try:
            d.wait("subscribed", n=2)
            d.cmd("disconnect")
            d.wait("disconnected")
            # whether an attempt fell into the restart (a transport error)
            # depends on timing: left out of the comparison
            return [e for e in norm(d.stop(), tag)
                    if not (e["ev"] == "error" and e.get("type") == "transport")]
        finally:
            b.stop()

    seq = compare("drain", run)
    sub = {"ev": "subscribed", "ch": "p:T", "wasRecovering": False, "recovered": False}
    expect(seq, [
        {"ev": "connecting", "code": 0, "reason": "connect called"},
        {"ev": "subscribing", "ch": "p:T", "code": 0, "reason": "subscribe called"},
        {"ev": "connected"}, sub,
        {"ev": "subscribing", "ch": "p:T", "code": 1, "reason": "transport closed"},
        {"ev": "connecting", "code": 3001, "reason": "shutdown"},
        {"ev": "connected"}, sub,
        {"ev": "subscribing", "ch": "p:T", "code": 1, "reason": "transport closed"},
        {"ev": "disconnected", "code": 0, "reason": "disconnect called"},
    ])


# ---- scripted servers: what holdfast never sends ----------------------------------------

class Conn:
    """The server side of one scripted real-time connection."""

    def __init__(self, s):
        self.s = s
        self.pending = []
        accept_upgrade(s)

    def cmd(self, timeout=10.0):
        while not self.pending:
            op, p, _ = read_frame(self.s, timeout)
            if op == 8:
                raise EOFError("client closed")
            if op == 1:
                self.pending += [json.loads(x) for x in p.decode().split("\n") if x.strip()]
        return self.pending.pop(0)

    def until(self, kind):
        while True:
            c = self.cmd()
            if kind in c:
                return c

    def send(self, *objs):
        self.s.sendall(frame(1, "\n".join(json.dumps(o) for o in objs).encode()))

    def connected(self, **res):
        c = self.until("connect")
        r = {"client": "c1", "ping": 25, "pong": True}
        r.update(res)
        self.send({"id": c["id"], "connect": r})

    def subscribed(self, **res):
        c = self.until("subscribe")
        self.send({"id": c["id"], "subscribe": res})
        return c

    def idle(self):
        try:
            while True:
                self.cmd(30)
        except (OSError, EOFError):
            pass


def scripted(name, handler, *driver_args, steps):
    """compare() over a ScriptServer running handler(conn, index)."""
    def run(kind, tag):
        with ScriptServer(lambda sock, idx: handler(Conn(sock), idx)) as ss:
            d = Driver(kind, WS % ss.port, "--token", "t", "--min-delay", "50", "--max-delay",
                       "200", *driver_args)
            steps(d)
            seq = d.stop()
            assert not ss.errors, ss.errors
            return seq
    return compare(name, run, protobuf=False)  # the scripted servers speak JSON


def test_ping_watchdog_reconnects():
    def handler(c, idx):
        c.connected(ping=1)  # announces a ping every second, then is silent
        if idx == 0:
            c.idle()
            return
        for _ in range(100):  # the second connection pings
            time.sleep(0.2)
            c.send({})

    def steps(d):
        d.cmd("connect")
        d.wait("connecting", code=2, timeout=10)
        d.wait("connected", n=2)
        d.cmd("disconnect")
        d.wait("disconnected")

    seq = scripted("noping", handler, "--ping-delay", "500", steps=steps)
    expect(seq, [
        {"ev": "connecting", "code": 0, "reason": "connect called"},
        {"ev": "connected"},
        {"ev": "connecting", "code": 2, "reason": "no ping"},
        {"ev": "connected"},
        {"ev": "disconnected", "code": 0, "reason": "disconnect called"},
    ])


def test_close_codes_the_server_never_sends_itself():
    def handler(c, idx):
        if idx == 0:  # a temporary connect error: retried
            cmd = c.until("connect")
            c.send({"id": cmd["id"], "error": {"code": 100, "message": "internal server error",
                                               "temporary": True}})
            c.idle()
            return
        c.connected()
        if idx == 1:
            c.s.sendall(close_frame(3500))  # terminal code, empty reason: reconnect
        elif idx == 2:
            c.s.sendall(close_frame(4100, b'{"reason":"v1 advice","reconnect":false}'))
        else:
            c.idle()

    def steps(d):
        d.cmd("connect")
        d.wait("disconnected", timeout=10)
        d.cmd("connect")
        d.wait("connected", n=3)
        d.cmd("disconnect")
        d.wait("disconnected", n=2)

    seq = scripted("codes2", handler, steps=steps)
    expect(seq, [
        {"ev": "connecting", "code": 0, "reason": "connect called"},
        {"ev": "error", "type": "connect", "code": 100},
        {"ev": "connected"},
        {"ev": "connecting", "code": 3500, "reason": "connection closed"},
        {"ev": "connected"},
        {"ev": "disconnected", "code": 4100, "reason": "v1 advice"},
        {"ev": "connecting", "code": 0, "reason": "connect called"},
        {"ev": "connected"},
        {"ev": "disconnected", "code": 0, "reason": "disconnect called"},
    ])


def test_message_too_big_is_terminal():
    def handler(c, idx):
        c.connected()
        c.s.sendall(close_frame(1009, b"too big"))

    def steps(d):
        d.cmd("connect")
        d.wait("disconnected")

    seq = scripted("toobig", handler, steps=steps)
    expect(seq, [
        {"ev": "connecting", "code": 0, "reason": "connect called"},
        {"ev": "connected"},
        {"ev": "disconnected", "code": 3, "reason": "message size limit exceeded"},
    ])


def test_server_side_subscriptions_and_unsubscribe_pushes():
    def handler(c, idx):
        c.connected(subs={"srv": {"recoverable": True, "positioned": True, "epoch": "e",
                                  "offset": 1}})
        c.send({"push": {"channel": "srv", "pub": {"data": {"n": 2}, "offset": 2}}})
        c.subscribed()
        c.send({"push": {"channel": "mine", "pub": {"data": {"m": 1}}}},
               {"push": {"channel": "mine", "unsubscribe": {"code": 2500,
                                                            "reason": "insufficient state"}}})
        c.subscribed()
        c.send({"push": {"channel": "mine", "unsubscribe": {"code": 2000,
                                                            "reason": "server unsubscribe"}}},
               {"push": {"channel": "srv", "unsubscribe": {"code": 2000,
                                                           "reason": "server unsubscribe"}}})
        c.idle()

    def steps(d):
        d.cmd("sub mine")
        d.cmd("connect")
        d.wait("server_unsubscribed")
        d.cmd("disconnect")
        d.wait("disconnected")

    seq = scripted("serversubs", handler, steps=steps)
    expect(seq, [
        {"ev": "subscribing", "ch": "mine", "code": 0, "reason": "subscribe called"},
        {"ev": "connecting", "code": 0, "reason": "connect called"},
        {"ev": "connected"},
        {"ev": "server_subscribed", "ch": "srv", "wasRecovering": False, "recovered": False},
        {"ev": "server_publication", "ch": "srv", "data": {"n": 2}, "offset": 2},
        {"ev": "subscribed", "ch": "mine", "wasRecovering": False, "recovered": False},
        {"ev": "publication", "ch": "mine", "data": {"m": 1}, "offset": 0},
        {"ev": "subscribing", "ch": "mine", "code": 2500, "reason": "insufficient state"},
        {"ev": "subscribed", "ch": "mine", "wasRecovering": False, "recovered": False},
        {"ev": "unsubscribed", "ch": "mine", "code": 2000, "reason": "server unsubscribe"},
        {"ev": "server_unsubscribed", "ch": "srv"},
        {"ev": "disconnected", "code": 0, "reason": "disconnect called"},
    ])


def test_subscribe_timeout_reconnects():
    def handler(c, idx):
        c.connected()
        if idx == 0:
            c.idle()  # never answers the subscribe
            return
        c.subscribed()
        c.idle()

    def steps(d):
        d.cmd("connect")
        d.cmd("sub x")
        d.wait("subscribed", timeout=10)
        d.cmd("disconnect")
        d.wait("disconnected")

    seq = scripted("subtimeout", handler, "--timeout", "1000", steps=steps)
    expect(seq, [
        {"ev": "connecting", "code": 0, "reason": "connect called"},
        {"ev": "subscribing", "ch": "x", "code": 0, "reason": "subscribe called"},
        {"ev": "connected"},
        {"ev": "connecting", "code": 3, "reason": "subscribe timeout"},
        {"ev": "connected"},
        {"ev": "subscribed", "ch": "x", "wasRecovering": False, "recovered": False},
        {"ev": "subscribing", "ch": "x", "code": 1, "reason": "transport closed"},
        {"ev": "disconnected", "code": 0, "reason": "disconnect called"},
    ])


def test_duplicate_offsets_are_dropped_by_the_c_sdk():
    """A documented difference: centrifuge-js delivers a repeated offset
    (reference 5.6), the C SDK drops it."""
    def handler(c, idx):
        c.connected()
        c.subscribed(recoverable=True, positioned=True, epoch="e", offset=5)
        c.send(*[{"push": {"channel": "r", "pub": {"data": o, "offset": o}}}
                 for o in (6, 7, 7, 6, 8)])
        c.idle()

    got = {}
    for kind in (["c", "js"] if HAVE_NODE else ["c"]):
        with ScriptServer(lambda sock, idx: handler(Conn(sock), idx)) as ss:
            d = Driver(kind, WS % ss.port, "--token", "t")
            d.cmd("connect")
            d.cmd("sub r recoverable")
            d.wait("publication", n=3)
            if kind == "js":
                d.wait("publication", n=5)
            d.cmd("disconnect")
            d.wait("disconnected")
            d.stop()
            got[kind] = [e["offset"] for e in d.events if e["ev"] == "publication"]
    assert got["c"] == [6, 7, 8], got
    if "js" in got:
        assert got["js"] == [6, 7, 7, 6, 8], got


# ---- holdfast sub / holdfast pub -------------------------------------------------------

def lines_of(path):
    with open(path) as f:
        return [json.loads(x) for x in f.read().splitlines() if x.strip()]


def publish_numbered(port, ch, first, last, pause=0.0):
    for n in range(first, last + 1):
        api(port, "publish", {"channel": ch, "data": {"n": n}})
        if pause:
            time.sleep(pause)


def test_holdfast_sub_survives_cuts_without_gaps():
    s = srv()
    ch, n_total = "r:subtool-%d" % os.getpid(), 300
    with Chaos(s.port) as chaos, tempfile.NamedTemporaryFile("w+", suffix=".out") as out, \
            tempfile.NamedTemporaryFile("w+", suffix=".err") as err:
        env = dict(os.environ, HOLDFAST_TOKEN=token("subtool"))
        p = subprocess.Popen([BIN, "sub", WS % chaos.port, ch], stdout=out, stderr=err, env=env)
        try:
            wait_until(lambda: "subscribed" in open(err.name).read(), 10, "sub subscribed")
            pub = threading.Thread(target=publish_numbered, args=(s.port, ch, 1, n_total, 0.002))
            pub.start()
            for k in range(1, 4):  # three cuts (RST, no close frame) while publishing
                wait_until(lambda: len(lines_of(out.name)) >= k * 60, 20, "%d lines" % (k * 60))
                chaos.call("POST", "/cut?mode=rst")
                wait_until(lambda: open(err.name).read().count("(recovered)") >= k, 20,
                           "recovery %d" % k)
            pub.join()
            wait_until(lambda: len(lines_of(out.name)) >= n_total, 20, "all %d lines" % n_total)
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=10) == 0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        got = lines_of(out.name)
        assert [g["data"]["n"] for g in got] == list(range(1, n_total + 1)), got[:5]
        assert [g["offset"] for g in got] == list(range(1, n_total + 1))
        log = open(err.name).read()
        assert log.count("(recovered)") >= 3, log
        assert "position %d:" % n_total in log, log
        assert "AddressSanitizer" not in log and "runtime error" not in log, log
        epoch = log.split("position %d:" % n_total)[1].split()[0]
    # resume from a persisted position: only what came after it
    r = subprocess.run([BIN, "sub", WS % s.port, ch, "--token", token("x"), "--since",
                        "%d:%s" % (n_total - 5, epoch), "--count", "5", "-q"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r
    got = [json.loads(x) for x in r.stdout.splitlines()]
    assert [g["offset"] for g in got] == list(range(n_total - 4, n_total + 1)), r.stdout


def test_holdfast_sub_survives_a_server_restart():
    """Two nodes on one Redis: `holdfast sub` on node A, which is drained
    and restarted while node B's API publishes a numbered sequence; the
    streams live in Redis, so A recovers the subscriber: 1..N once each."""
    ch, n_total = "r:restart-%d" % os.getpid(), 200
    with RedisServer() as redis:
        cfg = json.loads(json.dumps(CONFIG))
        cfg["engine"] = {"type": "redis", "redis": {
            "address": [redis.address], "prefix": "sdk%d" % os.getpid(),
            "connect_timeout": "300ms", "io_timeout": "1s"}}
        port = free_port()
        a = Server("--listen", "127.0.0.1:%d" % port, config=cfg)
        b = Server(config=cfg)
        out = tempfile.NamedTemporaryFile("w+", suffix=".out")
        err = tempfile.NamedTemporaryFile("w+", suffix=".err")
        p = subprocess.Popen([BIN, "sub", WS % port, ch, "--token", token("r")], stdout=out,
                             stderr=err)
        try:
            wait_until(lambda: "subscribed" in open(err.name).read(), 10, "subscribed")
            pub = threading.Thread(target=publish_numbered, args=(b.port, ch, 1, n_total, 0.005))
            pub.start()
            wait_until(lambda: len(lines_of(out.name)) >= 50, 20, "50 lines")
            a.stop()  # drain: 3001 shutdown; B keeps publishing
            wait_until(lambda: "3001" in open(err.name).read(), 10, "3001 seen")
            a = Server("--listen", "127.0.0.1:%d" % port, config=cfg)
            wait_until(lambda: "(recovered)" in open(err.name).read(), 20, "recovered")
            pub.join()
            wait_until(lambda: len(lines_of(out.name)) >= n_total, 20, "all lines")
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=10) == 0
            got = lines_of(out.name)
            assert [g["data"]["n"] for g in got] == list(range(1, n_total + 1)), \
                [g["data"]["n"] for g in got][:60]
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            a.stop()
            b.stop()
            out.close()
            err.close()


def test_holdfast_sub_exit_statuses():
    s = srv()
    r = subprocess.run([BIN, "sub", WS % s.port], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, r
    r = subprocess.run([BIN, "sub", WS % s.port, "p:x", "--since", "x:y"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2 and "OFFSET:EPOCH" in r.stderr, r
    r = subprocess.run([BIN, "sub", WS % s.port, "p:x", "--token", "bad"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 3 and "3500" in r.stderr, r
    r = subprocess.run([BIN, "sub", WS % s.port, "closed:x", "--token", token("u")],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 4 and "103" in r.stderr, r


def test_holdfast_pub():
    s = srv()
    ch = "r:pubtool-%d" % os.getpid()
    env = dict(os.environ, HOLDFAST_TOKEN=token("pubtool"))
    for _ in range(2):  # the same key twice: applied once
        r = subprocess.run([BIN, "pub", WS % s.port, ch, '{"v":1}', "--idempotency-key", "k1"],
                           capture_output=True, text=True, timeout=20, env=env)
        assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True, r
    h = api(s.port, "history", {"channel": ch, "limit": -1})
    assert [p["data"] for p in h["publications"]] == [{"v": 1}], h
    for _ in range(2):  # the same over Protobuf (the key is a holdfast field there too)
        r = subprocess.run([BIN, "pub", WS % s.port, ch, '{"v":1.5}', "--idempotency-key",
                            "k1pb", "--protobuf"], capture_output=True, text=True, timeout=20,
                           env=env)
        assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True, r
    h = api(s.port, "history", {"channel": ch, "limit": -1})
    assert [p["data"] for p in h["publications"]] == [{"v": 1}, {"v": 1.5}], h
    api(s.port, "history_remove", {"channel": ch})
    r = subprocess.run([BIN, "pub", WS % s.port, ch, "{bad", "--token", token("u")],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, r
    r = subprocess.run([BIN, "pub", WS % s.port, ch, "1", "--token", "bad"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 3, r
    r = subprocess.run([BIN, "pub", WS % s.port, "nons:x", "1"], capture_output=True,
                       text=True, timeout=10, env=env)
    assert r.returncode == 4 and json.loads(r.stdout)["code"] == 102, r
    # through network loss: refused for a while, then the queued publish goes out once
    with Chaos(s.port) as chaos:
        chaos.rules({"refuse": True})
        p = subprocess.Popen([BIN, "pub", WS % chaos.port, ch, '{"v":2}', "--idempotency-key",
                              "k2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
        wait_until(lambda: chaos.stats().get("refused", 0) >= 2, 10, "refused attempts")
        chaos.rules({})
        o, e = p.communicate(timeout=20)
        assert p.returncode == 0, (o, e)
    h = api(s.port, "history", {"channel": ch, "limit": -1})
    assert [p["data"] for p in h["publications"]] == [{"v": 2}], h
    # never reachable: the publish times out (exit 5)
    with Chaos(s.port, "--refuse") as chaos:
        r = subprocess.run([BIN, "pub", WS % chaos.port, ch, "3", "--timeout", "1s", "-q"],
                           capture_output=True, text=True, timeout=20, env=env)
        assert r.returncode == 5, r


def test_client_publish_idempotency_key_on_the_wire():
    """The holdfast extension the SDK relies on: the client protocol's
    publish takes idempotency_key like the server API (a bad one is 107)."""
    s = srv()
    ch = "r:wire-%d" % os.getpid()
    c = RT(s.port)
    try:
        c.connect(token("wire"))
        assert c.call("publish", {"channel": ch, "data": 1, "idempotency_key": "k"}) == \
            {"id": 2, "publish": {}}
        assert "publish" in c.call("publish", {"channel": ch, "data": 1, "idempotency_key": "k"})
        for bad in (5, "x" * 257):
            r = c.call("publish", {"channel": ch, "data": 1, "idempotency_key": bad})
            assert r["error"]["code"] == 107, r
        h = api(s.port, "history", {"channel": ch, "limit": -1})
        assert [p["data"] for p in h["publications"]] == [1], h
    finally:
        c.close()


# ---- the example pair -----------------------------------------------------------------------

def test_example_sensor_publishes_through_loss_without_duplicates():
    s = srv()
    ch, n = "r:sensor-%d" % os.getpid(), 400
    # replies come back late (in flight at every cut), and three cuts
    with Chaos(s.port, "--latency", "80ms", "--direction", "down") as chaos:
        p = subprocess.Popen([os.path.join(BUILD, "examples", "sensor"), WS % chaos.port, ch,
                              str(n), token("sensor")], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            for k in range(1, 4):
                wait_until(lambda: api(s.port, "history", {"channel": ch})["offset"] >= k * 90,
                           20, "%d readings" % (k * 90))
                chaos.call("POST", "/cut?mode=rst")
            o, e = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert p.returncode == 0, (o, e)
    assert "AddressSanitizer" not in e and "runtime error" not in e, e
    words = o.split()
    assert words[1] == str(n) and int(words[3]) > 0, o  # some readings were retried
    h = api(s.port, "history", {"channel": ch, "limit": -1})
    seqs = [p["data"]["seq"] for p in h["publications"]]
    assert sorted(seqs) == list(range(1, n + 1)), (len(seqs), len(set(seqs)))


def test_example_subscriber_survives_restarts_without_gaps():
    s = srv()
    ch, n = "r:subscriber-%d" % os.getpid(), 200
    exe = os.path.join(BUILD, "examples", "subscriber")
    got = []
    with tempfile.TemporaryDirectory() as d:
        state = os.path.join(d, "position")
        pub = threading.Thread(target=publish_numbered, args=(s.port, ch, 1, n, 0.005))
        for run in range(4):  # stopped and started again 3 times while publishing
            p = subprocess.Popen([exe, WS % s.port, ch, state, "0", token("sub")],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if run == 0:
                wait_until(lambda: os.path.exists(state), 10, "first position saved")
                pub.start()
            if run < 3:
                target = len(got) + 40
                wait_until(lambda: os.path.exists(state) and
                           int(open(state).read().split(":")[0] or 0) >= target, 20,
                           "position %d" % target)
                p.send_signal(signal.SIGTERM)
            else:
                pub.join()
                wait_until(lambda: int(open(state).read().split(":")[0]) >= n, 20, "the end")
                p.send_signal(signal.SIGTERM)
            o, e = p.communicate(timeout=10)
            assert p.returncode == 0, (run, e)
            got += [json.loads(x)["n"] for x in o.splitlines()]
    assert got == list(range(1, n + 1)), got


def test_memory_per_connection_tool():
    """build/tests/sdk_memory (docs/sdk.md) runs and reports a sane figure."""
    s = srv()
    r = subprocess.run([os.path.join(BUILD, "tests", "sdk_memory"), WS % s.port, "p:mem-", "50",
                        token("mem")], capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r
    fields = dict(kv.split("=") for kv in r.stdout.split()[1:])
    assert fields["clients"] == "50", r.stdout
    assert 0 < int(fields["per_client_bytes"]) < 1024 * 1024, r.stdout


def test_docs_listings_are_the_examples():
    with open(os.path.join(ROOT, "docs", "sdk.md")) as f:
        doc = f.read()
    for name in ("sensor", "subscriber"):
        m = re.search(r"<!-- %s:begin -->\n```c\n(.*)```\n<!-- %s:end -->" % (name, name), doc, re.S)
        assert m, "%s markers missing in docs/sdk.md" % name
        with open(os.path.join(ROOT, "examples", name + ".c")) as f:
            assert m.group(1) == f.read(), "docs/sdk.md's %s differs from examples/%s.c" % (name, name)


def test_stop_shared_server():
    global SRV
    if SRV is not None:
        SRV.stop()
        SRV = None


if __name__ == "__main__":
    try:
        rc = run_module("integration/sdk", globals(), only=os.environ.get("ONLY"))
    finally:
        if SRV is not None:
            SRV.kill()
    sys.exit(rc)
