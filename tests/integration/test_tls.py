# SPDX-License-Identifier: MIT
"""TLS (wss://, https://) against the real binary, with certificates made
at test time by the openssl command (tlsutil.CA): WebSocket echo of small,
pipelined and large messages over TLS; the real-time endpoint's shared
broadcast frames over TLS; pipelined keep-alive API calls over TLS; TLS
1.2 and 1.3, ALPN http/1.1; SNI choosing among certificate pairs; a TLS
listener beside a plain one; plain HTTP on the TLS port (400 "this port
speaks TLS"); a ClientHello on a plain port (logged as such); handshake
failures logged with the remote address, SNI and OpenSSL's reason (client
does not trust us, old protocol version); the handshake timeout covering a
stalled TLS handshake; start-up refusal of expired, not-yet-valid,
mismatched, missing and non-PEM files naming the file and the problem;
the expiry warning and /health's days left; SIGHUP reload that keeps live
connections, and a bad reload that keeps the old certificate."""
import datetime
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

from harness import (BIN, RT, WS, Closed, Server, connect, http_call, read_http_response,
                     read_to_eof, remote_of, run_module, upgrade_request, wait_until)
from tlsutil import CA, serial_of, subject_cn_of, tls_args

UTC = datetime.timezone.utc


def kernel_has_tls():
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            return "tls" in f.read().split()
    except OSError:
        return False


def echo(ws, payload=b"hello"):
    ws.send(0x1, payload)
    op, data = ws.recv_message()
    assert (op, data) == (0x1, payload), (op, data[:60])


def https_get(port, path, ctx, hostname="localhost"):
    s = connect(port, tls=ctx, server_hostname=hostname)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, hostname)).encode())
        return read_http_response(s)
    finally:
        s.close()


def start_fails(args, timeout=10):
    """Run serve with args; it must exit non-zero at once. Returns stderr."""
    r = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", "--workers", "1"] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    return r.stderr


# ---- the data path over TLS --------------------------------------------------

def test_wss_echo_small_pipelined_large():
    with CA() as ca:
        cert, key = ca.issue("localhost")
        with Server(*tls_args(cert, key)) as srv:
            ws = WS(srv.port, tls=ca.client_context())
            assert ws.sock.version() == "TLSv1.3", ws.sock.version()
            assert ws.sock.selected_alpn_protocol() is None  # not offered
            echo(ws)
            # 200 pipelined messages in one write: many frames per TLS record
            ws.send_raw(b"".join(WS.frame(0x1, b"m%d" % i) for i in range(200)))
            for i in range(200):
                assert ws.recv_message() == (0x1, b"m%d" % i)
            # 1 MiB - 64: many records each way, partial writes and retries
            big = os.urandom((1 << 20) - 64)
            ws.send(0x2, big)
            assert ws.recv_message(timeout=10) == (0x2, big)
            ws.send(0x8, b"\x03\xe8")
            ws.expect_close(1000)
            ev = srv.wait_event("upgrade_accepted")
            assert ev.get("tls") == "TLSv1.3" and ev.get("sni") == "localhost", ev
            if not kernel_has_tls():  # without the kernel's tls module: user space
                assert ev.get("ktls") is False, ev
            else:
                assert isinstance(ev.get("ktls"), bool), ev
            ev = srv.wait_event("closed")
            assert ev.get("tls") is True and ev.get("code") == 1000, ev
            assert ev.get("msgs_in") == 202, ev


def test_tls12_and_alpn():
    with CA() as ca:
        cert, key = ca.issue("localhost")
        with Server(*tls_args(cert, key)) as srv:
            ctx = ca.client_context()
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_alpn_protocols(["h2", "http/1.1"])
            ws = WS(srv.port, tls=ctx)
            assert ws.sock.version() == "TLSv1.2", ws.sock.version()
            assert ws.sock.selected_alpn_protocol() == "http/1.1"
            assert "GCM" in ws.sock.cipher()[0] or "CHACHA" in ws.sock.cipher()[0], ws.sock.cipher()
            echo(ws)
            ws.close()
            ctx = ca.client_context()
            ctx.set_alpn_protocols(["h2"])  # only h2 offered: no ALPN, HTTP/1.1 anyway
            ws = WS(srv.port, tls=ctx)
            assert ws.sock.selected_alpn_protocol() is None
            echo(ws)
            ws.close()


def test_realtime_broadcast_over_tls():
    """Publications fan out as shared frames (writev of references): over
    TLS they are gathered into records; every subscriber gets all, in order."""
    with CA() as ca:
        cert, key = ca.issue("localhost")
        with Server(*tls_args(cert, key, "--client.insecure=true", "--http_api.insecure=true",
                              "--client.ping_interval=0")) as srv:
            ctx = ca.client_context()
            subs = []
            for _ in range(5):
                c = RT(srv.port, tls=ctx)
                c.connect()
                c.ok("subscribe", {"channel": "news"})
                subs.append(c)
            pub = RT(srv.port, tls=ctx)
            pub.connect()
            for i in range(300):
                pub.send({"id": 1000 + i, "publish": {"channel": "news", "data": {"i": i, "pad": "x" * (i % 97)}}})
            for c in subs:
                got = [p["data"]["i"] for p in c.pubs("news", 300, timeout=10)]
                assert got == list(range(300)), got[:10]
            for c in subs + [pub]:
                c.close()


def test_pipelined_api_over_tls():
    """Keep-alive requests pipelined in one TLS record: the later ones sit
    decrypted inside OpenSSL and are still answered, in order."""
    with CA() as ca:
        cert, key = ca.issue("localhost")
        with Server(*tls_args(cert, key, "--http_api.insecure=true")) as srv:
            s = connect(srv.port, tls=ca.client_context())
            body = json.dumps({"channel": "c", "data": {"x": 1}}).encode()
            one = (b"POST /api/publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n"
                   % len(body)) + body
            s.sendall(one * 5)
            for _ in range(5):
                status, hdrs, rbody, rest = read_http_response(s)
                assert status == 200, (status, rbody)
                assert hdrs.get("connection") == "keep-alive", hdrs
                if rest:  # the next response(s) arrived in the same read
                    s = _Prefixed(s, rest)
            s.close()


class _Prefixed:
    """A socket with bytes already read in front (for read_http_response)."""

    def __init__(self, sock, data):
        self.sock, self.data = sock, data

    def settimeout(self, t):
        self.sock.settimeout(t)

    def recv(self, n):
        if self.data:
            d, self.data = self.data[:n], self.data[n:]
            return d
        return self.sock.recv(n)

    def close(self):
        self.sock.close()


def test_tls_listener_beside_plain():
    with CA() as ca:
        cert, key = ca.issue("localhost")
        with Server("--http_server.tls.listen=127.0.0.1:0",
                    "--http_server.tls.cert_pem_file=" + cert,
                    "--http_server.tls.key_pem_file=" + key) as srv:
            plain, tls = srv.port_of(tls=False), srv.port_of(tls=True)
            assert plain != tls
            echo(WS(plain))
            echo(WS(tls, tls=ca.client_context()))
            status, _, body, _ = https_get(tls, "/health", ca.client_context())
            assert status == 200 and json.loads(body)["tls"]["days_left"] >= 29, body


# ---- SNI -------------------------------------------------------------------------

def test_sni_selects_certificate():
    with CA() as ca:
        cert_d, key_d = ca.issue("default.test", sans=("DNS:default.test", "DNS:localhost"))
        cert_a, key_a = ca.issue("a.test", sans=("DNS:a.test",))
        cert_b, key_b = ca.issue("b.test", sans=("DNS:*.b.test",))
        sni = json.dumps([{"cert_pem_file": cert_a, "key_pem_file": key_a},
                          {"cert_pem_file": cert_b, "key_pem_file": key_b}])
        with Server(*tls_args(cert_d, key_d, "--http_server.tls.sni=" + sni)) as srv:
            assert len(srv.events("tls_ready")) == 3
            ctx = ca.client_context()
            for host, cn in (("a.test", "a.test"), ("x.b.test", "b.test"),
                             ("localhost", "default.test")):
                s = connect(srv.port, tls=ctx, server_hostname=host)
                assert subject_cn_of(s) == cn, (host, subject_cn_of(s))
                s.close()
            # a name no certificate has: the default one (the client's check fails)
            lax = ca.client_context(verify=False)
            s = connect(srv.port, tls=lax, server_hostname="other.test")
            assert subject_cn_of(s) == "default.test"
            s.close()
            ws = WS(srv.port, tls=ctx, server_hostname="a.test")
            echo(ws)
            ws.close()
            srv.wait_event("upgrade_accepted", lambda e: e.get("sni") == "a.test")


# ---- wrong protocol on a port -------------------------------------------------------

def test_plain_http_on_tls_port():
    with CA() as ca:
        cert, key = ca.issue("localhost")
        with Server(*tls_args(cert, key)) as srv:
            s = connect(srv.port)
            remote = remote_of(s)
            s.sendall(upgrade_request()[0])
            status, hdrs, body, rest = read_http_response(s)
            assert status == 400, status
            assert b"this port speaks tls" in body.lower(), body
            assert b"wss://" in body
            assert hdrs.get("connection") == "close"
            read_to_eof(s)
            s.close()
            ev = srv.wait_event("plain_http_on_tls_port", lambda e: e.get("remote") == remote)
            assert ev.get("status") == 400 and "plain HTTP" in ev.get("reason", ""), ev


def test_client_hello_on_plain_port():
    with CA() as ca, Server() as srv:
        s = connect(srv.port)
        remote = remote_of(s)
        ctx = ca.client_context(verify=False)
        try:
            ctx.wrap_socket(s, server_hostname="localhost")
            raise AssertionError("TLS handshake with a plain port succeeded")
        except (ssl.SSLError, OSError):
            pass
        s.close()
        ev = srv.wait_event("tls_on_plain_port", lambda e: e.get("remote") == remote)
        assert "ClientHello" in ev.get("reason", ""), ev
        assert not [e for e in srv.events("upgrade_rejected") if e.get("remote") == remote]


# ---- handshake failures ---------------------------------------------------------------

def test_handshake_failure_client_does_not_trust():
    with CA() as ca, CA("another CA") as other:
        cert, key = ca.issue("localhost")
        with Server(*tls_args(cert, key)) as srv:
            s = connect(srv.port)
            remote = remote_of(s)
            try:
                other.client_context().wrap_socket(s, server_hostname="localhost")
                raise AssertionError("handshake succeeded with an unknown CA")
            except ssl.SSLCertVerificationError:
                pass
            s.close()
            ev = srv.wait_event("tls_handshake_failed", lambda e: e.get("remote") == remote)
            assert "does not trust" in ev["reason"], ev
            assert ev.get("openssl") == "tlsv1 alert unknown ca", ev
            assert ev.get("sni") == "localhost", ev


def test_handshake_failure_old_protocol():
    with CA() as ca:
        cert, key = ca.issue("localhost")
        with Server(*tls_args(cert, key)) as srv:
            # openssl s_client speaking only TLS 1.1 (seclevel 0 lets it try)
            r = subprocess.run(["/usr/bin/openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.port,
                                "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-servername", "old.test"],
                               input="", capture_output=True, text=True, timeout=10)
            assert r.returncode != 0
            ev = srv.wait_event("tls_handshake_failed", lambda e: e.get("sni") in ("old.test", None))
            assert "protocol version" in ev["reason"] and "TLS 1.2" in ev["reason"], ev
            assert ev.get("openssl") in ("unsupported protocol", "version too low"), ev


def test_stalled_tls_handshake_times_out():
    with CA() as ca:
        cert, key = ca.issue("localhost")
        with Server(*tls_args(cert, key, "--websocket.handshake_timeout=500ms")) as srv:
            s = connect(srv.port)
            remote = remote_of(s)
            s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's start
            t0 = time.time()
            read_to_eof(s, timeout=3)
            assert time.time() - t0 < 2.5
            s.close()
            ev = srv.wait_event("handshake_timeout", lambda e: e.get("remote") == remote)
            assert "TLS handshake" in ev.get("stage", ""), ev


# ---- start-up checks ----------------------------------------------------------------------

def test_startup_refuses_bad_certificates():
    with CA() as ca:
        now = datetime.datetime.utcnow()
        expired, ek = ca.issue("expired", start=now - datetime.timedelta(days=60),
                               end=now - datetime.timedelta(days=1))
        err = start_fails(tls_args(expired, ek))
        assert expired in err and "expired on" in err, err
        future, fk = ca.issue("future", start=now + datetime.timedelta(days=2),
                              end=now + datetime.timedelta(days=90))
        err = start_fails(tls_args(future, fk))
        assert future in err and "not valid yet" in err, err
        good, gk = ca.issue("good")
        other_key = ca.new_key("unrelated")
        err = start_fails(tls_args(good, other_key))
        assert other_key in err and good in err and "does not match" in err, err
        err = start_fails(tls_args(ca.path("missing.pem"), gk))
        assert "missing.pem" in err and "No such file" in err, err
        err = start_fails(tls_args(gk, gk))  # a key where the certificate belongs
        assert gk in err and "no usable PEM certificate" in err, err
        # an SNI pair is checked the same way
        sni = json.dumps([{"cert_pem_file": expired, "key_pem_file": ek}])
        err = start_fails(tls_args(good, gk, "--http_server.tls.sni=" + sni))
        assert expired in err and "expired" in err, err
        err = start_fails(["--http_server.tls.enabled=true"])
        assert "cert_pem_file" in err, err


def test_expiry_warning_and_health():
    with CA() as ca:
        cert, key = ca.issue("soon", days=5)
        ss_cert, ss_key = ca.self_signed("localhost")
        with Server(*tls_args(cert, key, "--http_server.tls.expiry_warning_days=7")) as srv:
            ev = srv.wait_event("tls_certificate_expiring")
            assert ev.get("cert_file") == cert and ev.get("days_left") in (4, 5), ev
            assert ev.get("when") == "start" and ev.get("warning_days") == 7, ev
            status, _, body, _ = https_get(srv.port, "/health", ca.client_context())
            h = json.loads(body)
            assert status == 200 and h["tls"]["days_left"] in (4, 5), h
        with Server(*tls_args(ss_cert, ss_key)) as srv:  # 30 days: no warning at 14
            srv.wait_event("tls_ready")
            assert not srv.events("tls_certificate_expiring")
            ready = srv.events("tls_ready")[0]
            assert ready.get("subject") == "CN=localhost" and "IP:127.0.0.1" in ready.get("sans"), ready


# ---- SIGHUP reload -----------------------------------------------------------------------------

def test_sighup_reload_keeps_connections():
    with CA() as ca:
        c1, k1 = ca.issue("localhost")
        live_cert, live_key = ca.path("live.pem"), ca.path("live.key")
        shutil.copy(c1, live_cert)
        shutil.copy(k1, live_key)
        with Server(*tls_args(live_cert, live_key)) as srv:
            ctx = ca.client_context()
            old = WS(srv.port, tls=ctx)
            old_serial = serial_of(old.sock)
            echo(old)
            # a good new pair
            c2, k2 = ca.issue("localhost")
            shutil.copy(c2, live_cert)
            shutil.copy(k2, live_key)
            srv.proc.send_signal(signal.SIGHUP)
            srv.wait_event("tls_reloaded")
            echo(old, b"still here after the reload")
            new = WS(srv.port, tls=ctx)
            new_serial = serial_of(new.sock)
            assert new_serial != old_serial
            echo(new)
            # a bad file: the old (second) certificate stays, nothing drops
            with open(live_cert, "w") as f:
                f.write("not a certificate\n")
            srv.proc.send_signal(signal.SIGHUP)
            ev = srv.wait_event("tls_reload_failed")
            assert live_cert in ev.get("reason", "") and "kept" in ev.get("action", ""), ev
            third = WS(srv.port, tls=ctx)
            assert serial_of(third.sock) == new_serial
            for ws in (old, new, third):
                echo(ws, b"after the failed reload")
            assert not srv.events("closed"), srv.events("closed")  # nothing dropped
            for ws in (old, new, third):
                ws.close()
            # a mismatched pair is refused the same way
            shutil.copy(c1, live_cert)
            srv.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: len(srv.events("tls_reload_failed")) == 2, what="second failure")
            ev = srv.events("tls_reload_failed")[-1]
            assert "does not match" in ev["reason"], ev
            assert srv.events("reload_requested")[0].get("signal") == "SIGHUP"


if __name__ == "__main__":
    sys.exit(run_module("tls", dict(globals()), os.environ.get("ONLY")))
