"""Latency against load, as a PNG (placeholder until the chart is drawn)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["draw_latency_chart"]


def draw_latency_chart(reports: Sequence[dict[str, Any]], path: str) -> None:
    raise NotImplementedError(path, len(reports))
