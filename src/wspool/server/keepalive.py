"""Keepalive pings for every connection of a node, from one task.

websockets can ping each connection from a task of its own, which costs a task, a timer and
their state per connection (about 1 KB) for the connection's life. A node instead runs one
loop for all of them: every ``interval`` seconds it pings each open connection that has no
ping unanswered, and ``timeout`` seconds after a round it closes with 1011 the connections
whose pong has not come. A round pings in slices, so that a node holding many thousands of
connections does not hold its event loop for the whole round.

A ping is registered with the connection's own bookkeeping (``pending_pings``), so that
websockets matches the pong to it, measures ``latency`` and settles it when the connection
closes, as it does for the pings it sends itself.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from wspool.core.protocol import CloseCode
from wspool.server.guard import CloseHandler
from wspool.server.session import Session
from wspool.tasks import cancel_and_wait

__all__ = ["Keepalive"]

PING_SLICE = 500
"""Connections pinged between two turns of the event loop."""

PING_PAYLOAD = b"wspool"
"""The payload of every keepalive ping: a connection has at most one unanswered."""


class Keepalive:
    """Pings the sessions of one node and closes those that stop answering."""

    def __init__(
        self,
        sessions: Mapping[str, Session],
        interval: float,
        timeout: float,
        close: CloseHandler,
    ) -> None:
        self._sessions = sessions
        self._interval = interval
        self._timeout = timeout
        self._close = close
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="keepalive")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_round = loop.time() + self._interval
        rounds: deque[float] = deque()  # when each round not yet checked finished
        while True:
            due = min(next_round, rounds[0] + self._timeout) if rounds else next_round
            await asyncio.sleep(max(0.0, due - loop.time()))
            while rounds and loop.time() >= rounds[0] + self._timeout:
                self._drop_silent(rounds.popleft())
            if loop.time() >= next_round:
                await self._ping_all()
                rounds.append(loop.time())
                next_round = loop.time() + self._interval

    async def _ping_all(self) -> None:
        for count, session in enumerate(list(self._sessions.values()), 1):
            websocket = session.websocket
            if _open(session) and not websocket.pending_pings:
                _ping(websocket)
            if count % PING_SLICE == 0:
                await asyncio.sleep(0)

    def _drop_silent(self, sent_by: float) -> None:
        """Close the sessions with a ping sent by ``sent_by`` still unanswered."""
        for session in list(self._sessions.values()):
            pings = session.websocket.pending_pings
            if pings and _open(session) and min(sent for _, sent in pings.values()) <= sent_by:
                self._close(session, CloseCode.INTERNAL_ERROR, "keepalive ping timeout")


def _open(session: Session) -> bool:
    return not session.closing and session.websocket.protocol.state is State.OPEN


def _ping(websocket: ServerConnection) -> None:
    """Send a ping now, whatever the connection's send buffer holds (a client that stopped
    reading is the router's to close, not the keepalive's to wait for)."""
    loop = websocket.loop
    websocket.pending_pings[PING_PAYLOAD] = (loop.create_future(), loop.time())
    websocket.protocol.send_ping(PING_PAYLOAD)
    websocket.send_data()
