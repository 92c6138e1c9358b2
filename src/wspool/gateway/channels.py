"""The REST API's channel routes: backends publish, broadcast, read channel history, and
see who is subscribed (presence, kept by the nodes' state writers).

A publish goes through the same history script as a node's (``Publisher.publish``), so every
message gets its channel's next offset, a place in its history, and reaches the subscribers
on every node in order; the answer lists each message's offset, which a client resumes from.
A request is checked whole (channel names, body, batch size: :mod:`.model.messages`) before
anything is published. Publishing needs an admin credential or a token whose
``channels.publish`` patterns allow every channel named (:func:`authorize_publish`); reading
history is a read of the API like any other.

An unanswered publish is sent again under the same batch id until :data:`PUBLISH_WAIT`
passes (the store never writes a batch id twice), so a broadcast that reached some channels
before the store went away reaches the rest, once, when it comes back in time.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from aiohttp import web

from wspool.core.auth import authorize_publish
from wspool.core.backoff import Backoff
from wspool.core.history import StreamPosition
from wspool.core.protocol import encode_data
from wspool.gateway.gateway import GATEWAY, Gateway
from wspool.gateway.model import messages
from wspool.gateway.rest import ApiError, json_body
from wspool.state.engine import EngineUnavailableError, OutcomeUnknownError

__all__ = ["PUBLISH_WAIT", "routes"]

PUBLISH_WAIT = 2.0
"""Seconds a publish is sent again while the store does not answer, before a 503."""

routes = web.RouteTableDef()

_CHANNEL = "/api/v1/channels/{channel:.+}"


def _bad_request(error: ValueError) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, "BAD_REQUEST", str(error))


def _channel(request: web.Request) -> str:
    try:
        return messages.channel_name(request.match_info["channel"])
    except ValueError as error:
        raise _bad_request(error) from None


def _frames(channel: str, payloads: Sequence[Any]) -> list[str]:
    return [encode_data(channel, payload, uuid.uuid4().hex) for payload in payloads]


async def _publish(gateway: Gateway, batches: Mapping[str, list[str]]) -> dict[str, StreamPosition]:
    """Publish once, sending again under the same batch id while the store does not answer."""
    batch_id = uuid.uuid4().hex
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PUBLISH_WAIT
    backoff = Backoff(base=0.05, cap=0.5)
    while True:
        try:
            return await gateway.engine.publish(batches, batch_id)
        except EngineUnavailableError as error:
            if loop.time() >= deadline:
                outcome = (
                    "published or not, unknown"
                    if isinstance(error, OutcomeUnknownError)
                    else "not published (a broadcast: perhaps on some channels)"
                )
                raise EngineUnavailableError(f"{outcome}: {error}") from None
            await asyncio.sleep(backoff.next_delay())


@routes.post(_CHANNEL + "/messages", name="publish")
async def publish(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    allowed = authorize_publish(gateway.api_policy, request.headers.get("Authorization"))
    channel = _channel(request)
    allowed([channel])
    try:
        payloads, batched = messages.publish_payloads(await json_body(request))
    except ValueError as error:
        raise _bad_request(error) from None
    last = (await _publish(gateway, {channel: _frames(channel, payloads)}))[channel]
    if batched:
        answer: dict[str, Any] = {
            "channel": channel,
            "offsets": messages.batch_offsets(last, len(payloads)),
        }
    else:
        answer = {"channel": channel, "offset": last.token}
    return web.json_response(answer, status=HTTPStatus.CREATED)


@routes.post("/api/v1/broadcast", name="broadcast")
async def broadcast(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    allowed = authorize_publish(gateway.api_policy, request.headers.get("Authorization"))
    try:
        channels, payload = messages.broadcast_request(await json_body(request))
    except ValueError as error:
        raise _bad_request(error) from None
    allowed(channels)
    positions = await _publish(gateway, {c: _frames(c, [payload]) for c in channels})
    offsets = {channel: positions[channel].token for channel in channels}
    return web.json_response({"offsets": offsets}, status=HTTPStatus.CREATED)


@routes.get(_CHANNEL + "/messages")
async def history(request: web.Request) -> web.Response:
    """The channel's history as clients recover it: ``position`` is the channel's last
    offset, ``recovered`` whether every message after ``since`` is still kept."""
    gateway = request.app[GATEWAY]
    channel = _channel(request)
    try:
        query = messages.history_query(request.query.items())
    except ValueError as error:
        raise _bad_request(error) from None
    if query.since is None:
        read = await gateway.engine.read_recent(channel, query.limit)
    else:
        read = await gateway.engine.read_history(channel, query.since)
    # The frames are compact JSON objects already: spliced in, never parsed again.
    head = json.dumps({"channel": channel, "position": read.top.token, "recovered": read.recovered})
    frames = ",".join(messages.history_page(read, query))
    return web.Response(
        text=f'{head[:-1]},"messages":[{frames}]}}', content_type="application/json"
    )


@routes.get(_CHANNEL + "/presence")
async def presence(request: web.Request) -> web.Response:
    """The channel's subscribers on every live node: a node whose registration lapsed is
    left out at once (its records are swept soon after)."""
    gateway = request.app[GATEWAY]
    channel = _channel(request)
    live = [node.id for node in await gateway.engine.list_nodes()]
    members = await gateway.engine.presence(channel, live)
    answer = {
        "channel": channel,
        "subscribers": len(members),
        "clientIds": sorted(set(members.values())),
    }
    return web.json_response(answer)


@routes.get("/api/v1/channels")
async def active_channels(request: web.Request) -> web.Response:
    """Every channel with subscribers on a live node, and how many, by name."""
    gateway = request.app[GATEWAY]
    live = [node.id for node in await gateway.engine.list_nodes()]
    counts = await gateway.engine.channel_counts(live)
    channels = [{"channel": c, "subscribers": counts[c]} for c in sorted(counts)]
    return web.json_response({"channels": channels})
