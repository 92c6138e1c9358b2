"""The dashboard's snapshot: what each node and the pool look like, and the chart point."""

from __future__ import annotations

from wspool.gateway.model.dashboard import (
    SERIES,
    NodeView,
    ReplicaView,
    percentile,
    pool_snapshot,
)
from wspool.gateway.model.poolstats import NodeSample

REPLICA = ReplicaView(
    id="gw-a", replicas=2, store_up=True, relayed_connections=7, writes_open=False
)


def _node(node_id: str, **changes: object) -> NodeView:
    fields: dict[str, object] = {
        "id": node_id,
        "url": f"ws://{node_id}:8080",
        "healthy": True,
        "circuit": "closed",
        "weight": 1,
        "ramp": 1.0,
        "draining": False,
        "connections": 0,
        "samples": (NodeSample(at=100.0), NodeSample(at=105.0)),
        "latencies_ms": (2.0,),
    }
    fields.update(changes)
    return NodeView(**fields)  # type: ignore[arg-type]


def test_the_nearest_rank_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) == 0.0


def test_a_snapshot_shows_each_node_and_the_pool() -> None:
    busy = _node(
        "node-1",
        connections=30,
        ramp=0.25,
        samples=(
            NodeSample(at=100.0, messages_in=0, messages_out=0, errors=0),
            NodeSample(at=105.0, messages_in=500, messages_out=1500, errors=5),
        ),
        latencies_ms=(1.0, 2.0, 3.0, 40.0),
    )
    down = _node(
        "node-2", healthy=False, circuit="open", draining=True, samples=(), latencies_ms=()
    )
    snapshot = pool_snapshot(
        1000.0, REPLICA, {"strategy": "round-robin", "maxConnections": 99}, [busy, down]
    )
    assert snapshot["gateway"] == {
        "id": "gw-a",
        "replicas": 2,
        "store": "up",
        "relayedConnections": 7,
        "writesOpen": False,
    }
    assert snapshot["config"]["strategy"] == "round-robin"
    assert snapshot["pool"] == {
        "totalConnections": 30,
        "maxConnections": 99,
        "activeServers": 1,
        "totalServers": 2,
    }
    first, second = snapshot["nodes"]
    assert first["ramp"] == 0.25
    assert first["messagesInPerSecond"] == 100.0
    assert first["messagesOutPerSecond"] == 300.0
    assert first["latencyMs"] == 40.0
    assert second == {**second, "healthy": False, "circuit": "open", "draining": True}
    assert second["latencyMs"] is None
    point = dict(zip(SERIES, snapshot["point"], strict=True))
    assert point == {
        "at": 1000.0,
        "connections": 30,
        "messagesInPerSecond": 100.0,
        "messagesOutPerSecond": 300.0,
        "latencyP50": 2.0,
        "latencyP95": 40.0,
        "latencyP99": 40.0,
        "errorRate": 0.01,
    }


def test_a_node_checked_once_has_no_rates_yet() -> None:
    fresh = _node("node-3", samples=(NodeSample(at=100.0, messages_in=9),))
    node = pool_snapshot(0.0, REPLICA, {}, [fresh])["nodes"][0]
    assert node["messagesInPerSecond"] == 0.0
    assert node["healthy"] is True
