# SPDX-License-Identifier: MIT
"""permessage-deflate (RFC 7692) against the real binary: the equivalents of
Autobahn|Testsuite section 12 (compressed echo of five payload kinds at
chunk sizes 16 B..128 KiB) and section 13 (every combination of the four
parameters, offered by Python's websockets client, against servers with and
without client context takeover), negotiation corner cases (declined 8-bit
server window, malformed offers, several offers, off by default, per
endpoint), RSV1 rules, invalid compressed data and UTF-8 after inflation
(1007), compression bombs (1009, never allocated), compression_min_size,
and the fan-out rule: a publication is compressed once for all deflate
recipients (holdfast_compressed_messages_total{kind="shared"})."""
import asyncio
import json
import subprocess
import os
import random
import re
import struct
import sys
import time
import zlib

from harness import BIN, RT, WS, Closed, Server, http_call, metric, run_module

API_KEY = "dfl-api-key"
OFFER = "permessage-deflate; client_max_window_bits"


def ext_headers(offer):
    return {"Sec-WebSocket-Extensions": offer} if offer is not None else None


class DWS(WS):
    """The raw client, speaking permessage-deflate: sends compressed or
    plain messages, inflates what the server compresses, and records the
    RSV1 bit of every data message received."""

    def __init__(self, port, path="/echo", offer=OFFER, client_takeover=False, **kw):
        super().__init__(port, path, headers=ext_headers(offer), **kw)
        self.ext = self.headers.get("sec-websocket-extensions")
        self.comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.client_takeover = client_takeover
        self.rsv1 = []

    def send_deflated(self, opcode, payload, fragments=1):
        if isinstance(payload, str):
            payload = payload.encode()
        if not self.client_takeover:
            self.comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = self.comp.compress(payload) + self.comp.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        data = data[:-4]
        if fragments == 1:
            self.send(opcode, data, rsv=4)
            return
        step = max(1, len(data) // fragments)
        parts = [data[i:i + step] for i in range(0, len(data), step)] or [b""]
        out = b""
        for i, p in enumerate(parts):
            out += self.frame(opcode if i == 0 else 0, p, fin=i == len(parts) - 1,
                              rsv=4 if i == 0 else 0)
        self.send_raw(out)

    def recv_frame(self, timeout=5.0):
        """The harness's frames, with RSV1 allowed on the first frame of a
        data message (remembered for recv_message)."""
        fin, op, payload, rsv1 = self.recv_frame_rsv(timeout)
        if op in (0x1, 0x2):
            self.msg_rsv1 = rsv1
        elif rsv1:
            raise AssertionError("RSV1 on opcode %d" % op)
        return fin, op, payload

    def recv_frame_rsv(self, timeout=5.0):
        self._fill(2, timeout)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server frame is masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._fill(4, timeout)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._fill(10, timeout)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._fill(off + n, timeout)
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        if b0 & 0x30:
            raise AssertionError("server frame has RSV2/RSV3")
        rsv1 = bool(b0 & 0x40)
        if rsv1 and self.ext is None:
            raise AssertionError("RSV1 without a negotiated extension")
        return bool(b0 & 0x80), b0 & 0x0F, payload, rsv1

    def recv_message(self, timeout=5.0, skip_pings=True):
        op, data = super().recv_message(timeout, skip_pings)
        self.rsv1.append(self.msg_rsv1)
        if self.msg_rsv1:  # the server never keeps context: a fresh inflater
            data = zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")
        return op, data


def params(ext):
    """The parameters of a permessage-deflate response, as a dict."""
    assert ext and ext.startswith("permessage-deflate"), ext
    out = {}
    for p in ext.split(";")[1:]:
        k, _, v = p.strip().partition("=")
        out[k] = v or True
    return out


# ---- payloads for the section 12 equivalents -------------------------------------

def payloads():
    rnd = random.Random(7)
    words = ["holdfast", "channel", "publication", "offset", "epoch", "presence",
             "Überzeugung", "Grüße", "Faust", "Gretchen", "dass", "über"]
    doc = json.dumps([{"id": i, "name": rnd.choice(words), "tags": rnd.sample(words, 3),
                       "v": rnd.random()} for i in range(4000)]).encode()
    faust = (" ".join(rnd.choice(words) for _ in range(40000))).encode()
    html = ("".join("<div class=\"row\"><a href=\"/p/%d\">%s</a></div>\n" %
                    (i, rnd.choice(words)) for i in range(6000))).encode()
    # a 512x512 8-bit checkerboard with noise in some cells
    image = bytes(255 if ((i % 512) // 16 + (i // 512) // 16) % 2 else
                  (rnd.randrange(256) if (i // 8192) % 5 == 0 else 0)
                  for i in range(262144))
    noise = os.urandom(262144)
    return [("json", 0x1, doc), ("text", 0x1, faust), ("html", 0x1, html),
            ("bitmap", 0x2, image), ("random", 0x2, noise)]


def chop(data, size):
    """A chunk of size bytes that is valid UTF-8 for text (cut at a code
    point boundary)."""
    c = data[:size]
    while c and (c[-1] & 0xC0) == 0x80:
        c = c[:-1]
    if c and c[-1] >= 0xC0:
        c = c[:-1]
    return c


def test_12_compressed_echo_payload_kinds_and_sizes():
    """Autobahn 12.1-12.5: five payload kinds, chunk sizes 16 B..128 KiB,
    10 messages each, pipelined; every echo equal, compressible ones come
    back compressed (RSV1) and random ones may come back plain."""
    with Server("--echo.compression=true") as srv:
        for name, op, data in payloads():
            ws = DWS(srv.port)
            assert ws.ext, "no extension negotiated"
            for size in (16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072):
                msg = chop(data, size) if op == 0x1 else data[:size]
                for _ in range(10):
                    ws.send_deflated(op, msg)
                for i in range(10):
                    rop, got = ws.recv_message()
                    assert rop == op and got == msg, (name, size, i, len(got), len(msg))
                if name != "random" and size >= 256:
                    assert all(ws.rsv1[-10:]), (name, size, "not compressed")
            ws.send(0x8, struct.pack("!H", 1000))
            ws.expect_close(1000)
            ws.close()


async def _ws_echo(port, combo, sizes):
    import websockets
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    snct, cnct, smwb, cmwb = combo
    fac = ClientPerMessageDeflateFactory(
        server_no_context_takeover=snct, client_no_context_takeover=cnct,
        server_max_window_bits=smwb, client_max_window_bits=cmwb)
    async with websockets.connect("ws://127.0.0.1:%d/echo" % port, extensions=[fac],
                                  compression=None, max_size=1 << 21,
                                  open_timeout=10) as ws:
        exts = ws.extensions
        assert len(exts) == 1, exts
        e = exts[0]
        rnd = random.Random(hash(combo) & 0xFFFF)
        # repeated content across messages: context takeover has work to do
        base = " ".join(rnd.choice(["alpha", "beta", "gamma", "delta", "Ω"])
                        for _ in range(30000))
        for size in sizes:
            for k in range(3):
                msg = base[k * 7:k * 7 + size]
                await ws.send(msg)
                assert await ws.recv() == msg, (combo, size)
                b = msg.encode()
                await ws.send(b)
                assert await ws.recv() == b, (combo, size)
        return e


def test_13_all_parameter_combinations():
    """Autobahn 13.1-13.7: every combination of server_no_context_takeover,
    client_no_context_takeover, server_max_window_bits (none, 9, 12, 15)
    and client_max_window_bits (none, announced, 9, 15), echoing text and
    binary of 16 B..64 KiB; against a server that lets clients keep context
    and one that does not. The negotiated parameters are checked too."""
    combos = [(a, b, c, d) for a in (False, True) for b in (False, True)
              for c in (None, 9, 12, 15) for d in (None, True, 9, 15)]
    sizes = (16, 1000, 20000, 65536)
    for takeover in (True, False):
        flags = ["--echo.compression=true"]
        if takeover:
            flags.append("--websocket.compression_context_takeover=true")
        with Server(*flags) as srv:
            for combo in combos:
                e = asyncio.run(_ws_echo(srv.port, combo, sizes))
                snct, cnct, smwb, cmwb = combo
                # we never keep our context; the client keeps its own only
                # when it asked and the server allows it
                assert e.remote_no_context_takeover is True, (combo, vars(e))
                assert e.local_no_context_takeover is (cnct or not takeover), (combo, vars(e))
                want_s = smwb if smwb else 15
                if e.remote_max_window_bits is not None:
                    assert e.remote_max_window_bits == want_s, (combo, vars(e))
            srv.check_log_clean()


def test_13_server_window_8_declined_next_offer_taken():
    with Server("--echo.compression=true") as srv:
        ws = DWS(srv.port, offer="permessage-deflate; server_max_window_bits=8")
        assert ws.ext is None, ws.ext
        ws.send(0x1, b"plain")
        assert ws.recv_message() == (0x1, b"plain")
        ws.close()
        ws = DWS(srv.port, offer="permessage-deflate; server_max_window_bits=8, "
                                 "permessage-deflate; server_max_window_bits=9; "
                                 "client_no_context_takeover")
        p = params(ws.ext)
        assert p.get("server_max_window_bits") == "9" and "client_no_context_takeover" in p, p
        msg = b"abcdefgh" * 5000
        ws.send_deflated(0x2, msg)
        assert ws.recv_message() == (0x2, msg) and ws.rsv1[-1]
        ws.close()


def test_malformed_and_foreign_offers_declined():
    with Server("--echo.compression=true") as srv:
        for offer in ("permessage-deflate; server_max_window_bits",
                      "permessage-deflate; foo=bar",
                      "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
                      "permessage-deflate; server_max_window_bits=016",
                      "x-webkit-deflate-frame",
                      "permessage-deflate;;"):
            ws = DWS(srv.port, offer=offer)
            assert ws.ext is None, (offer, ws.ext)
            # RSV1 is then a protocol error
            ws.send(0x1, b"\x00", rsv=4)
            ws.expect_close(1002)
            ws.close()
        srv.check_log_clean()


def test_off_by_default_and_per_endpoint():
    with Server() as srv:
        ws = DWS(srv.port)
        assert ws.ext is None
        ws.close()
        ws = DWS(srv.port, path="/connection/websocket")
        assert ws.ext is None
        ws.close()
    with Server("--websocket.compression=true") as srv:
        ws = DWS(srv.port)
        assert ws.ext is None, "echo offers deflate without echo.compression"
        ws.close()
        ws = DWS(srv.port, path="/connection/websocket")
        assert params(ws.ext).get("server_no_context_takeover"), ws.ext
        ws.close()


def test_rsv1_rules_and_control_frames():
    with Server("--echo.compression=true") as srv:
        ws = DWS(srv.port)
        ws.send(0x9, b"ping", rsv=4)          # RSV1 on a control frame
        ws.expect_close(1002)
        ws.close()
        ws = DWS(srv.port)
        data = zlib.compressobj(6, zlib.DEFLATED, -15)
        c = data.compress(b"x" * 100) + data.flush(zlib.Z_SYNC_FLUSH)
        ws.send_raw(ws.frame(0x1, c[:5], fin=False, rsv=4) + ws.frame(0x0, c[5:-4], rsv=4))
        ws.expect_close(1002)                  # RSV1 on a continuation
        ws.close()
        # a fragmented compressed message with a ping between fragments;
        # control frames from the server are never compressed
        ws = DWS(srv.port)
        msg = ("fragmented ü " * 500).encode()
        z = zlib.compressobj(6, zlib.DEFLATED, -15)
        c = (z.compress(msg) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]
        ws.send_raw(ws.frame(0x1, c[:10], fin=False, rsv=4) + ws.frame(0x9, b"hb") +
                    ws.frame(0x0, c[10:20], fin=False) + ws.frame(0x0, c[20:]))
        fin, op, p, rsv1 = ws.recv_frame_rsv()
        assert (op, p, rsv1) == (0xA, b"hb", False), (op, p, rsv1)
        assert ws.recv_message() == (0x1, msg) and ws.rsv1[-1]
        # an uncompressed message on a deflate connection is fine both ways
        ws.send(0x1, b"plain")
        assert ws.recv_message() == (0x1, b"plain") and not ws.rsv1[-1]
        ws.close()


def test_invalid_data_and_utf8_after_inflate_close_1007():
    with Server("--echo.compression=true") as srv:
        ws = DWS(srv.port)
        ws.send(0x1, b"\xff\xff\xff\xff\xff", rsv=4)
        code, reason = ws.expect_close(1007)
        assert "compressed" in reason, reason
        ws.close()
        ws = DWS(srv.port)
        ws.send_deflated(0x1, b"valid then \xc3\x28 invalid")
        code, reason = ws.expect_close(1007)
        assert "UTF-8" in reason, reason
        ws.close()
        # a valid code point split across fragments of the compressed data
        ws = DWS(srv.port)
        ws.send_deflated(0x1, "€uro ".encode() * 3000, fragments=7)
        assert ws.recv_message() == (0x1, "€uro ".encode() * 3000)
        ws.close()
        srv.check_log_clean()


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))


def test_bombs_close_1009_without_allocating():
    """A 1 KiB message that inflates to 1 MiB over a 64 KiB limit, and a
    ~1 MiB message that inflates to 1 GiB (limit 2 MiB compressed, so the
    compressed size passes): both close 1009; the server's peak RSS grows
    by far less than what they would inflate to."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    small = (z.compress(bytes(1 << 20)) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]
    assert len(small) < 1100, len(small)
    # 1 MiB of zeros compressed once with a full flush (byte-aligned, no
    # back-references across it), repeated 1024 times: one valid stream
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = z.compress(bytes(1 << 20)) + z.flush(zlib.Z_FULL_FLUSH)
    big = (block * 1024)[:-4]
    assert len(zlib.decompressobj(-15).decompress(block * 3)) == 3 << 20
    assert len(big) < (2 << 20), len(big)
    with Server("--echo.compression=true", "--websocket.message_size_limit=65536") as srv:
        ws = DWS(srv.port)
        ws.send(0x2, small, rsv=4)
        code, reason = ws.expect_close(1009)
        assert "inflat" in reason, reason
        ws.close()
        srv.check_log_clean()
    with Server("--echo.compression=true", "--websocket.message_size_limit=2097152") as srv:
        ws = DWS(srv.port)
        ws.send(0x2, b"warm", rsv=0)
        assert ws.recv_message() == (0x2, b"warm")
        before = vm_hwm_kib(srv.proc.pid)
        ws.send(0x2, big, rsv=4)
        ws.expect_close(1009)
        ws.close()
        grown = vm_hwm_kib(srv.proc.pid) - before
        # the compressed message itself (~1 MiB) plus the 2 MiB cap of the
        # inflate buffer: nowhere near 1 GiB
        assert grown < 48 * 1024, "peak RSS grew by %d KiB" % grown
        srv.check_log_clean()


def test_compression_min_size_and_level():
    with Server("--echo.compression=true", "--websocket.compression_min_size=200",
                "--websocket.compression_level=9") as srv:
        ws = DWS(srv.port)
        ws.send(0x1, b"a" * 199)
        assert ws.recv_message() == (0x1, b"a" * 199) and not ws.rsv1[-1]
        ws.send(0x1, b"a" * 200)
        assert ws.recv_message() == (0x1, b"a" * 200) and ws.rsv1[-1]
        ws.close()


def test_client_context_takeover_when_allowed():
    """With websocket.compression_context_takeover the server keeps the
    client's window between messages (RFC 7692 7.2.3.2 style messages that
    refer back to the previous one); without it, it says
    client_no_context_takeover."""
    with Server("--echo.compression=true",
                "--websocket.compression_context_takeover=true") as srv:
        ws = DWS(srv.port, client_takeover=True)
        assert "client_no_context_takeover" not in params(ws.ext), ws.ext
        msg = ("the same sentence again and again; " * 40).encode()
        for i in range(20):
            ws.send_deflated(0x1, msg, fragments=1 + i % 3)
            assert ws.recv_message() == (0x1, msg), i
        ws.close()
    with Server("--echo.compression=true") as srv:
        ws = DWS(srv.port)
        assert "client_no_context_takeover" in params(ws.ext), ws.ext
        ws.close()


def rt_client(port, deflate, offer=OFFER):
    ws = DWS(port, path="/connection/websocket", offer=offer if deflate else None)
    c = RT.__new__(RT)
    c.ws, c.next_id, c.pending, c.autopong, c.pings = ws, 1, [], True, 0
    c.cid = ws.headers.get("x-holdfast-connection-id")
    return c


def test_fanout_compressed_once_per_publication():
    """4 deflate subscribers and 2 plain ones on one channel across 2
    workers; 5 publications through the server API: the deflate clients get
    RSV1 frames, the plain ones plain frames, and the shared-compression
    counter rises by exactly 5 (once per publication, not per recipient)."""
    cfg = {"client": {"insecure": True}, "http_api": {"key": API_KEY}}
    with Server("--websocket.compression=true", config=cfg, workers=2) as srv:
        dfl = [rt_client(srv.port, True) for _ in range(4)]
        plain = [rt_client(srv.port, False) for _ in range(2)]
        # asked for a 9-bit server window: the shared frame (compressed with
        # 15 bits) is not for it; it gets the plain one
        small = rt_client(srv.port, True, OFFER + "; server_max_window_bits=9")
        assert params(small.ws.ext).get("server_max_window_bits") == "9", small.ws.ext
        plain.append(small)
        for c in dfl + plain:
            c.connect()
            assert c.ok("subscribe", {"channel": "news"}) == {}
        assert all(c.ws.ext for c in dfl) and not any(c.ws.ext for c in plain[:2])
        name = 'holdfast_compressed_messages_total{kind="shared"}'
        before = metric(srv, name)
        data = {"text": "a fairly compressible publication " * 20}
        for i in range(5):
            st, _, b = http_call(srv.port, "POST", "/api/publish",
                                 {"channel": "news", "data": dict(data, n=i)},
                                 {"X-API-Key": API_KEY})
            assert st == 200, (st, b)
        for c in dfl + plain:
            pubs = c.pubs("news", 5)
            assert [p["data"]["n"] for p in pubs] == list(range(5)), pubs
        for c in dfl:
            assert c.ws.rsv1[-5:] == [True] * 5, c.ws.rsv1
        for c in plain:
            assert c.ws.rsv1[-5:] == [False] * 5, c.ws.rsv1
        assert metric(srv, name) - before == 5, (before, metric(srv, name))
        r = small.call("publish", {"channel": "news", "data": {"x": "y" * 300}})
        assert r == {"id": r["id"], "publish": {}}, r
        assert small.pubs("news", 1)[0]["data"] == {"x": "y" * 300}
        for c in dfl + plain:
            c.close()
        srv.check_log_clean()


def test_fanout_batch_run_compressed_in_order():
    """A run of 20 publications in one /api/batch, swept subscriber-major:
    the deflate subscriber gets each one's shared compressed frame, the
    plain one the plain frames, both in publication order, compressed once
    per publication."""
    cfg = {"client": {"insecure": True}, "http_api": {"key": API_KEY}}
    with Server("--websocket.compression=true", config=cfg) as srv:
        dfl, plain = rt_client(srv.port, True), rt_client(srv.port, False)
        for c in (dfl, plain):
            c.connect()
            assert c.ok("subscribe", {"channel": "run"}) == {}
        name = 'holdfast_compressed_messages_total{kind="shared"}'
        before = metric(srv, name)
        data = {"text": "a fairly compressible publication " * 20}
        st, _, b = http_call(srv.port, "POST", "/api/batch", {"commands": [
            {"publish": {"channel": "run", "data": dict(data, n=i)}} for i in range(20)]},
            {"X-API-Key": API_KEY})
        assert st == 200, (st, b)
        for c in (dfl, plain):
            assert [p["data"]["n"] for p in c.pubs("run", 20)] == list(range(20))
        assert dfl.ws.rsv1[-20:] == [True] * 20, dfl.ws.rsv1
        assert plain.ws.rsv1[-20:] == [False] * 20, plain.ws.rsv1
        assert metric(srv, name) - before == 20, (before, metric(srv, name))
        for c in (dfl, plain):
            c.close()


def test_deflate_over_tls():
    """Compressed messages both ways over wss:// (compression sits above
    the TLS layer): 16 B..256 KiB echoes, a fragmented one, and a bomb."""
    from tlsutil import CA, tls_args
    with CA() as ca:
        cert, key = ca.issue("localhost")
        with Server(*tls_args(cert, key, "--echo.compression=true",
                              "--websocket.message_size_limit=300000")) as srv:
            ws = DWS(srv.port, tls=ca.client_context())
            assert params(ws.ext).get("server_no_context_takeover"), ws.ext
            for n in (16, 1000, 70000, 262144):
                msg = chop(("over TLS \u00e9 %d " % n).encode() * (n // 12 + 1), n)
                ws.send_deflated(0x1, msg, fragments=1 + n % 3)
                assert ws.recv_message() == (0x1, msg), n
            assert ws.rsv1[-1], "the server did not compress over TLS"
            z = zlib.compressobj(9, zlib.DEFLATED, -15)
            ws.send(0x2, (z.compress(bytes(4 << 20)) + z.flush(zlib.Z_SYNC_FLUSH))[:-4], rsv=4)
            ws.expect_close(1009)
            ws.close()
            srv.check_log_clean()


def bench(*args, timeout=60):
    out = subprocess.run([BIN, "bench"] + list(args), capture_output=True, text=True,
                         timeout=timeout)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    assert out.returncode == 0 and line, (out.returncode, out.stdout[-800:], out.stderr[-800:])
    return dict(kv.split("=", 1) for kv in line[0].split()[1:])


def test_bench_offers_deflate():
    """holdfast bench -z: echo with compressed messages both ways (every
    byte verified), a storm that insists on the extension, and fanout
    reporting the server's compressions per publication (1.000)."""
    with Server("--echo.compression=true", "--websocket.compression=true",
                "--client.insecure=true", "--http_api.insecure=true", workers=2) as srv:
        before = [metric(srv, 'holdfast_compressed_messages_total{kind="%s"}' % k)
                  for k in ("in", "out")]
        r = bench("-u", "ws://127.0.0.1:%d/echo" % srv.port, "-z", "-V", "-c", "4",
                  "-k", "2", "-s", "2048", "-w", "0", "-d", "0.5")
        assert r["status"] == "ok" and r["bad"] == "0" and int(r["msgs"]) > 0, r
        after = [metric(srv, 'holdfast_compressed_messages_total{kind="%s"}' % k)
                 for k in ("in", "out")]
        assert after[0] - before[0] >= int(r["msgs"]), (before, after, r["msgs"])
        assert after[1] - before[1] >= int(r["msgs"]), (before, after, r["msgs"])
        r = bench("-m", "storm", "-u", "ws://127.0.0.1:%d/echo" % srv.port, "-z", "-c", "20")
        assert r["status"] == "ok" and r["open"] == "20", r
        r = bench("-m", "fanout", "-u", "ws://127.0.0.1:%d/connection/websocket" % srv.port,
                  "-A", "http://127.0.0.1:%d/api" % srv.port, "-z", "-c", "20", "-r", "50",
                  "-s", "200", "-w", "0", "-d", "0.5", "-G", "5")
        assert r["status"] == "ok" and int(r["pub_ok"]) > 0, r
        assert r["compressions_per_pub"] == "1.000", r
        assert int(r["inflated"]) >= int(r["deliveries"]) > 0, r
    with Server() as srv:  # not accepted: -z fails the connections
        out = subprocess.run([BIN, "bench", "-m", "storm", "-u", "ws://127.0.0.1:%d/echo" % srv.port,
                              "-z", "-c", "2"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 1 and "permessage-deflate" in out.stdout + out.stderr, out.stdout


if __name__ == "__main__":
    sys.exit(run_module("deflate", globals(), os.environ.get("ONLY")))
