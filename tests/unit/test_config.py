"""The configuration loader: flags over environment over defaults, and clear errors."""

from __future__ import annotations

import re
from typing import Any

import pytest

from wspool.bench.settings import BENCH_OPTIONS, BenchSettings
from wspool.core.config import (
    DEV_OPTIONS,
    GATEWAY_OPTIONS,
    SERVER_OPTIONS,
    DevSettings,
    GatewaySettings,
    ServerSettings,
)
from wspool.core.options import ConfigError, Option, Secret, deprecated_variables, load_settings
from wspool.core.security import SecuritySettings
from wspool.operator.model.settings import OPERATOR_OPTIONS, OperatorSettings

COMMAND_TABLES: dict[type[Any], tuple[Option, ...]] = {
    DevSettings: DEV_OPTIONS,
    ServerSettings: SERVER_OPTIONS,
    GatewaySettings: GATEWAY_OPTIONS,
    OperatorSettings: OPERATOR_OPTIONS,
    BenchSettings: BENCH_OPTIONS,
}


def test_defaults_apply_when_nothing_is_given() -> None:
    settings = load_settings(ServerSettings, SERVER_OPTIONS, {}, environ={})
    assert settings == ServerSettings()


def test_a_flag_wins_over_the_environment() -> None:
    settings = load_settings(
        ServerSettings, SERVER_OPTIONS, {"port": "9001"}, environ={"WSPOOL_PORT": "9002"}
    )
    assert settings.port == 9001


def test_the_environment_fills_what_flags_leave_out() -> None:
    settings = load_settings(
        ServerSettings,
        SERVER_OPTIONS,
        {},
        environ={"REDIS_URL": "redis://cache:6379/1", "WSPOOL_DRAIN_WINDOW": "2.5"},
    )
    assert settings.redis_url == "redis://cache:6379/1"
    assert settings.drain_window == 2.5


@pytest.mark.parametrize(
    ("flags", "environ", "named"),
    [
        ({"port": "http"}, {}, "--port"),
        ({"port": "70000"}, {}, "--port"),
        ({}, {"WSPOOL_PORT": "-1"}, "--port (from $WSPOOL_PORT)"),
        ({"redis_url": "localhost:6379"}, {}, "--redis-url"),
        ({"ping_interval": "0"}, {}, "--ping-interval"),
        ({"drain_window": "nan"}, {}, "--drain-window"),
        ({"weight": "0"}, {}, "--weight"),
        ({"log_format": "xml"}, {}, "--log-format"),
        ({"max_message_bytes": "2000000"}, {}, "--max-message-bytes"),
        ({"node_ttl": "1", "heartbeat_interval": "2"}, {}, "--node-ttl"),
    ],
)
def test_a_bad_value_names_its_option(
    flags: dict[str, str | None], environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(ServerSettings, SERVER_OPTIONS, flags, environ=environ)
    assert str(raised.value).startswith(f"invalid {named}:")
    assert "\n" not in str(raised.value)


def test_dev_nodes_take_the_ports_after_the_gateway() -> None:
    settings = load_settings(DevSettings, DEV_OPTIONS, {"port": "9000", "servers": "3"}, environ={})
    assert [settings.node_settings(i).port for i in range(3)] == [9001, 9002, 9003]
    assert [settings.node_settings(i).id for i in range(3)] == ["node-1", "node-2", "node-3"]


def test_dev_refuses_more_than_ten_servers() -> None:
    with pytest.raises(ConfigError, match="--servers"):
        load_settings(DevSettings, DEV_OPTIONS, {"servers": "11"}, environ={})


def test_a_node_without_an_id_gets_a_unique_one() -> None:
    first, second = ServerSettings().resolved(), ServerSettings().resolved()
    assert first.id
    assert second.id
    assert first.id != second.id
    assert ServerSettings(id="n1").resolved().id == "n1"


def test_security_options_fill_the_nested_settings() -> None:
    settings = load_settings(
        ServerSettings,
        SERVER_OPTIONS,
        {"security.max_connections_per_ip": "7", "security.insecure": "true"},
        environ={"WSPOOL_ALLOWED_ORIGINS": "https://A.example, https://b.example:8443"},
    )
    assert settings.security.max_connections_per_ip == 7
    assert settings.security.insecure
    assert settings.security.allowed_origins == ("https://a.example", "https://b.example:8443")
    assert settings.security.origin_allowed("https://a.example")
    assert settings.security.origin_allowed(None)
    assert not settings.security.origin_allowed("https://evil.example")


def test_secrets_never_show_in_a_repr() -> None:
    secret = "s3cr3t-" * 6
    settings = load_settings(
        ServerSettings,
        SERVER_OPTIONS,
        {},
        environ={"WSPOOL_JWT_SECRET": secret},
    )
    assert settings.security.jwt_secret is not None
    assert settings.security.jwt_secret.reveal() == secret
    assert secret not in repr(settings)
    assert secret not in str(settings.security.jwt_secret)


def test_a_node_without_a_key_or_insecure_is_refused_naming_both_ways_out() -> None:
    with pytest.raises(ConfigError) as raised:
        SecuritySettings().verifier()
    message = str(raised.value)
    assert message.startswith("--jwt-secret is missing:")
    assert "--insecure" in message
    assert SecuritySettings(insecure=True).verifier() is None


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (SecuritySettings(jwt_secret=Secret("short")), "--jwt-secret"),
        (SecuritySettings(jwks="{"), "--jwks-file"),
        (SecuritySettings(jwt_public_key="x", jwks='{"keys":[]}'), "--jwks-file"),
        (SecuritySettings(insecure=True, jwt_secret=Secret("x" * 40)), "--insecure"),
    ],
)
def test_unusable_security_settings_name_their_option(
    settings: SecuritySettings, named: str
) -> None:
    with pytest.raises(ConfigError, match=f"^invalid {named}:"):
        settings.verifier()


def test_key_files_are_read_through_the_given_reader_and_trimmed() -> None:
    files = {"/run/secret": "k" * 40 + "\n"}
    settings = SecuritySettings(jwt_secret_file="/run/secret").read_files(files.__getitem__)
    assert settings.jwt_secret == Secret("k" * 40)
    assert settings.verifier() is not None

    def missing(path: str) -> str:
        raise FileNotFoundError(2, "No such file or directory")

    with pytest.raises(ConfigError, match=r"--jwks-file.*No such file"):
        SecuritySettings(jwks_file="/nope").read_files(missing)


def test_dev_runs_open() -> None:
    settings = load_settings(DevSettings, DEV_OPTIONS, {}, environ={})
    assert settings.node_settings(0).security.insecure


def test_a_short_ticket_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(ServerSettings, SERVER_OPTIONS, {"ticket_secret": "hunter2"}, {})
    assert str(caught.value) == "invalid --ticket-secret: must be at least 32 characters"
    assert "hunter2" not in repr(ServerSettings(ticket_secret="hunter2" * 5))


def test_redis_may_be_reached_over_a_unix_socket_and_other_schemes_are_refused() -> None:
    socket_url = "unix:///var/run/redis/redis.sock"
    settings = load_settings(ServerSettings, SERVER_OPTIONS, {"redis_url": socket_url}, {})
    assert settings.redis_url == socket_url
    with pytest.raises(ConfigError, match="--redis-url"):
        load_settings(ServerSettings, SERVER_OPTIONS, {"redis_url": "http://redis:6379"}, {})


def _numeric_options() -> list[tuple[type[Any], Option]]:
    """Every option of every command that takes a number (it parses "1" or "2.5")."""
    found = []
    for settings, table in COMMAND_TABLES.items():
        for option in table:
            if option.switch:
                continue
            for sample in ("1", "2.5"):
                try:
                    option.parse(sample)
                except ValueError:
                    continue
                # Text options take "1" too; a number option refuses a word.
                try:
                    option.parse("many")
                except ValueError:
                    found.append((settings, option))
                break
    return found


@pytest.mark.parametrize(
    ("settings", "option"),
    _numeric_options(),
    ids=lambda value: getattr(value, "flag", getattr(value, "__name__", "")),
)
@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "1e999", "-1"])
def test_every_number_option_refuses_nan_infinity_and_negatives_in_one_line_naming_it(
    settings: type[Any], option: Option, text: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(settings, COMMAND_TABLES[settings], {}, environ={option.env: text})
    assert str(refused.value).startswith(f"invalid {option.flag} (from ${option.env}):")
    assert "\n" not in str(refused.value)


def test_dev_and_gateway_read_their_nodes_from_variables_of_their_own() -> None:
    environ = {"WSPOOL_DEV_SERVERS": "4", "WSPOOL_SERVER_URLS": "ws://a:8081,ws://b:8081"}
    assert load_settings(DevSettings, DEV_OPTIONS, {}, environ=environ).servers == 4
    gateway = load_settings(GatewaySettings, GATEWAY_OPTIONS, {}, environ=environ)
    assert gateway.servers == ("ws://a:8081", "ws://b:8081")


def test_the_old_shared_variable_still_works_for_one_release_and_is_reported() -> None:
    count, urls = {"WSPOOL_SERVERS": "3"}, {"WSPOOL_SERVERS": "ws://a:8081"}
    assert load_settings(DevSettings, DEV_OPTIONS, {}, environ=count).servers == 3
    assert load_settings(GatewaySettings, GATEWAY_OPTIONS, {}, environ=urls).servers == (
        "ws://a:8081",
    )
    # Set for the gateway, it no longer stops `wspool dev` from starting.
    assert load_settings(DevSettings, DEV_OPTIONS, {}, environ=urls) == DevSettings()
    assert deprecated_variables(DEV_OPTIONS, urls) == [
        "$WSPOOL_SERVERS is deprecated and will be ignored in the next release: "
        "use $WSPOOL_DEV_SERVERS"
    ]
    assert deprecated_variables(GATEWAY_OPTIONS, {"WSPOOL_SERVER_URLS": "ws://a:1"}) == []


@pytest.mark.parametrize(
    "option",
    [option for table in COMMAND_TABLES.values() for option in table if not option.switch],
    ids=lambda option: option.flag,
)
def test_every_option_with_a_value_names_what_the_value_is(option: Option) -> None:
    assert re.fullmatch("[A-Z]+", option.metavar), option.metavar
