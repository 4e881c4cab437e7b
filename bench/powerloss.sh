#!/usr/bin/env bash
# Power-loss trials (tests/powerloss/powerloss.py) on lazyfs: 200 by default.
#   bench/powerloss.sh [TRIALS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --bin recoverite
cargo build --locked -p recoverite-lazyfs
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
exec "$PY" tests/powerloss/powerloss.py --trials "${1:-200}" ${2:+--seed "$2"}
