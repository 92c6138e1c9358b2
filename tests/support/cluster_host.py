"""What a real single-node cluster changes on the machine, and how all of it is undone.

The cluster's node runs on this machine, so it takes a few machine-wide things: an address on
``lo`` for the API server and the node (pods cannot reach a loopback address), a CNI bridge for
the pod range, iptables chains (kube-proxy's and kubelet's ``KUBE-*``, the bridge plugin's
``CNI-*``), two forwarding sysctls, mounts under its own folders and ``kubepods`` cgroups.
:func:`clean_host` removes every one of them and is idempotent, so it runs both before a cluster
starts (a previous run may have been killed) and after it stops. Nothing outside these names is
touched: the chains of other CNI users (podman's networks) are told apart by their comment, and
the chains the CNI plugins share go only once no network has a rule in them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HostLayout",
    "clean_host",
    "enable_forwarding",
    "remove_unused_cni_chains",
    "require_host",
    "run",
]


@dataclass(frozen=True, slots=True)
class HostLayout:
    """The machine-wide names one cluster owns."""

    folder: Path
    """Everything the cluster writes: state, logs, kubelet's and containerd's roots."""
    address: str = "10.99.0.1"
    """On ``lo``: the API server's bind and advertise address, the node's address, DNS."""
    pod_range: str = "10.99.1.0/24"
    bridge: str = "wspool0"
    network: str = "wspool-e2e"
    """The CNI network's name, which the bridge plugin writes in its iptables comments."""

    @property
    def dns_address(self) -> str:
        return self.address


_SYSCTLS = ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables")


def run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A command whose failure raises with its stderr (``check``), or is returned."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited with {result.returncode}: {result.stderr}")
    return result


def require_host() -> str | None:
    """Why this machine cannot run the cluster (not Linux, not root), or None."""
    if os.uname().sysname != "Linux":
        return "a real cluster needs Linux"
    if os.geteuid() != 0:
        return "a real cluster needs root (kubelet, containerd and iptables)"
    if not Path("/proc/sys/net/bridge").exists():
        return "the kernel has no bridge netfilter (/proc/sys/net/bridge)"
    return None


def enable_forwarding() -> dict[str, str]:
    """Turn on routing and iptables on bridged traffic; returns the values to restore."""
    before = {}
    for name in _SYSCTLS:
        path = Path("/proc/sys") / name
        before[name] = path.read_text().strip()
        path.write_text("1")
    return before


def restore_sysctls(values: dict[str, str]) -> None:
    for name, value in values.items():
        with contextlib.suppress(OSError):
            (Path("/proc/sys") / name).write_text(value)


def add_address(layout: HostLayout) -> None:
    shown = run("ip", "-o", "addr", "show", "dev", "lo").stdout
    if f" {layout.address}/" not in shown:
        run("ip", "addr", "add", f"{layout.address}/32", "dev", "lo")


def _mounts_under(folder: Path) -> list[str]:
    prefix = str(folder)
    points = []
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            point = line.split()[1].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def _kill_processes_using(folder: Path) -> None:
    """containerd's shims outlive it (they are reparented to init): stop any left under
    ``folder``, found by the socket path in their command line."""
    needle = str(folder).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in command:
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)


def _iptables_without_ours(saved: str, network: str | None) -> str | None:
    """``iptables-save`` output with the cluster's chains (those of ``network``; with None,
    only the CNI plugins' shared ones nothing uses) and the rules that use them removed; None
    when there is nothing of ours."""
    if network is None:
        return _without(saved, _unused_cni_chains(saved, set()))
    ours = set(re.findall(r"^:((?:KUBE-\S+))", saved, flags=re.MULTILINE))
    # The bridge plugin's per-container chains carry the network's name in their rules.
    for chain, rule in re.findall(r"^-A (CNI-\S+) (.*)$", saved, flags=re.MULTILINE):
        if f'name: \\"{network}\\"' in rule or f'name: "{network}"' in rule:
            ours.add(chain)
    for match in re.finditer(r"^-A \S+ .*-j (CNI-\S+) .*$", saved, flags=re.MULTILINE):
        if network in match.group(0):
            ours.add(match.group(1))
    return _without(saved, ours | _unused_cni_chains(saved, ours))


def _without(saved: str, ours: set[str]) -> str | None:
    if not ours:
        return None
    kept = []
    for line in saved.splitlines():
        words = line.split()
        if line.startswith(":") and words[0][1:] in ours:
            continue
        if line.startswith("-A ") and (words[1] in ours or any(w in ours for w in words[2:])):
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


_FIXED_CNI_RULE = re.compile(r"-j (MASQUERADE|MARK)\b|-j CNI-")


def _unused_cni_chains(saved: str, removed: set[str]) -> set[str]:
    """The chains the CNI plugins share between networks (``CNI-FORWARD``, ``CNI-ADMIN``,
    ``CNI-HOSTPORT-*``) once no network uses them: they hold only the plugins' fixed rules
    (jumps between these chains, the masquerade mark) and no rule of any container. The
    plugins make them again when a network next needs them."""
    rules: dict[str, list[str]] = {
        chain: [] for chain in re.findall(r"^:(CNI-\S+)", saved, flags=re.MULTILINE)
    }
    for chain, rule in re.findall(r"^-A (CNI-\S+) (.*)$", saved, flags=re.MULTILINE):
        rules.setdefault(chain, []).append(rule)
    unused = {chain for chain in rules if chain not in removed}
    changed = True
    while changed:  # a chain that jumps to one in use is in use
        changed = False
        for chain in list(unused):
            for rule in rules[chain]:
                target = re.search(r"-j (\S+)", rule)
                jumps_to = target.group(1) if target else ""
                in_use = not _FIXED_CNI_RULE.search(rule) or (
                    jumps_to.startswith("CNI-") and jumps_to not in unused | removed
                )
                if in_use:
                    unused.discard(chain)
                    changed = True
                    break
    return unused


def remove_unused_cni_chains() -> None:
    """What container networks leave behind once their containers are gone (podman's too):
    the CNI plugins' shared chains, when no network has a rule in them any more."""
    _clean_iptables(None)


def _clean_iptables(network: str | None) -> None:
    for tool in ("iptables", "ip6tables"):
        if shutil.which(f"{tool}-save") is None:
            continue
        saved = run(f"{tool}-save", check=False).stdout
        cleaned = _iptables_without_ours(saved, network)
        if cleaned is not None:
            subprocess.run(
                [f"{tool}-restore"], input=cleaned, text=True, capture_output=True, check=False
            )


def _remove_cgroups() -> None:
    """kubelet's ``kubepods`` hierarchy in every cgroup controller, deepest first."""
    root = Path("/sys/fs/cgroup")
    for hierarchy in [root, *root.iterdir()] if root.exists() else []:
        top = hierarchy / "kubepods"
        if not top.is_dir():
            continue
        folders = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for folder in [*folders, top]:
            with contextlib.suppress(OSError):
                folder.rmdir()


def _remove_netns() -> None:
    """The network namespaces the CNI plugins made for pods (``cni-<uuid>``)."""
    folder = Path("/run/netns")
    for entry in folder.glob("cni-*") if folder.exists() else []:
        run("umount", str(entry), check=False)
        with contextlib.suppress(OSError):
            entry.unlink()


def _remove_runtime_leftovers(folder: Path) -> None:
    """The runc shims keep their sockets and runc's state under /run/containerd whatever
    containerd's own state folder is. Shims that were killed leave both behind: runc's record of
    each container whose bundle was under ``folder``, and sockets nobody listens on. What is
    left of them is removed, then the folders, if empty (rmdir leaves what anything still uses).
    """
    top = Path("/run/containerd")
    if not top.is_dir():
        return
    runc = shutil.which("runc")
    state = top / "runc" / "k8s.io"
    if runc and state.is_dir():
        listed = run(runc, "--root", str(state), "list", "--format", "json", check=False).stdout
        for container in json.loads(listed or "null") or []:
            if str(container.get("bundle", "")).startswith(str(folder) + "/"):
                run(runc, "--root", str(state), "delete", "--force", container["id"], check=False)
    for entry in (top / "s").glob("*") if (top / "s").is_dir() else []:
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(entry))
            except ConnectionRefusedError:
                entry.unlink(missing_ok=True)
            except OSError:
                pass
    for folder in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            folder.rmdir()
    with contextlib.suppress(OSError):
        top.rmdir()


def clean_host(layout: HostLayout, extra_folders: tuple[Path, ...] = ()) -> None:
    """Undo everything a cluster with ``layout`` may have left, in the order that works."""
    for folder in (layout.folder, *extra_folders):
        _kill_processes_using(folder)
        for point in _mounts_under(folder):
            run("umount", "-l", point, check=False)
    _remove_netns()
    run("ip", "link", "delete", layout.bridge, check=False)
    _clean_iptables(layout.network)
    run("ip", "addr", "delete", f"{layout.address}/32", "dev", "lo", check=False)
    _remove_cgroups()
    _remove_runtime_leftovers(layout.folder)
    for folder in (layout.folder, *extra_folders):
        shutil.rmtree(folder, ignore_errors=True)
