# SPDX-License-Identifier: MIT
"""`holdfast bench` failure-shaped modes against the real binary, small
sizes: a reconnect storm (reset by the bench; with and without jitter; and
dropped by the server through `holdfast chaos`'s control endpoint, with the
protocol's connect command), a message flood (the flooder that never reads
is ended by the server with 3008 while the observers keep their round
trips), a storm measured by the separate probe process with the accept rate
switched on by a reload between the set-up and the drop, and slow readers in a fan-out (reported apart; nobody else misses a
publication; their own fate and lag are reported), and the fan-out against a
bare pub/sub server (--raw, the mode that compares holdfast with uWS using
the same generator). Asserts the RESULT fields, not performance."""
import json
import os
import subprocess
import sys
import time

from chaosproc import Chaos
from clientkit import PeerProcess
from harness import BIN, ROOT, Server, run_module, wait_until

# A bare pub/sub server on npm ws, shaped like the uWebSockets peer of
# docs/benchmarks.md: every WebSocket is subscribed when it opens, and the
# "data" objects of POST /api/publish and /api/batch bodies go to all of
# them as text messages.
NODE_RAW_FAN = r'''
const http = require("http");
const { WebSocketServer } = require("ws");
const srv = http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => { body += c; });
  req.on("end", () => {
    for (const m of body.matchAll(/"data":(\{[^}]*\})/g))
      for (const ws of wss.clients) ws.send(m[1]);
    res.setHeader("Content-Type", "application/json");
    res.end(req.url.endsWith("/batch") ? '{"replies":[]}' : '{"result":{}}');
  });
});
const wss = new WebSocketServer({ server: srv });
srv.listen(0, "127.0.0.1", () => console.log(srv.address().port));
'''


def bench(*args, timeout=120):
    """Runs `holdfast bench ARGS -j`: the RESULT line as a dict, and checks
    that the -j line is valid JSON with the same keys and values."""
    p = subprocess.run([BIN, "bench"] + list(args) + ["-j"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout, env=dict(os.environ))
    out = p.stdout.decode("utf-8", "replace")
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    assert len(lines) == 1, "expected one RESULT line (exit %d):\n%s" % (p.returncode, out[-3000:])
    res = {}
    for kv in lines[0].split()[1:]:
        if "=" in kv:
            k, v = kv.split("=", 1)
            res[k] = v
    js = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert len(js) == 1, "expected one JSON line:\n%s" % out[-3000:]
    j = json.loads(js[0])  # raises on invalid JSON (e.g. 13% as a value)
    for k, v in res.items():
        assert k in j, (k, js[0])
        if isinstance(j[k], str) or j[k] is None or " " in v:
            continue
        assert float(v.rstrip("%")) == float(j[k]), (k, v, j[k])
    return p.returncode, res, out


def test_reconnect_storm_self_jitter_and_none():
    with Server() as srv:
        url = "ws://127.0.0.1:%d/echo" % srv.port
        rc, r, out = bench("-m", "reconnect", "-u", url, "-c", "200",
                           "--min-delay", "0.05", "--max-delay", "1")
        assert rc == 0 and r["status"] == "ok", out
        assert r["reconnected"] == "200" and r["backoff"] == "jitter", r
        # full jitter on the first attempt: min + random(0, min) = 50..100 ms
        assert 0.04 <= float(r["p50_s"]) <= 5.0, r
        assert sum(int(x) for x in r["curve"].split(",")) == 200, r
        rc, r, out = bench("-m", "reconnect", "-u", url, "-c", "200", "--backoff", "none")
        assert rc == 0 and r["reconnected"] == "200" and r["backoff"] == "none", out


def test_reconnect_storm_with_probe_and_accept_rate_switched_on_before_the_drop():
    # the set-up is not limited; a reload between the set-up and the drop
    # switches client.accept_rate on, so the storm meets it (503 + retries)
    with Server(config={"client": {"insecure": True}}) as srv:
        on = {"client": {"insecure": True, "accept_rate": 100, "retry_after": 1}}
        cmd = "printf '%%s' '%s' > %s && kill -HUP %d" % (
            __import__("json").dumps(on), srv.cfgpath, srv.proc.pid)
        rc, r, out = bench("-m", "reconnect", "--rt", "-c", "150",
                           "-u", "ws://127.0.0.1:%d/connection/websocket" % srv.port,
                           "--min-delay", "0.05", "--max-delay", "0.3",
                           "--probe", "ws://127.0.0.1:%d/echo" % srv.port, "--probe-conns", "2",
                           "--probe-base", "0.5", "--before-drop", cmd)
        assert rc == 0 and r["status"] == "ok", out
        assert r["reconnected"] == "150", r
        assert int(r["attempts"]) > 150, r  # some upgrades got 503 during the storm
        assert r["probe_failures"] == "0" and int(r["probe_samples"]) > 0, r
        for k in ("probe_base_p50_us", "probe_base_p99_us", "probe_storm_p50_us",
                  "probe_storm_p99_us", "probe_p99_ratio"):
            assert float(r[k]) > 0, (k, r)
        assert "before the drop" in out and "during the storm" in out, out
        srv.wait_event("config_reloaded")
        srv.wait_event("upgrade_rejected", lambda e: e.get("status") == 503)


def test_reconnect_storm_dropped_by_server_rt():
    with Server("--client.insecure=true") as srv, Chaos(srv.port) as ch:
        url = "ws://127.0.0.1:%d/connection/websocket" % ch.port
        p = subprocess.Popen([BIN, "bench", "-m", "reconnect", "--rt", "-u", url, "-c", "100",
                              "--trigger", "server", "--wait", "30",
                              "--min-delay", "0.05", "--max-delay", "0.5"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            first = p.stdout.readline().decode()  # printed once all 100 are up
            assert "100 clients up; waiting for the server" in first, first
            st, j = ch.call("POST", "/cut?mode=rst")
            assert st == 200 and j == {"cut": 100}, (st, j)
            out = first + p.stdout.read().decode("utf-8", "replace")
            rc = p.wait(90)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert rc == 0, out
        r = dict(kv.split("=", 1) for kv in
                 [ln for ln in out.splitlines() if ln.startswith("RESULT ")][0].split()[1:]
                 if "=" in kv)
        assert r["trigger"] == "server" and r["reconnected"] == "100", r
        wait_until(lambda: ch.stats()["upgrades"] == 200, timeout=10, what="200 upgrades")
        assert ch.stats()["cut_control"] == 100


def test_flood_ends_the_flooder_not_the_observers():
    # the flooder never reads the close frame either: the server ends TCP
    # after websocket.close_timeout (5 s by default; 500 ms here)
    with Server("--client.queue_max_size=64KiB", "--client.queue_grace=500ms",
                "--websocket.close_timeout=500ms") as srv:
        url = "ws://127.0.0.1:%d/echo" % srv.port
        rc, r, out = bench("-m", "flood", "-u", url, "-c", "4", "-w", "0.5", "-d", "3")
        assert rc == 0 and r["status"] == "ok", out
        assert r["flooder_ended"] == "1", r
        assert r["observer_failures"] == "0", r
        ev = srv.wait_event("closed", lambda e: e.get("code") == 3008, timeout=10)
        assert ev["who"] == "server" and ev["conn_id"], ev


def test_fanout_slow_readers_reported_apart():
    with Server("--client.insecure=true", "--http_api.insecure=true",
                "--client.queue_max_size=16KiB", "--client.queue_grace=200ms") as srv:
        ws = "ws://127.0.0.1:%d/connection/websocket" % srv.port
        api = "http://127.0.0.1:%d/api" % srv.port
        rc, r, out = bench("-m", "fanout", "-u", ws, "-A", api, "-c", "20", "--slow", "3",
                           "--slow-rate", "500", "-r", "200", "-s", "1024", "-d", "3", "-w", "0.5")
        assert rc == 0, out
        assert r["slow"] == "3" and r["missing"] == "0", r
        assert int(r["slow_ended"]) + int(r["slow_alive"]) == 3, r
        # they read 500 B/s of ~200 KB/s: far behind (kernel buffers absorb
        # the backlog first, so whether the server ended them yet varies)
        assert float(r["slow_lag_max_ms"]) > 500 or int(r["slow_ended"]) >= 1, r
        assert int(r["deliveries"]) == 17 * int(r["pub_ok"]), r


def test_fanout_raw_against_a_bare_pubsub_server():
    peer = PeerProcess(["/usr/bin/node", "-e", NODE_RAW_FAN],
                       cwd=os.path.join(ROOT, "tests", "interop"), what="node raw fan-out")
    try:
        ws = "ws://127.0.0.1:%d/sub" % peer.port
        api = "http://127.0.0.1:%d/api" % peer.port
        for batch in ("1", "8"):
            rc, r, out = bench("-m", "fanout", "--raw", "-u", ws, "-A", api, "-c", "20",
                               "-r", "100", "-b", batch, "-s", "64", "-d", "1", "-w", "0.3")
            assert rc == 0 and r["status"] == "ok", out
            assert r["encoding"] == "raw" and r["missing"] == "0" and r["bad"] == "0", r
            assert int(r["deliveries"]) == 20 * int(r["pub_ok"]) > 0, r
            # the bare data: 64 bytes and a 2-byte frame header per delivery
            assert 60 <= float(r["rx_bytes_per_delivery"]) <= 70, r
        p = subprocess.run([BIN, "bench", "-m", "fanout", "--raw", "--protobuf", "-u", ws],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        assert p.returncode == 2 and b"--raw" in p.stdout, p.stdout
    finally:
        peer.close()


def test_every_mode_json_output_parses():
    """echo, storm, idle, churn and recover with -j (reconnect, flood and
    fanout above): each a second or less."""
    cfg = {"client": {"insecure": True}, "http_api": {"insecure": True},
           "channel": {"namespaces": [{"name": "churn"},
                                      {"name": "bench", "history_size": 100,
                                       "history_ttl": "60s", "force_recovery": True}]}}
    with Server(config=cfg) as srv:
        echo = "ws://127.0.0.1:%d/echo" % srv.port
        rt = "ws://127.0.0.1:%d/connection/websocket" % srv.port
        api = "http://127.0.0.1:%d/api" % srv.port
        for args in (["-m", "echo", "-u", echo, "-c", "2", "-k", "2", "-w", "0", "-d", "0.3"],
                     ["-m", "storm", "-u", echo, "-c", "10"],
                     ["-m", "idle", "-u", echo, "-c", "5", "-H", "0"],
                     ["-m", "churn", "-u", rt, "-A", api, "-n", "20", "-C", "4"],
                     ["-m", "recover", "-u", rt, "-A", api, "--channel", "bench:r",
                      "-c", "5", "-p", "3", "-C", "5"]):
            rc, r, out = bench(*args)
            assert rc == 0 and r["status"] == "ok", (args, out)
            assert r["mode"] == args[1], r


if __name__ == "__main__":
    sys.exit(run_module("bench_storm", globals(), os.environ.get("ONLY")))
