# SPDX-License-Identifier: MIT
"""Server HTTP API (POST /api/<method>) with raw HTTP requests: API key
checks (X-API-Key and Authorization: apikey), HTTP-level rejections
(401/405/404/400/411/413), per-call errors (107/102), publish and
broadcast delivery, server-side subscribe/unsubscribe pushes, disconnect
(default, custom code, whitelist), refresh expired, channels with a
pattern, info counts, batch, the internal API-only listener, and
http_api.insecure."""
import json
import os
import socket
import sys

from harness import WS, Server, connect, http_call, read_http_response, run_module, upgrade_request
from test_realtime import API_KEY, RT, client, config, token

KEY = {"X-API-Key": API_KEY}


def post(port, method, body, headers=KEY):
    return http_call(port, "POST", "/api/" + method, body, headers)


def call(srv, method, body):
    st, hdrs, b = post(srv.port, method, body)
    assert st == 200, (st, b)
    assert hdrs.get("content-type", "").startswith("application/json"), hdrs
    return json.loads(b)


def head_only(port, head):
    """Send a request head (no body) and read the response."""
    s = connect(port)
    try:
        s.sendall(head.encode())
        st, hdrs, body, _ = read_http_response(s)
    finally:
        s.close()
    return st, hdrs, body


# ---- HTTP level ------------------------------------------------------------------


def test_api_key_required():
    with Server(config=config()) as srv:
        body = {"channel": "news", "data": {}}
        st, _, _ = post(srv.port, "publish", body, headers={})
        assert st == 401, st
        st, _, _ = post(srv.port, "publish", body, headers={"X-API-Key": "wrong"})
        assert st == 401, st
        st, _, _ = post(srv.port, "publish", body, headers={"Authorization": "apikey wrong"})
        assert st == 401, st
        st, _, _ = post(srv.port, "publish", body, headers={"X-API-Key": API_KEY + "x"})
        assert st == 401, st
        ev = srv.wait_event("api_rejected")
        assert ev["status"] == 401 and ev["reason"], ev
        for h in ({"X-API-Key": API_KEY}, {"Authorization": "apikey " + API_KEY},
                  {"Authorization": "ApiKey " + API_KEY}):
            st, _, b = post(srv.port, "publish", body, headers=h)
            assert st == 200 and json.loads(b) == {"result": {}}, (h, st, b)
        assert API_KEY not in srv.log()


def test_http_rejections():
    with Server("--http_api.max_body=1024", config=config()) as srv:
        st, hdrs, _ = http_call(srv.port, "GET", "/api/publish", None, KEY)
        assert st == 405 and "POST" in hdrs.get("allow", ""), (st, hdrs)
        st, _, b = post(srv.port, "frobnicate", {})
        assert st == 404 and b"frobnicate" in b, (st, b)
        st, _, b = post(srv.port, "publish", '{"channel":')
        assert st == 400 and b.startswith(b"Bad Request"), (st, b)
        st, _, b = post(srv.port, "publish", "[1,2]")
        assert st == 400, (st, b)
        st, _, b = post(srv.port, "publish", b"")
        assert st == 400 and b.startswith(b"Bad Request"), (st, b)
        st, _, _ = head_only(srv.port, "POST /api/publish HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n\r\n" % API_KEY)
        assert st == 400, st  # no Content-Length at all
        st, _, _ = head_only(srv.port, "POST /api/publish HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n" % API_KEY)
        assert st == 411, st
        st, _, _ = head_only(srv.port, "POST /api/publish HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
                             "Content-Length: 1025\r\n\r\n" % API_KEY)
        assert st == 413, st
        # exactly at the limit is fine
        data = "x" * (1024 - len(json.dumps({"channel": "news", "data": ""})))
        body = json.dumps({"channel": "news", "data": data})
        assert len(body) == 1024
        st, _, b = post(srv.port, "publish", body)
        assert st == 200 and json.loads(b) == {"result": {}}, (st, b)
        reasons = {e["reason"] for e in srv.events("api_rejected")}
        assert {"bad_method", "unknown_method", "empty_body", "chunked_body", "body_too_large"} <= reasons, reasons


# ---- publish / broadcast -------------------------------------------------------------


def test_publish_errors_are_200_with_error_object():
    with Server(config=config()) as srv:
        r = call(srv, "publish", {"data": {"a": 1}})
        assert r["error"]["code"] == 107 and r["error"]["message"] and "result" not in r, r
        r = call(srv, "publish", {"channel": "", "data": {"a": 1}})
        assert r["error"]["code"] == 107, r
        r = call(srv, "publish", {"channel": "nosuchns:x", "data": {"a": 1}})
        assert r["error"]["code"] == 102, r
        r = call(srv, "publish", {"channel": "bad channel", "data": {"a": 1}})
        assert r["error"]["code"] == 107, r


def test_publish_reaches_subscriber():
    with Server(config=config()) as srv:
        c = client(srv, "42", subs=["news"])
        assert call(srv, "publish", {"channel": "news", "data": {"text": "hello"}}) == {"result": {}}
        assert c.push() == {"channel": "news", "pub": {"data": {"text": "hello"}}}
        c.close()


def test_broadcast_to_three_channels():
    with Server(config=config()) as srv:
        chans = ["news", "chat:1", "sport"]
        cs = [client(srv, str(i), subs=[ch]) for i, ch in enumerate(chans)]
        r = call(srv, "broadcast", {"channels": chans, "data": {"b": True}})
        assert r == {"result": {"responses": [{"result": {}}] * 3}}, r
        for c, ch in zip(cs, chans):
            assert c.push() == {"channel": ch, "pub": {"data": {"b": True}}}
            c.close()
        r = call(srv, "broadcast", {"channels": ["news", "nosuchns:x", ""], "data": 1})
        codes = [x.get("error", {}).get("code") for x in r["result"]["responses"]]
        assert codes == [None, 102, 107], r


# ---- targeted commands ----------------------------------------------------------------


def test_subscribe_api_pushes_subscribe_then_publications():
    with Server(config=config()) as srv:
        c = client(srv, "42")
        other = client(srv, "43")
        assert call(srv, "subscribe", {"user": "42", "channel": "chat:srv"}) == {"result": {}}
        assert c.push() == {"channel": "chat:srv", "subscribe": {}}
        assert call(srv, "publish", {"channel": "chat:srv", "data": {"n": 1}}) == {"result": {}}
        assert c.push() == {"channel": "chat:srv", "pub": {"data": {"n": 1}}}
        other.silent(0.2)
        chans = call(srv, "channels", {})["result"]["channels"]
        assert chans == {"chat:srv": {"num_clients": 1}}, chans
        c.close()
        other.close()


def test_unsubscribe_api_pushes_2000_and_stops_publications():
    with Server(config=config()) as srv:
        c = client(srv, "42", subs=["news"])
        witness = client(srv, "43", subs=["news"])
        assert call(srv, "unsubscribe", {"user": "42", "channel": "news"}) == {"result": {}}
        p = c.push()
        assert p == {"channel": "news", "unsubscribe": {"code": 2000, "reason": "server unsubscribe"}}, p
        assert call(srv, "publish", {"channel": "news", "data": {"n": 2}}) == {"result": {}}
        assert witness.push()["pub"] == {"data": {"n": 2}}
        c.silent(0.3)
        r = call(srv, "unsubscribe", {"user": "42", "channel": "nosuchns:x"})
        assert r["error"]["code"] == 102, r
        c.close()
        witness.close()


def test_disconnect_default_3503():
    with Server(config=config()) as srv:
        c = client(srv, "42")
        assert call(srv, "disconnect", {"user": "42"}) == {"result": {}}
        _, reason = c.expect_close(3503)
        assert reason == "force disconnect", reason
        c.close()
        ev = srv.wait_event("closed", lambda e: e["conn_id"] == c.cid)
        assert (ev["code"], ev["reason"], ev["who"]) == (3503, "force disconnect", "server"), ev


def test_disconnect_custom_code_and_reason_by_client_id():
    with Server(config=config()) as srv:
        a = client(srv, "42")
        b = client(srv, "42")
        r = call(srv, "disconnect", {"client": a.cid, "disconnect": {"code": 3011, "reason": "go away"}})
        assert r == {"result": {}}, r
        _, reason = a.expect_close(3011)
        assert reason == "go away", reason
        ev = srv.wait_event("closed", lambda e: e["conn_id"] == a.cid)
        assert (ev["code"], ev["reason"], ev["who"]) == (3011, "go away", "server"), ev
        assert b.ok("subscribe", {"channel": "news"}) == {}  # same user, other client
        a.close()
        b.close()


def test_disconnect_whitelist_keeps_listed_client():
    with Server(config=config()) as srv:
        keep = client(srv, "42")
        drop = client(srv, "42")
        r = call(srv, "disconnect", {"user": "42", "whitelist": [keep.cid]})
        assert r == {"result": {}}, r
        drop.expect_close(3503)
        keep.silent(0.2)
        assert keep.ok("subscribe", {"channel": "news"}) == {}
        keep.close()
        drop.close()


def test_targeted_calls_walk_clients_among_other_connections():
    # a worker's clients are walked through its connections (no links of
    # their own): echo connections between them are passed over, every
    # client of the user is reached, the others stay
    with Server(config=config()) as srv:
        e1 = WS(srv.port)
        a1 = client(srv, "7")
        e2 = WS(srv.port)
        b = client(srv, "8")
        a2 = client(srv, "7")
        e3 = WS(srv.port)
        assert call(srv, "subscribe", {"user": "8", "channel": "walk"}) == {"result": {}}
        assert call(srv, "disconnect", {"user": "7"}) == {"result": {}}
        a1.expect_close(3503)
        a2.expect_close(3503)
        assert b.push() == {"channel": "walk", "subscribe": {}}
        assert call(srv, "publish", {"channel": "walk", "data": {"n": 1}}) == {"result": {}}
        assert b.push() == {"channel": "walk", "pub": {"data": {"n": 1}}}
        for e in (e1, e2, e3):
            e.send(0x1, b"still here")
            assert e.recv_message() == (0x1, b"still here")
            e.close()
        for c in (a1, a2, b):
            c.close()


def test_refresh_api_expired_closes_3005():
    with Server(config=config()) as srv:
        c = client(srv, "42")
        assert call(srv, "refresh", {"user": "42", "expired": True}) == {"result": {}}
        c.expect_close(3005)
        c.close()


def test_targeted_calls_need_user_or_client():
    with Server(config=config()) as srv:
        for m, body in (("subscribe", {"channel": "news"}), ("unsubscribe", {"channel": "news"}),
                        ("disconnect", {}), ("refresh", {"expired": True})):
            r = call(srv, m, body)
            assert r["error"]["code"] == 107, (m, r)


# ---- channels / info / batch ----------------------------------------------------------------


def test_channels_and_info():
    with Server(config=config()) as srv:
        a = client(srv, "1", subs=["chat:1", "news"])
        b = client(srv, "2", subs=["chat:1", "chat:2"])
        r = call(srv, "channels", {})
        assert r == {"result": {"channels": {"chat:1": {"num_clients": 2}, "chat:2": {"num_clients": 1},
                                             "news": {"num_clients": 1}}}}, r
        r = call(srv, "channels", {"pattern": "chat:*"})
        assert r == {"result": {"channels": {"chat:1": {"num_clients": 2}, "chat:2": {"num_clients": 1}}}}, r
        node = call(srv, "info", {})["result"]["nodes"][0]
        assert (node["num_clients"], node["num_channels"], node["num_subs"]) == (2, 3, 4), node
        assert isinstance(node["uptime"], int) and node["version"], node
        a.close()
        b.close()


def test_batch():
    with Server(config=config()) as srv:
        c = client(srv, "42", subs=["news"])
        r = call(srv, "batch", {"commands": [
            {"publish": {"channel": "news", "data": {"n": 1}}},
            {"publish": {"channel": "nosuchns:x", "data": {"n": 2}}},
            {"broadcast": {"channels": ["news"], "data": {"n": 3}}}]})
        assert "result" not in r, r
        assert r["replies"][0] == {"publish": {}}, r
        assert r["replies"][1]["error"]["code"] == 102, r
        assert r["replies"][2] == {"broadcast": {"responses": [{"result": {}}]}}, r
        assert [p["data"]["n"] for p in c.pubs("news", 2)] == [1, 3]
        c.close()


# ---- listeners and insecure mode --------------------------------------------------------------


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_internal_port_serves_api_only():
    p = free_port()
    with Server("--http_server.internal_port=%d" % p, config=config()) as srv:
        ev = srv.wait_event("listening", lambda e: e.get("internal") is True)
        assert ev["port"] == p, ev
        st, _, _ = post(srv.port, "info", {})
        assert st == 404, st
        st, _, b = post(p, "info", {})
        assert st == 200 and json.loads(b)["result"]["nodes"][0]["num_clients"] == 0, (st, b)
        s = connect(p)
        s.sendall(upgrade_request("/connection/websocket")[0])
        st, _, _, _ = read_http_response(s)
        s.close()
        assert st == 404, st
        c = RT(srv.port)  # the real-time endpoint stays on the main port
        c.connect(token())
        c.close()


def test_insecure_api_needs_no_key():
    with Server("--http_api.insecure=true", config=config()) as srv:
        st, _, b = post(srv.port, "publish", {"channel": "news", "data": 1}, headers={})
        assert st == 200 and json.loads(b) == {"result": {}}, (st, b)


# ---- keep-alive --------------------------------------------------------------------


def _api_request(method, body, extra=""):
    b = json.dumps(body).encode()
    return ("POST /api/%s HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n%s"
            "Content-Length: %d\r\n\r\n" % (method, API_KEY, extra, len(b))).encode() + b


def test_keep_alive_sequential_and_pipelined_requests():
    # backends publish over one kept-alive connection: sequential requests,
    # then two pipelined in one write, all answered in order
    with Server(config=config()) as srv:
        sub = client(srv, "42", subs=("news",))
        s = connect(srv.port)
        for n in range(3):
            s.sendall(_api_request("publish", {"channel": "news", "data": {"n": n}}))
            st, hdrs, body, rest = read_http_response(s)
            assert st == 200 and json.loads(body) == {"result": {}}, (st, body)
            assert hdrs.get("connection") == "keep-alive" and rest == b"", (hdrs, rest)
        s.sendall(_api_request("publish", {"channel": "news", "data": {"n": 3}}) +
                  _api_request("info", {}))
        st, hdrs, body, rest = read_http_response(s)
        assert st == 200 and json.loads(body) == {"result": {}}, body
        if rest:  # the second answer may have arrived in the same read
            s2 = rest
            while b"\r\n\r\n" not in s2:
                s2 += s.recv(65536)
            head, _, tail = s2.partition(b"\r\n\r\n")
            n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
            while len(tail) < n:
                tail += s.recv(65536)
            info = json.loads(tail[:n])
        else:
            st, hdrs, body, rest = read_http_response(s)
            info = json.loads(body)
        assert info["result"]["nodes"][0]["num_clients"] == 1, info
        assert [p["data"]["n"] for p in sub.pubs("news", 4)] == [0, 1, 2, 3]
        s.close()
        sub.close()


def test_connection_close_request_is_closed_after_the_answer():
    with Server(config=config()) as srv:
        s = connect(srv.port)
        s.sendall(_api_request("info", {}, "Connection: close\r\n"))
        st, hdrs, body, rest = read_http_response(s)
        assert st == 200 and hdrs.get("connection") == "close", hdrs
        s.settimeout(3)
        assert s.recv(100) == b"", "server did not close after Connection: close"
        s.close()


def test_idle_kept_alive_connection_closed_quietly():
    with Server("--websocket.handshake_timeout=400ms", config=config()) as srv:
        s = connect(srv.port)
        s.sendall(_api_request("info", {}))
        st, hdrs, body, rest = read_http_response(s)
        assert st == 200 and hdrs.get("connection") == "keep-alive", hdrs
        s.settimeout(3)
        assert s.recv(100) == b"", "idle keep-alive connection not closed"
        s.close()
        assert not srv.events("handshake_timeout"), srv.events("handshake_timeout")


if __name__ == "__main__":
    sys.exit(run_module("api", globals(), only=os.environ.get("ONLY")))
