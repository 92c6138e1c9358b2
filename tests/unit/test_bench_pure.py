"""The load generator's arithmetic: percentiles, costs, plans, addresses, tables."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from wspool.bench.chart import draw_latency_chart, latency_points
from wspool.bench.compare import compare
from wspool.bench.dialects import DIALECTS
from wspool.bench.failover import choose_victim, summarize_failover
from wspool.bench.histogram import LatencyHistogram
from wspool.bench.measures import (
    NodeReading,
    parse_prometheus,
    per_message_us,
    rss_per_thousand_mb,
)
from wspool.bench.plan import (
    Role,
    deal,
    expected_deliveries,
    messages_due,
    plan_connections,
    shape_for,
    source_address,
    subscribers_per_channel,
)
from wspool.bench.report import render_table
from wspool.bench.settings import BenchSettings, parse_targets
from wspool.bench.tally import Recovery
from wspool.core.options import ConfigError


def _reading(**values: float | None) -> NodeReading:
    fields = dict.fromkeys(
        ("cpu_seconds", "rss_bytes", "connections", "received", "deliveries", "slow_consumers")
    )
    fields.update(values)
    return NodeReading(url="http://127.0.0.1:1/metrics", **fields)


def test_histogram_percentiles_are_within_two_percent_of_the_exact_ones() -> None:
    rng = random.Random(7)
    samples = sorted(int(rng.lognormvariate(13, 1)) for _ in range(20_000))  # ~0.4 ms median
    histogram = LatencyHistogram()
    for value in samples:
        histogram.record_ns(value)
    for q in (50, 95, 99):
        exact = samples[int(q / 100 * len(samples)) - 1] / 1e6
        measured = histogram.percentile_ms(q)
        assert measured is not None
        assert measured == pytest.approx(exact, rel=0.02)
    assert histogram.percentile_ms(100) == samples[-1] / 1e6


def test_merged_histograms_report_what_one_histogram_of_all_samples_reports() -> None:
    one, two, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for value in range(1_000, 2_000_000, 997):
        (one if value % 2 else two).record_ns(value)
        both.record_ns(value)
    one.merge(two)
    assert one.summary() == both.summary()


def test_an_empty_histogram_reports_no_percentiles() -> None:
    assert LatencyHistogram().summary()["p99_ms"] is None
    with pytest.raises(ValueError, match="percentile"):
        LatencyHistogram().percentile_ms(0)


def test_prometheus_text_gives_unlabelled_samples_by_name() -> None:
    text = (
        "# HELP process_cpu_seconds_total CPU\n"
        "# TYPE process_cpu_seconds_total counter\n"
        "process_cpu_seconds_total 12.5\n"
        'wspool_errors_total{code="BAD_REQUEST"} 3.0\n'
        "wspool_deliveries_total 1e+06\n"
    )
    assert parse_prometheus(text) == {
        "process_cpu_seconds_total": 12.5,
        "wspool_deliveries_total": 1e6,
    }


def test_a_gateways_metrics_read_as_relayed_frames_and_relayed_connections() -> None:
    text = (
        "process_cpu_seconds_total 3.0\n"
        "process_resident_memory_bytes 7.5e+07\n"
        "wspool_gateway_connections 500.0\n"
        "wspool_gateway_pool_connections 1500.0\n"
        "wspool_gateway_messages_to_server_total 100.0\n"
        "wspool_gateway_messages_to_client_total 250.0\n"
    )
    reading = NodeReading.from_metrics("http://127.0.0.1:1/metrics", text)
    assert reading.is_gateway
    assert (reading.relayed, reading.connections, reading.deliveries) == (350.0, 500.0, None)
    node = NodeReading.from_metrics("http://127.0.0.1:2/metrics", "wspool_connections 3.0\n")
    assert not node.is_gateway
    assert node.connections == 3.0


def test_cpu_per_message_is_cpu_seconds_between_readings_over_messages() -> None:
    before, after = _reading(cpu_seconds=10.0), _reading(cpu_seconds=12.0)
    assert per_message_us(before, after, 200_000) == pytest.approx(10.0)
    assert per_message_us(before, after, 0) is None
    assert per_message_us(_reading(), after, 10) is None


def test_memory_per_thousand_connections_is_growth_over_connections_gained() -> None:
    before = _reading(rss_bytes=40e6, connections=0)
    after = _reading(rss_bytes=80e6, connections=2_000)
    assert rss_per_thousand_mb(before, after) == pytest.approx(20.0)
    assert rss_per_thousand_mb(after, after) is None


def test_the_first_source_address_is_the_kernels_choice_then_127_0_0_2_onwards() -> None:
    assert source_address(0, 20_000) == ""
    assert source_address(19_999, 20_000) == ""
    assert source_address(20_000, 20_000) == "127.0.0.2"
    assert source_address(253 * 10, 10) == "127.0.0.254"
    assert source_address(254 * 10, 10) == "127.0.1.1"  # .255 and .0 skipped


def test_a_fanout_plan_has_one_channel_every_subscriber_listens_to() -> None:
    shape = shape_for("fanout", subscribers=30, channels=5)
    specs = plan_connections(shape, targets=2, per_address=1_000)
    assert Counter(s.role for s in specs) == {Role.SUBSCRIBER: 30, Role.PUBLISHER: 1}
    assert subscribers_per_channel(specs) == {"bench.0": 30}
    assert {s.target for s in specs} == {0, 1}


def test_a_latency_plan_splits_the_rate_over_its_publishers() -> None:
    specs = plan_connections(shape_for("latency", rate=10_000), targets=1, per_address=1_000)
    rates = [s.rate for s in specs if s.role is Role.PUBLISHER]
    assert rates == [2_500.0] * 4


def test_expected_deliveries_count_each_message_once_per_subscriber_of_its_channel() -> None:
    subscribers = Counter({"a": 3, "b": 1})
    assert expected_deliveries(Counter({"a": 10, "b": 5, "c": 7}), subscribers) == 35


def test_work_is_dealt_so_every_worker_gets_a_share_of_each_role() -> None:
    hands = deal(list(range(10)), 3)
    assert hands == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert deal([1], 4) == [[1]]


def test_targets_outside_loopback_are_refused_with_the_reason() -> None:
    assert [t.url for t in parse_targets("ws://localhost:8081/ws,ws://127.0.0.9:1")] == [
        "ws://127.0.0.1:8081/ws",
        "ws://127.0.0.9:1/",
    ]
    with pytest.raises(ValueError, match="must be on this machine"):
        parse_targets("ws://10.0.0.1:8081/ws")
    with pytest.raises(ValueError, match="ws://"):
        parse_targets("http://127.0.0.1:8081/")


def test_a_redis_url_without_spawned_servers_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="--redis-url"):
        BenchSettings(redis_url="redis://127.0.0.1:6379/0")


def test_the_gateway_options_need_the_processes_they_stand_in_front_of() -> None:
    with pytest.raises(ConfigError, match="--spawn-gateway"):
        BenchSettings(spawn_gateway=True)
    with pytest.raises(ConfigError, match="--via"):
        BenchSettings(spawn_servers=1, via="direct")
    assert BenchSettings(spawn_servers=2, spawn_gateway=True).routes == ("gateway",)
    assert BenchSettings(spawn_servers=2).routes == ("direct",)
    both = BenchSettings(spawn_servers=2, spawn_gateway=True, via="gateway,direct,gateway")
    assert both.routes == ("gateway", "direct")


def test_a_publish_delay_applies_only_to_nodes_the_bench_spawns() -> None:
    with pytest.raises(ConfigError, match="--publish-delay"):
        BenchSettings(publish_delay=0.002)
    with pytest.raises(ConfigError, match="--publish-delay"):
        BenchSettings(spawn_servers=1, peer="centrifugo", publish_delay=0.002)
    assert BenchSettings(spawn_servers=1, publish_delay=0.002).publish_delay == 0.002


def test_tables_align_text_left_and_numbers_right() -> None:
    table = render_table(["name", "msg/s"], [["fanout", "1,000"], ["connect", "-"]])
    assert table.splitlines() == [
        "name     msg/s",
        "-------  -----",
        "fanout   1,000",
        "connect      -",
    ]


def test_the_latency_chart_is_a_png_with_a_point_per_rate(tmp_path: Path) -> None:
    def run(rate: float, p50: float) -> dict[str, Any]:
        latency = {"count": 10, "p50_ms": p50, "p95_ms": p50 * 2, "p99_ms": p50 * 3}
        return {
            "scenario": "latency",
            "messages": {"deliveries_per_second": rate, "latency_ms": latency},
        }

    reports = [run(5_000, 2.0), run(1_000, 1.0), {"scenario": "connect"}]
    assert latency_points(reports) == [(1_000, 1.0, 2.0, 3.0), (5_000, 2.0, 4.0, 6.0)]
    chart = tmp_path / "latency.png"
    draw_latency_chart(reports, str(chart))
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_the_node_killed_is_the_one_with_fewest_publishers_then_most_subscribers() -> None:
    placement = Counter(
        {
            ("a", "publisher"): 1,
            ("a", "subscriber"): 9,
            ("b", "subscriber"): 4,
            ("c", "subscriber"): 6,
        }
    )
    assert choose_victim(placement, ["a", "b", "c"]) == "c"
    assert choose_victim(Counter(), ["x", "y"]) == "x"
    with pytest.raises(ValueError, match="no node"):
        choose_victim(placement, [])


def test_failover_times_count_from_the_kill_and_need_every_subscriber_back() -> None:
    ms = 1_000_000
    back = Recovery(
        "subscriber",
        "b",
        cut_ns=5 * ms,
        attempts=2,
        server_after="a",
        reopened_ns=40 * ms,
        resubscribed_ns=45 * ms,
        receiving_ns=50 * ms,
    )
    later = Recovery(
        "subscriber",
        "b",
        cut_ns=6 * ms,
        attempts=1,
        server_after="c",
        reopened_ns=90 * ms,
        resubscribed_ns=95 * ms,
        receiving_ns=120 * ms,
    )
    summary = summarize_failover([back, later], 0, "b", Counter({("b", "subscriber"): 2}))
    assert summary["all_receiving_again_ms"] == 120.0
    assert summary["receiving_again"] == {"p50_ms": 50.0, "p95_ms": 120.0, "max_ms": 120.0}
    assert summary["moved_to"] == {"a": 1, "c": 1}
    assert summary["reconnect_attempts"] == 3
    never = Recovery("subscriber", "b", cut_ns=5 * ms)
    assert summarize_failover([back, never], 0, "b", Counter())["all_receiving_again_ms"] is None


def test_both_dialects_stamp_the_send_time_where_one_pattern_reads_it() -> None:
    wspool, socketio = DIALECTS["wspool"], DIALECTS["socketio"]
    assert wspool.publish_frame("bench.0", 123456789, 7) == (
        b'{"type":"data","channel":"bench.0","payload":123456789,"messageId":"7"}'
    )
    assert socketio.publish_frame("bench.0", 123456789, 7) == (
        b'42["publish",{"channel":"bench.0","payload":123456789}]'
    )
    assert socketio.path("/socket.io/") == "/socket.io/?EIO=4&transport=websocket"
    delivered = b'42["data",{"channel":"bench.0","payload":123456789}]'
    assert delivered.startswith(socketio.data_prefix)
    stamp = re.search(rb'"payload":(\d+)', delivered)
    assert stamp is not None
    assert stamp[1] == b"123456789"


def test_a_peer_is_spawned_on_its_own_and_speaks_socketio() -> None:
    assert BenchSettings(spawn_servers=1, peer="socketio").dialect == "socketio"
    assert BenchSettings().dialect == "wspool"
    with pytest.raises(ConfigError, match="--peer"):
        BenchSettings(peer="socketio")
    with pytest.raises(ConfigError, match="--peer"):
        BenchSettings(spawn_servers=1, spawn_gateway=True, peer="socketio")
    with pytest.raises(ConfigError, match="failover"):
        BenchSettings(spawn_servers=1, spawn_gateway=True).check_scenarios(["failover"])


def test_the_side_by_side_puts_the_peers_figure_over_ours_for_the_same_run() -> None:
    def fanout(cpu_us: float, rate: int) -> dict[str, Any]:
        return {
            "scenario": "fanout",
            "shape": {"rate": 0.0},
            "messages": {"deliveries_per_second": rate},
            "nodes": [{"role": "node", "cpu_us_per_delivery": cpu_us, "cpu_percent": 50.0}],
        }

    table = compare([fanout(3.0, 200_000)], [fanout(12.0, 50_000)]).splitlines()
    assert table[0].split()[:3] == ["scenario", "rate", "figure"]
    cpu = next(line for line in table if "per delivery" in line)
    assert cpu.split()[-2:] == ["4.00x", "lower"]
    rate = next(line for line in table if "deliveries/s" in line)
    assert "0.25x" in rate
    assert compare([fanout(3.0, 1)], []).count("\n") == 1  # nothing to pair: headers only


def test_a_paced_publisher_owes_nothing_before_its_phase_then_one_per_interval() -> None:
    # 4 msg/s: due at 0, 0.25, 0.5... Publishers started together wait for their own phase,
    # or they would all publish in the same millisecond.
    assert messages_due(-0.2, 4.0, 0) == 0
    assert messages_due(-0.001, 4.0, 0) == 0
    assert messages_due(0.0, 4.0, 0) == 1
    assert messages_due(0.1, 4.0, 1) == 0
    assert messages_due(0.26, 4.0, 1) == 1
    assert messages_due(1.0, 4.0, 2) == 3  # late: what fell due meanwhile goes out together
