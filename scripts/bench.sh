#!/usr/bin/env bash
# The standard benchmark set of docs/benchmarks.md. Results go to $BENCH_OUT (default
# bench-results/), one JSON file per run, plus the latency chart and the side-by-side table.
# Extra arguments are passed to every run (e.g. --workers 3).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${BENCH_OUT:-bench-results}"
mkdir -p "$out"
wspool=.venv/bin/wspool

# 1. One `wspool server` node on its own redis-server (both started by --spawn-servers).
#    connect holds 19,000: a node needs a few descriptors of its own beside its clients, and
#    the hard limit on open files here is 20,000.
node=("$wspool" bench --spawn-servers 1)
"${node[@]}" connect --connections 19000 --concurrency 8 --duration 3 \
    --json "$out/connect.json" "$@"
"${node[@]}" throughput --duration 10 --json "$out/throughput.json" "$@"
"${node[@]}" fanout --subscribers 1000 --duration 10 --json "$out/fanout.json" "$@"
# One publisher per generator process: several rate-paced publishers in one process delay
# each other (docs/benchmarks.md, Latency).
"${node[@]}" latency --rate 1000,2000,5000,10000,15000,20000 --duration 8 --workers 4 \
    --json "$out/latency.json" --chart "$out/latency.png" "$@"

# 2. The gateway: 2 nodes behind one `wspool gateway`, each scenario through the gateway and
#    straight to the nodes in turn, on the same processes. connect holds 9,000: the gateway
#    holds two sockets per client.
gateway=("$wspool" bench --spawn-servers 2 --spawn-gateway --via gateway,direct)
"${gateway[@]}" connect --connections 9000 --concurrency 8 --duration 3 \
    --json "$out/gateway-connect.json" "$@"
"${gateway[@]}" connect --connections 1000 --concurrency 1 --workers 1 --duration 1 \
    --json "$out/gateway-connect-one-at-a-time.json" "$@"
"${gateway[@]}" latency --rate 500,1000,2000 --duration 8 --json "$out/gateway-latency.json" "$@"
"${gateway[@]}" throughput fanout --duration 10 \
    --json "$out/gateway-relay.json" "$@"
"${gateway[@]}" many-channels subscribe-storm --duration 10 \
    --json "$out/gateway-many-channels-storm.json" "$@"

# 3. Failover: 3 nodes behind the gateway, one killed halfway; with `since`, then without.
failover=("$wspool" bench --spawn-servers 3 --spawn-gateway failover --duration 8)
"${failover[@]}" --json "$out/failover.json" "$@"
"${failover[@]}" --at-most-once --json "$out/failover-at-most-once.json" "$@"

# 4. Side by side with the peers users would otherwise pick, each with its Redis fan-out:
#    python-socketio with its Redis manager, Socket.IO on Node.js with its Redis adapter, and
#    Centrifugo with its Redis engine (and with its memory engine, which needs no Redis),
#    without history like the others, then with channel history as our nodes keep it.
#    The same scenarios, ours then each peer's, one server each on its own redis-server.
peers=(socketio socketio-node centrifugo centrifugo-redis centrifugo-redis-history)
for who in wspool "${peers[@]}"; do
    side=("$wspool" bench --spawn-servers 1)
    [ "$who" != wspool ] && side+=(--peer "$who")
    "${side[@]}" connect --connections 10000 --concurrency 8 --duration 3 \
        --json "$out/side-connect-$who.json" "$@"
    "${side[@]}" fanout --subscribers 1000 --duration 10 --json "$out/side-fanout-$who.json" "$@"
    "${side[@]}" latency --rate 1000,2000 --duration 8 --json "$out/side-latency-$who.json" "$@"
    # 500 channels x 2 subscribers, 500 publishers at 2,000 msg/s in all; then 1,000
    # subscribers over 100 channels subscribing at once.
    "${side[@]}" many-channels --duration 10 --json "$out/side-many-channels-$who.json" "$@"
    "${side[@]}" subscribe-storm --json "$out/side-subscribe-storm-$who.json" "$@"
done
for peer in "${peers[@]}"; do
    for scenario in connect fanout latency many-channels subscribe-storm; do
        echo "== $scenario: $peer ÷ wspool"
        .venv/bin/python -m wspool.bench.compare "$out/side-$scenario-wspool.json" \
            "$out/side-$scenario-$peer.json"
    done
done | tee "$out/side-by-side.txt"
