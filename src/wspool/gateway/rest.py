"""The pool manager's REST API (``/api/v1``), the gateway's ``/health`` and ``/metrics``.

Every error is JSON ``{"error": {"code", "message"}}``; the one place that turns failures
into statuses is :func:`error_middleware`. Bodies are read by :func:`json_body` under the
rule of every JSON input (``core.jsoninput``): at most 64 KiB (413 ``TOO_LARGE``), nested at
most 64 levels, strict JSON (400 ``BAD_REQUEST``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from wspool.core import control, jsoninput
from wspool.core.auth import (
    CLIENT_ID_RULE,
    ApiAccess,
    AuthError,
    Claims,
    PermissionDeniedError,
    authorize_api,
    is_client_id,
    token_from_handshake,
)
from wspool.core.jsoninput import MAX_BODY_BYTES
from wspool.core.poolconfig import PoolConfigError
from wspool.core.protocol import error_body
from wspool.core.records import ConnectionRecord, iso_time
from wspool.core.tickets import TICKET_TTL, Ticket, issue_ticket
from wspool.gateway.gateway import GATEWAY, Gateway
from wspool.gateway.model.nodeurls import socket_url
from wspool.gateway.model.openapi import openapi_document
from wspool.gateway.model.poolstats import node_rates, pool_metrics
from wspool.gateway.pool import NodeState
from wspool.state.engine import EngineUnavailableError

__all__ = ["ApiError", "error_middleware", "json_body", "routes"]

log = logging.getLogger(__name__)

CLOSE_WAIT = 2.0
"""Seconds ``DELETE /connections/{id}`` waits for the node to close the connection."""

TOMBSTONE_TTL = 86400.0
"""Seconds a closed connection's tombstone is kept for a node that was not listening: a
node frozen for longer has lost its clients to their own timeouts anyway."""

OPENAPI = openapi_document()
"""The REST API as ``/api/v1/openapi.json`` describes it."""

routes = web.RouteTableDef()


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error(status: HTTPStatus, code: str, message: str) -> web.Response:
    return web.json_response(error_body(code, message), status=status)


SELF_AUTHORIZED = frozenset(
    {"create_connection", "publish", "broadcast", "openapi", "dashboard_feed"}
)
"""The routes (by name) whose handlers check the caller: asking for a ticket takes any
client's token, publishing a token allowed to publish (or an admin credential), the
dashboard's feed a read credential shown as a WebSocket subprotocol; the API's own
description takes none."""


def _access(request: web.Request) -> ApiAccess | None:
    """What a call needs: reads or changes; None for probes and self-authorized routes."""
    if not request.path.startswith("/api/"):
        return None
    if request.match_info.route.name in SELF_AUTHORIZED:
        return None
    if request.method in ("GET", "HEAD"):
        return ApiAccess.READ
    return ApiAccess.WRITE


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Admits the request, checks the caller's credential, and turns every failure into a
    JSON error."""
    try:
        if not _gateway(request).admission.admit_request(request.protocol):
            raise ApiError(
                HTTPStatus.SERVICE_UNAVAILABLE, "AT_CAPACITY", "gateway at capacity, try later"
            )
        access = _access(request)
        if access is not None:
            authorize_api(
                _gateway(request).api_policy, access, request.headers.get("Authorization")
            )
        return await handler(request)
    except AuthError as error:
        response = _error(HTTPStatus.UNAUTHORIZED, "UNAUTHORIZED", str(error))
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    except PermissionDeniedError as error:
        return _error(HTTPStatus.FORBIDDEN, "FORBIDDEN", str(error))
    except ApiError as error:
        return _error(error.status, error.code, error.message)
    except EngineUnavailableError as error:
        return _error(HTTPStatus.SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE", str(error))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        status = HTTPStatus(error.status)
        return _error(status, status.name, error.reason)
    except Exception:  # a bug: the caller still gets JSON, the log gets the traceback
        log.exception("unexpected failure of %s %s", request.method, request.path)
        return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "INTERNAL", "internal error")


def _gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


async def json_body(request: web.Request) -> Any:
    """The request's JSON body under the rule of every JSON input (core.jsoninput)."""
    if not request.can_read_body:
        return {}
    try:
        body = await request.read()  # at most client_max_size (MAX_BODY_BYTES), else 413
        return jsoninput.loads(body, max_bytes=MAX_BODY_BYTES, what="body")
    except (web.HTTPRequestEntityTooLarge, jsoninput.JsonTooLargeError):
        raise ApiError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "TOO_LARGE", f"body exceeds {MAX_BODY_BYTES} bytes"
        ) from None
    except jsoninput.JsonInputError as error:
        raise ApiError(HTTPStatus.BAD_REQUEST, "BAD_REQUEST", str(error)) from None


def _server_node(gateway: Gateway, node: NodeState) -> dict[str, Any]:
    """A node as ``/api/v1/pool/stats`` shows it: registry record, circuit and draining state."""
    return {
        "id": node.server_id or node.id,
        "url": node.info.url,
        "weight": gateway.pool.weight(node),
        "activeConnections": node.connections,
        "isHealthy": node.healthy and bool(node.samples),
        "lastHealthCheck": iso_time(node.checked_at) if node.checked_at else None,
        "circuit": gateway.pool.circuit_state(node).value,
        "draining": node.draining,
    }


# pool -----------------------------------------------------------------------------------


@routes.get("/api/v1/pool/stats")
async def pool_stats(request: web.Request) -> web.Response:
    gateway = _gateway(request)
    nodes = list(gateway.pool)
    healthy = [n for n in nodes if n.healthy and n.samples]
    rates = [
        node_rates(*n.samples) if len(n.samples) == 2 else node_rates(None, None) for n in nodes
    ]
    metrics = pool_metrics(
        [n.connections for n in nodes],
        len(healthy),
        rates,
        [sum(n.latencies_ms) / len(n.latencies_ms) for n in healthy if n.latencies_ms],
    )
    return web.json_response(
        {
            "totalConnections": metrics.total_connections,
            "activeServers": metrics.active_servers,
            "messagesPerSecond": metrics.messages_per_second,
            "averageLatency": metrics.average_latency,
            "errorRate": metrics.error_rate,
            "maxConnections": gateway.pool.config.max_connections,
            "servers": [
                {
                    **_server_node(gateway, node),
                    "messagesInPerSecond": round(rate.messages_in_per_second, 3),
                    "messagesOutPerSecond": round(rate.messages_out_per_second, 3),
                }
                for node, rate in zip(nodes, rates, strict=True)
            ],
        }
    )


@routes.get("/api/v1/pool/config")
async def get_pool_config(request: web.Request) -> web.Response:
    return web.json_response(_gateway(request).pool.config.to_json())


@routes.post("/api/v1/pool/config")
async def set_pool_config(request: web.Request) -> web.Response:
    gateway = _gateway(request)
    patch = await json_body(request)
    try:
        config = gateway.pool.config.merged(patch)
    except PoolConfigError as error:
        raise ApiError(HTTPStatus.BAD_REQUEST, "BAD_REQUEST", str(error)) from None
    await gateway.engine.set_pool_config(config.to_json())
    gateway.pool.apply(config)
    log.info("pool config changed: %s", json.dumps(patch, sort_keys=True))
    return web.json_response(config.to_json())


@routes.get("/api/v1/pool/health")
async def pool_health(request: web.Request) -> web.Response:
    gateway = _gateway(request)
    nodes = list(gateway.pool)
    serving = gateway.pool.available(time.time())
    healthy = sum(1 for n in nodes if n.healthy and n.samples)
    if not serving:
        status = "down"
    elif healthy < len(nodes):
        status = "degraded"
    else:
        status = "ok"
    return web.json_response(
        {
            "status": status,
            "healthyServers": healthy,
            "totalServers": len(nodes),
            "servers": [_server_node(gateway, node) for node in nodes],
        },
        status=HTTPStatus.OK if serving else HTTPStatus.SERVICE_UNAVAILABLE,
    )


@routes.post("/api/v1/nodes/{id}/drain")
async def drain_node(request: web.Request) -> web.Response:
    """Ask a node, over its control channel, to drain as on SIGTERM: it takes no new
    connections, closes its clients with 1012 over its drain window, then stops. 202: the
    command is sent; the node's ``draining`` flag shows on its next health check."""
    gateway = _gateway(request)
    wanted = request.match_info["id"]
    node = next((n for n in gateway.pool if (n.server_id or n.id) == wanted), None)
    if node is None or not node.server_id:
        raise ApiError(HTTPStatus.NOT_FOUND, "NOT_FOUND", f"no node {wanted}")
    await gateway.engine.publish(
        {control.channel(node.server_id): [control.encode(control.DrainNode())]}
    )
    log.info("node %s asked to drain", node.server_id, extra={"serverId": node.server_id})
    return web.json_response({"id": node.server_id, "draining": True}, status=HTTPStatus.ACCEPTED)


# connections ----------------------------------------------------------------------------


@routes.post("/api/v1/connections", name="create_connection")
async def create_connection(request: web.Request) -> web.Response:
    """Direct mode: choose a node now and hand out a ticket to connect to it."""
    gateway = _gateway(request)
    claims = _client_claims(gateway, request)  # before the body: strangers get nothing parsed
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(HTTPStatus.BAD_REQUEST, "BAD_REQUEST", "body must be a JSON object")
    unknown = body.keys() - {"clientId"}
    if unknown:
        raise ApiError(HTTPStatus.BAD_REQUEST, "BAD_REQUEST", f"{min(unknown)}: unknown field")
    client_id = body.get("clientId")
    if client_id is not None and not is_client_id(client_id):
        raise ApiError(HTTPStatus.BAD_REQUEST, "BAD_REQUEST", f"clientId must be {CLIENT_ID_RULE}")
    if claims is not None:
        client_id = claims.client_id  # who the token says, whatever the body asks
    pool = gateway.pool
    if pool.full:
        raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "POOL_FULL", "the pool is full")
    node = pool.select()
    if node is None:
        raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "NO_HEALTHY_SERVER", "no healthy server")
    now = time.time()
    connection_id = uuid.uuid4().hex
    record = ConnectionRecord(
        id=connection_id,
        server_id=node.server_id or node.id,
        client_id=client_id or connection_id,
        created_at=now,
        last_activity=now,
    )
    answer: dict[str, Any] = {**record.to_json(), "url": socket_url(node.info.url, "")}
    if gateway.settings.ticket_secret:
        ticket = issue_ticket(
            gateway.settings.ticket_secret,
            Ticket(connection_id, record.client_id, record.server_id),
            now,
        )
        answer["ticket"] = ticket
        answer["url"] = socket_url(node.info.url, urlencode({"ticket": ticket}))
        answer["expiresAt"] = iso_time(now + TICKET_TTL)
    pool.opened(node)  # a reservation until the node's next report counts it, or not
    return web.json_response(answer, status=HTTPStatus.CREATED)


def _client_claims(gateway: Gateway, request: web.Request) -> Claims | None:
    """A client asking for a ticket shows the same token it will show the node."""
    verifier = gateway.api_policy.verifier
    if verifier is None:
        return None
    token = token_from_handshake(request.headers.get("Authorization"), "", ())
    if token is None:
        raise AuthError("a token is needed: Authorization: Bearer <token>")
    return verifier.verify(token)


async def _connection(gateway: Gateway, connection_id: str) -> ConnectionRecord:
    record = await gateway.engine.get_connection(connection_id)
    if record is None:
        raise ApiError(HTTPStatus.NOT_FOUND, "NOT_FOUND", f"no connection {connection_id}")
    return record


@routes.get("/api/v1/connections/{id}")
async def get_connection(request: web.Request) -> web.Response:
    record = await _connection(_gateway(request), request.match_info["id"])
    return web.json_response(record.to_json())


@routes.delete("/api/v1/connections/{id}")
async def delete_connection(request: web.Request) -> web.Response:
    """Close the connection on whichever node holds it, and say only what happened.

    200 ``closed: true`` once its node closed it; 202 ``closed: false, pending: true`` when
    the node did not within :data:`CLOSE_WAIT` (frozen, cut off, or gone). Either way the
    close stands: a tombstone tells a node that comes back to close the connection at once.
    """
    gateway = _gateway(request)
    record = await _connection(gateway, request.match_info["id"])
    if await _close(gateway, [record]):
        answer = {**record.to_json(), "closed": False, "pending": True}
        return web.json_response(answer, status=HTTPStatus.ACCEPTED)
    return web.json_response({**record.to_json(), "closed": True})


@routes.delete("/api/v1/clients/{clientId}/connections")
async def delete_client_connections(request: web.Request) -> web.Response:
    """Close every connection of a client id, wherever it is, as ``DELETE
    /connections/{id}`` closes one: 200 once every node closed its own, 202 naming those
    still ``pending`` (their close stands)."""
    gateway = _gateway(request)
    client_id = request.match_info["clientId"]
    if not is_client_id(client_id):
        raise ApiError(HTTPStatus.BAD_REQUEST, "BAD_REQUEST", f"clientId must be {CLIENT_ID_RULE}")
    records = await gateway.engine.client_connections(client_id)
    pending = {r.id for r in await _close(gateway, records)}
    answer = {
        "clientId": client_id,
        "closed": sorted(r.id for r in records if r.id not in pending),
        "pending": sorted(pending),
    }
    return web.json_response(answer, status=HTTPStatus.ACCEPTED if pending else HTTPStatus.OK)


async def _close(gateway: Gateway, records: list[ConnectionRecord]) -> list[ConnectionRecord]:
    """Close connections on whichever nodes hold them; returns those whose node did not
    within :data:`CLOSE_WAIT`. Their close stands: a tombstone tells a node that comes back
    to close the connection at once."""
    engine = gateway.engine
    commands: defaultdict[str, list[str]] = defaultdict(list)
    for record in records:
        await engine.mark_closed(record.id, TOMBSTONE_TTL)
        commands[control.channel(record.server_id)].append(
            control.encode(control.CloseConnection(record.id))
        )
    if commands:
        await engine.publish(commands)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CLOSE_WAIT
    open_ = records
    while open_:
        open_ = [r for r in open_ if await engine.get_connection(r.id) is not None]
        if not open_ or loop.time() >= deadline:
            break
        await asyncio.sleep(0.05)
    if open_:
        live = {node.id for node in await engine.list_nodes()}
        # Records whose node's registration lapsed and that outlived the sweep: nobody else
        # removes them (a node that wakes writes them again, then closes them).
        stale = [r for r in open_ if r.server_id not in live]
        if stale:
            await engine.remove_connections(stale)
    return open_


# the gateway itself ---------------------------------------------------------------------


@routes.get("/api/v1/openapi.json", name="openapi")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    gateway = _gateway(request)
    serving = len(gateway.pool.available(time.time()))
    return web.json_response(
        {
            "status": "ok" if serving else "no healthy server",
            "gatewayId": gateway.settings.id,
            "servers": serving,
            "store": "up" if gateway.pool.store_reachable else "down",
            "replicas": gateway.pool.replicas,
        }
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(_gateway(request).metrics)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
