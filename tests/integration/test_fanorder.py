# SPDX-License-Identifier: MIT
"""Delivery order under subscriber-major fan-out (issue 14): publications
that reach a worker in one loop iteration (an /api/batch, pipelined
/api/publish requests, messages from another worker) are swept over the
channel's subscribers once, each subscriber getting all of them before the
next one is touched. Every subscriber must still see exactly the
publication order: several publications to one channel in one batch, two
channels interleaved (a subscriber of both sees the batch order), JSON and
Protobuf subscribers of one channel, binary data inside a run (3506 for the
JSON subscriber after what came before), positioned subscribers with
consecutive offsets, pipelined requests, two workers, and a slow subscriber
that hits its queue limit in the middle of a batch is closed with 3008
while the others keep every publication in order."""
import json
import socket
import time

from harness import (WS, ApiKit, Server, metric, read_http_response, rt_send, run_module,
                     upgrade_request)
from test_protobuf import PB, parse, subscribe_cmd
from test_protobuf import SECRET, API_KEY

KIT = ApiKit(SECRET, API_KEY)
PATH = "/connection/websocket"


def config(**client):
    c = {"client": {"token": {"hmac_secret_key": SECRET}},
         "http_api": {"key": API_KEY},
         "websocket": {"close_timeout": "200ms"},
         "channel": {"without_namespace": {"allow_subscribe_for_client": True,
                                           "allow_publish_for_client": True},
                     "namespaces": [
                         {"name": "h", "history_size": 200, "history_ttl": "300s",
                          "allow_subscribe_for_client": True, "force_recovery": True}]}}
    c["client"].update(client)
    return c


def subscriber(srv, *channels):
    c = KIT.client(srv)
    for ch in channels:
        c.ok("subscribe", {"channel": ch})
    return c


def batch(srv, pubs):
    """One /api/batch of publish commands [(channel, data)]; all succeed."""
    r = KIT.api(srv, "batch", {"commands": [{"publish": {"channel": ch, "data": d}}
                                            for ch, d in pubs]})
    assert len(r["replies"]) == len(pubs), r
    assert all("publish" in x and "error" not in x for x in r["replies"]), r
    return r


def pushes(c, n, timeout=10.0):
    """The next n publication pushes of c as (channel, pub), in arrival order."""
    out = []
    while len(out) < n:
        p = c.push(lambda p: "pub" in p, timeout)
        out.append((p["channel"], p["pub"]))
    return out


def test_batch_into_one_channel_keeps_order_for_every_subscriber():
    with Server(config=config()) as srv:
        subs = [subscriber(srv, "one") for _ in range(4)]
        for rnd in range(3):  # several runs, and one longer than a run (64)
            n = (40, 100, 7)[rnd]
            batch(srv, [("one", {"r": rnd, "n": i}) for i in range(n)])
            for c in subs:
                got = [(p["data"]["r"], p["data"]["n"]) for _, p in pushes(c, n)]
                assert got == [(rnd, i) for i in range(n)], got
        for c in subs:
            c.silent(0.2)
            c.close()


def test_two_channels_interleaved_in_one_batch():
    with Server(config=config()) as srv:
        a, b, both = subscriber(srv, "ca"), subscriber(srv, "cb"), subscriber(srv, "ca", "cb")
        order = []
        for i in range(30):  # a a b a b b ... : runs of one and of several
            order.append(("ca" if (i * 7) % 5 < 3 else "cb", i))
        batch(srv, [(ch, {"i": i}) for ch, i in order])
        want_a = [i for ch, i in order if ch == "ca"]
        want_b = [i for ch, i in order if ch == "cb"]
        assert [p["data"]["i"] for _, p in pushes(a, len(want_a))] == want_a
        assert [p["data"]["i"] for _, p in pushes(b, len(want_b))] == want_b
        # a subscriber of both gets the batch's own order, channel by channel
        got = [(ch, p["data"]["i"]) for ch, p in pushes(both, len(order))]
        assert got == order, got
        for c in (a, b, both):
            c.close()


def test_json_and_protobuf_subscribers_of_one_channel():
    with Server(config=config()) as srv:
        pbs = []
        for _ in range(2):
            c = PB(srv.port)
            c.connected()
            c.send(subscribe_cmd(2, "mix"))
            c.reply(2)
            pbs.append(c)
        js = [subscriber(srv, "mix") for _ in range(2)]
        n = 50
        batch(srv, [("mix", {"n": i}) for i in range(n)])
        for c in js:
            assert [p["data"]["n"] for _, p in pushes(c, n)] == list(range(n))
        for c in pbs:
            got = [parse(c.push()[4][0])[4][0] for _ in range(n)]
            assert got == [b'{"n":%d}' % i for i in range(n)], got
            c.ws.close()
        for c in js:
            c.close()


def test_binary_data_inside_a_run():
    """A run with binary data (b64data that is not JSON) in its middle: the
    Protobuf subscriber gets all of it in order; the JSON subscriber gets
    what came before, then is closed with 3506 as for a single push."""
    import base64
    with Server(config=config()) as srv:
        pb = PB(srv.port)
        pb.connected()
        pb.send(subscribe_cmd(2, "bin"))
        pb.reply(2)
        js = subscriber(srv, "bin")
        blob = bytes(range(256))
        cmds = [{"publish": {"channel": "bin", "data": {"n": i}}} for i in range(3)]
        cmds.append({"publish": {"channel": "bin", "b64data": base64.b64encode(blob).decode()}})
        cmds += [{"publish": {"channel": "bin", "data": {"n": i}}} for i in range(4, 6)]
        r = KIT.api(srv, "batch", {"commands": cmds})
        assert all("error" not in x for x in r["replies"]), r
        got = [parse(pb.push()[4][0])[4][0] for _ in range(6)]
        assert got == [b'{"n":0}', b'{"n":1}', b'{"n":2}', blob, b'{"n":4}', b'{"n":5}'], got
        assert [p["data"]["n"] for _, p in pushes(js, 3)] == [0, 1, 2]
        code, reason = js.expect_close(3506)
        assert "binary data for a JSON client" in reason, reason
        pb.ws.close()


def test_positioned_subscribers_get_consecutive_offsets():
    with Server(config=config()) as srv:
        subs = [subscriber(srv, "h:pos") for _ in range(3)]
        batch(srv, [("h:pos", {"n": i}) for i in range(80)])
        batch(srv, [("h:pos", {"n": 80 + i}) for i in range(20)])
        for c in subs:
            got = [p for _, p in pushes(c, 100)]
            assert [p["data"]["n"] for p in got] == list(range(100)), got[:5]
            assert [p["offset"] for p in got] == list(range(1, 101)), [p["offset"] for p in got]
            c.close()


def test_pipelined_publish_requests():
    with Server(config=config()) as srv:
        subs = [subscriber(srv, "pipe") for _ in range(3)]
        n = 40
        reqs = b""
        for i in range(n):
            body = json.dumps({"channel": "pipe", "data": {"n": i}}).encode()
            reqs += (b"POST /api/publish HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
                     b"Content-Length: %d\r\n\r\n" % (API_KEY.encode(), len(body))) + body
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(reqs)  # one write: the server reads them together
        buf, deadline = b"", time.time() + 10
        while buf.count(b"HTTP/1.1 ") < n and time.time() < deadline:
            buf += s.recv(65536)
        assert buf.count(b"HTTP/1.1 200 ") == n, buf[:300]
        s.close()
        for c in subs:
            assert [p["data"]["n"] for _, p in pushes(c, n)] == list(range(n))
            c.close()


def test_two_workers_keep_order():
    with Server(config=config(), workers=2) as srv:
        subs = [subscriber(srv, "w", "h:w") for _ in range(6)]  # spread over both
        order = [("w" if i % 3 else "h:w", {"i": i}) for i in range(60)]
        batch(srv, order)
        for c in subs:
            got = pushes(c, len(order))
            for ch in ("w", "h:w"):
                want = [d["i"] for c2, d in order if c2 == ch]
                assert [p["data"]["i"] for c2, p in got if c2 == ch] == want, (ch, got)
            c.close()


def test_slow_subscriber_closed_mid_batch_others_keep_order():
    # the hard limit is what a batch crosses: the slow one is closed in the
    # middle of a sweep; the fast ones read each batch before the next
    with Server(config=config(queue_max_size="64KiB", queue_hard_limit="512KiB",
                              queue_grace="60s")) as srv:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(5)
        s.connect(("127.0.0.1", srv.port))
        req, _ = upgrade_request(PATH)
        s.sendall(req)
        st, hdrs, _, rest = read_http_response(s)
        assert st == 101, st
        slow_id = hdrs["x-holdfast-connection-id"]
        s.sendall(WS.frame(0x1, json.dumps({"id": 1, "connect": {"token": KIT.token()}}) + "\n" +
                           json.dumps({"id": 2, "subscribe": {"channel": "slow"}})))
        while b'"id":2' not in rest:  # subscribed; then it never reads again
            rest += s.recv(4096)
        fast = [subscriber(srv, "slow") for _ in range(3)]
        blob, per, total, closed = "x" * 4000, 25, 0, []
        deadline = time.time() + 20
        while not closed and time.time() < deadline:
            batch(srv, [("slow", {"n": total + i, "b": blob}) for i in range(per)])
            for c in fast:
                got = [p["data"]["n"] for _, p in pushes(c, per)]
                assert got == list(range(total, total + per)), got
            total += per
            closed = [e for e in srv.events("closed") if e.get("conn_id") == slow_id]
        assert closed, "slow subscriber not closed after %d publications" % total
        ev = closed[0]
        assert ev["code"] == 3008 and ev["who"] == "server", ev
        # the others go on, in order
        batch(srv, [("slow", {"n": total + i, "b": ""}) for i in range(per)])
        for c in fast:
            assert [p["data"]["n"] for _, p in pushes(c, per)] == list(range(total, total + per))
            c.silent(0.2)
            c.close()
        s.close()



def test_flush_in_portions_keeps_order_and_reads_input_between():
    """http_server.flush_budget: a sweep is written a few connections per
    loop iteration, with input read between portions (publications join
    the connections not yet written). Every subscriber still gets every
    publication once and in order, with the io_uring flush and with
    sendmsg, while subscribers vanish (reset) in the middle of a sweep."""
    for uring in (True, False):
        cfg = config()
        cfg["http_server"] = {"flush_budget": 2, "io_uring_send": uring}
        with Server(config=cfg) as srv:
            assert metric(srv, "holdfast_flush_yields_total") == 0
            subs = [subscriber(srv, "por") for _ in range(10)]
            gone = []
            for _ in range(4):  # raw subscribers reset mid-stream
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                req, _ = upgrade_request(PATH)
                s.sendall(req)
                st, _, _, rest = read_http_response(s)
                assert st == 101, st
                s.sendall(WS.frame(0x1, json.dumps({"id": 1, "connect": {"token": KIT.token()}})
                                   + "\n" + json.dumps({"id": 2, "subscribe": {"channel": "por"}})))
                while b'"id":2' not in rest:
                    rest += s.recv(4096)
                gone.append(s)
            n, per = 0, 25
            pipe = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            for rnd in range(6):
                reqs = b""
                for i in range(per):  # pipelined: read between portions
                    body = json.dumps({"channel": "por", "data": {"n": n + i}}).encode()
                    reqs += (b"POST /api/publish HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
                             b"Content-Length: %d\r\n\r\n" % (API_KEY.encode(), len(body))) + body
                half = len(reqs) // 2
                pipe.sendall(reqs[:half])
                if gone and rnd % 2:
                    s = gone.pop()
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    s.close()  # RST while its output may wait in the flush list
                pipe.sendall(reqs[half:])
                buf, deadline = b"", time.time() + 10
                while buf.count(b"HTTP/1.1 ") < per and time.time() < deadline:
                    buf += pipe.recv(65536)
                assert buf.count(b"HTTP/1.1 200 ") == per, buf[:300]
                n += per
            pipe.close()
            for c in subs:
                assert [p["data"]["n"] for _, p in pushes(c, n)] == list(range(n))
            assert metric(srv, "holdfast_flush_yields_total") > 0
            time.sleep(0.2)  # a duplicate would have arrived by now
            for c in subs:
                c.silent(0.01)
                c.close()
            for s in gone:
                s.close()


if __name__ == "__main__":
    import sys
    sys.exit(run_module("fanorder", globals(), sys.argv[1] if len(sys.argv) > 1 else None))
