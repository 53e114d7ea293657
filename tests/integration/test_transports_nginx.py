# SPDX-License-Identifier: MIT
"""HTTP streaming and SSE through Debian's nginx, started by the test on
loopback with a temporary config: with proxy_buffering off, and with nginx's
defaults (X-Accel-Buffering: no honoured), every reply and push passes at
once, emulation included; with buffering forced on (X-Accel-Buffering
ignored) and gzip, nginx holds the whole answer back, and holdfast logs the
stream the client gave up on as stream_unanswered."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from harness import Server, http_call, run_module, wait_until
from test_transports import Stream, config, emulate

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
API_KEY = "tr-api-key"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Nginx:
    """nginx in the foreground with three listeners in front of upstream:
    .direct (proxy_buffering off), .default (nginx defaults: buffering on,
    X-Accel-Buffering honoured), .buffered (buffering on, X-Accel-Buffering
    ignored)."""

    def __init__(self, upstream):
        self.dir = tempfile.mkdtemp(prefix="hf-nginx-")
        self.direct, self.default, self.buffered = free_port(), free_port(), free_port()
        loc = """
        location / {
            proxy_pass http://127.0.0.1:%d;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 30s;
            %%s
        }""" % upstream
        conf = """
daemon off;
master_process off;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    server { listen 127.0.0.1:%(p1)d; %(l1)s }
    server { listen 127.0.0.1:%(p2)d; %(l2)s }
    server { listen 127.0.0.1:%(p3)d; %(l3)s }
}
""" % {"d": self.dir, "p1": self.direct, "p2": self.default, "p3": self.buffered,
       "l1": loc % "proxy_buffering off;", "l2": loc % "",
       "l3": loc % ("proxy_buffering on; proxy_ignore_headers X-Accel-Buffering; gzip on; "
                    "gzip_types application/json text/event-stream *; gzip_min_length 0;")}
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen([NGINX, "-e", os.path.join(self.dir, "error.log"),
                                      "-p", self.dir, "-c", path],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.buffered), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    log = open(os.path.join(self.dir, "error.log")).read() if os.path.exists(
                        os.path.join(self.dir, "error.log")) else ""
                    self.stop()
                    raise AssertionError("nginx did not start: " + log[-1000:])
                time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()


def connect_reply_within(port, kind, secs, headers=None):
    """Open a stream through port; the connect result, or None if nothing
    arrived within secs (the Stream is returned either way)."""
    st = Stream(port, kind, headers=headers)
    assert st.status == 200, st.status
    try:
        return st, st.msg(secs)
    except (AssertionError, socket.timeout):
        return st, None


def test_streams_pass_unbuffered_and_default_nginx():
    with Server(config=config()) as srv, Nginx(srv.port) as ng:
        for port in (ng.direct, ng.default):  # buffering off, or X-Accel-Buffering: no honoured
            for kind in ("http_stream", "sse"):
                st, res = connect_reply_within(port, kind, 5.0)
                assert res and res["connect"]["session"], (port, kind, res)
                sess, node = res["connect"]["session"], res["connect"]["node"]
                status, _, _ = emulate(port, sess, node, {"subscribe": {"channel": "px"}, "id": 2})
                assert status == 204
                st.until(lambda m: m.get("id") == 2)
                status, _, body = http_call(srv.port, "POST", "/api/publish",
                                            {"channel": "px", "data": {"k": kind}},
                                            headers={"X-API-Key": API_KEY})
                assert status == 200, body
                m = st.until(lambda m: "push" in m)
                assert m["push"]["pub"]["data"] == {"k": kind}, m
                st.close()


def test_buffering_proxy_holds_replies_and_is_reported():
    with Server(config=config()) as srv, Nginx(srv.port) as ng:
        cmd = b'{"connect":{"name":"py"},"id":1}'
        s = socket.create_connection(("127.0.0.1", ng.buffered), timeout=5)
        s.sendall(b"POST /connection/http_stream HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(cmd) + cmd)
        ev = srv.wait_event("client_connected", lambda e: e.get("transport") == "http_stream")
        # holdfast answered at once; the compressing, buffering proxy holds
        # the answer (head included) back from the client
        s.settimeout(1.5)
        try:
            got = s.recv(65536)
        except socket.timeout:
            got = None
        assert got is None, "the buffering proxy passed %r" % got[:200]
        s.settimeout(1.0)  # the client gives up, as the SDK does after its timeout
        try:
            s.recv(1)
        except socket.timeout:
            pass
        s.close()
        ev = srv.wait_event("stream_unanswered", timeout=10)
        assert ev["transport"] == "http_stream" and ev["duration_ms"] >= 2000, ev
        assert "proxy_buffering off" in ev["hint"]
        closed = srv.wait_event("closed", lambda e: e.get("transport") == "http_stream")
        assert closed["emulation_requests"] == 0 and closed["who"] == "client", closed


if __name__ == "__main__":
    sys.exit(run_module("transports_nginx", globals(), only=os.environ.get("ONLY")))
