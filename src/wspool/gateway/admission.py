"""Admission: the gateway's open files, counted, so that it never runs out of them.

Every client connection is a descriptor, and every relayed one a second (its upstream). A
process at its ``RLIMIT_NOFILE`` is down for everyone: ``accept()`` fails (and asyncio logs
it, again and again), the Redis link cannot reconnect, health checks cannot open a socket.
So the gateway counts what it holds against a budget: the limit less ``--file-reserve``
(for Redis, health checks and the rest of the process) and less three accept bursts. The
event loop accepts up to ``backlog`` sockets each time the listening socket is ready, and a
socket reaches the gateway, and one it closes is released, only turns of the loop later:
three bursts are in flight before the first closes take effect.

- A connection accepted beyond the budget closes the oldest connection that is still
  sending its first request: a flood of half-sent handshakes loses its own oldest sockets,
  and a real client, whose request follows its connect at once, gets in.
- A WebSocket whose upstream would pass the budget closes one such connection too; when
  there is none, it is closed with 1013 ``gateway at capacity``, and a request arriving
  while the gateway is beyond its budget is answered 503 ``AT_CAPACITY``.
- A request whose headers are not complete within ``--handshake-timeout`` is closed
  (``wspool.gateway.front``; then aiohttp's keep-alive timer between requests).
"""

from __future__ import annotations

import asyncio
import resource
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Protocol

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

__all__ = ["MAX_BACKLOG", "Admission", "Connection", "CountedHandler", "file_limit"]

MAX_BACKLOG = 1024
"""The listen queue (and the most sockets the event loop accepts in one go) when the file
limit allows: a reconnect storm waits in the kernel's queue instead of being refused."""


def file_limit() -> int:
    """This process's limit on open descriptors (the soft one, which is what applies)."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Connection(Hashable, Protocol):
    """A client connection as admission sees it: one it may close while it sends its
    request."""

    def force_close(self) -> None: ...


class Admission:
    """The descriptors this replica holds for clients and their upstreams, and its budget."""

    def __init__(self, limit: int, reserve: int) -> None:
        self.limit = limit
        self.backlog = min(MAX_BACKLOG, max(64, limit // 16))
        self.budget = max(limit - reserve - 3 * self.backlog, limit // 2)
        self.sockets = 0
        self.upstreams = 0
        self.evicted = 0
        self.refused = 0
        # Accepted connections whose first request has not arrived yet, oldest first.
        self._pending: OrderedDict[Connection, None] = OrderedDict()
        # Evicted, and released a few turns of the loop later: counted as free already, or
        # every connection accepted meanwhile would evict one more.
        self._releasing: set[Connection] = set()

    @property
    def in_use(self) -> int:
        return self.sockets + self.upstreams - len(self._releasing)

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def full(self) -> bool:
        return self.in_use > self.budget

    def opened(self, connection: Connection) -> None:
        self.sockets += 1
        self._pending[connection] = None
        if self.full:
            self._evict(connection)

    def closed(self, connection: Connection) -> None:
        self.sockets -= 1
        self._pending.pop(connection, None)
        self._releasing.discard(connection)

    def arrived(self, connection: Connection) -> None:
        """``connection``'s first request arrived: it is no longer one to close for room."""
        self._pending.pop(connection, None)

    def admit_request(self, connection: Connection) -> bool:
        """A request arrived on ``connection``; whether it may be served (and counted as
        refused if not)."""
        self._pending.pop(connection, None)
        if self.full:
            self.refused += 1
            return False
        return True

    def reserve_upstream(self) -> bool:
        """Count one upstream socket, if the budget has room for it (made, if need be, by
        closing the oldest connection still sending its request)."""
        if self.in_use + 1 > self.budget and not self._evict(None):
            return False
        self.upstreams += 1
        return True

    def release_upstream(self) -> None:
        self.upstreams -= 1

    def _evict(self, newcomer: Connection | None) -> bool:
        """Close the oldest connection still sending its request (not ``newcomer``)."""
        for connection in self._pending:
            if connection is not newcomer:
                del self._pending[connection]
                self.evicted += 1
                self._releasing.add(connection)
                connection.force_close()
                return True
        return False


class CountedHandler(RequestHandler):
    """aiohttp's connection handler, for a connection :class:`Admission` counts from its
    accept (``wspool.gateway.front`` hands it over once its first request has arrived)."""

    def __init__(self, admission: Admission, manager: web.Server, **options: Any) -> None:
        super().__init__(manager, **options)
        self._admission = admission
        self._detached = False

    def detach(self) -> asyncio.Transport:
        """Let go of the connection without closing it (another protocol carries it on):
        aiohttp ends its handling as if the client had left, and the socket stays counted,
        for its new owner to release."""
        transport = self.transport
        assert transport is not None
        self._detached = True
        self.transport = None  # nothing of aiohttp's writes to it or closes it any more
        self.connection_lost(None)
        return transport

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._detached:
            self._admission.closed(self)
        super().connection_lost(exc)
