"""The ``failover`` scenario's arithmetic: which node to kill, and how the clients came back.

Under load through the gateway, the runner SIGKILLs one node halfway through. Every client
of that node sees its connection cut, opens a new one through the gateway, resubscribes,
and (a subscriber) hears the next message of its channel. Times are counted from the
kill, on the machine's monotonic clock, which every process shares. Everything here is pure.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from wspool.bench.tally import Recovery

__all__ = ["choose_victim", "summarize_failover"]


def choose_victim(placement: Counter[tuple[str, str]], nodes: Sequence[str]) -> str:
    """The node with the fewest publishers, then the most subscribers, then the first.

    ``placement`` counts connections by (server id, role). A node without publishers keeps
    the measure about subscribers: the messages lost are the ones published while they
    were away, not ones that died in the killed node before reaching Redis.
    """
    if not nodes:
        raise ValueError("no node to kill")

    def key(node: str) -> tuple[int, int, int]:
        return (placement[(node, "publisher")], -placement[(node, "subscriber")], 0)

    return min(nodes, key=key)


def _ms(ns: int) -> float:
    return round(ns / 1e6, 1)


def _percentile(values: Sequence[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summarize_failover(
    recoveries: Sequence[Recovery],
    kill_ns: int,
    victim: str,
    placement: Counter[tuple[str, str]],
) -> dict[str, Any]:
    """The report's ``failover`` section (times in ms after the kill; None = not reached)."""
    subscribers = [r for r in recoveries if r.role == "subscriber"]
    receiving = [r.receiving_ns - kill_ns for r in subscribers if r.receiving_ns]
    back_in = [r.reopened_ns - kill_ns for r in recoveries if r.reopened_ns]
    cut = [r.cut_ns - kill_ns for r in recoveries]
    everyone = bool(subscribers) and len(receiving) == len(subscribers)

    def spread(values: Sequence[int]) -> dict[str, float | None]:
        if not values:
            return {"p50_ms": None, "p95_ms": None, "max_ms": None}
        return {
            "p50_ms": _ms(_percentile(values, 50)),
            "p95_ms": _ms(_percentile(values, 95)),
            "max_ms": _ms(max(values)),
        }

    return {
        "killed": victim,
        "on_killed_node": {
            "subscribers": placement[(victim, "subscriber")],
            "publishers": placement[(victim, "publisher")],
        },
        "cut": len(recoveries),
        "cut_elsewhere": sum(1 for r in recoveries if r.server_before != victim),
        "subscribers_cut": len(subscribers),
        "subscribers_resubscribed": sum(1 for r in subscribers if r.resubscribed_ns),
        "subscribers_receiving_again": len(receiving),
        "all_receiving_again_ms": _ms(max(receiving)) if everyone else None,
        "saw_the_cut": spread(cut),
        "back_in_through_the_gateway": spread(back_in),
        "receiving_again": spread(receiving),
        "reconnect_attempts": sum(r.attempts for r in recoveries),
        "resubscribed_with": "since"
        if any(r.since for r in subscribers)
        else "no position (at most once)",
        "recovered": sum(1 for r in subscribers if r.recovered),
        "moved_to": dict(Counter(r.server_after for r in recoveries if r.reopened_ns)),
    }
