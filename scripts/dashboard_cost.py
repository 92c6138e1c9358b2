"""What open dashboards cost one gateway: its CPU with 0, 1, 10 and 100 viewers of the
dashboard's feed, and the bytes per second each viewer receives.

Starts its own redis-server, three ``wspool server`` nodes and one ``wspool gateway`` on
loopback (the test suite's process helpers), opens the viewers from this process (a viewer
costs the gateway the same whether a browser or this script reads the feed), reads the
gateway's CPU time from /proc over each phase, and prints the figures as JSON.

    .venv/bin/python scripts/dashboard_cost.py [SECONDS_PER_PHASE]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.processes import GatewayProcess, NodeProcess
from tests.support.redis_server import RedisServer

PHASES = (0, 1, 10, 100, 0)
"""Open dashboards in each phase (the last, again none: the cost gone with the viewers)."""


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def viewer(session: aiohttp.ClientSession, url: str, received: list[int]) -> None:
    """One dashboard: reads the feed, adding each frame's size to ``received[0]``."""
    async with session.ws_connect(url) as ws:
        async for message in ws:
            received[0] += len(message.data)


async def phase(
    session: aiohttp.ClientSession, url: str, pid: int, viewers: int, seconds: float
) -> dict[str, float]:
    received = [0]
    tasks = [asyncio.create_task(viewer(session, url, received)) for _ in range(viewers)]
    await asyncio.sleep(2)  # joined, history read: the steady state is what is measured
    received[0] = 0
    cpu, start = cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu, wall = cpu_seconds(pid) - cpu, time.perf_counter() - start
    total = received[0]
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks)
    await asyncio.sleep(2)  # the last viewer gone, the producer stopped
    return {
        "dashboards": viewers,
        "gateway_cpu_ms_per_second": round(cpu / wall * 1000, 2),
        "bytes_per_second_per_dashboard": round(total / wall / viewers) if viewers else 0,
    }


async def main(seconds: float) -> None:
    redis = RedisServer()
    redis.start()
    prefix = ("--key-prefix", "dash-cost:")
    nodes = [NodeProcess(f"node-{i}", redis.url, *prefix).start() for i in (1, 2, 3)]
    gateway = GatewayProcess("gw", redis.url, *prefix, nodes=3).start()
    assert gateway.process is not None
    figures: dict[str, Any] = {"load_average": os.getloadavg()[0], "seconds_per_phase": seconds}
    try:
        url = f"{gateway.url.removesuffix('/ws')}/api/v1/dashboard/feed"
        async with aiohttp.ClientSession() as session:
            figures["phases"] = [
                await phase(session, url, gateway.process.pid, viewers, seconds)
                for viewers in PHASES
            ]
    finally:
        gateway.stop()
        for node in nodes:
            node.stop()
        redis.stop()
    figures["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 30.0))
