# SPDX-License-Identifier: MIT
"""Backend event proxy (Centrifugo v6 keys and JSON) against a real HTTP
backend process (evproxy_backend.py): connect with a cookie and no token
(server-side channels, data, headers forwarded and not forwarded, static
headers, headers emulation), disconnect answers, subscribe allowed and
refused (103), publish rewritten, rpc answered and failed, meta, refresh
and sub_refresh proxies keeping a session, expired refresh; faults (garbage,
500, slow past the timeout, backend stopped): temporary errors, token
clients unaffected, the breaker opening and closing, recovery without a
restart; a connection closing while its request is in flight; the
in-flight bound (111); configuration errors naming the key."""
import json
import os
import subprocess
import sys
import time

from harness import (RT, Server, http_call, jwt_hs, run_module, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = "proxy-secret-0123456789"


class Backend:
    """evproxy_backend.py in its own process (stop and restart on one port)."""

    def __init__(self, port=0, minimal=False, tls=None):
        cmd = [sys.executable, os.path.join(HERE, "evproxy_backend.py"), "--port", str(port)]
        if minimal:
            cmd.append("--minimal")
        if tls:
            cmd += ["--tls"] + list(tls)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])

    def mode(self, m):
        assert http_call(self.port, "POST", "/_mode", {"mode": m})[0] == 200

    def log(self, path=None):
        reqs = json.loads(http_call(self.port, "GET", "/_log")[2])
        return [r for r in reqs if path is None or r["path"] == path]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


def config(bport, timeout="1s", **proxy):
    def ep(path, **kw):
        return dict({"endpoint": "http://127.0.0.1:%d/%s" % (bport, path),
                     "timeout": timeout}, **kw)
    p = {"breaker_failures": 3, "breaker_open": "1s"}
    p.update(proxy)
    return {
        "client": {"token": {"hmac_secret_key": SECRET},
                   "expired_close_delay": "0s", "expired_sub_close_delay": "0s",
                   "proxy": {"connect": ep("connect", enabled=True,
                                           http_headers=["Cookie", "X-Real-Ip"],
                                           http={"static_headers": {"X-Static": "s1",
                                                                    "X-Real-Ip": "static"}}),
                             "refresh": ep("refresh", enabled=True)}},
        "channel": {
            "proxy": {"subscribe": ep("subscribe"), "publish": ep("publish"),
                      "sub_refresh": ep("sub_refresh")},
            "namespaces": [
                {"name": "open", "subscribe_proxy_enabled": True,
                 "publish_proxy_enabled": True, "sub_refresh_proxy_enabled": True},
                {"name": "secret", "subscribe_proxy_enabled": True},
                {"name": "news"},
                {"name": "plain", "allow_subscribe_for_client": True,
                 "allow_publish_for_client": True},
            ]},
        "rpc": {"proxy": ep("rpc", include_connection_meta=True),
                "without_namespace": {"proxy_enabled": True}},
        "proxy": p,
    }


def cookie_client(srv, user, **headers):
    h = {"Cookie": "theme=dark; session=%s" % user}
    h.update(headers)
    return RT(srv.port, headers=h)


def token_client(srv, user="tok"):
    c = RT(srv.port)
    c.connect(jwt_hs({"sub": user}, SECRET))
    return c


def with_backend(fn, timeout="1s", **proxy):
    be = Backend()
    try:
        with Server(config=config(be.port, timeout, **proxy)) as srv:
            fn(srv, be)
    finally:
        be.stop()


def test_connect_with_cookie():
    def run(srv, be):
        c = cookie_client(srv, "alice", **{"X-Real-Ip": "10.1.2.3", "X-Secret": "no"})
        res = c.ok("connect", {"name": "py", "version": "1.0", "data": {"hi": 1}})
        assert res["client"] == c.cid and res["data"] == {"hello": "alice"}, res
        assert "news:alice" in res["subs"], res  # server-side, named by the backend
        assert res["subs"]["news:alice:vip"].get("data") == {"vip": True}, res  # from "subs"
        assert "expires" not in res, res
        req = be.log("/connect")[-1]
        b, h = req["body"], {k.lower(): v for k, v in req["headers"].items()}
        assert b == {"client": c.cid, "transport": "websocket", "protocol": "json",
                     "encoding": "json", "name": "py", "version": "1.0", "data": {"hi": 1}}, b
        assert h["cookie"] == "theme=dark; session=alice", h
        assert h["x-real-ip"] == "10.1.2.3", h  # the client's wins over the static one
        assert h["x-static"] == "s1" and h["content-type"] == "application/json", h
        for never in ("x-secret", "sec-websocket-key", "upgrade"):
            assert never not in h, (never, h)
        # the connection info reaches publications, the meta reaches the rpc proxy
        r = c.ok("rpc", {"method": "echo", "data": {"q": 1}})
        assert r["data"] == {"echo": {"q": 1}, "user": "alice", "method": "echo"}, r
        assert be.log("/rpc")[-1]["body"]["meta"] == {"plan": "pro"}
        for i in range(3):
            c.ok("rpc", {"method": "echo", "data": i})
        peers = {r["peer"] for r in be.log("/rpc")[-3:]}
        assert len(peers) == 1, "one kept-alive connection for sequential requests: %r" % peers
        # headers emulation: the connect command's headers stand in
        e = RT(srv.port)
        res = e.ok("connect", {"headers": {"Cookie": "session=bob"}})
        assert res["data"] == {"hello": "bob"}, res
        assert be.log("/connect")[-1]["headers"].get("Cookie") == "session=bob"
    with_backend(run)


def test_requests_name_the_sessions_transport():
    """Sessions over http_stream and SSE are proxied with their transport's
    name (Centrifugo's field) and with the Cookie of their own request (the
    request head is gone when the body arrives: captured at head time)."""
    from test_transports import Stream
    be = Backend()
    try:
        cfg = config(be.port)
        cfg["http_stream"] = {"enabled": True}
        cfg["sse"] = {"enabled": True}
        with Server(config=cfg) as srv:
            st = Stream(srv.port, "http_stream", headers={"Cookie": "session=dora"})
            res = st.msg()
            assert st.status == 200 and "connect" in res, (st.status, res)
            assert res["connect"]["client"], res
            req = be.log("/connect")[-1]
            b = req["body"]
            assert b["transport"] == "http_stream" and b["protocol"] == "json", b
            # the Cookie of the stream's request reached the backend
            assert res["connect"]["data"] == {"hello": "dora"}, res
            st.close()
            st = Stream(srv.port, "sse", headers={"Cookie": "session=eve"})
            res = st.msg()
            assert st.status == 200 and res.get("connect", {}).get("data") == {"hello": "eve"}, res
            assert be.log("/connect")[-1]["body"]["transport"] == "sse"
            st.close()
    finally:
        be.stop()


def test_disconnect_answer_and_token_side_by_side():
    def run(srv, be):
        c = cookie_client(srv, "banned")
        c.send({"id": 1, "connect": {}})
        c.ws.expect_close(4501)
        n = RT(srv.port)  # no cookie at all
        n.send({"id": 1, "connect": {}})
        n.ws.expect_close(4501)
        # a token is still verified locally: the backend is not asked
        before = len(be.log("/connect"))
        t = token_client(srv, "tok")
        assert t.ok("subscribe", {"channel": "plain:x"}) == {}
        assert len(be.log("/connect")) == before
        bad = RT(srv.port)
        bad.send({"id": 1, "connect": {"token": "not.a.token"}})
        bad.ws.expect_close(3500)
        assert srv.wait_event("proxy_disconnect", lambda e: e["code"] == 4501)
    with_backend(run)


def test_subscribe_publish_rpc():
    def run(srv, be):
        c = cookie_client(srv, "carol")
        c.connect()
        assert c.ok("subscribe", {"channel": "open:room", "data": {"why": 1}}) == \
            {"data": {"welcome": "open:room"}}
        sreq = be.log("/subscribe")[-1]["body"]
        assert sreq["channel"] == "open:room" and sreq["user"] == "carol" and \
            sreq["data"] == {"why": 1}, sreq
        r = c.call("subscribe", {"channel": "secret:vault"})
        assert r["error"]["code"] == 103 and "temporary" not in r["error"], r
        assert srv.wait_event("permission_denied", lambda e: e.get("channel") == "secret:vault")
        assert c.ok("publish", {"channel": "open:room", "data": {"text": "hi"}}) == {}
        pub = c.pubs("open:room", 1)[0]
        assert pub["data"] == {"rewritten": {"text": "hi"}, "by": "carol"}, pub
        assert pub["info"]["conn_info"] == {"name": "Carol"}, pub
        assert pub["info"]["chan_info"] == {"seat": 1}, pub
        r = c.call("rpc", {"method": "fail", "data": {}})
        assert r["error"] == {"code": 1000, "message": "custom failure"}, r
        r = c.call("rpc", {"method": "other:x", "data": {}})  # no such RPC namespace
        assert r["error"]["code"] == 108, r
        # commands keep their order behind proxied ones in one frame
        c.send({"id": 50, "rpc": {"method": "echo", "data": 1}},
               {"id": 51, "rpc": {"method": "echo", "data": 2}})
        assert c.reply(50)["rpc"]["data"]["echo"] == 1
        assert c.reply(51)["rpc"]["data"]["echo"] == 2
    with_backend(run)


def test_refresh_and_sub_refresh_keep_the_session():
    def run(srv, be):
        c = cookie_client(srv, "refresher")
        res = c.connect()
        assert "expires" not in res, res  # the server refreshes, not the client
        r = c.ok("subscribe", {"channel": "open:expiring"})
        assert "expires" not in r, r
        # expire_at is 2 s ahead and the close delays 0: without the proxy
        # the connection (and the subscription) would be gone after 2 s
        wait_until(lambda: len(be.log("/refresh")) >= 2, 8, "two refresh calls")
        wait_until(lambda: len(be.log("/sub_refresh")) >= 2, 8, "two sub_refresh calls")
        body = be.log("/refresh")[-1]["body"]
        assert body["user"] == "refresher" and body["client"] == c.cid, body
        assert be.log("/sub_refresh")[-1]["body"]["channel"] == "open:expiring"
        assert c.ok("rpc", {"method": "echo", "data": "alive"})["data"]["echo"] == "alive"
        e = cookie_client(srv, "expiring")
        e.connect()
        e.ws.expect_close(3005, timeout=8)
    with_backend(run)


def test_faults_temporary_errors_breaker_and_recovery():
    be = Backend()
    port = be.port
    try:
        with Server(config=config(port, "500ms")) as srv:
            tok = token_client(srv)
            assert tok.ok("subscribe", {"channel": "plain:t"}) == {}
            for mode in ("garbage", "error500", "slow"):
                be.mode(mode)
                c = cookie_client(srv, "dave")
                t0 = time.time()
                r = c.call("connect", {}, timeout=5)
                assert r["error"] == {"code": 100, "message": "internal server error",
                                      "temporary": True}, (mode, r)
                assert time.time() - t0 < 3, mode
                # the token client is unaffected meanwhile
                assert tok.ok("publish", {"channel": "plain:t", "data": {"m": mode}}) == {}
            fails = srv.events("proxy_failed")
            results = {e["result"] for e in fails}
            assert {"bad_response", "http_status", "timeout"} <= results, results
            f = fails[-1]
            assert f["conn_id"] and f["endpoint"].endswith("/connect") and "latency_ms" in f, f
            assert any(e["status"] == 500 for e in fails), fails
            assert srv.events("proxy_breaker_open"), "three failures open the breaker"
            be.stop()  # the backend is gone: refused, then the breaker answers
            for _ in range(4):
                c = cookie_client(srv, "dave")
                r = c.call("connect", {}, timeout=5)
                assert r["error"]["temporary"] is True, r
            be = Backend(port)
            def works():
                c = cookie_client(srv, "erin")
                r = c.call("connect", {}, timeout=5)
                return "connect" in r
            wait_until(works, 10, "connects through the proxy after the backend returned")
            assert srv.wait_event("proxy_breaker_closed")
            _, _, text = http_call(srv.port, "GET", "/metrics")
            text = text.decode()
            assert 'holdfast_proxy_requests_total{event="connect",result="ok"}' in text
            assert "holdfast_proxy_breaker_opened_total" in text
            assert 'holdfast_proxy_request_duration_seconds_count{event="connect"}' in text
            assert tok.ok("rpc", {"method": "echo", "data": 7})["data"]["echo"] == 7
    finally:
        be.stop()


def test_closed_while_in_flight_and_overload():
    def run(srv, be):
        be.mode("slow")
        for _ in range(3):  # gone before the answer arrives: nothing to touch
            c = cookie_client(srv, "frank")
            c.send({"id": 1, "connect": {}})
            c.ws.sock.close()
        a = [cookie_client(srv, "gina") for _ in range(4)]
        for c in a:
            c.send({"id": 1, "connect": {}})
        errs = [c.reply(1, timeout=6)["error"] for c in a]
        assert any(e == {"code": 111, "message": "too many requests", "temporary": True}
                   for e in errs), errs
        be.mode("ok")
        wait_until(lambda: "connect" in cookie_client(srv, "hank").call("connect", {}, 5),
                   10, "the proxy works again")
    with_backend(run, "3s", max_in_flight=2)


def test_config_errors_name_the_key():
    cases = [
        ({"channel": {"namespaces": [{"name": "x", "subscribe_proxy_enabled": True}]}},
         "channel.namespaces[x].subscribe_proxy_enabled"),
        ({"channel": {"namespaces": [{"name": "x", "publish_proxy_enabled": True,
                                      "publish_proxy_name": "nope"}]}},
         "names proxy \"nope\""),
        ({"client": {"proxy": {"connect": {"enabled": True, "endpoint": "grpc://h:1"}}}},
         "grpc:// proxies are not supported"),
        ({"proxies": [{"name": "aa", "endpoint": "http://h/"},
                      {"name": "aa", "endpoint": "http://h/"}]}, "defined twice"),
        ({"rpc": {"namespaces": [{"name": "ns", "proxy_enabled": True}]}},
         "rpc.namespaces[ns]"),
        ({"client": {"proxy": {"connect": {"enabled": True, "endpoint": "http://h/",
                                           "timeout": "forever"}}}}, "timeout"),
    ]
    for cfg, text in cases:
        try:
            Server(config=cfg, timeout=3).kill()
            raise AssertionError("started with %r" % cfg)
        except AssertionError as e:
            assert text in str(e), (text, str(e)[:400])


def test_named_proxies_and_rpc_namespaces():
    be = Backend()
    try:
        base = "http://127.0.0.1:%d/" % be.port
        cfg = {"client": {"token": {"hmac_secret_key": SECRET}},
               "proxies": [{"name": "subs-a", "endpoint": base + "subscribe"},
                           {"name": "rpc-a", "endpoint": base + "rpc",
                            "binary_encoding": True}],
               "channel": {"namespaces": [{"name": "open", "subscribe_proxy_enabled": True,
                                           "subscribe_proxy_name": "subs-a"}]},
               "rpc": {"namespaces": [{"name": "app", "proxy_enabled": True,
                                       "proxy_name": "rpc-a"}]}}
        with Server(config=cfg) as srv:
            c = token_client(srv, "ivy")
            assert c.ok("subscribe", {"channel": "open:n"}) == {"data": {"welcome": "open:n"}}
            r = c.ok("rpc", {"method": "app:echo", "data": {"x": 1}})
            body = be.log("/rpc")[-1]["body"]
            assert body["b64data"] == "eyJ4IjoxfQ==" and "data" not in body, body
            assert body["method"] == "app:echo" and r["data"]["user"] == "ivy", (body, r)
            assert c.call("rpc", {"method": "echo"})["error"]["code"] == 108
            c.ws.close()
    finally:
        be.stop()


def test_https_verifies_the_certificate():
    """A self-signed backend certificate is refused (temporary error, logged)."""
    import tempfile
    d = tempfile.mkdtemp(prefix="hf-px-tls-")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    be = Backend(tls=(cert, key))
    try:
        cfg = {"client": {"proxy": {"connect": {
            "enabled": True, "endpoint": "https://127.0.0.1:%d/connect" % be.port}}}}
        with Server(config=cfg) as srv:
            c = cookie_client(srv, "tls")
            r = c.call("connect", {}, timeout=5)
            assert r["error"]["code"] == 100 and r["error"]["temporary"], r
            f = srv.wait_event("proxy_failed")
            assert f["result"] == "connect_error" and "certificate" in f["error"].lower(), f
            c.ws.close()
    finally:
        be.stop()
        for p in (cert, key):
            os.unlink(p)
        os.rmdir(d)


if __name__ == "__main__":
    sys.exit(run_module("evproxy", globals(), only=os.environ.get("ONLY")))
