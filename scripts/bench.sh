#!/usr/bin/env bash
# The standard benchmark set of docs/benchmarks.md: each scenario against one fresh
# `wspool server` node on its own redis-server (both started by `wspool bench --spawn-servers`).
# connect holds 19,000: a node needs a few descriptors of its own beside its clients, and
# the hard limit on open files here is 20,000 (docs/benchmarks.md).
# Results go to $BENCH_OUT (default bench-results/), one JSON file per scenario, plus the
# latency chart. Extra arguments are passed to every run (e.g. --workers 3).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${BENCH_OUT:-bench-results}"
mkdir -p "$out"
bench=(.venv/bin/wspool bench --spawn-servers 1)

"${bench[@]}" connect --connections 19000 --concurrency 8 --duration 3 \
    --json "$out/connect.json" "$@"
"${bench[@]}" throughput --duration 10 --json "$out/throughput.json" "$@"
"${bench[@]}" fanout --subscribers 1000 --duration 10 --json "$out/fanout.json" "$@"
"${bench[@]}" latency --rate 1000,2000,5000,10000,15000,20000 --duration 8 \
    --json "$out/latency.json" --chart "$out/latency.png" "$@"
