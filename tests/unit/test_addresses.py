"""The client address: the peer, unless a trusted proxy forwarded the request."""

from __future__ import annotations

import pytest

from wspool.core.addresses import client_address, parse_networks

PROXIES = parse_networks(["10.0.0.0/8", "fd00::1"])


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("203.0.113.9", ["1.2.3.4"], ()) == "203.0.113.9"


def test_an_untrusted_peer_cannot_claim_another_address() -> None:
    assert client_address("203.0.113.9", ["1.2.3.4"], PROXIES) == "203.0.113.9"


def test_a_trusted_proxy_names_the_client() -> None:
    assert client_address("10.1.2.3", ["198.51.100.7"], PROXIES) == "198.51.100.7"
    assert client_address("fd00::1", ["198.51.100.7"], PROXIES) == "198.51.100.7"


def test_the_chain_is_read_from_the_right_and_forged_hops_are_ignored() -> None:
    chain = ["6.6.6.6, 198.51.100.7", "10.9.9.9"]
    assert client_address("10.1.2.3", chain, PROXIES) == "198.51.100.7"


def test_garbage_in_the_chain_stops_the_walk() -> None:
    assert client_address("10.1.2.3", ["1.1.1.1, junk, 10.2.2.2"], PROXIES) == "10.2.2.2"
    assert client_address("10.1.2.3", [""], PROXIES) == "10.1.2.3"


def test_an_ipv4_mapped_peer_counts_as_ipv4() -> None:
    assert client_address("::ffff:192.0.2.1", [], ()) == "192.0.2.1"


def test_a_bad_network_is_named() -> None:
    with pytest.raises(ValueError, match="nope"):
        parse_networks(["10.0.0.0/8", "nope"])
