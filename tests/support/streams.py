"""A publisher that publishes through a fault, subscribers that record what they saw, and
the rules that say whether anything was lost without a word.

The :class:`SteadyPublisher` sends numbered messages at a fixed rate over a plain
WebSocket and keeps every refusal. A :class:`Watcher` is the product's client
(``wspool.client.Client``) recording data and gap notices (``Resubscribed(recovered=False)``)
in arrival order. :func:`assert_nothing_lost_silently` checks a watcher's record against the
channel's history in Redis: consecutive messages follow each other (same epoch, next offset)
unless a gap notice stands between them, nothing comes twice, and it ends with the history's
last message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any, cast

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.store import Store
from tests.support.waiting import eventually
from wspool.client import Client, Data, Resubscribed
from wspool.core.backoff import Backoff
from wspool.core.history import StreamPosition

__all__ = [
    "GAP",
    "SteadyPublisher",
    "Watcher",
    "assert_answers_are_true",
    "assert_nothing_lost_silently",
    "history_payloads",
    "wait_for_last",
]

GAP = "gap"
"""What a watcher records when the client is told that it missed messages."""


class SteadyPublisher:
    """Publishes ``0, 1, 2, …`` on one channel, ``rate`` per second, until stopped."""

    def __init__(self, url: str, channel: str, rate: float = 100.0) -> None:
        self.url = url
        self.channel = channel
        self.rate = rate
        self.sent = 0
        self.server_id = ""
        self.refused: dict[int, str] = {}
        """Payload -> error code, for every publish the node answered with an error."""
        self._ws: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pongs: asyncio.Queue[None] = asyncio.Queue()

    async def start(self) -> SteadyPublisher:
        self._ws = await connect(self.url, compression=None, open_timeout=5)
        hello = json.loads(await self._ws.recv())
        assert hello["type"] == "connected", hello
        self.server_id = str(hello["payload"]["serverId"])
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._publish())]
        return self

    async def _publish(self) -> None:
        assert self._ws is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            due = int((loop.time() - started) * self.rate) + 1
            while self.sent < due:
                frame = {
                    "type": "data",
                    "channel": self.channel,
                    "payload": self.sent,
                    "messageId": f"p{self.sent}",
                }
                await self._ws.send(json.dumps(frame))
                self.sent += 1
            await asyncio.sleep(1 / self.rate)

    async def _read(self) -> None:
        assert self._ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for raw in self._ws:
                frame = json.loads(raw)
                if frame["type"] == "error":
                    self.refused[int(frame["messageId"][1:])] = frame["payload"]["code"]
                elif frame["type"] == "pong":
                    self._pongs.put_nowait(None)

    async def stop(self) -> None:
        """Stop publishing; returns once every answer the node sent before a ping is read."""
        self._tasks[1].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._tasks[1]
        assert self._ws is not None
        await self._ws.send(json.dumps({"type": "ping", "messageId": "last"}))
        async with asyncio.timeout(30):
            await self._pongs.get()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()


@dataclass
class Watcher:
    """A subscriber using the product's client, and everything it was handed, in order."""

    client: Client
    seen: list[tuple[StreamPosition, int] | str] = field(default_factory=list)
    first_server: str = ""
    subscribed_at: StreamPosition | None = None
    _task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, urls: str | list[str], channel: str) -> Watcher:
        watcher = cls(Client(urls, backoff=Backoff(0.05, 0.5)))
        await watcher.client.connect()
        position = await watcher.client.subscribe(channel)
        watcher.subscribed_at = StreamPosition.parse(position)
        watcher.first_server = watcher.client.server_id
        watcher._task = asyncio.create_task(watcher._consume())
        return watcher

    async def _consume(self) -> None:
        async for message in self.client.messages():
            if isinstance(message, Data):
                assert message.offset is not None
                self.seen.append((StreamPosition.parse(message.offset), int(message.payload)))
            elif isinstance(message, Resubscribed) and not message.recovered:
                self.seen.append(GAP)

    @property
    def payloads(self) -> list[int]:
        return [entry[1] for entry in self.seen if not isinstance(entry, str)]

    @property
    def told_of_a_gap(self) -> bool:
        return GAP in self.seen

    async def close(self) -> None:
        await self.client.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def history_payloads(store: Store, key: str) -> list[tuple[StreamPosition, int]]:
    """Every message in a channel's history stream, with its position, oldest first."""
    entries = cast(list[tuple[str, dict[str, str]]], await store.redis.xrange(key))
    out = []
    for _, fields in entries:
        frame: dict[str, Any] = json.loads(fields["f"])
        out.append((StreamPosition.parse(frame["offset"]), int(frame["payload"])))
    return out


async def wait_for_last(watchers: list[Watcher], last: int, within: float = 15.0) -> None:
    """Until every watcher has been handed the message ``last`` (or fails the test)."""

    async def arrived() -> bool:
        return all(w.payloads and w.payloads[-1] >= last for w in watchers)

    await eventually(arrived, within=within, interval=0.05, message=f"message {last} everywhere")


def assert_nothing_lost_silently(watcher: Watcher, top: StreamPosition) -> None:
    """Each message follows the one before it, or a gap notice stands between them."""
    previous = watcher.subscribed_at
    for index, entry in enumerate(watcher.seen):
        if isinstance(entry, str):
            previous = None
            continue
        position, _ = entry
        if previous is not None:
            follows = position.epoch == previous.epoch and position.offset == previous.offset + 1
            assert follows, (
                f"subscriber first on {watcher.first_server} got {position.token} right after"
                f" {previous.token} (entry {index} of {len(watcher.seen)}) and was not told"
                f" of a gap"
            )
        previous = position
    assert previous == top, f"subscriber ended at {previous}, the history at {top.token}"


def assert_answers_are_true(publisher: SteadyPublisher, history: list[int]) -> None:
    """Every publish was either refused and not written, or not refused and written once."""
    written = set(history)
    assert len(written) == len(history), "a message was written twice"
    wrongly_refused = sorted(written & publisher.refused.keys())
    assert not wrongly_refused, f"refused but written: {wrongly_refused}"
    lost = sorted(set(range(publisher.sent)) - written - publisher.refused.keys())
    assert not lost, f"accepted without an error but never written: {lost}"
