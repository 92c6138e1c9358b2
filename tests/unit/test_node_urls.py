"""The URLs a gateway dials, derived from the URL a node advertises."""

from __future__ import annotations

import pytest

from wspool.gateway.model.nodeurls import health_url, node_address, socket_url


@pytest.mark.parametrize(
    ("advertised", "checked"),
    [
        ("ws://10.99.1.5:8081/ws", "http://10.99.1.5:8081/health"),
        ("ws://127.0.0.1:9001", "http://127.0.0.1:9001/health"),
        ("wss://node-1.example:443/socket/ws?x=1", "https://node-1.example:443/health"),
    ],
)
def test_the_gateway_checks_health_at_the_origin_of_the_url_a_node_advertises(
    advertised: str, checked: str
) -> None:
    assert health_url(advertised) == checked


@pytest.mark.parametrize(
    ("advertised", "dialed"),
    [
        ("ws://10.99.1.5:8081/ws", "ws://10.99.1.5:8081/ws?clientId=a"),
        ("ws://127.0.0.1:9001", "ws://127.0.0.1:9001/ws?clientId=a"),
        ("ws://127.0.0.1:9001/", "ws://127.0.0.1:9001/ws?clientId=a"),
        ("wss://node-1.example/socket?old=1", "wss://node-1.example/socket?clientId=a"),
    ],
)
def test_the_gateway_relays_to_the_url_a_node_advertises_with_its_own_query(
    advertised: str, dialed: str
) -> None:
    assert socket_url(advertised, "clientId=a") == dialed


@pytest.mark.parametrize(
    ("advertised", "address"),
    [
        ("ws://10.99.1.5:8081/ws", ("10.99.1.5", 8081, False, "10.99.1.5:8081", "/ws")),
        ("ws://127.0.0.1:9001/", ("127.0.0.1", 9001, False, "127.0.0.1:9001", "/ws")),
        (
            "wss://node-1.example/socket?old=1",
            ("node-1.example", 443, True, "node-1.example", "/socket"),
        ),
    ],
)
def test_the_address_dialed_is_the_one_the_url_names(
    advertised: str, address: tuple[str, int, bool, str, str]
) -> None:
    dialed = node_address(advertised)
    assert dialed == address
    scheme = "wss" if dialed.secure else "ws"
    target = dialed.target("clientId=a")
    assert f"{scheme}://{dialed.netloc}{target}" == socket_url(advertised, "clientId=a")
