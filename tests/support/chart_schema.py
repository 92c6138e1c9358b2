"""The part of the chart's values.schema.json that comes from the CRD: ``examplePool.spec``.

The WebSocketPool's spec schema in ``crds/`` is OpenAPI v3 as Kubernetes reads it;
:func:`spec_schema` turns it into the JSON Schema that helm checks values against: the
``x-kubernetes-*`` extensions (CEL rules among them, which the API server still applies) are
dropped, boolean ``exclusiveMinimum``/``exclusiveMaximum`` become numbers, objects with declared
fields refuse others (the API server's strict field validation would), and ``redis`` is left out,
as the chart writes it from ``examplePool.redisUrl``. A test keeps the chart's copy equal to it;
after a CRD change, ``python -m tests.support.chart_schema`` writes it into values.schema.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

__all__ = ["SCHEMA", "spec_schema", "values_schema"]

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "websocketpools.realtime.acc.io.yaml"
SCHEMA = REPO / "charts" / "websocket-pool" / "values.schema.json"
CHART_WRITES = "redis"


def values_schema() -> dict[str, Any]:
    """The chart's values.schema.json."""
    schema: dict[str, Any] = json.loads(SCHEMA.read_text())
    return schema


def spec_schema() -> dict[str, Any]:
    """JSON Schema of ``examplePool.spec``, from the CRD."""
    crd = yaml.safe_load(CRD.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    converted: dict[str, Any] = _convert(spec)
    del converted["properties"][CHART_WRITES]
    converted["required"] = [key for key in converted["required"] if key != CHART_WRITES]
    return converted


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _convert(value) for key, value in node.items() if not key.startswith("x-kube")}
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.get(bound) is True:
            out[bound] = out.pop(limit)
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _write() -> None:
    schema = values_schema()
    schema["properties"]["examplePool"]["properties"]["spec"] = spec_schema()
    SCHEMA.write_text(json.dumps(schema, indent=2) + "\n")


if __name__ == "__main__":
    _write()
