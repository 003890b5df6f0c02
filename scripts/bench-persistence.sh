#!/usr/bin/env bash
# The benchmarks of store and forward (issue 9). A benchmark, not a test: nothing here passes
# or fails.
#
#   scripts/bench-persistence.sh          # the client: ~1-2 minutes on 2 cores
#   scripts/bench-persistence.sh store [records] [in_flight] [dir]
#
# The client (default; benches/bench_persistence.c): durable publish at QoS 1, libeq1 without
# persistence, with persistence batched and sync, and Paho C's MQTTAsync with
# MQTTASYNC_PERSISTENCE_DEFAULT (and without persistence, for reference), in one run against
# one private mosquitto on loopback (not port 1883); then publishing into a store kept at its
# size bound (EQ1_BENCH_STORE_LIMIT, 256 KiB here) by the drop-oldest policy, not connected. Each
# configuration runs EQ1_BENCH_REPS times, interleaved; the table shows medians.
#
# store (examples/persist_bench.rs): the persistent store alone against redb on the same
# workload (records of ~100 bytes put, then removed with in_flight outstanding; defaults 20000
# 100 target/persist-bench), sync and batched, 1 and 4 threads. The directory must be on the
# disk you want to measure (not a tmpfs: fdatasync is free there); sync mode is bound by
# fdatasync: ~5 minutes in all on a disk with ~2.5 ms syncs.
#
# Knobs (environment): EQ1_BENCH_REPS (3), EQ1_BENCH_N (40000 messages; the sync and Paho runs
# use a tenth or a fifth), EQ1_BENCH_PAYLOAD (64 bytes), EQ1_BENCH_WINDOW (100, also the broker's
# max_inflight_messages), EQ1_BENCH_STORE (directory for the stores: default under target/,
# which is on the repository's disk: a tmpfs would make "sync" meaningless).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/prerequisites.sh
eq1_need_cargo
if [ "${1:-}" = store ]; then
    cargo build --release --quiet --example persist_bench
    exec ./target/release/examples/persist_bench "${2:-20000}" "${3:-100}" \
        "${4:-target/persist-bench}"
fi
eq1_need_debian_packages mosquitto:mosquitto cc:gcc python3:python3
if [ ! -f /usr/include/MQTTAsync.h ]; then
    echo "missing libpaho-mqtt-dev (Paho C's MQTTAsync headers)" >&2
    exit 1
fi

reps=${EQ1_BENCH_REPS:-3}
n=${EQ1_BENCH_N:-40000}
payload=${EQ1_BENCH_PAYLOAD:-64}
window=${EQ1_BENCH_WINDOW:-100}
store_root=${EQ1_BENCH_STORE:-$PWD/target/bench-persistence}
export EQ1_BENCH_STORE_LIMIT=${EQ1_BENCH_STORE_LIMIT:-262144}

cargo build --release --quiet
# The library's SONAME is libeq1.so.0 (build.rs): the program below looks for that name.
ln -sf libeq1.so target/release/libeq1.so.0
work=$(mktemp -d)
trap 'kill "$broker_pid" 2>/dev/null || true; rm -rf "$work" "$store_root"' EXIT
cc -std=c11 -O2 -Wall -Wextra -I include -o "$work/bench_persistence" benches/bench_persistence.c \
    -L target/release -leq1 -lpaho-mqtt3as -lpthread -Wl,-rpath,"$PWD/target/release"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages $window
max_queued_messages 1000000
log_type error
CONF
/usr/sbin/mosquitto -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
broker_pid=$!
for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
    sleep 0.1
done

# label mode threads messages
configs=(
    "libeq1, no persistence|eq1-none|1|$n"
    "libeq1, batched (100 ms)|eq1-batched|1|$n"
    "libeq1, sync|eq1-sync|1|$((n / 10))"
    "libeq1, sync, 4 publishing threads|eq1-sync|4|$((n / 5))"
    "Paho MQTTAsync, no persistence|paho-none|1|$((n / 10))"
    "Paho MQTTAsync, MQTTASYNC_PERSISTENCE_DEFAULT|paho-default|1|$((n / 10))"
    "Paho MQTTAsync, MQTTASYNC_PERSISTENCE_DEFAULT, 4 threads|paho-default|4|$((n / 10))"
    "libeq1, batched, drop-oldest at the store bound (not connected)|eq1-drop-oldest-batched|1|$n"
    "libeq1, sync, drop-oldest at the store bound (not connected)|eq1-drop-oldest-sync|1|$((n / 10))"
)
: > "$work/results"
for rep in $(seq "$reps"); do
    for config in "${configs[@]}"; do
        IFS='|' read -r label mode threads count <<<"$config"
        rm -rf "$store_root" && mkdir -p "$store_root"
        echo "rep $rep: $label" >&2
        line=$("$work/bench_persistence" "$mode" 127.0.0.1 "$port" "$store_root/store" \
            "$count" "$threads" "$payload" "$window")
        echo "$label|$line" >> "$work/results"
    done
done

python3 - "$work/results" "$n" "$payload" "$window" "$reps" <<'PY'
import re, statistics, sys
path, n, payload, window, reps = sys.argv[1:]
rows = {}
for line in open(path):
    label, data = line.rstrip("\n").split("|", 1)
    values = dict(re.findall(r"(\w+)=([\d.]+)", data))
    rows.setdefault(label, []).append(values)
print(f"QoS 1, {payload}-byte payloads, inflight window {window}, median of {reps} runs; "
      "publish latency = time in the publish call (in the durable modes: until the message "
      "is as durable as the mode promises)\n")
print("| configuration | messages | throughput (msg/s) | publish p50 (us) | publish p99 (us) |")
print("|---|---:|---:|---:|---:|")
base = None
for label, runs in rows.items():
    med = lambda k: statistics.median(float(r[k]) for r in runs)
    thr = med("throughput")
    if base is None:
        base = thr
    print(f"| {label} | {runs[0]['n']} | {thr:,.0f} ({thr / base:.0%}) | "
          f"{med('publish_p50'):,.1f} | {med('publish_p99'):,.1f} |")
PY
