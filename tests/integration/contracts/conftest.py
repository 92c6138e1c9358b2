"""Every contract test runs against both engines: the in-memory engine behaves as Redis's."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from tests.integration.contracts.engines import MakeEngine, Peek, engines_on


@pytest.fixture(params=["memory", "redis"])
async def engines(
    request: pytest.FixtureRequest, redis_session_url: str
) -> AsyncIterator[tuple[MakeEngine, Peek]]:
    prefix = f"contract-{uuid.uuid4().hex[:8]}:"
    async with engines_on(request.param, redis_session_url, prefix) as made:
        yield made


@pytest.fixture
def make_engine(engines: tuple[MakeEngine, Peek]) -> MakeEngine:
    return engines[0]


@pytest.fixture
def peek(engines: tuple[MakeEngine, Peek]) -> Peek:
    return engines[1]
