"""What the relay keeps of a client's upgrade request, and which requests it relays."""

from __future__ import annotations

import base64

from multidict import CIMultiDict, MultiDict, MultiDictProxy

from wspool.gateway.model.upgrade import UpgradeRequest, opens_websocket

KEY = base64.b64encode(bytes(16)).decode()


def _upgrade(**extra: str) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict(
        {
            "Host": "gw",
            "Upgrade": "websocket",
            "Connection": "keep-alive, Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": KEY,
        }
    )
    headers.update(extra)
    return headers


def test_an_upgrade_opens_a_websocket_and_a_request_missing_any_part_does_not() -> None:
    assert opens_websocket(_upgrade())
    assert not opens_websocket(_upgrade(Upgrade="h2c"))
    assert not opens_websocket(_upgrade(Connection="keep-alive"))
    assert not opens_websocket(_upgrade(**{"Sec-WebSocket-Version": "12"}))
    assert not opens_websocket(_upgrade(**{"Sec-WebSocket-Key": "c2hvcnQ="}))
    assert not opens_websocket(_upgrade(**{"Sec-WebSocket-Key": "not base64!"}))


def test_only_what_a_node_is_sent_is_kept_with_every_query_parameter_in_order() -> None:
    headers = _upgrade(Authorization="Bearer t", Origin="https://app", Accept="*/*")
    headers.add("Cookie", "a=1")
    headers.add("Cookie", "b=2")
    headers.add("Sec-WebSocket-Protocol", "bearer.t, chat")
    query = MultiDictProxy(MultiDict([("token", "t"), ("tag", "x"), ("tag", "y")]))
    kept = UpgradeRequest.of(headers, query.items(), "10.0.0.7")
    assert kept.headers.getall("Cookie") == ["a=1", "b=2"]
    assert kept.headers["Authorization"] == "Bearer t"
    assert kept.headers["Sec-WebSocket-Key"] == KEY
    assert "Accept" not in kept.headers
    assert "Host" not in kept.headers
    assert kept.query == (("token", "t"), ("tag", "x"), ("tag", "y"))
    assert kept.remote == "10.0.0.7"
    assert "Bearer" not in repr(kept)
    assert "token" not in repr(kept)
