"""What a worker process counts and reports back to the parent: pure records.

:class:`Progress` is the snapshot a worker sends every half second for the progress line;
:class:`WorkerResult` is everything it saw, sent once at the end and added up by the
parent (:func:`wspool.bench.report.merge_results`); :class:`Recovery` is one connection cut
under load and its way back (the ``failover`` scenario).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from wspool.bench.histogram import LatencyHistogram

__all__ = ["Progress", "Recovery", "WorkerResult"]


@dataclass(slots=True)
class Recovery:
    """One connection cut under load, and its way back (monotonic ns; 0 = never)."""

    role: str
    server_before: str
    cut_ns: int
    attempts: int = 0
    server_after: str = ""
    reopened_ns: int = 0
    resubscribed_ns: int = 0
    receiving_ns: int = 0  # first delivery after resubscribing (subscribers only)
    since: str = ""  # the position resubscribed from ("" = at most once)
    recovered: bool | None = None  # the node's answer to since


@dataclass(frozen=True, slots=True)
class Progress:
    opened: int = 0
    failed: int = 0
    sent: int = 0
    received: int = 0
    lost: int = 0


@dataclass
class WorkerResult:
    """What one worker saw; the parent adds these up."""

    opened: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    setup: LatencyHistogram = field(default_factory=LatencyHistogram)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    schedule_lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    sent_per_channel: Counter[str] = field(default_factory=Counter)
    received: int = 0
    echoed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    close_codes: Counter[int] = field(default_factory=Counter)
    last_delivery_ns: int = 0
    recoveries: list[Recovery] = field(default_factory=list)
    gaps: int = 0  # messages skipped, by offset (subscribers tracked in failover)
    duplicates: int = 0  # messages heard twice, by offset
    subscribed: int = 0  # subscribe-storm: subscribes the server took
    refused: Counter[str] = field(default_factory=Counter)  # and those it did not, by reason
    subscribe: LatencyHistogram = field(default_factory=LatencyHistogram)  # request → answer
    last_subscribed_ns: int = 0
