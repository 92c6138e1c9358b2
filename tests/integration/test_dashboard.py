"""The dashboard (clients/dashboard), held to what the gateway serves and run in Chromium.

- The files the gateway serves at ``/dashboard/`` (src/wspool/gateway/static/dashboard/) are
  those a fresh build of clients/dashboard makes (its TypeScript type-checks, esbuild bundles
  it with uPlot), so ``pip install .`` needs no Node.js.
- The feed sends the same snapshot to every viewer once a second, and builds none while nobody
  watches; a gateway that checks credentials sends none to a stranger unless reads are open.
- clients/dashboard/test/dashboard.test.mjs runs the page in headless Chromium (Debian's
  ``chromium``, driven by playwright-core) against a farm of three nodes, a gateway with an
  admin token and open reads, and Redis.

They need ``npm ci`` done in clients/dashboard (``make js-client``) and /usr/bin/chromium
(``make cluster-prerequisites``). Without them the tests are skipped, and under ``make test``
(``WSPOOL_REQUIRE_JS=1``) they fail.
"""

from __future__ import annotations

import asyncio
import filecmp
import json
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import npm
from tests.support.processes import running_farm
from tests.support.redis_server import free_port
from tests.support.tokens import SECRET
from wspool.core.config import DEV_OPTIONS, DevSettings
from wspool.core.options import load_settings
from wspool.gateway.dashboard import DASHBOARD, PAGE
from wspool.gateway.main import start_gateway
from wspool.state.memory import MemoryBroker

PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "dashboard"
ADMIN_TOKEN = "dashboard-admin-token-for-tests"


WHAT = "the dashboard"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """clients/dashboard's dependencies, as ``npm ci`` installed them from the lock file."""
    return npm.node_modules(PACKAGE, "esbuild", WHAT)


def test_the_served_page_is_a_fresh_build_of_the_typescript(node_modules: Path) -> None:
    subprocess.run([node_modules / ".bin" / "tsc", "-p", "."], cwd=PACKAGE, check=True)
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(["node", "build.mjs", out], cwd=PACKAGE, check=True, capture_output=True)
        built = sorted(path.name for path in Path(out).iterdir())
        served = sorted(path.name for path in PAGE.iterdir())
        assert served == built, "run npm run build in clients/dashboard"
        _, differ, _ = filecmp.cmpfiles(out, PAGE, built, shallow=False)
        assert differ == [], (
            f"{differ} differ from a fresh build: npm run build in clients/dashboard"
        )


@pytest.fixture
async def secured_gateway(redis_session_url: str) -> AsyncIterator[str]:
    """A farm whose gateway checks tokens and an admin token, reads closed: its HTTP URL."""
    with running_farm(
        redis_session_url,
        nodes=1,
        gateway_security=("--jwt-secret", SECRET, "--admin-token", ADMIN_TOKEN),
        gateway_id="gw-dash-closed",
    ) as farm:
        yield farm.gateway.http


def _feed_url(http: str) -> str:
    return f"{http.replace('http', 'ws', 1)}/api/v1/dashboard/feed"


async def _snapshots(http: str, count: int, protocols: tuple[str, ...] = ()) -> list[Any]:
    """The first ``count`` frames after the history frame of one viewer."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(_feed_url(http), protocols=protocols) as ws,
    ):
        history = await ws.receive_json(timeout=5)
        assert history["type"] == "history"
        return [await ws.receive_json(timeout=5) for _ in range(count)]


async def test_the_feed_needs_a_read_credential_unless_reads_are_open(secured_gateway: str) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await _snapshots(secured_gateway, 1)
    assert refused.value.status == 401
    frames = await _snapshots(secured_gateway, 1, ("wspool", f"bearer.{ADMIN_TOKEN}"))
    assert frames[0]["type"] == "snapshot"
    assert frames[0]["gateway"]["writesOpen"] is False


async def test_every_viewer_gets_the_same_snapshot_once_a_second(redis_session_url: str) -> None:
    with running_farm(redis_session_url, nodes=2, gateway_id="gw-dash-feed") as farm:
        started = asyncio.get_running_loop().time()
        first, second = await asyncio.gather(
            _snapshots(farm.gateway.http, 3), _snapshots(farm.gateway.http, 3)
        )
        elapsed = asyncio.get_running_loop().time() - started
        assert [f["point"] for f in first[-2:]] == [f["point"] for f in second[-2:]]
        at = [f["point"][0] for f in first]
        assert 0.8 < at[2] - at[1] < 1.2
        assert elapsed < 4
        assert {n["id"] for n in first[-1]["nodes"]} == {"node-1", "node-2"}
        assert first[-1]["gateway"]["writesOpen"] is True


async def test_the_feed_builds_snapshots_only_while_someone_watches() -> None:
    port = free_port()
    dev = load_settings(DevSettings, DEV_OPTIONS, {"port": str(port)}, environ={})
    runner = await start_gateway(dev.gateway_settings(), MemoryBroker())
    try:
        feed = runner.app[DASHBOARD]
        await asyncio.sleep(1.5)
        assert feed.snapshots == 0
        await _snapshots(f"http://127.0.0.1:{port}", 2)
        watched = feed.snapshots
        assert watched >= 2
        await asyncio.sleep(1.5)  # the viewer gone, so is the producer
        assert feed.snapshots == watched
    finally:
        await runner.cleanup()


@pytest.mark.timeout(300)
def test_the_dashboard_in_chromium(node_modules: Path, redis_session_url: str) -> None:
    chromium = npm.chromium(WHAT)
    security = ("--jwt-secret", SECRET, "--admin-token", ADMIN_TOKEN, "--api-open-reads")
    with running_farm(
        redis_session_url, nodes=3, gateway_security=security, gateway_id="gw-dash"
    ) as farm:
        pids = {node.id: node.process.pid for node in farm.nodes if node.process}
        npm.node_test(
            PACKAGE,
            "dashboard.test.mjs",
            {
                "WSPOOL_GATEWAY_HTTP": farm.gateway.http,
                "WSPOOL_ADMIN_TOKEN": ADMIN_TOKEN,
                "WSPOOL_NODE_PIDS": json.dumps(pids),
                "WSPOOL_CHROMIUM": str(chromium),
            },
        )
