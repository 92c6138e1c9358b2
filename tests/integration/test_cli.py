"""The ``wspool`` command as a user runs it: ``wspool dev`` end to end, and bad flags."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.processes import http_get, http_request
from tests.support.redis_server import free_port_run
from tests.support.waiting import poll_until
from tests.support.wsclient import TestClient


@pytest.fixture
def dev() -> Iterator[int]:
    """``wspool dev`` on a free port, with three nodes behind its gateway."""
    port = free_port_run(4)
    process = subprocess.Popen(
        [sys.executable, "-m", "wspool", "dev", "--port", str(port), "--servers", "3"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def serving() -> bool:
            with contextlib.suppress(OSError):
                health = http_get(f"http://127.0.0.1:{port}/api/v1/pool/health")[1]
                return bool(health.get("healthyServers") == 3)
            return False

        poll_until(serving, within=15, interval=0.05, message="wspool dev serving 3 nodes")
        yield port
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_wspool_dev_serves_the_gateway_with_its_nodes_behind_it(dev: int) -> None:
    url = f"ws://127.0.0.1:{dev}/ws"
    async with TestClient(url) as subscriber, TestClient(url) as publisher:
        assert (
            subscriber.connected["payload"]["serverId"]
            != publisher.connected["payload"]["serverId"]
        )
        await subscriber.subscribe("hello")
        await publisher.publish("hello", "world")
        assert (await subscriber.recv())["payload"] == "world"


async def test_wspool_dev_takes_publishes_through_its_rest_api(dev: int) -> None:
    url = f"ws://127.0.0.1:{dev}/ws"
    async with TestClient(url) as a, TestClient(url) as b, TestClient(url) as c:
        nodes = {client.connected["payload"]["serverId"] for client in (a, b, c)}
        assert len(nodes) == 3
        for client in (a, b, c):
            await client.subscribe("hello")
        batch = {"messages": [{"payload": n} for n in range(5)]}
        status, answer = http_request(
            "POST", f"http://127.0.0.1:{dev}/api/v1/channels/hello/messages", batch
        )
        assert status == 201
        for client in (a, b, c):
            received = [await client.recv() for _ in range(5)]
            assert [f["payload"] for f in received] == list(range(5))
            assert [f["offset"] for f in received] == answer["offsets"]


async def test_wspool_publish_sends_one_message_and_prints_its_offset(dev: int) -> None:
    url = f"ws://127.0.0.1:{dev}/ws"
    async with TestClient(url) as subscriber:
        await subscriber.subscribe("hello")
        result = await asyncio.to_thread(
            _wspool, "publish", "hello", '{"to": "world"}', "--url", f"http://127.0.0.1:{dev}"
        )
        assert result.returncode == 0, result.stderr
        received = await subscriber.recv()
        assert received["payload"] == {"to": "world"}
        assert result.stdout.strip() == received["offset"]


@pytest.mark.parametrize(
    ("args", "status", "says"),
    [
        (("hello", "{nope"), 2, "wspool publish: invalid JSON: "),
        (("bad name", "1"), 1, "wspool publish: BAD_REQUEST: invalid channel name"),
    ],
)
def test_wspool_publish_says_in_one_line_what_went_wrong(
    dev: int, args: tuple[str, str], status: int, says: str
) -> None:
    result = _wspool("publish", *args, env={"WSPOOL_URL": f"http://127.0.0.1:{dev}"})
    assert result.returncode == status
    assert result.stderr.startswith(says)
    assert len(result.stderr.strip().splitlines()) == 1


def test_wspool_publish_to_no_gateway_says_so() -> None:
    result = _wspool("publish", "hello", "1", "--url", f"http://127.0.0.1:{free_port_run(1)}")
    assert result.returncode == 1
    assert result.stderr.startswith("wspool publish: UNREACHABLE: POST ")


def _wspool(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wspool", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("server", "--max-connections-per-ip N"),
        ("server", "--connection-attempts-per-ip RATE"),
        ("server", "--messages-per-second RATE"),
        ("server", "--max-channels-per-connection N"),
        ("server", "--ping-interval SECONDS"),
        ("gateway", "--servers URLS"),
        ("dev", "--servers N"),
        ("bench", "--duration SECONDS"),
    ],
)
def test_help_says_what_each_value_is(command: str, shown: str) -> None:
    result = _wspool(command, "--help")
    assert result.returncode == 0
    assert shown in " ".join(result.stdout.split())


def test_the_old_shared_servers_variable_is_reported_deprecated_in_one_line() -> None:
    result = _wspool("gateway", "--port", "0", env={"WSPOOL_SERVERS": "ws://127.0.0.1:1"})
    assert result.returncode == 2  # no key: it stops there, after the notice
    assert result.stderr.splitlines()[0] == (
        "wspool gateway: $WSPOOL_SERVERS is deprecated and will be ignored in the next "
        "release: use $WSPOOL_SERVER_URLS"
    )


def test_a_gateway_with_nowhere_to_find_nodes_exits_with_one_line() -> None:
    result = _wspool("gateway", "--port", "0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "wspool gateway: invalid --servers: give the nodes' URLs, or --redis-url to find them"
    ]


def test_a_bad_static_server_list_names_the_option() -> None:
    result = _wspool("gateway", "--servers", "http://a:1")
    assert result.returncode == 2
    assert result.stderr.startswith("wspool gateway: invalid --servers: must be a ws:// or wss://")


def test_a_gateway_refuses_to_start_without_a_key_unless_told_to_run_open() -> None:
    result = _wspool("gateway", "--redis-url", "redis://127.0.0.1:1")
    assert result.returncode == 2
    assert result.stderr.startswith("wspool gateway: --jwt-secret is missing: give a key")
    assert len(result.stderr.strip().splitlines()) == 1
