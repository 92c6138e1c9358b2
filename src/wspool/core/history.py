"""Channel history positions: what an ``offset`` is, and what a recovery may return.

Every message published on a channel gets the next integer offset of that channel, assigned
by the store in publish order. The offset lives in an *epoch*: a random name the store gives
a channel's history when it creates it. When the history is lost (expired after a quiet
period, flushed, a Redis without persistence restarted) the next publish starts a new epoch,
so a client holding a position of the old one learns that its messages cannot be recovered
instead of silently getting a partial replay (Centrifugo's offset and epoch).

On the wire the two travel as one opaque string, ``"<epoch>:<offset>"``, in ``data`` frames
(``"offset"``) and in ``subscribe`` (``"since"``). Everything here is pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wspool.core.control import is_control_channel

__all__ = [
    "HistoryPolicy",
    "HistoryRead",
    "StreamPosition",
    "missing_after",
    "with_offset",
]

_EPOCH = re.compile(r"[A-Za-z0-9]{1,32}")


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """A place in one channel's history: the offset of a message in an epoch.

    Offset 0 is the position before the first message of the epoch.
    """

    epoch: str
    offset: int

    @property
    def token(self) -> str:
        """The wire form, ``"<epoch>:<offset>"``."""
        return f"{self.epoch}:{self.offset}"

    @classmethod
    def parse(cls, token: str) -> StreamPosition:
        """Read a wire token; ``ValueError`` says what is wrong with a malformed one."""
        epoch, sep, offset = token.rpartition(":")
        if not sep or not _EPOCH.fullmatch(epoch) or not offset.isdigit() or len(offset) > 18:
            raise ValueError(f"offset {token!r} is not of the form '<epoch>:<number>'")
        return cls(epoch, int(offset))

    def advanced(self, count: int) -> StreamPosition:
        return StreamPosition(self.epoch, self.offset + count)


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """How much history a pool keeps per channel: at most ``size`` messages, none older
    than ``ttl`` seconds (in Redis up to an eighth older: its expiries are renewed only now
    and then). ``size`` 0 keeps none (offsets are still assigned, so a client that missed
    nothing still recovers)."""

    size: int = 10_000
    ttl: float = 300.0

    def __post_init__(self) -> None:
        if self.size < 0 or not self.ttl > 0:
            raise ValueError("history size must be >= 0 and ttl > 0")

    def for_channel(self, channel: str) -> HistoryPolicy:
        """No history for a node's control channel: its commands are only for whoever
        listens now (see :mod:`wspool.core.control`)."""
        return HistoryPolicy(0, self.ttl) if is_control_channel(channel) else self

    @property
    def position_ttl(self) -> float:
        """Seconds a channel's epoch and last offset outlive its last publish.

        Longer than the messages themselves: a client that missed nothing during a long
        quiet period still resumes without a reset.
        """
        return max(self.ttl, 86_400.0)


@dataclass(frozen=True, slots=True)
class HistoryRead:
    """What a subscription with ``since`` gets: the channel's position now, and the frames
    published after ``since`` up to it, or ``None`` when they are no longer all there."""

    top: StreamPosition
    frames: list[str] | None

    @property
    def recovered(self) -> bool:
        return self.frames is not None


def with_offset(frame: str, token: str) -> str:
    """Add ``"offset"`` as the last member of an encoded JSON object.

    The frame is never parsed: the store does the same splice in its publish script,
    so both engines produce identical bytes.
    """
    return f'{frame[:-1]},"offset":"{token}"}}'


def missing_after(since: StreamPosition, top: StreamPosition) -> int | None:
    """How many messages follow ``since`` up to ``top``; ``None`` when ``since`` does not
    belong to the current history (another epoch, or an offset past its end)."""
    if since.epoch != top.epoch or since.offset > top.offset:
        return None
    return top.offset - since.offset
