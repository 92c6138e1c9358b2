"""Pooling strategies: which server node gets the next connection.

Each strategy is a small stateful object over plain data: the pool manager hands it the
nodes that may take a connection right now (healthy, circuit not open, not draining, in a
stable order) and it names one. Nothing here does I/O, so every rule is tested exactly.

- :class:`RoundRobinStrategy` takes the nodes in turn, continuing after the node it chose
  last, so a node joining or leaving does not reset the rotation.
- :class:`LeastConnectionsStrategy` picks the lowest ``(connections + 1) / weight``; with
  several gateway replicas reading slightly stale counts it samples two candidates and
  takes the better (the power of two choices, Mitzenmacher 2001), so replicas do not all
  pile onto the node that looked emptiest a moment ago.
- :class:`WeightedStrategy` is nginx's smooth weighted round-robin: weights 5, 1, 1 give
  ``a a b a c a a``, interleaved rather than in bursts.

Slow start (:func:`slow_start_ramp`) scales a node's weight while it ramps up after joining
or recovering, so least-connections does not send it every new connection at once.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from wspool.core.poolconfig import StrategyName

__all__ = [
    "MIN_RAMP",
    "Candidate",
    "LeastConnectionsStrategy",
    "RoundRobinStrategy",
    "Strategy",
    "WeightedStrategy",
    "create_strategy",
    "slow_start_ramp",
]

MIN_RAMP = 0.1
"""The share a node starts with during slow start: small, but enough to be reached."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A node that may take a connection, as a strategy sees it."""

    id: str
    weight: int = 1
    connections: int = 0
    ramp: float = 1.0
    """Slow-start factor in ``[MIN_RAMP, 1]``; 1 once the node has fully ramped up."""

    @property
    def effective_weight(self) -> float:
        return max(self.weight, 0) * self.ramp


class Strategy(Protocol):
    """Names the node for the next connection, or None when there is no candidate."""

    name: StrategyName

    def select(self, candidates: Sequence[Candidate]) -> Candidate | None: ...


def slow_start_ramp(elapsed: float, window: float) -> float:
    """The slow-start factor of a node that joined or recovered ``elapsed`` seconds ago."""
    if window <= 0 or elapsed >= window:
        return 1.0
    return max(MIN_RAMP, elapsed / window)


def _id(candidate: Candidate) -> str:
    return candidate.id


def _after(candidates: Sequence[Candidate], last: str | None) -> int:
    """Index of the first candidate whose id sorts after ``last`` (wrapping to 0)."""
    if last is not None:
        for index, candidate in enumerate(candidates):
            if candidate.id > last:
                return index
    return 0


class RoundRobinStrategy:
    """Every node in turn, in id order."""

    name = StrategyName.ROUND_ROBIN

    def __init__(self) -> None:
        self._last: str | None = None

    def select(self, candidates: Sequence[Candidate]) -> Candidate | None:
        if not candidates:
            return None
        ordered = sorted(candidates, key=lambda c: c.id)
        chosen = ordered[_after(ordered, self._last)]
        self._last = chosen.id
        return chosen


class LeastConnectionsStrategy:
    """The node with the fewest connections per unit of weight; ties taken in turn.

    ``choices=None`` scans every candidate (exact when one gateway holds fresh counts);
    ``choices=2`` samples two and keeps the better, for several replicas with stale counts.
    """

    name = StrategyName.LEAST_CONNECTIONS

    def __init__(self, choices: int | None = None, rng: random.Random | None = None) -> None:
        self.choices = choices
        self._rng = rng or random.Random()
        self._last: str | None = None

    @staticmethod
    def load(candidate: Candidate) -> float:
        """Connections per weight after taking one more; weight 0 never wins."""
        weight = candidate.effective_weight
        return float("inf") if weight <= 0 else (candidate.connections + 1) / weight

    def select(self, candidates: Sequence[Candidate]) -> Candidate | None:
        pool = [c for c in candidates if c.effective_weight > 0]
        if self.choices is not None and len(pool) > self.choices:
            pool = self._rng.sample(sorted(pool, key=_id), self.choices)
        best = math.inf
        tied: list[Candidate] = []
        for candidate in pool:
            load = self.load(candidate)
            if load < best:
                best, tied = load, [candidate]
            elif load == best:
                tied.append(candidate)
        if not tied:
            return None
        if len(tied) > 1:
            tied.sort(key=_id)
        chosen = tied[_after(tied, self._last)]
        self._last = chosen.id
        return chosen


class WeightedStrategy:
    """nginx's smooth weighted round-robin (``ngx_http_upstream_get_peer``).

    Each pick adds every candidate's weight to its running score, takes the highest score,
    and subtracts the total weight from the winner: over a cycle each node is chosen in
    proportion to its weight, spread out rather than in runs.
    """

    name = StrategyName.WEIGHTED

    def __init__(self) -> None:
        self._current: dict[str, float] = {}

    def select(self, candidates: Sequence[Candidate]) -> Candidate | None:
        pool = [c for c in sorted(candidates, key=lambda c: c.id) if c.effective_weight > 0]
        if not pool:
            return None
        present = {c.id for c in pool}
        for gone in self._current.keys() - present:
            del self._current[gone]
        total = 0.0
        best: Candidate | None = None
        for candidate in pool:
            weight = candidate.effective_weight
            score = self._current.get(candidate.id, 0.0) + weight
            self._current[candidate.id] = score
            total += weight
            if best is None or score > self._current[best.id]:
                best = candidate
        assert best is not None
        self._current[best.id] -= total
        return best


def create_strategy(name: StrategyName, *, replicas: int = 1) -> Strategy:
    """The strategy called ``name``; least-connections samples when replicas share the pool."""
    match name:
        case StrategyName.ROUND_ROBIN:
            return RoundRobinStrategy()
        case StrategyName.LEAST_CONNECTIONS:
            return LeastConnectionsStrategy(choices=2 if replicas > 1 else None)
        case StrategyName.WEIGHTED:
            return WeightedStrategy()
