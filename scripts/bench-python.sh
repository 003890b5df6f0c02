#!/usr/bin/env bash
# Python benchmark: the communicator package (libeq1 via ctypes) against paho-mqtt 2.x, one
# process with a publisher and a subscriber client, 64 B, through a private mosquitto on
# loopback with max_inflight_messages 20 (benches/python_pubsub.py; prints a markdown table).
#
#   scripts/bench-python.sh            # ~1-2 minutes on 2 cores
#
# paho-mqtt is installed for the comparison only, into a virtual environment under
# target/bench-python-venv (with the system's site-packages visible). Knobs (environment):
#   EQ1_PYBENCH_N      messages per run (default 20000)
#   EQ1_PYBENCH_REPS   repetitions, interleaved (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
. scripts/prerequisites.sh
eq1_need_cargo
eq1_need_debian_packages mosquitto:mosquitto python3:python3

echo "== building libeq1 (cargo build --release)" >&2
cargo build --release --quiet

venv=$repo/target/bench-python-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import paho.mqtt" 2>/dev/null; then
    echo "== installing paho-mqtt into $venv (for the comparison only)" >&2
    python3 -m venv --system-site-packages "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "paho-mqtt>=2,<3"
fi

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
max_inflight_messages 20
max_queued_messages 1000000
persistence false
CONF
/usr/sbin/mosquitto -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.1
done

EQ1_LIBRARY=$repo/target/release/libeq1.so PYTHONPATH=$repo/bindings/python \
    "$venv/bin/python" benches/python_pubsub.py --port "$port" \
    --n "${EQ1_PYBENCH_N:-20000}" --reps "${EQ1_PYBENCH_REPS:-3}"
