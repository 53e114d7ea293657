# SPDX-License-Identifier: MIT
"""The io_uring send path (http_server.io_uring_send, net/usend.c) with the
real binary: a fan-out through the ring delivers every publication to every
subscriber in order, and slow readers (full sockets: the ring's -EAGAIN and
short writes) are judged as with sendmsg while the others miss nothing; a
server whose kernel refuses io_uring (a seccomp filter answering
io_uring_setup with EPERM, as Docker's default profile or
kernel.io_uring_disabled do) says so in a warning and serves the same
fan-out with sendmsg, as does one whose ring cannot be enabled on the
worker's thread (its first batch goes out with sendmsg) and one with the
setting off (it is on by
default: every other test that writes a fan-out goes through the ring
where the kernel allows it)."""
import ctypes
import json
import os
import platform
import sys

from harness import Server, run_module, wait_until
from test_bench_storm import bench

ON = ("--client.insecure=true", "--http_api.insecure=true", "--http_server.io_uring_send=true")


def refuse_io_uring(nr=425):
    """preexec_fn: a seccomp filter making syscall nr fail with EPERM
    (io_uring_setup 425, io_uring_register 427 on x86_64 and aarch64)."""
    libc = ctypes.CDLL(None, use_errno=True)
    arch = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}[platform.machine()]

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte),
                    ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    ins = (Filter * 6)(
        Filter(0x20, 0, 0, 4),            # A = arch
        Filter(0x15, 0, 3, arch),         # other arch: allow
        Filter(0x20, 0, 0, 0),            # A = syscall number
        Filter(0x15, 0, 1, nr),           # the refused call?
        Filter(0x06, 0, 0, 0x00050000 | 1),  # SECCOMP_RET_ERRNO | EPERM
        Filter(0x06, 0, 0, 0x7FFF0000))   # SECCOMP_RET_ALLOW
    prog = Prog(len(ins), ins)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")


def send_path(srv):
    """The start-up line naming the send path (awaited: the log may trail
    the listening socket)."""
    found = []

    def logged():
        for ln in srv.log().splitlines():
            if ln.startswith("{"):
                ev = json.loads(ln)
                if ev.get("event") in ("send_path", "io_uring_unavailable"):
                    found.append(ev)
                    return True
        return False

    wait_until(logged, timeout=10, what="the send path log line")
    return found[0]


def fanout_in_order(srv, subs=300):  # over one ring batch (256)
    ws = "ws://127.0.0.1:%d/connection/websocket" % srv.port
    api = "http://127.0.0.1:%d/api" % srv.port
    rc, r, out = bench("-m", "fanout", "-u", ws, "-A", api, "-c", str(subs), "-r", "200",
                       "-b", "8", "-s", "300", "-w", "0.5", "-d", "1.5")
    assert rc == 0 and r["status"] == "ok", out
    for k in ("missing", "dup", "ooo", "bad", "failed", "dropped"):
        assert r[k] == "0", (k, r)
    assert int(r["pub_ok"]) > 0 and int(r["deliveries"]) == subs * int(r["pub_ok"]), r
    return r


def test_fanout_through_the_ring_in_order_and_slow_readers_judged():
    with Server(*ON, "--client.queue_max_size=16KiB", "--client.queue_grace=200ms") as srv:
        ev = send_path(srv)
        if ev["event"] == "io_uring_unavailable":  # a kernel without it: the fallback
            print("  (io_uring refused here: %s)" % ev.get("error"))
        else:
            assert ev["path"] == "io_uring" and ev["level"] == "info", ev
        r = fanout_in_order(srv)
        # slow readers: their sockets fill (-EAGAIN, short writes through
        # the ring); the rule ends or keeps them, the others miss nothing
        ws = "ws://127.0.0.1:%d/connection/websocket" % srv.port
        api = "http://127.0.0.1:%d/api" % srv.port
        rc, r, out = bench("-m", "fanout", "-u", ws, "-A", api, "-c", "20", "--slow", "3",
                           "--slow-rate", "500", "-r", "200", "-s", "1024", "-d", "2", "-w", "0.5")
        assert rc == 0, out
        assert r["slow"] == "3" and r["missing"] == "0" and r["dup"] == "0", r
        assert int(r["slow_ended"]) + int(r["slow_alive"]) == 3, r
        assert float(r["slow_lag_max_ms"]) > 500 or int(r["slow_ended"]) >= 1, r
        assert int(r["deliveries"]) == 17 * int(r["pub_ok"]), r


def test_refused_io_uring_falls_back_to_sendmsg_with_a_warning():
    with Server(*ON, preexec_fn=refuse_io_uring) as srv:
        ev = send_path(srv)
        assert ev["event"] == "io_uring_unavailable" and ev["level"] == "warn", ev
        assert ev["path"] == "sendmsg" and ev["error"] == "Operation not permitted", ev
        fanout_in_order(srv)


def test_ring_that_cannot_start_falls_back_without_losing_a_send():
    # io_uring_setup works, enabling the ring on the worker's thread
    # (io_uring_register) does not: the first batch is written with sendmsg
    # instead (nothing was sent through the ring) and the ring is dropped
    with Server(*ON, preexec_fn=lambda: refuse_io_uring(427)) as srv:
        ev = send_path(srv)
        assert ev["event"] == "send_path" and ev["path"] == "io_uring", ev
        fanout_in_order(srv)
        fanout_in_order(srv)


def test_setting_off_uses_sendmsg_and_says_nothing():
    with Server("--client.insecure=true", "--http_api.insecure=true",
                "--http_server.io_uring_send=false") as srv:
        fanout_in_order(srv)
        assert "send_path" not in srv.log() and "io_uring_unavailable" not in srv.log()


if __name__ == "__main__":
    sys.exit(run_module("send_uring", globals(), os.environ.get("ONLY")))
