"""The side by side as ratios: two ``wspool bench --json`` reports of the same scenarios.

``python -m wspool.bench.compare ours.json peer.json`` matches the runs by scenario and rate
and prints, for each figure, both values and peer ÷ ours (above 1: the peer costs more, or
takes longer; for rates, below 1: the peer delivers less). Everything but reading the files
is pure.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from wspool.bench.plan import UNPUBLISHED
from wspool.bench.report import render_table

__all__ = ["FIGURES", "compare", "fmt", "main"]

Figure = tuple[str, str, Callable[[dict[str, Any]], float | None]]


def _node(run: dict[str, Any], key: str) -> float | None:
    values = [n[key] for n in run["nodes"] if n.get("role", "node") == "node" and n.get(key)]
    return sum(values) / len(values) if values else None


def _gateway(key: str) -> Callable[[dict[str, Any]], float | None]:
    def read(run: dict[str, Any]) -> float | None:
        values = [n[key] for n in run["nodes"] if n.get("role") == "gateway" and n.get(key)]
        return float(values[0]) if values else None

    return read


def _cpu_ms_per_connection(role: str) -> Callable[[dict[str, Any]], float | None]:
    """CPU seconds of the servers of ``role`` over the run, per connection opened, in ms (a
    connect run holds its connections idle after opening them, which costs next to nothing)."""

    def read(run: dict[str, Any]) -> float | None:
        opened = int(run["connections"]["opened"])
        cpu = [n["cpu_seconds"] for n in run["nodes"] if n.get("role", "node") == role]
        if not opened or not cpu or None in cpu:
            return None
        return sum(float(c) for c in cpu) * 1000 / opened

    return read


def _latency(q: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda run: run["messages"]["latency_ms"][q]


def _redis(run: dict[str, Any]) -> float | None:
    value = (run.get("redis") or {}).get("cpu_us_per_delivery")
    return None if value is None else float(value)


def _storm(key: str) -> Callable[[dict[str, Any]], float | None]:
    def read(run: dict[str, Any]) -> float | None:
        value = run["subscribe_storm"][key]
        value = value["p95_ms"] if isinstance(value, dict) else value
        return None if value is None else float(value)

    return read


FIGURES: dict[str, tuple[Figure, ...]] = {
    "connect": (
        ("MB per 1,000 connections", "lower", lambda r: _node(r, "rss_per_1000_connections_mb")),
        ("server CPU ms per connection", "lower", _cpu_ms_per_connection("node")),
        ("setup p50 ms", "lower", lambda r: r["connections"]["setup_ms"]["p50_ms"]),
        ("setup p95 ms", "lower", lambda r: r["connections"]["setup_ms"]["p95_ms"]),
        ("gateway MB per 1,000 connections", "lower", _gateway("rss_per_1000_connections_mb")),
        ("gateway CPU ms per connection", "lower", _cpu_ms_per_connection("gateway")),
    ),
    "fanout": (
        ("server CPU µs per delivery", "lower", lambda r: _node(r, "cpu_us_per_delivery")),
        ("deliveries/s", "higher", lambda r: r["messages"]["deliveries_per_second"]),
        ("server CPU %", "-", lambda r: _node(r, "cpu_percent")),
        ("deliveries missing", "lower", lambda r: r["messages"].get("missing")),
        ("gateway CPU µs per relayed frame", "lower", _gateway("cpu_us_per_relayed_frame")),
    ),
    "throughput": (
        ("server CPU µs per inbound message", "lower", lambda r: _node(r, "cpu_us_per_inbound")),
        ("messages in/s", "higher", lambda r: r["messages"]["in_per_second"]),
        ("gateway CPU µs per relayed frame", "lower", _gateway("cpu_us_per_relayed_frame")),
    ),
    "latency": (
        ("latency p50 ms", "lower", _latency("p50_ms")),
        ("latency p95 ms", "lower", _latency("p95_ms")),
        ("latency p99 ms", "lower", _latency("p99_ms")),
        ("server CPU µs per message", "lower", lambda r: _node(r, "cpu_us_per_inbound")),
    ),
    "many-channels": (
        ("server CPU µs per delivery", "lower", lambda r: _node(r, "cpu_us_per_delivery")),
        ("Redis CPU µs per delivery", "lower", _redis),
        ("latency p50 ms", "lower", _latency("p50_ms")),
        ("latency p95 ms", "lower", _latency("p95_ms")),
        ("latency p99 ms", "lower", _latency("p99_ms")),
        ("deliveries missing", "lower", lambda r: r["messages"]["missing"]),
    ),
    "subscribe-storm": (
        ("all subscribed after ms", "lower", _storm("all_subscribed_ms")),
        ("subscribe p95 ms", "lower", _storm("subscribe_ms")),
        ("subscribes refused", "lower", _storm("refused")),
    ),
}


def _key(run: dict[str, Any]) -> tuple[str, float]:
    return run["scenario"], float(run["shape"]["rate"])


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def compare(ours: Sequence[dict[str, Any]], peer: Sequence[dict[str, Any]]) -> str:
    """One table: scenario, rate, figure, ours, peer, peer ÷ ours."""
    theirs = {_key(run): run for run in peer}
    rows = []
    for run in ours:
        other = theirs.get(_key(run))
        if other is None:
            continue
        scenario, rate = _key(run)
        shown_rate = "-" if scenario in UNPUBLISHED else (f"{rate:,.0f}" if rate else "max")
        for name, better, read in FIGURES.get(scenario, ()):
            a, b = read(run), read(other)
            if a is None and b is None:
                continue
            ratio = f"{b / a:,.2f}x" if a and b is not None else "-"
            rows.append([scenario, shown_rate, name, fmt(a), fmt(b), ratio, better])
    headers = ["scenario", "rate", "figure", "wspool", "peer", "peer ÷ wspool", "better"]
    return render_table(headers, rows)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m wspool.bench.compare OURS.json PEER.json", file=sys.stderr)
        return 2
    ours, peer = (json.loads(Path(path).read_text())["runs"] for path in args)
    print(compare(ours, peer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
