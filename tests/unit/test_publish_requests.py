"""The rules of the REST API's channel routes: what a publish, a broadcast and a history
read accept, and which frames and offsets they answer."""

from __future__ import annotations

import pytest

from wspool.core.history import HistoryRead, StreamPosition
from wspool.gateway.model.messages import (
    HistoryQuery,
    batch_offsets,
    broadcast_request,
    history_page,
    history_query,
    publish_payloads,
)


def test_one_payload_or_a_batch_of_them_in_order() -> None:
    assert publish_payloads({"payload": None}) == ([None], False)
    assert publish_payloads({"messages": [{"payload": 1}, {"payload": [2]}]}) == ([1, [2]], True)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"payload": 1, "messages": [{"payload": 1}]}, 'either "payload" or "messages"'),
        ({"messages": [{"payload": 1, "id": "x"}]}, "id: unknown field"),
        ({"messages": {"payload": 1}}, "list of 1-100 messages"),
        ("payload", "body must be a JSON object"),
    ],
)
def test_a_publish_body_is_one_thing_or_the_other(body: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        publish_payloads(body)


def test_a_broadcast_names_each_channel_once_in_the_order_given() -> None:
    body = {"channels": ["b", "a", "b"], "payload": {"x": 1}}
    assert broadcast_request(body) == (["b", "a"], {"x": 1})
    with pytest.raises(ValueError, match="1-100"):
        broadcast_request({"channels": [f"c{i}" for i in range(101)], "payload": 1})


def test_a_history_query_reads_its_three_parameters() -> None:
    query = history_query([("since", "ab12:7"), ("limit", "5"), ("reverse", "true")])
    assert query == HistoryQuery(StreamPosition("ab12", 7), 5, True)
    assert history_query([]) == HistoryQuery()
    with pytest.raises(ValueError, match="once"):
        history_query([("limit", "1"), ("limit", "2")])
    with pytest.raises(ValueError, match="limit"):
        history_query([("limit", "\u0661")])  # a digit, but not an ASCII one


def test_a_history_page_pages_forward_after_since_and_shows_the_newest_otherwise() -> None:
    read = HistoryRead(StreamPosition("e", 5), ["1", "2", "3", "4", "5"])
    since = StreamPosition("e", 0)
    assert history_page(read, HistoryQuery(since, 2)) == ["1", "2"]
    assert history_page(read, HistoryQuery(since, 2, reverse=True)) == ["5", "4"]
    assert history_page(read, HistoryQuery(None, 2)) == ["4", "5"]
    assert history_page(HistoryRead(read.top, None), HistoryQuery(since, 2)) == []


def test_a_batch_answers_consecutive_offsets_ending_at_its_last() -> None:
    assert batch_offsets(StreamPosition("e", 12), 3) == ["e:10", "e:11", "e:12"]
