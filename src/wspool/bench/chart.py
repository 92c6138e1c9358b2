"""Latency against load, drawn as a PNG from the runs of ``wspool bench latency --rate …``.

One point per rate: the offered rate on x, p50 / p95 / p99 end-to-end latency on y (log
scale: the interesting part is where the tail lifts off). Needs matplotlib (the ``bench``
extra); it is imported here only, so the rest of the generator runs without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["draw_latency_chart", "latency_points"]


def latency_points(reports: Sequence[dict[str, Any]]) -> list[tuple[float, float, float, float]]:
    """(achieved deliveries/s, p50, p95, p99 in ms) of every latency run, by rate."""
    points = []
    for report in reports:
        if report["scenario"] != "latency":
            continue
        latency = report["messages"]["latency_ms"]
        if not latency["count"]:
            continue
        points.append(
            (
                float(report["messages"]["deliveries_per_second"]),
                latency["p50_ms"],
                latency["p95_ms"],
                latency["p99_ms"],
            )
        )
    return sorted(points)


def draw_latency_chart(
    reports: Sequence[dict[str, Any]], path: str, title: str = "End-to-end latency against load"
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    points = latency_points(reports)
    if not points:
        raise ValueError("no latency runs to draw: run the latency scenario with --rate")
    rates = [p[0] for p in points]
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=110)
    for column, label, style in ((1, "p50", "o-"), (2, "p95", "s-"), (3, "p99", "^-")):
        axes.plot(rates, [p[column] for p in points], style, label=label)
    axes.axhline(10, color="grey", linestyle=":", linewidth=1)
    axes.text(rates[0], 10.5, "target p95 10 ms", color="grey", fontsize=8)
    axes.set_yscale("log")
    axes.set_xlabel("messages delivered per second")
    axes.set_ylabel("latency (ms)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
