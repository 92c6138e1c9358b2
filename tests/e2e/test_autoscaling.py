"""The operator scales a pool's servers with its connections, as a user watching would see it.

More connections than ``targetConnectionsPerNode`` allows: the server Deployment grows in steps
of at most ``scaleUpStep`` and never beyond ``maxReplicas``. When they close, it shrinks one node
at a time, each node draining (its clients told to resume elsewhere) before the next goes; the
subscribers that stay lose nothing while the nodes under them go away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

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

pytestmark = pytest.mark.kubernetes

TARGET = 10
MAX_REPLICAS = 10
"""The most a pool may have: the load below asks for more, and must not get it."""
LOAD = 120
STEP = 4


@pytest.fixture(scope="module")
def scaling(kubectl: Kubectl, release: Release) -> Iterator[Pool]:
    spec = default_spec(
        release,
        maxReplicas=MAX_REPLICAS,
        autoscaling={
            "targetConnectionsPerNode": TARGET,
            "scaleUpStep": STEP,
            "scaleDownStabilizationSeconds": 0,
        },
        gateway={"replicas": 1, "serviceType": "NodePort"},
        # The load comes from one address: lift the per-address limits (100 connections, 20
        # attempts a second by default).
        limits={"connectionsPerAddress": 1000, "connectionAttemptsPerAddress": 1000},
        # The drained nodes' clients reconnect, as the test checks (test_seamless.py: the
        # gateways move them instead).
        seamless=False,
    )
    pool = Pool("scaling", "e2e-scaling", spec)
    with applied_pool(kubectl, pool):
        yield pool


@dataclass
class Watch:
    """What ``kubectl get deploy,pods`` showed over time: the server Deployment's replicas,
    its ready pods, and how many server pods were terminating at once."""

    replicas: list[int] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    terminating: list[int] = field(default_factory=list)

    def sample(self, kubectl: Kubectl, pool: Pool) -> None:
        deployment = kubectl.get("deployment", f"{pool.name}-server", pool.namespace)
        self.replicas.append(int(deployment["spec"]["replicas"]))
        self.ready.append(int(deployment["status"].get("readyReplicas", 0)))
        pods = kubectl.items("pods", pool.namespace, pool.servers_selector())
        self.terminating.append(sum(1 for p in pods if p["metadata"].get("deletionTimestamp")))


async def _watch_until(
    kubectl: Kubectl, pool: Pool, watch: Watch, replicas: int, pods: int, within: float
) -> float:
    """Sample until the Deployment wants ``replicas`` and exactly ``pods`` server pods exist
    and are ready; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        await asyncio.to_thread(watch.sample, kubectl, pool)
        if watch.replicas[-1] == replicas and watch.ready[-1] == pods:
            listed = await asyncio.to_thread(
                kubectl.items, "pods", pool.namespace, pool.servers_selector()
            )
            if len(listed) == pods:
                return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise AssertionError(f"servers not at {replicas} within {within}s: {watch}")


async def test_servers_scale_up_in_steps_and_down_one_draining_node_at_a_time_losing_nothing(
    kubectl: Kubectl, release: Release, scaling: Pool
) -> None:
    url = gateway_url(kubectl, scaling)
    channel = "e2e:scaling"
    load = [Subscriber(url, channel) for _ in range(LOAD)]
    for subscriber in load:
        await subscriber.start()
    up = Watch()
    seconds_up = await _watch_until(kubectl, scaling, up, MAX_REPLICAS, MAX_REPLICAS, 300)
    print(f"\n[e2e] {LOAD} connections: 2 -> {MAX_REPLICAS} server nodes in {seconds_up:.1f} s")
    steps = [b - a for a, b in zip(up.replicas, up.replicas[1:], strict=False)]
    assert max(up.replicas) == MAX_REPLICAS, up
    assert all(0 <= step <= STEP for step in steps), f"steps of at most {STEP}: {up.replicas}"

    # Subscribers that stay: some on the first nodes, some on the new ones, so whichever
    # nodes go, some of them are moved.
    stay = load[:5]
    late = [Subscriber(url, channel) for _ in range(4)]
    for subscriber in late:
        await subscriber.start()
    stay += late
    publisher = Publisher(url, channel, interval=0.1)
    await publisher.start()
    for subscriber in load[5:]:
        await subscriber.stop()
    down = Watch()
    try:
        seconds_down = await _watch_until(kubectl, scaling, down, 2, 2, 600)
    finally:
        await publisher.stop()
    print(f"[e2e] load gone: {MAX_REPLICAS} -> 2 server nodes in {seconds_down:.1f} s")
    steps = [a - b for a, b in zip(down.replicas, down.replicas[1:], strict=False)]
    assert all(0 <= step <= 1 for step in steps), f"one node at a time: {down.replicas}"
    assert max(down.terminating) <= 1, f"one node draining at a time: {down.terminating}"

    published = await asyncio.to_thread(published_numbers, kubectl, release, scaling, channel)
    await settle(stay, published, within=20)
    lost = [len(losses(published, s)) for s in stay]
    print(f"[e2e] scale-down: {len(published)} published, lost per subscriber {lost}")
    for subscriber in stay:
        await subscriber.stop()
    assert len(published) > 20
    assert lost == [0] * len(stay)
    assert not any(out_of_order(s) for s in stay)
    assert any(s.client.connections > 1 for s in stay), "a drained node's clients moved"
