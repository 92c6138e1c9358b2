"""The gateway's open-file budget: who is closed to make room, and when it refuses."""

from __future__ import annotations

from typing import Any, cast

from aiohttp.web_protocol import RequestHandler

from wspool.gateway.admission import Admission


class Connection:
    """Stands in for aiohttp's connection handler: only ``force_close`` is used."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.force_closed = False

    def force_close(self) -> None:
        self.force_closed = True


def handler(name: str) -> Any:
    return cast(RequestHandler, Connection(name))


def test_the_budget_keeps_the_reserve_and_three_accept_bursts_free() -> None:
    admission = Admission(limit=20_000, reserve=256)
    assert (admission.backlog, admission.budget) == (1024, 20_000 - 256 - 3 * 1024)
    small = Admission(limit=1024, reserve=256)
    assert (small.backlog, small.budget) == (64, 1024 - 256 - 3 * 64)


def test_beyond_the_budget_the_oldest_half_sent_request_is_closed_not_the_newcomer() -> None:
    admission = Admission(limit=1024, reserve=256)
    stalled = [handler(f"slow-{i}") for i in range(admission.budget)]
    for connection in stalled:
        admission.opened(connection)
    assert not any(c.force_closed for c in stalled)
    newcomer = handler("real client")
    admission.opened(newcomer)
    assert [c.name for c in stalled if c.force_closed] == ["slow-0"]
    assert not newcomer.force_closed
    assert admission.in_use == admission.budget  # the evicted one counts as free at once
    assert admission.admit_request(newcomer)
    admission.closed(stalled[0])  # the loop closes it
    assert admission.in_use == admission.budget


def test_a_connection_whose_request_arrived_is_never_evicted() -> None:
    admission = Admission(limit=1024, reserve=256)
    served = [handler(f"served-{i}") for i in range(admission.budget)]
    for connection in served:
        admission.opened(connection)
        assert admission.admit_request(connection)
    late = handler("late")
    admission.opened(late)
    assert not any(c.force_closed for c in served)
    assert not admission.admit_request(late)  # 503: nothing could be made free
    assert not admission.reserve_upstream()  # and no upstream for a WebSocket either
    assert admission.refused == 1


def test_an_upstream_takes_the_place_of_the_oldest_half_sent_request() -> None:
    admission = Admission(limit=1024, reserve=256)
    stalled = [handler(f"slow-{i}") for i in range(admission.budget)]
    for connection in stalled:
        admission.opened(connection)
    assert admission.reserve_upstream()
    assert stalled[0].force_closed
    admission.release_upstream()
    assert admission.upstreams == 0
