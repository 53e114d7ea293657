# SPDX-License-Identifier: MIT
"""Docs stay true: the settings table in docs/configuration.md is what the
binary prints, and docs/close-codes.md lists every close code the server
can send (from include/hf/close.h)."""
import os
import re
import subprocess
import sys

from harness import BIN, ROOT, run_module


def read(p):
    with open(os.path.join(ROOT, p)) as f:
        return f.read()


def test_configuration_table_matches_binary():
    table = subprocess.run([BIN, "config-doc"], capture_output=True, text=True, timeout=10).stdout
    doc = read("docs/configuration.md")
    m = re.search(r"<!-- settings:begin -->\n(.*)<!-- settings:end -->", doc, re.S)
    assert m, "settings markers missing"
    assert m.group(1) == table, "docs/configuration.md settings table is stale: regenerate with holdfast config-doc"


def test_every_help_key_documented():
    help_text = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True, timeout=10).stdout
    keys = re.findall(r"^  --([a-z_.]+) \(", help_text, re.M)
    assert len(keys) > 10, keys
    doc = read("docs/configuration.md")
    for k in keys:
        assert "`%s`" % k in doc, k


def test_close_codes_documented():
    hdr = read("include/hf/close.h")
    codes = [int(c) for c in re.findall(r"HF_CLOSE_\w+ = (\d+)", hdr)]
    assert len(codes) > 10, codes
    doc = read("docs/close-codes.md")
    for c in codes:
        assert re.search(r"(^|\D)%d(\D|$)" % c, doc), "close code %d missing from docs/close-codes.md" % c


if __name__ == "__main__":
    sys.exit(run_module("docs", globals()))
