"""What the gateway learns of a session from its node's frames, and how it restores it.

The frames are the node's own encodings (``wspool.core.protocol``, ``with_offset``), so the
byte positions the view relies on are checked against what a node really writes.
"""

from __future__ import annotations

import json

from wspool.core.history import StreamPosition, with_offset
from wspool.core.protocol import (
    HANDOVER_NOTICE,
    ErrorCode,
    encode_connected,
    encode_data,
    encode_error,
    encode_pong,
    encode_subscribed,
    encode_unsubscribed,
)
from wspool.gateway.model.framing import FrameScanner
from wspool.gateway.model.sessionview import RESUME_PREFIX, Resumption, SessionView


def _feed(view: SessionView, *frames: str) -> None:
    for frame in frames:
        data = frame.encode()
        view.frame(data, 0, len(data))


def _data(channel: str, n: int, payload: object = None, epoch: str = "e1") -> str:
    return with_offset(encode_data(channel, payload or {"n": n}, f"m{n}"), f"{epoch}:{n}")


def test_a_subscription_starts_at_the_position_the_node_names_and_follows_each_message() -> None:
    view = SessionView()
    _feed(view, encode_connected("c", "node-1", "client"))
    assert view.greeted
    _feed(view, encode_subscribed("news", "s1", StreamPosition("e1", 4)))
    assert view.positions() == {"news": "e1:4"}
    _feed(view, _data("news", 5), encode_pong("p"), _data("news", 6))
    assert view.positions() == {"news": "e1:6"}


def test_several_channels_each_keep_their_own_position() -> None:
    view = SessionView()
    _feed(
        view,
        encode_subscribed("a", "s1", StreamPosition("e1", 0)),
        encode_subscribed("b", "s2", StreamPosition("e9", 7)),
        _data("a", 1),
        _data("b", 8, epoch="e9"),
        _data("a", 2),
    )
    assert view.positions() == {"a": "e1:2", "b": "e9:8"}


def test_a_payload_that_looks_like_an_offset_does_not_fool_the_view() -> None:
    view = SessionView()
    tricky = {"offset": "x:99", "text": '","offset":"y:77"}', "channel": "other"}
    _feed(view, encode_subscribed("c", "s", StreamPosition("e1", 0)), _data("c", 3, tricky))
    assert view.positions() == {"c": "e1:3"}


def test_unsubscribing_forgets_the_channel() -> None:
    view = SessionView()
    _feed(
        view,
        encode_subscribed("a", "s1", StreamPosition("e1", 0)),
        encode_subscribed("b", "s2", StreamPosition("e1", 0)),
        _data("a", 1),
        encode_unsubscribed("a", "u1"),
        _data("b", 5),
    )
    assert view.positions() == {"b": "e1:5"}


def test_a_recovered_subscription_has_no_position_until_its_history_begins() -> None:
    view = SessionView()
    _feed(view, encode_subscribed("a", "s1", StreamPosition("e1", 10), recovered=True))
    assert view.positions() == {"a": None}
    _feed(view, _data("a", 8))
    assert view.positions() == {"a": "e1:8"}


def test_an_answer_to_a_repeated_subscribe_changes_nothing() -> None:
    view = SessionView()
    _feed(view, encode_subscribed("a", "s1", StreamPosition("e1", 3)), _data("a", 4))
    _feed(view, encode_subscribed("a", "s2"))
    assert view.positions() == {"a": "e1:4"}


def test_frames_split_across_reads_are_seen_whole_through_a_scanner() -> None:
    view = SessionView()
    scanner = FrameScanner(watch=view.frame)
    frames = [encode_subscribed("a", "s", StreamPosition("e1", 0))] + [
        _data("a", n, {"pad": "x" * 300}) for n in range(1, 6)
    ]
    stream = b"".join(_server_frame(f.encode()) for f in frames)
    for at in range(0, len(stream), 7):
        scanner.feed(stream[at : at + 7])
    assert view.positions() == {"a": "e1:5"}


def test_a_resumption_subscribes_from_each_position_and_keeps_the_answers() -> None:
    resumption = Resumption({"a": "e1:4", "b": "e2:9"})
    sent = [json.loads(frame) for frame in resumption.subscribes()]
    assert [(f["type"], f["channel"], f["since"]) for f in sent] == [
        ("subscribe", "a", "e1:4"),
        ("subscribe", "b", "e2:9"),
    ]
    ids = [f["messageId"] for f in sent]
    assert all(i.startswith(RESUME_PREFIX) for i in ids)
    assert resumption.keeps(encode_connected("c", "node-2", "client").encode())
    assert not resumption.done
    assert resumption.keeps(encode_subscribed("a", ids[0], StreamPosition("e1", 6), True).encode())
    assert not resumption.keeps(_data("a", 5).encode())  # history: the client's
    assert not resumption.keeps(encode_pong("theirs").encode())
    assert resumption.keeps(encode_subscribed("b", ids[1], StreamPosition("e2", 9), True).encode())
    assert resumption.done
    assert resumption.failed is None


def test_a_resumption_fails_when_the_history_is_gone_or_the_subscribe_is_refused() -> None:
    gone = Resumption({"a": "e1:4"})
    (frame,) = [json.loads(f) for f in gone.subscribes()]
    gone.keeps(encode_connected("c", "node-2", "client").encode())
    gone.keeps(encode_subscribed("a", frame["messageId"], StreamPosition("e7", 0), False).encode())
    assert gone.failed == "a could not be resumed"

    refused = Resumption({"a": "e1:4"})
    (frame,) = [json.loads(f) for f in refused.subscribes()]
    refused.keeps(encode_connected("c", "node-2", "client").encode())
    refused.keeps(encode_error(ErrorCode.FORBIDDEN, "no", frame["messageId"]).encode())
    assert refused.failed == "a could not be resumed"


def _server_frame(payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    return bytes((0x81, 126)) + length.to_bytes(2, "big") + payload


def test_a_resumption_reads_the_new_nodes_stream_in_any_pieces_and_hands_on_the_rest() -> None:
    resumption = Resumption({"a": "e1:4"})
    (asked,) = [json.loads(frame) for frame in resumption.subscribes()]
    stream = b"".join(
        _server_frame(frame.encode())
        for frame in (
            encode_connected("c", "node-2", "client"),
            encode_subscribed("a", asked["messageId"], StreamPosition("e1", 6), True),
            _data("a", 5),
            _data("a", 6),
        )
    )
    view = SessionView()
    _feed(view, encode_subscribed("a", "s", StreamPosition("e1", 4)))
    passed, messages, rest = b"", 0, b""
    for at in range(0, len(stream), 5):
        step = resumption.read(stream[at : at + 5], view)
        passed, messages, rest = passed + step.passing, messages + step.messages, rest + step.rest
        if resumption.done and at + 5 < len(stream):
            rest += stream[at + 5 :]
            break
    assert resumption.done
    # The gateway's connected and subscribed are kept; what follows the answer (history,
    # then live frames) is handed on whole, for the relay to pass as usual.
    assert (passed, messages) == (b"", 0)
    assert rest == b"".join(_server_frame(_data("a", n).encode()) for n in (5, 6))


def test_a_new_nodes_handover_notice_is_the_gateways_and_is_noted() -> None:
    resumption = Resumption({"a": "e1:4"})
    (asked,) = [json.loads(frame) for frame in resumption.subscribes()]
    notice = bytes((0x89, len(HANDOVER_NOTICE))) + HANDOVER_NOTICE
    ping = bytes((0x89, 2)) + b"hi"
    stream = (
        _server_frame(encode_connected("c", "node-2", "client").encode())
        + notice
        + ping
        + _server_frame(
            encode_subscribed("a", asked["messageId"], StreamPosition("e1", 4), True).encode()
        )
    )
    step = resumption.read(stream, None)
    assert resumption.done
    assert resumption.noticed
    assert step.passing == ping  # a ping of the node's own reaches the client
