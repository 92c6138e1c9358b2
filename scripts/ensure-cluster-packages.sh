#!/usr/bin/env bash
# The Debian packages a real single-node cluster needs (tests/e2e): the container runtime, the
# CNI plugins, iptables and conntrack for kube-proxy, podman and debootstrap for the images; for
# compose.yaml under podman (tests/compose), the dnsname plugin where podman's networks are
# CNI ones (Debian's podman 4: without it no container finds another by name); and Chromium, in
# which the JavaScript client's tests run (tests/integration/test_js_client.py).
# Installs whichever are missing; needs root (or sudo). Does nothing on a machine that has them.
set -euo pipefail
# command -> the package that provides it
declare -A packages=(
  [containerd]=containerd [ctr]=containerd [runc]=runc [podman]=podman
  [debootstrap]=debootstrap [conntrack]=conntrack [socat]=socat [ethtool]=ethtool
  [iptables]=iptables [ip]=iproute2 [chromium]=chromium
)
missing=()
for command in "${!packages[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${packages[$command]}")
done
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
if [ ! -x /usr/lib/cni/dnsname ]; then
  backend=$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null || echo cni)
  [ "$backend" != cni ] || missing+=(golang-github-containernetworking-plugin-dnsname)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "installing Debian packages for the real-cluster and browser tests: ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq || true
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packages may start system-wide services; the tests run their own containerd.
($sudo service containerd stop || true) >/dev/null 2>&1
