#!/usr/bin/env bash
# MARS agent benchmark: files and folders (borg's shapes, zeros and random)
# backed up, backed up again after 1% changed, and restored, by
# `recoverite mars` and by restic on the same data in the same run; then the
# agent's peak RSS at 1 GB and 10 GB. BENCH_SCALE scales the file counts.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin recoverite
command -v restic >/dev/null || { [ "$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq restic >/dev/null; }
exec python3 bench/mars.py "$@"
