"""The wire protocol: what a client may send, and what it gets back."""

from __future__ import annotations

import json

import pytest

from wspool.core.jsoninput import MAX_DEPTH
from wspool.core.protocol import (
    ErrorCode,
    MessageType,
    ProtocolError,
    encode_connected,
    encode_data,
    encode_error,
    error_body,
    parse_client_frame,
)

LIMIT = 1024


def test_subscribe_frame_parses_with_channel_and_message_id() -> None:
    message = parse_client_frame(
        '{"type":"subscribe","channel":"prices.eu","messageId":"7"}', LIMIT
    )
    assert message.type is MessageType.SUBSCRIBE
    assert message.channel == "prices.eu"
    assert message.message_id == "7"


def test_data_frame_keeps_any_json_payload() -> None:
    message = parse_client_frame(
        '{"type":"data","channel":"c","payload":{"a":[1,null,"x"]},"messageId":"1"}', LIMIT
    )
    assert message.payload == {"a": [1, None, "x"]}


def test_ping_ignores_a_channel() -> None:
    assert (
        parse_client_frame('{"type":"ping","channel":"c","messageId":"1"}', LIMIT).channel is None
    )


@pytest.mark.parametrize(
    ("frame", "code", "message_id"),
    [
        ("not json", ErrorCode.BAD_REQUEST, None),
        ("[1, 2]", ErrorCode.BAD_REQUEST, None),
        ('"text"', ErrorCode.BAD_REQUEST, None),
        (b'{"type":"ping","messageId":"1"}', ErrorCode.BAD_REQUEST, None),
        ('{"type":"ping"}', ErrorCode.BAD_REQUEST, None),
        ('{"type":"ping","messageId":""}', ErrorCode.BAD_REQUEST, None),
        ('{"type":"ping","messageId":5}', ErrorCode.BAD_REQUEST, None),
        ('{"type":"shout","messageId":"1"}', ErrorCode.BAD_REQUEST, "1"),
        ('{"messageId":"1"}', ErrorCode.BAD_REQUEST, "1"),
        ('{"type":"subscribe","messageId":"2"}', ErrorCode.BAD_REQUEST, "2"),
        ('{"type":"data","messageId":"2","payload":1}', ErrorCode.BAD_REQUEST, "2"),
        ('{"type":"subscribe","channel":"a b","messageId":"3"}', ErrorCode.BAD_REQUEST, "3"),
        ('{"type":"subscribe","channel":"","messageId":"3"}', ErrorCode.BAD_REQUEST, "3"),
        ('{"type":"subscribe","channel":7,"messageId":"3"}', ErrorCode.BAD_REQUEST, "3"),
        (
            '{"type":"subscribe","channel":"' + "x" * 129 + '","messageId":"3"}',
            ErrorCode.BAD_REQUEST,
            "3",
        ),
        ('{"type":"data","channel":"c","since":"1","messageId":"4"}', ErrorCode.BAD_REQUEST, "4"),
        ('{"type":"ping","messageId":"' + "x" * LIMIT + '"}', ErrorCode.TOO_LARGE, None),
    ],
)
def test_bad_frames_are_refused_with_a_code(
    frame: str | bytes, code: ErrorCode, message_id: str | None
) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse_client_frame(frame, LIMIT)
    assert raised.value.code is code
    assert raised.value.message_id == message_id
    assert raised.value.message


def test_size_limit_counts_utf8_bytes_not_characters() -> None:
    frame = json.dumps({"type": "ping", "messageId": "1", "payload": "é" * 600}, ensure_ascii=False)
    assert len(frame) < LIMIT < len(frame.encode())
    with pytest.raises(ProtocolError) as raised:
        parse_client_frame(frame, LIMIT)
    assert raised.value.code is ErrorCode.TOO_LARGE


def test_data_frame_encoding_has_the_spec_fields_and_no_newline() -> None:
    frame = encode_data("c", {"text": "two\nlines"}, "9")
    assert "\n" not in frame
    assert json.loads(frame) == {
        "type": "data",
        "channel": "c",
        "payload": {"text": "two\nlines"},
        "messageId": "9",
    }


def test_error_frame_carries_code_message_and_message_id() -> None:
    assert json.loads(encode_error(ErrorCode.NOT_SUBSCRIBED, "no", "3")) == {
        "type": "error",
        "messageId": "3",
        "payload": {"code": "NOT_SUBSCRIBED", "message": "no"},
    }
    assert "messageId" not in json.loads(encode_error(ErrorCode.BAD_REQUEST, "bad"))


def test_an_http_error_says_what_an_error_frame_says() -> None:
    frame = json.loads(encode_error(ErrorCode.RATE_LIMITED, "slow down"))
    assert error_body(ErrorCode.RATE_LIMITED.value, "slow down") == {"error": frame["payload"]}
    assert error_body("AT_CAPACITY", "later") == {
        "error": {"code": "AT_CAPACITY", "message": "later"}
    }


def test_connected_frame_names_connection_server_and_client() -> None:
    assert json.loads(encode_connected("c1", "s1", "u1"))["payload"] == {
        "connectionId": "c1",
        "serverId": "s1",
        "clientId": "u1",
    }


def test_subscribe_may_carry_since_as_a_position() -> None:
    message = parse_client_frame(
        '{"type":"subscribe","channel":"c","since":"e1:41","messageId":"1"}', LIMIT
    )
    assert message.since is not None
    assert message.since.token == "e1:41"


def test_a_malformed_since_is_a_bad_request_that_says_the_expected_form() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_client_frame('{"type":"subscribe","channel":"c","since":"41","messageId":"9"}', LIMIT)
    assert caught.value.code is ErrorCode.BAD_REQUEST
    assert caught.value.message_id == "9"
    assert "<epoch>:<number>" in caught.value.message


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        ('{"type":"ping","messageId":"1","payload":NaN}', "frame is not valid JSON: NaN"),
        ('{"type":"ping","messageId":"1","payload":Infinity}', "frame is not valid JSON: NaN"),
        ('{"type":"ping","messageId":"1","payload":1e400}', "frame is not valid JSON"),
    ],
)
def test_what_is_not_portable_json_is_refused_rather_than_passed_on(
    frame: str, problem: str
) -> None:
    with pytest.raises(ProtocolError) as refused:
        parse_client_frame(frame, LIMIT)
    assert refused.value.code is ErrorCode.BAD_REQUEST
    assert refused.value.message.startswith(problem)


def _data_frame(payload_levels: int) -> str:
    payload = "[" * payload_levels + "]" * payload_levels
    return f'{{"type":"data","channel":"c","messageId":"d","payload":{payload}}}'


@pytest.mark.parametrize("payload_levels", [MAX_DEPTH, 300, 1_000, 2_000])
def test_a_frame_nested_deeper_than_the_limit_is_a_bad_request_naming_it(
    payload_levels: int,
) -> None:
    with pytest.raises(ProtocolError) as refused:
        parse_client_frame(_data_frame(payload_levels), 100_000)
    assert refused.value.code is ErrorCode.BAD_REQUEST
    assert refused.value.message == f"frame is nested deeper than {MAX_DEPTH} levels"


def test_the_deepest_frame_accepted_can_be_sent_on_to_subscribers() -> None:
    message = parse_client_frame(_data_frame(MAX_DEPTH - 1), 100_000)
    assert message.channel is not None
    sent = encode_data(message.channel, message.payload, message.message_id)
    assert json.loads(sent)["payload"] == message.payload


def test_numbers_beyond_64_bit_integers_travel_as_doubles_as_browsers_read_them() -> None:
    message = parse_client_frame(
        '{"type":"data","channel":"c","messageId":"1","payload":123456789012345678901234567890}',
        LIMIT,
    )
    assert message.payload == 1.2345678901234568e29


def test_non_ascii_payloads_travel_as_utf8_and_round_trip() -> None:
    frame = encode_data("chat", {"text": "naïve café 東京 🚀"}, "m1")
    assert "東京" in frame
    assert json.loads(frame)["payload"] == {"text": "naïve café 東京 🚀"}
