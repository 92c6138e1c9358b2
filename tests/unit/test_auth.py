"""Token verification, channel permissions, where tokens come from, and admin access."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import jwt
import pytest

from tests.support.tokens import SECRET, ec_pair, hs256, hs256_over, rsa_pair, token_claims
from wspool.core.auth import (
    ApiAccess,
    ApiPolicy,
    AuthError,
    PermissionDeniedError,
    Verifier,
    authorize_api,
    offered_subprotocols,
    open_claims,
    token_from_handshake,
)


def test_an_hs256_token_becomes_claims_with_sub_as_client_id() -> None:
    claims = Verifier(secret=SECRET).verify(
        hs256(sub="alice", subscribe=["prices.*"], publish=["chat"])
    )
    assert claims.client_id == "alice"
    assert claims.expires_at is not None
    assert claims.expires_at > time.time()
    assert claims.may_subscribe("prices.eur")
    assert not claims.may_subscribe("news")
    assert claims.may_publish("chat")
    assert not claims.may_publish("chat2")


def test_a_token_without_channels_may_do_nothing() -> None:
    claims = Verifier(secret=SECRET).verify(hs256())
    assert not claims.may_subscribe("a")
    assert not claims.may_publish("a")


def test_open_claims_allow_every_channel() -> None:
    claims = open_claims("c1")
    assert claims.may_subscribe("anything/at:all")
    assert claims.may_publish("x")


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda: hs256(secret="another-secret-of-at-least-thirty-two-bytes"), "Signature"),
        (lambda: hs256(token_claims(ttl=-60)), "expired"),
        (lambda: hs256({"sub": "alice"}), "exp"),
        (lambda: hs256({"exp": int(time.time()) + 60}), "sub"),
        (lambda: hs256(token_claims(sub="has space")), "sub"),
        (lambda: hs256(token_claims(nbf=int(time.time()) + 600)), "not yet valid"),
        (lambda: hs256(token_claims(channels=["a"])), "channels"),
        (lambda: hs256(token_claims(channels={"subscribe": "a"})), "subscribe"),
        (lambda: hs256(token_claims(roles="admin")), "roles"),
        (lambda: "not.a.token", "invalid token"),
        (lambda: "", "invalid token"),
        (lambda: "a.b", "invalid token"),
    ],
)
def test_a_bad_token_is_refused_with_a_reason(make_token: Callable[[], str], reason: str) -> None:
    # Tokens are minted when the test runs: made at collection, the ones that should be
    # valid but for one claim would have expired by the time a long session reaches them.
    with pytest.raises(AuthError, match=reason):
        Verifier(secret=SECRET).verify(make_token())


@pytest.mark.parametrize("levels", [65, 300, 1_500])
def test_a_token_whose_claims_nest_deeper_than_the_json_limit_is_refused(levels: int) -> None:
    claims = json.dumps(token_claims())[:-1] + ',"x":' + "[" * levels + "]" * levels + "}"
    with pytest.raises(AuthError, match="token claims is nested deeper than 64 levels"):
        Verifier(secret=SECRET).verify(hs256_over(claims))


def test_a_token_nesting_as_deep_as_the_json_limit_is_accepted() -> None:
    claims = json.dumps(token_claims())[:-1] + ',"x":' + "[" * 63 + "]" * 63 + "}"
    assert Verifier(secret=SECRET).verify(hs256_over(claims))


def test_a_token_above_the_size_limit_is_refused_before_it_is_decoded() -> None:
    big = hs256(token_claims(note="x" * 9_000))
    with pytest.raises(AuthError, match="exceeds 8192 bytes"):
        Verifier(secret=SECRET).verify(big)


def test_leeway_accepts_a_token_that_expired_a_moment_ago() -> None:
    token = hs256(token_claims(ttl=-3))
    assert Verifier(secret=SECRET, leeway=10).verify(token).client_id == "alice"
    with pytest.raises(AuthError, match="expired"):
        Verifier(secret=SECRET, leeway=0).verify(token)


def test_issuer_and_audience_are_checked_when_configured() -> None:
    verifier = Verifier(secret=SECRET, issuer="https://idp", audience="wspool")
    good = hs256(token_claims(iss="https://idp", aud="wspool"))
    assert verifier.verify(good).client_id == "alice"
    for claims in (
        token_claims(iss="https://evil", aud="wspool"),
        token_claims(iss="https://idp", aud="other"),
        token_claims(aud="wspool"),
    ):
        with pytest.raises(AuthError):
            verifier.verify(hs256(claims))


def test_an_audience_in_the_token_is_ignored_when_none_is_configured() -> None:
    assert Verifier(secret=SECRET).verify(hs256(token_claims(aud="x"))).client_id == "alice"


def test_rs256_and_es256_tokens_verify_with_their_public_key() -> None:
    for pair in (rsa_pair(), ec_pair()):
        verifier = Verifier(public_key_pem=pair.public_pem)
        assert verifier.verify(pair.sign(token_claims(sub="bob"))).client_id == "bob"


def test_a_jwks_picks_the_key_by_kid() -> None:
    verifier = Verifier(jwks={"keys": [rsa_pair().jwk, ec_pair().jwk]})
    assert verifier.verify(rsa_pair().sign(token_claims())).client_id == "alice"
    assert verifier.verify(ec_pair().sign(token_claims())).client_id == "alice"
    with pytest.raises(AuthError, match="kid"):
        verifier.verify(rsa_pair("unknown").sign(token_claims()))


def test_a_single_key_jwks_accepts_a_token_without_kid() -> None:
    verifier = Verifier(jwks={"keys": [ec_pair().jwk]})
    assert verifier.verify(ec_pair().sign(token_claims(), kid=False)).client_id == "alice"


def test_the_algorithm_comes_from_the_key_not_from_the_token() -> None:
    pair = rsa_pair()
    verifier = Verifier(public_key_pem=pair.public_pem)
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(token_claims()).encode()).rstrip(b"=")
    with pytest.raises(AuthError):
        verifier.verify(f"{header.decode()}.{body.decode()}.")
    with pytest.raises(AuthError):
        verifier.verify(ec_pair().sign(token_claims(), kid=False))
    # HS256 signed with the public key's PEM as the shared secret: the classic confusion.
    forged = jwt.api_jws.PyJWS()
    forged._algorithms["HS256"].prepare_key = lambda key: key  # type: ignore[method-assign]
    token = forged.encode(json.dumps(token_claims()).encode(), pair.public_pem.encode(), "HS256")
    with pytest.raises(AuthError):
        verifier.verify(token)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"secret": "short"}, "32 bytes"),
        ({"public_key_pem": "nonsense"}, "PEM"),
        ({"jwks": {"keys": []}}, "JWKS"),
        ({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, "RS256"),
        ({}, "exactly one"),
    ],
)
def test_unusable_key_material_is_refused(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Verifier(**kwargs)  # type: ignore[arg-type]


def test_the_token_is_found_in_header_then_query_then_subprotocol() -> None:
    assert token_from_handshake("Bearer abc", "token=q", ["wspool", "bearer.s"]) == "abc"
    assert token_from_handshake("bearer  abc ", "", []) == "abc"
    assert token_from_handshake(None, "clientId=x&token=q", ["wspool", "bearer.s"]) == "q"
    assert token_from_handshake(None, "", ["wspool", "bearer.s.t.u"]) == "s.t.u"
    assert token_from_handshake(None, "clientId=x", ["wspool"]) is None


def test_offered_subprotocols_are_read_from_every_header_and_list() -> None:
    headers = ["wspool, bearer.abc", " chat ,,", ""]
    assert offered_subprotocols(headers) == ["wspool", "bearer.abc", "chat"]
    assert offered_subprotocols([]) == []


@pytest.mark.parametrize(
    ("authorization", "query", "subprotocols"),
    [
        ("Basic dXNlcg==", "", []),
        ("Bearer", "", []),
        (None, "token=a&token=b", []),
        (None, "", ["bearer.abc"]),
        (None, "", ["wspool", "bearer.a", "bearer.b"]),
    ],
)
def test_a_malformed_presentation_is_refused(
    authorization: str | None, query: str, subprotocols: list[str]
) -> None:
    with pytest.raises(AuthError):
        token_from_handshake(authorization, query, subprotocols)


POLICY = ApiPolicy(verifier=Verifier(secret=SECRET), admin_token="static-admin-token")


def test_writes_need_an_admin_token_or_the_admin_role() -> None:
    admin = hs256(token_claims(sub="root", roles=["admin"]))
    user = hs256(token_claims(sub="alice"))
    assert authorize_api(POLICY, ApiAccess.WRITE, "Bearer static-admin-token") is None
    claims = authorize_api(POLICY, ApiAccess.WRITE, f"Bearer {admin}")
    assert claims is not None
    assert claims.client_id == "root"
    with pytest.raises(PermissionDeniedError, match="admin"):
        authorize_api(POLICY, ApiAccess.WRITE, f"Bearer {user}")
    for header in (None, "Bearer wrong", "Basic x"):
        with pytest.raises(AuthError):
            authorize_api(POLICY, ApiAccess.WRITE, header)


def test_reads_need_admin_unless_opened_and_insecure_opens_all() -> None:
    with pytest.raises(AuthError):
        authorize_api(POLICY, ApiAccess.READ, None)
    opened = ApiPolicy(verifier=POLICY.verifier, open_reads=True)
    assert authorize_api(opened, ApiAccess.READ, None) is None
    with pytest.raises(AuthError):
        authorize_api(opened, ApiAccess.WRITE, None)
    assert authorize_api(ApiPolicy(insecure=True), ApiAccess.WRITE, None) is None


def test_an_admin_token_alone_works_without_a_verifier() -> None:
    policy = ApiPolicy(admin_token="static-admin-token")
    assert authorize_api(policy, ApiAccess.WRITE, "Bearer static-admin-token") is None
    with pytest.raises(AuthError):
        authorize_api(policy, ApiAccess.WRITE, f"Bearer {hs256(token_claims(roles=['admin']))}")
