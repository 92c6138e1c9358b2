"""One client connection as its node knows it."""

from __future__ import annotations

from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection

from wspool.core.records import ConnectionRecord

__all__ = ["Session"]


@dataclass(eq=False, slots=True)
class Session:
    """A live connection: its ids, its channels, and when it was last heard from.

    ``last_activity`` is updated in memory on every frame; the state writer copies it to
    Redis on its own schedule, so a busy connection does not cost a Redis write per frame.
    """

    id: str
    server_id: str
    client_id: str
    websocket: ServerConnection
    created_at: float
    last_activity: float
    channels: set[str] = field(default_factory=set)
    closing: bool = False
    handover: bool = False
    """Whether its gateway takes a drain's handover notice instead of the close."""
    written_activity: float = 0.0
    """The ``last_activity`` the store holds (the state writer's last write of it)."""

    def record(self) -> ConnectionRecord:
        return ConnectionRecord(
            id=self.id,
            server_id=self.server_id,
            client_id=self.client_id,
            channels=tuple(sorted(self.channels)),
            created_at=self.created_at,
            last_activity=self.last_activity,
        )
