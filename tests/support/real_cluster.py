"""A real single-node Kubernetes cluster on this machine, for the end-to-end tier.

The control plane of :mod:`tests.support.kubernetes_testenv`, listening on an address pods can
reach, plus what runs pods: containerd (with Debian's runc and CNI plugins), kubelet,
kube-scheduler, kube-proxy in iptables mode and CoreDNS, each a process of this session with
its output in a log file. Nothing is pulled: the sandbox ("pause") image is a static binary
built by ``make testenv`` and imported at start, and the tests import their own images.

:meth:`RealCluster.stop` tears it down in the order that leaves nothing behind: workloads
deleted while kubelet runs, kube-proxy's rules removed, then the node, the runtime, the control
plane, and last the machine-wide state (:func:`tests.support.cluster_host.clean_host`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import yaml

from tests.support.cluster_host import (
    HostLayout,
    add_address,
    clean_host,
    enable_forwarding,
    require_host,
    restore_sysctls,
    run,
)
from tests.support.kubernetes_pki import ClusterPki, write_kubeconfig
from tests.support.kubernetes_testenv import (
    Component,
    ControlPlane,
    ControlPlaneError,
    MissingBinaryError,
    find_binary,
)
from tests.support.redis_server import free_port

__all__ = ["NODE_NAME", "RealCluster", "cluster_prerequisites"]

NODE_NAME = "wspool-e2e"
PAUSE_IMAGE = "localhost/wspool-pause:1"
_CNI_PLUGINS = Path("/usr/lib/cni")
_HOST_TOOLS = ("containerd", "ctr", "runc", "iptables", "iptables-save", "conntrack", "ip")
_BINARIES = ("kubelet", "kube-scheduler", "kube-proxy", "coredns", "pause")


def cluster_prerequisites() -> str | None:
    """Why a real cluster cannot run here, or None; every missing part is named."""
    reason = require_host()
    if reason is not None:
        return reason
    missing = [tool for tool in _HOST_TOOLS if shutil.which(tool) is None]
    missing += [
        f"{_CNI_PLUGINS}/{p}"
        for p in ("bridge", "host-local", "loopback")
        if not (_CNI_PLUGINS / p).exists()
    ]
    for name in _BINARIES:
        try:
            find_binary(name)
        except MissingBinaryError:
            missing.append(name)
    if missing:
        return f"missing {', '.join(missing)} (`make cluster-prerequisites testenv` installs them)"
    return None


class RealCluster:
    """Control plane, containerd, kubelet, kube-scheduler, kube-proxy and CoreDNS."""

    def __init__(self, layout: HostLayout | None = None, startup_timeout: float = 180.0) -> None:
        self.layout = layout or HostLayout(Path("/tmp/wspool-cluster"))
        self.startup_timeout = startup_timeout
        self.plane = ControlPlane(
            folder=self.layout.folder / "control-plane",
            address=self.layout.address,
            nodes=True,
            startup_timeout=startup_timeout,
        )
        self.components: list[Component] = []
        self._sysctls: dict[str, str] = {}

    # The Cluster protocol of the tiers.
    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    @property
    def has_controller_manager(self) -> bool:
        return True

    @property
    def containerd_address(self) -> str:
        return str(self.layout.folder / "containerd" / "containerd.sock")

    def log_marks(self) -> dict[str, int]:
        marks = self.plane.log_marks()
        marks.update({c.name: c.log_size() for c in self.components})
        return marks

    def log_sections(self, since: dict[str, int]) -> list[tuple[str, str]]:
        sections = self.plane.log_sections(since)
        sections += [(f"{c.name} log", c.tail(since.get(c.name, 0))) for c in self.components]
        return sections

    def start(self) -> None:
        started = time.monotonic()
        clean_host(self.layout)
        self.layout.folder.mkdir(parents=True)
        try:
            self._sysctls = enable_forwarding()
            add_address(self.layout)
            self.plane.start()
            assert self.plane.pki is not None
            self._write_cni_config()
            self._start_containerd()
            self._import_pause_image()
            self._start_scheduler(self.plane.pki)
            self._start_kubelet(self.plane.pki)
            self._start_kube_proxy(self.plane.pki)
            self._start_coredns()
            self._wait_for_node(started + self.startup_timeout)
        except BaseException:
            self.stop()
            raise

    # -- components ---------------------------------------------------------------------

    def _start(self, name: str, args: list[str]) -> Component:
        component = Component(name, args, self.layout.folder)
        self.components.append(component)
        component.start()
        return component

    def _deadline(self) -> float:
        return self.startup_timeout

    def _kubeconfig(self, pki: ClusterPki, name: str, user: str, group: str | None) -> Path:
        identity = pki.client(name, user, group)
        return write_kubeconfig(
            self.layout.folder / f"{name}.kubeconfig",
            self.plane.server,
            pki.ca.cert,
            name,
            identity,
        )

    def _write_cni_config(self) -> None:
        folder = self.layout.folder / "cni"
        folder.mkdir()
        config = {
            "cniVersion": "1.0.0",
            "name": self.layout.network,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.layout.bridge,
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.layout.pod_range}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.layout.folder / "cni-ipam"),
                    },
                },
                {"type": "loopback"},
            ],
        }
        (folder / "10-wspool.conflist").write_text(json.dumps(config, indent=2))

    def _start_containerd(self) -> None:
        folder = self.layout.folder / "containerd"
        folder.mkdir()
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = f"""version = 2
root = "{folder / "root"}"
state = "{folder / "state"}"
[grpc]
  address = "{self.containerd_address}"
[ttrpc]
  address = "{self.containerd_address}.ttrpc"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # Without CAP_SYS_RESOURCE runc cannot lower a container's OOM score below its parent's.
  restrict_oom_score_adj = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{shutil.which("runc")}"
  [{cri}.cni]
    bin_dir = "{_CNI_PLUGINS}"
    conf_dir = "{self.layout.folder / "cni"}"
"""
        (folder / "config.toml").write_text(config)
        containerd = self._start(
            "containerd", ["containerd", "--config", str(folder / "config.toml")]
        )
        containerd.wait_until(
            lambda: self.ctr("version", check=False).returncode == 0, 60, "serving"
        )

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``ctr`` against this cluster's containerd, in the CRI's ``k8s.io`` namespace."""
        return run("ctr", "--address", self.containerd_address, "-n", "k8s.io", *args, check=check)

    def _import_pause_image(self) -> None:
        archive = self.layout.folder / "pause.tar"
        archive.write_bytes(docker_archive(find_binary("pause"), PAUSE_IMAGE))
        self.ctr("images", "import", str(archive))

    def _start_scheduler(self, pki: ClusterPki) -> None:
        kubeconfig = self._kubeconfig(pki, "kube-scheduler", "system:kube-scheduler", None)
        self._start(
            "kube-scheduler",
            [
                str(find_binary("kube-scheduler")),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
            ],
        )

    def _start_kubelet(self, pki: ClusterPki) -> None:
        folder = self.layout.folder / "kubelet"
        folder.mkdir()
        kubeconfig = self._kubeconfig(pki, "kubelet", f"system:node:{NODE_NAME}", "system:nodes")
        serving = pki.serving("kubelet-serving", NODE_NAME, (self.layout.address,))
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This machine kind has cgroup v1 and no CAP_SYS_RESOURCE.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "oomScoreAdj": 0,
            "failSwapOn": False,
            "address": self.layout.address,
            "port": free_port(self.layout.address),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "tlsCertFile": str(serving.cert),
            "tlsPrivateKeyFile": str(serving.key),
            # Only holders of a certificate from the cluster's CA reach it (the API server).
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(pki.ca.cert)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "clusterDNS": [self.layout.dns_address],
            "clusterDomain": "cluster.local",
            "resolvConf": "",
            "containerRuntimeEndpoint": f"unix://{self.containerd_address}",
            # The disk is shared with everything else on the machine: never evict or collect
            # images for its sake during a test.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
        }
        config_file = folder / "config.yaml"
        config_file.write_text(yaml.safe_dump(config))
        self._start(
            "kubelet",
            [
                str(find_binary("kubelet")),
                f"--config={config_file}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={folder / 'root'}",
                f"--cert-dir={folder / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={self.layout.address}",
                "--v=1",
            ],
        )

    def _start_kube_proxy(self, pki: ClusterPki) -> None:
        kubeconfig = self._kubeconfig(pki, "kube-proxy", "system:kube-proxy", None)
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "mode": "iptables",
            "hostnameOverride": NODE_NAME,
            "clusterCIDR": self.layout.pod_range,
            "bindAddress": self.layout.address,
            "healthzBindAddress": f"127.0.0.1:{free_port()}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            "nodePortAddresses": [f"{self.layout.address}/32"],
            # It may not write the conntrack sysctls here: leave them as they are.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            # A pod reaching a Service whose endpoint is on the same bridge gets its replies
            # through the host, where the connection was translated.
            "iptables": {"masqueradeAll": True},
        }
        config_file = self.layout.folder / "kube-proxy.yaml"
        config_file.write_text(yaml.safe_dump(config))
        self._start(
            "kube-proxy", [str(find_binary("kube-proxy")), f"--config={config_file}", "--v=1"]
        )

    def _start_coredns(self) -> None:
        """Cluster DNS as a process of the node, on the node's address (kubelet's clusterDNS)."""
        folder = self.layout.folder / "coredns"
        folder.mkdir()
        health = free_port()
        corefile = folder / "Corefile"
        corefile.write_text(
            f""".:53 {{
    bind {self.layout.dns_address}
    errors
    health 127.0.0.1:{health}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {self.plane.kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
"""
        )
        coredns = self._start("coredns", [str(find_binary("coredns")), "-conf", str(corefile)])
        coredns.wait_until(lambda: _http_ok(f"http://127.0.0.1:{health}/health"), 60, "healthy")

    def _wait_for_node(self, deadline: float) -> None:
        kubelet = next(c for c in self.components if c.name == "kubelet")

        def ready() -> bool:
            result = self.kubectl(
                "get",
                "node",
                NODE_NAME,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                check=False,
            )
            return result.stdout.strip() == "True"

        kubelet.wait_until(ready, max(deadline - time.monotonic(), 1), "node Ready")

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return run(
            str(find_binary("kubectl")),
            f"--kubeconfig={self.kubeconfig}",
            *args,
            check=check,
            timeout=timeout,
        )

    # -- teardown -----------------------------------------------------------------------

    def _delete_workloads(self) -> None:
        """Pods go while kubelet runs, so their sandboxes and CNI state are released."""
        if not any(
            c.name == "kubelet" and c.process and c.process.poll() is None for c in self.components
        ):
            return
        namespaces = self.kubectl(
            "get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}", check=False
        ).stdout.split()
        for namespace in namespaces:
            self.kubectl(
                "delete",
                "pods",
                "--all",
                "-n",
                namespace,
                "--grace-period=0",
                "--force",
                "--wait=false",
                check=False,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listed = self.ctr("containers", "list", "-q", check=False).stdout.split()
            if not listed:
                return
            time.sleep(0.5)

    def _remove_containers(self) -> None:
        for task in self.ctr("tasks", "list", "-q", check=False).stdout.split():
            self.ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
            self.ctr("tasks", "delete", "-f", task, check=False)
        for container in self.ctr("containers", "list", "-q", check=False).stdout.split():
            self.ctr("containers", "delete", container, check=False)

    def _stop(self, name: str) -> None:
        for component in self.components:
            if component.name == name:
                component.stop()

    def stop(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, subprocess.SubprocessError):
            self._delete_workloads()
        names = {c.name for c in self.components}
        if "kube-proxy" in names:
            run(str(find_binary("kube-proxy")), "--cleanup", check=False)
        for name in ("coredns", "kube-proxy", "kubelet", "kube-scheduler"):
            self._stop(name)
        if "containerd" in names:
            self._remove_containers()
            self._stop("containerd")
        self.plane.stop()
        self.components.clear()
        restore_sysctls(self._sysctls)
        clean_host(self.layout)


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def docker_archive(binary: Path, name: str) -> bytes:
    """A one-layer image in ``docker save`` form whose entrypoint is ``binary`` at the root."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tar.gettarinfo(str(binary), arcname=binary.name)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mode = 0o755
        with binary.open("rb") as executable:
            tar.addfile(info, executable)
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": [f"/{binary.name}"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [name], "Layers": ["layer/layer.tar"]}]
    ).encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for member, content in (
            (config_name, config),
            ("layer/layer.tar", layer_bytes),
            ("manifest.json", manifest),
        ):
            info = tarfile.TarInfo(member)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return archive.getvalue()


# Re-exported for the fixtures, which fail or skip on it.
ClusterStartError = ControlPlaneError
