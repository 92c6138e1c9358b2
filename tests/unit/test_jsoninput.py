"""The one rule for JSON from outside: size, depth, strict numbers; checked before parsing."""

from __future__ import annotations

import time

import pytest

from wspool.core.jsoninput import (
    MAX_DEPTH,
    JsonInputError,
    JsonTooLargeError,
    loads,
    nested_deeper_than,
)


def nested(levels: int, inner: str = "1") -> str:
    """Arrays and objects alternating, ``levels`` deep around ``inner``."""
    text = inner
    for level in range(levels):
        text = f'{{"k":{text}}}' if level % 2 else f"[{text}]"
    return text


def test_input_nested_as_deep_as_the_limit_is_parsed() -> None:
    assert loads(nested(MAX_DEPTH), max_bytes=10_000) is not None


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 300, 1_000, 5_000])
def test_input_nested_deeper_than_the_limit_is_refused_naming_the_limit(levels: int) -> None:
    with pytest.raises(JsonInputError, match=f"nested deeper than {MAX_DEPTH} levels"):
        loads(nested(levels), max_bytes=100_000, what="frame")


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = '{"a":"' + "[{" * 500 + '","b":"\\"[[[[","c":[' + '"]]]]",' * 100 + "1]}"
    assert not nested_deeper_than(text, 2)
    assert loads(text, max_bytes=100_000)["a"] == "[{" * 500


def test_many_shallow_values_are_not_mistaken_for_depth() -> None:
    text = "[" + ",".join(["[1,{}]"] * 10_000) + "]"
    assert len(loads(text, max_bytes=1_000_000)) == 10_000
    assert not nested_deeper_than(text, 3)
    assert nested_deeper_than(text, 2)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_saying_they_are_not_json(number: str) -> None:
    with pytest.raises(JsonInputError, match="NaN and Infinity are not JSON numbers"):
        loads(f'{{"interval":{number}}}', max_bytes=100, what="body")


def test_a_number_beyond_a_double_is_refused_rather_than_read_as_infinity() -> None:
    with pytest.raises(JsonInputError, match="body is not valid JSON"):
        loads('{"interval":1e999}', max_bytes=100, what="body")


def test_the_size_limit_counts_utf8_bytes_of_text_and_of_bytes() -> None:
    assert loads('"' + "é" * 49 + '"', max_bytes=100) == "é" * 49
    with pytest.raises(JsonTooLargeError, match="frame exceeds 100 bytes"):
        loads('"' + "é" * 50 + '"', max_bytes=100, what="frame")
    with pytest.raises(JsonTooLargeError):
        loads(b"[" + b"1," * 60 + b"1]", max_bytes=100)


def test_bytes_that_are_not_utf8_are_not_json() -> None:
    with pytest.raises(JsonInputError, match="not UTF-8"):
        loads(b'"\xff"', max_bytes=100)


def test_the_depth_check_takes_linear_time_on_hostile_text() -> None:
    # Unterminated strings full of escaped quotes, then deep brackets: a backtracking
    # scanner would take minutes here.
    hostile = ['"\\"' * 300_000 + "[" * 1_000, "[" * 500_000 + "]" * 500_000]
    started = time.perf_counter()
    for text in hostile:
        with pytest.raises(JsonInputError):
            loads(text, max_bytes=10_000_000)
    assert time.perf_counter() - started < 2.0
