#!/usr/bin/env bash
# Modbus TCP benchmark (not a test): requests/s and latency p50/p99 of sequential "read 10
# holding registers" requests against pymodbus's server (tests/harness/modbus_server.py), for
# libeq1 (benches/bench_modbus.c), pymodbus's own client and Debian's libmodbus (installed
# when missing), one after the other in the same run on the same server.
#
#   scripts/bench-modbus.sh            # EQ1_MODBUS_BENCH_N requests per client (default 5000)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
. scripts/prerequisites.sh
eq1_need_cargo
eq1_need_python_packages pymodbus:pymodbus==3.8.6
n=${EQ1_MODBUS_BENCH_N:-5000}

echo "== building libeq1 (cargo build --release)" >&2
cargo build --release --quiet
work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PYTHONPATH=$repo/tests python3 -m harness.modbus_server tcp "$port" >"$work/server.log" 2>&1 &
server_pid=$!
python3 - "$port" <<'PY'
import socket, sys, time
for _ in range(300):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5).close(); break
    except OSError:
        time.sleep(0.05)
PY

cc -O2 -std=c11 -Iinclude benches/bench_modbus.c -Ltarget/release -leq1 \
    -Wl,-rpath,"$repo/target/release" -o "$work/bench_eq1"
"$work/bench_eq1" 127.0.0.1 "$port" "$n"

python3 - "$port" "$n" <<'PY'
import sys, time
from pymodbus.client import ModbusTcpClient
port, n = int(sys.argv[1]), int(sys.argv[2])
client = ModbusTcpClient("127.0.0.1", port=port)
client.connect()
lat = []
start = time.perf_counter()
for _ in range(n):
    t0 = time.perf_counter()
    r = client.read_holding_registers(0, count=10)
    assert not r.isError()
    lat.append(time.perf_counter() - t0)
seconds = time.perf_counter() - start
lat.sort()
print(f"pymodbus-client N={n} req/s={n / seconds:.0f} p50_us={lat[n // 2] * 1e6:.0f} "
      f"p99_us={lat[n * 99 // 100] * 1e6:.0f}")
client.close()
PY

if [ ! -f /usr/include/modbus/modbus.h ]; then
    eq1_need_debian_packages pkg-config:pkg-config
    if [ "$(id -u)" = 0 ]; then apt-get install -y -q libmodbus-dev >/dev/null 2>&1 || true; fi
fi
if [ -f /usr/include/modbus/modbus.h ]; then
    cc -O2 -std=c11 -DBENCH_LIBMODBUS $(pkg-config --cflags libmodbus) benches/bench_modbus.c \
        $(pkg-config --libs libmodbus) -o "$work/bench_libmodbus"
    "$work/bench_libmodbus" 127.0.0.1 "$port" "$n"
else
    echo "libmodbus: not installed (apt-get install libmodbus-dev), skipped"
fi
