"""Property-based abuse of a real gateway: arbitrary config bodies, requests, frames and
handshakes, NaN and infinities, JSON nested up to 3,000 levels and bodies up to 300 KB among
them. Whatever arrives, the gateway answers with a JSON error or relays the node's answer,
never a 500, and keeps serving; the pool config stays valid, strict JSON with finite times.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from tests.support.hostile_json import deep_frames, json_values, large_frames, nested_in
from tests.support.processes import Farm, http_request, raw_handshake, running_farm

pytestmark = pytest.mark.redis

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
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
config_sections = st.sampled_from(["healthCheck", "circuitBreaker", "weights", "slowStart"])
hostile_bodies = (
    config_sections.flatmap(lambda section: nested_in({}, section))
    | st.sampled_from(["interval", "timeout", "fastInterval"]).flatmap(
        lambda name: st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1"]).map(
            lambda number: f'{{"healthCheck": {{"{name}": {number}}}}}'
        )
    )
    | st.integers(min_value=60_000, max_value=300_000).map(
        lambda size: json.dumps({"weights": {"n": 1}, "x": "y" * size})
    )
)
"""Bodies that break the JSON rule or name a time that is not finite: 400 or 413."""


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
    with urllib.request.urlopen(f"{farm.gateway.http}/api/v1/pool/config", timeout=5) as answer:
        config = orjson.loads(answer.read())  # strict JSON: NaN would not parse
    assert config["maxConnections"] >= 1
    assert all(math.isfinite(t) for t in config["healthCheck"].values())


def _post_config(farm: Farm, body: bytes) -> tuple[int, Any]:
    return http_request("POST", f"{farm.gateway.http}/api/v1/pool/config", raw=body)


@FUZZ
@given(body=(config_like | json_values).map(json.dumps) | hostile_bodies)
@example(body='{"healthCheck": {"interval": NaN}}')
@example(body='{"healthCheck": ' + "[" * 2000 + "]" * 2000 + "}")
def test_arbitrary_config_changes_are_applied_or_refused_with_400(gateway: Farm, body: str) -> None:
    status, answer = _post_config(gateway, body.encode())
    assert status in {200, 400, 413}, answer
    if status == 400:
        assert answer["error"]["code"] == "BAD_REQUEST"
    if status == 413:
        assert (answer["error"]["code"], len(body) > 64 * 1024) == ("TOO_LARGE", True)
    _post_config(gateway, b'{"maxConnections": 100}')


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]),
    path=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60)
    | st.sampled_from(["pool/config", "connections", "connections/x"]),
    body=st.binary(max_size=200)
    | hostile_bodies.map(str.encode)
    | nested_in({}, "clientId").map(str.encode),
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
@given(
    batch=st.lists(
        st.text(max_size=300)
        | st.binary(max_size=300)
        | json_values.map(json.dumps)
        | deep_frames
        | large_frames,
        min_size=1,
        max_size=5,
    )
)
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
