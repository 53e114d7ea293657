# SPDX-License-Identifier: MIT
"""The Redis engine with real Debian redis-server processes started by the
tests: publications, offsets, recovery, history, presence, join/leave,
idempotency and server API commands across several holdfast nodes; info
and channels across nodes; two shards; and what happens when Redis fails
(stopped: fail fast and report; paused: the I/O timeout; restarted empty:
subscribers learn their position is gone, then recover what exists)."""
import contextlib
import json
import os
import threading
import time

from harness import (ApiKit, RT, RedisCluster, RedisSentinelSet, RedisServer, Server, http_call,
                     rt_recv, rt_send, run_module, wait_until)

SECRET = "redis-secret-0123456789"
API_KEY = "redis-api-key"


def config(redis, extra_ns=(), prefix="hf", **engine):
    addrs = [r.address for r in redis] if isinstance(redis, (list, tuple)) else [redis.address]
    e = {"type": "redis", "redis": dict({"address": addrs, "prefix": prefix,
                                         "connect_timeout": "300ms", "io_timeout": "1s",
                                         "presence_ttl": "3s"}, **engine)}
    return {"client": {"token": {"hmac_secret_key": SECRET}},
            "http_api": {"key": API_KEY},
            "websocket": {"close_timeout": "200ms"},
            "engine": e,
            "channel": {"without_namespace": {"allow_subscribe_for_client": True},
                        "namespaces": [
                            {"name": "h", "history_size": 100, "history_ttl": "300s",
                             "allow_subscribe_for_client": True, "allow_recovery": True,
                             "allow_history_for_subscriber": True, "allow_positioning": True},
                            {"name": "ss", "history_size": 1000, "history_ttl": "300s",
                             "force_recovery": True},
                            {"name": "p", "presence": True, "join_leave": True,
                             "force_push_join_leave": True,
                             "allow_subscribe_for_client": True,
                             "allow_presence_for_subscriber": True},
                        ] + list(extra_ns)}}


KIT = ApiKit(SECRET, API_KEY)
token, api, result, client = KIT.token, KIT.api, KIT.result, KIT.client


def health(srv):
    st, _, body = http_call(srv.port, "GET", "/health")
    return st, json.loads(body)


def engine_up(srv):
    return health(srv)[1].get("status") == "ok"


def nodes(n, redis, workers=2, **kw):
    srvs = [Server(config=config(redis, **kw), workers=workers) for _ in range(n)]
    for s in srvs:
        wait_until(lambda: engine_up(s), 5, "engine up")
    return srvs


def stop_all(srvs):
    for s in srvs:
        s.stop()


@contextlib.contextmanager
def running(n, redis, start=None, **kw):
    """n holdfast nodes on redis (start: nodes, or cluster_nodes), stopped
    at the end of the block."""
    srvs = (start or nodes)(n, redis, **kw)
    try:
        yield srvs
    finally:
        stop_all(srvs)


def test_publications_cross_nodes_in_order_with_offsets():
    with RedisServer() as rd, running(2, rd) as (a, b):
        subs = [client(a, "u%d" % i) for i in range(3)] + [client(b, "v%d" % i) for i in range(3)]
        epochs = set()
        for c in subs:
            r = c.ok("subscribe", {"channel": "h:x", "recoverable": True})
            epochs.add(r["epoch"])
        assert len(epochs) == 1, epochs  # one stream, whichever node
        offs = []
        for i in range(1, 101):
            srv = a if i % 2 else b  # publishers on both nodes
            offs.append(result(srv, "publish", {"channel": "h:x", "data": {"n": i}})["offset"])
        assert offs == list(range(1, 101)), offs
        for c in subs:
            got = c.pubs("h:x", 100)
            assert [p["data"]["n"] for p in got] == list(range(1, 101))
            assert [p["offset"] for p in got] == list(range(1, 101))
            c.silent(0.1)
        # a channel without history: delivered across nodes, no position
        for c in subs:
            c.ok("subscribe", {"channel": "plain"})
        assert result(b, "publish", {"channel": "plain", "data": "x"}) == {}
        for c in subs:
            assert c.pubs("plain", 1)[0]["data"] == "x"
        # broadcast through node a reaches subscribers of both nodes
        r = result(a, "broadcast", {"channels": ["h:x", "plain"], "data": 7})
        assert r["responses"][0]["result"]["offset"] == 101, r
        for c in subs:
            assert c.pubs("h:x", 1)[0]["offset"] == 101
            assert c.pubs("plain", 1)[0]["data"] == 7
            c.close()


def test_recovery_and_history_across_nodes():
    with RedisServer() as rd, running(2, rd) as (a, b):
        c = client(a)
        sub = c.ok("subscribe", {"channel": "h:r", "recoverable": True})
        for i in range(1, 4):
            result(b, "publish", {"channel": "h:r", "data": i})
        last = c.pubs("h:r", 3)[-1]["offset"]
        c.ws.close()
        for i in range(4, 9):
            result(a, "publish", {"channel": "h:r", "data": i})
        # reconnect to the other node: it recovers exactly what was missed
        c2 = client(b)
        res = c2.ok("subscribe", {"channel": "h:r", "recoverable": True, "recover": True,
                                  "offset": last, "epoch": sub["epoch"]})
        assert res["recovered"] is True, res
        assert [p["data"] for p in res["publications"]] == [4, 5, 6, 7, 8], res
        assert [p["offset"] for p in res["publications"]] == [4, 5, 6, 7, 8], res
        result(a, "publish", {"channel": "h:r", "data": 9})
        assert c2.pubs("h:r", 1)[0]["offset"] == 9
        # history through either node and the client protocol
        h = result(a, "history", {"channel": "h:r", "limit": 3, "reverse": True})
        assert [p["data"] for p in h["publications"]] == [9, 8, 7], h
        assert h["epoch"] == sub["epoch"] and h["offset"] == 9, h
        h = c2.ok("history", {"channel": "h:r", "limit": -1, "since": {"offset": 6, "epoch": sub["epoch"]}})
        assert [p["data"] for p in h["publications"]] == [7, 8, 9], h
        # a wrong epoch is reported, not papered over
        res = client(a).ok("subscribe", {"channel": "h:r", "recover": True, "recoverable": True,
                                         "offset": 2, "epoch": "abcdefgh"})
        assert not res.get("recovered") and res["was_recovering"] is True, res
        assert res["epoch"] == sub["epoch"], res
        # history_remove: the stream keeps its epoch and top offset
        assert result(b, "history_remove", {"channel": "h:r"}) == {}
        h = result(a, "history", {"channel": "h:r", "limit": -1})
        assert h.get("publications", []) == [] and h["offset"] == 9, h
        c2.close()


def test_idempotent_publish_across_nodes():
    with RedisServer() as rd, running(2, rd) as (a, b):
        c = client(a)
        c.ok("subscribe", {"channel": "h:i"})
        r1 = result(a, "publish", {"channel": "h:i", "data": 1, "idempotency_key": "k1"})
        r2 = result(b, "publish", {"channel": "h:i", "data": 1, "idempotency_key": "k1"})
        assert r1 == r2 and r1["offset"] == 1, (r1, r2)
        assert c.pubs("h:i", 1)[0]["offset"] == 1
        c.silent(0.3)  # the retry through node b was not delivered again
        c.close()


def test_presence_and_join_leave_across_nodes():
    with RedisServer() as rd:
        a, b = nodes(2, rd)
        try:
            x = client(a, "alice")
            x.ok("subscribe", {"channel": "p:room"})
            x.push(lambda p: "join" in p)  # its own
            y = client(b, "bob")
            y.ok("subscribe", {"channel": "p:room"})
            j = x.push(lambda p: "join" in p and p["join"]["info"]["user"] == "bob")
            assert j["join"]["info"]["client"] == y.cid, j
            for srv in (a, b):
                pres = result(srv, "presence", {"channel": "p:room"})["presence"]
                assert set(pres) == {x.cid, y.cid}, pres
                assert result(srv, "presence_stats", {"channel": "p:room"}) == \
                    {"num_clients": 2, "num_users": 2}
            assert set(x.ok("presence", {"channel": "p:room"})["presence"]) == {x.cid, y.cid}
            y.ok("unsubscribe", {"channel": "p:room"})
            lv = x.push(lambda p: "leave" in p)
            assert lv["leave"]["info"]["client"] == y.cid, lv
            wait_until(lambda: result(b, "presence_stats", {"channel": "p:room"})["num_clients"] == 1)
            # a node that dies without cleaning up: its entries expire (presence_ttl 3s)
            z = client(b, "zed")
            z.ok("subscribe", {"channel": "p:room"})
            wait_until(lambda: result(a, "presence_stats", {"channel": "p:room"})["num_clients"] == 2)
            b.kill()
            wait_until(lambda: result(a, "presence_stats", {"channel": "p:room"})["num_clients"] == 1,
                       8, "dead node's presence expired")
            x.close()
        finally:
            stop_all([a])


def test_server_api_commands_reach_clients_on_other_nodes():
    with RedisServer() as rd, running(2, rd) as (a, b):
        c = client(a, "sam")
        c.ok("subscribe", {"channel": "news"})
        # server-side subscribe through node b
        assert result(b, "subscribe", {"user": "sam", "channel": "h:srv"}) == {}
        p = c.push(lambda p: "subscribe" in p)
        assert p["channel"] == "h:srv", p
        result(b, "publish", {"channel": "h:srv", "data": 1})
        assert c.pubs("h:srv", 1)[0]["data"] == 1
        # unsubscribe through b
        assert result(b, "unsubscribe", {"user": "sam", "channel": "news"}) == {}
        p = c.push(lambda p: "unsubscribe" in p)
        assert p["channel"] == "news", p
        # disconnect through b, with a code the client sees
        assert result(b, "disconnect", {"user": "sam", "disconnect": {"code": 4001, "reason": "bye"}}) == {}
        code, reason = c.ws.expect_close(4001)
        assert reason == "bye", reason


class Publisher(threading.Thread):
    """Publishes numbered data into ch through srv until stopped."""

    def __init__(self, srv, ch):
        super().__init__(daemon=True)
        self.srv, self.ch, self.n, self.stop_ = srv, ch, 0, threading.Event()

    def run(self):
        while not self.stop_.is_set():
            self.n += 1
            result(self.srv, "publish", {"channel": self.ch, "data": self.n})

    def stop(self):
        self.stop_.set()
        self.join(5)


def read_until_id(ws, want_id, timeout=3.0):
    """Messages in arrival order up to and including the reply want_id."""
    out = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        for o in rt_recv(ws, deadline - time.time()):
            if o == {}:
                rt_send(ws, {})
                continue
            out.append(o)
            if o.get("id") == want_id:
                return out
    raise AssertionError("no reply %d; got %r" % (want_id, out[:5]))


def test_no_publication_overtakes_the_subscribe_reply():
    """A subscribe whose position comes from Redis holds the live
    publications that arrive meanwhile; they must leave after its reply
    (an SDK drops publications of a subscription it is still subscribing
    to), and continue its position without a gap."""
    with RedisServer() as rd:
        a, b = nodes(2, rd)
        pub = Publisher(b, "h:live")
        try:
            other = client(a, "other")  # keeps the channel active on a's worker
            epoch = other.ok("subscribe", {"channel": "h:live", "recoverable": True})["epoch"]
            pub.start()
            wait_until(lambda: pub.n > 20)
            for i in range(25):
                c = client(a, "c%d" % i)
                c.send({"id": 99, "subscribe": {"channel": "h:live", "recoverable": True,
                                                "recover": True, "offset": max(pub.n - 5, 0),
                                                "epoch": epoch}})
                msgs = read_until_id(c.ws, 99)
                early = [m for m in msgs[:-1] if "push" in m and "pub" in m["push"]]
                assert not early, "publication before the subscribe reply: %r" % early[:2]
                rep = msgs[-1]["subscribe"]
                assert rep["recovered"] is True, rep
                got = [p["offset"] for p in rep.get("publications", [])]
                assert got == list(range(rep["offset"] + 1, rep["offset"] + 1 + len(got))), rep
                top = got[-1] if got else rep["offset"]
                got = [p["offset"] for p in c.pubs("h:live", 3)]
                assert got == [top + 1, top + 2, top + 3], (top, got, rep)
                c.close()
        finally:
            pub.stop()
            stop_all([a, b])


def test_server_side_subscriptions_hold_publications_until_connected():
    with RedisServer() as rd:
        a, b = nodes(2, rd)
        pub = Publisher(b, "ss:live")
        try:
            pub.start()
            wait_until(lambda: pub.n > 20)
            for i in range(20):
                c = RT(a.port)
                c.send({"id": 1, "connect": {"token": token("u%d" % i, channels=["ss:live"])}})
                msgs = read_until_id(c.ws, 1)
                assert len(msgs) == 1, "pushes before the connect reply: %r" % msgs[:2]
                sub = msgs[0]["connect"]["subs"]["ss:live"]
                top = sub["offset"]
                got = [p["offset"] for p in c.pubs("ss:live", 3)]
                assert got == [top + 1, top + 2, top + 3], (top, got)
                c.close()
            assert not a.events("insufficient_state"), a.events("insufficient_state")[:2]
        finally:
            pub.stop()
            stop_all([a, b])


def test_info_and_channels_across_nodes():
    with RedisServer() as rd, running(2, rd) as (a, b):
        ca = [client(a, "a%d" % i) for i in range(2)]
        cb = [client(b, "b%d" % i) for i in range(3)]
        for c in ca + cb:
            c.ok("subscribe", {"channel": "chat1" if c in ca else "chat2"})
        cb[0].ok("subscribe", {"channel": "chat1"})

        def two_nodes():
            ns = result(a, "info", {})["nodes"]
            return len(ns) == 2 and sum(n["num_clients"] for n in ns) == 5
        wait_until(two_nodes, 6, "both nodes in info")
        ns = result(b, "info", {})["nodes"]
        assert len({n["uid"] for n in ns}) == 2, ns
        for srv in (a, b):
            ch = result(srv, "channels", {})["channels"]
            assert ch == {"chat1": {"num_clients": 3}, "chat2": {"num_clients": 3}}, ch
            ch = result(srv, "channels", {"pattern": "*2"})["channels"]
            assert ch == {"chat2": {"num_clients": 3}}, ch
        for c in ca + cb:
            c.close()


def test_two_shards_spread_channels():
    with RedisServer() as r1, RedisServer() as r2, \
            running(2, [r1, r2]) as (a, b):
        c = client(b)
        chans = ["h:s%d" % i for i in range(16)]
        for ch in chans:
            c.ok("subscribe", {"channel": ch, "recoverable": True})
        for ch in chans:
            assert result(a, "publish", {"channel": ch, "data": ch})["offset"] == 1
        for ch in chans:
            assert c.pubs(ch, 1)[0]["data"] == ch
        k1 = r1.cmd("KEYS", "hf*")
        k2 = r2.cmd("KEYS", "hf*")
        assert k1 and k2, (k1, k2)  # both shards hold streams
        assert not set(k1) & set(k2), (k1, k2)
        c.close()


def test_redis_stopped_fails_fast_and_reports_then_recovers():
    rd = RedisServer()
    a = None
    try:
        a = nodes(1, rd)[0]
        c = client(a)
        sub = c.ok("subscribe", {"channel": "h:f", "recoverable": True})
        result(a, "publish", {"channel": "h:f", "data": 1})
        assert c.pubs("h:f", 1)[0]["offset"] == 1
        rd.stop()
        wait_until(lambda: not engine_up(a), 3, "health degraded")
        st, h = health(a)
        assert st == 200 and h["status"] == "degraded" and h["engine"] == "redis", h
        assert h.get("reason"), h
        a.wait_event("engine_redis_down")
        # and the metrics say so
        _, _, text = http_call(a.port, "GET", "/metrics")
        text = text.decode()
        assert "\nholdfast_engine_up 0\n" in text, text[:300]
        n = [l for l in text.splitlines() if l.startswith("holdfast_engine_disconnects_total ")]
        assert n and float(n[0].split()[1]) >= 2, n
        # publishing fails fast with a temporary error, it does not hang
        t0 = time.time()
        r = api(a, "publish", {"channel": "h:f", "data": 2})
        assert r["error"]["code"] == 100, r
        # server API errors are {code, message} (reference 8.2): no temporary
        assert set(r["error"]) == {"code", "message"} and "retry" in r["error"]["message"], r
        assert time.time() - t0 < 1.5
        # a client's recovering subscribe gets a temporary error too
        d = client(a, "d")
        r = d.call("subscribe", {"channel": "h:f", "recover": True, "recoverable": True,
                                 "offset": 1, "epoch": sub["epoch"]})
        assert r["error"]["code"] == 100 and r["error"].get("temporary") is True, r
        # Redis comes back empty: the node reconnects, the subscriber learns its
        # stream position is gone (insufficient state), resubscribing works
        rd.start()
        wait_until(lambda: engine_up(a), 5, "engine back")
        p = c.push(lambda p: "unsubscribe" in p, timeout=5)
        assert p["channel"] == "h:f" and p["unsubscribe"]["code"] == 2500, p
        res = c.ok("subscribe", {"channel": "h:f", "recover": True, "recoverable": True,
                                 "offset": 1, "epoch": sub["epoch"]})
        assert not res.get("recovered") and res["epoch"] != sub["epoch"], res
        assert result(a, "publish", {"channel": "h:f", "data": 3})["offset"] == 1
        assert c.pubs("h:f", 1)[0]["data"] == 3
        c.close()
        d.close()
        a.stop()
        a = None
    finally:
        if a:
            a.kill()
        rd.close()


def test_redis_paused_times_out_then_resumes():
    rd = RedisServer()
    a = None
    try:
        a = nodes(1, rd)[0]
        c = client(a)
        c.ok("subscribe", {"channel": "h:p", "recoverable": True})
        result(a, "publish", {"channel": "h:p", "data": 1})
        assert c.pubs("h:p", 1)[0]["offset"] == 1
        rd.pause()  # a Redis that answers nothing: only timeouts can tell
        t0 = time.time()
        r = api(a, "publish", {"channel": "h:p", "data": 2})
        took = time.time() - t0
        assert r["error"]["code"] == 100, r
        assert 0.5 < took < 3.0, took  # io_timeout 1s
        wait_until(lambda: not engine_up(a), 4, "health degraded")
        rd.resume()
        wait_until(lambda: engine_up(a), 6, "engine back")
        # the data survived the pause; publication 2 may have been applied
        # by Redis after all (it was in its socket buffer): the subscriber
        # then gets it in order, or learns it may have missed it (2500)
        r = result(a, "publish", {"channel": "h:p", "data": 3})
        assert r["offset"] in (2, 3), r
        offs = []
        while True:
            p = c.push(lambda p: "pub" in p or "unsubscribe" in p, timeout=6)
            if "unsubscribe" in p:
                assert p["unsubscribe"]["code"] == 2500, p
                break
            offs.append(p["pub"]["offset"])
            if p["pub"]["data"] == 3:
                assert offs == list(range(2, r["offset"] + 1)), offs
                break
        c.close()
        a.stop()
        a = None
    finally:
        if a:
            a.kill()
        rd.close()


def test_pubsub_connections_killed_under_fire_lose_nothing_silently():
    """CLIENT KILL TYPE pubsub while publishing: every subscriber gets every
    publication in order, or is told (2500) and recovers the rest."""
    with RedisServer() as rd, running(2, rd) as (a, b):
        subs = [client(a, "s%d" % i) for i in range(3)]
        state = []
        for c in subs:
            r = c.ok("subscribe", {"channel": "h:k", "recoverable": True})
            state.append({"epoch": r["epoch"], "offs": []})
        n = 60
        for i in range(1, n + 1):
            result(b, "publish", {"channel": "h:k", "data": i})
            if i in (15, 40):
                rd.cmd("CLIENT", "KILL", "TYPE", "pubsub")
            time.sleep(0.005)
        told = 0
        for c, st in zip(subs, state):
            while not st["offs"] or st["offs"][-1] < n:
                p = c.push(lambda p: "pub" in p or "unsubscribe" in p, timeout=6)
                if "pub" in p:
                    off = p["pub"]["offset"]
                    assert not st["offs"] or off == st["offs"][-1] + 1, (st["offs"][-3:], off)
                    st["offs"].append(off)
                    continue
                assert p["unsubscribe"]["code"] == 2500, p
                told += 1
                last = st["offs"][-1] if st["offs"] else 0
                for _ in range(50):  # as an SDK does: retry a temporary error
                    r = c.call("subscribe", {"channel": "h:k", "recoverable": True,
                                             "recover": True, "offset": last,
                                             "epoch": st["epoch"]})
                    if "error" not in r:
                        break
                    assert r["error"].get("temporary") is True, r
                    time.sleep(0.1)
                res = r["subscribe"]
                assert res["recovered"] is True, res
                st["offs"] += [q["offset"] for q in res.get("publications", [])]
            assert st["offs"] == list(range(1, n + 1)), st["offs"]
        print("  subscribers told to recover: %d" % told)
        a.wait_event("engine_redis_down")
        for c in subs:
            c.close()


def test_scripts_flushed_are_loaded_again():
    with RedisServer() as rd:
        a = nodes(1, rd)[0]
        try:
            assert result(a, "publish", {"channel": "h:s", "data": 1})["offset"] == 1
            rd.cmd("SCRIPT", "FLUSH")
            r = api(a, "publish", {"channel": "h:s", "data": 2})
            assert r.get("result", {}).get("offset") == 2 or r["error"]["code"] == 100, r
            wait_until(lambda: "result" in api(a, "publish", {"channel": "h:s", "data": 3}), 3,
                       "publishing works again")
        finally:
            a.stop()


def sentinel_config(ss):
    c = config(ss.master)
    r = c["engine"]["redis"]
    del r["address"]
    r["sentinel_address"] = [ss.address]
    r["sentinel_master_name"] = "hfmaster"
    return c


def test_sentinel_failover_is_followed():
    """Sentinel mode: the master comes from the sentinel; when the master is
    killed and the replica promoted, publishing works again through the new
    master, and the subscriber gets every acknowledged publication in order
    or is told to recover."""
    with RedisSentinelSet() as ss:
        a = Server(config=sentinel_config(ss), workers=2)
        try:
            wait_until(lambda: engine_up(a), 5, "engine up through the sentinel")
            a.wait_event("engine_redis_master", lambda ev: ev["address"].endswith(":%d" % ss.master.port))
            c = client(a)
            sub = c.ok("subscribe", {"channel": "h:sent", "recoverable": True})
            acked = []
            for i in range(1, 11):
                acked.append(result(a, "publish", {"channel": "h:sent", "data": i})["offset"])
            ss.master.stop()  # SIGKILL: the sentinel promotes the replica
            deadline = time.time() + 20
            errors = 0
            while time.time() < deadline and len(acked) < 30:
                r = api(a, "publish", {"channel": "h:sent", "data": len(acked) + 1,
                                       "idempotency_key": "k%d" % (len(acked) + 1)})
                if "error" in r:
                    assert r["error"]["code"] == 100, r
                    errors += 1
                    time.sleep(0.1)
                    continue
                acked.append(r["result"]["offset"])
            assert len(acked) == 30, "publishing did not come back after the failover (%d errors)" % errors
            assert ss.master_port() == ss.replica.port
            a.wait_event("engine_redis_master", lambda ev: ev["address"].endswith(":%d" % ss.replica.port))
            # the subscriber: everything in order, or told (2500) and then recovers
            got, told = [], False
            while len(got) < 30:
                p = c.push(lambda p: "pub" in p or "unsubscribe" in p, timeout=8)
                if "unsubscribe" in p:
                    assert p["unsubscribe"]["code"] == 2500, p
                    told = True
                    for _ in range(50):
                        r = c.call("subscribe", {"channel": "h:sent", "recoverable": True, "recover": True,
                                                 "offset": got[-1] if got else 0, "epoch": sub["epoch"]})
                        if "error" not in r:
                            break
                        time.sleep(0.1)
                    res = r["subscribe"]
                    assert res.get("recovered") or res["epoch"] != sub["epoch"], res
                    if not res.get("recovered"):
                        break  # told it cannot: the replica had not received everything
                    got += [q["data"] for q in res.get("publications", [])]
                    continue
                got.append(p["pub"]["data"])
            if len(got) == 30:
                assert got == list(range(1, 31)), got
            print("  publish errors during the failover: %d; subscriber told to recover: %s" % (errors, told))
            c.close()
            a.stop()
            a = None
        finally:
            if a:
                a.kill()


def test_sentinel_configuration_errors():
    with RedisServer() as rd:
        c = config(rd)
        c["engine"]["redis"]["sentinel_address"] = ["127.0.0.1:1"]
        try:
            s = Server(config=c)
        except AssertionError as e:
            assert "sentinel_master_name" in str(e), e
        else:
            s.kill()
            raise AssertionError("started without sentinel_master_name")


def cluster_config(cl):
    c = config(cl.nodes[0])
    r = c["engine"]["redis"]
    del r["address"]
    r["cluster_address"] = cl.seeds[:2]  # seeds: any nodes; the rest is discovered
    return c


def cluster_nodes(n, cl, workers=2):
    srvs = [Server(config=cluster_config(cl), workers=workers) for _ in range(n)]
    for s in srvs:
        wait_until(lambda: engine_up(s), 8, "engine up (cluster layout known)")
    return srvs


def test_cluster_nodes_share_channels_over_every_master():
    with RedisCluster(masters=3) as cl, running(2, cl, start=cluster_nodes) as (a, b):
        a.wait_event("engine_redis_cluster_layout", lambda ev: ev["masters"].count(",") == 2)
        c = client(a)
        chans = ["h:c%d" % i for i in range(24)]
        epochs = {}
        for ch in chans:
            epochs[ch] = c.ok("subscribe", {"channel": ch, "recoverable": True})["epoch"]
        for i in (1, 2):
            for ch in chans:
                assert result(b, "publish", {"channel": ch, "data": [ch, i]})["offset"] == i
        for ch in chans:
            assert [p["data"][1] for p in c.pubs(ch, 2)] == [1, 2]
        # the streams are spread over every master, each channel's keys on one
        sizes = [m.cmd("DBSIZE") for m in cl.nodes]
        assert all(n > 0 for n in sizes), sizes
        # recovery across nodes, history, idempotency, presence, info
        c.ws.close()
        for ch in chans[:4]:
            result(a, "publish", {"channel": ch, "data": [ch, 3], "idempotency_key": "k" + ch})
            result(b, "publish", {"channel": ch, "data": [ch, 3], "idempotency_key": "k" + ch})
        c2 = client(b)
        for ch in chans[:4]:
            res = c2.ok("subscribe", {"channel": ch, "recoverable": True, "recover": True,
                                      "offset": 2, "epoch": epochs[ch]})
            assert res["recovered"] is True and [p["data"][1] for p in res["publications"]] == [3], res
        x = client(a, "x")
        x.ok("subscribe", {"channel": "p:cl"})
        y = client(b, "y")
        y.ok("subscribe", {"channel": "p:cl"})
        wait_until(lambda: result(a, "presence_stats", {"channel": "p:cl"}) ==
                   {"num_clients": 2, "num_users": 2})
        assert x.push(lambda p: "join" in p and p["join"]["info"]["user"] == "y")
        wait_until(lambda: len(result(a, "info", {})["nodes"]) == 2, 6, "both nodes in info")
        ch = result(b, "channels", {"pattern": "p:*"})["channels"]
        assert ch == {"p:cl": {"num_clients": 2}}, ch
        assert result(a, "disconnect", {"user": "y"}) == {}
        y.ws.expect_close(3503)
        for t in (c2, x):
            t.close()


def test_cluster_master_failover_is_followed():
    """A master dies; its replica takes over its slots; holdfast finds the
    new layout: channels on other masters never stop, the dead master's
    channels fail with temporary errors for a while, then work again, and
    their subscriber gets everything in order or is told to recover."""
    with RedisCluster(masters=3, replicas=1) as cl:
        a = cluster_nodes(1, cl)[0]
        try:
            victim = cl.masters()[0]
            chans = ["h:f%d" % i for i in range(40)]
            # a channel on the victim and one elsewhere (keys carry their tags)
            on_victim = next(ch for ch in chans if cl.node_of(stream_key(ch)).port == victim.port)
            elsewhere = next(ch for ch in chans if cl.node_of(stream_key(ch)).port != victim.port)
            c = client(a)
            ep = {}
            for ch in (on_victim, elsewhere):
                ep[ch] = c.ok("subscribe", {"channel": ch, "recoverable": True})["epoch"]
                for i in range(1, 6):
                    result(a, "publish", {"channel": ch, "data": i})
            victim.stop()
            t0 = time.time()
            n_victim, n_else, errors = 5, 5, 0
            while time.time() - t0 < 25 and n_victim < 15:
                r = api(a, "publish", {"channel": elsewhere, "data": n_else + 1})
                if "result" in r:
                    n_else += 1
                r = api(a, "publish", {"channel": on_victim, "data": n_victim + 1,
                                       "idempotency_key": "v%d" % (n_victim + 1)})
                if "error" in r:
                    assert r["error"]["code"] == 100, r
                    errors += 1
                    time.sleep(0.1)
                else:
                    n_victim += 1
            assert n_victim == 15, "the replica's slots never came back (%d errors)" % errors
            assert errors > 0
            a.wait_event("engine_redis_cluster_layout", lambda ev: str(victim.port) not in ev["masters"])
            for ch, n in ((elsewhere, n_else), (on_victim, n_victim)):
                got, told = [], False
                while len(got) < n:
                    p = c.push(lambda p: p.get("channel") == ch and ("pub" in p or "unsubscribe" in p), timeout=8)
                    if "unsubscribe" in p:
                        assert p["unsubscribe"]["code"] == 2500, p
                        told = True
                        for _ in range(60):
                            r = c.call("subscribe", {"channel": ch, "recoverable": True, "recover": True,
                                                     "offset": len(got), "epoch": ep[ch]})
                            if "error" not in r:
                                break
                            time.sleep(0.1)
                        res = r["subscribe"]
                        if not res.get("recovered"):
                            break  # told it cannot: the replica lacked the last writes
                        got += [q["data"] for q in res.get("publications", [])]
                        continue
                    got.append(p["pub"]["data"])
                if len(got) == n:
                    assert got == list(range(1, n + 1)), (ch, got)
                print("  %s: %d publications, %d errors while failing over, told to recover: %s"
                      % ("victim" if ch == on_victim else "other", n, errors, told))
            c.close()
        finally:
            a.stop()


def stream_key(ch):
    """The stream key the server uses for ch (FNV-1a 64 hash tag)."""
    h = 14695981039346656037
    for byte in ch.encode():
        h = ((h ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "hf.stream.{%016x}%s" % (h, ch)


def test_cluster_resharding_moves_a_channel():
    """A channel's slot is migrated to another master while it is in use:
    holdfast follows the MOVED redirection to the new layout, listens on the
    new master and keeps the subscriber's stream whole."""
    with RedisCluster(masters=3) as cl:
        a = cluster_nodes(1, cl)[0]
        try:
            ch = "h:move"
            c = client(a)
            ep = c.ok("subscribe", {"channel": ch, "recoverable": True})["epoch"]
            for i in range(1, 6):
                result(a, "publish", {"channel": ch, "data": i})
            key = stream_key(ch)
            slot = cl.nodes[0].cmd("CLUSTER", "KEYSLOT", key)
            src = cl.node_of(key)
            dst = next(m for m in cl.masters() if m.port != src.port)
            src_id, dst_id = src.cmd("CLUSTER", "MYID"), dst.cmd("CLUSTER", "MYID")
            dst.cmd("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            src.cmd("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            keys = src.cmd("CLUSTER", "GETKEYSINSLOT", slot, 1000)
            assert key in keys, keys
            src.cmd("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", *keys)
            for m in cl.masters():
                m.cmd("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
            n, errors = 5, 0
            deadline = time.time() + 15
            while n < 15 and time.time() < deadline:
                r = api(a, "publish", {"channel": ch, "data": n + 1, "idempotency_key": "m%d" % (n + 1)})
                if "error" in r:
                    assert r["error"]["code"] == 100, r
                    errors += 1
                    time.sleep(0.1)
                    continue
                n += 1
                assert r["result"]["offset"] == n and r["result"]["epoch"] == ep, r
            assert n == 15, "publishing did not follow the move (%d errors)" % errors
            a.wait_event("engine_redis_cluster_layout")
            got = []
            while len(got) < 15:
                p = c.push(lambda p: "pub" in p or "unsubscribe" in p, timeout=8)
                if "unsubscribe" in p:
                    assert p["unsubscribe"]["code"] == 2500, p
                    res = c.ok("subscribe", {"channel": ch, "recoverable": True, "recover": True,
                                             "offset": len(got), "epoch": ep})
                    assert res["recovered"] is True, res
                    got += [q["data"] for q in res.get("publications", [])]
                    continue
                got.append(p["pub"]["data"])
            assert got == list(range(1, 16)), got
            print("  publish errors while moving: %d" % errors)
            c.close()
        finally:
            a.stop()


def test_node_keeps_up_with_its_own_publishing():
    """A publisher on a node that publishes as fast as the node accepts must
    not outrun the node's own PUB/SUB reading: Redis would drop the PUB/SUB
    connection once its output buffer for it is full (here 256 KiB), losing
    publications of channels without history. The node reads its PUB/SUB
    connection as it publishes, so nothing is dropped and nothing lost."""
    with RedisServer(args=["--client-output-buffer-limit", "pubsub 256kb 128kb 5"]) as rd:
        a = nodes(1, rd, workers=1)[0]
        try:
            subs = [client(a, "s%d" % i) for i in range(4)]
            for i, c in enumerate(subs):
                c.ok("subscribe", {"channel": "fast%d" % i})
            got = [0] * len(subs)
            stop = threading.Event()

            def reader(i):
                c = subs[i]
                while not stop.is_set() or c.pending:
                    try:
                        p = c.push(lambda p: "pub" in p, timeout=0.5)
                    except AssertionError:
                        if stop.is_set():
                            return
                        continue
                    assert p["pub"]["data"] == got[i] + 1, (i, p, got[i])
                    got[i] += 1
            threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(len(subs))]
            for t in threads:
                t.start()
            sent = [0] * len(subs)
            t0 = time.time()
            while time.time() - t0 < 3:
                cmds = []
                for k in range(400):
                    i = k % len(subs)
                    sent[i] += 1
                    cmds.append({"publish": {"channel": "fast%d" % i, "data": sent[i]}})
                r = api(a, "batch", {"commands": cmds})
                assert all("error" not in x for x in r["replies"]), r["replies"][:3]
            wait_until(lambda: got == sent, 15, "every publication delivered")
            stop.set()
            for t in threads:
                t.join(5)
            assert not a.events("engine_redis_down"), a.events("engine_redis_down")
            print("  %d publications in 3 s, all delivered" % sum(sent))
            for c in subs:
                c.close()
        finally:
            a.stop()


def test_unsupported_redis_setups_are_refused_at_start():
    with RedisServer() as rd:
        for extra, word in (({"tls": {"enabled": True}}, "tls"),
                            ({"cluster_address": ["127.0.0.1:7000"],
                              "sentinel_address": ["127.0.0.1:26379"],
                              "sentinel_master_name": "m"}, "exclude")):
            try:
                s = Server(config=config(rd, **extra))
            except AssertionError as e:
                assert word in str(e).lower(), e
                continue
            s.kill()
            raise AssertionError("started with %r" % extra)


def test_engine_down_at_start_is_reported_and_heals():
    port = None
    with RedisServer() as probe:
        port = probe.port  # a port nothing listens on once probe stops
    rd_cfg = type("R", (), {"address": "127.0.0.1:%d" % port})()
    a = Server(config=config(rd_cfg))
    try:
        st, h = health(a)
        assert h["status"] == "degraded", h
        c = client(a)
        r = c.call("subscribe", {"channel": "h:z", "recoverable": True})
        assert r["error"]["code"] == 100 and r["error"].get("temporary") is True, r
        with RedisServer(port=port):
            wait_until(lambda: engine_up(a), 6, "engine up")
            assert "error" not in c.call("subscribe", {"channel": "h:z", "recoverable": True})
            assert result(a, "publish", {"channel": "h:z", "data": 1})["offset"] == 1
            assert c.pubs("h:z", 1)[0]["data"] == 1
            c.close()
            a.stop()
            a = None
    finally:
        if a:
            a.kill()


if __name__ == "__main__":
    run_module("redis", globals(), os.environ.get("ONLY"))
