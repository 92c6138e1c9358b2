"""Plain HTTP on a node's WebSocket port: ``/health`` and ``/metrics``.

websockets hands every request to ``process_request`` before the upgrade; answering with a
response ends the exchange there, returning ``None`` lets the WebSocket handshake go on.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response

from wspool.core.protocol import ErrorCode, error_body

__all__ = ["WEBSOCKET_PATHS", "json_response", "metrics_response", "refusal", "text_response"]

WEBSOCKET_PATHS = frozenset({"/", "/ws"})


def _respond(
    connection: ServerConnection, status: HTTPStatus, body: bytes, content_type: str
) -> Response:
    response = connection.respond(status, "")
    response.body = body
    del response.headers["Content-Type"]
    del response.headers["Content-Length"]
    response.headers["Content-Type"] = content_type
    response.headers["Content-Length"] = str(len(body))
    response.headers["Cache-Control"] = "no-store"
    return response


def json_response(connection: ServerConnection, status: HTTPStatus, body: Any) -> Response:
    return _respond(connection, status, json.dumps(body).encode(), "application/json")


def refusal(
    connection: ServerConnection, status: HTTPStatus, code: ErrorCode, message: str
) -> Response:
    """A handshake refused, as every check of a node writes it: a JSON error, and for a 401
    the challenge that tells a client its credential is the problem."""
    response = json_response(connection, status, error_body(code.value, message))
    if status is HTTPStatus.UNAUTHORIZED:
        response.headers["WWW-Authenticate"] = 'Bearer realm="wspool"'
    return response


def text_response(connection: ServerConnection, status: HTTPStatus, text: str) -> Response:
    return _respond(connection, status, f"{text}\n".encode(), "text/plain; charset=utf-8")


def metrics_response(connection: ServerConnection, registry: CollectorRegistry) -> Response:
    return _respond(connection, HTTPStatus.OK, generate_latest(registry), CONTENT_TYPE_LATEST)
