# SPDX-License-Identifier: MIT
"""SIGHUP reload of the live configuration, against the real binary: a new
config file changes log.level, client.allowed_origins and the rate limits
without dropping connections (an open connection gets the new limits at
once, a new upgrade the new origin policy); a file with an error keeps the
running configuration and logs reload_failed with the reason."""
import json
import os
import signal
import sys

from harness import RT, Server, connect, jwt_hs, read_http_response, run_module, upgrade_request

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


if __name__ == "__main__":
    sys.exit(run_module("reload", globals(), os.environ.get("ONLY")))
