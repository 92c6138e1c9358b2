"""Repeated runs as one table: the median of each figure, and every run's value beside it.

``python -m wspool.bench.summary RUN_DIR RUN_DIR…`` reads the ``wspool bench --json`` files
of each folder (``make bench`` writes one folder per repetition), matches the files by name
and their runs by scenario, route and rate, and prints per file the figures of
:data:`wspool.bench.compare.FIGURES` with their median over the repetitions and the values
of each. A figure a run did not produce shows as ``-`` and does not count; one that no run produced
(a gateway's, on a run straight to the nodes) is left out. Everything but
reading the files is pure.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wspool.bench.compare import FIGURES, fmt
from wspool.bench.plan import UNPUBLISHED
from wspool.bench.report import render_table

__all__ = ["main", "summarize_runs"]

Report = Mapping[str, Any]
"""One ``--json`` file: its command and its ``runs``."""


def _key(run: Mapping[str, Any]) -> tuple[str, str, float]:
    return run["scenario"], run.get("route", "direct"), float(run["shape"]["rate"])


def summarize_runs(name: str, repetitions: Sequence[Report]) -> str:
    """One table for the file ``name``: a row per figure of each of its runs, the median
    over ``repetitions`` and each repetition's value."""
    by_key = [{_key(run): run for run in report["runs"]} for report in repetitions]
    rows = []
    for key in by_key[0]:
        scenario, route, rate = key
        shown_rate = "-" if scenario in UNPUBLISHED else (f"{rate:,.0f}" if rate else "max")
        for figure, better, read in FIGURES.get(scenario, ()):
            values = [read(runs[key]) if key in runs else None for runs in by_key]
            known = [v for v in values if v is not None]
            if not known:
                continue  # a figure of another route or role (a gateway's, run direct)
            median = statistics.median(known) if known else None
            rows.append(
                [scenario, route, shown_rate, figure, fmt(median), *map(fmt, values), better]
            )
    runs = [f"run {i}" for i in range(1, len(repetitions) + 1)]
    headers = ["scenario", "route", "rate", "figure", "median", *runs, "better"]
    return f"== {name}\n{render_table(headers, rows)}"


def main(argv: Sequence[str] | None = None) -> int:
    folders = [Path(a) for a in (sys.argv[1:] if argv is None else argv)]
    if not folders or not all(f.is_dir() for f in folders):
        print("usage: python -m wspool.bench.summary RUN_DIR [RUN_DIR ...]", file=sys.stderr)
        return 2
    names = sorted(p.name for p in folders[0].glob("*.json"))
    for name in names:
        found = [f / name for f in folders if (f / name).is_file()]
        if len(found) < len(folders):
            print(f"== {name}: in {len(found)} of {len(folders)} folders, left out\n")
            continue
        print(summarize_runs(name, [json.loads(p.read_text()) for p in found]), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
