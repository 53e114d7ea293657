# SPDX-License-Identifier: MIT
"""`holdfast probe` against real endpoints, each failure layer with its exit
status, cause and fix, in text and in JSON (parsed): holdfast (echo,
ping RTT, --max-size against a message limit, Centrifugo connect with and
without a token), a rejected origin, a port with nothing listening, a name
that does not resolve (loopback DNS server), Python's http.server (200 to
an upgrade), a Debian nginx configured without the Upgrade headers, and
proxies that cut an idle connection (closing it, or silently)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Server, free_port, run_module, wait_until  # noqa: E402
from clientkit import CuttingProxy, DnsServer, PeerProcess, run_tool  # noqa: E402

import socket  # noqa: E402


def probe(*args, timeout=40):
    return run_tool("probe", args, timeout=timeout)


def probe_json(*args, timeout=40):
    rc, out, err, secs = probe("--json", *args, timeout=timeout)
    try:
        doc = json.loads(out)
    except ValueError:
        raise AssertionError("probe --json printed no JSON (status %d): %r %r" % (rc, out, err))
    assert doc["exit"] == rc, (doc["exit"], rc)
    return rc, doc, err, secs


def layer(doc, name):
    for l in doc["layers"]:
        if l["layer"] == name:
            return l
    raise AssertionError("no layer %s in %s" % (name, [l["layer"] for l in doc["layers"]]))


def test_holdfast_echo():
    srv = Server("--websocket.message_size_limit", "64KiB")
    try:
        url = "ws://127.0.0.1:%d/echo" % srv.port
        rc, out, err, _ = probe(url)
        assert rc == 0, (rc, out, err)
        for title in ("DNS", "TCP", "TLS", "HTTP", "WebSocket"):
            assert "\n  %s " % title in out, (title, out)
        assert "accept key: valid" in out and "echo: yes" in out, out
        assert "result: ok" in out, out
        rc, doc, err, _ = probe_json(url, "--samples", "3", "--max-size", "1MiB")
        assert rc == 0 and doc["ok"] is True, doc
        assert layer(doc, "dns")["literal"] is True
        assert layer(doc, "tcp")["status"] == "ok" and layer(doc, "tcp")["ms"] >= 0
        assert layer(doc, "tls")["status"] == "skipped"
        http = layer(doc, "http")
        assert http["status"] == "ok" and http["http_status"] == 101, http
        assert http["accept_key"] == "valid" and http["check"] == "ok", http
        assert ["Upgrade", "websocket"] in http["headers"], http["headers"]
        ws = layer(doc, "websocket")
        assert ws["echo"] is True and ws["rtt_ms"]["samples"] == 3, ws
        assert ws["rtt_ms"]["min"] <= ws["rtt_ms"]["avg"] <= ws["rtt_ms"]["max"], ws
        # the server's 64 KiB limit: 64 KiB passes, 128 KiB is refused (1009)
        assert ws["max_size"]["passed"] == 65536, ws["max_size"]
        assert ws["max_size"]["failed_at"] == 131072, ws["max_size"]
        assert any("1009" in d for d in ws["details"]), ws["details"]
    finally:
        srv.stop()


def test_centrifugo_connect():
    tmp = tempfile.mkdtemp(prefix="hf-probe-")
    cfgp = os.path.join(tmp, "cfg.json")
    with open(cfgp, "w") as f:
        json.dump({"client": {"token": {"hmac_secret_key": "probe-secret-0123456789abcdef"}}}, f)
    srv = Server("--config", cfgp)
    try:
        token = subprocess.run([BIN, "gentoken", "--config", cfgp, "--user", "probe-user"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        assert token.count(".") == 2, token
        url = "ws://127.0.0.1:%d/connection/websocket" % srv.port
        rc, doc, err, _ = probe_json(url, "--token", token)
        assert rc == 0, doc
        assert layer(doc, "websocket")["centrifugo_connect"]["client"], doc
        rc, out, err, _ = probe(url)
        assert rc == 7, (rc, out)
        assert "cause: the server refused the connect command" in out, out
        assert "fix: pass a valid connection token with --token" in out, out
        rc, doc, err, _ = probe_json(url, "--token", "not.a.token")
        assert rc == 7 and doc["failed_layer"] == "websocket", doc
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_rejected_origin():
    srv = Server("--client.allowed_origins", "https://good.example")
    try:
        url = "ws://127.0.0.1:%d/echo" % srv.port
        rc, doc, err, _ = probe_json(url, "--origin", "https://evil.example")
        assert rc == 6 and doc["failed_layer"] == "http", doc
        http = layer(doc, "http")
        assert http["status"] == "fail" and http["check"] == "origin_rejected", http
        assert "allowed_origins" in doc["fix"], doc["fix"]
        rc, out, err, _ = probe(url, "--origin", "https://evil.example")
        assert rc == 6 and "< HTTP/1.1 403" in out and "result: HTTP failed (exit 6)" in out, out
        rc, doc, err, _ = probe_json(url, "--origin", "https://good.example")
        assert rc == 0 and layer(doc, "http")["acao"] == "matches the Origin sent", doc
    finally:
        srv.stop()


def test_nothing_listening_and_dns():
    rc, out, err, _ = probe("ws://127.0.0.1:%d/" % free_port())
    assert rc == 4 and "TCP        FAIL" in out and "refused" in out, out
    assert "\ncause: " in out and "\nfix: " in out, out
    dns = DnsServer({"ws.test": "127.0.0.1"})
    try:
        rc, doc, err, _ = probe_json("ws://nowhere.test:80/", "--dns-server",
                                     "127.0.0.1:%d" % dns.port)
        assert rc == 3 and doc["failed_layer"] == "dns", doc
        assert "getent hosts nowhere.test" in doc["fix"], doc["fix"]
        port = free_port()
        rc, doc, err, _ = probe_json("ws://ws.test:%d/" % port, "--dns-server",
                                     "127.0.0.1:%d" % dns.port)
        assert rc == 4, doc
        assert layer(doc, "dns")["addresses"] == ["127.0.0.1:%d" % port], doc
    finally:
        dns.close()
    rc, out, err, _ = probe("http://example.com/")
    assert rc == 2 and "ws://" in err, (rc, err)


def test_plain_http_server():
    d = tempfile.mkdtemp(prefix="hf-probe-www-")
    with open(os.path.join(d, "index.html"), "w") as f:
        f.write("<h1>hello</h1>")
    port = free_port()
    p = subprocess.Popen(["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1",
                          str(port)], cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _can_connect(port), 10, "http.server")
        rc, doc, err, _ = probe_json("ws://127.0.0.1:%d/" % port)
        assert rc == 6, doc
        http = layer(doc, "http")
        assert http["http_status"] == 200 and http["check"] == "plain_http", http
        assert "proxy_set_header Upgrade" in doc["fix"], doc["fix"]
        assert "<h1>hello</h1>" in http.get("body", ""), http
    finally:
        p.terminate()
        p.wait(5)
        shutil.rmtree(d, ignore_errors=True)


NGINX_CONF = """
daemon off;
master_process off;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %(dir)s/body;
  proxy_temp_path %(dir)s/proxy;
  fastcgi_temp_path %(dir)s/fastcgi;
  uwsgi_temp_path %(dir)s/uwsgi;
  scgi_temp_path %(dir)s/scgi;
  server {
    listen 127.0.0.1:%(port)d;
    location / {
      # the mistake under test: no proxy_http_version 1.1, no Upgrade and
      # Connection headers passed on
      proxy_pass http://127.0.0.1:%(up)d;
    }
  }
}
"""


def test_nginx_without_upgrade_headers():
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.path.exists(nginx), "nginx is not installed (scripts/deps.sh installs it)"
    srv = Server()
    d = tempfile.mkdtemp(prefix="hf-probe-nginx-")
    port = free_port()
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF % {"dir": d, "port": port, "up": srv.port})
    p = subprocess.Popen([nginx, "-p", d, "-c", os.path.join(d, "nginx.conf")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: _can_connect(port) or p.poll() is not None, 10, "nginx")
        assert p.poll() is None, p.stderr.read()
        rc, doc, err, _ = probe_json("ws://127.0.0.1:%d/echo" % port)
        assert rc == 6 and doc["failed_layer"] == "http", doc
        http = layer(doc, "http")
        assert any(h[0].lower() == "server" and "nginx" in h[1] for h in http["headers"]), http
        assert "proxy_set_header Upgrade $http_upgrade" in doc["fix"], doc["fix"]
        assert "proxy_http_version 1.1" in doc["fix"], doc["fix"]
    finally:
        p.terminate()
        p.wait(10)
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_idle_cut():
    srv = Server()
    try:
        # a load balancer that closes after 1.5 s
        px = CuttingProxy(srv.port, 1.5, "close")
        try:
            rc, doc, err, secs = probe_json("ws://127.0.0.1:%d/echo" % px.port, "--samples",
                                            "1", "--idle", "10s")
            assert rc == 8 and doc["failed_layer"] == "idle", doc
            idle = layer(doc, "idle")
            assert 0.3 <= idle["cut_after_s"] <= 3.0, idle
            assert "proxy_read_timeout" in doc["fix"] or "heartbeat" in doc["fix"], doc
            assert secs < 9, secs
        finally:
            px.close()
        # a NAT that forgets the flow: nothing closes, traffic just stops
        px = CuttingProxy(srv.port, 1.0, "blackhole")
        try:
            rc, out, err, secs = probe("ws://127.0.0.1:%d/echo" % px.port, "--samples", "1",
                                       "--idle", "2s")
            assert rc == 8 and "Idle       FAIL" in out, out
            assert "silently" in out, out
        finally:
            px.close()
        # nothing cuts it: ok
        rc, doc, err, _ = probe_json("ws://127.0.0.1:%d/echo" % srv.port, "--samples", "1",
                                     "--idle", "1s")
        assert rc == 0 and layer(doc, "idle")["cut"] is False, doc
    finally:
        srv.stop()


def _can_connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(run_module("probe", globals(), os.environ.get("ONLY")))
