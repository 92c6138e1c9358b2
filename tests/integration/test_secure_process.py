"""``wspool server`` as an operator runs it: no key, no start; a key from a file, never logged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from tests.support.processes import NodeProcess
from tests.support.tokens import SECRET, hs256
from tests.support.wsclient import TestClient


def wspool(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wspool", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


def test_a_server_without_a_key_refuses_to_start_in_one_line() -> None:
    result = wspool("server", "--port", "0", env={"PATH": "/usr/bin"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--jwt-secret" in lines[0]
    assert "--insecure" in lines[0]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--jwt-secret-file", "/nonexistent/secret"], "--jwt-secret-file"),
        (["--jwt-secret", "too-short"], "--jwt-secret"),
        (["--insecure", "--jwt-secret", "x" * 40], "--insecure"),
        (["--max-connections-per-ip", "-1", "--insecure"], "--max-connections-per-ip"),
        (["--allowed-origins", "evil.example", "--insecure"], "--allowed-origins"),
    ],
)
def test_bad_security_flags_exit_2_naming_the_option(flags: list[str], named: str) -> None:
    result = wspool("server", "--port", "0", *flags, env={"PATH": "/usr/bin"})
    assert result.returncode == 2
    assert named in result.stderr
    assert "x" * 40 not in result.stderr


@pytest.mark.redis
async def test_a_keyed_node_admits_tokens_and_never_logs_its_secret(
    redis_url: str, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    node = NodeProcess(
        "node-keyed",
        redis_url,
        "--log-level",
        "debug",
        security=("--jwt-secret-file", str(secret_file), "--messages-per-second", "0"),
    ).start()
    try:
        with pytest.raises(InvalidStatus):
            async with TestClient(node.url):
                pass
        token = hs256(sub="alice", subscribe=["c"])
        async with TestClient(f"{node.url}?token={token}") as client:
            assert client.connected["payload"]["clientId"] == "alice"
            await client.subscribe("c")
    finally:
        node.stop()
    assert SECRET not in node.output()
    assert token not in node.output()
