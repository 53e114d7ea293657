# SPDX-License-Identifier: MIT
"""Message rate limits and the per-user connection limit, against the real
binary with raw protocol clients: a connection over client.rate_limit.*
gets error 111 (temporary) and stays connected; commands refused in one
burst past disconnect_after close it with 3013, logged once per burst;
bytes, publish and subscribe buckets per connection; one user's bucket
shared by its connections across workers; one channel's publish bucket
shared by every publisher; client.user_connection_limit closes the extra
connection with 3504 and frees the slot when one ends. Every refusal is
counted in holdfast_rate_limited_total{limit=...}."""
import os
import resource
import socket
import sys
import time

from harness import (RT, Server, connect, jwt_hs, read_http_response, read_to_eof,
                     run_module, upgrade_request, wait_until)
from harness import metric as sample

SECRET = "rl-secret-0123456789"


def config(**rl):
    client = {"token": {"hmac_secret_key": SECRET}}
    ucl = rl.pop("user_connection_limit", None)
    if ucl is not None:
        client["user_connection_limit"] = ucl
    client["rate_limit"] = rl
    return {"client": client,
            "channel": {"without_namespace": {"allow_subscribe_for_client": True,
                                              "allow_publish_for_client": True}}}


def client(srv, user="42"):
    c = RT(srv.port)
    c.connect(jwt_hs({"sub": user}, SECRET))
    return c


def replies(c, ids):
    return [c.reply(i) for i in ids]


def batch(c, key, bodies):
    """One frame with one command per body; returns the replies in order."""
    ids, cmds = [], []
    for b in bodies:
        i = c.new_id()
        ids.append(i)
        cmds.append({"id": i, key: b})
    c.send(*cmds)
    return replies(c, ids)


def refused(r):
    e = r.get("error")
    return bool(e) and e.get("code") == 111


def metric(srv, limit):
    return sample(srv, 'holdfast_rate_limited_total{limit="%s"}' % limit)


def until_accepted(c, key, body, timeout=5.0):
    """The bucket refills: retry until the command is accepted (bounded)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = c.call(key, body)
        if not refused(r):
            return r
        time.sleep(0.1)
    raise AssertionError("still refused after %.1fs" % timeout)


def test_command_rate_gives_111_and_the_connection_stays():
    with Server(config=config(command_rate=1, command_burst=5, disconnect_after=0)) as srv:
        c = client(srv)  # connect took one token: four left (five if one refilled)
        rs = batch(c, "publish", [{"channel": "a", "data": {"n": i}} for i in range(8)])
        flags = [refused(r) for r in rs]
        n_ok = flags.count(False)
        assert n_ok in (4, 5) and flags == [False] * n_ok + [True] * (8 - n_ok), rs
        assert all("publish" in r for r in rs[:n_ok]), rs
        for r in rs[n_ok:]:
            assert r["error"] == {"code": 111, "message": "too many requests",
                                  "temporary": True}, r
        assert metric(srv, "command") == 8 - n_ok
        evs = srv.events("rate_limited")
        assert len(evs) == 1 and evs[0].get("limit") == "command", evs
        assert evs[0].get("user") == "42" and evs[0].get("level") == "warn", evs[0]
        # the connection stays: once the bucket refills, commands go through
        assert "publish" in until_accepted(c, "publish", {"channel": "a", "data": {}})
        c.close()


def test_sustained_abuse_is_disconnected_with_3013_and_logged_once():
    with Server(config=config(command_rate=2, disconnect_after=5)) as srv:
        c = client(srv)
        ids = [c.new_id() for _ in range(20)]
        c.send(*[{"id": i, "presence_stats": {"channel": "a"}} for i in ids])
        c.expect_close(3013)
        ev = srv.wait_event("rate_limit_disconnect")
        assert ev.get("limit") == "command" and ev.get("refused") == 6, ev
        assert len(srv.events("rate_limited")) == 1
        assert metric(srv, "command") == 6
        other = client(srv)  # others are not affected
        assert "publish" in other.call("publish", {"channel": "a", "data": {}})
        other.close()


def test_bytes_rate_counts_command_bytes():
    with Server(config=config(bytes_rate=1000, disconnect_after=0)) as srv:
        c = client(srv)
        big = {"channel": "a", "data": {"x": "y" * 300}}
        rs = batch(c, "publish", [big, big, big])
        assert [refused(r) for r in rs] == [False, False, True], rs
        assert metric(srv, "bytes") == 1
        small = c.call("presence_stats", {"channel": "a"})
        assert not refused(small), small
        c.close()


def test_publish_and_subscribe_have_their_own_rates():
    with Server(config=config(publish_rate=2, subscribe_rate=1, disconnect_after=0)) as srv:
        c = client(srv)
        rs = batch(c, "publish", [{"channel": "a", "data": {}}] * 3)  # one frame
        assert [refused(r) for r in rs] == [False, False, True], rs
        rs = batch(c, "subscribe", [{"channel": "s1"}, {"channel": "s2"}])
        assert [refused(r) for r in rs] == [False, True], rs
        # other commands are not held back by those buckets
        assert not refused(c.call("presence_stats", {"channel": "a"}))
        assert metric(srv, "publish") == 1 and metric(srv, "subscribe") == 1
        c.close()


def test_one_user_shares_a_bucket_across_connections_and_workers():
    with Server(config=config(user_command_rate=1, disconnect_after=0), workers=2) as srv:
        conns = [client(srv, "u1") for _ in range(4)]  # connect is not a user command
        other = client(srv, "u2")
        first = batch(conns[0], "presence_stats", [{"channel": "a"}])
        assert not refused(first[0]), first
        # the user's one token a second is spent: the others share that bucket
        later = []
        for c in conns[1:]:
            later += batch(c, "presence_stats", [{"channel": "a"}] * 2)
        n = sum(1 for r in later if refused(r))
        assert n >= 4, later  # at most two refills happened meanwhile
        assert metric(srv, "user") == n
        # another user has its own bucket
        assert not refused(batch(other, "presence_stats", [{"channel": "a"}])[0])
        for c in conns + [other]:
            c.close()


def test_channel_publish_rate_is_shared_by_every_publisher():
    with Server(config=config(channel_publish_rate=1, disconnect_after=0), workers=2) as srv:
        a, b = client(srv, "a"), client(srv, "b")
        ra = batch(a, "publish", [{"channel": "room", "data": {}}])
        rb = batch(b, "publish", [{"channel": "room", "data": {}}] * 2)
        assert not refused(ra[0]) and refused(rb[1]), ra + rb
        n = sum(1 for r in rb if refused(r))
        rc = batch(b, "publish", [{"channel": "other", "data": {}}])
        assert not refused(rc[0]), rc
        assert metric(srv, "channel") == n
        a.close()
        b.close()


def test_user_connection_limit_closes_3504_and_frees_the_slot():
    with Server(config=config(user_connection_limit=2), workers=2) as srv:
        c1, c2 = client(srv, "lim"), client(srv, "lim")
        extra = RT(srv.port)
        extra.send({"id": 1, "connect": {"token": jwt_hs({"sub": "lim"}, SECRET)}})
        extra.expect_close(3504)
        ev = srv.wait_event("connect_rejected", lambda e: e.get("reason") == "user connection limit")
        assert ev.get("user") == "lim" and ev.get("limit") == 2, ev
        other = client(srv, "someone-else")  # other users are not limited by it
        anon = RT(srv.port)
        c1.close()

        def reconnects():
            r = RT(srv.port)
            r.send({"id": 1, "connect": {"token": jwt_hs({"sub": "lim"}, SECRET)}})
            try:
                rep = r.reply(1)
            except Exception:  # noqa: BLE001 - closed 3504: the slot is not free yet
                r.close()
                return False
            reconnects.c = r
            return "connect" in rep
        wait_until(reconnects, 5.0, "a free slot after a connection of the user ended")
        for c in (c2, other, anon, reconnects.c):
            c.close()


def upgrade_from(ip, port):
    """One upgrade to the real-time endpoint from source address ip:
    (status, headers, socket)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.bind((ip, 0))
    s.connect(("127.0.0.1", port))
    data, _ = upgrade_request("/connection/websocket")
    s.sendall(data)
    status, hdrs, _, _ = read_http_response(s)
    if status != 101:
        read_to_eof(s)
        s.close()
        return status, hdrs, None
    return status, hdrs, s


def test_accept_rate_per_ip_answers_503_with_a_jittered_retry_after():
    cfg = config()
    cfg["client"].update({"accept_rate_per_ip": 1, "accept_burst_per_ip": 3, "retry_after": 5})
    with Server(config=cfg) as srv:
        results = [upgrade_from("127.0.0.1", srv.port) for _ in range(12)]
        assert [r[0] for r in results[:3]] == [101] * 3, [r[0] for r in results]
        refused = [r for r in results if r[0] == 503]
        assert len(refused) >= 6, [r[0] for r in results]  # 12 upgrades take far less than 6 s
        waits = [int(r[1]["retry-after"]) for r in refused]
        assert all(5 <= w <= 10 for w in waits), waits
        assert len(set(waits)) > 1, "Retry-After must be jittered: %r" % waits
        ev = srv.wait_event("upgrade_rejected")
        assert ev.get("reason") == "accept_rate_limit_per_ip" and ev.get("status") == 503, ev
        # another address has its own bucket
        st, _, s2 = upgrade_from("127.0.0.2", srv.port)
        assert st == 101
        assert metric(srv, "accept") == len(refused)
        for r in results:
            if r[2]:
                r[2].close()
        s2.close()


def test_global_accept_rate_smooths_a_storm_from_every_address():
    cfg = config()
    cfg["client"].update({"accept_rate": 1, "accept_burst": 4})
    with Server(config=cfg, workers=2) as srv:
        results = [upgrade_from("127.0.0.%d" % (1 + i % 5), srv.port) for i in range(12)]
        codes = [r[0] for r in results]
        assert codes[:4] == [101] * 4 and codes.count(503) >= 5, codes
        evs = srv.events("upgrade_rejected")
        assert evs and all(e.get("reason") == "accept_rate_limit" for e in evs), evs
        for r in results:
            if r[2]:
                r[2].close()


def test_near_the_fd_limit_upgrades_get_a_clean_503():
    def low_nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
    # 128 descriptors: new connections past 128 - 32 (headroom) - a few in use get 503
    with Server(config=config(), preexec_fn=low_nofile) as srv:
        held, refused = [], 0
        for _ in range(110):
            st, hdrs, s = upgrade_from("127.0.0.1", srv.port)
            if s:
                held.append(s)
            else:
                assert st == 503 and hdrs.get("retry-after"), (st, hdrs)
                refused += 1
        assert refused and 60 <= len(held) <= 96, (len(held), refused)
        ev = srv.wait_event("upgrade_rejected", lambda e: e.get("reason") == "fd_limit")
        assert ev.get("status") == 503, ev
        assert not srv.events("accept_failed"), "never out of descriptors"
        for s in held[:20]:
            s.close()
        wait_until(lambda: upgrade_from("127.0.0.1", srv.port)[2] is not None, 5.0,
                   "an upgrade after connections were closed")
        for s in held:
            s.close()


if __name__ == "__main__":
    sys.exit(run_module("ratelimit", globals(), os.environ.get("ONLY")))
