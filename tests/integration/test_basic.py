# SPDX-License-Identifier: MIT
"""Smoke tests: the server starts, echoes, answers /health and drains."""
import json
import sys

from harness import WS, Server, connect, read_http_response, run_module


def test_echo_text_and_binary():
    with Server() as srv:
        ws = WS(srv.port)
        ws.send(0x1, "hello")
        assert ws.recv_message() == (0x1, b"hello")
        ws.send(0x2, b"\x00\xff")
        assert ws.recv_message() == (0x2, b"\x00\xff")
        ws.send(0x8, b"\x03\xe8bye")
        code, reason = ws.expect_close(1000)
        ws.close()
        ev = srv.wait_event("closed")
        assert ev["who"] == "client" and ev["code"] == 1000, ev
        assert ev["msgs_in"] == 2 and ev["msgs_out"] == 2, ev


def test_connection_id_header_matches_log():
    with Server() as srv:
        ws = WS(srv.port)
        cid = ws.headers.get("x-holdfast-connection-id")
        assert cid and len(cid) == 36, ws.headers
        ev = srv.wait_event("upgrade_accepted")
        assert ev["conn_id"] == cid, ev
        ws.close()
        ev = srv.wait_event("closed")
        assert ev["conn_id"] == cid and ev["who"] == "abnormal" and ev["code"] == 1006, ev


def test_health():
    with Server() as srv:
        s = connect(srv.port)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, hdrs, body, _ = read_http_response(s)
        assert status == 200, status
        doc = json.loads(body)
        assert doc["status"] == "ok" and "uptime_s" in doc and "connections" in doc, doc


if __name__ == "__main__":
    sys.exit(run_module("basic", globals()))
