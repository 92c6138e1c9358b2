"""Retry delays: exponential backoff with full jitter, as a pure object.

Every loop that tries again after a failure waits as this says: the client reconnecting,
a node's state writer, its publisher resending an unanswered batch, the Redis pub/sub link
re-establishing itself, the benchmark's clients. Each asks for the next delay and sleeps it;
the arithmetic lives here so it is tested without a loop or a socket. Full jitter (a uniform
delay between zero and the exponential ceiling, AWS Architecture Blog, "Exponential Backoff
And Jitter") spreads the clients of a failed node, or the nodes of a failed Redis, over the
window, so they do not return in one wave.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(slots=True)
class Backoff:
    """Delays of ``base * 2**attempt`` seconds, capped at ``cap``, drawn with full jitter.

    ``failures`` counts the attempts since the last success; :meth:`reset` clears it.
    """

    base: float = 0.1
    cap: float = 5.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError("backoff needs 0 < base <= cap")

    def ceiling(self, attempt: int) -> float:
        """The largest delay of the given (0-based) attempt."""
        # Exponents past 64 would overflow nothing but the cap is long reached by then.
        return min(self.cap, self.base * 2.0 ** min(attempt, 64))

    def next_delay(self) -> float:
        """The delay before the next attempt; counts one more failure."""
        delay = self.rng.uniform(0.0, self.ceiling(self.failures))
        self.failures += 1
        return delay

    def reset(self) -> None:
        """After a success: the next failure starts again from ``base``."""
        self.failures = 0
