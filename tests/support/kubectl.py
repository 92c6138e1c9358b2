"""kubectl and helm as a user runs them, against the tests' cluster.

The end-to-end tier drives the cluster through the same commands the docs show, so what it
asserts is what a user would see (``kubectl get pools``, ``kubectl describe pool``). Each call
returns the command's output, or fails the test with the command and what it printed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["CommandError", "Kubectl"]


class CommandError(AssertionError):
    """A kubectl or helm command exited with an error; the message has its output."""

    def __init__(self, args: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(
            f"{' '.join(args)} exited with {result.returncode}:\n{result.stderr or result.stdout}"
        )
        self.stderr = result.stderr


@dataclass(frozen=True)
class Kubectl:
    """kubectl and helm binaries, and the kubeconfig they use."""

    kubectl_binary: Path
    helm_binary: Path
    kubeconfig: Path

    def _run(self, args: list[str], stdin: str | None, timeout: float) -> str:
        result = subprocess.run(
            args, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise CommandError(args, result)
        return result.stdout

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        """``kubectl ARGS``; its standard output."""
        command = [str(self.kubectl_binary), f"--kubeconfig={self.kubeconfig}", *args]
        return self._run(command, stdin, timeout)

    def helm(self, *args: str, timeout: float = 300) -> str:
        return self._run(
            [str(self.helm_binary), f"--kubeconfig={self.kubeconfig}", *args], None, timeout
        )

    def apply(self, *documents: dict[str, Any], namespace: str | None = None) -> str:
        """``kubectl apply -f -`` of the given objects, as a user applies a YAML file."""
        text = yaml.safe_dump_all(documents, sort_keys=False)
        scope = ["-n", namespace] if namespace else []
        return self("apply", *scope, "-f", "-", stdin=text)

    def patch_pool(self, name: str, namespace: str, spec: dict[str, Any]) -> str:
        """``kubectl patch websocketpool NAME --type=merge`` of these spec fields."""
        body = json.dumps({"spec": spec})
        return self("patch", "websocketpool", name, "-n", namespace, "--type=merge", "-p", body)

    def get(
        self,
        kind: str,
        name: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
    ) -> dict[str, Any]:
        """An object (or a list) as JSON."""
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        if selector:
            args += ["-l", selector]
        loaded: dict[str, Any] = json.loads(self(*args))
        return loaded

    def exists(self, kind: str, name: str, namespace: str | None = None) -> bool:
        scope = ["-n", namespace] if namespace else []
        return bool(self("get", kind, name, *scope, "--ignore-not-found", "-o", "name").strip())

    def items(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(kind, None, namespace, selector)["items"]
        return items
