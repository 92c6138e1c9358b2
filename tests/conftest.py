"""Fixtures shared by every test tier.

The session starts its own redis-server on a free port (or uses ``WSPOOL_TEST_REDIS_URL``)
and every test that asks for Redis gets an empty database. A Redis Cluster (3 primaries, a
replica each) and a Sentinel-watched primary are started once, by the first test that asks
for one (``redis_cluster``, ``redis_sentinel``); tests share them under key prefixes of
their own. The tiers that run containers
(tests/e2e, tests/compose) share one build of the images (``built_images``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator, Iterator

import pytest
import redis.asyncio as aioredis

from tests.support.cluster_logs import cluster_for
from tests.support.images import TestImages, build_test_images
from tests.support.redis_cluster import RedisCluster, RedisSentinel
from tests.support.redis_server import RedisServer
from tests.support.store import Store


@pytest.fixture(scope="session")
def redis_session_url() -> Iterator[str]:
    given = os.environ.get("WSPOOL_TEST_REDIS_URL")
    if given:
        yield given
        return
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """The session's Redis Cluster; a test that fails a primary over heals it again."""
    cluster = RedisCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[RedisSentinel]:
    """The session's Sentinel-watched primary (with one replica)."""
    with RedisSentinel().running() as sentinel:
        yield sentinel


@pytest.fixture
async def redis_url(redis_session_url: str) -> str:
    """A Redis URL whose database is empty when the test starts."""
    client = aioredis.Redis.from_url(redis_session_url)
    await client.flushdb()
    await client.aclose()
    return redis_session_url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may stop and restart."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    """What the nodes wrote to Redis, for assertions."""
    reader = Store(redis_url)
    yield reader
    await reader.close()


@pytest.fixture(scope="session")
def built_images() -> TestImages:
    """The project's image from the Dockerfile and a Redis image, built once per session with
    podman on a local Debian base (nothing pulled; podman's cache makes a rebuild quick)."""
    return build_test_images()


_LOG_MARKS = pytest.StashKey[dict[str, int]]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    cluster = cluster_for(item)
    if cluster is not None:
        item.stash[_LOG_MARKS] = cluster.log_marks()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, append what each component of the test's cluster logged during it."""
    report = yield
    cluster = cluster_for(item)
    if report.failed and cluster is not None:
        for title, text in cluster.log_sections(item.stash.get(_LOG_MARKS, {})):
            report.sections.append((title, text))
    return report
