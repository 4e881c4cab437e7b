#!/usr/bin/env bash
# Foundation benchmarks: cold start, idle memory, authorized GET throughput
# and latency — recoverite next to Azurite (the emulator users reach for
# today) measured in the same run on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin recoverite
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else
    echo "wrk is needed (apt-get install wrk)"; exit 1
  fi
fi
AZURITE_DIR="bench/.cache/azurite"
if command -v npm >/dev/null && [ ! -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ]; then
  mkdir -p "$AZURITE_DIR"
  npm install --silent --prefix "$AZURITE_DIR" azurite@3 >/dev/null 2>&1 || echo "(azurite unavailable; comparison skipped)"
fi
exec python3 bench/foundation.py --bin target/release/recoverite --azurite "$AZURITE_DIR/node_modules/.bin/azurite-blob" "$@"
