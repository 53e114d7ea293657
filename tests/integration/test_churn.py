# SPDX-License-Identifier: MIT
"""Connection churn on the real-time endpoint: `holdfast bench -m churn` runs
100,000 cycles (30,000 against the ASan build, where LeakSanitizer checks
for leaks at exit) of WebSocket connect + Centrifugo connect + subscribe (channel
"churn:<i % 100>") + abrupt TCP drop (no close frame; RST and FIN
alternating), at most 64 in flight, against one server process. Asserts that
every cycle completes, that the server's VmRSS stays flat between the 10%
mark and the end (nothing leaks per connection, subscription or channel), and
that afterwards the server API reports no clients and no channels left."""
import json
import os
import subprocess
import sys
import time

from harness import BIN, SANITIZED, Server, http_call, run_module, wait_until

CYCLES = 30000 if SANITIZED else 100000
INFLIGHT = 64
# VmRSS may move by a few pages (allocator arenas, log buffers); a leak of
# even 32 bytes per cycle would show as 3 MiB over the last 90,000 cycles
# (release build).
RSS_GROWTH_MAX_KB = 2048
BENCH_TIMEOUT_S = 240  # the bench's own hard deadline is N/200 + 60 s = 560 s


def parse_result(out):
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    assert len(lines) == 1, "expected one RESULT line, got:\n" + out[-2000:]
    return dict(kv.split("=", 1) for kv in lines[0].split()[1:])


def api_info(port):
    status, _, body = http_call(port, "POST", "/api/info", {})
    assert status == 200, (status, body)
    nodes = json.loads(body)["result"]["nodes"]
    assert len(nodes) == 1, nodes
    return nodes[0]


def asan_env():
    """Under ASan, freed memory sits in a quarantine (256 MiB by default)
    before reuse, so VmRSS climbs with churn whether or not anything leaks.
    A 1 MiB quarantine fills long before the 10% mark and keeps some
    use-after-free detection; leaks are also caught by LeakSanitizer at exit.
    (Ignored by the release build.)"""
    base = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    return {"ASAN_OPTIONS": base + ":quarantine_size_mb=1"}


def churn(workers, cycles):
    with Server("--client.insecure=true", "--http_api.insecure=true",
                config={"channel": {"namespaces": [{"name": "churn"}]}},
                env=asan_env(), workers=workers) as srv:
        url = "ws://127.0.0.1:%d/connection/websocket" % srv.port
        cmd = [BIN, "bench", "-m", "churn", "-n", str(cycles), "-C", str(INFLIGHT),
               "-u", url, "-R", str(srv.proc.pid)]
        t0 = time.time()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=BENCH_TIMEOUT_S, env=dict(os.environ))
        took = time.time() - t0
        out = p.stdout.decode("utf-8", "replace")
        sys.stdout.write("  %s  (bench took %.1f s)\n" % (
            [ln for ln in out.splitlines() if ln.startswith("RESULT")] or out[-500:], took))
        r = parse_result(out)
        assert p.returncode == 0, "bench exit %d:\n%s" % (p.returncode, out[-2000:])
        assert r["status"] == "ok", r
        assert int(r["failed"]) == 0, r
        assert int(r["cycles"]) == cycles and int(r["requested"]) == cycles, r
        mid, end = int(r["rss_mid_kb"]), int(r["rss_end_kb"])
        assert mid > 0 and end > 0, r
        assert end - mid < RSS_GROWTH_MAX_KB, \
            "VmRSS grew %d kB between cycle %d and the end (bound %d kB): %r" % (
                end - mid, cycles // 10, RSS_GROWTH_MAX_KB, r)
        # every dropped connection is torn down: no client, subscription or
        # channel survives its connection
        wait_until(lambda: api_info(srv.port)["num_clients"] == 0, timeout=5.0,
                   what="num_clients 0 after the churn")
        node = api_info(srv.port)
        assert node["num_clients"] == 0, node
        assert node["num_channels"] == 0, node
        assert node.get("num_subs", 0) == 0, node
        status, _, body = http_call(srv.port, "POST", "/api/channels", {})
        assert status == 200 and json.loads(body)["result"]["channels"] == {}, body
        # the server saw each cycle as a client that connected, then an
        # abnormal close (no close frame from the client)
        n_conn = n_abn = 0
        with open(srv.logf.name, "r", errors="replace") as f:
            for line in f:
                if '"event":"client_connected"' in line:
                    n_conn += 1
                elif '"event":"closed"' in line and '"who":"abnormal"' in line:
                    n_abn += 1
        assert n_conn == cycles, n_conn
        assert n_abn == cycles, n_abn


def test_churn_100k_cycles_memory_flat_and_nothing_left():
    churn(1, CYCLES)


def test_churn_two_workers_nothing_left():
    """Channels live on the worker their name hashes to; subscribers on the
    other worker must be removed from there too."""
    churn(2, 10000 if SANITIZED else 20000)


if __name__ == "__main__":
    sys.exit(run_module("churn", globals()))
