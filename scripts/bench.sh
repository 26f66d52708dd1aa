#!/usr/bin/env bash
# Ferry pipeline benchmark: ferryd between two memif links and a DPDK traffic
# generator of ours (tests/bench/pipeline/ferry_gen.cpp), then dpdk-testpmd in
# ferryd's place (the I/O ceiling of the same setup), then ferryd's memory.
#
#   sudo scripts/bench.sh                     # pipeline + memory (about 15 minutes)
#   sudo scripts/bench.sh pipeline [options]
#   sudo scripts/bench.sh memory
#   sudo scripts/bench.sh peers [--duration S] [--placement split|shared] [--peers LIST]
#                                             # ferryd vs nftables DNAT vs haproxy: wrk, iperf3 in namespaces
#
# Options (pipeline):
#   --flows "1000 100000 1000000"   active flow counts K
#   --modes "nat dnat"              VIP modes to run (ferryd)
#   --mixes "A B"                   A: established flows only; B: every 10th pick is a new connection
#   --duration S                    measured seconds per run (default 5)
#   --no-huge                       DPDK without hugepages (--no-huge -m 1024)
#   --no-ceiling                    skip the dpdk-testpmd runs
#   --repeat N                      runs of each forwarder per point, alternating (default 3); the table
#                                   takes each forwarder's best run (see "Repeats" below)
#   --gen-rate MPPS                 the generator paces its sends to MPPS (default: as fast as the
#                                   forwarder takes them); below both forwarders' capacity, the
#                                   busy cycles compare them at the same load
#
# Options (peers):
#   --placement split|shared        split (default): load on CPU 0, balancer on CPU 1
#   --peers "ferryd-xdp ferryd-xdp-dnat ferryd-packet nftables haproxy"   which balancers (default all)
#   --idle-sleep-us N               ferryd's workers.idle_sleep_us (default 0: busy polling)
#
# Environment: BUILD (meson build dir, default build-release: configured with
# --buildtype=release -Db_lto=true if missing), FERRYD, FERRYCTL, FERRY_GEN (binaries; FERRY_GEN
# defaults to $BUILD/tests/bench/pipeline/ferry-gen, or is compiled with g++
# into the temp dir when that is missing), TESTPMD (default /usr/bin/dpdk-testpmd).
# Pipeline only: FERRYD_B, a second ferryd build run next to FERRYD at every
# point, their order swapped every other round, rows ferryd-MODE-A and
# ferryd-MODE-B (an A/B of a code change under the same conditions); PERF_DIR,
# where `perf record` samples the forwarder's worker thread during each run's
# measured seconds, one file a run, NAME-FLOWS-MIX-RUN.data (read it with
# `perf report -i FILE --no-children`).
#
# Repeats: on this VM a DPDK run settles, at start, into one of two speeds and
# keeps it (testpmd io: ~4.5 or ~13 Mpps with a copying generator), whichever
# program forwards. So each point runs the ceiling and ferryd alternately
# --repeat times and compares best runs; every run's figure is printed too.
#
# The generator maps its own hugepage memory as the memif region (zero-copy
# client, --single-file-segments): with copying on both sides the generator,
# not the forwarder, was the limit (ceiling 13 Mpps copying, 18 zero-copy).
#
# Setup, per run: ferryd is the memif server of two links (sockets in a temp
# dir), "client" and "backend"; the generator is the client of both. The
# generator sends TCP to the VIP from K flows on "client", answers ferryd's ARP
# on "backend" and counts what comes out there. CPU mapping on this 2-core
# machine: ferryd --lcores 0@0,1@1 (control thread on CPU 0, its one worker on
# CPU 1); generator --lcores 0@0 (CPU 0, shared with ferryd's control thread,
# which sleeps 2 ms between passes when idle); testpmd --lcores 0@0,1@1
# (forwarding core on CPU 1, like ferryd's worker). Each run starts a fresh ferryd. Each
# process runs in its own session (setsid), hence its own scheduler autogroup:
# with autogroups on (Debian's default), a session's CPU weight is split over
# the CPUs it runs on, and the forwarder would otherwise get a third of CPU 1
# instead of a half whenever anything else runs there.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON=/usr/bin/python3
BUILD="${BUILD:-$REPO/build-release}"
TESTPMD="${TESTPMD:-/usr/bin/dpdk-testpmd}"
HUGEPAGES=512
HP_DIR=/sys/kernel/mm/hugepages/hugepages-2048kB

FLOWS="1000 100000 1000000"
MODES="nat dnat"
MIXES="A B"
DURATION=5
NO_HUGE=0
CEILING=1
REPEAT=3
NEW_PCT=10
# shellcheck source=scripts/pipeline-config.sh
source "$REPO/scripts/pipeline-config.sh"
PLACEMENT=split
PEERS=""
IDLE_SLEEP_US=0
GEN_RATE=()

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 1; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

TMP=""
PIDS=()
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]:-}"; do
    [[ -n $pid ]] && kill -INT "$pid" 2>/dev/null || true
  done
  sleep 0.5
  for pid in "${PIDS[@]:-}"; do
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
  done
  if [[ -n $TMP && -d $TMP ]]; then
    if (( rc == 0 )); then
      rm -rf "$TMP"
    else
      # A failed run keeps its logs (ferryd's, the generator's, testpmd's) and
      # ferryd's core file, if it crashed, for diagnosis.
      rm -f "$TMP"/*.sock
      printf 'bench.sh: failed; logs kept in %s\n' "$TMP" >&2
    fi
  fi
  local p
  for p in fbench$$-lb fbench$$-gen fbench$$-tp; do rm -rf "/var/run/dpdk/$p"; done
  rm -f /dev/hugepages/fbench$$-genmap_*  # the generator's single-file segments, if it was killed
}
trap cleanup EXIT

need_root() { [[ $EUID -eq 0 ]] || die "run as root (DPDK, hugepages)"; }

build() {
  if [[ -n ${FERRYD:-} && -n ${FERRYCTL:-} ]]; then return; fi
  if [[ ! -f $BUILD/build.ninja ]]; then
    # werror off: g++ 12 at -O3 raises a false -Wrestrict in std::string code (src/common/ip_address.cpp).
    # b_lto: the worker's path crosses libraries (parse, rewrite, steering, flow table); see PERFORMANCE.md.
    log "configuring $BUILD (meson setup --buildtype=release -Db_lto=true -Dwerror=false)"
    meson setup "$BUILD" "$REPO" --buildtype=release -Db_lto=true -Dwerror=false >/dev/null
  fi
  log "building ferryd and ferryctl in $BUILD"
  ninja -C "$BUILD" src/ferryd/ferryd src/ferryctl/ferryctl >/dev/null
}

gen_binary() {
  FERRY_GEN="${FERRY_GEN:-$BUILD/tests/bench/pipeline/ferry-gen}"
  if [[ -x $FERRY_GEN ]] && ! [[ $REPO/tests/bench/pipeline/ferry_gen.cpp -nt $FERRY_GEN ]]; then return; fi
  if [[ -f $BUILD/build.ninja ]] && ninja -C "$BUILD" -t targets all 2>/dev/null | grep -q '^tests/bench/pipeline/ferry-gen:'; then
    ninja -C "$BUILD" tests/bench/pipeline/ferry-gen >/dev/null
    return
  fi
  FERRY_GEN="$TMP/ferry-gen"
  log "compiling ferry-gen with g++ (not in the meson build)"
  # shellcheck disable=SC2046
  g++ -std=c++20 -O2 $(pkg-config --cflags libdpdk | sed 's/-I/-isystem /g') \
    "$REPO/tests/bench/pipeline/ferry_gen.cpp" -o "$FERRY_GEN" $(pkg-config --libs libdpdk)
}

# DPDK memory: 2 MiB hugepages if they can be had, else --no-huge.
EAL_MEM=()
setup_memory() {
  if (( NO_HUGE )); then EAL_MEM=(--no-huge -m 1024); return; fi
  if ! awk '$3 == "hugetlbfs" { f = 1 } END { exit !f }' /proc/mounts; then
    mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
  fi
  local free total
  free=$(cat "$HP_DIR/free_hugepages" 2>/dev/null || echo 0)
  if (( free < HUGEPAGES )); then
    total=$(cat "$HP_DIR/nr_hugepages")
    echo $(( total + HUGEPAGES - free )) > "$HP_DIR/nr_hugepages" 2>/dev/null || true
    free=$(cat "$HP_DIR/free_hugepages" 2>/dev/null || echo 0)
  fi
  if (( free < HUGEPAGES )); then
    log "only $free free hugepages: running with --no-huge"
    EAL_MEM=(--no-huge -m 1024)
  else
    EAL_MEM=(--huge-unlink)
  fi
}

FERRYD_PID=""
# start_ferryd CONFIG LOG [BINARY (default $FERRYD)]: returns once ferryd
# logged "ferryd ready". ferryd runs in the temp dir with core files allowed: a
# crash leaves its core there (with the kernel's default core_pattern), and a
# failed run keeps the dir.
start_ferryd() {
  local bin=${3:-$FERRYD}
  rm -f "$TMP"/*.sock
  (cd "$TMP" && ulimit -c unlimited && exec setsid "$bin" --lcores 0@0,1@1 --file-prefix "fbench$$-lb" --no-pci \
    "${EAL_MEM[@]}" -- -c "$1") >"$2" 2>&1 &
  FERRYD_PID=$!
  PIDS+=("$FERRYD_PID")
  local i
  for i in $(seq 1 600); do
    grep -q "ferryd ready" "$2" && return 0
    kill -0 "$FERRYD_PID" 2>/dev/null || { cat "$2" >&2; die "ferryd exited"; }
    sleep 0.1
  done
  cat "$2" >&2
  die "ferryd not ready after 60 s"
}

stop_pid() {
  local pid=$1 i
  kill -INT "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hugetlb_kib() { awk '/^HugetlbPages:/ { print $2 }' "/proc/$1/status"; }

# gen_start K NEW_PCT [generator options...]: starts the generator in the
# background; returns once it printed its RESULT (or exited). It then holds its
# links up, idle, until gen_finish: the caller reads and stops the forwarder
# first (see --hold-until in ferry_gen.cpp for why).
GEN_PID=""
gen_start() {
  local k=$1 pct=$2 mem=("${EAL_MEM[@]}") zc=""
  shift 2
  if [[ ${EAL_MEM[0]} != --no-huge ]]; then mem=(--single-file-segments); zc=",zero-copy=yes"; fi
  rm -f "$TMP/gen.release" "$TMP/gen.out"
  /usr/bin/time -f 'GENCPU %P' -o "$TMP/gen.time" \
    setsid timeout $(( DURATION + 150 )) "$FERRY_GEN" --lcores 0@0 --file-prefix "fbench$$-gen" --no-pci "${mem[@]}" \
    --vdev "net_memif0,role=client,socket=$TMP/client.sock,id=0$zc" \
    --vdev "net_memif1,role=client,socket=$TMP/backend.sock,id=0$zc" \
    --log-level=lib.eal:error \
    -- --vip 10.77.1.100 --vport 80 --flows "$k" --new-pct "$pct" --duration "$DURATION" \
    --hold-until "$TMP/gen.release" "$@" >"$TMP/gen.out" 2>&1 &
  GEN_PID=$!
  PIDS+=("$GEN_PID")
  if [[ -n ${PERF_DIR:-} && -n ${PERF_TASK:-} ]]; then perf_measured "$PERF_TASK" "$PERF_DIR/$PERF_NAME.data"; fi
  PERF_TASK=""
  while kill -0 "$GEN_PID" 2>/dev/null && ! grep -q '^RESULT' "$TMP/gen.out"; do sleep 0.2; done
}

# perf_measured TASK FILE: samples TASK ("PID/task/TID") with perf from the
# generator's header line (the measurement starts) for DURATION - 1 seconds.
perf_measured() {
  local tid=${1##*/}
  (
    while ! grep -q '^ *sec ' "$TMP/gen.out" 2>/dev/null; do
      kill -0 "$GEN_PID" 2>/dev/null || exit 0
      sleep 0.05
    done
    exec perf record -q -F 4999 -t "$tid" -o "$2" -- sleep $(( DURATION > 2 ? DURATION - 1 : 1 ))
  ) >"$TMP/perf.log" 2>&1 &
  PIDS+=("$!")  # an interrupted bench stops it too (SIGINT: perf writes its file and exits)
}

# gen_finish: lets the generator exit; sets GEN_OUT to its output and a line
# "GENCPU percent" (user+system CPU of the generator over its wall time).
# Not in a subshell: only this shell can wait for the generator.
GEN_OUT=""
gen_finish() {
  touch "$TMP/gen.release"
  wait "$GEN_PID" 2>/dev/null || true
  GEN_OUT="$(grep -v '^EAL:\|^TELEMETRY:' "$TMP/gen.out" || true)"$'\n'"$(tr -d '%' < "$TMP/gen.time")"
}

field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" | head -1; }

# The thread of PID named NAME ("PID/task/TID"), and its CPU ticks (user + system).
thread_of() {
  local t
  for t in /proc/"$1"/task/*; do
    [[ $(cat "$t/comm" 2>/dev/null) == "$2" ]] && { echo "$t"; return; }
  done
}
ticks_of() { awk '{ print $14 + $15 }' "$1/stat" 2>/dev/null || echo ""; }
# cpu_share TASK TICKS0 NOW0: percent of one CPU TASK used since (TICKS0, NOW0), or "?"
cpu_share() {
  local t1; t1=$(ticks_of "$1")
  if [[ -z $1 || -z $2 || -z $t1 ]]; then echo "?"; return; fi
  echo $(( (t1 - $2) * 100 / ( $(now_ticks) - $3 + 1 ) ))
}
now_ticks() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", $1 * hz }' /proc/uptime; }

# One stats read right after the generator's last packet: Ferry's non-zero
# drop counters ("reason=count,..."), the occupied flow-table entries of all
# workers (2 per flow; in mix B also the closed flows that wait out
# tcp_closing), and the worker's busy TSC cycles per packet received: in all,
# and by stage, "rx/process/tx/other" (cycles_per_packet in docs/OPERATIONS.md).
ferry_stats() {
  "$FERRYCTL" --socket "$TMP/ferryd.sock" --json stats 2>/dev/null | "$PYTHON" -c '
import json, sys
r = json.load(sys.stdin)
d = r.get("drops", {})
drops = ",".join(f"{k}={v}" for k, v in d.items() if isinstance(v, int) and v) or "none"
c = r.get("cycles_per_packet", {})
stages = "/".join(str(c.get(s, "?")) for s in ("rx", "process", "tx", "other"))
print(drops, sum(w.get("flow_entries", 0) for w in r.get("workers", [])), c.get("total", "?"), stages)' 2>/dev/null || echo "? ? ? ?"
}

pct_of() { [[ $1 == B ]] && echo "$NEW_PCT" || echo 0; }

# record NAME K MIX GEN_OUTPUT CAPACITY RSS DROPS FWD_CPU LOAD_BEFORE FLOW_ENTRIES BUSY_CYCLES STAGE_CYCLES
record() {
  local r w g
  r=$(grep '^RESULT' <<<"$4" || true); w=$(grep '^WARM' <<<"$4" || true); g=$(sed -n 's/^GENCPU //p' <<<"$4")
  [[ -n $r ]] || { echo "$4" >&2; die "generator gave no result ($1, K=$2, mix $3)"; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" \
    "$(field offered_mpps <<<"$r")" "$(field forwarded_mpps <<<"$r")" "$(field new_cps <<<"$r")" \
    "$(field lost <<<"$r")" "$(field syn_out <<<"$w")" "$5" "$6" "$7" "$8" "${g:-?}" "$9 -> $(load)" "${10}" "${11}" "${12}" >> "$RESULTS"
  log "$1 K=$2 mix $3: $(field forwarded_mpps <<<"$r") Mpps forwarded, $(field new_cps <<<"$r") new conn/s, lost $(field lost <<<"$r"), forwarder CPU $8%, busy cycles/packet ${11} (rx/process/tx/other ${12}), generator CPU ${g:-?}%, drops $7 (load $(load))"
}

# One point (K, mix): the testpmd ceiling, then ferryd in each mode, back to back.
RESULTS=""
pipeline() {
  RESULTS="$TMP/results.tsv"
  : > "$RESULTS"
  local mode k mix out cap rss drops entries cycles stages t0 w0 l0 cpu task
  log "pipeline: flows {$FLOWS}, modes {$MODES}, mixes {$MIXES}, $DURATION s each, $REPEAT runs, memory ${EAL_MEM[*]}${GEN_RATE[*]:+, generator ${GEN_RATE[*]} Mpps}"
  for k in $FLOWS; do
    for mix in $MIXES; do
      local rep
      for rep in $(seq 1 "$REPEAT"); do
        if (( CEILING )); then
          rm -f "$TMP"/*.sock
          setsid "$TESTPMD" --lcores 0@0,1@1 --file-prefix "fbench$$-tp" --no-pci "${EAL_MEM[@]}" \
            --vdev "net_memif0,role=server,socket=$TMP/client.sock,id=0" \
            --vdev "net_memif1,role=server,socket=$TMP/backend.sock,id=0" \
            -- --forward-mode=io --auto-start --stats-period 3600 --total-num-mbufs=32768 --record-core-cycles \
            >"$TMP/testpmd.log" 2>&1 &
          local tp=$!
          PIDS+=("$tp")
          local i; for i in $(seq 1 100); do [[ -S $TMP/backend.sock ]] && break; sleep 0.1; done
          sleep 0.5
          task=$(thread_of "$tp" rte-worker-1)
          PERF_TASK=$task PERF_NAME="testpmd-io-$k-$mix-$rep"
          l0=$(load); t0=$(now_ticks); w0=$(ticks_of "$task")
          gen_start "$k" "$(pct_of "$mix")" --dst-mac 02:00:00:00:00:01 "${GEN_RATE[@]}"
          cpu=$(cpu_share "$task" "$w0" "$t0")
          stop_pid "$tp"
          gen_finish
          out=$GEN_OUT
          echo "$out" > "$TMP/gen-testpmd-$k-$mix.log"
          # testpmd prints its busy cycles per packet received when it stops.
          cycles=$(sed -n 's|.*CPU cycles/packet=\([0-9.]*\).*|\1|p' "$TMP/testpmd.log" | tail -1)
          record testpmd-io "$k" "$mix" "$out" - - - "$cpu" "$l0" - "${cycles:-?}" -
        fi
        local variants=(A) variant bin name
        # FERRYD_B: two builds, in turn, their order swapped every other round.
        if [[ -n ${FERRYD_B:-} ]]; then if (( rep % 2 )); then variants=(A B); else variants=(B A); fi; fi
        for mode in $MODES; do
         for variant in "${variants[@]}"; do
          bin=$FERRYD name="ferryd-$mode"
          if [[ -n ${FERRYD_B:-} ]]; then name+="-$variant"; fi
          if [[ $variant == B ]]; then bin=$FERRYD_B; fi
          cap=$(pipeline_capacity "$k" "$mix")
          pipeline_config "$TMP/ferry.conf" "$mode" "$cap" "$TMP"
          start_ferryd "$TMP/ferry.conf" "$TMP/ferryd.log" "$bin"
          task=$(thread_of "$FERRYD_PID" rte-worker-1)
          PERF_TASK=$task PERF_NAME="$name-$k-$mix-$rep"
          l0=$(load); t0=$(now_ticks); w0=$(ticks_of "$task")
          gen_start "$k" "$(pct_of "$mix")" "${GEN_RATE[@]}"
          cpu=$(cpu_share "$task" "$w0" "$t0")
          rss=$(rss_kib "$FERRYD_PID")
          read -r drops entries cycles stages <<<"$(ferry_stats)"
          stop_pid "$FERRYD_PID"
          gen_finish
          out=$GEN_OUT
          echo "$out" > "$TMP/gen-$name-$k-$mix.log"
          record "$name" "$k" "$mix" "$out" "$cap" "$rss" "$drops" "$cpu" "$l0" "$entries" "$cycles" "$stages"
         done
        done
      done
    done
  done
  print_pipeline
}

print_pipeline() {
  "$PYTHON" - "$RESULTS" <<'EOF'
import sys
runs = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
# Each forwarder's best run per point (see "Repeats" in bench.sh), with every run's Mpps.
best, every = {}, {}
for r in runs:
    key = (r[0], r[1], r[2])
    every.setdefault(key, []).append(r[4])
    if key not in best or float(r[4]) > float(best[key][4]):
        best[key] = r
rows = list(best.values())
ceil = {(r[1], r[2]): float(r[4]) for r in rows if r[0] == "testpmd-io"}
print()
print("PIPELINE: 1 forwarding core; Mpps = million 60-byte TCP frames/s; mix A = established flows only,")
print("B = every 10th flow pick closes the flow (RST) and opens a new one (SYN). ratio = forwarded / ceiling of the same point.")
print("flow entries at end = ferryd's occupied entries just after the last packet (2 per flow): in mix B also the")
print("closed flows that wait out tcp_closing (1 s here), so the table holds K + 1 s of new connections, not K flows.")
print("fwd CPU = share of CPU 1 the forwarding thread got during the run; gen CPU = the generator's share of CPU 0.")
print("Mpps/full core = fwd Mpps / fwd CPU share: what one unshared core would do IF the forwarder was the bottleneck")
print("(it is when the generator's CPU is high and offered = forwarded; on a quiet machine the two columns agree).")
mhz = next((l.split(":")[1].strip() for l in open("/proc/cpuinfo") if l.startswith("cpu MHz")), "?")
print(f"busy cycles/pkt = the forwarding core's TSC cycles ({mhz} MHz here, /proc/cpuinfo) in polls that received packets, per packet")
print("received: testpmd's --record-core-cycles, ferryd's cycles_per_packet (stats). It leaves out the generator and")
print("the core's sharing, so 'cycle ratio' (ceiling's / ferryd's) is the ratio on an unshared core with a generator")
print("that is never the limit. 'rx/process/tx/other' splits ferryd's: polling and receiving, its own processing,")
print("sending, housekeeping (docs/OPERATIONS.md, cycles_per_packet); all but 'process' is what testpmd also does.")
print("Each row is the forwarder's best of its runs at that point; 'runs' lists every run's fwd Mpps.")
def norm(r):
    try:
        return float(r[4]) * 100.0 / max(1.0, float(r[11]))
    except ValueError:
        return None
ceil_n = {(r[1], r[2]): norm(r) for r in rows if r[0] == "testpmd-io"}
def num(x):
    try:
        return float(x)
    except ValueError:
        return None
ceil_c = {(r[1], r[2]): num(r[15]) for r in rows if r[0] == "testpmd-io"}
hdr = ("forwarder", "flows", "mix", "offered Mpps", "fwd Mpps", "ceiling Mpps", "ratio", "fwd CPU %",
       "Mpps/full core", "ceiling/full core", "ratio/full core", "busy cycles/pkt", "ceiling cycles/pkt",
       "cycle ratio", "rx/process/tx/other cycles/pkt", "new conn/s", "lost", "warm SYN out",
       "flow_capacity", "flow entries at end", "ferryd RSS MiB", "ferryd drops", "gen CPU %",
       "load 1/5/15 (start -> end)", "runs")
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for r in rows:
    name, k, mix, off, fwd, cps, lost, warm, cap, rss, drops, fcpu, gcpu, ld, entries, cyc, proc = r
    c, cn, n = ceil.get((k, mix)), ceil_n.get((k, mix)), norm(r)
    cc, fc = ceil_c.get((k, mix)), num(cyc)
    ferry = name != "testpmd-io"
    ratio = f"{float(fwd) / c:.2f}" if c and ferry else "-"
    ratio_n = f"{n / cn:.2f}" if n and cn and ferry else "-"
    ratio_c = f"{cc / fc:.2f}" if cc and fc and ferry else "-"
    rss_mib = f"{int(rss) / 1024:.0f}" if rss not in ("-", "") else "-"
    print("| " + " | ".join([name, k, mix, off, fwd, f"{c:.3f}" if c else "-", ratio, fcpu,
                             f"{n:.2f}" if n else "-", f"{cn:.2f}" if cn else "-", ratio_n, cyc,
                             f"{cc:.1f}" if cc else "-", ratio_c, proc, cps, lost, warm, cap,
                             entries, rss_mib, drops, gcpu, ld, " ".join(every[(name, k, mix)])]) + " |")
EOF
}

memory() {
  local cap rss hp base=""
  echo
  echo "MEMORY (ferryd, 1 worker, idle after start; flow table = 1.2 slots per entry x (64-byte entry + 2-byte signature) + 4 bytes per entry of closing queue)"
  echo "| flow_capacity | VmRSS MiB | HugetlbPages MiB | RSS above capacity 65536, bytes per flow entry | load |"
  echo "|---|---|---|---|---|"
  for cap in 65536 1048576 8388608; do
    pipeline_config "$TMP/ferry.conf" nat "$cap" "$TMP"
    start_ferryd "$TMP/ferry.conf" "$TMP/ferryd-mem.log"
    sleep 1
    rss=$(rss_kib "$FERRYD_PID"); hp=$(hugetlb_kib "$FERRYD_PID")
    stop_pid "$FERRYD_PID"
    local per="-"
    if [[ -z $base ]]; then base=$rss; else per=$(( (rss - base) * 1024 / (cap - 65536) )); fi
    echo "| $cap | $(( rss / 1024 )) | $(( ${hp:-0} / 1024 )) | $per | $(load) |"
  done
}

# Peers side by side: the e2e namespace topology (tests/e2e/topo.py: client
# namespace, lb namespace, three backend namespaces behind a bridge), with, one
# after the other, as the balancer: ferryd on net_af_xdp (full NAT, then DNAT),
# ferryd on net_af_packet (DNAT), nftables DNAT (Topology.kernel_lb, numgen
# map, conntrack) and haproxy (mode tcp, 1 thread). Each backend runs nginx
# (a fixed 3-byte /health answer) on :8000; backend 1 also runs an iperf3
# server behind a second VIP port, 5201. From the client namespace: wrk
# against http://VIP/health with keep-alive and with "Connection: close" (a
# new TCP connection per request), then iperf3 (one TCP stream) for bulk.
#
# Placement (--placement): "split" (default) puts the load (wrk, iperf3, nginx)
# on CPU 0 and the balancer on CPU 1, the same for every balancer: ferryd's
# worker lcore is on CPU 1 (its control thread, mostly asleep, on CPU 0),
# haproxy is pinned there with taskset, and the lb namespace's veths steer
# their receive processing (RPS) to CPU 1, which is where nftables' forwarding
# and conntrack then run. "shared": nothing pinned except ferryd's worker,
# which always needs a core of its own to poll.
peers() {
  local tool
  for tool in wrk haproxy iperf3 nginx taskset; do
    command -v "$tool" >/dev/null || die "$tool missing (scripts/install-deps.sh)"
  done
  local hp=0
  [[ ${EAL_MEM[0]} == --huge-unlink ]] && hp=1
  echo
  FERRYD="$FERRYD" "$PYTHON" - "$REPO" "$DURATION" "$hp" "$PLACEMENT" "$PEERS" "$IDLE_SLEEP_US" <<'EOF'
import json, os, re, sys, time
repo, duration, hugepages, placement, which = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5].split()
idle_sleep_us = int(sys.argv[6])
sys.path.insert(0, os.path.join(repo, "tests", "e2e"))
from topo import (Topology, VIP, HTTP_PORT, IPERF3_PORT, IF_LB_CLIENT, IF_LB_BACKEND,  # noqa: E402
                  TopologyError)

CONNS, THREADS = 16, 1
URL = f"http://{VIP}/health"
if placement not in ("split", "shared"):
    raise SystemExit(f"--placement must be split or shared, not {placement}")
SPLIT = placement == "split"
CPU_LOAD, CPU_LB = "0", "1"
ALL = ["ferryd-xdp", "ferryd-xdp-dnat", "ferryd-packet", "nftables", "haproxy"]
which = which or ALL
unknown = set(which) - set(ALL)
if unknown:
    raise SystemExit(f"unknown peers {sorted(unknown)} (known: {' '.join(ALL)})")


def log(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)


def load():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def on_load_cpu(argv):
    return ["taskset", "-c", CPU_LOAD, *argv] if SPLIT else argv


def wrk(t, close):
    argv = ["wrk", f"-t{THREADS}", f"-c{CONNS}", f"-d{duration}s", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    l0 = load()
    cp = t.run_in(t.ns_client, on_load_cpu(argv + [URL]), timeout=duration + 60, check=False)
    out = cp.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    errs = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    if not rps:
        log(f"wrk printed no result: {out[-500:]} {cp.stderr[-500:]}")
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
        "errors": (errs.group(1).strip() if errs else "none") + (f"; non-2xx {non2xx.group(1)}" if non2xx else ""),
        "load": f"{l0} -> {load()}",
    }


def iperf3(t):
    l0 = load()
    argv = on_load_cpu(["iperf3", "-c", VIP, "-p", str(IPERF3_PORT), "-t", str(duration), "-J"])
    cp = t.run_in(t.ns_client, argv, timeout=duration + 60, check=False)
    try:
        res = json.loads(cp.stdout)
    except ValueError:
        res = {"error": (cp.stdout + cp.stderr)[-300:]}
    if "error" in res:
        log(f"iperf3 failed: {res['error']}")
        return {"gbps": 0.0, "retrans": "-", "load": f"{l0} -> {load()}"}
    end = res["end"]
    return {"gbps": end["sum_received"]["bits_per_second"] / 1e9,
            "retrans": end["sum_sent"].get("retransmits", "-"), "load": f"{l0} -> {load()}"}


def measure(t, name):
    t.run_in(t.ns_client, on_load_cpu(["wrk", "-t1", "-c4", "-d2s", URL]), timeout=60, check=False)  # warm-up
    res = {"keep-alive": wrk(t, False), "close": wrk(t, True), "bulk": iperf3(t)}
    for k in ("keep-alive", "close"):
        r = res[k]
        log(f"{name} {k}: {r['rps']:.0f} req/s, p99 {r['p99_ms']:.2f} ms, errors {r['errors']} (load {r['load']})")
    b = res["bulk"]
    log(f"{name} iperf3: {b['gbps']:.2f} Gb/s, {b['retrans']} retransmits (load {b['load']})")
    return res


def ferry_vips(t, mode):
    chat = t.default_vips(mode=mode, udp=False)[0]
    b0 = t.backends[0]
    bulk = dict(chat, name="bulk", port=IPERF3_PORT, health=dict(chat["health"], port=HTTP_PORT),
                backends=[{"address": b0.address, "port": IPERF3_PORT, "weight": 100}])
    return [chat, bulk]


def run_ferryd(t, name, pmd, mode):
    # flow_capacity 1M: "Connection: close" at ~10k/s keeps ~100k flows in
    # tcp_closing (10 s) at once.
    cfg = t.write_config(vips=ferry_vips(t, mode), workers=1, mode=mode, udp=False, pmd=pmd,
                         worker_settings={"flow_capacity": 1048576, "idle_sleep_us": idle_sleep_us}, control={"metrics_listen": ""})
    t.start_ferryd(cfg, hugepages=hugepages, lcores="0,1", extra_eal=["--huge-unlink"] if hugepages else [],
                   ready_timeout=60)
    try:
        t.wait_backends_seen()
        res = measure(t, name)
        stats = t.telemetry("/ferry/stats").get("/ferry/stats", {})
        log(f"{name}: ferryd drop counters: " + (", ".join(
            f"{k} {v}" for k, v in stats.items() if v and ("drop" in k or "exhaust" in k or "full" in k)) or "none"))
        for port in (0, 2):  # the two af_* ports (1 and 3 are their host TAPs)
            e = t.telemetry(f"/ethdev/stats,{port}").get("/ethdev/stats", {})
            log(f"{name}: ethdev {port}: " + ", ".join(f"{k} {e.get(k)}" for k in
                                                        ("ipackets", "opackets", "imissed", "ierrors", "oerrors", "rx_nombuf")))
    finally:
        t.stop_ferryd()
    for ifname in (IF_LB_CLIENT, IF_LB_BACKEND):  # the next balancer must see plain veths
        if " xdp" in t.run_in(t.ns_lb, ["ip", "link", "show", ifname]).stdout:
            log(f"{ifname}: XDP program left behind by ferryd; removing it")
            t.run_in(t.ns_lb, ["ip", "link", "set", ifname, "xdp", "off"])
    return res


def haproxy_cfg(t):
    scale = -(-max(b.weight for b in t.backends) // 256)  # haproxy weights are 0..256: same ratios
    servers = "\n".join(f"  server {b.id} {b.address}:{HTTP_PORT} weight {b.weight // scale}" for b in t.backends)
    b0 = t.backends[0]
    return (f"global\n  maxconn 8000\n  nbthread 1\n"
            f"defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"
            f"frontend fe\n  bind {VIP}:80\n  default_backend be\n"
            f"backend be\n  balance roundrobin\n{servers}\n"
            f"frontend fe_bulk\n  bind {VIP}:{IPERF3_PORT}\n  default_backend be_bulk\n"
            f"backend be_bulk\n  server {b0.id} {b0.address}:{IPERF3_PORT}\n")


results = {}
REF = None
with Topology(backends=3, weights=(100, 200, 300), start_servers=False) as t:
    cpus = CPU_LOAD if SPLIT else None
    for b in t.backends:
        t.start_nginx(b.index, cpus=cpus)
    t.start_iperf3(0, cpus=cpus)
    if SPLIT:
        for ifname in (IF_LB_CLIENT, IF_LB_BACKEND):  # receive processing in the lb namespace on CPU_LB
            t.run_in(t.ns_lb, ["sh", "-c", f"echo {1 << int(CPU_LB):x} > /sys/class/net/{ifname}/queues/rx-0/rps_cpus"])

    if "ferryd-xdp" in which:
        results["ferryd (nat, net_af_xdp, 1 worker)"] = run_ferryd(t, "ferryd-xdp", "af_xdp", "nat")
    if "ferryd-xdp-dnat" in which:
        results["ferryd (dnat, net_af_xdp, 1 worker)"] = run_ferryd(t, "ferryd-xdp-dnat", "af_xdp", "dnat")
    if "ferryd-packet" in which:
        # dnat: a second full-NAT ferryd in the same topology would reuse the
        # NAT ports (from 1024 up) that the backends still hold in TIME_WAIT
        # from the first one's "Connection: close" run (see PERFORMANCE.md).
        results["ferryd (dnat, net_af_packet, 1 worker)"] = run_ferryd(t, "ferryd-packet", "af_packet", "dnat")

    if "nftables" in which or "haproxy" in which:
        t.kernel_lb(services=[("tcp", 80, HTTP_PORT)])
        t.nft(t.ns_lb, f"add rule ip ferry_kernel_lb prerouting ip daddr {VIP} tcp dport {IPERF3_PORT} "
                       f"dnat to {t.backends[0].address}:{IPERF3_PORT}\n")
    if "nftables" in which:
        t.wait_backends_seen()
        results["nftables DNAT (numgen map, conntrack)"] = measure(t, "nftables")

    if "haproxy" in which:
        t.run_in(t.ns_lb, ["nft", "delete", "table", "ip", "ferry_kernel_lb"])
        path = t.tmpdir / "haproxy.cfg"
        path.write_text(haproxy_cfg(t))
        argv = ["haproxy", "-db", "-f", str(path)]
        proc = t.ns_exec(t.ns_lb, ["taskset", "-c", CPU_LB, *argv] if SPLIT else argv, log="haproxy.log")
        time.sleep(1.0)
        if proc.poll() is not None:
            raise SystemExit("haproxy exited: " + t.log_path("haproxy.log").read_text())
        t.wait_backends_seen()
        results["haproxy 2.6 (mode tcp, 1 thread)"] = measure(t, "haproxy")

ref = next(iter(results.values()))
ref_name = next(iter(results))
print(f"PEERS: placement {placement}: " + ("wrk, iperf3 and nginx on CPU 0, the balancer on CPU 1. " if SPLIT else
      "nothing pinned but ferryd's worker (CPU 1). ") +
      f"wrk -t{THREADS} -c{CONNS} -d{duration}s --latency {URL} from the client namespace, keep-alive and "
      f"'Connection: close'; iperf3 -c {VIP} -p {IPERF3_PORT} -t {duration} (1 TCP stream, to backend ai-1). "
      f"3 nginx backends (weights 100/200/300). ferryd: workers.idle_sleep_us = {idle_sleep_us}. "
      f"ratio = balancer / {ref_name}.")
print("With Connection: close, wrk counts each server-side close as a read error: those are expected.")
hdr = ["balancer", "keep-alive req/s", "ratio", "p99 ms", "ratio", "close req/s", "ratio", "p99 ms", "ratio",
       "iperf3 Gb/s", "ratio", "errors (keep-alive; close)", "load (keep-alive; close; iperf3)"]
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))


def ratio(a, b):
    return f"{a / b:.2f}" if b and b == b and a == a else "-"


for name, r in results.items():
    ka, cl, bk = r["keep-alive"], r["close"], r["bulk"]
    print("| " + " | ".join([
        name, f"{ka['rps']:.0f}", ratio(ka["rps"], ref["keep-alive"]["rps"]),
        f"{ka['p99_ms']:.2f}", ratio(ka["p99_ms"], ref["keep-alive"]["p99_ms"]),
        f"{cl['rps']:.0f}", ratio(cl["rps"], ref["close"]["rps"]),
        f"{cl['p99_ms']:.2f}", ratio(cl["p99_ms"], ref["close"]["p99_ms"]),
        f"{bk['gbps']:.2f}", ratio(bk["gbps"], ref["bulk"]["gbps"]),
        f"{ka['errors']}; {cl['errors']}", f"{ka['load']}; {cl['load']}; {bk['load']}"]) + " |")
EOF
}

header() {
  echo "Ferry benchmark, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' (+ local changes)')"
  echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
  echo "build: $(meson introspect "$BUILD" --buildoptions 2>/dev/null | "$PYTHON" -c 'import json,sys; o={x["name"]: x["value"] for x in json.load(sys.stdin)}; print(o.get("buildtype"), "b_ndebug=" + str(o.get("b_ndebug")), "b_lto=" + str(o.get("b_lto")))' 2>/dev/null || echo "?") ($FERRYD)"
  echo "DPDK $(pkg-config --modversion libdpdk), memory: ${EAL_MEM[*]}; load at start: $(load)"
}

main() {
  local what=all
  if [[ $# -gt 0 && $1 != -* ]]; then what=$1; shift; fi
  while [[ $# -gt 0 ]]; do
    case $1 in
      --flows) FLOWS=$2; shift 2 ;;
      --modes) MODES=$2; shift 2 ;;
      --mixes) MIXES=$2; shift 2 ;;
      --duration) DURATION=$2; shift 2 ;;
      --no-huge) NO_HUGE=1; shift ;;
      --no-ceiling) CEILING=0; shift ;;
      --repeat) REPEAT=$2; shift 2 ;;
      --gen-rate) GEN_RATE=(--rate "$2"); shift 2 ;;
      --placement) PLACEMENT=$2; shift 2 ;;
      --peers) PEERS=$2; shift 2 ;;
      --idle-sleep-us) IDLE_SLEEP_US=$2; shift 2 ;;
      -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
      *) die "unknown option $1 (see --help)" ;;
    esac
  done
  need_root
  TMP=$(mktemp -d /tmp/ferry-bench.XXXXXX)
  build
  FERRYD="$(realpath "${FERRYD:-$BUILD/src/ferryd/ferryd}")"  # absolute: ferryd runs in $TMP
  if [[ -n ${FERRYD_B:-} ]]; then FERRYD_B="$(realpath "$FERRYD_B")"; fi
  FERRYCTL="${FERRYCTL:-$BUILD/src/ferryctl/ferryctl}"
  setup_memory
  header
  case $what in
    all) gen_binary; pipeline; memory ;;
    pipeline) gen_binary; pipeline ;;
    memory) memory ;;
    peers) peers ;;
    *) die "unknown mode '$what' (pipeline | memory | peers)" ;;
  esac
}

main "$@"
