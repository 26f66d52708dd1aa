#!/usr/bin/env bash
# Installs every Debian package Ferry's build, tests, demo and benchmarks need.
# Idempotent: prints nothing and touches nothing when all are present.
set -euo pipefail

packages=(
  # build
  g++ meson ninja-build pkg-config
  libdpdk-dev dpdk dpdk-dev libconfig++-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcpp-httplib-dev nlohmann-json3-dev libcli11-dev libsystemd-dev
  # tests, demo and benchmarks
  python3 python3-scapy iproute2 ethtool nftables procps kmod curl
  wrk iperf3 iputils-ping haproxy nginx-light
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The benchmarks start their own nginx and haproxy inside test namespaces; the
# packages' services (listening on the host's port 80) are not wanted.
if [[ -d /run/systemd/system ]]; then
  for svc in nginx haproxy; do
    [[ " ${missing[*]} " == *" $svc"* ]] && systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
fi
