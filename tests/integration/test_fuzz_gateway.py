"""Property-based abuse of a real gateway: arbitrary config bodies, requests, frames and
handshakes. Whatever arrives, the gateway answers with a JSON error or relays the node's
answer, never a 500, and keeps serving; the pool config stays valid.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from tests.support.processes import Farm, http_request, raw_handshake, running_farm

pytestmark = pytest.mark.redis

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
config_like = st.dictionaries(
    st.sampled_from(
        [
            *("strategy", "maxConnections", "healthThreshold", "healthCheck", "circuitBreaker"),
            *("weights", "slowStart", "interval", "timeout", "x"),
        ]
    ),
    json_values
    | st.sampled_from(["round-robin", "weighted", "least-connections"])
    | st.dictionaries(st.sampled_from(["interval", "timeout", "node-1", "x"]), json_values),
)


@pytest.fixture(scope="module")
def farm(redis_session_url: str) -> Iterator[Farm]:
    with running_farm(
        redis_session_url,
        nodes=1,
        gateway_security=("--insecure",),
    ) as farm:
        yield farm


@pytest.fixture
def gateway(farm: Farm) -> Iterator[Farm]:
    yield farm
    status, health = http_request("GET", f"{farm.gateway.http}/health")
    assert (status, health["gatewayId"]) == (200, "gw"), "the gateway went down"
    status, config = http_request("GET", f"{farm.gateway.http}/api/v1/pool/config")
    assert status == 200
    assert config["maxConnections"] >= 1


@FUZZ
@given(body=config_like | json_values)
def test_arbitrary_config_changes_are_applied_or_refused_with_400(gateway: Farm, body: Any) -> None:
    status, answer = http_request("POST", f"{gateway.gateway.http}/api/v1/pool/config", body)
    assert status in {200, 400}, answer
    if status == 400:
        assert answer["error"]["code"] == "BAD_REQUEST"
    http_request("POST", f"{gateway.gateway.http}/api/v1/pool/config", {"maxConnections": 100})


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]),
    path=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
    body=st.binary(max_size=200),
)
def test_arbitrary_requests_get_json_answers_never_a_500(
    gateway: Farm, method: str, path: str, body: bytes
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.gateway.port, timeout=5)
    try:
        conn.request(method, f"/api/v1/{path.lstrip('/')}", body=body)
        response = conn.getresponse()
        status, text = response.status, response.read()
    finally:
        conn.close()
    assert status < 500 or status == 503, (status, text)
    if status >= 400:
        assert "error" in json.loads(text)


@FUZZ
@given(batch=st.lists(st.text(max_size=300) | st.binary(max_size=300), min_size=1, max_size=5))
def test_arbitrary_frames_through_the_gateway_get_the_nodes_errors(
    gateway: Farm, batch: list[str | bytes]
) -> None:
    with connect(gateway.gateway.url, open_timeout=5, close_timeout=2) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "connected"
        for frame in batch:
            ws.send(frame)
        ws.send('{"type":"ping","messageId":"alive"}')
        while json.loads(ws.recv(timeout=5)).get("messageId") != "alive":
            pass


@FUZZ
@given(
    headers=st.lists(
        st.tuples(
            st.sampled_from(["Origin", "X-Forwarded-For", "Sec-WebSocket-Protocol", "X-Any"]),
            st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=100),
        ),
        max_size=5,
    ),
    upgrade=st.booleans(),
)
def test_arbitrary_handshakes_get_an_answer_never_a_500(
    gateway: Farm, headers: list[tuple[str, str]], upgrade: bool
) -> None:
    status = raw_handshake(gateway.gateway.port, "/ws", headers, upgrade)
    assert status in {101, 400, 401, 403, 429}
