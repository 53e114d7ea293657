# SPDX-License-Identifier: MIT
"""HTTP streaming, SSE and the emulation endpoint (reference section 7),
driven over raw sockets: response heads (chunked, no-cache, keep-alive,
X-Accel-Buffering), the connect result's session and node, line and event
framing, CORS preflight and origin policy, 405/411/413/400/404/204 answers,
emulation commands processed in arrival order on the owning worker (two
workers), one publication fanned out to WebSocket, http_stream and SSE
subscribers, application ping/pong through the emulation endpoint and the
disconnect push that ends a stream, a slow stream reader (3008), SIGTERM
(3001), the same protocol checks over WebSocket, http_stream and SSE
(subscribe, publish with info, 102/103/105 errors, batches in order,
history, recovery, presence, refresh, 109), the unidirectional transports,
plus transport labels in logs and metrics."""
import json
import os
import socket
import sys
import time
import urllib.parse

from harness import (RT, WS, Server, connect, http_call, jwt_hs, read_http_response, rt_recv,
                     run_module, wait_until)

API_KEY = "tr-api-key"
ORIGIN = "https://app.example.com"


def config(**extra):
    c = {"http_stream": {"enabled": True}, "sse": {"enabled": True},
         "client": {"insecure": True, "allowed_origins": [ORIGIN]},
         "http_api": {"key": API_KEY},
         "channel": {"without_namespace": {"allow_subscribe_for_client": True,
                                           "allow_publish_for_client": True,
                                           "history_size": 100, "history_ttl": "60s"}}}
    for k, v in extra.items():
        c.setdefault(k, {}).update(v)
    return c


class Stream:
    """One open http_stream (POST) or SSE (GET) response, decoded: .msgs()
    yields the JSON messages in order (lines or SSE events)."""

    def __init__(self, port, kind="http_stream", connect_cmd=None, headers=None, timeout=5.0,
                 path=None, rcvbuf=None):
        self.kind = kind
        cmd = connect_cmd if isinstance(connect_cmd, str) else \
            json.dumps(connect_cmd or {"connect": {"name": "py"}, "id": 1}, separators=(",", ":"))
        h = {"Host": "127.0.0.1"}
        h.update(headers or {})
        if kind == "http_stream":
            h.update({"Content-Type": "application/json", "Content-Length": str(len(cmd))})
            req = "POST %s HTTP/1.1\r\n" % (path or "/connection/http_stream")
            body = cmd.encode()
        else:
            req = "GET %s?cf_connect=%s HTTP/1.1\r\n" % (path or "/connection/sse", urllib.parse.quote(cmd))
            body = b""
        if rcvbuf:  # a small receive window, set before the handshake
            self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.s.settimeout(timeout)
            self.s.connect(("127.0.0.1", port))
        else:
            self.s = connect(port, timeout)
        self.s.sendall((req + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n").encode() + body)
        self.status, self.headers, _, self.raw = read_http_response(self.s, timeout)
        self.body = b""   # de-chunked bytes not yet split into messages
        self.ended = False  # the terminating chunk arrived
        self.queue = []
        self.preamble = False  # SSE: the leading "\r\n" was seen

    def _chunks(self, timeout):
        """Decode whole chunks from self.raw into self.body; read more when needed."""
        deadline = time.time() + timeout
        while True:
            while True:
                if b"\r\n" not in self.raw:
                    break
                size_line, rest = self.raw.split(b"\r\n", 1)
                n = int(size_line, 16)
                if len(rest) < n + 2:
                    break
                assert rest[n:n + 2] == b"\r\n", "bad chunk trailer %r" % rest[n:n + 8]
                if n == 0:
                    self.ended = True
                    self.raw = rest[2:]
                    return
                self.body += rest[:n]
                self.raw = rest[n + 2:]
                return
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("no chunk within %.1fs" % timeout)
            self.s.settimeout(left)
            data = self.s.recv(65536)
            if not data:
                raise AssertionError("stream closed without the terminating chunk")
            self.raw += data

    def msg(self, timeout=5.0):
        """The next JSON message (None when the stream ended)."""
        deadline = time.time() + timeout
        while not self.queue:
            if self.kind == "sse" and not self.preamble and len(self.body) >= 2:
                assert self.body.startswith(b"\r\n"), "no SSE preamble: %r" % self.body[:20]
                self.body = self.body[2:]
                self.preamble = True
                continue
            sep = b"\n" if self.kind == "http_stream" else b"\n\n"
            if sep in self.body:
                item, self.body = self.body.split(sep, 1)
                if self.kind == "http_stream":
                    assert item, "empty line in an http_stream"
                    self.queue.append(json.loads(item))
                else:
                    assert item.startswith(b"data: ") and b"\n" not in item, "bad SSE event %r" % item
                    self.queue.append(json.loads(item[6:]))
                continue
            if self.ended:
                return None
            self._chunks(max(0.05, deadline - time.time()))
        return self.queue.pop(0)

    def until(self, pred, timeout=5.0):
        deadline = time.time() + timeout
        while True:
            m = self.msg(max(0.05, deadline - time.time()))
            if m is None:
                raise AssertionError("stream ended before the expected message")
            if pred(m):
                return m

    def close(self):
        self.s.close()


def emulate(port, session, node, *cmds, headers=None):
    data = "\n".join(json.dumps(c, separators=(",", ":")) for c in cmds)
    return http_call(port, "POST", "/emulation", {"session": session, "node": node, "data": data},
                     headers=dict({"Content-Type": "application/json"}, **(headers or {})))


def opened(port, kind="http_stream", **kw):
    st = Stream(port, kind, **kw)
    assert st.status == 200, st.status
    res = st.msg()
    assert res["id"] == 1 and "connect" in res, res
    return st, res["connect"]


def test_http_stream_response_head_and_connect_result():
    with Server(config=config()) as srv:
        st, res = opened(srv.port)
        h = st.headers
        assert h.get("transfer-encoding") == "chunked", h
        assert h.get("x-accel-buffering") == "no", h
        assert h.get("cache-control") == "private, no-cache, no-store, must-revalidate, max-age=0", h
        assert h.get("pragma") == "no-cache" and h.get("connection") == "keep-alive", h
        assert "content-type" not in h, h
        assert res["session"].startswith("0.") and len(res["session"]) == 34, res
        assert len(res["node"]) >= 8 and res["client"], res
        st.close()
        ev = srv.wait_event("closed", lambda e: e.get("transport") == "http_stream")
        assert ev["code"] == 1001 and ev["who"] == "client", ev
        assert srv.events("client_connected")[0]["transport"] == "http_stream"


def test_sse_framing_and_missing_cf_connect():
    with Server(config=config()) as srv:
        st = Stream(srv.port, "sse")
        assert st.status == 200
        assert st.headers.get("content-type") == "text/event-stream; charset=utf-8", st.headers
        assert st.headers.get("x-accel-buffering") == "no"
        st._chunks(5)
        assert st.body.startswith(b"\r\n"), st.body[:20]  # flushed at once, before the reply
        res = st.msg()
        assert res["id"] == 1 and res["connect"]["session"], res
        st.close()
        status, _, body = http_call(srv.port, "GET", "/connection/sse")
        assert status == 400 and b"cf_connect" in body, (status, body)
        status, _, body = http_call(srv.port, "GET", "/connection/sse?cf_connect=%7Bbad%ZZ")
        assert status == 400, status
        assert srv.events("transport_rejected")


def test_methods_preflight_and_cors():
    with Server(config=config()) as srv:
        for path in ("/connection/http_stream", "/connection/sse", "/emulation"):
            status, h, _ = http_call(srv.port, "PUT", path, b"x")
            assert status == 405 and "POST" in h.get("allow", ""), (path, status, h)
            status, h, body = http_call(srv.port, "OPTIONS", path, headers={
                "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type"})
            assert status == 204 and body == b"", (path, status)
            assert h.get("access-control-allow-origin") == ORIGIN, h
            assert h.get("access-control-allow-credentials") == "true", h
            assert h.get("access-control-allow-headers") == "content-type", h
            assert h.get("access-control-max-age") == "300", h
            assert "POST, OPTIONS" in h.get("access-control-allow-methods", ""), h
            status, h, _ = http_call(srv.port, "OPTIONS", path, headers={"Origin": "https://evil.example"})
            assert status == 403 and "access-control-allow-origin" not in h, (path, status, h)
        st, _ = opened(srv.port, headers={"Origin": ORIGIN})
        assert st.headers.get("access-control-allow-origin") == ORIGIN
        st.close()
        ev = srv.wait_event("transport_rejected", lambda e: e.get("reason") == "origin_rejected")
        assert ev["status"] == 403


def test_body_limits_and_bad_requests():
    with Server(config=config(http_stream={"max_request_body_size": 100},
                              emulation={"max_request_body_size": 200})) as srv:
        big = json.dumps({"connect": {"name": "x" * 200}, "id": 1})
        status, _, body = http_call(srv.port, "POST", "/connection/http_stream", big)
        assert status == 413 and b"http_stream.max_request_body_size" in body, (status, body)
        status, _, body = http_call(srv.port, "POST", "/emulation", {"session": "0.x", "data": "y" * 300})
        assert status == 413 and b"emulation.max_request_body_size" in body, (status, body)
        status, _, body = http_call(srv.port, "POST", "/emulation", b"{not json")
        assert status == 400, (status, body)
        status, _, _ = http_call(srv.port, "POST", "/emulation", {"session": 5, "data": "{}"})
        assert status == 400
        status, _, body = http_call(srv.port, "POST", "/emulation", {"session": "0.ab", "node": "other", "data": "{}"})
        assert status == 404, (status, body)
        status, _, body = http_call(srv.port, "POST", "/emulation", {"session": "0.nosuch", "data": "{}"})
        assert status == 204 and body == b"", (status, body)  # unknown session: dropped silently
        status, _, _ = http_call(srv.port, "POST", "/connection/http_stream", b"")
        assert status == 400
        s = connect(srv.port)
        s.sendall(b"POST /emulation HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        status, _, _, _ = read_http_response(s)
        s.close()
        assert status == 411


def test_emulation_commands_in_arrival_order_across_workers():
    with Server(config=config(), workers=2) as srv:
        for kind in ("http_stream", "sse"):
            st, res = opened(srv.port, kind)
            sess, node = res["session"], res["node"]
            status, _, _ = emulate(srv.port, sess, node, {"subscribe": {"channel": "ord-" + kind}, "id": 2})
            assert status == 204
            r = st.until(lambda m: m.get("id") == 2)
            assert "subscribe" in r, r
            # 40 requests pipelined on one kept-alive connection, plus 4 more
            # connections (some land on the other worker): each batch is
            # processed whole and in the order it arrived
            s = connect(srv.port)
            reqs = b""
            for i in range(40):
                data = json.dumps({"publish": {"channel": "ord-" + kind, "data": {"n": i}}, "id": 10 + i},
                                  separators=(",", ":"))
                body = json.dumps({"session": sess, "node": node, "data": data}).encode()
                reqs += (b"POST /emulation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body)) + body
            s.sendall(reqs)
            answers = b""
            deadline = time.time() + 10
            while answers.count(b"HTTP/1.1 ") < 40 and time.time() < deadline:
                data = s.recv(65536)
                assert data, "connection closed after %d answers" % answers.count(b"HTTP/1.1 ")
                answers += data
            s.close()
            assert answers.count(b"HTTP/1.1 204 ") == 40, answers[:300]
            ids, pubs = [], []
            while len(ids) < 40 or len(pubs) < 40:
                m = st.msg()
                assert m is not None
                if "id" in m:
                    ids.append(m["id"])
                    assert "error" not in m, m
                elif "push" in m and "pub" in m["push"]:
                    pubs.append(m["push"]["pub"]["data"]["n"])
            assert ids == list(range(10, 50)), ids
            assert pubs == list(range(40)), pubs
            for i in range(4):  # separate connections, one after another
                status, _, _ = emulate(srv.port, sess, node,
                                       {"publish": {"channel": "ord-" + kind, "data": {"n": 100 + i}}, "id": 100 + i})
                assert status == 204
            seen = []
            while len(seen) < 4:
                m = st.msg()
                if "push" in m and "pub" in m["push"]:
                    seen.append(m["push"]["pub"]["data"]["n"])
            assert seen == [100, 101, 102, 103], seen
            st.close()


def test_one_publication_to_every_transport():
    with Server(config=config(), workers=2) as srv:
        rt = RT(srv.port)
        rt.connect()
        rt.ok("subscribe", {"channel": "mix"})
        streams = []
        for kind in ("http_stream", "sse", "http_stream", "sse"):
            st, res = opened(srv.port, kind)
            emulate(srv.port, res["session"], res["node"], {"subscribe": {"channel": "mix"}, "id": 2})
            st.until(lambda m: m.get("id") == 2)
            streams.append(st)
        for i in range(20):
            status, _, body = http_call(srv.port, "POST", "/api/publish", {"channel": "mix", "data": {"i": i}},
                                        headers={"X-API-Key": API_KEY})
            assert status == 200, body
        # and 20 in one batch: a run swept subscriber-major, one by one here
        status, _, body = http_call(srv.port, "POST", "/api/batch", {"commands": [
            {"publish": {"channel": "mix", "data": {"i": i}}} for i in range(20, 40)]},
            headers={"X-API-Key": API_KEY})
        assert status == 200, body
        got = [p["data"]["i"] for p in rt.pubs("mix", 40)]
        assert got == list(range(40)), got
        for st in streams:
            seen = []
            while len(seen) < 40:
                m = st.msg()
                if "push" in m:
                    assert m["push"]["channel"] == "mix"
                    seen.append(m["push"]["pub"]["data"]["i"])
            assert seen == list(range(40)), (st.kind, seen)
        status, _, body = http_call(srv.port, "GET", "/metrics")
        text = body.decode()
        assert 'holdfast_transport_sessions_total{transport="sse"} 2' in text, text[:200]
        assert 'holdfast_transport_sessions_total{transport="http_stream"} 2' in text
        assert 'holdfast_transport_sessions_total{transport="websocket"} 1' in text
        assert 'holdfast_connections{transport="sse"} 2' in text
        assert 'holdfast_connections{transport="http_stream"} 2' in text
        assert 'holdfast_connections{transport="websocket"} 1' in text
        for st in streams:
            st.close()
        rt.ws.close()


def test_ping_pong_through_emulation_and_disconnect_push():
    with Server(config=config(client={"ping_interval": "600ms", "pong_timeout": "400ms"})) as srv:
        for kind in ("http_stream", "sse"):
            st, res = opened(srv.port, kind)
            assert res.get("ping") == 1 and res.get("pong") is True, res
            for _ in range(2):  # answered pings keep the session
                assert st.until(lambda m: m == {}, 3.0) == {}
                status, _, _ = emulate(srv.port, res["session"], res["node"], {})
                assert status == 204
            # no pong: the server ends the stream with the disconnect push
            m = st.until(lambda m: m != {}, 4.0)
            assert m == {"push": {"disconnect": {"code": 3012, "reason": "no pong"}}}, m
            assert st.msg() is None and st.ended
            st.close()
        # server API disconnect
        st, res = opened(srv.port, "sse")
        status, _, body = http_call(srv.port, "POST", "/api/disconnect",
                                    {"user": "", "client": res["client"],
                                     "disconnect": {"code": 4000, "reason": "bye"}},
                                    headers={"X-API-Key": API_KEY})
        assert status == 200, body
        m = st.until(lambda m: m != {})
        assert m["push"]["disconnect"]["code"] == 4000, m
        assert st.msg() is None
        st.close()


def test_slow_stream_reader_is_ended_with_3008():
    with Server(config=config(client={"queue_max_size": 65536, "queue_grace": "200ms"},
                              websocket={"close_timeout": "1s"})) as srv:
        st, res = opened(srv.port, rcvbuf=4096)
        emulate(srv.port, res["session"], res["node"], {"subscribe": {"channel": "slow"}, "id": 2})
        st.until(lambda m: m.get("id") == 2)
        other, ores = opened(srv.port, "sse")  # a reader that keeps up
        emulate(srv.port, ores["session"], ores["node"], {"subscribe": {"channel": "slow"}, "id": 2})
        other.until(lambda m: m.get("id") == 2)
        pad = "x" * 60000
        for i in range(150):  # 9 MB: far more than the socket buffers hold
            http_call(srv.port, "POST", "/api/publish", {"channel": "slow", "data": {"i": i, "pad": pad}},
                      headers={"X-API-Key": API_KEY})
            other.until(lambda m: "push" in m)  # the other reader keeps up
        ev = srv.wait_event("closed", timeout=15)
        assert ev["code"] == 3008 and ev["transport"] == "http_stream", ev
        assert ev["who"] == "server", ev
        api_publish(srv, "slow", {"after": 1})
        assert other.until(lambda m: "push" in m and m["push"]["pub"]["data"] == {"after": 1})
        st.close()
        other.close()


def test_sigterm_ends_streams_with_a_disconnect_push():
    srv = Server(config=config())
    try:
        streams = [opened(srv.port, kind)[0] for kind in ("http_stream", "sse")]
        srv.proc.send_signal(15)
        for st in streams:
            m = st.until(lambda m: m != {})
            assert m == {"push": {"disconnect": {"code": 3001, "reason": "shutdown"}}}, m
            assert st.msg() is None and st.ended
            st.close()
        srv.stop()
    finally:
        srv.kill()


SECRET = "uni-secret-0123456789"


def uni_config(**extra):
    c = config(**extra)
    c["client"] = {"token": {"hmac_secret_key": SECRET}, "allowed_origins": [ORIGIN],
                   "ping_interval": "1s", "pong_timeout": "500ms"}
    for k in ("uni_websocket", "uni_http_stream", "uni_sse"):
        c[k] = {"enabled": True}
    return c


def uni_token(ch, sub="uni-user", exp_in=600):
    return jwt_hs({"sub": sub, "exp": int(time.time()) + exp_in, "channels": [ch]}, SECRET)


def api_publish(srv, ch, data):
    status, _, body = http_call(srv.port, "POST", "/api/publish", {"channel": ch, "data": data},
                                headers={"X-API-Key": API_KEY})
    assert status == 200, body


def test_unidirectional_streams_bare_pushes_and_server_side_subscriptions():
    with Server(config=uni_config()) as srv:
        for kind, path in (("http_stream", "/connection/uni_http_stream"), ("sse", "/connection/uni_sse")):
            ch = "uni-" + kind
            st = Stream(srv.port, kind, json.dumps({"token": uni_token(ch), "name": "py"}), path=path)
            assert st.status == 200 and st.headers.get("x-accel-buffering") == "no", st.status
            m = st.msg()
            assert set(m) == {"connect"} and ch in m["connect"]["subs"], m
            assert "pong" not in m["connect"] and "session" not in m["connect"], m
            api_publish(srv, ch, {"k": kind})
            m = st.until(lambda m: m != {})
            assert m["channel"] == ch and m["pub"]["data"] == {"k": kind}, m
            # pings keep coming and no pong is asked: still open after 2.5 s
            deadline = time.time() + 2.5
            pings = 0
            while time.time() < deadline:
                if st.msg(5.0) == {}:
                    pings += 1
            assert pings >= 2 and not st.ended, pings
            ev = srv.wait_event("client_connected", lambda e: e.get("transport") == "uni_" + kind)
            assert ev["user"] == "uni-user"
            st.close()
        # a request that is not a JSON object, and a bad token: disconnect pushes
        st = Stream(srv.port, "http_stream", "[1,2]", path="/connection/uni_http_stream")
        m = st.msg()
        assert m["disconnect"]["code"] == 3501, m
        assert st.msg() is None
        st.close()
        st = Stream(srv.port, "sse", json.dumps({"token": "x.y.z"}), path="/connection/uni_sse")
        m = st.msg()
        assert m == {"disconnect": {"code": 3500, "reason": "invalid token"}}, m
        assert st.msg() is None
        st.close()
        status, _, body = http_call(srv.port, "GET", "/metrics")
        assert 'holdfast_transport_sessions_total{transport="uni_sse"} 2' in body.decode()


def test_unidirectional_websocket():
    with Server(config=uni_config(), workers=2) as srv:
        ws = WS(srv.port, "/connection/uni_websocket")
        ws.send(0x1, json.dumps({"token": uni_token("uws")}).encode())
        m = rt_recv(ws)[0]
        assert set(m) == {"connect"} and "uws" in m["connect"]["subs"], m
        # later messages are ignored (a unidirectional client sends nothing)
        ws.send(0x1, b'{"subscribe":{"channel":"other"},"id":2}')
        for i in range(3):
            api_publish(srv, "uws", {"i": i})
        got = []
        while len(got) < 3:
            m = rt_recv(ws)[0]
            if m != {}:
                assert m["channel"] == "uws", m
                got.append(m["pub"]["data"]["i"])
        assert got == [0, 1, 2], got
        n = 0
        while n < 2:  # pings, no pong asked: the connection stays
            assert rt_recv(ws, timeout=3.0) == [{}]
            n += 1
        ws.send(0x8, (1000).to_bytes(2, "big"))
        ws.expect_close(1000)
        ws.close()
        ev = srv.wait_event("closed", lambda e: e.get("transport") == "uni_websocket")
        assert "emulation_requests" not in ev, ev
        assert ev["who"] == "client", ev


# ---- the protocol over every transport ---------------------------------------

class StreamRT:
    """RT's interface (harness.py) over http_stream or SSE: the connect
    command goes with the opening request, later commands through the
    emulation endpoint, replies and pushes come from the stream."""

    def __init__(self, port, kind, tok):
        self.port = port
        self.st = Stream(port, kind, {"connect": {"token": tok} if tok else {}, "id": 1})
        assert self.st.status == 200, self.st.status
        self.next_id = 2
        self.pending = []
        self.first = self.reply(1)
        if "connect" in self.first:
            self.session = self.first["connect"]["session"]
            self.node = self.first["connect"]["node"]
            self.cid = self.first["connect"]["client"]

    def _fill(self, timeout):
        m = self.st.msg(timeout)
        if m is None:
            raise AssertionError("the stream ended; pending %r" % self.pending[:5])
        if m == {}:
            self.send({})
        else:
            self.pending.append(m)

    def send(self, *cmds):
        status, _, body = emulate(self.port, self.session, self.node, *cmds)
        assert status == 204, (status, body)

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
            try:
                self._fill(left)
            except socket.timeout:
                pass

    def call(self, key, body, timeout=3.0):
        i = self.new_id()
        self.send({"id": i, key: body})
        return self.reply(i, timeout)

    def ok(self, key, body):
        r = self.call(key, body)
        assert key in r and "error" not in r, r
        return r[key]

    def push(self, pred=lambda p: True, timeout=3.0):
        deadline = time.time() + timeout
        while True:
            for i, o in enumerate(self.pending):
                if "push" in o and pred(o["push"]):
                    return self.pending.pop(i)["push"]
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("no matching push; got %r" % self.pending[:5])
            try:
                self._fill(left)
            except socket.timeout:
                pass

    def pubs(self, channel, n, timeout=5.0):
        return [self.push(lambda p: p.get("channel") == channel and "pub" in p, timeout)["pub"]
                for _ in range(n)]

    def close(self):
        self.st.close()


class WsRT(RT):
    """RT connected at once, with the same first/close as StreamRT."""

    def __init__(self, port, kind, tok):
        RT.__init__(self, port)
        self.first = self.call("connect", {"token": tok} if tok else {})

    def close(self):
        self.ws.close()


PROTO_SECRET = "proto-secret-0123456789"


def proto_config():
    sub = {"allow_subscribe_for_client": True}
    return {"http_stream": {"enabled": True}, "sse": {"enabled": True},
            "client": {"token": {"hmac_secret_key": PROTO_SECRET}},
            "http_api": {"key": API_KEY},
            "channel": {"without_namespace": dict(sub, allow_publish_for_client=True),
                        "namespaces": [
                            dict(sub, name="hist", history_size=50, history_ttl="60s",
                                 force_recovery=True, allow_history_for_subscriber=True),
                            dict(sub, name="pres", presence=True, join_leave=True,
                                 allow_presence_for_subscriber=True),
                            {"name": "locked"}]}}


def tok(user, exp_in=600, **claims):
    return jwt_hs(dict({"sub": user, "exp": int(time.time()) + exp_in}, **claims), PROTO_SECRET)


def protocol_cases(srv, make, tag):
    """One client of each transport kind runs the same protocol checks."""
    room, hist, pres = "room-" + tag, "hist:h-" + tag, "pres:p-" + tag
    c = make(tok("alice", info={"k": "v"}))
    assert "connect" in c.first and c.first["connect"]["client"], c.first
    # subscribe, client publication with info, API publication, in order
    c.ok("subscribe", {"channel": room})
    c.ok("publish", {"channel": room, "data": {"n": 1}})
    api_publish(srv, room, {"n": 2})
    p1, p2 = c.pubs(room, 2)
    assert p1["data"] == {"n": 1} and p1["info"]["user"] == "alice" and p1["info"]["conn_info"] == {"k": "v"}, p1
    assert p2["data"] == {"n": 2} and "info" not in p2, p2
    # errors: unknown namespace, permission, already subscribed
    assert c.call("subscribe", {"channel": "nope:x"})["error"]["code"] == 102
    assert c.call("subscribe", {"channel": "locked:x"})["error"]["code"] == 103
    assert c.call("subscribe", {"channel": room})["error"]["code"] == 105
    # a batch of three commands: replies in order
    ids = [c.new_id() for _ in range(3)]
    c.send(*[{"id": i, "publish": {"channel": room, "data": {"b": i}}} for i in ids])
    assert [c.reply(i)["id"] for i in ids] == ids
    assert [p["data"]["b"] for p in c.pubs(room, 3)] == ids
    # history and recovery
    r = c.ok("subscribe", {"channel": hist})
    epoch = r["epoch"]
    for i in range(4):
        api_publish(srv, hist, {"h": i})
    got = c.pubs(hist, 4)
    h = c.ok("history", {"channel": hist, "limit": 10})
    assert [p["data"]["h"] for p in h["publications"]] == [0, 1, 2, 3], h
    c.ok("unsubscribe", {"channel": hist})
    api_publish(srv, hist, {"h": 4})
    r = c.ok("subscribe", {"channel": hist, "recover": True, "offset": got[1]["offset"], "epoch": epoch})
    assert r.get("recovered") is True and [p["data"]["h"] for p in r["publications"]] == [2, 3, 4], r
    # presence and join
    c.ok("subscribe", {"channel": pres})
    pr = c.ok("presence", {"channel": pres})
    assert c.first["connect"]["client"] in pr["presence"], pr
    # refresh with a new token
    res = c.ok("refresh", {"token": tok("alice", exp_in=120)})
    assert res.get("expires") is True and 0 < res["ttl"] <= 121, res
    c.close()
    # an expired token: error 109 in the connect reply
    d = make(tok("bob", exp_in=-10))
    assert d.first.get("error", {}).get("code") == 109, d.first
    d.close()


def test_protocol_over_every_transport():
    with Server(config=proto_config(), workers=2) as srv:
        protocol_cases(srv, lambda t: WsRT(srv.port, "websocket", t), "ws")
        for kind in ("http_stream", "sse"):
            protocol_cases(srv, lambda t, k=kind: StreamRT(srv.port, k, t), kind)
        # a malformed command ends a stream with the 3501 disconnect push
        c = StreamRT(srv.port, "sse", tok("carol"))
        status, _, _ = http_call(srv.port, "POST", "/emulation",
                                 {"session": c.session, "node": c.node, "data": "{not json"})
        assert status == 204
        m = c.st.until(lambda m: "push" in m and "disconnect" in m["push"])
        assert m["push"]["disconnect"]["code"] == 3501, m
        assert c.st.msg() is None
        c.close()


def test_disabled_by_default():
    with Server() as srv:
        for path in ("/connection/http_stream", "/connection/sse", "/emulation"):
            status, _, _ = http_call(srv.port, "POST", path, b"{}")
            assert status == 404, (path, status)


if __name__ == "__main__":
    sys.exit(run_module("transports", globals(), only=os.environ.get("ONLY")))
