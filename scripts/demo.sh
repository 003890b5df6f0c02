#!/usr/bin/env bash
# The demo: builds libeq1, starts a private mosquitto on a free loopback port, and runs the
# C quick start (examples-c/quickstart.c) against it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/prerequisites.sh
eq1_need_cargo
eq1_need_debian_packages mosquitto:mosquitto cc:gcc python3:python3

cargo build --release --quiet
ln -sf libeq1.so target/release/libeq1.so.0
mkdir -p target/demo
cc -std=c11 -Wall -Wextra -O2 -Iinclude examples-c/quickstart.c -Ltarget/release -leq1 \
    -lpthread -Wl,-rpath,"$PWD/target/release" -o target/demo/quickstart

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
user $(id -un)
log_dest file $work/mosquitto.log
CONF
mosquitto -c "$work/mosquitto.conf" >/dev/null 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do
    grep -q "running" "$work/mosquitto.log" 2>/dev/null && break
    sleep 0.1
done
echo "mosquitto running on 127.0.0.1:$port"
target/demo/quickstart 127.0.0.1 "$port"
