# SPDX-License-Identifier: MIT
"""Binary (non-JSON) publication data from Protobuf clients and the server
API's b64data, as Centrifugo handles it: Protobuf subscribers get the bytes
unchanged (live push, history, recovery), JSON clients that would receive
them are closed with 3506 (inappropriate protocol) with a
binary_data_for_json_client log line and a metric; the server API takes
b64data and answers binary data as b64data; the publish and rpc proxies get
it as b64data with binary_encoding and refuse it otherwise; binary data
elsewhere (subscribe, connect) is still refused with 107. Memory engine and
Redis engine (stored, read back across nodes); the C SDK's hfs_publish_bytes
over Protobuf."""
import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import (ApiKit, RedisServer, Server, http_call, metric, run_module, wait_until)
from test_protobuf import PB, fld, parse, publish_cmd, subscribe_cmd

SECRET = "pbin-secret-0123456789"
API_KEY = "pbin-api-key"
KIT = ApiKit(SECRET, API_KEY)
BLOB = bytes(range(256)) + b"\x00\xff binary \x00"  # not JSON, NULs, every byte value


def config(engine=None, proxy=None):
    c = {"client": {"token": {"hmac_secret_key": SECRET}},
         "http_api": {"key": API_KEY},
         "websocket": {"close_timeout": "200ms"},
         "channel": {"without_namespace": {"allow_subscribe_for_client": True,
                                           "allow_publish_for_client": True},
                     "namespaces": [{"name": "h", "history_size": 50, "history_ttl": "300s",
                                     "allow_subscribe_for_client": True,
                                     "allow_publish_for_client": True,
                                     "allow_history_for_subscriber": True,
                                     "allow_recovery": True, "allow_positioning": True}]}}
    if engine:
        c["engine"] = engine
    if proxy:
        c.update(proxy)
    return c


def pb_client(srv, sub="1"):
    c = PB(srv.port)
    c.send(fld(1, 1) + fld(4, fld(1, KIT.token(sub))))  # Command{id, connect{token}}
    assert 5 in c.reply(1)
    return c


def pb_subscribe(c, cid, ch, recover_from=None):
    """SubscribeResult as {field: [values]}; recover_from: (epoch, offset)."""
    body = fld(1, ch) + fld(10, 1)  # recoverable
    if recover_from:
        body += fld(3, 1) + fld(6, recover_from[0]) + fld(7, recover_from[1])
    c.send(fld(1, cid) + fld(5, body))
    r = c.reply(cid)
    assert 6 in r, r
    return parse(r[6][0]) if r[6][0] else {}


def pb_publish(c, cid, ch, data):
    c.send(publish_cmd(cid, ch, data))
    r = c.reply(cid)
    assert 8 in r and 2 not in r, r


def pb_history(c, cid, ch, limit=10):
    c.send(fld(1, cid) + fld(10, fld(1, ch) + fld(7, limit)))
    r = c.reply(cid)
    assert 11 in r, r
    return [parse(p) for p in parse(r[11][0]).get(1, [])]


def json_client(srv, ch=None):
    c = KIT.client(srv, "9")
    if ch:
        c.ok("subscribe", {"channel": ch})
    return c


def expect_binary_close(srv, c, what):
    code, reason = c.expect_close(3506)
    assert "binary data for a JSON client" in reason, reason
    srv.wait_event("binary_data_for_json_client", lambda e: e.get("what") == what)


def live_history_recovery(srv, other=None):
    """Binary data published by a Protobuf client on srv: a Protobuf
    subscriber (on other, if given) gets it live, in history and after a
    cut in recovery; a JSON subscriber is closed with 3506."""
    other = other or srv
    sub = pb_client(other)
    res = pb_subscribe(sub, 2, "h:bin")
    epoch = res[6][0].decode()
    js = json_client(other, "h:bin")
    pub = pb_client(srv, "2")
    pb_publish(pub, 2, "h:bin", BLOB)
    got = parse(sub.push()[4][0])
    assert got[4] == [BLOB], got[4][0][:40]
    assert got[6] == [1], got  # offset
    expect_binary_close(other, js, "publication")
    assert metric(other, "holdfast_binary_data_json_closes_total") >= 1
    # JSON data on the same channel stays JSON text for Protobuf subscribers
    pb_publish(pub, 3, "h:bin", b'{"j": 1}')
    assert parse(sub.push()[4][0])[4] == [b'{"j":1}']
    hist = pb_history(sub, 3, "h:bin")
    assert [h[4][0] for h in hist] == [BLOB, b'{"j":1}'], hist
    # the cut: the subscriber goes, two more binary publications, it comes
    # back and recovers them byte-identical
    sub.ws.close()
    pb_publish(pub, 4, "h:bin", b"\x01\x02")
    pb_publish(pub, 5, "h:bin", b"\xfe" * 3000)
    back = pb_client(other)
    res = pb_subscribe(back, 2, "h:bin", (epoch, 2))
    assert res.get(8) == [1], res  # recovered
    assert [parse(p)[4][0] for p in res[7]] == [b"\x01\x02", b"\xfe" * 3000], res
    # a JSON client recovering or reading that history is closed with 3506
    js = KIT.client(other, "9")
    js.send({"id": 7, "subscribe": {"channel": "h:bin", "recover": True, "recoverable": True, "epoch": epoch,
                                    "offset": 0}})
    expect_binary_close(other, js, "recovery")
    js = json_client(other, "h:bin")
    js.send({"id": 8, "history": {"channel": "h:bin", "limit": 10}})
    expect_binary_close(other, js, "history")
    for c in (back, pub):
        c.ws.close()


def test_binary_publish_live_history_recovery_memory():
    with Server(config=config()) as srv:
        live_history_recovery(srv)


def test_binary_publish_redis_engine_across_nodes():
    with RedisServer() as rd:
        eng = {"type": "redis", "redis": {"address": [rd.address], "prefix": "pbin",
                                          "connect_timeout": "300ms", "io_timeout": "1s"}}
        a = Server(config=config(eng))
        b = Server(config=config(eng))
        try:
            for s in (a, b):
                wait_until(lambda s=s: json.loads(http_call(s.port, "GET", "/health")[2])
                           .get("status") == "ok", 5, "engine up")
            live_history_recovery(a, b)
            # stored in Redis as binary: the API of the other node reads it back
            r = KIT.result(a, "history", {"channel": "h:bin", "limit": 1})
            assert base64.b64decode(r["publications"][0]["b64data"]) == BLOB
            epoch = r["epoch"]
            # a restarted node recovers them from Redis byte-identical
            a.stop()
            a = Server(config=config(eng))
            wait_until(lambda: json.loads(http_call(a.port, "GET", "/health")[2])
                       .get("status") == "ok", 5, "engine up")
            c = pb_client(a)
            res = pb_subscribe(c, 2, "h:bin", (epoch, 0))
            assert res.get(8) == [1], res
            assert [parse(p)[4][0] for p in res[7]] == \
                [BLOB, b'{"j":1}', b"\x01\x02", b"\xfe" * 3000], res
            c.ws.close()
        finally:
            a.stop()
            b.stop()


def test_server_api_b64data_round_trip():
    with Server(config=config()) as srv:
        sub = pb_client(srv)
        pb_subscribe(sub, 2, "h:api")
        b64 = base64.b64encode(BLOB).decode()
        KIT.result(srv, "publish", {"channel": "h:api", "b64data": b64})
        assert parse(sub.push()[4][0])[4] == [BLOB]
        # base64 of a JSON document stays JSON (as before): data, not b64data
        KIT.result(srv, "publish", {"channel": "h:api",
                                    "b64data": base64.b64encode(b'{"a": 1}').decode()})
        assert parse(sub.push()[4][0])[4] == [b'{"a":1}']
        pubs = KIT.result(srv, "history", {"channel": "h:api", "limit": 10})["publications"]
        assert pubs[0]["b64data"] == b64 and "data" not in pubs[0], pubs[0]
        assert pubs[1]["data"] == {"a": 1} and "b64data" not in pubs[1], pubs[1]
        for bad in ("AAE", "AA*=", "=AAA"):
            r = KIT.api(srv, "publish", {"channel": "h:api", "b64data": bad})
            assert r["error"]["code"] == 107 and "base64" in r["error"]["message"], r
        sub.ws.close()


def test_binary_data_refused_where_it_cannot_go():
    with Server(config=config()) as srv:
        c = pb_client(srv)
        # subscribe data is not stored or published: still 107
        c.send(fld(1, 2) + fld(5, fld(1, "h:x") + fld(8, b"\xff\x00")))
        err = parse(c.reply(2)[2][0])
        assert err[1] == [107], err
        srv.wait_event("command_rejected", lambda e: "only accepted in publish and rpc"
                       in e.get("reason", ""))
        # a JSON client cannot send binary data at all: b64data is not read
        js = json_client(srv)
        r = js.call("publish", {"channel": "h:x", "b64data": "AAEC"})
        assert r["error"]["code"] == 107, r
        c.ws.close()
        js.ws.close()


def test_c_sdk_publishes_binary_over_protobuf():
    # the C SDK (hfs_publish_bytes) over Protobuf: its own subscription gets
    # the bytes back (hfs_event.binary); a JSON SDK client of the channel is
    # closed with 3506 (terminal); the JSON client cannot publish bytes
    from test_sdk import Driver
    with Server(config=config()) as srv:
        url = "ws://127.0.0.1:%d/connection/websocket" % srv.port
        pb = Driver("cpb", url, "--token", KIT.token("sdk-pb"))
        js = Driver("c", url, "--token", KIT.token("sdk-js"))
        try:
            for d in (pb, js):
                d.cmd("sub h:sdk")
                d.cmd("connect")
                d.wait("subscribed", ch="h:sdk")
            blob = bytes(range(256)).hex() + "00ff"
            js.cmd("publishhex h:sdk " + blob)
            js.wait("bad_command", cmd="publishhex")
            pb.cmd("publishhex h:sdk " + blob)
            pb.wait("reply", op="publish", code=0)
            pb.wait("publication", ch="h:sdk", hex=blob, offset=1)
            js.wait("disconnected", code=3506)
            pb.cmd('publish h:sdk {"after":1}')
            pb.wait("publication", ch="h:sdk", data={"after": 1}, offset=2)
        finally:
            pb.stop()
            js.stop()


class Backend:
    """A minimal proxy backend on a loopback port: publish answers {} (the
    client's data is published), rpc answers binary data as b64data; the
    request bodies are kept by path."""

    def __init__(self):
        seen = self.seen = {}

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                seen.setdefault(self.path, []).append(body)
                res = {"b64data": base64.b64encode(b"\x00\x01rpc").decode()} \
                    if self.path == "/rpc" else {}
                out = json.dumps({"result": res}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_proxy_binary_encoding_gets_b64data_else_refused():
    be = Backend()
    try:
        for binary in (True, False):
            cfg = config(proxy={"proxies": [
                {"name": "pub", "endpoint": be.url + "publish", "timeout": "3s",
                 "binary_encoding": binary},
                {"name": "rpc", "endpoint": be.url + "rpc", "timeout": "3s",
                 "binary_encoding": binary}]})
            cfg["channel"]["namespaces"][0].update(publish_proxy_enabled=True,
                                                    publish_proxy_name="pub")
            cfg["rpc"] = {"without_namespace": {"proxy_enabled": True, "proxy_name": "rpc"}}
            with Server(config=cfg) as srv:
                sub = pb_client(srv)
                pb_subscribe(sub, 2, "h:px")
                c = pb_client(srv, "2")
                c.send(publish_cmd(3, "h:px", BLOB),
                       fld(1, 4) + fld(13, fld(1, b"\x00rpc") + fld(2, "m")))
                if binary:
                    assert 8 in c.reply(3)
                    body = be.seen["/publish"][-1]
                    assert base64.b64decode(body["b64data"]) == BLOB and "data" not in body, body
                    assert parse(sub.push()[4][0])[4] == [BLOB]
                    rpc = parse(c.reply(4)[13][0])
                    assert rpc[1] == [b"\x00\x01rpc"], rpc
                    assert base64.b64decode(be.seen["/rpc"][-1]["b64data"]) == b"\x00rpc"
                    # a JSON client whose rpc result is binary: 3506
                    js = json_client(srv)
                    js.send({"id": 5, "rpc": {"method": "m", "data": {}}})
                    expect_binary_close(srv, js, "rpc")
                else:
                    for cid in (3, 4):
                        err = parse(c.reply(cid)[2][0])
                        assert err[1] == [107] and b"binary_encoding" in err[2][0], err
                    srv.wait_event("command_rejected",
                                   lambda e: "binary_encoding" in e.get("reason", ""))
                c.ws.close()
                sub.ws.close()
    finally:
        be.close()


if __name__ == "__main__":
    import sys
    sys.exit(run_module("pbin", globals(), sys.argv[1] if len(sys.argv) > 1 else None))
