"""The switch of a handed-over session: the new node's stream without what the client has.

The client had, per channel, every message up to an offset; the new node replays from
earlier and goes on live. What passes must go on exactly after that offset, however the
new node's bytes are split, and be the stream itself once every channel caught up.
"""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from wspool.core.history import with_offset
from wspool.core.protocol import encode_data, encode_pong
from wspool.gateway.model.overlap import Overlap


def _text(frame: str) -> bytes:
    return Frame(Opcode.TEXT, frame.encode()).serialize(mask=False)


def _data(channel: str, n: int, epoch: str = "e1") -> bytes:
    return _text(with_offset(encode_data(channel, {"n": n}, f"m{n}"), f"{epoch}:{n}"))


def _filter(overlap: Overlap, stream: bytes, cuts: list[int]) -> bytes:
    passed = b""
    start = 0
    for end in [*cuts, len(stream)]:
        passed += overlap.filter(stream[start:end])
        start = end
    return passed


REPLAY = b"".join(_data("news", n) for n in range(3, 9))
"""The new node's replay from e1:2 on, and its live messages."""


@pytest.mark.parametrize("cuts", [[], [1], [7, 40, 41], list(range(1, len(REPLAY), 5))])
def test_what_passes_goes_on_after_the_last_message_the_client_had(cuts: list[int]) -> None:
    overlap = Overlap({"news": "e1:5"})
    assert _filter(overlap, REPLAY, cuts) == b"".join(_data("news", n) for n in (6, 7, 8))
    assert overlap.done


def test_frames_that_are_not_messages_of_its_channels_pass_where_they_were() -> None:
    pong, ping = _text(encode_pong("p1")), Frame(Opcode.PING, b"hi").serialize(mask=False)
    stream = _data("news", 1) + pong + _data("other", 1) + ping + _data("news", 2)
    overlap = Overlap({"news": "e1:1"})
    assert overlap.filter(stream) == pong + _data("other", 1) + ping + _data("news", 2)


def test_each_channel_goes_on_from_its_own_position() -> None:
    stream = b"".join(_data(c, n) for n in range(1, 5) for c in ("a", "b"))
    overlap = Overlap({"a": "e1:3", "b": "e1:1"})
    passed = overlap.filter(stream)
    assert passed == b"".join([_data("b", 2), _data("b", 3), _data("a", 4), _data("b", 4)])
    assert overlap.done


def test_the_stream_passes_untouched_once_every_channel_caught_up() -> None:
    overlap = Overlap({"news": "e1:1"})
    assert overlap.filter(_data("news", 2)[:5]) == b""  # not complete yet
    assert not overlap.done
    rest = _data("news", 2)[5:] + _data("news", 1)[:9]
    assert overlap.filter(rest) == _data("news", 2) + _data("news", 1)[:9]
    assert overlap.done
    assert overlap.filter(b"anything") == b"anything"


def test_a_new_epoch_is_past_the_old_one() -> None:
    overlap = Overlap({"news": "e1:7"})
    assert overlap.filter(_data("news", 1, epoch="e2")) == _data("news", 1, epoch="e2")


def test_a_quiet_channel_holds_nothing_back() -> None:
    overlap = Overlap({"news": "e1:7", "quiet": "e1:2"})
    assert overlap.filter(_data("news", 8)) == _data("news", 8)
    assert not overlap.done
