"""The node control channel: what the pool manager sends a node reads back as sent, and a
frame that is not a command is refused with the reason."""

from __future__ import annotations

import pytest

from wspool.core import control
from wspool.core.history import HistoryPolicy, with_offset
from wspool.core.protocol import CHANNEL_PATTERN


def test_a_close_command_reads_back_as_sent() -> None:
    command = control.CloseConnection("3f2a9c")
    assert control.decode(control.encode(command)) == command


def test_a_drain_command_reads_back_as_sent() -> None:
    assert control.encode(control.DrainNode()) == '{"command":"drain"}'
    assert control.decode(control.encode(control.DrainNode())) == control.DrainNode()


def test_a_command_reads_back_with_the_offset_the_bus_adds() -> None:
    frame = with_offset(control.encode(control.CloseConnection("c1")), "ab12:7")
    assert control.decode(frame) == control.CloseConnection("c1")


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("not json", "must be JSON"),
        ('["close", "c1"]', "must be a JSON object"),
        ('{"connectionId": "c1"}', "unknown command None"),
        ('{"command": "drop", "connectionId": "c1"}', "unknown command 'drop'"),
        ('{"command": "close"}', "close needs a connectionId"),
        ('{"command": "close", "connectionId": 7}', "close needs a connectionId"),
        ('{"command": "close", "connectionId": ""}', "close needs a connectionId"),
    ],
)
def test_a_malformed_command_is_refused_with_the_reason(frame: str, reason: str) -> None:
    with pytest.raises(control.ControlError, match=reason):
        control.decode(frame)


def test_an_unknown_command_name_is_cut_short_in_the_reason() -> None:
    with pytest.raises(control.ControlError) as raised:
        control.decode('{"command": "' + "x" * 10_000 + '"}')
    assert len(str(raised.value)) < 100


def test_the_control_channel_is_no_client_channel_and_keeps_no_history() -> None:
    name = control.channel("node-1")
    assert control.is_control_channel(name)
    assert not CHANNEL_PATTERN.fullmatch(name)
    policy = HistoryPolicy(size=100, ttl=60)
    assert policy.for_channel(name).size == 0
    assert policy.for_channel("news").size == 100
    assert not control.is_control_channel("news")
