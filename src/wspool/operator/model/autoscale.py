"""How many server nodes a pool should run for its live connection count.

The rule, after Kubernetes' Horizontal Pod Autoscaler (its scale-down stabilization window
and scaling policies), with the drain of a WebSocket node in mind:

- the recommendation is ``ceil(connections / targetConnectionsPerNode)``, clamped to
  [minReplicas, maxReplicas] and never above :data:`MAX_NODES`;
- a node that runs but whose count was not read (its registration lapsed for a moment: a
  late heartbeat on a loaded node) counts as carrying its target when the recommendation
  would shed nodes, as the HPA counts a pod missing its metrics at 100 % of the target
  before it scales down, and as none when it would add nodes: a missed report never
  removes a node that is serving;
- scaling up follows the recommendation at once, by at most ``scaleUpStep`` nodes a decision;
- scaling down follows the *highest* recommendation of the last
  ``scaleDownStabilizationSeconds`` (a dip in traffic does not shed nodes that the next peak
  needs), one node at a time, and not before the node removed last has finished draining
  (``cooldown``: the pod's termination grace period), so only one node drains at a time and
  its clients have the remaining nodes to reconnect to.

Everything here is arithmetic on plain values; the operator feeds it the live count, the
Deployment's replica count and the history it keeps in the resource's status.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wspool.operator.model.poolspec import MAX_NODES, PoolSpec
from wspool.operator.model.poolstatus import format_time, parse_time

__all__ = [
    "Recommendation",
    "ScaleDecision",
    "ScalePolicy",
    "autoscaling_status",
    "decide_scale",
    "node_replicas",
    "read_autoscaling_status",
    "recommend",
]


@dataclass(frozen=True, slots=True)
class ScalePolicy:
    min_replicas: int = 1
    max_replicas: int = MAX_NODES
    target_per_node: int = 1000
    stabilization: float = 300.0
    """Seconds of recommendations a scale-down looks back over."""
    scale_up_step: int = 4
    cooldown: float = 30.0
    """Seconds after a scale-down before the next one: the removed node's drain."""

    @classmethod
    def of(cls, spec: PoolSpec, cooldown: float) -> ScalePolicy:
        return cls(
            min_replicas=spec.min_replicas,
            max_replicas=spec.max_replicas,
            target_per_node=spec.autoscaling.target_connections_per_node,
            stabilization=float(spec.autoscaling.scale_down_stabilization_seconds),
            scale_up_step=spec.autoscaling.scale_up_step,
            cooldown=cooldown,
        )


@dataclass(frozen=True, slots=True)
class Recommendation:
    at: float
    """Unix time of the recommendation."""
    replicas: int


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    replicas: int
    """The node count to run now (the current one when nothing changes)."""
    reason: str
    history: tuple[Recommendation, ...]
    """The recommendations to keep for the next decision."""

    def changes(self, current: int) -> bool:
        return self.replicas != current


def node_replicas(spec: PoolSpec, live: int | None) -> int:
    """The node count to render: the spec's, or under autoscaling the live one within bounds.

    Under autoscaling the autoscaler owns the count; re-rendering the live value keeps a
    reconcile (a spec edit, an operator restart) from undoing its last decision.
    """
    if not spec.autoscaling.enabled:
        return spec.replicas
    return spec.clamp(spec.replicas if live is None else live)


def recommend(connections: int, policy: ScalePolicy) -> int:
    """``ceil(connections / target)`` within [min, max] and never above ten."""
    wanted = math.ceil(max(0, connections) / max(1, policy.target_per_node))
    upper = min(policy.max_replicas, MAX_NODES)
    return max(min(policy.min_replicas, upper), min(upper, wanted))


def _window(
    history: Sequence[Recommendation], latest: Recommendation, now: float, span: float
) -> tuple[Recommendation, ...]:
    # Only the maximum over the window matters, so an entry followed by a higher or equal
    # one can never be that maximum again: keeping a decreasing run bounds the list.
    kept: list[Recommendation] = []
    for entry in (*history, latest):
        if now - entry.at > span or entry.at > now:
            continue
        while kept and kept[-1].replicas <= entry.replicas:
            kept.pop()
        kept.append(entry)
    return tuple(kept)


def _nodes(count: int) -> str:
    return f"{count} node" if count == 1 else f"{count} nodes"


def decide_scale(
    *,
    connections: int,
    current: int,
    policy: ScalePolicy,
    history: Sequence[Recommendation],
    last_scale_down: float | None,
    now: float,
    unreported: int = 0,
) -> ScaleDecision:
    """The node count for ``connections`` when ``current`` nodes run, at time ``now``;
    ``unreported`` of the running nodes are not in ``connections``.

    ``history`` is what the previous decision returned (empty the first time: the window
    then starts with the current count, so a fresh operator does not shed nodes at once).
    """
    upper = min(policy.max_replicas, MAX_NODES)
    lower = min(policy.min_replicas, upper)
    wanted = recommend(connections, policy)
    load = f"{connections} connections"
    if unreported > 0 and wanted < current:
        assumed = connections + unreported * policy.target_per_node
        wanted = min(current, recommend(assumed, policy))
        load += f" and {_nodes(unreported)} not reporting"
    seeded = history or (Recommendation(now, max(lower, min(upper, current))),)
    window = _window(seeded, Recommendation(now, wanted), now, policy.stabilization)
    if current > upper or current < lower:
        bounded = max(lower, min(upper, current))
        return ScaleDecision(bounded, f"outside {lower}..{upper} nodes", window)
    if wanted > current:
        target = min(wanted, current + max(1, policy.scale_up_step))
        return ScaleDecision(target, f"{load} want {_nodes(wanted)}: scaling up", window)
    stabilized = max(entry.replicas for entry in window)
    if stabilized >= current:
        if wanted < current:
            return ScaleDecision(
                current,
                f"{load} want {_nodes(wanted)}; holding {current} for the"
                f" {policy.stabilization:g} s stabilization window",
                window,
            )
        return ScaleDecision(current, f"{load}: {_nodes(current)} fit", window)
    if last_scale_down is not None and now - last_scale_down < policy.cooldown:
        return ScaleDecision(current, "waiting for the last removed node to drain", window)
    return ScaleDecision(
        current - 1,
        f"{load} want {_nodes(stabilized)}: removing one (it drains first)",
        window,
    )


def read_autoscaling_status(
    status: Mapping[str, Any],
) -> tuple[tuple[Recommendation, ...], float | None]:
    """The history and last scale-down time that ``status.autoscaling`` keeps."""
    section = status.get("autoscaling") or {}
    history = []
    for entry in section.get("recommendations") or []:
        at = parse_time(str(entry.get("time", "")))
        replicas = entry.get("replicas")
        if at is not None and isinstance(replicas, int):
            history.append(Recommendation(at, replicas))
    return tuple(history), parse_time(str(section.get("lastScaleDownTime", "")))


def autoscaling_status(
    decision: ScaleDecision, current: int, last_scale_down: float | None, now: float
) -> dict[str, Any]:
    """``status.autoscaling`` after ``decision`` (kept there so a restart resumes the window)."""
    if decision.replicas < current:
        last_scale_down = now
    section: dict[str, Any] = {
        "desiredReplicas": decision.replicas,
        "reason": decision.reason,
        "recommendations": [
            {"time": format_time(r.at), "replicas": r.replicas} for r in decision.history
        ],
    }
    if last_scale_down is not None:
        section["lastScaleDownTime"] = format_time(last_scale_down)
    if decision.replicas != current:
        section["lastScaleTime"] = format_time(now)
    return section
