# SPDX-License-Identifier: MIT
"""`holdfast bench -m sendpath` (tools/bench_send.c), small sizes: every
variant runs in every repeat and accounts for what it sent (sends, bytes per
send, no failures, zero-copy notifications read). Without io_uring (a kernel
that refuses io_uring_setup) the io_uring variants are skipped and said so.
Asserts the RESULT fields, not performance."""
import os
import subprocess
import sys

from harness import BIN, run_module


def sendpath(*args):
    p = subprocess.run([BIN, "bench", "-m", "sendpath"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out
    rows = []
    for ln in out.splitlines():
        if ln.startswith("RESULT "):
            rows.append(dict(kv.split("=", 1) for kv in ln.split()[1:]))
    return rows, out


def check(rows, out, variants, repeats, conns, sweeps, msg):
    if "io_uring unavailable" in out:
        variants = [v for v in variants if not v.startswith("uring")]
    assert len(rows) == len(variants) * repeats, out
    for v in variants:
        mine = [r for r in rows if r["variant"] == v]
        assert sorted(int(r["repeat"]) for r in mine) == list(range(1, repeats + 1)), out
        for r in mine:
            assert int(r["sends"]) == conns * sweeps, r
            assert int(r["errors"]) == 0, r
            assert float(r["cpu_ns_per_send"]) > 0, r
    assert "summary:" in out, out
    return variants


def test_small_frames_every_variant_once_per_connection_per_sweep():
    rows, out = sendpath("-c", "50", "-n", "4", "-r", "2", "-k", "3", "-s", "100")
    check(rows, out, ["sendmsg", "uring", "uring-reg"], 2, 50, 4, 300)
    for r in rows:  # 900 B per connection in all: no socket buffer fills
        assert int(r["again"]) == 0, r
        assert r["k"] == "3" and r["size"] == "100", r


def test_large_messages_sent_whole_with_zerocopy_notifications_read():
    rows, out = sendpath("-c", "4", "-n", "5", "-r", "1", "-s", "65536")
    variants = check(rows, out, ["sendmsg", "zerocopy", "uring", "uring-zc"], 1, 4, 5, 65536)
    for r in rows:
        # sent whole: ns per KiB over 20 x 64 KiB
        assert float(r["ns_per_kib"]) > 0, r
    zc = [r for r in rows if r["variant"] == "zerocopy"][0]
    # every send acknowledged inside the window (a notification may cover a
    # range of sends)
    assert int(zc["notifs"]) >= 1 and zc["unacked"] == "0", zc
    if "uring-zc" in variants:
        uzc = [r for r in rows if r["variant"] == "uring-zc"][0]
        assert int(uzc["notifs"]) == 20, uzc  # one notification CQE per SEND_ZC


def test_bad_arguments_are_refused():
    for args in (["-V", "nosuch"], ["-c", "0"], ["-s", "1048576", "-k", "2"]):
        p = subprocess.run([BIN, "bench", "-m", "sendpath"] + args, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        assert p.returncode == 2, (args, p.stdout)


if __name__ == "__main__":
    sys.exit(run_module("bench_sendpath", globals(), os.environ.get("ONLY")))
