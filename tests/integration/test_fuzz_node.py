"""Property-based abuse of a real node: arbitrary frames, handshakes and tokens.

Whatever arrives (NaN and infinities, payloads nested up to 3,000 levels, frames up to 200 KB
among them), the node stays up, answers with an error (HTTP status or ``error`` frame), keeps
well-behaved connections working, and once the clients are gone leaves no state behind: no
connection records, no address counted.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from tests.support.hostile_json import deep, deep_frames, json_values, large_frames
from tests.support.processes import NodeProcess, http_get, raw_handshake
from tests.support.tokens import SECRET, hs256, hs256_over, token_claims
from tests.support.waiting import poll_until

pytestmark = pytest.mark.redis

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TOKEN = hs256(sub="fuzzer", subscribe=["*"], publish=["*"])

message_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["subscribe", "unsubscribe", "ping", "data", "auth", "x"])
        | st.text(max_size=10),
        "channel": st.text(max_size=140) | json_values,
        "messageId": st.text(max_size=140) | json_values,
        "payload": json_values | st.fixed_dictionaries({"token": st.text(max_size=300)}),
        "since": json_values,
    },
)
frames = (
    message_like.map(json.dumps)
    | st.text(max_size=2000)
    | st.binary(max_size=2000)
    | json_values.map(json.dumps)
    | deep_frames
    | large_frames
)
DEEP_DATA = '{"type":"data","channel":"c","messageId":"d","payload":' + "[" * 300 + "]" * 300 + "}"


@pytest.fixture
def node(redis_session_url: str) -> Iterator[tuple[NodeProcess, str]]:
    prefix = f"fuzz-{uuid.uuid4().hex[:8]}:"
    process = NodeProcess(
        "node-fuzz",
        redis_session_url,
        "--key-prefix",
        prefix,
        "--max-message-bytes",
        "1000",
        security=(
            "--jwt-secret",
            SECRET,
            "--messages-per-second",
            "10000",
            "--connection-attempts-per-ip",
            "0",
        ),
    ).start()
    try:
        yield process, prefix
        assert http_get(process.health_url)[0] == 200, "the node went down"
        store = redis.Redis.from_url(redis_session_url, decode_responses=True)
        try:

            def nothing_left() -> bool:
                return not store.keys(f"{prefix}conn:*") and not store.keys(
                    f"{prefix}ip:*:connections"
                )

            poll_until(nothing_left, within=10, message="no state left behind")
        finally:
            store.close()
    finally:
        process.stop()


@contextlib.contextmanager
def _open(url: str, **options: Any) -> Iterator[ClientConnection]:
    with connect(url, open_timeout=5, close_timeout=2, **options) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "connected"
        yield ws


def _still_answers(ws: ClientConnection) -> None:
    ws.send('{"type":"ping","messageId":"alive"}')
    while True:
        reply = json.loads(ws.recv(timeout=5))
        if reply.get("messageId") == "alive" and reply["type"] == "pong":
            return


@FUZZ
@given(batch=st.lists(frames, min_size=1, max_size=5))
@example(batch=[DEEP_DATA])
@example(batch=['{"type":"data","channel":"c","messageId":"n","payload":NaN}'])
def test_arbitrary_frames_get_errors_and_the_connection_lives(
    node: tuple[NodeProcess, str], batch: list[str | bytes]
) -> None:
    process, _ = node
    with _open(f"{process.url}?token={TOKEN}") as ws:
        for frame in batch:
            ws.send(frame)
        _still_answers(ws)


header_names = st.sampled_from(
    ["Authorization", "Origin", "X-Forwarded-For", "Sec-WebSocket-Protocol", "Cookie", "X-Any"]
)
header_values = st.text(
    st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="\r\n"), max_size=200
)


@FUZZ
@given(
    headers=st.lists(st.tuples(header_names, header_values), max_size=6),
    query=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=100),
    upgrade=st.booleans(),
)
@example(headers=[("Authorization", ""), ("Authorization", "")], query="", upgrade=True)
def test_arbitrary_handshakes_get_an_http_answer(
    node: tuple[NodeProcess, str], headers: list[tuple[str, str]], query: str, upgrade: bool
) -> None:
    process, _ = node
    status = raw_handshake(process.port, f"/ws?{query}", headers, upgrade)
    assert status in {101, 400, 401, 403, 426, 429}


claim_values = st.none() | st.integers(-(2**40), 2**40) | st.text(max_size=30) | json_values


@FUZZ
@given(
    claims=st.dictionaries(
        st.sampled_from(["sub", "exp", "nbf", "iat", "iss", "aud", "channels", "roles"]),
        claim_values,
    ),
    signed=st.booleans(),
    raw=st.text(max_size=300),
    deep_claim=st.none() | deep,
)
def test_arbitrary_tokens_are_refused_or_name_their_client(
    node: tuple[NodeProcess, str],
    claims: dict[str, Any],
    signed: bool,
    raw: str,
    deep_claim: str | None,
) -> None:
    process, _ = node
    try:
        token = jwt.encode({**token_claims(), **claims}, SECRET, "HS256") if signed else raw
    except (TypeError, ValueError):
        return  # PyJWT cannot encode these claims (e.g. a non-numeric exp it checks)
    if deep_claim is not None:
        token = hs256_over(json.dumps(token_claims())[:-1] + f', "x": {deep_claim}}}')
    try:
        with _open(process.url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            _still_answers(ws)
    except InvalidHandshake:
        pass  # refused: 401
    except ValueError:
        pass  # a header value the client library itself refuses to send
