"""One worker process of the load generator: an asyncio loop holding its share of clients.

The parent talks to it over a pipe. The worker opens its connections (at most
``concurrency`` handshakes at a time, each timed until the node's ``connected`` frame),
subscribes, says ``ready``; on ``go`` its publishers publish for ``duration`` seconds, then
it says ``stopped`` and keeps counting deliveries until ``finish``, when it closes its
connections and sends back a :class:`WorkerResult`. Every half second it sends a
:class:`Progress` snapshot for the parent's progress line.

Publishers with a rate of 0 run at full rate with a window: each also subscribes to its own
channel and keeps at most ``window`` messages sent but not yet echoed back, so the node
runs as fast as it can without a queue building up anywhere (in the node, in Redis, in the
kernel). Payloads carry the send time (``time.monotonic_ns()``, one clock for every process
on the machine) so subscribers measure end-to-end latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import resource
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from wspool.bench.histogram import LatencyHistogram
from wspool.bench.plan import ConnectionSpec, Role
from wspool.bench.settings import Target
from wspool.bench.wire import HandshakeError, WireConnection, open_connection

__all__ = ["Progress", "WorkerResult", "WorkerTask", "raise_open_file_limit", "worker_main"]

_STAMP = re.compile(rb'"payload":(\d+)')
_PROGRESS_INTERVAL = 0.5
_BATCH = 50  # frames per write at full rate


def raise_open_file_limit(wanted: int = 1 << 20) -> int:
    """Lift the limit on open files as far as allowed; returns the new soft limit.

    Past the hard limit only with the privilege to raise it (root); otherwise up to it.
    Nodes started with ``--spawn-servers`` inherit the limit, and a node holding 20,000
    clients needs more descriptors than common hard limits of 20,000 allow.
    """
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(OSError):
        wanted = min(wanted, int(Path("/proc/sys/fs/nr_open").read_text()))
    if wanted > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (OSError, ValueError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass(frozen=True, slots=True)
class WorkerTask:
    index: int
    targets: tuple[Target, ...]
    specs: tuple[ConnectionSpec, ...]
    concurrency: int
    window: int
    duration: float
    latency_every: int = 1  # time one delivery in this many (reading a stamp costs CPU)
    connect_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class Progress:
    opened: int = 0
    failed: int = 0
    sent: int = 0
    received: int = 0
    lost: int = 0


@dataclass
class WorkerResult:
    """What one worker saw; the parent adds these up."""

    opened: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    setup: LatencyHistogram = field(default_factory=LatencyHistogram)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    schedule_lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    sent_per_channel: Counter[str] = field(default_factory=Counter)
    received: int = 0
    echoed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    close_codes: Counter[int] = field(default_factory=Counter)
    last_delivery_ns: int = 0


class _Publisher:
    def __init__(self, spec: ConnectionSpec, window: int) -> None:
        self.spec = spec
        self.window = window
        self.sent = 0
        self.echoed = 0
        self.room = asyncio.Event()
        self.prefix = b'{"type":"data","channel":"%s","payload":' % spec.channel.encode()

    def on_echo(self, payload: bytes) -> None:
        self.echoed += 1
        if self.sent - self.echoed <= self.window // 2:
            self.room.set()

    def frames(self, count: int) -> list[bytes]:
        now = time.monotonic_ns()
        first = self.sent
        self.sent += count
        return [
            b'%s%d,"messageId":"%d"}' % (self.prefix, now, n) for n in range(first, first + count)
        ]


class _Worker:
    def __init__(self, task: WorkerTask, pipe: Connection) -> None:
        self.task = task
        self.pipe = pipe
        self.result = WorkerResult()
        self.connections: list[WireConnection] = []
        self.publishers: list[tuple[_Publisher, WireConnection]] = []
        self.subscribers: list[tuple[ConnectionSpec, WireConnection]] = []
        self.finishing = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue[str] = asyncio.Queue()
        loop.add_reader(self.pipe.fileno(), lambda: commands.put_nowait(self.pipe.recv()))
        reporter = asyncio.create_task(self._report())
        try:
            semaphore = asyncio.Semaphore(self.task.concurrency)
            await asyncio.gather(*(self._open(spec, semaphore) for spec in self.task.specs))
            await self._subscribe()
            gc.freeze()  # what is alive now lives to the end: keep the collector off it
            self.pipe.send(("ready", None))
            while (command := await commands.get()) != "finish":
                if command == "go":
                    await self._publish()
                    self.pipe.send(("stopped", None))
        finally:
            reporter.cancel()
            loop.remove_reader(self.pipe.fileno())
        self.finishing = True
        await asyncio.gather(*(c.close() for c in self.connections))
        for publisher, _ in self.publishers:
            self.result.sent_per_channel[publisher.spec.channel] += publisher.sent
            self.result.echoed += publisher.echoed
        for connection in self.connections:
            self.result.errors.update(connection.errors)
        self.pipe.send(("result", self.result))

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(_PROGRESS_INTERVAL)
            r = self.result
            sent = sum(p.sent for p, _ in self.publishers)
            self.pipe.send(("progress", Progress(r.opened, r.failed, sent, r.received, r.lost)))

    async def _open(self, spec: ConnectionSpec, semaphore: asyncio.Semaphore) -> None:
        if spec.role is Role.PUBLISHER:
            publisher = _Publisher(spec, self.task.window)
            on_data = publisher.on_echo
        elif spec.role is Role.SUBSCRIBER:
            on_data = self._on_delivery
        else:
            on_data = _ignore
        target = self.task.targets[spec.target]
        async with semaphore:
            start = time.perf_counter_ns()
            try:
                connection = await open_connection(
                    target, spec.source, on_data, self.task.connect_timeout
                )
            except (OSError, HandshakeError, TimeoutError) as error:
                self.result.failed += 1
                self.result.failures[_describe(error)] += 1
                return
            self.result.setup.record_ns(time.perf_counter_ns() - start)
        self.result.opened += 1
        self.connections.append(connection)
        connection.closed.add_done_callback(lambda _: self._on_closed(connection))
        if spec.role is Role.PUBLISHER:
            self.publishers.append((publisher, connection))
        elif spec.role is Role.SUBSCRIBER:
            self.subscribers.append((spec, connection))

    def _on_closed(self, connection: WireConnection) -> None:
        if not self.finishing:
            self.result.lost += 1
            self.result.close_codes[connection.close_code or 1006] += 1

    async def _subscribe(self) -> None:
        wanted = [(s.channel, c) for s, c in self.subscribers]
        # Full-rate publishers hear their own messages back: that is their window's clock.
        wanted += [(p.spec.channel, c) for p, c in self.publishers if not p.spec.rate]

        async def subscribe(channel: str, connection: WireConnection) -> None:
            try:
                reply = await connection.request(type="subscribe", channel=channel)
            except (ConnectionError, TimeoutError) as error:
                self.result.failures[f"subscribe: {_describe(error)}"] += 1
                return
            if reply.get("type") != "subscribed":
                self.result.failures[f"subscribe: {reply.get('payload')}"] += 1

        semaphore = asyncio.Semaphore(self.task.concurrency)

        async def limited(channel: str, connection: WireConnection) -> None:
            async with semaphore:
                await subscribe(channel, connection)

        await asyncio.gather(*(limited(ch, c) for ch, c in wanted))

    def _on_delivery(self, payload: bytes) -> None:
        now = time.monotonic_ns()
        result = self.result
        result.received += 1
        result.last_delivery_ns = now
        if result.received % self.task.latency_every:
            return
        stamp = _STAMP.search(payload, 14)
        if stamp is not None:
            result.latency.record_ns(now - int(stamp[1]))

    async def _publish(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.task.duration
        await asyncio.gather(
            *(
                self._publish_at_rate(p, c, deadline)
                if p.spec.rate
                else self._publish_windowed(p, c, deadline)
                for p, c in self.publishers
            )
        )

    async def _publish_windowed(
        self, publisher: _Publisher, connection: WireConnection, deadline: float
    ) -> None:
        loop = asyncio.get_running_loop()
        while (left := deadline - loop.time()) > 0 and not connection.closed.done():
            room = publisher.window - (publisher.sent - publisher.echoed)
            if room <= 0:
                publisher.room.clear()
                try:
                    async with asyncio.timeout(left):
                        await publisher.room.wait()
                except TimeoutError:
                    break
                continue
            await connection.writable()
            connection.send_texts(publisher.frames(min(room, _BATCH)))
            await asyncio.sleep(0)

    async def _publish_at_rate(
        self, publisher: _Publisher, connection: WireConnection, deadline: float
    ) -> None:
        loop = asyncio.get_running_loop()
        rate = publisher.spec.rate
        start = loop.time()
        while (now := loop.time()) < deadline and not connection.closed.done():
            due = int((now - start) * rate) + 1 - publisher.sent
            if due > 0:
                # How far behind its schedule the publisher is: if this grows, the generator
                # (not the node) failed to hold the rate.
                late = now - (start + publisher.sent / rate)
                self.result.schedule_lag.record_ns(max(0, int(late * 1e9)))
                await connection.writable()
                connection.send_texts(publisher.frames(due))
            # Wake at most every half millisecond; messages due meanwhile go out together.
            await asyncio.sleep(max(start + publisher.sent / rate - loop.time(), 0.0005))


def _ignore(payload: bytes) -> None:
    pass


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"{type(error).__name__}: {error}"


def worker_main(task: WorkerTask, pipe: Connection) -> None:
    """Entry point of a worker process."""
    raise_open_file_limit()
    try:
        asyncio.run(_Worker(task, pipe).run())
    except KeyboardInterrupt:
        pass
    except BaseException:
        pipe.send(("crashed", traceback.format_exc()))
