# SPDX-License-Identifier: MIT
"""Admin API (POST /admin/auth, POST /admin/api/METHOD) and the dashboard
WebSocket (/admin/ws) with raw HTTP and WebSocket clients: login and session
tokens (401 without, 403 wrong or expired, with the reason logged), the
connection list across two workers with its filters and cursor paging,
disconnect by connection and by user with the code the client receives,
drain, the internal listener, and the pushed snapshot."""
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time

from harness import BIN, WS, Server, connect, http_call, read_http_response, run_module, \
    upgrade_request
from test_api import free_port
from test_realtime import client, config

PASSWORD = "admin-pass-1"
SECRET = "admin-secret-0123456789"


def admin_config(**kw):
    c = config()
    c["admin"] = {"enabled": True, "password": PASSWORD, "secret": SECRET}
    c["admin"].update(kw)
    return c


def login(port, password=PASSWORD):
    st, hdrs, b = http_call(port, "POST", "/admin/auth", {"password": password})
    return st, json.loads(b)


def token_of(port):
    st, r = login(port)
    assert st == 200, (st, r)
    assert r["expires_at"] > time.time() + 3600, r
    return r["token"]


def adm(port, tok, method, body):
    st, hdrs, b = http_call(port, "POST", "/admin/api/" + method, body,
                            {"Authorization": "token " + tok} if tok else None)
    return st, (json.loads(b) if hdrs.get("content-type", "").startswith("application/json")
                else b.decode())


def ok(port, tok, method, body):
    st, r = adm(port, tok, method, body)
    assert st == 200, (st, r)
    return r["result"]


def test_enabled_needs_password_and_secret():
    cfg = config()
    cfg["admin"] = {"enabled": True, "password": PASSWORD}
    p = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", "--config", "/dev/stdin"],
                       input=json.dumps(cfg).encode(), capture_output=True, timeout=20)
    assert p.returncode != 0, p
    assert b"admin.enabled needs admin.password" in p.stderr, p.stderr


def test_auth_required_401_403_with_reason():
    with Server(config=admin_config()) as srv:
        st, r = adm(srv.port, None, "connections", {})
        assert st == 401 and "POST /admin/auth" in r, (st, r)
        st, r = adm(srv.port, "123.abc", "connections", {})
        assert st == 403 and "wrong or expired" in r, (st, r)
        # a token signed with the right secret but already expired
        exp = int(time.time()) - 10
        mac = hmac.new(SECRET.encode(), b"holdfast-admin:%d" % exp, hashlib.sha256).hexdigest()
        st, r = adm(srv.port, "%d.%s" % (exp, mac), "connections", {})
        assert st == 403, (st, r)
        st, r = login(srv.port, "wrong")
        assert st == 403 and "wrong admin password" in r["error"], (st, r)
        st, _, _ = http_call(srv.port, "GET", "/admin/auth")
        assert st == 405, st
        reasons = [e["reason"] for e in srv.events("admin_rejected")]
        assert reasons[:3] == ["admin_login_required", "bad_admin_token",
                               "admin_token_expired"], reasons
        assert srv.events("admin_login_failed"), srv.log()
        tok = token_of(srv.port)
        assert ok(srv.port, tok, "connections", {})["total"] == 0
        st, r = adm(srv.port, tok, "nosuch", {})
        assert st == 404 and "connections, disconnect, drain" in r, (st, r)
        # the dashboard WebSocket checks the same token
        for path, want in (("/admin/ws", 401), ("/admin/ws?token=1.2", 403)):
            s = connect(srv.port)
            s.sendall(upgrade_request(path)[0])
            st, _, _, _ = read_http_response(s)
            s.close()
            assert st == want, (path, st)
        ws = WS(srv.port, "/admin/ws?token=" + tok)
        ws.sock.close()
        assert PASSWORD not in srv.log() and SECRET not in srv.log()


def test_cross_origin_refused_even_insecure():
    with Server(config=admin_config(insecure=True)) as srv:
        for path in ("/admin/api/connections", "/admin/auth"):
            st, _, b = http_call(srv.port, "POST", path, {"password": PASSWORD},
                                 {"Origin": "http://evil.example", "Content-Type": "text/plain"})
            assert st == 403 and b"Origin must match Host" in b, (path, st, b)
        s = connect(srv.port)
        s.sendall(upgrade_request("/admin/ws", headers={"Origin": "http://evil.example"})[0])
        st, _, _, _ = read_http_response(s)
        s.close()
        assert st == 403, st
        reasons = {e["reason"] for e in srv.events("admin_rejected")}
        assert reasons == {"admin_cross_origin"}, reasons
        # the admin's own page (Origin names the Host) and non-browsers pass
        st, _, b = http_call(srv.port, "POST", "/admin/api/connections", {},
                             {"Origin": "http://127.0.0.1"})
        assert st == 200 and json.loads(b)["result"]["total"] == 0, (st, b)
        ws = WS(srv.port, "/admin/ws")
        ws.sock.close()
        srv.wait_event("admin_dashboard_opened")


def test_password_guessing_throttled():
    with Server(config=admin_config()) as srv:
        for _ in range(5):
            st, r = login(srv.port, "guess")
            assert st == 403, (st, r)
        st, r = login(srv.port)  # even the right password waits for the window
        assert st == 429 and "too many failed admin logins" in r["error"], (st, r)
        assert srv.events("admin_login_throttled")


def test_disabled_by_default():
    with Server(config=config()) as srv:
        st, _, _ = http_call(srv.port, "POST", "/admin/auth", {"password": PASSWORD})
        assert st == 404, st


def test_page_served():
    with Server(config=admin_config()) as srv:
        st, hdrs, b = http_call(srv.port, "GET", "/admin/")
        assert st == 200 and hdrs["content-type"].startswith("text/html"), (st, hdrs)
        assert b"/admin/ws" in b and b"<svg" in b, b[:200]
        st, hdrs, _ = http_call(srv.port, "GET", "/admin")
        assert st == 301 and hdrs["location"] == "/admin/", (st, hdrs)


def test_list_filters_and_paging_across_workers():
    with Server(config=admin_config(), workers=2) as srv:
        tok = token_of(srv.port)
        users = ["alice", "alice", "bob", "carol", "carol"]
        cs = [client(srv, u, subs=("room%d" % (i % 2),)) for i, u in enumerate(users)]
        r = ok(srv.port, tok, "connections", {})
        assert r["total"] == 5 and r["next_cursor"] == "", r
        rows = r["connections"]
        assert sorted(x["id"] for x in rows) == [x["id"] for x in rows]  # ordered by id
        assert {x["id"] for x in rows} == {c.cid for c in cs}
        one = next(x for x in rows if x["id"] == cs[2].cid)
        assert one["user"] == "bob" and one["channels"] == ["room0"], one
        assert one["remote"].startswith("127.0.0.1:") and one["transport"] == "websocket", one
        assert one["origin"] is None and one["age_s"] >= 0 and one["queue_bytes"] == 0, one
        assert "rtt_ms" in one
        r = ok(srv.port, tok, "connections", {"user": "carol"})
        assert r["total"] == 2 and {x["user"] for x in r["connections"]} == {"carol"}, r
        r = ok(srv.port, tok, "connections", {"channel": "room1"})
        assert {x["id"] for x in r["connections"]} == {cs[1].cid, cs[3].cid}, r
        assert ok(srv.port, tok, "connections", {"remote": "127.0.0."})["total"] == 5
        assert ok(srv.port, tok, "connections", {"remote": "10."})["total"] == 0
        # pages of two follow the cursor and see every connection once
        seen, cursor, pages = [], "", 0
        while True:
            r = ok(srv.port, tok, "connections", {"limit": 2, "cursor": cursor})
            seen += [x["id"] for x in r["connections"]]
            pages += 1
            assert len(r["connections"]) <= 2
            cursor = r["next_cursor"]
            if not cursor:
                break
        assert pages == 3 and sorted(seen) == sorted(c.cid for c in cs), (pages, seen)
        for bad in ({"limit": 0}, {"limit": 1001}, {"limit": "5"}, {"user": 5}):
            st, r = adm(srv.port, tok, "connections", bad)
            assert st == 400 and "bad request" in r["error"], (bad, st, r)
        for c in cs:
            c.close()


def test_origin_listed():
    cfg = admin_config()
    cfg["client"]["allowed_origins"] = ["http://app.example"]
    with Server(config=cfg) as srv:
        tok = token_of(srv.port)
        ws = WS(srv.port, "/connection/websocket", headers={"Origin": "http://app.example"})
        r = ok(srv.port, tok, "connections", {})
        assert r["total"] == 1 and r["connections"][0]["origin"] == "http://app.example", r
        ws.sock.close()


def test_disconnect_by_id_and_by_user_with_code():
    with Server(config=admin_config(), workers=2) as srv:
        tok = token_of(srv.port)
        a1, a2, b = client(srv, "alice"), client(srv, "alice"), client(srv, "bob")
        r = ok(srv.port, tok, "disconnect", {"client": b.cid, "code": 3011, "reason": "admin says"})
        assert r == {"disconnected": 1}, r
        _, reason = b.expect_close(3011)
        assert reason == "admin says", reason
        r = ok(srv.port, tok, "disconnect", {"user": "alice", "code": 4001, "reason": "banned"})
        assert r == {"disconnected": 2}, r
        for c in (a1, a2):
            _, reason = c.expect_close(4001)
            assert reason == "banned"
        c = client(srv, "carol")
        assert ok(srv.port, tok, "disconnect", {"user": "carol"}) == {"disconnected": 1}
        _, reason = c.expect_close(3503)
        assert reason == "force disconnect"
        assert ok(srv.port, tok, "disconnect", {"user": "nobody"}) == {"disconnected": 0}
        for bad in ({}, {"user": "x", "code": 1000}, {"user": "x", "reason": ""}):
            st, r = adm(srv.port, tok, "disconnect", bad)
            assert st == 400 and "bad request" in r["error"], (bad, st, r)
        ev = srv.wait_event("admin_disconnect", lambda e: e.get("user") == "alice")
        assert ev["disconnected"] == 2 and ev["code"] == 4001, ev
        for x in (a1, a2, b, c):
            x.close()


def test_drain():
    srv = Server(config=admin_config())
    try:
        tok = token_of(srv.port)
        c = client(srv, "alice")
        assert ok(srv.port, tok, "drain", {}) == {"draining": True}
        _, reason = c.expect_close(3001)
        assert reason == "shutdown", reason
        c.close()
        assert srv.proc.wait(timeout=20) == 0
        srv.wait_event("shutdown_complete")
        assert srv.events("admin_drain")
        srv.check_log_clean()
    finally:
        srv.cleanup()


def test_internal_listener_only():
    p = free_port()
    with Server("--http_server.internal_port=%d" % p, config=admin_config()) as srv:
        st, _, _ = http_call(srv.port, "POST", "/admin/auth", {"password": PASSWORD})
        assert st == 404, st
        tok = token_of(p)
        c = client(srv, "alice")
        r = ok(p, tok, "connections", {})
        assert [x["user"] for x in r["connections"]] == ["alice"], r
        c.close()


def test_dashboard_websocket_pushes_snapshots():
    with Server(config=admin_config(insecure=True), workers=2) as srv:
        cs = [client(srv, "u%d" % i, subs=("news",)) for i in range(3)]
        ws = WS(srv.port, "/admin/ws")  # admin.insecure: no token needed
        deadline = time.time() + 10
        snaps = []
        while time.time() < deadline and len(snaps) < 3:
            op, data = ws.recv_message(timeout=5)
            snaps.append(json.loads(data))
        assert len(snaps) >= 3, snaps
        s = snaps[-1]
        assert s["clients"] == 3 and s["connections"] >= 3, s
        assert s["top_subscribers"][0] == {"channel": "news", "subscribers": 3}, s
        assert len(s["lag_ms"]) == 2 and s["upgrades_total"] >= 3, s
        assert snaps[-1]["t"] - snaps[-2]["t"] >= 500, snaps  # paced by the server
        ws.sock.close()
        for c in cs:
            c.close()


def test_transport_in_list_and_snapshot():
    """The connection list names each session's transport and the snapshot
    carries the transport mix (a rising fallback share is visible)."""
    from test_realtime import token
    from test_transports import opened
    c = admin_config(insecure=True)
    c["http_stream"] = {"enabled": True}
    c["sse"] = {"enabled": True}
    with Server(config=c, workers=1) as srv:
        ws_c = client(srv, "u-ws", subs=("news",))
        conn = {"connect": {"token": token("u-stream"), "name": "py"}, "id": 1}
        st, _ = opened(srv.port, "http_stream", connect_cmd=conn)
        sse, _ = opened(srv.port, "sse",
                        connect_cmd={"connect": {"token": token("u-sse"), "name": "py"}, "id": 1})
        tok = token_of(srv.port)
        rows = ok(srv.port, tok, "connections", {})["connections"]
        by_user = {r["user"]: r["transport"] for r in rows}
        assert by_user == {"u-ws": "websocket", "u-stream": "http_stream", "u-sse": "sse"}, rows
        ws = WS(srv.port, "/admin/ws")
        snap = json.loads(ws.recv_message(timeout=5)[1])
        assert snap["transports"]["websocket"] == 1, snap["transports"]
        assert snap["transports"]["http_stream"] == 1, snap["transports"]
        assert snap["transports"]["sse"] == 1, snap["transports"]
        assert snap["transports"]["uni_sse"] == 0, snap["transports"]
        ws.sock.close()
        ws_c.close()
        st.close()
        sse.close()


if __name__ == "__main__":
    sys.exit(run_module("admin", globals(), only=os.environ.get("ONLY")))
