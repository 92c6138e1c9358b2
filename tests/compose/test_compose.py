"""compose.yaml as a user runs it: ``up`` gives a pool that serves through its gateways with
the secrets of the env file, goes on when a node's container is killed (the gateways move its
clients, none reconnects), and ``down -v`` leaves no container, pod, network or volume
behind."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.compose.conftest import GATEWAYS, SERVERS, SERVICES, Pool
from tests.support.e2e_traffic import Publisher, Subscriber, history_numbers, losses, settle
from tests.support.processes import http_request
from tests.support.tokens import hs256
from tests.support.waiting import eventually

pytestmark = pytest.mark.containers


def test_every_service_is_healthy_and_only_the_gateways_are_published(
    compose_pool: Pool,
) -> None:
    project = compose_pool.project
    published = {service: project.published_ports(service) for service in SERVICES}
    healthy = {service: project.healthy(service) for service in SERVICES}
    gateways = [compose_pool.health(index) for index in range(len(GATEWAYS))]

    assert [service for service, ports in published.items() if ports] == list(GATEWAYS)
    assert all(
        port.endswith(f"127.0.0.1:{compose_pool.gateway_ports[index]}")
        for index, gateway in enumerate(GATEWAYS)
        for port in published[gateway]
    ), published
    assert all(healthy.values()), healthy
    assert [(g["status"], g["servers"], g["replicas"]) for g in gateways] == [("ok", 3, 2)] * 2


def test_the_gateways_take_their_admin_token_from_the_env_file(compose_pool: Pool) -> None:
    url = f"http://127.0.0.1:{compose_pool.gateway_ports[1]}/api/v1/pool/stats"

    anonymous, _ = http_request("GET", url)
    admitted, stats = http_request(
        "GET", url, headers={"Authorization": f"Bearer {compose_pool.admin_token}"}
    )

    assert anonymous == 401
    assert admitted == 200, stats


@contextlib.asynccontextmanager
async def _traffic(
    pool: Pool, subscribers: int
) -> AsyncIterator[tuple[list[Subscriber], Publisher]]:
    """Resuming subscribers spread over both gateways, and a publisher of numbered messages
    through the first, all on one fresh channel; stopped at the end."""
    token = hs256(secret=pool.jwt_secret, subscribe=["*"], publish=["*"])
    channel = f"compose:{uuid.uuid4().hex[:6]}"
    started = [Subscriber(pool.gateway_url(i % 2), channel, token) for i in range(subscribers)]
    publisher = Publisher(pool.gateway_url(0), channel, token, interval=0.05)
    try:
        for subscriber in started:
            await subscriber.start()
        await publisher.start()
        yield started, publisher
    finally:
        await publisher.stop()
        for subscriber in started:
            await subscriber.stop()


async def test_clients_of_both_gateways_receive_what_any_node_publishes(
    compose_pool: Pool,
) -> None:
    async with _traffic(compose_pool, 6) as (subscribers, _):
        await eventually(
            lambda: _all_received(subscribers, 10), within=15, message="10 messages everywhere"
        )

    nodes = {subscriber.client.server_id for subscriber in subscribers}
    assert len(nodes) >= 2, nodes
    assert nodes <= set(SERVERS)


async def test_the_pool_goes_on_when_a_node_container_is_killed(compose_pool: Pool) -> None:
    project = compose_pool.project
    async with _traffic(compose_pool, 9) as (subscribers, publisher):
        await asyncio.sleep(1)  # traffic flows before the fault
        counts = collections.Counter(s.client.server_id for s in subscribers)
        publishers_node = publisher.client.server_id
        victim = next(node for node, _ in counts.most_common() if node != publishers_node)
        moved = [s for s in subscribers if s.client.server_id == victim]
        heard = {id(s): len(s.received) for s in moved}
        await asyncio.to_thread(project.kill, victim)
        await eventually(
            lambda: _hearing_again(moved, heard, 20),
            within=30,
            interval=0.2,
            message=f"the clients of {victim} receive again",
        )
        await asyncio.sleep(1)  # and traffic flows after it
        await publisher.stop()
        history = await asyncio.to_thread(
            project.exec, "redis", "redis-cli", "XRANGE", f"hist:{{{publisher.channel}}}", "-", "+"
        )
        published = history_numbers(history)
        await settle(subscribers, published, within=15)

    assert moved
    assert len(published) >= 30, "the publisher went on through the fault"
    lost = {index: losses(published, s) for index, s in enumerate(subscribers)}
    assert all(not missing for missing in lost.values()), lost
    # The gateways moved the sessions (seamless, as compose.yaml leaves it): nobody reconnected.
    assert [s.client.connections for s in subscribers] == [1] * len(subscribers)


def test_down_removes_every_container_network_and_volume(compose_pool: Pool) -> None:
    compose_pool.project.down()

    assert compose_pool.project.leftovers() == []


async def _all_received(subscribers: list[Subscriber], count: int) -> bool:
    return all(len(subscriber.received) >= count for subscriber in subscribers)


async def _hearing_again(subscribers: list[Subscriber], heard: dict[int, int], more: int) -> bool:
    """Each subscriber received ``more`` messages past what it had heard at the fault."""
    return all(len(s.received) >= heard[id(s)] + more for s in subscribers)
