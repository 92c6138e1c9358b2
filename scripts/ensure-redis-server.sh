#!/usr/bin/env bash
# Make sure redis-server and redis-cli are on PATH: the test session starts its own servers
# from the first, and makes its Redis Cluster with the second (redis-tools, a dependency).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
  exit 0
fi
echo "redis-server or redis-cli is missing: installing Debian's redis-server and redis-tools" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq || true
$sudo apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
# The package may start a system-wide instance; the tests do not use it.
($sudo service redis-server stop || true) >/dev/null 2>&1
command -v redis-server
