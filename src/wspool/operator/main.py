"""``wspool operator``: run the Kopf operator until SIGTERM or SIGINT (Kopf handles both)."""

from __future__ import annotations

import logging

import kopf

from wspool.core.operatorconfig import OperatorSettings
from wspool.operator.handlers import build_registry

__all__ = ["KopfLogContext", "run_operator"]

log = logging.getLogger(__name__)


class KopfLogContext(logging.Filter):
    """Fit Kopf's records to our structured logs.

    Kopf attaches its whole settings object and the object reference to every record of a
    resource; the formatters would print all of it. Keep the reference as ``pool=ns/name``,
    and drop the line Kopf logs each time a timer succeeds (once per pool per sync).
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
            and message.startswith("Timer ")
            and message.endswith("succeeded.")
        )


async def run_operator(settings: OperatorSettings) -> None:
    """Reconcile the pools of ``settings.namespaces`` (or of every namespace) until stopped.

    Standalone: one operator replica per scope (the chart runs one), so Kopf's peering
    objects are not needed.
    """
    for handler in logging.getLogger().handlers:
        handler.addFilter(KopfLogContext())
    scope = ", ".join(settings.namespaces) or "every namespace"
    log.info("reconciling WebSocketPools in %s, syncing every %g s", scope, settings.sync_interval)
    await kopf.operator(
        registry=build_registry(settings),
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint,
    )
