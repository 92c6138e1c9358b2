"""The pooling strategies, exactly: which node each next connection goes to."""

from __future__ import annotations

import random
from collections import Counter

from wspool.gateway.model.strategies import (
    MIN_RAMP,
    Candidate,
    LeastConnectionsStrategy,
    RoundRobinStrategy,
    WeightedStrategy,
    slow_start_ramp,
)


def _picks(strategy: RoundRobinStrategy | WeightedStrategy, nodes: list[Candidate], n: int) -> str:
    chosen = [strategy.select(nodes) for _ in range(n)]
    return "".join(c.id if c else "-" for c in chosen)


def test_round_robin_takes_every_node_in_turn() -> None:
    nodes = [Candidate("a"), Candidate("b"), Candidate("c")]
    assert _picks(RoundRobinStrategy(), nodes, 7) == "abcabca"


def test_round_robin_continues_after_the_last_choice_when_a_node_leaves_or_joins() -> None:
    strategy = RoundRobinStrategy()
    assert _picks(strategy, [Candidate("a"), Candidate("b"), Candidate("c")], 2) == "ab"
    assert _picks(strategy, [Candidate("a"), Candidate("c")], 3) == "cac"
    assert _picks(strategy, [Candidate("a"), Candidate("b"), Candidate("c")], 3) == "abc"


def test_weighted_strategy_spreads_5_1_1_as_aabacaa() -> None:
    nodes = [Candidate("a", weight=5), Candidate("b", weight=1), Candidate("c", weight=1)]
    strategy = WeightedStrategy()
    assert _picks(strategy, nodes, 7) == "aabacaa"
    assert _picks(strategy, nodes, 7) == "aabacaa"


def test_weighted_strategy_gives_each_node_its_share_and_skips_weight_zero() -> None:
    nodes = [Candidate("a", weight=3), Candidate("b", weight=2), Candidate("c", weight=0)]
    counts = Counter(_picks(WeightedStrategy(), nodes, 500))
    assert counts == {"a": 300, "b": 200}


def test_least_connections_picks_the_lowest_load_per_weight() -> None:
    strategy = LeastConnectionsStrategy()
    nodes = [
        Candidate("a", weight=1, connections=4),
        Candidate("b", weight=3, connections=9),  # (9 + 1) / 3 = 3.3 < (4 + 1) / 1
        Candidate("c", weight=1, connections=5),
    ]
    chosen = strategy.select(nodes)
    assert chosen is not None
    assert chosen.id == "b"


def test_least_connections_breaks_ties_in_turn() -> None:
    strategy = LeastConnectionsStrategy()
    nodes = [Candidate("a"), Candidate("b"), Candidate("c")]
    assert "".join(c.id for c in (strategy.select(nodes) for _ in range(4)) if c) == "abca"


def test_least_connections_fills_an_empty_node_with_30_connections_evenly() -> None:
    strategy = LeastConnectionsStrategy()
    counts = {"a": 0, "b": 0, "c": 0}
    for _ in range(30):
        chosen = strategy.select([Candidate(i, connections=n) for i, n in counts.items()])
        assert chosen is not None
        counts[chosen.id] += 1
    assert counts == {"a": 10, "b": 10, "c": 10}


def test_two_choices_never_pick_the_most_loaded_of_three() -> None:
    strategy = LeastConnectionsStrategy(choices=2, rng=random.Random(7))
    nodes = [Candidate("a", connections=1), Candidate("b", connections=50), Candidate("c")]
    picks = Counter(c.id for c in (strategy.select(nodes) for _ in range(300)) if c)
    assert picks["b"] == 0
    assert picks["c"] > picks["a"] > 0  # c wins whenever sampled, a only when paired with b


def test_a_node_in_slow_start_takes_a_small_share_that_grows() -> None:
    strategy = LeastConnectionsStrategy()
    settled = [Candidate("a", connections=100), Candidate("b", connections=100)]
    fresh = Candidate("c", connections=0, ramp=slow_start_ramp(1.0, 10.0))
    chosen = strategy.select([*settled, fresh])
    assert chosen is not None
    assert chosen.id == "c"  # (0 + 1) / 0.1 = 10 < 101
    crowded = Candidate("c", connections=10, ramp=slow_start_ramp(1.0, 10.0))
    chosen = strategy.select([*settled, crowded])
    assert chosen is not None
    assert chosen.id != "c"  # 11 / 0.1 = 110 > 101: it waits for its ramp


def test_slow_start_ramp_rises_from_a_floor_to_full_over_the_window() -> None:
    assert slow_start_ramp(0.0, 10.0) == MIN_RAMP
    assert slow_start_ramp(5.0, 10.0) == 0.5
    assert slow_start_ramp(10.0, 10.0) == 1.0
    assert slow_start_ramp(3.0, 0.0) == 1.0


def test_no_candidate_means_no_choice() -> None:
    for strategy in (RoundRobinStrategy(), LeastConnectionsStrategy(), WeightedStrategy()):
        assert strategy.select([]) is None
