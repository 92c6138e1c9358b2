"""The records kept in the state store: connections and nodes.

Each record converts to and from the flat string hash that Redis stores, so both engines
and the REST API share one representation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

__all__ = ["ConnectionRecord", "NodeHealth", "NodeInfo", "iso_time"]


def iso_time(timestamp: float) -> str:
    """RFC 3339 UTC time with milliseconds, the form the REST API shows."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    """One live WebSocket connection, as stored under ``conn:{id}``."""

    id: str
    server_id: str
    client_id: str
    channels: tuple[str, ...] = ()
    created_at: float = 0.0
    last_activity: float = 0.0

    def to_hash(self) -> dict[str, str]:
        return {
            "id": self.id,
            "serverId": self.server_id,
            "clientId": self.client_id,
            "channels": json.dumps(list(self.channels)),
            "createdAt": repr(self.created_at),
            "lastActivity": repr(self.last_activity),
        }

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> ConnectionRecord:
        return cls(
            id=data["id"],
            server_id=data["serverId"],
            client_id=data["clientId"],
            channels=tuple(json.loads(data.get("channels", "[]"))),
            created_at=float(data.get("createdAt", 0.0)),
            last_activity=float(data.get("lastActivity", 0.0)),
        )

    def to_json(self) -> dict[str, object]:
        """The ``Connection`` the REST API answers, with ISO times."""
        return {
            "id": self.id,
            "serverId": self.server_id,
            "clientId": self.client_id,
            "channels": list(self.channels),
            "createdAt": iso_time(self.created_at),
            "lastActivity": iso_time(self.last_activity),
        }


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A server node's registry entry, refreshed by its heartbeat."""

    id: str
    url: str
    weight: int = 1
    active_connections: int = 0
    draining: bool = False
    redis_ok: bool = True
    started_at: float = 0.0
    heartbeat_at: float = field(default=0.0, compare=False)

    def to_hash(self) -> dict[str, str]:
        return {
            "id": self.id,
            "url": self.url,
            "weight": str(self.weight),
            "activeConnections": str(self.active_connections),
            "draining": "1" if self.draining else "0",
            "redisOk": "1" if self.redis_ok else "0",
            "startedAt": repr(self.started_at),
            "heartbeatAt": repr(self.heartbeat_at),
        }

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> NodeInfo:
        return cls(
            id=data["id"],
            url=data["url"],
            weight=int(data.get("weight", 1)),
            active_connections=int(data.get("activeConnections", 0)),
            draining=data.get("draining") == "1",
            redis_ok=data.get("redisOk", "1") == "1",
            started_at=float(data.get("startedAt", 0.0)),
            heartbeat_at=float(data.get("heartbeatAt", 0.0)),
        )

    def with_heartbeat(self, now: float) -> NodeInfo:
        return replace(self, heartbeat_at=now)


@dataclass(frozen=True, slots=True)
class NodeHealth:
    """What a gateway's health monitor concluded about a node, under ``server:{id}:health``."""

    server_id: str
    healthy: bool
    last_health_check: float
    circuit: str = "closed"
    draining: bool = False
    checked_by: str = ""

    def to_hash(self) -> dict[str, str]:
        return {
            "serverId": self.server_id,
            "healthy": "1" if self.healthy else "0",
            "lastHealthCheck": repr(self.last_health_check),
            "circuit": self.circuit,
            "draining": "1" if self.draining else "0",
            "checkedBy": self.checked_by,
        }

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> NodeHealth:
        return cls(
            server_id=data["serverId"],
            healthy=data.get("healthy") == "1",
            last_health_check=float(data.get("lastHealthCheck", 0.0)),
            circuit=data.get("circuit", "closed"),
            draining=data.get("draining") == "1",
            checked_by=data.get("checkedBy", ""),
        )
