"""Spreading a draining node's closes over its window."""

from __future__ import annotations

from wspool.server.model.drain import drain_schedule


def test_closes_are_spread_evenly_from_now_to_the_end_of_the_window() -> None:
    assert drain_schedule(5, 10.0) == [0.0, 2.5, 5.0, 7.5, 10.0]


def test_no_connections_means_nothing_to_schedule() -> None:
    assert drain_schedule(0, 10.0) == []


def test_a_single_connection_closes_at_once() -> None:
    assert drain_schedule(1, 10.0) == [0.0]


def test_a_zero_window_closes_everything_at_once() -> None:
    assert drain_schedule(3, 0.0) == [0.0, 0.0, 0.0]
