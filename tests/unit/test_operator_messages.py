"""What the operator tells users in events and conditions: config changes, error lines."""

from __future__ import annotations

import json

from kubernetes.aio.client.exceptions import ApiException

from wspool.core.poolconfig import PoolConfig
from wspool.operator.events import describe
from wspool.operator.stats import config_changes

DECLARED = {
    "strategy": "round-robin",
    "maxConnections": 100_000,
    "healthThreshold": 3,
    "healthCheck": {"interval": 2.0, "timeout": 1.0},
}


def test_a_pushed_config_names_each_declared_field_that_changed_with_old_and_new() -> None:
    before = PoolConfig.from_json({}).to_json()
    after = PoolConfig.from_json(before).merged(DECLARED).to_json()

    assert config_changes(before, after, DECLARED) == [
        "strategy least-connections -> round-robin",
        "healthCheck.interval 5 -> 2",
        "healthCheck.timeout 3 -> 1",
    ]


def test_the_first_config_names_every_declared_field() -> None:
    after = PoolConfig.from_json({}).merged(DECLARED).to_json()

    assert config_changes(None, after, DECLARED) == [
        "strategy round-robin",
        "maxConnections 100000",
        "healthThreshold 3",
        "healthCheck.interval 2",
        "healthCheck.timeout 1",
    ]


def test_an_api_refusal_reads_as_its_status_and_message_not_the_clients_dump() -> None:
    body = json.dumps({"kind": "Status", "message": 'deployments.apps "chat-server" is forbidden'})
    error = ApiException(status=403, reason="Forbidden", body=body)

    assert str(error).count("\n") > 2  # what a plain str() would have put in the status
    assert describe(error) == (
        'the API server answered 403: deployments.apps "chat-server" is forbidden'
    )
    assert describe(ApiException(status=503, reason="Service Unavailable", body="<html>")) == (
        "the API server answered 503: Service Unavailable"
    )


def test_an_error_without_text_is_named_by_its_type_and_long_ones_are_cut() -> None:
    assert describe(TimeoutError()) == "TimeoutError"
    long = describe(OSError("Connection refused\n" + "x" * 1000))
    assert "\n" not in long
    assert len(long) <= 280
