"""What a gateway holds under a slowloris: N sockets that each send half a request, then one
header line now and then, reopened as soon as the gateway closes them.

Starts its own redis-server, one ``wspool server`` and one ``wspool gateway`` on loopback,
attacks the gateway from worker processes (each one's descriptors are limited too), and
meanwhile, every second, samples the gateway's memory and open files and connects one real
client through it. Stops by itself and prints a summary in Markdown.

    .venv/bin/python scripts/slowloris.py --sockets 20000 --seconds 40
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

SECRET = "slowloris-measurement-ticket-secret-0123456789"
PARTIAL = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def raise_file_limit() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# the attacker -----------------------------------------------------------------------------


async def attack(port: int, count: int, seconds: float) -> dict[str, int]:
    """Hold ``count`` half-sent requests for ``seconds``, reopening those the gateway closes."""
    stats = {"opened": 0, "cut": 0, "failed": 0}
    deadline = time.monotonic() + seconds

    async def one() -> None:
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except (OSError, TimeoutError):
                stats["failed"] += 1
                await asyncio.sleep(0.5)
                continue
            stats["opened"] += 1
            try:
                writer.write(PARTIAL)
                line = 0
                while time.monotonic() < deadline:
                    # One more header line every few seconds, as a slowloris does to look alive.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(3.0):
                            if not await reader.read(1024):
                                break
                    writer.write(f"X-Slow-{line}: a\r\n".encode())
                    line += 1
                else:
                    return
            except OSError:
                pass
            finally:
                writer.close()
            stats["cut"] += 1

    await asyncio.gather(*(one() for _ in range(count)))
    return stats


# the measurement --------------------------------------------------------------------------


def spawn(
    args: list[str], log: Path, limit: int | None = None, source: str = ""
) -> subprocess.Popen[bytes]:
    """Start ``args`` with at most ``limit`` open files, importing wspool from ``source``."""

    def limit_files() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    env = {**os.environ, "PYTHONPATH": source} if source else None
    with log.open("wb") as out:
        return subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, preexec_fn=limit_files, env=env
        )


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


def metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()
    return {
        line.split()[0]: float(line.split()[1])
        for line in lines
        if line.startswith("wspool_gateway") and "{" not in line
    }


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def real_client(url: str) -> float | None:
    """Seconds a real client takes to connect through the gateway and hear ``connected``."""
    start = time.monotonic()
    try:
        async with connect(url, open_timeout=5, compression=None) as ws:
            async with asyncio.timeout(5):
                frame = json.loads(await ws.recv())
            return time.monotonic() - start if frame["type"] == "connected" else None
    except (OSError, TimeoutError, ValueError, Exception):
        return None


async def wait_ready(url: str, probe: str) -> None:
    for _ in range(200):
        with contextlib.suppress(OSError, ValueError):
            body = await asyncio.to_thread(get_json, url)
            if probe == "node" or body.get("servers", 0) >= 1:
                return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} not ready")


async def measure(options: argparse.Namespace) -> None:
    limit = raise_file_limit()
    workdir = Path(tempfile.mkdtemp(prefix="slowloris-"))
    redis_port, node_port, gateway_port = free_port(), free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    wspool = [sys.executable, "-m", "wspool"]
    shared = ["--redis-url", redis_url, "--ticket-secret", SECRET, "--host", "127.0.0.1"]
    processes = [
        spawn(
            ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
            workdir / "redis.log",
        )
    ]
    try:
        await asyncio.sleep(0.3)
        processes.append(
            spawn(
                [*wspool, "server", "--insecure", "--port", str(node_port), *shared],
                workdir / "node.log",
            )
        )
        await wait_ready(f"http://127.0.0.1:{node_port}/health", "node")
        timeout = ["--handshake-timeout", str(options.handshake_timeout)]
        gateway = spawn(
            [
                *wspool,
                "gateway",
                "--insecure",
                "--port",
                str(gateway_port),
                *([] if options.source else timeout),
                *shared,
            ],
            workdir / "gateway.log",
            limit=options.gateway_files or limit,
            source=options.source,
        )
        processes.append(gateway)
        http = f"http://127.0.0.1:{gateway_port}"
        await wait_ready(f"{http}/health", "gateway")
        ws_url = f"ws://127.0.0.1:{gateway_port}/ws"
        before = (resident_mib(gateway.pid), open_files(gateway.pid), await real_client(ws_url))

        per_worker = min(options.sockets, limit - 200)
        workers = []
        left = options.sockets
        while left > 0:
            share = min(left, per_worker)
            workers.append(
                subprocess.Popen(  # noqa: ASYNC220 (started once, before the measurement)
                    [
                        sys.executable,
                        __file__,
                        "--attack",
                        str(gateway_port),
                        str(share),
                        str(options.seconds),
                    ],
                    stdout=subprocess.PIPE,
                )
            )
            left -= share

        samples: list[dict[str, Any]] = []
        start = time.monotonic()
        while time.monotonic() - start < options.seconds:
            tick = time.monotonic()
            latency = await real_client(ws_url)
            sample = {
                "t": round(tick - start, 1),
                "rss": resident_mib(gateway.pid),
                "fds": open_files(gateway.pid),
                "client": latency,
                "health": None,
            }
            with contextlib.suppress(OSError, ValueError):
                sample["health"] = (await asyncio.to_thread(get_json, f"{http}/health"))["store"]
            samples.append(sample)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        final = await asyncio.to_thread(metrics, http)
        attackers = [json.loads(w.communicate(timeout=60)[0]) for w in workers]
        after = (resident_mib(gateway.pid), open_files(gateway.pid), await real_client(ws_url))
        report(options, limit, before, after, samples, final, attackers, workdir)
    finally:
        for process in reversed(processes):
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            if process.poll() is None:
                process.kill()


def report(
    options: argparse.Namespace,
    limit: int,
    before: tuple[float, int, float | None],
    after: tuple[float, int, float | None],
    samples: list[dict[str, Any]],
    final: dict[str, float],
    attackers: list[dict[str, int]],
    workdir: Path,
) -> None:
    attack = [s for s in samples if s["t"] >= 5]  # once the sockets are all open
    latencies = [s["client"] for s in samples if s["client"] is not None]
    log = (workdir / "gateway.log").read_text(errors="replace").splitlines()
    levels = {
        level: sum(f'"level": "{level}"' in line for line in log) for level in ("warning", "error")
    }
    opened = sum(a["opened"] for a in attackers)
    cut = sum(a["cut"] for a in attackers)
    print(f"## Slowloris: {options.sockets} sockets for {options.seconds:g} s")
    print()
    budget = final.get("wspool_gateway_open_files_budget", 0)
    print(
        f"gateway open-file limit {options.gateway_files or limit}, handshake timeout "
        f"{options.handshake_timeout:g} s, budget {budget:g}"
        f"{' (gateway from ' + options.source + ')' if options.source else ''}"
    )
    print()
    print("| | before | during (max) | after |")
    print("|---|---|---|---|")
    peak = max(s["rss"] for s in samples)
    print(f"| resident memory (MiB) | {before[0]:.0f} | {peak:.0f} | {after[0]:.0f} |")
    print(f"| open files | {before[1]} | {max(s['fds'] for s in samples)} | {after[1]} |")
    print(f"| real client connects (s) | {seconds(before[2])} | see below | {seconds(after[2])} |")
    print()
    ok = sum(1 for s in samples if s["client"] is not None)
    print(
        f"- real clients: {ok} of {len(samples)} connected (one a second), "
        f"median {sorted(latencies)[len(latencies) // 2] if latencies else 0:.3f} s, "
        f"max {max(latencies) if latencies else 0:.3f} s"
    )
    up = sum(s["health"] == "up" for s in samples)
    print(f"- /health store up in {up} of {len(samples)} samples")
    print(
        f"- attacker sockets opened {opened}, cut by the gateway {cut}, refused "
        f"{sum(a['failed'] for a in attackers)}"
    )
    print(
        f"- gateway evicted {final.get('wspool_gateway_handshakes_evicted_total', 0):g} half-sent "
        f"handshakes, refused {final.get('wspool_gateway_refused_at_capacity_total', 0):g}"
    )
    print(
        f"- gateway log: {len(log)} lines, {levels['warning']} warnings, {levels['error']} errors"
    )
    print(f"- samples while all sockets were open: {len(attack)} (logs in {workdir})")


def seconds(value: float | None) -> str:
    return "failed" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--handshake-timeout", type=float, default=10.0)
    parser.add_argument("--gateway-files", type=int, default=0, help="the gateway's ulimit -n")
    parser.add_argument(
        "--source", default="", help="run the gateway from this src folder (an older version)"
    )
    parser.add_argument("--attack", nargs=3, metavar=("PORT", "COUNT", "SECONDS"))
    options = parser.parse_args()
    if options.attack:
        raise_file_limit()
        port, count, seconds = options.attack
        print(json.dumps(asyncio.run(attack(int(port), int(count), float(seconds)))))
        return
    asyncio.run(measure(options))


if __name__ == "__main__":
    main()
