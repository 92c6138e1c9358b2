"""What a Redis URL names: one server, a Redis Cluster, or a primary watched by Sentinel.

- ``redis://[user:pass@]host[:port][/db]`` (``rediss://`` for TLS, ``unix:///path``): one
  server, read by redis-py itself;
- ``redis+cluster://[user:pass@]host:port[,host:port...]``: a Redis Cluster, found through
  those seed nodes (any of its nodes will do);
- ``redis+sentinel://[user:pass@]host:port[,host:port...]/primary-name``: the primary that
  those Sentinels monitor under that name. The user and password are the data nodes'; the
  Sentinels are asked without them.

``rediss+cluster://`` and ``rediss+sentinel://`` speak TLS to every node (and Sentinel).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote, urlsplit

__all__ = ["RedisKind", "RedisTarget", "parse_redis_url", "without_credentials"]

SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
)
"""Every scheme a Redis URL may have."""

_DEFAULT_PORTS = {"cluster": 6379, "sentinel": 26379}

_CREDENTIALS = re.compile(r"^([a-z+]+://)[^/@]*@", re.IGNORECASE)


class RedisKind(Enum):
    SINGLE = "single"
    CLUSTER = "cluster"
    SENTINEL = "sentinel"


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A parsed Redis URL; ``url`` is the text it came from (for a single server, what
    redis-py reads)."""

    url: str
    kind: RedisKind
    tls: bool = False
    nodes: tuple[tuple[str, int], ...] = ()
    """The seed nodes of a cluster, or the Sentinels."""
    primary: str = ""
    """The name Sentinel knows the primary by."""
    username: str | None = None
    password: str | None = None


def parse_redis_url(url: str) -> RedisTarget:
    """``url`` as a :class:`RedisTarget`; ``ValueError`` saying what the URL must be."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ValueError(
            "must be a redis://, rediss://, unix://, redis+cluster:// or redis+sentinel:// URL"
            " (rediss+… for TLS)"
        )
    if "+" not in scheme:
        parts = urlsplit(url)
        if not (parts.path if scheme == "unix" else parts.hostname):
            raise ValueError(f"must name a {'socket path' if scheme == 'unix' else 'host'}")
        return RedisTarget(url, RedisKind.SINGLE, tls=scheme == "rediss")
    base, _, kind_name = scheme.partition("+")
    kind = RedisKind(kind_name)
    place, _, path = rest.partition("/")
    if "?" in place or "#" in place or "?" in path or "#" in path:
        raise ValueError(f"a {scheme}:// URL takes no query or fragment")
    credentials, at, hosts = place.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = tuple(_node(part, _DEFAULT_PORTS[kind_name]) for part in hosts.split(","))
    primary = unquote(path)
    if kind is RedisKind.SENTINEL and not primary:
        raise ValueError("a redis+sentinel:// URL ends with /primary-name")
    if kind is RedisKind.CLUSTER and path:
        raise ValueError("a redis+cluster:// URL has no path (a cluster has one database)")
    return RedisTarget(url, kind, base == "rediss", nodes, primary, username, password)


def _node(text: str, default_port: int) -> tuple[str, int]:
    if not text:
        raise ValueError("lists host:port pairs separated by commas, with no empty entry")
    if text.startswith("["):  # [IPv6]:port
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ValueError(f"names no host in {text!r}")
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"has a bad port in {text!r}")
    return host, int(port)


def without_credentials(url: str) -> str:
    """``url`` with its user and password replaced by ``***``, for logs."""
    return _CREDENTIALS.sub(r"\1***@", url)
