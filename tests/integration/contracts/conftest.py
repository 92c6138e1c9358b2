"""Every contract test runs against both engines, the Redis engine on each of its kinds of
Redis (one server, a Redis Cluster, a Sentinel-watched primary): the in-memory engine
behaves as Redis's, whichever Redis that is."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from tests.integration.contracts.engines import MakeEngine, Peek, engines_on

_URLS: dict[str, Callable[[pytest.FixtureRequest], str]] = {
    "memory": lambda request: "",
    "redis": lambda request: request.getfixturevalue("redis_session_url"),
    "cluster": lambda request: request.getfixturevalue("redis_cluster").url,
    "sentinel": lambda request: request.getfixturevalue("redis_sentinel").url,
}
"""Each kind of store, and where the test finds it (a fixture started at first use)."""


@pytest.fixture(params=list(_URLS))
async def engines(request: pytest.FixtureRequest) -> AsyncIterator[tuple[MakeEngine, Peek]]:
    prefix = f"contract-{uuid.uuid4().hex[:8]}:"
    url = _URLS[request.param](request)
    async with engines_on(url, prefix) as made:
        yield made


@pytest.fixture
def make_engine(engines: tuple[MakeEngine, Peek]) -> MakeEngine:
    return engines[0]


@pytest.fixture
def peek(engines: tuple[MakeEngine, Peek]) -> Peek:
    return engines[1]
