# SPDX-License-Identifier: MIT
"""SIGHUP reload of the live configuration, against the real binary: a new
config file changes log.level, client.allowed_origins and the rate limits
without dropping connections (an open connection gets the new limits at
once, a new upgrade the new origin policy); a file with an error keeps the
running configuration and logs reload_failed with the reason. Token keys
and channel namespaces reload too: rotated keys refuse old tokens on new
connections and keep the connections made with them; a key file that
cannot be read keeps the old keys; a setting that needs a restart is named
in config_restart_needed."""
import json
import os
import signal
import sys

from harness import (RT, Server, connect, http_call, jwt_hs, read_http_response, run_module,
                     upgrade_request)

SECRET = "reload-secret-0123456789"


def base(**client):
    c = {"token": {"hmac_secret_key": SECRET}, "allow_anonymous_connect_without_token": True}
    c.update(client)
    return {"client": c, "log": {"level": "info"},
            "channel": {"without_namespace": {"allow_publish_for_client": True}}}


def write(srv, cfg):
    with open(srv.cfgpath, "w") as f:
        f.write(cfg if isinstance(cfg, str) else json.dumps(cfg))


def upgrade_status(port, origin):
    s = connect(port)
    data, _ = upgrade_request("/connection/websocket", headers={"Origin": origin})
    s.sendall(data)
    status = read_http_response(s)[0]
    s.close()
    return status


def publishes(c, n):
    ids = [c.new_id() for _ in range(n)]
    c.send(*[{"id": i, "publish": {"channel": "a", "data": {}}} for i in ids])
    return [c.reply(i) for i in ids]


def test_sighup_applies_origins_limits_and_log_level_live():
    with Server(config=base()) as srv:
        c = RT(srv.port)
        c.connect(jwt_hs({"sub": "u1"}, SECRET))
        assert all("publish" in r for r in publishes(c, 5))
        assert upgrade_status(srv.port, "https://ok.example") == 403
        assert not srv.events("command")
        write(srv, base(allowed_origins=["https://ok.example"],
                        rate_limit={"command_rate": 1, "command_burst": 2,
                                    "disconnect_after": 0}) | {"log": {"level": "debug"}})
        srv.proc.send_signal(signal.SIGHUP)
        ev = srv.wait_event("config_reloaded")
        assert ev.get("log_level") == "debug" and ev.get("limits_changed") is True, ev
        assert ev.get("allowed_origins") == 1, ev
        rs = publishes(c, 4)  # the same connection, new limits
        assert ["error" in r for r in rs] == [False, False, True, True], rs
        assert rs[2]["error"]["code"] == 111, rs
        assert srv.events("command"), "debug lines after the reload"
        assert upgrade_status(srv.port, "https://ok.example") == 101
        assert upgrade_status(srv.port, "https://other.example") == 403
        c.close()


def test_a_reload_with_an_error_keeps_the_running_configuration():
    with Server(config=base(allowed_origins=["https://ok.example"])) as srv:
        c = RT(srv.port)
        c.connect(jwt_hs({"sub": "u1"}, SECRET))
        write(srv, '{"client": {"rate_limit": {"command_rate": "lots"}}}')
        srv.proc.send_signal(signal.SIGHUP)
        ev = srv.wait_event("reload_failed")
        assert "command_rate" in ev.get("reason", ""), ev
        assert ev.get("level") == "error", ev
        assert not srv.events("config_reloaded")
        assert all("publish" in r for r in publishes(c, 5)), "limits unchanged"
        assert upgrade_status(srv.port, "https://ok.example") == 101, "origins unchanged"
        write(srv, "{ not json")
        srv.proc.send_signal(signal.SIGHUP)
        srv.wait_event("reload_failed", lambda e: e is not ev and "command_rate" not in e.get("reason", ""))
        assert all("publish" in r for r in publishes(c, 3))
        c.close()


SECRET2 = "reload-secret-rotated-9876543210"
API_KEY = "reload-api-key"


def refused_connect(port, tok):
    """A new connection whose connect with tok is closed with 3500."""
    c = RT(port)
    c.send({"id": 1, "connect": {"token": tok}})
    c.expect_close(3500)


def test_sighup_rotates_token_keys_and_keeps_connections():
    with Server(config=base()) as srv:
        old = RT(srv.port)
        old.connect(jwt_hs({"sub": "u1"}, SECRET))
        cfg = base()
        cfg["client"]["token"] = {"hmac_secret_key": SECRET2}
        cfg["client"]["channel_limit"] = 7  # needs a restart
        write(srv, cfg)
        srv.proc.send_signal(signal.SIGHUP)
        ev = srv.wait_event("config_reloaded")
        assert "client.token.hmac_secret_key" in ev.get("changed", ""), ev
        assert "channel_limit" not in ev.get("changed", ""), ev
        rs = srv.wait_event("config_restart_needed")
        assert rs.get("keys") == "client.channel_limit", rs
        assert "needs a restart" in rs.get("message", ""), rs
        refused_connect(srv.port, jwt_hs({"sub": "u2"}, SECRET))
        new = RT(srv.port)
        assert new.connect(jwt_hs({"sub": "u2"}, SECRET2))
        # the connection made with the old key stays (re-checked at its next refresh)
        assert all("publish" in r for r in publishes(old, 2))
        old.close()
        new.close()


def test_a_key_file_that_cannot_be_read_keeps_the_old_keys():
    with Server(config=base()) as srv:
        cfg = base()
        cfg["client"]["token"] = {"jwks_file": os.path.join(os.path.dirname(srv.cfgpath),
                                                            "hf-no-such-jwks.json")}
        write(srv, cfg)
        srv.proc.send_signal(signal.SIGHUP)
        ev = srv.wait_event("reload_failed")
        assert "jwks_file" in ev.get("reason", ""), ev
        c = RT(srv.port)
        assert c.connect(jwt_hs({"sub": "u1"}, SECRET))
        c.close()


def test_sighup_reloads_namespaces_and_refuses_a_bad_one():
    with Server(config=base()) as srv:
        c = RT(srv.port)
        c.connect(jwt_hs({"sub": "u1"}, SECRET))
        r = c.call("subscribe", {"channel": "news:1"})
        assert r["error"]["code"] == 102, r
        cfg = base()
        cfg["channel"]["namespaces"] = [{"name": "news", "allow_subscribe_for_client": True}]
        write(srv, cfg)
        srv.proc.send_signal(signal.SIGHUP)
        ev = srv.wait_event("config_reloaded")
        assert ev.get("namespaces") == 1 and "channel.namespaces" in ev["changed"], ev
        assert "subscribe" in c.call("subscribe", {"channel": "news:1"})
        # a namespace naming a proxy that does not exist: the whole reload is refused
        cfg["channel"]["namespaces"].append({"name": "px", "subscribe_proxy_enabled": True,
                                             "subscribe_proxy_name": "nope"})
        write(srv, cfg)
        srv.proc.send_signal(signal.SIGHUP)
        ev = srv.wait_event("reload_failed")
        assert "namespaces[px]" in ev.get("reason", ""), ev
        r = c.call("subscribe", {"channel": "px:1"})
        assert r["error"]["code"] == 102, r
        assert "subscribe" in c.call("subscribe", {"channel": "news:2"})
        c.close()


def recheck_cfg(namespaces, anonymous=True):
    cfg = base(allow_anonymous_connect_without_token=anonymous)
    cfg["channel"]["namespaces"] = namespaces
    cfg["http_api"] = {"key": API_KEY}
    return cfg


def http_api(srv, method, body):
    st, _, data = http_call(srv.port, "POST", "/api/" + method, json.dumps(body),
                            {"X-API-Key": API_KEY})
    assert st == 200, (st, data)
    return json.loads(data)


def metrics(srv):
    st, _, body = http_call(srv.port, "GET", "/metrics")
    assert st == 200, (st, body[:200])
    return body.decode()


def test_reload_recheck_unsubscribes_and_disconnects_what_is_no_longer_allowed():
    news = {"name": "news", "allow_subscribe_for_client": True}
    chat = {"name": "chat", "allow_subscribe_for_client": True,
            "allow_subscribe_for_anonymous": True}
    with Server(config=recheck_cfg([news, chat])) as srv:
        user = RT(srv.port)
        user.connect(jwt_hs({"sub": "u1", "channels": ["news:side"]}, SECRET))
        for ch in ("news:1", "chat:1"):
            assert "subscribe" in user.call("subscribe", {"channel": ch})
        stok = jwt_hs({"sub": "u1", "channel": "chat:tok"}, SECRET)
        assert "subscribe" in user.call("subscribe", {"channel": "chat:tok", "token": stok})
        anon = RT(srv.port)
        anon.connect()
        assert "subscribe" in anon.call("subscribe", {"channel": "chat:1"})
        # news removed; chat's client permission revoked; anonymous connections refused
        write(srv, recheck_cfg([{"name": "chat"}], anonymous=False))
        srv.proc.send_signal(signal.SIGHUP)
        ev = srv.wait_event("reload_recheck")
        assert ev.get("subscriptions_removed") == 3, ev  # news:1, news:side, chat:1 (u1)
        assert ev.get("connections_closed") == 1, ev
        gone = {}
        for _ in range(3):
            p = user.push(lambda p: "unsubscribe" in p)
            gone[p["channel"]] = p["unsubscribe"]
        assert gone == {"news:1": {"code": 2000, "reason": "unknown channel"},
                        "news:side": {"code": 2000, "reason": "unknown channel"},
                        "chat:1": {"code": 2000, "reason": "permission denied"}}, gone
        anon.expect_close(3501)
        # the subscription granted by a token stays, and so does the connection
        r = http_api(srv, "publish", {"channel": "chat:tok", "data": {"n": 1}})
        assert "result" in r, r
        assert user.pubs("chat:tok", 1)[0]["data"] == {"n": 1}
        user.silent(0.2)
        m = metrics(srv)
        assert 'holdfast_reload_recheck_total{action="unsubscribe"} 3' in m, m
        assert 'holdfast_reload_recheck_total{action="disconnect"} 1' in m, m
        user.close()


if __name__ == "__main__":
    sys.exit(run_module("reload", globals(), os.environ.get("ONLY")))
