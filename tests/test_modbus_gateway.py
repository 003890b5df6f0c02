"""The gateway examples (examples-c/modbus_gateway.c, bindings/python/examples/
modbus_gateway.py) against pymodbus's Modbus TCP server and mosquitto: what they publish is
read by mosquitto_sub. Each publishes the registers it read, publishes again when a register
changes (written by pymodbus's own client), and its retained will says "offline" when it is
killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cprog
from harness.background import Background
from harness.modbus_server import holding

REPO = Path(__file__).resolve().parents[1]


def pymodbus_write_register(server, address: int, value: int) -> None:
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient(server.host, port=server.port, timeout=5)
    assert client.connect()
    try:
        assert not client.write_register(address, value).isError()
    finally:
        client.close()


def retained_status(broker) -> dict:
    r = subprocess.run(["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t",
                        "gateway/status", "-C", "1", "-W", "10"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip())


def gateway_command(kind: str, built_library, server, broker) -> list:
    args = [server.host, server.port, broker.host, broker.port, 0, 5]
    if kind == "c":
        return [cprog.compile_c([REPO / "examples-c" / "modbus_gateway.c"]), *args]
    return [sys.executable, REPO / "bindings" / "python" / "examples" / "modbus_gateway.py",
            *args]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["c", "python"])
def test_gateway_publishes_registers_and_changes_with_a_will(kind, built_library,
                                                             modbus_server, broker):
    env = {"EQ1_LIBRARY": str(Path(built_library) / "libeq1.so"),
           "PYTHONPATH": str(REPO / "bindings" / "python")}
    subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t",
                    "gateway/marker", "-r", "-m", "ready"], check=True, timeout=30)
    with Background(["mosquitto_sub", "-h", broker.host, "-p", broker.port, "-t", "gateway/#",
                     "-v"]) as sub:
        sub.wait_for_line("gateway/marker ready")
        with Background(gateway_command(kind, built_library, modbus_server, broker),
                        env=env) as gateway:
            first = sub.wait_for_line("gateway/registers ")
            assert json.loads(first.split(" ", 1)[1]) == {
                "address": 0, "values": [holding(i) for i in range(5)]}
            assert json.loads(sub.wait_for_line("gateway/status ").split(" ", 1)[1]) == {
                "status": "online"}
            since = sub.mark()
            pymodbus_write_register(modbus_server, 2, 4242)
            changed = sub.wait_for_line("gateway/registers ", since=since)
            assert json.loads(changed.split(" ", 1)[1])["values"] == [
                holding(0), holding(1), 4242, holding(3), holding(4)]
            gateway.kill()  # vanishes without DISCONNECT: the broker publishes the will
        assert retained_status(broker) == {"status": "offline"}
    assert os.path.exists(REPO / "examples-c" / "modbus_gateway.c")
