"""The operator tier: tests against a real Kubernetes API server."""
# ruff: noqa: A005  (tests.operator is a subpackage: it shadows nothing, ``operator`` still imports)
