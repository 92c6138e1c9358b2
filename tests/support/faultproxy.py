"""A TCP proxy that can cut the network between a process and the server it talks to.

``cut()`` closes every connection and refuses new ones (a crashed link, seen at once);
``blackhole()`` keeps connections open, accepts new ones, and forwards nothing (a silent
partition, seen only by timeouts); ``heal()`` forwards again, on new connections and on the
old ones that are still open.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum

__all__ = ["FaultProxy"]


class _Mode(enum.Enum):
    FORWARD = "forward"
    CUT = "cut"
    BLACKHOLE = "blackhole"


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = _Mode.FORWARD
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.mode = _Mode.CUT
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._close_all()
        if self._server is not None:
            await self._server.wait_closed()

    def cut(self) -> None:
        self.mode = _Mode.CUT
        self._close_all()

    def blackhole(self) -> None:
        self.mode = _Mode.BLACKHOLE

    def heal(self) -> None:
        self.mode = _Mode.FORWARD

    def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self.mode is _Mode.CUT:
            self._close_all()
            return
        if self.mode is _Mode.BLACKHOLE:  # accepted, and never answered
            self._track(asyncio.create_task(self._pump(reader, None)))
            return
        this = asyncio.current_task()
        assert this is not None
        self._track(this)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        if self.mode is not _Mode.FORWARD:
            self._close_all()
            return
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            self._track(asyncio.create_task(self._pump(source, sink)))

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter | None) -> None:
        try:
            while data := await source.read(65536):
                if sink is None or self.mode is _Mode.BLACKHOLE:
                    continue  # swallowed: neither side hears from the other
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if sink is not None:
                with contextlib.suppress(Exception):
                    sink.transport.abort()
                self._writers.discard(sink)
