"""A latency histogram with 1 % relative precision that merges across processes.

Every worker process records its samples into one of these and sends it to the parent,
which adds them up; percentiles come from the merged counts. Buckets grow geometrically
(the idea of HdrHistogram, much simplified): a value is kept as the bucket it falls in,
so memory does not grow with the number of samples and a reported percentile is within
about 1 % of the exact one.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["LatencyHistogram"]

_GROWTH = 1.02
"""Bucket i covers [GROWTH**i, GROWTH**(i+1)) microseconds; the midpoint is within 1 %."""
_SCALE = 1 / math.log(_GROWTH)


@dataclass
class LatencyHistogram:
    """Counts of durations in geometric buckets; durations are recorded in nanoseconds."""

    buckets: Counter[int] = field(default_factory=Counter)
    count: int = 0
    total_ns: int = 0
    min_ns: int = 0
    max_ns: int = 0

    def record_ns(self, value: int) -> None:
        # Below 1 µs everything shares bucket 0: nothing on a WebSocket round trip is faster.
        micros = value / 1000
        index = int(math.log(micros) * _SCALE) if micros > 1 else 0
        self.buckets[index] += 1
        if self.count == 0 or value < self.min_ns:
            self.min_ns = value
        self.max_ns = max(self.max_ns, value)
        self.count += 1
        self.total_ns += value

    def merge(self, other: LatencyHistogram) -> None:
        if other.count == 0:
            return
        if self.count == 0 or other.min_ns < self.min_ns:
            self.min_ns = other.min_ns
        self.max_ns = max(self.max_ns, other.max_ns)
        self.buckets.update(other.buckets)
        self.count += other.count
        self.total_ns += other.total_ns

    def percentile_ms(self, q: float) -> float | None:
        """The q-th percentile (0 < q <= 100) in milliseconds, or None without samples."""
        if not 0 < q <= 100:
            raise ValueError("percentile must be in (0, 100]")
        if self.count == 0:
            return None
        rank = math.ceil(q / 100 * self.count)
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                micros = _GROWTH ** (index + 0.5) if index else 1.0
                # The bucket's midpoint may lie outside what was seen; the extremes are exact.
                nanos = min(max(micros * 1000, self.min_ns), self.max_ns)
                return nanos / 1e6
        return self.max_ns / 1e6  # unreachable: the ranks add up to count

    def mean_ms(self) -> float | None:
        return self.total_ns / self.count / 1e6 if self.count else None

    def summary(self) -> dict[str, float | int | None]:
        """count, mean, p50, p95, p99 and max in milliseconds, for reports."""
        return {
            "count": self.count,
            "mean_ms": _rounded(self.mean_ms()),
            "p50_ms": _rounded(self.percentile_ms(50)),
            "p95_ms": _rounded(self.percentile_ms(95)),
            "p99_ms": _rounded(self.percentile_ms(99)),
            "max_ms": _rounded(self.max_ns / 1e6 if self.count else None),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
