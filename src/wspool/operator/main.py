"""``wspool operator``: run the Kopf operator until SIGTERM or SIGINT (Kopf handles both)."""

from __future__ import annotations

import kopf

from wspool.core.operatorconfig import OperatorSettings
from wspool.operator.handlers import build_registry

__all__ = ["run_operator"]


async def run_operator(settings: OperatorSettings) -> None:
    """Reconcile the pools of ``settings.namespaces`` (or of every namespace) until stopped.

    Standalone: one operator replica per scope (the chart runs one), so Kopf's peering
    objects are not needed.
    """
    await kopf.operator(
        registry=build_registry(settings),
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint,
    )
