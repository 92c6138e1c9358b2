"""When a draining node closes each of its clients.

Closing every client at once would send them all back to the gateway in the same instant
(a reconnect storm on the remaining nodes). Instead the closes are spread evenly over the
drain window, first close at once, last one at the end of the window. A client whose
gateway moves it itself gets, on the same schedule, the handover notice instead of the close;
the gateways have :data:`HANDOVER_GRACE` seconds after the window to finish the moves.
"""

from __future__ import annotations

__all__ = ["HANDOVER_GRACE", "drain_schedule"]

HANDOVER_GRACE = 5.0
"""Seconds after the drain window before the sessions still handed over get their 1012."""


def drain_schedule(count: int, window: float) -> list[float]:
    """Offsets in seconds from the start of the drain at which to close ``count`` clients."""
    if count <= 0:
        return []
    if count == 1 or window <= 0:
        return [0.0] * count
    step = window / (count - 1)
    return [index * step for index in range(count)]
