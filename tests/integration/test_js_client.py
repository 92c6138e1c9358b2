"""The JavaScript client (clients/js), held to what the gateway serves and run by Node.

- The modules the gateway serves (src/wspool/gateway/static/) are those a fresh ``tsc`` build
  of clients/js makes, and the gateway serves them as ES modules any page may import.
- clients/js/test/dev.test.mjs (``node --test``) runs the client against a real ``wspool dev``.
- clients/js/test/browser.test.mjs runs it in headless Chromium (Debian's ``chromium``, driven
  by playwright-core) against a farm of three nodes, a gateway and Redis, with tokens.

They need ``npm ci`` done in clients/js (``make js-client``) and /usr/bin/chromium (``make
cluster-prerequisites``). Without them the tests are skipped, and under ``make test``
(``WSPOOL_REQUIRE_JS=1``) they fail.
"""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import npm
from tests.support.processes import running_farm
from tests.support.redis_server import free_port, free_port_run
from tests.support.tokens import SECRET
from tests.support.waiting import poll_until
from wspool.gateway.app import CLIENT_MODULES

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "js"
HISTORY_SIZE = 5
"""The dev pool's history per channel: small, so a test can outrun it."""


WHAT = "the JavaScript client"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """clients/js's dev dependencies, as ``npm ci`` installed them from the lock file."""
    return npm.node_modules(CLIENT, "tsc", WHAT)


def _node_test(script: str, env: dict[str, str]) -> None:
    npm.node_test(CLIENT, script, env)


def test_the_served_modules_are_a_fresh_build_of_the_typescript(node_modules: Path) -> None:
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [node_modules / ".bin" / "tsc", "-p", ".", "--outDir", out],
            cwd=CLIENT,
            check=True,
            capture_output=True,
        )
        built = sorted(path.name for path in Path(out).glob("*.js"))
        served = sorted(path.name for path in CLIENT_MODULES.glob("*.js"))
        assert served == built, "run npm run build in clients/js"
        _, differ, _ = filecmp.cmpfiles(out, CLIENT_MODULES, built, shallow=False)
        assert differ == [], f"{differ} differ from a fresh build: run npm run build in clients/js"


@pytest.fixture(scope="module")
def dev_pool() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A real ``wspool dev``: its gateway's port and its process."""
    port = free_port_run(4)
    command = [sys.executable, "-m", "wspool", "dev", "--port", str(port), "--servers", "3"]
    process = subprocess.Popen(
        [*command, "--history-size", str(HISTORY_SIZE)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        poll_until(lambda: _answers(f"http://127.0.0.1:{port}/health"), within=15)
        yield port, process
    finally:
        process.kill()
        process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_the_gateway_serves_the_client_as_an_es_module(
    dev_pool: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = dev_pool
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/client/wspool.js") as response:
        assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.read() == (CLIENT_MODULES / "wspool.js").read_bytes()
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/client/app.py")
    assert missing.value.code == 404
    missing.value.close()


@pytest.mark.timeout(180)
def test_node_against_wspool_dev(
    node_modules: Path, dev_pool: tuple[int, subprocess.Popen[bytes]]
) -> None:
    port, process = dev_pool
    _node_test(
        "dev.test.mjs",
        {
            "WSPOOL_GATEWAY_URL": f"ws://127.0.0.1:{port}/ws",
            "WSPOOL_DEAD_URL": f"ws://127.0.0.1:{free_port()}/ws",
            "WSPOOL_HISTORY_SIZE": str(HISTORY_SIZE),
            "WSPOOL_DEV_PID": str(process.pid),
        },
    )


@pytest.mark.timeout(300)
def test_chromium_against_a_farm(node_modules: Path, redis_session_url: str) -> None:
    chromium = npm.chromium(WHAT)
    keyed = ("--jwt-secret", SECRET, "--trusted-proxies", "127.0.0.0/8", "--jwt-leeway", "0")
    unthrottled = ("--messages-per-second", "0", "--connection-attempts-per-ip", "0")
    with running_farm(
        redis_session_url,
        nodes=3,
        node_security=(*keyed, *unthrottled, "--max-connections-per-ip", "0"),
        gateway_security=("--jwt-secret", SECRET),
        # The client's own recovery is under test: the gateway leaves a lost node's clients to
        # reconnect rather than moving them (test_gateway_seamless.py covers the moves).
        gateway_args=("--seamless", "false"),
        gateway_id="gw-js",
    ) as farm:
        _node_test(
            "browser.test.mjs",
            {
                "WSPOOL_GATEWAY_HTTP": farm.gateway.http,
                "WSPOOL_JWT_SECRET": SECRET,
                "WSPOOL_NODE_PIDS": json.dumps(
                    {node.id: node.process.pid for node in farm.nodes if node.process}
                ),
                "WSPOOL_CHROMIUM": str(chromium),
            },
        )
