"""The OpenAPI document the gateway serves is true: schemathesis fuzzes every operation of a
real gateway (three real nodes, a real Redis) from it, with requests that follow the document
and requests that break it. No answer is a 500, and every answer, errors included, has a
status and a body the document describes (errors: ``{"error": {"code", "message"}}``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.processes import Farm, http_get, running_farm
from wspool.gateway.model.openapi import openapi_document


@pytest.fixture(scope="module")
def farm(redis_session_url: str) -> Iterator[Farm]:
    with running_farm(redis_session_url, gateway_id="gw-openapi") as farm:
        yield farm


schema = schemathesis.openapi.from_dict(openapi_document())

CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_answer_is_documented_and_none_is_a_500(case: Case[Any], farm: Farm) -> None:
    response = case.call(base_url=farm.gateway.http, timeout=10)
    assert response.status_code != 500, response.text
    case.validate_response(response, checks=CHECKS)


def test_the_document_is_served_without_a_credential(farm: Farm) -> None:
    status, document = http_get(f"{farm.gateway.http}/api/v1/openapi.json")
    assert status == 200
    assert document == openapi_document()  # what the fuzzing here follows
