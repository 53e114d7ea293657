# SPDX-License-Identifier: MIT
"""A `holdfast chaos` process for the integration tests: started on
127.0.0.1 with an ephemeral listen and control port (read from its
chaos_listening log line), its JSON log lines, its control endpoint, and a
stop that requires exit 0 and a log without sanitizer reports."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from harness import BIN, SAN_PATTERNS, LogEvents


class Chaos(LogEvents):
    log_label = "chaos: "

    def __init__(self, upstream_port, *args, control=True, timeout=10):
        self.logf = tempfile.NamedTemporaryFile(prefix="hf-chaos-", suffix=".log", delete=False)
        cmd = [BIN, "chaos", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:%d" % upstream_port]
        if control:
            cmd += ["--control", "127.0.0.1:0"]
        cmd += list(args)
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.logf, env=e)
        self.port = self.control_port = None
        deadline = time.time() + timeout
        while time.time() < deadline and not self.port:
            for ev in self.events("chaos_listening"):
                self.port = ev["port"]
                self.control_port = ev.get("control_port")
            if self.proc.poll() is not None:
                raise AssertionError("chaos exited at start-up: " + self.log())
            time.sleep(0.02)
        if not self.port:
            self.kill()
            raise AssertionError("chaos did not report listening: " + self.log())

    def log(self):
        with open(self.logf.name, "r", errors="replace") as f:
            return f.read()

    def call(self, method, path, body=None, timeout=5.0):
        """(status, parsed JSON) from the control endpoint."""
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.control_port, path),
                                     data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def stats(self):
        st, j = self.call("GET", "/stats")
        assert st == 200, "GET /stats: %d" % st
        return j

    def rules(self, rules, conn=None):
        st, j = self.call("POST", "/rules" + ("?conn=%d" % conn if conn else ""), rules)
        assert st == 200, "POST /rules %r: %d %r" % (rules, st, j)
        return j

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("chaos did not exit after SIGTERM")
        log = self.log()
        for pat in SAN_PATTERNS:
            if pat in log:
                raise AssertionError("chaos log shows %r:\n%s" % (pat, log[-4000:]))
        rc = self.proc.returncode
        self.cleanup()
        if rc != 0:
            raise AssertionError("chaos exit code %d" % rc)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.cleanup()

    def cleanup(self):
        if os.path.exists(self.logf.name) and not os.environ.get("HF_KEEP_LOGS"):
            os.unlink(self.logf.name)

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            self.stop()
        else:
            log = self.log()
            self.kill()
            sys.stdout.write("  --- chaos log (last 3000 bytes) ---\n" + log[-3000:] + "\n")
        return False
