"""The token a relayed client renews on its connection, and where a moved session presents it.

The client's frames are masked as a client masks them (``websockets``, a random key each),
read through the client direction's :class:`FrameScanner` in any pieces; the node's answers
are its own encodings, read by the session's :class:`SessionView`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.frames import Frame, Opcode

from tests.support.tokens import hs256
from wspool.core.protocol import ErrorCode, encode_authenticated, encode_error
from wspool.gateway.model.framing import FrameScanner
from wspool.gateway.model.renewal import AUTH_MESSAGE_LIMIT, Handshake, carries_token, with_token
from wspool.gateway.model.sessionview import SessionView

FIRST, SECOND = hs256(sub="alice", ttl=60), hs256(sub="alice", ttl=3600)


def _client(message: Any, *, dumps: Any = None) -> bytes:
    text = (dumps or (lambda m: json.dumps(m, separators=(",", ":"))))(message)
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=True)


def _auth(token: str, message_id: str) -> dict[str, Any]:
    return {"type": "auth", "payload": {"token": token}, "messageId": message_id}


class Session:
    """A seamless session's two directions, as the splice wires them."""

    def __init__(self) -> None:
        self.view = SessionView()
        self.up = FrameScanner(
            1 << 20, watch=self.view.renewals.sent, watch_limit=AUTH_MESSAGE_LIMIT
        )

    def sends(self, *frames: bytes, piece: int = 0) -> None:
        stream = b"".join(frames)
        step = piece or len(stream)
        passed = b"".join(
            self.up.feed(stream[at : at + step]) for at in range(0, len(stream), step)
        )
        assert passed == stream  # the frames pass as they were sent

    def node_answers(self, text: str) -> None:
        data = text.encode()
        self.view.frame(data, 0, len(data))

    @property
    def token(self) -> str | None:
        return self.view.renewals.token


@pytest.mark.parametrize("piece", [0, 1, 7])
def test_a_renewal_the_node_accepts_is_the_sessions_token_however_it_was_read(piece: int) -> None:
    session = Session()
    session.sends(
        _client({"type": "subscribe", "channel": "a", "messageId": "s"}),
        _client(_auth(SECOND, "r1")),
        piece=piece,
    )
    assert session.token is None  # sent, not accepted yet
    session.node_answers(encode_authenticated("r1", "alice", 1.0))
    assert session.token == SECOND


def test_a_refused_renewal_changes_nothing_and_a_later_accepted_one_holds() -> None:
    session = Session()
    third = hs256(sub="alice", ttl=7200)
    session.sends(_client(_auth("not-a-good.jwt.x", "r1")), _client(_auth(third, "r2")))
    session.node_answers(encode_error(ErrorCode.UNAUTHORIZED, "bad token", "r1"))
    assert session.token is None
    session.node_answers(encode_authenticated("r2", "alice", 1.0))
    assert session.token == third
    session.node_answers(encode_authenticated("r1", "alice", 1.0))  # answered already
    assert session.token == third


def test_the_newest_accepted_renewal_holds() -> None:
    session = Session()
    session.sends(_client(_auth(FIRST, "r1")), _client(_auth(SECOND, "r2")))
    session.node_answers(encode_authenticated("r1", "alice", 1.0))
    assert session.token == FIRST
    session.node_answers(encode_authenticated("r2", "alice", 1.0))
    assert session.token == SECOND


@pytest.mark.parametrize(
    "dumps",
    [
        json.dumps,  # {"type": "auth", ...}: Python's default separators
        lambda m: json.dumps({"messageId": m["messageId"], **m}),  # the type not first
        lambda m: json.dumps(m, indent=2),
    ],
)
def test_an_auth_message_is_recognised_however_its_json_is_laid_out(dumps: Any) -> None:
    session = Session()
    session.sends(_client(_auth(SECOND, "r1"), dumps=dumps))
    session.node_answers(encode_authenticated("r1", "alice", 1.0))
    assert session.token == SECOND


@pytest.mark.parametrize(
    "message",
    [
        _auth(SECOND + "\r\nX-Injected: 1", "r1"),  # not a JWT's shape: never written out
        _auth("x" * 9000 + ".y.z", "r1"),  # longer than a node reads
        {"type": "data", "channel": "auth", "payload": {"token": SECOND}, "messageId": "r1"},
        {"type": "auth", "payload": {"token": SECOND}, "messageId": 1},
        {"type": "auth", "payload": SECOND, "messageId": "r1"},
    ],
)
def test_what_is_not_a_renewal_a_node_could_accept_is_not_followed(message: Any) -> None:
    session = Session()
    session.sends(_client(message), _client(message, dumps=json.dumps))
    session.node_answers(encode_authenticated("r1", "alice", 1.0))
    assert session.token is None


def test_a_message_too_long_to_be_an_auth_is_not_read() -> None:
    seen: list[bytes] = []
    scanner = FrameScanner(
        watch=lambda data, start, stop: seen.append(data[start:stop]), watch_limit=100
    )
    short, long = _client({"type": "ping", "messageId": "p"}), _client({"pad": "x" * 200})
    scanner.feed(short + long)
    assert len(seen) == 1
    assert seen[0] == short[2:]  # the key in front of the masked payload


HANDSHAKE = Handshake("Bearer old", [("token", "old"), ("clientId", "c")], ["wspool", "bearer.old"])


def test_a_renewed_token_takes_the_place_the_client_carried_its_own_in() -> None:
    # In a node's order of precedence: the header, the query, the subprotocol.
    assert with_token(HANDSHAKE, "new") == HANDSHAKE._replace(authorization="Bearer new")
    query_only = HANDSHAKE._replace(authorization=None)
    assert with_token(query_only, "new") == query_only._replace(
        query=[("token", "new"), ("clientId", "c")]
    )
    protocol_only = query_only._replace(query=[("clientId", "c")])
    assert with_token(protocol_only, "new") == protocol_only._replace(
        subprotocols=["wspool", "bearer.new"]
    )
    nowhere = protocol_only._replace(subprotocols=["wspool"])
    assert with_token(nowhere, "new") == nowhere


def test_only_a_client_that_presented_a_token_has_one_to_renew() -> None:
    assert carries_token(HANDSHAKE)
    assert carries_token(Handshake(None, [("token", "t")], []))
    assert carries_token(Handshake(None, [], ["wspool", "bearer.t"]))
    assert not carries_token(Handshake(None, [("clientId", "c")], ["wspool"]))
