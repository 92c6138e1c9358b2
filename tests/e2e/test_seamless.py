"""A scale-down under load that no client notices: the gateways move the drained nodes' clients.

A pool of four server nodes (``seamless`` on, as by default) is scaled to two while a
publisher publishes numbered messages through the gateway Service and subscribers read them.
The two nodes that go drain; their clients must stay connected (each client made exactly one
connection) and receive every message the pool wrote to the channel's history, in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.support.e2e_pools import (
    Pool,
    Release,
    applied_pool,
    default_spec,
    gateway_url,
    published_numbers,
)
from tests.support.e2e_traffic import Publisher, Subscriber, losses, out_of_order, settle
from tests.support.kubectl import Kubectl
from tests.support.waiting import poll_until

pytestmark = pytest.mark.kubernetes

SUBSCRIBERS = 24


@pytest.fixture(scope="module")
def four_nodes(kubectl: Kubectl, release: Release) -> Iterator[Pool]:
    spec = default_spec(
        release,
        replicas=4,
        minReplicas=2,
        maxReplicas=4,
        autoscaling={"enabled": False},
        seamless=True,
        # One address brings all the load: lift the per-address limits.
        limits={"connectionsPerAddress": 1000, "connectionAttemptsPerAddress": 1000},
    )
    pool = Pool("seamless", "e2e-seamless", spec)
    with applied_pool(kubectl, pool):
        yield pool


def _server_pods(kubectl: Kubectl, pool: Pool) -> list[str]:
    return [
        p["metadata"]["name"]
        for p in kubectl.items("pods", pool.namespace, pool.servers_selector())
    ]


async def test_a_scale_down_from_4_to_2_nodes_under_load_disconnects_no_client(
    kubectl: Kubectl, release: Release, four_nodes: Pool
) -> None:
    pool = four_nodes
    await asyncio.to_thread(
        poll_until,
        lambda: len(_server_pods(kubectl, pool)) == 4,
        within=180,
        message="four server pods",
    )
    url = gateway_url(kubectl, pool)
    channel = "e2e:seamless"
    subscribers = [Subscriber(url, channel) for _ in range(SUBSCRIBERS)]
    for subscriber in subscribers:
        await subscriber.start()
    first_nodes = {s.client.server_id for s in subscribers}
    publisher = Publisher(url, channel, interval=0.05)
    await publisher.start()
    try:
        await asyncio.sleep(2)
        started = time.monotonic()
        kubectl.patch_pool(pool.name, pool.namespace, {"replicas": 2})
        await asyncio.to_thread(
            poll_until,
            lambda: len(_server_pods(kubectl, pool)) == 2,
            within=300,
            message="two server pods",
        )
        took = time.monotonic() - started
        print(f"\n[e2e] seamless scale-down: 4 -> 2 server nodes in {took:.1f} s")
        await asyncio.sleep(2)
    finally:
        await publisher.stop()
    remaining = set(_server_pods(kubectl, pool))
    published = await asyncio.to_thread(published_numbers, kubectl, release, pool, channel)
    await settle(subscribers, published, within=20)
    lost = [len(losses(published, s)) for s in subscribers]
    reconnects = [s.client.connections - 1 for s in subscribers]
    print(
        f"[e2e] seamless scale-down: {len(published)} published, lost per subscriber {lost},"
        f" reconnects per subscriber {reconnects}"
    )
    for subscriber in subscribers:
        await subscriber.stop()
    assert len(published) > 50
    assert first_nodes - remaining, "some subscribers were on the nodes that went"
    assert lost == [0] * SUBSCRIBERS
    assert not any(out_of_order(s) for s in subscribers)
    assert reconnects == [0] * SUBSCRIBERS, "no client saw a disconnect"
