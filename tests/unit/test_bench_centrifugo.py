"""The Centrifugo peer as the generator sees it: its JSON protocol, its figures, its config.

The dialect is driven through a real :class:`WireConnection` fed the bytes a server would
send (the 101 answer, then unmasked frames), and what the client writes back is read off
its transport, so framing, batching and replies are checked as they happen on the wire.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections import Counter
from typing import Any

import jwt
import pytest
from websockets.speedups import apply_mask

from wspool.bench.compare import compare
from wspool.bench.dialects import CentrifugoDialect, centrifugo_token, dialect_for
from wspool.bench.measures import NodeReading, sum_labelled
from wspool.bench.peers import PEERS
from wspool.bench.peers.centrifugo import centrifugo_config
from wspool.bench.plan import plan_connections, shape_for, subscribers_per_channel
from wspool.bench.report import RunTiming, render_text, summarize
from wspool.bench.settings import BenchSettings, Target
from wspool.bench.tally import WorkerResult
from wspool.bench.wire import WireConnection
from wspool.core.history import HistoryPolicy

SECRET = "a-secret-of-at-least-32-bytes-for-hs256"


class _Transport(asyncio.Transport):
    """Keeps what the client writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def _server_frame(text: bytes) -> bytes:
    assert len(text) < 126
    return bytes([0x81, len(text)]) + text


def _client_frames(data: bytes) -> list[bytes]:
    """The text of every masked frame the client wrote (after its HTTP request)."""
    frames = []
    pos = data.index(b"\r\n\r\n") + 4
    while pos < len(data):
        length, header = data[pos + 1] & 0x7F, 2
        if length == 126:
            length, header = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
        mask = data[pos + header : pos + header + 4]
        start = pos + header + 4
        frames.append(apply_mask(data[start : start + length], mask))
        pos = start + length
    return frames


def _upgrade(transport: _Transport) -> bytes:
    key = re.search(rb"Sec-WebSocket-Key: (\S+)", bytes(transport.written))
    assert key is not None
    accept = base64.b64encode(
        hashlib.sha1(key[1] + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    )
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


async def _connected() -> tuple[WireConnection, _Transport, list[bytes]]:
    """A connection whose server took the connect command; returns what it delivered."""
    delivered: list[bytes] = []
    token = centrifugo_token(SECRET)
    connection = WireConnection(
        Target("127.0.0.1", 8000, "/connection/websocket"),
        delivered.append,
        dialect_for("centrifugo", token),
    )
    transport = _Transport()
    connection.connection_made(transport)
    assert bytes(transport.written).startswith(b"GET /connection/websocket HTTP/1.1\r\n")
    connection.data_received(_upgrade(transport))
    (connect,) = _client_frames(bytes(transport.written))
    command = json.loads(connect)
    assert command["id"] > 0
    assert command["connect"]["token"] == token
    assert not connection.opened.done()  # in only once the server answers
    reply = {"id": command["id"], "connect": {"client": "c1", "version": "6.9.1", "ping": 25}}
    connection.data_received(_server_frame(json.dumps(reply).encode()))
    assert connection.opened.done()
    return connection, transport, delivered


async def test_the_client_connects_with_an_hs256_token_naming_a_user() -> None:
    await _connected()
    claims = jwt.decode(centrifugo_token(SECRET), SECRET, algorithms=["HS256"])
    assert claims == {"sub": "wspool-bench"}


async def test_a_frame_of_several_lines_is_several_messages_each_counted_once() -> None:
    connection, transport, delivered = await _connected()
    pushes = [b'{"push":{"channel":"bench.0","pub":{"data":{"payload":%d}}}}' % n for n in (11, 12)]
    # Two publications, a publish reply and a ping, as Centrifugo batches them in one frame.
    batch = b"\n".join([pushes[0], b'{"id":7,"publish":{}}', pushes[1], b"{}"])
    frame = bytes([0x81, 126]) + len(batch).to_bytes(2, "big") + batch
    written = len(transport.written)
    connection.data_received(frame[:5])  # split across reads too
    connection.data_received(frame[5:])
    assert delivered == pushes
    # The ping is answered with an empty command; the publish reply needs nothing.
    assert _client_frames(b"\r\n\r\n" + bytes(transport.written[written:])) == [b"{}"]
    assert connection.errors == []


async def test_subscribe_waits_for_its_own_reply_and_reports_a_refusal() -> None:
    connection, transport, _ = await _connected()
    written = len(transport.written)
    subscribing = asyncio.create_task(connection.subscribe("bench.3"))
    await asyncio.sleep(0)
    (sent,) = _client_frames(b"\r\n\r\n" + bytes(transport.written[written:]))
    command = json.loads(sent)
    assert command["subscribe"] == {"channel": "bench.3"}
    connection.data_received(_server_frame(b'{"id":%d,"subscribe":{}}' % command["id"]))
    answer = await subscribing
    assert answer.problem is None

    written = len(transport.written)
    refused = asyncio.create_task(connection.subscribe("private"))
    await asyncio.sleep(0)
    (sent,) = _client_frames(b"\r\n\r\n" + bytes(transport.written[written:]))
    error = b'{"id":%d,"error":{"code":103,"message":"permission denied"}}' % json.loads(sent)["id"]
    connection.data_received(_server_frame(error))
    assert (await refused).problem == "103 permission denied"
    assert connection.errors == ["103"]


async def test_a_refused_connect_fails_the_opening() -> None:
    connection = WireConnection(
        Target("127.0.0.1", 8000, "/connection/websocket"),
        lambda _: None,
        dialect_for("centrifugo", "not-a-token"),
    )
    transport = _Transport()
    connection.connection_made(transport)
    connection.data_received(_upgrade(transport))
    (connect,) = _client_frames(bytes(transport.written))
    refusal = (
        b'{"id":%d,"error":{"code":109,"message":"token expired"}}' % (json.loads(connect)["id"])
    )
    connection.data_received(_server_frame(refusal))
    with pytest.raises(ConnectionError, match="connect refused"):
        await connection.opened
    assert transport.aborted


def test_a_publish_has_an_id_and_stamps_the_send_time_where_the_others_do() -> None:
    frame = CentrifugoDialect("t").publish_frame("bench.0", 123456789, 0)
    assert json.loads(frame) == {
        "id": 1,  # never 0: Centrifugo reads a command without id as a pong
        "publish": {"channel": "bench.0", "data": {"payload": 123456789}},
    }
    stamp = re.search(rb'"payload":(\d+)', b'{"push":{"channel":"bench.0","pub":{"data":' + frame)
    assert stamp is not None
    assert stamp[1] == b"123456789"


def test_the_peers_speak_their_own_dialect_on_their_own_path() -> None:
    assert BenchSettings(spawn_servers=1, peer="centrifugo").dialect == "centrifugo"
    assert BenchSettings(spawn_servers=1, peer="centrifugo-redis").dialect == "centrifugo"
    assert PEERS["centrifugo"].path == "/connection/websocket"
    assert not PEERS["centrifugo"].uses_redis
    assert PEERS["centrifugo-redis"].uses_redis


def test_the_config_listens_on_loopback_opens_channels_to_clients_and_reports_nothing_out() -> None:
    memory = centrifugo_config(8123, SECRET)
    assert memory["http_server"] == {"address": "127.0.0.1", "port": 8123}
    assert memory["engine"] == {"type": "memory"}
    assert memory["client"]["token"]["hmac_secret_key"] == SECRET
    assert memory["channel"]["without_namespace"] == {
        "allow_subscribe_for_client": True,
        "allow_publish_for_client": True,
    }
    assert memory["usage_stats"] == {"disabled": True}
    assert memory["prometheus"]["enabled"]
    assert memory["health"]["enabled"]
    redis = centrifugo_config(8123, SECRET, "redis://127.0.0.1:6390/0")
    assert redis["engine"] == {"type": "redis", "redis": {"address": ["redis://127.0.0.1:6390/0"]}}


_CENTRIFUGO_METRICS = """\
# TYPE centrifugo_node_num_clients gauge
centrifugo_node_num_clients 0
centrifugo_client_connections_inflight{client_name="wspool-bench",transport="websocket"} 40
centrifugo_transport_messages_received{frame_type="publish",transport="websocket"} 500
centrifugo_transport_messages_received{frame_type="subscribe",transport="websocket"} 40
centrifugo_transport_messages_sent{frame_type="push_publication",transport="websocket"} 1000
centrifugo_transport_messages_sent{frame_type="publish",transport="websocket"} 500
process_cpu_seconds_total 1.5
process_resident_memory_bytes 8e+07
"""


def test_centrifugos_labelled_counters_read_as_connections_messages_and_deliveries() -> None:
    reading = NodeReading.from_metrics("http://127.0.0.1:1/metrics", _CENTRIFUGO_METRICS)
    assert reading.connections == 40  # the live gauge, not num_clients (refreshed every 10 s)
    assert reading.received == 500
    assert reading.deliveries == 1000
    assert reading.cpu_seconds == 1.5
    assert not reading.is_gateway
    # A labelled counter shows no sample before its first increment: that reads as 0.
    assert sum_labelled(_CENTRIFUGO_METRICS, "centrifugo_transport_messages_sent") == 1500
    assert sum_labelled("", "centrifugo_transport_messages_sent", frame_type="publish") == 0


def test_many_channels_gives_each_channel_its_publisher_and_two_subscribers() -> None:
    shape = shape_for("many-channels")
    assert (shape.channels, shape.subscribers, shape.publishers, shape.rate) == (
        500,
        1000,
        500,
        2000.0,
    )
    specs = plan_connections(shape, 1, 28_000)
    assert set(subscribers_per_channel(specs).values()) == {2}
    publishers = [s for s in specs if s.role.value == "publisher"]
    assert len({s.channel for s in publishers}) == 500
    assert {s.rate for s in publishers} == {4.0}


def test_a_subscribe_storm_publishes_nothing_and_reports_every_refusal() -> None:
    shape = shape_for("subscribe-storm", subscribers=10_000, publishers=5, rate=100.0)
    assert (shape.subscribers, shape.publishers, shape.channels, shape.rate) == (
        10_000,
        0,
        100,
        0.0,
    )
    result = WorkerResult(opened=4, subscribed=3, refused=Counter({"timeout": 1}))
    result.subscribe.record_ns(2_000_000)
    result.last_subscribed_ns = 1_000_000_000 + 25_000_000
    timing = RunTiming(setup=1.0, load=0.1, until_last_delivery=0.0, go_ns=1_000_000_000)
    storm_shape = shape_for("subscribe-storm", subscribers=4)
    report = summarize(storm_shape, [result], [], [], timing, Counter())
    storm = report["subscribe_storm"]
    assert (storm["planned"], storm["subscribed"], storm["refused"]) == (4, 3, 1)
    assert storm["refusals"] == {"timeout": 1}
    assert storm["all_subscribed_ms"] is None  # one never was
    result.subscribed, result.refused = 4, Counter()
    report = summarize(storm_shape, [result], [], [], timing, Counter())
    assert report["subscribe_storm"]["all_subscribed_ms"] == 25.0
    assert "all subscribed 25.0 ms after the go" in render_text([report])


def test_redis_cpu_is_reported_per_delivery_the_subscribers_received() -> None:
    def redis(cpu: float) -> NodeReading:
        return NodeReading("redis://127.0.0.1:6390/0", cpu, 5e6, 3, None, None, None)

    result = WorkerResult(received=4000, sent_per_channel=Counter({"bench.0": 2000}))
    timing = RunTiming(setup=1.0, load=2.0, until_last_delivery=2.0, go_ns=1)
    report = summarize(
        shape_for("many-channels"),
        [result],
        [],
        [],
        timing,
        Counter(),
        redis=(redis(1.0), redis(1.02)),
    )
    assert report["redis"]["cpu_us_per_delivery"] == 5.0
    assert report["redis"]["cpu_percent"] == 1.0
    assert "redis" in render_text([report])
    without: dict[str, Any] = summarize(
        shape_for("many-channels"), [result], [], [], timing, Counter()
    )
    assert without["redis"] is None


def test_the_side_by_side_compares_the_new_scenarios_too() -> None:
    def storm(after_ms: float) -> dict[str, Any]:
        return {
            "scenario": "subscribe-storm",
            "shape": {"rate": 0.0},
            "subscribe_storm": {
                "all_subscribed_ms": after_ms,
                "subscribe_ms": {"p95_ms": after_ms / 2},
                "refused": 0,
            },
        }

    table = compare([storm(100.0)], [storm(50.0)])
    line = next(line for line in table.splitlines() if "all subscribed" in line)
    assert line.split()[1] == "-"  # no rate for a scenario that publishes nothing
    assert "0.50x" in line


def test_the_history_peer_keeps_what_a_node_keeps_and_the_others_keep_none() -> None:
    node = HistoryPolicy()
    kept = centrifugo_config(8123, SECRET, "redis://127.0.0.1:6390/0", history=True)
    assert kept["channel"]["without_namespace"]["history_size"] == node.size
    assert kept["channel"]["without_namespace"]["history_ttl"] == f"{node.ttl:g}s"
    assert PEERS["centrifugo-redis-history"].history
    for peer in ("centrifugo", "centrifugo-redis"):
        assert not PEERS[peer].history
    plain = centrifugo_config(8123, SECRET, "redis://127.0.0.1:6390/0")
    assert "history_size" not in plain["channel"]["without_namespace"]
