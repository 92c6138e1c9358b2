"""Leader election on a ``coordination.k8s.io/v1`` Lease: several replicas, one acts.

The rules are client-go's (kube-controller-manager, controller-runtime):

- a replica acts only while it holds the Lease; it takes a Lease that has no holder, or
  whose holder did not renew it for ``duration`` seconds *as this replica observed* (its own
  monotonic clock since it last saw the Lease change, so clocks need not agree);
- every write is a compare-and-swap on ``resourceVersion`` (409 when another replica wrote
  first), so two replicas never both take it;
- the holder renews every ``duration / 7.5`` seconds; when it has not managed to for
  two thirds of ``duration`` (the API server away, or another holder), it has lost: it stops
  acting before any other replica may take over, and the process exits so that Kubernetes
  restarts it as a standby;
- a holder that stops cleanly releases the Lease (no holder), and a standby takes over
  within a retry period instead of a whole ``duration``.

Kopf's own peering is not used: replicas of equal priority pause one another, all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from wspool.operator.kube import ApiException, Kube

__all__ = ["LEASE_API", "LeaseLock"]

log = logging.getLogger(__name__)

LEASE_API = "coordination.k8s.io/v1"


def _now() -> str:
    # metav1.MicroTime: RFC 3339 with microseconds.
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseLock:
    """One replica's view of the shared Lease ``namespace/name``."""

    def __init__(
        self, kube: Kube, namespace: str, name: str, identity: str, duration: float
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.retry_period = duration / 7.5
        self.renew_deadline = duration * 2 / 3
        self.holding = False
        self._seen_version: str | None = None
        self._seen_at = 0.0
        self._seen_holder: str | None = None

    def _lease(self, spec: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": LEASE_API, "kind": "Lease", "metadata": metadata, "spec": spec}

    def _expired(self, lease: dict[str, Any]) -> bool:
        version = lease["metadata"].get("resourceVersion")
        if version != self._seen_version:
            self._seen_version, self._seen_at = version, time.monotonic()
        return time.monotonic() - self._seen_at > self.duration

    async def try_acquire(self) -> bool:
        """Take or renew the Lease; False when another replica holds it (or wrote first)."""
        try:
            return await self._try_acquire()
        except ApiException as error:
            if error.status == 409:  # another replica wrote first
                return False
            raise

    async def _try_acquire(self) -> bool:
        now = _now()
        lease = await self.kube.get(LEASE_API, "Lease", self.namespace, self.name)
        if lease is None:
            fresh: dict[str, Any] = {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": round(self.duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            }
            await self.kube.create(
                self._lease(fresh, {"name": self.name, "namespace": self.namespace})
            )
            self.holding = True
            return True
        spec: dict[str, Any] = dict(lease.get("spec") or {})
        holder = str(spec.get("holderIdentity") or "") or None
        self._note_holder(holder)
        if holder not in (None, self.identity) and not self._expired(lease):
            self.holding = False
            return False
        if holder != self.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=round(self.duration),
            renewTime=now,
        )
        await self.kube.replace(self._lease(spec, lease["metadata"]))
        self.holding = True
        return True

    def _note_holder(self, holder: str | None) -> None:
        if holder != self._seen_holder and holder not in (None, self.identity):
            log.info("lease %s/%s is held by %s; standing by", self.namespace, self.name, holder)
        self._seen_holder = holder

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this replica holds the Lease (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            try:
                if await self.try_acquire():
                    log.info("took lease %s/%s as %s", self.namespace, self.name, self.identity)
                    return True
            except (ApiException, OSError) as error:
                log.warning("cannot read lease %s/%s: %s", self.namespace, self.name, error)
            await _wait(stop, self.retry_period)
        return False

    async def keep(self, lost: asyncio.Event) -> None:
        """Renew until cancelled; set ``lost`` when the Lease could not be kept."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.retry_period)
            try:
                if await self.try_acquire():
                    renewed = time.monotonic()
                    continue
                log.error("lease %s/%s was taken over", self.namespace, self.name)
            except (ApiException, OSError) as error:
                if time.monotonic() - renewed < self.renew_deadline:
                    log.warning("cannot renew lease %s/%s: %s", self.namespace, self.name, error)
                    continue
                log.error("could not renew lease %s/%s in time", self.namespace, self.name)
            self.holding = False
            lost.set()
            return

    async def release(self) -> None:
        """Give the Lease up, so a standby takes over at its next try."""
        if not self.holding:
            return
        self.holding = False
        try:
            lease = await self.kube.get(LEASE_API, "Lease", self.namespace, self.name)
            spec = dict((lease or {}).get("spec") or {})
            if lease is None or spec.get("holderIdentity") != self.identity:
                return
            spec.update(holderIdentity=None, leaseDurationSeconds=1, renewTime=_now())
            await self.kube.replace(self._lease(spec, lease["metadata"]))
            log.info("released lease %s/%s", self.namespace, self.name)
        except (ApiException, OSError) as error:
            # The others take over once the lease expires.
            log.warning("cannot release lease %s/%s: %s", self.namespace, self.name, error)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
