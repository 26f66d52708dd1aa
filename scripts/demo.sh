#!/usr/bin/env bash
# Ferry demo: three mock AI servers (weights 100/200/300) behind ferryd, 300
# chat requests, and a table of expected vs. actual share per server.
#
#   sudo scripts/demo.sh            # from any directory
#   sudo scripts/demo.sh --kernel   # same demo with nftables DNAT in ferryd's place
#
# Steps: install dependencies (scripts/install-deps.sh), build with meson into
# build/ if needed, reserve 512 x 2 MiB hugepages if fewer are free, then hand
# over to tests/e2e/demo.py, which builds network namespaces, runs ferryd with
# conf/ferry.conf, sends the load and prints the table. Everything it created
# is removed on exit, so it can run again right away. Extra arguments go to
# demo.py (--requests N, --concurrency N, --no-huge, ...). The hugepages stay
# reserved; release them with: echo 0 > /proc/sys/vm/nr_hugepages
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON=/usr/bin/python3          # Debian's python (the one with scapy), not pyenv's
PREFIX="fd$$"                    # namespaces fd<pid>-*, DPDK --file-prefix fd<pid>
HUGEPAGES=512
HP_DIR=/sys/kernel/mm/hugepages/hugepages-2048kB

log() { printf '==> %s\n' "$*"; }

need_root() {
  if [[ $EUID -ne 0 ]]; then
    echo "demo.sh: run as root (network namespaces, hugepages, DPDK)" >&2
    exit 1
  fi
}

install_deps() {
  if [[ -x "$REPO/scripts/install-deps.sh" ]]; then
    log "installing dependencies (scripts/install-deps.sh)"
    "$REPO/scripts/install-deps.sh"
  elif [[ -f "$REPO/scripts/install-deps.sh" ]]; then
    log "installing dependencies (scripts/install-deps.sh)"
    bash "$REPO/scripts/install-deps.sh"
  fi
}

build() {
  if [[ ! -f "$REPO/build/build.ninja" ]]; then
    log "configuring build/ (meson setup)"
    meson setup "$REPO/build" "$REPO"
  fi
  log "building (ninja -C build)"
  ninja -C "$REPO/build"
}

# DPDK needs hugetlbfs mounted and enough free 2 MiB pages.
reserve_hugepages() {
  if ! awk '$3 == "hugetlbfs" { found = 1 } END { exit !found }' /proc/mounts; then
    log "mounting hugetlbfs on /dev/hugepages"
    mkdir -p /dev/hugepages
    mount -t hugetlbfs nodev /dev/hugepages
  fi
  local free total
  free=$(cat "$HP_DIR/free_hugepages")
  if (( free < HUGEPAGES )); then
    total=$(cat "$HP_DIR/nr_hugepages")
    log "reserving hugepages: $total -> $(( total + HUGEPAGES - free )) x 2 MiB"
    echo $(( total + HUGEPAGES - free )) > "$HP_DIR/nr_hugepages"
    free=$(cat "$HP_DIR/free_hugepages")
    if (( free < HUGEPAGES )); then
      echo "demo.sh: only $free free 2 MiB hugepages (memory fragmented?); need $HUGEPAGES" >&2
      exit 1
    fi
  fi
}

# demo.py tears down after itself; this catches what a killed run leaves.
cleanup() {
  "$PYTHON" "$REPO/tests/e2e/topo.py" --cleanup "$PREFIX" >/dev/null 2>&1 || true
}

main() {
  need_root
  local kernel=0
  for arg in "$@"; do [[ $arg == --kernel ]] && kernel=1; done
  install_deps
  if (( kernel == 0 )); then
    build
    reserve_hugepages
    mkdir -p /run/ferry   # conf/ferry.conf: control.socket = /run/ferry/ferryd.sock
  fi
  trap cleanup EXIT
  FERRYD="${FERRYD:-$REPO/build/src/ferryd/ferryd}" \
    "$PYTHON" "$REPO/tests/e2e/demo.py" --prefix "$PREFIX" --config "$REPO/conf/ferry.conf" "$@"
}

main "$@"
