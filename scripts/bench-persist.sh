#!/usr/bin/env bash
# The persistent store (src/persist/) against redb on the store-and-forward workload: records
# of ~100 bytes (topic + 64-byte payload) put, then removed with ~N in flight, in sync and
# batched mode, 1 and 4 threads; prints a markdown table (throughput, put latency p50/p99).
#
#   scripts/bench-persist.sh [records] [in_flight] [dir]    # defaults: 20000 100 target/persist-bench
#
# The directory must be on the disk you want to measure (not a tmpfs: fdatasync is free there).
# Sync mode is bound by fdatasync: ~5 minutes in all on a disk with ~2.5 ms syncs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/prerequisites.sh
eq1_need_cargo
cargo build --release --quiet --example persist_bench
exec ./target/release/examples/persist_bench "${1:-20000}" "${2:-100}" "${3:-target/persist-bench}"
