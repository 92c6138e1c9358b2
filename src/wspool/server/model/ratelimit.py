"""Rate limits as pure objects driven by timestamps: a token bucket, and the per-connection
message limiter built from two of them.

No clock is read here: callers pass ``now`` (seconds, monotonic), so the arithmetic is
tested exactly and the node decides which clock to use.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["MessageLimiter", "TokenBucket", "Verdict"]


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; starts full.

    A message costs one token. A full bucket lets ``burst`` messages through at once, then
    one every ``1 / rate`` seconds.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def tokens(self, now: float) -> float:
        """Tokens available at ``now``; time going backwards adds none."""
        elapsed = max(0.0, now - self._last)
        return min(self.burst, self._tokens + elapsed * self.rate)

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens if there are enough; returns whether it did."""
        self._tokens = self.tokens(now)
        self._last = max(self._last, now)
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def retry_after(self, now: float, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are available (0 when they already are)."""
        missing = cost - self.tokens(now)
        return max(0.0, missing / self.rate)


class Verdict(Enum):
    """What to do with one client message."""

    ACCEPT = "accept"
    REFUSE = "refuse"  # answer RATE_LIMITED, keep the connection
    CLOSE = "close"  # persistent abuse: close with 1008


class MessageLimiter:
    """Messages per second per connection, with a burst, and patience that runs out.

    Messages over the limit are refused; refusals drain a second bucket of the same rate
    and burst. A client that keeps sending past its limit (sustained, above twice its rate;
    or one burst of refusals at once) empties that one too and is closed.
    """

    __slots__ = ("_allowance", "_patience")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._allowance = TokenBucket(rate, burst, now)
        self._patience = TokenBucket(rate, burst, now)

    def check(self, now: float) -> Verdict:
        if self._allowance.take(now):
            return Verdict.ACCEPT
        if self._patience.take(now):
            return Verdict.REFUSE
        return Verdict.CLOSE

    def retry_after(self, now: float) -> float:
        return self._allowance.retry_after(now)
