"""The OpenAPI 3 document of the gateway's REST API, served at ``/api/v1/openapi.json``.

Built from the same constants the handlers check (channel rule, batch and broadcast sizes,
history limits, body size), and kept true by the test suite, which fuzzes a real gateway
from it (tests/integration/test_openapi.py). Every error answer has the one shape of
:func:`wspool.core.protocol.error_body`.
"""

from __future__ import annotations

from typing import Any

from wspool.core.jsoninput import MAX_BODY_BYTES
from wspool.core.poolconfig import StrategyName
from wspool.gateway.model.messages import (
    DEFAULT_HISTORY_LIMIT,
    MAX_BATCH,
    MAX_BROADCAST,
    MAX_HISTORY_LIMIT,
)

__all__ = ["openapi_document"]

_CHANNEL = {"type": "string", "pattern": "^[A-Za-z0-9._:/@-]{1,128}$"}
_OFFSET = {"type": "string", "pattern": "^[A-Za-z0-9]{1,32}:[0-9]{1,18}$"}
_ANY: dict[str, Any] = {}
_CLIENT_ID = {"type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,128}$"}
_TIME = {"type": "string", "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {"default": {"$ref": "#/components/responses/Error"}}


def _operation(
    summary: str,
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    security: bool = True,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {**responses, **_ERRORS}}
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    if parameters:
        operation["parameters"] = parameters
    if not security:
        operation["security"] = []
    return operation


def _path_parameter(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


_SERVER_NODE = _object(
    {
        "id": {"type": "string"},
        "url": {"type": "string"},
        "weight": {"type": "integer"},
        "activeConnections": {"type": "integer"},
        "isHealthy": {"type": "boolean"},
        "lastHealthCheck": {"type": ["string", "null"]},
        "circuit": {"type": "string"},
        "draining": {"type": "boolean"},
    }
)

_POOL_CONFIG = {
    "type": "object",
    "properties": {
        "strategy": {"type": "string", "enum": [s.value for s in StrategyName]},
        "maxConnections": {"type": "integer", "minimum": 1},
        "healthThreshold": {"type": "integer", "minimum": 1},
        "healthCheck": {
            "type": "object",
            "properties": {
                "interval": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
                "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
                "fastInterval": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
                "healthyThreshold": {"type": "integer", "minimum": 1},
            },
            "additionalProperties": False,
        },
        "circuitBreaker": {
            "type": "object",
            "properties": {
                "failureThreshold": {"type": "integer", "minimum": 1},
                "openSeconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
                "trialConnections": {"type": "integer", "minimum": 1},
            },
            "additionalProperties": False,
        },
        "weights": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        "slowStart": {"type": "number", "minimum": 0, "maximum": 3600},
        "seamless": {"type": "boolean"},
    },
    "additionalProperties": False,
}

_CONNECTION = _object(
    {
        "id": {"type": "string"},
        "serverId": {"type": "string"},
        "clientId": {"type": "string"},
        "channels": {"type": "array", "items": {"type": "string"}},
        "createdAt": _TIME,
        "lastActivity": _TIME,
    }
)

_SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {"error": _object({"code": {"type": "string"}, "message": {"type": "string"}})}
    ),
    "PoolConfig": _POOL_CONFIG,
    "ServerNode": _SERVER_NODE,
    "Connection": _CONNECTION,
    "Message": _object(
        {
            "type": {"const": "data"},
            "channel": _CHANNEL,
            "payload": _ANY,
            "messageId": {"type": "string"},
            "offset": _OFFSET,
        }
    ),
}

_CHANNEL_PARAMETER = _path_parameter("channel", _CHANNEL)

_PATHS: dict[str, Any] = {
    "/api/v1/pool/stats": {
        "get": _operation(
            "The pool's figures and every node's",
            {
                "200": _json(
                    _object(
                        {
                            "totalConnections": {"type": "integer"},
                            "activeServers": {"type": "integer"},
                            "messagesPerSecond": {"type": "number"},
                            "averageLatency": {"type": "number"},
                            "errorRate": {"type": "number"},
                            "maxConnections": {"type": "integer"},
                            "servers": {"type": "array", "items": _ref("ServerNode")},
                        }
                    ),
                    "PoolMetrics",
                )
            },
        )
    },
    "/api/v1/pool/config": {
        "get": _operation("The pool config", {"200": _json(_ref("PoolConfig"), "PoolConfig")}),
        "post": _operation(
            "Merge a partial pool config, store and apply it",
            {"200": _json(_ref("PoolConfig"), "the whole config now")},
            body=_ref("PoolConfig"),
        ),
    },
    "/api/v1/pool/health": {
        "get": _operation(
            "Whether the pool can take connections",
            {
                status: _json(
                    _object(
                        {
                            "status": {"type": "string", "enum": ["ok", "degraded", "down"]},
                            "healthyServers": {"type": "integer"},
                            "totalServers": {"type": "integer"},
                            "servers": {"type": "array", "items": _ref("ServerNode")},
                        }
                    ),
                    meaning,
                )
                for status, meaning in (
                    ("200", "the pool's health"),
                    ("503", "the pool's health when no node can take a connection"),
                )
            },
        )
    },
    "/api/v1/nodes/{id}/drain": {
        "parameters": [_path_parameter("id", {"type": "string"})],
        "post": _operation(
            "Ask a node to drain (as on SIGTERM) over its control channel",
            {
                "202": _json(
                    _object({"id": {"type": "string"}, "draining": {"const": True}}),
                    "the command is sent; the node drains, then stops",
                )
            },
        ),
    },
    "/api/v1/connections": {
        "post": _operation(
            "Choose a node and hand out a ticket to connect to it (direct mode)",
            {
                "201": _json(
                    {
                        "allOf": [
                            _ref("Connection"),
                            _object(
                                {"url": {"type": "string"}},
                                {"ticket": {"type": "string"}, "expiresAt": _TIME},
                            ),
                        ]
                    },
                    "the connection to open",
                )
            },
            body={
                "type": "object",
                "properties": {"clientId": _CLIENT_ID},
                "additionalProperties": False,
            },
        )
    },
    "/api/v1/connections/{id}": {
        "parameters": [_path_parameter("id", {"type": "string"})],
        "get": _operation("A connection's record", {"200": _json(_ref("Connection"), "found")}),
        "delete": _operation(
            "Close a connection on whichever node holds it",
            {
                "200": _json(
                    {"allOf": [_ref("Connection"), _object({"closed": {"const": True}})]},
                    "closed by its node",
                ),
                "202": _json(
                    {
                        "allOf": [
                            _ref("Connection"),
                            _object({"closed": {"const": False}, "pending": {"const": True}}),
                        ]
                    },
                    "the close stands; its node has not closed it yet",
                ),
            },
        ),
    },
    "/api/v1/channels/{channel}/messages": {
        "parameters": [_CHANNEL_PARAMETER],
        "post": _operation(
            "Publish one message or a batch on a channel",
            {
                "201": _json(
                    {
                        "oneOf": [
                            _object({"channel": _CHANNEL, "offset": _OFFSET}),
                            _object(
                                {
                                    "channel": _CHANNEL,
                                    "offsets": {"type": "array", "items": _OFFSET},
                                }
                            ),
                        ]
                    },
                    "published: each message's offset",
                )
            },
            body={
                "oneOf": [
                    {**_object({"payload": _ANY}), "additionalProperties": False},
                    {
                        **_object(
                            {
                                "messages": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": MAX_BATCH,
                                    "items": {
                                        **_object({"payload": _ANY}),
                                        "additionalProperties": False,
                                    },
                                }
                            }
                        ),
                        "additionalProperties": False,
                    },
                ]
            },
        ),
        "get": _operation(
            "The channel's history, as clients recover it",
            {
                "200": _json(
                    _object(
                        {
                            "channel": _CHANNEL,
                            "position": _OFFSET,
                            "recovered": {"type": "boolean"},
                            "messages": {"type": "array", "items": _ref("Message")},
                        }
                    ),
                    "the messages",
                )
            },
            parameters=[
                _query("since", _OFFSET, "the messages after this offset"),
                _query(
                    "limit",
                    {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_HISTORY_LIMIT,
                        "default": DEFAULT_HISTORY_LIMIT,
                    },
                    "at most this many messages",
                ),
                _query("reverse", {"type": "boolean", "default": False}, "newest first"),
            ],
        ),
    },
    "/api/v1/channels/{channel}/presence": {
        "parameters": [_CHANNEL_PARAMETER],
        "get": _operation(
            "The channel's subscribers on every live node",
            {
                "200": _json(
                    _object(
                        {
                            "channel": _CHANNEL,
                            "subscribers": {"type": "integer", "minimum": 0},
                            "clientIds": {"type": "array", "items": {"type": "string"}},
                        }
                    ),
                    "presence",
                )
            },
        ),
    },
    "/api/v1/channels": {
        "get": _operation(
            "Every channel with subscribers, and how many",
            {
                "200": _json(
                    _object(
                        {
                            "channels": {
                                "type": "array",
                                "items": _object(
                                    {
                                        "channel": _CHANNEL,
                                        "subscribers": {"type": "integer", "minimum": 1},
                                    }
                                ),
                            }
                        }
                    ),
                    "active channels",
                )
            },
        )
    },
    "/api/v1/clients/{clientId}/connections": {
        "parameters": [_path_parameter("clientId", _CLIENT_ID)],
        "delete": _operation(
            "Close every connection of a client id, wherever it is",
            {
                status: _json(
                    _object(
                        {
                            "clientId": {"type": "string"},
                            "closed": {"type": "array", "items": {"type": "string"}},
                            "pending": {"type": "array", "items": {"type": "string"}},
                        }
                    ),
                    meaning,
                )
                for status, meaning in (
                    ("200", "every connection closed by its node"),
                    ("202", "the closes stand; some nodes have not closed theirs yet"),
                )
            },
        ),
    },
    "/api/v1/broadcast": {
        "post": _operation(
            "Publish one payload on many channels",
            {
                "201": _json(
                    _object({"offsets": {"type": "object", "additionalProperties": _OFFSET}}),
                    "published: the offset on each channel",
                )
            },
            body={
                **_object(
                    {
                        "channels": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_BROADCAST,
                            "items": _CHANNEL,
                        },
                        "payload": _ANY,
                    }
                ),
                "additionalProperties": False,
            },
        )
    },
    "/api/v1/openapi.json": {
        "get": _operation(
            "This document", {"200": _json({"type": "object"}, "OpenAPI 3.1")}, security=False
        )
    },
    "/health": {
        "get": _operation(
            "The replica's own health",
            {
                "200": _json(
                    _object(
                        {
                            "status": {"type": "string"},
                            "gatewayId": {"type": "string"},
                            "servers": {"type": "integer"},
                            "store": {"type": "string", "enum": ["up", "down"]},
                            "replicas": {"type": "integer"},
                        }
                    ),
                    "health",
                )
            },
            security=False,
        )
    },
    "/metrics": {
        "get": _operation(
            "Prometheus metrics",
            {
                "200": {
                    "description": "Prometheus text exposition",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
            security=False,
        )
    },
}


def openapi_document() -> dict[str, Any]:
    """The whole REST API as an OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "websocket-pool gateway",
            "version": "1",
            "description": (
                "The pool manager and the server API (docs/gateway.md, docs/server-api.md). "
                f"Bodies are strict JSON of at most {MAX_BODY_BYTES} bytes."
            ),
        },
        "paths": _PATHS,
        "components": {
            "schemas": _SCHEMAS,
            "responses": {"Error": _json(_ref("Error"), "an error")},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
