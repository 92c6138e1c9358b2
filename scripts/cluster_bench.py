"""One Redis against a 3-shard Redis Cluster, same load, same run: deliveries per second,
node CPU and Redis CPU per delivery (the cluster's summed over its six processes).

Starts a redis-server and a cluster of three primaries with a replica each (the test
suite's helpers), then runs ``wspool bench`` with three spawned nodes on each, alternating
(one Redis, the cluster, one Redis, ...), and prints one line per run and the medians.

    .venv/bin/python scripts/cluster_bench.py [--repeat N] [--duration S] [SCENARIO ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer


def bench(scenario: str, redis_url: str, extra: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "report.json"
        command = [sys.executable, "-m", "wspool", "bench", scenario, "--spawn-servers", "3"]
        command += ["--redis-url", redis_url, "--json", str(out), *extra]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        report: dict[str, Any] = json.loads(out.read_text())["runs"][0]
        return report


def figures(report: dict[str, Any]) -> dict[str, float]:
    delivered = report["messages"]["delivered"]
    node_cpu = sum(node["cpu_seconds"] or 0.0 for node in report["nodes"])
    return {
        "deliveries_per_second": report["messages"]["deliveries_per_second"],
        "missing": report["messages"]["missing"],
        "node_cpu_us_per_delivery": round(node_cpu * 1e6 / delivered, 2) if delivered else 0.0,
        "redis_cpu_us_per_delivery": report["redis"]["cpu_us_per_delivery"],
        "redis_cpu_percent": report["redis"]["cpu_percent"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", default="10")
    parser.add_argument("scenarios", nargs="*", default=["many-channels"])
    args = parser.parse_args()
    extra = ["--duration", args.duration]
    single, cluster = RedisServer(), RedisCluster()
    single.start()
    cluster.start()
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        for scenario in args.scenarios:
            for _ in range(args.repeat):
                for name, url in (("one Redis", single.url), ("3-shard cluster", cluster.url)):
                    row = figures(bench(scenario, url, extra))
                    results.setdefault((scenario, name), []).append(row)
                    print(scenario, name, json.dumps(row), flush=True)
    finally:
        cluster.stop()
        single.stop()
    for (scenario, name), rows in results.items():
        medians = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        print("median", scenario, name, json.dumps(medians))


if __name__ == "__main__":
    main()
