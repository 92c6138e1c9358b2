"""A real ``wspool operator`` process against the tests' cluster, and registry entries for it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from wspool.core.keys import Keys
from wspool.core.records import NodeInfo
from wspool.state.redis_engine import RedisEngine

__all__ = ["OperatorProcess", "register_nodes", "running_operator"]


class OperatorProcess:
    """``wspool operator --namespace <ns>``; its log is kept for failure reports."""

    def __init__(self, namespace: str, *extra: str) -> None:
        self.args = [
            sys.executable,
            "-m",
            "wspool",
            "operator",
            "--namespace",
            namespace,
            "--sync-interval",
            "0.3",
            "--log-format",
            "text",
            # Several operators may run at once; a test that reads /metrics gives a port.
            "--metrics-port",
            "0",
            *extra,
        ]
        self._log = Path(tempfile.mkstemp(prefix="wspool-operator-", suffix=".log")[1])
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()
            )
        return self

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, as Kubernetes stops it; the exit status."""
        process = self._process
        if process is None:
            return 0
        self._process = None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                return process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError(f"operator ignored SIGTERM:\n{self.log()}") from None
        return process.returncode

    def kill(self) -> None:
        """SIGKILL, as when its node dies: no clean-up of any kind."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()

    def log(self) -> str:
        return self._log.read_text(errors="replace")

    def close(self) -> None:
        self.stop()
        self._log.unlink(missing_ok=True)


@contextmanager
def running_operator(namespace: str, *extra: str) -> Iterator[OperatorProcess]:
    """An operator for ``namespace``; its log is printed when the test fails."""
    operator = OperatorProcess(namespace, *extra).start()
    try:
        yield operator
    except BaseException:
        print(f"--- wspool operator log ---\n{operator.log()[-20000:]}")
        raise
    finally:
        operator.close()


async def register_nodes(
    redis_url: str, key_prefix: str, connections: Sequence[int], *, ids: Sequence[str] = ()
) -> list[str]:
    """Registry entries as live nodes write them, one per count in ``connections``."""
    engine = RedisEngine(redis_url, Keys(key_prefix))
    names = list(ids) or [f"node-{index}" for index in range(len(connections))]
    try:
        for name, count in zip(names, connections, strict=True):
            node = NodeInfo(id=name, url=f"ws://10.0.0.1:8081/{name}", active_connections=count)
            await engine.register_node(node, ttl=120.0)
    finally:
        await engine.close()
    return names
