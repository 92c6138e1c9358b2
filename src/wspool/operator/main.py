"""``wspool operator``: run the Kopf operator until SIGTERM or SIGINT.

Alone (the default), it acts at once. With ``--leader-election`` it first waits for the
Lease (:mod:`wspool.operator.election`), runs Kopf while it holds it, and releases it on a
clean stop; losing it stops Kopf and exits with status 1, for Kubernetes to restart the
process as a standby. ``/healthz`` and ``/metrics`` (:mod:`wspool.operator.endpoints`) answer
throughout.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import signal
import uuid

import kopf
from kopf._core.engines import peering

from wspool.operator.election import LeaseLock
from wspool.operator.endpoints import Endpoints
from wspool.operator.handlers import build_registry
from wspool.operator.kube import connect
from wspool.operator.metrics import WATCH_HANDLER, HandlerOutcomes, OperatorMetrics, watch_pools
from wspool.operator.model.settings import OperatorSettings
from wspool.tasks import cancel_and_wait

__all__ = ["KopfLogContext", "run_operator"]

log = logging.getLogger(__name__)

_QUIET_SUCCESSES = ("Timer ", f"Handler '{WATCH_HANDLER}'")
"""Kopf logs each success of these at INFO, once per pool per sync or per status write."""


class KopfLogContext(logging.Filter):
    """Fit Kopf's records to our structured logs.

    Kopf attaches its whole settings object and the object reference to every record of a
    resource; the formatters would print all of it. Keep the reference as ``pool=ns/name``,
    and drop the lines Kopf logs each time a timer or the metrics handler succeeds.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        context = record.__dict__
        context.pop("settings", None)
        context.pop("k8s_skip", None)
        ref = context.pop("k8s_ref", None)
        if isinstance(ref, dict) and ref.get("name"):
            record.pool = f"{ref.get('namespace', '')}/{ref['name']}"
        message = str(record.msg)
        return not (
            record.levelno <= logging.INFO
            and message.startswith(_QUIET_SUCCESSES)
            and message.endswith("succeeded.")
        )


def _fit_logs(metrics: OperatorMetrics) -> None:
    root = logging.getLogger()
    for handler in root.handlers:
        handler.addFilter(KopfLogContext())
        # Kopf's outcome records are INFO: let them be made whatever the level, for the
        # counters, while the output keeps the level asked for.
        if handler.level < root.level:
            handler.setLevel(root.level)
    objects = logging.getLogger("kopf.objects")
    objects.addHandler(HandlerOutcomes(metrics))
    if objects.getEffectiveLevel() > logging.INFO:
        objects.setLevel(logging.INFO)


async def run_operator(settings: OperatorSettings) -> None:
    """Reconcile the pools of ``settings.namespaces`` (or of every namespace) until stopped."""
    metrics = OperatorMetrics()
    _fit_logs(metrics)
    endpoints = Endpoints(
        health_port=settings.health_port,
        metrics_port=settings.metrics_port,
        registry=metrics.registry,
        leading=lambda: metrics.leading,
    )
    await endpoints.start()
    try:
        if settings.leader_election:
            await _run_elected(settings, metrics)
        else:
            await _run_kopf(settings, metrics, asyncio.Event())
    finally:
        await endpoints.stop()


def _identity() -> str:
    """This replica's name: the pod's host name, and a suffix for restarts."""
    return f"{platform.node() or 'operator'}-{uuid.uuid4().hex[:6]}"


async def _run_kopf(
    settings: OperatorSettings, metrics: OperatorMetrics, stop: asyncio.Event
) -> None:
    registry = build_registry(settings)
    watch_pools(registry, metrics)
    scope = ", ".join(settings.namespaces) or "every namespace"
    log.info("reconciling WebSocketPools in %s, syncing every %g s", scope, settings.sync_interval)
    metrics.set_leading(True)
    try:
        # Standalone: Kopf's peering would pause every replica of equal priority; the
        # Lease decides who acts instead.
        await kopf.operator(
            registry=registry,
            standalone=True,
            # Kopf would name itself after the user (getpass), and the image runs as a
            # numeric uid that /etc/passwd need not know (any uid, on some platforms).
            identity=peering.Identity(_identity()),
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            stop_flag=stop,
        )
    finally:
        metrics.set_leading(False)


async def _run_elected(settings: OperatorSettings, metrics: OperatorMetrics) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Until Kopf starts (and installs its own handlers), a standby stops on these.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    identity = _identity()
    kube = await connect()
    lease = LeaseLock(
        kube, settings.lease_namespace, settings.lease_name, identity, settings.lease_duration
    )
    lost = asyncio.Event()
    try:
        log.info("waiting for lease %s/%s as %s", lease.namespace, lease.name, identity)
        if not await lease.acquire(stop):
            return
        keeper = asyncio.create_task(lease.keep(lost), name="lease-keeper")
        keeper.add_done_callback(lambda _: stop.set() if lost.is_set() else None)
        try:
            await _run_kopf(settings, metrics, stop)
        finally:
            await cancel_and_wait(keeper)
        if lost.is_set():
            raise SystemExit("wspool operator: lost the lease; exiting to stand by again")
        await lease.release()
    finally:
        await kube.close()
