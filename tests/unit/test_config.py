"""The configuration loader: flags over environment over defaults, and clear errors."""

from __future__ import annotations

import pytest

from wspool.core.config import (
    DEV_OPTIONS,
    SERVER_OPTIONS,
    ConfigError,
    DevSettings,
    ServerSettings,
    load_settings,
)


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


def test_a_short_ticket_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(ServerSettings, SERVER_OPTIONS, {"ticket_secret": "hunter2"}, {})
    assert str(caught.value) == "invalid --ticket-secret: must be at least 32 characters"
    assert "hunter2" not in repr(ServerSettings(ticket_secret="hunter2" * 5))
