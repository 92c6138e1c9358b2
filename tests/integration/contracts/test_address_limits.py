"""The ``AddressLimits`` contract: connections and attempts per client address, counted
across engines."""

from __future__ import annotations

from tests.integration.contracts.engines import MakeEngine, Peek
from tests.support.waiting import eventually


async def test_address_slots_count_up_to_the_limit_across_engines(
    make_engine: MakeEngine, peek: Peek
) -> None:
    first, _ = await make_engine()
    second, _ = await make_engine()
    assert await first.acquire_address_slot("192.0.2.1", "c1", limit=3, ttl=30)
    assert await second.acquire_address_slot("192.0.2.1", "c2", limit=3, ttl=30)
    assert await first.acquire_address_slot("192.0.2.1", "c3", limit=3, ttl=30)
    assert not await second.acquire_address_slot("192.0.2.1", "c4", limit=3, ttl=30)
    assert await second.acquire_address_slot("192.0.2.2", "c5", limit=3, ttl=30)
    assert await first.acquire_address_slot("192.0.2.1", "c1", limit=3, ttl=30)  # a retry
    assert await peek.address_connection_count("192.0.2.1") == 3
    await first.release_address_slot("192.0.2.1", "c2")
    assert await second.acquire_address_slot("192.0.2.1", "c4", limit=3, ttl=30)


async def test_address_slots_lapse_unless_refreshed(make_engine: MakeEngine, peek: Peek) -> None:
    engine, _ = await make_engine()
    assert await engine.acquire_address_slot("2001:db8::1", "kept", limit=2, ttl=2)
    assert await engine.acquire_address_slot("2001:db8::1", "crashed", limit=2, ttl=2)
    assert not await engine.acquire_address_slot("2001:db8::1", "new", limit=2, ttl=2)

    async def only_kept_counts() -> bool:
        await engine.refresh_address_slots({"2001:db8::1": ["kept"]}, ttl=2)
        return await peek.address_connection_count("2001:db8::1") == 1

    await eventually(only_kept_counts, within=6, message="unrefreshed slot lapsed")
    assert await engine.acquire_address_slot("2001:db8::1", "new", limit=2, ttl=30)


async def test_released_slots_leave_the_count_at_zero(make_engine: MakeEngine, peek: Peek) -> None:
    engine, _ = await make_engine()
    for i in range(3):
        assert await engine.acquire_address_slot("a", f"c{i}", limit=5, ttl=30)
    for i in range(3):
        await engine.release_address_slot("a", f"c{i}")
    await engine.release_address_slot("a", "never-there")
    assert await peek.address_connection_count("a") == 0


async def test_attempts_are_allowed_up_to_the_limit_per_window(make_engine: MakeEngine) -> None:
    first, _ = await make_engine()
    second, _ = await make_engine()
    allowed = [
        await engine.record_attempt("198.51.100.1", limit=4, window=0.5)
        for engine in (first, second, first, second, first)
    ]
    assert allowed == [True, True, True, True, False]
    assert await second.record_attempt("198.51.100.2", limit=4, window=0.5)

    async def allowed_again() -> bool:
        return await first.record_attempt("198.51.100.1", limit=4, window=0.5)

    await eventually(allowed_again, within=3, message="window slid past")
