"""The Kopf handlers: thin adapters from Kopf's events to :mod:`wspool.operator.reconcile`.

Each handler parses the resource once into a :class:`Pool` and calls one plain function.
A spec the operator cannot use is a permanent error (the status and an ``InvalidSpec`` event
say which field); anything else (the API server or Redis away) is retried by Kopf with a
delay, and the status and a ``ReconcileFailed`` event say why meanwhile, in one line.
Deleting a pool runs :func:`wspool.operator.cleanup.forget_pool` from Kopf's finalizer.
No handler returns a value: Kopf would store it in ``status``, which the CRD's structural
schema prunes. Kopf keeps its own bookkeeping in ``realtime.acc.io/`` annotations
for the same reason.

The registry is built per process from the settings (the sync interval is a handler option),
rather than filled by module-level decorators.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

import kopf

from wspool.operator.autoscaler import sync_pool
from wspool.operator.cleanup import forget_pool
from wspool.operator.events import describe
from wspool.operator.kube import Kube, connect
from wspool.operator.model.manifests import API_GROUP, API_VERSION, KIND, PLURAL
from wspool.operator.model.poolspec import PoolSpecError
from wspool.operator.model.settings import OperatorSettings
from wspool.operator.reconcile import OperatorContext, Pool, reconcile, report_failure

__all__ = ["RETRY_DELAY", "build_registry"]

log = logging.getLogger(__name__)

RETRY_DELAY = 5.0
"""Seconds before Kopf retries a reconcile that failed for a passing reason."""


class _Runtime:
    """What the handlers share: the settings, and the client made at startup."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.kube: Kube | None = None
        # One step at a time per pool: the sync timer and the change handlers both write the
        # status, and a sync that read the pool before a reconcile must not overwrite its
        # observedGeneration with an older one. A lock lives while someone holds or waits.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def lock(self, body: kopf.Body) -> asyncio.Lock:
        uid = str(body["metadata"]["uid"])
        lock = self._locks.get(uid)
        if lock is None:
            lock = self._locks[uid] = asyncio.Lock()
        return lock

    @property
    def context(self) -> OperatorContext:
        assert self.kube is not None, "the startup handler makes the client"
        return OperatorContext(self.settings, self.kube)


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    runtime = _Runtime(settings)
    pools = (API_GROUP, API_VERSION, PLURAL)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        storage_prefix = API_GROUP
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix=storage_prefix
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=storage_prefix, key="last-handled-configuration"
        )
        # Kopf puts a finalizer on each pool so that its sync timer stops before the pool
        # goes; delete pools while the operator runs (docs/operator.md).
        settings.persistence.finalizer = f"{API_GROUP}/operator"
        settings.posting.level = logging.WARNING  # events for failures, not for every success
        # A pool being deleted waits for its sync timer to stop. Kopf re-checks a timer that
        # was mid-sync only every `cancellation_polling` seconds (60 by default), so the
        # finalizer, and the deletion, would hang for a minute: wait a moment for the sync
        # to finish instead, and poll within a second otherwise.
        settings.background.instant_exit_timeout = 0.5
        settings.background.cancellation_polling = 1.0
        runtime.kube = await connect()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        if runtime.kube is not None:
            await runtime.kube.close()

    async def reconcile_pool(body: kopf.Body, **_: Any) -> None:
        async with runtime.lock(body):
            await _reconcile_pool(body)

    async def _reconcile_pool(body: kopf.Body) -> None:
        context = runtime.context
        try:
            pool = Pool.from_body(body, settings.image)
        except PoolSpecError as error:
            await report_failure(context, body, f"invalid {error}", reason="InvalidSpec")
            raise kopf.PermanentError(str(error)) from error
        try:
            await reconcile(context, pool)
        except Exception as error:
            problem = describe(error)
            try:
                await report_failure(context, body, problem)
            except Exception:  # the API server may be the thing that is away
                log.warning("cannot report the failure of %s", pool.ref.name, exc_info=True)
            raise kopf.TemporaryError(problem, delay=RETRY_DELAY) from error

    kopf.on.create(*pools, id="reconcile", registry=registry)(reconcile_pool)
    kopf.on.update(*pools, id="reconcile", registry=registry)(reconcile_pool)
    kopf.on.resume(*pools, id="reconcile", registry=registry)(reconcile_pool)

    @kopf.timer(*pools, id="sync", interval=settings.sync_interval, registry=registry)
    async def sync(body: kopf.Body, **_: Any) -> None:
        context = runtime.context
        async with runtime.lock(body):
            # Kopf's body may predate a reconcile that ran meanwhile: read the pool afresh.
            metadata = body["metadata"]
            fresh = await context.kube.get(
                f"{API_GROUP}/{API_VERSION}", KIND, metadata["namespace"], metadata["name"]
            )
            if fresh is None or "observedGeneration" not in (fresh.get("status") or {}):
                return  # gone, or its first reconcile has not finished
            if fresh["metadata"].get("deletionTimestamp"):
                return  # going: the finalizer stops its pods, nothing to scale
            try:
                pool = Pool.from_body(fresh, settings.image)
            except PoolSpecError:
                return  # the reconcile handler already reported it
            await sync_pool(context, pool)

    @kopf.on.delete(*pools, id="forget", registry=registry)
    async def forget(body: kopf.Body, **_: Any) -> None:
        async with runtime.lock(body):
            try:
                pool = Pool.from_body(body, settings.image, require_image=False)
            except PoolSpecError as error:
                log.warning("cannot clean up after %s: %s", body["metadata"]["name"], error)
                return  # a spec it never could use: no keys were ever written
            await forget_pool(runtime.context, pool, body["metadata"])

    return registry
