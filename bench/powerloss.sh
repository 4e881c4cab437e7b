#!/usr/bin/env bash
# Power-loss trials on lazyfs: 200 during NBD writes and ARM writes
# (tests/powerloss/powerloss.py), then 200 during recovery work — points
# being sealed, failover, reprotect, failback, Backup runs
# (tests/powerloss/recovery.py). Needs the SDK virtualenv (.venv) for the
# second part.
#   bench/powerloss.sh [TRIALS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --bin recoverite
cargo build --locked -p recoverite-lazyfs
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
"$PY" tests/powerloss/powerloss.py --trials "${1:-200}" ${2:+--seed "$2"}
"$PY" tests/powerloss/recovery.py --trials "${1:-200}" ${2:+--seed "$2"}
