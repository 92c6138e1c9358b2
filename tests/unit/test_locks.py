"""The image's lock (runtime dependencies only) pins what the development lock pins."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", re.MULTILINE)


def _pins(name: str) -> dict[str, str]:
    text = (ROOT / name).read_text()
    return {package.lower(): version for package, version in PIN.findall(text)}


def test_the_image_runs_the_versions_the_tests_ran() -> None:
    runtime, tested = _pins("requirements-runtime.lock"), _pins("requirements.lock")
    assert runtime, "requirements-runtime.lock pins nothing"
    assert {p: v for p, v in runtime.items() if tested.get(p) != v} == {}, "run make lock"
    for package in ("websockets", "redis", "hiredis", "uvloop", "aiohttp", "kopf", "orjson"):
        assert package in runtime
