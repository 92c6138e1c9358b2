"""Records survive the round trip through the flat hashes Redis stores."""

from __future__ import annotations

from wspool.core.keys import Keys
from wspool.core.records import ConnectionRecord, NodeInfo


def test_connection_record_round_trips_through_a_hash() -> None:
    record = ConnectionRecord("c1", "s1", "u1", ("a", "b"), 1700000000.25, 1700000001.5)
    assert ConnectionRecord.from_hash(record.to_hash()) == record


def test_connection_json_uses_the_spec_names_and_iso_times() -> None:
    record = ConnectionRecord("c1", "s1", "u1", ("a",), 0.0, 1.5)
    assert record.to_json() == {
        "id": "c1",
        "serverId": "s1",
        "clientId": "u1",
        "channels": ["a"],
        "createdAt": "1970-01-01T00:00:00.000+00:00",
        "lastActivity": "1970-01-01T00:00:01.500+00:00",
    }


def test_node_info_round_trips_through_a_hash() -> None:
    node = NodeInfo("s1", "ws://h:1", 3, 42, True, False, 5.0, 6.0)
    assert NodeInfo.from_hash(node.to_hash()) == node


def test_keys_follow_the_spec_schema_after_the_prefix() -> None:
    keys = Keys("pool-a:")
    assert keys.conn("c1") == "pool-a:conn:c1"
    assert keys.server_connections("s1") == "pool-a:server:s1:connections"
    assert keys.client_sessions("u1") == "pool-a:client:u1:sessions"
    assert keys.server_health("s1") == "pool-a:server:s1:health"
    assert keys.channel_name(keys.channel("prices.eu")) == "prices.eu"
