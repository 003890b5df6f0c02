#!/usr/bin/env bash
# Bytes saved by automatic topic aliases (MQTT 5.0): builds libeq1 and benches/bench_aliases.c,
# starts a private mosquitto on a free loopback port with max_topic_alias 1000, and prints the
# client->broker bytes of a telemetry workload (1,000 topics of 60 bytes, 8-byte payloads,
# 100 messages per topic) with and without aliases. A byte count, not a timing: it is the
# same on every machine. About 10 s.
#
#   scripts/bench-aliases.sh [topics] [rounds]     (EQ1_BENCH_MAX_ALIAS: the broker's maximum,
#                                                   default = topics)
set -euo pipefail
script_dir=$(cd "$(dirname "$0")" && pwd)
cd "$script_dir/.."
repo=$PWD

. scripts/prerequisites.sh
eq1_need_cargo
eq1_need_debian_packages mosquitto:mosquitto cc:gcc

cargo build --release --quiet
ln -sf libeq1.so target/release/libeq1.so.0
work=$(mktemp -d)
broker_pid=
cleanup() {
    [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

cc -std=c11 -O2 -Wall -Wextra -Werror benches/bench_aliases.c -Iinclude -Ltarget/release -leq1 \
    -Wl,-rpath,"$repo/target/release" -o "$work/bench_aliases"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
user root
max_topic_alias ${EQ1_BENCH_MAX_ALIAS:-${1:-1000}}
max_queued_messages 1000000
log_dest file $work/mosquitto.log
CONF
/usr/sbin/mosquitto -c "$work/mosquitto.conf" 2>>"$work/mosquitto.err" &
broker_pid=$!
for _ in $(seq 100); do
    (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done
"$work/bench_aliases" 127.0.0.1 "$port" "${1:-1000}" "${2:-100}"
