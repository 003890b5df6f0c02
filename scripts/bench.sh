#!/usr/bin/env bash
# Throughput and latency of libeq1 against libmosquitto and Paho C (MQTTAsync), measured with
# the shared peer harness (../shared/bench, or $EQ1_BENCH_DIR) through a private mosquitto on
# loopback (ports 21901..21999, one fresh broker per run, started and stopped by run_bench.py).
#
#   scripts/bench.sh                  # ~4-5 minutes on 2 cores
#
# The harness folder is read-only: it is copied to a temporary directory, where the peer
# benchmarks (make), the LD_PRELOAD TCP_NODELAY shim and bin/bench_eq1 (benches/bench_eq1.c)
# are built; run_bench.py runs bin/bench_<name> for each name in --libs. Progress goes to stderr,
# the summarize.py markdown tables to stdout; the raw JSONL results stay in that directory
# (printed at the end). Knobs (environment):
#   EQ1_BENCH_DIR      harness folder (default: <repo>/../shared/bench)
#   EQ1_BENCH_REPS     repetitions of the matrix (default 3)
#   EQ1_BENCH_N        messages per QoS 0/1 run (default 50000)
#   EQ1_BENCH_N2       messages per QoS 2 run (default 25000)
#   EQ1_BENCH_WINDOWS  inflight windows = caps (default 100,1000)
#   EQ1_BENCH_SIZES    payload sizes (default 64,4096)
#   EQ1_BENCH_QOS      QoS levels (default 0,1,2)
#   EQ1_BENCH_LAT      1 = also run the latency suite (default 1)
set -euo pipefail
script_dir=$(cd "$(dirname "$0")" && pwd)
bench_src=${EQ1_BENCH_DIR:-$script_dir/../../shared/bench}
cd "$script_dir/.."
repo=$PWD

. scripts/prerequisites.sh
eq1_need_cargo
eq1_need_debian_packages mosquitto:mosquitto cc:gcc make:make python3:python3

# Development packages have no command: look for their headers.
dev_missing=()
[ -f /usr/include/mosquitto.h ] || dev_missing+=(libmosquitto-dev)
[ -f /usr/include/MQTTAsync.h ] || dev_missing+=(libpaho-mqtt-dev)
if [ ${#dev_missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing: ${dev_missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${dev_missing[@]}" >/dev/null
    else
        echo "missing libraries: please install the Debian packages: ${dev_missing[*]}" >&2
        exit 1
    fi
fi

if [ ! -f "$bench_src/run_bench.py" ] || [ ! -f "$bench_src/src/bench_common.h" ]; then
    echo "peer benchmark harness not found in $bench_src (set EQ1_BENCH_DIR)" >&2
    exit 1
fi

reps=${EQ1_BENCH_REPS:-3}
n=${EQ1_BENCH_N:-50000}
n2=${EQ1_BENCH_N2:-25000}
windows=${EQ1_BENCH_WINDOWS:-100,1000}
sizes=${EQ1_BENCH_SIZES:-64,4096}
qos=${EQ1_BENCH_QOS:-0,1,2}
do_lat=${EQ1_BENCH_LAT:-1}

echo "== building libeq1 (cargo build --release)" >&2
cargo build --release --quiet
[ -e target/release/libeq1.so.0 ] || ln -s libeq1.so target/release/libeq1.so.0

work=$(mktemp -d "${TMPDIR:-/tmp}/eq1-bench.XXXXXX")
cp -r "$bench_src/." "$work/"
chmod -R u+w "$work"
chmod 755 "$work"    # mosquitto started as root may drop to its own user
mkdir -p "$work/bin" "$work/conf" "$work/logs" "$work/results"

echo "== building the benchmarks in $work" >&2
make -s -C "$work" >&2
cc -O2 -shared -fPIC -o "$work/bin/nodelay_preload.so" "$work/src/nodelay_preload.c" -ldl
cc -O2 -g -Wall -Wextra -std=gnu11 -I"$work/src" -Iinclude benches/bench_eq1.c \
    -Ltarget/release -leq1 -lpthread -Wl,-rpath,"$repo/target/release" -o "$work/bin/bench_eq1"

stamp=$(date +%Y%m%d-%H%M%S)
thr="$work/results/thr-$stamp.jsonl"
lat="$work/results/lat-$stamp.jsonl"

echo "== throughput: libs mosq,paho,eq1 interleaved; windows $windows, sizes $sizes, QoS $qos," \
     "N $n (QoS 2: $n2), $reps reps" >&2
python3 "$work/run_bench.py" thr --libs mosq,paho,eq1 --out "$thr" --reps "$reps" \
    --n "$n" --n2 "$n2" --windows "$windows" --sizes "$sizes" --qos "$qos" >&2

if [ "$do_lat" = 1 ]; then
    # All three with TCP_NODELAY: eq1 always sets it (its "default" variant), libmosquitto
    # through -D ("nodelay"), paho through the LD_PRELOAD shim ("nodelay-preload"). Without it
    # the peers' round trip is ~88 ms (delayed ACK), which says nothing about the libraries.
    echo "== latency (QoS 1 ping-pong, 64 B, all with TCP_NODELAY), $reps reps" >&2
    python3 "$work/run_bench.py" lat --libs eq1 --nodelay-variants --out "$lat" --reps "$reps" \
        --lat-n 5000 --lat-n-default 5000 >&2
fi

echo
echo "## throughput ($(date -u +%Y-%m-%d), $(nproc) cores; N $n, QoS 2 N $n2, cap = window, $reps reps)"
echo
python3 "$work/summarize.py" "$thr"
if [ "$do_lat" = 1 ]; then
    echo "## latency (QoS 1 round trip via the broker, 64 B, TCP_NODELAY everywhere)"
    echo
    python3 "$work/summarize.py" "$lat"
fi
echo "raw results: $work/results" >&2
