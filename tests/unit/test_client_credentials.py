"""The Python client's credentials: token providers, renewal times, URLs fit for a log."""

from __future__ import annotations

import pytest

from tests.support.tokens import hs256
from wspool.client import AuthenticationError
from wspool.client.credentials import fetch_token, loggable_url, renewal_delay, token_expiry


async def test_a_provider_may_be_a_plain_or_an_async_callable() -> None:
    async def fresh() -> str:
        return "async-token"

    assert await fetch_token(lambda: "plain-token") == "plain-token"
    assert await fetch_token(fresh) == "async-token"


async def test_a_provider_that_fails_or_gives_nothing_is_an_authentication_error() -> None:
    def broken() -> str:
        raise RuntimeError("identity provider down: secret-in-message")

    with pytest.raises(AuthenticationError) as caught:
        await fetch_token(broken)
    assert "secret-in-message" not in str(caught.value)
    with pytest.raises(AuthenticationError, match="no token"):
        await fetch_token(lambda: "")


def test_the_expiry_of_a_jwt_is_read_and_an_opaque_token_has_none() -> None:
    token = hs256(sub="alice", exp=2_000_000_000)
    assert token_expiry(token) == 2_000_000_000.0
    assert token_expiry("opaque-static-token") is None
    assert token_expiry("a.%%%.c") is None


def test_a_token_is_renewed_ahead_of_its_expiry_by_a_bounded_margin() -> None:
    assert renewal_delay(1000.0, 0.0) == 940.0  # a long token: a minute ahead
    assert renewal_delay(100.0, 0.0) == 80.0  # a fifth of what is left
    assert renewal_delay(10.0, 0.0) == 5.0  # at least five seconds ahead
    assert renewal_delay(3.0, 0.0) == 0.0  # too late already: now


def test_a_url_is_logged_without_its_query() -> None:
    url = "ws://pool:8080/ws?token=eyJsecret&clientId=a"
    assert loggable_url(url) == "ws://pool:8080/ws"
