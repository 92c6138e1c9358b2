"""Reconnect backoff: exponential ceilings, full jitter, reset after success."""

from __future__ import annotations

import random

import pytest

from wspool.core.backoff import Backoff


def test_ceilings_double_from_base_up_to_the_cap() -> None:
    backoff = Backoff(base=0.1, cap=1.0)
    assert [backoff.ceiling(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert backoff.ceiling(10_000) == 1.0


def test_delays_are_drawn_between_zero_and_the_ceiling_of_each_attempt() -> None:
    backoff = Backoff(base=0.1, cap=2.0, rng=random.Random(7))
    for attempt in range(12):
        assert 0.0 <= backoff.next_delay() <= backoff.ceiling(attempt)
    assert backoff.failures == 12


def test_jitter_spreads_many_clients_over_the_window() -> None:
    delays = [
        Backoff(base=1.0, cap=1.0, rng=random.Random(seed)).next_delay() for seed in range(200)
    ]
    # Full jitter: about uniform on [0, 1], so every tenth of the window gets some clients.
    assert {int(d * 10) for d in delays} == set(range(10))


def test_a_success_resets_the_delays_to_the_base() -> None:
    backoff = Backoff(base=0.1, cap=5.0, rng=random.Random(1))
    for _ in range(8):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_a_base_above_the_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="base"):
        Backoff(base=2.0, cap=1.0)
