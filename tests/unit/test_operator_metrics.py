"""The operator's metrics from what it observes, and its runtime settings (ports, lease)."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import generate_latest

from wspool.core.options import ConfigError, load_settings
from wspool.operator.metrics import HandlerOutcomes, OperatorMetrics
from wspool.operator.model.settings import OPERATOR_OPTIONS, OperatorSettings


def _value(metrics: OperatorMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def _kopf_record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    record = logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)
    record.k8s_ref = {"namespace": "prod", "name": "chat", "kind": "WebSocketPool"}
    return record


def test_reconcile_outcomes_are_counted_per_pool_from_kopfs_records() -> None:
    metrics = OperatorMetrics()
    outcomes = HandlerOutcomes(metrics)

    outcomes.emit(_kopf_record("Handler 'reconcile' succeeded."))
    outcomes.emit(_kopf_record("Handler 'reconcile' failed temporarily: Redis away", 40))
    outcomes.emit(_kopf_record("Handler 'reconcile' failed permanently: spec.image: …", 40))
    outcomes.emit(_kopf_record("Timer 'sync' succeeded."))
    outcomes.emit(_kopf_record("Handler 'metrics' succeeded."))

    assert _value(metrics, "wspool_operator_reconciles_total", pool="prod/chat") == 3
    assert _value(metrics, "wspool_operator_reconcile_failures_total", pool="prod/chat") == 2


def test_node_counts_follow_the_status_and_each_change_of_the_desired_count_is_a_decision() -> None:
    metrics = OperatorMetrics()

    metrics.observe_status("prod/chat", {"desiredReplicas": 0, "replicas": 0})  # no Deployment
    metrics.observe_status("prod/chat", {"desiredReplicas": 3, "replicas": 0, "readyReplicas": 0})
    metrics.observe_status("prod/chat", {"desiredReplicas": 3, "replicas": 3, "readyReplicas": 3})
    metrics.observe_status("prod/chat", {"desiredReplicas": 7, "replicas": 3, "readyReplicas": 3})
    metrics.observe_status("prod/chat", {"desiredReplicas": 6, "replicas": 7, "readyReplicas": 6})

    assert _value(metrics, "wspool_operator_desired_server_nodes", pool="prod/chat") == 6
    assert _value(metrics, "wspool_operator_current_server_nodes", pool="prod/chat") == 7
    assert _value(metrics, "wspool_operator_ready_server_nodes", pool="prod/chat") == 6
    decisions = "wspool_operator_scaling_decisions_total"
    assert _value(metrics, decisions, pool="prod/chat", direction="up") == 1
    assert _value(metrics, decisions, pool="prod/chat", direction="down") == 1


def test_a_deleted_pool_leaves_no_series_behind() -> None:
    metrics = OperatorMetrics()
    metrics.observe_status("prod/chat", {"desiredReplicas": 3, "replicas": 3})
    metrics.observe_status("prod/chat", {"desiredReplicas": 4, "replicas": 3})
    metrics.reconciled("prod/chat", failed=True)

    metrics.forget("prod/chat")

    assert b"prod/chat" not in generate_latest(metrics.registry)


def test_the_metrics_port_defaults_to_8000_and_0_turns_it_off() -> None:
    assert OperatorSettings().metrics_port == 8000
    off = load_settings(OperatorSettings, OPERATOR_OPTIONS, {}, {"WSPOOL_METRICS_PORT": "0"})
    assert off.metrics_port == 0


def test_leader_election_comes_from_the_environment_with_its_lease() -> None:
    environ = {"WSPOOL_LEADER_ELECTION": "true", "WSPOOL_LEASE_NAMESPACE": "wspool-system"}

    settings = load_settings(OperatorSettings, OPERATOR_OPTIONS, {}, environ)

    assert settings.leader_election
    assert (settings.lease_namespace, settings.lease_name) == ("wspool-system", "wspool-operator")
    assert settings.lease_duration == 15.0


@pytest.mark.parametrize(
    ("flags", "option"),
    [
        ({"leader_election": "true"}, "--lease-namespace"),
        ({"lease_duration": "1"}, "--lease-duration"),
        ({"lease_name": "Operator_Lease"}, "--lease-name"),
        ({"metrics_port": "70000"}, "--metrics-port"),
    ],
)
def test_a_bad_runtime_setting_names_its_option(flags: dict[str, str], option: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(OperatorSettings, OPERATOR_OPTIONS, flags, {})

    assert raised.value.option == option
