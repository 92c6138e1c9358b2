"""A real Kubernetes control plane for the operator tests, run as local processes.

envtest's approach without Docker: etcd, kube-apiserver and (optionally) kube-controller-manager
run from binaries that ``make testenv`` builds, on free loopback ports, with certificates made
for the occasion and RBAC on. Or, when ``WSPOOL_TEST_KUBECONFIG`` names one, an existing cluster
(kind, or any other) is used as it is. Either way the tests get a kubeconfig path.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tests.support.kubernetes_pki import SERVICE_CLUSTER_IP_RANGE, ClusterPki, write_kubeconfig
from tests.support.redis_server import free_port

__all__ = [
    "Cluster",
    "ControlPlane",
    "ControlPlaneError",
    "ExistingCluster",
    "MissingBinaryError",
    "find_binary",
]

REPOSITORY = Path(__file__).resolve().parents[2]
_LOG_TAIL_LINES = 200
_PR_SET_PDEATHSIG = 1


class ControlPlaneError(RuntimeError):
    """A component did not start or did not become ready; the message carries its log."""


class MissingBinaryError(RuntimeError):
    """A control plane binary is in none of the places the tests look."""


@functools.cache
def _default_testenv_folder() -> Path | None:
    """The folder that ``make testenv`` builds into, as the build script names it."""
    script = REPOSITORY / "tools" / "testenv.sh"
    result = subprocess.run(
        ["bash", str(script), "--print-dir"], capture_output=True, text=True, check=False
    )
    return Path(result.stdout.strip()) if result.returncode == 0 else None


def find_binary(name: str) -> Path:
    """``name`` from KUBEBUILDER_ASSETS, WSPOOL_TESTENV_BIN, then the ``make testenv`` folder."""
    folders = [os.environ.get("KUBEBUILDER_ASSETS"), os.environ.get("WSPOOL_TESTENV_BIN")]
    candidates = [Path(folder) for folder in folders if folder]
    if not os.environ.get("WSPOOL_TESTENV_BIN"):
        default = _default_testenv_folder()
        if default is not None:
            candidates.append(default)
    for folder in candidates:
        path = folder / name
        if os.access(path, os.X_OK):
            return path
    looked = ", ".join(str(folder) for folder in candidates) or "nowhere"
    raise MissingBinaryError(
        f"{name} not found (looked in {looked}); `make testenv` builds it, or set "
        "WSPOOL_TEST_KUBECONFIG to use an existing cluster"
    )


def _die_with_parent() -> None:
    """Runs in the child before exec: a SIGKILLed test run must not leave servers behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Component:
    """One control plane process with its output in a log file."""

    def __init__(self, name: str, args: list[str], folder: Path) -> None:
        self.name = name
        self.args = args
        self.log = folder / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )

    def stop(self, grace: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def wait_until(self, probe: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``probe`` until it holds; fail early, with the log, if the process exits."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ControlPlaneError(
                    f"{self.name} exited with {self.process.returncode} before {what}:\n"
                    f"{self.tail()}"
                )
            if probe():
                return
            time.sleep(0.1)
        raise ControlPlaneError(f"{self.name}: {what} not reached in {timeout}s:\n{self.tail()}")

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def tail(self, since: int = 0, lines: int = _LOG_TAIL_LINES) -> str:
        if not self.log.exists():
            return "(no log)"
        with self.log.open("rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        kept = text.splitlines()[-lines:]
        return "\n".join(kept) if kept else "(nothing logged)"


def _https_ok(url: str, context: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _etcd_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(json.loads(response.read()).get("health") == "true")
    except (OSError, ValueError):
        return False


class Cluster(Protocol):
    """What the tests need of a cluster, whichever kind it is."""

    @property
    def kubeconfig(self) -> Path: ...

    @property
    def has_controller_manager(self) -> bool: ...

    def log_marks(self) -> dict[str, int]: ...

    def log_sections(self, since: dict[str, int]) -> list[tuple[str, str]]: ...


@dataclass(frozen=True)
class ExistingCluster:
    """A cluster the tests did not start (kind, or any other): only its kubeconfig is known."""

    kubeconfig: Path
    has_controller_manager: bool = True

    def log_marks(self) -> dict[str, int]:
        return {}

    def log_sections(self, since: dict[str, int]) -> list[tuple[str, str]]:
        return []


class ControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager) on loopback, in a temporary folder."""

    def __init__(
        self,
        *,
        controller_manager: bool = True,
        startup_timeout: float = 90.0,
        folder: Path | None = None,
        address: str = "127.0.0.1",
        nodes: bool = False,
    ) -> None:
        """``address`` is where the API server listens and what it advertises; ``nodes`` readies
        it for kubelets (the Node authorizer, a client certificate to reach them, endpoints of
        the ``kubernetes`` Service), which needs an address that pods can reach."""
        if folder is None:
            folder = Path(tempfile.mkdtemp(prefix="wspool-kubernetes-"))
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.address = address
        self.nodes = nodes
        self.startup_timeout = startup_timeout
        self.pki: ClusterPki | None = None
        self.server = ""
        self.components: list[Component] = []
        self._want_controller_manager = controller_manager
        self._admin_kubeconfig = self.folder / "admin.kubeconfig"

    @property
    def kubeconfig(self) -> Path:
        """Credentials of a cluster administrator (group ``system:masters``)."""
        return self._admin_kubeconfig

    @property
    def has_controller_manager(self) -> bool:
        return any(component.name == "kube-controller-manager" for component in self.components)

    def start(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            pki = self.pki = ClusterPki(self.folder / "pki")
            etcd_url = self._start_etcd(deadline)
            server = self.server = self._start_apiserver(pki, etcd_url, deadline)
            if self._want_controller_manager:
                self._start_controller_manager(pki, server, deadline)
        except BaseException:
            self.stop()
            raise

    def _start(self, name: str, args: list[str]) -> Component:
        component = Component(name, args, self.folder)
        self.components.append(component)
        component.start()
        return component

    def _start_etcd(self, deadline: float) -> str:
        client_url = f"http://127.0.0.1:{free_port()}"
        peer_url = f"http://127.0.0.1:{free_port()}"
        etcd = self._start(
            "etcd",
            [
                str(find_binary("etcd")),
                "--name=wspool-test",
                f"--data-dir={self.folder / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=wspool-test={peer_url}",
                # A throwaway store: durability is not worth an fsync per write here.
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        etcd.wait_until(lambda: _etcd_healthy(client_url), _left(deadline), "healthy")
        return client_url

    def _start_apiserver(self, pki: ClusterPki, etcd_url: str, deadline: float) -> str:
        serving = pki.serving("apiserver", "kube-apiserver", (self.address,))
        admin = pki.client("admin", "wspool-test-admin", "system:masters")
        front_proxy = pki.client("front-proxy", "front-proxy-client")
        port = free_port(self.address)
        server = f"https://{self.address}:{port}"
        write_kubeconfig(self._admin_kubeconfig, server, pki.ca.cert, "admin", admin)
        apiserver = self._start(
            "kube-apiserver",
            [
                str(find_binary("kube-apiserver")),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                *self._node_arguments(pki),
                f"--secure-port={port}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={pki.ca.cert}",
                f"--cert-dir={self.folder / 'apiserver'}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.service_account.cert}",
                f"--service-account-signing-key-file={pki.service_account.key}",
                f"--authorization-mode={'Node,RBAC' if self.nodes else 'RBAC'}",
                # The aggregation layer's front proxy, as kubeadm sets it up; the controller
                # manager's delegated authentication also reads this CA from the API server.
                f"--requestheader-client-ca-file={pki.ca.cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={front_proxy.cert}",
                f"--proxy-client-key-file={front_proxy.key}",
                "--allow-privileged=true",
                "--profiling=false",
            ],
        )
        context = ssl.create_default_context(cafile=str(pki.ca.cert))
        context.load_cert_chain(str(admin.cert), str(admin.key))
        # /readyz includes the RBAC bootstrap roles and the CRD informers.
        apiserver.wait_until(
            lambda: _https_ok(f"{server}/readyz", context), _left(deadline), "ready (/readyz)"
        )
        return server

    def _node_arguments(self, pki: ClusterPki) -> list[str]:
        if not self.nodes:
            # The endpoints of the ``kubernetes`` Service may not be loopback addresses, and
            # no pod here would dial them: nothing reconciles them.
            return ["--endpoint-reconciler-type=none"]
        kubelet_client = pki.client("apiserver-kubelet-client", "kube-apiserver-kubelet-client")
        return [
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
            # `kubectl logs` and `exec` dial the node's address, not its name (no DNS for it).
            "--kubelet-preferred-address-types=InternalIP,Hostname",
        ]

    def _start_controller_manager(self, pki: ClusterPki, server: str, deadline: float) -> None:
        try:
            binary = find_binary("kube-controller-manager")
        except MissingBinaryError:
            return
        # The identity that RBAC's bootstrap policy binds to system:kube-controller-manager; each
        # controller then acts as its own service account, as in a kubeadm cluster.
        identity = pki.client("controller-manager", "system:kube-controller-manager")
        kubeconfig = write_kubeconfig(
            self.folder / "controller-manager.kubeconfig",
            server,
            pki.ca.cert,
            "kube-controller-manager",
            identity,
        )
        port = free_port()
        manager = self._start(
            "kube-controller-manager",
            [
                str(binary),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.folder / 'controller-manager'}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki.service_account.key}",
                f"--root-ca-file={pki.ca.cert}",
                f"--cluster-signing-cert-file={pki.ca.cert}",
                f"--cluster-signing-key-file={pki.ca.key}",
                "--profiling=false",
            ],
        )
        # Its serving certificate is self-signed; /healthz is open to anyone on loopback.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        manager.wait_until(
            lambda: _https_ok(f"https://127.0.0.1:{port}/healthz", context),
            _left(deadline),
            "healthy (/healthz)",
        )

    def stop(self) -> None:
        """Stops the components in reverse order and removes the folder (logs included)."""
        for component in reversed(self.components):
            component.stop()
        self.components.clear()
        shutil.rmtree(self.folder, ignore_errors=True)

    def log_marks(self) -> dict[str, int]:
        """The current end of each log, to show later only what a test caused."""
        return {component.name: component.log_size() for component in self.components}

    def log_sections(self, since: dict[str, int]) -> list[tuple[str, str]]:
        """(title, the last lines logged since ``since``) for each component."""
        return [
            (f"{component.name} log", component.tail(since.get(component.name, 0)))
            for component in self.components
        ]


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)
