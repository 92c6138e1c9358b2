"""Hypothesis strategies for hostile JSON: NaN and infinities, deep nesting, large documents.

Shared by the fuzzers of the node and of the gateway, which must answer each of these with
the documented error (core.jsoninput) and keep serving.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

__all__ = ["deep", "deep_frames", "json_values", "large_frames", "nested_in"]

json_values = st.recursive(
    # floats() includes NaN and the infinities, which json.dumps writes as NaN/Infinity.
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
"""Any JSON value, and the non-finite numbers that JSON has no words for."""

deep = st.integers(min_value=1, max_value=3_000).map(lambda levels: "[" * levels + "]" * levels)
"""JSON text nested 1 to 3,000 levels: around the limit, past what orjson encodes (254)
and past what it parses (1,024)."""


def nested_in(document: dict[str, Any], key: str) -> st.SearchStrategy[str]:
    """``document`` as JSON text with a deeply nested value under ``key``."""
    head = json.dumps(document)[:-1]
    separator = ", " if document else ""
    return deep.map(lambda inner: f'{head}{separator}"{key}": {inner}}}')


deep_frames = st.sampled_from(["data", "subscribe", "ping", "auth"]).flatmap(
    lambda kind: nested_in({"type": kind, "channel": "fuzz", "messageId": "deep"}, "payload")
)
"""Client frames whose payload nests deeply."""

large_frames = st.integers(min_value=1_000, max_value=200_000).map(
    lambda size: json.dumps(
        {"type": "data", "channel": "fuzz", "messageId": "large", "payload": "x" * size}
    )
)
"""Client frames from 1 KB to 200 KB: above the soft limit, below the hard one (1 MiB)."""
