#!/usr/bin/env bash
# The whole test suite, as README.md gives it and as CI runs it:
# unit tests (normal build), the same unit tests under ASan+UBSan, and the
# end-to-end tests over DPDK virtual NICs in network namespaces (root only).
# Ends with one line "N passed, N failed" counting individual test cases.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh || exit 1

build=${FERRY_BUILD:-build}
asan=${FERRY_ASAN_BUILD:-build-asan}
jobs=${FERRY_JOBS:-$(nproc)}

setup() {  # dir, options...
  local dir=$1; shift
  if [[ ! -f $dir/build.ninja ]]; then
    meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
  fi
  ninja -C "$dir" -j "$jobs" >"$dir.ninja.log" 2>&1 || { tail -50 "$dir.ninja.log"; return 1; }
}

status=0
setup "$build" || status=1
setup "$asan" -Ddataplane=false -Dbenchmarks=disabled -Db_sanitize=address,undefined -Db_lundef=false || status=1

if ((status == 0)); then
  suites=(--suite unit)
  if [[ $(id -u) -eq 0 && ${FERRY_SKIP_E2E:-0} != 1 ]]; then
    suites+=(--suite e2e)
  else
    echo "test.sh: not root (or FERRY_SKIP_E2E=1): end-to-end tests skipped"
  fi
  meson test -C "$build" "${suites[@]}" --print-errorlogs --no-rebuild || status=1
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    meson test -C "$asan" --suite unit --print-errorlogs --no-rebuild || status=1
fi

/usr/bin/python3 scripts/test_summary.py \
  "$build/meson-logs/testlog.junit.xml" "$asan/meson-logs/testlog.junit.xml" || status=1
exit $status
