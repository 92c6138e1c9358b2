"""Kubernetes Events on a pool: each decision and failure of the operator, in one line.

``kubectl describe pool NAME`` lists them under the conditions, ``kubectl get events`` in
the namespace. They are posted through Kopf's event poster, in the background and with its
retries: an event that cannot be posted is logged and never fails a reconcile. The operator
logs the same line, so its log tells the same story.

:func:`describe` is the one place that turns an exception into the text a user reads (in an
event or a condition): an API server's refusal as its status and message rather than the
client's multi-line dump, and everything through :func:`wspool.operator.model.poolstatus.one_line`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import kopf

from wspool.operator.kube import ApiException
from wspool.operator.model.manifests import API_GROUP, API_VERSION, KIND, PoolRef
from wspool.operator.model.poolstatus import one_line

__all__ = ["describe", "normal", "warning"]

log = logging.getLogger(__name__)


def describe(error: BaseException) -> str:
    """What went wrong, in one line a user can read."""
    if isinstance(error, ApiException):
        message = error.reason or ""
        try:
            body: Any = json.loads(error.body or "")
            if isinstance(body, dict) and body.get("message"):
                message = str(body["message"])
        except ValueError:
            pass
        return one_line(f"the API server answered {error.status}: {message}")
    return one_line(str(error) or type(error).__name__)


def _post(ref: PoolRef, kind: str, reason: str, message: str) -> None:
    line = one_line(message)
    level = logging.INFO if kind == "Normal" else logging.WARNING
    log.log(level, "%s: %s", reason, line, extra={"pool": f"{ref.namespace}/{ref.name}"})
    body = kopf.Body(
        {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "metadata": {"name": ref.name, "namespace": ref.namespace, "uid": ref.uid},
        }
    )
    try:
        kopf.event(body, type=kind, reason=reason, message=line)
    except LookupError:  # outside a running operator (no poster): the log line stays
        log.debug("no event poster for %s", ref.name)


def normal(ref: PoolRef, reason: str, message: str) -> None:
    """A decision: scaled, config pushed, keys deleted."""
    _post(ref, "Normal", reason, message)


def warning(ref: PoolRef, reason: str, message: str) -> None:
    """A failure, or something a user should look at."""
    _post(ref, "Warning", reason, message)
