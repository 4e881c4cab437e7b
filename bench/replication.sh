#!/usr/bin/env bash
# Replication benchmarks: sustained churn, RPO at 50 MB/s, recovery-point
# storage, memory and failover time through the whole pipeline, with rsync
# shipping the same changes in the same run. BENCH_CHURN_MIB sets the churn.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin recoverite
command -v qemu-io >/dev/null || { echo "qemu-io (qemu-utils) is needed" >&2; exit 1; }
command -v rsync >/dev/null || { [ "$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq rsync >/dev/null; }
exec python3 bench/replication.py "$@"
