"""The node's per-channel feed: gaps filled from history in order, or the channel interrupted.

A stand-in for the store answers history reads from a list; everything else is the real
:class:`FeedSequencer` and :class:`CatchUp`.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from wspool.core.history import HistoryRead, StreamPosition
from wspool.server.catchup import CatchUp
from wspool.server.sequencer import FeedSequencer
from wspool.server.session import Session
from wspool.state.engine import MessageBus

EPOCH = "e1"


def at(offset: int, epoch: str = EPOCH) -> StreamPosition:
    return StreamPosition(epoch, offset)


def frames(first: int, last: int) -> list[str]:
    return [f"f{n}" for n in range(first, last + 1)]


class _History:
    """Answers ``read_history`` with the frames it holds (offsets 1…n of one epoch)."""

    def __init__(self, held: list[str], epoch: str = EPOCH) -> None:
        self.held = held
        self.epoch = epoch
        self.reads: list[StreamPosition | None] = []

    async def read_history(self, channel: str, since: StreamPosition | None) -> HistoryRead:
        self.reads.append(since)
        top = at(len(self.held), self.epoch)
        if since is None or since.epoch != self.epoch:
            return HistoryRead(top, None)
        return HistoryRead(top, self.held[since.offset :])


def _sequencer(history: _History) -> tuple[FeedSequencer, list[str], list[str]]:
    delivered: list[str] = []
    interrupted: list[str] = []
    sequencer = FeedSequencer(
        cast(MessageBus, history),
        lambda channel, start, batch: delivered.extend(batch),
        interrupted.append,
    )
    return sequencer, delivered, interrupted


async def _settled() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_batch_after_a_gap_waits_for_the_missing_frames_from_history() -> None:
    history = _History(frames(1, 6))
    sequencer, delivered, interrupted = _sequencer(history)
    sequencer.feed("c", at(1), frames(1, 2))
    sequencer.feed("c", at(5), frames(5, 6))  # 3 and 4 never arrived
    sequencer.feed("c", at(7), ["f7"])  # held while the gap is filled
    await _settled()
    assert delivered == frames(1, 7)
    assert history.reads == [at(2)]
    assert not interrupted


async def test_frames_already_read_from_history_are_not_delivered_twice() -> None:
    history = _History(frames(1, 4))
    sequencer, delivered, _ = _sequencer(history)
    sequencer.feed("c", at(1), ["f1"])
    sequencer.link_restored()  # the link was lost: read what followed f1
    sequencer.feed("c", at(3), frames(3, 5))  # arrives while the read is under way
    await _settled()
    assert delivered == frames(1, 5)


async def test_a_gap_the_history_cannot_fill_interrupts_the_channel() -> None:
    history = _History(frames(1, 3), epoch="e2")  # Redis restarted empty: a new epoch
    sequencer, delivered, interrupted = _sequencer(history)
    sequencer.feed("c", at(1), ["f1"])
    sequencer.feed("c", at(1, "e2"), ["g1"])
    await _settled()
    assert (delivered, interrupted) == (["f1"], ["c"])


def _catch_up(top: int, *batches: tuple[int, list[str]], epoch: str = EPOCH) -> CatchUp:
    catch_up = CatchUp(cast(Session, cast(Any, None)))
    for first, batch in batches:
        catch_up.keep(at(first, epoch), batch)
    catch_up.top = at(top)
    return catch_up


def test_a_subscriber_catching_up_gets_only_the_kept_frames_after_its_history() -> None:
    catch_up = _catch_up(3, (2, frames(2, 4)), (5, ["f5"]))
    assert catch_up.caught_up
    assert catch_up.frames_after_top() == ["f4", "f5"]


def test_a_subscriber_whose_kept_frames_skip_some_cannot_go_live_seamlessly() -> None:
    assert _catch_up(3, (6, ["f6"])).frames_after_top() is None
    assert _catch_up(3, (1, ["g1"]), epoch="e2").frames_after_top() is None
