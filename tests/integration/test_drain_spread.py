# SPDX-License-Identifier: MIT
"""Drain with spread reconnects, against two real instances: 2,000
real-time clients (raw asyncio WebSocket clients speaking the protocol) on
instance A; A gets SIGTERM with shutdown.spread 4 s; every client that is
closed (3001 "shutdown", a reconnect code) reconnects at once to instance
B. The arrival curve at B must follow the window: spread over about 4 s,
each second carrying about a quarter, no second-long spike, and A exits 0
after the last close. (Without a spread, the default, every client is
closed at once: test_limits and the SDK interop drain cases cover that.)"""
import asyncio
import base64
import os
import resource
import signal
import struct
import sys
import time

from harness import Server, run_module

N = 2000
CONNECT = b'{"id":1,"connect":{}}'


def masked(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_frame(r):
    b0, b1 = await r.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await r.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await r.readexactly(8))[0]
    return b0 & 0x0F, await r.readexactly(n)


async def open_client(port):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    w.write(("GET /connection/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
             % key).encode())
    head = await r.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head[:60]
    w.write(masked(1, CONNECT))
    op, data = await read_frame(r)
    assert op == 1 and b'"connect"' in data, data[:100]
    return r, w


async def life(port_a, port_b, sem, ready, go, out):
    async with sem:
        r, w = await open_client(port_a)
    ready.append(1)
    await go.wait()
    while True:
        op, data = await read_frame(r)
        if op == 8:
            break
    code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
    w.write(masked(8, data[:2]))
    w.close()
    r2, w2 = await open_client(port_b)  # reconnect at once, as a client would without backoff
    out.append((time.monotonic(), code))
    return w2


async def scenario(a, b, spread_expected):
    sem = asyncio.Semaphore(100)
    ready, out = [], []
    go = asyncio.Event()
    tasks = [asyncio.ensure_future(life(a.port, b.port, sem, ready, go, out)) for _ in range(N)]
    t_end = time.monotonic() + 120
    while len(ready) < N:
        assert time.monotonic() < t_end, "only %d clients connected" % len(ready)
        await asyncio.sleep(0.05)
    go.set()
    t0 = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)
    done, pending = await asyncio.wait(tasks, timeout=60)
    for t in pending:
        t.cancel()
    errors = [t.exception() for t in done if t.exception()]
    assert not pending and not errors, (len(pending), errors[:3])
    writers = [t.result() for t in done]
    rel = sorted(t - t0 for t, _ in out)
    codes = {c for _, c in out}
    for w in writers:
        w.close()
    return rel, codes


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 3 * N + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 3 * N + 200), hard))


def test_reconnect_arrivals_follow_the_spread_window():
    raise_nofile()
    cfg = {"client": {"allow_anonymous_connect_without_token": True}}
    with Server("--shutdown.spread=4s", "--shutdown.timeout=5s", config=cfg, workers=2) as a, \
            Server(config=cfg, workers=2) as b:
        rel, codes = run(scenario(a, b, True))
        assert codes == {3001}, codes
        assert len(rel) == N
        per_s = [sum(1 for x in rel if k <= x < k + 1) for k in range(8)]
        # spread over the 4 s window (a little late under load, never early)
        assert rel[int(N * 0.1)] >= 0.2, per_s
        assert rel[-1] <= 4.0 + 3.0, per_s
        assert rel[int(N * 0.9)] >= 3.0, per_s
        for k in range(4):
            assert 0.15 * N <= per_s[k] <= 0.35 * N, per_s  # about a quarter each second
        assert a.proc.wait(timeout=20) == 0
        ev = a.wait_event("shutdown_started")
        assert ev.get("spread_ms") == 4000, ev
        assert len(b.events("client_connected")) == N


if __name__ == "__main__":
    sys.exit(run_module("drain_spread", globals(), os.environ.get("ONLY")))
