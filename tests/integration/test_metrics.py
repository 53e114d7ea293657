# SPDX-License-Identifier: MIT
"""Prometheus metrics: /metrics after a scripted load (upgrades, a rejected
origin, a 404, closes by code and side, real-time commands and errors,
publications and deliveries, recovery, protocol pings and their round trip,
a heartbeat timeout, slow consumers, API errors), the exposition checked by
promtool, the internal-listener placement, and a real Prometheus server
scraping holdfast and answering a query."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from harness import (RT, WS, Server, connect, free_port, http_call, jwt_hs, read_http_response,
                     run_module, upgrade_request, wait_until)

SECRET = "metrics-secret-0123456789"
API_KEY = "metrics-api-key"


def config(**client):
    c = {"client": dict({"token": {"hmac_secret_key": SECRET},
                         "allowed_origins": ["https://ok.example"]}, **client),
         "http_api": {"key": API_KEY},
         "websocket": {"close_timeout": "200ms"},
         "channel": {"without_namespace": {"allow_subscribe_for_client": True,
                                           "allow_publish_for_client": True},
                     "namespaces": [{"name": "h", "history_size": 10, "history_ttl": "60s",
                                     "allow_subscribe_for_client": True,
                                     "allow_recovery": True}]}}
    return c


def token(sub="42"):
    return jwt_hs({"sub": sub}, SECRET)


def api(port, method, body):
    st, _, data = http_call(port, "POST", "/api/" + method, json.dumps(body).encode(),
                            {"X-API-Key": API_KEY})
    assert st == 200, (st, data)
    return json.loads(data)


def scrape(port, path="/metrics"):
    st, hdrs, body = http_call(port, "GET", path)
    assert st == 200, (st, body[:200])
    assert hdrs["content-type"].startswith("text/plain; version=0.0.4"), hdrs
    return body.decode()


def parse(text):
    """{'name{labels}': value} of every sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        k, v = line.rsplit(" ", 1)
        out[k] = float(v)
    return out


def promtool_ok(text):
    r = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()[-2000:]


def test_metrics_count_a_scripted_load():
    with Server(config=config(ping_interval="300ms", pong_timeout="200ms")) as srv:
        # an echo connection closed by the client with 1000, and one dropped
        e = WS(srv.port, "/echo")
        e.send(0x1, b"hi")
        e.recv_message()
        e.send(0x8, b"\x03\xe8bye")
        fin, op, payload = e.recv_frame()
        assert op == 0x8 and payload[:2] == b"\x03\xe8", (op, payload)
        e.close()
        e2 = WS(srv.port, "/echo")
        e2.sock.close()  # no close frame: abnormal
        # a rejected origin and a 404
        s = connect(srv.port)
        s.sendall(upgrade_request("/echo", headers={"Origin": "https://evil.example"})[0])
        assert read_http_response(s)[0] == 403
        s.close()
        assert http_call(srv.port, "GET", "/nope")[0] == 404
        # a real-time client: commands, an error, publications, deliveries
        c = RT(srv.port)
        c.connect(token())
        c.ok("subscribe", {"channel": "news"})
        r = c.call("subscribe", {"channel": "nosuchns:x"})
        assert r["error"]["code"] == 102, r
        for i in range(3):
            api(srv.port, "publish", {"channel": "news", "data": i})
        c.ok("publish", {"channel": "news", "data": "c"})
        assert len(c.pubs("news", 4)) == 4
        # a recovery that works and one that cannot
        top = c.ok("subscribe", {"channel": "h:r", "recoverable": True})
        api(srv.port, "publish", {"channel": "h:r", "data": 1})
        c.pubs("h:r", 1)
        d = RT(srv.port)
        d.connect(token("d"))
        assert d.ok("subscribe", {"channel": "h:r", "recover": True, "recoverable": True,
                                  "offset": 0, "epoch": top["epoch"]})["recovered"] is True
        assert not d.ok("subscribe", {"channel": "h:x", "recover": True, "recoverable": True,
                                      "offset": 5, "epoch": "abcdefgh"}).get("recovered")
        # pings answered by c (autopong); a client that never answers: 3012
        silent = RT(srv.port, autopong=False)
        silent.connect(token("silent"))
        stop = threading.Event()

        def pump():  # c and d answer their pings until the end, silent does not
            while not stop.is_set():
                c._fill(0.02)
                d._fill(0.02)
        pumper = threading.Thread(target=pump, daemon=True)
        pumper.start()
        wait_until(lambda: c.pings >= 1 and d.pings >= 1, 5, "pings answered")
        # an API call with a wrong key and one with an API error
        assert http_call(srv.port, "POST", "/api/info", b"{}", {"X-API-Key": "wrong"})[0] == 401
        assert api(srv.port, "publish", {"channel": "nosuchns:y", "data": 1})["error"]["code"] == 102
        def settled():
            m = parse(scrape(srv.port))
            return (m.get('holdfast_closes_total{code="3012",side="server"}', 0) >= 1 and
                    m.get("holdfast_send_queue_bytes_count", 0) >= 1)  # sampled every second
        wait_until(settled, 5, "the silent one closed, queues sampled")
        text = scrape(srv.port)
        stop.set()
        pumper.join(5)
        m = parse(text)
        promtool_ok(text)

        def v(k):
            assert k in m, "%s not exposed; have %s" % (k, [x for x in m if x.startswith(k.split("{")[0])])
            return m[k]
        assert v('holdfast_upgrades_total{endpoint="echo"}') == 2
        assert v('holdfast_upgrades_total{endpoint="realtime"}') == 3
        assert v('holdfast_rejections_total{reason="origin_rejected"}') == 1
        assert v('holdfast_rejections_total{reason="not_found"}') == 1
        assert v('holdfast_rejections_total{reason="api_auth"}') == 1
        assert v('holdfast_closes_total{code="1000",side="client"}') == 1
        assert v('holdfast_closes_total{code="1006",side="abnormal"}') == 1
        assert v('holdfast_closes_total{code="3012",side="server"}') == 1
        assert v('holdfast_heartbeat_timeouts_total{level="protocol"}') == 1
        assert v('holdfast_heartbeat_timeouts_total{level="websocket"}') == 0  # not both
        assert v('holdfast_connections{transport="websocket"}') == 2  # c and d
        assert v("holdfast_clients") == 2
        assert v('holdfast_commands_total{method="connect"}') == 3
        assert v('holdfast_commands_total{method="subscribe"}') == 5
        assert v('holdfast_commands_total{method="publish"}') == 1
        assert v('holdfast_command_errors_total{code="102"}') == 1
        assert v('holdfast_api_errors_total{code="102"}') == 1
        assert v('holdfast_publications_total{source="api"}') == 4
        assert v('holdfast_publications_total{source="client"}') == 1
        assert v("holdfast_deliveries_total") == 5
        assert v('holdfast_recoveries_total{result="recovered"}') == 1
        assert v('holdfast_recoveries_total{result="failed"}') == 1
        assert v("holdfast_ping_rtt_seconds_count") >= 1
        assert v("holdfast_ping_rtt_seconds_sum") < 1.0
        assert v("holdfast_fanout_latency_seconds_count") >= 5
        assert v("holdfast_event_loop_lag_seconds_count") >= 2
        assert 'holdfast_event_loop_lag_max_seconds{worker="0"}' in m
        assert v("holdfast_send_queue_bytes_count") >= 1
        assert v("holdfast_messages_received_total") >= 8
        assert v("holdfast_messages_sent_total") >= 8
        assert v("holdfast_received_bytes_total") > 100
        assert v("holdfast_sent_bytes_total") > 100
        assert v("holdfast_engine_up") == 1
        assert v("process_open_fds") > 3 and v("process_resident_memory_bytes") > 1e6
        assert v("holdfast_start_time_seconds") > 1.7e9
        for x in (c, d):
            x.close()


def test_a_publication_is_encoded_once_for_subscribers_on_two_workers():
    """Issue 14: with subscribers spread over two workers, each publication
    is encoded once (holdfast_push_frames_encoded_total) and swept on both
    workers (one fan-out latency sample per worker and publication)."""
    n_subs, n_pubs = 24, 10  # 24 connections all on one worker: p = 2^-23
    with Server(config=config(), workers=2) as srv:
        subs = []
        for i in range(n_subs):
            c = RT(srv.port)
            c.connect(token("s%d" % i))
            c.ok("subscribe", {"channel": "spread"})
            subs.append(c)
        base = parse(scrape(srv.port))
        for i in range(n_pubs):
            api(srv.port, "publish", {"channel": "spread", "data": i})
        for c in subs:
            assert [p["data"] for p in c.pubs("spread", n_pubs)] == list(range(n_pubs))
        m = parse(scrape(srv.port))

        def grew(k):
            return m.get(k, 0) - base.get(k, 0)
        assert grew("holdfast_deliveries_total") == n_subs * n_pubs
        assert grew("holdfast_push_frames_encoded_total") == n_pubs
        assert grew("holdfast_fanout_latency_seconds_count") == 2 * n_pubs
        for c in subs:
            c.close()


def test_metrics_sit_on_the_internal_listener_when_there_is_one():
    p = free_port()
    with Server("--http_server.internal_port=%d" % p, config=config()) as srv:
        srv.wait_event("listening", lambda e: e.get("internal") is True)
        assert http_call(srv.port, "GET", "/metrics")[0] == 404
        promtool_ok(scrape(p))
        assert http_call(p, "POST", "/metrics", b"")[0] == 405
    with Server("--prometheus.enabled=false", config=config()) as srv:
        assert http_call(srv.port, "GET", "/metrics")[0] == 404


def test_a_real_prometheus_scrapes_holdfast():
    prom = shutil.which("prometheus") or "/usr/bin/prometheus"
    assert os.path.exists(prom), "prometheus not installed (scripts/deps.sh installs it)"
    with Server(config=config()) as srv:
        for _ in range(3):
            e = WS(srv.port, "/echo")
            e.close()
        d = tempfile.mkdtemp(prefix="hf-prom-")
        pport = free_port()
        cfg = os.path.join(d, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n"
                    "scrape_configs:\n  - job_name: holdfast\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % srv.port)
        log = open(os.path.join(d, "log"), "w")
        p = subprocess.Popen([prom, "--config.file=" + cfg, "--storage.tsdb.path=" + d + "/data",
                              "--web.listen-address=127.0.0.1:%d" % pport],
                             stdout=log, stderr=subprocess.STDOUT)
        try:
            def query(q):
                url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (pport, urllib.parse.quote(q))
                try:
                    with urllib.request.urlopen(url, timeout=2) as r:
                        res = json.load(r)["data"]["result"]
                except (OSError, ValueError, KeyError):
                    return None
                return float(res[0]["value"][1]) if res else None
            wait_until(lambda: query('holdfast_upgrades_total{endpoint="echo"}') == 3, 30,
                       "Prometheus scraped holdfast")
            assert query('up{job="holdfast"}') == 1
            assert query("holdfast_engine_up") == 1
        finally:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
            log.close()
            shutil.rmtree(d, ignore_errors=True)


def test_example_alert_rules_are_valid_and_use_real_metrics():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    rules = os.path.join(root, "docs", "prometheus-alerts.yml")
    r = subprocess.run(["/usr/bin/promtool", "check", "rules", rules], capture_output=True,
                       timeout=30)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()
    with Server(config=config()) as srv:
        names = {line.split()[2] for line in scrape(srv.port).splitlines()
                 if line.startswith("# TYPE ")}
    import re
    used = set(re.findall(r"\b((?:holdfast|process)_[a-z_]+?)(?:_bucket)?\b", open(rules).read()))
    missing = {u for u in used if u not in names and u + "_bucket" not in names
               and not any(n.startswith(u) for n in names)}
    assert not missing, "rules use metrics holdfast does not expose: %s" % missing
    doc = open(os.path.join(root, "docs", "operations.md")).read()
    for n in names:
        assert "`%s`" % n in doc, "metric %s is not documented in docs/operations.md" % n


if __name__ == "__main__":
    run_module("metrics", globals(), os.environ.get("ONLY"))
