"""Subscribing with catch-up: history first, then live frames, with no gap and no duplicate.

The history read and the node's pub/sub feed are two views of the same channel that are not
in step: the read may already hold frames the feed has yet to deliver, and the feed delivers
frames published after the read. :meth:`wspool.server.router.ChannelRouter.subscribe` joins
them, and the order of its steps is what makes the join exact:

1. the session is registered as catching up, with a :class:`CatchUp`, *before* the history
   is read: from then on every batch the feed delivers is kept for it, with its position;
2. the channel's position ``top`` and, given ``since``, the frames after it up to ``top``
   are read (one atomic read in the store);
3. ``subscribed`` (with ``offset`` = ``top``, and ``recovered``) and the history frames are
   sent, awaiting the socket's flow control, while live batches keep accumulating;
4. once the feed has passed ``top`` (the read may be ahead of the feed), the kept frames
   after ``top`` are written and the session becomes a plain live subscriber, in one step of
   the event loop. If they do not follow ``top`` without a gap, the subscriber is closed
   instead and resumes with ``since`` (:mod:`wspool.server.sequencer` fills the gaps it can).

A ``since`` that is no longer in history (trimmed, expired, another epoch) gets
``recovered: false`` and no replay at all: the client reloads its state from its own source,
never from a partial history.
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
