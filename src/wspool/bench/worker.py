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

With ``reconnect`` (the ``failover`` scenario) a connection closed under it opens again
through the same target, resubscribes, and keeps a :class:`Recovery` record of when it was
cut, back in, subscribed, and receiving again. With ``resume`` it resubscribes with
``since`` its last position (the offset of the last message it got, or the channel's
offset when it subscribed), so the node replays what it missed (docs/recovery.md); each
subscriber then checks its offsets for gaps and duplicates.

With ``storm`` (the ``subscribe-storm`` scenario) nobody subscribes before ``go``; on ``go``
every subscriber sends its subscribe at once, and each answer is timed and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import re
import resource
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from wspool.bench.dialects import Dialect, Subscription, dialect_for
from wspool.bench.plan import ConnectionSpec, Role, messages_due
from wspool.bench.settings import Target
from wspool.bench.tally import Progress, Recovery, WorkerResult
from wspool.bench.wire import HandshakeError, WireConnection, open_connection
from wspool.core.backoff import Backoff
from wspool.tasks import cancel_and_wait

__all__ = [
    "WorkerTask",
    "raise_open_file_limit",
    "worker_main",
]

_STAMP = re.compile(rb'"payload":(\d+)')
_OFFSET = re.compile(rb'"offset":"([^"]*):(\d+)"')
_PROGRESS_INTERVAL = 0.5
_BATCH = 50  # frames per write at full rate
_RETRY_FIRST, _RETRY_MAX = 0.05, 1.0  # reconnect backoff: base and cap, in seconds
_RECONNECT_FOR = 30.0  # a connection that cannot get back in this long gives up


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
    dialect: str = "wspool"
    token: str = ""  # the connection token the dialect presents (Centrifugo's)
    reconnect: bool = False
    resume: bool = False
    storm: bool = False


class _Publisher:
    def __init__(self, spec: ConnectionSpec, window: int, dialect: Dialect) -> None:
        self.spec = spec
        self.window = window
        self.sent = 0
        self.echoed = 0
        self.room = asyncio.Event()
        self.frame = dialect.publish_frame

    def on_echo(self, payload: bytes) -> None:
        self.echoed += 1
        if self.sent - self.echoed <= self.window // 2:
            self.room.set()

    def frames(self, count: int) -> list[bytes]:
        now = time.monotonic_ns()
        first = self.sent
        self.sent += count
        frame, channel = self.frame, self.spec.channel
        return [frame(channel, now, n) for n in range(first, first + count)]


class _Client:
    """One planned connection and whichever socket currently carries it."""

    def __init__(self, spec: ConnectionSpec, publisher: _Publisher | None) -> None:
        self.spec = spec
        self.publisher = publisher
        self.connection: WireConnection | None = None
        self.recovery: Recovery | None = None
        self.position = ""  # the last offset token heard, "epoch:n"
        self.epoch = b""
        self.last = -1  # its n; -1 = none yet


class _Worker:
    def __init__(self, task: WorkerTask, pipe: Connection) -> None:
        self.task = task
        self.pipe = pipe
        self.dialect = dialect_for(task.dialect, task.token)
        self.result = WorkerResult()
        self.clients: list[_Client] = []
        self.finishing = False
        self.rejoining: set[asyncio.Task[None]] = set()

    @property
    def connections(self) -> list[WireConnection]:
        return [c.connection for c in self.clients if c.connection is not None]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue[str] = asyncio.Queue()
        loop.add_reader(self.pipe.fileno(), lambda: commands.put_nowait(self.pipe.recv()))
        reporter = asyncio.create_task(self._report())
        try:
            semaphore = asyncio.Semaphore(self.task.concurrency)
            await asyncio.gather(*(self._open(spec, semaphore) for spec in self.task.specs))
            if not self.task.storm:
                await self._subscribe_all()
            gc.freeze()  # what is alive now lives to the end: keep the collector off it
            self.pipe.send(("ready", self._placement()))
            while (command := await commands.get()) != "finish":
                if command == "go":
                    await (self._storm() if self.task.storm else self._publish())
                    self.pipe.send(("stopped", None))
        finally:
            reporter.cancel()
            loop.remove_reader(self.pipe.fileno())
        self.finishing = True
        await cancel_and_wait(*self.rejoining)
        await asyncio.gather(*(c.close() for c in self.connections))
        for client in self.clients:
            if client.publisher is not None:
                self.result.sent_per_channel[client.spec.channel] += client.publisher.sent
                self.result.echoed += client.publisher.echoed
        for connection in self.connections:
            self.result.errors.update(connection.errors)
        self.pipe.send(("result", self.result))

    def _placement(self) -> Counter[tuple[str, str]]:
        """How many connections of each role landed on each server (by its id)."""
        return Counter(
            (c.connection.server_id, c.spec.role.value)
            for c in self.clients
            if c.connection is not None
        )

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(_PROGRESS_INTERVAL)
            r = self.result
            sent = sum(c.publisher.sent for c in self.clients if c.publisher is not None)
            self.pipe.send(("progress", Progress(r.opened, r.failed, sent, r.received, r.lost)))

    def _on_data(self, client: _Client) -> Callable[[bytes], None]:
        if client.publisher is not None:
            return client.publisher.on_echo
        if client.spec.role is not Role.SUBSCRIBER:
            return _ignore
        if not self.task.reconnect:
            return self._on_delivery

        result = self.result

        def tracked(payload: bytes) -> None:
            recovery = client.recovery
            if recovery is not None and recovery.resubscribed_ns and not recovery.receiving_ns:
                recovery.receiving_ns = time.monotonic_ns()
            found = _OFFSET.search(payload, len(payload) - 64)
            if found is not None:
                epoch, number = found[1], int(found[2])
                if epoch == client.epoch and client.last >= 0:
                    if number <= client.last:
                        result.duplicates += 1
                        return
                    result.gaps += number - client.last - 1
                client.epoch, client.last = epoch, number
                client.position = f"{epoch.decode()}:{number}"
            self._on_delivery(payload)

        return tracked

    async def _connect(self, client: _Client) -> WireConnection:
        return await open_connection(
            self.task.targets[client.spec.target],
            client.spec.source,
            self._on_data(client),
            self.task.connect_timeout,
            self.dialect,
        )

    async def _open(self, spec: ConnectionSpec, semaphore: asyncio.Semaphore) -> None:
        publisher = (
            _Publisher(spec, self.task.window, self.dialect)
            if spec.role is Role.PUBLISHER
            else None
        )
        client = _Client(spec, publisher)
        async with semaphore:
            start = time.perf_counter_ns()
            try:
                connection = await self._connect(client)
            except (OSError, HandshakeError, TimeoutError) as error:
                self.result.failed += 1
                self.result.failures[_describe(error)] += 1
                return
            self.result.setup.record_ns(time.perf_counter_ns() - start)
        self.result.opened += 1
        self._attach(client, connection)
        self.clients.append(client)

    def _attach(self, client: _Client, connection: WireConnection) -> None:
        client.connection = connection
        connection.closed.add_done_callback(lambda _: self._on_closed(client, connection))

    def _on_closed(self, client: _Client, connection: WireConnection) -> None:
        if self.finishing:
            return
        self.result.lost += 1
        self.result.close_codes[connection.close_code or 1006] += 1
        if self.task.reconnect:
            recovery = Recovery(client.spec.role.value, connection.server_id, time.monotonic_ns())
            client.recovery = recovery
            self.result.recoveries.append(recovery)
            task = asyncio.create_task(self._rejoin(client, recovery))
            self.rejoining.add(task)
            task.add_done_callback(self.rejoining.discard)

    async def _rejoin(self, client: _Client, recovery: Recovery) -> None:
        """Back in through the same target, at once and then with the clients' backoff, then
        resubscribe."""
        backoff = Backoff(base=_RETRY_FIRST, cap=_RETRY_MAX)
        delay = 0.0
        deadline = time.monotonic() + _RECONNECT_FOR
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = backoff.next_delay()
            recovery.attempts += 1
            try:
                connection = await self._connect(client)
            except (OSError, HandshakeError, TimeoutError):
                continue
            recovery.reopened_ns = time.monotonic_ns()
            recovery.server_after = connection.server_id
            channel = self._channel_to_hear(client)
            if channel:
                since = client.position if self.task.resume else ""
                answer = await self._subscribe(channel, connection, since)
                if answer.problem is not None:
                    await connection.close(within=0.5)
                    continue
                recovery.since, recovery.recovered = since, answer.recovered
                self._note_position(client, answer)
            recovery.resubscribed_ns = time.monotonic_ns()
            self._attach(client, connection)
            return

    def _channel_to_hear(self, client: _Client) -> str:
        if client.spec.role is Role.SUBSCRIBER:
            return client.spec.channel
        # Full-rate publishers hear their own messages back: that is their window's clock.
        if client.publisher is not None and not client.spec.rate:
            return client.spec.channel
        return ""

    async def _subscribe(
        self, channel: str, connection: WireConnection, since: str = ""
    ) -> Subscription:
        try:
            return await connection.subscribe(channel, since)
        except (ConnectionError, TimeoutError) as error:
            return Subscription(problem=_describe(error))

    @staticmethod
    def _note_position(client: _Client, answer: Subscription) -> None:
        """Before any message, the channel's offset at subscribing is where to resume from."""
        if answer.offset and client.last < 0:
            client.position = answer.offset

    async def _subscribe_all(self) -> None:
        semaphore = asyncio.Semaphore(self.task.concurrency)

        async def limited(client: _Client, channel: str, connection: WireConnection) -> None:
            async with semaphore:
                answer = await self._subscribe(channel, connection)
            if answer.problem is not None:
                self.result.failures[f"subscribe: {answer.problem}"] += 1
            self._note_position(client, answer)

        await asyncio.gather(
            *(
                limited(client, channel, client.connection)
                for client in self.clients
                if client.connection is not None and (channel := self._channel_to_hear(client))
            )
        )

    async def _storm(self) -> None:
        """Every subscriber subscribes at once; each answer is timed, each refusal counted."""
        result = self.result

        async def subscribe(client: _Client, connection: WireConnection) -> None:
            start = time.monotonic_ns()
            answer = await self._subscribe(client.spec.channel, connection)
            done = time.monotonic_ns()
            if answer.problem is not None:
                result.refused[answer.problem] += 1
                return
            result.subscribed += 1
            result.subscribe.record_ns(done - start)
            result.last_subscribed_ns = max(result.last_subscribed_ns, done)

        await asyncio.gather(
            *(
                subscribe(client, client.connection)
                for client in self.clients
                if client.connection is not None and client.spec.role is Role.SUBSCRIBER
            )
        )

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
                self._publish_at_rate(c, deadline)
                if c.spec.rate
                else self._publish_windowed(c, deadline)
                for c in self.clients
                if c.publisher is not None
            )
        )

    def _live(self, client: _Client) -> WireConnection | None:
        """The client's socket if it is open; None while it is cut (and being reconnected)."""
        connection = client.connection
        if connection is None or connection.closed.done():
            return None
        return connection

    async def _publish_windowed(self, client: _Client, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        publisher = client.publisher
        assert publisher is not None
        while (left := deadline - loop.time()) > 0:
            connection = self._live(client)
            if connection is None:
                if not self.task.reconnect:
                    return
                await asyncio.sleep(0.01)
                continue
            room = publisher.window - (publisher.sent - publisher.echoed)
            if room <= 0:
                publisher.room.clear()
                try:
                    async with asyncio.timeout(min(left, 0.5)):
                        await publisher.room.wait()
                except TimeoutError:
                    if self.task.reconnect:
                        # Echoes of a cut connection never come: start the window afresh.
                        publisher.echoed = publisher.sent
                continue
            await connection.writable()
            connection.send_texts(publisher.frames(min(room, _BATCH)))
            await asyncio.sleep(0)

    async def _publish_at_rate(self, client: _Client, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        publisher = client.publisher
        assert publisher is not None
        rate = publisher.spec.rate
        # Each on its own phase of its interval (for as long as the others): publishers started
        # together would otherwise publish in lockstep, every one in the same millisecond.
        phase = random.random() / rate
        start = loop.time() + phase
        while (now := loop.time()) < deadline + phase:
            connection = self._live(client)
            if connection is None and not self.task.reconnect:
                return
            due = messages_due(now - start, rate, publisher.sent)
            if due and connection is not None:
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
