"""Reading WebSocket frames back out of bytes, with the parser of the websockets library."""

from __future__ import annotations

import pytest
from websockets.frames import Frame
from websockets.streams import StreamReader

__all__ = ["parse_frames"]


def parse_frames(data: bytes, *, mask: bool) -> list[Frame]:
    """Every whole frame in ``data`` (masked as a client sends them when ``mask``)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=mask)
        with pytest.raises(StopIteration) as done:
            next(parser)
        frames.append(done.value.value)
    return frames
