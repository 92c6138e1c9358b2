"""Ports for the benchmark's servers come from below the ephemeral range, where no outgoing
connection can take them between the pick and the server's bind."""

from __future__ import annotations

import socket

from wspool.bench.ports import LOWEST, ephemeral_range, free_port


def test_a_free_port_is_below_the_ephemeral_range_and_a_server_can_listen_on_it() -> None:
    low, high = ephemeral_range()
    assert LOWEST < low <= high
    for _ in range(20):
        port = free_port()
        assert LOWEST <= port < low
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))
            server.listen()


def test_a_port_held_by_a_listener_is_never_picked() -> None:
    held = []
    try:
        for _ in range(50):
            port = free_port()
            server = socket.socket()
            server.bind(("127.0.0.1", port))
            server.listen()
            held.append(server)
        ports = [s.getsockname()[1] for s in held]
        assert len(set(ports)) == len(ports)
    finally:
        for server in held:
            server.close()
