"""The health monitor's verdicts and its check schedule."""

from __future__ import annotations

from wspool.gateway.model.health import CheckOutcome, HealthTracker


def test_a_node_goes_down_after_the_threshold_of_failed_checks_and_up_after_successes() -> None:
    tracker = HealthTracker(unhealthy_threshold=3, healthy_threshold=2)
    assert not tracker.record(CheckOutcome.FAILED)
    assert not tracker.record(CheckOutcome.FAILED)
    assert tracker.healthy
    assert tracker.record(CheckOutcome.FAILED)
    assert not tracker.healthy
    assert not tracker.record(CheckOutcome.OK)
    assert tracker.record(CheckOutcome.OK)
    assert tracker.healthy


def test_a_refused_connection_marks_the_node_down_at_once() -> None:
    tracker = HealthTracker(unhealthy_threshold=3)
    assert tracker.record(CheckOutcome.REFUSED)
    assert not tracker.healthy


def test_checks_come_quickly_after_a_failure_and_at_the_interval_otherwise() -> None:
    tracker = HealthTracker(interval=5.0, fast_interval=1.0)
    assert tracker.next_delay() == 5.0
    tracker.record(CheckOutcome.FAILED)
    assert tracker.next_delay() == 1.0
    tracker.record(CheckOutcome.OK)
    assert tracker.next_delay() == 5.0
