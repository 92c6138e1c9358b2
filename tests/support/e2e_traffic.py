"""Traffic through a pool during a fault, counted message by message.

A :class:`Publisher` publishes numbered messages on one channel for as long as the fault lasts.
The protocol acknowledges no publish, so what counts as published is what the pool wrote to the
channel's history (read from Redis at the end). :class:`Subscriber` s are the product's own
client, which resumes from its last position after any disconnection. :func:`losses` says, per
subscriber, which published messages never arrived: the promise is that this is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field

from wspool.client import Client
from wspool.client.messages import Data

__all__ = ["Publisher", "Subscriber", "history_numbers", "losses", "out_of_order", "settle"]


@dataclass
class Subscriber:
    """A resuming client subscribed to ``channel``, recording every number it receives."""

    url: str
    channel: str
    token: str | None = None
    received: list[int] = field(default_factory=list)
    client: Client = field(init=False)
    _reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.client = Client(self.url, token=self.token, ping_interval=2.0, ping_timeout=4.0)
        await self.client.connect()
        await self.client.subscribe(self.channel)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.client.messages():
            if isinstance(message, Data) and message.channel == self.channel:
                self.received.append(int(message.payload["n"]))

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.client.close()


@dataclass
class Publisher:
    """Publishes 0, 1, 2, ... every ``interval`` seconds until stopped."""

    url: str
    channel: str
    token: str | None = None
    interval: float = 0.02
    sent: list[int] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self.client = Client(self.url, token=self.token, ping_interval=2.0, ping_timeout=4.0)
        await self.client.connect()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        number = 0
        while not self._stopping.is_set():
            # While disconnected, publish waits for the client's next connection.
            await self.client.publish(self.channel, {"n": number})
            self.sent.append(number)
            number += 1
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
        await self.client.close()


def history_numbers(xrange_output: str) -> list[int]:
    """The ``n`` of each message in ``redis-cli XRANGE`` output of a channel's history, in
    order: what the pool accepted."""
    numbers = []
    for line in xrange_output.splitlines():
        try:
            frame = json.loads(line)
        except ValueError:
            continue
        if isinstance(frame, dict) and isinstance(frame.get("payload"), dict):
            numbers.append(int(frame["payload"]["n"]))
    return numbers


def losses(published: list[int], subscriber: Subscriber) -> list[int]:
    """Published numbers the subscriber never received."""
    got = set(subscriber.received)
    return [number for number in published if number not in got]


def out_of_order(subscriber: Subscriber) -> bool:
    """Whether a number arrived after a higher one (a repeat after a resume aside)."""
    seen: set[int] = set()
    last = -1
    for number in subscriber.received:
        if number in seen:
            continue
        if number < last:
            return True
        seen.add(number)
        last = number
    return False


async def settle(subscribers: list[Subscriber], published: list[int], within: float) -> None:
    """Wait until every subscriber has every published number, or ``within`` seconds pass."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if all(not losses(published, s) for s in subscribers):
            return
        await asyncio.sleep(0.2)
