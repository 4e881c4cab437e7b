#!/usr/bin/env bash
# Runs the fuzz targets, each for SECONDS (default 60), two at a time (a
# target that starts a recoverite beside one that does not: two instances
# would contend for the same loopback aliases). New inputs go to a scratch
# copy of each corpus, so the corpus kept in the repository stays as it is
# (refresh it with `cargo fuzz cmin`); inputs that once crashed a target are
# kept in fuzz/regressions/TARGET and replayed first. Crashes are written to
# fuzz/artifacts/TARGET and fail the run.
#
#   fuzz/run.sh [SECONDS] [--release]
#   fuzz/run.sh --build-only
#   FUZZ_TARGETS="nbd dns" fuzz/run.sh 3600 --release   (those, one after another)
#
# CI runs `fuzz/run.sh 60` (a debug build: it compiles in half the time);
# the hour-long runs whose figures the README gives use --release.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-60}"
PROFILE=(--dev)
[ "${2:-}" = "--release" ] && PROFILE=()
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
# No sanitizer: libFuzzer's coverage only, which the stable toolchain builds.
cargo fuzz build -s none "${PROFILE[@]}"
# `run.sh --build-only`: the debug build only (CI starts it early).
[ "$SECONDS_EACH" = "--build-only" ] && exit 0
SCRATCH="$(mktemp -d /tmp/recoverite-fuzz-XXXX)"
trap 'rm -rf "$SCRATCH"' EXIT

run() {
  local t="$1"
  mkdir -p "$SCRATCH/$t" "artifacts/$t"
  cp -r "corpus/$t/." "$SCRATCH/$t/"
  # Inputs that once crashed a target are replayed on every run.
  [ -d "regressions/$t" ] && cp -r "regressions/$t/." "$SCRATCH/$t/"
  # -rss_limit_mb: the server-backed targets keep every resource they made.
  if cargo fuzz run -s none "${PROFILE[@]}" "$t" "$SCRATCH/$t" -- \
      -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -print_final_stats=1 \
      >"$SCRATCH/$t.log" 2>&1; then
    local runs
    runs=$(grep -m1 'stat::number_of_executed_units' "$SCRATCH/$t.log" | awk '{print $2}')
    echo "fuzz $t: ${SECONDS_EACH} s, ${runs:-?} inputs, 0 crashes"
  else
    echo "fuzz $t: FAILED"
    grep -E 'panicked|SUMMARY|Test unit written' "$SCRATCH/$t.log" | head -5
    return 1
  fi
}

status=0
if [ -n "${FUZZ_TARGETS:-}" ]; then
  for t in $FUZZ_TARGETS; do
    run "$t" || status=1
  done
  exit $status
fi
for pair in "arm nbd" "token replication" "dns blob"; do
  set -- $pair
  run "$1" & a=$!
  run "$2" & b=$!
  wait $a || status=1
  wait $b || status=1
done
exit $status
