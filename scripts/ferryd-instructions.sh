#!/usr/bin/env bash
# Instructions per packet of ferryd itself, counted by callgrind: ferryd (the
# release build, one worker) runs under valgrind between two memif links and
# ferry-gen feeds it, as in scripts/bench.sh's pipeline. Callgrind counts only
# Worker::process_burst and what it calls: parsing, the flow lookups and
# prefetches, the decision, the rewrite, the next hop and the TX buffer (not
# the PMD's receive and send, nor the loop's housekeeping). Per packet =
# those instructions / the packets ferryd received, both from the end of the
# generator's warm-up (one SYN per flow) to the end of its run.
#
#   sudo scripts/ferryd-instructions.sh                      # 1k flows, mixes A and B, nat
#   sudo scripts/ferryd-instructions.sh --flows "1000 100000" --mixes A --modes "nat dnat" --duration 10
#
# Where scripts/instructions.sh counts the decision code in a micro-benchmark,
# this counts the daemon as it runs (its inlining, counters and TX buffering).
# Under valgrind ferryd forwards ~0.2 Mpps, so ferry-gen waits 20x longer for
# links and warm-up replies (--wait-scale). Threads are scheduled fairly
# (--fair-sched=yes): otherwise the busy worker starves the control thread
# and next hops are not resolved. About a minute a point; needs root (DPDK),
# valgrind (installed with apt-get if missing).
#
# Environment: BUILD (default build-release, configured with
# --buildtype=release -Db_lto=true if missing); FERRYD, FERRYCTL, FERRY_GEN
# (binaries, default from BUILD: to count another build of ferryd).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/pipeline-config.sh
source "$REPO/scripts/pipeline-config.sh"
BUILD="${BUILD:-$REPO/build-release}"
FLOWS="1000" MIXES="A B" MODES="nat" DURATION=15

die() { printf 'ferryd-instructions.sh: %s\n' "$*" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --flows) FLOWS=$2; shift 2 ;;
    --mixes) MIXES=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ $EUID -eq 0 ]] || die "run as root (DPDK)"
if ! command -v valgrind >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind >/dev/null
fi
if [[ ! -d $BUILD ]]; then
  meson setup "$BUILD" "$REPO" --buildtype=release -Db_lto=true -Dwerror=false >/dev/null
fi
ninja -C "$BUILD" src/ferryd/ferryd src/ferryctl/ferryctl tests/bench/pipeline/ferry-gen >/dev/null
FERRYD="${FERRYD:-$BUILD/src/ferryd/ferryd}" FERRYCTL="${FERRYCTL:-$BUILD/src/ferryctl/ferryctl}"
GEN="${FERRY_GEN:-$BUILD/tests/bench/pipeline/ferry-gen}"
[[ $(nm -C "$FERRYD" | grep -c "Worker::process_burst") -gt 0 ]] || die "$FERRYD has no Worker::process_burst symbol to count"

TMP=$(mktemp -d /tmp/ferry-finstr.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$TMP" "/var/run/dpdk/ffi$$-lb" "/var/run/dpdk/ffi$$-gen"
}
trap cleanup EXIT

# One point: prints its table row.
run_point() {  # MODE FLOWS MIX
  local mode=$1 k=$2 mix=$3 pct=0 i fpid gpid
  [[ $mix == B ]] && pct=10
  # bench.sh's config and capacity, but tcp_syn 300 s: the generator's flows
  # never see a SYN-ACK, and under valgrind its slow warm-up leaves the first
  # flows idle for more than bench.sh's 10 s before the measured part.
  pipeline_config "$TMP/ferry.conf" "$mode" "$(pipeline_capacity "$k" "$mix")" "$TMP" 300
  rm -f "$TMP"/*.sock "$TMP"/cg.out* "$TMP/release"
  setsid valgrind --tool=callgrind --fair-sched=yes --callgrind-out-file="$TMP/cg.out" \
    --toggle-collect='*Worker::process_burst*' "$FERRYD" --lcores 0@0,1@1 --file-prefix "ffi$$-lb" \
    --no-pci --no-huge -m 1024 -- -c "$TMP/ferry.conf" >"$TMP/ferryd.log" 2>&1 &
  fpid=$!
  PIDS+=("$fpid")
  for i in $(seq 1 600); do
    grep -q "ferryd ready" "$TMP/ferryd.log" && break
    kill -0 "$fpid" 2>/dev/null || { tail -n 20 "$TMP/ferryd.log" >&2; die "ferryd exited"; }
    sleep 0.5
  done
  grep -q "ferryd ready" "$TMP/ferryd.log" || die "ferryd not ready after 300 s"
  setsid timeout $(( DURATION + 900 )) "$GEN" --lcores 0@0 --file-prefix "ffi$$-gen" --no-pci --no-huge -m 1024 \
    --vdev "net_memif0,role=client,socket=$TMP/client.sock,id=0" \
    --vdev "net_memif1,role=client,socket=$TMP/backend.sock,id=0" --log-level=lib.eal:error \
    -- --vip 10.77.1.100 --vport 80 --flows "$k" --new-pct "$pct" --duration "$DURATION" \
    --hold-until "$TMP/release" --wait-scale 20 >"$TMP/gen.out" 2>&1 &
  gpid=$!
  PIDS+=("$gpid")
  # The warm-up (one SYN per flow, each opening a flow) is left out: when it
  # ends, the counts start again from zero (callgrind_control), and the
  # packets received are counted from then (the mean of ferryd's counter just
  # before and just after, a few ms apart).
  while kill -0 "$gpid" 2>/dev/null && ! grep -q '^WARM' "$TMP/gen.out"; do sleep 0.2; done
  grep -q '^WARM' "$TMP/gen.out" || { tail -n 5 "$TMP/gen.out" >&2; die "ferry-gen did not warm up"; }
  "$FERRYCTL" --socket "$TMP/ferryd.sock" --json stats >"$TMP/stats0.json" || die "ferryctl stats failed"
  callgrind_control --zero "$fpid" >/dev/null 2>&1 || die "callgrind_control --zero failed"
  "$FERRYCTL" --socket "$TMP/ferryd.sock" --json stats >"$TMP/stats1.json" || die "ferryctl stats failed"
  while kill -0 "$gpid" 2>/dev/null && ! grep -q '^RESULT' "$TMP/gen.out"; do sleep 0.5; done
  grep -q '^RESULT' "$TMP/gen.out" || { tail -n 5 "$TMP/gen.out" >&2; die "ferry-gen gave no result"; }
  "$FERRYCTL" --socket "$TMP/ferryd.sock" --json stats >"$TMP/stats.json" || die "ferryctl stats failed"
  kill -INT "$fpid"
  for i in $(seq 1 600); do kill -0 "$fpid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$fpid" 2>/dev/null && die "ferryd did not stop within 300 s"
  touch "$TMP/release"
  wait "$gpid" 2>/dev/null || true
  /usr/bin/python3 - "$TMP" "$mode" "$k" "$mix" <<'EOF'
import glob, json, sys
tmp, mode, k, mix = sys.argv[1:]
# The dump at exit holds what was counted since the zeroing.
ir = sum(int(l.split()[1]) for f in glob.glob(f"{tmp}/cg.out*") for l in open(f) if l.startswith("totals:"))
rx = lambda name: json.load(open(f"{tmp}/{name}"))["workers"][0]["rx_packets"]
d = json.load(open(f"{tmp}/stats.json"))
packets = rx("stats.json") - (rx("stats0.json") + rx("stats1.json")) / 2
drops = ",".join(f"{r}={n}" for r, n in d["drops"].items() if n) or "0"
span = (rx("stats1.json") - rx("stats0.json")) / 2  # when in between the zeroing came is not known
print(f"| {mode} | {k} | {mix} | {ir / packets:.0f} (+-{ir / packets * span / packets:.0f}) | {packets:.0f} | {drops} |")
EOF
}

echo "commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), $FERRYD, $(valgrind --version)," \
     "$DURATION s a point"
echo "| mode | flows | mix | instructions per packet | packets counted | ferryd's drops |"
echo "|---|---|---|---|---|---|"
for mode in $MODES; do
  for k in $FLOWS; do
    for mix in $MIXES; do run_point "$mode" "$k" "$mix"; done
  done
done
