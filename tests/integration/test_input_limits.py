"""Hostile JSON against real node and gateway processes: deep nesting, big bodies, NaN.

Every JSON input is held to one rule (core.jsoninput): 64 levels, a size limit, strict
numbers. What breaks it is answered with the documented error, in JSON, and changes nothing:
a frame gets an ``error`` and the connection lives; a REST call gets 400 or 413.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis

from tests.support.processes import Farm, running_farm
from tests.support.tokens import SECRET, hs256, hs256_over, token_claims
from tests.support.wsclient import TestClient
from wspool.core.config import GatewaySettings
from wspool.core.history import HistoryPolicy
from wspool.core.keys import Keys
from wspool.gateway.pool import PoolManager
from wspool.state.redis_engine import RedisEngine

ADMIN_TOKEN = "static-admin-token-for-the-input-limit-tests-0123456789"
NODE_SECURITY = (
    "--jwt-secret",
    SECRET,
    "--trusted-proxies",
    "127.0.0.0/8",
    "--messages-per-second",
    "0",
    "--connection-attempts-per-ip",
    "0",
    "--max-connections-per-ip",
    "0",
)
GATEWAY_SECURITY = ("--jwt-secret", SECRET, "--admin-token", ADMIN_TOKEN)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def farm(redis_session_url: str) -> Iterator[Farm]:
    with running_farm(
        redis_session_url,
        nodes=1,
        gateway_id="gw-input",
        node_security=NODE_SECURITY,
        gateway_security=GATEWAY_SECURITY,
    ) as farm:
        yield farm


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def call(
    farm: Farm, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, str, str]:
    """A REST call as any HTTP client makes it: status, content type and text, unparsed."""
    request = urllib.request.Request(
        f"{farm.gateway.http}/api/v1{path}",
        data=body,
        method=method,
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def json_error(answer: tuple[int, str, str]) -> tuple[int, str, str]:
    """The status, code and message of a JSON error answer (fails on anything else)."""
    status, content_type, text = answer
    assert content_type.startswith("application/json"), (status, content_type, text)
    error = json.loads(text)["error"]
    return status, error["code"], error["message"]


def user() -> str:
    return hs256(sub="alice", subscribe=["deep.*"], publish=["deep.*"])


async def test_a_frame_nested_300_levels_gets_an_error_and_the_connection_answers_a_ping(
    farm: Farm,
) -> None:
    async with TestClient(f"{farm.gateway.url}?token={user()}") as client:
        await client.subscribe("deep.one")
        reply = await client.request(
            type="data", channel="deep.one", payload=json.loads(nested(300))
        )
        assert reply["type"] == "error", reply
        assert reply["payload"] == {
            "code": "BAD_REQUEST",
            "message": "frame is nested deeper than 64 levels",
        }
        assert (await client.request(type="ping", messageId="after"))["type"] == "pong"
    assert "Traceback" not in farm.nodes[0].output()


async def test_a_frame_nested_2000_levels_is_told_it_is_too_deep_not_that_it_is_not_json(
    farm: Farm,
) -> None:
    async with TestClient(f"{farm.gateway.url}?token={user()}") as client:
        frame = f'{{"type":"data","channel":"deep.two","messageId":"d","payload":{nested(2000)}}}'
        await client.send_raw(frame)
        reply = await client.recv()
        assert reply["payload"]["message"] == "frame is nested deeper than 64 levels"
        assert (await client.request(type="ping", messageId="after"))["type"] == "pong"


async def test_a_payload_as_deep_as_the_limit_allows_reaches_a_subscriber(farm: Farm) -> None:
    payload = json.loads(nested(63))  # the frame around it is the 64th level
    async with (
        TestClient(f"{farm.gateway.url}?token={user()}") as publisher,
        TestClient(f"{farm.gateway.url}?token={user()}") as subscriber,
    ):
        await subscriber.subscribe("deep.three")
        await publisher.publish("deep.three", payload)
        received = await subscriber.recv()
        assert (received["type"], received["payload"]) == ("data", payload)


def test_deeply_nested_json_to_the_rest_api_gets_the_documented_400(farm: Farm) -> None:
    body = f'{{"healthCheck":{nested(5000)}}}'.encode()
    assert json_error(call(farm, "POST", "/pool/config", body, ADMIN)) == (
        400,
        "BAD_REQUEST",
        "body is nested deeper than 64 levels",
    )
    ticket_body = f'{{"clientId":{nested(5000)}}}'.encode()
    bearer = {"Authorization": f"Bearer {user()}"}
    assert json_error(call(farm, "POST", "/connections", ticket_body, bearer))[:2] == (
        400,
        "BAD_REQUEST",
    )


def test_a_stranger_sending_deep_json_is_refused_for_its_credential_first(farm: Farm) -> None:
    body = f'{{"clientId":{nested(5000)}}}'.encode()
    assert json_error(call(farm, "POST", "/connections", body, {}))[:2] == (401, "UNAUTHORIZED")
    assert json_error(call(farm, "POST", "/pool/config", body, {}))[:2] == (401, "UNAUTHORIZED")


def test_a_rest_body_above_64_kib_gets_413_in_json(farm: Farm) -> None:
    body = json.dumps({"weights": {f"node-{i}": 1 for i in range(5000)}}).encode()
    assert len(body) > 64 * 1024
    assert json_error(call(farm, "POST", "/pool/config", body, ADMIN)) == (
        413,
        "TOO_LARGE",
        "body exceeds 65536 bytes",
    )


def test_a_token_with_deeply_nested_claims_gets_a_401_in_json(farm: Farm) -> None:
    claims = json.dumps(token_claims(roles=["admin"]))[:-1] + f',"x":{nested(2000)}}}'
    bearer = {"Authorization": f"Bearer {hs256_over(claims)}"}
    status, code, message = json_error(call(farm, "GET", "/pool/config", None, bearer))
    assert (status, code) == (401, "UNAUTHORIZED")
    assert message == "invalid token: token claims is nested deeper than 64 levels"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('{"healthCheck":{"interval":NaN}}', "NaN and Infinity are not JSON numbers"),
        ('{"healthCheck":{"timeout":Infinity}}', "NaN and Infinity are not JSON numbers"),
        ('{"circuitBreaker":{"openSeconds":1e999}}', "body is not valid JSON"),
        ('{"slowStart":-1}', "slowStart: must be ≥ 0"),
        ('{"healthCheck":{"fastInterval":-0.5}}', "healthCheck.fastInterval: must be greater"),
    ],
)
def test_a_pool_config_with_a_time_that_is_not_finite_and_in_range_gets_400_and_changes_nothing(
    farm: Farm, body: str, problem: str
) -> None:
    store = redis.Redis.from_url(farm.redis_url, decode_responses=True)
    stored = Keys(farm.prefix).pool_config
    before = (store.get(stored), call(farm, "GET", "/pool/config", None, ADMIN))
    status, code, message = json_error(call(farm, "POST", "/pool/config", body.encode(), ADMIN))
    assert (status, code) == (400, "BAD_REQUEST")
    assert problem in message
    assert "\n" not in message
    # What every replica follows, and what this one serves, are as they were.
    assert (store.get(stored), call(farm, "GET", "/pool/config", None, ADMIN)) == before
    assert json.loads(before[1][2])["healthCheck"]["interval"] == 5.0
    store.close()


async def test_a_nan_config_an_older_version_stored_is_reported_once_and_not_applied(
    redis_session_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    keys = Keys(f"older-{uuid.uuid4().hex[:8]}:")
    store = aioredis.Redis.from_url(redis_session_url)
    await store.set(keys.pool_config, '{"healthCheck": {"interval": NaN}}')  # json.dumps(nan)
    engine = RedisEngine(redis_session_url, keys, HistoryPolicy(10, 60), 60)
    pool = PoolManager(GatewaySettings(id="gw-older", redis_url=redis_session_url), engine, engine)
    try:
        with caplog.at_level(logging.ERROR, logger="wspool.gateway.pool"):
            for _ in range(3):
                await pool.refresh()
        reports = [r.getMessage() for r in caplog.records if "stored pool config" in r.message]
        assert reports == [
            "ignoring the stored pool config: healthCheck.interval: "
            "must be a finite number of seconds"
        ]
        assert pool.config.health_check.interval == 5.0
    finally:
        await store.delete(keys.pool_config, *await store.keys(f"{keys.prefix}*"))
        await store.aclose()
        await engine.close()
