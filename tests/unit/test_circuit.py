"""The circuit breaker's states, driven by explicit times."""

from __future__ import annotations

from wspool.gateway.model.circuit import CircuitBreaker, CircuitState


def test_consecutive_failures_open_the_circuit_and_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(failure_threshold=3, open_seconds=5.0)
    breaker.failed(0.0)
    breaker.failed(0.1)
    breaker.succeeded(0.2)
    breaker.failed(0.3)
    breaker.failed(0.4)
    assert breaker.current(0.4) is CircuitState.CLOSED
    breaker.failed(0.5)
    assert breaker.current(0.5) is CircuitState.OPEN
    assert not breaker.begin(4.0)


def test_an_open_circuit_lets_one_trial_through_after_its_time() -> None:
    breaker = CircuitBreaker(failure_threshold=1, open_seconds=5.0, trial_connections=1)
    breaker.failed(10.0)
    assert not breaker.allows(14.9)
    assert breaker.begin(15.0)
    assert breaker.current(15.0) is CircuitState.HALF_OPEN
    assert not breaker.begin(15.1)  # one trial at a time
    breaker.succeeded(15.2)
    assert breaker.current(15.2) is CircuitState.CLOSED
    assert breaker.begin(15.3)


def test_a_failed_trial_reopens_the_circuit_for_another_period() -> None:
    breaker = CircuitBreaker(failure_threshold=1, open_seconds=5.0)
    breaker.failed(0.0)
    assert breaker.begin(5.0)
    breaker.failed(5.5)
    assert breaker.current(9.0) is CircuitState.OPEN
    assert breaker.current(10.5) is CircuitState.HALF_OPEN


def test_trip_opens_at_once_whatever_the_count() -> None:
    breaker = CircuitBreaker(failure_threshold=10)
    breaker.trip(1.0)
    assert breaker.current(1.0) is CircuitState.OPEN
