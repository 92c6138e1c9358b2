#!/usr/bin/env bash
# The binaries of the tests' Kubernetes clusters (a control plane, and the node parts of a real
# single-node cluster) and of actionlint, built from Go modules into a cache folder.
#
#   tools/testenv.sh               build what is missing, then print the folder (the only stdout)
#   tools/testenv.sh --print-dir   print the folder without building anything
#
# The folder is ${WSPOOL_TESTENV_CACHE:-${XDG_CACHE_HOME:-~/.cache}/wspool-testenv}/<versions>,
# outside git; its name changes with any pinned version, so a bump builds afresh. Binaries found
# in KUBEBUILDER_ASSETS (envtest's etcd, kube-apiserver, kubectl) are used from there and not
# built; the test fixture looks there first too. Versions are pinned by the wrapper modules'
# go.mod files beside this script (tools/kubernetes/pin.sh regenerates the Kubernetes one).
set -euo pipefail

tools=$(cd "$(dirname "$0")" && pwd)

module_version() {  # module_version <wrapper folder> <module path>
  local version
  version=$(awk -v module="$2" '($1 == module || $1 == "require" && $2 == module) {
    print ($1 == "require" ? $3 : $2); exit }' "$tools/$1/go.mod")
  if [ -z "$version" ]; then
    echo "testenv: $tools/$1/go.mod does not require $2" >&2
    exit 1
  fi
  echo "$version"
}

kubernetes_version=$(module_version kubernetes k8s.io/kubernetes)
etcd_version=$(module_version etcd go.etcd.io/etcd/server/v3)
helm_version=$(module_version helm helm.sh/helm/v4)
coredns_version=$(module_version coredns github.com/coredns/coredns)
actionlint_version=$(module_version actionlint github.com/rhysd/actionlint)
cache_root=${WSPOOL_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wspool-testenv}
dir="$cache_root/kubernetes-$kubernetes_version-etcd-$etcd_version-helm-$helm_version"
dir+="-coredns-$coredns_version-actionlint-$actionlint_version"

if [ "${1:-}" = "--print-dir" ]; then
  echo "$dir"
  exit 0
elif [ $# -gt 0 ]; then
  echo "usage: tools/testenv.sh [--print-dir]" >&2
  exit 2
fi

# A binary is needed when neither KUBEBUILDER_ASSETS nor the cache folder has it.
missing() {
  local name
  for name in "$@"; do
    if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/$name" ]; then
      echo "testenv: $name from KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS" >&2
    elif [ ! -x "$dir/$name" ]; then
      echo "$name"
    fi
  done
}

# go_build <wrapper folder> <ldflags> <package>...: builds into a scratch folder, then moves each
# binary into place, so an interrupted build never leaves a half-written binary behind.
go_build() {
  local module=$1 ldflags=$2
  shift 2
  if ! command -v go >/dev/null 2>&1; then
    echo "testenv: building $* needs the Go toolchain (1.26 or newer) on PATH" >&2
    exit 1
  fi
  local scratch
  scratch=$(mktemp -d "$cache_root/.build.XXXXXX")
  echo "testenv: building $* (from tools/$module) ..." >&2
  local started=$SECONDS
  (cd "$tools/$module" && CGO_ENABLED=0 nice -n 10 go build -trimpath -buildvcs=false \
    -ldflags "-s -w $ldflags" -o "$scratch/" "$@")
  mv "$scratch"/* "$dir/"
  rmdir "$scratch"
  echo "testenv: built $* in $((SECONDS - started))s" >&2
}

mkdir -p "$dir"
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)

mapfile -t kube < <(missing kube-apiserver kube-controller-manager kubectl kubelet kube-scheduler \
  kube-proxy)
if [ ${#kube[@]} -gt 0 ]; then
  minor=${kubernetes_version#v1.}
  minor=${minor%%.*}
  # The variables that Kubernetes' hack/lib/version.sh stamps; the module zip has no commit id.
  ldflags=""
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $package.gitVersion=$kubernetes_version -X $package.gitMajor=1"
    ldflags+=" -X $package.gitMinor=$minor -X $package.gitCommit="
    ldflags+=" -X $package.gitTreeState=clean -X $package.buildDate=$build_date"
  done
  go_build kubernetes "$ldflags" "${kube[@]/#/k8s.io/kubernetes/cmd/}"
fi

if [ -n "$(missing etcd)" ]; then
  # etcd's own version is a constant of its api module; only the commit is left to stamp.
  go_build etcd "-X go.etcd.io/etcd/api/v3/version.GitSHA=module-$etcd_version" wspool/tools/etcd
fi

if [ -n "$(missing helm)" ]; then
  ldflags="-X helm.sh/helm/v4/internal/version.version=$helm_version"
  ldflags+=" -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
  go_build helm "$ldflags" helm.sh/helm/v4/cmd/helm
fi

if [ -n "$(missing coredns)" ]; then
  go_build coredns "" github.com/coredns/coredns
fi

if [ -n "$(missing pause)" ]; then
  go_build pause "" wspool/tools/pause
fi

if [ -n "$(missing actionlint)" ]; then
  ldflags="-X github.com/rhysd/actionlint.version=$actionlint_version"
  go_build actionlint "$ldflags" github.com/rhysd/actionlint/cmd/actionlint
fi

echo "$dir"
