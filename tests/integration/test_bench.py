"""``wspool bench`` against a real node process on a real Redis, every scenario tiny.

What its user relies on: every planned connection opens, every message published reaches
every subscriber once, and the report carries the node's CPU and memory readings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import NodeProcess
from wspool.bench.peers import install_node_peer
from wspool.cli import main


def _bench(
    *args: str, timeout: float = 50, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``wspool bench`` with ``args``, in a child process; its output is captured."""
    return subprocess.run(
        [sys.executable, "-m", "wspool", "bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


@pytest.fixture(scope="module")
def report(
    redis_session_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    node = NodeProcess("bench-node", redis_session_url).start()
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    try:
        finished = _bench(
            *("connect", "throughput", "latency", "fanout"),
            *("--url", node.url, "--workers", "2", "--duration", "0.5"),
            *("--connections", "60", "--publishers", "2", "--subscribers", "20"),
            *("--channels", "2", "--json", str(out)),
        )
        assert finished.returncode == 0, finished.stderr
        document = json.loads(out.read_text())
        document["stdout"], document["stderr"] = finished.stdout, finished.stderr
        yield document
    finally:
        node.stop()


def _run(report: dict[str, Any], scenario: str) -> dict[str, Any]:
    runs = [r for r in report["runs"] if r["scenario"] == scenario]
    assert len(runs) == 1
    run: dict[str, Any] = runs[0]
    return run


def test_connect_opens_every_connection_and_reads_the_nodes_memory(
    report: dict[str, Any],
) -> None:
    run = _run(report, "connect")
    assert run["connections"]["opened"] == run["connections"]["planned"] == 60
    assert run["connections"]["setup_ms"]["count"] == 60
    assert run["connections"]["lost"] == 0
    (node,) = run["nodes"]
    assert node["connections"] == 60
    assert node["rss_mb"] > 0


def test_fanout_delivers_every_message_to_every_subscriber_once(report: dict[str, Any]) -> None:
    messages = _run(report, "fanout")["messages"]
    assert messages["sent"] > 0
    assert messages["delivered"] == messages["sent"] * 20 == messages["expected_deliveries"]
    assert messages["deliveries_per_second"] > 0


def test_throughput_reports_rates_and_server_cpu_per_message(report: dict[str, Any]) -> None:
    run = _run(report, "throughput")
    messages = run["messages"]
    assert messages["missing"] == 0 < messages["sent"]
    assert messages["in_per_second"] > 0
    (node,) = run["nodes"]
    assert node["messages_received"] >= messages["sent"]
    assert node["cpu_us_per_inbound"] > 0
    assert node["cpu_us_per_delivery"] > 0


def test_latency_measures_every_delivery_at_the_asked_rate(report: dict[str, Any]) -> None:
    messages = _run(report, "latency")["messages"]
    assert messages["missing"] == 0
    assert messages["latency_ms"]["count"] == messages["delivered"] > 0
    # 1,000 msg/s for half a second: generous bounds, the machine is shared.
    assert 250 <= messages["sent"] <= 750
    assert 0 < messages["latency_ms"]["p50_ms"] <= messages["latency_ms"]["p99_ms"]


def test_the_run_shows_progress_and_ends_with_a_table(report: dict[str, Any]) -> None:
    assert "open 60/60" in report["stderr"]
    assert report["stdout"].splitlines()[0].split()[:4] == ["scenario", "via", "rate", "open"]


def test_a_target_outside_this_machine_is_refused_before_anything_connects(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "never.json"
    code = main(["bench", "connect", "--url", "ws://192.0.2.1:8081/ws", "--json", str(out)])
    assert code == 2
    assert (
        "must be on this machine (127.0.0.0/8 or localhost), not 192.0.2.1"
        in capsys.readouterr().err
    )
    assert not out.exists()


@pytest.fixture(scope="module")
def gateway_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "gateway.json"
    finished = _bench(
        *("connect", "latency", "--spawn-servers", "1"),
        *("--spawn-gateway", "--via", "gateway,direct", "--workers", "1"),
        *("--duration", "0.5", "--connections", "20", "--rate", "200", "--json", str(out)),
    )
    assert finished.returncode == 0, finished.stderr
    document: dict[str, Any] = json.loads(out.read_text())
    return document


def _route(report: dict[str, Any], scenario: str, route: str) -> dict[str, Any]:
    (run,) = (r for r in report["runs"] if r["scenario"] == scenario and r["route"] == route)
    return dict(run)


def test_connect_through_the_spawned_gateway_and_straight_to_the_node(
    gateway_report: dict[str, Any],
) -> None:
    for route in ("gateway", "direct"):
        connections = _route(gateway_report, "connect", route)["connections"]
        assert connections["opened"] == connections["planned"] == 20
    node, gateway = _route(gateway_report, "connect", "gateway")["nodes"]
    assert (node["role"], gateway["role"]) == ("node", "gateway")
    assert node["connections"] == gateway["connections"] == 20
    assert gateway["rss_mb"] > 0
    assert _route(gateway_report, "connect", "direct")["nodes"][1]["connections"] == 0


def test_the_gateway_reports_every_frame_it_relayed_and_its_cpu_per_frame(
    gateway_report: dict[str, Any],
) -> None:
    run = _route(gateway_report, "latency", "gateway")
    messages = run["messages"]
    assert messages["missing"] == 0 < messages["sent"]
    gateway = run["nodes"][1]
    assert gateway["relayed_frames"] == messages["sent"] + messages["delivered"]
    assert gateway["cpu_us_per_relayed_frame"] > 0
    direct = _route(gateway_report, "latency", "direct")
    assert direct["nodes"][1]["relayed_frames"] == 0
    assert direct["messages"]["missing"] == 0


def test_failover_kills_a_node_and_every_subscriber_comes_back_through_the_gateway(
    tmp_path: Path,
) -> None:
    out = tmp_path / "failover.json"
    finished = _bench(
        *("failover", "--spawn-servers", "2", "--spawn-gateway", "--seamless", "false"),
        *("--workers", "1", "--subscribers", "20", "--duration", "2", "--json", str(out)),
    )
    assert finished.returncode == 0, finished.stderr
    (run,) = json.loads(out.read_text())["runs"]
    failover = run["failover"]
    # The publisher's node is spared, so the killed one held subscribers only.
    assert failover["on_killed_node"] == {"subscribers": 10, "publishers": 0}
    assert failover["subscribers_cut"] == failover["subscribers_receiving_again"] == 10
    assert set(failover["moved_to"]) == {"bench-1", "bench-2"} - {failover["killed"]}
    # Generous (the target is 1 s): the machine is shared.
    assert 0 < failover["all_receiving_again_ms"] < 10_000
    assert run["connections"]["close_codes"] == {"1012": 10}  # "service restart: reconnect"
    # Resubscribed with `since`: the node replays what they missed, nothing twice.
    assert failover["resubscribed_with"] == "since"
    assert failover["recovered"] == 10
    messages = run["messages"]
    assert messages["missing"] == messages["gaps"] == messages["duplicates"] == 0
    assert messages["delivered"] == messages["expected_deliveries"] > 0
    assert "failover: killed" in finished.stdout


def test_failover_with_seamless_moves_cuts_no_subscriber_and_loses_nothing(
    tmp_path: Path,
) -> None:
    out = tmp_path / "seamless.json"
    finished = _bench(
        *("failover", "--spawn-servers", "2", "--spawn-gateway"),
        *("--workers", "1", "--subscribers", "20", "--duration", "2", "--json", str(out)),
    )
    assert finished.returncode == 0, finished.stderr
    (run,) = json.loads(out.read_text())["runs"]
    failover = run["failover"]
    assert failover["on_killed_node"] == {"subscribers": 10, "publishers": 0}
    # The gateway moved the killed node's sessions: no client saw its connection close.
    assert failover["cut"] == failover["subscribers_cut"] == 0
    assert run["connections"]["close_codes"] == {}
    messages = run["messages"]
    assert messages["missing"] == messages["gaps"] == messages["duplicates"] == 0
    assert messages["delivered"] == messages["expected_deliveries"] > 0


def test_many_channels_and_a_subscribe_storm_against_a_spawned_node_and_its_redis(
    tmp_path: Path,
) -> None:
    out = tmp_path / "scenarios.json"
    finished = _bench(
        *("many-channels", "subscribe-storm", "--spawn-servers", "1", "--workers", "2"),
        *("--duration", "1", "--publishers", "10", "--subscribers", "20", "--channels", "10"),
        *("--rate", "200", "--json", str(out)),
    )
    assert finished.returncode == 0, finished.stderr
    runs = {r["scenario"]: r for r in json.loads(out.read_text())["runs"]}
    many = runs["many-channels"]
    messages = many["messages"]
    # 10 channels, one publisher each at 20 msg/s for a second (200 messages, fewer if the
    # shared machine stalls a publisher at the end), 2 subscribers per channel.
    assert 150 <= messages["sent"] <= 200
    assert messages["delivered"] == messages["expected_deliveries"] == 2 * messages["sent"]
    assert messages["missing"] == 0
    assert messages["latency_ms"]["count"] == messages["delivered"]
    (node,) = many["nodes"]
    assert node["cpu_us_per_delivery"] > 0
    assert many["redis"]["cpu_seconds"] >= 0
    assert many["redis"]["cpu_us_per_delivery"] is not None
    storm = runs["subscribe-storm"]["subscribe_storm"]
    assert storm["planned"] == storm["subscribed"] == 20
    assert storm["refused"] == 0
    assert 0 < storm["all_subscribed_ms"] < 10_000
    assert storm["subscribe_ms"]["count"] == 20
    assert "subscribe storm: 20 of 20 subscribed at once, 0 refused" in finished.stdout


def test_nodes_spawned_with_a_publish_delay_still_deliver_every_message(tmp_path: Path) -> None:
    out = tmp_path / "delayed.json"
    finished = _bench(
        *("many-channels", "--spawn-servers", "1", "--publish-delay", "0.005"),
        *("--workers", "1", "--duration", "1", "--publishers", "10", "--subscribers", "20"),
        *("--channels", "10", "--rate", "400", "--json", str(out)),
    )
    assert finished.returncode == 0, finished.stderr
    report = json.loads(out.read_text())
    assert "--publish-delay 0.005" in report["command"]
    messages = report["runs"][0]["messages"]
    assert messages["sent"] >= 300
    assert messages["delivered"] == messages["expected_deliveries"] == 2 * messages["sent"]
    assert (messages["missing"], messages["gaps"], messages["duplicates"]) == (0, 0, 0)


@pytest.fixture(scope="session")
def node_peer_installed() -> None:
    """The Node.js peer's npm dependencies (``npm ci`` from its lock file when missing)."""
    install_node_peer()


@pytest.mark.parametrize("peer", ["socketio", "socketio-node"])
def test_a_socketio_peer_runs_the_same_scenarios_and_reports_the_same_figures(
    peer: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if peer == "socketio-node":
        request.getfixturevalue("node_peer_installed")
    out = tmp_path / "peer.json"
    finished = _bench(
        *("connect", "latency", "fanout", "--spawn-servers", "1"),
        *("--peer", peer, "--workers", "1", "--duration", "0.5"),
        *("--connections", "30", "--subscribers", "10", "--json", str(out)),
    )
    assert finished.returncode == 0, finished.stderr
    runs = {r["scenario"]: r for r in json.loads(out.read_text())["runs"]}
    connect = runs["connect"]
    assert connect["connections"]["opened"] == 30
    assert connect["nodes"][0]["connections"] == 30
    assert connect["nodes"][0]["rss_mb"] > 0
    for scenario in ("latency", "fanout"):
        messages = runs[scenario]["messages"]
        assert messages["missing"] == 0 < messages["sent"], scenario
    fanout = runs["fanout"]
    (server,) = fanout["nodes"]
    # 10 subscribers and the publisher hearing its own: 11 deliveries a message.
    assert server["deliveries"] == fanout["messages"]["sent"] * 11
    assert server["cpu_us_per_delivery"] > 0


def test_the_node_peer_without_node_on_the_path_is_one_clear_line(tmp_path: Path) -> None:
    finished = _bench(
        *("connect", "--spawn-servers", "1"),
        *("--peer", "socketio-node", "--json", str(tmp_path / "peer.json")),
        timeout=30,
        env={"PATH": str(tmp_path)},  # no node, no npm
    )
    assert finished.returncode == 2
    assert finished.stderr == (
        "wspool bench: invalid --peer: socketio-node needs Node.js 18+: node and npm not on PATH\n"
    )
    assert not (tmp_path / "peer.json").exists()


def test_centrifugo_without_its_build_or_go_is_one_clear_line(tmp_path: Path) -> None:
    finished = _bench(
        *("connect", "--spawn-servers", "1"),
        *("--peer", "centrifugo-redis", "--json", str(tmp_path / "peer.json")),
        timeout=30,
        env={"PATH": str(tmp_path), "WSPOOL_BENCH_CACHE": str(tmp_path)},  # no go, no build
    )
    assert finished.returncode == 2
    binary = tmp_path / "centrifugo-v6.9.1" / "centrifugo"
    assert finished.stderr == (
        f"wspool bench: invalid --peer: centrifugo needs its build at {binary} "
        "(`make peers`, Go 1.26+): go not on PATH\n"
    )
    assert not (tmp_path / "peer.json").exists()
