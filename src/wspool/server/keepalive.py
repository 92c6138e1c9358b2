"""Keepalive pings for every connection of a node, from one task.

websockets can ping each connection from a task of its own, which costs a task, a timer and
their state per connection (about 1 KB) for the connection's life. A node instead runs one
loop for all of them: every ``interval`` seconds it starts a round that pings each open
connection with no ping unanswered, and ``timeout`` seconds after a round's last ping it
closes with 1011 the connections whose pong has not come.

A round is spread over a quarter of the interval, in slices of :data:`PING_SLICE`
connections. Every ping is a system call that wakes a client; sent all at once, a round over
1,500 connections held the event loop for 20-30 ms, and every message that arrived meanwhile
waited that long (it showed in the many-channels benchmark's tail latency). A slice holds it
for about a millisecond.

A ping is registered with the connection's own bookkeeping (``pending_pings``), so that
websockets matches the pong to it, measures ``latency`` and settles it when the connection
closes, as it does for the pings it sends itself.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Mapping

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from wspool.core.protocol import CloseCode
from wspool.server.guard import CloseHandler
from wspool.server.session import Session
from wspool.tasks import cancel_and_wait

__all__ = ["Keepalive"]

PING_SLICE = 25
"""Connections pinged at once; a round pauses between two slices."""

ROUND_SPREAD = 0.25
"""The share of the interval a round's slices are spread over."""

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
        unpinged: deque[Session] = deque()  # the round's sessions not pinged yet
        pause = 0.0  # between two slices of the round
        next_slice = next_round
        rounds: deque[float] = deque()  # when each round not yet checked sent its last ping
        while True:
            due = next_slice if unpinged else next_round
            if rounds:
                due = min(due, rounds[0] + self._timeout)
            await asyncio.sleep(max(0.0, due - loop.time()))
            now = loop.time()
            while rounds and now >= rounds[0] + self._timeout:
                self._drop_silent(rounds.popleft())
            if not unpinged and now >= next_round:
                unpinged.extend(self._sessions.values())
                slices = math.ceil(len(unpinged) / PING_SLICE)
                pause = self._interval * ROUND_SPREAD / slices if slices > 1 else 0.0
                next_slice = now
                next_round = now + self._interval
            if unpinged and now >= next_slice:
                self._ping_slice(unpinged)
                next_slice = now + pause
                if not unpinged:
                    rounds.append(loop.time())

    @staticmethod
    def _ping_slice(unpinged: deque[Session]) -> None:
        for _ in range(min(PING_SLICE, len(unpinged))):
            session = unpinged.popleft()
            if _open(session) and not session.websocket.pending_pings:
                _ping(session.websocket)

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
