#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Regenerate the settings table of docs/configuration.md from the binary
# (tests/integration/test_docs.py fails when it is stale).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${HOLDFAST_BIN:-build/holdfast}
table=$("$BIN" config-doc)
python3 - "$table" <<'PY'
import re, sys
p = "docs/configuration.md"
s = open(p).read()
s = re.sub(r"(<!-- settings:begin -->\n).*(<!-- settings:end -->)",
           lambda m: m.group(1) + sys.argv[1] + "\n" + m.group(2), s, flags=re.S)
open(p, "w").write(s)
PY
