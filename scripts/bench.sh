#!/usr/bin/env bash
# The standard benchmark set of docs/benchmarks.md, $BENCH_RUNS times over (default 3, each
# time with fresh processes). Results go to $BENCH_OUT (default bench-results/): run-N/ holds
# one JSON file per invocation of repetition N, its latency chart and its side-by-side table;
# summary.txt has every figure's median over the repetitions beside each one's value.
# $BENCH_PEERS names the servers put side by side with ours. Extra arguments are passed to
# every invocation (e.g. --workers 3).
set -euo pipefail
cd "$(dirname "$0")/.."
root="${BENCH_OUT:-bench-results}"
runs="${BENCH_RUNS:-3}"
read -r -a peers <<< "${BENCH_PEERS:-socketio socketio-node centrifugo centrifugo-redis centrifugo-redis-history}"
wspool=.venv/bin/wspool

one_run() {
out="$1"
shift
mkdir -p "$out"

# 1. One `wspool server` node on its own redis-server (both started by --spawn-servers).
#    connect holds 19,000: a node needs a few descriptors of its own beside its clients, and
#    the hard limit on open files here is 20,000.
node=("$wspool" bench --spawn-servers 1)
"${node[@]}" connect --connections 19000 --concurrency 8 --duration 3 \
    --json "$out/connect.json" "$@"
"${node[@]}" throughput --duration 10 --json "$out/throughput.json" "$@"
"${node[@]}" fanout --subscribers 1000 --duration 10 --json "$out/fanout.json" "$@"
# One publisher per generator process, as in every run since 2026-11-26 (docs/benchmarks.md,
# Latency), so that the sweep's figures compare with theirs.
"${node[@]}" latency --rate 1000,2000,5000,10000,15000,20000 --duration 8 --workers 4 \
    --json "$out/latency.json" --chart "$out/latency.png" "$@"

# 2. The gateway: 2 nodes behind one `wspool gateway`, each scenario through the gateway and
#    straight to the nodes in turn, on the same processes. connect holds 8,000: the gateway
#    holds two sockets per client, within its descriptor budget (the open-file limit less
#    --file-reserve and its listen backlog; beyond it, it sheds connections and /metrics).
gateway=("$wspool" bench --spawn-servers 2 --spawn-gateway --via gateway,direct)
"${gateway[@]}" connect --connections 8000 --concurrency 8 --duration 3 \
    --json "$out/gateway-connect.json" "$@"
"${gateway[@]}" connect --connections 1000 --concurrency 1 --workers 1 --duration 1 \
    --json "$out/gateway-connect-one-at-a-time.json" "$@"
"${gateway[@]}" latency --rate 500,1000,2000 --duration 8 --json "$out/gateway-latency.json" "$@"
"${gateway[@]}" throughput fanout --duration 10 \
    --json "$out/gateway-relay.json" "$@"
"${gateway[@]}" many-channels subscribe-storm --duration 10 \
    --json "$out/gateway-many-channels-storm.json" "$@"

# 3. Failover: 3 nodes behind the gateway, one killed halfway; clients that reconnect themselves
#    (`--seamless false`) with `since`, then without; then the gateway moving them (its default).
failover=("$wspool" bench --spawn-servers 3 --spawn-gateway failover --duration 8)
"${failover[@]}" --seamless false --json "$out/failover.json" "$@"
"${failover[@]}" --seamless false --at-most-once --json "$out/failover-at-most-once.json" "$@"
"${failover[@]}" --json "$out/failover-seamless.json" "$@"

# 4. Side by side with the peers users would otherwise pick, each with its Redis fan-out:
#    python-socketio with its Redis manager, Socket.IO on Node.js with its Redis adapter, and
#    Centrifugo with its Redis engine (without and with channel history, which a node always
#    keeps) and with its memory engine, which needs no Redis. The same scenarios, ours then
#    each peer's, one server each on its own redis-server.
for who in wspool "${peers[@]}"; do
    side=("$wspool" bench --spawn-servers 1)
    [ "$who" != wspool ] && side+=(--peer "$who")
    # 5,000 idle connections (memory), then 2,000 opened one at a time (CPU per connection).
    "${side[@]}" connect --connections 5000 --concurrency 8 --duration 3 \
        --json "$out/side-connect-$who.json" "$@"
    "${side[@]}" connect --connections 2000 --concurrency 1 --workers 1 --duration 1 \
        --json "$out/side-connect-one-at-a-time-$who.json" "$@"
    "${side[@]}" fanout --subscribers 1000 --rate 200,1000 --duration 10 \
        --json "$out/side-fanout-$who.json" "$@"
    "${side[@]}" latency --rate 1000,2000 --duration 8 --json "$out/side-latency-$who.json" "$@"
    # 500 channels x 2 subscribers, 500 publishers at 2,000 msg/s in all; then 10,000
    # subscribers over 1,000 channels subscribing at once.
    "${side[@]}" many-channels --duration 10 --json "$out/side-many-channels-$who.json" "$@"
    if [ "$who" = wspool ]; then
        # The same node spacing its publishes 5 ms apart (--publish-delay): what batching
        # saves at everyday rates, and what it adds to latency.
        "${side[@]}" --publish-delay 0.005 many-channels --duration 10 \
            --json "$out/side-many-channels-wspool-delay-5ms.json" "$@"
        "${side[@]}" --publish-delay 0.005 latency --rate 1000,2000 --duration 8 \
            --json "$out/side-latency-wspool-delay-5ms.json" "$@"
    fi
    "${side[@]}" subscribe-storm --subscribers 10000 --channels 1000 \
        --json "$out/side-subscribe-storm-$who.json" "$@"
done
for peer in "${peers[@]}"; do
    for scenario in connect connect-one-at-a-time fanout latency many-channels subscribe-storm; do
        echo "== $scenario: $peer ÷ wspool"
        .venv/bin/python -m wspool.bench.compare "$out/side-$scenario-wspool.json" \
            "$out/side-$scenario-$peer.json"
    done
done | tee "$out/side-by-side.txt"
}

folders=()
for i in $(seq 1 "$runs"); do
    echo "=== repetition $i of $runs ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))"
    one_run "$root/run-$i" "$@"
    folders+=("$root/run-$i")
done
.venv/bin/python -m wspool.bench.summary "${folders[@]}" | tee "$root/summary.txt"
