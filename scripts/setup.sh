#!/usr/bin/env bash
# Installs the Debian 12 packages dog needs to build, test and benchmark.
# Idempotent: installs only what is missing, so it is safe to run on every build.
# Usage: scripts/setup.sh [--bench | --containers]   (--bench adds wrk and perf for the benchmarks;
#   --containers adds podman, runc and debootstrap for deploy/container/)
set -euo pipefail

pkgs=(
  build-essential cmake ninja-build ccache pkg-config
  libasio-dev libcapnp-dev capnproto libsodium-dev catch2
  nlohmann-json3-dev libcli11-dev libtoml11-dev
  node-llhttp
  python3 python3-websockets   # a real WebSocket client for integration tests
  iproute2 nftables procps
  nginx-light                  # scripts/start.sh puts a real nginx in front of the nodes
  clang-14 libclang-rt-14-dev  # scripts/fuzz.sh: libFuzzer targets (tests/fuzz/)
  haproxy                      # tests/deploy: HAProxy with /readyz checks in front of the nodes
  systemd python3-yaml         # tests/deploy: systemd-analyze verify, the Kubernetes/Helm checker
  python3-prometheus-client    # tests/admin: Prometheus's own parser reads /metrics
  golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev  # tests/deploy: renders the Helm chart
)
if [[ "${1:-}" == "--bench" ]]; then pkgs+=(wrk linux-perf); fi
if [[ "${1:-}" == "--containers" ]]; then pkgs+=(podman runc debootstrap); fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then exit 0; fi

echo "setup: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
