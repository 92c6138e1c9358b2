"""Connection tickets, and the PoolMetrics arithmetic."""

from __future__ import annotations

import time

import pytest

from wspool.core.tickets import (
    Ticket,
    TicketError,
    issue_ticket,
    ticket_refusal,
    used_for,
    verify_ticket,
)
from wspool.gateway.model.poolstats import NodeSample, node_rates, pool_metrics

SECRET = "unit-test-secret-0123456789abcdef"


def test_a_ticket_opens_only_the_node_it_names() -> None:
    token = issue_ticket(SECRET, Ticket("c1", "alice", "node-1"), time.time())
    assert verify_ticket(SECRET, token, "node-1") == Ticket("c1", "alice", "node-1")
    with pytest.raises(TicketError, match="another server"):
        verify_ticket(SECRET, token, "node-2")


def test_an_expired_or_forged_ticket_is_refused() -> None:
    old = issue_ticket(SECRET, Ticket("c1", "alice", "node-1"), time.time() - 120)
    with pytest.raises(TicketError, match="expired"):
        verify_ticket(SECRET, old, "node-1")
    forged = issue_ticket("another-secret-0123456789abcdef-xyz", Ticket("c", "a", "node-1"), 0)
    with pytest.raises(TicketError, match="invalid"):
        verify_ticket(SECRET, forged, "node-1")


def test_a_ticket_is_only_for_the_client_it_names() -> None:
    ticket = verify_ticket(SECRET, issue_ticket(SECRET, Ticket("c1", "alice", "n"), 0.0, 1e10), "n")
    assert ticket_refusal(ticket, "alice") is None
    assert ticket_refusal(ticket, None) is None  # names no client: it gets the ticket's
    assert ticket_refusal(ticket, "mallory") == "ticket is for another client"


def test_a_relay_ticket_names_no_client_and_leaves_the_node_to_judge_it() -> None:
    token = issue_ticket(SECRET, Ticket("c1", None, "node-1"), time.time())
    ticket = verify_ticket(SECRET, token, "node-1")
    assert ticket.client_id is None
    assert ticket_refusal(ticket, "whoever") is None
    assert not ticket.handover


def test_a_seamless_relay_ticket_says_the_gateway_takes_the_handover_notice() -> None:
    token = issue_ticket(SECRET, Ticket("c1", None, "node-1", handover=True), time.time())
    assert verify_ticket(SECRET, token, "node-1").handover


def test_a_ticket_naming_what_is_no_client_id_is_refused() -> None:
    token = issue_ticket(SECRET, Ticket("c1", "alice smith", "node-1"), time.time())
    with pytest.raises(TicketError, match="sub must be 1-128 characters"):
        verify_ticket(SECRET, token, "node-1")


def test_a_used_ticket_is_remembered_until_no_node_would_take_it() -> None:
    now = time.time()
    ticket = verify_ticket(SECRET, issue_ticket(SECRET, Ticket("c", "a", "n"), now, 30.0), "n")
    assert 30.0 <= used_for(ticket, now) <= 34.0
    assert used_for(ticket, now + 3600) == 1.0


def test_rates_come_from_counter_differences_and_survive_a_restart() -> None:
    rates = node_rates(NodeSample(10.0, messages_in=100), NodeSample(12.0, messages_in=300))
    assert rates.messages_in_per_second == 100.0
    restarted = node_rates(NodeSample(10.0, messages_in=900), NodeSample(12.0, messages_in=40))
    assert restarted.messages_in_per_second == 20.0


def test_pool_metrics_add_up_the_nodes() -> None:
    a = node_rates(
        NodeSample(0.0, messages_in=0, errors=0), NodeSample(1.0, messages_in=90, errors=9)
    )
    b = node_rates(NodeSample(0.0, messages_in=0), NodeSample(1.0, messages_in=10))
    metrics = pool_metrics([5, 7], 2, [a, b], [2.0, 4.0])
    assert metrics.total_connections == 12
    assert metrics.messages_per_second == 100.0
    assert metrics.error_rate == 0.09
    assert metrics.average_latency == 3.0
