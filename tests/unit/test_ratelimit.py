"""Token buckets and the message limiter, on exact timestamps."""

from __future__ import annotations

import pytest

from wspool.server.model.ratelimit import MessageLimiter, TokenBucket, Verdict


def test_a_full_bucket_lets_a_burst_through_then_one_per_interval() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(100.49)
    assert bucket.take(100.5)
    assert not bucket.take(100.5)
    assert bucket.retry_after(100.5) == pytest.approx(0.5)


def test_the_bucket_never_holds_more_than_its_burst() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    assert bucket.tokens(1000.0) == 5
    assert sum(bucket.take(1000.0) for _ in range(10)) == 5


def test_time_going_backwards_adds_no_tokens() -> None:
    bucket = TokenBucket(rate=1, burst=1, now=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)
    assert not bucket.take(10.5)
    assert bucket.take(11.0)


def test_a_bucket_needs_a_rate_and_a_burst() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=0, burst=1, now=0)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(rate=1, burst=0, now=0)


def test_the_limiter_accepts_burst_refuses_burst_more_then_closes() -> None:
    limiter = MessageLimiter(rate=10, burst=4, now=0.0)
    verdicts = [limiter.check(0.0) for _ in range(9)]
    assert verdicts == [Verdict.ACCEPT] * 4 + [Verdict.REFUSE] * 4 + [Verdict.CLOSE]


def test_a_client_at_its_rate_is_never_refused() -> None:
    limiter = MessageLimiter(rate=8, burst=1, now=0.0)  # 1/8 s: exact in binary
    assert all(limiter.check(i / 8) is Verdict.ACCEPT for i in range(1000))


def test_a_client_at_one_and_a_half_times_its_rate_is_refused_but_not_closed() -> None:
    limiter = MessageLimiter(rate=10, burst=5, now=0.0)
    verdicts = [limiter.check(i / 15) for i in range(1500)]
    assert Verdict.CLOSE not in verdicts
    assert verdicts.count(Verdict.REFUSE) == pytest.approx(500, abs=10)


def test_a_client_at_three_times_its_rate_is_closed_within_seconds() -> None:
    limiter = MessageLimiter(rate=10, burst=5, now=0.0)
    verdicts = [limiter.check(i / 30) for i in range(300)]
    assert Verdict.CLOSE in verdicts
    assert verdicts.index(Verdict.CLOSE) < 60
