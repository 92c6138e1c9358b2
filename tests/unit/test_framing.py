"""The relay's frame headers: what passes, split anywhere, and where the gateway steps in.

Frames are built by ``websockets`` (as a client masks them, as a server does not) and fed to
a :class:`FrameScanner` whole, byte by byte and in every split in two; what passes must be
the stream itself, whatever the reads, and the counts the same.
"""

from __future__ import annotations

import pytest
from websockets.frames import Close, Frame, Opcode

from tests.support.frames import parse_frames
from wspool.gateway.model.framing import FrameScanner, client_texts, close_frame, text_frame

MASK = b"\x01\x02\x03\x04"


def _frame(opcode: Opcode, data: bytes, *, fin: bool = True, masked: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=masked)


def _feed(scanner: FrameScanner, stream: bytes, cuts: list[int]) -> bytes:
    """What passes when ``stream`` arrives in reads ending at ``cuts``."""
    passed = b""
    start = 0
    for end in [*cuts, len(stream)]:
        passed += scanner.feed(stream[start:end])
        start = end
    return passed


STREAM = b"".join(
    (
        _frame(Opcode.TEXT, b'{"type":"subscribe","channel":"a"}'),
        _frame(Opcode.BINARY, b"x" * 126),  # 16-bit length
        _frame(Opcode.PING, b"hi"),
        _frame(Opcode.TEXT, b"y" * 70_000),  # 64-bit length
        # a fragmented message, a control frame between its fragments
        _frame(Opcode.TEXT, b"part one ", fin=False),
        _frame(Opcode.PONG, b""),
        _frame(Opcode.CONT, b"part two", fin=False),
        _frame(Opcode.CONT, b" and the end"),
    )
)


def test_a_stream_read_whole_passes_whole_and_counts_its_messages() -> None:
    scanner = FrameScanner()
    assert scanner.feed(STREAM) == STREAM
    assert scanner.messages == 4  # the fragmented message counts once, controls not at all
    assert scanner.between_frames
    assert not scanner.stopped


def test_a_stream_read_a_byte_at_a_time_passes_the_same_bytes() -> None:
    scanner = FrameScanner()
    assert _feed(scanner, STREAM, list(range(1, len(STREAM)))) == STREAM
    assert scanner.messages == 4


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 8, 40, 41, 43, 44, 171, 172, 175, 70_180])
def test_a_frame_split_across_two_reads_passes_and_headers_are_held_back(cut: int) -> None:
    scanner = FrameScanner()
    first = scanner.feed(STREAM[:cut])
    # What passed never ends inside a header: the rest of a split header waits.
    assert STREAM.startswith(first)
    assert first + scanner.feed(STREAM[cut:]) == STREAM
    assert scanner.messages == 4


def test_the_frames_that_pass_are_the_frames_sent() -> None:
    scanner = FrameScanner()
    passed = _feed(scanner, STREAM, [7, 100, 5_000, 70_100])
    frames = parse_frames(passed, mask=True)
    assert [(f.opcode, f.fin, len(f.data)) for f in frames] == [
        (Opcode.TEXT, True, 34),
        (Opcode.BINARY, True, 126),
        (Opcode.PING, True, 2),
        (Opcode.TEXT, True, 70_000),
        (Opcode.TEXT, False, 9),
        (Opcode.PONG, True, 0),
        (Opcode.CONT, False, 8),
        (Opcode.CONT, True, 12),
    ]


def test_a_frame_announcing_more_than_the_limit_stops_before_its_header() -> None:
    small = _frame(Opcode.TEXT, b"ok")
    big = _frame(Opcode.BINARY, b"z" * 1025)
    scanner = FrameScanner(limit=1024)
    # The large frame's header arrives in two reads; its payload never passes.
    assert scanner.feed(small + big[:3]) == small
    assert scanner.feed(big[3:10]) == b""
    assert scanner.oversized
    assert scanner.stopped
    assert scanner.between_frames
    assert scanner.feed(big[10:] + small) == b""


def test_a_frame_of_exactly_the_limit_passes() -> None:
    frame = _frame(Opcode.BINARY, b"z" * 1024)
    scanner = FrameScanner(limit=1024)
    assert scanner.feed(frame) == frame
    assert not scanner.oversized


def test_nothing_passes_after_a_closing_frame_even_in_the_same_read() -> None:
    closing = _frame(Opcode.CLOSE, Close(1000, "bye").serialize(), masked=False)
    after = _frame(Opcode.TEXT, b"late", masked=False)
    scanner = FrameScanner()
    assert scanner.feed(closing[:1]) == b""  # its header is not complete yet
    assert scanner.feed(closing[1:] + after) == closing
    assert scanner.closed
    assert scanner.stopped
    assert scanner.feed(after) == b""


def test_stop_lets_the_frame_under_way_finish_and_nothing_after_it() -> None:
    first = _frame(Opcode.TEXT, b"a" * 300, masked=False)
    second = _frame(Opcode.TEXT, b"b", masked=False)
    scanner = FrameScanner()
    assert scanner.feed(first[:100]) == first[:100]
    scanner.stop()
    assert not scanner.between_frames
    assert not scanner.stopped
    assert scanner.feed(first[100:] + second) == first[100:]
    assert scanner.between_frames
    assert scanner.stopped
    assert scanner.messages == 1


@pytest.mark.parametrize("mask", [None, MASK])
def test_the_gateways_closing_frames_read_as_closing_frames(mask: bytes | None) -> None:
    (frame,) = parse_frames(
        close_frame(1012, b"server node lost", mask=mask), mask=mask is not None
    )
    assert frame.opcode is Opcode.CLOSE
    assert Close.parse(frame.data) == Close(1012, "server node lost")


def test_a_watch_sees_each_text_message_whole_however_it_was_read() -> None:
    texts = [b'{"a":1}', b"x" * 300, b'{"b":2}']
    stream = b"".join(_frame(Opcode.TEXT, t, masked=False) for t in texts)
    stream += _frame(Opcode.PING, b"p", masked=False)
    for cuts in ([], list(range(1, len(stream))), [3, 150, 310]):
        seen: list[bytes] = []

        def watch(data: bytes, start: int, stop: int, seen: list[bytes] = seen) -> None:
            seen.append(data[start:stop])

        assert _feed(FrameScanner(watch=watch), stream, cuts) == stream
        assert seen == texts


def test_a_held_closing_frame_does_not_pass_and_its_payload_is_kept() -> None:
    closing = Close(1012, "server draining").serialize()
    stream = _frame(Opcode.TEXT, b"last", masked=False) + _frame(
        Opcode.CLOSE, closing, masked=False
    )
    for cuts in ([], list(range(1, len(stream)))):
        scanner = FrameScanner(hold_close=True)
        assert _feed(scanner, stream, cuts) == _frame(Opcode.TEXT, b"last", masked=False)
        assert scanner.held_close == closing
        assert scanner.closed


def test_what_follows_a_stop_is_kept_for_whoever_takes_it() -> None:
    first, second = _frame(Opcode.TEXT, b"one"), _frame(Opcode.TEXT, b"two")
    scanner = FrameScanner()
    assert scanner.feed(first[:7]) == first[:7]  # the header and one byte of the payload
    scanner.stop()
    assert scanner.feed(first[7:] + second) == first[7:]
    assert scanner.take_rest() == second


def test_client_texts_are_read_back_unmasked_and_gateway_frames_are_well_formed() -> None:
    sent = [b'{"type":"ping","messageId":"1"}', b"y" * 200]
    stream = b"".join(_frame(Opcode.TEXT, t) for t in sent) + _frame(Opcode.BINARY, b"z")
    assert client_texts(stream) == sent
    assert client_texts(stream[:-3]) == sent  # a frame not yet whole is not read
    (masked,) = parse_frames(text_frame(b"hello", MASK), mask=True)
    (plain,) = parse_frames(text_frame(b"x" * 70_000), mask=False)
    assert (masked.data, len(plain.data)) == (b"hello", 70_000)


def test_a_notice_ping_is_taken_out_wherever_the_reads_split_it() -> None:
    notice = _frame(Opcode.PING, b"handover", masked=False)
    before, after = _frame(Opcode.TEXT, b"one", masked=False), _frame(Opcode.TEXT, b"two")
    other = _frame(Opcode.PING, b"handoveR", masked=False)
    stream = before + notice + other + after
    for cut in range(len(stream) + 1):
        scanner = FrameScanner(notice=b"handover")
        assert _feed(scanner, stream, [cut]) == before + other + after
        assert (scanner.noticed, scanner.messages) == (1, 2)


def test_the_barrier_message_is_taken_out_wherever_the_reads_split_it() -> None:
    barrier = b'{"type":"pong","messageId":"x"}'
    answer = _frame(Opcode.TEXT, barrier, masked=False)
    before, after = _frame(Opcode.TEXT, b"one", masked=False), _frame(Opcode.TEXT, b"two")
    alike = _frame(Opcode.TEXT, barrier.replace(b"x", b"y"), masked=False)
    stream = before + alike + answer + after
    for cut in range(len(stream) + 1):
        scanner = FrameScanner()
        scanner.barrier = barrier
        assert _feed(scanner, stream, [cut]) == before + alike + after
        assert (scanner.barred, scanner.messages) == (1, 3)


def test_a_stopped_stream_resumes_with_what_it_kept() -> None:
    first, second = _frame(Opcode.TEXT, b"one"), _frame(Opcode.TEXT, b"two")
    scanner = FrameScanner()
    assert scanner.feed(first[:7]) == first[:7]
    scanner.stop()
    assert scanner.feed(first[7:] + second) == first[7:]
    assert scanner.feed(second) == b""  # dropped: only what came with the frame's end is kept
    assert scanner.feed(scanner.resume()) == second
    assert scanner.feed(second) == second
