#!/usr/bin/env bash
# Network benchmarks: DNS queries/s (dnsperf; dnsmasq answering the same
# names in the same run), IPAM and NSG evaluation (Python's ipaddress module
# as the baseline), and TCP throughput through the gateway (plain loopback
# as the baseline).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin recoverite
cargo build --release --locked --examples -p recoverite-netcore -p recoverite-gateway
if ! command -v dnsperf >/dev/null || ! command -v dnsmasq >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq dnsperf dnsmasq-base >/dev/null
  fi
fi
exec python3 bench/network.py "$@"
