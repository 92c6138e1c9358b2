"""What one gateway's server API takes: messages/s and gateway CPU per message, published one
per request and in batches of 100, and the time from a REST publish to a subscriber beside the
same publish sent by a WebSocket client.

Starts its own redis-server, one ``wspool server`` and one ``wspool gateway`` on loopback (the
test suite's process helpers), publishes from this process through one aiohttp session of 16
connections, reads the gateway's CPU time from /proc, and prints the figures as JSON.

    .venv/bin/python scripts/server_api_bench.py
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.processes import GatewayProcess, NodeProcess
from tests.support.redis_server import RedisServer
from tests.support.wsclient import TestClient

IN_FLIGHT = 16
SAMPLES = 300


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def accepted(
    session: aiohttp.ClientSession, url: str, pid: int, body: dict[str, Any], requests: int
) -> dict[str, float]:
    """Send ``requests`` copies of ``body``, ``IN_FLIGHT`` at a time."""
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one() -> None:
        async with slots, session.post(url, json=body) as response:
            assert response.status == 201, await response.text()

    per_request = len(body.get("messages", [None]))
    cpu, start = cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(requests)))
    cpu, wall = cpu_seconds(pid) - cpu, time.perf_counter() - start
    messages = requests * per_request
    return {
        "messages": messages,
        "messages_per_second": round(messages / wall),
        "gateway_cpu_us_per_message": round(cpu / messages * 1e6, 1),
    }


async def latency(send: Any, subscriber: TestClient) -> dict[str, float]:
    """Milliseconds from sending a message to its subscriber reading it, one at a time."""
    samples = []
    for number in range(SAMPLES):
        start = time.perf_counter()
        await send(number)
        while (await subscriber.recv())["payload"] != number:
            pass
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[int(len(samples) * 0.99)], 2),
    }


async def main() -> None:
    redis = RedisServer()
    redis.start()
    node = NodeProcess("node-1", redis.url, "--key-prefix", "api-bench:").start()
    gateway = GatewayProcess("gw", redis.url, "--key-prefix", "api-bench:", nodes=1).start()
    assert gateway.process is not None
    pid = gateway.process.pid
    figures: dict[str, Any] = {"load_average": os.getloadavg()[0]}
    try:
        connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
        async with aiohttp.ClientSession(connector=connector) as session:
            url = f"{gateway.http}/api/v1/channels/bench/messages"
            figures["one_per_request"] = await accepted(
                session, url, pid, {"payload": {"n": 1}}, 4_000
            )
            batch = {"messages": [{"payload": {"n": 1}}] * 100}
            figures["batches_of_100"] = await accepted(session, url, pid, batch, 400)
            async with TestClient(gateway.url) as subscriber, TestClient(gateway.url) as client:
                await subscriber.subscribe("latency")

                async def rest(number: int) -> None:
                    message = {"payload": number}
                    async with session.post(
                        f"{gateway.http}/api/v1/channels/latency/messages", json=message
                    ) as response:
                        await response.read()

                async def websocket(number: int) -> None:
                    await client.publish("latency", number)

                figures["latency_rest"] = await latency(rest, subscriber)
                figures["latency_websocket"] = await latency(websocket, subscriber)
    finally:
        gateway.stop()
        node.stop()
        redis.stop()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
