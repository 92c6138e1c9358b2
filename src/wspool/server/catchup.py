"""What a node keeps for a subscriber between its history read and its first live frame.

The history read and the node's pub/sub feed are two views of the same channel that are not
in step: the read may already hold frames the feed has yet to deliver, and the feed delivers
frames published after the read. A :class:`CatchUp` keeps every fed batch, with its position,
until the feed has passed the read's ``top``: from then on the feed alone is complete, so the
subscriber is written the kept frames after ``top`` and becomes a plain live subscriber. If
the kept frames do not follow ``top`` without a gap, the subscriber is closed instead and
resumes with ``since`` (:mod:`wspool.server.sequencer` fills the gaps it can).
"""

from __future__ import annotations

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
        # A batch of another epoch follows a history reset: waiting longer brings nothing.
        return start.epoch != top.epoch or start.offset + len(frames) - 1 >= top.offset

    def frames_after_top(self) -> list[str] | None:
        """The kept frames the history did not hold, in order; None when the feed skipped
        some of them (its link was lost before the channel had passed anything on, or the
        channel's history started a new epoch), so the subscriber cannot go on seamlessly."""
        top = self.top
        assert top is not None
        after: list[str] = []
        expected = top.offset + 1
        for start, frames in self.batches:
            if start.epoch != top.epoch or start.offset > expected:
                return None
            after.extend(frames[expected - start.offset :])
            expected = max(expected, start.offset + len(frames))
        return after
