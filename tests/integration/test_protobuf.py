# SPDX-License-Identifier: MIT
"""Sub-protocol negotiation on /connection/websocket (reference 1.1): a
supported offer is echoed, an offer of only unsupported sub-protocols is
refused with 400 and a body naming the supported ones (and logged), no offer
means JSON; /echo keeps RFC 6455's accept-without-one."""
import json
import socket

from harness import (Server, connect, read_http_response, run_module, upgrade_request)

PATH = "/connection/websocket"
SECRET = "pb-secret-0123456789"


def config():
    return {"client": {"token": {"hmac_secret_key": SECRET}},
            "channel": {"without_namespace": {"allow_subscribe_for_client": True,
                                              "allow_publish_for_client": True}}}


def upgrade(port, path=PATH, offer=None):
    """Send an upgrade with the offered sub-protocols; return (status,
    headers, body, socket)."""
    h = {"Origin": None}
    h.pop("Origin")
    if offer is not None:
        h["Sec-WebSocket-Protocol"] = offer
    s = connect(port)
    s.sendall(upgrade_request(path, headers=h)[0])
    status, hdrs, body, _ = read_http_response(s)
    return status, hdrs, body, s


def test_unsupported_offer_refused_with_the_supported_list():
    with Server(config=config()) as srv:
        status, hdrs, body, s = upgrade(srv.port, offer="mqtt, wamp.2.json")
        s.close()
        assert status == 400, (status, body)
        text = body.decode()
        assert "centrifuge-json" in text and "mqtt, wamp.2.json" in text, text
        ev = srv.wait_event("upgrade_rejected",
                            lambda e: e.get("reason") == "unsupported_subprotocol")
        assert ev["status"] == 400 and ev["offered"] == "mqtt, wamp.2.json", ev
        assert "hint" in ev, ev


def test_json_offer_echoed_and_no_offer_accepted():
    with Server(config=config()) as srv:
        status, hdrs, _, s = upgrade(srv.port, offer="foo, centrifuge-json")
        s.close()
        assert status == 101 and hdrs.get("sec-websocket-protocol") == "centrifuge-json", hdrs
        status, hdrs, _, s = upgrade(srv.port)
        s.close()
        assert status == 101 and "sec-websocket-protocol" not in hdrs, hdrs


def test_uni_websocket_refuses_foreign_offer():
    cfg = config()
    cfg["uni_websocket"] = {"enabled": True}
    with Server(config=cfg) as srv:
        status, _, body, s = upgrade(srv.port, "/connection/uni_websocket", offer="chat")
        s.close()
        assert status == 400 and b"centrifuge-json" in body, (status, body)


def test_echo_accepts_unknown_offer_without_one():
    # /echo keeps RFC 6455 4.2.2: no overlap -> 101 without the header
    with Server(config=config()) as srv:
        status, hdrs, _, s = upgrade(srv.port, "/echo", offer="mqtt")
        s.close()
        assert status == 101 and "sec-websocket-protocol" not in hdrs, hdrs


if __name__ == "__main__":
    import sys
    sys.exit(run_module("protobuf", globals(), sys.argv[1] if len(sys.argv) > 1 else None))
