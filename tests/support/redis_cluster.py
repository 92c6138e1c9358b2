"""Real Redis topologies for tests: a Redis Cluster (3 primaries, a replica each) and a
primary with a replica watched by one Sentinel, all on loopback ports.

A test session starts each at most once (session fixtures in tests/conftest.py) and the
tests share it under fresh key prefixes. A test that fails a primary over (:meth:`RedisCluster.
kill_primary_of`) starts the killed process again as a replica, so the cluster the next test
sees has every slot covered and a replica behind every primary again.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.redis_server import RedisServer, free_port_run

__all__ = ["RedisCluster", "RedisSentinel"]

NODE_TIMEOUT_MS = 1000
"""How long a cluster primary may be silent before its replica takes over (about twice
this passes between the kill and the promotion)."""


def _cli(port: int, *args: str, timeout: float = 10) -> str:
    binary = shutil.which("redis-cli")
    if binary is None:
        raise RuntimeError("redis-cli is not installed; `make test` installs it (redis-tools)")
    done = subprocess.run(
        [binary, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout


class RedisCluster:
    """Six redis-servers made one cluster: three primaries with one replica each."""

    def __init__(self) -> None:
        base = free_port_run(12)  # six nodes, then their cluster bus ports
        self.nodes = [
            RedisServer(
                port,
                *("--cluster-enabled", "yes"),
                *("--cluster-port", str(port + 6)),
                *("--cluster-node-timeout", str(NODE_TIMEOUT_MS)),
                *("--cluster-config-file", "nodes.conf"),
                # A replica takes over however long it was cut off from a dead primary.
                *("--cluster-replica-validity-factor", "0"),
            )
            for port in range(base, base + 6)
        ]

    @property
    def url(self) -> str:
        seeds = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes[:3])
        return f"redis+cluster://{seeds}"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        _cli(
            self.nodes[0].port,
            *("--cluster", "create", *addresses),
            *("--cluster-replicas", "1", "--cluster-yes"),
            timeout=60,
        )
        self.wait_healthy()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def wait_healthy(self, timeout: float = 30) -> None:
        """Until every node sees every slot served and each primary has a live replica."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._healthy(node) for node in self.nodes if node.process is not None):
                return
            time.sleep(0.1)
        raise RuntimeError("the test cluster did not become healthy")

    def _healthy(self, node: RedisServer) -> bool:
        info = _cli(node.port, "cluster", "info")
        if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
            return False
        lines = _cli(node.port, "cluster", "nodes").splitlines()
        primaries = [line for line in lines if "master" in line.split()[2]]
        replicas = [line for line in lines if "slave" in line.split()[2]]
        alive = [line for line in replicas if "fail" not in line.split()[2]]
        return len(primaries) == 3 and len(alive) == 3

    def primary_port_of(self, key: str) -> int:
        slot = int(_cli(self.nodes[0].port, "cluster", "keyslot", key).strip())
        for line in _cli(self.nodes[0].port, "cluster", "nodes").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for spec in fields[8:]:
                low, _, high = spec.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return int(fields[1].split(":")[1].split("@")[0])
        raise RuntimeError(f"no primary serves the slot of {key}")

    def move_slot_of(self, key: str) -> None:
        """Move ``key``'s slot, keys and all, to another primary, as resharding does."""
        slot = _cli(self.nodes[0].port, "cluster", "keyslot", key).strip()
        source = self.primary_port_of(key)
        target = next(
            self.primary_port_of(f"{{probe-{i}}}")
            for i in range(1000)
            if self.primary_port_of(f"{{probe-{i}}}") != source
        )
        source_id = _cli(source, "cluster", "myid").strip()
        target_id = _cli(target, "cluster", "myid").strip()
        _cli(target, "cluster", "setslot", slot, "importing", source_id)
        _cli(source, "cluster", "setslot", slot, "migrating", target_id)
        while keys := _cli(source, "cluster", "getkeysinslot", slot, "100").split():
            _cli(source, "migrate", "127.0.0.1", str(target), "", "0", "5000", "keys", *keys)
        for port in (target, source, *(n.port for n in self.nodes)):
            _cli(port, "cluster", "setslot", slot, "node", target_id)
        self.wait_healthy()

    def node_at(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def kill_primary_of(self, key: str) -> RedisServer:
        """Kill the process of the primary that holds ``key``'s slot; its replica takes over
        within a few seconds. :meth:`restart` brings the process back, as a replica."""
        node = self.node_at(self.primary_port_of(key))
        node.stop()
        return node

    def restart(self, node: RedisServer) -> None:
        node.start()
        self.wait_healthy()

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by every node (primaries and replicas)."""
        total = 0.0
        for node in self.nodes:
            for line in _cli(node.port, "info", "cpu").splitlines():
                name, _, value = line.partition(":")
                if name in ("used_cpu_sys", "used_cpu_user"):
                    total += float(value)
        return total


class RedisSentinel:
    """A primary, its replica, and one Sentinel that fails the primary over after two seconds."""

    NAME = "wspool"

    def __init__(self) -> None:
        base = free_port_run(3)
        self.primary = RedisServer(base)
        self.replica = RedisServer(base + 1, "--replicaof", "127.0.0.1", str(base))
        self.sentinel_port = base + 2
        self.sentinel_dir = Path(self.primary.dir)
        self.sentinel: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{self.NAME}"

    def start(self) -> None:
        self.primary.start()
        self.replica.start()
        config = self.sentinel_dir / "sentinel.conf"
        config.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\n"
            f"sentinel monitor {self.NAME} 127.0.0.1 {self.primary.port} 1\n"
            f"sentinel down-after-milliseconds {self.NAME} 2000\n"
            f"sentinel failover-timeout {self.NAME} 5000\n"
        )
        self.sentinel = subprocess.Popen(
            [self.primary.binary, str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            reply = _cli(self.sentinel_port, "sentinel", "get-master-addr-by-name", self.NAME)
            if str(self.primary.port) in reply:
                return
            time.sleep(0.1)
        raise RuntimeError("the test Sentinel did not come up")

    def primary_port(self) -> int:
        reply = _cli(self.sentinel_port, "sentinel", "get-master-addr-by-name", self.NAME)
        return int(reply.split()[1])

    def fail_over(self) -> RedisServer:
        """Kill the primary's process; Sentinel promotes the replica within a few seconds.
        :meth:`heal` starts the killed process again, which Sentinel makes the replica."""
        killed = self.primary if self.primary.port == self.primary_port() else self.replica
        killed.stop()
        deadline = time.monotonic() + 30
        while self.primary_port() == killed.port:
            if time.monotonic() > deadline:
                raise RuntimeError("Sentinel did not promote the replica")
            time.sleep(0.1)
        return killed

    def heal(self, killed: RedisServer) -> None:
        killed.start()
        deadline = time.monotonic() + 30
        asked = 0.0
        while "master_link_status:up" not in (state := _cli(killed.port, "info", "replication")):
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError(
                    f"the old primary did not come back as a replica of {self.primary_port()}: "
                    + " ".join(state.split())
                )
            if now - asked > 2 and (primary := self.primary_port()) != killed.port:
                # What Sentinel does once it sees the process again, without waiting for it;
                # asked again while the link is down, in case a busy Redis or Sentinel missed
                # it (REPLICAOF of the primary it already follows changes nothing). Never
                # while Sentinel still names the killed process: it would follow itself.
                _cli(killed.port, "replicaof", "127.0.0.1", str(primary))
                asked = now
            time.sleep(0.1)

    @contextmanager
    def running(self) -> Iterator[RedisSentinel]:
        """Started for the block, stopped after it (also when it fails to start)."""
        try:
            self.start()
            yield self
        finally:
            self.stop()

    def stop(self) -> None:
        if self.sentinel is not None:
            self.sentinel.kill()
            self.sentinel.wait(timeout=10)
            self.sentinel = None
        self.replica.stop()
        self.primary.stop()
