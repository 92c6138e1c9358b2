"""The README's quick start as a newcomer follows it: ``wspool dev``, then the command its
banner prints, typed in a shell whose PATH knows nothing of the venv; what comes back is
what the README's transcript shows.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.redis_server import free_port_run
from tests.support.waiting import poll_until

ROOT = Path(__file__).resolve().parents[2]
README_PORT = "8080"
FRESH_SHELL = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
"""The environment of a terminal on a fresh machine: no venv activated."""


def readme_transcript() -> tuple[str, list[str], list[dict[str, Any]]]:
    """The quick start's command, the frames it sends and the frames it shows coming back."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```\n(\S*python -m websockets [^\n]*)\n(.*?)```", text, re.DOTALL)
    assert block, "the README's quick start has a websockets transcript"
    lines = block.group(2).splitlines()
    sent = [line[2:] for line in lines if line.startswith("> ")]
    shown = [json.loads(line[2:]) for line in lines if line.startswith("< ")]
    return block.group(1), sent, shown


@pytest.fixture
def dev_banner() -> Iterator[tuple[int, str]]:
    """``wspool dev`` run from the repository; its port and the banner it printed."""
    port = free_port_run(4)
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "wspool", "dev", "--port", str(port), "--servers", "3"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
        try:

            def banner() -> str:
                out.seek(0)
                return out.read()

            poll_until(lambda: "Ctrl-C" in banner(), within=15, message="the dev banner")
            yield port, banner()
        finally:
            process.terminate()
            process.wait(timeout=15)


def _comparable(frame: dict[str, Any]) -> dict[str, Any]:
    """A frame with what differs between runs (ids, the channel's epoch) blanked out."""
    frame = json.loads(json.dumps(frame))
    for key in ("connectionId", "clientId"):
        if key in frame.get("payload", {}):
            frame["payload"][key] = "…"
    if "serverId" in frame.get("payload", {}):
        frame["payload"]["serverId"] = re.sub(r"\d+$", "N", frame["payload"]["serverId"])
    if "offset" in frame:
        frame["offset"] = re.sub(r"^[^:]+:", "EPOCH:", frame["offset"])
    return frame


def test_the_banner_command_runs_without_the_venv_on_path_and_answers_as_the_readme_shows(
    dev_banner: tuple[int, str],
) -> None:
    port, banner = dev_banner
    command, sent, shown = readme_transcript()
    tried = re.search(r"^  try\s+(.+)$", banner, re.MULTILINE)
    assert tried, banner
    assert tried.group(1) == command.replace(README_PORT, str(port))

    with tempfile.TemporaryFile("w+", errors="replace") as out:
        client = subprocess.Popen(
            shlex.split(tried.group(1)),
            cwd=ROOT,
            env=FRESH_SHELL,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert client.stdin is not None
            for frame in sent:
                client.stdin.write(frame + "\n")
            client.stdin.flush()

            def received() -> list[dict[str, Any]]:
                out.seek(0)
                return [json.loads(m) for m in re.findall(r"< (\{.*\})", out.read())]

            poll_until(
                lambda: len(received()) >= len(shown),
                within=10,
                message="the replies the README shows",
            )
            assert [_comparable(f) for f in received()] == [_comparable(f) for f in shown]
        finally:
            client.kill()
            client.wait(timeout=5)
            if client.stdin is not None:
                client.stdin.close()
