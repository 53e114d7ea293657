# SPDX-License-Identifier: MIT
"""Configuration and command line of the real binary: invalid values (flag,
env var, config file) stop start-up with exit code 2 and a message naming the
key, the value and what is allowed; unknown flags and commands; invalid JSON
and wrong JSON types in the config file; precedence file < env < flag; a
Centrifugo-style file with unknown keys starts with a config_warning and is
enforced; --help covers every key config-doc lists; version; repeated
--listen; --workers 2; --log-format pretty."""
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

from harness import (BIN, RT, SAN_PATTERNS, WS, Server, connect, free_port,
                     http_call, read_http_response, run_module,
                     upgrade_request, wait_until)


def run_bin(args, env=None, timeout=10):
    """Run holdfast to completion. Returns (rc, stdout, stderr)."""
    e = dict(os.environ)
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    if env:
        e.update(env)
    try:
        p = subprocess.run([BIN] + list(args), env=e, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("holdfast %s did not exit within %ds" % (" ".join(args), timeout))
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    for pat in SAN_PATTERNS:
        assert pat not in err, "sanitizer report: %s" % err[-3000:]
    return p.returncode, out, err


def serve_fails(*args, env=None, needles=()):
    """`holdfast serve ARGS` must refuse to start: exit 2, one explaining
    message on stderr containing every needle, no listening line."""
    rc, out, err = run_bin(["serve", "--listen", "127.0.0.1:0", "--workers", "1"] + list(args),
                           env=env)
    assert rc == 2, "exit code %d, want 2; stderr: %r" % (rc, err)
    assert "listening" not in err, err
    assert err.strip(), "no message on stderr"
    for n in needles:
        assert n in err, "stderr lacks %r: %r" % (n, err)
    return err


def write_tmp(text):
    fd, path = tempfile.mkstemp(prefix="hf-cfgtest-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


# ---- invalid values ---------------------------------------------------------

def test_bad_duration_flag():
    serve_fails("--websocket.ping_interval=abc",
                needles=("websocket.ping_interval", "abc", "duration"))


def test_port_out_of_range():
    serve_fails("--http_server.port=70000",
                needles=("http_server.port", "70000", "65535"))


def test_message_size_limit_too_small():
    serve_fails("--websocket.message_size_limit=12",
                needles=("websocket.message_size_limit", "12", "125"))


def test_log_format_not_allowed():
    serve_fails("--log.format=xml", needles=("log.format", "xml", "json", "pretty"))


def test_allowed_origin_without_scheme():
    serve_fails("--client.allowed_origins=example.com",
                needles=("client.allowed_origins", "example.com", "https://"))


def test_pong_timeout_not_below_ping_interval():
    serve_fails("--websocket.pong_timeout=30s", "--websocket.ping_interval=25s",
                needles=("websocket.pong_timeout", "websocket.ping_interval", "shorter"))


def test_unknown_flag():
    serve_fails("--nope=1", needles=("--nope", "unknown"))


def test_config_file_invalid_json():
    path = write_tmp('{\n  "client": {\n    "allowed_origins": [,]\n  }\n}\n')
    try:
        serve_fails("--config", path, needles=(path, "line 3"))
    finally:
        os.unlink(path)


def test_config_file_wrong_json_type():
    path = write_tmp('{"client":{"allowed_origins":"x"}}')
    try:
        serve_fails("--config", path, needles=("client.allowed_origins", path, "array"))
    finally:
        os.unlink(path)


def test_env_var_bad_value_named():
    serve_fails(env={"HOLDFAST_WEBSOCKET_PING_INTERVAL": "bogus"},
                needles=("HOLDFAST_WEBSOCKET_PING_INTERVAL", "bogus", "websocket.ping_interval"))


# ---- precedence -------------------------------------------------------------

def path_status(port, path):
    s = connect(port)
    s.sendall(upgrade_request(path=path)[0])
    status, _, _, _ = read_http_response(s)
    s.close()
    return status


def test_precedence_flag_over_env_over_file():
    with Server("--echo.handler_prefix=/c", config={"echo": {"handler_prefix": "/a"}},
                env={"HOLDFAST_ECHO_HANDLER_PREFIX": "/b"}) as srv:
        got = {p: path_status(srv.port, p) for p in ("/a", "/b", "/c")}
        assert got == {"/a": 404, "/b": 404, "/c": 101}, got


def test_precedence_env_over_file():
    with Server(config={"echo": {"handler_prefix": "/a"}},
                env={"HOLDFAST_ECHO_HANDLER_PREFIX": "/b"}) as srv:
        got = {p: path_status(srv.port, p) for p in ("/a", "/b")}
        assert got == {"/a": 404, "/b": 101}, got


def test_centrifugo_style_file_with_unknown_keys():
    cfg = {"client": {"allowed_origins": ["https://x.example.com"]},
           "http_server": {"port": 0}, "unknown_thing": {"a": 1}, "map_broker": {},
           "log": {"level": "trace"}}
    with Server(config=cfg) as srv:
        ev = srv.wait_event("config_warning", lambda e: "unknown_thing" in e.get("message", ""))
        assert "unknown_thing is not supported" in ev["message"], ev
        # an unknown section is warned about even when empty
        srv.wait_event("config_warning", lambda e: "map_broker" in e.get("message", ""))
        ws = WS(srv.port, headers={"Origin": "https://x.example.com"})
        ws.close()
        s = connect(srv.port)
        s.sendall(upgrade_request(headers={"Origin": "https://y.example.com"})[0])
        status, _, _, _ = read_http_response(s)
        s.close()
        assert status == 403, status


def test_every_centrifugo_log_level_is_accepted():
    """trace/debug log each command (method, id, channel; never tokens or
    data) and error replies; none logs nothing at all."""
    for level in ("trace", "debug"):
        with Server("--log.level=" + level, config={"client": {"insecure": True}}) as srv:
            c = RT(srv.port)
            c.connect()
            r = c.call("subscribe", {"channel": "nosuchns:x", "data": "payload-never-logged"})
            assert r["error"]["code"] == 102, r
            ev = srv.wait_event("command", lambda e: e.get("method") == "subscribe")
            assert ev["channel"] == "nosuchns:x" and ev["conn_id"] == c.cid, ev
            err = srv.wait_event("command_error")
            assert err["code"] == 102 and err["message"] == "unknown channel", err
            assert "never-logged" not in srv.log()
            c.close()
    for level in ("warn", "error", "none"):
        port = free_port()
        p = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:%d" % port, "--log.level", level],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            def up():
                try:
                    return http_call(port, "GET", "/health")[0] == 200
                except OSError:
                    return False
            wait_until(up, 5, "serving")
            assert http_call(port, "GET", "/nope")[0] == 404
        finally:
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=15)
        assert p.returncode == 0, (level, p.returncode, err)
        if level == "none":
            assert err == b"", err[:300]
        else:
            assert b'"level":"info"' not in err, err[:300]


# ---- commands ---------------------------------------------------------------

def test_help_lists_every_key():
    rc, doc, err = run_bin(["config-doc"])
    assert rc == 0, (rc, err)
    keys = re.findall(r"^\| `([a-z_.]+)`", doc, re.M)
    assert len(keys) >= 20, doc
    rc, help_text, err = run_bin(["serve", "--help"])
    assert rc == 0, (rc, err)
    missing = [k for k in keys if "--" + k not in help_text]
    assert not missing, "serve --help does not mention %s" % missing


def test_version():
    rc, out, err = run_bin(["version"])
    assert rc == 0, (rc, err)
    assert re.match(r"^holdfast \d+\.\d+\.\d+\n$", out), out


def test_unknown_command_exit_2():
    rc, out, err = run_bin(["nonsense"])
    assert rc == 2, rc
    assert "nonsense" in err and "serve" in err, err


# ---- listeners, workers, log format ----------------------------------------

def test_listen_twice():
    with Server("--listen", "127.0.0.1:0") as srv:
        evs = srv.events("listening")
        ports = [e["port"] for e in evs]
        assert len(ports) == 2 and ports[0] != ports[1] and all(ports), evs
        for p in ports:
            ws = WS(p)
            ws.send(0x1, "port %d" % p)
            assert ws.recv_message() == (0x1, ("port %d" % p).encode())
            ws.close()


def test_two_workers_echo_many_connections():
    with Server(workers=2) as srv:
        assert srv.events("listening")[0].get("workers") == 2
        conns = [WS(srv.port) for _ in range(40)]
        for i, ws in enumerate(conns):
            ws.send(0x1, "msg %d" % i)
        for i, ws in enumerate(conns):
            assert ws.recv_message() == (0x1, ("msg %d" % i).encode()), i
        s = connect(srv.port)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        _, _, body, _ = read_http_response(s)
        s.close()
        doc = json.loads(body)
        assert doc["workers"] == 2 and doc["connections"] == 40, doc
        for ws in conns:
            ws.close()


def test_log_format_pretty():
    e = dict(os.environ)
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    p = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--workers", "1",
                          "--log-format", "pretty"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=e)
    try:
        buf = b""
        deadline = time.time() + 10
        while b"listening" not in buf and time.time() < deadline:
            r, _, _ = select.select([p.stderr], [], [], 0.2)
            if r:
                chunk = os.read(p.stderr.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
        line = next((ln for ln in buf.decode(errors="replace").splitlines() if "listening" in ln), None)
        assert line is not None, "no listening line: %r" % buf
        assert not line.lstrip().startswith("{"), line
        try:
            json.loads(line)
            raise AssertionError("pretty line is JSON: %r" % line)
        except ValueError:
            pass
        m = re.search(r"port=(\d+)", line)
        assert m and int(m.group(1)) > 0, line
        p.send_signal(signal.SIGTERM)
        _, rest = p.communicate(timeout=10)
        assert p.returncode == 0, p.returncode
        for pat in SAN_PATTERNS:
            assert pat.encode() not in buf + rest, (buf + rest)[-3000:]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _first_listening_line(argv, use_pty):
    """Start serve with stderr on a pipe or a pseudo-terminal; return its
    'listening' log line and stop the server."""
    import pty
    e = dict(os.environ)
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    if use_pty:
        master, slave = pty.openpty()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=slave, env=e)
        os.close(slave)
        rfd = master
    else:
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=e)
        rfd = p.stderr.fileno()
    buf = b""
    try:
        deadline = time.time() + 10
        while b"listening" not in buf and time.time() < deadline:
            r, _, _ = select.select([rfd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(rfd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        if use_pty:
            os.close(master)
    text = buf.decode(errors="replace").replace("\r", "")
    line = next((ln for ln in text.splitlines() if "listening" in ln), None)
    assert line is not None, "no listening line: %r" % buf
    return line


def test_log_format_auto_follows_the_terminal():
    """The default format is auto: pretty when stderr is a terminal, JSON
    lines when it is a pipe (a log collector); an explicit format wins."""
    argv = [BIN, "serve", "--listen", "127.0.0.1:0", "--workers", "1"]
    tty_line = _first_listening_line(argv, use_pty=True)
    assert not tty_line.lstrip().startswith("{"), tty_line
    assert re.search(r"port=\d+", tty_line), tty_line
    pipe_line = _first_listening_line(argv, use_pty=False)
    assert json.loads(pipe_line)["event"] == "listening", pipe_line
    forced = _first_listening_line(argv + ["--log-format", "json"], use_pty=True)
    assert json.loads(forced.strip())["event"] == "listening", forced


def test_section_given_a_scalar_is_an_error():
    import json as _json, os as _os, subprocess as _sp, tempfile as _tf
    from harness import BIN
    fd, path = _tf.mkstemp(suffix=".json")
    with _os.fdopen(fd, "w") as f:
        _json.dump({"client": "x"}, f)
    try:
        r = _sp.run([BIN, "serve", "--config", path, "--listen", "127.0.0.1:0"],
                    capture_output=True, text=True, timeout=10)
    finally:
        _os.unlink(path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "client" in r.stderr and "JSON object" in r.stderr, r.stderr


def test_wrong_json_type_shows_the_json_value():
    import json as _json, os as _os, subprocess as _sp, tempfile as _tf
    from harness import BIN
    fd, path = _tf.mkstemp(suffix=".json")
    with _os.fdopen(fd, "w") as f:
        _json.dump({"client": {"allowed_origins": "x"}}, f)
    try:
        r = _sp.run([BIN, "serve", "--config", path, "--listen", "127.0.0.1:0"],
                    capture_output=True, text=True, timeout=10)
    finally:
        _os.unlink(path)
    assert r.returncode == 2, r.stderr
    assert 'client.allowed_origins = "x" (from config file' in r.stderr, r.stderr


if __name__ == "__main__":
    sys.exit(run_module("config", globals()))
