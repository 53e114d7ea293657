# SPDX-License-Identifier: MIT
"""Streams over the raw protocol and the server API: offsets and epochs,
recovery (recovered, trimmed, expired, epoch changed, too many missed,
rejectUnrecovered 112, cache mode), the race between a recovering subscribe
and live publications across workers, history (limit, since, reverse,
errors), presence, presence_stats, join/leave (also when a client vanishes
without a close frame), idempotent publishing, history_remove, server API
subscribe with recover_since, refusals of what is not implemented, the
slow-consumer "recover" policy, config validation, and memory bounds."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

from harness import (ApiKit, BIN, RT, SANITIZED, Server, http_call, run_module, wait_until)

SECRET = "streams-secret-0123456789"
API_KEY = "streams-api-key"


def config(namespaces=(), client=None, channel=None, workers=None):
    c = {"client": {"token": {"hmac_secret_key": SECRET}},
         "http_api": {"key": API_KEY},
         # test clients rarely answer the close handshake: do not wait 5 s
         "websocket": {"close_timeout": "200ms"},
         "channel": {"without_namespace": {"allow_subscribe_for_client": True,
                                           "allow_publish_for_client": True},
                     "namespaces": [
                         {"name": "h", "history_size": 100, "history_ttl": "300s",
                          "allow_subscribe_for_client": True, "allow_publish_for_client": True,
                          "allow_history_for_subscriber": True, "allow_recovery": True,
                          "allow_positioning": True},
                         {"name": "small", "history_size": 3, "history_ttl": "300s",
                          "allow_subscribe_for_client": True, "force_recovery": True},
                         {"name": "short", "history_size": 100, "history_ttl": "1s",
                          "history_meta_ttl": "2s", "allow_subscribe_for_client": True,
                          "force_recovery": True},
                         {"name": "cache", "history_size": 10, "history_ttl": "300s",
                          "allow_subscribe_for_client": True, "force_recovery": True,
                          "force_recovery_mode": "cache"},
                         {"name": "p", "presence": True, "join_leave": True,
                          "allow_subscribe_for_client": True,
                          "allow_presence_for_subscriber": True},
                         {"name": "d", "history_size": 10, "history_ttl": "300s",
                          "allow_subscribe_for_client": True, "allowed_delta_types": ["fossil"],
                          "delta_publish": True, "allow_history_for_client": True},
                         {"name": "race", "history_size": 100000, "history_ttl": "300s",
                          "allow_subscribe_for_client": True, "allow_recovery": True},
                         {"name": "slow", "history_size": 1000, "history_ttl": "300s",
                          "allow_subscribe_for_client": True, "force_recovery": True,
                          "slow_consumer_policy": "recover"},
                     ] + list(namespaces)}}
    if client:
        c["client"].update(client)
    if channel:
        c["channel"].update(channel)
    return c


KIT = ApiKit(SECRET, API_KEY)
token, api, result, client = KIT.token, KIT.api, KIT.result, KIT.client


# ---- offsets, epochs and recovery ---------------------------------------------


def test_offsets_and_epoch_in_results_and_pushes():
    with Server(config=config()) as srv:
        c = client(srv)
        sub = c.ok("subscribe", {"channel": "h:a", "recoverable": True})
        assert sub["recoverable"] is True and sub["positioned"] is True, sub
        assert sub.get("offset", 0) == 0 and len(sub["epoch"]) == 8, sub
        r1 = result(srv, "publish", {"channel": "h:a", "data": {"n": 1}})
        r2 = result(srv, "publish", {"channel": "h:a", "data": {"n": 2}})
        assert r1 == {"offset": 1, "epoch": sub["epoch"]}, r1
        assert r2["offset"] == 2, r2
        pubs = c.pubs("h:a", 2)
        assert [p["offset"] for p in pubs] == [1, 2], pubs
        assert [p["data"]["n"] for p in pubs] == [1, 2], pubs
        # a channel without history: no position anywhere
        assert result(srv, "publish", {"channel": "plain", "data": 1}) == {}
        c.ws.close()


def test_recovery_returns_exactly_what_was_missed():
    with Server(config=config()) as srv:
        c = client(srv)
        sub = c.ok("subscribe", {"channel": "h:r", "recoverable": True})
        for i in range(1, 4):
            result(srv, "publish", {"channel": "h:r", "data": {"n": i}})
        last = c.pubs("h:r", 3)[-1]["offset"]
        c.ws.close()
        for i in range(4, 9):
            result(srv, "publish", {"channel": "h:r", "data": {"n": i}})
        c2 = client(srv)
        res = c2.ok("subscribe", {"channel": "h:r", "recoverable": True, "recover": True,
                                  "offset": last, "epoch": sub["epoch"]})
        assert res["recovered"] is True and res["was_recovering"] is True, res
        assert res["offset"] == last and res["epoch"] == sub["epoch"], res
        assert [p["data"]["n"] for p in res["publications"]] == [4, 5, 6, 7, 8], res
        assert [p["offset"] for p in res["publications"]] == [4, 5, 6, 7, 8], res
        # live delivery continues right after the recovered ones
        result(srv, "publish", {"channel": "h:r", "data": {"n": 9}})
        assert c2.pubs("h:r", 1)[0]["offset"] == 9
        c2.silent(0.2)
        # nothing missed: recovered with no publications
        c3 = client(srv)
        res = c3.ok("subscribe", {"channel": "h:r", "recoverable": True, "recover": True,
                                  "offset": 9, "epoch": sub["epoch"]})
        assert res["recovered"] is True and "publications" not in res, res
        c2.ws.close()
        c3.ws.close()


def test_recovery_failures_are_reported_not_hidden():
    with Server(config=config()) as srv:
        c = client(srv)
        sub = c.ok("subscribe", {"channel": "small:x"})
        assert sub["recoverable"] is True, sub  # force_recovery
        for i in range(1, 11):
            result(srv, "publish", {"channel": "small:x", "data": i})
        c.pubs("small:x", 10)
        # missed 2..10 but only 8..10 are kept: not recovered, position = top
        c2 = client(srv)
        res = c2.ok("subscribe", {"channel": "small:x", "recover": True, "offset": 1,
                                  "epoch": sub["epoch"]})
        assert "recovered" not in res and res["was_recovering"] is True, res
        assert res["offset"] == 10 and "publications" not in res, res
        # another epoch (the stream was lost): not recovered
        c3 = client(srv)
        res = c3.ok("subscribe", {"channel": "small:x", "recover": True, "offset": 9,
                                  "epoch": "AAAAAAAA"})
        assert "recovered" not in res and res["offset"] == 10, res
        # rejectUnrecovered (flag 2, the SDK's getState): error 112, no subscription
        c4 = client(srv)
        r = c4.call("subscribe", {"channel": "small:x", "recover": True, "offset": 1,
                                  "epoch": sub["epoch"], "flag": 3})
        assert r["error"]["code"] == 112, r
        res = c4.ok("subscribe", {"channel": "small:x"})  # not subscribed before
        ev = srv.wait_event("recovery_failed", lambda e: e.get("channel") == "small:x")
        assert "trimmed" in ev["reason"] or "epoch" in ev["reason"], ev
        for x in (c, c2, c3, c4):
            x.ws.close()


def test_recovery_limit_and_expiry():
    cfg = config(client={"recovery_max_publication_limit": 5})
    with Server(config=cfg) as srv:
        c = client(srv)
        sub = c.ok("subscribe", {"channel": "h:lim", "recoverable": True})
        for i in range(10):
            result(srv, "publish", {"channel": "h:lim", "data": i})
        # 10 missed, 5 allowed
        res = client(srv).ok("subscribe", {"channel": "h:lim", "recoverable": True,
                                           "recover": True, "offset": 0,
                                           "epoch": sub["epoch"]})
        assert "recovered" not in res and res["offset"] == 10, res
        # 5 missed is fine
        res = client(srv).ok("subscribe", {"channel": "h:lim", "recoverable": True,
                                           "recover": True, "offset": 5,
                                           "epoch": sub["epoch"]})
        assert res["recovered"] is True and len(res["publications"]) == 5, res
        # items expire after history_ttl; the position stays until the meta TTL
        s = client(srv).ok("subscribe", {"channel": "short:e"})
        result(srv, "publish", {"channel": "short:e", "data": 1})
        time.sleep(1.3)
        res = client(srv).ok("subscribe", {"channel": "short:e", "recover": True,
                                           "offset": 0, "epoch": s["epoch"]})
        assert "recovered" not in res and res["offset"] == 1 and res["epoch"] == s["epoch"], res
        time.sleep(1.5)  # past history_meta_ttl: a new incarnation
        res = client(srv).ok("subscribe", {"channel": "short:e", "recover": True,
                                           "offset": 1, "epoch": s["epoch"]})
        assert "recovered" not in res and res["epoch"] != s["epoch"] and res.get("offset", 0) == 0, res


def test_cache_recovery_returns_the_latest_only():
    with Server(config=config()) as srv:
        c = client(srv)
        sub = c.ok("subscribe", {"channel": "cache:c"})
        for i in range(1, 6):
            result(srv, "publish", {"channel": "cache:c", "data": {"v": i}})
        res = client(srv).ok("subscribe", {"channel": "cache:c", "recover": True,
                                           "offset": 1, "epoch": sub["epoch"]})
        assert res["recovered"] is True, res
        assert [p["data"]["v"] for p in res["publications"]] == [5], res
        # already at the latest: recovered, nothing sent
        res = client(srv).ok("subscribe", {"channel": "cache:c", "recover": True,
                                           "offset": 5, "epoch": sub["epoch"]})
        assert res["recovered"] is True and "publications" not in res, res


def test_server_restart_changes_the_epoch():
    cfg = config()
    with Server(config=cfg) as srv:
        sub = client(srv).ok("subscribe", {"channel": "h:restart", "recoverable": True})
        result(srv, "publish", {"channel": "h:restart", "data": 1})
    with Server(config=cfg) as srv:
        res = client(srv).ok("subscribe", {"channel": "h:restart", "recoverable": True,
                                           "recover": True, "offset": 1,
                                           "epoch": sub["epoch"]})
        assert "recovered" not in res and res["epoch"] != sub["epoch"], res


def test_recovering_subscribes_race_live_publications_across_workers():
    """Publishers on both workers publish as fast as they can while clients
    on both workers subscribe with recovery mid-stream: every subscriber
    must see recovered + live offsets as one gapless, duplicate-free run."""
    cfg = config(client={"recovery_max_publication_limit": 0}, workers=2)
    with Server(config=cfg, workers=2) as srv:
        first = client(srv).ok("subscribe", {"channel": "race:r", "recoverable": True})
        stop = threading.Event()
        published = []

        def publisher():
            s = socket.create_connection(("127.0.0.1", srv.port))
            n = 0
            while not stop.is_set() and n < 3000:
                body = json.dumps({"channel": "race:r", "data": {"n": n}}).encode()
                s.sendall(b"POST /api/publish HTTP/1.1\r\nHost: x\r\nX-API-Key: " +
                          API_KEY.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                buf = b""
                while b"\r\n\r\n" not in buf or not buf.endswith(b"}}"):
                    buf += s.recv(4096)
                n += 1
            published.append(n)
            s.close()

        pubs = [threading.Thread(target=publisher) for _ in range(2)]
        for t in pubs:
            t.start()
        checked = 0
        try:
            for round_ in range(10):
                c = client(srv)
                top = c.ok("subscribe", {"channel": "race:r", "recoverable": True})
                last = top["offset"]
                c.ws.close()
                time.sleep(0.02)
                c = client(srv)
                res = c.ok("subscribe", {"channel": "race:r", "recoverable": True,
                                         "recover": True, "offset": last,
                                         "epoch": first["epoch"]})
                assert res.get("recovered") is True, res
                seen = [p["offset"] for p in res.get("publications", [])]
                assert seen == list(range(last + 1, last + 1 + len(seen))), seen[:10]
                last = seen[-1] if seen else last
                deadline = time.time() + 0.2
                n_live = 0
                while time.time() < deadline:
                    try:
                        p = c.push(lambda p: "pub" in p, timeout=0.1)
                    except AssertionError:
                        continue
                    assert p["pub"]["offset"] == last + 1, (p["pub"]["offset"], last)
                    last += 1
                    n_live += 1
                checked += 1
                c.ws.close()
        finally:
            stop.set()
            for t in pubs:
                t.join(10)
        assert checked >= 10 and sum(published) > 100, (checked, published)


def test_delta_wire_format():
    """Delta subscribers get data as a JSON string: the first publication
    in full, then fossil deltas; full payloads after a recovery and to a
    new subscriber; plain subscribers of the same channel get JSON."""
    with Server(config=config()) as srv:
        d = client(srv)
        res = d.ok("subscribe", {"channel": "d:x", "delta": "fossil", "recoverable": True})
        assert res["delta"] is True and res["positioned"] is True, res
        plain = client(srv)
        plain.ok("subscribe", {"channel": "d:x"})
        doc = {"text": "a long enough document " * 20, "n": 0}
        for n in range(1, 4):
            doc["n"] = n
            result(srv, "publish", {"channel": "d:x", "data": doc})
        p1, p2, p3 = d.pubs("d:x", 3)
        assert isinstance(p1["data"], str) and json.loads(p1["data"])["n"] == 1, p1
        assert not p1.get("delta"), p1
        assert p2.get("delta") is True and len(p2["data"]) < 100, p2
        assert p3.get("delta") is True, p3
        q = plain.pubs("d:x", 3)
        assert [x["data"]["n"] for x in q] == [1, 2, 3] and not any("delta" in x for x in q), q
        # recovery: full payloads (strings), then the next live one is a delta
        d.ws.close()
        result(srv, "publish", {"channel": "d:x", "data": dict(doc, n=4)})
        d2 = client(srv)
        res = d2.ok("subscribe", {"channel": "d:x", "delta": "fossil", "recoverable": True,
                                  "recover": True,
                                  "offset": 3, "epoch": res["epoch"]})
        assert res["recovered"] is True, res
        assert [json.loads(x["data"])["n"] for x in res["publications"]] == [4], res
        result(srv, "publish", {"channel": "d:x", "data": dict(doc, n=5)})
        assert d2.pubs("d:x", 1)[0].get("delta") is True
        # a new subscriber: its first publication is full
        d3 = client(srv)
        d3.ok("subscribe", {"channel": "d:x", "delta": "fossil"})
        result(srv, "publish", {"channel": "d:x", "data": dict(doc, n=6)})
        f = d3.pubs("d:x", 1)[0]
        assert not f.get("delta") and json.loads(f["data"])["n"] == 6, f
        # history is plain JSON, whatever the subscription
        h = d3.ok("history", {"channel": "d:x", "limit": 1, "reverse": True})
        assert h["publications"][0]["data"]["n"] == 6, h


# ---- history ------------------------------------------------------------------


def test_history_command_and_api():
    with Server(config=config()) as srv:
        c = client(srv)
        sub = c.ok("subscribe", {"channel": "h:hist", "recoverable": True})
        for i in range(1, 8):
            result(srv, "publish", {"channel": "h:hist", "data": {"i": i}})
        h = c.ok("history", {"channel": "h:hist"})  # limit 0: position only
        assert h == {"publications": [], "epoch": sub["epoch"], "offset": 7}, h
        h = c.ok("history", {"channel": "h:hist", "limit": -1})
        assert [p["offset"] for p in h["publications"]] == list(range(1, 8)), h
        h = c.ok("history", {"channel": "h:hist", "limit": 2, "since": {"offset": 3, "epoch": sub["epoch"]}})
        assert [p["data"]["i"] for p in h["publications"]] == [4, 5], h
        h = c.ok("history", {"channel": "h:hist", "limit": 3, "reverse": True})
        assert [p["offset"] for p in h["publications"]] == [7, 6, 5], h
        h = c.ok("history", {"channel": "h:hist", "limit": 10, "reverse": True, "since": {"offset": 3}})
        assert [p["offset"] for p in h["publications"]] == [2, 1], h
        r = c.call("history", {"channel": "h:hist", "limit": 1, "reverse": True, "since": {"offset": 0}})
        assert r["error"]["code"] == 107, r
        r = c.call("history", {"channel": "h:hist", "limit": 1, "since": {"offset": 1, "epoch": "ZZZZZZZZ"}})
        assert r["error"]["code"] == 112, r
        r = c.call("history", {"channel": "plain"})
        assert r["error"]["code"] == 108, r
        r = c.call("history", {"channel": "nons:x"})
        assert r["error"]["code"] == 102, r
        # permission: allow_history_for_subscriber only
        other = client(srv, "7")
        r = other.call("history", {"channel": "h:hist", "limit": 1})
        assert r["error"]["code"] == 103, r
        # the API: no 300 cap, same shape
        h = result(srv, "history", {"channel": "h:hist", "limit": -1})
        assert len(h["publications"]) == 7 and h["epoch"] == sub["epoch"], h
        r = api(srv, "history", {"channel": "plain"})
        assert r["error"]["code"] == 108, r
        # history_remove keeps offset and epoch
        assert result(srv, "history_remove", {"channel": "h:hist"}) == {}
        h = result(srv, "history", {"channel": "h:hist", "limit": -1})
        assert h == {"publications": [], "epoch": sub["epoch"], "offset": 7}, h
        assert result(srv, "publish", {"channel": "h:hist", "data": 8})["offset"] == 8


def test_history_cap_for_clients():
    with Server(config=config(client={"history_max_publication_limit": 4})) as srv:
        c = client(srv)
        c.ok("subscribe", {"channel": "h:cap"})
        for i in range(10):
            result(srv, "publish", {"channel": "h:cap", "data": i})
        assert len(c.ok("history", {"channel": "h:cap", "limit": -1})["publications"]) == 4
        assert len(c.ok("history", {"channel": "h:cap", "limit": 50})["publications"]) == 4
        assert len(result(srv, "history", {"channel": "h:cap", "limit": -1})["publications"]) == 10


# ---- presence and join/leave ------------------------------------------------------


def test_presence_join_leave():
    with Server(config=config(client={"ping_interval": "1s", "pong_timeout": "500ms"})) as srv:
        a = client(srv, "alice")
        a.ok("subscribe", {"channel": "p:room", "join_leave": True})
        # the subscriber gets its own join, after its subscribe reply
        j = a.push(lambda p: "join" in p)
        assert j["channel"] == "p:room" and j["join"]["info"]["user"] == "alice", j
        b = RT(srv.port, autopong=False)  # it will "vanish" later
        b.connect(token("bob", info={"name": "Bob"}))
        b.ok("subscribe", {"channel": "p:room"})
        j = a.push(lambda p: "join" in p)
        assert j["join"]["info"] == {"user": "bob", "client": b.cid, "conn_info": {"name": "Bob"}}, j
        pres = a.ok("presence", {"channel": "p:room"})["presence"]
        assert set(pres) == {a.cid, b.cid}, pres
        assert pres[b.cid]["conn_info"] == {"name": "Bob"}, pres
        st = a.ok("presence_stats", {"channel": "p:room"})
        assert st == {"num_clients": 2, "num_users": 2}, st
        # a second connection of bob: 3 clients, 2 users
        b2 = client(srv, "bob")
        b2.ok("subscribe", {"channel": "p:room"})
        assert result(srv, "presence_stats", {"channel": "p:room"}) == {"num_clients": 3, "num_users": 2}
        # unsubscribe: a leave
        b2.ok("unsubscribe", {"channel": "p:room"})
        lv = a.push(lambda p: "leave" in p and p["leave"]["info"]["client"] == b2.cid)
        # bob stops answering (a vanished peer: no close frame, no FIN): the
        # pong timeout ends it, and a leave follows
        lv = a.push(lambda p: "leave" in p and p["leave"]["info"]["client"] == b.cid, timeout=4)
        assert lv["channel"] == "p:room"
        assert set(result(srv, "presence", {"channel": "p:room"})["presence"]) == {a.cid}
        # not a subscriber: no presence access; presence off: 108
        c = client(srv, "carol")
        assert c.call("presence", {"channel": "p:room"})["error"]["code"] == 103
        assert c.call("presence", {"channel": "h:x"})["error"]["code"] == 108
        assert api(srv, "presence", {"channel": "h:x"})["error"]["code"] == 108
        b.ws.close()


def test_presence_across_workers():
    with Server(config=config(), workers=2) as srv:
        cs = [client(srv, "u%d" % i) for i in range(8)]
        for c in cs:
            c.ok("subscribe", {"channel": "p:multi"})
        wait_until(lambda: result(srv, "presence_stats", {"channel": "p:multi"})["num_clients"] == 8)
        pres = result(srv, "presence", {"channel": "p:multi"})["presence"]
        assert set(pres) == {c.cid for c in cs}, pres
        for c in cs[:3]:
            c.ws.close()
        wait_until(lambda: result(srv, "presence_stats", {"channel": "p:multi"}) ==
                   {"num_clients": 5, "num_users": 5})


def test_connections_of_one_user_share_its_name():
    """A user's connections share one copy of the user name (the shared
    limits entry's): the connection left after another one of the user
    closed still carries it, in presence and presence_stats."""
    with Server(config=config()) as srv:
        first = client(srv, "dana")
        second = client(srv, "dana")
        first.ok("subscribe", {"channel": "p:share"})
        first.ws.close()
        wait_until(lambda: result(srv, "presence_stats", {"channel": "p:share"})["num_clients"] == 0)
        second.ok("subscribe", {"channel": "p:share"})
        pres = result(srv, "presence", {"channel": "p:share"})["presence"]
        assert set(pres) == {second.cid} and pres[second.cid]["user"] == "dana", pres
        assert pres[second.cid]["client"] == second.cid, pres
        assert result(srv, "presence_stats", {"channel": "p:share"}) == \
            {"num_clients": 1, "num_users": 1}
        # the user's last connection gone, a new one makes the entry afresh
        second.ws.close()
        third = client(srv, "dana")
        third.ok("subscribe", {"channel": "p:share"})
        pres = result(srv, "presence", {"channel": "p:share"})["presence"]
        assert pres[third.cid]["user"] == "dana", pres


# ---- idempotency -------------------------------------------------------------------


def test_idempotent_publish_delivers_once_per_window():
    with Server(config=config(channel={"idempotency_window": "1s"})) as srv:
        c = client(srv)
        c.ok("subscribe", {"channel": "h:idem"})
        c.ok("subscribe", {"channel": "plain-idem"})
        r1 = result(srv, "publish", {"channel": "h:idem", "data": 1, "idempotency_key": "k"})
        r2 = result(srv, "publish", {"channel": "h:idem", "data": 1, "idempotency_key": "k"})
        assert r1 == r2 and r1["offset"] == 1, (r1, r2)
        result(srv, "publish", {"channel": "plain-idem", "data": 1, "idempotency_key": "k"})
        result(srv, "publish", {"channel": "plain-idem", "data": 1, "idempotency_key": "k"})
        got = c.pubs("h:idem", 1) + c.pubs("plain-idem", 1)
        c.silent(0.3)  # each was delivered once
        assert len(got) == 2
        # broadcast shares the key per channel
        b = result(srv, "broadcast", {"channels": ["h:idem", "plain-idem"], "data": 2,
                                      "idempotency_key": "k"})
        assert b["responses"][0] == {"result": r1}, b
        c.silent(0.3)
        time.sleep(1.1)  # across the window: a new publication
        r3 = result(srv, "publish", {"channel": "h:idem", "data": 1, "idempotency_key": "k"})
        assert r3["offset"] == 2, r3
        assert c.pubs("h:idem", 1)[0]["offset"] == 2


# ---- server API subscribe, refusals, validation --------------------------------------


def test_api_subscribe_with_recover_since():
    with Server(config=config()) as srv:
        c = client(srv, "sam")
        s = RT(srv.port)
        s.connect(token("sam"))
        top = s.ok("subscribe", {"channel": "h:srv", "recoverable": True})
        for i in range(1, 4):
            result(srv, "publish", {"channel": "h:srv", "data": i})
        assert result(srv, "subscribe", {"user": "sam", "channel": "h:srv",
                                         "client": c.cid,
                                         "recover_since": {"offset": 1, "epoch": top["epoch"]},
                                         "data": {"why": "test"}}) == {}
        p = c.push(lambda p: "subscribe" in p)
        assert p["channel"] == "h:srv" and p["subscribe"]["recovered"] is True, p
        assert p["subscribe"]["data"] == {"why": "test"}, p
        assert [x["data"] for x in c.pubs("h:srv", 2)] == [2, 3]
        result(srv, "publish", {"channel": "h:srv", "data": 4})
        assert c.pubs("h:srv", 1)[0]["offset"] == 4
        r = api(srv, "subscribe", {"user": "sam", "channel": "h:srv", "recover_since": 5})
        assert r["error"]["code"] == 107, r


def test_unimplemented_features_are_refused():
    with Server(config=config()) as srv:
        c = client(srv)
        r = c.call("subscribe", {"channel": "h:m", "type": 1})
        assert r["error"]["code"] == 108, r
        r = c.call("subscribe", {"channel": "h:m", "tf": {"op": "eq"}})
        assert r["error"]["code"] == 107, r
        r = c.call("publish", {"channel": "h:m", "data": 1, "type": 1, "key": "k"})
        assert r["error"]["code"] == 108, r
        r = c.call("publish", {"channel": "h:m", "data": 1, "removed": True})
        assert r["error"]["code"] == 107, r
        # delta where the namespace does not allow it: not negotiated
        res = c.ok("subscribe", {"channel": "h:m", "delta": "fossil"})
        assert "delta" not in res, res
        r = api(srv, "publish", {"channel": "h:m", "data": 1, "version": 3})
        assert r["error"]["code"] == 107, r
        r = api(srv, "publish", {"channel": "h:m", "b64data": "AAE"})  # not base64
        assert r["error"]["code"] == 107, r
        r = result(srv, "publish", {"channel": "h:m", "b64data": "eyJhIjoxfQ=="})
        assert r["offset"] == 1, r
        r = api(srv, "publish", {"channel": "h:m", "data": 1, "tags": {"a": 1}})
        assert r["error"]["code"] == 107, r


def test_tags_skip_history_and_client_publish_info():
    with Server(config=config()) as srv:
        c = RT(srv.port)
        c.connect(token("42", info={"n": "x"}))
        c.ok("subscribe", {"channel": "h:t", "recoverable": True})
        assert result(srv, "publish", {"channel": "h:t", "data": 1, "tags": {"k": "v"}}) == {
            "offset": 1, "epoch": c.ok("history", {"channel": "h:t"})["epoch"]}
        p = c.pubs("h:t", 1)[0]
        assert p["tags"] == {"k": "v"} and p["offset"] == 1, p
        assert result(srv, "publish", {"channel": "h:t", "data": 2, "skip_history": True}) == {}
        p = c.pubs("h:t", 1)[0]
        assert "offset" not in p, p
        c.ok("publish", {"channel": "h:t", "data": 3})
        p = c.pubs("h:t", 1)[0]
        assert p["offset"] == 2 and p["info"]["conn_info"] == {"n": "x"}, p
        h = c.ok("history", {"channel": "h:t", "limit": -1})["publications"]
        assert [x["data"] for x in h] == [1, 3] and h[0]["tags"] == {"k": "v"}, h
        assert h[1]["info"]["user"] == "42", h


def test_namespace_options_validated():
    bad = [
        ({"name": "x", "force_recovery": True}, "needs history"),
        ({"name": "x", "history_size": 10}, "history_size and history_ttl"),
        ({"name": "x", "history_size": 1, "history_ttl": "5x"}, "duration"),
        ({"name": "x", "history_size": 1, "history_ttl": "5s",
          "allowed_delta_types": ["xdelta"]}, "fossil"),
        ({"name": "x", "force_recovery_mode": "snapshot"}, "cache"),
        ({"name": "x", "slow_consumer_policy": "recover"}, "needs history"),
    ]
    for ns, words in bad:
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"channel": {"namespaces": [ns]}}, f)
        p = subprocess.run([BIN, "serve", "--config", path, "--listen", "127.0.0.1:0"],
                           capture_output=True, text=True, timeout=10)
        os.unlink(path)
        assert p.returncode != 0 and words in p.stderr and "namespaces[x]" in p.stderr, (ns, p.stderr)


# ---- slow consumers ----------------------------------------------------------------


def test_slow_consumer_recover_policy():
    """A subscriber that stops reading while 1 MiB of publications queue up:
    under the "recover" policy its queued publications are dropped and it
    gets unsubscribe 2500; resubscribing with its position recovers all of
    them. A healthy subscriber on the same channel misses nothing."""
    cfg = config(client={"queue_max_size": 262144})
    with Server(config=cfg) as srv:
        slow = client(srv, "slow")
        sub = slow.ok("subscribe", {"channel": "slow:s"})
        healthy = client(srv, "ok")
        healthy.ok("subscribe", {"channel": "slow:s"})
        payload = "x" * 40000
        got = []

        def read_healthy():
            while len(got) < N:
                got.append(healthy.push(lambda p: "pub" in p, timeout=10)["pub"]["offset"])

        N = 400  # 16 MB: more than the kernel buffers of a loopback socket
        t = threading.Thread(target=read_healthy)
        t.start()
        for i in range(N):
            result(srv, "publish", {"channel": "slow:s", "data": {"i": i, "p": payload}})
        t.join(30)
        assert got == list(range(1, N + 1)), (len(got), got[:3])
        ev = srv.wait_event("slow_consumer_recover")
        assert ev["dropped_bytes"] > 0, ev
        # now the slow one reads: what it got, then unsubscribe 2500
        offsets = []
        while True:
            p = slow.push(lambda p: True, timeout=5)
            if "unsubscribe" in p:
                assert p["unsubscribe"]["code"] == 2500, p
                break
            offsets.append(p["pub"]["offset"])
        assert offsets == list(range(1, len(offsets) + 1)), offsets[:5]
        res = slow.ok("subscribe", {"channel": "slow:s", "recover": True,
                                    "offset": offsets[-1] if offsets else 0,
                                    "epoch": sub["epoch"]})
        assert res["recovered"] is True, {k: v for k, v in res.items() if k != "publications"}
        rec = [p["offset"] for p in res.get("publications", [])]
        assert (offsets + rec) == list(range(1, N + 1)), (len(offsets), len(rec))


# ---- memory ----------------------------------------------------------------------------


ASAN = SANITIZED


def small_quarantine():
    """ASan keeps freed memory in quarantine (256 MB by default), which
    would hide whether memory is reused; memory tests shrink it."""
    base = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    return {"ASAN_OPTIONS": base + ":quarantine_size_mb=1"}


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_history_memory_stays_within_the_cap():
    """10,000 channels x 100 publications of 1 KiB would be ~1 GB: with an
    8 MiB history cap the process stays small and evictions are logged."""
    cfg = config(channel={"history_memory_limit": "8MiB"},
                 namespaces=[{"name": "m", "history_size": 100, "history_ttl": "300s"}])
    with Server(config=cfg, env=small_quarantine()) as srv:
        data = "y" * 1000
        base = rss_kb(srv.proc.pid)
        for round_ in range(10):
            cmds = [{"publish": {"channel": "m:%d" % ch, "data": data}}
                    for ch in range(round_ * 1000, round_ * 1000 + 1000)]
            for rep in range(10):
                st, _, body = http_call(srv.port, "POST", "/api/batch",
                                        json.dumps({"commands": cmds}).encode(),
                                        {"X-API-Key": API_KEY}, timeout=30)
                assert st == 200, body
        grown = rss_kb(srv.proc.pid) - base
        # the cap + tables, not 1 GB (ASan's redzones roughly triple it)
        assert grown < (192 if ASAN else 64) * 1024, grown
        ev = srv.wait_event("history_evicted")
        assert ev["history_bytes"] <= 8 * 1024 * 1024, ev
        # the newest publications are still there
        h = result(srv, "history", {"channel": "m:9999", "limit": -1})
        assert len(h["publications"]) >= 1 and h["offset"] == 10, h


def test_stream_churn_leaves_memory_flat():
    cfg = config(namespaces=[{"name": "c", "history_size": 10, "history_ttl": "1s",
                              "history_meta_ttl": "1s"}])
    with Server(config=cfg, env=small_quarantine()) as srv:
        def churn(start):
            cmds = [{"publish": {"channel": "c:%d" % i, "data": {"i": i}}}
                    for i in range(start, start + 2000)]
            for _ in range(3):
                http_call(srv.port, "POST", "/api/batch", json.dumps({"commands": cmds}).encode(),
                          {"X-API-Key": API_KEY}, timeout=30)
        churn(0)
        time.sleep(3.5)  # everything expired and swept
        mid = rss_kb(srv.proc.pid)
        for k in range(1, 4):
            churn(k * 2000)
            time.sleep(3.5)
        end = rss_kb(srv.proc.pid)
        assert end - mid < 2048, (mid, end)
        h = result(srv, "history", {"channel": "c:0", "limit": -1})
        assert h["offset"] == 0, h  # the stream itself was dropped


if __name__ == "__main__":
    sys.exit(run_module("streams", globals()))
