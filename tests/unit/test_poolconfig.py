"""Partial PoolConfig changes: applied field by field, or refused naming the field (in the
words a pool's spec is refused in)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from wspool.core.poolconfig import PoolConfig, PoolConfigError, StrategyName
from wspool.operator.model.poolspec import PoolSpecError, parse_pool_spec

POOL: dict[str, Any] = {"redis": {"url": "redis://redis:6379"}, "auth": {"insecure": True}}


def test_a_partial_change_keeps_every_other_field() -> None:
    config = PoolConfig().merged({"strategy": "weighted", "healthCheck": {"interval": 2}})
    assert config.strategy is StrategyName.WEIGHTED
    assert config.health_check.interval == 2.0
    assert config.health_check.timeout == PoolConfig().health_check.timeout
    assert config.max_connections == PoolConfig().max_connections
    assert config.seamless is True
    assert config.merged({"seamless": False}).seamless is False


def test_the_json_form_round_trips() -> None:
    config = PoolConfig().merged({"weights": {"node-1": 5}, "maxConnections": 10})
    assert PoolConfig.from_json(config.to_json()) == config
    assert config.to_json()["healthCheck"]["fastInterval"] == 1.0


@pytest.mark.parametrize(
    ("patch", "field", "problem"),
    [
        ({"strategy": "random"}, "strategy", "unknown strategy 'random'"),
        ({"maxConnections": -5}, "maxConnections", "must be at least 1"),
        ({"maxConnections": True}, "maxConnections", "must be an integer"),
        ({"healthThreshold": 0}, "healthThreshold", "must be at least 1"),
        ({"healthCheck": {"interval": 0}}, "healthCheck.interval", "greater than 0"),
        ({"healthCheck": {"retries": 3}}, "healthCheck.retries", "unknown field"),
        ({"healthCheck": 5}, "healthCheck", "must be a JSON object"),
        ({"weights": {"node-1": -1}}, "weights.node-1", "must be at least 0"),
        ({"colour": "blue"}, "colour", "unknown field"),
        ({"seamless": "no"}, "seamless", "must be true or false"),
    ],
)
def test_a_bad_value_is_refused_with_its_path(
    patch: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(PoolConfigError) as caught:
        PoolConfig().merged(patch)
    assert caught.value.field == field
    assert problem in caught.value.problem


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"healthCheck": {"interval": number}}, "healthCheck.interval")
        for number in (math.nan, math.inf, -math.inf)
    ]
    + [
        ({"healthCheck": {"timeout": math.nan}}, "healthCheck.timeout"),
        ({"healthCheck": {"fastInterval": math.nan}}, "healthCheck.fastInterval"),
        ({"circuitBreaker": {"openSeconds": math.nan}}, "circuitBreaker.openSeconds"),
        ({"slowStart": math.nan}, "slowStart"),
        ({"slowStart": math.inf}, "slowStart"),
        ({"slowStart": -1}, "slowStart"),
    ],
)
def test_a_time_that_is_not_a_finite_number_in_range_is_refused_with_its_path(
    patch: dict[str, Any], field: str
) -> None:
    with pytest.raises(PoolConfigError) as caught:
        PoolConfig().merged(patch)
    assert caught.value.field == field
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (math.nan, "must be a finite number of seconds"),
        (math.inf, "must be a finite number of seconds"),
        (0, "must be greater than 0"),
        (3601, "must be at most 3600"),
        (True, "must be a number of seconds"),
    ],
)
def test_the_pool_config_and_a_pools_spec_refuse_a_bad_time_in_the_same_words(
    value: Any, problem: str
) -> None:
    with pytest.raises(PoolConfigError) as config:
        PoolConfig().merged({"healthCheck": {"interval": value}})
    with pytest.raises(PoolSpecError) as spec:
        parse_pool_spec({**POOL, "healthCheck": {"interval": value}})
    assert config.value.problem == spec.value.problem == problem
    assert spec.value.field == "spec.healthCheck.interval"
