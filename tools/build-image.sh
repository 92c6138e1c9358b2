#!/usr/bin/env bash
# Build a container image with podman when it is installed, else with docker:
#
#   tools/build-image.sh <arguments of `podman build` / `docker build`>
#
# CONTAINER_ENGINE=docker (or podman) chooses instead, e.g. for kind, which loads from docker.
#
# `make image` and the e2e tier's image builds (tests/support/images.py) both go through here,
# so they build the same way. With podman it adds what hosts with a cgroup v1 (hybrid) layout
# and no CAP_SYS_RESOURCE need, and what keeps a build from changing the host's network:
#   --runtime runc     when runc is installed: crun refuses the hybrid cgroup layout
#   --ulimit ...       nofile and nproc at 1024, which a build needs at most: podman's defaults
#                      (about a million) are above hard limits met on such hosts (conmon's nproc
#                      is 32768 here), and a container may not raise a limit
#   --network=host     build steps use the host's network; no bridge or firewall rule is made
# With docker, `--pull=never` (a local base image) is dropped: docker build only pulls when told.
set -euo pipefail

engine=${CONTAINER_ENGINE:-}
if [ -z "$engine" ]; then
  engine=docker
  if command -v podman >/dev/null 2>&1; then engine=podman; fi
fi
if [ "$engine" != podman ] && [ "$engine" != docker ]; then
  echo "build-image: CONTAINER_ENGINE must be podman or docker, not '$engine'" >&2
  exit 2
elif ! command -v "$engine" >/dev/null 2>&1; then
  echo "build-image: needs $engine on PATH (podman or docker)" >&2
  exit 1
fi

if [ "$engine" = podman ]; then
  podman=(podman)
  runc=$(command -v runc || true)
  if [ -n "$runc" ]; then
    podman+=(--runtime "$runc")
  fi
  flags=(--network=host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
  exec "${podman[@]}" build "${flags[@]}" "$@"
else
  args=()
  for arg in "$@"; do
    [ "$arg" = --pull=never ] || args+=("$arg")
  done
  exec docker build "${args[@]}"
fi
