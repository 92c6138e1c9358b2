"""Projects a node's live sessions into the shared store, coalescing writes.

The node's memory is the truth about its own connections; the store holds a copy for the
gateway, the REST API and the other nodes. Opens, closes and channel changes are written
within about 20 ms in one batch (one Redis call on one server: see
:mod:`wspool.state.redis_writes`); ``lastActivity`` is copied at a slow interval. An open
writes the whole record and its index sets; a channel change or new activity of a session
written before rewrites only those fields, so a storm of subscribes costs the store little;
a session whose last activity the store already holds (one opened and silent since) is not
rewritten. Every live session is rewritten in full at ``refresh_interval`` (a third of the
records' TTL in the store) so that only records of connections that are gone can expire.
When the store is unreachable the writer keeps what it owes, and once the store is back it
rewrites every live session, so the copy converges after an outage.

Presence (who is subscribed where, ``ConnectionStore.update_presence``) rides on the same
batches: the writer remembers which channels of each session it wrote and sends only the
joins and leaves since, so a subscribe costs one more write in a batch that was going out
anyway, and a published message costs nothing. A full rewrite (refresh, resync) writes every
session's channels again, renewing their expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping

from wspool.core.backoff import Backoff
from wspool.core.records import ConnectionRecord
from wspool.server.session import Session
from wspool.state.engine import ConnectionStore, EngineUnavailableError
from wspool.tasks import cancel_and_wait

__all__ = ["StateWriter"]

WRITE_SLICE = 500
"""Records written in one pipeline at most."""

log = logging.getLogger(__name__)


class StateWriter:
    """Writes session records to the engine in batches, retrying after failures."""

    def __init__(
        self,
        store: ConnectionStore,
        sessions: Mapping[str, Session],
        activity_interval: float,
        refresh_interval: float = 1200.0,
        batch_delay: float = 0.02,
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._activity_interval = activity_interval
        self._batch_delay = batch_delay
        self._dirty: set[str] = set()
        self._changed: set[str] = set()
        self._removed: dict[str, ConnectionRecord] = {}
        self._present: dict[str, frozenset[str]] = {}
        """The channels of each session that the store's presence holds (sessions in no
        channel are left out: an idle connection costs no entry)."""
        self._full = False
        self._activity_since = 0.0
        self._refresh_interval = refresh_interval
        self._refreshed_at = 0.0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._activity_since = self._refreshed_at = time.time()
        self._task = asyncio.create_task(self._run(), name="state-writer")

    async def stop(self) -> None:
        """Write what is owed (best effort), then stop."""
        if self._task is None:
            return
        await cancel_and_wait(self._task)
        self._task = None
        with contextlib.suppress(EngineUnavailableError):
            await self._write()

    def save(self, session: Session) -> None:
        """Write the whole record of a new session (or one to write again in full)."""
        self._dirty.add(session.id)
        self._wakeup.set()

    def update(self, session: Session) -> None:
        """Write the channels of a session saved before."""
        self._changed.add(session.id)
        self._wakeup.set()

    def remove(self, session: Session) -> None:
        self._dirty.discard(session.id)
        self._changed.discard(session.id)
        self._removed[session.id] = session.record()
        self._wakeup.set()

    def resync(self) -> None:
        """Rewrite every live session (after the store comes back)."""
        self._dirty.update(self._sessions)
        self._full = True
        self._wakeup.set()

    async def _run(self) -> None:
        backoff = Backoff(base=0.1, cap=2.0)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._activity_interval):
                    await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(self._batch_delay)  # let a burst of opens share one batch
            try:
                await self._write()
                backoff.reset()
            except EngineUnavailableError as error:
                if not backoff.failures:
                    log.warning("writing connection state failed, will retry: %s", error)
                await asyncio.sleep(backoff.next_delay())
                self._wakeup.set()

    async def _write(self) -> None:
        now = time.time()
        if now - self._activity_since >= self._activity_interval:
            self._activity_since = now
            self._changed.update(
                sid for sid, s in self._sessions.items() if s.last_activity > s.written_activity
            )
        if now - self._refreshed_at >= self._refresh_interval:
            self._refreshed_at = now
            self._dirty.update(self._sessions)
            self._full = True
        dirty, self._dirty = self._dirty, set()
        changed, self._changed = self._changed - dirty, set()
        removed, self._removed = self._removed, {}
        full, self._full = self._full, False
        sessions = self._sessions
        records = [sessions[sid].record() for sid in dirty if sid in sessions]
        updates = [sessions[sid].record() for sid in changed if sid in sessions]
        joined, left = self._presence_changes(records + updates, removed, full)
        try:
            # In slices, so that writing 10,000 opens does not hold the event loop for the
            # time it takes to encode and parse them all at once.
            for part in _slices(records):
                await self._store.save_connections(part)
            for part in _slices(updates):
                await self._store.update_connections(part)
            for part in _slices(list(removed.values())):
                await self._store.remove_connections(part)
            if joined or left:
                server_id = (records or updates or list(removed.values()))[0].server_id
                await self._store.update_presence(server_id, joined, left)
        except EngineUnavailableError:
            self._dirty |= dirty
            self._changed |= changed
            self._removed = removed | self._removed
            self._full |= full
            raise
        for record in records + updates:
            if (session := sessions.get(record.id)) is not None:
                session.written_activity = max(session.written_activity, record.last_activity)
            if record.channels:
                self._present[record.id] = frozenset(record.channels)
            else:
                self._present.pop(record.id, None)
        for sid in removed:
            self._present.pop(sid, None)

    def _presence_changes(
        self, records: list[ConnectionRecord], removed: dict[str, ConnectionRecord], full: bool
    ) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
        """The joins (channel → connection id → client id) and leaves (channel →
        connection ids) since what the store holds; every channel again when ``full``."""
        joined: defaultdict[str, dict[str, str]] = defaultdict(dict)
        left: defaultdict[str, list[str]] = defaultdict(list)
        for record in records:
            before = self._present.get(record.id, frozenset())
            for channel in record.channels if full else set(record.channels) - before:
                joined[channel][record.id] = record.client_id
            for channel in before.difference(record.channels):
                left[channel].append(record.id)
        for sid in removed:
            for channel in self._present.get(sid, ()):
                left[channel].append(sid)
        return joined, left


def _slices(records: list[ConnectionRecord]) -> Iterator[list[ConnectionRecord]]:
    for start in range(0, len(records), WRITE_SLICE):
        yield records[start : start + WRITE_SLICE]
