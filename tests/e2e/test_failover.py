"""Pods killed outright (``--grace-period=0 --force``) while messages flow: nothing is lost.

Subscribers are the product's client, connected through the gateway Service; a publisher keeps
publishing numbered messages for the whole fault. Every message the pool wrote to the channel's
history while the fault lasted must reach every subscriber, in order.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid

import pytest

from tests.support.e2e_pools import Pool, Release, gateway_url, published_numbers
from tests.support.e2e_traffic import Publisher, Subscriber, losses, out_of_order, settle
from tests.support.kubectl import Kubectl
from tests.support.waiting import poll_until
from wspool.core.config import GATEWAY_PORT

pytestmark = pytest.mark.kubernetes


def _ready_pods(kubectl: Kubectl, namespace: str, selector: str) -> list[str]:
    names = []
    for pod in kubectl.items("pods", namespace, selector):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        conditions = pod["status"].get("conditions", [])
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            names.append(pod["metadata"]["name"])
    return names


def _relayed_connections(kubectl: Kubectl, namespace: str, pod: str) -> float:
    """What the gateway pod's ``/metrics`` says it relays now, read through the API server."""
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}:{GATEWAY_PORT}/proxy/metrics"
    text = kubectl("get", "--raw", path)
    line = next(x for x in text.splitlines() if x.startswith("wspool_gateway_connections "))
    return float(line.split()[-1])


def _force_delete(kubectl: Kubectl, namespace: str, pod: str) -> None:
    kubectl("delete", "pod", pod, "-n", namespace, "--grace-period=0", "--force")


async def _run_fault(
    kubectl: Kubectl, release: Release, pool: Pool, fault: str
) -> tuple[list[int], list[Subscriber], Publisher]:
    url = gateway_url(kubectl, pool)
    channel = f"e2e:{fault}:{uuid.uuid4().hex[:6]}"
    # Enough that the gateway Service spreads some onto each gateway.
    subscribers = [Subscriber(url, channel) for _ in range(10)]
    for subscriber in subscribers:
        await subscriber.start()
    publisher = Publisher(url, channel, interval=0.05)
    await publisher.start()
    try:
        await asyncio.sleep(2)  # traffic flows before the fault
        if fault == "server":
            # The node with the most subscribers, unless it is the publisher's.
            counts = collections.Counter(s.client.server_id for s in subscribers)
            victim = next(
                node for node, _ in counts.most_common() if node != publisher.client.server_id
            )
            _force_delete(kubectl, pool.namespace, victim)
        else:
            # The gateway relaying the most of them: the Service need not have spread them.
            gateways = _ready_pods(kubectl, pool.namespace, pool.gateways_selector())
            relayed = {g: _relayed_connections(kubectl, pool.namespace, g) for g in gateways}
            victim = max(relayed, key=lambda g: relayed[g])
            print(f"\n[e2e] connections relayed per gateway pod: {sorted(relayed.values())}")
            _force_delete(kubectl, pool.namespace, victim)
        # The fault lasts until the Deployment has its pods back.
        started = time.monotonic()
        selector = pool.servers_selector() if fault == "server" else pool.gateways_selector()
        await asyncio.to_thread(
            poll_until,
            lambda: len(_ready_pods(kubectl, pool.namespace, selector)) == 2,
            within=120,
            message=f"the {fault} Deployment back to 2 ready pods",
        )
        print(f"\n[e2e] {fault} pod killed: back to 2 ready in {time.monotonic() - started:.1f} s")
        await asyncio.sleep(2)  # and traffic flows after it
    finally:
        await publisher.stop()
    published = await asyncio.to_thread(published_numbers, kubectl, release, pool, channel)
    await settle(subscribers, published, within=20)
    for subscriber in subscribers:
        await subscriber.stop()
    return published, subscribers, publisher


async def test_subscribers_of_a_killed_server_pod_resume_on_other_nodes_and_lose_nothing(
    kubectl: Kubectl, release: Release, chat: Pool
) -> None:
    published, subscribers, publisher = await _run_fault(kubectl, release, chat, "server")
    assert len(published) >= 50, "the publisher kept publishing through the fault"
    lost = {i: losses(published, s) for i, s in enumerate(subscribers)}
    print(
        f"[e2e] server pod killed: {len(published)} published, lost per subscriber "
        f"{[len(v) for v in lost.values()]}, {len(publisher.sent)} sent"
    )
    assert all(not missing for missing in lost.values()), lost
    assert not any(out_of_order(s) for s in subscribers)
    assert any(s.client.connections > 1 for s in subscribers), "someone was moved"


async def test_clients_of_a_killed_gateway_pod_reconnect_through_the_other(
    kubectl: Kubectl, release: Release, chat: Pool
) -> None:
    published, subscribers, _ = await _run_fault(kubectl, release, chat, "gateway")
    assert len(published) >= 50
    lost = {i: losses(published, s) for i, s in enumerate(subscribers)}
    print(
        f"[e2e] gateway pod killed: {len(published)} published, lost per subscriber "
        f"{[len(v) for v in lost.values()]}"
    )
    assert all(not missing for missing in lost.values()), lost
    assert not any(out_of_order(s) for s in subscribers)
    assert any(s.client.connections > 1 for s in subscribers), "someone reconnected"
