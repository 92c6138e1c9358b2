"""The checkout's compose.yaml run as a user runs it: ``podman-compose`` or ``docker compose``.

:class:`ComposeProject` is one project (its own name, an env file of its own in place of the
user's ``.env``, free host ports for the two gateways): ``up``, ``down`` (``-v``), a service's
container killed, its health check, its published ports, and what of the project is left on the
engine (containers, pods, networks, volumes). The engine is ``CONTAINER_ENGINE`` (podman or
docker), else podman when installed, else docker, as ``tools/build-image.sh`` chooses.

With podman, containers run as the image builds do on hosts with a hybrid cgroup layout and no
CAP_SYS_RESOURCE (runc, ulimits of 1024; tools/build-image.sh says why). Health checks are run
by ``podman healthcheck run``: podman schedules them through systemd, which such hosts may lack.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["COMPOSE_FILE", "ComposeError", "ComposeProject", "container_engine", "missing"]

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
PODMAN_RUN_ARGS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")


class ComposeError(RuntimeError):
    """A compose or engine command failed; the message holds what it wrote."""


def container_engine() -> str:
    """``CONTAINER_ENGINE``, else podman when installed, else docker."""
    chosen = os.environ.get("CONTAINER_ENGINE")
    if chosen:
        return chosen
    return "podman" if shutil.which("podman") else "docker"


def _podman_compose() -> str | None:
    """The venv's podman-compose (the dev extra), else one on PATH."""
    beside = Path(sys.executable).parent / "podman-compose"
    return str(beside) if beside.exists() else shutil.which("podman-compose")


def missing(engine: str) -> str | None:
    """Why compose.yaml cannot be brought up here, or None."""
    if engine not in ("podman", "docker"):
        return f"CONTAINER_ENGINE must be podman or docker, not {engine!r}"
    if shutil.which(engine) is None:
        return f"{engine} is not installed"
    if engine == "docker":
        found = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        return None if found.returncode == 0 else "docker has no compose plugin"
    if _podman_compose() is None:
        return "podman-compose is not installed (the dev extra has it)"
    backend = subprocess.run(
        ["podman", "info", "--format", "{{.Host.NetworkBackend}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if backend == "cni" and not any(
        (Path(folder) / "dnsname").exists() for folder in ("/usr/lib/cni", "/opt/cni/bin")
    ):
        return (
            "podman's CNI networks resolve no container names without the dnsname plugin "
            "(Debian: golang-github-containernetworking-plugin-dnsname; make "
            "cluster-prerequisites installs it)"
        )
    return None


@dataclass(frozen=True)
class ComposeProject:
    """compose.yaml under the project name ``name``, its variables from ``env_file``."""

    engine: str
    name: str
    env_file: Path

    def compose(self, *args: str, timeout: float = 180) -> str:
        """Run a compose command of this project; its output."""
        if self.engine == "podman":
            runc = shutil.which("runc")
            run_args = (*(("--runtime", runc) if runc else ()), *PODMAN_RUN_ARGS)
            tool = [str(_podman_compose()), "--podman-run-args", shlex.join(run_args)]
        else:
            tool = ["docker", "compose"]
        command = [
            *tool,
            "-p",
            self.name,
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(self.env_file),
        ]
        return _run([*command, *args], timeout, self._environment())

    def _environment(self) -> dict[str, str]:
        """The caller's environment without what the env file sets: the shell's variables
        would win over the file's, and this project's values must be the file's."""
        ours = {
            line.split("=", 1)[0]
            for line in self.env_file.read_text().splitlines()
            if "=" in line and not line.startswith("#")
        }
        return {key: value for key, value in os.environ.items() if key not in ours}

    def engine_command(self, *args: str, timeout: float = 60) -> str:
        """Run ``podman ARGS`` or ``docker ARGS``; its output."""
        return _run([self.engine, *args], timeout, os.environ)

    def up(self) -> None:
        self.compose("up", "-d")

    def down(self) -> None:
        """``down -v``: containers, network and volumes removed."""
        self.compose("down", "-v", "-t", "5")

    def container(self, service: str) -> str:
        """The name of the service's container."""
        names = self._names(["ps", "-a"], [self._label, f"label={SERVICE_LABEL}={service}"])
        if len(names) != 1:
            raise ComposeError(f"{service}: expected one container, found {names}")
        return names[0]

    def healthy(self, service: str) -> bool:
        """Whether the service's health check passes (run now with podman; the engine's last
        verdict with docker, which runs them itself)."""
        container = self.container(service)
        if self.engine == "podman":
            result = subprocess.run(
                ["podman", "healthcheck", "run", container], capture_output=True, check=False
            )
            return result.returncode == 0
        status = self.engine_command("inspect", "-f", "{{.State.Health.Status}}", container)
        return status.strip() == "healthy"

    def published_ports(self, service: str) -> list[str]:
        """The service's published ports, as ``podman port`` / ``docker port`` print them."""
        output = self.engine_command("port", self.container(service))
        return [line for line in output.splitlines() if line.strip()]

    def kill(self, service: str) -> None:
        """SIGKILL the service's container, as a crash would."""
        self.engine_command("kill", self.container(service))

    def exec(self, service: str, *command: str) -> str:
        return self.engine_command("exec", self.container(service), *command)

    def logs(self) -> str:
        return self.compose("logs", "--tail", "40", timeout=60)

    def leftovers(self) -> list[str]:
        """Containers, pods, networks and volumes of the project still on the engine."""
        found = [f"container {n}" for n in self._names(["ps", "-a"], [self._label])]
        found += [f"network {n}" for n in self._names(["network", "ls"], [self._label], "Name")]
        found += [f"volume {n}" for n in self._names(["volume", "ls"], [self._label], "Name")]
        if self.engine == "podman":
            pods = self._names(["pod", "ls"], [f"name=pod_{self.name}"], "Name")
            found += [f"pod {n}" for n in pods]
        return found

    @property
    def _label(self) -> str:
        return f"label={PROJECT_LABEL}={self.name}"

    def _names(
        self, listing: Sequence[str], filters: Sequence[str], field: str = "Names"
    ) -> list[str]:
        """The names a ``ps``/``ls`` listing prints, filtered."""
        arguments = [*listing, "--format", "{{." + field + "}}"]
        for value in filters:
            arguments += ["--filter", value]
        return sorted(set(self.engine_command(*arguments).split()))


def _run(command: list[str], timeout: float, environment: Mapping[str, str]) -> str:
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(environment),
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise ComposeError(f"{shlex.join(command)}: no answer within {timeout}s") from error
    if result.returncode != 0:
        raise ComposeError(
            f"{shlex.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result.stdout
