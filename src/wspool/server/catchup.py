"""What a node keeps for a subscriber between its history read and its first live frame.

The history read and the node's pub/sub feed are two views of the same channel that are not
in step: the read may already hold frames the feed has yet to deliver, and the feed delivers
frames published after the read. A :class:`CatchUp` keeps every fed batch, with its position,
until the feed has passed the read's ``top``: from then on the feed alone is complete, so the
subscriber is written the kept frames after ``top`` and becomes a plain live subscriber.
"""

from __future__ import annotations

from collections.abc import Iterator

from wspool.core.history import StreamPosition
from wspool.server.session import Session

__all__ = ["CATCH_UP_LIMIT", "CatchUp"]

CATCH_UP_LIMIT = 100_000
"""Frames kept for one catching-up subscriber; past it, the subscriber is a slow consumer."""


class CatchUp:
    """Fed batches kept for one subscriber of one channel, and where its history ended."""

    __slots__ = ("batches", "frames", "overflowed", "session", "top")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.batches: list[tuple[StreamPosition, list[str]]] = []
        self.frames = 0
        self.overflowed = False
        self.top: StreamPosition | None = None

    def keep(self, start: StreamPosition, frames: list[str]) -> None:
        if self.frames + len(frames) > CATCH_UP_LIMIT:
            self.overflowed = True
            return
        self.batches.append((start, frames))
        self.frames += len(frames)

    @property
    def caught_up(self) -> bool:
        """Whether the feed has reached the history's ``top`` (or never can, on overflow)."""
        top = self.top
        if top is None:
            return False
        if self.overflowed:
            return True
        if not self.batches:
            return False
        start, frames = self.batches[-1]
        # A batch of another epoch follows a history reset: everything in it is new.
        return start.epoch != top.epoch or start.offset + len(frames) - 1 >= top.offset

    def frames_after_top(self) -> Iterator[str]:
        """The kept frames the history did not hold, in order."""
        top = self.top
        assert top is not None
        for start, frames in self.batches:
            skip = top.offset - start.offset + 1 if start.epoch == top.epoch else 0
            yield from frames[max(0, skip) :]
