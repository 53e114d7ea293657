# SPDX-License-Identifier: MIT
"""Real-time layer over /connection/websocket (Centrifugo client protocol v2,
JSON), driven with the raw WebSocket client: batching and reply order, the
connect result, HS256 tokens (info, exp, expired, bad signature, alg none,
anonymous), protocol violations (3501 and friends), subscribe errors
(102/103/105/106/107), user-limited and private channels with subscription
tokens, client publish permissions, payload minification, unsubscribe
ordering, fan-out across workers, refresh, connection expiry, application
ping/pong, stale connections, rpc/send/binary, tokens kept out of the log,
and memory/cleanup over 2,000 connect/subscribe/drop cycles."""
import json
import os
import re
import socket
import sys
import time

from harness import (RT, WS, Server, http_call, jwt_hs, rt_recv, rt_send, run_module,
                     wait_until)

SECRET = "rt-secret-0123456789"
API_KEY = "rt-api-key"
PATH = "/connection/websocket"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def config(**client):
    """Token secret, API key and channel rules shared by the tests:
    no namespace: any user subscribes and publishes, user-limited channels;
    chat: subscribe for users, publish for subscribers only; locked: nothing."""
    c = {"client": {"token": {"hmac_secret_key": SECRET}},
         "http_api": {"key": API_KEY},
         "channel": {
             "without_namespace": {"allow_subscribe_for_client": True,
                                   "allow_publish_for_client": True,
                                   "allow_user_limited_channels": True},
             "namespaces": [
                 {"name": "chat", "allow_subscribe_for_client": True,
                  "allow_publish_for_subscriber": True},
                 {"name": "locked"},
             ]}}
    c["client"].update(client)
    return c


def token(sub="42", secret=SECRET, alg="HS256", **claims):
    claims = dict(claims)
    claims["sub"] = sub
    return jwt_hs(claims, secret, alg=alg)


def client(srv, user="42", subs=(), **claims):
    c = RT(srv.port)
    c.connect(token(user, **claims) if user is not None else None)
    for ch in subs:
        assert c.ok("subscribe", {"channel": ch}) == {}, ch
    return c


def api(srv, method, body):
    st, _, b = http_call(srv.port, "POST", "/api/" + method, body, {"X-API-Key": API_KEY})
    assert st == 200, (st, b)
    return json.loads(b)


def expect_violation(srv, *frames, code=3501, connect=True):
    """Open a client (connected unless connect=False), send each frame as it
    is (str) and expect the close code with a non-empty reason."""
    c = RT(srv.port)
    if connect:
        c.connect(token())
    for f in frames:
        c.ws.send(0x1, f.encode() if isinstance(f, str) else f)
    _, reason = c.expect_close(code)
    c.close()
    return reason


# ---- connect --------------------------------------------------------------------


def test_connect_batched_with_subscribes_replies_in_one_message():
    with Server(config=config()) as srv:
        c = RT(srv.port)
        c.send({"connect": {"token": token(), "name": "js"}, "id": 1},
               {"subscribe": {"channel": "news", "flag": 1}, "id": 2},
               {"subscribe": {"channel": "chat:1", "flag": 1}, "id": 3})
        objs, text = rt_recv(c.ws, raw=True)
        assert len(objs) == 3 and text.count("\n") == 2 and "\n\n" not in text, text
        assert [o.get("id") for o in objs] == [1, 2, 3], objs
        res = objs[0]["connect"]
        assert set(objs[0]) == {"id", "connect"}, objs[0]
        assert objs[1] == {"id": 2, "subscribe": {}}, objs[1]
        assert objs[2] == {"id": 3, "subscribe": {}}, objs[2]
        assert UUID4.match(res["client"]), res
        assert res["client"] == c.cid, (res, c.cid)
        assert isinstance(res["version"], str) and res["version"], res
        assert res["ping"] == 25 and res["pong"] is True, res
        assert "expires" not in res and "ttl" not in res, res
        ev = srv.wait_event("client_connected", lambda e: e["conn_id"] == c.cid)
        assert ev["user"] == "42" and ev["expire_at"] == 0, ev
        c.close()


def test_info_claim_becomes_conn_info_of_publications():
    with Server(config=config()) as srv:
        sub = client(srv, "7", subs=["news"])
        pub = client(srv, "42", subs=["news"], info={"name": "Alex", "n": [1, 2]})
        assert pub.ok("publish", {"channel": "news", "data": {"text": "hi"}}) == {}
        want = {"data": {"text": "hi"},
                "info": {"user": "42", "client": pub.cid, "conn_info": {"name": "Alex", "n": [1, 2]}}}
        assert sub.pubs("news", 1)[0] == want
        assert pub.pubs("news", 1)[0] == want  # the publisher is subscribed too
        sub.close()
        pub.close()


def test_token_exp_gives_expires_and_ttl():
    with Server(config=config()) as srv:
        c = RT(srv.port)
        exp = int(time.time()) + 100
        res = c.connect(token(exp=exp))
        assert res["expires"] is True and 98 <= res["ttl"] <= 101, res
        ev = srv.wait_event("client_connected", lambda e: e["conn_id"] == c.cid)
        assert ev["expire_at"] == exp, ev
        c.close()


def test_expired_token_gets_109_then_any_command_3501():
    with Server(config=config()) as srv:
        c = RT(srv.port)
        r = c.call("connect", {"token": token(exp=int(time.time()) - 10)})
        assert r["error"]["code"] == 109 and "connect" not in r, r
        c.send({"id": 2, "subscribe": {"channel": "news"}})
        c.expect_close(3501)
        c.close()


def test_invalid_signature_closes_3500():
    with Server(config=config()) as srv:
        c = RT(srv.port)
        c.send({"id": 1, "connect": {"token": token(secret="not-the-secret")}})
        _, reason = c.expect_close(3500)
        assert "token" in reason, reason
        ev = srv.wait_event("connect_rejected", lambda e: e["conn_id"] == c.cid)
        assert ev["reason"], ev
        c.close()


def test_alg_none_token_closes_3500():
    with Server(config=config()) as srv:
        c = RT(srv.port)
        c.send({"id": 1, "connect": {"token": token(alg="none")}})
        c.expect_close(3500)
        c.close()


def test_no_token_without_anonymous_closes_3501():
    with Server(config=config()) as srv:
        c = RT(srv.port)
        c.send({"id": 1, "connect": {}})
        c.expect_close(3501)
        ev = srv.wait_event("connect_rejected", lambda e: e["conn_id"] == c.cid)
        assert ev["reason"], ev
        c.close()


def test_anonymous_connect_allowed_by_flag():
    with Server("--client.allow_anonymous_connect_without_token=true", config=config()) as srv:
        c = RT(srv.port)
        res = c.connect()
        assert UUID4.match(res["client"]) and res["pong"] is True, res
        ev = srv.wait_event("client_connected", lambda e: e["conn_id"] == c.cid)
        assert ev["user"] == "", ev
        c.close()


# ---- protocol violations ----------------------------------------------------------


def test_protocol_violations_close_3501():
    with Server(config=config()) as srv:
        sub = json.dumps({"id": 2, "subscribe": {"channel": "news"}})
        # before connect
        expect_violation(srv, sub, connect=False)
        # second connect
        expect_violation(srv, json.dumps({"id": 2, "connect": {"token": token()}}))
        # invalid JSON, JSON that is not an object
        expect_violation(srv, '{"id":2,"subscribe":{"channel":"news"}')
        expect_violation(srv, '[{"id":2,"subscribe":{"channel":"news"}}]')
        expect_violation(srv, '"connect"')
        # empty frame, frame of newlines only
        expect_violation(srv, "")
        expect_violation(srv, "\n")
        # unknown command with an id
        expect_violation(srv, '{"id":2,"frobnicate":{}}')
        # id not a uint32
        expect_violation(srv, '{"id":4294967296,"subscribe":{"channel":"news"}}')
        expect_violation(srv, '{"id":"2","subscribe":{"channel":"news"}}')
        expect_violation(srv, '{"id":-1,"subscribe":{"channel":"news"}}')
        # subscribe without a channel / with an empty one
        expect_violation(srv, '{"id":2,"subscribe":{}}')
        expect_violation(srv, '{"id":2,"subscribe":{"channel":""}}')


def test_largest_uint32_id_is_echoed():
    with Server(config=config()) as srv:
        c = client(srv)
        c.send('{"id":4294967295,"subscribe":{"channel":"news"}}')
        assert rt_recv(c.ws) == [{"id": 4294967295, "subscribe": {}}]
        c.close()


def test_stray_pong_is_ignored():
    with Server(config=config()) as srv:
        c = client(srv)
        c.send("{}")
        c.silent(0.2)
        assert c.ok("subscribe", {"channel": "news"}) == {}
        c.close()


# ---- subscribe ----------------------------------------------------------------------


def test_subscribe_channel_name_errors():
    with Server(config=config()) as srv:
        c = client(srv)
        assert c.call("subscribe", {"channel": "a" * 256})["error"]["code"] == 107
        assert c.ok("subscribe", {"channel": "b" * 255}) == {}  # channel.max_length = 255
        assert c.call("subscribe", {"channel": "has space"})["error"]["code"] == 107
        assert c.call("subscribe", {"channel": "nosuchns:x"})["error"]["code"] == 102
        assert c.ok("subscribe", {"channel": "chat:ok"}) == {}  # still open
        c.close()


def test_subscribe_twice_gets_105_and_connection_stays():
    with Server(config=config()) as srv:
        c = client(srv, subs=["news"])
        r = c.call("subscribe", {"channel": "news"})
        assert r["error"]["code"] == 105 and "subscribe" not in r, r
        assert c.ok("subscribe", {"channel": "other"}) == {}
        c.close()


def test_channel_limit_third_gets_106():
    with Server("--client.channel_limit=2", config=config()) as srv:
        c = client(srv, subs=["a", "b"])
        assert c.call("subscribe", {"channel": "c"})["error"]["code"] == 106
        assert c.ok("unsubscribe", {"channel": "a"}) == {}
        assert c.ok("subscribe", {"channel": "c"}) == {}  # a slot was freed
        c.close()


def test_permission_denied_103_logged_and_connection_stays():
    with Server(config=config()) as srv:
        c = client(srv, "42")
        r = c.call("subscribe", {"channel": "locked:x"})
        assert r["error"]["code"] == 103, r
        ev = srv.wait_event("permission_denied", lambda e: e.get("conn_id") == c.cid)
        assert ev["channel"] == "locked:x" and ev["user"] == "42", ev
        assert ev["action"] == "subscribe" and ev["code"] == 103, ev
        assert c.ok("subscribe", {"channel": "news"}) == {}
        c.close()


def test_user_limited_channel():
    with Server(config=config()) as srv:
        u42 = client(srv, "42")
        u43 = client(srv, "43")
        assert u42.ok("subscribe", {"channel": "chat#42"}) == {}
        assert u43.call("subscribe", {"channel": "chat#42"})["error"]["code"] == 103
        assert u43.ok("subscribe", {"channel": "chat#42,43"}) == {}
        assert u42.ok("subscribe", {"channel": "chat#42,43"}) == {}
        u42.close()
        u43.close()


def test_private_channel_needs_subscription_token():
    with Server(config=config()) as srv:
        c = client(srv, "42")
        assert c.call("subscribe", {"channel": "$private"})["error"]["code"] == 103
        st = jwt_hs({"sub": "42", "channel": "$private"}, SECRET)
        assert c.ok("subscribe", {"channel": "$private", "token": st}) == {}
        c.close()
        # a subscription token for another channel: invalid token
        c = client(srv, "42")
        st = jwt_hs({"sub": "42", "channel": "$other"}, SECRET)
        c.send({"id": 2, "subscribe": {"channel": "$private", "token": st}})
        c.expect_close(3500)
        c.close()


def test_publish_for_subscriber_only():
    with Server(config=config()) as srv:
        c = client(srv, "42")
        r = c.call("publish", {"channel": "chat:room", "data": {"n": 1}})
        assert r["error"]["code"] == 103, r
        ev = srv.wait_event("permission_denied", lambda e: e.get("conn_id") == c.cid)
        assert ev["action"] == "publish" and ev["channel"] == "chat:room", ev
        assert c.ok("subscribe", {"channel": "chat:room"}) == {}
        assert c.ok("publish", {"channel": "chat:room", "data": {"n": 2}}) == {}
        assert c.pubs("chat:room", 1)[0]["data"] == {"n": 2}
        assert c.call("publish", {"channel": "locked:x", "data": 1})["error"]["code"] == 103
        c.close()


def test_oversized_message_closes_1009():
    with Server("--websocket.message_size_limit=1024", config=config()) as srv:
        c = client(srv)
        c.send({"id": 2, "publish": {"channel": "news", "data": "x" * 2000}})
        c.expect_close(1009)
        c.close()


def test_publication_payload_is_minified():
    with Server(config=config()) as srv:
        c = client(srv, subs=["news"])
        # client publish: the string holds an escaped newline
        assert c.ok("publish", {"channel": "news", "data": {"s": "line1\nline2"}}) == {}
        assert c.pubs("news", 1)[0]["data"] == {"s": "line1\nline2"}
        # server API publish with a pretty-printed body (raw newlines between tokens)
        data = {"text": "a\nb", "list": [1, 2, {"k": "v"}]}
        body = json.dumps({"channel": "news", "data": data}, indent=2)
        assert "\n" in body
        assert api(srv, "publish", json.loads(body)) == {"result": {}}
        st, _, b = http_call(srv.port, "POST", "/api/publish", body, {"X-API-Key": API_KEY})
        assert st == 200 and json.loads(b) == {"result": {}}, (st, b)
        for _ in range(2):
            objs, text = rt_recv(c.ws, raw=True)
            assert "\n" not in text, text
            assert objs == [{"push": {"channel": "news", "pub": {"data": data}}}], objs
        c.close()


def test_subscribe_reply_precedes_pushes_of_its_channel():
    # subscribe and publish batched in one frame: the publication must not
    # overtake the subscribe reply (protocol section 3.2 / 11.1 item 9)
    with Server(config=config()) as srv:
        c = client(srv)
        c.send({"id": 2, "subscribe": {"channel": "news"}},
               {"id": 3, "publish": {"channel": "news", "data": {"n": 1}}})
        seen = []
        while len(seen) < 3:
            seen.extend(rt_recv(c.ws))
        kinds = ["push" if "push" in o else o.get("id") for o in seen]
        assert kinds.index(2) < kinds.index("push"), seen
        assert sorted(map(str, kinds)) == ["2", "3", "push"], seen
        c.close()


def test_subprotocol_centrifuge_json_selected():
    with Server(config=config()) as srv:
        ws = WS(srv.port, PATH, headers={"Sec-WebSocket-Protocol": "centrifuge-json"})
        assert ws.headers.get("sec-websocket-protocol") == "centrifuge-json", ws.headers
        rt_send(ws, {"id": 1, "connect": {"token": token()}})
        assert "connect" in rt_recv(ws)[0]
        ws.close()


def test_no_push_after_unsubscribe_reply():
    with Server(config=config()) as srv:
        a = client(srv, "1", subs=["news"])
        witness = client(srv, "2", subs=["news"])
        pub = client(srv, "3")
        assert a.ok("unsubscribe", {"channel": "news"}) == {}
        assert a.ok("unsubscribe", {"channel": "never-subscribed"}) == {}
        for n in range(5):
            assert pub.ok("publish", {"channel": "news", "data": {"n": n}}) == {}
        assert [p["data"]["n"] for p in witness.pubs("news", 5)] == list(range(5))
        a.silent(0.3)
        a.close()
        witness.close()
        pub.close()


def test_fan_out_across_workers_in_order():
    with Server(config=config(), workers=2) as srv:
        subs = [client(srv, str(i), subs=["room"]) for i in range(6)]
        pub = client(srv, "pub")
        n = 40
        pub.send(*[{"id": 100 + i, "publish": {"channel": "room", "data": {"n": i}}} for i in range(n)])
        for i in range(n):
            assert pub.reply(100 + i) == {"id": 100 + i, "publish": {}}
        for i in range(n):  # and 40 more through the server API (any worker)
            assert api(srv, "publish", {"channel": "room", "data": {"n": n + i}}) == {"result": {}}
        for s in subs:
            got = [p["data"]["n"] for p in s.pubs("room", 2 * n)]
            assert got == list(range(2 * n)), (s.cid, got)
            s.silent(0.05)
        for s in subs + [pub]:
            s.close()


def test_info_counts_a_channel_once_across_workers():
    # 8 subscribers: the chance that SO_REUSEPORT puts all on one worker
    # (and this test cannot see a per-worker count) is 2^-7.
    with Server(config=config(), workers=2) as srv:
        subs = [client(srv, str(i), subs=["room"]) for i in range(8)]
        info = api(srv, "info", {})["result"]["nodes"][0]
        assert (info["num_clients"], info["num_channels"], info["num_subs"]) == (8, 1, 8), info
        chans = api(srv, "channels", {})["result"]["channels"]
        assert chans == {"room": {"num_clients": 8}}, chans
        for s in subs:
            s.close()


# ---- refresh and expiry ----------------------------------------------------------------


def test_refresh_with_valid_token():
    with Server(config=config()) as srv:
        c = RT(srv.port)
        c.connect(token(exp=int(time.time()) + 100))
        res = c.ok("refresh", {"token": token(exp=int(time.time()) + 200)})
        assert res["expires"] is True and 198 <= res["ttl"] <= 201, res
        assert res.get("client", c.cid) == c.cid, res
        # a token without exp: the connection stops expiring
        res = c.ok("refresh", {"token": token()})
        assert not res.get("expires") and not res.get("ttl"), res
        c.close()


def test_refresh_with_token_of_another_user_closes_3500():
    with Server(config=config()) as srv:
        c = client(srv, "42", exp=int(time.time()) + 100)
        c.send({"id": 9, "refresh": {"token": token("43", exp=int(time.time()) + 200)}})
        c.expect_close(3500)
        c.close()


def test_refresh_with_expired_token_closes_3005():
    with Server(config=config()) as srv:
        c = client(srv, "42", exp=int(time.time()) + 100)
        c.send({"id": 9, "refresh": {"token": token("42", exp=int(time.time()) - 5)}})
        c.expect_close(3005)
        c.close()


def test_connection_expiry_without_refresh_closes_3005():
    with Server("--client.expired_close_delay=500ms", config=config()) as srv:
        # start between 0.05 and 0.5 s into a second, at least 0.5 s before
        # exp (the server reads the precise wall clock, as time.time() does)
        while not 0.05 <= time.time() % 1 <= 0.5:
            time.sleep(0.01)
        exp = int(time.time()) + 1
        c = RT(srv.port)
        res = c.connect(token(exp=exp))
        assert res["expires"] is True and res["ttl"] <= 1, res
        c.expect_close(3005)
        t = time.time()
        # the server may round the remaining time up to a whole second
        assert exp + 0.5 - 0.06 <= t <= exp + 0.5 + 1.3, (t, exp)
        c.close()


def test_subscription_token_expiry_and_sub_refresh():
    # a subscription token with exp: the result says expires/ttl; sub_refresh
    # with a new token extends it; an unrefreshed subscription ends with an
    # unsubscribe push 2501 after exp + client.expired_sub_close_delay
    with Server("--client.expired_sub_close_delay=300ms", config=config()) as srv:
        c = client(srv, "42")
        now = int(time.time())
        st = jwt_hs({"sub": "42", "channel": "$room", "exp": now + 100}, SECRET)
        res = c.ok("subscribe", {"channel": "$room", "token": st})
        assert res["expires"] is True and 98 <= res["ttl"] <= 101, res
        st2 = jwt_hs({"sub": "42", "channel": "$room", "exp": now + 200}, SECRET)
        res = c.ok("sub_refresh", {"channel": "$room", "token": st2})
        assert res["expires"] is True and 198 <= res["ttl"] <= 201, res
        # not subscribed: 103; empty token: 107; another channel's token: 3500
        assert c.call("sub_refresh", {"channel": "$nope", "token": st2})["error"]["code"] == 103
        assert c.call("sub_refresh", {"channel": "$room", "token": ""})["error"]["code"] == 107
        # a token that expires in a moment: the subscription ends with 2501
        while not 0.05 <= time.time() % 1 <= 0.5:
            time.sleep(0.01)
        exp = int(time.time()) + 1
        st3 = jwt_hs({"sub": "42", "channel": "$soon", "exp": exp}, SECRET)
        assert c.ok("subscribe", {"channel": "$soon", "token": st3})["expires"] is True
        push = c.push(lambda p: p.get("channel") == "$soon" and "unsubscribe" in p, timeout=4)
        assert push["unsubscribe"]["code"] == 2501 and push["unsubscribe"]["reason"], push
        assert time.time() >= exp + 0.25, (time.time(), exp)
        # still subscribed to $room (refreshed), and the connection lives
        api(srv, "publish", {"channel": "$room", "data": {"n": 1}})
        assert c.pubs("$room", 1)[0]["data"] == {"n": 1}
        st4 = jwt_hs({"sub": "42", "channel": "$other", "exp": now + 200}, SECRET)
        c.send({"id": 99, "sub_refresh": {"channel": "$room", "token": st4}})
        c.expect_close(3500)
        c.close()


# ---- application ping, stale, unsupported commands ----------------------------------------


def test_app_ping_answered_keeps_connection():
    with Server("--client.ping_interval=1s", "--client.pong_timeout=400ms", config=config()) as srv:
        c = RT(srv.port)
        t0 = time.time()
        res = c.connect(token())
        assert res["ping"] == 1 and res["pong"] is True, res
        for k in range(2):
            op, data = c.ws.recv_message(1.3)
            assert (op, data) == (0x1, b"{}"), data
            dt = time.time() - t0
            assert dt <= 1.25, dt  # first within the interval, then every interval
            t0 = time.time()
            c.send("{}")
        assert c.ok("subscribe", {"channel": "news"}) == {}
        c.close()


def test_app_ping_unanswered_closes_3012():
    with Server("--client.ping_interval=1s", "--client.pong_timeout=400ms", config=config()) as srv:
        c = RT(srv.port)
        c.connect(token())
        assert c.ws.recv_message(1.3) == (0x1, b"{}")
        t0 = time.time()
        _, reason = c.expect_close(3012)
        dt = time.time() - t0
        assert 0.3 <= dt <= 1.0, dt
        assert "pong" in reason, reason
        # other commands do not count as a pong
        c = RT(srv.port)
        c.connect(token())
        assert c.ws.recv_message(1.3) == (0x1, b"{}")
        assert c.ok("subscribe", {"channel": "news"}) == {}
        c.expect_close(3012)
        c.close()


def _pings(c, seconds, ws_pong=True, app_pong=True):
    """Read raw frames for about `seconds`: count WebSocket pings and
    application pings ({}), answering each kind when asked to. Returns
    (ws_pings, app_pings, close) where close is (code, reason) or None."""
    ws_n = app_n = 0
    end = time.time() + seconds
    while time.time() < end:
        try:
            _, op, p = c.ws.recv_frame(max(0.05, end - time.time()))
        except (TimeoutError, socket.timeout):
            break
        if op == 0x9:
            ws_n += 1
            if ws_pong:
                c.ws.send(0xA, p)
        elif op == 0x1 and p == b"{}":
            app_n += 1
            if app_pong:
                c.send("{}")
        elif op == 0x8:
            code = int.from_bytes(p[:2], "big") if len(p) >= 2 else None
            return ws_n, app_n, (code, p[2:].decode())
    return ws_n, app_n, None


def test_ws_and_app_deadlines_share_the_connection_timer():
    # one timer per connection carries the engine's WebSocket ping/pong and
    # the client's own deadlines (application ping/pong, stale close): each
    # fires on its own schedule whichever of them is earlier
    with Server("--websocket.ping_interval=600ms", "--websocket.pong_timeout=300ms",
                "--client.ping_interval=1s", "--client.pong_timeout=400ms",
                "--client.stale_close_delay=1500ms", config=config()) as srv:
        c = RT(srv.port)
        c.connect(token())
        ws_n, app_n, closed = _pings(c, 3.5)
        assert closed is None, closed
        assert ws_n >= 3 and app_n >= 2, (ws_n, app_n)
        # application pongs stop, WebSocket pongs go on: the client closes it
        ws_n, app_n, closed = _pings(c, 5, app_pong=False)
        assert closed is not None and closed[0] == 3012 and closed[1] == "no pong", closed
        assert ws_n >= 1, ws_n
        c.ws.close()
        # WebSocket pongs stop, application pongs go on: the engine closes it
        c = RT(srv.port)
        c.connect(token())
        ws_n, app_n, closed = _pings(c, 5, ws_pong=False)
        assert closed is not None and closed[0] == 3012, closed
        assert closed[1] == "no pong: heartbeat timeout", closed
        c.ws.close()
        # no connect command: the stale close comes after WebSocket pings
        c = RT(srv.port)
        t0 = time.time()
        ws_n, app_n, closed = _pings(c, 5)
        assert closed is not None and closed[0] == 3502, closed
        assert ws_n >= 1 and app_n == 0 and time.time() - t0 >= 1.3, (ws_n, app_n)
        c.ws.close()


def test_stale_connection_without_connect_closes_3502():
    with Server("--client.stale_close_delay=300ms", config=config()) as srv:
        c = RT(srv.port)
        t0 = time.time()
        c.expect_close(3502)
        dt = time.time() - t0
        assert 0.25 <= dt <= 1.0, dt
        c.close()
        # a connected client is not stale
        c = client(srv)
        c.silent(0.5)
        c.close()


def test_rpc_not_available_108_connection_stays():
    with Server(config=config()) as srv:
        c = client(srv)
        r = c.call("rpc", {"method": "sum", "data": {"a": 1}})
        assert r["error"]["code"] == 108 and "rpc" not in r, r
        for key in ("presence", "presence_stats", "history"):
            assert c.call(key, {"channel": "news"})["error"]["code"] == 108, key
        assert c.ok("subscribe", {"channel": "news"}) == {}
        c.close()


def test_send_closes_3508():
    with Server(config=config()) as srv:
        c = client(srv)
        c.send({"send": {"data": {"x": 1}}})
        c.expect_close(3508)
        c.close()


def test_binary_frame_closes_3506():
    with Server(config=config()) as srv:
        c = client(srv)
        c.ws.send(0x2, json.dumps({"id": 2, "subscribe": {"channel": "news"}}).encode())
        c.expect_close(3506)
        c.close()


def test_drain_closes_realtime_clients_3001():
    import signal
    with Server("--shutdown.timeout=3s", config=config()) as srv:
        c = client(srv, subs=["news"])
        srv.proc.send_signal(signal.SIGTERM)
        _, reason = c.expect_close(3001)
        assert reason == "shutdown", reason
        c.close()
        srv.proc.wait(5)


def test_tokens_never_logged():
    with Server(config=config()) as srv:
        t1 = token(exp=int(time.time()) + 100, info={"secret": "x"})
        t2 = token(exp=int(time.time()) + 200)
        st = jwt_hs({"sub": "42", "channel": "$p"}, SECRET)
        bad = token(secret="wrong-secret")
        c = RT(srv.port)
        c.connect(t1)
        c.ok("refresh", {"token": t2})
        c.ok("subscribe", {"channel": "$p", "token": st})
        c.close()
        c = RT(srv.port)
        c.send({"id": 1, "connect": {"token": bad}})
        c.expect_close(3500)
        c.close()
        srv.wait_event("connect_rejected")
        srv.wait_event("closed", lambda e: e["conn_id"] == c.cid)
        log = srv.log()
        for t in (t1, t2, st, bad):
            for part in [t] + t.split("."):
                assert part not in log, "token part %r in the log" % part[:20]
        assert SECRET not in log


# ---- cleanup and memory ----------------------------------------------------------------------


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


RSS_BOUND_KIB = 4 * 1024  # allowed VmRSS growth between cycle 500 and cycle 2000


def test_connect_subscribe_drop_cycles_release_everything():
    # ASan's quarantine keeps freed blocks for a while (256 MB by default):
    # turn it off here so RSS reflects live memory.
    asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    with Server(config=config(), env={"ASAN_OPTIONS": asan + ":quarantine_size_mb=0"}) as srv:
        frame = "\n".join(json.dumps(c) for c in (
            {"id": 1, "connect": {"token": token()}},
            {"id": 2, "subscribe": {"channel": "news"}},
            {"id": 3, "subscribe": {"channel": "chat:1"}}))

        def idle():
            info = api(srv, "info", {})["result"]["nodes"][0]
            return info["num_clients"] == 0 and info["num_channels"] == 0 and info["num_subs"] == 0

        rss = {}
        t0 = time.time()
        for i in range(1, 2001):
            ws = WS(srv.port, PATH)
            ws.send(0x1, frame.encode())
            objs = rt_recv(ws)
            assert [o.get("id") for o in objs] == [1, 2, 3] and "error" not in objs[2], objs
            ws.close()
            if i in (500, 2000):
                wait_until(idle, 5.0, "num_clients/num_channels back to 0 at cycle %d" % i)
                rss[i] = rss_kib(srv.proc.pid)
        dt = time.time() - t0
        grow = rss[2000] - rss[500]
        assert grow <= RSS_BOUND_KIB, "VmRSS grew by %d KiB (%r) in 1500 cycles" % (grow, rss)
        print("  2000 cycles in %.1fs, VmRSS %r KiB" % (dt, rss))
        assert len(srv.events("client_connected")) == 2000
        assert srv.events("closed")[-1]["code"] == 1006


if __name__ == "__main__":
    sys.exit(run_module("realtime", globals(), only=os.environ.get("ONLY")))
