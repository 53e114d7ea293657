# SPDX-License-Identifier: MIT
"""holdfast behind real proxies, and the client address: Debian's nginx and
HAProxy are started on loopback with the configuration blocks of
docs/proxies.md (read from the file, so the documented configurations are
the tested ones; only ports and certificate paths are replaced), in
temporary directories, and stopped by the test. Through each: a raw
WebSocket and the `centrifuge` SDK (Node), with the client on 127.0.0.2 and
the proxy on 127.0.0.1, so the log must name 127.0.0.2 as "remote" and the
proxy as "peer". TLS at the proxy (nginx), at both (nginx re-encrypting
to holdfast) and at holdfast (HAProxy TCP pass-through with PROXY v2); nginx without the Upgrade lines yields
holdfast's 426 explanation; nginx with a 3 s idle timeout cuts a connection
without heartbeats and keeps one with heartbeats. Without a proxy:
forwarding headers believed only from trusted peers (right-most untrusted
address; ignored and logged once otherwise), PROXY v1 on a plain listener,
a missing PROXY header, an untrusted peer on a PROXY listener, per-IP
limits counted per client behind a proxy, same-origin through a proxy that
rewrites Host."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from harness import (ROOT, WS, Server, connect, free_port, read_http_response, read_to_eof,
                     run_module, upgrade_request, wait_until)
from tlsutil import CA

NGINX = "/usr/sbin/nginx"
HAPROXY = "/usr/sbin/haproxy"
NODE = os.environ.get("NODE", "/usr/bin/node")
DOC = os.path.join(ROOT, "docs", "proxies.md")
SECRET = "holdfast-proxy-test-secret-0123456789"
CLIENT = "127.0.0.2"   # the "browser"; the proxies connect from 127.0.0.1


def doc_block(name):
    """The configuration block marked <!-- tested: name --> in proxies.md."""
    with open(DOC) as f:
        text = f.read()
    m = re.search(r"<!-- tested: %s -->\n```\w*\n(.*?)```" % re.escape(name), text, re.S)
    assert m, "docs/proxies.md has no block marked tested: " + name
    return m.group(1)


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


class Proxy:
    """A proxy process with its configuration and logs in a temp dir."""

    def __init__(self, kind, conf, port):
        self.kind, self.port = kind, port
        self.dir = tempfile.mkdtemp(prefix="hf-%s-" % kind)
        os.chmod(self.dir, 0o755)
        path = os.path.join(self.dir, kind + ".conf")
        with open(path, "w") as f:
            f.write(conf.replace("@DIR@", self.dir))
        self.logpath = os.path.join(self.dir, "stderr.log")
        self.logf = open(self.logpath, "w")
        if kind == "nginx":
            cmd = [NGINX, "-p", self.dir, "-e", os.path.join(self.dir, "error.log"),
                   "-c", path, "-g", "daemon off;"]
        else:
            cmd = [HAPROXY, "-db", "-f", path]
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=self.logf,
                                     start_new_session=True)
        deadline = time.time() + 10
        while not port_open(port):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise AssertionError("%s did not start: %s" % (kind, self.log()))
            time.sleep(0.05)

    def log(self):
        out = ""
        for name in ("stderr.log", "error.log"):
            p = os.path.join(self.dir, name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    out += f.read()[-2000:]
        return out

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.logf.close()
        if not os.environ.get("HF_KEEP_LOGS"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is not None:
            sys.stdout.write("  --- %s log ---\n%s\n" % (self.kind, self.log()))
        self.stop()
        return False


def nginx(server_block, hf_port, cert=None, key=None, ca=None):
    port = free_port()
    block = (server_block.replace("listen 80;", "listen 127.0.0.1:%d;" % port)
             .replace("listen 443 ssl;", "listen 127.0.0.1:%d ssl;" % port)
             .replace("127.0.0.1:8000", "127.0.0.1:%d" % hf_port)
             .replace("127.0.0.1:8443", "127.0.0.1:%d" % hf_port))
    if cert:
        block = (block.replace("/etc/ssl/holdfast/fullchain.pem", cert)
                 .replace("/etc/ssl/holdfast/privkey.pem", key))
    if ca:
        block = block.replace("/etc/ssl/holdfast/ca.pem", ca)
    conf = ("worker_processes 1;\npid @DIR@/nginx.pid;\nerror_log @DIR@/error.log info;\n"
            "events { worker_connections 256; }\n"
            "http {\n access_log @DIR@/access.log;\n"
            " client_body_temp_path @DIR@/body; proxy_temp_path @DIR@/proxy;\n"
            " fastcgi_temp_path @DIR@/fastcgi; uwsgi_temp_path @DIR@/uwsgi;"
            " scgi_temp_path @DIR@/scgi;\n"
            + doc_block("nginx-map") + block + "}\n")
    return Proxy("nginx", conf, port)


def haproxy(block, hf_port=None, hf_tls_port=None):
    port = free_port()
    block = block.replace("bind :80", "bind 127.0.0.1:%d" % port).replace(
        "bind :443", "bind 127.0.0.1:%d" % port)
    if hf_port:
        block = block.replace("127.0.0.1:8000", "127.0.0.1:%d" % hf_port)
    if hf_tls_port:
        block = block.replace("127.0.0.1:8443", "127.0.0.1:%d" % hf_tls_port)
    conf = "global\n    maxconn 256\n\n" + doc_block("haproxy-defaults") + "\n" + block
    return Proxy("haproxy", conf, port)


def hf_server(ca=None, *more, **kw):
    """holdfast as in docs/proxies.md: plain main listener, trusted proxy
    127.0.0.1, a TLS listener expecting PROXY headers, real-time channels
    open to clients."""
    args = ["--http_server.trusted_proxies=127.0.0.1/32",
            "--client.token.hmac_secret_key=" + SECRET,
            '--channel.without_namespace={"allow_subscribe_for_client":true,'
            '"allow_publish_for_client":true}']
    if ca:
        cert, key = ca.issue("localhost")
        args += ["--http_server.tls.listen=127.0.0.1:0", "--http_server.tls.proxy_protocol=true",
                 "--http_server.tls.cert_pem_file=" + cert,
                 "--http_server.tls.key_pem_file=" + key]
    return Server(*(args + list(more)), **kw)


def echo(ws, payload=b"through the proxy"):
    ws.send(0x1, payload)
    assert ws.recv_message() == (0x1, payload)


def is_ip(remote, ip):
    """remote ("ip" from a forwarding header, "ip:port" from TCP or a
    PROXY header) is the address ip."""
    return remote == ip or remote.startswith(ip + ":")


def accepted_from(srv, client_ip, **more):
    """The upgrade_accepted line of a client at client_ip (via a proxy)."""
    ev = srv.wait_event("upgrade_accepted", lambda e: is_ip(e.get("remote", ""), client_ip))
    assert ev.get("peer", "").startswith("127.0.0.1:"), ev
    for k, v in more.items():
        assert ev.get(k) == v, (k, ev)
    return ev


def sdk_session(url, ca_file=None):
    """One centrifuge SDK session (connect, subscribe, publish, receive)
    from 127.0.0.2 through url."""
    env = dict(os.environ, HF_URL=url, HF_LOCAL=CLIENT, HF_SECRET=SECRET)
    if ca_file:
        env["HF_CA"] = ca_file
    r = subprocess.run([NODE, os.path.join(ROOT, "tests", "interop", "centrifuge_proxy.mjs")],
                       capture_output=True, text=True, timeout=30, env=env)
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    assert lines, "node printed nothing: rc %d %s" % (r.returncode, r.stderr[-800:])
    out = json.loads(lines[-1])
    assert r.returncode == 0 and out.get("ok"), (out, r.stderr[-800:])
    return out


# ---- nginx -------------------------------------------------------------------------

def test_nginx_tls_termination_websocket_and_sdk():
    """TLS at the proxy: wss:// to nginx, plain to holdfast; the client's
    address, scheme and host come from nginx's forwarding headers."""
    with CA() as ca, hf_server() as srv:
        cert, key = ca.issue("localhost")
        with nginx(doc_block("nginx-tls"), srv.port, cert, key) as px:
            host = "localhost:%d" % px.port
            ws = WS(px.port, tls=ca.client_context(), source=CLIENT,
                    headers={"Host": host, "Origin": "https://" + host})
            echo(ws)
            ws.close()
            ev = accepted_from(srv, CLIENT, forwarded_proto="https")
            assert "tls" not in ev, ev  # TLS ended at nginx
            out = sdk_session("wss://localhost:%d/connection/websocket" % px.port, ca.cert)
            srv.wait_event("upgrade_accepted", lambda e: e.get("path") == "/connection/websocket"
                           and is_ip(e.get("remote", ""), CLIENT))
            assert out["client"], out


def test_nginx_tls_to_holdfast_tls():
    """TLS at both: nginx re-encrypts to holdfast's TLS listener and
    verifies its certificate; the client address still comes through."""
    with CA() as ca:
        cert, key = ca.issue("localhost")
        with Server("--http_server.tls.enabled=true", "--http_server.tls.cert_pem_file=" + cert,
                    "--http_server.tls.key_pem_file=" + key,
                    "--http_server.trusted_proxies=127.0.0.1/32",
                    "--client.token.hmac_secret_key=" + SECRET,
                    '--channel.without_namespace={"allow_subscribe_for_client":true,'
                    '"allow_publish_for_client":true}') as srv:
            with nginx(doc_block("nginx-tls-upstream"), srv.port, cert, key, ca.cert) as px:
                ws = WS(px.port, tls=ca.client_context(), source=CLIENT)
                echo(ws)
                ws.close()
                ev = accepted_from(srv, CLIENT, forwarded_proto="https")
                assert ev.get("tls") in ("TLSv1.3", "TLSv1.2") and ev.get("sni") == "localhost", ev
                sdk_session("wss://localhost:%d/connection/websocket" % px.port, ca.cert)


def test_nginx_plain_same_origin_and_forwarded_host():
    """nginx rewrites Host to the upstream address; the same-origin rule
    uses the X-Forwarded-Host of the trusted proxy, so the page's own
    origin passes and another origin does not."""
    with hf_server() as srv:
        with nginx(doc_block("nginx-plain"), srv.port) as px:
            host = "app.test:%d" % px.port
            ws = WS(px.port, source=CLIENT, headers={"Host": host, "Origin": "http://" + host})
            echo(ws)
            ws.close()
            accepted_from(srv, CLIENT, forwarded_proto="http")
            s = connect(px.port, source=CLIENT)
            req, _ = upgrade_request("/echo", headers={"Host": host, "Origin": "http://evil.test"})
            s.sendall(req)
            status, _, body, _ = read_http_response(s)
            s.close()
            assert status == 403, (status, body)
            ev = srv.wait_event("upgrade_rejected")
            assert ev.get("reason") == "origin_rejected" and ev.get("forwarded_host") == host, ev
            assert is_ip(ev.get("remote", ""), CLIENT), ev
            sdk_session("ws://127.0.0.1:%d/connection/websocket" % px.port)


def test_nginx_without_upgrade_lines_gets_explanation():
    with hf_server() as srv:
        block = "\n".join(l for l in doc_block("nginx-plain").splitlines()
                          if "Upgrade" not in l and "Connection" not in l) + "\n"
        with nginx(block, srv.port) as px:
            s = connect(px.port, source=CLIENT)
            req, _ = upgrade_request("/connection/websocket")
            s.sendall(req)
            status, _, body, _ = read_http_response(s)
            s.close()
            assert status == 426, (status, body)
            assert b"proxy_set_header Upgrade $http_upgrade" in body, body
            ev = srv.wait_event("upgrade_rejected")
            assert ev.get("reason") == "missing_upgrade", ev
            assert is_ip(ev.get("remote", ""), CLIENT), ev


def test_nginx_idle_timeout_and_heartbeats():
    """nginx at a 2 s idle timeout (60 s by default; shortened to keep the
    suite fast): without heartbeats an idle connection is cut, with 500 ms
    pings it stays open past twice the timeout."""
    block = doc_block("nginx-plain").replace("75s", "2s")
    with hf_server(None, "--websocket.ping_interval=0") as quiet, \
            hf_server(None, "--websocket.ping_interval=500ms",
                      "--websocket.pong_timeout=400ms") as beating:
        with nginx(block, quiet.port) as px_quiet, nginx(block, beating.port) as px_beat:
            a = WS(px_quiet.port, source=CLIENT)
            b = WS(px_beat.port, source=CLIENT)
            t0 = time.time()
            cut = {}

            def watch_a():  # a: nothing flows; nginx closes it after ~2 s
                try:
                    cut["data"] = read_to_eof(a.sock, timeout=15)
                except AssertionError as e:
                    cut["error"] = str(e)
                cut["t"] = time.time() - t0
            th = threading.Thread(target=watch_a)
            th.start()
            # b: answer pings until 5 s have passed, then it still echoes
            pings = 0
            while time.time() - t0 < 5:
                fin, op, p = b.recv_frame(timeout=5)
                assert op == 0x9, (op, p)
                b.send(0xA, p)
                pings += 1
            th.join(timeout=15)
            assert "error" not in cut, cut
            assert 1.5 <= cut["t"] <= 5, "cut after %.1fs (proxy timeout 2 s)" % cut["t"]
            assert cut["data"] == b"", cut["data"]
            assert pings >= 6, pings
            echo(b, b"alive after %d pings" % pings)
            assert not beating.events("closed"), beating.events("closed")
            b.send(0x8, b"\x03\xe8")
            b.expect_close(1000)
            b.close()
            acc = accepted_from(quiet, CLIENT)
            ev = quiet.wait_event("closed", timeout=10)
            assert ev["conn_id"] == acc["conn_id"] and ev.get("code") == 1006, ev


# ---- HAProxy -----------------------------------------------------------------------

def test_haproxy_http_forwardfor_websocket_and_sdk():
    with hf_server() as srv:
        with haproxy(doc_block("haproxy-http"), hf_port=srv.port) as px:
            ws = WS(px.port, source=CLIENT)
            echo(ws)
            ws.close()
            accepted_from(srv, CLIENT)
            sdk_session("ws://127.0.0.1:%d/connection/websocket" % px.port)


def test_haproxy_tls_passthrough_proxy_v2_websocket_and_sdk():
    """TLS at holdfast: HAProxy passes the TLS bytes through in TCP mode
    and names the client in a PROXY v2 header on holdfast's TLS listener."""
    with CA() as ca, hf_server(ca) as srv:
        tls_port = srv.port_of(tls=True, proxy_protocol=True)
        with haproxy(doc_block("haproxy-tcp"), hf_tls_port=tls_port) as px:
            ws = WS(px.port, tls=ca.client_context(), source=CLIENT)
            echo(ws)
            ws.close()
            ev = accepted_from(srv, CLIENT)
            assert ev.get("tls") in ("TLSv1.3", "TLSv1.2") and ev.get("sni") == "localhost", ev
            sdk_session("wss://localhost:%d/connection/websocket" % px.port, ca.cert)


# ---- without a proxy: what holdfast believes ---------------------------------------------

def test_forwarding_headers_only_from_trusted_peers():
    with hf_server() as srv:
        # trusted peer (127.0.0.1): right-most untrusted address is the client
        ws = WS(srv.port, headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7, 127.0.0.1"})
        echo(ws)
        ws.close()
        ev = srv.wait_event("upgrade_accepted", lambda e: e.get("remote", "").startswith("198.51.100.7"))
        assert ev.get("peer", "").startswith("127.0.0.1:"), ev
        ws = WS(srv.port, headers={"Forwarded": 'for=192.0.2.60;proto=https, for="[2001:db8::7]:4711"',
                                   "X-Forwarded-For": "203.0.113.1"})
        ws.close()
        srv.wait_event("upgrade_accepted", lambda e: "2001:db8::7" in e.get("remote", "")
                       and e.get("peer", "").startswith("127.0.0.1:"))
        # untrusted peer (127.0.0.2): headers ignored, logged once per peer
        for _ in range(2):
            ws = WS(srv.port, source=CLIENT, headers={"X-Forwarded-For": "203.0.113.9",
                                                      "X-Real-IP": "203.0.113.9"})
            echo(ws)
            ws.close()
        wait_until(lambda: len([e for e in srv.events("upgrade_accepted")
                                if is_ip(e.get("remote", ""), CLIENT)]) == 2,
                   what="two upgrades from 127.0.0.2")
        assert not [e for e in srv.events() if "203.0.113.9" in json.dumps(e)
                    and e.get("event") != "forwarded_headers_ignored"]
        ign = srv.events("forwarded_headers_ignored")
        assert len(ign) == 1 and ign[0]["remote"].startswith(CLIENT), ign


def test_per_ip_limit_counts_clients_behind_a_proxy():
    with hf_server(None, "--client.connection_limit_per_ip=1") as srv:
        a = WS(srv.port, headers={"X-Forwarded-For": "198.51.100.1"})
        b = WS(srv.port, headers={"X-Forwarded-For": "198.51.100.2"})  # same peer, other client
        echo(a)
        echo(b)
        s = connect(srv.port)
        req, _ = upgrade_request("/echo", headers={"X-Forwarded-For": "198.51.100.1"})
        s.sendall(req)
        status, _, body, _ = read_http_response(s)
        s.close()
        assert status == 503, (status, body)
        ev = srv.wait_event("upgrade_rejected", lambda e: e.get("reason") == "connection_limit")
        assert ev.get("remote", "").startswith("198.51.100.1"), ev
        a.close()
        b.close()


def test_proxy_protocol_v1_on_plain_listener():
    with hf_server(None, "--http_server.proxy_protocol=true") as srv:
        s = connect(srv.port)
        req, _ = upgrade_request("/echo")
        s.sendall(b"PROXY TCP4 203.0.113.50 127.0.0.1 40000 8000\r\n" + req)
        status, _, _, _ = read_http_response(s)
        assert status == 101, status
        s.close()
        ev = srv.wait_event("upgrade_accepted")
        assert ev.get("remote") == "203.0.113.50:40000", ev
        assert ev.get("peer", "").startswith("127.0.0.1:"), ev
        # no PROXY header: an HTTP request gets 400 and why, other bytes
        # are closed without an answer; both logged with the reason
        s = connect(srv.port)
        s.sendall(upgrade_request("/echo")[0])
        status, _, body, _ = read_http_response(s)
        s.close()
        assert status == 400 and b"PROXY protocol" in body, (status, body)
        s = connect(srv.port)
        s.sendall(b"\x16\x03\x01\x00\x05hello")
        assert read_to_eof(s) == b""
        s.close()
        wait_until(lambda: len(srv.events("bad_proxy_header")) == 2, what="two bad_proxy_header")
        assert all(e.get("reason") for e in srv.events("bad_proxy_header"))
        # an untrusted peer may not send PROXY headers at all
        s = connect(srv.port, source=CLIENT)
        try:
            s.sendall(b"PROXY TCP4 198.51.100.1 127.0.0.1 1 2\r\n")
        except OSError:
            pass
        assert read_to_eof(s) == b""
        s.close()
        ev = srv.wait_event("proxy_peer_untrusted")
        assert ev.get("remote") == CLIENT, ev
        assert not [e for e in srv.events() if "198.51.100.1" in json.dumps(e)]


if __name__ == "__main__":
    for tool in (NGINX, HAPROXY):
        if not os.access(tool, os.X_OK):
            print("FAIL proxies/setup: %s is missing (scripts/deps.sh installs nginx and haproxy)" % tool)
            sys.exit(1)
    sys.exit(run_module("proxies", dict(globals()), os.environ.get("ONLY")))
