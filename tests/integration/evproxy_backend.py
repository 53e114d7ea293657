# SPDX-License-Identifier: MIT
"""A small application backend for holdfast's event proxy (Centrifugo v6
proxy JSON), used by the proxy tests (Python, Node SDK, Chromium) and the
proxy benchmark. Run: python3 evproxy_backend.py [--port N] [--minimal] [--tls CERT KEY];
it prints "PORT <n>" on its first stdout line and serves until killed.

Sessions come from the Cookie header: session=<user> connects as <user>
(server-side channel "news:<user>", for alice also "news:alice:vip" from
"subs" with data; connect data, info and meta);
session=banned gets disconnect 4501; no session gets disconnect 4501 too.
Channels "open:*" may be subscribed (data {"welcome": channel}, and an
expire_at 2 s ahead for "open:expiring"), "secret:*" are refused with 103.
Publications are rewritten to {"rewritten": <data>, "by": <user>}. RPC
"echo" answers {"echo": data, "user": user}, "fail" answers error 1000.
Refresh and sub_refresh prolong by 2 s (user "expiring" is expired).

POST /_mode {"mode": "ok"|"slow"|"garbage"|"error500"} changes the
behaviour of every event (slow sleeps 1.5 s); GET /_log returns the
requests seen ({path, headers, body}); --minimal answers every event with
a fixed small result (benchmarks)."""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = {"mode": "ok", "log": [], "minimal": False}
LOCK = threading.Lock()


def user_of(headers):
    for part in (headers.get("Cookie") or "").split(";"):
        k, _, v = part.strip().partition("=")
        if k == "session" and v:
            return v
    return None


def answer(path, headers, body):
    now = int(time.time())
    if STATE["minimal"]:
        if path == "/connect":
            return {"result": {"user": user_of(headers) or "bench"}}
        if path == "/rpc":
            return {"result": {"data": {"ok": True}}}
        return {"result": {}}
    if path == "/connect":
        user = user_of(headers)
        if not user or user == "banned":
            return {"disconnect": {"code": 4501, "reason": "unauthorized"}}
        res = {"user": user, "info": {"name": user.title()}, "data": {"hello": user},
               "channels": ["news:" + user], "meta": {"plan": "pro"}}
        if user == "alice":  # subs and channels together: both are subscribed
            res["subs"] = {"news:alice:vip": {"data": {"vip": True}, "info": {"tier": 1}}}
        if user in ("refresher", "expiring"):
            res["expire_at"] = now + 2
        return {"result": res}
    if path == "/refresh":
        if body.get("user") == "expiring":
            return {"result": {"expired": True}}
        return {"result": {"expire_at": now + 2, "info": {"name": "refreshed"}}}
    if path == "/subscribe":
        ch = body.get("channel", "")
        if ch.startswith("secret:"):
            return {"error": {"code": 103, "message": "permission denied"}}
        res = {"data": {"welcome": ch}, "info": {"seat": 1}}
        if ch == "open:expiring":
            res["expire_at"] = now + 2
        return {"result": res}
    if path == "/sub_refresh":
        return {"result": {"expire_at": now + 2}}
    if path == "/publish":
        return {"result": {"data": {"rewritten": body.get("data"), "by": body.get("user")}}}
    if path == "/rpc":
        if body.get("method") == "fail":
            return {"error": {"code": 1000, "message": "custom failure"}}
        return {"result": {"data": {"echo": body.get("data"), "user": body.get("user"),
                                    "method": body.get("method")}}}
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as holdfast's client expects

    def log_message(self, *a):
        pass

    def reply(self, status, data):
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # holdfast gave up (timeout)

    def do_GET(self):
        if self.path == "/_log":
            with LOCK:
                data = json.dumps(STATE["log"]).encode()
            return self.reply(200, data)
        self.reply(404, b"{}")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        if self.path == "/_mode":
            STATE["mode"] = json.loads(raw)["mode"]
            return self.reply(200, b"{}")
        try:
            body = json.loads(raw)
        except ValueError:
            return self.reply(400, b'{"error":"not json"}')
        if not STATE["minimal"]:
            with LOCK:
                STATE["log"].append({"path": self.path, "headers": dict(self.headers.items()),
                                     "body": body, "peer": self.client_address[1]})
        mode = STATE["mode"]
        if mode == "slow":
            time.sleep(1.5)
        elif mode == "garbage":
            return self.reply(200, b"<html>this is not JSON")
        elif mode == "error500":
            return self.reply(500, b'{"error":"backend down"}')
        res = answer(self.path, self.headers, body)
        if res is None:
            return self.reply(404, b"{}")
        self.reply(200, json.dumps(res).encode())


def main():
    port = 0
    args = sys.argv[1:]
    if "--port" in args:
        port = int(args[args.index("--port") + 1])
    STATE["minimal"] = "--minimal" in args
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if "--tls" in args:  # --tls CERT KEY: https with that certificate
        import ssl
        i = args.index("--tls")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args[i + 1], args[i + 2])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
