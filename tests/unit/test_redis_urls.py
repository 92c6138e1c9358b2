"""The Redis URL forms: one server, a cluster's seed nodes, Sentinels and their primary."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from wspool.core.config import SERVER_OPTIONS, ServerSettings
from wspool.core.options import ConfigError, load_settings
from wspool.core.redisurl import RedisKind, parse_redis_url, without_credentials
from wspool.operator.model.podenv import config_environment
from wspool.operator.model.poolspec import PoolSpecError, parse_pool_spec

REPOSITORY = Path(__file__).resolve().parents[2]


def test_a_cluster_is_named_by_its_seed_nodes_with_credentials_and_tls() -> None:
    target = parse_redis_url("rediss+cluster://app:s%40cret@10.0.0.1:7000,[::1]:7001,redis-2")
    assert target.kind is RedisKind.CLUSTER
    assert target.tls
    assert target.nodes == (("10.0.0.1", 7000), ("::1", 7001), ("redis-2", 6379))
    assert (target.username, target.password) == ("app", "s@cret")


def test_sentinels_name_the_primary_they_watch() -> None:
    target = parse_redis_url("redis+sentinel://:pw@s1:26379,s2/mymaster")
    assert target.kind is RedisKind.SENTINEL
    assert not target.tls
    assert target.nodes == (("s1", 26379), ("s2", 26379))
    assert target.primary == "mymaster"
    assert (target.username, target.password) == (None, "pw")


def test_one_server_is_left_to_redis_py() -> None:
    target = parse_redis_url("rediss://user:pw@cache:6380/2")
    assert (target.kind, target.tls, target.url) == (
        RedisKind.SINGLE,
        True,
        "rediss://user:pw@cache:6380/2",
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://s1:26379", "ends with /primary-name"),
        ("redis+cluster://a:7000/0", "has no path"),
        ("redis+cluster://a:7000,,b:7001", "no empty entry"),
        ("redis+cluster://a:99999", "bad port"),
        ("redis+cluster://:7000", "names no host"),
        ("redis+cluster://a:7000?timeout=1", "no query"),
        ("redis+shard://a:7000", "must be a redis://"),
        ("http://redis:6379", "must be a redis://"),
    ],
)
def test_a_bad_url_is_refused_with_one_line_naming_the_flag(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(ServerSettings, SERVER_OPTIONS, {"redis_url": url}, {})
    message = str(caught.value)
    assert message.startswith("invalid --redis-url: ")
    assert problem in message
    assert "\n" not in message


def test_every_form_is_taken_by_the_flag() -> None:
    for url in (
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
        "rediss+sentinel://user:pw@s1:26379/primary",
    ):
        settings = load_settings(ServerSettings, SERVER_OPTIONS, {"redis_url": url}, {})
        assert settings.redis_url == url


def test_a_key_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ConfigError, match="invalid --key-prefix: must not contain braces"):
        load_settings(ServerSettings, SERVER_OPTIONS, {"key_prefix": "{pool}:"}, {})


CLUSTER_URL = "redis+cluster://redis-0.redis:6379,redis-1.redis:6379"
SENTINEL_URL = "rediss+sentinel://app:pw@sentinel:26379/primary"


def _pool(redis: dict[str, Any]) -> dict[str, Any]:
    return {"redis": redis, "auth": {"insecure": True}}


def test_a_pool_takes_a_cluster_or_sentinel_url_and_hands_it_to_its_pods() -> None:
    for url in (CLUSTER_URL, SENTINEL_URL):
        spec = parse_pool_spec(_pool({"url": url}))
        environment = config_environment(spec, "p:")
        assert url in environment.values()


@pytest.mark.parametrize(
    ("redis", "field"),
    [
        ({"url": "redis+sentinel://sentinel:26379"}, "spec.redis.url"),
        ({"url": "redis+cluster://a:1,b:x"}, "spec.redis.url"),
        ({"url": CLUSTER_URL, "keyPrefix": "{chat}:"}, "spec.redis.keyPrefix"),
    ],
)
def test_a_pool_with_a_bad_redis_url_names_its_field(redis: dict[str, Any], field: str) -> None:
    with pytest.raises(PoolSpecError) as raised:
        parse_pool_spec(_pool(redis))
    assert raised.value.field == field


def test_the_crd_and_the_chart_take_the_same_url_forms_as_the_engine() -> None:
    crd = yaml.safe_load((REPOSITORY / "crds" / "websocketpools.realtime.acc.io.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    crd_pattern = spec["properties"]["redis"]["properties"]["url"]["pattern"]
    chart = json.loads(
        (REPOSITORY / "charts" / "websocket-pool" / "values.schema.json").read_text()
    )
    chart_pattern = chart["$defs"]["redisUrl"]["pattern"]
    for url in (CLUSTER_URL, SENTINEL_URL, "redis://cache:6379/2"):
        assert re.search(crd_pattern, url), url
        assert re.search(chart_pattern, url), url
    for url in ("redis+sentinel://s:26379", "http://cache"):
        assert not re.search(crd_pattern, url), url
        assert not re.search(chart_pattern, url), url


def test_a_url_in_the_logs_has_no_credentials() -> None:
    assert without_credentials(SENTINEL_URL) == "rediss+sentinel://***@sentinel:26379/primary"
    assert without_credentials("redis://cache:6379/0") == "redis://cache:6379/0"
