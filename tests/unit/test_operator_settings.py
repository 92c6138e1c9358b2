"""``wspool operator`` settings: flags, then environment, then defaults; bad values named."""

from __future__ import annotations

import pytest

from wspool.cli import main
from wspool.core.options import ConfigError, load_settings
from wspool.operator.model.settings import OPERATOR_OPTIONS, OperatorSettings


def test_namespaces_come_from_the_flag_or_the_environment() -> None:
    flagged = load_settings(OperatorSettings, OPERATOR_OPTIONS, {"namespaces": "team-a, team-b"})
    environ = {"WSPOOL_NAMESPACE": "prod", "WSPOOL_HEALTH_PORT": "8080"}
    from_env = load_settings(OperatorSettings, OPERATOR_OPTIONS, {}, environ)

    assert flagged.namespaces == ("team-a", "team-b")
    assert from_env.namespaces == ("prod",)
    assert from_env.health_port == 8080
    assert OperatorSettings().namespaces == ()  # every namespace
    assert OperatorSettings().health_port == 0  # none


@pytest.mark.parametrize(
    ("flags", "option"),
    [
        ({"namespaces": "Team_A"}, "--namespace"),
        ({"redis_url": "http://redis"}, "--redis-url"),
        ({"sync_interval": "0"}, "--sync-interval"),
    ],
)
def test_a_bad_value_names_its_option(flags: dict[str, str], option: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(OperatorSettings, OPERATOR_OPTIONS, flags, {})

    assert raised.value.option == option


def test_the_operator_command_refuses_a_bad_namespace_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["operator", "--namespace", "Not_A_Namespace"])

    error = capsys.readouterr().err
    assert status == 2
    assert error.count("\n") == 1
    assert "--namespace" in error
