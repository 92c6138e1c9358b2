"""History positions: the wire token, the splice of the offset, what counts as recoverable."""

from __future__ import annotations

import json

import pytest

from wspool.core.history import HistoryPolicy, StreamPosition, missing_after, with_offset
from wspool.core.protocol import encode_data, encode_subscribed


def test_a_position_travels_as_epoch_colon_offset_and_reads_back() -> None:
    position = StreamPosition("a1b2c3d4", 42)
    assert position.token == "a1b2c3d4:42"
    assert StreamPosition.parse(position.token) == position
    assert position.advanced(3) == StreamPosition("a1b2c3d4", 45)


@pytest.mark.parametrize(
    "token", ["", "42", "a1:", ":42", "a1:-3", "a1:4.5", "a-1:4", "a1:" + "9" * 19, "é:1"]
)
def test_a_malformed_position_is_refused_with_the_expected_form(token: str) -> None:
    with pytest.raises(ValueError, match="<epoch>:<number>"):
        StreamPosition.parse(token)


def test_the_offset_is_spliced_into_an_encoded_frame_as_its_last_member() -> None:
    frame = with_offset(encode_data("c", {"x": "}"}, "m1"), "e1:7")
    assert json.loads(frame) == {
        "type": "data",
        "channel": "c",
        "payload": {"x": "}"},
        "messageId": "m1",
        "offset": "e1:7",
    }
    assert frame.endswith(',"offset":"e1:7"}')


def test_missing_after_counts_messages_in_the_same_epoch_only() -> None:
    top = StreamPosition("e1", 10)
    assert missing_after(StreamPosition("e1", 4), top) == 6
    assert missing_after(top, top) == 0
    assert missing_after(StreamPosition("e1", 11), top) is None
    assert missing_after(StreamPosition("e0", 4), top) is None


def test_the_position_outlives_the_messages_so_quiet_channels_still_recover() -> None:
    assert HistoryPolicy(size=10, ttl=60).position_ttl == 86_400
    assert HistoryPolicy(size=10, ttl=200_000).position_ttl == 200_000
    with pytest.raises(ValueError, match="history"):
        HistoryPolicy(size=-1)


def test_subscribed_carries_offset_and_recovered_only_when_given() -> None:
    assert json.loads(encode_subscribed("c", "1")) == {
        "type": "subscribed",
        "channel": "c",
        "messageId": "1",
    }
    assert json.loads(encode_subscribed("c", "1", StreamPosition("e", 3), False)) == {
        "type": "subscribed",
        "channel": "c",
        "messageId": "1",
        "offset": "e:3",
        "recovered": False,
    }
