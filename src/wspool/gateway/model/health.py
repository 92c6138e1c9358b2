"""What the health monitor concludes from a node's checks, and when it checks next.

A node is marked down after ``unhealthy_threshold`` consecutive failed checks and up again
after ``healthy_threshold`` consecutive good ones. A refused connection (nothing listens on
the port) is conclusive and marks it down at once. After a first failure the node is
re-checked every ``fast_interval`` instead of waiting a full ``interval``, so a dead node
is out in about a second while a healthy one costs one request per interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["CheckOutcome", "HealthTracker"]


class CheckOutcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    """No answer in time, an error status, a broken connection."""
    REFUSED = "refused"
    """The connection was refused: the process is gone."""


@dataclass
class HealthTracker:
    unhealthy_threshold: int = 3
    healthy_threshold: int = 2
    interval: float = 5.0
    fast_interval: float = 1.0

    healthy: bool = True
    failures: int = 0
    successes: int = 0

    def record(self, outcome: CheckOutcome) -> bool:
        """Take one check's outcome; returns True when ``healthy`` changed."""
        was = self.healthy
        if outcome is CheckOutcome.OK:
            self.failures = 0
            self.successes += 1
            if not self.healthy and self.successes >= self.healthy_threshold:
                self.healthy = True
        else:
            self.successes = 0
            self.failures += 1
            if outcome is CheckOutcome.REFUSED or self.failures >= self.unhealthy_threshold:
                self.healthy = False
        return self.healthy != was

    def next_delay(self) -> float:
        """Seconds until the next check: quick while in doubt, a full interval otherwise."""
        if self.failures or not self.healthy:
            return min(self.fast_interval, self.interval)
        return self.interval
