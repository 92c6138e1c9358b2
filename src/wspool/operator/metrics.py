"""The operator's Prometheus metrics, and how they learn what the operator did.

- ``wspool_operator_reconciles_total{pool}`` and ``wspool_operator_reconcile_failures_total{pool}``:
  finished runs of the ``reconcile`` handler, and the failed ones (retried, or a spec the
  operator cannot use). Kopf reports a handler's outcome only as a record of its
  ``kopf.objects`` logger (its own Events are made from the same records), so
  :class:`HandlerOutcomes` counts those records.
- ``wspool_operator_desired_server_nodes{pool}``, ``..._current_server_nodes{pool}``,
  ``..._ready_server_nodes{pool}``: what the pool's status last said (``desiredReplicas``,
  ``replicas``, ``readyReplicas``); ``wspool_operator_scaling_decisions_total{pool,direction}``
  counts the changes of ``desiredReplicas`` the operator wrote (the autoscaler's, or a new
  ``spec.replicas``), ``direction`` ``up`` or ``down``. A Kopf event handler on the pools
  (:func:`watch_pools`) reads them from every change of a pool, including the operator's own
  status writes; a deleted pool's series go away.
- ``wspool_operator_leader``: 1 while this process acts (it holds the lease, or runs without
  leader election); a standby replica reports 0 and no pool.
- the standard ``process_*`` metrics.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Mapping
from typing import Any

import kopf
from prometheus_client import Counter, Gauge, ProcessCollector
from prometheus_client.registry import CollectorRegistry

from wspool.operator.model.manifests import API_GROUP, API_VERSION, PLURAL

__all__ = [
    "RECONCILE_HANDLER",
    "WATCH_HANDLER",
    "HandlerOutcomes",
    "OperatorMetrics",
    "watch_pools",
]

RECONCILE_HANDLER = "reconcile"
"""The id of the handlers that reconcile a pool (create, update, resume)."""
WATCH_HANDLER = "metrics"
"""The id of the event handler :func:`watch_pools` registers."""

_OUTCOME = re.compile(r"Handler '(?P<id>[^']+)' (?P<outcome>succeeded|failed)")


class OperatorMetrics:
    """The operator's series, in a registry of its own (served on ``--metrics-port``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "wspool_operator_reconciles",
            "Reconciles of a pool that finished, successful or not",
            ["pool"],
            registry=self.registry,
        )
        self.reconcile_failures = Counter(
            "wspool_operator_reconcile_failures",
            "Reconciles of a pool that failed (retried, or a spec the operator cannot use)",
            ["pool"],
            registry=self.registry,
        )
        self.scaling_decisions = Counter(
            "wspool_operator_scaling_decisions",
            "Changes of a pool's server node count that the operator made, by direction",
            ["pool", "direction"],
            registry=self.registry,
        )
        self.desired_nodes = self._gauge("desired", "Server nodes the pool should run")
        self.current_nodes = self._gauge("current", "Server node pods of the pool")
        self.ready_nodes = self._gauge("ready", "Ready server node pods of the pool")
        self.leader = Gauge(
            "wspool_operator_leader",
            "1 while this replica acts (holds the lease, or runs without election)",
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        self.leading = False
        self._desired: dict[str, int] = {}

    def set_leading(self, leading: bool) -> None:
        self.leading = leading
        self.leader.set(1 if leading else 0)

    def _gauge(self, which: str, doc: str) -> Gauge:
        name = f"wspool_operator_{which}_server_nodes"
        return Gauge(name, doc, ["pool"], registry=self.registry)

    def reconciled(self, pool: str, *, failed: bool) -> None:
        self.reconciles.labels(pool).inc()
        # A pool's failure series exists from its first reconcile on, at 0 until one fails,
        # so that a ratio of the two is defined.
        failures = self.reconcile_failures.labels(pool)
        if failed:
            failures.inc()

    def observe_status(self, pool: str, status: Mapping[str, Any]) -> None:
        """Take the node counts of a pool's status, counting a change of the desired one."""
        for gauge, key in (
            (self.current_nodes, "replicas"),
            (self.ready_nodes, "readyReplicas"),
        ):
            if _count(status.get(key)) is not None:
                gauge.labels(pool).set(status[key])
        desired = _count(status.get("desiredReplicas"))
        # 0: the node Deployment did not exist when the status was written.
        if not desired:
            return
        self.desired_nodes.labels(pool).set(desired)
        before = self._desired.get(pool)
        self._desired[pool] = desired
        if before is not None and before != desired:
            direction = "up" if desired > before else "down"
            self.scaling_decisions.labels(pool, direction).inc()

    def forget(self, pool: str) -> None:
        """Drop a deleted pool's series, so dashboards do not show it for ever."""
        self._desired.pop(pool, None)
        for gauge in (self.desired_nodes, self.current_nodes, self.ready_nodes):
            _remove(gauge, pool)
        for counter in (self.reconciles, self.reconcile_failures):
            _remove(counter, pool)
        for direction in ("up", "down"):
            _remove(self.scaling_decisions, pool, direction)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _remove(metric: Counter | Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never had that series
        metric.remove(*labels)


def _pool(reference: Any) -> str | None:
    if isinstance(reference, Mapping) and reference.get("name"):
        return f"{reference.get('namespace', '')}/{reference['name']}"
    return None


class HandlerOutcomes(logging.Handler):
    """Counts the outcomes Kopf logs for the ``reconcile`` handler of each pool.

    Attach it to the ``kopf.objects`` logger, with that logger at INFO at least (successes
    are INFO records).
    """

    def __init__(self, metrics: OperatorMetrics) -> None:
        super().__init__(logging.INFO)
        self.metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        matched = _OUTCOME.match(str(record.msg))
        pool = _pool(record.__dict__.get("k8s_ref"))
        if matched is None or pool is None or matched["id"] != RECONCILE_HANDLER:
            return
        self.metrics.reconciled(pool, failed=matched["outcome"] == "failed")


def watch_pools(registry: kopf.OperatorRegistry, metrics: OperatorMetrics) -> None:
    """Register an event handler that feeds the node gauges from every change of a pool."""

    @kopf.on.event(API_GROUP, API_VERSION, PLURAL, id=WATCH_HANDLER, registry=registry)
    def observe(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        metadata = body.get("metadata") or {}
        pool = f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"
        if event.get("type") == "DELETED":
            metrics.forget(pool)
            return
        metrics.observe_status(pool, body.get("status") or {})
