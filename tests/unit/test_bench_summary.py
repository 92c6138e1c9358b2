"""Repeated benchmark runs summed up: the median of each figure beside every run's value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wspool.bench.summary import main, summarize_runs


def _connect(route: str, node_cpu: float, gateway_cpu: float | None) -> dict[str, Any]:
    nodes = [{"role": "node", "cpu_seconds": node_cpu, "rss_per_1000_connections_mb": 16.0}]
    if gateway_cpu is not None:
        nodes.append({"role": "gateway", "cpu_seconds": gateway_cpu})
    return {
        "scenario": "connect",
        "route": route,
        "shape": {"rate": 0.0},
        "connections": {"opened": 1000, "setup_ms": {"p50_ms": 1.0, "p95_ms": 2.0}},
        "nodes": nodes,
    }


def _rows(table: str, figure: str, route: str = "gateway") -> list[list[str]]:
    return [
        line.split() for line in table.splitlines() if figure in line and line.split()[1] == route
    ]


def test_each_figure_shows_its_median_and_every_run() -> None:
    reports = [
        {"runs": [_connect("gateway", 1.0, gateway_cpu), _connect("direct", 0.5, None)]}
        for gateway_cpu in (0.3, 0.9, 0.5)
    ]
    table = summarize_runs("gateway-connect.json", reports)
    assert table.startswith("== gateway-connect.json\n")
    [gateway] = _rows(table, "gateway CPU ms per connection")
    assert gateway[-5:] == ["0.50", "0.30", "0.90", "0.50", "lower"]  # median, runs 1-3
    [node] = _rows(table, "server CPU ms per connection", route="direct")
    assert node[-4:-1] == ["0.50", "0.50", "0.50"]
    # A gateway's figure on the run that went straight to the nodes is left out.
    assert _rows(table, "gateway CPU", route="direct") == []


def test_a_run_missing_from_a_repetition_shows_as_a_dash_and_does_not_count() -> None:
    reports = [{"runs": [_connect("direct", cpu, None)]} for cpu in (1.0, 3.0)]
    reports.append({"runs": []})
    [row] = _rows(summarize_runs("connect.json", reports), "server CPU ms", route="direct")
    assert row[-5:] == ["2.00", "1.00", "3.00", "-", "lower"]


def test_the_command_reads_one_folder_per_repetition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i, cpu in enumerate((1.0, 2.0, 4.0), start=1):
        folder = tmp_path / f"run-{i}"
        folder.mkdir()
        (folder / "connect.json").write_text(json.dumps({"runs": [_connect("direct", cpu, None)]}))
    (tmp_path / "run-1" / "only-once.json").write_text(json.dumps({"runs": []}))
    assert main([str(tmp_path / f"run-{i}") for i in (1, 2, 3)]) == 0
    out = capsys.readouterr().out
    assert "== connect.json" in out
    assert "== only-once.json: in 1 of 3 folders, left out" in out
    assert main([str(tmp_path / "nowhere")]) == 2
