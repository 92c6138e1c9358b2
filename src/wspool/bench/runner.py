"""``wspool bench``: run scenarios with worker processes, show progress, report.

For each scenario (and each ``--rate``), the parent plans the connections, deals them to
``--workers`` processes and steers them through the phases of :mod:`wspool.bench.worker`,
printing one progress line a second on stderr. It reads every node's ``/metrics`` before and
after the measured phase; at the end it prints the tables and writes the JSON report.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import multiprocessing
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from wspool.bench.failover import choose_victim, summarize_failover
from wspool.bench.measures import NodeReading
from wspool.bench.nodes import Farm, read_nodes, read_redis, spawned_farm
from wspool.bench.plan import (
    UNPUBLISHED,
    Shape,
    deal,
    plan_connections,
    shape_for,
    subscribers_per_channel,
)
from wspool.bench.ports import ephemeral_range
from wspool.bench.report import RunTiming, render_text, summarize
from wspool.bench.settings import BenchSettings
from wspool.bench.tally import Progress, WorkerResult
from wspool.bench.worker import WorkerTask, raise_open_file_limit, worker_main

__all__ = ["BenchError", "run_bench"]

_DRAIN_IDLE = 1.0
"""After the load, deliveries count as finished once none came for this long."""
_DRAIN_MAX = 15.0
_READ_WITHIN = 60.0
"""Seconds a server has to answer a reading of a run. One that fell behind (a peer dropping
deliveries it cannot keep up with) may still be working through its backlog after the load,
or at the start of the next rate: it is read once it answers, what the backlog cost
included, rather than left without a figure. A server that is gone refuses at once."""


class BenchError(Exception):
    """A run that could not be carried out (a worker died, a phase timed out)."""


def ephemeral_ports() -> int:
    """How many local ports one source address offers (Linux's ip_local_port_range)."""
    low, high = ephemeral_range()
    return high - low + 1


class _Crew:
    """The worker processes of one run and what they last said."""

    def __init__(self, processes: list[BaseProcess], pipes: list[Connection]) -> None:
        self.processes = processes
        self.pipes = pipes
        self.progress = [Progress() for _ in pipes]
        self.states = ["starting"] * len(pipes)
        self.results: list[WorkerResult | None] = [None] * len(pipes)
        self.placement: Counter[tuple[str, str]] = Counter()
        self.changed = asyncio.Event()
        loop = asyncio.get_running_loop()
        for index, pipe in enumerate(pipes):
            loop.add_reader(pipe.fileno(), self._read, index)

    def _read(self, index: int) -> None:
        pipe = self.pipes[index]
        try:
            kind, body = pipe.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(pipe.fileno())
            if self.states[index] != "result":
                self.states[index] = "exited"
            self.changed.set()
            return
        if kind == "progress":
            self.progress[index] = body
            return
        self.states[index] = kind
        if kind == "ready" and body:
            self.placement.update(body)
        elif kind == "result":
            self.results[index] = body
        elif kind == "crashed":
            print(f"worker {index} crashed:\n{body}", file=sys.stderr)
        self.changed.set()

    def total(self) -> Progress:
        return Progress(
            *(sum(getattr(p, f.name) for p in self.progress) for f in dataclasses.fields(Progress))
        )

    def send(self, command: str) -> None:
        for pipe in self.pipes:
            pipe.send(command)

    async def wait_all(self, state: str, within: float) -> None:
        deadline = time.monotonic() + within
        while not all(s == state for s in self.states):
            if any(s in ("crashed", "exited") for s in self.states):
                raise BenchError("a worker process ended early (see above)")
            self.changed.clear()
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await self.changed.wait()
            except TimeoutError:
                raise BenchError(f"workers not {state} after {within:.0f}s") from None

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for pipe in self.pipes:
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(pipe.fileno())
            pipe.close()
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()


class _ProgressLine:
    """One line a second on stderr: connections, and message rates since the last line."""

    def __init__(self, label: str, crew: _Crew, planned: int) -> None:
        self.label = label
        self.crew = crew
        self.planned = planned
        self.start = time.monotonic()
        self.last = (self.start, Progress())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.print()

    def print(self) -> None:
        now, total = time.monotonic(), self.crew.total()
        then, previous = self.last
        span = max(now - then, 1e-9)
        self.last = (now, total)
        line = (
            f"[{now - self.start:5.1f}s] {self.label}: open {total.opened:,}/{self.planned:,}"
            f" failed {total.failed:,} lost {total.lost:,}"
        )
        if total.sent or total.received:
            line += (
                f" | in {(total.sent - previous.sent) / span:,.0f} msg/s"
                f" | out {(total.received - previous.received) / span:,.0f} deliveries/s"
            )
        print(line, file=sys.stderr, flush=True)


async def _run_once(
    settings: BenchSettings, shape: Shape, route: str, farm: Farm | None
) -> dict[str, Any]:
    targets = settings.targets
    specs = plan_connections(shape, len(targets), ephemeral_ports() * 3 // 4)
    hands = deal(specs, settings.workers)
    context = multiprocessing.get_context("spawn")
    processes: list[BaseProcess] = []
    pipes: list[Connection] = []
    baseline = await read_nodes(settings.metrics_urls, within=_READ_WITHIN)
    redis_url = farm.redis_url if farm is not None else ""
    redis_before = await read_redis(redis_url)
    for index, hand in enumerate(hands):
        task = WorkerTask(
            index=index,
            targets=targets,
            specs=tuple(hand),
            concurrency=max(1, settings.concurrency // len(hands)),
            window=settings.window,
            duration=settings.duration,
            # At a fixed rate every delivery is timed; at full rate one in 32 is enough for
            # percentiles and leaves the CPU to counting (a timing costs ~4 µs, a count <1 µs).
            latency_every=1 if shape.rate else 32,
            dialect=settings.dialect,
            token=farm.token if farm is not None else "",
            reconnect=shape.scenario == "failover",
            resume=not settings.at_most_once,
            storm=shape.scenario == "subscribe-storm",
        )
        ours, theirs = context.Pipe()
        process = context.Process(target=worker_main, args=(task, theirs), daemon=True)
        process.start()
        theirs.close()
        processes.append(process)
        pipes.append(ours)
    crew = _Crew(processes, pipes)
    killed: tuple[str, int] | None = None
    rate = (
        ""
        if shape.scenario in UNPUBLISHED
        else f" at {shape.rate:,.0f} msg/s"
        if shape.rate
        else " at full rate"
    )
    via = " via the gateway" if route == "gateway" else ""
    progress = _ProgressLine(f"{shape.scenario}{via}{rate}", crew, len(specs))
    ticker = asyncio.create_task(progress.run())
    try:
        started = time.monotonic()
        await crew.wait_all("ready", 30 + len(specs) / 200)
        setup = time.monotonic() - started
        go = 0
        if shape.scenario == "connect":
            before = baseline
            await asyncio.sleep(settings.duration)  # hold; the node's memory settles
            load = settings.duration
        else:
            before = await read_nodes(settings.metrics_urls, within=_READ_WITHIN)
            redis_before = await read_redis(redis_url)
            go = time.monotonic_ns()
            crew.send("go")
            if shape.scenario == "failover":
                assert farm is not None
                killed = await _kill_one(farm, crew, settings.duration / 2)
            await crew.wait_all("stopped", settings.duration + 60)
            load = (time.monotonic_ns() - go) / 1e9
            await _drain(crew, lambda: _expected_estimate(shape, crew.total().sent))
        after = await read_nodes(settings.metrics_urls, within=_READ_WITHIN)
        redis_after = await read_redis(redis_url)
        crew.send("finish")
        await crew.wait_all("result", 60)
        progress.print()
    finally:
        ticker.cancel()
        crew.close()
    results = [r for r in crew.results if r is not None]
    last = max((r.last_delivery_ns for r in results), default=0)
    since_go = (last - go) / 1e9 if go and last else 0.0
    report = summarize(
        shape,
        results,
        before,
        after,
        RunTiming(setup=setup, load=load, until_last_delivery=since_go, go_ns=go),
        subscribers_per_channel(specs),
        route,
        redis=(redis_before, redis_after),
    )
    if killed is not None:
        victim, kill_ns = killed
        recoveries = [r for result in results for r in result.recoveries]
        report["failover"] = summarize_failover(recoveries, kill_ns, victim, crew.placement)
    return report


async def _kill_one(farm: Farm, crew: _Crew, after: float) -> tuple[str, int]:
    """SIGKILL one node ``after`` seconds into the load; returns its id and when."""
    await asyncio.sleep(after)
    victim = choose_victim(crew.placement, [node.name for node in farm.nodes])
    node = next(node for node in farm.nodes if node.name == victim)
    kill_ns = time.monotonic_ns()
    node.kill()
    farm.nodes.remove(node)
    held = crew.placement[(victim, "subscriber")]
    print(f"killed {victim} (SIGKILL), which held {held} subscribers", file=sys.stderr)
    return victim, kill_ns


def _expected_estimate(shape: Shape, sent: int) -> float:
    # Exact when publishers and subscribers divide evenly over the channels; otherwise the
    # drain ends when deliveries stop coming.
    return sent * shape.subscribers / shape.channels


async def _drain(crew: _Crew, expected: Callable[[], float]) -> None:
    """Wait until every delivery arrived, or none came for a second."""
    deadline = time.monotonic() + _DRAIN_MAX
    received, since = crew.total().received, time.monotonic()
    while time.monotonic() < deadline:
        now_received = crew.total().received
        if now_received >= expected():
            return
        if now_received != received:
            received, since = now_received, time.monotonic()
        elif time.monotonic() - since > _DRAIN_IDLE:
            return
        await asyncio.sleep(0.1)


def _shapes(settings: BenchSettings, scenario: str) -> list[Shape]:
    rates: Sequence[float | None] = settings.rates or [None]
    if scenario in UNPUBLISHED:
        rates = [None]
    return [
        shape_for(
            scenario,
            connections=settings.connections,
            publishers=settings.publishers,
            subscribers=settings.subscribers,
            channels=settings.channels,
            rate=rate,
        )
        for rate in rates
    ]


async def run_bench(settings: BenchSettings, scenarios: Sequence[str]) -> None:
    """Run the scenarios in order; print the tables, write the JSON (and chart) if asked."""
    limit = raise_open_file_limit()
    routes = settings.routes
    async with contextlib.AsyncExitStack() as stack:
        farm = None
        if settings.spawn_servers:
            farm = await stack.enter_async_context(
                spawned_farm(
                    settings.spawn_servers,
                    settings.redis_url,
                    gateway=settings.spawn_gateway,
                    seamless=settings.seamless,
                    peer=settings.peer,
                    publish_delay=settings.publish_delay,
                )
            )
            settings = dataclasses.replace(
                settings, url=farm.url(routes[0]), metrics_url=",".join(farm.metrics_urls)
            )
        readings: list[NodeReading] = await read_nodes(settings.metrics_urls)
        for reading in readings:
            if reading.cpu_seconds is None:
                print(
                    f"note: {reading.url} shows no process metrics; "
                    "CPU and memory are not reported",
                    file=sys.stderr,
                )
        reports = []
        for scenario in scenarios:
            for shape in _shapes(settings, scenario):
                # Each route in turn on the same processes, so their numbers compare.
                for route in routes:
                    if farm is not None:
                        settings = dataclasses.replace(settings, url=farm.url(route))
                    reports.append(await _run_once(settings, shape, route, farm))
    print(render_text(reports))
    if settings.json:
        document = {
            "command": " ".join(sys.argv),
            "targets": [t.url for t in settings.targets],
            "workers": settings.workers,
            "open_file_limit": limit,
            "runs": reports,
        }
        text = json.dumps(document, indent=2) + "\n"
        await asyncio.to_thread(Path(settings.json).write_text, text)
        print(f"results written to {settings.json}", file=sys.stderr)
    if settings.chart:
        from wspool.bench.chart import draw_latency_chart

        draw_latency_chart(reports, settings.chart)
        print(f"chart written to {settings.chart}", file=sys.stderr)
