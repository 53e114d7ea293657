# SPDX-License-Identifier: MIT
"""Interop with the Python `websockets` client (Debian's 10.4, asyncio API)
against /echo of the real holdfast binary: text and binary echo, a
fragmented send (iterable of strings) echoed as one message, ping() whose
pong waiter resolves, a clean 1000 close handshake (client sees 1000 and the
server closes TCP promptly; server log: closed 1000 who client), subprotocol
negotiation (--echo.subprotocols=chat) and a rejected handshake (bad Origin)
raising InvalidStatusCode 403 with an upgrade_rejected log line.

Started by test_python_websockets.sh with MAIN_PORT / MAIN_LOG in the
environment. Prints "PASS interop/python_websockets/<case>" or "FAIL ...".
"""
import asyncio
import json
import os
import sys
import time

import websockets
from websockets.exceptions import InvalidStatusCode

SUITE = "interop/python_websockets"
PORT = int(os.environ["MAIN_PORT"])
LOG = os.environ["MAIN_LOG"]
URI = "ws://127.0.0.1:%d/echo" % PORT
OPTS = dict(ping_interval=None, open_timeout=5, close_timeout=5)


def events(name):
    out = []
    with open(LOG, "r", errors="replace") as f:
        for line in f:
            if not line.startswith("{"):
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == name:
                out.append(ev)
    return out


async def wait_event(name, pred, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        for ev in events(name):
            if pred(ev):
                return ev
        await asyncio.sleep(0.02)
    with open(LOG, errors="replace") as f:
        tail = f.read()[-1500:]
    raise AssertionError("no %s event matching within %.1fs; log tail:\n%s" % (name, timeout, tail))


def conn_id(ws):
    return ws.response_headers.get("X-Holdfast-Connection-Id")


async def case_text_echo():
    async with websockets.connect(URI, **OPTS) as ws:
        text = "hello from websockets \u00e9\u2713\U0001F600"
        await ws.send(text)
        got = await ws.recv()
        assert isinstance(got, str), "text echo arrived as %s" % type(got).__name__
        assert got == text, "echo %r != %r" % (got, text)


async def case_binary_echo():
    async with websockets.connect(URI, **OPTS) as ws:
        data = bytes(range(256))
        await ws.send(data)
        got = await ws.recv()
        assert isinstance(got, bytes), "binary echo arrived as %s" % type(got).__name__
        assert got == data, "binary echo differs (len %d)" % len(got)


async def case_fragmented_send_echoed_whole():
    async with websockets.connect(URI, **OPTS) as ws:
        parts = ["frag-one ", "frag-\u00e9-two ", "", "frag-three"]
        await ws.send(parts)  # iterable -> one message in 4 frames
        got = await ws.recv()
        assert got == "".join(parts), "echo %r != %r" % (got, "".join(parts))
        bparts = [b"\x00\x01", b"\xfe\xff", b"\x80" * 300]
        await ws.send(bparts)
        got = await ws.recv()
        assert got == b"".join(bparts), "binary fragmented echo differs (len %d)" % len(got)
        cid = conn_id(ws)
    ev = await wait_event("closed", lambda e: e.get("conn_id") == cid)
    assert ev["msgs_in"] == 2 and ev["msgs_out"] == 2, \
        "closed event counts %r, expected 2 messages in and out" % ev


async def case_ping_pong_waiter():
    async with websockets.connect(URI, **OPTS) as ws:
        waiter = await ws.ping(b"hf-py-ping")
        await asyncio.wait_for(waiter, 5)
        await ws.send("after ping")
        assert await ws.recv() == "after ping", "no echo after ping"


async def case_close_1000_clean():
    ws = await websockets.connect(URI, **OPTS)
    cid = conn_id(ws)
    await ws.send("x")
    await ws.recv()
    t0 = time.time()
    await ws.close(1000, "bye")
    took = time.time() - t0
    assert ws.close_code == 1000, "client close_code %r, expected 1000" % ws.close_code
    assert ws.close_reason, "server's close frame has an empty reason"
    assert took < 2.0, "close handshake took %.2fs (server did not close TCP promptly)" % took
    ev = await wait_event("closed", lambda e: e.get("conn_id") == cid)
    assert ev["code"] == 1000 and ev["who"] == "client", \
        "server closed event %r, expected code 1000 who client" % ev
    acc = await wait_event("upgrade_accepted", lambda e: e.get("conn_id") == cid)
    ua = acc.get("user_agent") or ""
    assert "websockets/10.4" in ua, "upgrade_accepted user_agent %r lacks websockets/10.4" % ua


async def case_subprotocol_chat():
    async with websockets.connect(URI, subprotocols=["chat"], **OPTS) as ws:
        assert ws.subprotocol == "chat", "negotiated subprotocol %r, expected 'chat'" % ws.subprotocol
        cid = conn_id(ws)
        await ws.send("sp")
        assert await ws.recv() == "sp", "no echo with subprotocol"
    ev = await wait_event("upgrade_accepted", lambda e: e.get("conn_id") == cid)
    assert ev.get("subprotocol") == "chat", "upgrade_accepted subprotocol %r" % ev.get("subprotocol")
    async with websockets.connect(URI, **OPTS) as ws:
        assert ws.subprotocol is None, "subprotocol %r selected though none offered" % ws.subprotocol


async def case_bad_origin_rejected_403():
    origin = "https://evil.example"
    try:
        ws = await websockets.connect(URI, origin=origin, **OPTS)
    except InvalidStatusCode as e:
        assert e.status_code == 403, "status %r, expected 403" % e.status_code
    else:
        await ws.close()
        raise AssertionError("handshake with Origin %s succeeded" % origin)
    ev = await wait_event("upgrade_rejected", lambda e: e.get("origin") == origin)
    assert ev["reason"] == "origin_rejected" and ev["status"] == 403, \
        "upgrade_rejected %r, expected reason origin_rejected status 403" % ev


async def main():
    failed = 0
    cases = [(n[5:], f) for n, f in globals().items() if n.startswith("case_")]
    for name, fn in cases:
        t0 = time.time()
        try:
            await asyncio.wait_for(fn(), 10)
            print("PASS %s/%s (%.2fs)" % (SUITE, name, time.time() - t0), flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure kind
            failed += 1
            msg = str(e) or type(e).__name__
            if isinstance(e, asyncio.TimeoutError):
                msg = "timed out after 10 s"
            lines = msg.splitlines()
            print("FAIL %s/%s: %s" % (SUITE, name, lines[0]), flush=True)
            for ln in lines[1:]:
                print("  " + ln, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
