# SPDX-License-Identifier: MIT
"""The Protobuf encoding over raw sockets and sub-protocol negotiation on
/connection/websocket (reference 1.1): a supported offer is echoed
(centrifuge-json, centrifuge-protobuf, or cf_protocol=protobuf in the query),
an offer of only unsupported sub-protocols is refused with 400 and a body
naming the supported ones (and logged), no offer means JSON; /echo keeps
RFC 6455's accept-without-one. Protobuf framing: several length-delimited
Commands per binary frame, replies likewise; malformed length prefixes and
messages (truncated varint, length beyond the frame, length over the message
size limit, zero length = pong, garbage, text frame) each get their close
code and a log line; one API publication reaches JSON and Protobuf
subscribers of one channel with the same payload bytes; `holdfast bench -m
fanout --protobuf` works; http_stream and /emulation with
application/octet-stream bodies speak it too."""
import json
import socket
import subprocess

from harness import (BIN, WS, Server, connect, http_call, jwt_hs, read_http_response, rt_recv,
                     rt_send, run_module, upgrade_request)

PATH = "/connection/websocket"
SECRET = "pb-secret-0123456789"


API_KEY = "pb-api-key"


def config(**ws):
    c = {"client": {"token": {"hmac_secret_key": SECRET}},
         "http_api": {"key": API_KEY},
         "channel": {"without_namespace": {"allow_subscribe_for_client": True,
                                           "allow_publish_for_client": True}}}
    if ws:
        c["websocket"] = ws
    return c


# ---- a minimal Protobuf writer/reader for the few messages used here --------

def varint(n):
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def fld(num, value):
    """Field num: an int (varint), bytes/str (length-delimited)."""
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def delimited(*msgs):
    return b"".join(varint(len(m)) + m for m in msgs)


def parse(buf):
    """A message as {field: [values]} (varints as ints, others as bytes)."""
    out, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 2:
            n, i = read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        else:
            raise AssertionError("wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, i
        shift += 7


def split(frame):
    msgs, i = [], 0
    while i < len(frame):
        n, i = read_varint(frame, i)
        msgs.append(parse(frame[i:i + n]))
        i += n
    return msgs


def token(sub="42"):
    return jwt_hs({"sub": sub}, SECRET)


def connect_cmd(cid=1, sub="42"):
    return fld(1, cid) + fld(4, fld(1, token(sub)))  # Command{id, connect{token}}


def subscribe_cmd(cid, ch):
    return fld(1, cid) + fld(5, fld(1, ch))


def publish_cmd(cid, ch, data):
    return fld(1, cid) + fld(7, fld(1, ch) + fld(2, data))


class PB:
    """A raw Protobuf real-time client: binary frames of delimited messages."""

    def __init__(self, port, query="", offer="centrifuge-protobuf", **ws):
        h = {"Sec-WebSocket-Protocol": offer} if offer else {}
        self.ws = WS(port, PATH + query, headers=h, **ws)
        assert self.ws.status == 101, self.ws.status
        self.pending = []

    def send(self, *cmds):
        self.ws.send(0x2, delimited(*cmds))

    def recv(self, timeout=3.0):
        op, data = self.ws.recv_message(timeout)
        assert op == 0x2, "expected a binary message, got opcode %d: %r" % (op, data[:80])
        return split(data)

    def reply(self, cid):
        while True:
            for i, m in enumerate(self.pending):
                if m.get(1, [0])[0] == cid:
                    return self.pending.pop(i)
            self.pending.extend(self.recv())

    def push(self):
        while True:
            for i, m in enumerate(self.pending):
                if 4 in m:
                    return parse(self.pending.pop(i)[4][0])
            self.pending.extend(self.recv())

    def connected(self):
        self.send(connect_cmd())
        r = self.reply(1)
        assert 5 in r, r  # ConnectResult
        return parse(r[5][0])


def expect_violation(srv, payload, code, reason_has, opcode=0x2, **ws):
    c = PB(srv.port, **ws)
    c.connected()
    c.ws.send(opcode, payload)
    got, reason = c.ws.expect_close(code)
    assert reason_has in reason, reason
    if opcode == 0x2:
        srv.wait_event("protocol_violation", lambda e: reason_has in e.get("reason", ""))
    c.ws.close()
    return reason


def upgrade(port, path=PATH, offer=None):
    """Send an upgrade with the offered sub-protocols; return (status,
    headers, body, socket)."""
    h = {"Origin": None}
    h.pop("Origin")
    if offer is not None:
        h["Sec-WebSocket-Protocol"] = offer
    s = connect(port)
    s.sendall(upgrade_request(path, headers=h)[0])
    status, hdrs, body, _ = read_http_response(s)
    return status, hdrs, body, s


def test_unsupported_offer_refused_with_the_supported_list():
    with Server(config=config()) as srv:
        status, hdrs, body, s = upgrade(srv.port, offer="mqtt, wamp.2.json")
        s.close()
        assert status == 400, (status, body)
        text = body.decode()
        assert "centrifuge-json" in text and "mqtt, wamp.2.json" in text, text
        ev = srv.wait_event("upgrade_rejected",
                            lambda e: e.get("reason") == "unsupported_subprotocol")
        assert ev["status"] == 400 and ev["offered"] == "mqtt, wamp.2.json", ev
        assert "hint" in ev, ev


def test_json_offer_echoed_and_no_offer_accepted():
    with Server(config=config()) as srv:
        status, hdrs, _, s = upgrade(srv.port, offer="foo, centrifuge-json")
        s.close()
        assert status == 101 and hdrs.get("sec-websocket-protocol") == "centrifuge-json", hdrs
        status, hdrs, _, s = upgrade(srv.port)
        s.close()
        assert status == 101 and "sec-websocket-protocol" not in hdrs, hdrs


def test_uni_websocket_refuses_foreign_offer():
    cfg = config()
    cfg["uni_websocket"] = {"enabled": True}
    with Server(config=cfg) as srv:
        status, _, body, s = upgrade(srv.port, "/connection/uni_websocket", offer="chat")
        s.close()
        assert status == 400 and b"centrifuge-json" in body, (status, body)


def test_echo_accepts_unknown_offer_without_one():
    # /echo keeps RFC 6455 4.2.2: no overlap -> 101 without the header
    with Server(config=config()) as srv:
        status, hdrs, _, s = upgrade(srv.port, "/echo", offer="mqtt")
        s.close()
        assert status == 101 and "sec-websocket-protocol" not in hdrs, hdrs


# ---- the Protobuf encoding --------------------------------------------------

def test_protobuf_offer_echoed_connect_and_batches():
    with Server(config=config()) as srv:
        c = PB(srv.port)
        assert c.ws.headers.get("sec-websocket-protocol") == "centrifuge-protobuf", c.ws.headers
        res = c.connected()
        assert res[1][0].decode() == c.ws.headers["x-holdfast-connection-id"], res
        ev = srv.wait_event("upgrade_accepted", lambda e: e.get("subprotocol") == "centrifuge-protobuf")
        assert ev["path"] == PATH, ev
        # subscribe + publish in one frame; both replies come back delimited
        c.send(subscribe_cmd(2, "news"), publish_cmd(3, "news", b'{"n": 1}'))
        assert 6 in c.reply(2) and 8 in c.reply(3)
        pub = parse(c.push()[4][0])  # Push.pub
        assert pub[4] == [b'{"n":1}'], pub  # data: the minified JSON text
        c.ws.close()


def test_cf_protocol_query_selects_protobuf():
    with Server(config=config()) as srv:
        c = PB(srv.port, query="?x=1&cf_protocol=protobuf", offer=None)
        assert "sec-websocket-protocol" not in c.ws.headers, c.ws.headers
        c.connected()
        c.ws.close()


def test_zero_length_is_a_pong_and_errors_keep_the_connection():
    with Server(config=config()) as srv:
        c = PB(srv.port)
        c.connected()
        c.ws.send(0x2, b"\x00")  # an empty Command: a pong
        # binary subscribe data: refused (binary publications: test_pbin.py)
        c.send(fld(1, 5) + fld(5, fld(1, "news") + fld(8, b"\xff\x00")))
        err = parse(c.reply(5)[2][0])
        assert err[1] == [107], err
        srv.wait_event("command_rejected", lambda e: "non-JSON" in e.get("reason", ""))
        c.send(fld(1, 6) + fld(13, fld(2, "m")))  # rpc without a proxy: 108
        assert parse(c.reply(6)[2][0])[1] == [108]
        c.ws.close()


def test_malformed_length_prefixes_and_messages():
    with Server(config=config(message_size_limit=1024)) as srv:
        expect_violation(srv, b"\x80\x80", 3501, "truncated length prefix")
        expect_violation(srv, b"\x05ab", 3501, "length beyond the frame")
        expect_violation(srv, varint(5000) + b"x" * 10, 1009, "over the message size limit")
        expect_violation(srv, b"\x03\x0f\x01\x02", 3501, "invalid Protobuf command")
        expect_violation(srv, b"\x02\x08\x07", 3501, "unknown command")  # id 7, no request
        expect_violation(srv, b"{}", 3506, "text frame on a Protobuf connection", opcode=0x1)


def test_api_publication_reaches_json_and_protobuf_subscribers():
    with Server(config=config()) as srv:
        pb = PB(srv.port)
        pb.connected()
        pb.send(subscribe_cmd(2, "mixed"))
        pb.reply(2)
        js = WS(srv.port, PATH)
        rt_send(js, {"id": 1, "connect": {"token": token("7")}},
                {"id": 2, "subscribe": {"channel": "mixed"}})
        got = []
        while len(got) < 2:
            got.extend(rt_recv(js))
        for n in range(3):
            st, _, body = http_call(srv.port, "POST", "/api/publish",
                                    {"channel": "mixed", "data": {"n": n, "s": "\u00e9"}},
                                    {"X-API-Key": API_KEY})
            assert st == 200, body
        for n in range(3):
            pub = parse(pb.push()[4][0])
            want = json.dumps({"n": n, "s": "\u00e9"}, separators=(",", ":"), ensure_ascii=False)
            assert pub[4] == [want.encode()], (pub, want)
        seen = []
        while len(seen) < 3:
            seen.extend(o["push"]["pub"]["data"] for o in rt_recv(js) if "push" in o)
        assert seen == [{"n": n, "s": "\u00e9"} for n in range(3)], seen
        js.close()
        pb.ws.close()


def test_fanout_to_protobuf_subscribers_on_two_workers():
    # the Protobuf variant is built once per publication by whichever worker
    # gets there first; every subscriber on either worker gets the same bytes
    with Server(config=config(), workers=2) as srv:
        subs = []
        for i in range(8):
            c = PB(srv.port)
            c.connected()
            c.send(subscribe_cmd(2, "w2"))
            c.reply(2)
            subs.append(c)
        for n in range(5):
            st, _, body = http_call(srv.port, "POST", "/api/publish",
                                    {"channel": "w2", "data": {"n": n}}, {"X-API-Key": API_KEY})
            assert st == 200, body
        for c in subs:
            got = [parse(c.push()[4][0])[4][0] for _ in range(5)]
            assert got == [b'{"n":%d}' % n for n in range(5)], got
            c.ws.close()


def read_chunk(s, raw):
    """One HTTP chunk's bytes from socket s (raw: bytes already read)."""
    while True:
        if b"\r\n" in raw:
            size, rest = raw.split(b"\r\n", 1)
            n = int(size, 16)
            if len(rest) >= n + 2:
                return rest[:n], rest[n + 2:]
        data = s.recv(65536)
        assert data, "stream closed"
        raw += data


def test_http_stream_and_emulation_in_protobuf():
    cfg = config()
    cfg["http_stream"] = {"enabled": True}
    with Server(config=cfg) as srv:
        body = delimited(connect_cmd())
        s = connect(srv.port)
        s.sendall(b"POST /connection/http_stream HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(body)
                  + body)
        status, hdrs, _, raw = read_http_response(s)
        assert status == 200 and hdrs.get("transfer-encoding") == "chunked", (status, hdrs)
        chunk, raw = read_chunk(s, raw)
        res = parse(split(chunk)[0][5][0])  # Reply.connect
        session, node = res[9][0], res[10][0]
        # a subscribe through /emulation as a Protobuf EmulationRequest
        emu = fld(1, node) + fld(2, session) + fld(3, delimited(subscribe_cmd(2, "hs")))
        st, _, _ = http_call(srv.port, "POST", "/emulation", emu,
                             {"Content-Type": "application/octet-stream"})
        assert st == 204, st
        chunk, raw = read_chunk(s, raw)
        rep = split(chunk)[0]
        assert rep[1] == [2] and 6 in rep, rep
        # not an EmulationRequest: 400, logged
        st, _, b = http_call(srv.port, "POST", "/emulation", b"\x0f\x01",
                             {"Content-Type": "application/octet-stream"})
        assert st == 400 and b"EmulationRequest" in b, (st, b)
        srv.wait_event("transport_rejected", lambda e: e.get("reason") == "bad_body")
        s.close()


def bench(*args):
    p = subprocess.run([BIN, "bench"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode("utf-8", "replace")
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    assert p.returncode == 0 and len(lines) == 1, out[-3000:]
    return dict(kv.split("=", 1) for kv in lines[0].split()[1:] if "=" in kv)


def test_bench_fanout_protobuf_subscribers():
    # holdfast bench -m fanout --protobuf: every publication delivered, and
    # fewer bytes per delivery than the same load over JSON
    with Server("--client.insecure=true", "--http_api.insecure=true") as srv:
        args = ["-m", "fanout", "-u", "ws://127.0.0.1:%d%s" % (srv.port, PATH),
                "-A", "http://127.0.0.1:%d/api" % srv.port, "-c", "20", "-r", "50",
                "-w", "0.3", "-d", "1"]
        js, pb = bench(*args), bench(*(args + ["--protobuf"]))
        for r in (js, pb):
            assert r["missing"] == "0" and r["bad"] == "0", r
            assert int(r["deliveries"]) == 20 * int(r["pub_ok"]), r
        assert js["encoding"] == "json" and pb["encoding"] == "protobuf", (js, pb)
        assert float(pb["rx_bytes_per_delivery"]) < float(js["rx_bytes_per_delivery"]), (js, pb)


if __name__ == "__main__":
    import sys
    sys.exit(run_module("protobuf", globals(), sys.argv[1] if len(sys.argv) > 1 else None))
