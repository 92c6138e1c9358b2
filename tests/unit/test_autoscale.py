"""The autoscaling rule, on exact numbers and timestamps."""

from __future__ import annotations

import pytest

from wspool.operator.model.autoscale import (
    Recommendation,
    ScaleDecision,
    ScalePolicy,
    autoscaling_status,
    decide_scale,
    node_replicas,
    read_autoscaling_status,
    recommend,
)
from wspool.operator.model.poolspec import parse_pool_spec

POLICY = ScalePolicy(
    min_replicas=1,
    max_replicas=10,
    target_per_node=1000,
    stabilization=300.0,
    scale_up_step=4,
    cooldown=22.0,
)


def _decide(
    connections: int,
    current: int,
    history: tuple[Recommendation, ...] = (),
    *,
    now: float = 10_000.0,
    last_scale_down: float | None = None,
    policy: ScalePolicy = POLICY,
    unreported: int = 0,
) -> ScaleDecision:
    return decide_scale(
        connections=connections,
        current=current,
        policy=policy,
        history=history,
        last_scale_down=last_scale_down,
        now=now,
        unreported=unreported,
    )


@pytest.mark.parametrize(
    ("connections", "nodes"),
    [(0, 1), (1, 1), (1000, 1), (1001, 2), (4500, 5), (10_000, 10), (25_000, 10), (-5, 1)],
)
def test_recommendation_is_connections_over_target_rounded_up_within_1_to_10(
    connections: int, nodes: int
) -> None:
    assert recommend(connections, POLICY) == nodes


def test_recommendation_respects_the_pools_own_bounds_and_never_exceeds_ten() -> None:
    narrow = ScalePolicy(min_replicas=2, max_replicas=4, target_per_node=100)
    wide = ScalePolicy(min_replicas=1, max_replicas=50, target_per_node=1)

    assert recommend(0, narrow) == 2
    assert recommend(10_000, narrow) == 4
    assert recommend(10_000, wide) == 10


def test_scaling_up_follows_the_load_at_once_but_by_at_most_the_step() -> None:
    assert _decide(4500, 3).replicas == 5
    assert _decide(9500, 3).replicas == 7
    assert _decide(9500, 7).replicas == 10


def test_a_node_that_did_not_report_counts_at_its_target_before_nodes_are_removed() -> None:
    eager = ScalePolicy(max_replicas=10, target_per_node=1000, stabilization=0, cooldown=0)
    before = (Recommendation(9_000.0, 10),)
    # 10 nodes run; 9 reported 8,550 connections, the tenth's registration had lapsed.
    assert _decide(8550, 10, before, policy=eager).replicas == 9
    held = _decide(8550, 10, before, policy=eager, unreported=1)
    assert held.replicas == 10
    assert "1 node not reporting" in held.reason
    # Counted at its target, the load still fits fewer nodes: one goes.
    assert _decide(7000, 10, before, policy=eager, unreported=1).replicas == 9


def test_a_node_that_did_not_report_adds_nothing_to_a_scale_up() -> None:
    assert _decide(9500, 8, unreported=1).replicas == 10
    assert _decide(7500, 7, unreported=2).replicas == 8


def test_a_dip_within_the_stabilization_window_keeps_the_nodes() -> None:
    busy = (Recommendation(9_900.0, 5),)  # 100 s ago the pool needed five nodes

    decision = _decide(500, 5, busy)

    assert decision.replicas == 5
    assert "stabilization" in decision.reason


def test_after_the_window_the_pool_sheds_one_node_per_decision() -> None:
    old = (Recommendation(9_600.0, 5),)  # 400 s ago: outside the 300 s window

    decision = _decide(500, 5, old)

    assert decision.replicas == 4
    assert "drains first" in decision.reason


def test_the_next_node_goes_only_after_the_last_one_had_its_drain_time() -> None:
    quiet = (Recommendation(9_000.0, 1),)

    waiting = _decide(0, 4, quiet, last_scale_down=9_990.0)
    going = _decide(0, 4, quiet, last_scale_down=9_970.0)

    assert waiting.replicas == 4
    assert waiting.reason == "waiting for the last removed node to drain"
    assert going.replicas == 3


def test_a_fresh_history_starts_the_window_now_so_nothing_is_shed_at_once() -> None:
    first = _decide(0, 6)
    later = _decide(0, 6, first.history, now=10_301.0)

    assert first.replicas == 6
    assert later.replicas == 5


def test_the_history_keeps_only_entries_that_can_still_be_the_windows_maximum() -> None:
    history = (
        Recommendation(9_500.0, 9),  # outside the window
        Recommendation(9_800.0, 3),  # beaten by the later 4
        Recommendation(9_900.0, 4),
        Recommendation(9_950.0, 2),
    )

    decision = _decide(1500, 4, history)

    assert decision.history == (Recommendation(9_900.0, 4), Recommendation(10_000.0, 2))


def test_a_count_outside_the_bounds_is_brought_back_within_them() -> None:
    narrow = ScalePolicy(min_replicas=2, max_replicas=4, target_per_node=100)

    assert _decide(0, 1, policy=narrow).replicas == 2
    assert _decide(0, 12, policy=narrow).replicas == 4


def test_the_status_section_round_trips_history_and_the_last_scale_down() -> None:
    decision = _decide(0, 4, (Recommendation(9_000.0, 1),), last_scale_down=9_000.0)
    section = autoscaling_status(decision, 4, 9_000.0, 10_000.0)

    history, last = read_autoscaling_status({"autoscaling": section})

    assert decision.replicas == 3
    assert section["lastScaleDownTime"] == "1970-01-01T02:46:40Z"
    assert section["lastScaleTime"] == "1970-01-01T02:46:40Z"
    assert last == 10_000.0
    assert history == decision.history


def test_nodes_to_render_are_the_spec_without_autoscaling_and_the_live_count_with_it() -> None:
    base = {"redis": {"url": "redis://r"}, "auth": {"insecure": True}, "replicas": 3}
    fixed = parse_pool_spec({**base, "autoscaling": {"enabled": False}})
    scaled = parse_pool_spec({**base, "minReplicas": 2, "maxReplicas": 6})

    assert node_replicas(fixed, 7) == 3
    assert node_replicas(scaled, None) == 3
    assert node_replicas(scaled, 5) == 5
    assert node_replicas(scaled, 9) == 6
