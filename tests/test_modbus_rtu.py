"""Modbus RTU over a serial line: socat (Debian) makes pseudo-terminal pairs, pymodbus's RTU
server (PyPI) sits on one end and our client on the other; every function code at 19200 and
115200 baud, and a CRC error injected by a relay between two pty pairs is detected (as a bad
frame) and retried."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from harness import cprog
from harness.modbus_server import ModbusServer, holding
from harness.serial_pty import CorruptingRelay, PtyPair

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "tests" / "c" / "eq1modbus.c"


@pytest.fixture(scope="module")
def program(built_library):
    return cprog.compile_c([SOURCE], extra_flags=("-lpthread",))


@pytest.fixture
def modbus_cls(built_library):
    os.environ["EQ1_LIBRARY"] = str(Path(built_library) / "libeq1.so")
    bindings = str(REPO / "bindings" / "python")
    if bindings not in sys.path:
        sys.path.insert(0, bindings)
    from communicator.protocols.modbus import ModbusConfig, ModbusProtocol

    return ModbusConfig, ModbusProtocol


@pytest.fixture
def stack(tmp_path):
    """Teardown list: everything appended is stopped at the end, newest first."""
    parts: list = []
    yield parts
    for part in reversed(parts):
        part.stop()


def wait_until_served(modbus_cls, device: str, baud: int) -> None:
    """The server opens its end a moment after it starts: ask until it answers."""
    config_cls, protocol_cls = modbus_cls
    client = protocol_cls(config_cls(serial_device=device, baud=baud, timeout_ms=300,
                                     retries=0))
    client.connect()
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                assert client.read_holding_registers(0, 1) == [holding(0)]
                return
            except AssertionError:
                raise
            except Exception:
                if time.monotonic() > deadline:
                    raise
    finally:
        client.close()


@pytest.mark.parametrize("baud", [19200, 115200])
def test_every_function_code_over_rtu(program, modbus_cls, stack, tmp_path, baud):
    pair = PtyPair(tmp_path, "line")
    stack.append(pair)
    stack.append(ModbusServer(mode="rtu", device=pair.a, baud=baud))
    wait_until_served(modbus_cls, pair.b, baud)
    r = cprog.run(program, ["rtu", pair.b, baud, "roundtrip"], timeout=180)
    assert r.returncode == 0 and ", 0 failed" in r.stdout, f"{r.stdout[-6000:]}\n{r.stderr}"


@pytest.mark.parametrize("baud", [19200, 115200])
def test_threads_over_rtu_are_serialized(program, modbus_cls, stack, tmp_path, baud):
    pair = PtyPair(tmp_path, "line")
    stack.append(pair)
    stack.append(ModbusServer(mode="rtu", device=pair.a, baud=baud))
    wait_until_served(modbus_cls, pair.b, baud)
    r = cprog.run(program, ["rtu", pair.b, baud, "threads", 100, 4], timeout=240)
    assert r.returncode == 0 and "4 x 100 requests, 0 wrong, 0 failed" in r.stdout, (
        f"{r.stdout[-6000:]}\n{r.stderr}")


def test_a_crc_error_is_detected_and_retried(modbus_cls, stack, tmp_path):
    from communicator.common.exceptions import ProtocolDecodeError, Status

    config_cls, protocol_cls = modbus_cls
    to_client = PtyPair(tmp_path, "client")
    to_server = PtyPair(tmp_path, "server")
    stack += [to_client, to_server]
    stack.append(ModbusServer(mode="rtu", device=to_server.b, baud=19200))
    wait_until_served_through = CorruptingRelay(to_client.b, to_server.a, corrupt=set())
    stack.append(wait_until_served_through)
    wait_until_served(modbus_cls, to_client.a, 19200)
    wait_until_served_through.stop()
    stack.remove(wait_until_served_through)

    # The response to request 2 is damaged: its retry (request 3) gets through.
    relay = CorruptingRelay(to_client.b, to_server.a, corrupt={2})
    stack.append(relay)
    client = protocol_cls(config_cls(serial_device=to_client.a, baud=19200, timeout_ms=500,
                                     retries=2))
    client.connect()
    try:
        assert client.read_holding_registers(0, 3) == [holding(i) for i in range(3)]
        assert client.read_holding_registers(5, 2) == [holding(5), holding(6)]
        assert relay.corrupted == 1
        stats = client.stats()
        assert stats.bad_frames == 1 and stats.retries == 1, stats
        relay.corrupt = {relay.requests + 1}  # the next one, now without retries
        with pytest.raises(ProtocolDecodeError) as raised:
            client.read_holding_registers(7, 1, retries=0)
        assert raised.value.status == Status.MODBUS_BAD_FRAME
        assert "bad CRC" in str(raised.value)
        assert relay.corrupted == 2
        assert client.read_holding_registers(8, 1) == [holding(8)]
    finally:
        client.close()
