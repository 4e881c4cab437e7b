#!/usr/bin/env bash
# Azure Backup benchmarks: backing up a large sparse disk with changed data
# (snapshot tier + incremental vault tier), ten backups at 5% churn, and
# restores from both tiers, with restic backing up the same disk image in
# the same run. BENCH_DISK_GB (default 64) and BENCH_DATA_MIB (1024) set the
# disk's size and how much of it holds data.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin recoverite
command -v restic >/dev/null || { [ "$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq restic >/dev/null; }
exec python3 bench/backup.py "$@"
