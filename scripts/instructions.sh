#!/usr/bin/env bash
# Instructions per packet on the worker's decision path, counted by callgrind:
# a figure that does not move with the machine's load or its CPU's speed, so a
# change to the fast path can be compared before/after even on a shared VM
# where timings drift by 2x (see docs/PERFORMANCE.md).
#
#   scripts/instructions.sh                  # the default set below, 2000 iterations each
#   scripts/instructions.sh BM_Established/dnat:0/flows:1000 ...   # benchmarks by full name
#
# Each benchmark of bench_steering runs once under valgrind with a fixed number
# of iterations (FERRY_BENCH_ITERATIONS); callgrind counts only the timed
# iterations (--toggle-collect on measured_iteration: setup and warm-up are
# left out). An iteration is a burst of 32 packets, so per packet = Ir / (n x 32).
# BM_NewConnection's packets are SYNs that each open a flow while another flow
# ends: per packet there = per new connection, its end included.
#
# Instruction counts are not time: a cache miss costs one instruction and
# hundreds of cycles. At 1M flows the time goes to memory (PERFORMANCE.md);
# this counts the work the CPU is given, not how long it waits.
#
# Environment: BUILD (meson build dir, default build-release; configured with
# --buildtype=release -Db_lto=true if missing), ITERATIONS (default 2000).
# Needs valgrind (installed with apt-get when run as root and missing).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD:-$REPO/build-release}"
ITERATIONS="${ITERATIONS:-2000}"
BURST=32
DEFAULT_SET=(
  'BM_Established/dnat:0/flows:1000'
  'BM_Established/dnat:0/flows:1000000'
  'BM_Established/dnat:1/flows:1000'
  'BM_NewConnection/dnat:0/active:1000/random_close:0'
  'BM_NewConnection/dnat:0/active:1000000/random_close:1'
  'BM_Churn/active:1000/closing_queue:1'
  'BM_Churn/active:1000000/closing_queue:1'
)

die() { printf 'instructions.sh: %s\n' "$*" >&2; exit 1; }

if ! command -v valgrind >/dev/null; then
  [[ $EUID -eq 0 ]] || die "valgrind is missing (apt-get install valgrind, as root)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind >/dev/null
fi
if [[ ! -d $BUILD ]]; then
  meson setup "$BUILD" "$REPO" --buildtype=release -Db_lto=true -Dwerror=false >/dev/null
fi
ninja -C "$BUILD" tests/bench/steering/bench_steering >/dev/null
BIN="$BUILD/tests/bench/steering/bench_steering"

TMP=$(mktemp -d /tmp/ferry-instructions.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

[[ $# -gt 0 ]] && filters=("$@") || filters=("${DEFAULT_SET[@]}")
lto=$(meson introspect "$BUILD" --buildoptions | /usr/bin/python3 -c \
  'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "b_lto"))')
echo "commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), build $BUILD (b_lto=$lto)," \
     "$(valgrind --version), $ITERATIONS iterations of $BURST packets each"
echo "| benchmark | instructions per packet | iterations | failed |"
echo "|---|---|---|---|"
for f in "${filters[@]}"; do
  out="$TMP/cg.out"
  rm -f "$out"
  FERRY_BENCH_ITERATIONS=$ITERATIONS valgrind --tool=callgrind --callgrind-out-file="$out" \
    --toggle-collect='*measured_iteration*' "$BIN" --benchmark_filter="^$f(/iterations:[0-9]+)?\$" \
    --benchmark_format=json >"$TMP/bench.json" 2>"$TMP/valgrind.log" ||
    { tail -n 20 "$TMP/valgrind.log" >&2; die "valgrind failed for $f (its last lines above)"; }
  /usr/bin/python3 - "$out" "$TMP/bench.json" "$f" "$BURST" <<'EOF'
import json, sys
cg, js, filt, burst = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ir = next(int(l.split()[1]) for l in open(cg) if l.startswith("totals:"))
text = open(js).read()
runs = json.loads(text)["benchmarks"] if text.strip() else []
if len(runs) != 1:
    sys.exit(f"instructions.sh: filter {filt} matched {len(runs)} benchmarks, not 1")
b = runs[0]
if b.get("error_occurred"):
    sys.exit(f"instructions.sh: {b['name']}: {b.get('error_message')}")
n = int(b["iterations"])
name = b["name"].rsplit("/iterations:", 1)[0]
print(f"| {name} | {ir / (n * burst):.0f} | {n} | {int(b.get('failed', 0))} |")
EOF
done
