"""Turning what the workers and the nodes' /metrics said into a report: JSON and a table.

Rates: messages in per second is what the publishers sent divided by the load window;
deliveries per second is what the subscribers received divided by the time from the start
of the load to the last delivery (never less than the load window), so a backlog that
drains after the publishers stop counts against the rate rather than for it.

Redis, when the run knows it (spawned processes on Redis), is read like a process: its CPU
seconds over the run, per delivery the subscribers received. A subscribe storm reports the
subscribes taken and refused, each one's time to its answer, and the time from ``go`` until
the last one was taken.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wspool.bench.measures import NodeReading, per_message_us, per_second, rss_per_thousand_mb
from wspool.bench.plan import UNPUBLISHED, Shape
from wspool.bench.tally import WorkerResult

__all__ = [
    "RunTiming",
    "merge_results",
    "render_failover",
    "render_storm",
    "render_table",
    "render_text",
    "summarize",
]


@dataclass(frozen=True, slots=True)
class RunTiming:
    """Wall-clock facts of one run, in seconds."""

    setup: float  # opening and subscribing every connection
    load: float  # publishers publishing (connect: connections held)
    until_last_delivery: float  # from the start of the load to the last delivery
    go_ns: int = 0  # when the load started (monotonic ns; 0 = connect, no load)


def merge_results(results: Sequence[WorkerResult]) -> WorkerResult:
    total = WorkerResult()
    for r in results:
        total.opened += r.opened
        total.failed += r.failed
        total.failures.update(r.failures)
        total.setup.merge(r.setup)
        total.latency.merge(r.latency)
        total.schedule_lag.merge(r.schedule_lag)
        total.sent_per_channel.update(r.sent_per_channel)
        total.received += r.received
        total.echoed += r.echoed
        total.errors.update(r.errors)
        total.lost += r.lost
        total.close_codes.update(r.close_codes)
        total.last_delivery_ns = max(total.last_delivery_ns, r.last_delivery_ns)
        total.recoveries.extend(r.recoveries)
        total.gaps += r.gaps
        total.duplicates += r.duplicates
        total.subscribed += r.subscribed
        total.refused.update(r.refused)
        total.subscribe.merge(r.subscribe)
        total.last_subscribed_ns = max(total.last_subscribed_ns, r.last_subscribed_ns)
    return total


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _node(before: NodeReading, after: NodeReading, seconds: float) -> dict[str, Any]:
    def delta(name: str) -> float | None:
        a, b = getattr(before, name), getattr(after, name)
        return None if a is None or b is None else b - a

    cpu = delta("cpu_seconds")
    return {
        "metrics_url": after.url,
        "role": "gateway" if after.is_gateway or before.is_gateway else "node",
        "connections": after.connections,
        "rss_mb": _round(after.rss_bytes / 1e6 if after.rss_bytes is not None else None),
        "rss_per_1000_connections_mb": _round(rss_per_thousand_mb(before, after), 2),
        "cpu_seconds": _round(cpu, 3),
        "cpu_percent": _round(cpu / seconds * 100 if cpu is not None and seconds else None),
        "messages_received": delta("received"),
        "deliveries": delta("deliveries"),
        "slow_consumers": delta("slow_consumers"),
        "cpu_us_per_inbound": _round(per_message_us(before, after, delta("received")), 2),
        "cpu_us_per_delivery": _round(per_message_us(before, after, delta("deliveries")), 2),
        "relayed_frames": delta("relayed"),
        "relayed_per_second": _round(_rate(delta("relayed"), seconds), 0),
        "cpu_us_per_relayed_frame": _round(per_message_us(before, after, delta("relayed")), 2),
    }


def _rate(count: float | None, seconds: float) -> float | None:
    return None if count is None else per_second(count, seconds)


def _redis(
    before: NodeReading | None, after: NodeReading | None, seconds: float, delivered: int
) -> dict[str, Any] | None:
    """Redis's CPU over the run, and per delivery the subscribers received."""
    if before is None or after is None or before.cpu_seconds is None:
        return None
    cpu = (after.cpu_seconds or 0.0) - before.cpu_seconds
    return {
        "url": after.url,
        "cpu_seconds": _round(cpu, 3),
        "cpu_percent": _round(cpu / seconds * 100 if seconds else None),
        "rss_mb": _round(after.rss_bytes / 1e6 if after.rss_bytes is not None else None),
        "cpu_us_per_delivery": _round(cpu * 1e6 / delivered if delivered else None, 2),
    }


def _storm(total: WorkerResult, planned: int, go_ns: int) -> dict[str, Any]:
    everyone = total.subscribed == planned and total.last_subscribed_ns > 0
    return {
        "planned": planned,
        "subscribed": total.subscribed,
        "refused": sum(total.refused.values()),
        "refusals": dict(total.refused),
        "subscribe_ms": total.subscribe.summary(),
        "all_subscribed_ms": round((total.last_subscribed_ns - go_ns) / 1e6, 1)
        if everyone
        else None,
    }


def summarize(
    shape: Shape,
    results: Sequence[WorkerResult],
    before: Sequence[NodeReading],
    after: Sequence[NodeReading],
    timing: RunTiming,
    subscribers: Counter[str],
    route: str = "direct",
    redis: tuple[NodeReading | None, NodeReading | None] = (None, None),
) -> dict[str, Any]:
    """The JSON-ready report of one scenario run."""
    total = merge_results(results)
    sent = sum(total.sent_per_channel.values())
    expected = sum(count * subscribers[ch] for ch, count in total.sent_per_channel.items())
    out_window = max(timing.load, timing.until_last_delivery)
    planned = shape.connections + shape.publishers + shape.subscribers
    seconds = out_window if sent else timing.setup + timing.load
    nodes = [_node(b, a, seconds) for b, a in zip(before, after, strict=True)]
    report = {
        "scenario": shape.scenario,
        "route": route,
        "shape": {
            "connections": shape.connections,
            "publishers": shape.publishers,
            "subscribers": shape.subscribers,
            "channels": shape.channels,
            "rate": shape.rate,
        },
        "connections": {
            "planned": planned,
            "opened": total.opened,
            "failed": total.failed,
            "failures": dict(total.failures),
            "lost": total.lost,
            "close_codes": {str(code): n for code, n in total.close_codes.items()},
            "setup_seconds": round(timing.setup, 3),
            "setup_ms": total.setup.summary(),
        },
        "messages": {
            "load_seconds": round(timing.load, 3),
            "sent": sent,
            "delivered": total.received,
            "expected_deliveries": expected,
            "missing": expected - total.received,
            "echoes_to_publishers": total.echoed,
            "in_per_second": round(per_second(sent, timing.load)),
            "deliveries_per_second": round(per_second(total.received, out_window)),
            "latency_ms": total.latency.summary(),
            "schedule_lag_ms": total.schedule_lag.summary(),
            "errors": dict(total.errors),
            # By offset, where the node gives them and the subscribers track them (failover).
            "gaps": total.gaps,
            "duplicates": total.duplicates,
        },
        "nodes": nodes,
        "redis": _redis(*redis, seconds, total.received),
    }
    if shape.scenario == "subscribe-storm":
        report["subscribe_storm"] = _storm(total, shape.subscribers, timing.go_ns)
    return report


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; numbers (and dashes) right-aligned."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        out = []
        for cell, width in zip(cells, widths, strict=True):
            numeric = cell[:1].isdigit() or cell in ("-", "")
            out.append(cell.rjust(width) if numeric else cell.ljust(width))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def _num(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _three(summary: dict[str, Any], digits: int = 2) -> str:
    if not summary["count"]:
        return "-"
    return "/".join(_num(summary[k], digits) for k in ("p50_ms", "p95_ms", "p99_ms"))


def render_text(reports: Sequence[dict[str, Any]]) -> str:
    """The two tables printed at the end of a run: scenarios, then per-node costs."""
    runs = []
    nodes = []
    for r in reports:
        c, m, s = r["connections"], r["messages"], r["shape"]
        unpublished = r["scenario"] in UNPUBLISHED
        rate = "-" if unpublished else ("max" if not s["rate"] else _num(s["rate"]))
        via = r.get("route", "direct")
        runs.append(
            [
                r["scenario"],
                via,
                rate,
                f"{c['opened']}/{c['planned']}",
                _three(c["setup_ms"]),
                _num(m["in_per_second"]) if m["sent"] else "-",
                _num(m["deliveries_per_second"]) if m["sent"] else "-",
                _three(m["latency_ms"]),
                _num(m["missing"]) if m["sent"] else "-",
                _num(c["lost"]),
            ]
        )
        for n in r["nodes"]:
            nodes.append(
                [
                    r["scenario"],
                    via,
                    rate,
                    n["metrics_url"].removeprefix("http://").removesuffix("/metrics"),
                    _num(n["connections"]),
                    _num(n["rss_mb"], 1),
                    _num(n["rss_per_1000_connections_mb"], 2)
                    if r["scenario"] == "connect"
                    else "-",
                    _num(n["cpu_percent"]),
                    _num(n["cpu_us_per_inbound"], 1),
                    _num(n["cpu_us_per_delivery"], 1),
                    # A connect run relays only `connected` frames: no rate worth showing.
                    "-" if r["scenario"] == "connect" else _num(n.get("relayed_per_second")),
                    "-"
                    if r["scenario"] == "connect"
                    else _num(n.get("cpu_us_per_relayed_frame"), 1),
                ]
            )
        if r.get("redis"):
            redis = r["redis"]
            cpu = [_num(redis["cpu_percent"]), "-", _num(redis["cpu_us_per_delivery"], 1)]
            memory = [_num(redis["rss_mb"], 1), "-"]
            nodes.append([r["scenario"], via, rate, "redis", "-", *memory, *cpu, "-", "-"])
    first = render_table(
        [
            "scenario",
            "via",
            "rate",
            "open",
            "setup p50/95/99 ms",
            "in msg/s",
            "deliveries/s",
            "latency p50/95/99 ms",
            "missing",
            "lost",
        ],
        runs,
    )
    second = render_table(
        [
            "scenario",
            "via",
            "rate",
            "process",
            "conns",
            "RSS MB",
            "MB/1000 conns",
            "CPU %",
            "µs CPU/in",
            "µs CPU/delivery",
            "relayed/s",
            "µs CPU/relayed",
        ],
        nodes,
    )
    text = f"{first}\n\n{second}\n"
    for r in reports:
        if "failover" in r:
            text += "\n" + render_failover(r)
        if "subscribe_storm" in r:
            text += "\n" + render_storm(r)
    return text


def render_storm(report: dict[str, Any]) -> str:
    storm = report["subscribe_storm"]
    refusals = ", ".join(f"{n:,} {why}" for why, n in storm["refusals"].items())
    everyone = storm["all_subscribed_ms"]
    return (
        f"subscribe storm{' via the gateway' if report.get('route') == 'gateway' else ''}: "
        f"{storm['subscribed']:,} of {storm['planned']:,} subscribed at once, "
        f"{storm['refused']:,} refused or errored{f' ({refusals})' if refusals else ''}\n"
        f"  each subscribe p50/p95/p99 {_three(storm['subscribe_ms'])} ms; all subscribed "
        f"{f'{everyone:,.1f} ms' if everyone is not None else 'never'} after the go\n"
    )


def render_failover(report: dict[str, Any]) -> str:
    f, m = report["failover"], report["messages"]
    back, receiving = f["back_in_through_the_gateway"], f["receiving_again"]
    return (
        f"failover: killed {f['killed']} holding {f['on_killed_node']['subscribers']} "
        f"subscribers and {f['on_killed_node']['publishers']} publishers; "
        f"{f['subscribers_cut']} subscribers cut, {f['subscribers_receiving_again']} "
        f"receiving again\n"
        f"  back in through the gateway p50/p95/max {back['p50_ms']}/{back['p95_ms']}/"
        f"{back['max_ms']} ms after the kill; receiving again p50/p95/max "
        f"{receiving['p50_ms']}/{receiving['p95_ms']}/{receiving['max_ms']} ms\n"
        f"  every affected subscriber receiving again: {f['all_receiving_again_ms']} ms after "
        f"the kill; resubscribed {f['resubscribed_with']}, recovered "
        f"{f['recovered']}/{f['subscribers_cut']}\n"
        f"  messages lost: {m['missing']:,} of {m['expected_deliveries']:,} deliveries; "
        f"gaps {m['gaps']:,}, duplicates {m['duplicates']:,} (by offset)\n"
    )
