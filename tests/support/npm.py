"""The JavaScript packages' tests as pytest runs them: their npm dependencies, Chromium, and
``node --test`` of one file. Under ``make test`` (``WSPOOL_REQUIRE_JS=1``) anything missing
is a failure; elsewhere the test is skipped and says why."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

CHROMIUM = Path(os.environ.get("WSPOOL_CHROMIUM", "/usr/bin/chromium"))
"""Debian's chromium; ``WSPOOL_CHROMIUM`` names another Chromium or Chrome."""


def unavailable(what: str, reason: str) -> NoReturn:
    if os.environ.get("WSPOOL_REQUIRE_JS") == "1":
        pytest.fail(f"{what} cannot be tested: {reason}", pytrace=False)
    pytest.skip(f"{what} cannot be tested: {reason}")


def node_modules(package: Path, tool: str, what: str) -> Path:
    """``package``'s dependencies, as ``npm ci`` installed them from its lock file (``tool``
    is one of their commands)."""
    if shutil.which("node") is None:
        unavailable(what, "no node on PATH")
    installed = package / "node_modules"
    if not (installed / ".bin" / tool).exists():
        unavailable(what, f"no {installed}: run make js-client (npm ci)")
    return installed


def chromium(what: str) -> Path:
    if not CHROMIUM.exists():
        unavailable(what, f"no {CHROMIUM}: run make cluster-prerequisites")
    return CHROMIUM


def node_test(package: Path, script: str, env: dict[str, str]) -> None:
    """``node --test`` one file of ``package``; its report becomes the failure message."""
    result = subprocess.run(
        ["node", "--experimental-websocket", "--test", "--test-reporter=spec", f"test/{script}"],
        cwd=package,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, f"node --test {script} failed:\n{result.stdout}{result.stderr}"
    print(result.stdout)  # what Node and Chromium measured, for pytest -s
