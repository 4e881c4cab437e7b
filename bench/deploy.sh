#!/usr/bin/env bash
# Template deployment benchmark (bench/deploy.py): a 50-resource template,
# deployed and re-deployed, against the same resources created one SDK call
# at a time, in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin recoverite
exec .venv/bin/python bench/deploy.py "$@"
