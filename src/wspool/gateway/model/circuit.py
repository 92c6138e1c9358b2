"""A circuit breaker per server node, around opening connections to it.

The classic three states (Nygard, *Release It!*): **closed** lets every attempt through and
counts consecutive failures; at ``failure_threshold`` it **opens** and refuses attempts
for ``open_seconds``; then it is **half-open** and lets ``trial_connections`` attempts
through at a time; that many successes close it again, and any failure reopens it.

Time is passed in, never read, so the state machine is tested without a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["CircuitBreaker", "CircuitState"]


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass
class CircuitBreaker:
    failure_threshold: int = 3
    open_seconds: float = 5.0
    trial_connections: int = 1

    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    _trials_in_flight: int = 0
    _trial_successes: int = 0

    def current(self, now: float) -> CircuitState:
        """The state at ``now``: an open circuit turns half-open once its time is up."""
        if self.state is CircuitState.OPEN and now >= self.opened_at + self.open_seconds:
            self.state = CircuitState.HALF_OPEN
            self._trials_in_flight = 0
            self._trial_successes = 0
        return self.state

    def allows(self, now: float) -> bool:
        """Whether a new attempt may be routed here (without taking a trial slot)."""
        state = self.current(now)
        if state is CircuitState.HALF_OPEN:
            return self._trials_in_flight < self.trial_connections
        return state is CircuitState.CLOSED

    def begin(self, now: float) -> bool:
        """Take permission for one attempt; False when the circuit refuses it."""
        if not self.allows(now):
            return False
        if self.state is CircuitState.HALF_OPEN:
            self._trials_in_flight += 1
        return True

    def succeeded(self, now: float) -> None:
        if self.current(now) is CircuitState.HALF_OPEN:
            self._trials_in_flight = max(0, self._trials_in_flight - 1)
            self._trial_successes += 1
            if self._trial_successes >= self.trial_connections:
                self.state = CircuitState.CLOSED
        self.failures = 0

    def failed(self, now: float) -> None:
        state = self.current(now)
        self.failures += 1
        if state is CircuitState.HALF_OPEN or self.failures >= self.failure_threshold:
            self.trip(now)

    def trip(self, now: float) -> None:
        """Open now, whatever the count: the node is known to be unreachable."""
        self.state = CircuitState.OPEN
        self.opened_at = now
        self._trials_in_flight = 0
        self._trial_successes = 0
