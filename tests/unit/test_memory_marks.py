"""The in-memory engine's used tickets lapse instead of piling up (``wspool dev`` relays
every connection on a ticket of its own)."""

from __future__ import annotations

from wspool.state.memory import MemoryBroker


async def test_used_tickets_of_the_memory_engine_lapse_instead_of_piling_up() -> None:
    now = [0.0]
    broker = MemoryBroker(clock=lambda: now[0])
    engine = broker.engine()
    for round_ in range(10):
        for i in range(1000):
            assert await engine.use_ticket(f"{round_}-{i}", ttl=30.0)
        now[0] += 60.0  # every ticket of this round lapses
    assert len(broker.marks) <= 3000
    assert await engine.use_ticket("fresh", ttl=30.0)
    assert not await engine.use_ticket("fresh", ttl=30.0)  # pruning spares the live ones
