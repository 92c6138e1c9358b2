#!/usr/bin/env python3
"""What one loopback ``send`` costs on this machine, when it wakes a sleeping reader and
when the reader is already awake (docs/benchmarks.md, "User and kernel time per message").

A server at everyday rates makes the first kind for nearly every message: the reader
(Redis, a subscriber) sleeps between messages. Run it beside a benchmark, not during one.
"""

from __future__ import annotations

import os
import socket
import statistics
import time

ROUNDS = 5000
NAP = 0.0005
"""Seconds between rounds, so that the reader is asleep again when the next send comes."""


def _echo(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as peer:
        peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data := peer.recv(64):
            if data == b"p":
                peer.send(b"e")
    os._exit(0)


def main() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    child = os.fork()
    if child == 0:
        _echo(port)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    waking_cpu, waking_wall = [], []
    for _ in range(ROUNDS):
        cpu, wall = time.thread_time_ns(), time.perf_counter_ns()
        conn.send(b"p")
        waking_cpu.append(time.thread_time_ns() - cpu)
        waking_wall.append(time.perf_counter_ns() - wall)
        conn.recv(1)
        time.sleep(NAP)

    naps = time.thread_time_ns()
    for _ in range(ROUNDS):
        time.sleep(NAP)
    nap_cpu = (time.thread_time_ns() - naps) / ROUNDS

    awake_wall = []
    for _ in range(ROUNDS):
        wall = time.perf_counter_ns()
        conn.send(b"x")
        awake_wall.append(time.perf_counter_ns() - wall)
    conn.close()
    os.waitpid(child, 0)

    print(f"{'loopback send':<40} {'wall median':>12} {'CPU mean':>10}")
    print(
        f"{'that wakes a sleeping reader':<40} "
        f"{statistics.median(waking_wall) / 1000:>9.1f} µs "
        f"{statistics.mean(waking_cpu) / 1000:>7.1f} µs"
    )
    print(
        f"{'to a reader already awake':<40} "
        f"{statistics.median(awake_wall) / 1000:>9.1f} µs {'':>10}"
    )
    print(f"{'a 0.5 ms sleep and its wake-up':<40} {'':>12} {nap_cpu / 1000:>7.1f} µs")


if __name__ == "__main__":
    main()
