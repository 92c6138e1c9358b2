"""Subscribing with recovery: history first, then live frames, with no gap and no duplicate.

The order of steps is what makes it exact. The session is registered as catching up *before*
the history is read, so every frame published after the node's subscription is confirmed
is either kept for it or, if it is old enough, already in the history read. Then:

1. read the channel's position ``top`` and, given ``since``, the frames after it up to
   ``top`` (one atomic read in the store);
2. send ``subscribed`` (with ``offset`` = ``top``, and ``recovered``) and the history frames,
   awaiting the socket's flow control, while live frames keep accumulating;
3. once the node's feed has passed ``top`` (the history read may be ahead of the feed),
   write the kept live frames whose offset is past ``top`` and make the session a plain live
   subscriber, in one step of the event loop (:mod:`wspool.server.catchup`).

A ``since`` that is no longer in history (trimmed, expired, another epoch) gets
``recovered: false`` and no replay at all: the client reloads its state from its own source,
never from a partial history.
"""

from __future__ import annotations

from wspool.core.history import StreamPosition
from wspool.core.protocol import encode_subscribed
from wspool.server.router import ChannelRouter
from wspool.server.session import Session
from wspool.server.stats import NodeStats
from wspool.state.engine import MessageBus

__all__ = ["subscribe_with_history"]


async def subscribe_with_history(
    router: ChannelRouter,
    bus: MessageBus,
    stats: NodeStats,
    session: Session,
    channel: str,
    message_id: str,
    since: StreamPosition | None,
) -> None:
    """Subscribe ``session`` to ``channel`` and send what it missed.

    Raises ``EngineUnavailableError`` with nothing subscribed when the store cannot answer.
    """
    await router.add(channel, session)
    try:
        read = await bus.read_history(channel, since)
    except BaseException:
        router.remove(channel, session)
        raise
    websocket = session.websocket
    recovered = read.recovered if since is not None else None
    if since is not None:
        stats.recoveries[bool(recovered)] += 1
    try:
        await websocket.send(encode_subscribed(channel, message_id, read.top, recovered))
        # One frame at a time through websockets' flow control: a long replay waits for the
        # client to read it instead of piling up in the node's memory.
        for frame in read.frames or ():
            await websocket.send(frame)
    except BaseException:
        router.remove(channel, session)
        raise
    router.go_live(channel, session, read.top)
