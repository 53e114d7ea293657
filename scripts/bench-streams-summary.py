#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Medians [min-max] of scripts/bench-streams.sh raw lines, per variant."""
import re
import statistics
import sys
from collections import defaultdict

rows = defaultdict(lambda: defaultdict(list))
for line in open(sys.argv[1] if len(sys.argv) > 1 else "/tmp/hf-streams-bench.txt"):
    m = re.match(r"(\S+) rep=(\d+) (.*)", line.strip())
    if not m:
        continue
    tag, rest = m.group(1), m.group(3)
    kv = dict(re.findall(r"(\w+)=([^\s]+)", rest))
    if "requests per second" in rest:
        kv["rps"] = re.search(r"([\d.]+) requests per second", rest).group(1)
    if tag == "E1-redis" and "redis_cpu_ticks" in kv and "deliveries_per_s" not in kv:
        tag = "E1-redis-cpu"
    for k, v in kv.items():
        v = v.rstrip("%")
        try:
            rows[tag][k].append(float(v))
        except ValueError:
            pass
    d, cpu = kv.get("deliveries_per_s"), kv.get("server_cpu")
    if d and cpu:
        rows[tag]["per_cpu_s"].append(float(d) / (float(cpu.rstrip("%")) / 100))


def fmt(xs, scale=1.0, nd=0):
    if not xs:
        return "-"
    xs = [x * scale for x in xs]
    f = "%%.%df" % nd
    return (f % statistics.median(xs)) + " [" + (f % min(xs)) + "-" + (f % max(xs)) + "]"


for tag, r in rows.items():
    parts = [tag, "n=%d" % max(len(v) for v in r.values())]
    for key, label, scale, nd in (("deliveries_per_s", "deliv/s", 1, 0), ("pubs_per_s", "pubs/s", 1, 0),
                                  ("server_cpu", "srv cpu %", 1, 0), ("per_cpu_s", "deliv/CPU-s", 1, 0),
                                  ("p50_us", "p50 ms", 1e-3, 1), ("p99_us", "p99 ms", 1e-3, 1),
                                  ("missing", "missing", 1, 0), ("other_cpu", "other cpu %", 1, 0),
                                  ("elapsed_s", "elapsed s", 1, 2), ("server_cpu_s", "srv CPU-s", 1, 2),
                                  ("rps", "req/s", 1, 0), ("redis_cpu_ticks", "redis ticks", 1, 0),
                                  ("rss_end_kb", "rss end KiB", 1, 0)):
        if key in r:
            parts.append("%s %s" % (label, fmt(r[key], scale, nd)))
    print(" | ".join(parts))
