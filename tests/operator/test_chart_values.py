"""The chart's values.schema.json: good values render, helm refuses a bad or misspelt value
naming it (lint, template and install alike), the schema covers every value with the CRD's own
for ``examplePool.spec``, and the chart's README lists every value with its default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.chart_schema import spec_schema, values_schema
from tests.support.pools import run_tool, tool_refused

pytestmark = pytest.mark.kubernetes

CHART = Path(__file__).resolve().parents[2] / "charts" / "websocket-pool"
WHOLE = {"operator.resources", "redis.resources", "examplePool.spec"}
"""Values the README gives as one row each, their default written whole."""

GOOD_VALUES = """\
image: {repository: registry.example.com/acc/websocket-pool, tag: "1.2.0", pullPolicy: Always}
operator:
  watchNamespaces: [team-a, team-b]
  syncInterval: 2.5
  logLevel: debug
  replicas: 3
  leaseDuration: 30
  metrics: {enabled: true, port: 9100}
  redisUrl: rediss://user:pass@redis.data.svc:6380/2
  resources: {requests: {cpu: "0.1", memory: 128Mi}, limits: {cpu: 1, memory: 1Gi}}
  nodeSelector: {kubernetes.io/os: linux}
  tolerations: [{key: dedicated, operator: Equal, value: realtime, effect: NoSchedule}]
  affinity: {nodeAffinity: {}}
serviceAccount: {create: false, name: wspool-operator}
redis: {enabled: true, image: redis:7.4, resources: {requests: {cpu: 100m}}}
examplePool:
  enabled: true
  name: chat
  redisUrl: ""
  spec:
    strategy: weighted
    replicas: 3
    minReplicas: 2
    maxReplicas: 6
    auth: {secretRef: {name: chat-keys}}
    autoscaling: {enabled: true, targetConnectionsPerNode: 500}
    gateway: {replicas: 2, serviceType: LoadBalancer}
    healthCheck: {interval: 5, timeout: 2}
"""


def _leaves(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """values.yaml's values by dotted path, down to scalars, lists, empty maps and WHOLE."""
    leaves: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in WHOLE:
            leaves.update(_leaves(value, f"{path}."))
        else:
            leaves[path] = value
    return leaves


def _defaults() -> dict[str, Any]:
    return _leaves(yaml.safe_load((CHART / "values.yaml").read_text()))


def test_good_values_render(tmp_path: Path) -> None:
    given = tmp_path / "values.yaml"
    given.write_text(GOOD_VALUES)

    linted = run_tool("helm", "lint", str(CHART), "--strict", "-f", str(given))
    rendered = run_tool("helm", "template", "demo", str(CHART), "-f", str(given))

    assert "0 chart(s) failed" in linted
    kinds = {d["kind"] for d in yaml.safe_load_all(rendered) if d}
    assert {"Deployment", "Role", "Lease", "WebSocketPool"} <= kinds


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy': value must be one of"),
        ("image.repository=", "at '/image/repository'"),
        ("operator.replicas=0", "at '/operator/replicas': minimum: got 0, want 1"),
        ("operator.replicas=two", "at '/operator/replicas': got string, want integer"),
        ("operator.syncInterval=0", "at '/operator/syncInterval': minimum"),
        ("operator.leaseDuration=600", "at '/operator/leaseDuration': maximum"),
        ("operator.logLevel=verbose", "at '/operator/logLevel'"),
        ("operator.metrics.port=8080", "at '/operator/metrics/port'"),
        ("operator.metrics.port=70000", "at '/operator/metrics/port': maximum"),
        ("operator.watchNamespaces={Team_A}", "at '/operator/watchNamespaces/0'"),
        ("operator.redisUrl=http://redis:6379", "at '/operator/redisUrl'"),
        ("operator.resources.requests.cpu=lots", "at '/operator/resources/requests/cpu'"),
        ("operator.replica=2", "additional properties 'replica' not allowed"),
        ("serviceAccount.create=maybe", "at '/serviceAccount/create': got string, want boolean"),
        ("redis.enabled=yes", "at '/redis/enabled'"),
        ("examplePool.name=Chat", "at '/examplePool/name'"),
        ("examplePool.spec.strategy=random", "at '/examplePool/spec/strategy'"),
        ("examplePool.spec.replicas=11", "at '/examplePool/spec/replicas': maximum"),
        ("examplePool.spec.redis.url=redis://r:6379", "additional properties 'redis' not allowed"),
        ("examplePool.spec.gateway.replcas=2", "additional properties 'replcas' not allowed"),
    ],
)
def test_a_bad_value_is_refused_naming_it(setting: str, named: str) -> None:
    linted = tool_refused("helm", "lint", str(CHART), "--strict", "--set", setting)
    rendered = tool_refused("helm", "template", "demo", str(CHART), "--set", setting)

    assert named in linted
    assert named in rendered


def test_helm_install_refuses_a_bad_value_and_installs_nothing(namespace: str) -> None:
    refused = tool_refused(
        "helm",
        "install",
        "demo",
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        "operator.replicas=0",
    )

    releases = run_tool("helm", "list", "--namespace", namespace, "--short")
    assert "at '/operator/replicas': minimum: got 0, want 1" in refused
    assert releases.strip() == ""


def _schema_at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for key in path.split("."):
        node = node["properties"][key]
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_the_schema_declares_every_value_and_requires_every_section() -> None:
    schema = values_schema()
    undeclared = []
    for path in _defaults():
        try:
            node = _schema_at(schema, path)
        except KeyError:
            undeclared.append(path)
            continue
        if not ({"type", "enum", "anyOf"} & node.keys()):
            undeclared.append(f"{path} (no type)")

    assert undeclared == []
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(yaml.safe_load((CHART / "values.yaml").read_text()))


def test_the_example_pools_spec_is_checked_by_the_crds_own_schema() -> None:
    assert values_schema()["properties"]["examplePool"]["properties"]["spec"] == spec_schema(), (
        "values.schema.json is behind crds/: python -m tests.support.chart_schema"
    )


def test_the_readme_lists_every_value_with_its_default() -> None:
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]*)` \|", (CHART / "README.md").read_text(), re.M)
    listed = {path: yaml.safe_load(default) for path, default in rows}

    assert list(listed) == list(_defaults())
    assert listed == _defaults()
