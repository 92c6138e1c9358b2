"""Signing test tokens: a shared secret, and RSA / EC key pairs made once per session."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

__all__ = ["SECRET", "KeyPair", "ec_pair", "hs256", "hs256_over", "rsa_pair", "token_claims"]

SECRET = "test-secret-of-at-least-thirty-two-bytes!"


TOKEN_TTL = 3 * 3600
"""Seconds a test token lives unless a test says otherwise: modules mint tokens at import, and
a whole session (every tier) must not outlast them."""


def token_claims(
    sub: str = "alice",
    ttl: float = TOKEN_TTL,
    subscribe: list[str] | None = None,
    publish: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": sub, "exp": int(time.time() + ttl), **extra}
    if subscribe is not None or publish is not None:
        claims["channels"] = {"subscribe": subscribe or [], "publish": publish or []}
    return claims


def hs256(claims: dict[str, Any] | None = None, secret: str = SECRET, **kwargs: Any) -> str:
    return jwt.encode(claims if claims is not None else token_claims(**kwargs), secret, "HS256")


def hs256_over(claims_text: str, secret: str = SECRET) -> str:
    """An HS256 token over exactly ``claims_text``, which PyJWT would re-encode (or refuse:
    JSON nested too deep for ``json.dumps``)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(claims_text.encode())
    signature = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64(signature)}"


class KeyPair:
    """A private key that signs, and its public half as PEM and as a JWK."""

    def __init__(self, private: PrivateKeyTypes, algorithm: str, kid: str) -> None:
        self.private = private
        self.algorithm = algorithm
        self.kid = kid
        public = private.public_key()
        self.public_pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        algo = jwt.get_algorithm_by_name(algorithm)
        self.jwk: dict[str, Any] = {
            **json.loads(algo.to_jwk(public)),
            "kid": kid,
            "alg": algorithm,
            "use": "sig",
        }

    def sign(self, claims: dict[str, Any], kid: bool = True) -> str:
        headers = {"kid": self.kid} if kid else None
        return jwt.encode(claims, self.private, self.algorithm, headers=headers)  # type: ignore[arg-type]


@functools.cache
def rsa_pair(kid: str = "rsa-1") -> KeyPair:
    return KeyPair(rsa.generate_private_key(65537, 2048), "RS256", kid)


@functools.cache
def ec_pair(kid: str = "ec-1") -> KeyPair:
    return KeyPair(ec.generate_private_key(ec.SECP256R1()), "ES256", kid)
